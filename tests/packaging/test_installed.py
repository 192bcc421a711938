"""The collection installed from its tarball works as a user runs it:
`ansible-playbook vos.fastpath.<playbook>` from a directory outside the
checkout, with an empty ansible.cfg of the user's own and the install as
the only collections path. It deploys onto a lab host of the playbook
tests (a veth "host" on this kernel), blocks an address, drops that
address's frames, reads the counters and tears everything down."""

from __future__ import annotations

import ipaddress
import json
import socket
import subprocess
from pathlib import Path

from tests.packaging.collection import run, tool, user_env
from tests.playbooks.playbook_run import PlaybookResult, parse_recap
from tests.playbooks.test_stats import parse, table_lines, udp_frame

BLOCKED = ipaddress.ip_address("203.0.113.7")
OTHER = ipaddress.ip_address("203.0.113.8")
INVITE = (b"INVITE sip:bob@198.51.100.1 SIP/2.0\r\n"
          b"Via: SIP/2.0/UDP 203.0.113.7:5060;branch=z9hG4bK9\r\n"
          b"Content-Length: 0\r\n\r\n")


def playbook(name: str, inventory: Path, cwd: Path, env: dict[str, str],
             *extra: str) -> PlaybookResult:
    """`ansible-playbook -i inventory vos.fastpath.<name>`, as a user."""
    proc = subprocess.run(
        [tool("ansible-playbook"), "-i", str(inventory),
         "vos.fastpath." + name, *extra],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=900,
        check=False)
    result = PlaybookResult(proc.returncode, proc.stdout + proc.stderr,
                            parse_recap(proc.stdout))
    assert result.rc == 0, "%s failed:\n%s" % (name, result.output[-6000:])
    # What a user sees at the end of the run (pytest -s shows it).
    recap = proc.stdout[proc.stdout.rfind("PLAY RECAP"):].strip()
    print("$ ansible-playbook -i inventory vos.fastpath.%s %s\n%s"
          % (name, " ".join(extra), recap))
    return result


def send(interface: str, frames: list[bytes]) -> None:
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((interface, 0))
        for frame in frames:
            s.send(frame)


def settings(cwd: Path,
             env: dict[str, str]) -> dict[str, tuple[object, str]]:
    """Every Ansible setting that differs from the defaults: name ->
    (value, where it comes from)."""
    out = run([tool("ansible-config"), "dump", "--only-changed", "--format",
               "json"], cwd=cwd, env=env).stdout
    return {item["name"]: (item["value"], item["origin"])
            for item in json.loads(out) if "name" in item}


def test_installed_collection_deploys_blocks_reads_and_tears_down(
        fleet_factory, installed_collection: Path, tmp_path: Path) -> None:
    fleet = fleet_factory(1)
    host = fleet["edge1"]
    for end in (host.ifname, host.ifname + "p"):
        # No IPv6: the kernel sends nothing of its own across the veth.
        subprocess.run(["sysctl", "-qw",
                        "net.ipv6.conf.%s.disable_ipv6=1" % end], check=True)
    inventory = fleet.inventory()
    elsewhere = tmp_path / "user"
    elsewhere.mkdir()
    env = user_env(elsewhere, installed_collection)
    # Only what the user's environment says: none of the checkout's
    # ansible.cfg (collections_path, forks...) is read.
    changed = settings(elsewhere, env)
    assert changed.pop("CONFIG_FILE")[0] == env["ANSIBLE_CONFIG"]
    assert changed["COLLECTIONS_PATHS"][0] == [str(installed_collection)]
    origins = [origin for _value, origin in changed.values()]
    assert all(o.startswith("env: ") for o in origins), changed

    playbook("deploy", inventory, elsewhere, env)
    prog = host.xdp()
    assert prog is not None and prog["name"] == "sip_xdp_prog", prog

    blocked = playbook("block", inventory, elsewhere, env,
                       "-e", "fastpath_address=%s" % BLOCKED)
    assert blocked.changed("edge1") == 1, blocked.output[-3000:]

    send(host.ifname + "p",
         [udp_frame(INVITE, src=BLOCKED)] * 3
         + [udp_frame(INVITE.replace(b"203.0.113.7", b"203.0.113.8"),
                      src=OTHER)] * 2)
    stats = playbook("stats", inventory, elsewhere, env)
    print("\n".join(table_lines(stats.output)))
    headers, rows = parse(table_lines(stats.output), "packets")
    assert headers == ["edge1", "fleet"], headers
    assert rows["BLOCKED"] == ["3", "3"], rows
    assert rows["PASSED"] == ["2", "2"], rows

    playbook("teardown", inventory, elsewhere, env,
             "-e", "fastpath_remove_state=true")
    assert host.xdp() is None
    assert not host.pin_dir.exists()
    assert not host.state_dir.exists()

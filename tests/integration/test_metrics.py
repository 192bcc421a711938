"""vos-fastpath-metrics on a real veth, installed as the fastpath role
installs it and run with Debian's Python, which has no Ansible: real
frames cross the veth into the attached program, a real list is saved by
bpf_map_entry, and the textfile follows what the kernel counted."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import jinja2
import yaml

from plugins.module_utils import _abi, _bpf
from tests.integration import test_xdp_stats
from tests.integration.ansible_run import TARGET_PYTHON, run_module
from tests.integration.conftest import REPO, ip
from tests.integration.test_xdp_stats import (
    SECOND,
    frame,
    request,
    send,
    write_limits,
)

ROLE = REPO / "roles" / "fastpath"
# The program attached natively to a veth, its maps under pin_dir.
attached = test_xdp_stats.attached
LIB_FILES = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())[
    "__fastpath_metrics_module_utils_files"]


def install(lib: Path) -> Path:
    """The metrics command as the role renders it."""
    env = jinja2.Environment(keep_trailing_newline=True)
    env.filters["to_json"] = json.dumps
    text = env.from_string(
        (ROLE / "templates" / "vos-fastpath-metrics.j2").read_text()).render(
        __fastpath_python=TARGET_PYTHON, ansible_managed="managed",
        __fastpath_module_utils=str(REPO / "plugins" / "module_utils"),
        __fastpath_metrics_module_utils_files=LIB_FILES,
        lookup=lambda kind, path, rstrip=True: Path(path).read_text())
    lib.mkdir(parents=True, exist_ok=True)
    command = lib / "vos-fastpath-metrics"
    command.write_text(text)
    command.chmod(0o755)
    return command


class Metrics:
    """The command, its configuration (as metrics.yml writes it) and its
    textfile, in a test's own directories."""

    def __init__(self, tmp: Path, pin_dir: Path, interface: str) -> None:
        self.command = install(tmp / "lib")
        self.state = tmp / "state"
        self.state.mkdir(mode=0o700)
        self.textfile = tmp / "textfiles" / "vos_fastpath.prom"
        self.textfile.parent.mkdir()
        self.cache = tmp / "run" / "metrics-lists.json"
        self.config = self.state / "metrics.json"
        self.config.write_text(json.dumps({
            "pin_dir": str(pin_dir), "interfaces": [interface],
            "state_dir": str(self.state), "lists": ["blocklist", "allowlist"],
            "textfile": str(self.textfile), "interval": "15s"}))
        self.config.chmod(0o600)

    def run(self) -> str:
        """Run it as the timer does, in a clean environment; the text."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("PYTHON") and k != "VIRTUAL_ENV"}
        proc = subprocess.run(
            [str(self.command), "--config", str(self.config), "--cache",
             str(self.cache)], cwd="/", env=env, capture_output=True,
            text=True, timeout=60, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stderr == ""
        return self.textfile.read_text()


def value(text: str, sample: str) -> str:
    match = re.search(r"^%s (\S+)$" % re.escape(sample), text, re.M)
    assert match, "%s not in:\n%s" % (sample, text)
    return match.group(1)


def source_key(address: str) -> bytes:
    return _abi.SOURCE.pack(4, 32, 0, bytes(
        int(b) for b in address.split(".")) + bytes(12))


def test_the_textfile_follows_real_traffic_bans_pardons_and_lists(
        attached: str, pin_dir: Path, tmp_path: Path) -> None:
    metrics = Metrics(tmp_path, pin_dir, attached)
    before = metrics.run()
    assert value(before, 'vos_fastpath_attached{interface="%s"}'
                 % attached) == "1"
    assert value(before, 'vos_fastpath_packets_total{reason="passed"}') == \
        "0"
    assert value(before, "vos_fastpath_bans_active") == "0"
    assert os.stat(metrics.textfile).st_mode & 0o777 == 0o644

    # A REGISTER budget of 3 and a ban at the first drop: of 10 REGISTERs
    # 3 pass, the 4th is RATE_LIMITED and bans its source, 6 are BANNED.
    # A scanner's OPTIONS is dropped and bans its source too.
    write_limits(pin_dir, register_burst=3, register_interval_ns=100 * SECOND,
                 ban_after_ns=0, scanner_ban_ns=3600 * SECOND,
                 signatures=[b"friendly", b"sipcli"])
    register = frame(request(b"REGISTER"))
    scan = frame(request(b"OPTIONS", b"friendly-scanner"), "192.0.2.60")
    send(attached + "p", [register] * 10 + [scan])
    with _bpf.Map.open_pinned(str(pin_dir / "pardons")) as pardons:
        pardons.update(source_key("192.0.2.80"),
                       _abi.PARDON.pack(2**64 - 1, 0))
    listed = run_module("vos.fastpath.bpf_map_entry", {
        "map": "blocklist", "entries": ["203.0.113.0/24", "203.0.113.7",
                                        "2001:db8:bad::/48"],
        "source": "feed", "pin_dir": str(pin_dir),
        "state_dir": str(metrics.state)}, tmp_path)
    assert listed.get("failed") is not True, listed

    text = metrics.run()
    assert value(text, 'vos_fastpath_packets_total{reason="passed"}') == "3"
    assert value(text, 'vos_fastpath_packets_total{reason="banned"}') == "6"
    assert value(text, 'vos_fastpath_rate_limited_packets_total'
                 '{class="register"}') == "1"
    assert value(text, 'vos_fastpath_rate_limited_bytes_total'
                 '{class="register"}') == str(len(register))
    assert value(text, 'vos_fastpath_rate_limited_packets_total'
                 '{class="options"}') == "0"
    assert value(text, 'vos_fastpath_scanner_packets_total'
                 '{signature="friendly"}') == "1"
    assert value(text, 'vos_fastpath_bans_in_force'
                 '{reason="rate_limited",class="register"}') == "1"
    assert value(text, 'vos_fastpath_bans_in_force'
                 '{reason="scanner",signature="friendly"}') == "1"
    assert value(text, 'vos_fastpath_bans_in_force'
                 '{reason="scanner",signature="sipcli"}') == "0"
    assert value(text, "vos_fastpath_bans_active") == "2"
    assert value(text, "vos_fastpath_pardons_active") == "1"
    assert value(text, 'vos_fastpath_list_entries'
                 '{list="blocklist",family="ipv4",owner="feed"}') == "2"
    assert value(text, 'vos_fastpath_list_entries'
                 '{list="blocklist",family="ipv6",owner="feed"}') == "1"
    assert value(text, 'vos_fastpath_list_keys'
                 '{list="blocklist",family="ipv4"}') == "2"
    assert value(text, 'vos_fastpath_list_keys'
                 '{list="allowlist",family="ipv4"}') == "0"
    assert float(value(
        text, "vos_fastpath_metrics_last_run_timestamp_seconds")) >= \
        float(value(before, "vos_fastpath_metrics_last_run_timestamp_seconds"))
    # The saved list was summed up once, into the cache.
    assert str(metrics.state / "lists" / "blocklist.list") in \
        json.loads(metrics.cache.read_text())["files"]

    ip("link", "set", "dev", attached, "xdpdrv", "off")
    assert value(metrics.run(), 'vos_fastpath_attached{interface="%s"}'
                 % attached) == "0"


def test_a_first_release_host_gets_its_counters_and_a_note(
        attached: str, pin_dir: Path, tmp_path: Path) -> None:
    for name in set(_abi.MAPS) - set(_abi.MAPS_0_1):
        (pin_dir / name).unlink()
    metrics = Metrics(tmp_path, pin_dir, attached)
    send(attached + "p", [frame(b"junk!")] * 2)

    text = metrics.run()

    assert text.startswith("# note: %s has no stats_ext, scanner_sigs, "
                           "scanner_hits, bans_v2, pardons or rate_limited "
                           "map, so " % pin_dir)
    assert value(text, 'vos_fastpath_packets_total{reason="malformed"}') == \
        "2"
    assert value(text, 'vos_fastpath_attached{interface="%s"}'
                 % attached) == "1"
    for left_out in ("vos_fastpath_rate_limited", "vos_fastpath_bans",
                     "vos_fastpath_pardons", 'reason="banned"'):
        assert left_out not in text

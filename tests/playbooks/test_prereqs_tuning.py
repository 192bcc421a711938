"""The prereqs and tuning roles run for real against this host.

The prereqs runs see a copy of /etc mounted on /etc in a mount namespace
of their own, so the host's /etc/fstab is never written. The busy polling
sysctls are saved before each tuning test and put back afterwards; the
tuning role writes its sysctl file and drop-ins under the test's directory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.playbooks.playbook_run import (
    PLAYBOOK_BIN,
    REPO,
    PlaybookResult,
    parse_recap,
    run_playbook,
    write_inventory,
)
from tests.sip_process import SipProcess, online, sip_processes

SYSCTLS = {name: Path("/proc/sys/net/core") / name
           for name in ("busy_poll", "busy_read")}
BPFFS_ENTRY = re.compile(r"^\s*[^#\s]\S*\s+/sys/fs/bpf/?\s", re.M)

PREREQS_PLAY = [{
    "name": "Prepare the host",
    "hosts": "sip_edges",
    "gather_facts": False,
    "tasks": [{"name": "Run the prereqs role",
               "ansible.builtin.include_role": {
                   "name": "vos.fastpath.prereqs"}}],
}]


@pytest.fixture
def host_state(root_required: None) -> Iterator[None]:
    """Put the busy polling sysctls back afterwards."""
    sysctls = {name: path.read_text() for name, path in SYSCTLS.items()}
    try:
        yield
    finally:
        for name, value in sysctls.items():
            SYSCTLS[name].write_text(value)


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    return write_inventory(tmp_path / "inventory.yml", {"edge1": {}})


@pytest.fixture
def private_etc(root_required: None, tmp_path: Path) -> Iterator[Path]:
    """A copy of /etc that the prereqs runs see as /etc (see run_prereqs):
    the host's /etc/fstab is never written, whatever else runs meanwhile.
    Removed afterwards."""
    etc = tmp_path / "etc"
    subprocess.run(["cp", "-a", "/etc", str(etc)], check=True)
    fstab = etc / "fstab"
    text = fstab.read_text() if fstab.exists() else ""
    fstab.write_text("".join(line for line in text.splitlines(keepends=True)
                             if not BPFFS_ENTRY.match(line)))
    try:
        yield etc
    finally:
        shutil.rmtree(etc, ignore_errors=True)


def run_prereqs(tmp_path: Path, inventory: Path, etc: Path, *,
                extra_vars: dict | None = None, check: bool = False,
                before: str = "", after: str = "",
                runs: int = 1) -> PlaybookResult:
    """Run the prereqs role `runs` times in a mount namespace of its own
    where etc is mounted on /etc, between the shell commands `before` and
    `after`."""
    play = tmp_path / "prereqs.yml"
    play.write_text(json.dumps(PREREQS_PLAY))
    argv = [str(PLAYBOOK_BIN), "-i", str(inventory), str(play)]
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]
    if check:
        argv.append("--check")
    script = ('mount --bind "$ETC" /etc || exit 90; %s; for i in %s; do '
              '"$@" || exit $?; done; %s' % (before or ":",
                                             " ".join(["x"] * runs),
                                             after or ":"))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ETC=str(etc))
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--",
         "sh", "-c", script, "sh", *argv],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
        check=False)
    output = proc.stdout + proc.stderr
    return PlaybookResult(proc.returncode, output, parse_recap(output))


def test_prereqs_twice_then_nothing_changes(
        tmp_path: Path, inventory: Path, private_etc: Path) -> None:
    fstab = private_etc / "fstab"
    before = fstab.read_text()
    extra = {"prereqs_build_tools": True}

    checked = run_prereqs(tmp_path, inventory, private_etc,
                          extra_vars=extra, check=True)
    assert checked.rc == 0, checked.output
    assert checked.changed("edge1") == 1, checked.output
    assert fstab.read_text() == before

    first = run_prereqs(tmp_path, inventory, private_etc, extra_vars=extra)
    assert first.rc == 0, first.output
    assert first.changed("edge1") == 1, first.output
    assert fstab.read_text() == before + "bpffs /sys/fs/bpf bpf defaults 0 0\n"

    second = run_prereqs(tmp_path, inventory, private_etc, extra_vars=extra)
    assert second.rc == 0, second.output
    assert second.changed("edge1") == 0, second.output
    assert second.recap["edge1"]["failed"] == 0
    assert fstab.read_text() == before + "bpffs /sys/fs/bpf bpf defaults 0 0\n"


def test_an_existing_bpffs_entry_is_kept(
        tmp_path: Path, inventory: Path, private_etc: Path) -> None:
    fstab = private_etc / "fstab"
    fstab.write_text(fstab.read_text()
                     + "none /sys/fs/bpf bpf rw,mode=700 0 0\n")
    before = fstab.read_text()
    result = run_prereqs(tmp_path, inventory, private_etc)
    assert result.rc == 0, result.output
    assert result.changed("edge1") == 0, result.output
    assert fstab.read_text() == before


def test_a_host_that_is_not_ready_is_stopped_with_the_remedy(
        tmp_path: Path, inventory: Path, private_etc: Path) -> None:
    missing = tmp_path / "no-btf"
    result = run_prereqs(tmp_path, inventory, private_etc,
                         extra_vars={"prereqs_btf_path": str(missing)})
    assert result.rc != 0
    assert result.recap["edge1"]["failed"] == 1
    assert "edge1 cannot run vos.fastpath until each problem is fixed" \
        in result.output
    assert ("[btf] The kernel has no BTF at %s: boot a kernel built with "
            "CONFIG_DEBUG_INFO_BTF=y" % missing) in result.output

    shown = run_prereqs(tmp_path, inventory, private_etc,
                        extra_vars={"prereqs_btf_path": str(missing),
                                    "prereqs_fail_on_problems": False})
    assert shown.rc == 0, shown.output
    assert "edge1 is not ready for vos.fastpath yet" in shown.output
    assert "CONFIG_DEBUG_INFO_BTF=y" in shown.output


def test_bpffs_is_mounted_when_it_is_not(
        tmp_path: Path, inventory: Path, private_etc: Path) -> None:
    """/sys/fs/bpf is unmounted in the namespace only: the role mounts it,
    and a second run finds it mounted."""
    result = run_prereqs(
        tmp_path, inventory, private_etc, runs=2,
        extra_vars={"prereqs_bpffs_fstab": False},
        before='umount -l /sys/fs/bpf || exit 91; '
               'grep -q " /sys/fs/bpf bpf " /proc/mounts && exit 92',
        after='grep -q " /sys/fs/bpf bpf " /proc/mounts || exit 93')
    assert result.rc == 0, result.output
    runs = result.output.split("PLAY RECAP")
    assert len(runs) == 3, result.output
    mounted = re.search(r"TASK \[vos.fastpath.prereqs : Mount bpffs on "
                        r"/sys/fs/bpf now and at boot\] \*+\n(\w+):",
                        runs[0])
    assert mounted and mounted.group(1) == "changed", runs[0]
    assert parse_recap(runs[0] + "PLAY RECAP" + runs[1])["edge1"][
        "changed"] == 1, runs[0]
    assert result.changed("edge1") == 0, runs[1]
    assert (private_etc / "fstab").read_text().count("/sys/fs/bpf") == 0
    # The host's own mount was never touched.
    assert os.path.ismount("/sys/fs/bpf")


@pytest.fixture
def sip_server(root_required: None
               ) -> Iterator[tuple[SipProcess, SipProcess]]:
    """A process named kamailio, and a python3 whose command line says
    kamailio."""
    with sip_processes(("kamailio", "--name=kamailio"),
                       ("", "kamailio")) as (server, decoy):
        assert server.comm() == "kamailio"
        yield server, decoy


def sysctl_values() -> dict[str, int]:
    return {name: int(path.read_text()) for name, path in SYSCTLS.items()}


def test_tuning_pins_the_sip_server_and_sets_busy_polling(
        host_state: None, sip_server: tuple[SipProcess, SipProcess],
        inventory: Path, tmp_path: Path) -> None:
    server, decoy = sip_server
    ncpus = len(os.sched_getaffinity(0))
    everything = frozenset(online())
    expected = frozenset(range(1, ncpus)) if ncpus >= 2 else frozenset({0})
    cpus_text = {1: "0", 2: "1"}.get(ncpus, "1-%d" % (ncpus - 1))
    for path in SYSCTLS.values():
        path.write_text("0\n")
    systemd = tmp_path / "systemd"
    systemd.mkdir()
    (systemd / "kamailio.service").write_text(
        "[Service]\nExecStart=/bin/true\n")
    sysctl_file = tmp_path / "60-vos-fastpath.conf"
    dropin = systemd / "kamailio.service.d" / "60-vos-fastpath-cpus.conf"
    extra = {"tuning_sysctl_file": str(sysctl_file),
             "tuning_systemd_dir": str(systemd)}

    checked = run_playbook("tuning.yml", inventory, extra_vars=extra,
                           check=True)
    assert checked.rc == 0, checked.output
    assert checked.changed("edge1") >= 1, checked.output
    assert sysctl_values() == {"busy_poll": 0, "busy_read": 0}
    assert server.cpu_sets() == {everything}
    assert not sysctl_file.exists() and not dropin.exists()

    first = run_playbook("tuning.yml", inventory, extra_vars=extra)
    assert first.rc == 0, first.output
    assert first.changed("edge1") >= 4, first.output
    assert sysctl_values() == {"busy_poll": 50, "busy_read": 50}
    assert sysctl_file.read_text() == (
        "# Managed by vos.fastpath.sysctls: a change here is undone by the "
        "next run.\n"
        "net.core.busy_poll = 50\nnet.core.busy_read = 50\n")
    assert server.cpu_sets() == {expected}
    assert decoy.cpu_sets() == {everything}
    assert dropin.read_text().endswith(
        "[Service]\nCPUAffinity=%s\n" % cpus_text)
    assert not (systemd / "opensips.service.d").exists()

    second = run_playbook("tuning.yml", inventory, extra_vars=extra)
    assert second.rc == 0, second.output
    assert second.changed("edge1") == 0, second.output
    assert server.cpu_sets() == {expected}


def test_tuning_refuses_offline_cpus(host_state: None,
                                     sip_server: tuple[SipProcess,
                                                       SipProcess],
                                     inventory: Path,
                                     tmp_path: Path) -> None:
    server = sip_server[0]
    result = run_playbook("tuning.yml", inventory, extra_vars={
        "tuning_sysctl_file": str(tmp_path / "sysctl.conf"),
        "tuning_systemd_dir": str(tmp_path),
        "tuning_cpus": "0-4095"})
    assert result.rc != 0
    assert "not online on this host, which has CPUs" in result.output
    assert server.cpu_sets() == {frozenset(online())}

"""The fastpath role's metrics timer under a real systemd: a podman
container of the molecule image, systemd as init, with a veth of its own
and the program attached on it. Ansible runs inside the container on its
local connection (the checkout mounted read-only at the same path), so the
role sees a systemd host, as on a real edge, at the speed of a local run.

The role installs the command and the timer, systemd runs it every second
and the textfile appears and is refreshed; a second run and check mode
change nothing; the teardown removes the timer, the service and the
textfile. Six playbook runs of about 10 s each in the container, and
three short local ones that the role refuses: about a minute and a half
on a quiet machine, three minutes under a heavy load.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import OBJECT, REPO
from tests.playbooks.playbook_run import (
    PlaybookResult,
    parse_recap,
    run_playbook,
    write_inventory,
)

IMAGE = "localhost/vos-fastpath-base"
IFNAME = "fpm0"
TEXTFILE = "/var/lib/prometheus/node-exporter/vos_fastpath.prom"
UNIT = "/etc/systemd/system/vos-fastpath-metrics"
COMMAND = "/usr/local/lib/vos-fastpath/vos-fastpath-metrics"
CONFIG = "/var/lib/vos-fastpath/metrics.json"
LAST_RUN = re.compile(
    r"^vos_fastpath_metrics_last_run_timestamp_seconds (\S+)$", re.M)

APPLY = """
- name: Attach the program and install the metrics timer
  hosts: localhost
  gather_facts: true
  gather_subset: [min]
  vars:
    fastpath_interfaces: [%(ifname)s]
    fastpath_metrics_interval: 1s
  tasks:
    - name: Attach the program
      vos.fastpath.xdp_attach:
        interface: %(ifname)s
        object: %(object)s
        sip_ports: [5060]
    - name: Install the metrics timer
      ansible.builtin.include_role:
        name: vos.fastpath.fastpath
        tasks_from: metrics
""" % {"ifname": IFNAME, "object": OBJECT}

REMOVE = """
- name: Tear down
  hosts: localhost
  gather_facts: true
  gather_subset: [min]
  vars:
    fastpath_interfaces: [%(ifname)s]
  tasks:
    - name: Remove the program, the boot service and the metrics timer
      ansible.builtin.include_role:
        name: vos.fastpath.fastpath
        tasks_from: remove
""" % {"ifname": IFNAME}


class SystemdHost:
    def __init__(self, name: str) -> None:
        self.name = name

    def sh(self, script: str, check: bool = True,
           stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["podman", "exec", "-i", self.name, "sh", "-c", script],
            input=stdin, capture_output=True, text=True, timeout=300,
            check=check)

    def play(self, playbook: str, check: bool = False) -> PlaybookResult:
        """ansible-playbook of this checkout, inside the container."""
        self.sh("cat > /root/play.yml", stdin=playbook)
        argv = [str(REPO / ".venv" / "bin" / "ansible-playbook"),
                "-c", "local", "-i", "localhost,",
                "-e", "ansible_python_interpreter=/usr/bin/python3",
                "/root/play.yml"] + (["--check"] if check else [])
        proc = subprocess.run(
            ["podman", "exec", "-w", "/root",
             "-e", "ANSIBLE_CONFIG=%s" % (REPO / "ansible.cfg"),
             "-e", "ANSIBLE_NOCOLOR=1", self.name, *argv],
            capture_output=True, text=True, timeout=600, check=False)
        output = proc.stdout + proc.stderr
        return PlaybookResult(proc.returncode, output, parse_recap(output))

    def exists(self, path: str) -> bool:
        return self.sh("test -e %s" % path, check=False).returncode == 0

    def systemctl(self, *args: str) -> str:
        return self.sh("systemctl %s" % " ".join(args),
                       check=False).stdout.strip()

    def last_run(self) -> float | None:
        found = LAST_RUN.search(self.sh("cat %s" % TEXTFILE,
                                        check=False).stdout)
        return float(found.group(1)) if found else None

    def wait_for_run_after(self, since: float, timeout: float = 15
                           ) -> float:
        """The textfile's run time once it is later than since."""
        deadline = time.monotonic() + timeout
        while True:
            last = self.last_run()
            if last is not None and last > since:
                return last
            assert time.monotonic() < deadline, \
                "the textfile was not written after %s" % since
            time.sleep(0.2)


def podman_run(name: str) -> None:
    """The container: the checkout and the Python of its .venv at the
    same paths, read-only; no network (its veth is its own)."""
    if subprocess.run(["podman", "image", "exists", IMAGE],
                      check=False).returncode != 0:
        pytest.fail("%s is missing: run scripts/setup.sh, which builds it"
                    % IMAGE)
    mounts = ["-v", "%s:%s:ro" % (REPO, REPO)]
    if not sys.base_prefix.startswith("/usr"):
        mounts += ["-v", "%s:%s:ro" % (sys.base_prefix, sys.base_prefix)]
    subprocess.run(["podman", "run", "--detach", "--name", name,
                    "--network", "none", "--privileged", "--systemd=always",
                    *mounts, IMAGE, "/lib/systemd/systemd"],
                   check=True, capture_output=True)


@pytest.fixture(scope="module")
def host(root_required: None) -> Iterator[SystemdHost]:
    subprocess.run(["make", "-s", "-C", str(REPO)], check=True)
    name = "fp-metrics-timer-%d" % os.getpid()
    subprocess.run(["podman", "rm", "-f", name], capture_output=True,
                   check=False)
    podman_run(name)
    try:
        host = SystemdHost(name)
        deadline = time.monotonic() + 60
        while host.systemctl("is-system-running") not in ("running",
                                                          "degraded"):
            assert time.monotonic() < deadline, "systemd did not boot"
            time.sleep(0.5)
        host.sh("mount -t bpf bpf /sys/fs/bpf"
                " && ip link add %(i)s type veth peer name %(i)sp"
                " && ip link set %(i)s up && ip link set %(i)sp up"
                # What a deploy leaves: the state directory, root's alone.
                " && mkdir -m 0700 /var/lib/vos-fastpath" % {"i": IFNAME})
        yield host
    finally:
        subprocess.run(["podman", "rm", "-f", name], capture_output=True,
                       check=False)


def assert_ok(result: PlaybookResult) -> None:
    assert result.rc == 0, result.output[-6000:]


def test_check_mode_on_a_new_host_installs_nothing(host: SystemdHost) -> None:
    result = host.play(APPLY, check=True)
    assert_ok(result)
    assert result.total("changed") > 0
    for path in (UNIT + ".timer", UNIT + ".service", COMMAND, CONFIG,
                 TEXTFILE):
        assert not host.exists(path), path


def test_the_timer_runs_the_command_and_refreshes_the_textfile(
        host: SystemdHost) -> None:
    started = time.time()
    assert_ok(host.play(APPLY))

    assert host.systemctl("is-enabled", "vos-fastpath-metrics.timer") == \
        "enabled"
    assert host.systemctl("is-active", "vos-fastpath-metrics.timer") == \
        "active"
    first = host.wait_for_run_after(started)
    # Refreshed every second (interval 1s): a later run rewrites it.
    host.wait_for_run_after(first)
    text = host.sh("cat %s" % TEXTFILE).stdout
    assert 'vos_fastpath_attached{interface="%s"} 1\n' % IFNAME in text
    assert "vos_fastpath_metrics_interval_seconds 1\n" in text
    assert 'vos_fastpath_packets_total{reason="passed"} ' in text
    # node_exporter runs as its own user: the file is readable by all;
    # the command and its configuration are root's.
    assert host.sh("stat -c '%%a %%U' %s %s %s" % (
        TEXTFILE, COMMAND, CONFIG)).stdout.split("\n")[:3] == [
        "644 root", "755 root", "600 root"]
    config = json.loads(host.sh("cat %s" % CONFIG).stdout)
    assert config["interfaces"] == [IFNAME]
    assert config["textfile"] == TEXTFILE
    assert host.systemctl("show", "-p", "Result",
                          "vos-fastpath-metrics.service") == \
        "Result=success"


def test_a_second_run_and_check_mode_change_nothing(
        host: SystemdHost) -> None:
    again = host.play(APPLY)
    assert_ok(again)
    assert again.total("changed") == 0, again.output[-6000:]
    checked = host.play(APPLY, check=True)
    assert_ok(checked)
    assert checked.total("changed") == 0, checked.output[-6000:]


def test_teardown_removes_the_timer_the_service_and_the_textfile(
        host: SystemdHost) -> None:
    assert host.exists(TEXTFILE)
    assert_ok(host.play(REMOVE))

    for path in (UNIT + ".timer", UNIT + ".service", COMMAND, CONFIG,
                 TEXTFILE):
        assert not host.exists(path), path
    assert host.systemctl("is-active", "vos-fastpath-metrics.timer") == \
        "inactive"
    assert "vos-fastpath-metrics" not in host.systemctl(
        "list-unit-files", "--no-legend", "vos-fastpath-metrics*")
    # Nothing writes the textfile again.
    time.sleep(2)
    assert not host.exists(TEXTFILE)

    again = host.play(REMOVE)
    assert_ok(again)
    assert again.total("changed") == 0, again.output[-6000:]


# Refusals, on this machine (no container needed: nothing is installed)


METRICS_ONLY = """
- name: Install the metrics timer
  hosts: sip_edges
  gather_facts: true
  gather_subset: [min]
  tasks:
    - name: Install the metrics timer
      ansible.builtin.include_role:
        name: vos.fastpath.fastpath
        tasks_from: metrics
"""


@pytest.mark.parametrize("host_vars, message", [
    ({}, "The state directory %(state)s does not exist on edge1: deploy it "
         "with the role's main entry point (deploy.yml) first"),
    ({"fastpath_metrics_interval": "1d"},
     "Give fastpath_metrics_interval as a whole number of seconds, minutes "
     "or hours (15s, 1m, 1h)"),
    ({"fastpath_metrics_textfile": "/tmp/vos_fastpath.txt"},
     "fastpath_metrics_textfile as an absolute path ending in .prom"),
])
def test_the_role_refuses_what_the_timer_cannot_use(
        root_required: None, tmp_path: Path, host_vars: dict,
        message: str) -> None:
    state = tmp_path / "state"
    if host_vars:
        state.mkdir(mode=0o700)
    book = tmp_path / "metrics.yml"
    book.write_text(METRICS_ONLY)
    inventory = write_inventory(tmp_path / "inventory.json", {
        "edge1": dict({"fastpath_interfaces": ["lo"],
                       "fastpath_state_dir": str(state),
                       "fastpath_lib_dir": str(tmp_path / "lib")},
                      **host_vars)})

    result = run_playbook(book, inventory)

    assert result.rc != 0
    assert result.recap["edge1"]["failed"] == 1
    assert message % {"state": state} in " ".join(result.output.split())
    assert not (tmp_path / "lib").exists()

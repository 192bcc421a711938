# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""vos-fastpath-boot: attach the program and restore the lists at boot.

Private to this collection. The fastpath role installs this package's
module_utils on each host with a small `vos-fastpath-boot` script, and a
systemd unit that runs it at boot. It reads the boot configuration the
role writes (boot.json in the state directory), then, with the very code
of the xdp_attach module, attaches the program on every interface with
its SIP ports, settings, rate limits and scanner signatures, and puts
back each list that bpf_map_entry saved under the state directory
(`lists` names them; _defaults.saved_list says where each is). It needs
Python 3, ip and bpftool: no Ansible.

Running it again changes nothing: an attached program is left alone and
a list is restored only into empty maps.

It runs as root at boot, so it trusts nothing that another user could
have changed: boot.json, its directory and the state directory must be
root's alone, and the pinned maps it restores into are checked against
the contract (_pins).
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import argparse
import json
import os
import stat
import sys
import time
from typing import IO

from . import (_abi, _attach_run, _defaults, _facts, _host, _lists, _lock,
               _pins, _snapshot)
from ._errors import FastpathError
from ._runner import LocalTools, Runner

DEFAULT_CONFIG = os.path.join(_defaults.STATE_DIR, "boot.json")
BPFFS = "/sys/fs/bpf"
INTERFACE_WAIT_S = 30


class Task(LocalTools):
    """What _attach_run needs of an AnsibleModule, without Ansible."""

    check_mode = False
    _diff = False

    def __init__(self, params: dict, out: IO[str] = sys.stdout) -> None:
        self.params = params
        self.out = out

    def warn(self, msg: str) -> None:
        say(self.out, "warning: %s" % msg)


def read_config(path: str) -> dict:
    """boot.json, once it and its directory are found to be root's alone
    (whoever may write it chooses what root attaches and restores)."""
    try:
        with open(path, "rb", opener=_open_nofollow) as f:
            check_config_file(path, os.fstat(f.fileno()))
            config = json.loads(f.read().decode("utf-8"))
    except (IOError, OSError) as e:
        raise FastpathError("Could not read %s (%s): deploy with the "
                            "vos.fastpath.fastpath role first."
                            % (path, e.strerror))
    except ValueError as e:
        raise FastpathError("%s is not valid JSON (%s): deploy again to "
                            "rewrite it." % (path, e))
    for key in ("object", "pin_dir", "interfaces"):
        if not isinstance(config, dict) or key not in config:
            raise FastpathError("%s has no %r: deploy again to rewrite it."
                                % (path, key))
    return config


def _open_nofollow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW)


def check_config_file(path: str, st: os.stat_result) -> None:
    """Refuse a configuration that anyone but root may change: its
    directory must be private (_pins) and the file root's alone."""
    _pins.check_private_dir(os.path.dirname(os.path.abspath(path)),
                            _pins.STATE_DIR)
    if st.st_uid not in (0, os.geteuid()) or \
            st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise FastpathError(
            "The boot configuration %s is owned by uid %d and mode %04o: "
            "check what it holds, then deploy again to rewrite it; it must "
            "belong to root and be writable only by it."
            % (path, st.st_uid, stat.S_IMODE(st.st_mode)))


def check_state_dir(state_dir: str, saved: str) -> None:
    """The state directory, and the directory of the saved list, when they
    exist, are root's alone: the boot command restores what they hold."""
    for directory in (state_dir, os.path.dirname(saved)):
        if os.path.lexists(directory):
            _pins.check_private_dir(directory, _pins.STATE_DIR)


def mount_bpffs(task: Task, pin_dir: str) -> bool:
    if _facts.bpffs_mount(pin_dir) is not None:
        return False
    rc, _out, err = Runner(task).try_run(["mount", "-t", "bpf", "bpf", BPFFS])
    if rc != 0 or _facts.bpffs_mount(pin_dir) is None:
        raise FastpathError("Could not mount bpffs on %s (%s): mount it, or "
                            "set fastpath_pin_dir to a path on bpffs."
                            % (BPFFS, err.strip() or "not on bpffs"))
    return True


def wait_for_interface(name: str, timeout: float) -> bool:
    """Interfaces can appear late at boot (udev renames, VLANs)."""
    deadline = time.monotonic() + timeout
    while not os.path.exists("/sys/class/net/%s" % name):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)
    return True


def attach_params(config: dict, name: str) -> dict:
    """xdp_attach's parameters; what the configuration leaves out takes
    the module's defaults (_defaults). limits and scanner_signatures are
    checked by the attach code (_limits), as the module's are."""
    settings = dict(_defaults.SETTINGS)
    settings.update(config.get("settings") or {})
    return dict(interface=name, object=config["object"],
                program=config.get("program", _abi.PROGRAM_NAME),
                mode=config.get("mode", _defaults.MODE),
                pin_dir=config["pin_dir"], state="present",
                sip_ports=config.get("sip_ports", list(_defaults.SIP_PORTS)),
                settings=settings, limits=config.get("limits"),
                scanner_signatures=config.get(
                    "scanner_signatures",
                    list(_defaults.SCANNER_SIGNATURES)),
                force=False, move_to_link=False, keep_maps=True,
                lock_timeout=config.get("lock_timeout",
                                        _attach_run.LOCK_TIMEOUT))


# How each attach method reads in the boot command's line.
METHOD_WORDS = {"link": "BPF link", "netlink": "netlink"}


def attach(config: dict, name: str, out: IO[str], wait: int) -> str:
    """Attach on one interface, under its lock (_attach_run takes it, as
    for the module), through a new BPF link after a reboot; one line
    saying what happened."""
    if not wait_for_interface(name, wait):
        raise FastpathError("Interface %s did not appear within %d s: check "
                            "fastpath_interfaces." % (name, wait))
    task = Task(attach_params(config, name), out)
    result = {}
    try:
        _attach_run.run(task, _host.Host(task), result)
    except FastpathError as e:
        detail = e.stderr if e.rc is not None else ""
        raise FastpathError("%s: %s%s" % (name, e.msg,
                                          "\n" + detail if detail else ""))
    return "%s: %s (%s mode, %s)" % (
        name, "attached" if result["changed"] else "already attached",
        result.get("mode"), METHOD_WORDS.get(result.get("attach_method"),
                                             "not attached"))


def restore_list(config: dict, list_name: str) -> str:
    """One line saying what was restored into one list."""
    state_dir = config.get("state_dir", _defaults.STATE_DIR)
    path = _defaults.saved_list(state_dir, list_name)
    key = _lock.list_key(config["pin_dir"], list_name)
    try:
        check_state_dir(state_dir, path)
        with _lock.hold(key, config.get("lock_timeout",
                                        _lock.DEFAULT_TIMEOUT),
                        "the boot command restoring the %s" % list_name):
            tries = _pins.open_list_maps(config["pin_dir"], list_name)
            try:
                # Checked whole (parse) before anything is written.
                ledger = _snapshot.load(path, list_name, config["pin_dir"])
                report = None if ledger is None else _snapshot.restore(
                    ledger, tries, _lists.boot_ns())
            finally:
                for trie in tries:
                    trie.close()
    except FastpathError as e:
        raise FastpathError("%s: %s" % (list_name, e))
    if report is None:
        return "%s: nothing saved in %s" % (list_name, path)
    if report["kept"]:
        return "%s: %d live entries kept, nothing to restore" % (
            list_name, report["kept"])
    return "%s: %d entries restored, %d expired while down" % (
        list_name, report["restored"], report["expired"])


def say(out: IO[str], line: str) -> None:
    out.write(line + "\n")
    out.flush()


def run(config_path: str, out: IO[str] | None = None,
        err: IO[str] | None = None, wait: int = INTERFACE_WAIT_S) -> int:
    """Returns the exit status: 0 when everything is in place. Each
    interface and each list is done on its own: one failure does not keep
    the others from coming back."""
    out, err = out or sys.stdout, err or sys.stderr
    config = read_config(config_path)
    task = Task({}, out)
    if mount_bpffs(task, config["pin_dir"]):
        say(out, "mounted bpffs on %s" % BPFFS)
    failures = 0
    steps = [(attach, (config, name, out, wait))
             for name in config["interfaces"]]
    steps += [(restore_list, (config, list_name))
              for list_name in sorted(config.get("lists") or ())]
    for step, args in steps:
        try:
            say(out, step(*args))
        except FastpathError as e:
            say(err, "error: %s" % e)
            failures += 1
        except OSError as e:
            say(err, "error: %s: run as root, with bpffs mounted." % e)
            failures += 1
    return 1 if failures else 0


def main(argv: list[str] | None = None, out: IO[str] | None = None,
         err: IO[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vos-fastpath-boot",
        description="Attach the vos.fastpath XDP program and restore its "
        "block and allow lists, as the last deploy left them.")
    parser.add_argument("--config", default=DEFAULT_CONFIG,
                        help="boot configuration (default: %(default)s)")
    parser.add_argument("--wait", type=int, default=INTERFACE_WAIT_S,
                        help="seconds to wait for each interface")
    args = parser.parse_args(argv)
    out, err = out or sys.stdout, err or sys.stderr
    try:
        return run(args.config, out=out, err=err, wait=args.wait)
    except FastpathError as e:
        say(err, "error: %s" % e)
    except OSError as e:
        say(err, "error: %s: run as root." % e)
    return 1

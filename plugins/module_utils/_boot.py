# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""vos-fastpath-boot: attach the program and restore the lists at boot.

Private to this collection. The fastpath role installs this package's
module_utils on each host with a small `vos-fastpath-boot` script, and a
systemd unit that runs it at boot. It reads the boot configuration the
role writes (boot.json in the state directory), then, with the very code
of the xdp_attach module, attaches the program on every interface, and
puts back each list that bpf_map_entry saved. It needs Python 3, ip and
bpftool: no Ansible.

Running it again changes nothing: an attached program is left alone and
a list is restored only into empty maps.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

from . import _abi, _attach, _attach_run, _facts, _lists, _snapshot

DEFAULT_CONFIG = "/var/lib/vos-fastpath/boot.json"
BPFFS = "/sys/fs/bpf"
INTERFACE_WAIT_S = 30


class BootError(Exception):
    """One sentence: what is wrong and what to do."""


class Task:
    """What _attach_run needs of an AnsibleModule, without Ansible."""

    check_mode = False
    _diff = False

    def __init__(self, params, out=sys.stdout):
        self.params = params
        self.out = out

    def warn(self, msg):
        say(self.out, "warning: %s" % msg)

    def get_bin_path(self, name, required=False, opt_dirs=None):
        path = shutil.which(name, path=os.pathsep.join(
            list(opt_dirs or []) + os.environ.get("PATH", "").split(
                os.pathsep)))
        if path is None and required:
            raise _attach.AttachError(
                "%s was not found: install it (see the prereqs role)."
                % name)
        return path

    def run_command(self, argv, environ_update=None, **_kwargs):
        env = dict(os.environ, **(environ_update or {}))
        proc = subprocess.run(argv, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE,
                              universal_newlines=True, check=False)
        return proc.returncode, proc.stdout, proc.stderr


def read_config(path):
    try:
        with open(path) as f:
            config = json.load(f)
    except (IOError, OSError) as e:
        raise BootError("Could not read %s (%s): deploy with the "
                        "vos.fastpath.fastpath role first."
                        % (path, e.strerror))
    except ValueError as e:
        raise BootError("%s is not valid JSON (%s): deploy again to rewrite "
                        "it." % (path, e))
    for key in ("object", "pin_dir", "interfaces"):
        if not isinstance(config, dict) or key not in config:
            raise BootError("%s has no %r: deploy again to rewrite it."
                            % (path, key))
    return config


def mount_bpffs(task, pin_dir):
    if _facts.bpffs_mount(pin_dir) is not None:
        return False
    rc, _out, err = task.run_command(["mount", "-t", "bpf", "bpf", BPFFS])
    if rc != 0 or _facts.bpffs_mount(pin_dir) is None:
        raise BootError("Could not mount bpffs on %s (%s): mount it, or "
                        "set fastpath_pin_dir to a path on bpffs."
                        % (BPFFS, err.strip() or "not on bpffs"))
    return True


def wait_for_interface(name, timeout):
    """Interfaces can appear late at boot (udev renames, VLANs)."""
    deadline = time.monotonic() + timeout
    while not os.path.exists("/sys/class/net/%s" % name):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)
    return True


def attach_params(config, name):
    settings = dict(_attach.SETTINGS_DEFAULTS)
    settings.update(config.get("settings") or {})
    return dict(interface=name, object=config["object"],
                program=config.get("program", _abi.PROGRAM_NAME),
                mode=config.get("mode", "auto"),
                pin_dir=config["pin_dir"], state="present",
                sip_ports=config.get("sip_ports", [5060]),
                settings=settings, force=False, keep_maps=True)


def attach(config, name, out, wait):
    """Attach on one interface; one line saying what happened."""
    if not wait_for_interface(name, wait):
        raise BootError("Interface %s did not appear within %d s: check "
                        "fastpath_interfaces." % (name, wait))
    task = Task(attach_params(config, name), out)
    result = dict(changed=False)
    try:
        _attach_run.present(task, _attach.Host(task), result)
    except _attach.AttachError as e:
        detail = e.details().get("stderr", "")
        raise BootError("%s: %s%s" % (name, e.msg,
                                      "\n" + detail if detail else ""))
    return "%s: %s (%s mode)" % (
        name, "attached" if result["changed"] else "already attached",
        result.get("mode"))


def restore_list(config, list_name, path):
    """One line saying what was restored into one list."""
    try:
        tries = _lists.open_pair(config["pin_dir"], list_name)
    except _lists.ListError as e:
        raise BootError("%s: %s" % (list_name, e))
    try:
        report = _snapshot.restore(path, tries, _lists.boot_ns())
    except _snapshot.SnapshotError as e:
        raise BootError("%s: %s Deploy again, or remove the file, to save "
                        "the list anew." % (list_name, e))
    finally:
        for trie in tries:
            trie.close()
    if not report:
        return "%s: nothing saved in %s" % (list_name, path)
    restored = sum(r[0] for r in report.values())
    expired = sum(r[1] for r in report.values())
    kept = sum(r[2] for r in report.values())
    if kept:
        return "%s: %d live entries kept, nothing to restore" % (
            list_name, kept)
    return "%s: %d entries restored, %d expired while down" % (
        list_name, restored, expired)


def say(out, line):
    out.write(line + "\n")
    out.flush()


def run(config_path, out=None, err=None, wait=INTERFACE_WAIT_S):
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
    steps += [(restore_list, (config, list_name, path))
              for list_name, path in sorted(
                  (config.get("lists") or {}).items())]
    for step, args in steps:
        try:
            say(out, step(*args))
        except BootError as e:
            say(err, "error: %s" % e)
            failures += 1
        except OSError as e:
            say(err, "error: %s: run as root, with bpffs mounted." % e)
            failures += 1
    return 1 if failures else 0


def main(argv=None, out=None, err=None):
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
    except BootError as e:
        say(err, "error: %s" % e)
    except OSError as e:
        say(err, "error: %s: run as root." % e)
    return 1

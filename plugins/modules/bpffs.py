#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: bpffs
short_description: Mount bpffs now and at boot
version_added: 0.2.0
description:
  - Mounts bpffs on O(path) with C(mount -t bpf bpf <path>) when the mount
    table shows no bpffs right on O(path).
  - With O(fstab), adds C(bpffs <path> bpf defaults 0 0) to O(fstab_path)
    when no line of it mounts anything on O(path); an existing entry, of
    any file system and with any options, is left as it is.
  - All or nothing. When O(fstab_path) cannot be written, a bpffs mounted
    by this run is unmounted again.
author:
  - vos-fastpath contributors (@vos-fastpath)
options:
  path:
    description: The mount point, which must be a directory.
    type: path
    default: /sys/fs/bpf
  fstab:
    description: Also mount bpffs on O(path) at boot, through O(fstab_path).
    type: bool
    default: true
  fstab_path:
    description: The fstab file; another path is for tests.
    type: path
    default: /etc/fstab
  mounts:
    description: The mount table that is read; another path is for tests.
    type: path
    default: /proc/mounts
attributes:
  check_mode:
    description: Can run in check mode and report what would change.
    support: full
  diff_mode:
    description: Returns details on what changed.
    support: full
    details: Shows whether bpffs is mounted, and the fstab file, before
      and after.
  platform:
    description: Linux hosts.
    support: full
    platforms: linux
notes:
  - Needs root (CAP_SYS_ADMIN) to mount, and C(mount) (util-linux).
  - In a mount namespace of its own (a container), the mount is seen in
    that namespace only.
seealso:
  - module: vos.fastpath.bpf_facts
"""

EXAMPLES = r"""
- name: Mount bpffs on /sys/fs/bpf now and at boot
  vos.fastpath.bpffs:

- name: Mount it now only
  vos.fastpath.bpffs:
    fstab: false
"""

RETURN = r"""
path:
  description: O(path), normalised.
  returned: success
  type: str
  sample: /sys/fs/bpf
mounted:
  description: Whether this run mounted bpffs (in check mode, would mount
    it); V(false) when it was mounted already.
  returned: success
  type: bool
  sample: true
fstab_changed:
  description: Whether this run added the bpffs line to O(fstab_path) (in
    check mode, would add it).
  returned: success
  type: bool
  sample: false
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vos.fastpath.plugins.module_utils import (
    _bpffs, _files)
from ansible_collections.vos.fastpath.plugins.module_utils._errors import (
    FastpathError)
from ansible_collections.vos.fastpath.plugins.module_utils._runner import (
    Runner)


def build_module():
    return AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", default=_bpffs.DEFAULT_PATH),
            fstab=dict(type="bool", default=True),
            fstab_path=dict(type="path", default=_bpffs.FSTAB),
            mounts=dict(type="path", default=_bpffs.MOUNTS),
        ),
        supports_check_mode=True,
    )


def mount_text(path, mounted):
    return "%s: %s\n" % (path, "bpffs" if mounted else "not bpffs")


def manage(module, result):
    """Read, plan, then act outside check mode; fills result as it goes."""
    params = module.params
    path = os.path.normpath(params["path"])
    fstab_path = params["fstab_path"]
    result["path"] = path
    _bpffs.check_mountpoint(path)
    must_mount = not _bpffs.is_mounted(path, params["mounts"])
    old_fstab = new_fstab = None
    if params["fstab"]:
        old_fstab = _bpffs.read_fstab(fstab_path)
        if not _bpffs.has_entry(old_fstab, path):
            new_fstab = _bpffs.with_entry(old_fstab, path)

    if not module.check_mode:
        runner = Runner(module)
        if must_mount:
            _bpffs.mount(runner, path)
        if new_fstab is not None:
            write_fstab(module, runner, fstab_path, new_fstab,
                        path if must_mount else None)

    result.update(changed=must_mount or new_fstab is not None,
                  mounted=must_mount, fstab_changed=new_fstab is not None)
    if module._diff:
        result["diff"] = [dict(before_header="mounts", after_header="mounts",
                               before=mount_text(path, not must_mount),
                               after=mount_text(path, True))]
        if old_fstab is not None:
            result["diff"].append(dict(
                before_header=fstab_path, after_header=fstab_path,
                before=old_fstab, after=new_fstab or old_fstab))


def write_fstab(module, runner, fstab_path, text, mounted_now):
    """Write fstab; when that fails, unmount what this run mounted."""
    try:
        _files.write_atomically(fstab_path, text.encode(),
                                module.atomic_move)
    except OSError as e:
        undone = mounted_now is None or _bpffs.umount(runner, mounted_now)
        raise FastpathError(
            "Could not write %s (%s): check that its directory exists and "
            "is writable; %s" % (
                fstab_path, e.strerror or e,
                "nothing was changed." if undone else
                "bpffs stays mounted on %s." % mounted_now))


def main():
    module = build_module()
    result = dict(changed=False)
    try:
        manage(module, result)
    except FastpathError as e:
        module.fail_json(**dict(result, **e.fail_args()))
    module.exit_json(**result)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: sysctls
short_description: Set kernel sysctls now and persist them in a sysctl.d file
version_added: 0.2.0
description:
  - Sets each sysctl of O(values) in the running kernel by writing its file
    under C(/proc/sys), only when its live value differs. Values compare
    with their whitespace normalised, so C(4096 131072) matches the
    kernel's C(4096<TAB>131072).
  - Writes O(file) with every sysctl of O(values), atomically, only when
    its content differs, so that they are set again at boot.
  - All or nothing. Every name is checked against the kernel before
    anything is written; when the kernel refuses a value (or keeps another
    one), the sysctls already written this run are put back and O(file) is
    left as it was.
author:
  - vos-fastpath contributors (@vos-fastpath)
options:
  values:
    description:
      - The sysctls to set, by dotted name (for example
        V(net.core.busy_poll)), with their value.
      - A boolean is written as V(1) or V(0); a list as its items separated
        by spaces.
      - Every name must exist in the running kernel, whether or not
        O(reload) is set.
    type: dict
    required: true
  file:
    description:
      - The sysctl.d file that persists O(values), such as
        C(/etc/sysctl.d/60-vos-fastpath.conf). It holds these sysctls only,
        in the order of O(values), after a header line.
      - Its directory must exist.
      - Not written when unset.
    type: path
  reload:
    description:
      - Also set the live values now.
      - V(false) only writes O(file), for the next boot.
    type: bool
    default: true
attributes:
  check_mode:
    description: Can run in check mode and report what would change.
    support: full
  diff_mode:
    description: Returns details on what changed.
    support: full
    details: Shows the live values and the file before and after.
  platform:
    description: Linux hosts.
    support: full
    platforms: linux
notes:
  - Needs root. In a container or a network namespace of its own, the
    kernel shows only the sysctls of that namespace.
seealso:
  - module: ansible.posix.sysctl
"""

EXAMPLES = r"""
- name: Busy polling for the SIP sockets, now and at boot
  vos.fastpath.sysctls:
    values:
      net.core.busy_poll: 50
      net.core.busy_read: 50
    file: /etc/sysctl.d/60-vos-fastpath.conf

- name: Persist a larger backlog for the next boot only
  vos.fastpath.sysctls:
    values:
      net.core.netdev_max_backlog: 5000
    file: /etc/sysctl.d/61-backlog.conf
    reload: false
"""

RETURN = r"""
live_changed:
  description: The sysctls whose live value was (in check mode, would be)
    written, in the order of O(values).
  returned: success
  type: list
  elements: str
  sample: [net.core.busy_poll]
previous:
  description: The live value of each sysctl of RV(live_changed) before
    this run.
  returned: success
  type: dict
  sample: {net.core.busy_poll: "0"}
file_changed:
  description: Whether O(file) was (in check mode, would be) written.
  returned: success
  type: bool
  sample: true
undo_failed:
  description: After a refused write, the sysctls that could not be put
    back and must be set by hand.
  returned: failure
  type: list
  elements: str
  sample: []
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vos.fastpath.plugins.module_utils import (
    _files, _sysctl)
from ansible_collections.vos.fastpath.plugins.module_utils._errors import (
    FastpathError)


def build_module():
    return AnsibleModule(
        argument_spec=dict(
            values=dict(type="dict", required=True),
            file=dict(type="path"),
            reload=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )


def check_file_dir(path):
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
        raise FastpathError(
            "Cannot write %s: its directory %s does not exist or is not "
            "writable; create it, or run as root." % (path, directory))


def diffs(live, wanted, names, path, old_text, new_text):
    after = dict(live, **dict((n, wanted[n]) for n in names))
    shown = [dict(before_header=_sysctl.PROC_SYS,
                  after_header=_sysctl.PROC_SYS,
                  before=_sysctl.live_text(live),
                  after=_sysctl.live_text(after))]
    if path:
        shown.append(dict(before_header=path, after_header=path,
                          before=old_text or "", after=new_text))
    return shown


def manage(module, result):
    """Read, plan, then act outside check mode; fills result as it goes."""
    params = module.params
    root = _sysctl.PROC_SYS
    wanted = dict((name, _sysctl.value_text(name, value))
                  for name, value in params["values"].items())
    if not wanted:
        raise FastpathError("values is empty: give the sysctls to set, such "
                            "as net.core.busy_poll: 50.")
    live = _sysctl.read_live(list(wanted), root)
    names = _sysctl.changes(wanted, live) if params["reload"] else []

    path = params["file"]
    old_text = new_text = None
    if path:
        old_text = _sysctl.read_file(path)
        new_text = _sysctl.file_content(wanted)
    file_changed = new_text is not None and old_text != new_text
    if file_changed:
        check_file_dir(path)

    if not module.check_mode:
        _sysctl.apply_live(wanted, names, live, root)
        if file_changed:
            write_file(module, path, new_text, names, live, root)

    # Reported once everything is done: a failure above changed nothing.
    result.update(changed=bool(names) or file_changed, live_changed=names,
                  previous=dict((n, live[n]) for n in names),
                  file_changed=file_changed)
    if module._diff:
        result["diff"] = diffs(live, wanted, names, path, old_text, new_text)


def write_file(module, path, text, names, live, root):
    """Write the file; when that fails, put the live values back."""
    try:
        _files.write_atomically(path, text.encode(), module.atomic_move)
    except OSError as e:
        undo_failed = _sysctl.put_back(names, live, root)
        raise FastpathError(
            "Could not write %s (%s): check the file system%s"
            % (path, e.strerror or e,
               _sysctl.undo_message(names, undo_failed)),
            undo_failed=undo_failed)


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

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: bpf_build
short_description: Compile a BPF C source into a portable BPF object
version_added: 0.1.0
description:
  - Compiles O(src) with clang into the BPF object O(dest), with the flags
    of the vos.fastpath data plane contract (C(-target bpf -O2 -mcpu=v3 -g
    -Wall -Wno-unused -Wno-pointer-sign)), and returns the names of the
    programs and maps in it.
  - The vos.fastpath program needs no header of this host's kernel and no
    BTF; its kernel types are in C(bpf/fp_kernel.h).
  - Refuses a clang older than 12, which cannot compile the program's
    atomic compare-and-exchange.
  - Builds only when an input changed, unless O(force) is set. The inputs
    are the source and every header it includes, the compile flags and the
    compiler version. They are recorded next to the object, in a file
    named after O(dest) with the suffix C(.inputs.json).
  - Compiles into a temporary file next to O(dest) and renames it over
    O(dest), so that on any failure O(dest) is left as it was.
author:
  - vos-fastpath contributors (@vos-fastpath)
options:
  src:
    description:
      - The BPF C source to compile.
    type: path
    required: true
  dest:
    description:
      - The object file to write. Its directory must exist.
    type: path
    required: true
  btf:
    description:
      - Ignored. The program no longer includes a C(vmlinux.h) dumped from
        the kernel BTF.
    type: path
  vmlinux_h:
    description:
      - Ignored, as O(btf).
    type: path
  include_dirs:
    description:
      - Directories to search for headers (C(-I)), before C(/usr/include).
    type: list
    elements: path
    default: []
  cflags:
    description:
      - Extra compiler flags, appended after the standard ones.
    type: list
    elements: str
    default: []
  clang:
    description:
      - The clang to use, by name (searched in C(PATH)) or by path.
    type: str
    default: clang
  bpftool:
    description:
      - Ignored, as O(btf).
    type: str
  force:
    description:
      - Build the object even when no input changed.
    type: bool
    default: false
attributes:
  check_mode:
    description: Can run in check mode and report whether it would build.
    support: full
    details: Reads the inputs and compares them with the record of the
      last build; writes nothing.
  diff_mode:
    description: Returns details on what changed.
    support: full
    details: Shows the sha256 of O(dest) before and after, and the reasons
      for the build.
  platform:
    description: Linux hosts with clang 12 or later.
    support: full
    platforms: linux
notes:
  - The object does not depend on the build host's kernel. It loads on
    every little-endian host with a kernel the program supports, so build
    it once and copy it to the other hosts.
  - O(btf), O(vmlinux_h) and O(bpftool) are deprecated and will be removed
    in 0.4.0.
  - The tools run with C(LANG=C).
requirements:
  - clang 12 or later
  - the libbpf headers (C(bpf/bpf_helpers.h)) for sources that use them
seealso:
  - module: vos.fastpath.bpf_facts
"""

EXAMPLES = r"""
- name: Build the XDP object once, on the build host
  vos.fastpath.bpf_build:
    src: /opt/vos_fastpath/bpf/sip_logic.bpf.c
    dest: /opt/vos_fastpath/build/sip_logic.bpf.o
    include_dirs:
      - /opt/vos_fastpath/bpf
  register: built
  run_once: true

- name: Show what the object holds
  ansible.builtin.debug:
    msg: "{{ built.programs | map(attribute='name') }} {{ built.maps }}"

- name: Rebuild with an extra define, whatever changed
  vos.fastpath.bpf_build:
    src: /opt/vos_fastpath/bpf/sip_logic.bpf.c
    dest: /opt/vos_fastpath/build/sip_logic.bpf.o
    include_dirs:
      - /opt/vos_fastpath/bpf
    cflags:
      - -DFP_DEBUG=1
    force: true
"""

RETURN = r"""
src:
  description: The absolute path of the source.
  returned: always
  type: str
  sample: /opt/vos_fastpath/bpf/sip_logic.bpf.c
dest:
  description: The absolute path of the object.
  returned: always
  type: str
  sample: /opt/vos_fastpath/build/sip_logic.bpf.o
reasons:
  description: Why the object was built (or would be, in check mode);
    empty when nothing changed.
  returned: always
  type: list
  elements: str
  sample:
    - /opt/vos_fastpath/bpf/fp_sip.h changed
    - the compile flags changed
cmd:
  description: The compile command.
  returned: when clang was found
  type: list
  elements: str
  sample: [/usr/bin/clang, -target, bpf, -O2, -mcpu=v3, -g, -I,
           /opt/vos_fastpath/bpf, -I, /usr/include, -Wall, -Wno-unused,
           -Wno-pointer-sign, -c, /opt/vos_fastpath/bpf/sip_logic.bpf.c,
           -o, /opt/vos_fastpath/build/sip_logic.bpf.o]
sha256:
  description: The sha256 of the object.
  returned: success, unless a build is pending in check mode
  type: str
  sample: 9f2c4a0d51e3b7c8a6f1e0d2c3b4a5968778695a4b3c2d1e0f9e8d7c6b5a4938
size:
  description: The size of the object in bytes.
  returned: success, unless a build is pending in check mode
  type: int
  sample: 74152
programs:
  description: The programs of the object (functions in executable
    sections other than C(.text)), with their section, in object order.
  returned: success, unless a build is pending in check mode
  type: list
  elements: dict
  sample: [{name: sip_xdp_prog, section: xdp}]
maps:
  description: The names of the maps of the object (symbols of the
    C(.maps) section), in object order.
  returned: success, unless a build is pending in check mode
  type: list
  elements: str
  sample: [sip_ports, allow_v4, allow_v6, block_v4, block_v6, settings,
           stats, proto_stats, xsks_map]
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vos.fastpath.plugins.module_utils import (
    _build, _elf, _files)
from ansible_collections.vos.fastpath.plugins.module_utils._errors import (
    FastpathError)
from ansible_collections.vos.fastpath.plugins.module_utils._runner import (
    Runner)


def build_module():
    return AnsibleModule(
        argument_spec=dict(
            src=dict(type="path", required=True),
            dest=dict(type="path", required=True),
            btf=dict(type="path", removed_in_version="0.4.0",
                     removed_from_collection="vos.fastpath"),
            vmlinux_h=dict(type="path", removed_in_version="0.4.0",
                           removed_from_collection="vos.fastpath"),
            include_dirs=dict(type="list", elements="path", default=[]),
            cflags=dict(type="list", elements="str", default=[]),
            clang=dict(type="str", default="clang"),
            bpftool=dict(type="str", removed_in_version="0.4.0",
                         removed_from_collection="vos.fastpath"),
            force=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )


def check_paths(src, dest):
    if not os.path.isfile(src):
        raise FastpathError("The source %s does not exist: check src."
                            % src)
    if not os.path.isdir(os.path.dirname(dest)):
        raise FastpathError(
            "The directory of dest %s does not exist: create it first."
            % dest)


def build(module, result):
    """Plan, then act outside check mode; fills result as it goes."""
    params = module.params
    src = os.path.abspath(params["src"])
    dest = os.path.abspath(params["dest"])
    result.update(src=src, dest=dest, reasons=[])
    check_paths(src, dest)
    runner = Runner(module)
    clang = runner.path(params["clang"], "clang", option="clang")

    flags = _build.compile_flags(
        [os.path.abspath(d) for d in params["include_dirs"]],
        params["cflags"])
    current = _build.inputs(runner, clang, flags, src, dest)
    result["cmd"] = current["argv"]
    stamp = dest + _build.STAMP_SUFFIX
    before = _files.sha256_file(dest)
    reasons = _build.build_reasons(_build.read_stamp(stamp), current, before)
    if params["force"]:
        reasons.insert(0, "force is set")
    result["reasons"] = reasons

    if reasons and not module.check_mode:
        tmp = _build.compile_object(runner, clang, flags, src, dest)
        try:
            module.atomic_move(tmp, dest)
        finally:
            _files.remove(tmp)
        info = _elf.object_info(dest)
        _build.write_stamp(stamp, dict(current, sha256=info["sha256"]),
                           module.atomic_move)
    result["changed"] = bool(reasons)
    if not (reasons and module.check_mode):
        result.update(_elf.object_info(dest))

    if module._diff:
        after = {"sha256": result.get("sha256")}
        if reasons:
            after["built_because"] = reasons
        result["diff"] = dict(before={"sha256": before}, after=after,
                              before_header=dest, after_header=dest)


def main():
    module = build_module()
    result = dict(changed=False)
    try:
        build(module, result)
    except FastpathError as e:
        module.fail_json(**dict(result, **e.fail_args()))
    module.exit_json(**result)


if __name__ == "__main__":
    main()

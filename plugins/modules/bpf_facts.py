#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: bpf_facts
short_description: Check whether a host can run the vos.fastpath XDP program
version_added: 0.1.0
description:
  - Reads the kernel and tools of the host and returns them as
    C(ansible_facts.vos_fastpath), with C(ready) and a list of C(problems),
    each with a sentence that says what to do about it.
  - Checks kernel BTF, that the C(bpf) system call works (by creating and
    closing a one-entry map), the BPF JIT, bpffs on C(/sys/fs/bpf), the tools
    (bpftool, ip, and on build hosts clang and the libbpf headers), whether
    the kernel attaches XDP programs through BPF links and, per interface,
    the driver, whether native XDP is expected to work on it, which XDP
    program is attached now and how (a BPF link or netlink).
  - Changes nothing on the host.
author:
  - vos-fastpath contributors (@vos-fastpath)
options:
  fail_on_problems:
    description:
      - Fail the task, listing every problem with its remediation, when the
        host is not ready.
    type: bool
    default: false
  build_host:
    description:
      - Also require what building the program needs (clang and the libbpf
        headers).
    type: bool
    default: false
  btf_path:
    description:
      - Where the kernel exposes its BTF.
    type: path
    default: /sys/kernel/btf/vmlinux
attributes:
  check_mode:
    description: Can run in check mode and return the same facts.
    support: full
  diff_mode:
    description: Changes nothing, so there is no diff.
    support: none
  facts:
    description: Returns C(ansible_facts.vos_fastpath).
    support: full
  platform:
    description: Linux hosts with an XDP-capable kernel.
    support: full
    platforms: linux
notes:
  - Needs root (or CAP_BPF and CAP_NET_ADMIN) for the C(bpf) probe.
"""

EXAMPLES = r"""
- name: Check the kernel and tools, stop the host when it is not ready
  vos.fastpath.bpf_facts:
    fail_on_problems: true

- name: Check a build host
  vos.fastpath.bpf_facts:
    build_host: true
  register: facts

- name: Show what is attached to eth0, and whether a BPF link holds it
  ansible.builtin.debug:
    msg: "{{ ansible_facts.vos_fastpath.interfaces.eth0.xdp }} through
      {{ ansible_facts.vos_fastpath.interfaces.eth0.attach_method }}"
"""

RETURN = r"""
ansible_facts:
  description: Facts under the C(vos_fastpath) key.
  returned: always
  type: dict
  contains:
    vos_fastpath:
      description: Everything the checks found.
      type: dict
      contains:
        ready:
          description: True when there is no problem.
          type: bool
          sample: true
        problems:
          description: Each problem with a remediation sentence.
          type: list
          elements: dict
          sample:
            - name: btf
              msg: "The kernel has no BTF at /sys/kernel/btf/vmlinux: boot a
                kernel built with CONFIG_DEBUG_INFO_BTF=y ..."
        kernel:
          description: Kernel release.
          type: str
          sample: 6.1.0-26-amd64
        arch:
          description: Machine architecture.
          type: str
          sample: x86_64
        btf:
          description: Kernel BTF (present, path, sha256).
          type: dict
          sample: {present: true, path: /sys/kernel/btf/vmlinux,
                   sha256: 3f0c...}
        bpf_syscall:
          description: Whether a map could be created through C(bpf).
          type: bool
        jit_enabled:
          description:
            - Whether the BPF JIT is on; V(null) when its sysctl is not
              visible (a container's network namespace), which is not
              counted as a problem.
          type: bool
        bpffs_mounted:
          description: Whether bpffs is mounted on C(/sys/fs/bpf).
          type: bool
        xdp_link_support:
          description:
            - Whether the kernel attaches XDP programs through BPF links
              (Linux 5.9 and later), which V(vos.fastpath.xdp_attach) then
              uses; before it, through netlink.
          type: bool
          sample: true
        tools:
          description: Path and version of clang, bpftool, ip and the libbpf
            headers (null when missing).
          type: dict
          sample: {bpftool: {path: /usr/sbin/bpftool, version: 7.1.0}}
        interfaces:
          description:
            - Per interface (loopback excluded) its driver, whether native
              XDP is expected to work, its MTU and the XDP program attached
              now (id, name, tag, mode) or null.
            - C(attach_method) is V(link) when a BPF link attaches the
              program (C(xdp_link_id) is its id; C(ip link set dev X xdp
              off) cannot remove it), V(netlink) when it is attached
              without one, null when there is no program.
          type: dict
          sample:
            eth0:
              driver: virtio_net
              native_xdp_expected: true
              mtu: 1500
              xdp: {id: 42, name: sip_xdp_prog, tag: 0729d17d290e5598,
                    mode: native}
              attach_method: link
              xdp_link_id: 7
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vos.fastpath.plugins.module_utils import _facts
from ansible_collections.vos.fastpath.plugins.module_utils._errors import (
    FastpathError)
from ansible_collections.vos.fastpath.plugins.module_utils._runner import (
    Runner)


def build_module():
    return AnsibleModule(
        argument_spec=dict(
            fail_on_problems=dict(type="bool", default=False),
            build_host=dict(type="bool", default=False),
            btf_path=dict(type="path", default=_facts.BTF_PATH),
        ),
        supports_check_mode=True,
    )


def gather(module, result):
    facts = _facts.collect(Runner(module), module.params["btf_path"])
    if module.params["build_host"]:
        facts["problems"].extend(_facts.build_problems(facts))
        facts["ready"] = not facts["problems"]
    result["ansible_facts"] = dict(vos_fastpath=facts)
    if module.params["fail_on_problems"] and not facts["ready"]:
        raise FastpathError(
            "This host cannot run vos.fastpath: "
            + " ".join(p["msg"] for p in facts["problems"]))


def main():
    module = build_module()
    result = dict(changed=False)
    try:
        gather(module, result)
    except FastpathError as e:
        module.fail_json(**dict(result, **e.fail_args()))
    module.exit_json(**result)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: cpu_affinity
short_description: Pin the threads of named processes to a set of CPUs
version_added: 0.1.0
description:
  - Finds every process whose name, as the kernel keeps it in
    C(/proc/<pid>/comm), is exactly one of O(names), and sets the CPU
    affinity of each of its threads (C(/proc/<pid>/task/*)) to O(cpus).
  - The command line of a process is never looked at, so a shell or an
    editor whose arguments mention the name is left alone.
  - A change is reported only when the kernel's current affinity of some
    thread differs from O(cpus).
  - No matching process is not an error; the task then reports no change
    and an empty RV(processes), since the server may not run yet.
author:
  - vos-fastpath contributors (@vos-fastpath)
options:
  names:
    description:
      - Process names, compared exactly with C(/proc/<pid>/comm) (for
        example V(kamailio), V(opensips)).
      - The kernel keeps at most 15 characters of a name, so a longer name
        is compared on its first 15 characters.
    type: list
    elements: str
    required: true
  cpus:
    description:
      - The CPUs to run on, as a kernel-style list such as V(1-3,5).
      - Every CPU must be online on the host.
    type: str
    required: true
attributes:
  check_mode:
    description: Can run in check mode and report what would change.
    support: full
  diff_mode:
    description: Returns details on what changed.
    support: full
    details: Shows each process's CPUs before and after.
  platform:
    description: Linux hosts.
    support: full
    platforms: linux
notes:
  - Needs root (or CAP_SYS_NICE) to change the affinity of processes of
    other users.
  - The affinity of a running process is lost when it restarts; the
    C(vos.fastpath.tuning) role also writes a systemd drop-in with
    C(CPUAffinity=) for that.
"""

EXAMPLES = r"""
- name: Keep CPU 0 for interrupts and XDP, run the SIP server on the others
  vos.fastpath.cpu_affinity:
    names: [kamailio, opensips]
    cpus: "1-{{ ansible_facts.processor_nproc - 1 }}"

- name: Pin OpenSIPS to CPUs 2 and 3
  vos.fastpath.cpu_affinity:
    names: opensips
    cpus: 2-3
  register: pinned

- name: Show what was pinned
  ansible.builtin.debug:
    msg: "{{ pinned.processes | map(attribute='pid') | list }}"
"""

RETURN = r"""
cpus:
  description: O(cpus) in its shortest form.
  returned: success
  type: str
  sample: 1-3,5
processes:
  description: Every matching process, by pid, with its main thread's CPUs
    before and after, its number of threads and how many of them were (or
    in check mode would be) changed.
  returned: success
  type: list
  elements: dict
  sample:
    - {pid: 812, name: kamailio, before: 0-3, after: 1-3, threads: 1,
       threads_changed: 1}
    - {pid: 813, name: kamailio, before: 1-3, after: 1-3, threads: 4,
       threads_changed: 0}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vos.fastpath.plugins.module_utils import _cpus
from ansible_collections.vos.fastpath.plugins.module_utils._errors import (
    FastpathError)


def build_module():
    return AnsibleModule(
        argument_spec=dict(
            names=dict(type="list", elements="str", required=True),
            cpus=dict(type="str", required=True),
        ),
        supports_check_mode=True,
    )


def diff_text(processes, key):
    return "".join("%d %s: %s\n" % (p["pid"], p["name"], p[key])
                   for p in processes)


def wanted_cpus(text):
    """The CPUs of the cpus option, all of them online."""
    try:
        cpus = _cpus.parse_cpu_list(text)
    except ValueError as e:
        raise FastpathError(str(e))
    error = _cpus.check_cpus(cpus, _cpus.online_cpus())
    if error:
        raise FastpathError(error)
    return cpus


def pin(pid, name, cpus):
    try:
        _cpus.pin(pid, cpus)
    except OSError as e:
        raise FastpathError(
            "Could not set the CPUs of process %d (%s) to %s (%s): run as "
            "root, and check that the process's cpuset allows these CPUs."
            % (pid, name, _cpus.format_cpu_list(cpus), e))


def manage(module, result):
    """Plan each process, then act outside check mode; fills result as it
    goes, so a failure reports the processes already pinned."""
    names = [n for n in module.params["names"] if n]
    if not names:
        raise FastpathError("names is empty: give the process names to pin, "
                            "such as kamailio or opensips.")
    cpus = wanted_cpus(module.params["cpus"])
    result.update(cpus=_cpus.format_cpu_list(cpus), processes=[])
    processes = result["processes"]
    for pid, name in _cpus.find_processes(names):
        before, pending = _cpus.plan(pid, cpus)
        if before is None:
            continue  # exited since it was listed
        if pending and not module.check_mode:
            pin(pid, name, cpus)
        processes.append(dict(
            pid=pid, name=name,
            before=_cpus.format_cpu_list(before),
            after=_cpus.format_cpu_list(cpus),
            threads=len(_cpus.thread_ids(pid)) or 1,
            threads_changed=len(pending)))
        result["changed"] = result["changed"] or bool(pending)

    if module._diff:
        result["diff"] = dict(before=diff_text(processes, "before"),
                              after=diff_text(processes, "after"),
                              before_header="CPU affinity",
                              after_header="CPU affinity")


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

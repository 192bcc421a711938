#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: xdp_stats
short_description: Read the counters of the vos.fastpath XDP program
version_added: 0.1.0
description:
  - Reads the per-CPU counter maps pinned under O(pin_dir) (C(stats),
    C(stats_ext), C(proto_stats), C(scanner_hits)), sums every CPU and
    returns each counter by name, in packets and bytes, with the hits of
    each scanner signature, the number of sources banned now, and the
    interfaces where the program that uses these maps is attached.
  - On a host whose program predates rate limits, bans and scanner
    fingerprints (0.1.0), the maps it has are read and RV(notes) says
    what is left out.
  - Optionally writes the counters in node_exporter's textfile format,
    atomically (a temporary file renamed over the old one).
  - With O(expect), it is also the deploy's health gate. The task fails,
    listing each problem, unless the program runs on every expected
    interface in the expected mode.
author:
  - vos-fastpath contributors (@vos-fastpath)
options:
  prometheus_textfile:
    description:
      - Write the counters to this file for node_exporter's textfile
        collector. The task reports a change only when the file's content
        changed.
    type: path
  expect:
    description:
      - Where and how the program must run; the task fails with RV(problems)
        when it does not.
    type: dict
    suboptions:
      interfaces:
        description:
          - Interfaces where the program must be attached.
        type: list
        elements: str
        required: true
      mode:
        description:
          - The mode the program was attached with
            (O(vos.fastpath.xdp_attach#module:mode)). V(auto) accepts
            native or generic; V(native) and V(generic) require that mode.
        type: str
        choices: [auto, native, generic]
        default: auto
      require_native:
        description:
          - Require native mode whatever O(expect.mode) is.
        type: bool
        default: false
extends_documentation_fragment:
  - vos.fastpath.maps
attributes:
  check_mode:
    description: Can run in check mode and report what would change.
    support: full
    details: The counters are read; the textfile is not written.
  diff_mode:
    description: Returns details on what changed.
    support: full
    details: Shows the textfile before and after.
  platform:
    description: Linux hosts with an XDP-capable kernel.
    support: full
    platforms: linux
notes:
  - The counters are those of C(docs/dataplane.md), which also
    explains each one.
  - O(pin_dir) must belong to root and be writable only by it, and each
    counter map must be the map of C(docs/dataplane.md) its pin is named
    for (name, type, key and value size, max_entries, flags); otherwise
    the task fails and says what to remove.
seealso:
  - module: vos.fastpath.xdp_attach
"""

EXAMPLES = r"""
- name: Read the counters
  vos.fastpath.xdp_stats:
  register: fastpath

- name: Show what was blocked
  ansible.builtin.debug:
    msg: "{{ fastpath.stats.BLOCKED.packets }} packets blocked"

- name: Show the floods and scanners stopped
  ansible.builtin.debug:
    msg: >-
      {{ fastpath.stats.RATE_LIMITED.packets }} requests over budget,
      {{ fastpath.stats_ext.SCANNER.packets | default(0) }} from scanners,
      {{ fastpath.active_bans | default(0) }} sources banned now

- name: Export the counters to node_exporter
  vos.fastpath.xdp_stats:
    prometheus_textfile: /var/lib/prometheus/node-exporter/vos_fastpath.prom

- name: Fail unless the program runs natively on eth0 and eth1
  vos.fastpath.xdp_stats:
    expect:
      interfaces: [eth0, eth1]
      require_native: true
"""

RETURN = r"""
stats:
  description: Each C(stats) counter by name, summed over CPUs.
  returned: success
  type: dict
  sample:
    PASSED: {packets: 1200, bytes: 480000}
    OPTIONS_DROPPED: {packets: 35, bytes: 12000}
    BLOCKED: {packets: 9000, bytes: 3100000}
    MALFORMED: {packets: 4, bytes: 216}
    REDIRECTED: {packets: 0, bytes: 0}
    RATE_LIMITED: {packets: 4410, bytes: 2116800}
    NOT_SIP: {packets: 800, bytes: 90000}
    NON_IP: {packets: 12, bytes: 720}
stats_ext:
  description:
    - Each C(stats_ext) counter by name (the reasons that did not fit in
      C(stats)), summed over CPUs.
    - Not returned when the map is not pinned (a 0.1.0 program, see
      RV(notes)).
  returned: success, when the host has the map
  type: dict
  sample:
    BANNED: {packets: 20133, bytes: 9663840}
    SCANNER: {packets: 17, bytes: 8279}
proto_stats:
  description: Each C(proto_stats) counter by name, summed over CPUs.
  returned: success
  type: dict
  sample:
    TCP: {packets: 10, bytes: 900}
    UDP: {packets: 11000, bytes: 3600000}
    ICMP: {packets: 3, bytes: 252}
    OTHER: {packets: 0, bytes: 0}
scanner_hits:
  description:
    - The C(SCANNER) drops of each signature of the C(scanner_sigs) map,
      by signature (in lower case, in the order of the map's slots),
      summed over CPUs.
    - Not returned when the maps are not pinned (see RV(notes)).
  returned: success, when the host has the maps
  type: dict
  sample:
    friendly: {packets: 15, bytes: 7305}
    sipcli: {packets: 2, bytes: 974}
active_bans:
  description:
    - How many sources are banned now (entries of the C(bans_v2) map that
      end later than now).
    - Not returned when the map is not pinned (see RV(notes)).
  returned: success, when the host has the map
  type: int
  sample: 3
total_packets:
  description: Every frame the program saw (the sum of C(stats) and
    C(stats_ext) packets).
  returned: success
  type: int
  sample: 31201
notes:
  description: What was left out and why, one sentence each; empty when
    every map was read.
  returned: success
  type: list
  elements: str
  sample: ["/sys/fs/bpf/vos_fastpath has no stats_ext, scanner_sigs,
           scanner_hits or bans_v2 map: the program there predates rate
           limits, bans and scanner fingerprints (0.1.0), so BANNED,
           SCANNER, the signature hits and the active bans are not shown;
           deploy this version to get them."]
attached:
  description: Interfaces where a program that uses these maps is attached.
  returned: success
  type: list
  elements: dict
  sample:
    - {interface: eth0, id: 42, name: sip_xdp_prog,
       tag: 0729d17d290e5598, mode: native}
problems:
  description: With O(expect), what is wrong, one sentence per interface
    (empty when healthy), or why the counters could not be read.
  returned: when expect is set
  type: list
  elements: str
  sample: ["eth1: attached in generic mode, native required"]
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vos.fastpath.plugins.module_utils import (
    _abi, _counters, _facts, _files, _health, _pins)
from ansible_collections.vos.fastpath.plugins.module_utils._errors import (
    FastpathError)
from ansible_collections.vos.fastpath.plugins.module_utils._runner import (
    Runner)


def build_module():
    return AnsibleModule(
        argument_spec=dict(
            pin_dir=dict(type="path", default=_abi.DEFAULT_PIN_DIR),
            prometheus_textfile=dict(type="path"),
            expect=dict(type="dict", options=dict(
                interfaces=dict(type="list", elements="str", required=True),
                mode=dict(type="str", default="auto",
                          choices=["auto", "native", "generic"]),
                require_native=dict(type="bool", default=False),
            )),
        ),
        supports_check_mode=True,
    )


def read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except (IOError, OSError):
        return None


def read(module, result):
    pin_dir = module.params["pin_dir"]
    _pins.check_pin_dir(pin_dir)
    if not os.path.lexists(os.path.join(pin_dir, "stats")):
        raise FastpathError(_pins.NOTHING_PINNED % pin_dir)
    try:
        counters = _counters.read_counters(pin_dir)
        scanner_hits = _counters.read_scanner_hits(pin_dir)
        active_bans = _counters.count_active_bans(pin_dir)
        with _pins.open_map(pin_dir, "stats") as stats:
            stats_id = stats.id
    except OSError as e:
        raise FastpathError("Could not read the counters under %s (%s): run "
                            "as root, and check that bpffs is mounted."
                            % (pin_dir, e))
    missing = _counters.missing_maps(pin_dir)
    runner = Runner(module)
    result.update(counters)
    if scanner_hits is not None:
        result["scanner_hits"] = scanner_hits
    if active_bans is not None:
        result["active_bans"] = active_bans
    result.update(
        total_packets=_counters.total_packets(counters),
        notes=([_counters.later_maps_note(pin_dir, missing)]
               if missing else []),
        attached=_facts.interfaces_using_map(runner, runner.path("ip"),
                                             stats_id),
    )
    write_textfile(module, _counters.prometheus_text(
        counters, scanner_hits, active_bans), result)
    expect = module.params["expect"]
    if expect:
        result["problems"] = _health.problems(
            result["attached"], expect["interfaces"], expect["mode"],
            expect["require_native"])
        if result["problems"]:
            raise FastpathError(
                "The program is not running as expected: %s. Deploy again "
                "once the cause is fixed." % "; ".join(result["problems"]))


def write_textfile(module, after, result):
    textfile = module.params["prometheus_textfile"]
    if not textfile:
        return
    before = read_text(textfile)
    result["changed"] = before != after
    if module._diff:
        result["diff"] = dict(before=before or "", after=after,
                              before_header=textfile, after_header=textfile)
    if result["changed"] and not module.check_mode:
        _files.write_atomically(textfile, after.encode(), module.atomic_move)


def main():
    module = build_module()
    result = dict(changed=False)
    try:
        read(module, result)
    except FastpathError as e:
        if module.params["expect"]:
            # A health check's problem too: the counters are unreadable.
            result.setdefault("problems", [e.msg])
        module.fail_json(**dict(result, **e.fail_args()))
    module.exit_json(**result)


if __name__ == "__main__":
    main()

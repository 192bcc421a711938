#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: xdp_attach
short_description: Attach the vos.fastpath XDP program to an interface
version_added: 0.1.0
description:
  - Loads the vos.fastpath XDP program from a built object and attaches it
    to an interface, in native or generic mode, or detaches it.
  - The program's maps are pinned by name under O(pin_dir) and shared by
    every interface of the host. A compatible map already pinned there is
    reused, so block and allow lists, settings and counters survive a new
    version of the program; a pinned map with another layout makes the
    task fail, naming the map, before anything changes.
  - The program is attached through a BPF link where the kernel has them
    (Linux 5.9 and later), pinned as C(link_<interface>) under O(pin_dir).
    Only that pin can remove it, so a stray C(ip link set dev X xdp off)
    or another loader's attach fails instead of removing it. On older
    kernels it is attached through netlink. RV(attach_method) says which.
  - The same program already attached in the requested mode is left alone
    (no reload). Another version of it is replaced atomically, without a
    moment where the interface has no program (the link's program is
    swapped, checked to still be the one read). Changing the mode needs a
    detach first; the result says so in RV(detached_for_mode_change).
  - A program attached through netlink (by an earlier version of this
    collection) is replaced through netlink, atomically, and stays a
    netlink attachment, unless O(move_to_link) is set. The kernel cannot
    move it to a link without a detach, so then for a few milliseconds
    the interface has no program (RV(moved_to_link), and a warning).
  - An XDP program that is not vos.fastpath's makes the task fail, naming
    it, unless O(force) is set.
  - Writes the SIP ports, settings, rate limits and scanner signatures
    into the program's maps (before the program is attached on a first
    install), without a reload. Maps not pinned yet, as on an upgrade
    from 0.1.0, are pinned next to the others (RV(created_maps)).
author:
  - vos-fastpath contributors (@vos-fastpath)
options:
  interface:
    description:
      - Network interface to attach the program to, or detach it from.
    type: str
    required: true
  object:
    description:
      - Path, on the managed host, of the built object
        (C(build/sip_logic.bpf.o)).
      - Required with O(state=present).
    type: path
  program:
    description:
      - Name of the program (its function) in O(object).
    type: str
    default: sip_xdp_prog
  mode:
    description:
      - V(native) attaches in the driver, V(generic) in the kernel's
        generic XDP path (any interface, slower).
      - V(auto) tries native and falls back to generic only when the
        driver refuses native; RV(mode) and RV(mode_reason) say which mode
        is in use and why. With a program already attached, V(auto) keeps
        its mode so that a replacement stays atomic.
    type: str
    choices: [auto, native, generic]
    default: auto
  pin_dir:
    description:
      - Directory on bpffs where the maps and the program are pinned.
        Created when missing; its parent must exist on bpffs.
    type: path
    default: /sys/fs/bpf/vos_fastpath
  state:
    description:
      - V(present) attaches the program, V(absent) detaches it and removes
        its program pin.
    type: str
    choices: [present, absent]
    default: present
  sip_ports:
    description:
      - UDP and TCP ports that the program treats as SIP. The C(sip_ports)
        map holds exactly these ports afterwards.
    type: list
    elements: int
    default: [5060]
  settings:
    description:
      - The program's settings, written to the C(settings) map. Omitted
        keys take their defaults; flags this module does not know are
        kept.
    type: dict
    default: {}
    suboptions:
      block_all_ports:
        description:
          - Apply the blocklist to every IP packet, not only to SIP ports.
        type: bool
        default: false
      stealth:
        description:
          - Drop OPTIONS requests from untrusted sources (scanners).
        type: bool
        default: true
      malformed:
        description:
          - What to do with a packet on a SIP UDP port that is not SIP.
            It is counted as C(MALFORMED) either way.
        type: str
        choices: [drop, pass]
        default: drop
      shadow:
        description:
          - Count-only mode. Every verdict is counted, but nothing is
            dropped.
        type: bool
        default: false
  force:
    description:
      - Replace (or with O(state=absent), detach) an XDP program that is
        not vos.fastpath's.
    type: bool
    default: false
  move_to_link:
    description:
      - Move a program that an earlier version attached through netlink
        to a BPF link. The kernel refuses a link while a netlink program
        is attached, so the program is detached and the link created right
        after; packets that arrive in between (milliseconds) are not
        filtered. Without it such a program is replaced through netlink in
        one step and stays a netlink attachment. A first attach, or one
        after O(state=absent), always uses a link where the kernel has
        them.
    type: bool
    default: false
  keep_maps:
    description:
      - With O(state=absent), keep the pinned maps (lists and counters).
      - V(false) removes the map pins too, but only when no interface still
        runs a program that uses them.
    type: bool
    default: true
  lock_timeout:
    description:
      - Seconds to wait while another run (a task, the boot service)
        changes the same interface. When it does not finish in time the
        task fails, naming it; V(0) fails at once.
      - Check mode waits too, so that it never reports a state another run
        is half-way through changing.
    type: int
    default: 60
extends_documentation_fragment:
  - vos.fastpath.limits
attributes:
  check_mode:
    description: Can run in check mode and report what would change.
    support: full
    details:
      - Nothing is loaded in check mode. When the object was never loaded
        on this kernel while the program is attached, its tag cannot be
        compared and the task reports a change.
  diff_mode:
    description: Returns details on what changed.
    support: full
    details: Shows the program tag, the mode, the SIP ports, the
      settings, the limits and the scanner signatures before and after
      (null for a map that is not there).
  platform:
    description: Linux hosts with an XDP-capable kernel.
    support: full
    platforms: linux
notes:
  - Needs root (or CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN), bpffs
    mounted, and the C(ip) (iproute2) and C(bpftool) commands.
  - Pins under O(pin_dir) are one per map, by the map's name, and per
    interface one for its program, C(prog_<interface>), and one for its BPF
    link, C(link_<interface>); a dot in the interface name becomes a colon
    there, since bpffs refuses dots in names. Removing the link pin
    detaches the program.
  - One run at a time changes an interface. Each task holds a lock per
    interface (under C(/run/vos-fastpath/locks)) from the read of the
    interface to the last change.
  - The program tag of each object loaded is remembered, per object
    checksum, kernel and bpftool, in C(/run/vos-fastpath/object-tags.json),
    so that a run where nothing changed loads nothing. Without it the object
    is loaded once more and its tag compared with the attached one.
seealso:
  - module: vos.fastpath.bpf_facts
  - module: vos.fastpath.xdp_stats
"""

EXAMPLES = r"""
- name: Attach the SIP shield to eth0, native mode if the driver has it
  vos.fastpath.xdp_attach:
    interface: eth0
    object: /usr/local/lib/vos-fastpath/sip_logic.bpf.o
    sip_ports: [5060, 5080]

- name: Count only, do not drop, on a second interface in generic mode
  vos.fastpath.xdp_attach:
    interface: eth1
    object: /usr/local/lib/vos-fastpath/sip_logic.bpf.o
    mode: generic
    settings:
      shadow: true
      malformed: pass

- name: Rate-limit REGISTER and INVITE floods, ban scanners for an hour
  vos.fastpath.xdp_attach:
    interface: eth0
    object: /usr/local/lib/vos-fastpath/sip_logic.bpf.o
    limits:
      untrusted: {register: {rate: 2, burst: 10}, invite: {rate: 5, burst: 20}}
      bans: true
      ban_after: 10s
      ban_time: 15m
      scanner_ban_time: 1h
    scanner_signatures: [sipvicious, friendly-scanner, sipcli]

- name: Replace whatever XDP program runs on eth0
  vos.fastpath.xdp_attach:
    interface: eth0
    object: /usr/local/lib/vos-fastpath/sip_logic.bpf.o
    force: true

- name: Detach, and remove the maps once no interface uses them
  vos.fastpath.xdp_attach:
    interface: eth0
    state: absent
    keep_maps: false
"""

RETURN = r"""
interface:
  description: The interface.
  returned: always
  type: str
  sample: eth0
action:
  description:
    - What was (or in check mode would be) done to the program.
    - V(none), V(install), V(replace), V(mode_change) with
      O(state=present); V(relink) when the same program moved from a
      netlink attachment to a BPF link; V(none) or V(detach) with
      O(state=absent).
  returned: always
  type: str
  sample: replace
mode:
  description: The attach mode in use, V(native) or V(generic)
    (null when detached).
  returned: always
  type: str
  sample: native
mode_reason:
  description: Why this mode, with the kernel's refusal when V(auto) fell
    back to generic.
  returned: when state is present
  type: str
  sample: "auto: the driver refused native XDP (Error: veth: Peer MTU is
    too large to set XDP.), so generic XDP is in use"
attach_method:
  description:
    - How the program is attached, V(link) (a BPF link, pinned as
      RV(link_pin)) or V(netlink) (kernels before 5.9); null when nothing
      is attached.
  returned: always
  type: str
  sample: link
link_id:
  description: Kernel id of the BPF link that attaches the program, when
    RV(attach_method) is V(link).
  returned: when state is present
  type: int
  sample: 17
detached_for_mode_change:
  description: True when the old program had to be detached to change the
    mode; with RV(moved_to_link), the only cases where the interface is
    briefly without a program.
  returned: when state is present
  type: bool
  sample: false
moved_to_link:
  description: True when the program in place was attached through netlink
    and a BPF link took over, which needs a detach first (milliseconds
    without a program); the task warns about it.
  returned: when state is present
  type: bool
  sample: false
prog_id:
  description: Kernel id of the attached program.
  returned: when state is present
  type: int
  sample: 1525
tag:
  description: Tag (hash of the instructions) of the attached program.
  returned: when state is present
  type: str
  sample: 6fc847535b5ab687
replaced:
  description: The program that was attached before (id, name, tag, mode,
    attach_method), when it was replaced.
  returned: when state is present
  type: dict
  sample: {id: 1507, name: sip_xdp_prog, tag: 0729d17d290e5598,
           mode: native, attach_method: link}
detached:
  description: The program that was detached (id, name, tag, mode,
    attach_method).
  returned: when state is absent
  type: dict
  sample: {id: 1525, name: sip_xdp_prog, tag: 6fc847535b5ab687,
           mode: native, attach_method: link}
pin_dir:
  description: Where the maps and the program are pinned.
  returned: always
  type: str
  sample: /sys/fs/bpf/vos_fastpath
prog_pin:
  description: The pin of this interface's program.
  returned: always
  type: str
  sample: /sys/fs/bpf/vos_fastpath/prog_eth0
link_pin:
  description: The pin of the BPF link that attaches this interface's
    program; removing it detaches the program.
  returned: always
  type: str
  sample: /sys/fs/bpf/vos_fastpath/link_eth0
maps:
  description: Each map of the program and its pin.
  returned: when state is present
  type: dict
  sample: {sip_ports: /sys/fs/bpf/vos_fastpath/sip_ports,
           block_v4: /sys/fs/bpf/vos_fastpath/block_v4}
reused_maps:
  description: Maps that were already pinned and that the loaded program
    now uses, with their entries and counters.
  returned: when state is present
  type: list
  elements: str
  sample: [allow_v4, block_v4, settings, sip_ports, stats]
created_maps:
  description: Maps of the object that this run created and pinned (all
    on a first install, the new ones on an upgrade).
  returned: when state is present
  type: list
  elements: str
  sample: [bans, limits, rate_state, scanner_hits, scanner_sigs, stats_ext]
removed_maps:
  description: Map pins removed (O(keep_maps=false)).
  returned: when state is absent
  type: list
  elements: str
  sample: []
undo_failed:
  description:
    - When the task failed and a change it had made could not be put back,
      each such change, why, and the command that puts it back by hand.
      The failure message says the same.
  returned: on a failure whose undo failed
  type: list
  elements: dict
  sample:
    - step: the native program on eth0
      error: "Could not attach the program to eth0 in native mode: see
        stderr."
      by_hand: ip link set dev eth0 xdpdrv pinned
        /sys/fs/bpf/vos_fastpath/tmp_4242/previous
sip_ports:
  description: The SIP ports in the C(sip_ports) map.
  returned: when state is present
  type: list
  elements: int
  sample: [5060, 5080]
settings:
  description: The settings in the C(settings) map.
  returned: when state is present
  type: dict
  sample: {block_all_ports: false, stealth: true, malformed: drop,
           shadow: false}
limits:
  description: The C(limits) map in the terms of O(limits), every key
    given. Only classes with a limit, durations in seconds, each C(rate)
    the shortest number of its interval in nanoseconds.
  returned: when state is present
  type: dict
  sample: {untrusted: {register: {rate: 2.0, burst: 10}}, trusted: {},
           bans: true, ban_after: 10, ban_time: 900,
           scanner_ban_time: 3600, prefix_v4: 32, prefix_v6: 64}
scanner_signatures:
  description: The signatures in the C(scanner_sigs) map, slot by slot, in
    lower case.
  returned: when state is present
  type: list
  elements: str
  sample: [sipvicious, friendly-scanner]
scanner_hits_reset:
  description: The C(scanner_hits) slots zeroed, their signature changed.
  returned: when state is present
  type: list
  elements: int
  sample: [1]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vos.fastpath.plugins.module_utils import (
    _abi, _attach_run, _defaults, _host, _limits, _lock)
from ansible_collections.vos.fastpath.plugins.module_utils._errors import (
    FastpathError)


def argument_spec():
    """The options; every default comes from _defaults (or _abi)."""
    settings = dict(
        block_all_ports=dict(type="bool"),
        stealth=dict(type="bool"),
        malformed=dict(type="str", choices=["drop", "pass"]),
        shadow=dict(type="bool"),
    )
    for name, option in settings.items():
        option["default"] = _defaults.SETTINGS[name]
    return dict(
        interface=dict(type="str", required=True),
        object=dict(type="path"),
        program=dict(type="str", default=_abi.PROGRAM_NAME),
        mode=dict(type="str", default=_defaults.MODE,
                  choices=["auto", "native", "generic"]),
        pin_dir=dict(type="path", default=_abi.DEFAULT_PIN_DIR),
        state=dict(type="str", default="present",
                   choices=["present", "absent"]),
        sip_ports=dict(type="list", elements="int",
                       default=list(_defaults.SIP_PORTS)),
        settings=dict(type="dict", default={}, apply_defaults=True,
                      options=settings),
        limits=dict(type="dict", options=_limits.option_spec()),
        scanner_signatures=dict(type="list", elements="str",
                                default=list(_defaults.SCANNER_SIGNATURES)),
        force=dict(type="bool", default=False),
        move_to_link=dict(type="bool", default=False),
        keep_maps=dict(type="bool", default=True),
        lock_timeout=dict(type="int", default=_lock.DEFAULT_TIMEOUT),
    )


def build_module():
    return AnsibleModule(
        argument_spec=argument_spec(),
        required_if=[("state", "present", ["object"])],
        supports_check_mode=True,
    )


def main():
    module = build_module()
    result = {}
    try:
        _attach_run.run(module, _host.Host(module), result)
    except FastpathError as e:
        module.fail_json(**dict(result, **e.fail_args()))
    module.exit_json(**result)


if __name__ == "__main__":
    main()

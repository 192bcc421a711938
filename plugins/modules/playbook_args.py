#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: playbook_args
short_description: Read the collection's playbook variables, old names too
version_added: 0.2.0
description:
  - Returns the value of each variable named in O(names), so that the
    collection's playbooks take their C(-e) variables by C(fastpath_) names
    that no inventory variable of an operator's is likely to have.
  - A new name is read wherever it is set. When it is not set, the old
    name is read instead, but only from the command line (C(-e)) or the
    play's own variables (such as the C(vars) of an C(import_playbook)),
    never from the inventory, and a deprecation warning names the new
    variable. When both are given, the new name wins.
  - The old names are read until version 0.2.0 of the collection.
  - Runs on the controller; changes nothing.
author:
  - vos-fastpath contributors (@vos-fastpath)
options:
  names:
    description:
      - The new name of each variable, mapped to its old name.
    type: dict
    required: true
attributes:
  action:
    description: Runs on the controller as an action plugin.
    support: full
  check_mode:
    description: Changes nothing, so it runs the same in check mode.
    support: full
  diff_mode:
    description: Changes nothing, so there is no diff.
    support: none
  platform:
    description: Runs on the controller.
    support: full
    platforms: all
"""

EXAMPLES = r"""
- name: Read the command line
  vos.fastpath.playbook_args:
    names:
      fastpath_address: address
      fastpath_ttl: ttl
  register: __args

- name: Show what to block, and for how long
  ansible.builtin.debug:
    msg: >-
      {{ __args.fastpath_address }} for
      {{ __args.fastpath_ttl | default(0) }} s
"""

RETURN = r"""
fastpath_address:
  description:
    - One key for each new name of O(names) that has a value, from the new
      name or the old one; here C(fastpath_address). A name without a
      value is left out, so that C(default) applies.
  returned: when the new or the old name is given
  type: raw
  sample: 203.0.113.7
"""

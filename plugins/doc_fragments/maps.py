# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """Options of the modules that work on the program's pinned maps."""

    DOCUMENTATION = r"""
options:
  pin_dir:
    description:
      - Directory on bpffs where the program's maps are pinned.
    type: path
    default: /sys/fs/bpf/vos_fastpath
notes:
  - Needs root (or CAP_BPF) to open the pinned maps.
"""

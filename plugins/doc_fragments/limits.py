# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """Options of the rate limits, bans and scanner signatures, written to
    the program's `limits` and `scanner_sigs` maps (docs/dataplane.md,
    "Rate limits and bans")."""

    DOCUMENTATION = r"""
options:
  limits:
    description:
      - Per-source rate limits and bans, written to the C(limits) map. The
        program reads them at every packet, so a change applies from the
        next packet on, with no reload.
      - Left out, every limit and ban is off (the map holds all zeros),
        whatever an earlier task set. Keys left out take their defaults.
      - A source is an address masked to O(limits.prefix_v4) or
        O(limits.prefix_v6) bits. A request over its source's budget is
        dropped and counted as C(RATE_LIMITED).
    type: dict
    suboptions:
      untrusted:
        description:
          - Budgets of sources that are not in the allowlist, by request
            class. The classes are C(register), C(invite), C(options)
            (UDP requests with exactly that method), C(other) (any other
            UDP request method) and C(syn) (TCP connection attempts to a
            SIP port).
          - Each class takes C({rate, burst}). C(rate) is requests a
            second (a float, 0 for no limit; a budget is one request every
            1/C(rate) seconds, rounded to the nanosecond); C(burst) is the
            requests a source may send back to back (1 to 100000, needed
            with a rate).
          - A class left out has no limit.
        type: dict
        default: {}
      trusted:
        description:
          - Budgets of the allowlist's sources, as O(limits.untrusted).
            They are never banned.
        type: dict
        default: {}
      bans:
        description:
          - Enforce and make bans. A banned source's packets are dropped
            and counted as C(BANNED) until the ban ends.
        type: bool
        default: false
      ban_after:
        description:
          - How long a source stays over budget before it is banned for
            O(limits.ban_time); V(0) bans it at its first drop.
          - Seconds, or a number with s, m, h, d or w (V(90s), V(15m),
            V(1h), V(7d)).
        type: raw
        default: 0
      ban_time:
        description:
          - How long a source that stayed over budget is banned, V(0) for
            no such ban. Units as O(limits.ban_after).
        type: raw
        default: 0
      scanner_ban_time:
        description:
          - How long a source that sent a request matching
            O(scanner_signatures) is banned, V(0) for no such ban. Units as
            O(limits.ban_after).
        type: raw
        default: 0
      prefix_v4:
        description:
          - The leading bits of an IPv4 address that make one source, 1 to
            32.
        type: int
        default: 32
      prefix_v6:
        description:
          - The leading bits of an IPv6 address that make one source, 1 to
            128.
        type: int
        default: 64
  scanner_signatures:
    description:
      - The User-Agent signatures of scanners, written to the
        C(scanner_sigs) map in this order, one a slot from slot 0. A SIP
        request from an untrusted source whose User-Agent holds one (case
        aside) is dropped and counted as C(SCANNER).
      - Each is 4 to 32 printable ASCII characters, kept in lower case;
        at most 32, none twice. The empty list turns the check off.
      - The C(scanner_hits) counter of a slot whose signature changes is
        set to zero, so that each slot counts the hits of the signature
        it holds; the other slots keep theirs.
    type: list
    elements: str
    default: []
"""

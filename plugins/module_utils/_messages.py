# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""What xdp_attach says: failures in words, and the commands it names.

Private to this collection. bpftool's failures in one sentence with the
verifier log's tail, a bpf() link error by its name, the `ip` command of
an attach (run by _host, or named for doing it by hand), and the
commands that do by hand what an undo could not do. Pure: no call here
reads or changes anything.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import errno
import os
import re

from . import _abi
from ._errors import first_line

LOG_TAIL_LINES = 30

# Attach modes as `ip -json link` names them, and `ip link set` keywords.
IP_KEYWORDS = {"native": "xdpdrv", "generic": "xdpgeneric",
               "offload": "xdpoffload"}


def verifier_tail(stderr: str | None, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of the verifier log in bpftool's stderr (the whole
    stderr's tail when there is no log)."""
    text = stderr or ""
    begin = text.find("-- BEGIN PROG LOAD LOG --")
    end = text.find("-- END PROG LOAD LOG --")
    if begin >= 0 and end > begin:
        text = text[begin + len("-- BEGIN PROG LOAD LOG --"):end]
    kept = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def load_failure(stderr: str | None, obj: str, program: str) -> str:
    """The sentence for a failed `bpftool prog loadall`."""
    err = stderr or ""
    reuse = re.search(r"couldn't reuse pinned map at '([^']+)'", err)
    if reuse:
        return ("The pinned map %s does not have the layout of the map of "
                "the same name in %s: nothing was changed; save its entries "
                "and remove the pin, or choose another pin_dir."
                % (reuse.group(1), obj))
    if "PROG LOAD LOG" in err:
        return ("The kernel's verifier rejected %s from %s: fix the "
                "program; the program attached before was left as it was. "
                "The verifier log ends with:\n%s"
                % (program, obj, verifier_tail(err)))
    errors = [line for line in err.splitlines() if line.startswith("Error")]
    return ("bpftool could not load %s (%s): check that it is an XDP object "
            "built for this kernel; nothing was changed."
            % (obj, errors[0] if errors else first_line(err)))


def attach_argv(ip: str, ifname: str, mode: str, pin: str,
                replace: bool = False) -> list[str]:
    return ([ip] + (["-force"] if replace else [])
            + ["link", "set", "dev", ifname, IP_KEYWORDS[mode], "pinned",
               pin])


def hex_bytes(data: bytes) -> str:
    return " ".join("%02x" % b for b in data)


def link_error(e: OSError) -> str:
    """A failed bpf() link call in words: 'ERANGE: Numerical result out of
    range'. The kernel gives no message for a link, only the number."""
    return "%s: %s" % (errno.errorcode.get(e.errno, str(e.errno)),
                       os.strerror(e.errno) if e.errno else e)


# The commands that do a change by hand, for what an undo could not do.


def by_hand_update(path: str, entries: list[tuple[bytes, bytes]]) -> str:
    return "; ".join("bpftool map update pinned %s key hex %s value hex %s"
                     % (path, hex_bytes(key), hex_bytes(value))
                     for key, value in entries)


def by_hand_ports(path: str, ports: list[int], clear: list[int]) -> str:
    return by_hand_update(path, [(_abi.U32.pack(p), b"\1") for p in ports]
                          + [(_abi.U32.pack(p), b"\0") for p in clear])


def by_hand_flags(path: str, flags: int) -> str:
    return by_hand_update(path, [(_abi.U32.pack(0),
                                  _abi.SETTINGS.pack(flags, 0))])


def by_hand_slots(path: str, values: dict[int, bytes]) -> str:
    """Array map keys {key: value}, of a map that is not per-CPU."""
    return by_hand_update(path, [(_abi.U32.pack(key), values[key])
                                 for key in sorted(values)])


def lost_hits(path: str, counts: dict[int, bytes]) -> str:
    """For the per-CPU hit counters an undo could not write back: bpftool
    writes one value to every CPU, so no command puts the counts back."""
    lost = []
    for slot in sorted(counts):
        raw = counts[slot]
        packets = sum(_abi.COUNTER.unpack_from(raw, offset)[0]
                      for offset in range(0, len(raw), _abi.COUNTER.size))
        lost.append("slot %d: %d packets" % (slot, packets))
    return ("none can (bpftool writes one value to every CPU); the hits "
            "lost in %s are %s" % (path, ", ".join(lost)))

"""The floor of bench/line_rate.py: an XDP program of two instructions,
`r0 = XDP_DROP; exit`, loaded straight through bpf(2). Dropping every
frame with it costs the receiving core what veth itself costs per frame
(taking the sender's skb, giving XDP a buffer with its headroom, freeing
the skb) and nothing of any filter."""

from __future__ import annotations

import ctypes
import os
import struct
from pathlib import Path

from plugins.module_utils import _abi, _bpf

BPF_PROG_LOAD = 5
BPF_PROG_TYPE_XDP = 6
_MOV64_IMM_R0 = 0xB7            # BPF_ALU64 | BPF_MOV | BPF_K, dst r0
_EXIT = 0x95                    # BPF_JMP | BPF_EXIT
_INSN = struct.Struct("<BBhi")  # struct bpf_insn


class _ProgLoad(ctypes.Structure):
    """The leading fields of union bpf_attr for BPF_PROG_LOAD."""

    _fields_ = [("prog_type", ctypes.c_uint32),
                ("insn_cnt", ctypes.c_uint32),
                ("insns", ctypes.c_uint64),
                ("license", ctypes.c_uint64),
                ("log_level", ctypes.c_uint32),
                ("log_size", ctypes.c_uint32),
                ("log_buf", ctypes.c_uint64),
                ("kern_version", ctypes.c_uint32),
                ("prog_flags", ctypes.c_uint32),
                ("prog_name", ctypes.c_char * 16)]


def pin_drop_program(pin: Path) -> Path:
    """Load the floor and pin it at pin (for `ip link ... pinned`)."""
    code = _INSN.pack(_MOV64_IMM_R0, 0, 0, _abi.XDP_DROP) + _INSN.pack(
        _EXIT, 0, 0, 0)
    insns = ctypes.create_string_buffer(code, len(code))
    gpl = ctypes.create_string_buffer(b"GPL")
    attr = _ProgLoad(prog_type=BPF_PROG_TYPE_XDP, insn_cnt=2,
                     insns=ctypes.addressof(insns),
                     license=ctypes.addressof(gpl), prog_name=b"fplr_drop")
    fd = _bpf.bpf(BPF_PROG_LOAD, attr, "load the XDP_DROP floor")
    try:
        _bpf.obj_pin(fd, str(pin))
    finally:
        os.close(fd)
    return pin

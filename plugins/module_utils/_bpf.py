# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bpf() syscall through ctypes: pinned objects, maps, test runs.

Private to this collection. Targets need nothing but Python 3 for this:
no libbpf binding, no pip package, no process per map entry. The link
commands are in _bpf_link.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import ctypes
import errno
import os
import platform
from typing import TypeVar

# Syscall numbers of bpf(2) by machine.
_SYSCALL_NR = {"x86_64": 321, "aarch64": 280, "armv7l": 386, "ppc64le": 361,
               "s390x": 351, "riscv64": 280}

# Commands of include/uapi/linux/bpf.h.
BPF_MAP_CREATE = 0
BPF_MAP_LOOKUP_ELEM = 1
BPF_MAP_UPDATE_ELEM = 2
BPF_MAP_DELETE_ELEM = 3
BPF_MAP_GET_NEXT_KEY = 4
BPF_OBJ_PIN = 6
BPF_OBJ_GET = 7
BPF_PROG_TEST_RUN = 10
BPF_PROG_GET_FD_BY_ID = 13
BPF_MAP_GET_FD_BY_ID = 14
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_MAP_LOOKUP_BATCH = 24
BPF_MAP_UPDATE_BATCH = 26
BPF_MAP_DELETE_BATCH = 27

BPF_ANY = 0

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class BpfError(OSError):
    """A failed bpf() command, with the command named in the message. For a
    batch command, `done` is how many leading elements it had handled."""

    done = 0


class _MapElem(ctypes.Structure):
    _fields_ = [("map_fd", ctypes.c_uint32), ("pad", ctypes.c_uint32),
                ("key", ctypes.c_uint64), ("value", ctypes.c_uint64),
                ("flags", ctypes.c_uint64)]


class _MapBatch(ctypes.Structure):
    _fields_ = [("in_batch", ctypes.c_uint64), ("out_batch", ctypes.c_uint64),
                ("keys", ctypes.c_uint64), ("values", ctypes.c_uint64),
                ("count", ctypes.c_uint32), ("map_fd", ctypes.c_uint32),
                ("elem_flags", ctypes.c_uint64), ("flags", ctypes.c_uint64)]


class _ObjPath(ctypes.Structure):
    _fields_ = [("pathname", ctypes.c_uint64), ("bpf_fd", ctypes.c_uint32),
                ("file_flags", ctypes.c_uint32)]


class _GetFdById(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint32), ("next_id", ctypes.c_uint32),
                ("open_flags", ctypes.c_uint32)]


class _InfoByFd(ctypes.Structure):
    _fields_ = [("bpf_fd", ctypes.c_uint32), ("info_len", ctypes.c_uint32),
                ("info", ctypes.c_uint64)]


class _TestRun(ctypes.Structure):
    _fields_ = [("prog_fd", ctypes.c_uint32), ("retval", ctypes.c_uint32),
                ("data_size_in", ctypes.c_uint32),
                ("data_size_out", ctypes.c_uint32),
                ("data_in", ctypes.c_uint64), ("data_out", ctypes.c_uint64),
                ("repeat", ctypes.c_uint32), ("duration", ctypes.c_uint32),
                ("ctx_size_in", ctypes.c_uint32),
                ("ctx_size_out", ctypes.c_uint32),
                ("ctx_in", ctypes.c_uint64), ("ctx_out", ctypes.c_uint64),
                ("flags", ctypes.c_uint32), ("cpu", ctypes.c_uint32),
                ("batch_size", ctypes.c_uint32)]


class _MapCreate(ctypes.Structure):
    _fields_ = [("map_type", ctypes.c_uint32), ("key_size", ctypes.c_uint32),
                ("value_size", ctypes.c_uint32),
                ("max_entries", ctypes.c_uint32),
                ("map_flags", ctypes.c_uint32)]


class MapInfo(ctypes.Structure):
    """struct bpf_map_info, the fields this collection reads."""
    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32),
                ("key_size", ctypes.c_uint32),
                ("value_size", ctypes.c_uint32),
                ("max_entries", ctypes.c_uint32),
                ("map_flags", ctypes.c_uint32),
                ("name", ctypes.c_char * 16)]


class ProgInfo(ctypes.Structure):
    """struct bpf_prog_info, the fields this collection reads."""
    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32),
                ("tag", ctypes.c_uint8 * 8),
                ("jited_prog_len", ctypes.c_uint32),
                ("xlated_prog_len", ctypes.c_uint32),
                ("jited_prog_insns", ctypes.c_uint64),
                ("xlated_prog_insns", ctypes.c_uint64),
                ("load_time", ctypes.c_uint64),
                ("created_by_uid", ctypes.c_uint32),
                ("nr_map_ids", ctypes.c_uint32),
                ("map_ids", ctypes.c_uint64),
                ("name", ctypes.c_char * 16)]


# The info structure _info() fills and returns.
_Info = TypeVar("_Info", MapInfo, ProgInfo)


def _syscall_nr() -> int:
    machine = platform.machine()
    if machine not in _SYSCALL_NR:
        raise BpfError(errno.ENOSYS,
                       "bpf(): unsupported machine %s" % machine)
    return _SYSCALL_NR[machine]


def bpf(cmd: int, attr: ctypes.Structure, what: str) -> int:
    """Run one bpf() command on a ctypes structure; raise BpfError."""
    size = ctypes.sizeof(attr)
    ret = _libc.syscall(_syscall_nr(), ctypes.c_int(cmd),
                        ctypes.byref(attr), ctypes.c_uint(size))
    if ret < 0:
        err = ctypes.get_errno()
        raise BpfError(err, "%s: %s" % (what, os.strerror(err)))
    return ret


def _addr(buf: ctypes.Array | None) -> int:
    return ctypes.addressof(buf) if buf is not None else 0


def possible_cpus() -> int:
    """Number of possible CPUs: the slot count of a per-CPU map value."""
    with open("/sys/devices/system/cpu/possible") as f:
        spec = f.read().strip()
    count = 0
    for part in spec.split(","):
        lo, _sep, hi = part.partition("-")
        count += int(hi or lo) - int(lo) + 1
    return count


def obj_get(path: str) -> int:
    """An fd for a pinned map or program."""
    buf = ctypes.create_string_buffer(path.encode())
    attr = _ObjPath(pathname=_addr(buf))
    return bpf(BPF_OBJ_GET, attr, "open pinned object %s" % path)


def obj_pin(fd: int, path: str) -> None:
    buf = ctypes.create_string_buffer(path.encode())
    attr = _ObjPath(pathname=_addr(buf), bpf_fd=fd)
    bpf(BPF_OBJ_PIN, attr, "pin object at %s" % path)


def prog_fd_by_id(prog_id: int) -> int:
    attr = _GetFdById(id=prog_id)
    return bpf(BPF_PROG_GET_FD_BY_ID, attr, "open program id %d" % prog_id)


def map_fd_by_id(map_id: int) -> int:
    attr = _GetFdById(id=map_id)
    return bpf(BPF_MAP_GET_FD_BY_ID, attr, "open map id %d" % map_id)


def _info(fd: int, info: _Info, what: str) -> _Info:
    attr = _InfoByFd(bpf_fd=fd, info_len=ctypes.sizeof(info),
                     info=ctypes.addressof(info))
    bpf(BPF_OBJ_GET_INFO_BY_FD, attr, what)
    return info


def map_info(fd: int) -> MapInfo:
    return _info(fd, MapInfo(), "read map info")


def prog_info(fd: int, map_ids: ctypes.Array | None = None) -> ProgInfo:
    """Program info; with map_ids (a ctypes u32 array) also its map ids."""
    info = ProgInfo()
    if map_ids is not None:
        info.nr_map_ids = len(map_ids)
        info.map_ids = ctypes.addressof(map_ids)
    return _info(fd, info, "read program info")


def create_map(map_type: int, key_size: int, value_size: int,
               max_entries: int, flags: int = 0) -> int:
    """A new unpinned map; used to probe that bpf() works."""
    attr = _MapCreate(map_type=map_type, key_size=key_size,
                      value_size=value_size, max_entries=max_entries,
                      map_flags=flags)
    return bpf(BPF_MAP_CREATE, attr, "create a map")


class Map:
    """A map opened from its pin or id, with element and batch access.

    Keys and values are bytes of the map's key and value size; for per-CPU
    maps a value is the concatenation of every CPU's slot.
    """

    PERCPU_TYPES = (5, 6, 10)   # PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH

    def __init__(self, fd: int) -> None:
        self.fd = fd
        info = map_info(fd)
        self.name = info.name.decode()
        self.map_type = info.type
        self.key_size = info.key_size
        self.value_size = info.value_size
        self.max_entries = info.max_entries
        self.flags = info.map_flags
        self.id = info.id
        self.percpu = self.map_type in self.PERCPU_TYPES
        self.slot_size = (self.value_size + 7) // 8 * 8
        self.full_value_size = (self.slot_size * possible_cpus()
                                if self.percpu else self.value_size)

    @classmethod
    def open_pinned(cls, path: str) -> Map:
        return cls(obj_get(path))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Map:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _elem(self, cmd: int, key: bytes, value: bytes | None = None,
              flags: int = 0, what: str = "map") -> ctypes.Array | None:
        kbuf = ctypes.create_string_buffer(key, self.key_size)
        vbuf = None
        if value is not None:
            vbuf = ctypes.create_string_buffer(value, self.full_value_size)
        attr = _MapElem(map_fd=self.fd, key=_addr(kbuf), value=_addr(vbuf),
                        flags=flags)
        bpf(cmd, attr, "%s %s" % (what, self.name))
        return vbuf

    def lookup(self, key: bytes) -> bytes | None:
        """The value for key, or None when there is none."""
        buf = ctypes.create_string_buffer(self.full_value_size)
        kbuf = ctypes.create_string_buffer(key, self.key_size)
        attr = _MapElem(map_fd=self.fd, key=_addr(kbuf), value=_addr(buf))
        try:
            bpf(BPF_MAP_LOOKUP_ELEM, attr, "look up in map %s" % self.name)
        except BpfError as e:
            if e.errno == errno.ENOENT:
                return None
            raise
        return buf.raw

    def update(self, key: bytes, value: bytes, flags: int = BPF_ANY
               ) -> None:
        self._elem(BPF_MAP_UPDATE_ELEM, key, value, flags, "update map")

    def delete(self, key: bytes) -> bool:
        """Delete key; False when it was not there."""
        try:
            self._elem(BPF_MAP_DELETE_ELEM, key, what="delete from map")
        except BpfError as e:
            if e.errno == errno.ENOENT:
                return False
            raise
        return True

    def keys(self) -> list[bytes]:
        """Every key, walked with GET_NEXT_KEY (works on every map type)."""
        out = []
        cur = None
        nbuf = ctypes.create_string_buffer(self.key_size)
        while True:
            kbuf = (ctypes.create_string_buffer(cur, self.key_size)
                    if cur is not None else None)
            attr = _MapElem(map_fd=self.fd, key=_addr(kbuf),
                            value=_addr(nbuf))
            try:
                bpf(BPF_MAP_GET_NEXT_KEY, attr,
                    "walk map %s" % self.name)
            except BpfError as e:
                if e.errno == errno.ENOENT:
                    return out
                raise
            cur = nbuf.raw
            out.append(cur)

    def update_batch(self, keys: bytes, values: bytes) -> None:
        """Write len(keys) entries in one call; keys/values are bytes.

        On a failure the BpfError's `done` is how many leading entries the
        kernel had written before it stopped."""
        count = len(keys) // self.key_size
        if not count:
            return
        kbuf = ctypes.create_string_buffer(keys, len(keys))
        vbuf = ctypes.create_string_buffer(values, len(values))
        attr = _MapBatch(keys=_addr(kbuf), values=_addr(vbuf), count=count,
                         map_fd=self.fd)
        try:
            bpf(BPF_MAP_UPDATE_BATCH, attr,
                "batch update of map %s" % self.name)
        except BpfError as e:
            e.done = attr.count
            raise

    def delete_batch(self, keys: bytes) -> int:
        """Delete every key; a key that is already gone counts as deleted
        (the kernel stops at it, and the call goes on after it). Returns
        how many were there. On another failure the BpfError's `done` is
        how many leading keys are gone."""
        count = len(keys) // self.key_size
        offset = deleted = 0
        while offset < count:
            kbuf = ctypes.create_string_buffer(
                keys[offset * self.key_size:], (count - offset)
                * self.key_size)
            attr = _MapBatch(keys=_addr(kbuf), count=count - offset,
                             map_fd=self.fd)
            try:
                bpf(BPF_MAP_DELETE_BATCH, attr,
                    "batch delete from map %s" % self.name)
            except BpfError as e:
                if e.errno != errno.ENOENT:
                    e.done = offset + attr.count
                    raise
                deleted += attr.count
                offset += attr.count + 1     # skip the key already gone
                continue
            deleted += attr.count
            offset = count
        return deleted

    def lookup_batch(self, chunk: int = 4096) -> tuple[bytes, bytes]:
        """Every (keys, values) as two bytes objects; arrays and hashes."""
        keys, values = [], []
        kbuf = ctypes.create_string_buffer(self.key_size * chunk)
        vbuf = ctypes.create_string_buffer(self.full_value_size * chunk)
        token = ctypes.create_string_buffer(max(self.key_size, 8))
        first = True
        while True:
            attr = _MapBatch(in_batch=0 if first else _addr(token),
                             out_batch=_addr(token), keys=_addr(kbuf),
                             values=_addr(vbuf), count=chunk, map_fd=self.fd)
            done = False
            try:
                bpf(BPF_MAP_LOOKUP_BATCH, attr,
                    "batch lookup of map %s" % self.name)
            except BpfError as e:
                if e.errno != errno.ENOENT:
                    raise
                done = True
            n = attr.count
            keys.append(kbuf.raw[:n * self.key_size])
            values.append(vbuf.raw[:n * self.full_value_size])
            first = False
            if done:
                return b"".join(keys), b"".join(values)


class TestRun:
    """Outcome of one BPF_PROG_TEST_RUN."""

    def __init__(self, retval: int, duration_ns: int, data_out: bytes
                 ) -> None:
        self.retval = retval
        self.duration_ns = duration_ns
        self.data_out = data_out


def prog_test_run(prog_fd: int, data: bytes, repeat: int = 1,
                  ctx: bytes | None = None) -> TestRun:
    """Run a program on one frame (repeat times); duration is per run."""
    din = ctypes.create_string_buffer(data, len(data))
    dout = ctypes.create_string_buffer(len(data) + 256)
    cbuf = ctypes.create_string_buffer(ctx, len(ctx)) if ctx else None
    attr = _TestRun(prog_fd=prog_fd, data_size_in=len(data),
                    data_size_out=len(dout), data_in=_addr(din),
                    data_out=_addr(dout), repeat=repeat,
                    ctx_size_in=len(ctx) if ctx else 0, ctx_in=_addr(cbuf))
    bpf(BPF_PROG_TEST_RUN, attr, "test run")
    return TestRun(attr.retval, attr.duration,
                   dout.raw[:attr.data_size_out])

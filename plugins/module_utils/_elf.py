# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""The programs and maps of a BPF object file, read from its ELF.

Private to this collection. Needs nothing but the standard library, so the
boot command carries it without the compiler driver (_build).
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import hashlib
import struct
from typing import Iterator

from ._errors import FastpathError

EM_BPF = 247
SHT_SYMTAB = 2
SHF_EXECINSTR = 0x4
STT_FUNC = 2
STT_SECTION = 3
SHN_LORESERVE = 0xFF00
SHN_XINDEX = 0xFFFF

_SHDR = "IIQQQQIIQQ"   # Elf64_Shdr
_SYM = "IBBHQQ"        # Elf64_Sym


def _cstring(data: bytes, offset: int) -> str:
    end = data.index(b"\0", offset)
    return data[offset:end].decode("utf-8", "replace")


def _sections(data: bytes, order: str) -> list[dict]:
    shoff, = struct.unpack_from(order + "Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from(order + "HHH", data,
                                                    0x3A)
    first = struct.unpack_from(order + _SHDR, data, shoff)
    if shnum == 0:
        shnum = first[5]
    if shstrndx == SHN_XINDEX:
        shstrndx = first[6]
    sections = []
    for index in range(shnum):
        (name, kind, flags, _addr, offset, size, link, _info, _align,
         entsize) = struct.unpack_from(order + _SHDR, data,
                                       shoff + index * shentsize)
        sections.append({"name": name, "type": kind, "flags": flags,
                         "offset": offset, "size": size, "link": link,
                         "entsize": entsize})
    names = sections[shstrndx]["offset"]
    for section in sections:
        section["name"] = _cstring(data, names + section["name"])
    return sections


def _symbols(data: bytes, order: str, sections: list[dict]
             ) -> Iterator[tuple[str, int, int, int]]:
    """(name, type, section index, value) of every symbol."""
    for symtab in sections:
        if symtab["type"] != SHT_SYMTAB:
            continue
        strings = sections[symtab["link"]]["offset"]
        size = symtab["entsize"] or struct.calcsize(_SYM)
        for start in range(symtab["offset"],
                           symtab["offset"] + symtab["size"], size):
            name, info, _other, shndx, value, _size = struct.unpack_from(
                order + _SYM, data, start)
            yield _cstring(data, strings + name), info & 0xF, shndx, value


def elf_names(data: bytes) -> dict:
    """Programs ({name, section}) and map names of a BPF object, in the
    order they appear in it. Programs are the functions of executable
    sections other than .text (where subprograms live); maps are the
    symbols of .maps."""
    if data[:4] != b"\x7fELF":
        raise ValueError("not an ELF file")
    if data[4:5] != b"\x02":
        raise ValueError("not a 64-bit ELF file")
    order = {b"\x01": "<", b"\x02": ">"}.get(data[5:6])
    if order is None:
        raise ValueError("unknown ELF byte order")
    try:
        machine, = struct.unpack_from(order + "H", data, 18)
        if machine != EM_BPF:
            raise ValueError("ELF machine %d is not BPF" % machine)
        sections = _sections(data, order)
        programs, maps = [], []
        for name, kind, shndx, value in _symbols(data, order, sections):
            if not name or kind == STT_SECTION or shndx == 0 or \
                    shndx >= SHN_LORESERVE:
                continue
            section = sections[shndx]
            if kind == STT_FUNC and section["flags"] & SHF_EXECINSTR and \
                    section["name"] != ".text":
                programs.append((shndx, value, name, section["name"]))
            elif section["name"] == ".maps":
                maps.append((value, name))
    except (struct.error, IndexError) as e:
        raise ValueError("truncated or corrupt ELF file (%s)" % e)
    return {
        "programs": [{"name": name, "section": section}
                     for _i, _v, name, section in sorted(programs)],
        "maps": [name for _v, name in sorted(maps)],
    }


def object_info(path: str) -> dict:
    """sha256, size, programs and maps of an object file."""
    with open(path, "rb") as f:
        data = f.read()
    info = elf_names(data)
    info["sha256"] = hashlib.sha256(data).hexdigest()
    info["size"] = len(data)
    return info


def map_names(path: str) -> list[str]:
    """Names of the maps that an object declares in its .maps section (BTF
    style, as libbpf reads them), sorted."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return sorted(elf_names(data)["maps"])
    except ValueError as e:
        raise FastpathError("%s is not a BPF object (%s): build it with "
                            "vos.fastpath.bpf_build or 'make'." % (path, e))

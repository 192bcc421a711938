# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""CO-RE builds behind vos.fastpath.bpf_build.

Private to this collection. The compile flags of SPEC-DATAPLANE.md are
built here and nowhere else; every tool runs as an argv list with LANG=C.
A build records its inputs (flags, compiler version, kernel BTF digest and
the digest of the source and of every header it includes) in a JSON stamp
next to the object, so that an unchanged build is not run again. The ELF
reader that names the programs and maps of an object needs nothing but the
standard library.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import platform
import struct

from . import _files
from ._facts import PACKAGES, TOOL_DIRS

STAMP_SUFFIX = ".inputs.json"
STAMP_FORMAT = 1
SYSTEM_INCLUDE = "/usr/include"

# `uname -m` to the __TARGET_ARCH_* name of libbpf's bpf_tracing.h.
TARGET_ARCH = {"x86_64": "x86", "i686": "x86", "aarch64": "arm64",
               "armv7l": "arm", "s390x": "s390", "ppc64le": "powerpc",
               "riscv64": "riscv", "loongarch64": "loongarch"}

# Lines of the compiler's stderr kept in a failure's msg (all in stderr).
MSG_TAIL_LINES = 30


class BuildError(Exception):
    """A failure with the sentence for the user and the tool's output."""

    def __init__(self, msg: str, **details) -> None:
        super(BuildError, self).__init__(msg)
        self.msg = msg
        self.details = details


# --- flags and commands ----------------------------------------------------

def target_arch(machine: str | None = None) -> str:
    machine = machine or platform.machine()
    return TARGET_ARCH.get(machine, machine)


def compile_flags(vmlinux_dir: str, include_dirs: list[str],
                  cflags: list[str], machine: str | None = None
                  ) -> list[str]:
    """The flags of SPEC-DATAPLANE.md, then the user's extra cflags."""
    flags = ["-target", "bpf", "-O2", "-mcpu=v3", "-g",
             "-D__TARGET_ARCH_%s" % target_arch(machine), "-I", vmlinux_dir]
    for directory in include_dirs:
        flags += ["-I", directory]
    flags += ["-I", SYSTEM_INCLUDE,
              "-Wall", "-Wno-unused", "-Wno-pointer-sign"]
    return flags + list(cflags)


def compile_argv(clang: str, flags: list[str], src: str, out: str
                 ) -> list[str]:
    return [clang] + flags + ["-c", src, "-o", out]


def deps_argv(clang: str, flags: list[str], src: str) -> list[str]:
    """Every file the preprocessor reads; a missing header (vmlinux.h not
    generated yet, in check mode) is listed rather than fatal."""
    return [clang] + flags + ["-M", "-MG", src]


def btf_dump_argv(bpftool: str, btf: str) -> list[str]:
    return [bpftool, "btf", "dump", "file", btf, "format", "c"]


def run(module, argv: list[str], cwd: str | None = None):
    return module.run_command(argv, cwd=cwd,
                              environ_update={"LANG": "C", "LC_ALL": "C"})


def find_tool(module, name: str, package_key: str) -> str:
    """The path of a tool given by name or path, or a BuildError that names
    the package to install."""
    path = module.get_bin_path(name, opt_dirs=TOOL_DIRS)
    if not path:
        raise BuildError(
            "%s was not found (looked for '%s'): install the package %s, or "
            "set %s to its path." % (package_key, name,
                                     PACKAGES[package_key], package_key))
    return path


def _utf8(text: str | bytes) -> bytes:
    return text.encode("utf-8") if isinstance(text, str) else text


def tail(text: str, lines: int = MSG_TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


# --- files -----------------------------------------------------------------

def read_stamp(path: str) -> dict | None:
    try:
        with open(path) as f:
            stamp = json.load(f)
    except (IOError, OSError, ValueError):
        return None
    if not isinstance(stamp, dict) or stamp.get("format") != STAMP_FORMAT:
        return None
    return stamp


def write_stamp(module, path: str, stamp: dict) -> None:
    stamp = dict(stamp, format=STAMP_FORMAT)
    text = json.dumps(stamp, indent=1, sort_keys=True) + "\n"
    _files.write_atomically(path, _utf8(text), module.atomic_move)


# --- vmlinux.h -------------------------------------------------------------

def vmlinux_reasons(vmlinux_h: str, btf_sha256: str) -> list[str]:
    """Why vmlinux.h must be (re)generated from the BTF; empty if not."""
    if not os.path.exists(vmlinux_h):
        return ["%s is missing" % vmlinux_h]
    stamp = read_stamp(vmlinux_h + STAMP_SUFFIX)
    if stamp is None:
        return ["%s has no record of the BTF it was dumped from" % vmlinux_h]
    if stamp.get("btf_sha256") != btf_sha256:
        return ["the kernel BTF changed since %s was dumped" % vmlinux_h]
    if stamp.get("sha256") != _files.sha256_file(vmlinux_h):
        return ["%s was modified since it was dumped" % vmlinux_h]
    return []


def generate_vmlinux(module, bpftool: str, btf: str, btf_sha256: str,
                     vmlinux_h: str) -> None:
    """Dump the BTF as C into vmlinux.h (temp file, then rename)."""
    argv = btf_dump_argv(bpftool, btf)
    rc, out, err = run(module, argv)
    if rc != 0 or not out:
        raise BuildError(
            "bpftool could not dump the BTF of %s as C: %s"
            % (btf, tail(err) or "no output"),
            cmd=argv, rc=rc, stdout=out, stderr=err)
    data = _utf8(out)
    _files.write_atomically(vmlinux_h, data, module.atomic_move)
    write_stamp(module, vmlinux_h + STAMP_SUFFIX, {
        "btf": btf, "btf_sha256": btf_sha256,
        "sha256": hashlib.sha256(data).hexdigest()})


# --- inputs of a build -----------------------------------------------------

def parse_deps(text: str) -> list[str]:
    """The prerequisites of the make rule that `clang -M` prints."""
    text = text.replace("\\\r\n", " ").replace("\\\n", " ")
    rule = text.partition(": ")[2] or text.partition(":")[2]
    words, word, escaped = [], "", False
    for char in rule:
        if escaped:
            word += char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char.isspace():
            if word:
                words.append(word)
            word = ""
        else:
            word += char
    if word:
        words.append(word)
    return [word.replace("$$", "$") for word in words]


def compiler_version(module, clang: str) -> str:
    argv = [clang, "--version"]
    rc, out, err = run(module, argv)
    if rc != 0:
        raise BuildError("%s --version failed: %s" % (clang, tail(err)),
                         cmd=argv, rc=rc, stdout=out, stderr=err)
    return out.strip()


def dependencies(module, clang: str, flags: list[str], src: str,
                 vmlinux_h: str) -> list[str]:
    """Absolute paths of the source and every header it includes, except
    vmlinux.h (stood for by the BTF digest)."""
    argv = deps_argv(clang, flags, src)
    cwd = os.path.dirname(src)
    rc, out, err = run(module, argv, cwd=cwd)
    if rc != 0:
        raise BuildError("clang could not compile %s: %s" % (src, tail(err)),
                         cmd=argv, rc=rc, stdout=out, stderr=err)
    found = []
    for dep in parse_deps(out):
        path = os.path.abspath(os.path.join(cwd, dep))
        if path == vmlinux_h or (
                os.path.basename(dep) == os.path.basename(vmlinux_h)
                and not os.path.exists(path)):
            continue
        if path not in found:
            found.append(path)
    if src not in found:
        found.insert(0, src)
    return found


def inputs(module, clang: str, flags: list[str], src: str, dest: str,
           vmlinux_h: str, btf_sha256: str) -> dict:
    """Everything that decides the bytes of the object."""
    return {
        "argv": compile_argv(clang, flags, src, dest),
        "compiler": compiler_version(module, clang),
        "btf_sha256": btf_sha256,
        "files": dict((path, _files.sha256_file(path)) for path in
                      dependencies(module, clang, flags, src, vmlinux_h)),
    }


def build_reasons(previous: dict | None, current: dict,
                  dest_sha256: str | None) -> list[str]:
    """Why the object must be built; empty when it is up to date."""
    if dest_sha256 is None:
        reasons = ["the object does not exist"]
    elif previous is None:
        return ["there is no record of the inputs of the object"]
    elif previous.get("sha256") != dest_sha256:
        reasons = ["the object differs from the one last built"]
    else:
        reasons = []
    if previous is None:
        return reasons
    if previous.get("argv") != current["argv"]:
        reasons.append("the compile flags changed")
    if previous.get("compiler") != current["compiler"]:
        reasons.append("the compiler version changed")
    if previous.get("btf_sha256") != current["btf_sha256"]:
        reasons.append("the kernel BTF changed")
    before, after = previous.get("files") or {}, current["files"]
    for path, digest in after.items():
        if digest is None:
            reasons.append("%s is missing" % path)
        elif path not in before:
            reasons.append("%s is a new input" % path)
        elif before[path] != digest:
            reasons.append("%s changed" % path)
    for path in before:
        if path not in after:
            reasons.append("%s is no longer included" % path)
    return reasons


def compile_object(module, clang: str, flags: list[str], src: str,
                   dest: str) -> str:
    """Compile into a temporary file next to dest; return its path. On
    failure nothing is left behind and dest is untouched."""
    tmp = _files.temp_path(dest)
    argv = compile_argv(clang, flags, src, tmp)
    try:
        rc, out, err = run(module, argv, cwd=os.path.dirname(src))
        if rc != 0:
            raise BuildError(
                "clang could not compile %s: %s" % (src, tail(err)),
                cmd=compile_argv(clang, flags, src, dest), rc=rc, stdout=out,
                stderr=err)
        object_info(tmp)
    except ValueError as e:
        _files.remove(tmp)
        raise BuildError("clang wrote no usable BPF object for %s (%s): "
                         "check cflags." % (src, e), cmd=argv)
    except BaseException:
        _files.remove(tmp)   # clang removes its output itself on most errors
        raise
    return tmp


# --- ELF -------------------------------------------------------------------

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


def _symbols(data: bytes, order: str, sections: list[dict]):
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

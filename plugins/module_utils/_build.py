# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""CO-RE builds behind vos.fastpath.bpf_build.

Private to this collection. The compile flags of docs/dataplane.md are
built here and nowhere else; every tool runs as an argv list with LANG=C.
A build records its inputs (flags, compiler version, kernel BTF digest and
the digest of the source and of every header it includes) in a JSON stamp
next to the object, so that an unchanged build is not run again.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import platform
from typing import Callable

from . import _elf, _files
from ._errors import FastpathError
from ._runner import Runner

STAMP_SUFFIX = ".inputs.json"
STAMP_FORMAT = 1
SYSTEM_INCLUDE = "/usr/include"

# `uname -m` to the __TARGET_ARCH_* name of libbpf's bpf_tracing.h.
TARGET_ARCH = {"x86_64": "x86", "i686": "x86", "aarch64": "arm64",
               "armv7l": "arm", "s390x": "s390", "ppc64le": "powerpc",
               "riscv64": "riscv", "loongarch64": "loongarch"}

# Lines of the compiler's stderr kept in a failure's msg (all in stderr).
MSG_TAIL_LINES = 30


# --- flags and commands ----------------------------------------------------

def target_arch(machine: str | None = None) -> str:
    machine = machine or platform.machine()
    return TARGET_ARCH.get(machine, machine)


def compile_flags(vmlinux_dir: str, include_dirs: list[str],
                  cflags: list[str], machine: str | None = None
                  ) -> list[str]:
    """The flags of docs/dataplane.md, then the user's extra cflags."""
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


def write_stamp(path: str, stamp: dict,
                move: Callable[[str, str], None] = os.rename) -> None:
    stamp = dict(stamp, format=STAMP_FORMAT)
    text = json.dumps(stamp, indent=1, sort_keys=True) + "\n"
    _files.write_atomically(path, _utf8(text), move)


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


def generate_vmlinux(runner: Runner, bpftool: str, btf: str,
                     btf_sha256: str, vmlinux_h: str,
                     move: Callable[[str, str], None] = os.rename) -> None:
    """Dump the BTF as C into vmlinux.h (temp file, then rename)."""
    argv = btf_dump_argv(bpftool, btf)
    out, err = runner.run(
        argv, lambda rc, out, err: "bpftool could not dump the BTF of %s as "
        "C: %s" % (btf, tail(err) or "no output"))
    if not out:
        raise FastpathError("bpftool could not dump the BTF of %s as C: no "
                            "output" % btf, cmd=argv, rc=0, stdout=out,
                            stderr=err)
    data = _utf8(out)
    _files.write_atomically(vmlinux_h, data, move)
    write_stamp(vmlinux_h + STAMP_SUFFIX, {
        "btf": btf, "btf_sha256": btf_sha256,
        "sha256": hashlib.sha256(data).hexdigest()}, move)


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


def compiler_version(runner: Runner, clang: str) -> str:
    out, _err = runner.run(
        [clang, "--version"],
        lambda rc, out, err: "%s --version failed: %s" % (clang, tail(err)))
    return out.strip()


def dependencies(runner: Runner, clang: str, flags: list[str], src: str,
                 vmlinux_h: str) -> list[str]:
    """Absolute paths of the source and every header it includes, except
    vmlinux.h (stood for by the BTF digest)."""
    cwd = os.path.dirname(src)
    out, _err = runner.run(
        deps_argv(clang, flags, src),
        lambda rc, out, err: "clang could not compile %s: %s"
        % (src, tail(err)), cwd=cwd)
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


def inputs(runner: Runner, clang: str, flags: list[str], src: str,
           dest: str, vmlinux_h: str, btf_sha256: str) -> dict:
    """Everything that decides the bytes of the object."""
    return {
        "argv": compile_argv(clang, flags, src, dest),
        "compiler": compiler_version(runner, clang),
        "btf_sha256": btf_sha256,
        "files": dict((path, _files.sha256_file(path)) for path in
                      dependencies(runner, clang, flags, src, vmlinux_h)),
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


def compile_object(runner: Runner, clang: str, flags: list[str], src: str,
                   dest: str) -> str:
    """Compile into a temporary file next to dest; return its path. On
    failure nothing is left behind and dest is untouched."""
    tmp = _files.temp_path(dest)
    argv = compile_argv(clang, flags, src, tmp)
    try:
        try:
            runner.run(argv, lambda rc, out, err: "clang could not compile "
                       "%s: %s" % (src, tail(err)), cwd=os.path.dirname(src))
        except FastpathError as e:
            e.cmd = compile_argv(clang, flags, src, dest)   # not the temp
            raise
        _elf.object_info(tmp)
    except ValueError as e:
        _files.remove(tmp)
        raise FastpathError("clang wrote no usable BPF object for %s (%s): "
                            "check cflags." % (src, e), cmd=argv)
    except BaseException:
        _files.remove(tmp)   # clang removes its output itself on most errors
        raise
    return tmp

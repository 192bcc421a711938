# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""CO-RE builds behind vos.fastpath.bpf_build.

Private to this collection. The compile flags of docs/dataplane.md are
built here and nowhere else; every tool runs as an argv list with LANG=C.
A build records its inputs (flags, compiler version and the digest of the
source and of every header it includes) in a JSON stamp next to the
object, so that an unchanged build is not run again. The program needs no
header of the build host's kernel (bpf/fp_kernel.h says why), so the
object is the same on every build host with the same clang.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import json
import os
import re
from typing import Callable

from . import _elf, _files
from ._errors import FastpathError
from ._runner import Runner

STAMP_SUFFIX = ".inputs.json"
STAMP_FORMAT = 1
SYSTEM_INCLUDE = "/usr/include"

# The oldest clang that compiles the program: the shared rate-limit state
# is advanced with an atomic compare-and-exchange, which clang emits for
# BPF from version 12 on.
MIN_CLANG = 12

# Lines of the compiler's stderr kept in a failure's msg (all in stderr).
MSG_TAIL_LINES = 30


# --- flags and commands ----------------------------------------------------

def compile_flags(include_dirs: list[str], cflags: list[str]) -> list[str]:
    """The flags of docs/dataplane.md, then the user's extra cflags."""
    flags = ["-target", "bpf", "-O2", "-mcpu=v3", "-g"]
    for directory in include_dirs:
        flags += ["-I", directory]
    flags += ["-I", SYSTEM_INCLUDE,
              "-Wall", "-Wno-unused", "-Wno-pointer-sign"]
    return flags + list(cflags)


def compile_argv(clang: str, flags: list[str], src: str, out: str
                 ) -> list[str]:
    return [clang] + flags + ["-c", src, "-o", out]


def deps_argv(clang: str, flags: list[str], src: str) -> list[str]:
    """Every file the preprocessor reads; a missing header is listed
    rather than fatal (the compile then says what is missing)."""
    return [clang] + flags + ["-M", "-MG", src]


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


def check_compiler(clang: str, version: str) -> None:
    """Refuse a clang too old for the program, before it fails obscurely
    (clang 11 crashes on the compare-and-exchange)."""
    found = re.search(r"clang version (\d+)\.(\d+)(?:\.(\d+))?", version)
    if found and int(found.group(1)) < MIN_CLANG:
        raise FastpathError(
            "%s is clang %s, and the program needs clang %d or later (for "
            "its atomic compare-and-exchange): build on a host with a newer "
            "clang (fastpath_build_host), or set clang."
            % (clang, ".".join(g for g in found.groups() if g), MIN_CLANG))


def dependencies(runner: Runner, clang: str, flags: list[str], src: str
                 ) -> list[str]:
    """Absolute paths of the source and every header it includes."""
    cwd = os.path.dirname(src)
    out, _err = runner.run(
        deps_argv(clang, flags, src),
        lambda rc, out, err: "clang could not compile %s: %s"
        % (src, tail(err)), cwd=cwd)
    found = []
    for dep in parse_deps(out):
        path = os.path.abspath(os.path.join(cwd, dep))
        if path not in found:
            found.append(path)
    if src not in found:
        found.insert(0, src)
    return found


def inputs(runner: Runner, clang: str, flags: list[str], src: str,
           dest: str) -> dict:
    """Everything that decides the bytes of the object."""
    compiler = compiler_version(runner, clang)
    check_compiler(clang, compiler)
    return {
        "argv": compile_argv(clang, flags, src, dest),
        "compiler": compiler,
        "files": dict((path, _files.sha256_file(path)) for path in
                      dependencies(runner, clang, flags, src)),
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

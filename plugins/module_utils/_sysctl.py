# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kernel sysctls behind vos.fastpath.sysctls: /proc/sys and sysctl.d.

Private to this collection. A sysctl is read and written through its file
under /proc/sys (a `root` argument, so that tests give a directory of their
own); values compare with their whitespace normalised, as the kernel shows
multi-value sysctls with tabs. Writing several is all or nothing: a refused
write puts back the ones already written.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import os
import re

from ._errors import FastpathError

PROC_SYS = "/proc/sys"

FILE_HEADER = ("# Managed by vos.fastpath.sysctls: a change here is undone "
               "by the next run.\n")

# Dotted names only: no path separators or empty parts, so that a name can
# never point outside /proc/sys.
_NAME = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+$")


def normalise(value: str) -> str:
    """A value as compared: whitespace runs become one space."""
    return " ".join(value.split())


def value_text(name: str, value: object) -> str:
    """A value as written to the kernel and the file."""
    if value is None:
        text = ""
    elif isinstance(value, bool):
        text = "1" if value else "0"
    elif isinstance(value, (list, tuple)):
        text = " ".join(str(v) for v in value)
    else:
        text = normalise(str(value))
    if not text or "\n" in str(value).strip():
        raise FastpathError(
            "The value of %s is %r: give one line of text, such as 50 or "
            "'4096 131072 6291456'." % (name, value))
    return text


def proc_path(name: str, root: str) -> str:
    return os.path.join(root, *name.split("."))


def read_value(name: str, root: str) -> str:
    """The live value of a sysctl, normalised; OSError when unreadable."""
    with open(proc_path(name, root)) as f:
        return normalise(f.read())


def read_live(names: list[str], root: str) -> dict[str, str]:
    """{name: live value} of every name; one FastpathError that lists every
    name this kernel does not have, before anything is written."""
    bad = [n for n in names if not _NAME.match(n)]
    if bad:
        raise FastpathError(
            "%s %s not a sysctl name: write names with dots, such as "
            "net.core.busy_poll." % (", ".join(bad),
                                     "is" if len(bad) == 1 else "are"))
    unknown = [n for n in names if not os.path.isfile(proc_path(n, root))]
    if unknown:
        raise FastpathError(
            "This kernel has no sysctl %s (nothing under %s): check the "
            "spelling, load the kernel module that provides %s, or set %s "
            "from the host (a container sees only some net.* sysctls)."
            % (", ".join(unknown), root,
               "it" if len(unknown) == 1 else "them",
               "it" if len(unknown) == 1 else "them"))
    live = {}
    for name in names:
        try:
            live[name] = read_value(name, root)
        except OSError as e:
            raise FastpathError(
                "Could not read the sysctl %s (%s): run as root, and leave "
                "out write-only sysctls." % (name, e.strerror or e))
    return live


def write_proc(path: str, text: str) -> None:
    """One write(2) to a /proc/sys file: the kernel answers a refused
    value with an error of that call (EINVAL, EPERM), which a buffered
    write would only show at close."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def write_live(name: str, value: str, root: str) -> None:
    """Write one sysctl; OSError when the kernel refuses the value. A
    value the kernel changes on the way (clamped, rounded) is refused too,
    or every later run would write it again."""
    write_proc(proc_path(name, root), value + "\n")
    now = read_value(name, root)
    if now != value:
        raise OSError(0, "the kernel keeps %r instead" % now)


def changes(wanted: dict[str, str], live: dict[str, str]) -> list[str]:
    """Names whose live value differs from the wanted one, in order."""
    return [n for n, v in wanted.items() if live[n] != v]


def current(name: str, root: str) -> str | None:
    """The live value of a sysctl, or None when it cannot be read."""
    try:
        return read_value(name, root)
    except OSError:
        return None


def apply_live(wanted: dict[str, str], names: list[str],
               before: dict[str, str], root: str) -> None:
    """Write the names in order; when one is refused, put back the ones
    already written and raise a FastpathError that says so."""
    for i, name in enumerate(names):
        try:
            write_live(name, wanted[name], root)
        except OSError as e:
            written = names[:i]
            # A value the kernel took and then changed is put back too.
            touched = written + ([name] if current(name, root) != before[name]
                                 else [])
            undo_failed = put_back(touched, before, root)
            raise FastpathError(
                "The kernel refused %s = %s (%s): give a value it accepts%s"
                % (name, wanted[name], e.strerror or e,
                   undo_message(written, undo_failed)),
                undo_failed=undo_failed)


def put_back(names: list[str], before: dict[str, str], root: str
             ) -> list[str]:
    """Write back the values of before, last first; the names that could
    not be put back."""
    failed = []
    for name in reversed(names):
        try:
            write_live(name, before[name], root)
        except OSError:
            failed.append(name)
    return failed


def undo_message(written: list[str], undo_failed: list[str]) -> str:
    if undo_failed:
        return ("; %s could not be put back and must be set by hand."
                % ", ".join(undo_failed))
    if written:
        return "; %s %s put back." % (", ".join(written),
                                      "was" if len(written) == 1 else "were")
    return "; nothing was changed."


def file_content(wanted: dict[str, str]) -> str:
    """The sysctl.d file for these values, in their order."""
    return FILE_HEADER + "".join("%s = %s\n" % item for item in wanted.items())


def read_file(path: str) -> str | None:
    """The text of a file, or None when it does not exist."""
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise FastpathError("Could not read %s (%s): check that it is a "
                            "readable text file." % (path, e))


def live_text(values: dict[str, str]) -> str:
    """Values as sysctl -a shows them, for a diff."""
    return "".join("%s = %s\n" % item for item in values.items())

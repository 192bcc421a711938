# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one error type of this collection.

Private to this collection. Every failure that a module reports is a
FastpathError: one sentence that says what is wrong and what to do, and,
when a tool failed, its command line, rc, stdout and stderr. Each module
turns it into fail_json in one place (fail_args()); the boot command
prints it.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type


class FastpathError(Exception):
    """What went wrong, what to do, and the command that failed."""

    def __init__(self, msg: str, cmd: list[str] | None = None,
                 rc: int | None = None, stdout: str = "", stderr: str = "",
                 **result: object) -> None:
        super(FastpathError, self).__init__(msg)
        self.msg = msg
        self.cmd = cmd
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        # Keys for the module's result besides the command's (undo_failed).
        self.result = result

    def __str__(self) -> str:
        return self.msg

    def fail_args(self) -> dict:
        """The keyword arguments of module.fail_json()."""
        args = dict(self.result, msg=self.msg)
        if self.cmd is not None:
            args["cmd"] = " ".join(self.cmd)
        if self.rc is not None:
            args.update(rc=self.rc, stdout=self.stdout, stderr=self.stderr)
        return args


def first_line(text: str | None) -> str:
    """The first line of a tool's output that is not blank."""
    lines = [line.strip() for line in (text or "").splitlines()
             if line.strip()]
    return lines[0] if lines else ""

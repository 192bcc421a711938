# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one way this collection runs a tool.

Private to this collection. A command is an argv list, never a shell
string; it runs with LANG=C and LC_ALL=C so that its messages are the
ones this code reads; rc is checked and, on a failure, the FastpathError
carries the command, rc, stdout and stderr. `module` is an AnsibleModule,
or the boot command's stand-in with the same run_command() and
get_bin_path().
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import os
import shutil
import subprocess
from typing import Callable, Union

from ._errors import FastpathError

COMMAND_ENV = {"LANG": "C", "LC_ALL": "C"}

# Where distributions put ip and bpftool, which may not be on a PATH.
TOOL_DIRS = ["/usr/sbin", "/sbin"]

# Package that provides each tool, per distribution family.
PACKAGES = {
    "bpftool": "bpftool (Debian 12), linux-tools-$(uname -r) (Ubuntu) "
               "or bpftool (RHEL 9)",
    "clang": "clang (Debian, Ubuntu, RHEL)",
    "ip": "iproute2 (Debian, Ubuntu) or iproute (RHEL)",
    "libbpf": "libbpf-dev (Debian, Ubuntu) or libbpf-devel (RHEL)",
    "sysctl": "procps (Debian, Ubuntu, RHEL)",
    "mount": "mount (Debian, Ubuntu) or util-linux (RHEL)",
}


class LocalTools:
    """What Runner needs of an AnsibleModule, without Ansible: for the
    boot and metrics commands, which run on the host by themselves."""

    def get_bin_path(self, name: str, required: bool = False,
                     opt_dirs: list[str] | None = None) -> str | None:
        return shutil.which(name, path=os.pathsep.join(
            list(opt_dirs or []) + os.environ.get("PATH", "").split(
                os.pathsep)))

    def run_command(self, argv: list[str],
                    environ_update: dict[str, str] | None = None,
                    cwd: str | None = None) -> tuple[int, str, str]:
        env = dict(os.environ, **(environ_update or {}))
        # No AnsibleModule here, so no run_command to call instead.
        proc = subprocess.run(  # pylint: disable=ansible-bad-function
            argv, env=env, cwd=cwd, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, universal_newlines=True, check=False)
        return proc.returncode, proc.stdout, proc.stderr


# A failure's sentence, or a function of (rc, stdout, stderr) that makes it.
Message = Union[str, Callable[[int, str, str], str]]


class Runner:
    """Finds and runs the tools of one module run."""

    def __init__(self, module) -> None:
        self.module = module
        self._paths: dict[str, str | None] = {}

    def find(self, name: str) -> str | None:
        """The path of a tool given by name or path, or None."""
        if name not in self._paths:
            self._paths[name] = self.module.get_bin_path(
                name, opt_dirs=TOOL_DIRS)
        return self._paths[name]

    def path(self, name: str, package: str | None = None,
             option: str | None = None) -> str:
        """The path of a tool, or a FastpathError that names the package
        to install (and the option that names the tool, if any)."""
        found = self.find(name)
        if found:
            return found
        package = package or name
        where = PACKAGES.get(package, package)
        if option:
            raise FastpathError(
                "%s was not found (looked for '%s'): install the package %s, "
                "or set %s to its path." % (package, name, where, option))
        raise FastpathError("%s was not found: install the package %s."
                            % (name, where))

    def run(self, argv: list[str], msg: Message, cwd: str | None = None
            ) -> tuple[str, str]:
        """(stdout, stderr) of a command that must succeed."""
        rc, out, err = self.module.run_command(
            argv, cwd=cwd, environ_update=COMMAND_ENV)
        if rc != 0:
            text = msg(rc, out, err) if callable(msg) else msg
            raise FastpathError(text, cmd=argv, rc=rc, stdout=out,
                                stderr=err)
        return out, err

    def try_run(self, argv: list[str], cwd: str | None = None
                ) -> tuple[int, str, str]:
        """(rc, stdout, stderr) of a command whose failure is an answer
        (a probe), not an error."""
        return self.module.run_command(argv, cwd=cwd,
                                       environ_update=COMMAND_ENV)

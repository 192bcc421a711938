"""Run one of sipvicious's tools with a User-Agent of our choosing.

    python3 sipvicious_ua.py 'Linphone/5.2.0' svwar -e 100-1100 198.18.106.11

sipvicious 0.3.3 (Debian 12) writes `User-Agent: friendly-scanner` into
every request and has no option to change it: this replaces the default
of its request builder (libs/svhelper.makeRequest, where the header is
made) and runs the tool's own main() with the rest of the arguments.
"""

from __future__ import annotations

import importlib
import sys

SIPVICIOUS = "/usr/share/sipvicious"
TOOLS = ("svmap", "svwar", "svcrack")


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] not in TOOLS:
        sys.exit("usage: sipvicious_ua.py USER-AGENT {%s} [tool options]"
                 % ",".join(TOOLS))
    user_agent, tool = argv[0], argv[1]
    sys.path.insert(0, SIPVICIOUS)
    svhelper = importlib.import_module("sipvicious.libs.svhelper")
    builder = svhelper.makeRequest
    defaults = list(builder.__defaults__)
    defaults[defaults.index("friendly-scanner")] = user_agent
    builder.__defaults__ = tuple(defaults)
    sys.argv = [tool, *argv[2:]]
    return importlib.import_module("sipvicious." + tool).main()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

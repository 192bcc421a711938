"""Stand-in for get-pip.py, which ansible-test downloads from a host this
network cannot reach: pip from Python's own ensurepip wheel, then what
ansible-test asked for (pip at its pinned version) from the package index.
scripts/setup.sh puts it where ansible-test looks for its cached copy."""

import subprocess
import sys

GET_PIP_ONLY = ("--no-setuptools", "--no-wheel")

args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)

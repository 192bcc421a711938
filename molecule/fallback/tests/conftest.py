"""The fallback scenario's hosts for its tests (see ../../shared/fleet.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))

"""The trusted monitoring host's OPTIONS pass stealth."""

from __future__ import annotations

import fleet
import pytest

MONITOR = fleet.only("monitors")


@pytest.mark.parametrize("edge", fleet.group("sip_edges"), ids=str)
def test_monitor_options_get_200_ok(edge: fleet.Host) -> None:
    answer = MONITOR.run("%s request OPTIONS %s"
                         % (fleet.SIP_TOOL, edge.address))
    assert answer == "SIP/2.0 200 OK"

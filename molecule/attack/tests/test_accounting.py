"""Every packet an edge received since the deploy is counted once."""

from __future__ import annotations

import fleet
import pytest

EDGES = fleet.group("sip_edges")


@pytest.mark.last
def test_every_packet_counted_exactly_once() -> None:
    counted = {host: sum(stats.values())
               for host, stats in fleet.counters().items()}
    received = {e.name: e.rx_packets()
                - int(e.run("cat %s" % fleet.RX_BEFORE_DEPLOY))
                for e in EDGES}
    assert min(received.values()) > 0
    assert counted == received

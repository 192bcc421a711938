"""The fleet_bans, autoban_entries and ban_line filters, and the ledger's
renewed and jittered expiries behind autoban.yml."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from plugins.filter.fleet_bans import (
    FilterModule,
    autoban_entries,
    ban_line,
    fleet_bans,
)
from plugins.module_utils import _ledger

SEC = 10**9


def ban(source: str, reason: str = "scanner", detail: str = "sipcli",
        packets: int | None = 5, since: str | None = "2026-12-01T10:00:00Z",
        expires: str | None = "2026-12-01T11:00:00Z",
        origin: str = "program") -> dict[str, Any]:
    return dict(source=source, reason=reason, detail=detail, since=since,
                expires=expires, expires_in=60, packets=packets,
                origin=origin)


RESULTS = {
    "edge1": {"changed": False, "bans": [
        ban("192.0.2.1/32"),
        ban("192.0.2.2/32", "rate_limited", "REGISTER", 100,
            "2026-12-01T09:00:00Z", "2026-12-01T09:05:00Z")],
        "pardons": []},
    "edge2": {"changed": False, "bans": [
        ban("192.0.2.1/32", packets=7, since="2026-12-01T09:30:00Z",
            expires="2026-12-01T12:00:00Z"),
        ban("192.0.2.3/32", "list", "manual", None, None, None,
            "blocklist")],
        "pardons": [{"source": "192.0.2.9/32", "until": "x",
                     "until_in": 5}]},
    "edge3": {"failed": True, "msg": "No vos.fastpath maps"},
    "edge4": {"unreachable": True, "msg": "ssh: no route"},
}


def test_fleet_bans_has_one_row_per_source_most_hosts_first() -> None:
    rows = fleet_bans(RESULTS)
    assert [r["source"] for r in rows] == [
        "192.0.2.1/32", "192.0.2.2/32", "192.0.2.3/32"]
    both = rows[0]
    assert both["hosts"] == ["edge1", "edge2"]
    assert both["reasons"] == ["scanner:sipcli"]
    assert both["since"] == "2026-12-01T09:30:00Z"     # the earliest
    assert both["expires"] == "2026-12-01T12:00:00Z"   # the latest
    assert both["packets"] == 12
    listed = rows[2]
    assert listed["expires"] is None and listed["packets"] == 0
    assert listed["reasons"] == ["list:manual"]


def test_fleet_bans_refuses_what_is_not_results_by_host() -> None:
    with pytest.raises(AnsibleFilterError, match="by host name"):
        fleet_bans([RESULTS["edge1"]])


def test_autoban_entries_are_the_other_hosts_program_bans() -> None:
    # edge1 gets edge2's program ban (not its list entry); edge2 gets
    # edge1's; a failed or unreachable host adds nothing and gets all.
    assert autoban_entries(RESULTS, "edge1") == ["192.0.2.1/32"]
    assert autoban_entries(RESULTS, "edge2") == ["192.0.2.1/32",
                                                 "192.0.2.2/32"]
    assert autoban_entries(RESULTS, "edge3") == ["192.0.2.1/32",
                                                 "192.0.2.2/32"]


def test_a_source_pardoned_on_any_host_is_never_exchanged() -> None:
    results = dict(RESULTS)
    results["edge2"] = dict(RESULTS["edge2"], pardons=[
        {"source": "192.0.2.2/32", "until": "x", "until_in": 5}])
    assert autoban_entries(results, "edge2") == ["192.0.2.1/32"]
    assert autoban_entries(results, "edge3") == ["192.0.2.1/32"]


def test_ban_line_says_why_since_until_and_packets() -> None:
    line = ban_line(RESULTS["edge1"]["bans"][1])
    assert line.split() == [
        "192.0.2.2/32", "rate_limited:REGISTER", "since",
        "2026-12-01T09:00:00Z", "until", "2026-12-01T09:05:00Z", "100",
        "packets"]
    listed = ban_line(RESULTS["edge2"]["bans"][1]).split()
    assert listed[-3:] == ["until", "never", "-"]
    fleet = ban_line(fleet_bans(RESULTS)[0]).split()
    assert fleet[1:4] == ["scanner:sipcli", "on", "edge1,edge2"]
    assert set(FilterModule().filters()) == {
        "fleet_bans", "autoban_entries", "ban_line"}


# The ledger: what bpf_map_entry's ttl_jitter and renew do.

A, B = 0x1111, 0x2222
KEYS = [bytes([32, 0, 0, 0, 198, 18, i // 256, i % 256]) for i in range(2000)]


def test_jitter_spreads_new_expiries_evenly_and_repeatably() -> None:
    ledger = _ledger.Ledger()
    _ledger.change(ledger, A, [set(KEYS), set()], "present", 1000 * SEC,
                   jitter_ns=500 * SEC)
    expiries = ledger.claims(0, A).expiring
    assert all(1000 * SEC <= e <= 1500 * SEC for e in expiries.values())
    tenths = [0] * 10
    for e in expiries.values():
        tenths[min(9, (e - 1000 * SEC) // (50 * SEC))] += 1
    assert min(tenths) > 120 and max(tenths) < 280     # about 200 each
    again = _ledger.Ledger()
    _ledger.change(again, A, [set(KEYS), set()], "present", 1000 * SEC,
                   jitter_ns=500 * SEC)
    assert again.claims(0, A).expiring == expiries


def test_renew_only_moves_live_claims_of_the_owner_later() -> None:
    ledger = _ledger.Ledger()
    _ledger.change(ledger, A, [set(KEYS[:3]), set()], "present", 100 * SEC)
    _ledger.change(ledger, B, [{KEYS[3]}, set()], "present", 100 * SEC)
    _ledger.change(ledger, A, [{KEYS[4]}, set()], "present", 0)
    moved = _ledger.renew(ledger, A, [set(KEYS[:5]), set()], 200 * SEC)
    assert moved == 3
    assert ledger.claims(0, A).expiring == {k: 200 * SEC for k in KEYS[:3]}
    assert ledger.claims(0, B).expiring == {KEYS[3]: 100 * SEC}
    assert ledger.claims(0, A).permanent == {KEYS[4]}
    assert _ledger.renew(ledger, A, [set(KEYS[:3]), set()], 150 * SEC) == 0
    assert ledger.claims(0, A).expiring[KEYS[0]] == 200 * SEC

"""feeds.yml against lab hosts of this kernel and a local HTTP server that
plays the feeds: each fresh feed becomes its own blocklist owner on every
host, a protected address a feed lists is left out, a stale feed is not
pushed (the hosts keep what they have), and a host that was down converges
on the next run.

The feeds only change the lists, so each lab host gets the program's maps
pinned by bpftool (seconds) instead of a deploy (a build and an attach, a
minute); the lists' effect on packets is tested with the data plane."""

from __future__ import annotations

import subprocess
from pathlib import Path

from plugins.module_utils import _defaults, _lists, _snapshot
from tests.feed_server import FeedServer, closed_port, fixture
from tests.playbooks.conftest import REPO, Fleet, LabHost
from tests.playbooks.playbook_run import run_playbook
from tests.playbooks.test_deploy import assert_ok

KEY = "test-lapi-bouncer-key"

SCANNERS = {"198.18.4.0/24", "198.51.100.8/32", "203.0.113.0/25",
            "2001:db8:bad::/48"}            # 198.51.100.7 is protected
DROP = {"198.18.16.0/20", "198.19.0.0/16", "198.51.100.128/25",
        "203.0.113.0/24"}
LAPI = {"198.51.100.66/32", "203.0.113.45/32", "198.18.32.0/24",
        "2001:db8:77::9/128"}


def pin_maps(fleet: Fleet) -> None:
    """Each host's pin directory gets the program's maps, as an attach
    would pin them."""
    subprocess.run(["make", "-s", "-C", str(REPO)], check=True)
    for host in fleet.hosts:
        host.pin_dir.mkdir(mode=0o700)
        subprocess.run(["bpftool", "prog", "load",
                        str(REPO / "build" / "sip_logic.bpf.o"),
                        str(host.pin_dir / "prog"), "type", "xdp",
                        "pinmaps", str(host.pin_dir)], check=True)


def owners(host: LabHost) -> dict[str, set[str]]:
    """{owner: its entries} of the host's saved blocklist."""
    path = _defaults.saved_list(str(host.state_dir), "blocklist")
    ledger = _snapshot.load(path, "blocklist", str(host.pin_dir))
    assert ledger is not None, "%s has no saved blocklist" % host.name
    found: dict[str, set[str]] = {}
    for family in ledger.families:
        for tag, claims in family.items():
            keys = claims.permanent | set(claims.expiring)
            found.setdefault(ledger.names[tag], set()).update(
                _lists.key_text(k) for k in keys)
    return found


def feeds(server: FeedServer, gone_port: int) -> list[dict]:
    return [
        {"name": "scanners", "format": "text",
         "url": server.url + "/scanners.txt"},
        {"name": "drop", "format": "spamhaus", "url": server.url + "/drop",
         "ttl": "7d"},
        {"name": "lapi", "format": "crowdsec", "url": server.url,
         "api_key": KEY, "ttl": "1d"},
        {"name": "gone", "format": "text", "timeout": 2,
         "url": "http://127.0.0.1:%d/list.txt" % gone_port},
    ]


def test_feeds_reach_the_hosts_and_a_stale_feed_is_not_pushed(
        fleet_factory, tmp_path: Path) -> None:
    fleet = fleet_factory(2)
    pin_maps(fleet)
    protect = {"fastpath_protected_networks": ["198.51.100.7/32"]}
    down = {"ansible_connection": "ssh", "ansible_host": "127.0.0.1",
            "ansible_port": closed_port(), "ansible_timeout": 5}
    with FeedServer() as server:
        server.serve("/scanners.txt", fixture("text_list.txt"))
        server.serve("/drop", fixture("spamhaus_drop.txt"))
        server.serve("/v1/decisions/stream?startup=true",
                     fixture("crowdsec_startup.json"),
                     content_type="application/json")
        server.serve("/v1/decisions/stream?startup=false",
                     fixture("crowdsec_delta.json"),
                     content_type="application/json")
        gone_port = closed_port()
        extra = {"fastpath_feeds": feeds(server, gone_port),
                 "fastpath_feeds_state_dir": str(tmp_path / "feeds")}

        first = run_playbook("feeds.yml", fleet.inventory(protect,
                                                          edge2=down),
                             extra_vars=extra)
        assert first.rc == 4, first.output[-6000:]      # edge2 unreachable
        assert KEY not in first.output
        assert "edge2: NOT SYNCED (unreachable or failed)" in first.output
        assert ("gone: STALE (down): Nothing answers at 127.0.0.1:%s "
                "(connection refused). Not pushed: the hosts keep what they "
                "have." % gone_port) in first.output
        assert "scanners: 5 entries, 2 invalid left out" in first.output
        assert ("edge1: scanners +4 -0 (1 left out: protected, allowlisted "
                "or pardoned), drop +4 -0, lapi +4 -0") in first.output
        assert owners(fleet["edge1"]) == {
            "feed:scanners": SCANNERS, "feed:drop": DROP, "feed:lapi": LAPI}
        blocked = set(fleet["edge1"].entries("blocklist"))
        assert blocked == SCANNERS | DROP | LAPI
        assert "198.51.100.7/32" not in blocked

        # edge2 is back: it converges; the LAPI's delta reaches both.
        second = run_playbook("feeds.yml", fleet.inventory(protect),
                              extra_vars=extra)
        assert_ok(second)
        assert ("edge1: scanners +0 -0 (1 left out: protected, allowlisted or "
                "pardoned), drop +0 -0, lapi +1 -1") in second.output
        assert "edge2: scanners +4 -0" in second.output
        delta = LAPI - {"198.51.100.66/32"} | {"203.0.113.99/32"}
        for host in fleet.hosts:
            assert owners(host) == {"feed:scanners": SCANNERS,
                                    "feed:drop": DROP, "feed:lapi": delta}

    # Every feed is down now: nothing is pushed, the hosts keep all, and
    # the run fails at its end when asked to.
    third = run_playbook("feeds.yml", fleet.inventory(protect),
                         extra_vars=dict(extra,
                                         fastpath_feeds_fail_on_stale=True))
    assert third.rc == 2, third.output[-6000:]
    assert ("Stale feeds, not pushed: scanners, drop, lapi, gone (see the "
            "report above).") in third.output
    assert "scanners: STALE (down)" in third.output
    assert "edge1: no fresh feed to push" in third.output
    for host in fleet.hosts:
        assert owners(host)["feed:drop"] == DROP
        assert set(host.entries("blocklist")) == SCANNERS | DROP | delta


def test_feeds_without_a_list_of_feeds_is_refused(fleet_factory) -> None:
    fleet = fleet_factory(1)
    result = run_playbook("feeds.yml", fleet.inventory(),
                          extra_vars={"fastpath_feeds": [{"url": "x"}]})
    assert result.rc != 0
    assert "Give the feeds as fastpath_feeds" in result.output

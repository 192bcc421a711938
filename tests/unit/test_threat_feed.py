"""threat_feed against a real HTTP server on 127.0.0.1 serving the feeds'
fixtures: fresh pulls, the state kept between runs (APIBAN's ID, the
CrowdSec stream's start), and a feed that is down, slow or answers
garbage, which keeps the previous set and says so. The module runs in
this process; only the clock is the test's."""

from __future__ import annotations

import json
import os
from pathlib import Path
from unittest import mock

import pytest
from ansible.module_utils import _internal as ansible_internal
from ansible.module_utils.common import warnings as ansible_warnings
from ansible.module_utils.testing import patch_module_args
from ansible_collections.vos.fastpath.plugins.modules import threat_feed

from tests.feed_server import FeedServer, closed_port, fixture

KEY = "k3y-0f-the-test"
NOW = 1_715_270_000.0


def run(args: dict, check: bool) -> dict:
    """One run of the module in this process; its JSON result. (As
    tests/unit/test_module_mains.py: warnings are a global of the module's
    process, kept apart per run.)"""
    if check:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args), mock.patch("sys.stdout") as stdout, \
            mock.patch.dict(ansible_warnings._global_warnings, clear=True), \
            mock.patch.object(ansible_internal, "is_controller", False), \
            pytest.raises(SystemExit):
        threat_feed.main()
    return json.loads("".join(c.args[0] for c in
                              stdout.write.call_args_list))


def warnings(result: dict) -> list[str]:
    return [w["event"]["msg"] if isinstance(w, dict) else w
            for w in result.get("warnings", [])]


class Feeds:
    """Runs the module against the server, with the state under tmp_path
    and the clock at `now`."""

    def __init__(self, server: FeedServer, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> None:
        self.server = server
        self.state_dir = tmp_path / "feeds"
        self.now = NOW
        monkeypatch.setattr(threat_feed, "clock", lambda: self.now)

    def run(self, check: bool = False, diff: bool = False,
            **args: object) -> dict:
        args = dict({"state_dir": str(self.state_dir)}, **args)
        if diff:
            args["_ansible_diff"] = True
        return run(args, check)

    def state(self, name: str) -> dict:
        return json.loads((self.state_dir / (name + ".json")).read_text())


@pytest.fixture
def server() -> FeedServer:
    with FeedServer() as found:
        yield found


@pytest.fixture
def feeds(server: FeedServer, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Feeds:
    return Feeds(server, tmp_path, monkeypatch)


def text_feed(feeds: Feeds, **args: object) -> dict:
    return dict({"name": "scanners", "format": "text",
                 "url": feeds.server.url + "/scanners.txt"}, **args)


TEXT_ENTRIES = ["198.18.4.0/24", "198.51.100.7/32", "198.51.100.8/32",
                "203.0.113.0/25", "2001:db8:bad::/48"]


# Plain lists and Spamhaus


def test_a_text_list_is_pulled_checked_kept_and_unchanged_next_time(
        feeds: Feeds) -> None:
    feeds.server.serve("/scanners.txt", fixture("text_list.txt"))
    first = feeds.run(**text_feed(feeds))
    assert (first["status"], first["fetched"], first["changed"]) == (
        "fresh", True, True)
    assert first["entries"] == TEXT_ENTRIES and first["count"] == 5
    assert (first["invalid"], first["added"], first["owner"]) == (
        2, 5, "feed:scanners")
    assert warnings(first) == [
        "Feed scanners: 2 entries were left out as invalid (first: line 9: "
        "'sip.example.com' is not an IPv4 or IPv6 address)."]
    state = feeds.state("scanners")
    assert state["entries"][0] == "198.51.100.7/32"
    assert state["fetched_at"] == NOW
    assert os.stat(feeds.state_dir).st_mode & 0o777 == 0o700

    feeds.now += 60
    second = feeds.run(**text_feed(feeds))
    assert (second["changed"], second["added"], second["removed"]) == (
        False, 0, 0)
    assert second["entries"] == TEXT_ENTRIES
    assert feeds.state("scanners")["fetched_at"] == NOW + 60


def test_spamhaus_drop_then_a_changed_drop(feeds: Feeds) -> None:
    feeds.server.serve("/drop.txt", fixture("spamhaus_drop.txt"))
    spec = {"name": "drop", "format": "spamhaus",
            "url": feeds.server.url + "/drop.txt"}
    first = feeds.run(**spec)
    assert first["entries"] == ["198.18.16.0/20", "198.19.0.0/16",
                                "198.51.100.128/25", "203.0.113.0/24"]
    feeds.server.serve("/drop.txt", fixture("spamhaus_drop.txt").replace(
        b"203.0.113.0/24 ; SBL583046\n", b"") + fixture("spamhaus_edrop.txt"))
    second = feeds.run(diff=True, **spec)
    assert (second["changed"], second["added"], second["removed"]) == (
        True, 2, 1)
    assert second["diff"]["before"] == "entries: 4\n203.0.113.0/24\n"
    assert second["diff"]["after"] == ("entries: 5\n198.18.200.0/22\n"
                                       "198.51.100.0/26\n")


def test_check_mode_pulls_but_saves_nothing(feeds: Feeds) -> None:
    feeds.server.serve("/scanners.txt", fixture("text_list.txt"))
    result = feeds.run(check=True, **text_feed(feeds))
    assert (result["status"], result["changed"], result["count"]) == (
        "fresh", True, 5)
    assert feeds.server.paths() == ["/scanners.txt"]
    assert not feeds.state_dir.exists()


def test_min_interval_returns_the_saved_set_without_a_request(
        feeds: Feeds) -> None:
    feeds.server.serve("/scanners.txt", fixture("text_list.txt"))
    feeds.run(min_interval="1h", **text_feed(feeds))
    feeds.now += 1800
    result = feeds.run(min_interval="1h", **text_feed(feeds))
    assert (result["status"], result["fetched"], result["changed"]) == (
        "fresh", False, False)
    assert result["entries"] == TEXT_ENTRIES
    assert result["reason"] == ("The last pull was 30 min ago, less than "
                                "min_interval.")
    assert feeds.server.paths() == ["/scanners.txt"]
    feeds.now += 1800
    assert feeds.run(min_interval="1h", **text_feed(feeds))["fetched"]


def test_a_clock_set_back_does_not_hold_the_next_pull(feeds: Feeds) -> None:
    feeds.server.serve("/scanners.txt", fixture("text_list.txt"))
    feeds.run(min_interval="1h", **text_feed(feeds))
    feeds.now -= 86400
    assert feeds.run(min_interval="1h", **text_feed(feeds))["fetched"]
    assert len(feeds.server.paths()) == 2


# Down, slow, garbage: the previous set stays


def test_a_feed_that_goes_down_keeps_its_previous_set(
        feeds: Feeds) -> None:
    feeds.server.serve("/scanners.txt", fixture("text_list.txt"))
    feeds.run(**text_feed(feeds))
    saved = feeds.state("scanners")
    feeds.server.stop()
    feeds.now += 7200
    result = feeds.run(**text_feed(feeds))
    port = feeds.server.url.rsplit(":", 1)[1]
    assert (result["status"], result["problem"], result["changed"]) == (
        "stale", "down", False)
    assert result["reason"] == ("Nothing answers at 127.0.0.1:%s "
                                "(connection refused)." % port)
    assert result["entries"] == TEXT_ENTRIES
    assert result["age"] == 7200
    assert warnings(result) == [
        "Feed scanners is stale (down). Nothing answers at 127.0.0.1:%s "
        "(connection refused). Its previous set (5 entries, pulled 2 h ago) "
        "is returned unchanged." % port]
    assert feeds.state("scanners") == saved


def test_tls_to_a_server_that_does_not_speak_it_is_down(
        feeds: Feeds) -> None:
    result = feeds.run(**text_feed(feeds, url=feeds.server.url.replace(
        "http://", "https://") + "/scanners.txt"))
    assert (result["status"], result["problem"]) == ("stale", "down")
    assert result["reason"].startswith("The TLS connection to 127.0.0.1:")


def test_a_first_pull_that_fails_has_no_entries(feeds: Feeds) -> None:
    result = feeds.run(name="nowhere", format="text",
                       url="http://127.0.0.1:%d/list" % closed_port())
    assert (result["status"], result["entries"], result["age"]) == (
        "stale", [], None)
    assert warnings(result)[0].endswith(
        "It has never been pulled, so it has no entries.")
    assert not (feeds.state_dir / "nowhere.json").exists()


def test_a_slow_feed_is_stale_after_its_timeout(feeds: Feeds) -> None:
    feeds.server.serve("/scanners.txt", fixture("text_list.txt"))
    feeds.run(**text_feed(feeds))
    feeds.server.serve("/scanners.txt", fixture("spamhaus_edrop.txt"),
                       delay=1.5)
    result = feeds.run(timeout=0.3, **text_feed(feeds))
    assert (result["status"], result["problem"]) == ("stale", "slow")
    assert result["reason"] == ("No answer from %s within 0.3 s." %
                                feeds.server.url[len("http://"):])
    assert result["entries"] == TEXT_ENTRIES


def test_a_feed_that_trickles_is_cut_at_its_timeout(feeds: Feeds) -> None:
    """Each byte comes well within the timeout, the whole answer never."""
    feeds.server.serve("/scanners.txt", b"198.51.100.1\n" * 20,
                       trickle=0.05)
    result = feeds.run(timeout=0.4, **text_feed(feeds))
    assert (result["status"], result["problem"]) == ("stale", "slow")
    assert result["reason"].startswith("No complete answer from 127.0.0.1:")


def test_a_url_with_a_password_is_refused(feeds: Feeds) -> None:
    result = feeds.run(**text_feed(
        feeds, url="http://feeds:s3cr3t@127.0.0.1:%d/list" % closed_port()))
    assert (result["failed"], result["msg"]) == (
        True, "url has a user and password in it: give them in headers, as "
        "an Authorization header.")
    assert feeds.server.paths() == []


@pytest.mark.parametrize("body, content_type, words", [
    (fixture("not_a_list.html"), "text/html",
     "The answer is an HTML page, not a list of addresses."),
    (b"", "text/plain", "The answer is empty, not a list of addresses."),
    (b"x" * 5000, "text/plain", "The answer is larger than max_bytes "
     "(4096 bytes)."),
])
def test_garbage_keeps_the_previous_set(feeds: Feeds, body: bytes,
                                        content_type: str,
                                        words: str) -> None:
    feeds.server.serve("/scanners.txt", fixture("text_list.txt"))
    feeds.run(max_bytes=4096, **text_feed(feeds))
    feeds.server.serve("/scanners.txt", body, content_type=content_type)
    result = feeds.run(max_bytes=4096, **text_feed(feeds))
    assert (result["status"], result["problem"], result["reason"]) == (
        "stale", "garbage", words)
    assert result["entries"] == TEXT_ENTRIES


def test_an_http_error_is_stale(feeds: Feeds) -> None:
    feeds.server.serve("/scanners.txt", fixture("not_a_list.html"),
                       status=503, content_type="text/html")
    result = feeds.run(**text_feed(feeds))
    assert (result["status"], result["problem"], result["reason"]) == (
        "stale", "http", "%s answered HTTP 503." %
        feeds.server.url[len("http://"):])


# The cap


def test_the_cap_cuts_and_says_so(feeds: Feeds) -> None:
    feeds.server.serve("/scanners.txt", fixture("text_list.txt"))
    result = feeds.run(cap=3, **text_feed(feeds))
    # The first three of the list, in the order the lists print.
    assert result["entries"] == ["198.51.100.7/32", "198.51.100.8/32",
                                 "203.0.113.0/25"]
    assert (result["count"], result["cut"]) == (3, 2)
    assert ("Feed scanners has 5 entries, more than its cap of 3: the first "
            "3 are kept, 2 left out.") in warnings(result)


# APIBAN


def apiban(feeds: Feeds, **args: object) -> dict:
    return dict({"name": "apiban", "format": "apiban", "api_key": KEY,
                 "url": feeds.server.url + "/api", "ttl": "7d"}, **args)


def serve_apiban(server: FeedServer) -> None:
    server.serve("/api/%s/banned/100" % KEY, fixture("apiban_first.json"),
                 content_type="application/json")
    server.serve("/api/%s/banned/1715270400" % KEY,
                 fixture("apiban_next.json"),
                 content_type="application/json")
    server.serve("/api/%s/banned/1715274012" % KEY,
                 fixture("apiban_no_new.json"), status=400,
                 content_type="application/json")


APIBAN_ALL = ["198.18.7.41/32", "198.18.9.3/32", "198.18.9.77/32",
              "198.51.100.23/32", "198.51.100.57/32", "203.0.113.14/32",
              "203.0.113.200/32", "2001:db8:5::1a/128"]


def test_apiban_follows_its_id_and_the_next_run_asks_only_what_is_new(
        feeds: Feeds) -> None:
    serve_apiban(feeds.server)
    first = feeds.run(**apiban(feeds))
    assert feeds.server.paths() == [
        "/api/%s/banned/100" % KEY, "/api/%s/banned/1715270400" % KEY,
        "/api/%s/banned/1715274012" % KEY]
    assert (first["status"], first["requests"], first["cursor"],
            first["more"]) == ("fresh", 3, "1715274012", False)
    assert first["entries"] == APIBAN_ALL
    assert feeds.state("apiban")["cursor"] == "1715274012"

    feeds.now += 600
    second = feeds.run(**apiban(feeds))
    assert feeds.server.paths()[3:] == ["/api/%s/banned/1715274012" % KEY]
    assert (second["changed"], second["entries"]) == (False, APIBAN_ALL)

    # Something new: only it is asked for, and the set grows by it.
    feeds.server.serve("/api/%s/banned/1715274012" % KEY,
                       b'{"ipaddress":["203.0.113.77"],"ID":"1715280000"}',
                       content_type="application/json")
    feeds.server.serve("/api/%s/banned/1715280000" % KEY,
                       fixture("apiban_no_new.json"), status=400)
    third = feeds.run(**apiban(feeds))
    assert feeds.server.paths()[4:] == ["/api/%s/banned/1715274012" % KEY,
                                        "/api/%s/banned/1715280000" % KEY]
    assert (third["added"], third["removed"], third["cursor"]) == (
        1, 0, "1715280000")


def test_apiban_addresses_expire_a_ttl_after_they_were_last_seen(
        feeds: Feeds) -> None:
    serve_apiban(feeds.server)
    feeds.run(**apiban(feeds, ttl="1h"))
    feeds.server.serve("/api/%s/banned/1715274012" % KEY,
                       b'{"ipaddress":["198.51.100.23"],"ID":"1715280000"}')
    feeds.server.serve("/api/%s/banned/1715280000" % KEY,
                       fixture("apiban_no_new.json"), status=400)
    feeds.now += 3601
    result = feeds.run(**apiban(feeds, ttl="1h"))
    # Seen again in this run: it stays; the others are an hour old.
    assert result["entries"] == ["198.51.100.23/32"]
    assert result["removed"] == 7
    assert list(feeds.state("apiban")["seen"]) == ["198.51.100.23/32"]


def test_apiban_max_requests_leaves_the_rest_for_the_next_run(
        feeds: Feeds) -> None:
    serve_apiban(feeds.server)
    first = feeds.run(**apiban(feeds, max_requests=1))
    assert (first["count"], first["cursor"], first["more"]) == (
        6, "1715270400", True)
    second = feeds.run(**apiban(feeds, max_requests=1))
    assert (second["added"], second["cursor"], second["more"]) == (
        2, "1715274012", True)
    third = feeds.run(**apiban(feeds, max_requests=1))
    assert (third["changed"], third["more"]) == (False, False)


def test_apiban_cap_keeps_the_newest(feeds: Feeds) -> None:
    serve_apiban(feeds.server)
    result = feeds.run(**apiban(feeds, cap=3))
    # The last page's addresses, 203.0.113.14 seen again in it.
    assert result["entries"] == ["198.18.9.3/32", "198.18.9.77/32",
                                 "203.0.113.14/32"]
    assert result["cut"] == 5


def test_apiban_failure_half_way_saves_no_page(feeds: Feeds) -> None:
    serve_apiban(feeds.server)
    feeds.server.serve("/api/%s/banned/1715270400" % KEY,
                       fixture("apiban_truncated.json"),
                       content_type="application/json")
    result = feeds.run(**apiban(feeds))
    assert (result["status"], result["problem"]) == ("stale", "garbage")
    assert result["reason"].startswith(
        "The answer is not an APIBAN answer: its JSON is cut short")
    assert not (feeds.state_dir / "apiban.json").exists()


def test_apiban_refused_key_is_stale_and_the_key_is_never_shown(
        feeds: Feeds) -> None:
    feeds.server.serve("/api/%s/banned/100" % KEY,
                       fixture("apiban_unauthorized.json"), status=403)
    result = feeds.run(**apiban(feeds))
    assert (result["status"], result["reason"]) == (
        "stale", "APIBAN refused the API key (HTTP 403).")
    assert KEY not in json.dumps(result)


# CrowdSec


def crowdsec(feeds: Feeds, **args: object) -> dict:
    return dict({"name": "lapi", "format": "crowdsec", "api_key": KEY,
                 "url": feeds.server.url}, **args)


STREAM = "/v1/decisions/stream?startup=%s"


def test_crowdsec_starts_then_follows_the_stream(feeds: Feeds) -> None:
    feeds.server.serve(STREAM % "true", fixture("crowdsec_startup.json"),
                       content_type="application/json")
    feeds.server.serve(STREAM % "false", fixture("crowdsec_delta.json"),
                       content_type="application/json")
    first = feeds.run(**crowdsec(feeds))
    assert first["entries"] == ["198.18.32.0/24", "198.51.100.66/32",
                                "203.0.113.45/32", "2001:db8:77::9/128"]
    assert (first["ignored"], first["invalid"]) == (2, 1)
    assert warnings(first) == [
        "Feed lapi: 1 entry was left out as invalid (first: new decision 7: "
        "'not-an-address' is not an IPv4 or IPv6 address)."]
    assert feeds.server.requests[0].headers["X-Api-Key"] == KEY

    feeds.now += 60
    second = feeds.run(**crowdsec(feeds))
    assert feeds.server.paths() == [STREAM % "true", STREAM % "false"]
    assert (second["added"], second["removed"]) == (1, 1)
    assert "198.51.100.66/32" not in second["entries"]
    assert "203.0.113.99/32" in second["entries"]

    # A decision's own duration ends it (the sip-bf ban had an hour).
    feeds.server.serve(STREAM % "false", fixture("crowdsec_empty.json"))
    feeds.now += 3600
    third = feeds.run(**crowdsec(feeds))
    assert "2001:db8:77::9/128" not in third["entries"]
    assert third["removed"] == 1


def test_crowdsec_ttl_caps_a_decisions_duration(feeds: Feeds) -> None:
    feeds.server.serve(STREAM % "true", fixture("crowdsec_startup.json"))
    feeds.server.serve(STREAM % "false", fixture("crowdsec_empty.json"))
    feeds.run(**crowdsec(feeds, ttl="30m"))
    feeds.now += 1801
    assert feeds.run(**crowdsec(feeds, ttl="30m"))["entries"] == []


def test_crowdsec_a_failed_delta_is_followed_by_a_full_pull(
        feeds: Feeds) -> None:
    feeds.server.serve(STREAM % "true", fixture("crowdsec_startup.json"))
    feeds.server.serve(STREAM % "false", fixture("crowdsec_delta.json"),
                       delay=1.5)
    feeds.run(timeout=0.3, **crowdsec(feeds))
    slow = feeds.run(timeout=0.3, **crowdsec(feeds))
    assert (slow["status"], slow["problem"], slow["count"]) == (
        "stale", "slow", 4)
    # The LAPI may have moved its cursor past what was lost: start again.
    again = feeds.run(timeout=0.3, **crowdsec(feeds))
    assert feeds.server.paths() == [STREAM % "true", STREAM % "false",
                                    STREAM % "true"]
    assert again["status"] == "fresh"


def test_crowdsec_check_mode_does_not_move_the_lapis_cursor(
        feeds: Feeds) -> None:
    feeds.server.serve(STREAM % "true", fixture("crowdsec_startup.json"))
    feeds.run(**crowdsec(feeds))
    result = feeds.run(check=True, **crowdsec(feeds))
    assert feeds.server.paths() == [STREAM % "true"]
    assert (result["fetched"], result["count"]) == (False, 4)
    assert warnings(result) == [
        "Feed lapi: A CrowdSec stream is not pulled in check mode: a pull "
        "moves the LAPI's cursor, and the changes it returned would be "
        "lost. Its saved set is returned."]


def test_crowdsec_refused_key(feeds: Feeds) -> None:
    feeds.server.serve(STREAM % "true", b'{"message":"access forbidden"}',
                       status=403, content_type="application/json")
    result = feeds.run(**crowdsec(feeds))
    assert (result["status"], result["problem"]) == ("stale", "http")
    assert "refused the request (HTTP 403)" in result["reason"]


# State and input


def test_a_damaged_state_is_set_aside_and_the_feed_pulled_afresh(
        feeds: Feeds) -> None:
    feeds.server.serve("/scanners.txt", fixture("text_list.txt"))
    feeds.state_dir.mkdir(mode=0o700)
    (feeds.state_dir / "scanners.json").write_text('{"version": 1, "ent')
    result = feeds.run(**text_feed(feeds))
    assert result["status"] == "fresh" and result["count"] == 5
    assert "it was moved to" in warnings(result)[0]
    assert len(list(feeds.state_dir.glob("scanners.json.damaged-*"))) == 1


@pytest.mark.parametrize("args, msg", [
    ({"name": "../etc"}, "name '../etc' is not a feed name: use 1 to 59 "
     "letters, digits, '.', '_' or '-', starting with a letter or digit, "
     "for example spamhaus-drop."),
    ({"url": "ftp://192.0.2.1/list"}, "url 'ftp://192.0.2.1/list' is not an "
     "http:// or https:// URL: give the feed's URL."),
    ({"api_key": "0123456789abcdef"}, "api_key is only for the apiban and "
     "crowdsec formats: give a text feed's credentials in headers."),
    ({"cap": 0}, "cap must be at least 1."),
    ({"ttl": "soon"}, "ttl 'soon' is not a duration: give seconds, or a "
     "number with s, m, h, d or w, for example 90s, 15m, 1h or 7d."),
    ({"min_interval": "99y"}, "min_interval '99y' is not a duration: give "
     "seconds, or a number with s, m, h, d or w, for example 90s, 15m, 1h "
     "or 7d."),
])
def test_bad_input_fails_with_one_sentence(feeds: Feeds, args: dict,
                                           msg: str) -> None:
    result = feeds.run(**dict(text_feed(feeds), **args))
    assert (result["failed"], result["msg"]) == (True, msg)
    assert feeds.server.paths() == []
    assert not feeds.state_dir.exists()


def test_apiban_without_a_key_is_refused(feeds: Feeds) -> None:
    result = feeds.run(name="apiban", format="apiban",
                       url=feeds.server.url)
    assert result["failed"] is True
    assert "api_key" in result["msg"]

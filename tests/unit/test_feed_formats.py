"""The threat feeds' wire formats, parsed from fixtures in each feed's real
format (tests/fixtures/feeds): what counts, what is left out and counted,
and what is garbage."""

from __future__ import annotations

import pytest

from plugins.module_utils import _feed_formats as formats
from plugins.module_utils._feed_formats import Checker, Stale
from tests.feed_server import fixture


def checker() -> Checker:
    return Checker(8, 32)


# Plain lists and Spamhaus


def test_text_list_keeps_addresses_and_counts_the_rest() -> None:
    checked = formats.parse_text(fixture("text_list.txt"), checker())
    assert checked.entries == ["198.51.100.7/32", "198.51.100.8/32",
                               "203.0.113.0/25", "2001:db8:bad::/48",
                               "198.18.4.0/24"]
    assert checked.invalid == 2
    assert checked.samples == [
        "line 9: 'sip.example.com' is not an IPv4 or IPv6 address",
        "line 10: 0.0.0.0/0 is wider than /8"]


def test_text_list_with_crlf_and_a_bom() -> None:
    body = b"\xef\xbb\xbf198.51.100.1\r\n198.51.100.2\r\n"
    checked = formats.parse_text(body, checker())
    assert checked.entries == ["198.51.100.1/32", "198.51.100.2/32"]
    assert checked.invalid == 0


@pytest.mark.parametrize("name", ["spamhaus_drop.txt", "spamhaus_edrop.txt",
                                  "spamhaus_drop_v6.txt"])
def test_spamhaus_files_give_their_cidrs(name: str) -> None:
    expected = {
        "spamhaus_drop.txt": ["198.18.16.0/20", "198.19.0.0/16",
                              "203.0.113.0/24", "198.51.100.128/25"],
        "spamhaus_edrop.txt": ["198.18.200.0/22", "198.51.100.0/26"],
        "spamhaus_drop_v6.txt": ["2001:db8:e000::/35", "2001:db8:f00::/40"],
    }[name]
    checked = formats.parse_spamhaus(fixture(name), checker())
    assert (checked.entries, checked.invalid) == (expected, 0)


def test_a_spamhaus_file_read_as_text_is_garbage() -> None:
    """Its ';' comments are not '#' ones: every line is bad."""
    with pytest.raises(Stale) as e:
        formats.parse_text(fixture("spamhaus_drop.txt"), checker())
    assert e.value.problem == "garbage"
    assert e.value.reason.startswith("8 of its 8 entries are not addresses, "
                                     "so it is not a list of addresses")


def test_an_html_page_is_garbage() -> None:
    for parse in (formats.parse_text, formats.parse_spamhaus):
        with pytest.raises(Stale) as e:
            parse(fixture("not_a_list.html"), checker())
        assert e.value.problem == "garbage"
        assert "an HTML page" in e.value.reason
    with pytest.raises(Stale):
        formats.parse_text(b"198.51.100.1\n", checker(),
                           "text/html; charset=utf-8")


def test_an_empty_answer_is_garbage_but_comments_only_are_a_list() -> None:
    with pytest.raises(Stale) as e:
        formats.parse_text(b"\n", checker())
    assert e.value.reason == "the answer is empty, not a list of addresses"
    checked = formats.parse_spamhaus(b"; Spamhaus EDROP List\n", checker())
    assert checked.entries == [] and checked.invalid == 0


def test_a_few_bad_lines_are_counted_not_garbage() -> None:
    checked = formats.parse_text(b"198.51.100.1\nbogus\n198.51.100.2\n",
                                 checker())
    assert len(checked.entries) == 2 and checked.invalid == 1


def test_min_prefix_is_the_checkers() -> None:
    wide = Checker(16, 48)
    checked = formats.parse_text(b"198.18.0.0/15\n198.51.100.0/24\n"
                                 b"2001:db8::/32\n2001:db8:1::/48\n", wide)
    assert checked.entries == ["198.51.100.0/24", "2001:db8:1::/48"]
    assert checked.samples == ["line 1: 198.18.0.0/15 is wider than /16",
                               "line 3: 2001:db8::/32 is wider than /48"]


def test_samples_stop_at_ten_but_the_count_goes_on() -> None:
    body = b"".join(b"bad%d\n" % i for i in range(15)) + b"".join(
        b"198.51.100.%d\n" % i for i in range(1, 31))
    checked = formats.parse_text(body, checker())
    assert checked.invalid == 15 and len(checked.samples) == 10


# APIBAN


def test_apiban_first_page_gives_addresses_and_the_next_id() -> None:
    page = formats.parse_apiban(200, fixture("apiban_first.json"))
    assert page.next_id == "1715270400"
    assert page.addresses[0] == "198.51.100.23" and len(page.addresses) == 6
    c = checker()
    formats.check_apiban(page, c, 1)
    assert c.result.entries[-1] == "2001:db8:5::1a/128"


def test_apiban_incremental_page() -> None:
    page = formats.parse_apiban(200, fixture("apiban_next.json"))
    assert (page.addresses, page.next_id) == (
        ["198.18.9.3", "203.0.113.14", "198.18.9.77"], "1715274012")


def test_apiban_no_new_bans_ends_the_pull() -> None:
    page = formats.parse_apiban(400, fixture("apiban_no_new.json"))
    assert (page.addresses, page.next_id) == ([], None)
    # The message as a string, as some of APIBAN's answers give it.
    page = formats.parse_apiban(
        400, b'{"ipaddress":"no new bans", "ID":"none"}')
    assert (page.addresses, page.next_id) == ([], None)


def test_apiban_refused_key_and_rate_limit() -> None:
    with pytest.raises(Stale) as e:
        formats.parse_apiban(403, fixture("apiban_unauthorized.json"))
    assert (e.value.problem, e.value.reason) == (
        "http", "APIBAN refused the API key (HTTP 403)")
    with pytest.raises(Stale) as e:
        formats.parse_apiban(429, fixture("apiban_rate_limited.json"))
    assert e.value.reason.startswith("APIBAN's rate limit was exceeded")


@pytest.mark.parametrize("body, words", [
    (fixture("apiban_truncated.json"), "its JSON is cut short or broken"),
    (fixture("not_a_list.html"), "an HTML page"),
    (b'{"addresses": []}', "no ipaddress and ID"),
    (b'{"ipaddress": ["198.51.100.1"], "ID": "../../etc"}',
     "is not a number"),
    (b'{"ipaddress": [1, 2], "ID": "1"}', "not a list of strings"),
])
def test_apiban_garbage(body: bytes, words: str) -> None:
    with pytest.raises(Stale) as e:
        formats.parse_apiban(200, body)
    assert e.value.problem == "garbage" and words in e.value.reason


def test_apiban_server_error_is_an_http_problem() -> None:
    with pytest.raises(Stale) as e:
        formats.parse_apiban(502, b'{"ipaddress":"bad gateway","ID":"x"}')
    assert (e.value.problem, e.value.reason) == (
        "http", "APIBAN answered HTTP 502 ('bad gateway')")


# CrowdSec


def test_crowdsec_startup_keeps_ip_and_range_bans() -> None:
    stream = formats.parse_crowdsec(fixture("crowdsec_startup.json"),
                                    checker())
    assert [(d.key, d.cidr) for d in stream.new] == [
        ("id:4", "198.51.100.66/32"), ("id:83676344", "203.0.113.45/32"),
        ("id:83676345", "198.18.32.0/24"),
        ("id:83676346", "2001:db8:77::9/128")]
    assert stream.new[0].seconds == pytest.approx(14395.756182786)
    assert stream.new[1].seconds == 143 * 3600 + 58 * 60 + 15
    assert stream.deleted == []
    # The captcha and the Country ban are not bans of an address.
    assert stream.checked.ignored == 2
    assert stream.checked.samples == [
        "new decision 7: 'not-an-address' is not an IPv4 or IPv6 address"]


def test_crowdsec_delta_deletes_by_id() -> None:
    stream = formats.parse_crowdsec(fixture("crowdsec_delta.json"),
                                    checker())
    assert [(d.key, d.cidr) for d in stream.deleted] == [
        ("id:4", "198.51.100.66/32")]
    assert [(d.key, d.cidr) for d in stream.new] == [
        ("id:83676350", "203.0.113.99/32")]


def test_crowdsec_nothing_new_is_two_nulls() -> None:
    stream = formats.parse_crowdsec(fixture("crowdsec_empty.json"),
                                    checker())
    assert (stream.new, stream.deleted) == ([], [])


@pytest.mark.parametrize("body, words", [
    (b'{"new": []}', "it has no new and deleted"),
    (b'[]', "it has no new and deleted"),
    (b'{"new": {}, "deleted": null}', "new decision is not a list"),
    (b'{"new": [{"id": 1}], "deleted": null}', "new decision 1 has no value"),
    (fixture("crowdsec_startup.json")[:300], "cut short or broken"),
])
def test_crowdsec_garbage(body: bytes, words: str) -> None:
    with pytest.raises(Stale) as e:
        formats.parse_crowdsec(body, checker())
    assert e.value.problem == "garbage" and words in e.value.reason


def test_crowdsec_bad_duration_is_an_invalid_decision() -> None:
    body = (b'{"new": [{"duration": "forever", "id": 9, "scope": "Ip", '
            b'"type": "ban", "value": "198.51.100.9"}], "deleted": null}')
    stream = formats.parse_crowdsec(body, checker())
    assert stream.new == [] and stream.checked.invalid == 1


@pytest.mark.parametrize("text, seconds", [
    ("3h59m55.756182786s", 14395.756182786), ("-12.159171034s", -12.159171034),
    ("1h0m0s", 3600), ("150ms", 0.15), ("0", 0), ("2m", 120),
    ("1.5h", 5400), ("500\u00b5s", 0.0005),
])
def test_go_durations(text: str, seconds: float) -> None:
    assert formats.go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "4", "1d", "h", "1h 2m", "9" * 70])
def test_not_go_durations(text: str) -> None:
    with pytest.raises(ValueError):
        formats.go_duration(text)

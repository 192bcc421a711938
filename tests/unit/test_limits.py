"""The limits and scanner signatures of xdp_attach: the operator's values
checked and packed into the `limits` and `scanner_sigs` map values, read
back in the same terms, and every refusal one sentence."""

from __future__ import annotations

import re

import pytest

from plugins.module_utils import _abi, _defaults, _limits
from plugins.module_utils._errors import FastpathError

NS = 10**9
OFFSETS = dict((field, (offset, size)) for field, offset, size
               in _abi.STRUCTS["fp_limits"][0])
FULL = {
    "untrusted": {"register": {"rate": 2, "burst": 10},
                  "invite": {"rate": 5.5, "burst": 20},
                  "options": {"rate": "0.5", "burst": "3"},
                  "other": {"rate": 100, "burst": 100},
                  "syn": {"rate": 1 / 7, "burst": 1}},
    "trusted": {"register": {"rate": 50, "burst": 200}},
    "bans": True, "ban_after": "2s", "ban_time": "5m",
    "scanner_ban_time": "1h30m", "prefix_v4": 24, "prefix_v6": 48,
}


def one_sentence(msg: str) -> bool:
    """Ends with a full stop, and no other sentence starts inside."""
    return msg.endswith(".") and re.search(r"[.:;]\s+[A-Z]", msg) is None


def field(value: bytes, name: str, slot: int | None = None,
          member: str = "interval_ns") -> int:
    """A field of a packed fp_limits, at the offset the contract gives."""
    offset, size = OFFSETS[name]
    if slot is not None:
        budget = dict((f, (o, s)) for f, o, s
                      in _abi.STRUCTS["fp_budget"][0])
        offset += slot * _abi.BUDGET.size + budget[member][0]
        size = budget[member][1]
    return int.from_bytes(value[offset:offset + size], "little")


# The limits value.


def test_limits_left_out_or_at_their_defaults_are_all_zero() -> None:
    assert _limits.limits_value(None) == bytes(288)
    assert _limits.limits_value({}) == bytes(288)
    assert _limits.limits_value(dict(_defaults.LIMITS)) == bytes(288)
    # A default prefix is written as 0, which the program reads as it.
    assert _limits.limits_value({"prefix_v4": 32, "prefix_v6": 64,
                                 "bans": None}) == bytes(288)


def test_every_field_lands_where_the_contract_puts_it() -> None:
    value = _limits.limits_value(FULL)
    assert len(value) == _abi.LIMITS.size == 288
    register, syn = _abi.FP_CLASS_REGISTER, _abi.FP_CLASS_SYN
    assert field(value, "untrusted", register) == NS // 2
    assert field(value, "untrusted", register, "burst") == 10
    assert field(value, "untrusted", _abi.FP_CLASS_INVITE) == \
        round(NS / 5.5)
    assert field(value, "untrusted", _abi.FP_CLASS_OPTIONS) == 2 * NS
    assert field(value, "untrusted", _abi.FP_CLASS_OPTIONS, "burst") == 3
    assert field(value, "untrusted", _abi.FP_CLASS_OTHER) == NS // 100
    assert field(value, "untrusted", syn) == 7 * NS
    assert field(value, "trusted", register) == NS // 50
    assert field(value, "trusted", register, "burst") == 200
    assert field(value, "trusted", syn) == 0
    # The reserved class slots and fields stay zero.
    for slot in range(len(_abi.CLASSES), _abi.CLASS_SLOTS):
        assert field(value, "untrusted", slot) == 0
        assert field(value, "untrusted", slot, "burst") == 0
    assert field(value, "untrusted", register, "reserved") == 0
    assert field(value, "ban_after_ns") == 2 * NS
    assert field(value, "ban_ns") == 300 * NS
    assert field(value, "scanner_ban_ns") == 5400 * NS
    assert field(value, "flags") == _abi.FP_LIMIT_BANS
    assert (field(value, "prefix_v4"), field(value, "prefix_v6")) == (24, 48)
    assert field(value, "reserved") == 0


def test_the_view_reads_the_value_back_in_the_options_terms() -> None:
    view = _limits.limits_view(_limits.limits_value(FULL))
    assert view == {
        "untrusted": {"register": {"rate": 2.0, "burst": 10},
                      "invite": {"rate": 5.5, "burst": 20},
                      "options": {"rate": 0.5, "burst": 3},
                      "other": {"rate": 100.0, "burst": 100},
                      "syn": {"rate": 0.14285714286, "burst": 1}},
        "trusted": {"register": {"rate": 50.0, "burst": 200}},
        "bans": True, "ban_after": 2, "ban_time": 300,
        "scanner_ban_time": 5400, "prefix_v4": 24, "prefix_v6": 48}
    assert _limits.limits_view(None) == _defaults.LIMITS


@pytest.mark.parametrize("limits", [
    None, {}, FULL,
    {"untrusted": {"register": {"rate": 3, "burst": 1}}},
    {"trusted": {"other": {"rate": 0.0001, "burst": 100000}}},
    {"untrusted": {"invite": {"rate": 1e9, "burst": 1}}},
    {"untrusted": {"invite": {"rate": 1 / 86400, "burst": 1}}},
    {"untrusted": {"syn": {"rate": 0, "burst": 0}}, "bans": True},
    {"prefix_v4": 1, "prefix_v6": 128, "scanner_ban_time": 7 * 86400},
])
def test_a_view_given_again_packs_to_the_same_bytes(limits: dict) -> None:
    """The result's view is what the boot command attaches with."""
    value = _limits.limits_value(limits)
    assert _limits.limits_value(_limits.limits_view(value)) == value


def test_rates_read_back_as_the_shortest_number_of_their_interval() -> None:
    assert _limits.rate_of(333333333) == 3.0
    assert _limits.rate_of(NS) == 1.0
    assert _limits.rate_of(1) == 1e9
    for interval in (1, 2, 3, 7, 999, 333333333, 7 * NS, 86400 * NS,
                     86400 * NS - 1, 123456789, 2**40 + 1):
        assert round(NS / _limits.rate_of(interval)) == interval


def test_a_rate_of_zero_is_no_limit_whatever_the_burst() -> None:
    value = _limits.limits_value(
        {"untrusted": {"register": {"rate": 0, "burst": 50}}})
    assert value == bytes(288)


def test_values_written_by_another_tool_read_as_the_program_reads_them(
) -> None:
    fields = [0] * (6 * _abi.CLASS_SLOTS) + [0, 0, 0, 0, 0, 0, 0]
    fields[0:2] = [NS, 0]           # untrusted REGISTER, burst 0 = 1
    fields[3:5] = [0, 7]            # a burst without interval: no limit
    fields[-7:] = [1500 * 10**6, 0, 0, 0x10, 40, 200, 0]
    view = _limits.limits_view(_abi.LIMITS.pack(*fields))
    assert view["untrusted"] == {"register": {"rate": 1.0, "burst": 1}}
    assert view["ban_after"] == 1.5
    assert view["bans"] is False    # an unknown flag bit is not bans
    assert (view["prefix_v4"], view["prefix_v6"]) == (32, 128)


def test_durations_take_the_units_of_a_ttl_and_bans_a_word() -> None:
    value = _limits.limits_value({"ban_after": 90, "ban_time": "1h30m",
                                  "scanner_ban_time": "2w", "bans": "yes"})
    assert field(value, "ban_after_ns") == 90 * NS
    assert field(value, "ban_ns") == 5400 * NS
    assert field(value, "scanner_ban_ns") == 14 * 86400 * NS
    assert field(value, "flags") == _abi.FP_LIMIT_BANS
    assert field(_limits.limits_value({"bans": "off"}), "flags") == 0


def test_the_option_spec_defaults_are_the_defaults() -> None:
    spec = _limits.option_spec()
    assert list(spec) == list(_defaults.LIMITS)
    assert {k: v["default"] for k, v in spec.items()} == _defaults.LIMITS
    spec["untrusted"]["default"]["register"] = {}
    assert _defaults.LIMITS["untrusted"] == {}      # a copy


BUDGET = "{rate: <requests a second>, burst: <requests>}"


@pytest.mark.parametrize("limits, msg", [
    ("5", "limits must be a dict of rate limits and bans, for example "
     "{untrusted: {register: {rate: 5, burst: 10}}}, not '5'."),
    ({"bans": True, "ban": 5}, "limits has the key 'ban', which is not a "
     "limit: use untrusted, trusted, bans, ban_after, ban_time, "
     "scanner_ban_time, prefix_v4 or prefix_v6."),
    ({"untrusted": ["register"]}, "limits.untrusted must map request "
     "classes to %s, not '[\\'register\\']': give for example {register: "
     "{rate: 5, burst: 10}}." % BUDGET),
    ({"trusted": {"regster": {"rate": 1, "burst": 1}}}, "limits.trusted "
     "names the class 'regster', which does not exist: use register, "
     "invite, options, other or syn."),
    ({"untrusted": {"REGISTER": {"rate": 1, "burst": 1}}},
     "limits.untrusted names the class 'REGISTER', which does not exist: "
     "use register, invite, options, other or syn."),
    ({"untrusted": {"invite": 5}}, "limits.untrusted.invite must be %s, "
     "not 5: give both, for example {rate: 5, burst: 10}." % BUDGET),
    ({"untrusted": {"invite": {"rate": 5, "burts": 2}}},
     "limits.untrusted.invite has the key 'burts': give only rate and "
     "burst."),
    ({"untrusted": {"invite": {"burst": 2}}}, "limits.untrusted.invite has "
     "no rate: give rate, in requests a second (0: no limit)."),
    ({"untrusted": {"invite": {"rate": -1, "burst": 2}}},
     "limits.untrusted.invite.rate is -1: a rate cannot be negative; give "
     "requests a second, or 0 for no limit."),
    ({"untrusted": {"invite": {"rate": "-0.5", "burst": 2}}},
     "limits.untrusted.invite.rate is '-0.5': a rate cannot be negative; "
     "give requests a second, or 0 for no limit."),
    ({"untrusted": {"invite": {"rate": "fast", "burst": 2}}},
     "limits.untrusted.invite.rate 'fast' is not a number: give requests a "
     "second, for example 5 or 0.5 (0: no limit)."),
    ({"untrusted": {"invite": {"rate": float("nan"), "burst": 2}}},
     "limits.untrusted.invite.rate nan is not a number: give requests a "
     "second, for example 5 or 0.5 (0: no limit)."),
    ({"untrusted": {"invite": {"rate": True, "burst": 2}}},
     "limits.untrusted.invite.rate 'True' is not a number: give requests a "
     "second, for example 5 or 0.5 (0: no limit)."),
    ({"untrusted": {"invite": {"rate": 2e9, "burst": 2}}},
     "limits.untrusted.invite.rate 2000000000.0 is more than 1000000000 "
     "requests a second: give a lower rate, or 0 for no limit."),
    ({"untrusted": {"invite": {"rate": 1e-6, "burst": 2}}},
     "limits.untrusted.invite.rate 1e-06 is less than one request a day: "
     "give at least 0.0000116 (1/86400), or 0 for no limit."),
    ({"untrusted": {"invite": {"rate": 5}}}, "limits.untrusted.invite has "
     "a rate but no burst: give burst, the requests a source may send back "
     "to back, 1 or more."),
    ({"untrusted": {"invite": {"rate": 5, "burst": 0}}},
     "limits.untrusted.invite.burst is 0: give the requests a source may "
     "send back to back, 1 or more, at most 100000."),
    ({"untrusted": {"invite": {"rate": 5, "burst": 100001}}},
     "limits.untrusted.invite.burst is 100001: give the requests a source "
     "may send back to back, 1 or more, at most 100000."),
    ({"untrusted": {"invite": {"rate": 5, "burst": 2.5}}},
     "limits.untrusted.invite.burst 2.5 is not a whole number: give the "
     "requests a source may send back to back, 1 or more."),
    ({"ban_time": "2x"}, "limits.ban_time '2x' is not a duration: give "
     "seconds, or a number with s, m, h, d or w, for example 90s, 15m, 1h "
     "or 7d."),
    ({"ban_after": -1}, "limits.ban_after '-1' is not a duration: give "
     "seconds, or a number with s, m, h, d or w, for example 90s, 15m, 1h "
     "or 7d."),
    ({"scanner_ban_time": 1.5}, "limits.scanner_ban_time '1.5' is not a "
     "duration: give seconds, or a number with s, m, h, d or w, for "
     "example 90s, 15m, 1h or 7d."),
    ({"ban_time": "600w"}, "limits.ban_time '600w' is longer than 10 "
     "years: give a shorter time, or 0 for no such ban."),
    ({"ban_after": "600w"}, "limits.ban_after '600w' is longer than 10 "
     "years: give a shorter time, or 0 to ban at the first drop."),
    ({"bans": "maybe"}, "limits.bans is 'maybe': give true or false."),
    ({"prefix_v4": 33}, "limits.prefix_v4 is 33: give an IPv4 prefix "
     "length from 1 to 32, the leading bits of an address that make one "
     "source (the default is 32)."),
    ({"prefix_v4": 0}, "limits.prefix_v4 is 0: give an IPv4 prefix length "
     "from 1 to 32, the leading bits of an address that make one source "
     "(the default is 32)."),
    ({"prefix_v6": 129}, "limits.prefix_v6 is 129: give an IPv6 prefix "
     "length from 1 to 128, the leading bits of an address that make one "
     "source (the default is 64)."),
    ({"prefix_v6": "/64"}, "limits.prefix_v6 '/64' is not a whole number: "
     "give an IPv6 prefix length from 1 to 128."),
])
def test_each_bad_limit_is_refused_in_one_sentence(limits: object,
                                                   msg: str) -> None:
    with pytest.raises(FastpathError) as err:
        _limits.limits_value(limits)
    assert err.value.msg == msg
    assert one_sentence(msg)


# The signatures.


def test_signatures_are_packed_from_slot_0_lower_case_zero_padded() -> None:
    slots = _limits.signature_slots(["SIPVicious", "friendly-scanner",
                                     "abcd", "x" * 32])
    assert len(slots) == _abi.MAPS["scanner_sigs"].max_entries == 32
    assert slots[0] == _abi.SIGNATURE.pack(10, 0, b"sipvicious")
    assert slots[0][8:] == b"sipvicious" + bytes(22)
    assert _abi.SIGNATURE.unpack(slots[1])[:2] == (16, 0)
    assert _abi.SIGNATURE.unpack(slots[2])[0] == 4
    assert _abi.SIGNATURE.unpack(slots[3]) == (32, 0, b"x" * 32)
    assert slots[4:] == [bytes(40)] * 28
    assert _limits.signatures_view(slots) == [
        "sipvicious", "friendly-scanner", "abcd", "x" * 32]


def test_no_signatures_is_every_slot_zero() -> None:
    assert _limits.signature_slots([]) == [bytes(40)] * 32
    assert _limits.signature_slots(None) == [bytes(40)] * 32
    assert _limits.signatures_view(None) == []


def test_thirty_two_signatures_fill_every_slot() -> None:
    names = ["scanner%02d" % i for i in range(32)]
    slots = _limits.signature_slots(names)
    assert bytes(40) not in slots
    assert _limits.signatures_view(slots) == names


def test_the_view_reads_slots_as_the_program_does() -> None:
    """Up to the first empty slot; a length out of bounds is skipped."""
    slots = [_abi.SIGNATURE.pack(4, 0, b"abcd"),
             _abi.SIGNATURE.pack(3, 0, b"abc"),
             _abi.SIGNATURE.pack(40, 0, b"y" * 32),
             _abi.SIGNATURE.pack(5, 0, b"efghi"),
             bytes(40),
             _abi.SIGNATURE.pack(4, 0, b"zzzz")] + [bytes(40)] * 26
    assert _limits.signatures_view(slots) == ["abcd", "efghi"]


def test_only_the_slots_that_differ_change() -> None:
    before = _limits.signature_slots(["sipvicious", "friendly-scanner",
                                      "sipcli"])
    after = _limits.signature_slots(["sipvicious", "sipsak", "sipcli"])
    assert _limits.changed_slots(before, after) == {1: after[1]}
    shorter = _limits.signature_slots(["sipvicious"])
    assert sorted(_limits.changed_slots(before, shorter)) == [1, 2]
    assert _limits.changed_slots(None, after) == {0: after[0], 1: after[1],
                                                  2: after[2]}
    assert _limits.changed_slots(after, after) == {}


@pytest.mark.parametrize("signatures, msg", [
    ("sipvicious", "scanner_signatures must be a list of User-Agent "
     "signatures, for example [sipvicious, friendly-scanner], not "
     "'sipvicious'."),
    (["sipvicious", 12345], "scanner_signatures entry 2 (12345) is not "
     "text: give each signature as a string of 4 to 32 characters."),
    (["abc"], "scanner_signatures entry 1 'abc' is 3 characters long: give "
     "4 to 32 (a shorter one would match ordinary phones)."),
    (["x" * 33], "scanner_signatures entry 1 '%s' is 33 characters long: "
     "give 4 to 32, the longest the program compares." % ("x" * 33)),
    (["evil\r\nVia: x"], "scanner_signatures entry 1 'evil\\r\\nVia: x' "
     "has a character that is not printable ASCII (a CR, LF, tab or other "
     "control character, or one beyond ASCII): give the signature in "
     "printable ASCII."),
    (["sip\tscan"], "scanner_signatures entry 1 'sip\\tscan' has a "
     "character that is not printable ASCII (a CR, LF, tab or other "
     "control character, or one beyond ASCII): give the signature in "
     "printable ASCII."),
    (["ok-one", "scänner"], "scanner_signatures entry 2 'scänner' has a "
     "character that is not printable ASCII (a CR, LF, tab or other "
     "control character, or one beyond ASCII): give the signature in "
     "printable ASCII."),
    (["sipvicious", "sipcli", "SIPVicious"], "scanner_signatures entry 3 "
     "'SIPVicious' repeats entry 1 (case does not count): give each "
     "signature once."),
    (["scanner%02d" % i for i in range(33)], "scanner_signatures has 33 "
     "entries: the program holds at most 32; keep the ones that matter "
     "most."),
])
def test_each_bad_signature_is_refused_in_one_sentence(signatures: object,
                                                       msg: str) -> None:
    with pytest.raises(FastpathError) as err:
        _limits.signature_slots(signatures)
    assert err.value.msg == msg
    assert one_sentence(msg)

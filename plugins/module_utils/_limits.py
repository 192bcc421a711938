# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rate limits, bans and scanner signatures, from the operator's words to
the `limits` and `scanner_sigs` maps and back.

Private to this collection. Pure: no I/O. limits_value() checks the
`limits` option of xdp_attach (or of the boot configuration) and packs
the one struct fp_limits of the `limits` map; limits_view() reads such a
value back in the option's own terms, so that a diff shows both sides
alike and a view given again packs to the same bytes. signature_slots()
and signatures_view() do the same for `scanner_signatures` and the slots
of `scanner_sigs` (docs/dataplane.md, "Rate limits and bans"). A bad
value is refused with one sentence that names it and says what to give.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import copy
import math
import re

from . import _abi, _defaults
from ._errors import FastpathError
from ._input import parse_ttl, quote

NS = 10**9
CLASS_NAMES = tuple(name.lower() for name in _abi.CLASSES)
GROUPS = ("untrusted", "trusted")
# The keys of the option, in the order the documentation gives them.
KEYS = tuple(_defaults.LIMITS)
# Durations: option key, what a time longer than 10 years is to become.
DURATIONS = (
    ("ban_after", "give a shorter time, or 0 to ban at the first drop"),
    ("ban_time", "give a shorter time, or 0 for no such ban"),
    ("scanner_ban_time", "give a shorter time, or 0 for no such ban"),
)
PREFIXES = {"prefix_v4": ("IPv4", 32), "prefix_v6": ("IPv6", 128)}

# Bounds that keep the program's arithmetic within 64 bits (burst times
# interval) and a rate that round-trips through its interval in ns.
MAX_RATE = 1e9                  # one request a nanosecond
MAX_INTERVAL_NS = 86400 * NS    # one request a day
MAX_BURST = 100000

ZERO_LIMITS = bytes(_abi.LIMITS.size)
MAX_SIGNATURES = _abi.MAPS["scanner_sigs"].max_entries
EMPTY_SLOT = bytes(_abi.SIGNATURE.size)
NO_SIGNATURES = [EMPTY_SLOT] * MAX_SIGNATURES

_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_WHOLE = re.compile(r"-?[0-9]{1,12}")
_TRUE = ("true", "yes", "on", "y", "t", "1")
_FALSE = ("false", "no", "off", "n", "f", "0")
_BUDGET = "{rate: <requests a second>, burst: <requests>}"


def option_spec() -> dict:
    """The suboptions of xdp_attach's `limits`, with their defaults; their
    values are checked here (limits_value), not by their types alone."""
    types = {"untrusted": "dict", "trusted": "dict", "bans": "bool",
             "ban_after": "raw", "ban_time": "raw",
             "scanner_ban_time": "raw", "prefix_v4": "int",
             "prefix_v6": "int"}
    return dict((key, dict(type=types[key],
                           default=copy.deepcopy(_defaults.LIMITS[key])))
                for key in KEYS)


def _shown(value: object) -> str:
    """A value for a message: a number as it is, anything else quoted."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value)
    return quote(str(value))


def _one_of(names: tuple[str, ...]) -> str:
    return ", ".join(names[:-1]) + " or " + names[-1]


def _number(value: object, what: str, unit: str) -> float:
    """A number given as an int, a float or a decimal string."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        number = float(value)
    else:
        number = math.nan
    if math.isnan(number) or math.isinf(number):
        raise FastpathError("%s %s is not a number: give %s."
                            % (what, _shown(value), unit))
    return number


def _whole(value: object, what: str, unit: str) -> int:
    """A whole number given as an int or a string of digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _WHOLE.fullmatch(value.strip()):
        return int(value)
    raise FastpathError("%s %s is not a whole number: give %s."
                        % (what, _shown(value), unit))


def _bool(value: object) -> bool:
    """bans as Ansible takes a bool: true, false, yes, no, on, off, 1, 0."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower() if isinstance(value, (str, int)) \
        else None
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise FastpathError("limits.bans is %s: give true or false."
                        % _shown(value))


def _budget(value: object, what: str) -> tuple[int, int]:
    """(interval_ns, burst) of one class's {rate, burst}; (0, 0) for a
    rate of 0, no limit."""
    if not isinstance(value, dict):
        raise FastpathError(
            "%s must be %s, not %s: give both, for example {rate: 5, "
            "burst: 10}." % (what, _BUDGET, _shown(value)))
    unknown = sorted(set(value) - {"rate", "burst"}, key=str)
    if unknown:
        raise FastpathError("%s has the key %s: give only rate and burst."
                            % (what, quote(str(unknown[0]))))
    if value.get("rate") is None:
        raise FastpathError("%s has no rate: give rate, in requests a "
                            "second (0: no limit)." % what)
    rate = _number(value["rate"], what + ".rate",
                   "requests a second, for example 5 or 0.5 (0: no limit)")
    burst_unit = "the requests a source may send back to back, 1 or more"
    burst = None
    if value.get("burst") is not None:
        burst = _whole(value["burst"], what + ".burst", burst_unit)
    if rate < 0:
        raise FastpathError("%s.rate is %s: a rate cannot be negative; give "
                            "requests a second, or 0 for no limit."
                            % (what, _shown(value["rate"])))
    if rate == 0:
        return 0, 0
    if rate > MAX_RATE:
        raise FastpathError("%s.rate %s is more than %d requests a second: "
                            "give a lower rate, or 0 for no limit."
                            % (what, _shown(value["rate"]), MAX_RATE))
    exact = NS / rate
    if exact >= MAX_INTERVAL_NS + 0.5:
        raise FastpathError(
            "%s.rate %s is less than one request a day: give at least "
            "0.0000116 (1/86400), or 0 for no limit."
            % (what, _shown(value["rate"])))
    interval = int(round(exact))
    if burst is None:
        raise FastpathError("%s has a rate but no burst: give burst, %s."
                            % (what, burst_unit))
    if not 1 <= burst <= MAX_BURST:
        raise FastpathError("%s.burst is %d: give %s, at most %d."
                            % (what, burst, burst_unit, MAX_BURST))
    return interval, burst


def _budgets(value: object, group: str) -> list[tuple[int, int]]:
    """(interval_ns, burst) of every class slot of one group."""
    what = "limits." + group
    slots = [(0, 0)] * _abi.CLASS_SLOTS
    if value is None:
        return slots
    if not isinstance(value, dict):
        raise FastpathError(
            "%s must map request classes to %s, not %s: give for example "
            "{register: {rate: 5, burst: 10}}."
            % (what, _BUDGET, quote(str(value))))
    for name in sorted(value, key=str):
        if name not in CLASS_NAMES:
            raise FastpathError(
                "%s names the class %s, which does not exist: use %s."
                % (what, quote(str(name)), _one_of(CLASS_NAMES)))
        slots[CLASS_NAMES.index(name)] = _budget(value[name],
                                                 "%s.%s" % (what, name))
    return slots


def _prefix(value: object, key: str) -> int:
    family, longest = PREFIXES[key]
    what = "limits." + key
    unit = "an %s prefix length from 1 to %d" % (family, longest)
    length = _whole(value, what, unit)
    if not 1 <= length <= longest:
        raise FastpathError(
            "%s is %d: give %s, the leading bits of an address that make "
            "one source (the default is %d)."
            % (what, length, unit, _defaults.LIMITS[key]))
    return length


def limits_value(limits: object) -> bytes:
    """The struct fp_limits that the `limits` option asks for; None (the
    option left out) is every limit and ban off, the all-zero value.
    Keys left out, or None, take _defaults.LIMITS. A default prefix is
    written as 0, which the program reads as that default."""
    if limits is None:
        return ZERO_LIMITS
    if not isinstance(limits, dict):
        raise FastpathError(
            "limits must be a dict of rate limits and bans, for example "
            "{untrusted: {register: {rate: 5, burst: 10}}}, not %s."
            % _shown(limits))
    unknown = sorted(set(limits) - set(KEYS), key=str)
    if unknown:
        raise FastpathError("limits has the key %s, which is not a limit: "
                            "use %s." % (quote(str(unknown[0])),
                                         _one_of(KEYS)))
    given = dict(_defaults.LIMITS)
    given.update((k, v) for k, v in limits.items() if v is not None)
    fields: list[int] = []
    for group in GROUPS:
        for interval, burst in _budgets(given[group], group):
            fields += [interval, burst, 0]
    for key, zero in DURATIONS:
        fields.append(parse_ttl(given[key], "limits." + key, zero) * NS)
    fields.append(_abi.FP_LIMIT_BANS if _bool(given["bans"]) else 0)
    for key in PREFIXES:
        length = _prefix(given[key], key)
        fields.append(0 if length == _defaults.LIMITS[key] else length)
    fields.append(0)
    return _abi.LIMITS.pack(*fields)


def rate_of(interval_ns: int) -> float:
    """The requests a second of an interval: the shortest decimal whose
    interval is interval_ns again (3.0 for 333333333, not 3.000000003)."""
    exact = NS / interval_ns
    for digits in range(1, 18):
        rate = float("%.*g" % (digits, exact))
        if rate > 0 and int(round(NS / rate)) == interval_ns:
            return rate
    return exact


def _seconds(ns: int) -> int | float:
    return ns // NS if ns % NS == 0 else ns / NS


def limits_view(raw: bytes | None) -> dict:
    """A `limits` value (None: no map) in the option's terms: the classes
    with a limit, each {rate, burst}; durations in seconds."""
    values = _abi.LIMITS.unpack(raw if raw is not None else ZERO_LIMITS)
    view: dict = {}
    for g, group in enumerate(GROUPS):
        classes = {}
        for slot, name in enumerate(CLASS_NAMES):
            base = 3 * (g * _abi.CLASS_SLOTS + slot)
            interval, burst = values[base], values[base + 1]
            if interval:
                classes[name] = {"rate": rate_of(interval),
                                 "burst": burst or 1}
        view[group] = classes
    tail = values[6 * _abi.CLASS_SLOTS:]
    ban_after, ban, scanner_ban, flags, prefix_v4, prefix_v6 = tail[:6]
    view.update(
        bans=bool(flags & _abi.FP_LIMIT_BANS),
        ban_after=_seconds(ban_after), ban_time=_seconds(ban),
        scanner_ban_time=_seconds(scanner_ban),
        # As the program reads them ([step 13]).
        prefix_v4=prefix_v4 if 0 < prefix_v4 <= 32 else 32,
        prefix_v6=min(prefix_v6, 128) if prefix_v6 else 64)
    return view


def check_signatures(signatures: object) -> list[bytes]:
    """The signatures, lower-cased, in the order given; None is none."""
    if signatures is None:
        return []
    if not isinstance(signatures, (list, tuple)):
        raise FastpathError(
            "scanner_signatures must be a list of User-Agent signatures, "
            "for example [sipvicious, friendly-scanner], not %s."
            % quote(str(signatures)))
    if len(signatures) > MAX_SIGNATURES:
        raise FastpathError(
            "scanner_signatures has %d entries: the program holds at most "
            "%d; keep the ones that matter most."
            % (len(signatures), MAX_SIGNATURES))
    seen: dict[bytes, int] = {}
    out = []
    for number, signature in enumerate(signatures, 1):
        what = "scanner_signatures entry %d" % number
        if not isinstance(signature, str):
            raise FastpathError(
                "%s (%s) is not text: give each signature as a string of "
                "%d to %d characters." % (what, _shown(signature),
                                          _abi.MIN_SIGNATURE_LEN,
                                          _abi.MAX_SIGNATURE_LEN))
        if not all(" " <= char <= "~" for char in signature):
            raise FastpathError(
                "%s %s has a character that is not printable ASCII (a CR, "
                "LF, tab or other control character, or one beyond ASCII): "
                "give the signature in printable ASCII."
                % (what, quote(signature)))
        text = signature.lower().encode("ascii")
        if len(text) < _abi.MIN_SIGNATURE_LEN:
            raise FastpathError(
                "%s %s is %d characters long: give %d to %d (a shorter one "
                "would match ordinary phones)."
                % (what, quote(signature), len(text),
                   _abi.MIN_SIGNATURE_LEN, _abi.MAX_SIGNATURE_LEN))
        if len(text) > _abi.MAX_SIGNATURE_LEN:
            raise FastpathError(
                "%s %s is %d characters long: give %d to %d, the longest "
                "the program compares." % (what, quote(signature, 48),
                                           len(text), _abi.MIN_SIGNATURE_LEN,
                                           _abi.MAX_SIGNATURE_LEN))
        if text in seen:
            raise FastpathError(
                "%s %s repeats entry %d (case does not count): give each "
                "signature once." % (what, quote(signature), seen[text]))
        seen[text] = number
        out.append(text)
    return out


def signature_slots(signatures: object) -> list[bytes]:
    """Every slot of `scanner_sigs` for the signatures: packed from slot
    0 on, in order; the slots after them all zero."""
    slots = [_abi.SIGNATURE.pack(len(text), 0, text)
             for text in check_signatures(signatures)]
    return slots + [EMPTY_SLOT] * (MAX_SIGNATURES - len(slots))


def signatures_view(slots: list[bytes] | None) -> list[str]:
    """The signatures the slots hold (None: no map), as the program reads
    them: up to the first empty slot, skipping a length out of bounds."""
    out = []
    for raw in slots or ():
        length, _reserved, text = _abi.SIGNATURE.unpack(raw)
        if length == 0:
            break
        if _abi.MIN_SIGNATURE_LEN <= length <= _abi.MAX_SIGNATURE_LEN:
            out.append(text[:length].decode("ascii", "backslashreplace"))
    return out


def changed_slots(current: list[bytes] | None,
                  wanted: list[bytes]) -> dict[int, bytes]:
    """{slot: value} of the slots whose value is to change."""
    have = current if current is not None else NO_SIGNATURES
    return dict((slot, value) for slot, value in enumerate(wanted)
                if have[slot] != value)

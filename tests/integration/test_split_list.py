"""The blocklist's single addresses in their hashes, its prefixes in the
tries: where vos.fastpath.bpf_map_entry puts each entry, how it moves the
single addresses that a host running 0.1.0 holds in its tries, and that
the list semantics (owners, exact, TTL, absent) stay whole across both
maps. Against the program's real pinned maps."""

from __future__ import annotations

import ipaddress
import signal
import time
from pathlib import Path

from plugins.module_utils import _abi, _bpf, _lists
from tests.integration.test_bpf_map_entry import contents, run
from tests.integration.test_list_safety import (
    RUN_SECONDS,
    finish,
    start,
    succeeded,
)
from tests.trie_entries import open_list

V4, V6 = "203.0.113.7", "2001:db8::7"
PREFIXES = ["198.51.100.0/24", "2001:db8:bad::/48"]


def hashed(pin_dir: Path) -> set[str]:
    """The addresses the two hashes hold."""
    out = set()
    for name in ("block_v4_hosts", "block_v6_hosts"):
        with _bpf.Map.open_pinned(str(pin_dir / name)) as m:
            out |= {str(ipaddress.ip_address(k)) for k in m.keys()}
    return out


def in_tries(pin_dir: Path) -> set[str]:
    """The keys the two tries hold, as CIDRs."""
    out = set()
    for name in ("block_v4", "block_v6"):
        with _bpf.Map.open_pinned(str(pin_dir / name)) as m:
            out |= {_lists.key_text(k) for k in m.keys()}
    return out


def trie_key(cidr: str) -> bytes:
    net = ipaddress.ip_network(cidr)
    layout = _abi.LPM_V4_KEY if net.version == 4 else _abi.LPM_V6_KEY
    return layout.pack(net.prefixlen, net.network_address.packed)


def write_in_trie(pin_dir: Path, cidr: str, tag: int,
                  expires_ns: int = 0) -> None:
    """An entry where release 0.1.0 put every entry: in the trie."""
    name = "block_v4" if ipaddress.ip_network(cidr).version == 4 \
        else "block_v6"
    with _bpf.Map.open_pinned(str(pin_dir / name)) as m:
        m.update(trie_key(cidr), _abi.ENTRY.pack(expires_ns, tag, 0))


def test_single_addresses_go_to_the_hashes_and_prefixes_to_the_tries(
        maps: Path, tmp_path: Path) -> None:
    result = run(maps, tmp_path, entries=[V4, V6, *PREFIXES],
                 source="feed")
    assert (result["changed"], result["added"], result["total"],
            result["moved"]) == (True, 4, 4, 0)
    assert hashed(maps) == {V4, V6}
    assert in_tries(maps) == set(PREFIXES)
    tag = _lists.source_tag("feed")
    assert contents(maps) == {V4 + "/32": (0, tag), V6 + "/128": (0, tag),
                              PREFIXES[0]: (0, tag), PREFIXES[1]: (0, tag)}
    again = run(maps, tmp_path, entries=[V4, V6, *PREFIXES], source="feed")
    assert (again["changed"], again["unchanged"]) == (False, 4)


def test_exact_ttl_and_owners_work_across_both_maps(
        maps: Path, tmp_path: Path) -> None:
    run(maps, tmp_path, entries=[V4, PREFIXES[0]], source="manual")
    run(maps, tmp_path, entries=[V4, "192.0.2.1", PREFIXES[1]], ttl="1h",
        source="feed")
    # The feed's exact sync drops its own entries only: V4 stays, since
    # manual still lists it, and manual's permanent claim wins over the
    # feed's TTL.
    result = run(maps, tmp_path, entries=["192.0.2.2"], state="exact",
                 source="feed", ttl="1h")
    assert (result["added"], result["removed"]) == (1, 2)
    assert hashed(maps) == {V4, "192.0.2.2"}
    assert in_tries(maps) == {PREFIXES[0]}
    assert contents(maps)[V4 + "/32"] == (0, _lists.source_tag("manual"))
    assert contents(maps)["192.0.2.2/32"][0] > 0
    gone = run(maps, tmp_path, entries=[V4, PREFIXES[0]], state="absent",
               source="manual")
    assert gone["removed"] == 2
    assert hashed(maps) == {"192.0.2.2"} and in_tries(maps) == set()


def test_a_full_hash_is_refused_before_anything_is_written(
        maps: Path, tmp_path: Path) -> None:
    """The hash's own capacity is checked, not the trie's: a list of more
    single addresses than block_v6_hosts holds fails whole."""
    size = _abi.MAPS["block_v6_hosts"].max_entries
    listing = tmp_path / "big.txt"
    base = int(ipaddress.IPv6Address("2001:db8::"))
    listing.write_text("".join(
        "%s\n" % ipaddress.IPv6Address(base + i) for i in range(size + 1)))
    run(maps, tmp_path, entries=[V4], source="manual")
    result = run(maps, tmp_path, src=str(listing), source="feed")
    assert result["failed"] is True
    assert result["msg"] == (
        "block_v6_hosts would hold %d entries, more than its %d: shorten "
        "the list or aggregate it into wider prefixes. Nothing was changed."
        % (size + 1, size))
    assert hashed(maps) == {V4} and in_tries(maps) == set()


def test_a_0_1_0_hosts_single_addresses_are_moved_out_of_the_tries(
        maps: Path, tmp_path: Path) -> None:
    """The first run after an upgrade moves each single address of the
    tries to its hash, with its owner and expiry, and keeps the
    prefixes where they are; check mode says so and moves nothing."""
    tag = _lists.source_tag("feed")
    later = _lists.boot_ns() + 3600 * 10**9
    for cidr in ("192.0.2.1/32", "192.0.2.2/32", "2001:db8::1/128"):
        write_in_trie(maps, cidr, tag)
    write_in_trie(maps, "192.0.2.3/32", tag, expires_ns=later)
    write_in_trie(maps, PREFIXES[0], tag)
    before = contents(maps)

    check = run(maps, tmp_path, check=True, restore=True)
    assert (check["changed"], check["moved"]) == (True, 4)
    assert hashed(maps) == set()

    moved = run(maps, tmp_path, restore=True)
    assert (moved["changed"], moved["moved"], moved["added"],
            moved["removed"]) == (True, 4, 0, 0)
    assert hashed(maps) == {"192.0.2.1", "192.0.2.2", "192.0.2.3",
                            "2001:db8::1"}
    assert in_tries(maps) == {PREFIXES[0]}
    assert contents(maps) == before
    again = run(maps, tmp_path, restore=True)
    assert (again["changed"], again["moved"]) == (False, 0)


def test_a_move_leaves_the_plans_changes_as_the_plan_made_them(
        maps: Path, tmp_path: Path) -> None:
    """Single addresses in a trie that the same run removes or rewrites:
    a removed one leaves both maps, a rewritten one keeps its new value
    (not the trie's old one), and the rest move."""
    tag = _lists.source_tag("feed")
    for cidr in ("192.0.2.1/32", "192.0.2.2/32", "192.0.2.3/32"):
        write_in_trie(maps, cidr, tag)
    result = run(maps, tmp_path, source="feed", state="exact", ttl="1h",
                 entries=["192.0.2.2", "192.0.2.3"])
    assert result["moved"] == 0, "both kept ones are rewritten, with a TTL"
    assert result["removed"] == 1
    assert hashed(maps) == {"192.0.2.2", "192.0.2.3"}
    assert in_tries(maps) == set()
    assert all(expires > 0 for expires, _tag in contents(maps).values())


def test_a_move_cut_between_its_two_writes_is_finished_by_the_next_run(
        maps: Path, tmp_path: Path) -> None:
    """A run killed after writing the hash's copy and before deleting the
    trie's leaves an address in both maps: the next run reads it once,
    with the hash's value, and removes the trie's copy."""
    tag = _lists.source_tag("feed")
    run(maps, tmp_path, entries=["192.0.2.1"], source="feed", ttl="1h")
    write_in_trie(maps, "192.0.2.1/32", tag)    # the older, permanent copy
    with open_list(maps, "block_v4") as family:
        keys, _values = family.lookup_batch()
        assert len(keys) == _abi.LPM_V4_KEY.size
    result = run(maps, tmp_path, entries=["192.0.2.1"], source="feed",
                 ttl="1h")
    assert (result["changed"], result["moved"], result["added"]) == (
        True, 1, 0)
    assert in_tries(maps) == set() and hashed(maps) == {"192.0.2.1"}
    assert contents(maps)["192.0.2.1/32"][0] > 0


def test_a_host_older_than_the_hashes_gets_everything_in_its_tries(
        maps: Path, tmp_path: Path) -> None:
    """Without the hashes' pins (a program before them), the single
    addresses go to the tries, which that program reads."""
    for name in ("block_v4_hosts", "block_v6_hosts"):
        (maps / name).unlink()
    result = run(maps, tmp_path, entries=[V4, V6, PREFIXES[0]])
    assert (result["changed"], result["added"], result["moved"]) == (
        True, 3, 0)
    assert in_tries(maps) == {V4 + "/32", V6 + "/128", PREFIXES[0]}


# -- kill -9 in the middle of a move ------------------------------------------

MOVED = 120_000     # every key in 198.18.0.0/15 (keys only, no traffic)


def union_of_both(pin_dir: Path) -> set[bytes]:
    """The IPv4 addresses that the hash or the trie holds."""
    with _bpf.Map.open_pinned(str(pin_dir / "block_v4_hosts")) as m:
        hashed_keys = m.lookup_batch(chunk=65536)[0]
    with _bpf.Map.open_pinned(str(pin_dir / "block_v4")) as m:
        trie_keys = m.lookup_batch(chunk=65536)[0]
    return {hashed_keys[i:i + 4] for i in range(0, len(hashed_keys), 4)} | \
        {trie_keys[i + 4:i + 8] for i in range(0, len(trie_keys), 8)}


def test_kill_9_during_a_move_loses_no_address(
        maps: Path, tmp_path: Path) -> None:
    """The move of 120,000 single addresses out of a 0.1.0 trie, killed
    with SIGKILL as soon as the hash holds some, then as soon as the trie
    has lost some: every address stays in one map or both, and the next
    run finishes the move."""
    first = int(ipaddress.IPv4Address("198.18.0.0"))
    addrs = [(first + i).to_bytes(4, "big") for i in range(MOVED)]
    with _bpf.Map.open_pinned(str(maps / "block_v4")) as trie:
        trie.update_batch(b"".join(_abi.LPM_V4_KEY.pack(32, a) for a in addrs),
                          _abi.ENTRY.pack(0, 7, 0) * MOVED)
    sample = addrs[::MOVED // 50]
    left_in_trie: list[int] = []
    hosts = _bpf.Map.open_pinned(str(maps / "block_v4_hosts"))
    trie = _bpf.Map.open_pinned(str(maps / "block_v4"))
    try:
        for point, ready in (
                ("the hash holds some", lambda: any(
                    hosts.lookup(a) is not None for a in sample)),
                ("the trie has lost some", lambda: any(
                    trie.lookup(_abi.LPM_V4_KEY.pack(32, a)) is None
                    for a in sample))):
            proc = start(maps, tmp_path, restore=True)
            deadline = time.monotonic() + RUN_SECONDS
            while proc.poll() is None and time.monotonic() < deadline \
                    and not ready():
                time.sleep(0.001)
            proc.kill()
            proc.communicate(timeout=RUN_SECONDS)
            assert proc.returncode == -signal.SIGKILL, (
                "the run ended before %s" % point)
            assert union_of_both(maps) == set(addrs), point
            left_in_trie.append(len(trie.lookup_batch(chunk=65536)[0]) // 8)
    finally:
        hosts.close()
        trie.close()
    # The first kill landed between the hash's write and the trie's delete.
    assert left_in_trie[0] > 0, left_in_trie
    done = succeeded(finish(start(maps, tmp_path, restore=True)))
    assert done["added"] == done["removed"] == 0
    assert in_tries(maps) == set()
    with _bpf.Map.open_pinned(str(maps / "block_v4_hosts")) as m:
        assert len(m.lookup_batch(chunk=65536)[0]) == 4 * MOVED

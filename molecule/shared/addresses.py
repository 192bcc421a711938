"""Seeded block list entries for the scenarios, and the lists in the maps.

    python3 addresses.py COUNT SEED > blocklist.txt

prints COUNT distinct entries, one per line: mostly IPv4 addresses, some
IPv4 prefixes, some IPv6 addresses and prefixes. None of them overlaps
198.18.0.0/15, where the scenarios' own hosts live: the entries are keys
written into maps, and no packet is ever sent to them.

generate(..., ipv4_hosts=True) draws IPv4 addresses only (/32), for a
consumer that takes nothing else, such as one `bpftool map update` per
address.
"""

from __future__ import annotations

import ipaddress
import random
import sys

TEST_NETWORKS = ipaddress.ip_network("198.18.0.0/15")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def entry(rng: random.Random, ipv4_hosts: bool = False) -> Network:
    if ipv4_hosts:
        return ipaddress.ip_network(rng.getrandbits(32))
    kind = rng.random()
    if kind < 0.85:
        return ipaddress.ip_network(rng.getrandbits(32))
    if kind < 0.90:
        return ipaddress.ip_network((rng.getrandbits(32), rng.randint(16, 31)),
                                    strict=False)
    if kind < 0.97:
        return ipaddress.ip_network(rng.getrandbits(128))
    return ipaddress.ip_network((rng.getrandbits(128), rng.randint(32, 64)),
                                strict=False)


def generate(count: int, seed: int, ipv4_hosts: bool = False) -> list[str]:
    rng = random.Random(seed)
    picked: dict[Network, None] = {}
    while len(picked) < count:
        net = entry(rng, ipv4_hosts)
        if net.version == 4 and net.overlaps(TEST_NETWORKS):
            continue
        picked[net] = None
    return [str(net.network_address) if net.prefixlen == net.max_prefixlen
            else str(net) for net in picked]


def canonical(lines: list[str]) -> set[str]:
    """A list file's entries as prefixes: 192.0.2.1 -> 192.0.2.1/32."""
    return {ipaddress.ip_network(line.strip()).with_prefixlen
            for line in lines if line.strip()}


def from_trie_key(key: bytes) -> str:
    """A block/allow trie key (prefixlen, host order; address) as a prefix."""
    prefixlen = int.from_bytes(key[:4], sys.byteorder)
    return "%s/%d" % (ipaddress.ip_address(key[4:]), prefixlen)


if __name__ == "__main__":
    print("\n".join(generate(int(sys.argv[1]), int(sys.argv[2]))))

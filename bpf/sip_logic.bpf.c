// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * vos-fastpath SIP shield. Its contract (maps, settings, counters and the
 * numbered decision steps cited as [step N]) is docs/dataplane.md.
 *
 * Drops blocklisted sources, hides the host from OPTIONS scanners
 * (stealth), drops non-SIP junk on SIP UDP ports, passes the rest or
 * redirects it to an AF_XDP socket, and counts every verdict once.
 */
#include "fp_kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "fp_abi.h"
#include "fp_parse.h"
#include "fp_sip.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u8);
	__uint(max_entries, FP_MAX_SIP_PORTS);
} sip_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct fp_lpm_v4_key);
	__type(value, struct fp_entry);
	__uint(max_entries, FP_MAX_ALLOW_V4);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} allow_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct fp_lpm_v6_key);
	__type(value, struct fp_entry);
	__uint(max_entries, FP_MAX_ALLOW_V6);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} allow_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct fp_lpm_v4_key);
	__type(value, struct fp_entry);
	__uint(max_entries, FP_MAX_BLOCK_V4);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} block_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct fp_lpm_v6_key);
	__type(value, struct fp_entry);
	__uint(max_entries, FP_MAX_BLOCK_V6);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} block_v6 SEC(".maps");

/* The blocklist's exact addresses, looked up before its tries [step 7]. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct fp_addr_v4);
	__type(value, struct fp_entry);
	__uint(max_entries, FP_MAX_BLOCK_V4_HOSTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} block_v4_hosts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct fp_addr_v6);
	__type(value, struct fp_entry);
	__uint(max_entries, FP_MAX_BLOCK_V6_HOSTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} block_v6_hosts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct fp_settings);
	__uint(max_entries, FP_MAX_SETTINGS);
} settings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct fp_counter);
	__uint(max_entries, FP_MAX_STATS);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct fp_counter);
	__uint(max_entries, FP_MAX_PROTO_STATS);
} proto_stats SEC(".maps");

/* Counters of the reasons from FP_REASON_MAX on: `stats` is full. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct fp_counter);
	__uint(max_entries, FP_MAX_STATS_EXT);
} stats_ext SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, FP_MAX_XSKS_MAP);
} xsks_map SEC(".maps");

static __always_inline __u32 fp_flags(void)
{
	__u32 zero = 0;
	struct fp_settings *s = bpf_map_lookup_elem(&settings, &zero);

	return s ? s->flags : 0;
}

static __always_inline int fp_is_sip_port(__u16 port)
{
	__u32 key = port;
	__u8 *on = bpf_map_lookup_elem(&sip_ports, &key);

	return on && *on;
}

static __always_inline int fp_live(struct fp_entry *entry)
{
	/* The clock is read only for entries that can expire. */
	return !entry->expires_ns ||
	       entry->expires_ns > bpf_ktime_get_boot_ns();
}

static __always_inline void fp_count(void *map, __u32 index, __u64 bytes)
{
	struct fp_counter *c = bpf_map_lookup_elem(map, &index);

	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

/* [step 14] A SIP UDP packet that passes goes to the AF_XDP socket of its
 * rx queue when there is one. */
static __always_inline int fp_pass_sip(struct xdp_md *ctx, __u32 *reason)
{
	int action = bpf_redirect_map(&xsks_map, ctx->rx_queue_index,
				      XDP_PASS);

	*reason = action == XDP_REDIRECT ? FP_REDIRECTED : FP_PASSED;
	return action;
}

/*
 * The stages below are global functions: the verifier checks each of them
 * once, with arguments it knows nothing about, instead of once for every
 * parsing path (VLAN tags, IPv6 extension chains) that leads to them.
 * Their arguments are offsets from the frame start, packed into scalars.
 */

/* Offsets in the frame, 20 bits each: L4 header, IP end, source address. */
#define FP_OFF_BITS	20
#define FP_OFF_MASK	((1ULL << FP_OFF_BITS) - 1)
/* Header offsets stay under 16 KiB: two VLAN tags, IPv6 and four 2 KiB
 * extension headers end 8254 bytes in. The mask shows it to the verifier. */
#define FP_HDR_MASK	0x3fff

#include "fp_limits.h"
#include "fp_scanner.h"

/* The four lists, for the global function below. */
enum fp_list {
	FP_ALLOW_V4, FP_ALLOW_V6, FP_BLOCK_V4, FP_BLOCK_V6,
};

/* How many expired entries one lookup looks past before giving up: a
 * bound the verifier needs, part of the contract (docs/dataplane.md). */
#define FP_MAX_EXPIRED_SKIPS	4
/* Rounds of a binary search over prefix lengths 0..128. */
#define FP_PREFIX_SEARCH_STEPS	8

/* The trie of a list, and the source address of the packet as its key
 * (prefixlen set to the full address). NULL when the packet is too short. */
static __always_inline void *fp_list_key(struct xdp_md *ctx, __u32 list,
					 __u32 saddr_off,
					 struct fp_lpm_v6_key *key)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	void *saddr = data + (saddr_off & FP_HDR_MASK);

	if (list == FP_ALLOW_V6 || list == FP_BLOCK_V6) {
		if (saddr + 16 > data_end)
			return NULL;
		__builtin_memcpy(key->addr, saddr, 16);
		key->prefixlen = 128;
		return list == FP_ALLOW_V6 ? (void *)&allow_v6 :
					     (void *)&block_v6;
	}
	if (saddr + 4 > data_end)
		return NULL;
	/* A v4 trie reads only the first 8 bytes of the key. */
	__builtin_memcpy(key->addr, saddr, 4);
	key->prefixlen = 32;
	return list == FP_ALLOW_V4 ? (void *)&allow_v4 : (void *)&block_v4;
}

/* The prefix length of the entry that a lookup at prefixlen `at` finds:
 * the shortest prefixlen whose lookup still returns that entry, found by
 * binary search. A global function, so the verifier checks the search
 * once with `at` unknown. Returns 0 when there is no such entry. */
__noinline int fp_matched_prefixlen(struct xdp_md *ctx, __u32 list,
				    __u32 saddr_off, __u32 at)
{
	struct fp_lpm_v6_key key = {};
	struct fp_entry *entry;
	__u32 lo = 0, hi;
	void *trie;
	int j;

	trie = fp_list_key(ctx, list, saddr_off, &key);
	if (!trie)
		return 0;
	hi = at < key.prefixlen ? at : key.prefixlen;
	key.prefixlen = hi;
	entry = bpf_map_lookup_elem(trie, &key);
	if (!entry)
		return 0;
	for (j = 0; j < FP_PREFIX_SEARCH_STEPS && lo < hi; j++) {
		key.prefixlen = (lo + hi) / 2;
		if (bpf_map_lookup_elem(trie, &key) == entry)
			hi = key.prefixlen;
		else
			lo = key.prefixlen + 1;
	}
	return lo;
}

/* The slow path of fp_listed, taken when the longest match has expired: an
 * expired entry is treated as absent, so look on past it, at the next
 * shorter prefix. Expired entries are rare: the control plane deletes them
 * at its next sync. */
__noinline int fp_listed_past_expired(struct xdp_md *ctx, __u32 list,
				      __u32 saddr_off)
{
	struct fp_lpm_v6_key key = {};
	struct fp_entry *entry;
	__u32 at;
	void *trie;
	int i;

	trie = fp_list_key(ctx, list, saddr_off, &key);
	if (!trie)
		return 0;
	at = key.prefixlen;
	for (i = 0; i < FP_MAX_EXPIRED_SKIPS; i++) {
		at = fp_matched_prefixlen(ctx, list, saddr_off, at);
		if (!at)
			return 0;
		key.prefixlen = --at;
		entry = bpf_map_lookup_elem(trie, &key);
		if (!entry)
			return 0;
		if (fp_live(entry))
			return 1;
	}
	return 0;
}

/* Is the source a live exact-address entry of the blocklist? One hash
 * lookup, whatever the list's size. */
static __always_inline int fp_blocked_host(int is_v6, void *saddr,
					   void *data_end)
{
	struct fp_addr_v4 h4;
	struct fp_addr_v6 h6;
	struct fp_entry *entry;

	if (is_v6) {
		if (saddr + sizeof(h6.addr) > data_end)
			return 0;
		__builtin_memcpy(h6.addr, saddr, sizeof(h6.addr));
		entry = bpf_map_lookup_elem(&block_v6_hosts, &h6);
	} else {
		if (saddr + sizeof(h4.addr) > data_end)
			return 0;
		__builtin_memcpy(h4.addr, saddr, sizeof(h4.addr));
		entry = bpf_map_lookup_elem(&block_v4_hosts, &h4);
	}
	return entry && fp_live(entry);
}

/* Does a live entry of the allow or block list cover the source address?
 * A blocklisted exact address is one hash lookup; anything else is one
 * trie lookup more (an expired exact address is looked for in the trie,
 * as the trie's own longest match would be looked past). */
static __always_inline int fp_listed(struct xdp_md *ctx, int block,
				     int is_v6, void *saddr, __u32 saddr_off,
				     void *data_end)
{
	struct fp_lpm_v4_key k4;
	struct fp_lpm_v6_key k6;
	struct fp_entry *entry;
	__u32 list;

	if (block && fp_blocked_host(is_v6, saddr, data_end))
		return 1;
	/* Set field by field: an initializer would put a copy in .rodata. */
	if (is_v6) {
		if (saddr + sizeof(k6.addr) > data_end)
			return 0;
		k6.prefixlen = 128;
		__builtin_memcpy(k6.addr, saddr, sizeof(k6.addr));
		entry = bpf_map_lookup_elem(block ? (void *)&block_v6 :
						    (void *)&allow_v6, &k6);
		list = block ? FP_BLOCK_V6 : FP_ALLOW_V6;
	} else {
		if (saddr + sizeof(k4.addr) > data_end)
			return 0;
		k4.prefixlen = 32;
		__builtin_memcpy(k4.addr, saddr, sizeof(k4.addr));
		entry = bpf_map_lookup_elem(block ? (void *)&block_v4 :
						    (void *)&allow_v4, &k4);
		list = block ? FP_BLOCK_V4 : FP_ALLOW_V4;
	}
	if (!entry)
		return 0;
	if (fp_live(entry))
		return 1;
	return fp_listed_past_expired(ctx, list, saddr_off);
}

/* Bits of the info argument besides the L4 protocol number (bits 0-7). */
#define FP_INFO_V6		(1U << 8)
#define FP_INFO_FIRST_FRAG	(1U << 9)
#define FP_INFO_L4		(1U << 10)	/* the L4 header is reachable */

/* The request line rule (fp_check_request_line) for the len bytes at
 * offset: its loop is the costliest part to verify, so once is enough. */
__noinline int fp_request_line_ok(struct xdp_md *ctx, __u32 offset,
				  __u32 len)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	return fp_check_request_line(data + (offset & FP_HDR_MASK),
				     len & 0xffff, data_end);
}

/* The method rule (fp_method_length) for the len bytes at offset: the
 * method's length or -1. Its loop is verified once here, and its caller
 * sees one length, not one path per length. */
__noinline int fp_method_length_at(struct xdp_md *ctx, __u32 offset,
				   __u32 len)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	return fp_method_length(data + (offset & FP_HDR_MASK), len & 0xffff,
				data_end);
}

/* The request class of the method at offset, or -1 when there is none. */
__noinline int fp_method_class_at(struct xdp_md *ctx, __u32 offset,
				  __u32 len)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	int i = fp_method_length_at(ctx, offset, len);

	if (i < 0)
		return -1;
	return fp_method_class(data + (offset & FP_HDR_MASK),
			       i & (FP_MAX_REQUEST_LINE - 1), data_end);
}

/* [step 10] Classify the UDP payload of len bytes at offset: FP_PAYLOAD_JUNK,
 * FP_PAYLOAD_SIP for what is not a request, or a request: FP_PAYLOAD_REQUEST
 * with its class in bits 4-7, the CR LF bytes skipped in bits 8-15 and
 * where the request line's LF is in S in bits 16-31. */
__noinline int fp_classify_udp_payload(struct xdp_md *ctx, __u32 offset,
				       __u32 len)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *p = data + (offset & FP_HDR_MASK);
	__u32 skip, line_end;
	int class;

	len &= 0xffff;
	if (fp_is_keepalive(p, len, data_end) || fp_is_stun(p, len, data_end))
		return FP_PAYLOAD_SIP;

	skip = fp_crlf_prefix(p, len, data_end);
	p += skip;
	len -= skip;
	if (fp_is_response(p, len, data_end))
		return FP_PAYLOAD_SIP;

	class = fp_method_class_at(ctx, offset + skip, len);
	if (class < 0)
		return FP_PAYLOAD_JUNK;
	line_end = fp_request_line_ok(ctx, offset + skip, len);
	if (!line_end)
		return FP_PAYLOAD_JUNK;
	return FP_PAYLOAD_REQUEST | class << 4 | skip << 8 | line_end << 16;
}

/* A packet's source: where its address is, and its family. */
struct fp_src {
	struct xdp_md *ctx;
	__u32 saddr_off;
	int is_v6;
};

/* [step 5] Is the source trusted? Looked up only where a verdict depends
 * on it, and a global function: a result kept for later steps would
 * double the paths the verifier follows through each of them. */
__noinline int fp_trusted_source(struct xdp_md *ctx, __u32 saddr_off,
				 __u32 is_v6)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	saddr_off &= FP_HDR_MASK;
	return fp_listed(ctx, 0, is_v6, data + saddr_off, saddr_off,
			 data_end);
}

static __always_inline int fp_trusted(struct fp_src *t)
{
	return fp_trusted_source(t->ctx, t->saddr_off, t->is_v6);
}

/* [step 11] Is a request of the class over its source's budget? The
 * allowlist is read only when the class has a budget. */
static __always_inline int fp_rate_limited(struct fp_src *t, __u32 class)
{
	struct fp_limits *lim = fp_limits();
	struct xdp_md *ctx = t->ctx;

	if (!lim || (!fp_class_limited(lim, class, 0) &&
		     !fp_class_limited(lim, class, 1)))
		return 0;
	if (!fp_over_budget(ctx, t->saddr_off, t->is_v6, class,
			    fp_trusted(t)))
		return 0;
	fp_count(&rate_limited, class & (FP_CLASS_SLOTS - 1),
		 (long)ctx->data_end - (long)ctx->data);
	return 1;
}

/* [step 9] SIP over TCP: a connection attempt (SYN without ACK) is a
 * request of class SYN. */
static __always_inline int fp_check_tcp(struct tcphdr *tcp,
					struct fp_src *t, void *data_end,
					__u32 *reason)
{
	if ((void *)(tcp + 1) <= data_end && tcp->syn && !tcp->ack &&
	    fp_rate_limited(t, FP_CLASS_SYN)) {
		*reason = FP_RATE_LIMITED;
		return XDP_DROP;
	}
	*reason = FP_PASSED;
	return XDP_PASS;
}

/* [step 10] to [step 14] for a packet for a SIP UDP port, whose UDP
 * header is at udp_off. A global function, verified once whatever path
 * led to it. */
static __always_inline int fp_check_udp_at(struct xdp_md *ctx,
					   __u32 udp_off, __u32 ip_end,
					   __u32 info, __u32 flags,
					   struct fp_src *t, __u32 *reason)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct udphdr *udp = data + (udp_off & FP_HDR_MASK);
	__u32 room = ip_end > udp_off ? ip_end - udp_off : 0;
	__u32 udp_len, len, class, skip, line_end;
	int kind, sig;

	if ((void *)(udp + 1) > data_end)
		goto malformed;
	udp_len = bpf_ntohs(udp->len);
	if (udp_len < sizeof(*udp))
		goto malformed;
	if (info & FP_INFO_FIRST_FRAG) {
		/* The rest of the datagram is in later fragments. */
		len = room > sizeof(*udp) ? room - sizeof(*udp) : 0;
	} else {
		if (udp_len > room)
			goto malformed;
		len = udp_len - sizeof(*udp);
	}

	kind = fp_classify_udp_payload(ctx, udp_off + sizeof(*udp), len);
	if (kind == FP_PAYLOAD_SIP)
		return fp_pass_sip(ctx, reason);
	if (kind == FP_PAYLOAD_JUNK)
		goto malformed;
	/* A request: kind is FP_PAYLOAD_REQUEST and what came with it. */
	class = (kind >> 4) & 0xf;
	skip = (kind >> 8) & 0xff;
	line_end = kind >> 16;

	/* [step 11] */
	if (fp_rate_limited(t, class)) {
		*reason = FP_RATE_LIMITED;
		return XDP_DROP;
	}
	/* [step 12] */
	sig = fp_scanners_on() ?
	      fp_scanner_match(ctx, udp_off + sizeof(*udp) + skip,
			       len - skip, line_end) : -1;
	if (sig >= 0 && !fp_trusted(t)) {
		fp_count(&scanner_hits, sig, data_end - (void *)(long)ctx->data);
		fp_ban_scanner(ctx, t->saddr_off, t->is_v6, sig);
		*reason = FP_SCANNER;
		return XDP_DROP;
	}
	/* [step 13] */
	if (class == FP_CLASS_OPTIONS && !(flags & FP_STEALTH_OFF) &&
	    !fp_trusted(t)) {
		*reason = FP_OPTIONS_DROPPED;
		return XDP_DROP;
	}
	return fp_pass_sip(ctx, reason);

malformed:
	if (fp_trusted(t))
		return fp_pass_sip(ctx, reason);
	*reason = FP_MALFORMED;
	return flags & FP_MALFORMED_PASS ? XDP_PASS : XDP_DROP;
}

__noinline int fp_check_udp(struct xdp_md *ctx, __u64 offsets, __u32 info,
			    __u32 flags)
{
	struct fp_src src = {
		.ctx = ctx,
		.saddr_off = (offsets >> (2 * FP_OFF_BITS)) & FP_HDR_MASK,
		.is_v6 = !!(info & FP_INFO_V6),
	};
	__u32 reason = FP_MALFORMED;
	int action;

	action = fp_check_udp_at(ctx, offsets & FP_HDR_MASK,
				 (offsets >> FP_OFF_BITS) & FP_OFF_MASK, info,
				 flags, &src, &reason);
	return action | reason << 8;
}

/* [step 3] to [step 14] for a packet with a valid IP header. Returns the
 * action in bits 0-7 and the stats reason above them. */
__noinline int fp_decide(struct xdp_md *ctx, __u64 offsets, __u32 info,
			 __u32 flags)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 l4_off = offsets & FP_HDR_MASK;
	__u32 ip_end = (offsets >> FP_OFF_BITS) & FP_OFF_MASK;
	__u32 saddr_off = (offsets >> (2 * FP_OFF_BITS)) & FP_HDR_MASK;
	void *saddr = data + saddr_off;
	int is_v6 = !!(info & FP_INFO_V6);
	int is_udp = (info & 0xff) == FP_IPPROTO_UDP;
	int is_tcp = (info & 0xff) == FP_IPPROTO_TCP;
	int reachable = !!(info & FP_INFO_L4);
	struct udphdr *l4 = data + l4_off; /* dest is at that offset in TCP */
	struct fp_src src = {
		.ctx = ctx, .saddr_off = saddr_off, .is_v6 = is_v6,
	};
	__u32 reason = FP_NOT_SIP;
	int action = XDP_PASS;
	int is_sip = 0;

	/* [step 3] Parsing checked that a reachable UDP or TCP header is in
	 * the frame; the verifier needs to see the bound here too. */
	if (reachable && (is_udp || is_tcp) && (void *)(l4 + 1) <= data_end)
		is_sip = fp_is_sip_port(bpf_ntohs(l4->dest));

	/* [step 4] Other ports skip the lists unless FP_BLOCK_ALL_PORTS. */
	if (!is_sip && reachable && !(flags & FP_BLOCK_ALL_PORTS))
		goto out;

	/* [step 6] the bans, then [step 7] the blocklist; [step 5], trusted
	 * sources, is looked up only to overturn their drop (fp_banned()
	 * does it for a ban), so that the common case, a source in neither
	 * list, costs no allowlist lookup. */
	if (fp_bans_on() && fp_banned(ctx, saddr_off, is_v6)) {
		reason = FP_BANNED;
		action = XDP_DROP;
		goto out;
	}
	if (fp_listed(ctx, 1, is_v6, saddr, saddr_off, data_end) &&
	    !fp_trusted(&src)) {
		reason = FP_BLOCKED;
		action = XDP_DROP;
		goto out;
	}
	/* [step 8] */
	if (!is_sip)
		goto out;
	if (is_tcp) {
		action = fp_check_tcp((struct tcphdr *)l4, &src, data_end,
				      &reason);
	} else {
		action = fp_check_udp(ctx, offsets, info, flags);
		reason = action >> 8;
		action &= 0xff;
	}
out:
	return action | reason << 8;
}

static __always_inline __u64 fp_pack_offsets(struct fp_pkt *pkt, void *data)
{
	__u64 l4 = pkt->l4 ? pkt->l4 - data : 0;

	return l4 | (__u64)(pkt->ip_end - data) << FP_OFF_BITS |
	       (__u64)(pkt->saddr - data) << (2 * FP_OFF_BITS);
}

static __always_inline __u32 fp_pack_info(struct fp_pkt *pkt)
{
	return pkt->l4proto | (pkt->is_v6 ? FP_INFO_V6 : 0) |
	       (pkt->first_frag ? FP_INFO_FIRST_FRAG : 0) |
	       (pkt->l4 ? FP_INFO_L4 : 0);
}

SEC("xdp")
int sip_xdp_prog(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 bytes = data_end - data;
	struct fp_pkt pkt = {};
	void *cursor = data;
	__u32 flags = fp_flags();
	__u32 reason = FP_NON_IP;
	int action = XDP_PASS;
	int parsed = -1;
	int ethertype, verdict;

	ethertype = fp_parse_eth(&cursor, data_end);
	if (ethertype == bpf_htons(FP_ETH_P_IP))
		parsed = fp_parse_ipv4(cursor, data_end, &pkt);
	else if (ethertype == bpf_htons(FP_ETH_P_IPV6))
		parsed = fp_parse_ipv6(cursor, data_end, &pkt);

	if (parsed == 0) {
		verdict = fp_decide(ctx, fp_pack_offsets(&pkt, data),
				    fp_pack_info(&pkt), flags);
		action = verdict & 0xff;
		reason = verdict >> 8;
		fp_count(&proto_stats, pkt.proto_class, bytes);
	}
	if (reason < FP_REASON_MAX)
		fp_count(&stats, reason, bytes);
	else
		fp_count(&stats_ext, reason - FP_REASON_MAX, bytes);

	/* FP_SHADOW: counted as a drop above, returned as a pass. */
	if (action == XDP_DROP && (flags & FP_SHADOW))
		return XDP_PASS;
	return action;
}

/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Per-source rate limits and local bans for sip_logic.bpf.c ([step 6] and
 * [step 11] of docs/dataplane.md). Included after its maps and helpers.
 */
#ifndef FP_LIMITS_H
#define FP_LIMITS_H

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct fp_limits);
	__uint(max_entries, FP_MAX_LIMITS);
} limits SEC(".maps");

/* Shared by every CPU, so a source has one budget wherever its packets
 * land; least recently used sources make room for new ones. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct fp_source);
	__type(value, struct fp_rate);
	__uint(max_entries, FP_MAX_RATE_STATE);
} rate_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct fp_source);
	__type(value, struct fp_ban_v2);
	__uint(max_entries, FP_MAX_BANS_V2);
} bans_v2 SEC(".maps");

/* Sources an operator unbanned: written by the control plane only. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct fp_source);
	__type(value, struct fp_pardon);
	__uint(max_entries, FP_MAX_PARDONS);
} pardons SEC(".maps");

/* RATE_LIMITED drops by request class (enum fp_class). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct fp_counter);
	__uint(max_entries, FP_MAX_RATE_LIMITED);
} rate_limited SEC(".maps");

/* Tries of the compare-and-swap that advances a bucket before the request
 * counts as over budget: only CPUs racing on one source retry. */
#define FP_CAS_TRIES	4

/* The clock of budgets and bans: CLOCK_MONOTONIC, jiffy-coarse where the
 * kernel has bpf_ktime_get_coarse_ns() (5.11), which costs a third of a
 * precise read. The loader sets the running kernel's version, a constant
 * to the verifier, which then never sees the call a kernel lacks. */
extern int LINUX_KERNEL_VERSION __kconfig;
#define FP_KERNEL_VERSION(a, b, c)	(((a) << 16) + ((b) << 8) + (c))

static __always_inline __u64 fp_now(void)
{
	if (LINUX_KERNEL_VERSION >= FP_KERNEL_VERSION(5, 11, 0))
		return bpf_ktime_get_coarse_ns();
	return bpf_ktime_get_ns();
}

static __always_inline struct fp_limits *fp_limits(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&limits, &zero);
}

/* The source address at saddr_off masked to its aggregation prefix. */
static __always_inline int fp_source_key(struct xdp_md *ctx, __u32 saddr_off,
					 int is_v6, struct fp_limits *lim,
					 struct fp_source *key)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	void *saddr = data + (saddr_off & FP_HDR_MASK);
	__u64 hi, lo, mask;
	__u32 a4, p;

	if (is_v6) {
		if (saddr + 16 > data_end)
			return -1;
		p = lim->prefix_v6 ? lim->prefix_v6 : 64;
		__builtin_memcpy(&hi, saddr, 8);
		__builtin_memcpy(&lo, saddr + 8, 8);
		hi = bpf_be64_to_cpu(hi);
		lo = bpf_be64_to_cpu(lo);
		if (p < 64) {
			hi &= ~0ULL << (64 - p);
			lo = 0;
		} else if (p == 64) {
			lo = 0;
		} else if (p < 128) {
			lo &= ~0ULL << (128 - p);
		} else {
			p = 128;
		}
		hi = bpf_cpu_to_be64(hi);
		lo = bpf_cpu_to_be64(lo);
		key->family = 6;
		__builtin_memcpy(key->addr, &hi, 8);
		__builtin_memcpy(key->addr + 8, &lo, 8);
	} else {
		if (saddr + 4 > data_end)
			return -1;
		p = lim->prefix_v4 ? lim->prefix_v4 : 32;
		__builtin_memcpy(&a4, saddr, 4);
		if (p < 32)
			a4 &= bpf_htonl(~0U << (32 - p));
		else
			p = 32;
		key->family = 4;
		__builtin_memcpy(key->addr, &a4, 4);
	}
	key->prefixlen = p;
	return 0;
}

/* Are bans on? Checked inline first: with features off, a packet pays
 * for no call. */
static __always_inline int fp_bans_on(void)
{
	struct fp_limits *lim = fp_limits();

	return lim && (lim->flags & FP_LIMIT_BANS);
}

__noinline int fp_trusted_source(struct xdp_md *ctx, __u32 saddr_off,
			      __u32 is_v6);

/* [step 6] Is the source banned? A ban counts until its expiry, and counts
 * the packets it drops; an expired one is left for the LRU to reclaim. A
 * trusted source ([step 5], looked up only when banned) is never dropped
 * for a ban. */
__noinline int fp_banned(struct xdp_md *ctx, __u32 saddr_off, __u32 is_v6)
{
	struct fp_limits *lim = fp_limits();
	struct fp_source key = {};
	struct fp_ban_v2 *ban;

	if (!lim || !(lim->flags & FP_LIMIT_BANS))
		return 0;
	if (fp_source_key(ctx, saddr_off, is_v6, lim, &key))
		return 0;
	ban = bpf_map_lookup_elem(&bans_v2, &key);
	if (!ban || ban->expires_ns <= fp_now())
		return 0;
	if (fp_trusted_source(ctx, saddr_off, is_v6))
		return 0;
	__sync_fetch_and_add(&ban->packets, 1);
	return 1;
}

/* Ban the source for ns from now, unless an operator pardoned it; a
 * length past the clock's range bans it until the clock's end. */
static __always_inline void fp_ban(struct fp_source *key, __u64 now,
				   __u64 ns, __u32 reason, __u32 detail)
{
	struct fp_pardon *pardon = bpf_map_lookup_elem(&pardons, key);
	struct fp_ban_v2 ban = {};

	if (pardon && pardon->until_ns > now)
		return;
	ban.expires_ns = now + ns < now ? ~0ULL : now + ns;
	ban.since_ns = now;
	ban.reason = reason;
	ban.detail = detail;
	bpf_map_update_elem(&bans_v2, key, &ban, BPF_ANY);
}

/* [step 12] Ban a scanner's source for scanner_ban_ns, when bans are on;
 * sig is the slot of the signature that matched. */
__noinline int fp_ban_scanner(struct xdp_md *ctx, __u32 saddr_off,
			      __u32 is_v6, __u32 sig)
{
	struct fp_limits *lim = fp_limits();
	struct fp_source key = {};

	if (!lim || !(lim->flags & FP_LIMIT_BANS) || !lim->scanner_ban_ns)
		return 0;
	if (fp_source_key(ctx, saddr_off, is_v6, lim, &key))
		return 0;
	fp_ban(&key, fp_now(), lim->scanner_ban_ns, FP_SCANNER, sig);
	return 1;
}

/* Does the class of a source have a budget? */
static __always_inline int fp_class_limited(struct fp_limits *lim,
					    __u32 class, int trusted)
{
	class &= FP_CLASS_SLOTS - 1;
	return trusted ? lim->trusted[class].interval_ns != 0 :
			 lim->untrusted[class].interval_ns != 0;
}

/* [step 11] Charge one request of the class to its source. Returns 1 when
 * the source is over budget: the request is to be dropped. */
__noinline int fp_over_budget(struct xdp_md *ctx, __u32 saddr_off,
			      __u32 is_v6, __u32 class, __u32 trusted)
{
	struct fp_limits *lim = fp_limits();
	struct fp_source key = {};
	struct fp_budget *b;
	struct fp_rate *st;
	__u64 now, tau, quiet, old, tat, prev;
	__u32 burst;
	int i;

	if (!lim)
		return 0;
	class &= FP_CLASS_SLOTS - 1;
	b = trusted ? &lim->trusted[class] : &lim->untrusted[class];
	if (!b->interval_ns)
		return 0;
	if (fp_source_key(ctx, saddr_off, is_v6, lim, &key))
		return 0;
	st = bpf_map_lookup_elem(&rate_state, &key);
	if (!st) {
		struct fp_rate fresh = {};

		bpf_map_update_elem(&rate_state, &key, &fresh, BPF_NOEXIST);
		st = bpf_map_lookup_elem(&rate_state, &key);
		if (!st)
			return 0;
	}

	/* GCRA: a request at `now` fits when the theoretical arrival time
	 * is at most (burst - 1) intervals ahead; it then moves one
	 * interval on. The same as a token bucket of `burst` tokens
	 * refilled one per interval, with one word of state. */
	now = fp_now();
	burst = b->burst ? b->burst : 1;
	tau = (__u64)(burst - 1) * b->interval_ns;
	old = st->tat_ns[class];
	for (i = 0; i < FP_CAS_TRIES; i++) {
		tat = old > now ? old : now;
		if (tat - now > tau)
			break;
		prev = __sync_val_compare_and_swap(&st->tat_ns[class], old,
						   tat + b->interval_ns);
		if (prev == old)
			return 0;
		old = prev;
	}

	/* Over budget. The streak goes on while drops come closer together
	 * than the time to refill the whole burst. */
	quiet = (__u64)burst * b->interval_ns;
	if (!st->over_since_ns || now - st->last_drop_ns > quiet)
		st->over_since_ns = now;
	st->last_drop_ns = now;
	if (!trusted && (lim->flags & FP_LIMIT_BANS) && lim->ban_ns &&
	    now - st->over_since_ns >= lim->ban_after_ns) {
		fp_ban(&key, now, lim->ban_ns, FP_RATE_LIMITED, class);
		st->over_since_ns = 0;
	}
	return 1;
}

#endif /* FP_LIMITS_H */

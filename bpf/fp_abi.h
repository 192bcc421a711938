/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The data plane ABI: map key and value layouts, settings flags and counter
 * indexes, documented in docs/dataplane.md. Mirrored once for Python in
 * plugins/module_utils/_abi.py; a test checks the two against each other.
 * Never change a layout in place: version it under a new map name.
 */
#ifndef FP_ABI_H
#define FP_ABI_H

/* Request classes of the rate limits: the index of fp_limits budgets and
 * fp_rate.tat_ns. Slots from FP_CLASS_USED on are reserved. */
enum fp_class {
	FP_CLASS_REGISTER = 0,
	FP_CLASS_INVITE = 1,
	FP_CLASS_OPTIONS = 2,
	FP_CLASS_OTHER = 3,	/* any other request method */
	FP_CLASS_SYN = 4,	/* a TCP connection attempt */
	FP_CLASS_USED = 5,
	FP_CLASS_SLOTS = 8,
};

#define FP_MAX_SIGNATURE_LEN	32

struct fp_lpm_v4_key {
	__u32 prefixlen;
	__u8 addr[4];		/* network byte order */
};

struct fp_lpm_v6_key {
	__u32 prefixlen;
	__u8 addr[16];		/* network byte order */
};

/* Keys of the exact-address hashes (block_v4_hosts, block_v6_hosts): a
 * blocklist's /32 and /128 entries, whose lookup cost does not grow with
 * the list's size. */
struct fp_addr_v4 {
	__u8 addr[4];		/* network byte order */
};

struct fp_addr_v6 {
	__u8 addr[16];		/* network byte order */
};

struct fp_entry {
	__u64 expires_ns;	/* CLOCK_BOOTTIME; 0 = never expires */
	__u32 source;		/* owner tag of the control plane */
	__u32 reserved;
};

struct fp_settings {
	__u32 flags;		/* enum fp_flag bits */
	__u32 reserved;
};

struct fp_counter {
	__u64 packets;
	__u64 bytes;
};

/* A per-source budget for one request class: one request every
 * interval_ns, up to burst at once (GCRA). interval_ns 0: no limit. */
struct fp_budget {
	__u64 interval_ns;
	__u32 burst;		/* 0 counts as 1 */
	__u32 reserved;
};

/* The `limits` map: budgets, bans and source aggregation. All zero (the
 * empty map): no limits, no bans. */
struct fp_limits {
	struct fp_budget untrusted[FP_CLASS_SLOTS];	/* enum fp_class */
	struct fp_budget trusted[FP_CLASS_SLOTS];
	__u64 ban_after_ns;	/* over budget this long: ban; 0 = at once */
	__u64 ban_ns;		/* the ban's length after a rate limit */
	__u64 scanner_ban_ns;	/* the ban's length after a fingerprint */
	__u32 flags;		/* enum fp_limit_flag bits */
	__u8 prefix_v4;		/* source aggregation; 0 = 32 */
	__u8 prefix_v6;		/* 0 = 64 */
	__u16 reserved;
};

/* Key of `rate_state` and `bans`: a source address masked to its
 * aggregation prefix. */
struct fp_source {
	__u8 family;		/* 4 or 6 */
	__u8 prefixlen;
	__u16 reserved;
	__u8 addr[16];		/* network byte order, masked; IPv4 in 0-3 */
};

/* Value of `rate_state`: the GCRA theoretical arrival time of each class
 * and the current over-budget streak of the source. */
struct fp_rate {
	__u64 tat_ns[FP_CLASS_SLOTS];
	__u64 over_since_ns;	/* first drop of the streak; 0 = none */
	__u64 last_drop_ns;
};

/* Value of `bans`, retired: no program of this version uses it. */
struct fp_ban {
	__u64 expires_ns;	/* CLOCK_MONOTONIC */
	__u32 reason;		/* enum fp_reason that caused it */
	__u32 reserved;
};

/* Value of `bans_v2`: a ban, what made it, and what it has dropped. */
struct fp_ban_v2 {
	__u64 expires_ns;	/* CLOCK_MONOTONIC */
	__u64 since_ns;		/* CLOCK_MONOTONIC, when it was made */
	__u64 packets;		/* dropped as BANNED since */
	__u32 reason;		/* FP_RATE_LIMITED or FP_SCANNER */
	__u32 detail;		/* its enum fp_class, or its scanner_sigs slot */
};

/* Value of `pardons`: no ban of the source is made until until_ns. */
struct fp_pardon {
	__u64 until_ns;		/* CLOCK_MONOTONIC */
	__u64 reserved;
};

/* Value of `scanner_sigs`: a User-Agent signature, in lower case. The
 * first slot with len 0 ends the list. */
struct fp_signature {
	__u32 len;		/* 4 to FP_MAX_SIGNATURE_LEN */
	__u32 reserved;
	__u8 text[FP_MAX_SIGNATURE_LEN];
};

enum fp_flag {
	FP_BLOCK_ALL_PORTS = 1 << 0,
	FP_STEALTH_OFF = 1 << 1,
	FP_MALFORMED_PASS = 1 << 2,
	FP_SHADOW = 1 << 3,
};

enum fp_limit_flag {
	FP_LIMIT_BANS = 1 << 0,	/* bans are enforced and made */
};

/* Index of the `stats` map: each frame increments exactly one. */
enum fp_reason {
	FP_PASSED = 0,
	FP_OPTIONS_DROPPED = 1,
	FP_BLOCKED = 2,
	FP_MALFORMED = 3,
	FP_REDIRECTED = 4,
	FP_RATE_LIMITED = 5,
	FP_NOT_SIP = 6,
	FP_NON_IP = 7,
	FP_REASON_MAX = 8,
	/* Counted in `stats_ext` at index reason - FP_REASON_MAX. */
	FP_BANNED = 8,
	FP_SCANNER = 9,
	FP_REASON_EXT_MAX = 16,
};

/* Index of the `proto_stats` map: one per frame with a valid IP header. */
enum fp_proto {
	FP_PROTO_TCP = 0,
	FP_PROTO_UDP = 1,
	FP_PROTO_ICMP = 2,
	FP_PROTO_OTHER = 3,
	FP_PROTO_MAX = 4,
};

enum fp_map_size {
	FP_MAX_SIP_PORTS = 65536,
	FP_MAX_ALLOW_V4 = 65536,
	FP_MAX_ALLOW_V6 = 65536,
	FP_MAX_BLOCK_V4 = 2097152,
	FP_MAX_BLOCK_V6 = 1048576,
	FP_MAX_SETTINGS = 1,
	FP_MAX_STATS = FP_REASON_MAX,
	FP_MAX_PROTO_STATS = FP_PROTO_MAX,
	FP_MAX_XSKS_MAP = 64,
	FP_MAX_LIMITS = 1,
	FP_MAX_RATE_STATE = 131072,
	FP_MAX_BANS_V2 = 65536,
	FP_MAX_PARDONS = 16384,
	FP_MAX_STATS_EXT = FP_REASON_EXT_MAX - FP_REASON_MAX,
	FP_MAX_SCANNER_SIGS = 32,
	FP_MAX_SCANNER_HITS = FP_MAX_SCANNER_SIGS,
	FP_MAX_RATE_LIMITED = FP_CLASS_SLOTS,
	FP_MAX_BLOCK_V4_HOSTS = 2097152,
	FP_MAX_BLOCK_V6_HOSTS = 1048576,
};

#endif /* FP_ABI_H */

/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The data plane ABI: map key and value layouts, settings flags and counter
 * indexes, documented in docs/dataplane.md. Mirrored once for Python in
 * plugins/module_utils/_abi.py; a test checks the two against each other.
 * Never change a layout in place: version it under a new map name.
 */
#ifndef FP_ABI_H
#define FP_ABI_H

struct fp_lpm_v4_key {
	__u32 prefixlen;
	__u8 addr[4];		/* network byte order */
};

struct fp_lpm_v6_key {
	__u32 prefixlen;
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

enum fp_flag {
	FP_BLOCK_ALL_PORTS = 1 << 0,
	FP_STEALTH_OFF = 1 << 1,
	FP_MALFORMED_PASS = 1 << 2,
	FP_SHADOW = 1 << 3,
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
};

#endif /* FP_ABI_H */

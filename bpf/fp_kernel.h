/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The kernel's user-space ABI that the program uses, and nothing else:
 * integer types, the XDP context, the packet headers and the map
 * constants, with the layouts and values of include/uapi/linux. They never
 * change, so the program needs no header of the build host's kernel.
 *
 * Why not vmlinux.h: an XDP program reads only these fixed layouts, and a
 * header dumped from the kernel's BTF ties the build to a bpftool that can
 * read that kernel's BTF (Debian 11's bpftool 5.10 cannot read the BTF of
 * a recent kernel, whose kinds it does not know), and marks every struct
 * for CO-RE relocation, which makes libbpf load the kernel's BTF to load
 * the program (bpftool 5.10 again).
 */
#ifndef FP_KERNEL_H
#define FP_KERNEL_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef short __s16;
typedef int __s32;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u64 __be64;
typedef __u32 __wsum;
typedef __u16 __sum16;

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the header's bit fields are little-endian: build for bpfel"
#endif

#ifndef NULL
#define NULL ((void *)0)
#endif

/* include/uapi/linux/bpf.h */
enum xdp_action {
	XDP_ABORTED = 0,
	XDP_DROP = 1,
	XDP_PASS = 2,
	XDP_TX = 3,
	XDP_REDIRECT = 4,
};

struct xdp_md {
	__u32 data;
	__u32 data_end;
	__u32 data_meta;
	__u32 ingress_ifindex;
	__u32 rx_queue_index;
	__u32 egress_ifindex;
};

enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_LPM_TRIE = 11,
	BPF_MAP_TYPE_XSKMAP = 17,
};

#define BPF_ANY		0
#define BPF_NOEXIST	1
#define BPF_F_NO_PREALLOC	(1U << 0)

/* include/uapi/linux/if_ether.h */
struct ethhdr {
	unsigned char h_dest[6];
	unsigned char h_source[6];
	__be16 h_proto;
} __attribute__((packed));

/* include/uapi/linux/ip.h, little-endian bit fields */
struct iphdr {
	__u8 ihl:4, version:4;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__sum16 check;
	__be32 saddr;
	__be32 daddr;
};

/* include/uapi/linux/in6.h and ipv6.h */
struct in6_addr {
	union {
		__u8 u6_addr8[16];
		__be16 u6_addr16[8];
		__be32 u6_addr32[4];
	} in6_u;
};

struct ipv6hdr {
	__u8 priority:4, version:4;
	__u8 flow_lbl[3];
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	struct in6_addr saddr;
	struct in6_addr daddr;
};

/* include/uapi/linux/udp.h and tcp.h, little-endian bit fields */
struct udphdr {
	__be16 source;
	__be16 dest;
	__be16 len;
	__sum16 check;
};

struct tcphdr {
	__be16 source;
	__be16 dest;
	__be32 seq;
	__be32 ack_seq;
	__u16 res1:4, doff:4, fin:1, syn:1, rst:1, psh:1, ack:1, urg:1,
	      ece:1, cwr:1;
	__be16 window;
	__sum16 check;
	__be16 urg_ptr;
};

#endif /* FP_KERNEL_H */

/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Header parsing for sip_logic.bpf.c: Ethernet with up to two VLAN tags,
 * IPv4, IPv6 with up to four extension headers, and where the L4 header
 * starts. Every read is bounds-checked against data_end first.
 */
#ifndef FP_PARSE_H
#define FP_PARSE_H

#define FP_ETH_P_IP	0x0800
#define FP_ETH_P_IPV6	0x86DD
#define FP_ETH_P_8021Q	0x8100
#define FP_ETH_P_8021AD	0x88A8

#define FP_IPPROTO_HOPOPTS	0
#define FP_IPPROTO_ICMP		1
#define FP_IPPROTO_TCP		6
#define FP_IPPROTO_UDP		17
#define FP_IPPROTO_ROUTING	43
#define FP_IPPROTO_FRAGMENT	44
#define FP_IPPROTO_ICMPV6	58
#define FP_IPPROTO_DSTOPTS	60

#define FP_MAX_VLAN_TAGS	2
#define FP_MAX_EXT_HDRS		4

#define FP_IP_MF	0x2000
#define FP_IP_OFFSET	0x1FFF

struct fp_vlan_hdr {
	__be16 tci;
	__be16 encapsulated_proto;
};

/* The common start of IPv6 extension headers, fragment header included. */
struct fp_ipv6_ext {
	__u8 nexthdr;
	__u8 hdrlen;		/* 8-byte units after the first 8 */
	__be16 frag_off;	/* fragment header only: offset << 3 | M */
	__be32 ident;
};

/* What the decision function needs to know about one IP packet. */
struct fp_pkt {
	void *l4;		/* L4 header, or NULL when unreachable */
	void *ip_end;		/* end of the IP packet: padding excluded */
	void *saddr;		/* source address inside the packet */
	__u8 is_v6;
	__u8 l4proto;		/* protocol of the L4 header (last next header) */
	__u8 proto_class;	/* enum fp_proto */
	__u8 first_frag;	/* first fragment of a fragmented datagram */
};

/* [step 1] Skip Ethernet and up to two VLAN tags. Returns the ethertype in
 * network byte order, or -1 when the frame ends before it. */
static __always_inline int fp_parse_eth(void **cursor, void *data_end)
{
	struct ethhdr *eth = *cursor;
	struct fp_vlan_hdr *vlan;
	__be16 type;
	int i;

	if ((void *)(eth + 1) > data_end)
		return -1;
	type = eth->h_proto;
	vlan = (void *)(eth + 1);

#pragma unroll
	for (i = 0; i < FP_MAX_VLAN_TAGS; i++) {
		if (type != bpf_htons(FP_ETH_P_8021Q) &&
		    type != bpf_htons(FP_ETH_P_8021AD))
			break;
		if ((void *)(vlan + 1) > data_end)
			return -1;
		type = vlan->encapsulated_proto;
		vlan++;
	}
	*cursor = vlan;
	return type;
}

static __always_inline __u8 fp_proto_class(__u8 proto, __u8 icmp)
{
	if (proto == FP_IPPROTO_TCP)
		return FP_PROTO_TCP;
	if (proto == FP_IPPROTO_UDP)
		return FP_PROTO_UDP;
	if (proto == icmp)
		return FP_PROTO_ICMP;
	return FP_PROTO_OTHER;
}

/* L4 is reachable only when its fixed header fits in the frame. */
static __always_inline void *fp_l4_in_frame(void *l4, __u8 proto,
					    void *data_end)
{
	if (proto == FP_IPPROTO_UDP && l4 + sizeof(struct udphdr) > data_end)
		return NULL;
	if (proto == FP_IPPROTO_TCP && l4 + sizeof(struct tcphdr) > data_end)
		return NULL;
	return l4;
}

/* [step 2] for IPv4. Returns 0 and fills pkt, or -1 for an invalid or
 * truncated header. */
static __always_inline int fp_parse_ipv4(void *ip, void *data_end,
					 struct fp_pkt *pkt)
{
	struct iphdr *iph = ip;
	__u32 hlen, total, present;
	__u16 frag;

	if ((void *)(iph + 1) > data_end)
		return -1;
	if (iph->version != 4 || iph->ihl < 5)
		return -1;
	hlen = iph->ihl * 4;
	total = bpf_ntohs(iph->tot_len);
	present = data_end - ip;
	if (hlen > present || total < hlen || total > present)
		return -1;

	pkt->is_v6 = 0;
	pkt->saddr = &iph->saddr;
	pkt->ip_end = ip + total;
	pkt->l4proto = iph->protocol;
	pkt->proto_class = fp_proto_class(iph->protocol, FP_IPPROTO_ICMP);

	frag = bpf_ntohs(iph->frag_off);
	if (frag & FP_IP_OFFSET) {
		pkt->l4 = NULL;
		return 0;
	}
	pkt->first_frag = !!(frag & FP_IP_MF);
	pkt->l4 = fp_l4_in_frame(ip + hlen, iph->protocol, data_end);
	return 0;
}

static __always_inline int fp_is_ipv6_ext(__u8 nexthdr)
{
	return nexthdr == FP_IPPROTO_HOPOPTS ||
	       nexthdr == FP_IPPROTO_ROUTING ||
	       nexthdr == FP_IPPROTO_FRAGMENT ||
	       nexthdr == FP_IPPROTO_DSTOPTS;
}

/* [step 2] for IPv6. Returns 0 and fills pkt, or -1 for an invalid or
 * truncated header. An extension chain that cannot be followed leaves L4
 * unreachable and the protocol class OTHER. */
static __always_inline int fp_parse_ipv6(void *ip, void *data_end,
					 struct fp_pkt *pkt)
{
	struct ipv6hdr *ip6h = ip;
	struct fp_ipv6_ext *ext;
	void *cursor;
	__u16 frag;
	__u8 nexthdr;
	int i;

	if ((void *)(ip6h + 1) > data_end)
		return -1;
	if (ip6h->version != 6)
		return -1;
	if (sizeof(*ip6h) + bpf_ntohs(ip6h->payload_len) >
	    (__u64)(data_end - ip))
		return -1;

	pkt->is_v6 = 1;
	pkt->saddr = &ip6h->saddr;
	pkt->ip_end = ip + sizeof(*ip6h) + bpf_ntohs(ip6h->payload_len);
	pkt->l4 = NULL;
	pkt->proto_class = FP_PROTO_OTHER;

	nexthdr = ip6h->nexthdr;
	cursor = ip6h + 1;

#pragma unroll
	for (i = 0; i < FP_MAX_EXT_HDRS; i++) {
		if (!fp_is_ipv6_ext(nexthdr))
			break;
		ext = cursor;
		/* Every extension header is at least 8 bytes long. */
		if ((void *)(ext + 1) > data_end)
			return 0;
		if (nexthdr == FP_IPPROTO_FRAGMENT) {
			frag = bpf_ntohs(ext->frag_off);
			if (frag >> 3) {
				/* Later fragment: no L4 header here. */
				pkt->l4proto = ext->nexthdr;
				pkt->proto_class = fp_proto_class(
					ext->nexthdr, FP_IPPROTO_ICMPV6);
				return 0;
			}
			pkt->first_frag |= frag & 1;
			cursor += sizeof(*ext);
		} else {
			cursor += (ext->hdrlen + 1) * 8;
			if (cursor > data_end)
				return 0;
		}
		nexthdr = ext->nexthdr;
	}
	if (fp_is_ipv6_ext(nexthdr))
		return 0;	/* longer than FP_MAX_EXT_HDRS */

	pkt->l4proto = nexthdr;
	pkt->proto_class = fp_proto_class(nexthdr, FP_IPPROTO_ICMPV6);
	pkt->l4 = fp_l4_in_frame(cursor, nexthdr, data_end);
	return 0;
}

#endif /* FP_PARSE_H */

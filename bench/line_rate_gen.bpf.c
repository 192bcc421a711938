// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * The frame generator of bench/line_rate.py: run by BPF_PROG_TEST_RUN in
 * live-frames mode, it gives each copy of its IPv4 frame the next source
 * of gen_sources (with the IP header checksum to match) and redirects it
 * to the sending veth, whose peer receives it as an XDP frame: no skb
 * before the receiving end's XDP program, as from a NIC's page pool.
 */
#include "fp_kernel.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define GEN_MAX_SOURCES 65536

struct gen_config {
	__u32 ifindex;		/* the sending veth */
	__u32 sources;		/* how many of gen_sources to cycle over */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct gen_config);
	__uint(max_entries, 1);
} gen_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);	/* an IPv4 address, network byte order */
	__uint(max_entries, GEN_MAX_SOURCES);
} gen_sources SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 1);
} gen_count SEC(".maps");

SEC("xdp")
int bench_line_rate_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct iphdr *ip = data + sizeof(struct ethhdr);
	struct gen_config *cfg;
	__u32 zero = 0, slot, sum = 0, *count, *saddr;
	__u16 *word = (__u16 *)ip;
	int i;

	if ((void *)(ip + 1) > data_end)
		return XDP_ABORTED;
	cfg = bpf_map_lookup_elem(&gen_config, &zero);
	count = bpf_map_lookup_elem(&gen_count, &zero);
	if (!cfg || !count || !cfg->sources)
		return XDP_ABORTED;
	slot = *count % cfg->sources;
	*count += 1;
	saddr = bpf_map_lookup_elem(&gen_sources, &slot);
	if (!saddr)
		return XDP_ABORTED;
	ip->saddr = *saddr;
	ip->check = 0;
#pragma unroll
	for (i = 0; i < 10; i++)
		sum += word[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	ip->check = ~sum & 0xffff;
	return bpf_redirect(cfg->ifindex, 0);
}

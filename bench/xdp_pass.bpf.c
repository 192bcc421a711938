// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * The floor of bench/dataplane.py: an XDP program that does nothing but
 * return XDP_PASS. Its ns/packet is the cost of BPF_PROG_TEST_RUN itself.
 */
#include "fp_kernel.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("xdp")
int bench_xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

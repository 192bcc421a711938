/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Scanner fingerprints for sip_logic.bpf.c ([step 12] of
 * docs/dataplane.md): signatures searched in the User-Agent header of a
 * request. Included after its maps and helpers.
 */
#ifndef FP_SCANNER_H
#define FP_SCANNER_H

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct fp_signature);
	__uint(max_entries, FP_MAX_SCANNER_SIGS);
} scanner_sigs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct fp_counter);
	__uint(max_entries, FP_MAX_SCANNER_SIGS);
} scanner_hits SEC(".maps");

/* The LF before the User-Agent name lies in the first FP_UA_LINE_BOUND
 * bytes of the request; the signature lies in the first
 * FP_UA_VALUE_BOUND bytes of its value. */
#define FP_UA_LINE_BOUND	1024
#define FP_UA_VALUE_BOUND	128
#define FP_UA_MAX_SPACES	8	/* SP or HTAB between name and colon */
#define FP_MIN_SIGNATURE_LEN	4

/* Signature slot j. The loop counters stay in registers, where the
 * verifier follows their values, and the lookup gets a copy. */
static __always_inline struct fp_signature *fp_signature(__u32 j)
{
	__u32 key = j;

	return bpf_map_lookup_elem(&scanner_sigs, &key);
}

/* ASCII lower case of each byte; other bytes are left alone. */
static __always_inline __u8 fp_lower(__u8 c)
{
	return c >= 'A' && c <= 'Z' ? c | 0x20 : c;
}

/* Does the signature match at s[at], within end? */
__noinline int fp_signature_at(struct xdp_md *ctx, __u32 at, __u32 end,
			       __u32 index)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct fp_signature *sig;
	__u8 *p;
	__u32 i, len;

	sig = bpf_map_lookup_elem(&scanner_sigs, &index);
	if (!sig)
		return 0;
	len = sig->len;
	at &= FP_HDR_MASK;
	end &= FP_HDR_MASK;
	if (len > FP_MAX_SIGNATURE_LEN || at + len > end)
		return 0;
	p = data + at;
	for (i = 0; i < FP_MAX_SIGNATURE_LEN; i++) {
		if (i >= len)
			return 1;
		if ((void *)(p + i + 1) > data_end ||
		    fp_lower(p[i]) != sig->text[i])
			return 0;
	}
	return 1;
}

/* One of 64 bits for four bytes, the same for any ASCII case of them: a
 * filter of where a signature may start, so that a value is read once
 * whatever the number of signatures. */
static __always_inline __u32 fp_quad_bit(__u32 quad)
{
	return ((quad | 0x20202020U) * 0x9E3779B1U) >> 26;
}

/* The lowest slot whose signature matches at pos, or -1. */
__noinline int fp_signatures_at(struct xdp_md *ctx, __u32 pos, __u32 end)
{
	struct fp_signature *sig;
	__u32 j;

	for (j = 0; j < FP_MAX_SCANNER_SIGS; j++) {
		asm volatile("" : "+r"(j));
		sig = fp_signature(j);
		if (!sig || !sig->len)
			return -1;
		if (sig->len >= FP_MIN_SIGNATURE_LEN &&
		    fp_signature_at(ctx, pos, end, j))
			return j;
	}
	return -1;
}

/* Where the value at [at, end) ends: its line's CR or LF, at most
 * FP_UA_VALUE_BOUND bytes on. */
__noinline int fp_value_end(struct xdp_md *ctx, __u32 at, __u32 end)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 i;
	__u8 *p;

	at &= FP_HDR_MASK;
	end &= FP_HDR_MASK;
	for (i = 0; i < FP_UA_VALUE_BOUND; i++) {
		p = data + ((at + i) & FP_HDR_MASK);
		if (at + i >= end || (void *)(p + 1) > data_end ||
		    fp_is_crlf(*p))
			break;
	}
	return at + i;
}

/* The fp_quad_bit() of every signature's first four bytes. */
__noinline __u64 fp_signature_filter(void)
{
	struct fp_signature *sig;
	__u64 filter = 0;
	__u32 j;

	for (j = 0; j < FP_MAX_SCANNER_SIGS; j++) {
		asm volatile("" : "+r"(j));
		sig = fp_signature(j);
		if (!sig || !sig->len)
			break;
		if (sig->len >= FP_MIN_SIGNATURE_LEN &&
		    sig->len <= FP_MAX_SIGNATURE_LEN)
			filter |= 1ULL << fp_quad_bit(*(__u32 *)sig->text);
	}
	return filter;
}

/* The signature that starts first in the value at [at, end) (the lowest
 * slot of those starting at one byte), or -1. The value ends at its
 * line's CR or LF; only its first FP_UA_VALUE_BOUND bytes are searched. */
__noinline int fp_search_value(struct xdp_md *ctx, __u32 at, __u32 end)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 filter = fp_signature_filter();
	__u32 i, quad;
	int found;
	__u8 *p;

	if (!filter)
		return -1;
	at &= FP_HDR_MASK;
	end = fp_value_end(ctx, at, end) & FP_HDR_MASK;
	for (i = 0; i < FP_UA_VALUE_BOUND; i++) {
		p = data + ((at + i) & FP_HDR_MASK);
		if (at + i + FP_MIN_SIGNATURE_LEN > end ||
		    (void *)(p + 4) > data_end)
			break;
		__builtin_memcpy(&quad, p, 4);
		if (!(filter >> fp_quad_bit(quad) & 1))
			continue;
		found = fp_signatures_at(ctx, at + i, end);
		if (found >= 0)
			return found;
	}
	return -1;
}

/* Is the line at offset q a User-Agent header (name in any case, up to
 * FP_UA_MAX_SPACES blanks, a colon)? Returns -2 when it is not, else what
 * fp_search_value finds in its value. */
__noinline int fp_user_agent_at(struct xdp_md *ctx, __u32 q, __u32 end)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *p;
	__u64 name;
	__u32 i;

	q &= FP_HDR_MASK;
	end &= FP_HDR_MASK;
	p = data + q;
	if (q + 11 > end || (void *)(p + 11) > data_end)
		return -2;
	/* "user-age" with the letters' case bit set, the dash exact. */
	name = fp_load_le64(p) | 0x2020200020202020ULL;
	if (name != FP_NUM8('e', 'g', 'a', '-', 'r', 'e', 's', 'u') ||
	    (p[8] | 0x20) != 'n' || (p[9] | 0x20) != 't')
		return -2;
	for (i = 10; i < 10 + FP_UA_MAX_SPACES; i++) {
		if (q + i >= end || (void *)(p + i + 1) > data_end)
			return -2;
		if (p[i] != ' ' && p[i] != '\t')
			break;
	}
	if (q + i >= end || (void *)(p + i + 1) > data_end || p[i] != ':')
		return -2;
	return fp_search_value(ctx, q + i + 1, end);
}

/* [step 12] The index of the signature that the request of len bytes at
 * offset s_off matches, or -1. The header lines start after the request
 * line, whose LF is at `from`, and after an LF within the first
 * FP_UA_LINE_BOUND bytes; only the first User-Agent header counts. */
__noinline int fp_scanner_match(struct xdp_md *ctx, __u32 s_off, __u32 len,
				__u32 from)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0, limit, off, k, end, i;
	struct fp_signature *first;
	__u64 word, lf;
	__u8 *s;
	int j, r;

	first = bpf_map_lookup_elem(&scanner_sigs, &zero);
	if (!first || !first->len)
		return -1;
	s_off &= FP_HDR_MASK;
	len &= FP_HDR_MASK;
	from &= FP_HDR_MASK;
	end = s_off + len;
	limit = len < FP_UA_LINE_BOUND ? len : FP_UA_LINE_BOUND;
	s = data + s_off;
	for (i = 0; i < FP_UA_LINE_BOUND / 8; i++) {
		off = from + 8 * i;
		if (off + 8 > limit)
			break;
		if ((void *)(s + off + 8) > data_end)
			return -1;
		word = fp_load_le64(s + off);
		lf = word ^ (FP_ONES * '\n');
		lf = (lf - FP_ONES) & ~lf & FP_HIGHS;
		/* Borrows can flag a byte above a true LF: check each. */
		for (j = 0; j < 8 && lf; j++) {
			k = fp_first_flagged(lf);
			lf &= lf - 1;
			if ((word >> (8 * k) & 0xff) != '\n')
				continue;
			/* Only a name starting with U or u can be it. */
			if (k < 7 && ((word >> (8 * k + 8) & 0xff) | 0x20) != 'u')
				continue;
			r = fp_user_agent_at(ctx, s_off + off + k + 1, end);
			if (r != -2)
				return r;
		}
	}
	off = from + 8 * i;
	for (j = 0; j < 8; j++) {
		k = off + j;
		if (k >= limit || (void *)(s + (k & FP_HDR_MASK) + 1) > data_end)
			return -1;
		if (s[k & FP_HDR_MASK] != '\n')
			continue;
		r = fp_user_agent_at(ctx, s_off + k + 1, end);
		if (r != -2)
			return r;
	}
	return -1;
}

#endif /* FP_SCANNER_H */

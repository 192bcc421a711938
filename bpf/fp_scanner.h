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
	__uint(max_entries, FP_MAX_SCANNER_HITS);
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

/* Is there a signature at all? Checked inline first, as fp_bans_on(). */
static __always_inline int fp_scanners_on(void)
{
	struct fp_signature *first = fp_signature(0);

	return first && first->len;
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

/* Two of 64 bits for four bytes, the same for any ASCII case of them: two
 * filters of where a signature may start, so that a value is read once
 * whatever the number of signatures and few positions are compared. */
#define FP_QUAD_CASE	0x20202020U

static __always_inline __u32 fp_quad_bit(__u32 quad)
{
	return ((quad | FP_QUAD_CASE) * 0x9E3779B1U) >> 26;
}

static __always_inline __u32 fp_quad_bit2(__u32 quad)
{
	return ((quad | FP_QUAD_CASE) * 0x85EBCA6BU) >> 26;
}

/* The lowest slot whose signature matches at pos, whose first four bytes
 * are quad, or -1. Only a signature starting with quad (case aside) is
 * compared. */
__noinline int fp_signatures_at(struct xdp_md *ctx, __u32 pos, __u32 end,
				__u32 quad)
{
	struct fp_signature *sig;
	__u32 j;

	quad |= FP_QUAD_CASE;
	for (j = 0; j < FP_MAX_SCANNER_SIGS; j++) {
		asm volatile("" : "+r"(j));
		sig = fp_signature(j);
		if (!sig || !sig->len)
			return -1;
		if (sig->len >= FP_MIN_SIGNATURE_LEN &&
		    (*(__u32 *)sig->text | FP_QUAD_CASE) == quad &&
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

/* The two filters of the signatures' first four bytes. */
struct fp_quad_filter {
	__u64 one;
	__u64 two;
};

static __always_inline void fp_signature_filter(struct fp_quad_filter *f)
{
	struct fp_signature *sig;
	__u32 j, quad;

	for (j = 0; j < FP_MAX_SCANNER_SIGS; j++) {
		asm volatile("" : "+r"(j));
		sig = fp_signature(j);
		if (!sig || !sig->len)
			break;
		if (sig->len < FP_MIN_SIGNATURE_LEN ||
		    sig->len > FP_MAX_SIGNATURE_LEN)
			continue;
		quad = *(__u32 *)sig->text;
		f->one |= 1ULL << fp_quad_bit(quad);
		f->two |= 1ULL << fp_quad_bit2(quad);
	}
}

/* The signature that starts first in the value at [at, end) (the lowest
 * slot of those starting at one byte), or -1. The value ends at its
 * line's CR or LF; only its first FP_UA_VALUE_BOUND bytes are searched. */
__noinline int fp_search_value(struct xdp_md *ctx, __u32 at, __u32 end)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct fp_quad_filter filter = {};
	__u32 i, quad;
	int found;
	__u8 *p;

	fp_signature_filter(&filter);
	if (!filter.one)
		return -1;
	at &= FP_HDR_MASK;
	end = fp_value_end(ctx, at, end) & FP_HDR_MASK;
	for (i = 0; i < FP_UA_VALUE_BOUND; i++) {
		p = data + ((at + i) & FP_HDR_MASK);
		if (at + i + FP_MIN_SIGNATURE_LEN > end ||
		    (void *)(p + 4) > data_end)
			break;
		__builtin_memcpy(&quad, p, 4);
		if (!(filter.one >> fp_quad_bit(quad) & 1) ||
		    !(filter.two >> fp_quad_bit2(quad) & 1))
			continue;
		found = fp_signatures_at(ctx, at + i, end, quad);
		if (found >= 0)
			return found;
	}
	return -1;
}

/* Is the line at offset q a User-Agent header (name in any case, up to
 * FP_UA_MAX_SPACES blanks, a colon)? Returns -2 when it is not, -1 when it
 * is the empty line that ends the headers, else the offset of its value. */
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
	if (q < end && (void *)(p + 1) <= data_end && fp_is_crlf(*p))
		return -1;
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
	return q + i + 1;
}

/* Bytes of a word equal to c, flagged 0x80; borrows can also flag a byte
 * above a flagged one, never miss one. */
static __always_inline __u64 fp_bytes_equal(__u64 word, __u8 c)
{
	__u64 x = word ^ (FP_ONES * c);

	return (x - FP_ONES) & ~x & FP_HIGHS;
}

/* The candidate LFs of the word at s + off (flagged in cand): for each
 * real LF, the line after it ends the headers (empty) or may be the
 * User-Agent. Returns -3 to scan on, else what fp_find_user_agent
 * returns. */
__noinline int fp_header_lines(struct xdp_md *ctx, __u32 s_off, __u32 off,
			       __u64 cand, __u32 end)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *p = data + ((s_off + off) & FP_HDR_MASK);
	__u64 word;
	__u32 k;
	int j, r;

	if ((void *)(p + 8) > data_end)
		return -1;
	word = fp_load_le64(p);
	for (j = 0; j < 8 && cand; j++) {
		k = fp_first_flagged(cand);
		cand &= cand - 1;
		if ((word >> (8 * k) & 0xff) != '\n')
			continue;
		r = fp_user_agent_at(ctx, s_off + off + k + 1, end);
		if (r != -2)
			return r;
	}
	return -3;
}

/* The LFs in the last bytes, from off to limit (fewer than 8), of the
 * scan of fp_find_user_agent: a function of its own, so that the verifier
 * follows it once, not once per length of the scan. */
__noinline int fp_last_lines(struct xdp_md *ctx, __u32 s_off, __u32 off,
			     __u32 limit, __u32 end)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *s = data + (s_off & FP_HDR_MASK);
	__u32 k;
	int j, r;

	off &= FP_HDR_MASK;
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

/* [step 12] The offset of the User-Agent value of the request of len bytes
 * at s_off, or -1. The header lines start after the request line, whose
 * LF is at `from`, and after an LF within the first FP_UA_LINE_BOUND
 * bytes, and end at an empty line; only the first User-Agent header
 * counts. */
__noinline int fp_find_user_agent(struct xdp_md *ctx, __u32 s_off,
				  __u32 len, __u32 from)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 limit, off, end, i;
	__u64 word, lf, next;
	__u8 *s;
	int r;

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
		lf = fp_bytes_equal(word, '\n');
		if (!lf)
			continue;
		/* Only an LF followed by U, u, CR or LF (or by the next
		 * word) needs a look: header names are rarely that. */
		next = fp_bytes_equal(word | FP_ONES * 0x20, 'u') |
		       fp_bytes_equal(word, '\r') | lf;
		lf &= next >> 8 | FP_HIGHS << 56;
		if (!lf)
			continue;
		r = fp_header_lines(ctx, s_off, off, lf, end);
		if (r != -3)
			return r;
	}
	return fp_last_lines(ctx, s_off, from + 8 * i, limit, end);
}

/* [step 12] The index of the signature that the request of len bytes at
 * s_off matches, or -1. Called only when fp_scanners_on(). */
static __always_inline int fp_scanner_match(struct xdp_md *ctx, __u32 s_off,
					     __u32 len, __u32 from)
{
	int value = fp_find_user_agent(ctx, s_off, len, from);

	return value < 0 ? -1 : fp_search_value(ctx, value, s_off + len);
}

#endif /* FP_SCANNER_H */

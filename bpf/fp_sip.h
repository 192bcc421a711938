/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * SIP payload classification for sip_logic.bpf.c ([step 10] of
 * docs/dataplane.md): keepalive, STUN, response, request or junk.
 */
#ifndef FP_SIP_H
#define FP_SIP_H

enum fp_payload {
	FP_PAYLOAD_JUNK = 0,
	FP_PAYLOAD_SIP,
	FP_PAYLOAD_REQUEST,	/* with the class and skip above it */
};

#define FP_MAX_KEEPALIVE	16
#define FP_MAX_CRLF_PREFIX	4
#define FP_MAX_REQUEST_LINE	512	/* the CR LF lies within these bytes */
#define FP_STUN_MIN		20
#define FP_STUN_COOKIE		0x2112A442

/* Method token characters (RFC 3261 token), as bitmaps of c < 64 and of
 * 64 <= c < 128: A-Z a-z 0-9 - . ! % * _ + ` ' ~ */
#define FP_TOKEN_LO	0x03ff6ca200000000ULL
#define FP_TOKEN_HI	0x47ffffff87fffffeULL

#define FP_ONES		0x0101010101010101ULL
#define FP_HIGHS	0x8080808080808080ULL

/* Eight characters as a number, the first one most significant. */
#define FP_NUM8(a, b, c, d, e, f, g, h)					\
	((__u64)(a) << 56 | (__u64)(b) << 48 | (__u64)(c) << 40 |	\
	 (__u64)(d) << 32 | (__u64)(e) << 24 | (__u64)(f) << 16 |	\
	 (__u64)(g) << 8 | (__u64)(h))

static __always_inline int fp_is_crlf(__u8 c)
{
	return c == '\r' || c == '\n';
}

static __always_inline int fp_is_token(__u8 c)
{
	if (c < 64)
		return (FP_TOKEN_LO >> c) & 1;
	if (c < 128)
		return (FP_TOKEN_HI >> (c - 64)) & 1;
	return 0;
}

static __always_inline int fp_is_digit(__u8 c)
{
	return c >= '0' && c <= '9';
}

/* A NAT keepalive: a payload of 0 to 16 bytes, each CR, LF, space, tab
 * or NUL. Phones send runs of spaces as well as CR LF. */
static __always_inline int fp_is_keepalive_byte(__u8 c)
{
	return c == '\r' || c == '\n' || c == ' ' || c == '\t' || c == 0;
}

static __always_inline int fp_is_keepalive(__u8 *p, __u32 len,
					   void *data_end)
{
	int i;

	if (len > FP_MAX_KEEPALIVE)
		return 0;
	for (i = 0; i < FP_MAX_KEEPALIVE; i++) {
		if (i >= len)
			break;
		if ((void *)(p + i + 1) > data_end ||
		    !fp_is_keepalive_byte(p[i]))
			return 0;
	}
	return 1;
}

static __always_inline int fp_is_stun(__u8 *p, __u32 len, void *data_end)
{
	if (len < FP_STUN_MIN || (void *)(p + 8) > data_end)
		return 0;
	return (p[0] & 0xC0) == 0 &&
	       *(__be32 *)(p + 4) == bpf_htonl(FP_STUN_COOKIE);
}

/* "SIP/2.0 " and a three-digit status code. */
static __always_inline int fp_is_response(__u8 *s, __u32 len, void *data_end)
{
	if (len < 11 || (void *)(s + 11) > data_end)
		return 0;
	return bpf_be64_to_cpu(*(__u64 *)s) ==
		FP_NUM8('S', 'I', 'P', '/', '2', '.', '0', ' ') &&
	       fp_is_digit(s[8]) && fp_is_digit(s[9]) && fp_is_digit(s[10]);
}

/* The request class (enum fp_class) of the method token of i characters
 * at s, whose space s[i] is in the frame. */
static __always_inline int fp_method_class(__u8 *s, __u32 i, void *data_end)
{
	/* Shorter frames fail the request line rule anyway. */
	if ((void *)(s + 8) > data_end)
		return FP_CLASS_OTHER;
	if (i == 8 && bpf_be64_to_cpu(*(__u64 *)s) ==
	    FP_NUM8('R', 'E', 'G', 'I', 'S', 'T', 'E', 'R'))
		return FP_CLASS_REGISTER;
	if (i == 7 && bpf_be64_to_cpu(*(__u64 *)s) >> 8 ==
	    FP_NUM8(0, 'O', 'P', 'T', 'I', 'O', 'N', 'S'))
		return FP_CLASS_OPTIONS;
	if (i == 6 && bpf_be64_to_cpu(*(__u64 *)s) >> 16 ==
	    FP_NUM8(0, 0, 'I', 'N', 'V', 'I', 'T', 'E'))
		return FP_CLASS_INVITE;
	return FP_CLASS_OTHER;
}

/* The length of the method token at s: token characters, then a space,
 * within the first FP_MAX_REQUEST_LINE bytes. Returns -1 when there is no
 * method. */
static __always_inline int fp_method_length(__u8 *s, __u32 len,
					    void *data_end)
{
	__u32 limit = len < FP_MAX_REQUEST_LINE ? len : FP_MAX_REQUEST_LINE;
	__u32 i;

	for (i = 0; i < FP_MAX_REQUEST_LINE; i++) {
		if (i >= limit || (void *)(s + i + 1) > data_end)
			return -1;
		if (s[i] == ' ')
			return i ? i : -1;
		if (!fp_is_token(s[i]))
			return -1;
	}
	return -1;
}

/* Is the CR at s[cr] preceded by " SIP/2.0"? Returns the index of the
 * LF after it if so, else 0. */
static __always_inline int fp_ends_with_version(__u8 *s, __u32 cr,
						void *data_end)
{
	__u32 start;
	__u8 *version;

	if (cr < 8)
		return 0;
	/* Keep the compiler from checking s + cr and reading at -8 from it,
	 * a negative offset the verifier refuses. */
	start = cr - 8;
	asm volatile("" : "+r"(start));
	version = s + start;
	if ((void *)(version + 8) > data_end)
		return 0;
	return bpf_be64_to_cpu(*(__u64 *)version) ==
	       FP_NUM8(' ', 'S', 'I', 'P', '/', '2', '.', '0') ? cr + 1 : 0;
}

/* Eight bytes as a number with the first byte least significant. */
static __always_inline __u64 fp_load_le64(__u8 *p)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return *(__u64 *)p;
#else
	return __builtin_bswap64(*(__u64 *)p);
#endif
}

/* Index (0-7) of the lowest byte flagged 0x80 in a non-zero mask. */
static __always_inline __u32 fp_first_flagged(__u64 flags)
{
	/* The lowest flag alone, as 1 << 8k, times bytes 07 06 .. 00 puts
	 * k in the top byte. */
	return (((flags & -flags) >> 7) * 0x0001020304050607ULL) >> 56 & 7;
}

/* Is s[i] the LF of a CR LF? The caller has checked that s[i] is inside
 * the frame. */
static __always_inline int fp_is_crlf_end(__u8 *s, __u32 i)
{
	return s[i] == '\n' && i > 0 && s[i - 1] == '\r';
}

/* The request line rule: the first CR LF lies within the first 512 bytes
 * and right after " SIP/2.0". Returns the index of its LF if so, else 0.
 *
 * Eight bytes at a time: words without an LF are skipped whole. Every read
 * is at a fixed offset within an iteration, so the verifier's work stays
 * linear in the line length. */
static __always_inline int fp_check_request_line(__u8 *s, __u32 len,
						 void *data_end)
{
	__u32 limit = len < FP_MAX_REQUEST_LINE ? len : FP_MAX_REQUEST_LINE;
	__u32 off, i, k;
	__u64 word, lf;
	int j;

	for (off = 0; off + 8 <= limit; off += 8) {
		if ((void *)(s + off + 8) > data_end)
			return 0;
		word = fp_load_le64(s + off);
		lf = word ^ (FP_ONES * '\n');
		lf = (lf - FP_ONES) & ~lf & FP_HIGHS;
		if (!lf)
			continue;
		/* The lowest flag is exact (borrows only reach higher bytes):
		 * it is the word's first LF. Most lines end here. */
		k = fp_first_flagged(lf);
		if (k ? (word >> (8 * (k - 1)) & 0xff) == '\r' :
			off && s[off - 1] == '\r')
			return fp_ends_with_version(s, off + k - 1, data_end);
		/* A lone LF came first: check the word byte by byte. */
#pragma unroll
		for (j = 0; j < 8; j++) {
			if (fp_is_crlf_end(s, off + j))
				return fp_ends_with_version(s, off + j - 1,
							    data_end);
		}
	}
#pragma unroll
	for (j = 0; j < 8; j++) {
		i = off + j;
		if (i >= limit || (void *)(s + i + 1) > data_end)
			return 0;
		if (fp_is_crlf_end(s, i))
			return fp_ends_with_version(s, i - 1, data_end);
	}
	return 0;
}

/* How many CR or LF bytes (at most four) lead the payload. */
static __always_inline __u32 fp_crlf_prefix(__u8 *p, __u32 len,
					    void *data_end)
{
	__u32 i;

	for (i = 0; i < FP_MAX_CRLF_PREFIX; i++) {
		if (i >= len || (void *)(p + i + 1) > data_end ||
		    !fp_is_crlf(p[i]))
			break;
	}
	return i;
}

#endif /* FP_SIP_H */

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The decision function as an XDP program, so that it runs on kernels that
 * refuse LSM programs, through BPF_PROG_TEST_RUN: the packet is a
 * struct d4c_test_event (head, then the path bytes, then room for a
 * struct d4c_result), and the program writes the result over the packet's
 * last bytes. The input it reads is never written: BPF_PROG_TEST_RUN with
 * `repeat` runs the program again on the same packet, so a result written
 * over the head would make every run after the first decide another event.
 *
 * XDP-only: it needs linux/bpf.h and libbpf's bpf_helpers.h, no vmlinux.h.
 * "xdp.frags" (Linux 5.18) lets test runs pass packets longer than a page
 * less headroom, as a 4096-byte path needs.
 */
#include "decide.bpf.h"

/*
 * Reads the test event: its head into *head, its path into the scratch.
 * *len is the path length, at most D4C_PATH_MAX. Returns 0, or -1 when the
 * packet is too short.
 */
static __always_inline int d4c_load_event(struct xdp_md *ctx,
					  struct d4c_scratch *s,
					  struct d4c_event_head *head,
					  __u32 *len)
{
	__u32 n;

	if (bpf_xdp_load_bytes(ctx, 0, head, sizeof(*head)))
		return -1;
	n = head->path_len;
	if (n > D4C_PATH_MAX)
		n = D4C_PATH_MAX;
	if (n > 0 && n <= D4C_PATH_MAX &&
	    bpf_xdp_load_bytes(ctx, sizeof(*head), s->event.path, n))
		return -1;
	*len = n;
	return 0;
}

/*
 * Writes the result over the packet's last bytes, never over the event.
 * Returns 0, or -1 when the packet has no room for it.
 */
static __always_inline int d4c_store_result(struct xdp_md *ctx,
					    struct d4c_result *result)
{
	__u32 total = bpf_xdp_get_buff_len(ctx);

	if (total < sizeof(struct d4c_event_head) + sizeof(*result))
		return -1;
	return bpf_xdp_store_bytes(ctx, total - sizeof(*result), result,
				   sizeof(*result))
		   ? -1
		   : 0;
}

SEC("xdp.frags")
int d4c_xdp_decide(struct xdp_md *ctx)
{
	struct d4c_scratch *s = d4c_scratch_get();
	struct d4c_event_head head;
	struct d4c_result result = {};
	__u32 n;

	if (!s)
		return XDP_ABORTED;
	if (d4c_load_event(ctx, s, &head, &n))
		return XDP_ABORTED;
	d4c_decide(s, &head, &result);
	if (d4c_store_result(ctx, &result))
		return XDP_ABORTED;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";

/*
 * The linear-scan baseline, for benchmarks only: the same event, decided by
 * looking at every selector's path pattern in turn (what an evaluator
 * without the automaton does). A pattern matches when the event's operation
 * is in its mask and the path starts with its bytes; then exact needs the
 * path to end there, recursive and children a '/' or the end (children is
 * not checked for a further '/': the baseline does no more work than a
 * real one would). The result's dyn_class is the number of patterns that
 * match, its actions the OR of theirs.
 */
#define D4C_LIN_EXACT 0
#define D4C_LIN_PREFIX 1
#define D4C_LIN_RECURSIVE 2
#define D4C_LIN_CHILDREN 3
#define D4C_LIN_BYTES 256

struct d4c_lin_pattern {
	__u32 form; /* D4C_LIN_* */
	__u32 len;  /* bytes of the pattern, at most D4C_LIN_BYTES */
	__u32 ops;  /* bit `op` set: the pattern applies to that operation */
	__u32 actions;
	__u8 bytes[D4C_LIN_BYTES]; /* NUL padded */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, D4C_MAX_ENTRIES);
	__type(key, __u32);
	__type(value, struct d4c_lin_pattern);
} d4c_lin_pats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} d4c_lin_count SEC(".maps");

struct d4c_lin_ctx {
	__u32 op;
	__u32 len;
	__u32 matches;
	__u32 actions;
};

static long d4c_lin_one(__u64 index, void *ctx)
{
	struct d4c_lin_ctx *c = ctx;
	struct d4c_scratch *s = d4c_scratch_get();
	__u32 key = (__u32)index, plen, words, i;
	struct d4c_lin_pattern *p = bpf_map_lookup_elem(&d4c_lin_pats, &key);
	__u8 next;

	if (!s || !p)
		return 1;
	if (!(p->ops & (1u << (c->op & 31))))
		return 0;
	plen = p->len;
	if (plen > D4C_LIN_BYTES || plen > c->len)
		return 0;
	words = (plen + 7) / 8;
	for (i = 0; i < D4C_LIN_BYTES / 8; i++) {
		__u64 a, b, keep;
		__u32 at = i * 8;

		if (i >= words)
			break;
		a = *(__u64 *)&p->bytes[at & (D4C_LIN_BYTES - 8)];
		b = *(__u64 *)&s->event.path[at & (D4C_PATH_MAX - 1)];
		keep = plen - at >= 8 ? ~0ULL : (1ULL << ((plen - at) * 8)) - 1;
		if ((a ^ b) & keep)
			return 0;
	}
	next = plen < c->len ? s->event.path[plen & (D4C_PATH_MAX - 1)] : 0;
	switch (p->form) {
	case D4C_LIN_EXACT:
		if (plen != c->len)
			return 0;
		break;
	case D4C_LIN_RECURSIVE:
		if (plen != c->len && next != '/')
			return 0;
		break;
	case D4C_LIN_CHILDREN:
		if (next != '/' || plen + 1 >= c->len)
			return 0;
		break;
	default:
		break;
	}
	c->matches++;
	c->actions |= p->actions;
	return 0;
}

SEC("xdp.frags")
int d4c_xdp_linear(struct xdp_md *ctx)
{
	struct d4c_scratch *s = d4c_scratch_get();
	struct d4c_event_head head;
	struct d4c_result result = {};
	struct d4c_lin_ctx c = {};
	__u32 n, zero = 0;
	__u32 *count = bpf_map_lookup_elem(&d4c_lin_count, &zero);

	if (!s || !count)
		return XDP_ABORTED;
	if (d4c_load_event(ctx, s, &head, &n))
		return XDP_ABORTED;
	c.op = head.op;
	c.len = n;
	bpf_loop(*count, d4c_lin_one, &c, 0);
	result.kind = head.kind;
	result.dyn_class = c.matches;
	result.actions = c.actions;
	if (d4c_store_result(ctx, &result))
		return XDP_ABORTED;
	return XDP_PASS;
}

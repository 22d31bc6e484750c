/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The decision function as an XDP program, so that it runs on kernels that
 * refuse LSM programs, through BPF_PROG_TEST_RUN: the packet is a
 * struct d4c_test_event (head, then the path bytes), and the program
 * writes a struct d4c_result over the packet's first bytes.
 *
 * XDP-only: it needs linux/bpf.h and libbpf's bpf_helpers.h, no vmlinux.h.
 * "xdp.frags" (Linux 5.18) lets test runs pass packets longer than a page
 * less headroom, as a 4096-byte path needs.
 */
#include "decide.bpf.h"

SEC("xdp.frags")
int d4c_xdp_decide(struct xdp_md *ctx)
{
	struct d4c_scratch *s = d4c_scratch_get();
	struct d4c_event_head head;
	struct d4c_result result = {};
	__u32 n;

	if (!s)
		return XDP_ABORTED;
	if (bpf_xdp_load_bytes(ctx, 0, &head, sizeof(head)))
		return XDP_ABORTED;
	n = head.path_len;
	if (n > D4C_PATH_MAX)
		n = D4C_PATH_MAX;
	if (n > 0 && n <= D4C_PATH_MAX &&
	    bpf_xdp_load_bytes(ctx, sizeof(head), s->event.path, n))
		return XDP_ABORTED;
	d4c_decide(s, &head, &result);
	if (bpf_xdp_store_bytes(ctx, 0, &result, sizeof(result)))
		return XDP_ABORTED;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";

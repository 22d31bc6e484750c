/* SPDX-License-Identifier: Apache-2.0 */
/*
 * VM smoke test: an lsm/path_unlink program that refuses (EPERM) the unlink
 * of any file whose final name equals the name in `blocked_name`.
 * CO-RE against vmlinux.h (generated on the host; relocated by libbpf
 * against the guest kernel's own BTF at load time).
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define NAME_MAX_LEN 64
#define EPERM 1

char LICENSE[] SEC("license") = "GPL";

struct name_val {
	char name[NAME_MAX_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct name_val);
} blocked_name SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps"); /* 0: hook runs, 1: refusals */

static __always_inline void bump(__u32 k)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &k);
	if (v)
		__sync_fetch_and_add(v, 1);
}

SEC("lsm/path_unlink")
int BPF_PROG(d4c_vm_unlink, const struct path *dir, struct dentry *dentry,
	     int ret)
{
	char buf[NAME_MAX_LEN] = {};
	const unsigned char *name;
	struct name_val *want;
	__u32 zero = 0;
	int i;

	if (ret)
		return ret;
	bump(0);
	want = bpf_map_lookup_elem(&blocked_name, &zero);
	if (!want || !want->name[0])
		return 0;
	name = BPF_CORE_READ(dentry, d_name.name);
	if (bpf_probe_read_kernel_str(buf, sizeof(buf), name) < 0)
		return 0;
	for (i = 0; i < NAME_MAX_LEN; i++) {
		if (buf[i] != want->name[i])
			return 0;
		if (!buf[i])
			break;
	}
	bump(1);
	return -EPERM;
}

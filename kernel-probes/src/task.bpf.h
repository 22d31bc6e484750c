/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Which container a task is in, from its cgroup. Needs vmlinux.h (CO-RE).
 *
 * Userspace registers cgroup ids (the kernfs node id of the cgroup
 * directory, its inode number) in d4c_cgroups: each container's cgroup with
 * its row, and the kubepods roots. A task's cgroup, then its ancestors up
 * to D4C_CGROUP_DEPTH levels, are looked up; the first registered one
 * decides:
 * - a container's cgroup: the task is in that container (a descendant
 *   cgroup is one the container made itself);
 * - a kubepods root: the task is in a container whose metadata has not
 *   been delivered yet, decided by the row D4C_ROW_PENDING;
 * - none: a host process, which d4c neither decides nor reports.
 *
 * The cgroup is the unified (v2) one, or on cgroup v1 hosts the memory
 * controller's (d4c_config.cgroup_mode): kubelet creates a pod's and its
 * containers' cgroups in every v1 hierarchy, and memory is always mounted
 * where kubelet runs.
 */
#ifndef D4C_TASK_BPF_H
#define D4C_TASK_BPF_H

#include "decide.bpf.h"
#include <bpf/bpf_core_read.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct d4c_cgroup);
} d4c_cgroups SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct d4c_config);
} d4c_config SEC(".maps");

/* The rows of a container and a user (d4c_abi.h, struct
 * d4c_user_row_key); userspace sizes it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, D4C_MAX_ENTRIES);
	__type(key, struct d4c_user_row_key);
	__type(value, __u32);
} d4c_user_rows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, D4C_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} d4c_counters SEC(".maps");

/*
 * The tasks a container runtime runs to set a container up: forked by a
 * process outside every container, or by such a task, and not yet running
 * a program in the container's root. runc init is one: forked and exec'd
 * on the host, it joins the container's cgroup and makes the container's
 * mount points (files of mode 0755 for the bind-mounted /etc/resolv.conf
 * and /dev/termination-log), device links and mounts, pivots into the
 * container's root file system and execs the container's program. Those
 * operations are not the container's, and deciding them refused pods
 * their start (drift prevention; the pending row). A container's own
 * process cannot get the mark: its forks have a parent in the container.
 *
 * The value is the root directory (a dentry's address) the task had when
 * it was marked. An exec whose task's root is another one (after
 * pivot_root or chroot) runs a program of the container: it is decided,
 * and ends the mark (sched_process_exec). An exec at the same root is the
 * runtime running itself again (runc's re-exec of its own binary), before
 * the container exists: not the container's.
 *
 * A hash keyed by the task (thread id and start time, so that a reused id
 * is another key), not task storage, which aya 0.13 cannot create. Every
 * task forked outside containers is marked; entries go at exit and at the
 * exec that ends them, and the LRU bounds the rest (a host task's entry
 * is never read).
 */
struct d4c_task_key {
	__u32 tid;
	__u32 reserved;
	__u64 start_time;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 32768);
	__type(key, struct d4c_task_key);
	__type(value, __u64);
} d4c_setup SEC(".maps");

static __always_inline struct d4c_task_key
d4c_task_key(struct task_struct *task)
{
	struct d4c_task_key key = {};

	key.tid = BPF_CORE_READ(task, pid);
	key.start_time = BPF_CORE_READ(task, start_time);
	return key;
}

/* What d4c_setup says of a task. */
#define D4C_SETUP_NONE 0   /* not marked: the container's own */
#define D4C_SETUP_ACTIVE 1 /* setting the container up */
#define D4C_SETUP_ENTERED                                                      \
	2 /* marked, at another root: its exec is the                          \
	   * container's program */

static __always_inline int d4c_setup_state(struct task_struct *task)
{
	struct d4c_task_key key = d4c_task_key(task);
	__u64 *root = bpf_map_lookup_elem(&d4c_setup, &key);

	if (!root)
		return D4C_SETUP_NONE;
	return *root == (__u64)BPF_CORE_READ(task, fs, root.dentry)
		   ? D4C_SETUP_ACTIVE
		   : D4C_SETUP_ENTERED;
}

/* Marks `task`, whose origin root is `root` (see d4c_setup). */
static __always_inline void d4c_setup_mark(struct task_struct *task, __u64 root)
{
	struct d4c_task_key key = d4c_task_key(task);

	bpf_map_update_elem(&d4c_setup, &key, &root, BPF_ANY);
}

/* Ends `task`'s mark, if any. */
static __always_inline void d4c_setup_end(struct task_struct *task)
{
	struct d4c_task_key key = d4c_task_key(task);

	bpf_map_delete_elem(&d4c_setup, &key);
}

/* The origin root `child` inherits from `parent`: the parent's own, when
 * it is marked; else (a host task) its root; 0 when the child is the
 * container's (not marked). */
static __always_inline __u64 d4c_setup_origin(struct task_struct *parent,
					      int parent_in_container)
{
	struct d4c_task_key key = d4c_task_key(parent);
	__u64 *root = bpf_map_lookup_elem(&d4c_setup, &key);

	if (root)
		return *root;
	if (parent_in_container)
		return 0;
	return (__u64)BPF_CORE_READ(parent, fs, root.dentry);
}

static __always_inline void d4c_count(__u32 counter)
{
	__u64 *value = bpf_map_lookup_elem(&d4c_counters, &counter);

	if (value)
		*value += 1;
}

static __always_inline struct d4c_config *d4c_config_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&d4c_config, &zero);
}

/* The cgroup whose `self` css is `css` (struct cgroup embeds it). */
static __always_inline struct cgroup *
d4c_css_cgroup(struct cgroup_subsys_state *css)
{
	if (!css)
		return NULL;
	return (struct cgroup *)((void *)css -
				 bpf_core_field_offset(struct cgroup, self));
}

/* The task's cgroup in the hierarchy d4c watches. */
static __always_inline struct cgroup *d4c_task_cgroup(struct task_struct *task,
						      __u32 mode)
{
	struct css_set *cset = BPF_CORE_READ(task, cgroups);
	struct cgroup_subsys_state *css = NULL;
	int memory = bpf_core_enum_value(enum cgroup_subsys_id, memory_cgrp_id);

	if (!cset)
		return NULL;
	if (mode == D4C_CGROUP_UNIFIED)
		return BPF_CORE_READ(cset, dfl_cgrp);
	if (memory < 0 || memory >= 16)
		return NULL;
	bpf_core_read(&css, sizeof(css), &cset->subsys[memory & 15]);
	return css ? BPF_CORE_READ(css, cgroup) : NULL;
}

/*
 * The task's effective uid as its user namespace sees it (what `id -u`
 * says inside the container), or D4C_NO_UID. A task's credentials are
 * made in its own namespace, so its uid is mapped there: the inverse of
 * the namespace's uid_map (first = lower_first + offset). A namespace
 * with more than D4C_UID_EXTENTS extents keeps them out of line; those
 * are not read (Kubernetes maps a pod's user namespace with one).
 */
static __always_inline __u32 d4c_task_euid(struct task_struct *task)
{
	const struct cred *cred = BPF_CORE_READ(task, cred);
	struct user_namespace *ns;
	__u32 kuid, extents;

	if (!cred)
		return D4C_NO_UID;
	kuid = BPF_CORE_READ(cred, euid.val);
	ns = BPF_CORE_READ(cred, user_ns);
	if (!ns)
		return D4C_NO_UID;
	extents = BPF_CORE_READ(ns, uid_map.nr_extents);
	if (extents > D4C_UID_EXTENTS)
		return D4C_NO_UID;
	for (__u32 i = 0; i < D4C_UID_EXTENTS; i++) {
		struct uid_gid_extent e;

		if (i >= extents)
			break;
		if (bpf_core_read(&e, sizeof(e), &ns->uid_map.extent[i]))
			return D4C_NO_UID;
		if (kuid >= e.lower_first && kuid - e.lower_first < e.count)
			return e.first + (kuid - e.lower_first);
	}
	return D4C_NO_UID;
}

/* The row of a container's row `row` and the acting uid: the user row
 * userspace wrote, else the container's own. */
static __always_inline __u32 d4c_user_row(__u32 row, __u32 uid)
{
	struct d4c_user_row_key key = {.row = row, .uid = uid};
	__u32 *user_row = bpf_map_lookup_elem(&d4c_user_rows, &key);

	return user_row ? *user_row : row;
}

/* Where a task is. */
struct d4c_where {
	__u64 cgroup_id; /* the task's own cgroup */
	__u32 row; /* its container's row (and user's), or D4C_ROW_PENDING */
	__u32 pending; /* 1: metadata not delivered yet */
};

/* Returns 1 and fills *where when `task` is in a container, else 0. */
static __always_inline int d4c_container_of(struct task_struct *task,
					    struct d4c_where *where)
{
	struct d4c_config *config = d4c_config_get();
	struct cgroup *cgrp;

	if (!config)
		return 0;
	cgrp = d4c_task_cgroup(task, config->cgroup_mode);
	if (!cgrp)
		return 0;
	where->cgroup_id = BPF_CORE_READ(cgrp, kn, id);
	for (int level = 0; level < D4C_CGROUP_DEPTH && cgrp; level++) {
		__u64 id = BPF_CORE_READ(cgrp, kn, id);
		struct d4c_cgroup *entry =
		    bpf_map_lookup_elem(&d4c_cgroups, &id);

		if (entry) {
			if (entry->flags & D4C_CGROUP_CONTAINER) {
				where->row = entry->row;
				/* A pending container's row is the union
				 * over every container and user already. */
				if (config->user_rows)
					where->row = d4c_user_row(
					    entry->row, d4c_task_euid(task));
				where->pending = 0;
				return 1;
			}
			if (entry->flags & D4C_CGROUP_KUBEPODS) {
				/* The kubepods root itself holds no
				 * container's process. */
				if (level == 0)
					return 0;
				where->row = D4C_ROW_PENDING;
				where->pending = 1;
				return 1;
			}
		}
		cgrp = d4c_css_cgroup(BPF_CORE_READ(cgrp, self.parent));
	}
	return 0;
}

/* Whether the task's session has a controlling terminal: what
 * sessionLeaderInteractive means (every process of a session shares its
 * signal_struct's tty). */
static __always_inline __u32 d4c_interactive(struct task_struct *task)
{
	return BPF_CORE_READ(task, signal, tty) != NULL;
}

#endif /* D4C_TASK_BPF_H */

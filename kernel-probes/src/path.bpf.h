/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A file's path as the acting task sees it: the dentries from the file up to
 * the task's root directory (current->fs->root, which is the container's
 * root file system after runc's pivot_root or chroot), crossing mounts by
 * their mount points, as d_path() does. Needs vmlinux.h (CO-RE).
 *
 * In: a (vfsmount, dentry) pair and the task. Out: the path in
 * s->event.path, its length, the volume it is on, and whether it could be
 * resolved whole. Invariants:
 * - the path starts with '/', has no empty component, and is at most
 *   D4C_PATH_MAX bytes; a longer one sets `truncated`, and so does a
 *   walk that ran out of iterations;
 * - a file whose walk ends at a root other than the task's (a detached
 *   mount such as a memfd's, or a directory outside a chroot) sets
 *   `outside`; its path is then relative to that other root.
 *
 * One component per bpf_loop iteration (Linux 5.17): the verifier checks
 * the callback once, whatever the depth. No lock is taken: like every
 * unlocked walk (bpf_d_path excepted) it can see a rename in flight; a
 * torn walk gives some path of the file, never memory outside the buffer.
 */
#ifndef D4C_PATH_BPF_H
#define D4C_PATH_BPF_H

#include "decide.bpf.h"
#include <bpf/bpf_core_read.h>

/* The walk's buffer: names are written backwards from its end. Twice
 * D4C_PATH_MAX so that masks alone bound every write for the verifier. */
#define D4C_BUILD_BYTES (2 * D4C_PATH_MAX)

struct d4c_path_walk {
	__u64 dentry; /* struct dentry *: the next dentry to name */
	__u64 mnt;    /* struct vfsmount *: its mount */
	__u64 root_dentry;
	__u64 root_mnt;
	__u32 pos;  /* the path starts at build[pos] */
	__u32 used; /* bytes written: D4C_BUILD_BYTES - pos */
	__u32 done;
	__u32 truncated;
	__u32 outside;
	__u32 reserved;
};

struct d4c_path_buf {
	struct d4c_path_walk walk;
	__u8 build[D4C_BUILD_BYTES + 256];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct d4c_path_buf);
} d4c_pathbuf SEC(".maps");

/* The struct mount around a vfsmount (fs/mount.h: real_mount), with the
 * member's offset relocated against the running kernel. */
static __always_inline struct mount *d4c_real_mount(struct vfsmount *mnt)
{
	return (struct mount *)((void *)mnt -
				bpf_core_field_offset(struct mount, mnt));
}

/* One step up: names the dentry, or crosses to the mount point. */
static long d4c_path_up(__u64 index, void *ctx)
{
	__u32 zero = 0, len, start;
	struct d4c_path_buf *b = bpf_map_lookup_elem(&d4c_pathbuf, &zero);
	struct dentry *dentry, *parent, *mnt_root;
	struct vfsmount *mnt;
	const unsigned char *name;
	struct d4c_path_walk *w;

	if (!b)
		return 1;
	w = &b->walk;
	dentry = (struct dentry *)w->dentry;
	mnt = (struct vfsmount *)w->mnt;
	if (w->dentry == w->root_dentry && w->mnt == w->root_mnt) {
		w->done = 1;
		return 1;
	}
	mnt_root = BPF_CORE_READ(mnt, mnt_root);
	parent = BPF_CORE_READ(dentry, d_parent);
	if (dentry == mnt_root || dentry == parent) {
		struct mount *m = d4c_real_mount(mnt);
		struct mount *up = BPF_CORE_READ(m, mnt_parent);

		if (up == m || dentry != mnt_root) {
			/* The root of a mount tree that is not the task's
			 * root: outside it. */
			w->outside = 1;
			w->done = 1;
			return 1;
		}
		w->dentry = (__u64)BPF_CORE_READ(m, mnt_mountpoint);
		w->mnt = (__u64)((void *)up +
				 bpf_core_field_offset(struct mount, mnt));
		return 0;
	}
	len = BPF_CORE_READ(dentry, d_name.len);
	name = BPF_CORE_READ(dentry, d_name.name);
	if (len == 0 || len > D4C_LONG_COMPONENT_BYTES ||
	    w->used + len + 1 > D4C_PATH_MAX) {
		w->truncated = 1;
		w->done = 1;
		return 1;
	}
	w->pos -= len + 1;
	w->used += len + 1;
	start = w->pos & (D4C_BUILD_BYTES - 1);
	b->build[start] = '/';
	bpf_probe_read_kernel(&b->build[(start + 1) & (D4C_BUILD_BYTES - 1)],
			      len & 0xff, name);
	w->dentry = (__u64)parent;
	return 0;
}

/* What d4c_resolve found out about the file's place. */
struct d4c_place {
	__u32 len;	 /* bytes of path in s->event.path */
	__u32 volume;	 /* the volume's table index */
	__u32 truncated; /* not resolved whole: the class is not the path's */
	__u32 outside;	 /* the walk ended at another root */
};

/*
 * Resolves (mnt, dentry) as `task` sees it into s->event.path. The volume:
 * a file on the mount of the task's root is on the root file system; a
 * file that is itself a mount's root (a bind-mounted single file, such as
 * a ConfigMap key or /etc/hosts) is a volume file; any other is on a
 * volume.
 */
static __always_inline int d4c_resolve(struct d4c_scratch *s,
				       struct task_struct *task,
				       struct vfsmount *mnt,
				       struct dentry *dentry,
				       struct d4c_place *place)
{
	__u32 zero = 0, n;
	struct d4c_path_buf *b = bpf_map_lookup_elem(&d4c_pathbuf, &zero);
	struct d4c_path_walk *w;
	struct vfsmount *root_mnt;
	long iterations;

	if (!b)
		return -1;
	w = &b->walk;
	__builtin_memset(w, 0, sizeof(*w));
	root_mnt = BPF_CORE_READ(task, fs, root.mnt);
	w->root_dentry = (__u64)BPF_CORE_READ(task, fs, root.dentry);
	w->root_mnt = (__u64)root_mnt;
	w->dentry = (__u64)dentry;
	w->mnt = (__u64)mnt;
	w->pos = D4C_BUILD_BYTES;

	if (mnt == root_mnt)
		place->volume = D4C_VOLUME_ROOTFS;
	else if (dentry == BPF_CORE_READ(mnt, mnt_root))
		place->volume = D4C_VOLUME_FILE;
	else
		place->volume = D4C_VOLUME_DIR;

	/* Every iteration names a component (two bytes at least) or crosses
	 * a mount; mounts stacked deeper than the slack are cut. */
	iterations = bpf_loop(D4C_PATH_MAX / 2 + 64, d4c_path_up, NULL, 0);
	place->truncated = w->truncated || !w->done || iterations < 0;
	place->outside = w->outside;
	n = w->used;
	if (n == 0) {
		s->event.path[0] = '/';
		n = 1;
	} else {
		if (n > D4C_PATH_MAX)
			n = D4C_PATH_MAX;
		bpf_probe_read_kernel(
		    s->event.path, n,
		    &b->build[w->pos & (D4C_BUILD_BYTES - 1)]);
	}
	place->len = n;
	return 0;
}

#endif /* D4C_PATH_BPF_H */

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The d4c probes: BPF LSM hooks that decide file and process operations of
 * container tasks (and refuse blocked ones with EPERM), and tracepoints
 * that report the container processes' lifecycle. Every decision is
 * d4c_decide (decide.bpf.h), the function the XDP harness checks against
 * the Rust table evaluator.
 *
 * Classification (docs/kernel-probes.md has the full table):
 * - path_mknod (open with O_CREAT creating a file, and mknod):
 *   createExecutable when the new mode has an execute bit, else createFile;
 * - file_open for writing a file that existed, and path_truncate:
 *   modifyExecutable when the file is executable, else modifyFile;
 * - path_chmod: createExecutable when it gives a non-executable file an
 *   execute bit, modifyExecutable when the file was executable, else
 *   modifyFile;
 * - path_link: at the new name, createExecutable when the file is
 *   executable, else createFile;
 * - path_rename: deleteFile at the old name, and at the new one a creation
 *   (executable if the file is) or, over an existing file, a modification
 *   (executable if either is); refused when either event is blocked;
 * - path_unlink: deleteFile;
 * - bprm_check_security: exec; a file with no name (a memfd, or any file
 *   whose last link is gone) is also execMemFd;
 * - task_alloc: fork (not new threads).
 *
 * Every record says which program wrote it (d4c_event.hook, D4C_HOOK_*):
 * d4c_begin and d4c_lifecycle take the hook, d4c_record_start stores it.
 *
 * An exec's records say what it was and what became of it: the decision
 * (bprm_check_security) carries the arguments the caller passed; then
 * either the new program's lifecycle record (sched_process_exec: its
 * executable as the task sees it, and its arguments) or, when an exec
 * reported as allowed fails after the decision, a failure record at the
 * syscall's return (sys_exit_execve, sys_exit_execveat).
 *
 * A path that cannot be resolved whole (longer than D4C_PATH_MAX, or
 * outside the task's root) fails closed: the operation gets the union of
 * its container row's actions, so it is refused whenever anything in that
 * container could be.
 */
#include "vmlinux.h"

#include "path.bpf.h"
#include "task.bpf.h"
#include <bpf/bpf_tracing.h>

#define D4C_EPERM 1
#define D4C_FMODE_WRITE 0x2
#define D4C_FMODE_CREATED 0x100000
#define D4C_O_TMPFILE_FLAG 020000000 /* __O_TMPFILE, asm-generic/fcntl.h */
#define D4C_S_IFMT 00170000
#define D4C_S_IFREG 0100000
#define D4C_S_IFDIR 0040000
#define D4C_S_IFLNK 0120000
#define D4C_EXEC_BITS 0111
#define D4C_CLONE_THREAD 0x00010000
/* MNT_NS_INTERNAL (fs/mount.h, 2.6.39 to today): ERR_PTR(-EINVAL), the
 * mnt_ns of the mounts the kernel makes for itself. */
#define D4C_MNT_NS_INTERNAL (-22L)
#define D4C_RENAME_EXCHANGE 2 /* uapi/linux/fs.h */
#define D4C_ACL_ACCESS                                                         \
	"system.posix_acl_access" /* XATTR_NAME_POSIX_ACL_ACCESS */
/* uapi/linux/mount.h: MS_REMOUNT; MS_UNBINDABLE, MS_PRIVATE, MS_SLAVE,
 * MS_SHARED */
#define D4C_MS_REMOUNT 32
#define D4C_MS_PROPAGATION ((1 << 17) | (1 << 18) | (1 << 19) | (1 << 20))

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} d4c_events SEC(".maps");

/* Threads whose exec a decision record reported as allowed (d4c_event.pid),
 * until the exec syscall returns: a failure is then reported (the exec did
 * not happen). An LRU: an exec from a thread other than the leader makes
 * the thread the leader, under another pid, and its entry ages out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u32);
} d4c_execs SEC(".maps");

/* An exec caller's arguments as they are read, before they go into the
 * record. Twice D4C_ARGS_MAX, so that masks alone bound every write. */
struct d4c_argv {
	__u64 argv; /* the caller's argv (a user address) */
	__u32 len;  /* bytes read, NULs included */
	__u32 reserved;
	__u8 bytes[2 * D4C_ARGS_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct d4c_argv);
} d4c_argbuf SEC(".maps");

/* The record being built (too large for the stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct d4c_event);
} d4c_record SEC(".maps");

/* A decision in progress: the operation and what d4c_decide said; then,
 * from `hook` on, what every event of one hook call shares (d4c_begin sets
 * it, d4c_next keeps it). */
struct d4c_op {
	struct d4c_event_head head;
	struct d4c_result result;
	__u32 event_flags; /* D4C_EV_* */
	__u32 mode;	   /* the file's mode, for the record */
	__u32 hook;	   /* D4C_HOOK_*: the program deciding */
	struct d4c_where where;
};

static __always_inline int d4c_is_exec(umode_t mode)
{
	return (mode & D4C_EXEC_BITS) != 0;
}

static __always_inline int d4c_is_dir(umode_t mode)
{
	return (mode & D4C_S_IFMT) == D4C_S_IFDIR;
}

static __always_inline umode_t d4c_dentry_mode(struct dentry *dentry)
{
	struct inode *inode = BPF_CORE_READ(dentry, d_inode);

	return inode ? BPF_CORE_READ(inode, i_mode) : 0;
}

/* The task's session id in the initial pid namespace: pid_nr() of its
 * session's struct pid, numbers[0].nr. The flexible array is reached by
 * offsets: aya refuses a CO-RE access string that indexes an array the BTF
 * says has no elements. */
static __always_inline __u32 d4c_session_id(struct task_struct *task)
{
	struct pid *pid = BPF_CORE_READ(task, signal, pids[PIDTYPE_SID]);
	int nr = 0;

	if (pid)
		bpf_core_read(&nr, sizeof(nr),
			      (void *)pid +
				  bpf_core_field_offset(struct pid, numbers) +
				  bpf_core_field_offset(struct upid, nr));
	return (__u32)nr;
}

/* Bytes of a NUL-padded comm. */
static __always_inline __u32 d4c_name_len(const __u8 *name)
{
	__u32 len = 0;

	for (__u32 i = 0; i < D4C_NAME_BYTES; i++) {
		if (name[i] == 0)
			break;
		len = i + 1;
	}
	return len;
}

/* The fixed part of a record for the current task, written by the
 * program `hook` (D4C_HOOK_*). */
static __always_inline struct d4c_event *d4c_record_start(__u32 record,
							  __u32 hook)
{
	__u32 zero = 0;
	struct d4c_event *r = bpf_map_lookup_elem(&d4c_record, &zero);
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 uid_gid = bpf_get_current_uid_gid();

	if (!r)
		return NULL;
	__builtin_memset(r, 0, offsetof(struct d4c_event, path));
	r->record = record;
	r->hook = hook;
	r->pid = (__u32)pid_tgid;
	r->tgid = pid_tgid >> 32;
	r->ppid = BPF_CORE_READ(task, real_parent, tgid);
	r->uid = (__u32)uid_gid;
	r->gid = uid_gid >> 32;
	r->sid = d4c_session_id(task);
	r->euid = d4c_task_euid(task);
	r->ktime_ns = bpf_ktime_get_boot_ns();
	bpf_get_current_comm(r->comm, sizeof(r->comm));
	return r;
}

/* Writes the record, whose first `len` path bytes are in place. */
static __always_inline void d4c_record_output(struct d4c_event *r, __u32 len)
{
	/* The mask gives the verifier an upper bound that survives the
	 * compiler's 32-bit arithmetic (6.1 saw the size as unbounded). */
	__u64 size = (offsetof(struct d4c_event, path) + (__u64)len) & 0x3fff;

	if (size > sizeof(*r))
		size = sizeof(*r);
	if (bpf_ringbuf_output(&d4c_events, r, size, 0))
		d4c_count(D4C_COUNT_DROPPED);
	else
		d4c_count(D4C_COUNT_EVENTS);
}

/* execve's argv, from the syscall's registers: on x86-64, execve (59) has
 * it in rsi, execveat (322) in rdx. 0 for any other entry (a 32-bit
 * caller's int 0x80, another architecture): no arguments are read. */
static __always_inline __u64 d4c_syscall_argv(void)
{
#if defined(__TARGET_ARCH_x86)
	struct pt_regs *regs =
	    (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	long nr = BPF_CORE_READ(regs, orig_ax);

	if (nr == 59)
		return BPF_CORE_READ(regs, si);
	if (nr == 322)
		return BPF_CORE_READ(regs, dx);
#endif
	return 0;
}

/* One argument: argv[index] appended to the buffer, NUL included. */
static long d4c_argv_one(__u64 index, void *ctx)
{
	__u32 zero = 0;
	struct d4c_argv *a = bpf_map_lookup_elem(&d4c_argbuf, &zero);
	const char *arg = NULL;
	__u64 at;
	long n;

	if (!a || a->len >= D4C_ARGS_MAX - 1)
		return 1;
	if (bpf_probe_read_user(
		&arg, sizeof(arg),
		(const void *)(a->argv + index * sizeof(arg))) ||
	    !arg)
		return 1;
	at = a->len & (D4C_ARGS_MAX - 1);
	n = bpf_probe_read_user_str(&a->bytes[at], D4C_ARGS_MAX - at, arg);
	if (n <= 0)
		return 1;
	a->len += (__u32)n;
	return 0;
}

/* The arguments the exec's caller passed, written at r->path[at] (right
 * after the path's `at` bytes); returns their bytes. At bprm_check_security
 * the new program's stack is not mapped yet: they are read from the
 * caller's argv, at most D4C_ARGS_COUNT of them and D4C_ARGS_MAX - 1 bytes,
 * one per bpf_loop iteration. */
static __always_inline __u32 d4c_exec_args(struct d4c_event *r, __u32 at)
{
	__u32 zero = 0, len;
	struct d4c_argv *a = bpf_map_lookup_elem(&d4c_argbuf, &zero);

	if (!a)
		return 0;
	a->len = 0;
	a->argv = d4c_syscall_argv();
	if (!a->argv)
		return 0;
	bpf_loop(D4C_ARGS_COUNT, d4c_argv_one, NULL, 0);
	len = a->len;
	if (len > D4C_ARGS_MAX - 1)
		len = D4C_ARGS_MAX - 1;
	if (at > D4C_PATH_MAX)
		at = D4C_PATH_MAX;
	if (len > 0)
		bpf_probe_read_kernel(&r->path[at], len, a->bytes);
	r->args_len = len;
	return len;
}

/* The union of a row's actions (its D4C_DYN_ANY entry); none means the
 * row was never written: fail closed. */
static __always_inline __u32 d4c_row_summary(__u32 row, __u32 kind)
{
	struct d4c_row_key key = {
	    .row = row, .kind = kind, .dyn_class = D4C_DYN_ANY};
	__u32 *actions = bpf_map_lookup_elem(&d4c_rows, &key);

	return actions ? *actions
		       : D4C_ACTION_LOG | D4C_ACTION_ALERT | D4C_ACTION_BLOCK;
}

/* Whether `actions` refuse the operation: they block, and d4c enforces
 * (the setting is read only then). */
static __always_inline int d4c_refuses(__u32 actions)
{
	struct d4c_config *config;

	if (!(actions & D4C_ACTION_BLOCK))
		return 0;
	config = d4c_config_get();
	return config && config->enforce;
}

/*
 * Copies `len` bytes (at most D4C_PATH_MAX, as the callers clamp it) of the
 * scratch's path into a record's path. The mask is on the register the
 * call reads, behind a barrier so that clang cannot drop it as implied by
 * the caller's clamp: Linux 6.1's verifier loses that clamp's bound (clang
 * computes it on a 32-bit copy) and refused every LSM program with "R2
 * unbounded memory access" (issue 12's conformance check on 6.1); 6.12's
 * keeps it. The record's path holds D4C_PATH_MAX + D4C_ARGS_MAX bytes, a
 * power of two, so the mask bounds the write and keeps every clamped value.
 */
static __always_inline void
d4c_copy_path(struct d4c_event *r, const struct d4c_scratch *s, __u32 len)
{
	__u64 n = len;

	_Static_assert(((D4C_PATH_MAX + D4C_ARGS_MAX) &
			(D4C_PATH_MAX + D4C_ARGS_MAX - 1)) == 0,
		       "the record's path is a power of two");
	asm volatile("" : "+r"(n));
	n &= D4C_PATH_MAX + D4C_ARGS_MAX - 1;
	if (n > 0)
		bpf_probe_read_kernel(r->path, n, s->event.path);
}

/*
 * Decides op->head (its path in the scratch's event.path), reports it, and
 * returns the actions. `unresolved`: 0 when the path is the file's whole
 * path, else the record flags saying why not (d4c_unresolved).
 *
 * A global function: the verifier checks it once, on its own, instead of
 * once per call with each caller's state; inlined, the path walk and the
 * automaton step took exec's two decisions past Linux 6.1's
 * million-instruction limit.
 */
__attribute__((noinline)) __u32 d4c_decide_and_report(struct d4c_op *op,
						      __u32 unresolved)
{
	struct d4c_scratch *s = d4c_scratch_get();
	struct d4c_event *r;
	/* The bytes the walk wrote: a path not resolved whole is reported
	 * by them alone (path_len says it was cut), never with the bytes an
	 * earlier, longer path left after them in the scratch. */
	__u32 actions, len, walked = op ? op->head.path_len : 0;
	__u32 tid;

	if (!op || !s)
		return 0;
	__builtin_memset(&op->result, 0, sizeof(op->result));
	op->head.row = op->where.row;
	if (unresolved) {
		/* Flag it for d4c_decide too (D4C_RESULT_TRUNCATED). */
		op->head.path_len = D4C_PATH_MAX + 1;
		op->event_flags |= unresolved;
		d4c_count(D4C_COUNT_TRUNCATED);
	}
	if (op->head.kind == D4C_KIND_FILE)
		d4c_decide_file(s, &op->head, &op->result);
	else
		d4c_decide_process(s, &op->head, &op->result);
	actions = op->result.actions;
	if (op->result.flags & (D4C_RESULT_NO_ROW | D4C_RESULT_ERROR)) {
		d4c_count(D4C_COUNT_ERRORS);
		actions |= d4c_row_summary(op->where.row, op->head.kind);
	}
	if (unresolved)
		actions |= d4c_row_summary(op->where.row, op->head.kind);
	if (op->where.pending) {
		op->event_flags |= D4C_EV_PENDING;
		d4c_count(D4C_COUNT_PENDING);
	}
	d4c_count(D4C_COUNT_DECISIONS);
	op->result.actions = actions;
	if (actions == 0 && !(op->event_flags & D4C_EV_TRUNCATED))
		return 0;

	r = d4c_record_start(D4C_RECORD_DECISION, op->hook);
	if (!r)
		return actions;
	r->kind = op->head.kind;
	r->op = op->head.op;
	r->volume = op->head.volume;
	r->flags = op->event_flags;
	/* The hook refuses this operation (d4c_verdict decides the same). */
	if (d4c_refuses(actions))
		r->flags |= D4C_EV_DENIED;
	r->actions = actions;
	r->dyn_class = op->result.dyn_class;
	r->result_flags = op->result.flags;
	r->row = op->where.row;
	r->cgroup_id = op->where.cgroup_id;
	r->path_len = op->head.path_len;
	r->name_len = op->head.name_len;
	r->mode = op->mode;
	__builtin_memcpy(r->name, op->head.name, D4C_NAME_BYTES);
	len = 0;
	if (op->head.flags & D4C_EVENT_HAS_PATH)
		len = walked > D4C_PATH_MAX ? D4C_PATH_MAX : walked;
	d4c_copy_path(r, s, len);
	/* An exec's decision: the arguments it was called with. */
	if (op->event_flags & D4C_EV_ARGS)
		len += d4c_exec_args(r, len);
	d4c_record_output(r, len);
	/* An exec allowed and reported: should it fail from here on, its
	 * failure is reported at the syscall's return. */
	if ((op->event_flags & D4C_EV_ARGS) && !(r->flags & D4C_EV_DENIED)) {
		tid = r->pid;
		bpf_map_update_elem(&d4c_execs, &tid, &tid, BPF_ANY);
	}
	return actions;
}

/* 0, or -EPERM when `actions` block and d4c enforces. */
static __always_inline int d4c_verdict(__u32 actions)
{
	if (!d4c_refuses(actions))
		return 0;
	d4c_count(D4C_COUNT_DENIED);
	return -D4C_EPERM;
}

/* Starts the program `hook`'s decisions: the current task's container,
 * or 0: then nothing is decided. */
static __always_inline int d4c_begin(struct d4c_op *op, __u32 hook)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	__builtin_memset(op, 0, sizeof(*op));
	op->hook = hook;
	if (!d4c_container_of(task, &op->where))
		return 0;
	/* A container runtime setting the container up (d4c_setup) does not
	 * act for the container; its exec of the container's program, in the
	 * container's root, does. */
	switch (d4c_setup_state(task)) {
	case D4C_SETUP_NONE:
		return 1;
	case D4C_SETUP_ENTERED:
		if (hook == D4C_HOOK_BPRM_CHECK_SECURITY)
			return 1;
		break;
	}
	d4c_count(D4C_COUNT_SETUP);
	return 0;
}

/* Clears the operation for the hook call's next event; keeps the hook and
 * the container. */
static __always_inline void d4c_next(struct d4c_op *op)
{
	__builtin_memset(op, 0, offsetof(struct d4c_op, hook));
}

/* The record flags of a path not resolved whole, or 0: D4C_EV_TRUNCATED
 * (the decision fails closed), with D4C_EV_OUTSIDE when the walk ended at
 * another root than the task's. */
static __always_inline __u32 d4c_unresolved(const struct d4c_place *place)
{
	if (place->outside)
		return D4C_EV_TRUNCATED | D4C_EV_OUTSIDE;
	return place->truncated ? D4C_EV_TRUNCATED : 0;
}

/* Decides the file event `opcode` at the place in the scratch (resolved by
 * d4c_resolve) on a file of mode `mode` (type and permission bits, for the
 * record: the new ones of a file created, chmod'd or arriving);
 * `directory`: on a directory, for everything at or below it; `part`:
 * D4C_EV_FIRST, D4C_EV_SECOND or 0. */
static __always_inline __u32 d4c_decide_at(struct d4c_op *op,
					   const struct d4c_place *place,
					   __u32 opcode, __u32 directory,
					   __u32 part, umode_t mode)
{
	d4c_next(op);
	op->head.kind = D4C_KIND_FILE;
	op->head.op = opcode;
	op->head.volume = place->volume;
	op->head.flags =
	    D4C_EVENT_HAS_PATH | (directory ? D4C_EVENT_DIRECTORY : 0);
	op->head.path_len = place->len;
	op->event_flags =
	    D4C_EV_HAS_PATH | part | (directory ? D4C_EV_DIRECTORY : 0);
	op->mode = mode;
	return d4c_decide_and_report(op, d4c_unresolved(place));
}

/* Decides one file event at (mnt, dentry), a file of mode `mode` (the
 * new mode of a file being created or chmod'd). */
static __always_inline __u32 d4c_file_event(struct d4c_op *op,
					    struct vfsmount *mnt,
					    struct dentry *dentry, __u32 opcode,
					    __u32 part, umode_t mode)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct d4c_scratch *s = d4c_scratch_get();
	struct d4c_place place = {};

	if (!s)
		return 0;
	if (d4c_resolve(s, task, mnt, dentry, &place))
		return 0;
	return d4c_decide_at(op, &place, opcode, 0, part, mode);
}

static __always_inline __u32 d4c_created(umode_t mode)
{
	return d4c_is_exec(mode) ? D4C_OP_CREATE_EXECUTABLE
				 : D4C_OP_CREATE_FILE;
}

static __always_inline __u32 d4c_modified(umode_t mode)
{
	return d4c_is_exec(mode) ? D4C_OP_MODIFY_EXECUTABLE
				 : D4C_OP_MODIFY_FILE;
}

/* A kernel pointer as a plain number, for a global function's argument:
 * the verifier (before 6.8's __arg_trusted) refuses a trusted BTF pointer
 * there. Copied through the stack by a probe read, it is a scalar. */
static __always_inline __u64 d4c_addr(const void *p)
{
	__u64 v = 0;

	bpf_probe_read_kernel(&v, sizeof(v), &p);
	return v;
}

/* What leaves a name and what arrives there, for d4c_name_events. */
static __always_inline __u32 d4c_modes(umode_t leaving, umode_t arriving)
{
	return (__u32)leaving | ((__u32)arriving << 16);
}

/*
 * Decides what happens at one name, (mnt, dentry), of a rename, an
 * exchange or a mount: `leaving` is the mode of what was there and leaves
 * (or is covered), `arriving` the mode of what comes there; 0 is nothing.
 * - A file replaced by a file is modified: modifyExecutable when either is
 *   executable, else modifyFile.
 * - Otherwise what leaves is a deleteFile, and what arrives a creation:
 *   createExecutable when it is executable, else createFile. A directory
 *   stands for everything in it, which may be executables and other files
 *   alike: a directory leaving is a deleteFile, and one arriving both a
 *   createExecutable and a createFile, each decided for every path at or
 *   below the name (D4C_EVENT_DIRECTORY: the subtree class).
 * `part` is the first event's D4C_EV_FIRST or D4C_EV_SECOND; the later
 * ones are D4C_EV_SECOND. Returns the union of the events' actions. The
 * two modes come packed (d4c_modes: BPF functions take five arguments).
 *
 * A global function, verified once: the path walk and up to three
 * decisions, called for two names by path_rename.
 */
__attribute__((noinline)) __u32 d4c_name_events(struct d4c_op *op, __u64 mnt,
						__u64 dentry, __u32 modes,
						__u32 part)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct d4c_scratch *s = d4c_scratch_get();
	struct d4c_place place = {};
	umode_t leaving = modes & 0xffff, arriving = modes >> 16;
	__u32 actions = 0;

	if (!op || !s)
		return 0;
	if (d4c_resolve(s, task, (struct vfsmount *)mnt,
			(struct dentry *)dentry, &place))
		return 0;
	if (leaving && arriving && !d4c_is_dir(leaving) &&
	    !d4c_is_dir(arriving))
		return d4c_decide_at(op, &place,
				     d4c_is_exec(leaving) ||
					     d4c_is_exec(arriving)
					 ? D4C_OP_MODIFY_EXECUTABLE
					 : D4C_OP_MODIFY_FILE,
				     0, part, arriving);
	if (leaving) {
		actions |= d4c_decide_at(op, &place, D4C_OP_DELETE_FILE,
					 d4c_is_dir(leaving), part, leaving);
		part = D4C_EV_SECOND;
	}
	if (arriving && d4c_is_dir(arriving)) {
		actions |= d4c_decide_at(op, &place, D4C_OP_CREATE_EXECUTABLE,
					 1, part, arriving);
		actions |= d4c_decide_at(op, &place, D4C_OP_CREATE_FILE, 1,
					 D4C_EV_SECOND, arriving);
	} else if (arriving) {
		actions |= d4c_decide_at(op, &place, d4c_created(arriving), 0,
					 part, arriving);
	}
	return actions;
}

SEC("lsm/path_mknod")
int BPF_PROG(d4c_path_mknod, const struct path *dir, struct dentry *dentry,
	     umode_t mode)
{
	struct d4c_op op;

	/* mknod of a regular file (type 0 is one), and every open that
	 * creates a file (may_o_create passes S_IFREG | mode). */
	if ((mode & D4C_S_IFMT) != 0 && (mode & D4C_S_IFMT) != D4C_S_IFREG)
		return 0;
	if (!d4c_begin(&op, D4C_HOOK_PATH_MKNOD))
		return 0;
	return d4c_verdict(d4c_file_event(&op, BPF_CORE_READ(dir, mnt), dentry,
					  d4c_created(mode), 0,
					  D4C_S_IFREG | (mode & ~D4C_S_IFMT)));
}

/*
 * Whether `file` is one the kernel opened on the current task's behalf
 * under a stacked file system, after the task's own operation was decided
 * on the path it named: overlayfs opens the real (upper or lower layer)
 * file behind every open of one of its files, and opens both layers' files
 * to copy a file up. Both happen with the mounter's credentials in force
 * (ovl_override_creds: current->cred is not current->real_cred), and the
 * file is either
 * - on a mount the kernel made for itself (MNT_NS_INTERNAL: overlayfs'
 *   private clones of its layers, clone_private_mount): Linux 6.6 and
 *   later open the real file as a backing file whose f_path is the layer's
 *   (fs/backing-file.c), and every kernel opens copy-up files there; or
 * - a file whose inode is not its path's (Linux before 6.6:
 *   open_with_fake_path gives the real file the overlay file's f_path).
 * A task cannot make either itself: it has no internal mount in its mount
 * namespace (a file reached through /proc/PID/map_files is on one, but is
 * opened with the task's own credentials, and decided).
 */
static __always_inline int d4c_kernel_internal_open(struct file *file)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct vfsmount *mnt;

	if (BPF_CORE_READ(task, cred) == BPF_CORE_READ(task, real_cred))
		return 0;
	mnt = BPF_CORE_READ(file, f_path.mnt);
	if ((long)BPF_CORE_READ(d4c_real_mount(mnt), mnt_ns) ==
	    D4C_MNT_NS_INTERNAL)
		return 1;
	return BPF_CORE_READ(file, f_inode) !=
	       BPF_CORE_READ(file, f_path.dentry, d_inode);
}

SEC("lsm/file_open")
int BPF_PROG(d4c_file_open, struct file *file)
{
	unsigned int fmode = BPF_CORE_READ(file, f_mode);
	unsigned int fflags = BPF_CORE_READ(file, f_flags);
	umode_t mode = BPF_CORE_READ(file, f_inode, i_mode);
	struct d4c_op op;
	__u32 opcode;

	/* A file just created was decided at path_mknod. */
	if (!(fmode & D4C_FMODE_WRITE) || (fmode & D4C_FMODE_CREATED))
		return 0;
	if ((mode & D4C_S_IFMT) != D4C_S_IFREG)
		return 0;
	if (!d4c_begin(&op, D4C_HOOK_FILE_OPEN))
		return 0;
	if (d4c_kernel_internal_open(file)) {
		d4c_count(D4C_COUNT_INTERNAL);
		return 0;
	}
	/* An O_TMPFILE open creates the file it opens: vfs_tmpfile calls no
	 * path hook and sets no FMODE_CREATED (seen on 6.1 and 6.12). It is
	 * a creation, at the name the kernel gives the file ("#<inode>"). */
	opcode = (fflags & D4C_O_TMPFILE_FLAG) ? d4c_created(mode)
					       : d4c_modified(mode);
	return d4c_verdict(d4c_file_event(&op, BPF_CORE_READ(file, f_path.mnt),
					  BPF_CORE_READ(file, f_path.dentry),
					  opcode, 0, mode));
}

SEC("lsm/path_truncate")
int BPF_PROG(d4c_path_truncate, const struct path *path)
{
	struct dentry *dentry = BPF_CORE_READ(path, dentry);
	umode_t mode = d4c_dentry_mode(dentry);
	struct d4c_op op;

	if ((mode & D4C_S_IFMT) != D4C_S_IFREG ||
	    !d4c_begin(&op, D4C_HOOK_PATH_TRUNCATE))
		return 0;
	return d4c_verdict(d4c_file_event(&op, BPF_CORE_READ(path, mnt), dentry,
					  d4c_modified(mode), 0, mode));
}

/* A change of a file's permission bits from `old` to `mode`: giving a
 * non-executable file an execute bit creates an executable; changing an
 * executable's modifies it; else the file is modified. */
static __always_inline __u32 d4c_mode_change(umode_t old, umode_t mode)
{
	if (d4c_is_exec(old))
		return D4C_OP_MODIFY_EXECUTABLE;
	return d4c_is_exec(mode) ? D4C_OP_CREATE_EXECUTABLE
				 : D4C_OP_MODIFY_FILE;
}

SEC("lsm/path_chmod")
int BPF_PROG(d4c_path_chmod, const struct path *path, umode_t mode)
{
	struct dentry *dentry = BPF_CORE_READ(path, dentry);
	umode_t old = d4c_dentry_mode(dentry);
	struct d4c_op op;

	if ((old & D4C_S_IFMT) != D4C_S_IFREG ||
	    !d4c_begin(&op, D4C_HOOK_PATH_CHMOD))
		return 0;
	return d4c_verdict(d4c_file_event(
	    &op, BPF_CORE_READ(path, mnt), dentry, d4c_mode_change(old, mode),
	    0, (old & D4C_S_IFMT) | (mode & ~D4C_S_IFMT)));
}

/* ---- Access ACLs: a second way to set the permission bits ---- */

/* Whether `name` (read with bpf_probe_read_kernel_str into 24 bytes) is
 * "system.posix_acl_access": three words compared (a 24-byte memcmp is a
 * libcall clang does not inline for BPF). */
#define D4C_W(s, i)                                                            \
	((__u64)(__u8)(s)[i] | (__u64)(__u8)(s)[(i) + 1] << 8 |                \
	 (__u64)(__u8)(s)[(i) + 2] << 16 | (__u64)(__u8)(s)[(i) + 3] << 24 |   \
	 (__u64)(__u8)(s)[(i) + 4] << 32 | (__u64)(__u8)(s)[(i) + 5] << 40 |   \
	 (__u64)(__u8)(s)[(i) + 6] << 48 | (__u64)(__u8)(s)[(i) + 7] << 56)
static __always_inline int d4c_is_acl_access(const char *name)
{
	const __u64 *w = (const __u64 *)name;

	return w[0] == D4C_W(D4C_ACL_ACCESS, 0) &&
	       w[1] == D4C_W(D4C_ACL_ACCESS, 8) &&
	       w[2] == D4C_W(D4C_ACL_ACCESS, 16);
}

/* Linux 6.2 to 6.12's posix_acl (later kernels nest a_count in a union;
 * CO-RE matches the flavour by field names). */
struct posix_acl___d4c {
	unsigned int a_count;
	struct posix_acl_entry a_entries[];
} __attribute__((preserve_access_index));

#define D4C_ACL_USER_OBJ 0x01 /* uapi/linux/posix_acl.h */
#define D4C_ACL_GROUP_OBJ 0x04
#define D4C_ACL_MASK 0x10
#define D4C_ACL_OTHER 0x20
/* Entries read, at most: a longer ACL is taken to give execute bits. */
#define D4C_ACL_ENTRIES 64

/* The scan of an ACL's entries: each is 8 bytes, the tag and the
 * permissions its first two 16-bit words, in the kernel's struct
 * posix_acl_entry and in the xattr format (little-endian) alike. */
struct d4c_acl_scan {
	__u64 entries; /* address of the first */
	__u32 count;
	__u32 user;
	__u32 group;
	__u32 mask;
	__u32 other;
	__u32 has_mask;
};

static long d4c_acl_entry(__u64 index, void *ctx)
{
	struct d4c_acl_scan *a = ctx;
	__u16 word[2] = {};

	if (index >= a->count)
		return 1;
	if (bpf_probe_read_kernel(word, sizeof(word),
				  (const void *)(a->entries + index * 8)))
		return 1;
	switch (word[0]) {
	case D4C_ACL_USER_OBJ:
		a->user = word[1] & 7;
		break;
	case D4C_ACL_GROUP_OBJ:
		a->group = word[1] & 7;
		break;
	case D4C_ACL_MASK:
		a->mask = word[1] & 7;
		a->has_mask = 1;
		break;
	case D4C_ACL_OTHER:
		a->other = word[1] & 7;
		break;
	}
	return 0;
}

/* The permission bits `count` entries at `entries` give the file's mode,
 * as posix_acl_update_mode sets them: the owner's from ACL_USER_OBJ, the
 * group class's from ACL_MASK when there is one (else ACL_GROUP_OBJ), the
 * others' from ACL_OTHER. Too many entries: every execute bit. */
static __always_inline umode_t d4c_acl_mode(__u64 entries, __u32 count)
{
	struct d4c_acl_scan a = {.entries = entries, .count = count};

	if (count > D4C_ACL_ENTRIES)
		return 0111;
	bpf_loop(D4C_ACL_ENTRIES, d4c_acl_entry, &a, 0);
	return (a.user << 6) | ((a.has_mask ? a.mask : a.group) << 3) | a.other;
}

/*
 * Decides setting a regular file's access ACL to one that gives it the
 * permission bits `mode`, as a chmod would be. The hooks have a dentry,
 * not a mount: the path is walked on the task's root mount, which is
 * right for the container's root file system; a file elsewhere (a volume)
 * ends its walk at another root and fails closed, flagged outside. A stacked
 * file system setting the ACL of its real file (overlayfs, with the
 * mounter's credentials) was decided at its own call.
 */
static __always_inline int d4c_acl_change(struct dentry *dentry, umode_t mode,
					  __u32 hook)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	umode_t old = d4c_dentry_mode(dentry);
	struct d4c_op op;

	if ((old & D4C_S_IFMT) != D4C_S_IFREG)
		return 0;
	if (BPF_CORE_READ(task, cred) != BPF_CORE_READ(task, real_cred))
		return 0;
	if (!d4c_begin(&op, hook))
		return 0;
	return d4c_verdict(
	    d4c_file_event(&op, BPF_CORE_READ(task, fs, root.mnt), dentry,
			   d4c_mode_change(old, mode), 0,
			   (old & ~(umode_t)0777) | (mode & 0777)));
}

SEC("lsm/inode_set_acl")
int BPF_PROG(d4c_inode_set_acl, void *idmap, struct dentry *dentry,
	     const char *acl_name, struct posix_acl *kacl)
{
	struct posix_acl___d4c *acl = (void *)kacl;
	__u64 name[3] = {};

	/* Linux 6.2 and later: every POSIX ACL change comes here. A default
	 * ACL shapes files made later (decided then); removing an ACL leaves
	 * the mode as it is. */
	if (!acl ||
	    bpf_probe_read_kernel_str(name, sizeof(name), acl_name) !=
		sizeof(D4C_ACL_ACCESS) ||
	    !d4c_is_acl_access((const char *)name))
		return 0;
	return d4c_acl_change(
	    dentry,
	    d4c_acl_mode(d4c_addr(acl) + bpf_core_field_offset(
					     struct posix_acl___d4c, a_entries),
			 BPF_CORE_READ(acl, a_count)),
	    D4C_HOOK_INODE_SET_ACL);
}

SEC("lsm/inode_setxattr")
int d4c_inode_setxattr(unsigned long long *ctx)
{
	/* (idmap, dentry, name, value, size, flags). The verifier refuses a
	 * load of a `void *` argument from the context (6.1, 6.12: "is not a
	 * struct"): `value`'s address is copied out by a probe read. */
	struct dentry *dentry = (struct dentry *)ctx[1];
	const char *xattr = (const char *)ctx[2];
	__u64 size = ctx[4], value = 0;
	__u64 name[3] = {};

	/* Before Linux 6.2 an ACL is set as the xattr system.posix_acl_access
	 * (a 4-byte header, then 8-byte entries); later kernels send ACLs to
	 * inode_set_acl instead. */
	if (size < 4 ||
	    bpf_probe_read_kernel_str(name, sizeof(name), xattr) !=
		sizeof(D4C_ACL_ACCESS) ||
	    !d4c_is_acl_access((const char *)name))
		return 0;
	if (bpf_probe_read_kernel(&value, sizeof(value), &ctx[3]) || !value)
		return 0;
	return d4c_acl_change(dentry, d4c_acl_mode(value + 4, (size - 4) / 8),
			      D4C_HOOK_INODE_SETXATTR);
}

SEC("lsm/path_link")
int BPF_PROG(d4c_path_link, struct dentry *old_dentry,
	     const struct path *new_dir, struct dentry *new_dentry)
{
	umode_t mode = d4c_dentry_mode(old_dentry);
	struct d4c_op op;

	if (d4c_is_dir(mode) || !d4c_begin(&op, D4C_HOOK_PATH_LINK))
		return 0;
	return d4c_verdict(d4c_file_event(&op, BPF_CORE_READ(new_dir, mnt),
					  new_dentry, d4c_created(mode), 0,
					  mode));
}

SEC("lsm/path_unlink")
int BPF_PROG(d4c_path_unlink, const struct path *dir, struct dentry *dentry)
{
	struct d4c_op op;

	if (!d4c_begin(&op, D4C_HOOK_PATH_UNLINK))
		return 0;
	return d4c_verdict(d4c_file_event(&op, BPF_CORE_READ(dir, mnt), dentry,
					  D4C_OP_DELETE_FILE, 0,
					  d4c_dentry_mode(dentry)));
}

SEC("lsm/path_rename")
int BPF_PROG(d4c_path_rename, const struct path *old_dir,
	     struct dentry *old_dentry, const struct path *new_dir,
	     struct dentry *new_dentry, unsigned int flags)
{
	umode_t moved = d4c_dentry_mode(old_dentry);
	umode_t there = d4c_dentry_mode(new_dentry);
	struct d4c_op op;
	__u32 actions;

	if (!d4c_begin(&op, D4C_HOOK_PATH_RENAME))
		return 0;
	/* The old name loses what is moved, and with RENAME_EXCHANGE gets
	 * what was at the new one; the new name loses what was there (if
	 * anything) and gets what is moved. The hook has the flags since
	 * Linux 5.19 (commit 100f59d96468): one call for an exchange. */
	actions = d4c_name_events(
	    &op, (__u64)BPF_CORE_READ(old_dir, mnt), d4c_addr(old_dentry),
	    d4c_modes(moved, (flags & D4C_RENAME_EXCHANGE) ? there : 0),
	    D4C_EV_FIRST);
	actions |= d4c_name_events(&op, (__u64)BPF_CORE_READ(new_dir, mnt),
				   d4c_addr(new_dentry),
				   d4c_modes(there, moved), D4C_EV_SECOND);
	return d4c_verdict(actions);
}

SEC("lsm/path_symlink")
int BPF_PROG(d4c_path_symlink, const struct path *dir, struct dentry *dentry,
	     const char *old_name)
{
	struct d4c_op op;

	/* A symbolic link is made with mode 0777: by d4c's rule, a new
	 * executable name (exec through it runs its target). */
	if (!d4c_begin(&op, D4C_HOOK_PATH_SYMLINK))
		return 0;
	return d4c_verdict(d4c_file_event(&op, BPF_CORE_READ(dir, mnt), dentry,
					  D4C_OP_CREATE_EXECUTABLE, 0,
					  D4C_S_IFLNK | 0777));
}

/* A mount on `path`: what was there is covered (it leaves), and a
 * directory's worth of names arrives, whatever the source. */
static __always_inline int d4c_mount_on(const struct path *path, __u32 hook)
{
	struct dentry *dentry = BPF_CORE_READ(path, dentry);
	struct d4c_op op;

	if (!d4c_begin(&op, hook))
		return 0;
	return d4c_verdict(d4c_name_events(
	    &op, (__u64)BPF_CORE_READ(path, mnt), (__u64)dentry,
	    d4c_modes(d4c_dentry_mode(dentry), D4C_S_IFDIR), D4C_EV_FIRST));
}

SEC("lsm/sb_mount")
int BPF_PROG(d4c_sb_mount, const char *dev_name, const struct path *path,
	     const char *type, unsigned long flags, void *data)
{
	/* mount(2): a new file system, a bind mount (MS_BIND) or a moved
	 * mount (MS_MOVE) brings names; a remount or a change of
	 * propagation does not. */
	if (flags & (D4C_MS_REMOUNT | D4C_MS_PROPAGATION))
		return 0;
	return d4c_mount_on(path, D4C_HOOK_SB_MOUNT);
}

SEC("lsm/move_mount")
int BPF_PROG(d4c_move_mount, const struct path *from_path,
	     const struct path *to_path)
{
	/* move_mount(2) (Linux 5.2): attaches a mount made by fsmount or
	 * open_tree, or moves one. */
	return d4c_mount_on(to_path, D4C_HOOK_MOVE_MOUNT);
}

/* The process name an exec gives, as begin_new_exec sets comm, cut to 15
 * bytes: the basename of the file name exec was given (not of the
 * resolved path: /bin/sh -> busybox runs as "sh"); but for an execveat of
 * a file descriptor (bprm->fdpath set: "/dev/fd/N"), the file's dentry
 * name, as kernels with commit 543841d18060 ("exec: fix up /proc/pid/comm
 * in the execveat(AT_EMPTY_PATH) case", 6.14, backported to stable) set
 * it. Older kernels set the fd number there; d4c decides and reports the
 * dentry name on every kernel (for a memfd, its name). */
struct d4c_basename {
	__u32 len;  /* bytes of the file name */
	__u32 last; /* the byte after its last '/' */
};

static long d4c_basename_byte(__u64 index, void *ctx)
{
	struct d4c_basename *b = ctx;
	struct d4c_scratch *s = d4c_scratch_get();

	if (!s || index >= b->len)
		return 1;
	if (s->event.path[index & (D4C_PATH_MAX - 1)] == '/')
		b->last = (__u32)index + 1;
	return 0;
}

static __always_inline void d4c_exec_name(struct d4c_scratch *s,
					  struct linux_binprm *bprm,
					  struct dentry *dentry,
					  struct d4c_event_head *head)
{
	struct d4c_basename b = {};
	long n;

	/* The name goes through s->event.path, before the path does. */
	if (BPF_CORE_READ(bprm, fdpath))
		n = bpf_probe_read_kernel_str(
		    s->event.path, D4C_LONG_COMPONENT_BYTES + 1,
		    BPF_CORE_READ(dentry, d_name.name));
	else
		n = bpf_probe_read_kernel_str(s->event.path, D4C_PATH_MAX,
					      BPF_CORE_READ(bprm, filename));
	if (n <= 1)
		return;
	b.len = (__u32)n - 1;
	bpf_loop(b.len, d4c_basename_byte, &b, 0);
	head->name_len = b.len - b.last;
	if (head->name_len > D4C_NAME_BYTES - 1)
		head->name_len = D4C_NAME_BYTES - 1;
	bpf_probe_read_kernel(head->name, D4C_NAME_BYTES - 1,
			      &s->event.path[b.last & (D4C_PATH_MAX - 1)]);
	for (__u32 i = 0; i < D4C_NAME_BYTES; i++)
		if (i >= head->name_len)
			head->name[i] = 0;
}

SEC("lsm/bprm_check_security")
int BPF_PROG(d4c_bprm_check, struct linux_binprm *bprm)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct d4c_scratch *s = d4c_scratch_get();
	struct file *file = BPF_CORE_READ(bprm, file);
	struct dentry *dentry = BPF_CORE_READ(file, f_path.dentry);
	struct d4c_place place = {};
	struct d4c_op op;
	__u32 actions = 0, nlink;
	__u8 name[D4C_NAME_BYTES];
	__u32 name_len;

	if (!s || !d4c_begin(&op, D4C_HOOK_BPRM_CHECK_SECURITY))
		return 0;
	d4c_exec_name(s, bprm, dentry, &op.head);
	__builtin_memcpy(name, op.head.name, D4C_NAME_BYTES);
	name_len = op.head.name_len;
	if (d4c_resolve(s, task, BPF_CORE_READ(file, f_path.mnt), dentry,
			&place))
		return 0;
	nlink = BPF_CORE_READ(dentry, d_inode, __i_nlink);
	if (place.outside && nlink == 0) {
		/* Fileless: an execMemFd file event, no path; then the exec
		 * of an executable named by its dentry ("memfd:NAME"), not
		 * absolute, so no path selector matches it. */
		op.head.kind = D4C_KIND_FILE;
		op.head.op = D4C_OP_EXEC_MEMFD;
		op.head.volume = D4C_VOLUME_ROOTFS;
		op.event_flags = D4C_EV_FILELESS | D4C_EV_FIRST | D4C_EV_ARGS;
		op.mode = BPF_CORE_READ(dentry, d_inode, i_mode);
		actions = d4c_decide_and_report(&op, 0);
		d4c_next(&op);
		__builtin_memcpy(op.head.name, name, D4C_NAME_BYTES);
		op.head.name_len = name_len;
		place.len = bpf_probe_read_kernel_str(
		    s->event.path, D4C_LONG_COMPONENT_BYTES + 1,
		    BPF_CORE_READ(dentry, d_name.name));
		place.len = place.len > 0 ? place.len - 1 : 0;
		place.outside = 0;
		op.event_flags = D4C_EV_FILELESS | D4C_EV_SECOND;
	}
	op.head.kind = D4C_KIND_PROCESS;
	op.head.op = D4C_OP_EXEC;
	op.head.flags = D4C_EVENT_HAS_PATH;
	op.head.path_len = place.len;
	op.head.interactive = d4c_interactive(task);
	op.event_flags |= D4C_EV_HAS_PATH | D4C_EV_ARGS |
			  (op.head.interactive ? D4C_EV_INTERACTIVE : 0);
	op.mode = BPF_CORE_READ(dentry, d_inode, i_mode);
	actions |= d4c_decide_and_report(&op, d4c_unresolved(&place));
	return d4c_verdict(actions);
}

SEC("lsm/task_alloc")
int BPF_PROG(d4c_task_alloc, struct task_struct *child,
	     unsigned long clone_flags)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct d4c_scratch *s = d4c_scratch_get();
	struct file *exe;
	struct d4c_place place = {};
	struct d4c_op op;

	if (clone_flags & D4C_CLONE_THREAD)
		return 0;
	if (!s || !d4c_begin(&op, D4C_HOOK_TASK_ALLOC))
		return 0;
	exe = BPF_CORE_READ(task, mm, exe_file);
	if (!exe)
		return 0; /* a kernel thread */
	if (d4c_resolve(s, task, BPF_CORE_READ(exe, f_path.mnt),
			BPF_CORE_READ(exe, f_path.dentry), &place))
		return 0;
	op.head.kind = D4C_KIND_PROCESS;
	op.head.op = D4C_OP_FORK;
	op.head.flags = D4C_EVENT_HAS_PATH;
	op.head.path_len = place.len;
	op.head.interactive = d4c_interactive(task);
	bpf_get_current_comm(op.head.name, sizeof(op.head.name));
	op.head.name_len = d4c_name_len(op.head.name);
	op.event_flags =
	    D4C_EV_HAS_PATH | (op.head.interactive ? D4C_EV_INTERACTIVE : 0);
	return d4c_verdict(d4c_decide_and_report(&op, d4c_unresolved(&place)));
}

/* ---- Lifecycle: reported for container tasks, never decided ---- */

/* A lifecycle record `what` (D4C_LIFE_*) of `task` by the program `hook`,
 * or NULL when `task` is in no container or sets one up (d4c_setup: the
 * runtime's, not the container's). */
static __always_inline struct d4c_event *d4c_lifecycle(struct task_struct *task,
						       __u32 what, __u32 hook)
{
	struct d4c_where where = {};
	struct d4c_event *r;

	if (!d4c_container_of(task, &where) ||
	    d4c_setup_state(task) != D4C_SETUP_NONE)
		return NULL;
	r = d4c_record_start(D4C_RECORD_LIFECYCLE, hook);
	if (!r)
		return NULL;
	r->op = what;
	r->row = where.row;
	r->cgroup_id = where.cgroup_id;
	if (where.pending)
		r->flags |= D4C_EV_PENDING;
	if (d4c_interactive(task))
		r->flags |= D4C_EV_INTERACTIVE;
	return r;
}

/* Reports a lifecycle record with no path; `value` in child_tgid. */
static __always_inline void d4c_lifecycle_report(struct task_struct *task,
						 __u32 what, __u32 value,
						 __u32 hook)
{
	struct d4c_event *r = d4c_lifecycle(task, what, hook);

	if (r) {
		r->child_tgid = value;
		d4c_record_output(r, 0);
	}
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(d4c_fork, struct task_struct *parent, struct task_struct *child)
{
	struct d4c_where where = {};
	__u64 origin;

	/* A task (thread or process) forked outside every container, or by a
	 * task setting one up, sets a container up until it execs a program
	 * in the container's root, if it ever enters one (d4c_setup). A host
	 * task's mark is never read. */
	origin = d4c_setup_origin(parent, d4c_container_of(parent, &where));
	if (origin)
		d4c_setup_mark(child, origin);
	/* A new thread is not a new process. */
	if (BPF_CORE_READ(child, pid) == BPF_CORE_READ(child, tgid))
		d4c_lifecycle_report(parent, D4C_LIFE_FORK,
				     BPF_CORE_READ(child, tgid),
				     D4C_HOOK_SCHED_PROCESS_FORK);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(d4c_exec, struct task_struct *task, pid_t old_pid,
	     struct linux_binprm *bprm)
{
	struct d4c_scratch *s = d4c_scratch_get();
	struct file *file = BPF_CORE_READ(bprm, file);
	struct dentry *dentry = BPF_CORE_READ(file, f_path.dentry);
	struct d4c_place place = {};
	struct d4c_event *r;
	unsigned long start, end;
	__u32 len = 0;
	__u64 args;
	long n;

	/* The task runs a program of its own now: what it does is decided
	 * (a container runtime's set-up ends with its exec of the
	 * container's program). */
	if (d4c_setup_state(task) == D4C_SETUP_ENTERED)
		d4c_setup_end(task);
	r = d4c_lifecycle(task, D4C_LIFE_EXEC, D4C_HOOK_SCHED_PROCESS_EXEC);
	if (!r || !s)
		return 0;
	/* The comm exec gave. */
	BPF_CORE_READ_INTO(&r->name, task, comm);
	r->name_len = d4c_name_len(r->name);
	/* The new program's executable (bprm->file, which becomes the mm's
	 * exe_file; for a script, its interpreter), as the task sees it: the
	 * path the exec's decision had, and /proc/PID/exe's. */
	if (!d4c_resolve(s, task, BPF_CORE_READ(file, f_path.mnt), dentry,
			 &place) &&
	    !place.truncated && !place.outside) {
		len = place.len > D4C_PATH_MAX ? D4C_PATH_MAX : place.len;
		d4c_copy_path(r, s, len);
	} else {
		/* Not reachable from the task's root (runc re-executing a
		 * sealed copy of itself, a memfd): the name exec was given,
		 * or a memfd's own ("memfd:NAME", as its decision says);
		 * D4C_EV_OUTSIDE when the walk ended at another root. */
		r->flags |=
		    D4C_EV_TRUNCATED | (place.outside ? D4C_EV_OUTSIDE : 0);
		if (BPF_CORE_READ(dentry, d_inode, __i_nlink) == 0)
			n = bpf_probe_read_kernel_str(
			    r->path, D4C_LONG_COMPONENT_BYTES + 1,
			    BPF_CORE_READ(dentry, d_name.name));
		else
			n = bpf_probe_read_kernel_str(
			    r->path, D4C_PATH_MAX,
			    BPF_CORE_READ(bprm, filename));
		len = n > 1 ? (__u32)n - 1 : 0;
	}
	if (len > 0)
		r->flags |= D4C_EV_HAS_PATH;
	r->path_len = len;
	r->mode = BPF_CORE_READ(dentry, d_inode, i_mode);
	/* The arguments, read here, in the new program, so that a process
	 * gone before userspace reads its record still has them. */
	start = BPF_CORE_READ(task, mm, arg_start);
	end = BPF_CORE_READ(task, mm, arg_end);
	args = end > start ? end - start : 0;
	if (args > D4C_ARGS_MAX - 1)
		args = D4C_ARGS_MAX - 1;
	if (len > D4C_PATH_MAX)
		len = D4C_PATH_MAX;
	if (args &&
	    bpf_probe_read_user(&r->path[len], args & (D4C_ARGS_MAX - 1),
				(const void *)start))
		args = 0;
	r->flags |= D4C_EV_ARGS;
	r->args_len = (__u32)args;
	d4c_record_output(r, len + (__u32)args);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(d4c_exit, struct task_struct *task)
{
	/* The process ends when its last thread does; the leader is the
	 * last to be reaped, but group_dead is not in every kernel's
	 * tracepoint (6.1 lacks it): report the leader's exit. */
	if (BPF_CORE_READ(task, pid) == BPF_CORE_READ(task, tgid))
		d4c_lifecycle_report(task, D4C_LIFE_EXIT,
				     BPF_CORE_READ(task, exit_code),
				     D4C_HOOK_SCHED_PROCESS_EXIT);
	/* Every thread's exit: its set-up mark, if any, goes with it. */
	d4c_setup_end(task);
	return 0;
}

/* The end of an exec syscall of a thread whose exec was reported as
 * allowed: a failure (ret < 0) is reported, as no sched_process_exec
 * record will come. */
static __always_inline void d4c_exec_returned(long ret, __u32 hook)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();

	if (!bpf_map_lookup_elem(&d4c_execs, &tid))
		return;
	bpf_map_delete_elem(&d4c_execs, &tid);
	if (ret < 0)
		d4c_lifecycle_report(
		    (struct task_struct *)bpf_get_current_task(),
		    D4C_LIFE_EXEC_FAILED, (__u32)-ret, hook);
}

SEC("tracepoint/syscalls/sys_exit_execve")
int d4c_execve_exit(struct trace_event_raw_sys_exit *ctx)
{
	d4c_exec_returned(ctx->ret, D4C_HOOK_SYS_EXIT_EXECVE);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_execveat")
int d4c_execveat_exit(struct trace_event_raw_sys_exit *ctx)
{
	d4c_exec_returned(ctx->ret, D4C_HOOK_SYS_EXIT_EXECVEAT);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_setsid")
int d4c_setsid(struct trace_event_raw_sys_exit *ctx)
{
	if (ctx->ret >= 0)
		d4c_lifecycle_report(
		    (struct task_struct *)bpf_get_current_task(),
		    D4C_LIFE_SETSID, 0, D4C_HOOK_SYS_EXIT_SETSID);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";

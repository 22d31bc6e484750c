/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kernel ABI of d4c: every record shared by the BPF programs and
 * userspace, with fixed-width fields and explicit padding (no bool, no
 * implicit holes). Mirrored by kernel-probes/src/abi.rs, which asserts the
 * sizes and offsets at compile time; a test compares this header's
 * constants and the compiled object's BTF with the Rust side.
 *
 * The table records mirror d4c_artifact::tables (the spec).
 */
#ifndef D4C_ABI_H
#define D4C_ABI_H

/* With vmlinux.h (the probes), the kernel's own types are already there. */
#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Table dimensions and limits (d4c_artifact::tables). */
#define D4C_FILE_OPS 6
#define D4C_VOLUMES 3
#define D4C_PROCESS_OPS 2
#define D4C_SHORT_COMPONENT_BYTES 28
#define D4C_LONG_COMPONENT_BYTES 255
#define D4C_MAX_PREFIX_LENS 8
#define D4C_STATE_HAS_EDGES 1
#define D4C_STATE_SETTLED 2

/* Longest path the kernel walks whole (PATH_MAX); a power of two, so that
 * `& (D4C_PATH_MAX - 1)` bounds an index for the verifier. */
#define D4C_PATH_MAX 4096
/* A process name: the kernel's comm (TASK_COMM_LEN). */
#define D4C_NAME_BYTES 16
/* Bytes of an exec's arguments a record carries, less one (a power of two,
 * so that `& (D4C_ARGS_MAX - 1)` bounds a length for the verifier). */
#define D4C_ARGS_MAX 4096
/* Arguments read from an exec caller's argv, at most. */
#define D4C_ARGS_COUNT 64

/* Event kinds (d4c_artifact::ops::Kind). */
#define D4C_KIND_FILE 0
#define D4C_KIND_PROCESS 1

/* Operation table indices (d4c_artifact::ops::Operation::table_index). */
#define D4C_OP_CREATE_EXECUTABLE 0
#define D4C_OP_MODIFY_EXECUTABLE 1
#define D4C_OP_CREATE_FILE 2
#define D4C_OP_MODIFY_FILE 3
#define D4C_OP_DELETE_FILE 4
#define D4C_OP_EXEC_MEMFD 5
#define D4C_OP_FORK 0
#define D4C_OP_EXEC 1

/* Volume table indices (d4c_artifact::event::Volume::table_index). */
#define D4C_VOLUME_ROOTFS 0
#define D4C_VOLUME_DIR 1
#define D4C_VOLUME_FILE 2

/* Action bits (d4c_artifact::ops::Actions). */
#define D4C_ACTION_LOG 1
#define D4C_ACTION_ALERT 2
#define D4C_ACTION_BLOCK 4

/* d4c_event_head.flags */
#define D4C_EVENT_HAS_PATH 1
/* The file is a directory (renamed, moved, mounted): the event stands for
 * everything at or below its path, and is decided by the subtree class. */
#define D4C_EVENT_DIRECTORY 2

/* d4c_result.flags */
/* The path was longer than D4C_PATH_MAX: only its first D4C_PATH_MAX bytes
 * were walked, so the class is not the path's. Fail closed: a hook refuses
 * the operation when the container's row holds any block action. */
#define D4C_RESULT_TRUNCATED 1
/* No row entry for (row, kind, class): the container's metadata has not
 * been delivered. */
#define D4C_RESULT_NO_ROW 2
/* A lookup that cannot fail did (tables inconsistent with the roots). */
#define D4C_RESULT_ERROR 4
/* The process name was longer than D4C_NAME_BYTES. */
#define D4C_RESULT_NAME_TRUNCATED 8

/* Where each automaton starts, and the table dimensions (Roots). */
struct d4c_roots {
	__u32 file_path_root;
	__u32 exe_root;
	__u32 name_root;
	__u32 file_path_classes;
	__u32 exe_classes;
	__u32 name_classes;
	__u32 process_a_classes;
	__u32 file_dyn_classes;
	__u32 process_dyn_classes;
	__u32 reserved;
};

/* One automaton state (DfaState). */
struct d4c_dfa_state {
	__u32 accept_class;
	__u32 default_next;
	__u8 prefix_lens[D4C_MAX_PREFIX_LENS]; /* longest first, 0-terminated */
	__u32 flags; /* D4C_STATE_HAS_EDGES, D4C_STATE_SETTLED */
	/* A directory ending here: the selectors whose pattern holds for
	 * its path or a path below it (file paths only). */
	__u32 subtree_class;
};

/* A component of at most 28 bytes, NUL padded (ComponentKeyShort). */
struct d4c_component_key_short {
	__u32 len;
	__u8 bytes[D4C_SHORT_COMPONENT_BYTES];
};

/* A component of at most 255 bytes, NUL padded (ComponentKeyLong). */
struct d4c_component_key_long {
	__u32 len;
	__u8 bytes[D4C_LONG_COMPONENT_BYTES + 1];
};

/* An edge: from a state, along a component id (EdgeKey). */
struct d4c_edge_key {
	__u32 state;
	__u32 component;
};

/* A row entry's key: the container's row, the kind, the dynamic class. */
struct d4c_row_key {
	__u32 row;
	__u32 kind;
	__u32 dyn_class;
};

/* A user row's key (d4c_user_rows; the value is a row): a container's
 * row and the acting task's effective uid as its user namespace sees it.
 * Userspace writes one for each uid a user condition can name in the
 * container (by id, or by a name its /etc/passwd gives the id) whose row
 * differs from the container's; every other uid keeps the container's. */
struct d4c_user_row_key {
	__u32 row;
	__u32 uid;
};

/* What the decision needs of an event, beside the path bytes. */
struct d4c_event_head {
	__u32 kind;	   /* D4C_KIND_* */
	__u32 op;	   /* the operation's table index */
	__u32 volume;	   /* file: the volume's table index */
	__u32 interactive; /* process: 1 when the session has a terminal */
	__u32 row;	   /* the container's row */
	__u32 flags;	   /* D4C_EVENT_* */
	__u32 path_len;	   /* bytes of the path (file path or executable) */
	__u32 name_len;	   /* bytes of the process name */
	__u8 name[D4C_NAME_BYTES];
};

/* The test harness's packet: a head, then the path bytes (at most
 * D4C_PATH_MAX; the packet may be shorter than this record). */
struct d4c_test_event {
	struct d4c_event_head head;
	__u8 path[D4C_PATH_MAX];
};

/* A decision. The harness writes it over the packet's last bytes (room the
 * caller appends after the path), never over the event it reads. */
struct d4c_result {
	__u32 kind;
	__u32 dyn_class;
	__u32 actions;	  /* d4c_artifact::ops::Actions bits */
	__u32 flags;	  /* D4C_RESULT_* */
	__u32 path_class; /* file path class, or executable class */
	__u32 name_class; /* process: the name class */
	__u32 steps;	  /* automaton steps taken over the path */
	__u32 reserved;
};

/* ---- The probes: containers, configuration, events, counters ---- */

/* A row no container has: the row of containers whose metadata userspace
 * has not delivered yet. Userspace fills it with the configured treatment
 * (by default the union of every row's actions: fail closed). */
#define D4C_ROW_PENDING 4294967294
/* A dynamic class no event has: the key of a row's summary entry, the
 * union of the row's actions over every class. A hook that cannot decide
 * (a path too long to resolve) refuses when the summary holds block. */
#define D4C_DYN_ANY 4294967295

/* d4c_event.euid of a uid that the task's user namespace maps with more
 * extents than the probes read (D4C_UID_EXTENTS): (uid_t)-1, no user. */
#define D4C_NO_UID 4294967295
/* uid_map extents read: the kernel keeps up to 5 in the map itself. */
#define D4C_UID_EXTENTS 5

/* d4c_cgroup.flags */
/* The cgroup is a container's: its row is `row`. Descendant cgroups (a
 * container that made cgroups of its own) belong to it too. */
#define D4C_CGROUP_CONTAINER 1
/* The cgroup is a kubepods root: a descendant not registered as a
 * container is a container whose metadata is pending. */
#define D4C_CGROUP_KUBEPODS 2
/* Cgroup levels looked at above the task's own, at most. */
#define D4C_CGROUP_DEPTH 16

/* d4c_config.cgroup_mode */
#define D4C_CGROUP_UNIFIED 0 /* the task's cgroup v2 (unified) cgroup */
#define D4C_CGROUP_LEGACY 1  /* the task's cgroup v1 memory cgroup */

/* d4c_event.record */
#define D4C_RECORD_DECISION 1 /* a decided operation */
/* A container process forked, exec'd, exited, or began a session. */
#define D4C_RECORD_LIFECYCLE 2

/* d4c_event.hook: the program that wrote the record, one per program of
 * probes.bpf.c (0 is none: every record has one). The runtime reports it
 * as cloud_defend.hook_point, in the original's names (lsm__path_mknod,
 * tracepoint__sched_process_fork, ...). The exit is ours, a tp_btf
 * tracepoint (tracepoint__sched_process_exit); the original's was a kprobe
 * on taskstats_exit (kprobe__taskstats_exit). Values are never reused;
 * they need not be contiguous. */
#define D4C_HOOK_PATH_MKNOD 1
#define D4C_HOOK_FILE_OPEN 2
#define D4C_HOOK_PATH_TRUNCATE 3
#define D4C_HOOK_PATH_CHMOD 4
#define D4C_HOOK_PATH_LINK 5
#define D4C_HOOK_PATH_UNLINK 6
#define D4C_HOOK_PATH_RENAME 7
#define D4C_HOOK_BPRM_CHECK_SECURITY 8
#define D4C_HOOK_TASK_ALLOC 9
#define D4C_HOOK_SCHED_PROCESS_FORK 10
#define D4C_HOOK_SCHED_PROCESS_EXEC 11
#define D4C_HOOK_SCHED_PROCESS_EXIT 12
#define D4C_HOOK_SYS_EXIT_SETSID 13
#define D4C_HOOK_PATH_SYMLINK 14
#define D4C_HOOK_SB_MOUNT 15
#define D4C_HOOK_MOVE_MOUNT 16
#define D4C_HOOK_INODE_SET_ACL 17
#define D4C_HOOK_INODE_SETXATTR 18
#define D4C_HOOK_SYS_EXIT_EXECVE 19
#define D4C_HOOK_SYS_EXIT_EXECVEAT 20

/* d4c_event.op for lifecycle records */
#define D4C_LIFE_FORK 0
#define D4C_LIFE_EXEC 1
#define D4C_LIFE_EXIT 2
#define D4C_LIFE_SETSID 3
/* An exec that a decision record reported as allowed did not happen (it
 * failed after bprm_check_security, e.g. ENOEXEC): child_tgid holds the
 * errno. Written at the exec syscall's return, by the thread that called
 * it, so the runtime learns that no sched_process_exec record will come. */
#define D4C_LIFE_EXEC_FAILED 4

/* d4c_event.flags */
#define D4C_EV_HAS_PATH 1
#define D4C_EV_INTERACTIVE 2
#define D4C_EV_PENDING 4 /* the container's metadata was pending */
#define D4C_EV_DENIED 8	 /* the hook refused the operation */
/* The path could not be resolved whole. On an exec lifecycle record: the
 * executable's path is not the one resolved from its file (not reachable
 * from the task's root, or too long), and the path is the name exec was
 * given (a memfd's: its own, "memfd:NAME"). */
#define D4C_EV_TRUNCATED 16
#define D4C_EV_FIRST 32	    /* the first of a syscall's several events */
#define D4C_EV_SECOND 64    /* one of the later ones */
#define D4C_EV_FILELESS 128 /* exec of a file with no name (memfd) */
/* The record ends with an exec's arguments: args_len bytes after the path,
 * NUL-separated, cut at D4C_ARGS_MAX - 1 bytes. An exec lifecycle record's
 * are the new program's, as the kernel laid them out on its stack; an exec
 * decision's are those the caller passed to execve (its argv, read at
 * bprm_check_security, before the new program exists). */
#define D4C_EV_ARGS 256
/* The path's walk ended at a root other than the task's: the file is not
 * reachable from the container's root (with D4C_EV_TRUNCATED: the
 * decision failed closed). */
#define D4C_EV_OUTSIDE 512
/* The event is on a directory, decided for everything at or below it. */
#define D4C_EV_DIRECTORY 1024

/* Counters (d4c_counters, per CPU), by index. */
#define D4C_COUNT_DECISIONS 0 /* operations decided in containers */
#define D4C_COUNT_DENIED 1    /* operations refused */
#define D4C_COUNT_EVENTS 2    /* records written to the ring buffer */
#define D4C_COUNT_DROPPED 3   /* records lost: the ring buffer was full */
#define D4C_COUNT_TRUNCATED 4 /* paths not resolved whole */
#define D4C_COUNT_PENDING 5   /* decisions for pending containers */
#define D4C_COUNT_ERRORS 6    /* decisions with D4C_RESULT_ERROR or NO_ROW */
/* file_open calls for files the kernel opened on a task's behalf under a
 * stacked file system (overlayfs' real files), not decided: the task's
 * own operation was */
#define D4C_COUNT_INTERNAL 7
/* operations of a container runtime setting a container up (a task forked
 * from outside every container that has not exec'd since: runc init), not
 * decided: they are not the container's */
#define D4C_COUNT_SETUP 8
#define D4C_COUNTERS 16

/* A registered cgroup (d4c_cgroups value; the key is the cgroup id). */
struct d4c_cgroup {
	__u32 row;
	__u32 flags; /* D4C_CGROUP_* */
};

/* The probes' settings (d4c_config, one entry). */
struct d4c_config {
	__u32 enforce;	   /* 1: blocking responses refuse; 0: report only */
	__u32 cgroup_mode; /* D4C_CGROUP_UNIFIED or D4C_CGROUP_LEGACY */
	/* 1: the policy has user conditions: a container's row is followed by
	 * d4c_user_rows for the acting task's uid */
	__u32 user_rows;
	__u32 reserved;
};

/* A ring buffer record: the fixed part, then the path's bytes (path_len of
 * them, at most D4C_PATH_MAX; a path not resolved whole says
 * D4C_PATH_MAX + 1 and carries what the walk wrote), then args_len bytes of
 * arguments (D4C_EV_ARGS). The record is cut after them: the path's bytes
 * are the record's length less the fixed part and the arguments. */
struct d4c_event {
	__u32 record; /* D4C_RECORD_* */
	__u32 kind;   /* D4C_KIND_* (decisions) */
	__u32 op;     /* table index (decisions), D4C_LIFE_* (lifecycle) */
	__u32 volume;
	__u32 flags; /* D4C_EV_* */
	__u32 actions;
	__u32 dyn_class;
	__u32 result_flags; /* D4C_RESULT_* */
	__u32 row;
	__u32 pid;  /* the acting thread */
	__u32 tgid; /* its process */
	__u32 ppid; /* its parent process */
	__u32 uid;
	__u32 gid;
	__u32 sid; /* its session (the leader's pid), in the initial pid ns */
	__u32 child_tgid; /* fork: the new process; exit: the exit code */
	__u32 path_len;	  /* bytes of path; more than D4C_PATH_MAX: cut */
	__u32 name_len;
	__u32 hook; /* D4C_HOOK_*: the program that wrote the record */
	/* A file decision: the file's mode (type and permissions), the new
	 * one for a creation or a chmod; 0 when unknown. */
	__u32 mode;
	__u64 cgroup_id;
	__u64 ktime_ns;		   /* bpf_ktime_get_boot_ns */
	__u8 comm[D4C_NAME_BYTES]; /* the acting task's comm */
	__u8 name[D4C_NAME_BYTES]; /* the event's process name */
	__u32 args_len;		   /* D4C_EV_ARGS: bytes of arguments */
	/* The acting task's effective uid as its user namespace sees it (what
	 * user conditions decide on); D4C_NO_UID when it cannot be mapped. */
	__u32 euid;
	/* The path, then (D4C_EV_ARGS) the arguments; the record is cut
	 * after them. Room for both at their longest. */
	__u8 path[D4C_PATH_MAX + D4C_ARGS_MAX];
};

#endif /* D4C_ABI_H */

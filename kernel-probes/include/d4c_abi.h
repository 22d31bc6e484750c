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

#include <linux/types.h>

/* Table dimensions and limits (d4c_artifact::tables). */
#define D4C_FILE_OPS 6
#define D4C_VOLUMES 3
#define D4C_PROCESS_OPS 2
#define D4C_SHORT_COMPONENT_BYTES 28
#define D4C_LONG_COMPONENT_BYTES 255
#define D4C_MAX_PREFIX_LENS 8
#define D4C_STATE_HAS_EDGES 1

/* Longest path the kernel walks whole (PATH_MAX); a power of two, so that
 * `& (D4C_PATH_MAX - 1)` bounds an index for the verifier. */
#define D4C_PATH_MAX 4096
/* A process name: the kernel's comm (TASK_COMM_LEN). */
#define D4C_NAME_BYTES 16

/* Event kinds (d4c_artifact::ops::Kind). */
#define D4C_KIND_FILE 0
#define D4C_KIND_PROCESS 1

/* d4c_event_head.flags */
#define D4C_EVENT_HAS_PATH 1

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
	__u32 flags;			       /* D4C_STATE_HAS_EDGES */
	__u32 reserved;
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

/* What the decision needs of an event, beside the path bytes. */
struct d4c_event_head {
	__u32 kind;	   /* D4C_KIND_* */
	__u32 op;	   /* the operation's table index */
	__u32 volume;	   /* file: the volume's table index */
	__u32 interactive; /* process: 1 when the session has a terminal */
	__u32 row;	   /* the container's row */
	__u32 flags;	   /* D4C_EVENT_HAS_PATH */
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

#endif /* D4C_ABI_H */

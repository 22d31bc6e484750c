/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The decision function, shared by every hook: d4c_decide computes exactly
 * what d4c_artifact::eval::Tables::dynamic_class computes, then reads the
 * container's row entry. The spec is artifact/src/eval.rs.
 *
 * Cost: one automaton step per path component (a component-map lookup, an
 * edge lookup, and at most D4C_MAX_PREFIX_LENS prefix lookups when the
 * exact edge misses), plus a fixed number of array lookups. The walk stops
 * at a settled state (D4C_STATE_SETTLED: every continuation ends in its
 * classes), so a path costs the components up to the point where no
 * pattern can tell its continuations apart; a dimension without patterns
 * costs one state lookup.
 *
 * The path walk runs under bpf_loop (Linux 5.17, commit e6f2dd0f8067): the
 * verifier checks the callback once, whatever the path's length, so a
 * 4096-byte path of 2048 components costs no more verifier work than a
 * short one.
 */
#ifndef D4C_DECIDE_BPF_H
#define D4C_DECIDE_BPF_H

#include "d4c_abi.h"
#ifndef __VMLINUX_H__
#include <linux/bpf.h>
#endif
#include <bpf/bpf_helpers.h>

#ifndef D4C_MAX_ENTRIES
/* Placeholder sizes: userspace sets every map's size before loading. */
#define D4C_MAX_ENTRIES 1
#endif

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct d4c_roots);
} d4c_roots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, D4C_MAX_ENTRIES);
	__type(key, __u32);
	__type(value, struct d4c_dfa_state);
} d4c_states SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, D4C_MAX_ENTRIES);
	__type(key, struct d4c_component_key_short);
	__type(value, __u32);
} d4c_comp_short SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, D4C_MAX_ENTRIES);
	__type(key, struct d4c_component_key_long);
	__type(value, __u32);
} d4c_comp_long SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, D4C_MAX_ENTRIES);
	__type(key, struct d4c_edge_key);
	__type(value, __u32);
} d4c_edges SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, D4C_MAX_ENTRIES);
	__type(key, struct d4c_edge_key);
	__type(value, __u32);
} d4c_pedges SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, D4C_MAX_ENTRIES);
	__type(key, __u32);
	__type(value, __u32);
} d4c_file_cls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, D4C_MAX_ENTRIES);
	__type(key, __u32);
	__type(value, __u32);
} d4c_proc_a SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, D4C_MAX_ENTRIES);
	__type(key, __u32);
	__type(value, __u32);
} d4c_proc_d SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, D4C_MAX_ENTRIES);
	__type(key, struct d4c_row_key);
	__type(value, __u32);
} d4c_rows SEC(".maps");

/* The path walk's state. It lives in the per-CPU scratch, not on the
 * stack: the verifier (6.7+) simulates bpf_loop callbacks until their
 * states converge, and a counter on the stack that indexes memory is
 * tracked exactly, so it never would. A map value's bytes are unknown. */
struct d4c_walk {
	__u32 state;
	__u32 len;  /* bytes of the path, at most D4C_PATH_MAX */
	__u32 clen; /* bytes of the component read so far */
	__u32 steps;
	__u32 error;
	__u32 pos;     /* the next byte of the path to read */
	__u32 settled; /* the walk stopped at a settled state */
	__u32 pad;
};

/* Per-CPU scratch: the keys are too large for the 512-byte stack. */
struct d4c_scratch {
	struct d4c_component_key_long comp;   /* the component, NUL padded */
	struct d4c_component_key_long prefix; /* a prefix of it, NUL padded */
	struct d4c_component_key_short short_key;
	struct d4c_walk walk;
	struct d4c_result result;
	struct d4c_test_event event; /* its path is the one walked */
	__u8 tail[8]; /* a word read at the path's last byte stays inside */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct d4c_scratch);
} d4c_scratch SEC(".maps");

static __always_inline struct d4c_scratch *d4c_scratch_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&d4c_scratch, &zero);
}

/* The id of the component `key` holds (its first `len` bytes, the rest
 * NUL), or NULL: Tables::component_id. */
static __always_inline __u32 *
d4c_component_id(struct d4c_scratch *s, struct d4c_component_key_long *key,
		 __u32 len)
{
	if (len <= D4C_SHORT_COMPONENT_BYTES) {
		s->short_key.len = len;
		__builtin_memcpy(s->short_key.bytes, key->bytes,
				 D4C_SHORT_COMPONENT_BYTES);
		return bpf_map_lookup_elem(&d4c_comp_short, &s->short_key);
	}
	if (len <= D4C_LONG_COMPONENT_BYTES) {
		key->len = len;
		return bpf_map_lookup_elem(&d4c_comp_long, key);
	}
	return NULL;
}

/* Shortening the prefix key to `plen` bytes, one 4-byte word per
 * bpf_loop iteration from word `first`: a callback keeps the verifier's
 * work flat (a nested bounded loop exceeded its jump history). */
struct d4c_truncate {
	__u32 plen;
	__u32 first;
};

static long d4c_truncate_word(__u64 index, void *ctx)
{
	struct d4c_truncate *t = ctx;
	struct d4c_scratch *s = d4c_scratch_get();
	__u32 w = t->first + (__u32)index, lo;
	__u32 *word;

	if (!s || w >= (D4C_LONG_COMPONENT_BYTES + 1) / 4)
		return 1;
	lo = w * 4;
	word = (__u32 *)&s->prefix.bytes[lo & 0xfc];
	if (lo >= t->plen)
		*word = 0;
	else if (lo + 4 > t->plen)
		*word &= (1u << ((t->plen - lo) * 8)) - 1;
	return 0;
}

/* The prefix edges' search, one prefix length per bpf_loop iteration:
 * Linux 6.1's verifier explores an inline loop's every trip, and eight
 * trips of lookups and truncations took the hooks past its limit. */
struct d4c_prefix_search {
	__u32 state;
	__u32 len; /* bytes of the component */
	__u32 top; /* words of s->prefix that may be non-zero */
	__u32 next;
	__u32 found;
};

static long d4c_prefix_try(__u64 k, void *ctx)
{
	struct d4c_prefix_search *c = ctx;
	struct d4c_scratch *s = d4c_scratch_get();
	struct d4c_dfa_state *st;
	struct d4c_truncate trunc = {};
	struct d4c_edge_key edge;
	__u32 *id, *next, plen;

	if (!s)
		return 1;
	st = bpf_map_lookup_elem(&d4c_states, &c->state);
	if (!st)
		return 1;
	plen = st->prefix_lens[k & (D4C_MAX_PREFIX_LENS - 1)];
	if (plen == 0)
		return 1;
	if (plen > c->len)
		return 0;
	/* `component.get(..plen)` is None off a UTF-8 boundary. */
	if (plen < c->len && (s->comp.bytes[plen & 0xff] & 0xc0) == 0x80)
		return 0;
	/* The lengths decrease: shortening the key in place leaves zeros
	 * past each. */
	trunc.plen = plen;
	trunc.first = plen / 4;
	if (c->top > trunc.first)
		bpf_loop(c->top - trunc.first, d4c_truncate_word, &trunc, 0);
	c->top = (plen + 3) / 4;
	id = d4c_component_id(s, &s->prefix, plen);
	if (!id)
		return 0;
	edge.state = c->state;
	edge.component = *id;
	next = bpf_map_lookup_elem(&d4c_pedges, &edge);
	if (!next)
		return 0;
	c->next = *next;
	c->found = 1;
	return 1;
}

/* One automaton step from `state` along the component in s->comp of
 * `len` bytes (len > 255: a longer component whose first 256 bytes are
 * in s->comp): Tables::step. Returns the next state; from a settled state
 * (D4C_STATE_SETTLED), the state itself, with *settled set: the walk may
 * stop, since every continuation ends in the state's classes. */
static __always_inline __u32 d4c_step(struct d4c_scratch *s, __u32 state,
				      __u32 len, __u32 *error, __u32 *settled)
{
	struct d4c_dfa_state *st = bpf_map_lookup_elem(&d4c_states, &state);
	struct d4c_prefix_search search = {};
	struct d4c_edge_key edge;
	__u32 *id, *next;

	if (!st) {
		*error = 1;
		return state;
	}
	if (st->flags & D4C_STATE_SETTLED) {
		*settled = 1;
		return state;
	}
	if (!(st->flags & D4C_STATE_HAS_EDGES))
		return st->default_next;

	edge.state = state;
	id = d4c_component_id(s, &s->comp, len);
	if (id) {
		edge.component = *id;
		next = bpf_map_lookup_elem(&d4c_edges, &edge);
		if (next)
			return *next;
	}

	/* No prefix edge this component can take: skip the copy below. */
	if (st->prefix_lens[0] == 0 ||
	    (st->prefix_lens[0] > len && st->prefix_lens[1] == 0))
		return st->default_next;

	/* Prefix edges, longest first, each tried on a copy of the
	 * component shortened in place. */
	__builtin_memcpy(s->prefix.bytes, s->comp.bytes,
			 D4C_LONG_COMPONENT_BYTES + 1);
	search.state = state;
	search.len = len;
	/* The component's bytes past `len` are zero already: the truncation
	 * only clears the words from a prefix's end up to `len`. */
	search.top = len > D4C_LONG_COMPONENT_BYTES
			 ? (D4C_LONG_COMPONENT_BYTES + 1) / 4
			 : (len + 3) / 4;
	bpf_loop(D4C_MAX_PREFIX_LENS, d4c_prefix_try, &search, 0);
	return search.found ? search.next : st->default_next;
}

/* The word-at-a-time scan: a word's bytes equal to '/' (the lowest set bit
 * of D4C_SLASH_HITS is the first '/': a false hit only follows a true one). */
#define D4C_ONES 0x0101010101010101ULL
#define D4C_SLASHES (0x2fULL * D4C_ONES)
#define D4C_HIGHS (0x80ULL * D4C_ONES)
/* The scan reads and writes words at any byte offset of the scratch (a map
 * value: unaligned access is allowed where the architecture has it cheap,
 * as x86-64 and arm64 do). __builtin_assume_aligned makes clang emit one
 * 8-byte access, not eight byte accesses. */

/* Reads the next word of the component at s->walk.pos into s->comp (its
 * first 256 bytes are kept: no component id is longer than 255, no prefix
 * length either). Returns 1 when the component ended (a '/' or the end of
 * the path), else 0. The position and length live in the scratch and are
 * read back at each word (volatile): the verifier sees the same unknown
 * state at every word, so its branches converge. */
static __always_inline int d4c_scan_word(struct d4c_scratch *s)
{
	struct d4c_walk *w = &s->walk;
	__u32 pos = *(volatile __u32 *)&w->pos;
	__u32 clen = *(volatile __u32 *)&w->clen;
	__u32 len = w->len, n, avail;
	__u64 word, x, low;

	if (pos >= len || pos >= D4C_PATH_MAX)
		return 1;
	/* The scratch has 8 bytes past the path: the read stays inside. */
	word = *(__u64 *)__builtin_assume_aligned(
	    &s->event.path[pos & (D4C_PATH_MAX - 1)], 8);
	x = word ^ D4C_SLASHES;
	low = (x - D4C_ONES) & ~x & D4C_HIGHS;
	low &= -low;
	/* Bytes before the first '/' (8 when none): the whole bytes of
	 * (low >> 7) - 1, summed by the multiplication into the top byte. */
	n = (__u32)(((((low >> 7) - 1) & D4C_ONES) * D4C_ONES) >> 56);
	avail = len - pos;
	if (n > avail)
		n = avail;
	if (n > 0 && clen <= D4C_LONG_COMPONENT_BYTES) {
		__u64 keep = n >= 8 ? ~0ULL : (1ULL << (n * 8)) - 1;

		/* Past comp.bytes[255] this spills into s->prefix, which
		 * d4c_step overwrites before reading. */
		*(__u64 *)__builtin_assume_aligned(&s->comp.bytes[clen & 0xff],
						   8) = word & keep;
	}
	clen += n;
	pos += n;
	w->clen = clen;
	if (n == 8) {
		w->pos = pos;
		return 0;
	}
	if (pos < len) {
		/* path[pos] is '/': skip it; before the component, go on. */
		w->pos = pos + 1;
		return clen != 0;
	}
	w->pos = pos;
	return 1;
}

/* One bpf_loop iteration per word of the path: the word is read into the
 * component, and when the component ends (a '/' or the end of the path)
 * the automaton takes one step. Empty components ('//') are skipped inside
 * the scan. The callback has no loop of its own: Linux 6.1's verifier
 * explores a loop inside a callback once per trip with exact counters,
 * which took a 32-word scan past its million-instruction limit; one word
 * per callback is checked once on every kernel. The step reads the
 * component's length from the walk state, so it is verified once, not
 * once per length. */
static long d4c_walk_one(__u64 index, void *ctx)
{
	struct d4c_scratch *s = d4c_scratch_get();
	struct d4c_walk *w;
	__u32 clen;
	int ended = 0;

	if (!s)
		return 1;
	w = &s->walk;
	ended = d4c_scan_word(s);
	if (!ended)
		return 0;
	clen = *(volatile __u32 *)&w->clen;
	if (clen == 0)
		return 1; /* the end, after a '/' */
	w->state = d4c_step(s, w->state, clen, &w->error, &w->settled);
	if (w->settled)
		return 1;
	w->steps++;
	w->clen = 0;
	/* Clear the component's bytes: the words the scan wrote. */
	if (clen > D4C_LONG_COMPONENT_BYTES)
		clen = D4C_LONG_COMPONENT_BYTES + 1;
	for (__u32 i = 0; i < (D4C_LONG_COMPONENT_BYTES + 1) / 8; i++) {
		if (i * 8 >= clen)
			break;
		*(__u64 *)&s->comp.bytes[(i * 8) & 0xff] = 0;
	}
	return (w->error || w->pos >= w->len) ? 1 : 0;
}

/* The accept class of `path` (in s->event.path, `len` bytes) from `root`:
 * Tables::path_class; for a directory (`directory`), the subtree class:
 * Tables::subtree_class. */
static __always_inline __u32 d4c_path_class(struct d4c_scratch *s, __u32 root,
					    __u32 len, __u32 directory,
					    struct d4c_result *out)
{
	struct d4c_dfa_state *st;
	long iterations;
	__u32 state;

	if (len == 0 || s->event.path[0] != '/')
		return 0;
	/* A settled root (a dimension without patterns): no walk at all. */
	st = bpf_map_lookup_elem(&d4c_states, &root);
	if (st && (st->flags & D4C_STATE_SETTLED))
		return directory ? st->subtree_class : st->accept_class;
	__builtin_memset(s->comp.bytes, 0, D4C_LONG_COMPONENT_BYTES + 1);
	__builtin_memset(&s->walk, 0, sizeof(s->walk));
	s->walk.state = root;
	s->walk.len = len;
	s->walk.pos = 1; /* past the leading '/' */
	/* Each iteration but the last reads at least one byte. */
	iterations = bpf_loop(len + 1, d4c_walk_one, NULL, 0);
	out->steps = s->walk.steps;
	state = s->walk.state;
	/* Stopped early only at a settled state; else every byte was read. */
	if (s->walk.error || iterations < 0 ||
	    (!s->walk.settled && (s->walk.clen != 0 || s->walk.pos < len))) {
		out->flags |= D4C_RESULT_ERROR;
		return 0;
	}
	st = bpf_map_lookup_elem(&d4c_states, &state);
	if (!st) {
		out->flags |= D4C_RESULT_ERROR;
		return 0;
	}
	return directory ? st->subtree_class : st->accept_class;
}

/* The class of a process name, walked as one component: Tables::name_class. */
static __always_inline __u32 d4c_name_class(struct d4c_scratch *s, __u32 root,
					    const struct d4c_event_head *head,
					    struct d4c_result *out)
{
	__u32 error = 0, settled = 0, state;
	struct d4c_dfa_state *st;

	__u32 len =
	    head->name_len > D4C_NAME_BYTES ? D4C_NAME_BYTES : head->name_len;
	__u64 *words = (__u64 *)s->comp.bytes;

	/* The name's bytes, the rest zero, without a loop: a branch per
	 * byte multiplied the verifier's states on Linux 6.1. */
	__builtin_memset(s->comp.bytes, 0, D4C_LONG_COMPONENT_BYTES + 1);
	__builtin_memcpy(s->comp.bytes, head->name, D4C_NAME_BYTES);
	words[0] &= len >= 8 ? ~0ULL : (1ULL << (len * 8)) - 1;
	words[1] &= len >= 16  ? ~0ULL
		    : len <= 8 ? 0
			       : (1ULL << ((len - 8) * 8)) - 1;
	/* A name is one component: a settled root is its own class. */
	state = d4c_step(s, root, len, &error, &settled);
	st = bpf_map_lookup_elem(&d4c_states, &state);
	if (error || !st) {
		out->flags |= D4C_RESULT_ERROR;
		return 0;
	}
	return st->accept_class;
}

static __always_inline __u32 d4c_array_u32(void *map, __u64 at, __u64 count)
{
	__u32 key = (__u32)at;
	__u32 *value;

	if (at >= count)
		return 0;
	value = bpf_map_lookup_elem(map, &key);
	return value ? *value : 0;
}

/* The roots, or NULL (flagged). */
static __always_inline struct d4c_roots *d4c_roots_get(struct d4c_result *out)
{
	__u32 zero = 0;
	struct d4c_roots *roots = bpf_map_lookup_elem(&d4c_roots, &zero);

	if (!roots)
		out->flags |= D4C_RESULT_ERROR;
	return roots;
}

/* The path length to walk: at most D4C_PATH_MAX, longer flagged. */
static __always_inline __u32 d4c_walk_len(const struct d4c_event_head *head,
					  struct d4c_result *out)
{
	if (head->path_len > D4C_PATH_MAX) {
		out->flags |= D4C_RESULT_TRUNCATED;
		return D4C_PATH_MAX;
	}
	return head->path_len;
}

/* Reads the container's row entry for the dynamic class in `out`. */
static __always_inline void d4c_row_entry(const struct d4c_event_head *head,
					  struct d4c_result *out)
{
	struct d4c_row_key row;
	__u32 *actions;

	row.row = head->row;
	row.kind = head->kind;
	row.dyn_class = out->dyn_class;
	actions = bpf_map_lookup_elem(&d4c_rows, &row);
	if (actions)
		out->actions = *actions;
	else
		out->flags |= D4C_RESULT_NO_ROW;
}

/*
 * Decides a file event: Tables::dynamic_class for Event::File, then the
 * container's row entry. The path is in s->event.path, head->path_len
 * bytes of it (more than D4C_PATH_MAX: walked up to D4C_PATH_MAX and
 * flagged D4C_RESULT_TRUNCATED). The hooks of one kind call their kind's
 * function, so the verifier never walks the other kind's code.
 */
static __always_inline void d4c_decide_file(struct d4c_scratch *s,
					    const struct d4c_event_head *head,
					    struct d4c_result *out)
{
	struct d4c_roots *roots = d4c_roots_get(out);
	__u32 len = d4c_walk_len(head, out), path_class = 0;

	out->kind = D4C_KIND_FILE;
	if (!roots)
		return;
	if (head->flags & D4C_EVENT_HAS_PATH)
		path_class =
		    d4c_path_class(s, roots->file_path_root, len,
				   head->flags & D4C_EVENT_DIRECTORY, out);
	out->path_class = path_class;
	out->dyn_class = d4c_array_u32(
	    &d4c_file_cls,
	    (__u64)path_class * D4C_FILE_OPS * D4C_VOLUMES +
		(__u64)head->op * D4C_VOLUMES + head->volume,
	    (__u64)roots->file_path_classes * D4C_FILE_OPS * D4C_VOLUMES);
	d4c_row_entry(head, out);
}

/* Decides a process event (executable in s->event.path, name in the
 * head), as d4c_decide_file does a file event. */
static __always_inline void
d4c_decide_process(struct d4c_scratch *s, const struct d4c_event_head *head,
		   struct d4c_result *out)
{
	struct d4c_roots *roots = d4c_roots_get(out);
	__u32 len = d4c_walk_len(head, out), a;

	out->kind = D4C_KIND_PROCESS;
	if (!roots)
		return;
	if (head->name_len > D4C_NAME_BYTES)
		out->flags |= D4C_RESULT_NAME_TRUNCATED;
	out->path_class = d4c_path_class(s, roots->exe_root, len, 0, out);
	out->name_class = d4c_name_class(s, roots->name_root, head, out);
	a = d4c_array_u32(&d4c_proc_a,
			  (__u64)out->path_class * D4C_PROCESS_OPS * 2 +
			      (__u64)head->op * 2 + (head->interactive ? 1 : 0),
			  (__u64)roots->exe_classes * D4C_PROCESS_OPS * 2);
	out->dyn_class = d4c_array_u32(
	    &d4c_proc_d, (__u64)a * roots->name_classes + out->name_class,
	    (__u64)roots->process_a_classes * roots->name_classes);
	d4c_row_entry(head, out);
}

/* Decides one event of either kind (the XDP harness's entry). */
static __always_inline void d4c_decide(struct d4c_scratch *s,
				       const struct d4c_event_head *head,
				       struct d4c_result *out)
{
	if (head->kind == D4C_KIND_FILE)
		d4c_decide_file(s, head, out);
	else
		d4c_decide_process(s, head, out);
}

#endif /* D4C_DECIDE_BPF_H */

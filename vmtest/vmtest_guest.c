/* SPDX-License-Identifier: Apache-2.0 */
/*
 * In-guest test: load unlink_guard.bpf.o, attach its lsm/path_unlink
 * program, set the blocked name, then unlink a blocked and an allowed file.
 * Prints one result line, starting "D4C-VMTEST:", on stdout (the console).
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#define NAME_MAX_LEN 64

static int touch(const char *p)
{
	int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0644);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int fail(const char *what, int err)
{
	printf("D4C-VMTEST: FAIL %s: %s (%d)\n", what, strerror(err), err);
	fflush(stdout);
	return 1;
}

int main(int argc, char **argv)
{
	const char *obj_path = argc > 1 ? argv[1] : "/unlink_guard.bpf.o";
	const char *blocked = "/tmp/d4c-blocked";
	const char *allowed = "/tmp/d4c-allowed";
	char name[NAME_MAX_LEN] = "d4c-blocked";
	struct bpf_object *obj;
	struct bpf_program *prog;
	struct bpf_link *link;
	struct bpf_prog_info info;
	__u32 info_len = sizeof(info);
	struct utsname u;
	__u32 zero = 0;
	int map_fd, prog_fd, err, r;
	int ok_block = 0, ok_allow = 0, ok_after = 0;
	__u64 refusals = 0;
	FILE *f;

	/* Enable run_time_ns / run_cnt accounting (cheap; ignore failure). */
	f = fopen("/proc/sys/kernel/bpf_stats_enabled", "w");
	if (f) {
		fputs("1", f);
		fclose(f);
	}

	obj = bpf_object__open_file(obj_path, NULL);
	if (!obj)
		return fail("bpf_object__open_file", errno);
	err = bpf_object__load(obj);
	if (err)
		return fail("bpf_object__load", -err);
	prog = bpf_object__find_program_by_name(obj, "d4c_vm_unlink");
	if (!prog)
		return fail("find program", ENOENT);
	map_fd = bpf_object__find_map_fd_by_name(obj, "blocked_name");
	if (map_fd < 0)
		return fail("find map", -map_fd);
	if (bpf_map_update_elem(map_fd, &zero, name, BPF_ANY))
		return fail("map update", errno);
	link = bpf_program__attach_lsm(prog);
	if (!link)
		return fail("attach lsm", errno);

	if (touch(blocked) || touch(allowed))
		return fail("create test files", errno);

	r = unlink(blocked);
	ok_block = (r == -1 && errno == EPERM);
	if (!ok_block)
		printf(
		    "D4C-VMTEST: unlink(%s) returned %d errno %d, want EPERM\n",
		    blocked, r, r ? errno : 0);
	r = unlink(allowed);
	ok_allow = (r == 0);
	if (!ok_allow)
		printf("D4C-VMTEST: unlink(%s) returned %d errno %d, want 0\n",
		       allowed, r, errno);

	prog_fd = bpf_program__fd(prog);
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(prog_fd, &info, &info_len))
		return fail("bpf_obj_get_info_by_fd", errno);
	{
		int cfd = bpf_object__find_map_fd_by_name(obj, "counters");
		__u32 one = 1;
		if (cfd >= 0)
			bpf_map_lookup_elem(cfd, &one, &refusals);
	}

	/* Detach: the blocked file can now be removed. */
	bpf_link__destroy(link);
	ok_after = (unlink(blocked) == 0);

	uname(&u);
	printf("D4C-VMTEST: unlink-blocked=%s unlink-allowed=%s "
	       "unlink-after-detach=%s "
	       "verifier_insns=%u run_cnt=%llu run_time_ns=%llu refusals=%llu "
	       "kernel=%s\n",
	       ok_block ? "ok" : "FAIL", ok_allow ? "ok" : "FAIL",
	       ok_after ? "ok" : "FAIL", info.verified_insns,
	       (unsigned long long)info.run_cnt,
	       (unsigned long long)info.run_time_ns,
	       (unsigned long long)refusals, u.release);
	fflush(stdout);
	bpf_object__close(obj);
	return (ok_block && ok_allow && ok_after) ? 0 : 1;
}

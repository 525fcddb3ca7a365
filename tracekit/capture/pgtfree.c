/*
 * pgtfree: a process-teardown workload for tracing the kernel's page-table freeing.
 *
 *   pgtfree FORKS MB LOOPS SPARSE [METADIR]
 *
 * Each of FORKS children maps MB MiB of private anonymous memory, writes one byte per page
 * (so every PTE page below the mapping is populated), unmaps the first half while it is
 * alive (munmap -> unmap_region -> free_pgtables), maps SPARSE GiB more with MAP_NORESERVE
 * and writes one byte per 2 MiB of it (one PTE page per PMD entry, 512 per GiB, each
 * holding one page), and exits (exit_mmap -> unmap_vmas -> free_pgtables ->
 * tlb_finish_mmu).  Children run one after another: the parent waits for each.  Then the
 * parent itself maps, touches and unmaps MB MiB LOOPS times.
 *
 * With METADIR, every child appends one line to METADIR/workload.meta.txt just before it
 * exits: its VmPTE (page-table memory) and the anonymous-memory totals of
 * /proc/self/smaps_rollup; the first child also copies its whole /proc/self/smaps to
 * METADIR/smaps.before_exit.txt.  The replay model is sized from these.
 *
 * Phase markers go to the ftrace trace_marker when it can be opened.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int trace_marker_fd = -1;

static void mark(const char *what)
{
	if (trace_marker_fd >= 0 && write(trace_marker_fd, what, strlen(what)) < 0)
		trace_marker_fd = -1;
}

static double monotonic_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Write one byte in every page so that the page tables are fully populated. */
static void populate(volatile char *base, size_t bytes, size_t page)
{
	for (size_t off = 0; off < bytes; off += page)
		base[off] = 1;
}

/* Value in kB of the "Key:   N kB" line of a /proc file read into buf, or -1. */
static long kb_field(const char *buf, const char *key)
{
	const char *p = buf;
	size_t n = strlen(key);

	while ((p = strstr(p, key)) != NULL) {
		if ((p == buf || p[-1] == '\n') && p[n] == ':')
			return strtol(p + n + 1, NULL, 10);
		p += n;
	}
	return -1;
}

static ssize_t slurp(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	ssize_t got = 0, r;

	if (fd < 0)
		return -1;
	while (got < (ssize_t)cap - 1 && (r = read(fd, buf + got, cap - 1 - got)) > 0)
		got += r;
	close(fd);
	buf[got] = '\0';
	return got;
}

static void copy_file(const char *from, const char *to)
{
	char buf[65536];
	int in = open(from, O_RDONLY), out;
	ssize_t r;

	if (in < 0)
		return;
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (out >= 0) {
		while ((r = read(in, buf, sizeof(buf))) > 0)
			if (write(out, buf, r) != r)
				break;
		close(out);
	}
	close(in);
}

/* Map gb GiB that need no swap reservation and write one byte per 2 MiB of it. */
static int populate_sparse(size_t gb)
{
	size_t bytes = gb << 30, step = (size_t)2 << 20;
	volatile char *m;

	if (!gb)
		return 0;
	m = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED)
		return -1;
	for (size_t off = 0; off < bytes; off += step)
		m[off] = 1;
	return 0;
}

/* Record what this child's mm holds just before exit_mmap() tears it down. */
static void record_mm(const char *metadir, int child, size_t mb, size_t sparse_gb)
{
	static char status[16384], rollup[16384];
	char path[4096], line[512];
	int fd, len;

	if (!metadir)
		return;
	if (slurp("/proc/self/status", status, sizeof(status)) < 0)
		status[0] = '\0';
	if (slurp("/proc/self/smaps_rollup", rollup, sizeof(rollup)) < 0)
		rollup[0] = '\0';
	len = snprintf(line, sizeof(line),
		       "child=%d pid=%d mapped_mb=%zu sparse_gb=%zu VmPTE_kB=%ld VmRSS_kB=%ld "
		       "Rss_kB=%ld Anonymous_kB=%ld AnonHugePages_kB=%ld\n",
		       child, (int)getpid(), mb, sparse_gb, kb_field(status, "VmPTE"),
		       kb_field(status, "VmRSS"), kb_field(rollup, "Rss"),
		       kb_field(rollup, "Anonymous"), kb_field(rollup, "AnonHugePages"));
	snprintf(path, sizeof(path), "%s/workload.meta.txt", metadir);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (fd >= 0) {
		if (write(fd, line, len) != len)
			perror("workload.meta.txt");
		close(fd);
	}
	if (child == 0) {
		snprintf(path, sizeof(path), "%s/smaps.before_exit.txt", metadir);
		copy_file("/proc/self/smaps", path);
	}
}

int main(int argc, char **argv)
{
	int forks = argc > 1 ? atoi(argv[1]) : 20;
	size_t mb = argc > 2 ? strtoul(argv[2], NULL, 10) : 64;
	int loops = argc > 3 ? atoi(argv[3]) : 5;
	size_t sparse_gb = argc > 4 ? strtoul(argv[4], NULL, 10) : 0;
	const char *metadir = argc > 5 ? argv[5] : NULL;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t bytes = mb << 20;
	double t_start, t_forked, t_end;

	trace_marker_fd = open("/sys/kernel/tracing/trace_marker", O_WRONLY);
	t_start = monotonic_s();
	mark("pgtfree: children start\n");
	for (int i = 0; i < forks; i++) {
		pid_t pid = fork();
		int status;

		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0) {
			char *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

			if (m == MAP_FAILED)
				_exit(2);
			populate(m, bytes, page);
			munmap(m, bytes / 2);
			if (populate_sparse(sparse_gb) < 0)
				_exit(3);
			record_mm(metadir, i, mb, sparse_gb);
			_exit(0);
		}
		waitpid(pid, &status, 0);
	}
	t_forked = monotonic_s();
	mark("pgtfree: parent loops start\n");
	for (int i = 0; i < loops; i++) {
		char *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (m == MAP_FAILED) {
			perror("mmap");
			return 1;
		}
		populate(m, bytes, page);
		munmap(m, bytes);
	}
	t_end = monotonic_s();
	mark("pgtfree: end\n");
	printf("pgtfree: page=%zu forks=%d mb=%zu sparse=%zu loops=%d fork_phase=%.3fs munmap_phase=%.3fs\n",
	       page, forks, mb, sparse_gb, loops, t_forked - t_start, t_end - t_forked);
	return 0;
}

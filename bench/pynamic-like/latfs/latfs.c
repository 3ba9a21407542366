/*
 * latfs — a read-only FUSE passthrough that adds latency and counts operations.
 *
 * It mirrors SOURCE at MOUNTPOINT.  Each metadata operation (lookup, getattr,
 * open, opendir, readlink, access) is delayed by --delay-us and each read by
 * --read-delay-us, measured from the moment the request reaches the daemon.
 * The kernel's entry, attribute and negative-entry caches are off by default
 * (entry_timeout = attr_timeout = negative_timeout = 0: every path component of
 * every walk becomes a LOOKUP, as on NFS without attribute or negative caching);
 * --cache-positive and --cache-negative switch them on.  Operation counts by
 * kind are written as JSON to --stats=FILE when the file system is unmounted.
 *
 * SOURCE is opened before mounting, so MOUNTPOINT may be SOURCE itself: then
 * absolute paths into the tree (RPATHs, symlinks, shrinkwrapped DT_NEEDED)
 * go through the latency file system unchanged.  Any other MOUNTPOINT must be
 * an empty directory outside SOURCE.
 *
 * Based on the structure of libfuse's example/passthrough_ll.c (low-level API).
 */
#define _GNU_SOURCE
#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 12)

#include <fuse_lowlevel.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

/* ---------- operation counters ---------- */

enum op {
	OP_LOOKUP, OP_LOOKUP_MISS, OP_FORGET, OP_GETATTR, OP_READLINK, OP_OPEN,
	OP_READ, OP_READ_BYTES, OP_FLUSH, OP_RELEASE, OP_OPENDIR, OP_READDIR,
	OP_RELEASEDIR, OP_ACCESS, OP_STATFS, OP_GETXATTR, OP_LISTXATTR,
	OP_DELAYED, OP_COUNT
};

static const char *const op_names[OP_COUNT] = {
	[OP_LOOKUP] = "lookup", [OP_LOOKUP_MISS] = "lookup_miss",
	[OP_FORGET] = "forget", [OP_GETATTR] = "getattr",
	[OP_READLINK] = "readlink", [OP_OPEN] = "open", [OP_READ] = "read",
	[OP_READ_BYTES] = "read_bytes", [OP_FLUSH] = "flush",
	[OP_RELEASE] = "release", [OP_OPENDIR] = "opendir",
	[OP_READDIR] = "readdir", [OP_RELEASEDIR] = "releasedir",
	[OP_ACCESS] = "access", [OP_STATFS] = "statfs",
	[OP_GETXATTR] = "getxattr", [OP_LISTXATTR] = "listxattr",
	[OP_DELAYED] = "delayed",
};

static uint64_t counters[OP_COUNT];
static uint64_t delay_ns_total;   /* time actually spent delaying */

static inline void count(enum op op, uint64_t n)
{
	__atomic_fetch_add(&counters[op], n, __ATOMIC_RELAXED);
}

/* ---------- options ---------- */

struct latfs_opts {
	unsigned long delay_us;
	unsigned long read_delay_us;
	int cache_positive;
	double positive_timeout;
	int cache_negative;
	double negative_timeout;
	int keep_cache;
	unsigned max_threads;
	char *stats_path;
	char *source;
	int show_help;
};

static struct latfs_opts opt = {
	.positive_timeout = 3600.0,
	.negative_timeout = 3600.0,
	.max_threads = 64,
};

#define LOPT(t, p, v) { t, offsetof(struct latfs_opts, p), v }
static const struct fuse_opt latfs_optspec[] = {
	LOPT("--delay-us=%lu", delay_us, 0),
	LOPT("delay_us=%lu", delay_us, 0),
	LOPT("--read-delay-us=%lu", read_delay_us, 0),
	LOPT("read_delay_us=%lu", read_delay_us, 0),
	LOPT("--cache-positive", cache_positive, 1),
	LOPT("--cache-positive=%lf", positive_timeout, 0),
	LOPT("--cache-positive=", cache_positive, 1),
	LOPT("--cache-negative", cache_negative, 1),
	LOPT("--cache-negative=%lf", negative_timeout, 0),
	LOPT("--cache-negative=", cache_negative, 1),
	LOPT("--keep-cache", keep_cache, 1),
	LOPT("--max-threads=%u", max_threads, 0),
	LOPT("--stats=%s", stats_path, 0),
	LOPT("--help", show_help, 1),
	LOPT("-h", show_help, 1),
	FUSE_OPT_END
};

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	(void)data; (void)outargs;
	if (key == FUSE_OPT_KEY_NONOPT && opt.source == NULL) {
		opt.source = strdup(arg);
		return 0;      /* consumed: SOURCE */
	}
	return 1;              /* keep: MOUNTPOINT and libfuse options */
}

static void usage(const char *prog)
{
	printf(
"usage: %s [options] SOURCE MOUNTPOINT\n"
"\n"
"Read-only passthrough of SOURCE at MOUNTPOINT with per-operation latency.\n"
"MOUNTPOINT may be SOURCE itself (the source directory is opened before mounting).\n"
"\n"
"  --delay-us=N          delay each lookup/getattr/open/opendir/readlink/access (default 0)\n"
"  --read-delay-us=N     delay each read (default 0)\n"
"  --cache-positive[=S]  let the kernel cache entries and attributes for S s (default off; S=3600)\n"
"  --cache-negative[=S]  let the kernel cache failed lookups for S s (default off; S=3600)\n"
"  --keep-cache          keep file data in the page cache across opens (default: dropped at open)\n"
"  --stats=FILE          write operation counts as JSON to FILE at unmount (and on SIGUSR1)\n"
"  --max-threads=N       worker threads (default 64)\n"
"  -s                    single-threaded: one request at a time (a server with finite capacity)\n"
"  -f                    foreground;  -d  debug (implies -f);  -o OPT  libfuse mount options\n"
"\n"
"Unmount with: fusermount3 -u MOUNTPOINT  (or SIGINT/SIGTERM to the daemon).\n",
	prog);
}

/* ---------- delay ---------- */

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Sleep until `start + us`.  Called at the top of each handler, so the delay
 * is measured from request receipt and includes nothing of our own work. */
static void delay_from(uint64_t start, unsigned long us)
{
	if (us == 0)
		return;
	uint64_t deadline = start + (uint64_t)us * 1000ull;
	struct timespec ts = { .tv_sec = deadline / 1000000000ull,
			       .tv_nsec = deadline % 1000000000ull };
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
	count(OP_DELAYED, 1);
	__atomic_fetch_add(&delay_ns_total, now_ns() - start, __ATOMIC_RELAXED);
}

#define META_DELAY() delay_from(now_ns(), opt.delay_us)

/* ---------- inodes ---------- */

struct inode {
	int fd;                 /* O_PATH descriptor into the source tree */
	ino_t ino;
	dev_t dev;
	uint64_t nlookup;
	struct inode *hnext;
};

#define HASH_SIZE 65536
static struct inode *htab[HASH_SIZE];
static pthread_mutex_t hlock = PTHREAD_MUTEX_INITIALIZER;
static struct inode root;
static uint64_t live_inodes;

static inline size_t hslot(ino_t ino, dev_t dev)
{
	uint64_t h = (uint64_t)ino * 0x9E3779B97F4A7C15ull ^ (uint64_t)dev;
	return (size_t)(h >> 48) & (HASH_SIZE - 1);
}

static struct inode *ino_of(fuse_ino_t n)
{
	return n == FUSE_ROOT_ID ? &root : (struct inode *)(uintptr_t)n;
}

static double entry_timeout(void) { return opt.cache_positive ? opt.positive_timeout : 0.0; }

static void latfs_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* Plain READDIR only: readdirplus would turn a listing into lookups. */
	conn->want &= ~FUSE_CAP_READDIRPLUS;
}

static void latfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	uint64_t t0 = now_ns();
	count(OP_LOOKUP, 1);
	delay_from(t0, opt.delay_us);

	struct fuse_entry_param e;
	memset(&e, 0, sizeof e);
	int fd = openat(ino_of(parent)->fd, name, O_PATH | O_NOFOLLOW);
	if (fd < 0 || fstatat(fd, "", &e.attr, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
		int err = errno;
		if (fd >= 0)
			close(fd);
		if (err == ENOENT) {
			count(OP_LOOKUP_MISS, 1);
			if (opt.cache_negative) {
				/* ino 0 with a timeout: the kernel caches the miss */
				e.ino = 0;
				e.entry_timeout = opt.negative_timeout;
				fuse_reply_entry(req, &e);
				return;
			}
		}
		fuse_reply_err(req, err);
		return;
	}

	size_t s = hslot(e.attr.st_ino, e.attr.st_dev);
	struct inode *in;
	pthread_mutex_lock(&hlock);
	for (in = htab[s]; in; in = in->hnext)
		if (in->ino == e.attr.st_ino && in->dev == e.attr.st_dev)
			break;
	if (in) {
		in->nlookup++;
		pthread_mutex_unlock(&hlock);
		close(fd);
	} else {
		in = calloc(1, sizeof *in);
		if (!in) {
			pthread_mutex_unlock(&hlock);
			close(fd);
			fuse_reply_err(req, ENOMEM);
			return;
		}
		in->fd = fd;
		in->ino = e.attr.st_ino;
		in->dev = e.attr.st_dev;
		in->nlookup = 1;
		in->hnext = htab[s];
		htab[s] = in;
		live_inodes++;
		pthread_mutex_unlock(&hlock);
	}
	e.ino = (uintptr_t)in;
	e.attr_timeout = entry_timeout();
	e.entry_timeout = entry_timeout();
	fuse_reply_entry(req, &e);
}

static void forget_one(fuse_ino_t n, uint64_t nlookup)
{
	struct inode *in = ino_of(n);
	if (in == &root)
		return;
	pthread_mutex_lock(&hlock);
	if (in->nlookup > nlookup) {
		in->nlookup -= nlookup;
		pthread_mutex_unlock(&hlock);
		return;
	}
	struct inode **pp = &htab[hslot(in->ino, in->dev)];
	while (*pp && *pp != in)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = in->hnext;
	live_inodes--;
	pthread_mutex_unlock(&hlock);
	close(in->fd);
	free(in);
}

static void latfs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	count(OP_FORGET, 1);
	forget_one(ino, nlookup);
	fuse_reply_none(req);
}

static void latfs_forget_multi(fuse_req_t req, size_t n, struct fuse_forget_data *f)
{
	count(OP_FORGET, n);
	for (size_t i = 0; i < n; i++)
		forget_one(f[i].ino, f[i].nlookup);
	fuse_reply_none(req);
}

static void latfs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi;
	uint64_t t0 = now_ns();
	count(OP_GETATTR, 1);
	delay_from(t0, opt.delay_us);
	struct stat st;
	if (fstatat(ino_of(ino)->fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_attr(req, &st, entry_timeout());
}

static void latfs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	uint64_t t0 = now_ns();
	count(OP_READLINK, 1);
	delay_from(t0, opt.delay_us);
	char buf[PATH_MAX + 1];
	ssize_t n = readlinkat(ino_of(ino)->fd, "", buf, sizeof buf);
	if (n < 0)
		fuse_reply_err(req, errno);
	else if ((size_t)n == sizeof buf)
		fuse_reply_err(req, ENAMETOOLONG);
	else {
		buf[n] = 0;
		fuse_reply_readlink(req, buf);
	}
}

static void latfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	uint64_t t0 = now_ns();
	count(OP_OPEN, 1);
	delay_from(t0, opt.delay_us);
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", ino_of(ino)->fd);
	int fd = open(path, fi->flags & ~(O_NOFOLLOW | O_CREAT | O_EXCL));
	if (fd < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	fi->fh = (uint64_t)fd;
	fi->keep_cache = opt.keep_cache ? 1 : 0;
	fuse_reply_open(req, fi);
}

static void latfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)ino;
	uint64_t t0 = now_ns();
	count(OP_READ, 1);
	delay_from(t0, opt.read_delay_us);
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = (int)fi->fh;
	buf.buf[0].pos = off;
	count(OP_READ_BYTES, size);
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

static void latfs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino; (void)fi;
	count(OP_FLUSH, 1);
	fuse_reply_err(req, 0);
}

static void latfs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	count(OP_RELEASE, 1);
	close((int)fi->fh);
	fuse_reply_err(req, 0);
}

struct dirh {
	DIR *dp;
	struct dirent *entry;
	off_t offset;
};

static void latfs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	uint64_t t0 = now_ns();
	count(OP_OPENDIR, 1);
	delay_from(t0, opt.delay_us);
	struct dirh *d = calloc(1, sizeof *d);
	if (!d) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	int fd = openat(ino_of(ino)->fd, ".", O_RDONLY | O_DIRECTORY);
	if (fd < 0 || !(d->dp = fdopendir(fd))) {
		int err = errno;
		if (fd >= 0)
			close(fd);
		free(d);
		fuse_reply_err(req, err);
		return;
	}
	fi->fh = (uintptr_t)d;
	fuse_reply_open(req, fi);
}

static void latfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			  struct fuse_file_info *fi)
{
	(void)ino;
	count(OP_READDIR, 1);
	struct dirh *d = (struct dirh *)(uintptr_t)fi->fh;
	char *buf = malloc(size), *p = buf;
	size_t rem = size;
	int err = 0;
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (off != d->offset) {
		seekdir(d->dp, off);
		d->entry = NULL;
		d->offset = off;
	}
	for (;;) {
		if (!d->entry) {
			errno = 0;
			d->entry = readdir(d->dp);
			if (!d->entry) {
				err = errno;
				break;
			}
		}
		struct stat st = { .st_ino = d->entry->d_ino,
				   .st_mode = (mode_t)d->entry->d_type << 12 };
		size_t sz = fuse_add_direntry(req, p, rem, d->entry->d_name, &st,
					      d->entry->d_off);
		if (sz > rem)
			break;
		p += sz;
		rem -= sz;
		d->offset = d->entry->d_off;
		d->entry = NULL;
	}
	if (err && rem == size)
		fuse_reply_err(req, err);
	else
		fuse_reply_buf(req, buf, size - rem);
	free(buf);
}

static void latfs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	count(OP_RELEASEDIR, 1);
	struct dirh *d = (struct dirh *)(uintptr_t)fi->fh;
	closedir(d->dp);
	free(d);
	fuse_reply_err(req, 0);
}

static void latfs_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	uint64_t t0 = now_ns();
	count(OP_ACCESS, 1);
	delay_from(t0, opt.delay_us);
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", ino_of(ino)->fd);
	if ((mask & W_OK)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	int r = faccessat(AT_FDCWD, path, mask, 0);
	fuse_reply_err(req, r < 0 ? errno : 0);
}

static void latfs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	count(OP_STATFS, 1);
	struct statvfs sv;
	if (fstatvfs(ino_of(ino)->fd, &sv) < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_statfs(req, &sv);
}

static void latfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	(void)ino; (void)name; (void)size;
	count(OP_GETXATTR, 1);
	fuse_reply_err(req, ENOSYS);   /* the kernel stops asking */
}

static void latfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	(void)ino; (void)size;
	count(OP_LISTXATTR, 1);
	fuse_reply_err(req, ENOSYS);
}

static const struct fuse_lowlevel_ops ops = {
	.init = latfs_init,
	.lookup = latfs_lookup,
	.forget = latfs_forget,
	.forget_multi = latfs_forget_multi,
	.getattr = latfs_getattr,
	.readlink = latfs_readlink,
	.open = latfs_open,
	.read = latfs_read,
	.flush = latfs_flush,
	.release = latfs_release,
	.opendir = latfs_opendir,
	.readdir = latfs_readdir,
	.releasedir = latfs_releasedir,
	.access = latfs_access,
	.statfs = latfs_statfs,
	.getxattr = latfs_getxattr,
	.listxattr = latfs_listxattr,
};

/* ---------- stats ---------- */

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static int write_stats(const char *path, const char *source, const char *mnt,
		       int single, double seconds)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
	FILE *f = fopen(tmp, "w");
	if (!f) {
		fprintf(stderr, "latfs: cannot write stats %s: %s\n", tmp, strerror(errno));
		return -1;
	}
	uint64_t delayed = counters[OP_DELAYED];
	fprintf(f, "{\n  \"format\": \"latfs-stats/1\",\n  \"source\": ");
	json_str(f, source);
	fprintf(f, ",\n  \"mountpoint\": ");
	json_str(f, mnt);
	fprintf(f, ",\n  \"delay_us\": %lu,\n  \"read_delay_us\": %lu,\n", opt.delay_us, opt.read_delay_us);
	fprintf(f, "  \"entry_timeout\": %g,\n  \"attr_timeout\": %g,\n  \"negative_timeout\": %g,\n",
		entry_timeout(), entry_timeout(), opt.cache_negative ? opt.negative_timeout : 0.0);
	fprintf(f, "  \"keep_cache\": %s,\n  \"single_threaded\": %s,\n  \"max_threads\": %u,\n",
		opt.keep_cache ? "true" : "false", single ? "true" : "false", single ? 1 : opt.max_threads);
	fprintf(f, "  \"mounted_seconds\": %.6f,\n", seconds);
	fprintf(f, "  \"mean_actual_delay_us\": %.3f,\n",
		delayed ? (double)delay_ns_total / (double)delayed / 1000.0 : 0.0);
	fprintf(f, "  \"ops\": {");
	for (int i = 0; i < OP_COUNT; i++)
		fprintf(f, "%s\n    \"%s\": %" PRIu64, i ? "," : "", op_names[i], counters[i]);
	fprintf(f, "\n  }\n}\n");
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		fprintf(stderr, "latfs: cannot write stats %s: %s\n", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* SIGUSR1: write the counters so far to the stats file (a snapshot; the
 * final counts overwrite it at unmount).  A thread waits for the signal, so
 * the file is not written from a signal handler. */
static char g_stats[2 * PATH_MAX + 2], g_src[PATH_MAX], g_mnt[PATH_MAX];
static int g_single;
static uint64_t g_start;

static void *snapshot_thread(void *arg)
{
	sigset_t *set = arg;
	for (;;) {
		int sig;
		if (sigwait(set, &sig) == 0 && sig == SIGUSR1)
			write_stats(g_stats, g_src, g_mnt, g_single, (double)(now_ns() - g_start) / 1e9);
	}
	return NULL;
}

/* ---------- main ---------- */

static int dir_is_empty(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		return -1;
	struct dirent *e;
	int empty = 1;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			empty = 0;
			break;
		}
	closedir(d);
	return empty;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts cl;
	int ret = 1;

	if (fuse_opt_parse(&args, &opt, latfs_optspec, opt_proc) != 0)
		return 2;
	if (opt.show_help) {
		usage(argv[0]);
		return 0;
	}
	if (fuse_parse_cmdline(&args, &cl) != 0)
		return 2;
	if (cl.show_help || cl.show_version) {
		usage(argv[0]);
		return 0;
	}
	if (!opt.source || !cl.mountpoint) {
		usage(argv[0]);
		return 2;
	}

	char src_real[PATH_MAX], mnt_real[PATH_MAX];
	if (!realpath(opt.source, src_real)) {
		fprintf(stderr, "latfs: source %s: %s\n", opt.source, strerror(errno));
		return 2;
	}
	if (!realpath(cl.mountpoint, mnt_real)) {
		fprintf(stderr, "latfs: mountpoint %s: %s\n", cl.mountpoint, strerror(errno));
		return 2;
	}
	/* Open the source before mounting: afterwards its path may be covered. */
	root.fd = open(src_real, O_PATH | O_DIRECTORY);
	if (root.fd < 0) {
		fprintf(stderr, "latfs: source %s: %s\n", src_real, strerror(errno));
		return 2;
	}
	struct stat sst, mst;
	if (fstat(root.fd, &sst) < 0 || stat(mnt_real, &mst) < 0 || !S_ISDIR(mst.st_mode)) {
		fprintf(stderr, "latfs: mountpoint %s is not a directory\n", mnt_real);
		return 2;
	}
	root.nlookup = 2;
	bool over_self = sst.st_dev == mst.st_dev && sst.st_ino == mst.st_ino;
	if (!over_self) {
		size_t n = strlen(src_real);
		if (strncmp(mnt_real, src_real, n) == 0 &&
		    (mnt_real[n] == '/' || (n == 1 && src_real[0] == '/'))) {
			fprintf(stderr, "latfs: mountpoint %s lies inside source %s: lookups would recurse "
				"into the mount; mount over the source itself or outside it\n",
				mnt_real, src_real);
			return 2;
		}
		int e = dir_is_empty(mnt_real);
		if (e != 1) {
			fprintf(stderr, "latfs: mountpoint %s is %s; refusing to hide it "
				"(only the mirrored directory itself may be mounted over)\n",
				mnt_real, e < 0 ? "unreadable" : "not empty");
			return 2;
		}
	}

	char stats_real[2 * PATH_MAX + 2] = "";
	if (opt.stats_path) {
		/* resolve now: relative paths must not depend on the daemon's cwd */
		if (opt.stats_path[0] == '/')
			snprintf(stats_real, sizeof stats_real, "%s", opt.stats_path);
		else {
			char cwd[PATH_MAX];
			if (!getcwd(cwd, sizeof cwd)) {
				fprintf(stderr, "latfs: getcwd: %s\n", strerror(errno));
				return 2;
			}
			snprintf(stats_real, sizeof stats_real, "%s/%s", cwd, opt.stats_path);
		}
	}

	fuse_opt_add_arg(&args, "-oro,fsname=latfs,subtype=latfs");

	/* 1 ns timer slack: a 100 µs delay must not become 150 µs.  Worker
	 * threads inherit it from this thread. */
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);

	struct fuse_session *se = fuse_session_new(&args, &ops, sizeof ops, NULL);
	if (!se)
		goto out;
	if (fuse_set_signal_handlers(se) != 0)
		goto out_destroy;
	if (fuse_session_mount(se, mnt_real) != 0)
		goto out_signals;
	uint64_t t_start = now_ns();
	double seconds = 0;
	if (fuse_daemonize(cl.foreground) != 0)
		goto out_unmount;

	static sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);   /* inherited by the workers */
	if (stats_real[0]) {
		snprintf(g_stats, sizeof g_stats, "%s", stats_real);
		snprintf(g_src, sizeof g_src, "%s", src_real);
		snprintf(g_mnt, sizeof g_mnt, "%s", mnt_real);
		g_single = cl.singlethread;
		g_start = t_start;
		pthread_t th;
		pthread_create(&th, NULL, snapshot_thread, &usr1);
		pthread_detach(th);
	}

	if (cl.singlethread) {
		ret = fuse_session_loop(se);
	} else {
		struct fuse_loop_config *cfg = fuse_loop_cfg_create();
		fuse_loop_cfg_set_max_threads(cfg, opt.max_threads);
		fuse_loop_cfg_set_clone_fd(cfg, cl.clone_fd);
		ret = fuse_session_loop_mt(se, cfg);
		fuse_loop_cfg_destroy(cfg);
	}
	seconds = (double)(now_ns() - t_start) / 1e9;

out_unmount:
	fuse_session_unmount(se);
	if (stats_real[0] && write_stats(stats_real, src_real, mnt_real, cl.singlethread, seconds) != 0)
		ret = 1;
out_signals:
	fuse_remove_signal_handlers(se);
out_destroy:
	fuse_session_destroy(se);
out:
	free(cl.mountpoint);
	fuse_opt_free_args(&args);
	return ret ? 1 : 0;
}

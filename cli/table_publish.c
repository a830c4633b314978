/* table_publish.c - `engram table publish` and `engram table rollback`.
 *
 * A served table path is a symlink LINK to one version's directory.
 * publish repoints it with an atomic rename of a fresh symlink, after
 * recording the old target in the sibling symlink LINK.prev; rollback
 * swaps LINK and LINK.prev (so a second rollback undoes the first).
 */
#include "table.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Points link at target: a temporary symlink renamed over link, so readers
 * see the old target or the new one, never no link. Returns 0 or -errno. */
static int atomic_symlink(const char *target, const char *link)
{
	char tmp[PATH_MAX];
	int e;

	if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", link, (long)getpid()) >= sizeof tmp)
		return -ENAMETOOLONG;
	unlink(tmp);
	if (symlink(target, tmp) != 0)
		return -errno;
	if (rename(tmp, link) != 0) {
		e = errno;
		unlink(tmp);
		return -e;
	}
	return 0;
}

/* fsyncs the directory holding link, so the rename survives a crash. */
static void sync_parent(const char *link)
{
	char copy[PATH_MAX];
	int fd;

	snprintf(copy, sizeof copy, "%s", link);
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

/* Reads symlink path into buf; 0, or -errno (-EINVAL: not a symlink). */
static int read_link(const char *path, char *buf, size_t len)
{
	ssize_t n = readlink(path, buf, len - 1);

	if (n < 0)
		return -errno;
	if ((size_t)n >= len - 1)
		return -ENAMETOOLONG;
	buf[n] = '\0';
	return 0;
}

/* Where a link's target text points, as a path usable from here. */
static void target_path(const char *link, const char *target, char *out, size_t len)
{
	char copy[PATH_MAX];

	if (target[0] == '/') {
		snprintf(out, len, "%s", target);
		return;
	}
	snprintf(copy, sizeof copy, "%s", link);
	snprintf(out, len, "%s/%s", dirname(copy), target);
}

/* Refuses to point a link at anything but a readable table. */
static int check_table(const char *dir)
{
	eg_table *t;
	eg_snapshot *s;
	int rc = cli_open_table(dir, &t, &s);

	if (rc != CLI_OK)
		return rc;
	eg_snapshot_close(s);
	eg_table_close(t);
	return CLI_OK;
}

/* The text to store in link for dir: relative when both sit in one
 * directory (so the tree can move), absolute otherwise. */
static int link_text(const char *link, const char *dir, char *out, size_t len)
{
	char abs_dir[PATH_MAX], copy[PATH_MAX], parent[PATH_MAX], dcopy[PATH_MAX];
	char *base;

	if (!realpath(dir, abs_dir))
		return -errno;
	snprintf(copy, sizeof copy, "%s", link);
	if (!realpath(dirname(copy), parent))
		return -errno;
	snprintf(dcopy, sizeof dcopy, "%s", abs_dir);
	base = strrchr(abs_dir, '/');
	if (strcmp(dirname(dcopy), parent) == 0 && base && base[1])
		snprintf(out, len, "%s", base + 1);
	else
		snprintf(out, len, "%s", abs_dir);
	return 0;
}

int cli_table_publish(struct cli_args *a)
{
	char text[PATH_MAX], old[PATH_MAX] = "", prev[PATH_MAX + 8];
	char cur_abs[PATH_MAX], here[PATH_MAX], new_abs[PATH_MAX];
	const char *link = a->pos[0], *dir = a->pos[1];
	struct stat st;
	int rc;

	if (lstat(link, &st) == 0 && !S_ISLNK(st.st_mode))
		return cli_fail("%s: exists and is not a symlink; move it aside and publish its versions through a link", link);
	rc = check_table(dir);
	if (rc != CLI_OK)
		return rc;
	rc = link_text(link, dir, text, sizeof text);
	if (rc != 0)
		return cli_fail("%s: %s", link, strerror(-rc));
	if (read_link(link, old, sizeof old) == 0) {
		target_path(link, old, here, sizeof here);
		if (realpath(here, cur_abs) && realpath(dir, new_abs) &&
		    strcmp(cur_abs, new_abs) == 0) {
			printf("%s -> %s (already; nothing to do)\n", link, old);
			return CLI_OK;
		}
		snprintf(prev, sizeof prev, "%s.prev", link);
		rc = atomic_symlink(old, prev);
		if (rc != 0)
			return cli_fail("%s: cannot record the previous version: %s", prev, strerror(-rc));
	}
	rc = atomic_symlink(text, link);
	if (rc != 0)
		return cli_fail("%s: cannot repoint the link: %s", link, strerror(-rc));
	sync_parent(link);
	if (old[0])
		printf("%s -> %s (previous: %s)\n", link, text, old);
	else
		printf("%s -> %s\n", link, text);
	return CLI_OK;
}

int cli_table_rollback(struct cli_args *a)
{
	char prev_link[PATH_MAX + 8], prev[PATH_MAX], cur[PATH_MAX], here[PATH_MAX];
	const char *link = a->pos[0];
	int rc = read_link(link, cur, sizeof cur);
	if (rc != 0)
		return cli_fail("%s: %s", link, rc == -EINVAL ? "not a symlink" : strerror(-rc));
	snprintf(prev_link, sizeof prev_link, "%s.prev", link);
	rc = read_link(prev_link, prev, sizeof prev);
	if (rc != 0)
		return cli_fail("%s: no previous version recorded (%s: %s)", link,
		                prev_link, rc == -EINVAL ? "not a symlink" : strerror(-rc));
	target_path(link, prev, here, sizeof here);
	rc = check_table(here);
	if (rc != CLI_OK)
		return rc;
	rc = atomic_symlink(prev, link);
	if (rc != 0)
		return cli_fail("%s: cannot repoint the link: %s", link, strerror(-rc));
	rc = atomic_symlink(cur, prev_link);
	sync_parent(link);
	if (rc != 0)
		return cli_fail("%s: rolled back, but cannot record %s: %s", link,
		                prev_link, strerror(-rc));
	printf("%s -> %s (previous: %s)\n", link, prev, cur);
	return CLI_OK;
}

/* log.c - stderr logging, one write(2) per line so threads never interleave. */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

static _Atomic enum ed_log_level max_level = ED_LOG_INFO; /* set by a SIGHUP reload */
static const char *const names[] = { "error", "warn", "info", "debug" };
/* syslog priorities of the levels: LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG */
static const char priorities[] = { '3', '4', '6', '7' };
static pthread_once_t journal_once = PTHREAD_ONCE_INIT;
static int to_journal;

/* systemd sets JOURNAL_STREAM=DEV:INO when it connects stderr to the
 * journal; it is inherited, so it counts only while stderr is still that
 * stream (sd-daemon(3)). Then each line starts with "<N>", its priority. */
static void journal_check(void)
{
	const char *v = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char tail;

	if (!v || sscanf(v, "%llu:%llu%c", &dev, &ino, &tail) != 2)
		return;
	if (fstat(STDERR_FILENO, &st) == 0 && (unsigned long long)st.st_dev == dev &&
	    (unsigned long long)st.st_ino == ino)
		to_journal = 1;
}

void ed_log_set_level(enum ed_log_level level)
{
	max_level = level;
}

int ed_log_parse_level(const char *name, enum ed_log_level *out)
{
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(name, names[i]) == 0) {
			*out = (enum ed_log_level)i;
			return 0;
		}
	}
	if (strcmp(name, "warning") == 0) {
		*out = ED_LOG_WARN;
		return 0;
	}
	return -1;
}

int ed_log_enabled(enum ed_log_level level)
{
	return level <= max_level;
}

void ed_log(enum ed_log_level level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	if (level > max_level)
		return;
	pthread_once(&journal_once, journal_check);
	n = 0;
	if (to_journal) {
		line[n++] = '<';
		line[n++] = priorities[level];
		line[n++] = '>';
	}
	n += snprintf(line + n, sizeof(line) - (size_t)n, "engramd[%ld]: %s: ", (long)getpid(),
	              names[level]);
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2; /* truncated: still one line */
	line[n++] = '\n';
	/* stderr may be a closed pipe; nothing sensible to do about it */
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}

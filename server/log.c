/* log.c - stderr logging, one write(2) per line so threads never interleave. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static enum ed_log_level max_level = ED_LOG_INFO;
static const char *const names[] = { "error", "warn", "info", "debug" };

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
	n = snprintf(line, sizeof(line), "engramd[%ld]: %s: ", (long)getpid(), names[level]);
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

/* log.h - one line per event on stderr, for the journal:
 * "engramd[pid]: LEVEL: message". Safe from any thread (one write(2)).
 * When stderr is the journal's stream (JOURNAL_STREAM names its device and
 * inode) each line starts with its syslog priority, "<3>" error, "<4>" warn,
 * "<6>" info, "<7>" debug, so that `journalctl -p` can filter. */
#ifndef ED_LOG_H
#define ED_LOG_H

enum ed_log_level { ED_LOG_ERROR, ED_LOG_WARN, ED_LOG_INFO, ED_LOG_DEBUG };

/* Lines above level are dropped; default ED_LOG_INFO. */
void ed_log_set_level(enum ed_log_level level);
/* "error", "warn", "info", "debug" -> 0 and *out; -1 for anything else. */
int ed_log_parse_level(const char *name, enum ed_log_level *out);
int ed_log_enabled(enum ed_log_level level);

void ed_log(enum ed_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define ed_error(...) ed_log(ED_LOG_ERROR, __VA_ARGS__)
#define ed_warn(...)  ed_log(ED_LOG_WARN, __VA_ARGS__)
#define ed_info(...)  ed_log(ED_LOG_INFO, __VA_ARGS__)
#define ed_debug(...) ed_log(ED_LOG_DEBUG, __VA_ARGS__)

#endif

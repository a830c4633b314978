/* reconfig.h - SIGHUP reads the config file again and applies what can
 * change while serving: the tables (added, removed, re-pointed) and the
 * log level. Everything else is logged as needing a restart, and ignored. */
#ifndef ED_RECONFIG_H
#define ED_RECONFIG_H

/* Re-reads the command line's config files, when engramd was started with
 * --config, and applies them. An invalid configuration is logged (with its
 * FILE:LINE) and changes nothing. Blocks: run off the loops, one call at a
 * time. Returns 0 (applied, or no config file) or -1 (invalid, or a table
 * failed to open). */
int ed_reconfig(void);

#endif

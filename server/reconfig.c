/* reconfig.c - the config file read again on SIGHUP. */
#include "config.h"
#include "log.h"
#include "reconfig.h"
#include "registry.h"

int ed_reconfig(void)
{
	struct ed_config next;
	int failed;

	if (!ed_cfg.config)
		return 0;
	ed_info("config: reading %s again", ed_cfg.config);
	if (ed_config_reread(&next) < 0) {
		ed_error("config: not applied (error above); the configuration in force stays");
		return -1;
	}
	ed_config_restart_needed(&ed_cfg, &next);
	if (next.log_level != ed_cfg.log_level) {
		ed_log_set_level(next.log_level >= 0 ? (enum ed_log_level)next.log_level : ED_LOG_INFO);
		ed_cfg.log_level = next.log_level;
	}
	failed = ed_registry_apply(next.tables, next.n_tables);
	/* the tables as configured now; a table that failed to open is tried
	 * again on the next SIGHUP */
	{
		struct ed_table_arg *old = ed_cfg.tables;
		size_t n_old = ed_cfg.n_tables;

		ed_cfg.tables = next.tables;
		ed_cfg.n_tables = next.n_tables;
		next.tables = old;
		next.n_tables = n_old;
	}
	ed_config_free(&next);
	ed_info("config: applied; %zu tables served%s", ed_registry_count(),
	        failed ? ", some failed to open (above)" : "");
	return failed ? -1 : 0;
}

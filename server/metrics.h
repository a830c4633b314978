/* metrics.h - the daemon's counters in the Prometheus text format (0.0.4). */
#ifndef ED_METRICS_H
#define ED_METRICS_H

#include <stddef.h>

/* Renders every metric. Returns a malloc'd text of *len bytes (the caller
 * frees it), or NULL when out of memory. Any thread; safe while tables load
 * or reload (it pins each loaded table's snapshot briefly). */
char *ed_metrics_render(size_t *len);

#endif

/* progress.h - a progress line for long CLI jobs, on stderr.
 *
 * On a terminal: one line redrawn at most 10 times a second with percent,
 * rate and ETA. Otherwise (logs, pipes, tests): a plain line every 10
 * seconds, so short jobs print nothing and long ones leave a trail.
 */
#ifndef CLI_PROGRESS_H
#define CLI_PROGRESS_H

#include <stdint.h>

typedef struct cli_progress {
	const char *label;    /* e.g. "import" */
	uint64_t total;       /* units (rows) */
	uint64_t unit_bytes;  /* bytes per unit, for the MB/s figure; 0 = none */
	int tty;
	int shown;            /* printed anything yet */
	double start, last;
} cli_progress;

void cli_progress_init(cli_progress *p, const char *label,
                       uint64_t total, uint64_t unit_bytes);
/* Reports done units out of total. */
void cli_progress_update(cli_progress *p, uint64_t done);
/* Says what happens after the last unit (e.g. "committing") on a terminal
 * line already shown, so a long final step does not look like a hang. */
void cli_progress_note(cli_progress *p, const char *what);
/* Ends the job: ok prints a final summary (only when a line was shown);
 * !ok just clears the terminal line so an error starts on a clean one. */
void cli_progress_end(cli_progress *p, int ok);

#endif

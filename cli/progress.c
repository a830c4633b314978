/* progress.c - progress line with rate and ETA (see progress.h). */
#include "progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define TTY_INTERVAL 0.1
#define LOG_INTERVAL 10.0

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void cli_progress_init(cli_progress *p, const char *label,
                       uint64_t total, uint64_t unit_bytes)
{
	p->label = label;
	p->total = total;
	p->unit_bytes = unit_bytes;
	p->tty = isatty(STDERR_FILENO);
	p->shown = 0;
	p->start = p->last = now();
}

static void fmt_secs(char *buf, size_t len, double s)
{
	if (s < 0 || s > 1e7)
		snprintf(buf, len, "?");
	else if (s < 60)
		snprintf(buf, len, "%.0fs", s);
	else if (s < 3600)
		snprintf(buf, len, "%dm%02ds", (int)s / 60, (int)s % 60);
	else
		snprintf(buf, len, "%dh%02dm", (int)s / 3600, (int)s / 60 % 60);
}

static void draw(cli_progress *p, uint64_t done, double t, const char *end)
{
	double el = t - p->start, rate = el > 0 ? (double)done / el : 0;
	double pct = p->total ? 100.0 * (double)done / (double)p->total : 100.0;
	char eta[32], mb[48] = "";

	fmt_secs(eta, sizeof eta, rate > 0 ? (double)(p->total - done) / rate : -1);
	if (p->unit_bytes)
		snprintf(mb, sizeof mb, ", %.1f MB/s", rate * (double)p->unit_bytes / 1e6);
	fprintf(stderr, "%s%s: %llu/%llu rows (%.1f%%), %.0f rows/s%s, ETA %s%s",
	        p->tty ? "\r\033[K" : "", p->label, (unsigned long long)done,
	        (unsigned long long)p->total, pct, rate, mb, eta, end);
	fflush(stderr);
	p->shown = 1;
	p->last = t;
}

void cli_progress_update(cli_progress *p, uint64_t done)
{
	double t = now();

	if (t - p->last >= (p->tty ? TTY_INTERVAL : LOG_INTERVAL))
		draw(p, done, t, p->tty ? "" : "\n");
}

void cli_progress_note(cli_progress *p, const char *what)
{
	if (!p->shown || !p->tty)
		return;
	fprintf(stderr, "\r\033[K%s: %s", p->label, what);
	fflush(stderr);
}

void cli_progress_end(cli_progress *p, int ok)
{
	double t = now();
	char el[32];

	if (!p->shown)
		return;
	if (!ok) {
		if (p->tty)
			fputs("\r\033[K", stderr);
		return;
	}
	fmt_secs(el, sizeof el, t - p->start);
	fprintf(stderr, "%s%s: %llu rows done in %s\n", p->tty ? "\r\033[K" : "",
	        p->label, (unsigned long long)p->total, el);
}

/* Progress bar and log lines (see progress.h). */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sbi/progress.h"

double
sbi_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void
sbi_progress_start(sbi_progress *p, const char *label, uint64_t total, int quiet)
{
	memset(p, 0, sizeof *p);
	snprintf(p->label, sizeof p->label, "%s", label);
	p->total = total;
	p->t0 = p->last = sbi_now();
	p->tty = isatty(STDERR_FILENO);
	p->quiet = quiet;
}

void
sbi_progress_resume(sbi_progress *p, uint64_t done)
{
	p->done = p->base = done;
}

static void
human_rate(double r, char *buf, size_t n)
{
	if (r >= 1e6)
		snprintf(buf, n, "%.2fM", r / 1e6);
	else if (r >= 1e3)
		snprintf(buf, n, "%.1fk", r / 1e3);
	else
		snprintf(buf, n, "%.1f", r);
}

static void
draw(sbi_progress *p, double now)
{
	double el = now - p->t0, rate = el > 0 ? (double)(p->done - p->base) / el : 0;
	double frac = p->total ? (double)p->done / (double)p->total : 1;
	double eta = rate > 0 ? (double)(p->total - p->done) / rate : 0;
	char r[32];
	human_rate(rate, r, sizeof r);
	if (p->tty) {
		char bar[31];
		int fill = (int)(frac * 30);
		for (int i = 0; i < 30; i++)
			bar[i] = i < fill ? '#' : '.';
		bar[30] = '\0';
		fprintf(stderr, "\r%s [%s] %3.0f%% %llu/%llu %s/s ETA %.0fs  ", p->label, bar, 100 * frac,
		    (unsigned long long)p->done, (unsigned long long)p->total, r, eta);
		p->drawn = 1;
	} else
		fprintf(stderr, "%s: %llu/%llu (%.0f%%), %s/s, ETA %.0f s\n", p->label,
		    (unsigned long long)p->done, (unsigned long long)p->total, 100 * frac, r, eta);
	fflush(stderr);
}

void
sbi_progress_update(sbi_progress *p, uint64_t done)
{
	p->done = done;
	if (p->quiet)
		return;
	double now = sbi_now();
	if (now - p->last < (p->tty ? 0.1 : 10.0))
		return;
	p->last = now;
	draw(p, now);
}

void
sbi_progress_finish(sbi_progress *p, const char *unit)
{
	if (p->quiet)
		return;
	double el = sbi_now() - p->t0;
	char r[32];
	human_rate(el > 0 ? (double)(p->done - p->base) / el : 0, r, sizeof r);
	if (p->drawn)
		fprintf(stderr, "\r\033[K");
	fprintf(stderr, "%s: %llu %s in %.2f s (%s/s)\n", p->label, (unsigned long long)(p->done - p->base),
	    unit, el, r);
}

/* Progress reporting for long steps: a redrawn bar with rate and ETA when
 * stderr is a terminal, plain log lines (at most one per 10 s) otherwise. */
#ifndef SBI_PROGRESS_H
#define SBI_PROGRESS_H

#include <stdint.h>

typedef struct sbi_progress {
	char label[96];
	uint64_t total, done, base; /* base: done before this run (for the rate) */
	double t0, last;
	int tty, quiet, drawn;
} sbi_progress;

void sbi_progress_start(sbi_progress *p, const char *label, uint64_t total, int quiet);
/* Sets items already done before this run (resumed work): counted in the
 * bar, not in the rate. */
void sbi_progress_resume(sbi_progress *p, uint64_t done);
/* Records done items; redraws at most 10 times a second. */
void sbi_progress_update(sbi_progress *p, uint64_t done);
/* Prints the final line with the total time and rate. */
void sbi_progress_finish(sbi_progress *p, const char *unit);

/* Monotonic seconds. */
double sbi_now(void);

#endif

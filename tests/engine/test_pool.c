/* The worker pool: every task runs once, failures (an error, a signal, an
 * exit) are reported with their task and item, progress ticks, and a task
 * costs microseconds, not a polling tick; the hand-off carries chunks to
 * the parent intact. */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "sbi/handoff.h"
#include "sbi/pool.h"

typedef struct job {
	volatile uint32_t *runs; /* runs[task]: times it ran (shared) */
	size_t bad;              /* the task that fails */
	int how;                 /* 0: none fails, 1: an error, 2: SIGKILL, 3: exit(3) */
	int ticks;
	useconds_t sleep_us;     /* per task */
	sbi_handoff *h;
} job;

static int
task(void *ud, size_t t, sbi_pool_slot *slot)
{
	job *j = ud;
	__atomic_fetch_add(&j->runs[t], 1, __ATOMIC_RELAXED);
	if (j->sleep_us)
		usleep(j->sleep_us);
	for (uint64_t i = 0; i < 3; i++) {
		slot->current = 10 * t + i;
		slot->busy = 1;
		if (t == j->bad && i == 1 && j->how == 1)
			return sbi_err_set(&slot->err, SBI_ESIM, "task %zu failed on purpose", t);
		if (t == j->bad && i == 1 && j->how == 2)
			raise(SIGKILL);
		if (t == j->bad && i == 1 && j->how == 3)
			_exit(3);
		slot->done = i + 1;
	}
	slot->busy = 0;
	if (j->h != NULL) { /* rows t and -t */
		sbi_mat *a = sbi_mat_alloc(2, 1), *b = sbi_mat_alloc(2, 2);
		a->data[0] = (double)t;
		a->data[1] = -(double)t;
		for (int k = 0; k < 4; k++)
			b->data[k] = 100.0 * (double)t + k;
		sbi_handoff_put(j->h, t, a, b);
		sbi_mat_free(a);
		sbi_mat_free(b);
	}
	return SBI_OK;
}

static void
tick(void *ud, uint64_t done)
{
	((job *)ud)->ticks++;
}

/* Runs n tasks on njobs workers; returns the pool's code. */
static int
run(job *j, size_t n, int njobs, sbi_pool_failure *f, sbi_err *err)
{
	size_t *tasks = malloc(n * sizeof *tasks);
	for (size_t i = 0; i < n; i++)
		tasks[i] = i;
	j->runs = mmap(NULL, n * sizeof *j->runs, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int rc = sbi_pool_run(tasks, n, njobs, task, tick, j, f, err);
	free(tasks);
	return rc;
}

static double
now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

TEST(every_task_runs_once)
{
	int jobs[] = { 1, 2, 3, 300 };
	for (int k = 0; k < 4; k++) {
		job j = { .bad = (size_t)-1 };
		sbi_pool_failure f;
		sbi_err err = { 0 };
		CHECK(run(&j, 57, jobs[k], &f, &err) == SBI_OK);
		int once = 1;
		for (size_t t = 0; t < 57; t++)
			once &= j.runs[t] == 1;
		CHECK(once);
		munmap((void *)j.runs, 57 * sizeof *j.runs);
	}
}

TEST(failures_name_task_and_item)
{
	for (int how = 1; how <= 3; how++) {
		for (int njobs = 1; njobs <= 2; njobs++) {
			if (how > 1 && njobs == 1)
				continue; /* a signal or an exit would end this test */
			job j = { .bad = 5, .how = how };
			sbi_pool_failure f;
			sbi_err err = { 0 };
			int rc = run(&j, 12, njobs, &f, &err);
			CHECK(rc != SBI_OK);
			CHECK(f.task == 5);
			CHECK(f.has_current && f.current == 51);
			if (how == 1) {
				CHECK(rc == SBI_ESIM);
				CHECK_STR(err.msg, "task 5 failed on purpose");
			} else if (how == 2) {
				CHECK(rc == SBI_ECHILD && f.signal == SIGKILL);
				CHECK_CONTAINS(err.msg, "worker process for task 5 was killed by signal 9");
			} else {
				CHECK(rc == SBI_ECHILD && f.signal == 0);
				CHECK_CONTAINS(err.msg, "worker process for task 5 exited with status 3");
			}
			/* Stopped at the failure: not every later task ran. */
			CHECK(j.runs[11] == 0 || njobs > 1);
			munmap((void *)j.runs, 12 * sizeof *j.runs);
		}
	}
}

/* 6 tasks of 100 ms on 2 workers: at least 2 ticks of 100 ms. */
TEST(progress_ticks_while_tasks_run)
{
	job j = { .bad = (size_t)-1, .sleep_us = 100000 };
	sbi_pool_failure f;
	sbi_err err = { 0 };
	CHECK(run(&j, 6, 2, &f, &err) == SBI_OK);
	CHECK(j.ticks >= 2);
	munmap((void *)j.runs, 6 * sizeof *j.runs);
}

/* 4000 tasks on 2 workers: a 100 ms polling tick per task would take 200 s. */
TEST(tasks_cost_microseconds)
{
	job j = { .bad = (size_t)-1 };
	sbi_pool_failure f;
	sbi_err err = { 0 };
	double t0 = now();
	CHECK(run(&j, 4000, 2, &f, &err) == SBI_OK);
	double dt = now() - t0;
	CHECK(dt < 20);
	printf("  4000 empty tasks on 2 workers: %.1f us per task\n", dt / 4000 * 1e6);
	munmap((void *)j.runs, 4000 * sizeof *j.runs);
}

TEST(handoff_carries_chunks_in_order)
{
	for (int njobs = 1; njobs <= 3; njobs += 2) {
		job j = { .bad = (size_t)-1, .h = sbi_handoff_alloc(9, 2, 1, 2) };
		CHECK(j.h != NULL);
		sbi_pool_failure f;
		sbi_err err = { 0 };
		CHECK(run(&j, 8, njobs, &f, &err) == SBI_OK); /* chunk 8 never runs */
		sbi_mat *a = sbi_mat_alloc(18, 1), *b = sbi_mat_alloc(18, 2);
		size_t row = 0, m = 0, ok = 1;
		for (size_t c = 0; c < 9; c++) {
			int got = sbi_handoff_take(j.h, c, a, b, row, &m);
			CHECK(got == (c < 8));
			if (!got)
				continue;
			CHECK(m == 2);
			ok &= a->data[row] == (double)c && a->data[row + 1] == -(double)c;
			for (int k = 0; k < 4; k++)
				ok &= b->data[2 * row + (size_t)k] == 100.0 * (double)c + k;
			row += m;
		}
		CHECK(ok && row == 16);
		size_t m2;
		CHECK(!sbi_handoff_take(j.h, 3, a, b, 0, &m2)); /* taken: gone */
		sbi_mat_free(a);
		sbi_mat_free(b);
		sbi_handoff_free(j.h);
		munmap((void *)j.runs, 8 * sizeof *j.runs);
	}
}

/* Chunks of many pages: released as they are taken, the data intact. */
TEST(handoff_large_chunks)
{
	size_t rows = 3000, nchunks = 5;
	sbi_handoff *h = sbi_handoff_alloc(nchunks, rows, 3, 4);
	CHECK(h != NULL);
	sbi_mat *a = sbi_mat_alloc(rows, 3), *b = sbi_mat_alloc(rows, 4);
	for (size_t c = 0; c < nchunks; c++) {
		for (size_t i = 0; i < rows * 3; i++)
			a->data[i] = (double)(c * 100000 + i);
		for (size_t i = 0; i < rows * 4; i++)
			b->data[i] = -(double)(c * 100000 + i);
		a->nrow = b->nrow = c == nchunks - 1 ? 17 : rows; /* a short last chunk */
		CHECK(sbi_handoff_put(h, c, a, b) == 0);
		a->nrow = b->nrow = rows;
	}
	sbi_mat *ra = sbi_mat_alloc(nchunks * rows, 3), *rb = sbi_mat_alloc(nchunks * rows, 4);
	size_t row = 0, m, ok = 1;
	for (size_t c = 0; c < nchunks; c++) {
		CHECK(sbi_handoff_take(h, c, ra, rb, row, &m));
		CHECK(m == (c == nchunks - 1 ? 17 : rows));
		for (size_t i = 0; i < m * 3; i++)
			ok &= ra->data[row * 3 + i] == (double)(c * 100000 + i);
		for (size_t i = 0; i < m * 4; i++)
			ok &= rb->data[row * 4 + i] == -(double)(c * 100000 + i);
		row += m;
	}
	CHECK(ok);
	sbi_mat *small = sbi_mat_alloc(1, 3);
	CHECK(sbi_handoff_put(h, 0, small, small) == -1); /* wrong columns */
	sbi_mat_free(small);
	sbi_mat_free(a);
	sbi_mat_free(b);
	sbi_mat_free(ra);
	sbi_mat_free(rb);
	sbi_handoff_free(h);
}

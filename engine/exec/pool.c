/* Forked worker pool (see pool.h).
 *
 * Workers are forked once per sbi_pool_run, on demand, and then fed task
 * numbers over a socket each; a worker answers every task with its return
 * code. The parent blocks in poll() on the busy workers' sockets, waking
 * up only for progress ticks, so a finished task gets its successor at
 * once. (A fork per task with a 100 ms sleep between checks for finished
 * children left workers idle up to a tick after every chunk: --jobs 2 ran
 * cheap simulators 5x slower than --jobs 1; and every fork paid again the
 * copy-on-write faults of the Lua heap that the worker's GC touches.) */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <time.h>
#include <unistd.h>

#include "sbi/pool.h"

#define TICK_MS 100 /* progress ticks while tasks run */
#define MAX_JOBS 256

static int
run_inline(const size_t *tasks, size_t ntasks, sbi_pool_task_fn fn, void *ud,
    sbi_pool_failure *fail, sbi_err *err)
{
	sbi_pool_slot slot;
	for (size_t i = 0; i < ntasks; i++) {
		memset(&slot, 0, sizeof slot);
		int rc = fn(ud, tasks[i], &slot);
		if (rc != SBI_OK) {
			*fail = (sbi_pool_failure){ tasks[i], slot.current, slot.busy, 0 };
			return sbi_err_set(err, rc, "%s", slot.err.msg);
		}
	}
	return SBI_OK;
}

typedef struct worker {
	pid_t pid;   /* 0 when not running */
	int fd;      /* the parent's end of the worker's socket, -1 when none */
	int busy;    /* 1 while it runs `task` */
	size_t task;
} worker;

typedef struct pool {
	worker w[MAX_JOBS];
	int njobs;
	sbi_pool_slot *slots; /* slots[i] is shared with worker i (mmap'ed) */
	sbi_pool_task_fn fn;
	void *ud;
	uint64_t finished;    /* items of the tasks that completed */
} pool;

/* ---- messages: a task number (uint64_t) in, a return code (int32_t) out ---- */

/* Returns 1 when all n bytes were read, 0 at end of file (or a short
 * message: the peer died), -1 on error. */
static int
read_full(int fd, void *buf, size_t n)
{
	char *p = buf;
	while (n > 0) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r == 0 ? 0 : -1;
		p += r;
		n -= (size_t)r;
	}
	return 1;
}

/* 0 when all n bytes were sent. MSG_NOSIGNAL: a dead peer is an EPIPE
 * error, not a SIGPIPE that kills the sender. */
static int
send_full(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n > 0) {
		ssize_t r = send(fd, p, n, MSG_NOSIGNAL);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* ---- a worker ---- */

/* In a new worker: dies with the parent, so a worker stuck in a simulator
 * does not outlive a killed run. The getppid() check closes the race of a
 * parent that died before prctl took effect. */
static void
die_with_parent(pid_t parent)
{
#ifdef __linux__
	prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
	if (getppid() != parent)
		_exit(1);
}

/* The worker's loop: runs the tasks it is sent until the parent closes
 * the socket. Never returns. */
static void
worker_main(int fd, sbi_pool_slot *slot, sbi_pool_task_fn fn, void *ud)
{
	uint64_t task;
	while (read_full(fd, &task, sizeof task) == 1) {
		int32_t rc = fn(ud, (size_t)task, slot);
		if (send_full(fd, &rc, sizeof rc) != 0)
			break;
	}
	_exit(0);
}

/* Forks worker i; -1 with errno set when it cannot. */
static int
spawn(pool *p, int i)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		return -1;
	fflush(NULL); /* so the child does not flush the parent's buffers again */
	pid_t parent = getpid(), pid = fork();
	if (pid < 0) {
		int e = errno;
		close(sv[0]);
		close(sv[1]);
		errno = e;
		return -1;
	}
	if (pid == 0) {
		die_with_parent(parent);
		close(sv[0]);
		/* The other workers' sockets: a worker's death must close its
		 * socket for the parent, so no sibling may hold a copy. */
		for (int k = 0; k < p->njobs; k++)
			if (p->w[k].fd >= 0)
				close(p->w[k].fd);
		worker_main(sv[1], &p->slots[i], p->fn, p->ud);
	}
	close(sv[1]);
	p->w[i] = (worker){ .pid = pid, .fd = sv[0] };
	return 0;
}

/* Closes worker i's socket and waits for it to exit (killing it first when
 * `kill_it`); *status gets its wait status. */
static void
retire(pool *p, int i, int kill_it, int *status)
{
	worker *w = &p->w[i];
	if (w->fd >= 0)
		close(w->fd);
	if (kill_it)
		kill(w->pid, SIGKILL);
	while (waitpid(w->pid, status, 0) < 0 && errno == EINTR)
		;
	*w = (worker){ .fd = -1 };
}

/* ---- the parent ---- */

/* Gives `task` to worker i, starting (or restarting) it as needed. */
static int
dispatch(pool *p, int i, size_t task, sbi_err *err)
{
	worker *w = &p->w[i];
	uint64_t t = task;
	int status;
	memset(&p->slots[i], 0, sizeof p->slots[i]); /* the worker is idle: not touching it */
	if (w->pid != 0 && send_full(w->fd, &t, sizeof t) != 0)
		retire(p, i, 1, &status); /* it died while idle: replace it */
	if (w->pid == 0) {
		if (spawn(p, i) != 0)
			return sbi_err_set(err, SBI_ECHILD, "cannot start a worker: %s", strerror(errno));
		if (send_full(w->fd, &t, sizeof t) != 0)
			return sbi_err_set(err, SBI_ECHILD, "cannot reach a new worker: %s", strerror(errno));
	}
	w->busy = 1;
	w->task = task;
	return SBI_OK;
}

/* The failure of a worker that exited with `status` while running its task. */
static int
record_exit(const sbi_pool_slot *s, size_t task, int status, sbi_pool_failure *fail, sbi_err *err)
{
	*fail = (sbi_pool_failure){ task, s->current, s->busy, 0 };
	if (WIFSIGNALED(status)) {
		fail->signal = WTERMSIG(status);
		return sbi_err_set(err, SBI_ECHILD, "worker process for task %zu was killed by signal %d (%s)",
		    task, fail->signal, strsignal(fail->signal));
	}
	if (s->err.code != SBI_OK)
		return sbi_err_set(err, s->err.code, "%s", s->err.msg);
	return sbi_err_set(err, SBI_ECHILD, "worker process for task %zu exited with status %d", task,
	    WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

/* Reads busy worker i's answer; a failure is recorded when rc is still OK. */
static void
collect(pool *p, int i, int *rc, sbi_pool_failure *fail, sbi_err *err)
{
	worker *w = &p->w[i];
	const sbi_pool_slot *s = &p->slots[i];
	size_t task = w->task;
	int32_t code;
	w->busy = 0;
	p->finished += s->done;
	if (read_full(w->fd, &code, sizeof code) == 1) {
		if (code != SBI_OK && *rc == SBI_OK) {
			*fail = (sbi_pool_failure){ task, s->current, s->busy, 0 };
			*rc = sbi_err_set(err, code, "%s", s->err.code != SBI_OK ? s->err.msg : "a worker's task failed");
		}
		return;
	}
	int status; /* the worker died in its task (a signal, exit() in a simulator) */
	retire(p, i, 0, &status);
	if (*rc == SBI_OK)
		*rc = record_exit(s, task, status, fail, err);
}

static int64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Items finished so far: in completed tasks and in running ones. */
static uint64_t
items_done(const pool *p)
{
	uint64_t done = p->finished;
	for (int i = 0; i < p->njobs; i++)
		done += p->w[i].busy ? p->slots[i].done : 0;
	return done;
}

/* Waits until a busy worker answers (or dies), ticking progress meanwhile;
 * collects every answer that is ready. */
static int
wait_answers(pool *p, sbi_pool_tick_fn tick, int64_t *next_tick, int *rc, sbi_pool_failure *fail,
    sbi_err *err)
{
	struct pollfd fds[MAX_JOBS];
	int idx[MAX_JOBS], n = 0;
	for (int i = 0; i < p->njobs; i++)
		if (p->w[i].busy) {
			fds[n] = (struct pollfd){ .fd = p->w[i].fd, .events = POLLIN };
			idx[n++] = i;
		}
	if (n == 0)
		return 0;
	int64_t wait = *next_tick - now_ms();
	int ready = poll(fds, (nfds_t)n, tick == NULL ? -1 : wait > 0 ? (int)wait : 0);
	if (ready < 0 && errno != EINTR)
		return sbi_err_set(err, SBI_ECHILD, "cannot wait for the workers: %s", strerror(errno));
	if (tick != NULL && now_ms() >= *next_tick) {
		tick(p->ud, items_done(p));
		*next_tick = now_ms() + TICK_MS;
	}
	for (int k = 0; ready > 0 && k < n; k++)
		if (fds[k].revents != 0)
			collect(p, idx[k], rc, fail, err);
	return 1;
}

static int
run_forked(pool *p, const size_t *tasks, size_t ntasks, sbi_pool_tick_fn tick, sbi_pool_failure *fail,
    sbi_err *err)
{
	size_t next = 0;
	int rc = SBI_OK, waiting;
	int64_t next_tick = now_ms() + TICK_MS;
	do {
		for (int i = 0; rc == SBI_OK && next < ntasks && i < p->njobs; i++)
			if (!p->w[i].busy && (rc = dispatch(p, i, tasks[next], err)) == SBI_OK)
				next++;
		/* After a failure, running workers finish their task; none gets another. */
		waiting = wait_answers(p, tick, &next_tick, &rc, fail, err);
		if (waiting < 0)
			return waiting;
	} while (waiting);
	return rc;
}

/* Ends every worker: an idle one exits when its socket closes; a busy one
 * (only after an internal error) is killed. */
static void
close_pool(pool *p)
{
	int status;
	for (int i = 0; i < p->njobs; i++)
		if (p->w[i].pid != 0 && !p->w[i].busy && p->w[i].fd >= 0) {
			close(p->w[i].fd); /* all first, so they exit in parallel */
			p->w[i].fd = -1;
		}
	for (int i = 0; i < p->njobs; i++)
		if (p->w[i].pid != 0)
			retire(p, i, p->w[i].busy, &status);
}

int
sbi_pool_run(const size_t *tasks, size_t ntasks, int njobs, sbi_pool_task_fn fn,
    sbi_pool_tick_fn tick, void *ud, sbi_pool_failure *fail, sbi_err *err)
{
	memset(fail, 0, sizeof *fail);
	if (njobs <= 1 || ntasks <= 1)
		return run_inline(tasks, ntasks, fn, ud, fail, err);
	if (njobs > MAX_JOBS)
		njobs = MAX_JOBS;
	if ((size_t)njobs > ntasks) /* no worker without a task */
		njobs = (int)ntasks;
	size_t bytes = (size_t)njobs * sizeof(sbi_pool_slot);
	sbi_pool_slot *slots = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (slots == MAP_FAILED)
		return sbi_err_set(err, SBI_ENOMEM, "cannot map worker slots: %s", strerror(errno));
	pool pl = { .njobs = njobs, .slots = slots, .fn = fn, .ud = ud }, *p = &pl;
	for (int i = 0; i < MAX_JOBS; i++)
		p->w[i] = (worker){ .fd = -1 };
	int rc = run_forked(p, tasks, ntasks, tick, fail, err);
	close_pool(p);
	munmap(slots, bytes);
	return rc;
}

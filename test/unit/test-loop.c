/* Unit tests for lib/loop: timers, I/O, signals, deferred calls, freeing sources from callbacks
 * and the worker pool's bound, thread affinity and cancellation at loop_free. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/eventfd.h>

#include "loop/loop.h"

#define WAIT_LIMIT_ITERATIONS 100000

static pthread_t main_thread;

/* Run iterations until *flag becomes true; a bound turns a hang into a failure. */
static void run_until(struct loop *l, const bool *flag)
{
	for (int i = 0; i < WAIT_LIMIT_ITERATIONS && !*flag; i++)
		assert_true(loop_run_once(l, -1) >= 0);
	assert_true(*flag);
}

/* ---- timers ---- */

struct order {
	int fired[64];
	int n;
};

struct timer_ctx {
	struct order *order;
	int id;
};

static void record_timer(struct loop_source *s, void *userdata)
{
	struct timer_ctx *c = userdata;
	c->order->fired[c->order->n++] = c->id;
}

static void test_timers_fire_in_deadline_order(void **state)
{
	_cleanup_(loop_freep) struct loop *l = NULL;
	assert_int_equal(loop_new(&l), 0);
	struct order order = {0};
	int64_t now = now_ns();
	/* Added out of order; deadlines are 0..4 ms ahead plus one in the past. */
	static const int64_t offsets_ms[] = {3, 1, 4, -5, 0, 2};
	static const int expect[] = {3, 4, 1, 5, 0, 2};
	struct timer_ctx ctx[ELEMENTSOF(offsets_ms)];
	for (size_t i = 0; i < ELEMENTSOF(offsets_ms); i++) {
		ctx[i] = (struct timer_ctx){&order, (int)i};
		assert_int_equal(loop_add_timer(l, now + offsets_ms[i] * NSEC_PER_MSEC,
						record_timer, &ctx[i], NULL),
				 0);
	}
	for (int i = 0; i < WAIT_LIMIT_ITERATIONS && order.n < (int)ELEMENTSOF(expect); i++)
		assert_true(loop_run_once(l, -1) >= 0);
	assert_int_equal(order.n, ELEMENTSOF(expect));
	for (size_t i = 0; i < ELEMENTSOF(expect); i++)
		assert_int_equal(order.fired[i], expect[i]);
	/* A timer fired only once: nothing more happens. */
	assert_int_equal(loop_run_once(l, 0), 0);
}

struct many_ctx {
	int64_t last_deadline;
	unsigned fired;
	bool out_of_order;
};

struct heap_probe {
	struct many_ctx *ctx;
	int64_t deadline;
};

static void probe_timer(struct loop_source *s, void *userdata)
{
	struct heap_probe *p = userdata;
	if (p->deadline < p->ctx->last_deadline)
		p->ctx->out_of_order = true;
	p->ctx->last_deadline = p->deadline;
	p->ctx->fired++;
	loop_source_free(s);
}

static void test_many_timers_in_order(void **state)
{
	enum { N = 20000 };
	_cleanup_(loop_freep) struct loop *l = NULL;
	assert_int_equal(loop_new(&l), 0);
	struct many_ctx ctx = {.last_deadline = INT64_MIN};
	struct heap_probe *probes = calloc(N, sizeof(*probes));
	assert_non_null(probes);
	struct loop_source **srcs = calloc(N, sizeof(*srcs));
	assert_non_null(srcs);
	int64_t base = now_ns() - 10 * NSEC_PER_SEC;
	unsigned seed = 12345;
	for (int i = 0; i < N; i++) {
		seed = seed * 1103515245u + 12345u;
		probes[i] = (struct heap_probe){&ctx, base + (int64_t)(seed % 1000000u)};
		assert_int_equal(
		    loop_add_timer(l, probes[i].deadline, probe_timer, &probes[i], &srcs[i]), 0);
	}
	/* Free every third before it fires: the heap must stay consistent. */
	unsigned freed = 0;
	for (int i = 0; i < N; i += 3) {
		loop_source_free(srcs[i]);
		freed++;
	}
	/* Move some to other past deadlines to exercise re-keying inside the heap. */
	for (int i = 1; i < N; i += 7) {
		if (i % 3 == 0)
			continue;
		probes[i].deadline = base + (int64_t)((unsigned)i * 7919u % 1000000u);
		assert_int_equal(loop_source_set_timer(srcs[i], probes[i].deadline), 0);
	}
	/* Everything is already due: one iteration runs them all. */
	assert_int_equal(loop_run_once(l, 0), N - freed);
	assert_int_equal(ctx.fired, N - freed);
	assert_false(ctx.out_of_order);
	free(probes);
	free(srcs);
}

struct rearm_ctx {
	int count;
	int64_t last_deadline;
};

static void rearm_timer(struct loop_source *s, void *userdata)
{
	struct rearm_ctx *c = userdata;
	c->count++;
	/* Fires no earlier than its deadline. */
	assert_true(now_ns() >= c->last_deadline);
	if (c->count < 5) {
		c->last_deadline = now_ns() + NSEC_PER_MSEC;
		assert_int_equal(loop_source_set_timer(s, c->last_deadline), 0);
	}
}

static void test_timer_rearm_from_callback(void **state)
{
	_cleanup_(loop_freep) struct loop *l = NULL;
	assert_int_equal(loop_new(&l), 0);
	struct rearm_ctx c = {.last_deadline = now_ns()};
	struct loop_source *s = NULL;
	assert_int_equal(loop_add_timer(l, c.last_deadline, rearm_timer, &c, &s), 0);
	for (int i = 0; i < WAIT_LIMIT_ITERATIONS && c.count < 5; i++)
		assert_true(loop_run_once(l, -1) >= 0);
	assert_int_equal(c.count, 5);
	assert_int_equal(loop_run_once(l, 0), 0);
	/* Re-arm after it fired, from outside a callback. */
	c.last_deadline = now_ns();
	assert_int_equal(loop_source_set_timer(s, c.last_deadline), 0);
	assert_int_equal(loop_run_once(l, -1), 1);
	assert_int_equal(c.count, 6);
	loop_source_free(s);
}

static void rearm_in_past(struct loop_source *s, void *userdata)
{
	int *count = userdata;
	(*count)++;
	if (*count < 3)
		assert_int_equal(loop_source_set_timer(s, 0), 0);
}

static void test_timer_rearmed_in_past_waits_for_next_iteration(void **state)
{
	_cleanup_(loop_freep) struct loop *l = NULL;
	assert_int_equal(loop_new(&l), 0);
	int count = 0;
	assert_int_equal(loop_add_timer(l, 0, rearm_in_past, &count, NULL), 0);
	/* Already due again after each call, yet one firing per iteration: no spinning. */
	for (int i = 1; i <= 3; i++) {
		assert_int_equal(loop_run_once(l, -1), 1);
		assert_int_equal(count, i);
	}
	assert_int_equal(loop_run_once(l, 0), 0);
}

struct pair_ctx {
	struct loop_source *other;
	int fired;
};

static void free_other_timer(struct loop_source *s, void *userdata)
{
	struct pair_ctx *c = userdata;
	c->fired++;
	loop_source_free(c->other);
	loop_source_free(s);
}

static void test_timer_frees_other_due_timer(void **state)
{
	_cleanup_(loop_freep) struct loop *l = NULL;
	assert_int_equal(loop_new(&l), 0);
	struct pair_ctx a = {0}, b = {0};
	struct loop_source *sa, *sb;
	int64_t t = now_ns() - NSEC_PER_SEC;
	assert_int_equal(loop_add_timer(l, t, free_other_timer, &a, &sa), 0);
	assert_int_equal(loop_add_timer(l, t + 1, free_other_timer, &b, &sb), 0);
	a.other = sb;
	b.other = sa;
	assert_int_equal(loop_run_once(l, 0), 1);
	assert_int_equal(a.fired, 1);
	assert_int_equal(b.fired, 0);
	assert_int_equal(loop_run_once(l, 0), 0);
}

static void exit_timer(struct loop_source *s, void *userdata)
{
	loop_exit(loop_source_get_loop(s), 7);
	loop_source_free(s);
}

static void test_run_and_exit(void **state)
{
	_cleanup_(loop_freep) struct loop *l = NULL;
	assert_int_equal(loop_new(&l), 0);
	assert_int_equal(loop_add_timer(l, now_ns() + NSEC_PER_MSEC, exit_timer, NULL, NULL), 0);
	assert_false(loop_is_exiting(l));
	assert_int_equal(loop_run(l), 7);
}

/* ---- I/O ---- */

struct io_ctx {
	struct loop_source *other;
	int fired;
	char got[16];
	size_t got_len;
};

static void io_read(struct loop_source *s, int fd, uint32_t events, void *userdata)
{
	struct io_ctx *c = userdata;
	c->fired++;
	assert_true(events & EPOLLIN);
	ssize_t n = read(fd, c->got + c->got_len, sizeof(c->got) - c->got_len);
	assert_true(n > 0);
	c->got_len += (size_t)n;
}

static void test_io_read(void **state)
{
	_cleanup_(loop_freep) struct loop *l = NULL;
	assert_int_equal(loop_new(&l), 0);
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	struct io_ctx c = {0};
	struct loop_source *s;
	assert_int_equal(loop_add_io(l, p[0], EPOLLIN, io_read, &c, &s), 0);
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_int_equal(write(p[1], "hi", 2), 2);
	assert_int_equal(loop_run_once(l, -1), 1);
	assert_int_equal(c.got_len, 2);
	assert_memory_equal(c.got, "hi", 2);
	/* With no events wanted the source stays quiet even though data is waiting. */
	assert_int_equal(loop_source_set_io_events(s, 0), 0);
	assert_int_equal(write(p[1], "x", 1), 1);
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_int_equal(loop_source_set_io_events(s, EPOLLIN), 0);
	assert_int_equal(loop_run_once(l, -1), 1);
	assert_int_equal(c.got_len, 3);
	loop_source_free(s);
	close(p[0]);
	close(p[1]);
}

static void io_free_self(struct loop_source *s, int fd, uint32_t events, void *userdata)
{
	struct io_ctx *c = userdata;
	c->fired++;
	loop_source_free(s);
	/* A second free of the same source inside the iteration is harmless. */
	loop_source_free(s);
}

static void io_free_other(struct loop_source *s, int fd, uint32_t events, void *userdata)
{
	struct io_ctx *c = userdata;
	c->fired++;
	c->other = loop_source_free(c->other);
}

static void test_io_free_inside_callback(void **state)
{
	_cleanup_(loop_freep) struct loop *l = NULL;
	assert_int_equal(loop_new(&l), 0);
	int p[2], q[2];
	assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	assert_int_equal(pipe2(q, O_CLOEXEC | O_NONBLOCK), 0);

	/* A source freeing itself is not called again although its fd stays readable. */
	struct io_ctx self = {0};
	assert_int_equal(loop_add_io(l, p[0], EPOLLIN, io_free_self, &self, NULL), 0);
	assert_int_equal(write(p[1], "a", 1), 1);
	assert_int_equal(loop_run_once(l, -1), 1);
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_int_equal(self.fired, 1);

	/* Two sources ready in the same batch; whichever runs first frees the other, which then
	 * must not run (its event is already in the batch). */
	struct io_ctx a = {0}, b = {0};
	struct loop_source *sa, *sb;
	char dummy;
	assert_int_equal(read(p[0], &dummy, 1), 1);
	assert_int_equal(loop_add_io(l, p[0], EPOLLIN, io_free_other, &a, &sa), 0);
	assert_int_equal(loop_add_io(l, q[0], EPOLLIN, io_free_other, &b, &sb), 0);
	a.other = sb;
	b.other = sa;
	assert_int_equal(write(p[1], "a", 1), 1);
	assert_int_equal(write(q[1], "b", 1), 1);
	assert_int_equal(loop_run_once(l, -1), 1);
	assert_int_equal(a.fired + b.fired, 1);
	/* The survivor still works. */
	assert_int_equal(loop_run_once(l, -1), 1);
	assert_int_equal(a.fired + b.fired, 2);
	loop_source_free(a.fired == 2 ? sa : sb);
	close(p[0]);
	close(p[1]);
	close(q[0]);
	close(q[1]);
}

/* ---- signals ---- */

struct sig_ctx {
	int signo;
	int count;
};

static void on_signal(struct loop_source *s, int signo, void *userdata)
{
	struct sig_ctx *c = userdata;
	c->signo = signo;
	c->count++;
}

static void test_signals(void **state)
{
	_cleanup_(loop_freep) struct loop *l = NULL;
	assert_int_equal(loop_new(&l), 0);
	struct sig_ctx u1 = {0}, u2 = {0};
	struct loop_source *s1, *s2;
	assert_int_equal(loop_add_signal(l, SIGUSR1, on_signal, &u1, &s1), 0);
	assert_int_equal(loop_add_signal(l, SIGUSR2, on_signal, &u2, &s2), 0);
	assert_int_equal(loop_add_signal(l, SIGUSR1, on_signal, &u1, NULL), -EBUSY);
	assert_int_equal(loop_add_signal(l, SIGKILL, on_signal, &u1, NULL), -EINVAL);

	/* The signal is blocked now, so raise() leaves it pending for the signalfd. */
	assert_int_equal(raise(SIGUSR1), 0);
	assert_int_equal(loop_run_once(l, -1), 1);
	assert_int_equal(u1.count, 1);
	assert_int_equal(u1.signo, SIGUSR1);
	assert_int_equal(u2.count, 0);

	assert_int_equal(kill(getpid(), SIGUSR2), 0);
	assert_int_equal(loop_run_once(l, -1), 1);
	assert_int_equal(u2.count, 1);
	assert_int_equal(u2.signo, SIGUSR2);
	loop_source_free(s1);
	loop_source_free(s2);
	/* Drain anything left so later tests start clean. */
	sigset_t set;
	assert_int_equal(sigpending(&set), 0);
	assert_false(sigismember(&set, SIGUSR1));
	assert_false(sigismember(&set, SIGUSR2));
}

/* ---- deferred calls ---- */

struct defer_ctx {
	struct loop *loop;
	int count;
	int nested_count;
};

static void nested_defer(struct loop_source *s, void *userdata)
{
	struct defer_ctx *c = userdata;
	c->nested_count++;
}

static void on_defer(struct loop_source *s, void *userdata)
{
	struct defer_ctx *c = userdata;
	c->count++;
	/* Added during dispatch: must wait for the next iteration. */
	assert_int_equal(loop_add_defer(c->loop, nested_defer, c, NULL), 0);
}

static void test_defer(void **state)
{
	_cleanup_(loop_freep) struct loop *l = NULL;
	assert_int_equal(loop_new(&l), 0);
	struct defer_ctx c = {.loop = l};
	struct loop_source *kept = NULL;
	assert_int_equal(loop_add_defer(l, on_defer, &c, NULL), 0);
	assert_int_equal(loop_add_defer(l, nested_defer, &c, &kept), 0);
	/* Pending defers make the wait return at once. */
	assert_int_equal(loop_run_once(l, -1), 2);
	assert_int_equal(c.count, 1);
	assert_int_equal(c.nested_count, 1);
	assert_int_equal(loop_run_once(l, -1), 1);
	assert_int_equal(c.nested_count, 2);
	/* Each runs once. */
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_int_equal(c.count, 1);
	assert_int_equal(c.nested_count, 2);
	assert_ptr_equal(loop_source_get_loop(kept), l);
	loop_source_free(kept);

	/* A defer freed before it runs never runs. */
	assert_int_equal(loop_add_defer(l, on_defer, &c, &kept), 0);
	loop_source_free(kept);
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_int_equal(c.count, 1);
	/* An auto-freed defer that never ran is released by loop_free (ASan checks the leak). */
	assert_int_equal(loop_add_defer(l, on_defer, &c, NULL), 0);
}

/* ---- worker pool ---- */

struct pool_shared {
	atomic_int current;
	atomic_int max_seen;
	unsigned target;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool reached;
	atomic_int next_start;
	bool fifo_ok;
};

struct job {
	struct pool_shared *sh;
	int index;
	int start_rank;
	bool done;
	bool on_loop_thread;
	int result;
	bool signals_blocked;
};

static int pool_work(void *data)
{
	struct job *j = data;
	struct pool_shared *sh = j->sh;
	j->start_rank = atomic_fetch_add(&sh->next_start, 1);

	sigset_t mask;
	pthread_sigmask(SIG_BLOCK, NULL, &mask);
	j->signals_blocked = sigismember(&mask, SIGTERM) && sigismember(&mask, SIGINT) &&
			     sigismember(&mask, SIGUSR1) && sigismember(&mask, SIGCHLD);

	int cur = atomic_fetch_add(&sh->current, 1) + 1;
	int m = atomic_load(&sh->max_seen);
	while (cur > m && !atomic_compare_exchange_weak(&sh->max_seen, &m, cur))
		;
	/* Hold every work until the pool has been seen at its full width once; a pool that runs
	 * fewer at a time would never get there (the bounded wait turns that into a failure). */
	pthread_mutex_lock(&sh->mu);
	if ((unsigned)cur >= sh->target) {
		sh->reached = true;
		pthread_cond_broadcast(&sh->cond);
	}
	struct timespec limit;
	clock_gettime(CLOCK_REALTIME, &limit);
	limit.tv_sec += 30;
	while (!sh->reached)
		if (pthread_cond_timedwait(&sh->cond, &sh->mu, &limit) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&sh->mu);
	atomic_fetch_sub(&sh->current, 1);
	return j->index * 2;
}

static void pool_done(struct loop *l, int result, void *data)
{
	struct job *j = data;
	j->done = true;
	j->result = result;
	j->on_loop_thread = pthread_equal(pthread_self(), main_thread);
}

static unsigned count_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	assert_non_null(d);
	unsigned n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void test_pool_bounded(void **state)
{
	enum { N = 40, P = 4 };
	unsigned base = count_threads();
	_cleanup_(loop_freep) struct loop *l = NULL;
	assert_int_equal(loop_new(&l), 0);
	assert_int_equal(loop_get_pool_size(l), 32);
	assert_int_equal(loop_set_pool_size(l, 0), -EINVAL);
	assert_int_equal(loop_set_pool_size(l, P), 0);
	assert_int_equal(loop_get_pool_size(l), P);

	struct pool_shared sh = {.target = P};
	pthread_mutex_init(&sh.mu, NULL);
	pthread_cond_init(&sh.cond, NULL);
	struct job jobs[N];
	for (int i = 0; i < N; i++) {
		jobs[i] = (struct job){.sh = &sh, .index = i};
		assert_int_equal(loop_submit_work(l, pool_work, pool_done, &jobs[i]), 0);
	}
	assert_int_equal(loop_pending_work(l), N);
	for (int i = 0; i < N; i++)
		run_until(l, &jobs[i].done);
	assert_int_equal(loop_pending_work(l), 0);
	assert_int_equal(atomic_load(&sh.max_seen), P);
	for (int i = 0; i < N; i++) {
		assert_int_equal(jobs[i].result, i * 2);
		assert_true(jobs[i].on_loop_thread);
		assert_true(jobs[i].signals_blocked);
	}
	/* Lazily started: never more workers than the pool size. */
	assert_true(count_threads() <= base + P);
	pthread_cond_destroy(&sh.cond);
	pthread_mutex_destroy(&sh.mu);
}

static void test_pool_fifo_and_lazy(void **state)
{
	enum { N = 10 };
	unsigned base = count_threads();
	_cleanup_(loop_freep) struct loop *l = NULL;
	assert_int_equal(loop_new(&l), 0);
	/* No work yet: no threads. */
	assert_int_equal(count_threads(), base);
	assert_int_equal(loop_set_pool_size(l, 1), 0);
	assert_int_equal(count_threads(), base);

	struct pool_shared sh = {.target = 1};
	pthread_mutex_init(&sh.mu, NULL);
	pthread_cond_init(&sh.cond, NULL);
	struct job jobs[N];
	for (int i = 0; i < N; i++) {
		jobs[i] = (struct job){.sh = &sh, .index = i};
		assert_int_equal(loop_submit_work(l, pool_work, pool_done, &jobs[i]), 0);
	}
	for (int i = 0; i < N; i++)
		run_until(l, &jobs[i].done);
	/* One worker runs them in submission order. */
	for (int i = 0; i < N; i++)
		assert_int_equal(jobs[i].start_rank, i);
	assert_int_equal(atomic_load(&sh.max_seen), 1);
	assert_int_equal(count_threads(), base + 1);
	pthread_cond_destroy(&sh.cond);
	pthread_mutex_destroy(&sh.mu);
}

/* loop_free joins its workers with pthread_join. The test interposes it so the blocking work is
 * released only once loop_free has begun shutting the pool down: what is queued then is
 * cancelled deterministically, with no sleeps. */
static atomic_bool release_on_join;
static int release_fd = -1;

int pthread_join(pthread_t t, void **ret);
int pthread_join(pthread_t t, void **ret)
{
	static int (*real_join)(pthread_t, void **);
	if (!real_join)
		real_join = (int (*)(pthread_t, void **))dlsym(RTLD_NEXT, "pthread_join");
	if (atomic_exchange(&release_on_join, false)) {
		uint64_t one = 1;
		if (write(release_fd, &one, sizeof(one)) != sizeof(one))
			abort();
	}
	return real_join(t, ret);
}

struct cancel_job {
	bool ran;
	bool done;
	int result;
	atomic_bool *started;
};

static int blocking_work(void *data)
{
	struct cancel_job *j = data;
	j->ran = true;
	atomic_store(j->started, true);
	uint64_t v;
	/* Blocking read on the eventfd: returns once the test releases it. No cmocka asserts on
	 * worker threads: a failure is reported through the result. */
	if (read(release_fd, &v, sizeof(v)) != sizeof(v))
		return -EIO;
	return 42;
}

static int quick_work(void *data)
{
	struct cancel_job *j = data;
	j->ran = true;
	return 1;
}

static void cancel_done(struct loop *l, int result, void *data)
{
	struct cancel_job *j = data;
	assert_false(j->done);
	j->done = true;
	j->result = result;
	assert_true(pthread_equal(pthread_self(), main_thread));
	/* The loop is shutting down: no new work is accepted. */
	assert_int_equal(loop_submit_work(l, quick_work, cancel_done, j), -ECANCELED);
}

static void test_free_cancels_queued_work(void **state)
{
	struct loop *l = NULL;
	assert_int_equal(loop_new(&l), 0);
	assert_int_equal(loop_set_pool_size(l, 1), 0);
	release_fd = eventfd(0, EFD_CLOEXEC);
	assert_true(release_fd >= 0);
	atomic_bool started = false;
	struct cancel_job running = {.started = &started}, queued[3] = {0};
	assert_int_equal(loop_submit_work(l, blocking_work, cancel_done, &running), 0);
	for (size_t i = 0; i < ELEMENTSOF(queued); i++)
		assert_int_equal(loop_submit_work(l, quick_work, cancel_done, &queued[i]), 0);
	/* Wait (bounded by a generous limit, not a timing assertion) until the work runs. */
	for (int i = 0; i < 30000 && !atomic_load(&started); i++)
		usleep(1000);
	assert_true(atomic_load(&started));

	atomic_store(&release_on_join, true);
	l = loop_free(l);
	assert_null(l);

	assert_true(running.done);
	assert_int_equal(running.result, 42);
	for (size_t i = 0; i < ELEMENTSOF(queued); i++) {
		assert_true(queued[i].done);
		assert_false(queued[i].ran);
		assert_int_equal(queued[i].result, -ECANCELED);
	}
	close(release_fd);
	release_fd = -1;
}

static void test_free_null_and_bad_args(void **state)
{
	assert_null(loop_free(NULL));
	assert_null(loop_source_free(NULL));
	_cleanup_(loop_freep) struct loop *l = NULL;
	assert_int_equal(loop_new(&l), 0);
	assert_int_equal(loop_add_io(l, -1, EPOLLIN, io_read, NULL, NULL), -EINVAL);
	assert_int_equal(loop_add_timer(l, 0, NULL, NULL, NULL), -EINVAL);
	assert_int_equal(loop_submit_work(l, NULL, pool_done, NULL), -EINVAL);
	/* Not a timer: re-arming is refused. */
	struct loop_source *d;
	assert_int_equal(loop_add_defer(l, nested_defer, NULL, &d), 0);
	assert_int_equal(loop_source_set_timer(d, 0), -EINVAL);
	assert_int_equal(loop_source_set_io_events(d, EPOLLIN), -EINVAL);
	/* Sources left registered are released by loop_free (ASan checks the leak). */
	assert_int_equal(loop_add_timer(l, now_ns() + NSEC_PER_SEC, record_timer, NULL, NULL), 0);
}

int main(void)
{
	main_thread = pthread_self();
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_timers_fire_in_deadline_order),
	    cmocka_unit_test(test_many_timers_in_order),
	    cmocka_unit_test(test_timer_rearm_from_callback),
	    cmocka_unit_test(test_timer_rearmed_in_past_waits_for_next_iteration),
	    cmocka_unit_test(test_timer_frees_other_due_timer),
	    cmocka_unit_test(test_run_and_exit),
	    cmocka_unit_test(test_io_read),
	    cmocka_unit_test(test_io_free_inside_callback),
	    cmocka_unit_test(test_signals),
	    cmocka_unit_test(test_defer),
	    cmocka_unit_test(test_pool_fifo_and_lazy),
	    cmocka_unit_test(test_pool_bounded),
	    cmocka_unit_test(test_free_cancels_queued_work),
	    cmocka_unit_test(test_free_null_and_bad_args),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

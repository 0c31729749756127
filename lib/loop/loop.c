/* lib/loop: epoll event loop with a timer heap, signalfd signals, deferred calls and a lazily
 * started, bounded worker pool whose results come back to the loop thread through an eventfd. */
#include "loop/loop.h"

#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>

#define EVENTS_PER_WAIT 64
#define DEFAULT_POOL_SIZE 32
#define NOT_IN_HEAP SIZE_MAX

enum source_type {
	SOURCE_IO,
	SOURCE_TIMER,
	SOURCE_SIGNAL,
	SOURCE_DEFER,
	SOURCE_WAKE, /* the loop's own eventfd for finished work */
};

struct loop_source {
	struct loop *loop;
	enum source_type type;
	bool dead;
	void *userdata;
	union {
		loop_io_fn io;
		loop_timer_fn timer;
		loop_signal_fn signal;
		loop_defer_fn defer;
	} fn;

	/* every live source, for loop_free */
	struct loop_source *prev, *next;
	/* sources freed during dispatch, released once no dispatch is running */
	struct loop_source *dead_next;

	int fd; /* io: the caller's fd; signal: our signalfd */
	uint32_t events;

	int64_t deadline_ns;
	size_t heap_idx;
	uint64_t armed_iter;

	int signo;

	/* defer queue; gen keeps calls added during dispatch for the next iteration */
	struct loop_source *defer_prev, *defer_next;
	bool defer_queued;
	bool auto_free;
	uint64_t defer_gen;
};

struct work {
	loop_work_fn work;
	loop_done_fn done;
	void *data;
	int result;
	struct work *next;
};

struct work_list {
	struct work *head, *tail;
};

struct loop {
	int epfd;
	bool exiting;
	int exit_code;
	unsigned dispatch_depth;
	uint64_t iter;

	struct loop_source *sources;
	struct loop_source *dead;

	struct loop_source **heap;
	size_t heap_len, heap_cap;

	struct loop_source *defer_head, *defer_tail;

	struct loop_source wake;
	unsigned pending_work; /* loop thread only: submitted and done not yet run */
	bool freeing;

	/* Everything below is shared with the workers and guarded by mu. */
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct work_list queue;
	struct work_list finished;
	unsigned queued;
	unsigned running;
	unsigned pool_size;
	bool stop;
	pthread_t *threads;
	unsigned n_threads, threads_cap;
};

/* ---- work lists ---- */

static void work_list_append(struct work_list *wl, struct work *w)
{
	w->next = NULL;
	if (wl->tail)
		wl->tail->next = w;
	else
		wl->head = w;
	wl->tail = w;
}

static struct work *work_list_pop(struct work_list *wl)
{
	struct work *w = wl->head;
	if (w) {
		wl->head = w->next;
		if (!wl->head)
			wl->tail = NULL;
		w->next = NULL;
	}
	return w;
}

/* ---- timer heap ---- */

static bool heap_less(const struct loop_source *a, const struct loop_source *b)
{
	return a->deadline_ns < b->deadline_ns;
}

static void heap_set(struct loop *l, size_t i, struct loop_source *s)
{
	l->heap[i] = s;
	s->heap_idx = i;
}

static void heap_up(struct loop *l, size_t i)
{
	struct loop_source *s = l->heap[i];
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!heap_less(s, l->heap[parent]))
			break;
		heap_set(l, i, l->heap[parent]);
		i = parent;
	}
	heap_set(l, i, s);
}

static void heap_down(struct loop *l, size_t i)
{
	struct loop_source *s = l->heap[i];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= l->heap_len)
			break;
		if (c + 1 < l->heap_len && heap_less(l->heap[c + 1], l->heap[c]))
			c++;
		if (!heap_less(l->heap[c], s))
			break;
		heap_set(l, i, l->heap[c]);
		i = c;
	}
	heap_set(l, i, s);
}

static int heap_reserve(struct loop *l)
{
	if (l->heap_len < l->heap_cap)
		return 0;
	size_t cap = l->heap_cap ? l->heap_cap * 2 : 64;
	struct loop_source **h = reallocarray(l->heap, cap, sizeof(*h));
	if (!h)
		return -ENOMEM;
	l->heap = h;
	l->heap_cap = cap;
	return 0;
}

static void heap_remove(struct loop *l, struct loop_source *s)
{
	size_t i = s->heap_idx;
	if (i == NOT_IN_HEAP)
		return;
	s->heap_idx = NOT_IN_HEAP;
	l->heap_len--;
	if (i == l->heap_len)
		return;
	heap_set(l, i, l->heap[l->heap_len]);
	if (i > 0 && heap_less(l->heap[i], l->heap[(i - 1) / 2]))
		heap_up(l, i);
	else
		heap_down(l, i);
}

/* Callers reserve heap space first so that re-arming an armed timer cannot fail half-way. */
static void heap_insert(struct loop *l, struct loop_source *s)
{
	heap_set(l, l->heap_len++, s);
	heap_up(l, s->heap_idx);
}

/* ---- defer queue ---- */

static void defer_unlink(struct loop *l, struct loop_source *s)
{
	if (!s->defer_queued)
		return;
	if (s->defer_prev)
		s->defer_prev->defer_next = s->defer_next;
	else
		l->defer_head = s->defer_next;
	if (s->defer_next)
		s->defer_next->defer_prev = s->defer_prev;
	else
		l->defer_tail = s->defer_prev;
	s->defer_prev = s->defer_next = NULL;
	s->defer_queued = false;
}

static void defer_append(struct loop *l, struct loop_source *s)
{
	s->defer_prev = l->defer_tail;
	s->defer_next = NULL;
	if (l->defer_tail)
		l->defer_tail->defer_next = s;
	else
		l->defer_head = s;
	l->defer_tail = s;
	s->defer_queued = true;
	s->defer_gen = l->iter;
}

/* ---- sources ---- */

static struct loop_source *source_new(struct loop *l, enum source_type type, void *userdata)
{
	struct loop_source *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->loop = l;
	s->type = type;
	s->userdata = userdata;
	s->fd = -EBADF;
	s->heap_idx = NOT_IN_HEAP;
	s->next = l->sources;
	if (l->sources)
		l->sources->prev = s;
	l->sources = s;
	return s;
}

/* Detach a source from the kernel and every loop structure; memory is released separately. */
static void source_disconnect(struct loop_source *s)
{
	struct loop *l = s->loop;
	switch (s->type) {
	case SOURCE_IO:
		/* The caller may already have closed the fd; then the kernel dropped it itself. */
		if (s->fd >= 0)
			(void)epoll_ctl(l->epfd, EPOLL_CTL_DEL, s->fd, NULL);
		break;
	case SOURCE_SIGNAL:
		if (s->fd >= 0) {
			(void)epoll_ctl(l->epfd, EPOLL_CTL_DEL, s->fd, NULL);
			s->fd = safe_close(s->fd);
		}
		/* The signal stays blocked: unblocking could let a pending one kill the process. */
		break;
	case SOURCE_TIMER:
		heap_remove(l, s);
		break;
	case SOURCE_DEFER:
		defer_unlink(l, s);
		break;
	case SOURCE_WAKE:
		break;
	}
	if (s->prev)
		s->prev->next = s->next;
	else
		l->sources = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->prev = s->next = NULL;
}

static void release_dead(struct loop *l)
{
	while (l->dead) {
		struct loop_source *s = l->dead;
		l->dead = s->dead_next;
		free(s);
	}
}

struct loop_source *loop_source_free(struct loop_source *s)
{
	if (!s || s->dead)
		return NULL;
	struct loop *l = s->loop;
	s->dead = true;
	source_disconnect(s);
	if (l->dispatch_depth > 0) {
		/* Events for it may still sit in the current batch: keep the memory until then. */
		s->dead_next = l->dead;
		l->dead = s;
	} else {
		free(s);
	}
	return NULL;
}

struct loop *loop_source_get_loop(const struct loop_source *s)
{
	return s ? s->loop : NULL;
}

int loop_add_io(struct loop *l, int fd, uint32_t events, loop_io_fn fn, void *userdata,
		struct loop_source **ret)
{
	if (!l || fd < 0 || !fn)
		return -EINVAL;
	struct loop_source *s = source_new(l, SOURCE_IO, userdata);
	if (!s)
		return -ENOMEM;
	s->fn.io = fn;
	s->fd = fd;
	s->events = events;
	struct epoll_event ev = {.events = events, .data.ptr = s};
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int r = -errno;
		s->fd = -EBADF;
		loop_source_free(s);
		return r;
	}
	if (ret)
		*ret = s;
	return 0;
}

int loop_source_set_io_events(struct loop_source *s, uint32_t events)
{
	if (!s || s->dead || s->type != SOURCE_IO)
		return -EINVAL;
	struct epoll_event ev = {.events = events, .data.ptr = s};
	if (epoll_ctl(s->loop->epfd, EPOLL_CTL_MOD, s->fd, &ev) < 0)
		return -errno;
	s->events = events;
	return 0;
}

int loop_add_timer(struct loop *l, int64_t deadline_ns, loop_timer_fn fn, void *userdata,
		   struct loop_source **ret)
{
	if (!l || !fn)
		return -EINVAL;
	int r = heap_reserve(l);
	if (r < 0)
		return r;
	struct loop_source *s = source_new(l, SOURCE_TIMER, userdata);
	if (!s)
		return -ENOMEM;
	s->fn.timer = fn;
	s->deadline_ns = deadline_ns;
	s->armed_iter = l->iter;
	heap_insert(l, s);
	if (ret)
		*ret = s;
	return 0;
}

int loop_source_set_timer(struct loop_source *s, int64_t deadline_ns)
{
	if (!s || s->dead || s->type != SOURCE_TIMER)
		return -EINVAL;
	struct loop *l = s->loop;
	if (s->heap_idx == NOT_IN_HEAP) {
		int r = heap_reserve(l);
		if (r < 0)
			return r;
		s->deadline_ns = deadline_ns;
		heap_insert(l, s);
	} else {
		heap_remove(l, s);
		s->deadline_ns = deadline_ns;
		heap_insert(l, s);
	}
	s->armed_iter = l->iter;
	return 0;
}

int loop_add_signal(struct loop *l, int signo, loop_signal_fn fn, void *userdata,
		    struct loop_source **ret)
{
	if (!l || !fn || signo <= 0 || signo >= _NSIG || signo == SIGKILL || signo == SIGSTOP)
		return -EINVAL;
	for (struct loop_source *i = l->sources; i; i = i->next)
		if (i->type == SOURCE_SIGNAL && i->signo == signo)
			return -EBUSY;
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, signo);
	int r = pthread_sigmask(SIG_BLOCK, &mask, NULL);
	if (r != 0)
		return -r;
	int fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct loop_source *s = source_new(l, SOURCE_SIGNAL, userdata);
	if (!s) {
		safe_close(fd);
		return -ENOMEM;
	}
	s->fn.signal = fn;
	s->signo = signo;
	s->fd = fd;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		r = -errno;
		loop_source_free(s);
		return r;
	}
	if (ret)
		*ret = s;
	return 0;
}

int loop_add_defer(struct loop *l, loop_defer_fn fn, void *userdata, struct loop_source **ret)
{
	if (!l || !fn)
		return -EINVAL;
	struct loop_source *s = source_new(l, SOURCE_DEFER, userdata);
	if (!s)
		return -ENOMEM;
	s->fn.defer = fn;
	s->auto_free = !ret;
	defer_append(l, s);
	if (ret)
		*ret = s;
	return 0;
}

/* ---- worker pool ---- */

static void *worker_main(void *arg)
{
	struct loop *l = arg;
	pthread_mutex_lock(&l->mu);
	for (;;) {
		while (!l->stop && (!l->queue.head || l->running >= l->pool_size))
			pthread_cond_wait(&l->cond, &l->mu);
		if (l->stop)
			break;
		struct work *w = work_list_pop(&l->queue);
		l->queued--;
		l->running++;
		pthread_mutex_unlock(&l->mu);

		w->result = w->work(w->data);

		pthread_mutex_lock(&l->mu);
		l->running--;
		work_list_append(&l->finished, w);
		uint64_t one = 1;
		/* The counter cannot overflow in practice; a failed write only delays nothing
		 * because the loop drains the whole list on each wake. */
		(void)!write(l->wake.fd, &one, sizeof(one));
		/* A slot freed up: another waiter may now be allowed to run. */
		if (l->queue.head)
			pthread_cond_signal(&l->cond);
	}
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

/* Called with mu held: start threads until every queued work has a thread to run it. */
static int pool_grow(struct loop *l)
{
	while (l->n_threads < l->pool_size && l->n_threads - l->running < l->queued) {
		if (l->n_threads == l->threads_cap) {
			unsigned cap = l->threads_cap ? l->threads_cap * 2 : 4;
			pthread_t *t = reallocarray(l->threads, cap, sizeof(*t));
			if (!t)
				return -ENOMEM;
			l->threads = t;
			l->threads_cap = cap;
		}
		pthread_attr_t attr;
		int r = pthread_attr_init(&attr);
		if (r != 0)
			return -r;
		sigset_t all;
		sigfillset(&all);
		/* Signals belong to the loop thread's signalfd; workers must never take one. */
		r = pthread_attr_setsigmask_np(&attr, &all);
		if (r == 0)
			r = pthread_create(&l->threads[l->n_threads], &attr, worker_main, l);
		pthread_attr_destroy(&attr);
		if (r != 0)
			return -r;
		pthread_setname_np(l->threads[l->n_threads], "pp-worker");
		l->n_threads++;
	}
	return 0;
}

int loop_set_pool_size(struct loop *l, unsigned size)
{
	if (!l || size == 0)
		return -EINVAL;
	pthread_mutex_lock(&l->mu);
	l->pool_size = size;
	int r = pool_grow(l);
	if (r < 0 && l->n_threads > 0)
		r = 0; /* fewer threads than wanted, but queued work still runs */
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->mu);
	return r;
}

unsigned loop_get_pool_size(const struct loop *l)
{
	/* Only the loop thread writes it, so reading here needs no lock. */
	return l ? l->pool_size : 0;
}

unsigned loop_pending_work(const struct loop *l)
{
	return l ? l->pending_work : 0;
}

int loop_submit_work(struct loop *l, loop_work_fn work, loop_done_fn done, void *data)
{
	if (!l || !work || !done)
		return -EINVAL;
	if (l->freeing)
		return -ECANCELED;
	struct work *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->work = work;
	w->done = done;
	w->data = data;

	pthread_mutex_lock(&l->mu);
	work_list_append(&l->queue, w);
	l->queued++;
	int r = pool_grow(l);
	if (r < 0 && l->n_threads == 0) {
		/* Nothing would ever run it: give it back to the caller. Without threads nothing
		 * else can be queued, so the queue holds only w. */
		l->queue = (struct work_list){0};
		l->queued = 0;
		pthread_mutex_unlock(&l->mu);
		free(w);
		return r;
	}
	pthread_cond_signal(&l->cond);
	pthread_mutex_unlock(&l->mu);
	l->pending_work++;
	return 0;
}

static unsigned dispatch_finished(struct loop *l)
{
	uint64_t n;
	(void)!read(l->wake.fd, &n, sizeof(n));
	pthread_mutex_lock(&l->mu);
	struct work_list done = l->finished;
	l->finished = (struct work_list){0};
	pthread_mutex_unlock(&l->mu);

	unsigned count = 0;
	struct work *w;
	while ((w = work_list_pop(&done))) {
		l->pending_work--;
		w->done(l, w->result, w->data);
		free(w);
		count++;
	}
	return count;
}

/* ---- loop ---- */

int loop_new(struct loop **ret)
{
	struct loop *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->wake.loop = l;
	l->wake.type = SOURCE_WAKE;
	l->wake.fd = -EBADF;
	l->wake.heap_idx = NOT_IN_HEAP;
	l->pool_size = DEFAULT_POOL_SIZE;
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cond, NULL);

	int r;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		r = -errno;
		goto fail;
	}
	l->wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->wake.fd < 0) {
		r = -errno;
		goto fail;
	}
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &l->wake};
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wake.fd, &ev) < 0) {
		r = -errno;
		goto fail;
	}
	*ret = l;
	return 0;
fail:
	loop_free(l);
	return r;
}

struct loop *loop_free(struct loop *l)
{
	if (!l)
		return NULL;
	l->freeing = true;

	pthread_mutex_lock(&l->mu);
	l->stop = true;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->mu);
	for (unsigned i = 0; i < l->n_threads; i++)
		pthread_join(l->threads[i], NULL);
	free(l->threads);

	/* Workers are gone: no lock needed. Finished work first, then what never started, so that
	 * every done callback runs exactly once and can release its data. */
	struct work *w;
	while ((w = work_list_pop(&l->finished))) {
		l->pending_work--;
		w->done(l, w->result, w->data);
		free(w);
	}
	while ((w = work_list_pop(&l->queue))) {
		l->pending_work--;
		w->done(l, -ECANCELED, w->data);
		free(w);
	}

	while (l->sources)
		loop_source_free(l->sources);
	release_dead(l);
	free(l->heap);

	safe_close(l->wake.fd);
	safe_close(l->epfd);
	pthread_cond_destroy(&l->cond);
	pthread_mutex_destroy(&l->mu);
	free(l);
	return NULL;
}

void loop_exit(struct loop *l, int code)
{
	if (!l)
		return;
	l->exiting = true;
	l->exit_code = code;
}

bool loop_is_exiting(const struct loop *l)
{
	return l && l->exiting;
}

static int compute_timeout_ms(struct loop *l, int64_t timeout_ns)
{
	int64_t wait_ns = timeout_ns;
	if (l->defer_head)
		return 0;
	if (l->heap_len > 0) {
		int64_t until = l->heap[0]->deadline_ns - now_ns();
		if (until < 0)
			until = 0;
		if (wait_ns < 0 || until < wait_ns)
			wait_ns = until;
	}
	if (wait_ns < 0)
		return -1;
	/* Round up: a timer must never fire before its deadline. */
	int64_t ms = (wait_ns + NSEC_PER_MSEC - 1) / NSEC_PER_MSEC;
	return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

static unsigned dispatch_signal(struct loop_source *s)
{
	unsigned count = 0;
	while (!s->dead) {
		struct signalfd_siginfo si;
		ssize_t n = read(s->fd, &si, sizeof(si));
		if (n != (ssize_t)sizeof(si))
			break;
		s->fn.signal(s, (int)si.ssi_signo, s->userdata);
		count++;
	}
	return count;
}

static unsigned dispatch_timers(struct loop *l)
{
	unsigned count = 0;
	int64_t now = now_ns();
	while (l->heap_len > 0) {
		struct loop_source *s = l->heap[0];
		/* Timers (re-)armed during this iteration wait for the next one, so a callback
		 * that re-arms in the past cannot spin here forever. */
		if (s->deadline_ns > now || s->armed_iter >= l->iter)
			break;
		heap_remove(l, s);
		s->fn.timer(s, s->userdata);
		count++;
	}
	return count;
}

static unsigned dispatch_defers(struct loop *l)
{
	unsigned count = 0;
	while (l->defer_head && l->defer_head->defer_gen < l->iter) {
		struct loop_source *s = l->defer_head;
		defer_unlink(l, s);
		s->fn.defer(s, s->userdata);
		count++;
		if (s->auto_free)
			loop_source_free(s);
	}
	return count;
}

int loop_run_once(struct loop *l, int64_t timeout_ns)
{
	if (!l)
		return -EINVAL;
	struct epoll_event events[EVENTS_PER_WAIT];
	int timeout_ms = compute_timeout_ms(l, timeout_ns);
	int n = epoll_wait(l->epfd, events, EVENTS_PER_WAIT, timeout_ms);
	if (n < 0) {
		if (errno == EINTR)
			return 0;
		return -errno;
	}

	l->iter++;
	l->dispatch_depth++;
	unsigned count = 0;
	for (int i = 0; i < n; i++) {
		struct loop_source *s = events[i].data.ptr;
		if (s->dead)
			continue;
		switch (s->type) {
		case SOURCE_IO:
			s->fn.io(s, s->fd, events[i].events, s->userdata);
			count++;
			break;
		case SOURCE_SIGNAL:
			count += dispatch_signal(s);
			break;
		case SOURCE_WAKE:
			count += dispatch_finished(l);
			break;
		case SOURCE_TIMER:
		case SOURCE_DEFER:
			break;
		}
	}
	count += dispatch_timers(l);
	count += dispatch_defers(l);
	if (--l->dispatch_depth == 0)
		release_dead(l);
	return count > 0 ? (int)MIN(count, (unsigned)INT32_MAX) : 0;
}

int loop_run(struct loop *l)
{
	if (!l)
		return -EINVAL;
	while (!l->exiting) {
		int r = loop_run_once(l, -1);
		if (r < 0)
			return r;
	}
	/* Leave the loop reusable: a later loop_run waits for a new loop_exit. */
	l->exiting = false;
	return l->exit_code;
}

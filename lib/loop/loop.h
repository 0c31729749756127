/* lib/loop: the event loop (epoll) that owns every socket and all mutable state of a daemon,
 * with timers, signals, and a bounded worker pool for calls that block. Workers never touch loop
 * state: they get a copy of what they need and their result is posted back to the loop thread
 * through an eventfd. Everything except loop_submit_work's work function runs on the loop thread. */
#pragma once

#include <sys/epoll.h>

#include "base/base.h"

struct loop;
struct loop_source;

int loop_new(struct loop **ret);
/* Frees all sources still registered and joins the workers (waiting for running work to finish;
 * queued work that has not started is dropped and its done callback runs with -ECANCELED). */
struct loop *loop_free(struct loop *l);
static inline void loop_freep(struct loop **l)
{
	loop_free(*l);
}

/* Run until loop_exit(); returns the exit code given there. A loop_exit() made before
 * loop_run() makes it return at once; on return the exit request is cleared, so the loop can be
 * run again. */
int loop_run(struct loop *l);
void loop_exit(struct loop *l, int code);
/* Run one iteration, waiting at most timeout_ns (-1 forever). Returns >0 if something was
 * dispatched, 0 on timeout, <0 on error. For synchronous helpers and tests. */
int loop_run_once(struct loop *l, int64_t timeout_ns);
bool loop_is_exiting(const struct loop *l);

/* I/O source: events are EPOLLIN/EPOLLOUT/...; the callback receives the epoll events.
 * The fd is not owned and not closed by the loop: free the source before closing the fd. */
typedef void (*loop_io_fn)(struct loop_source *s, int fd, uint32_t events, void *userdata);
int loop_add_io(struct loop *l, int fd, uint32_t events, loop_io_fn fn, void *userdata,
		struct loop_source **ret);
int loop_source_set_io_events(struct loop_source *s, uint32_t events);

/* One-shot timer at an absolute CLOCK_MONOTONIC time (now_ns() based). */
typedef void (*loop_timer_fn)(struct loop_source *s, void *userdata);
int loop_add_timer(struct loop *l, int64_t deadline_ns, loop_timer_fn fn, void *userdata,
		   struct loop_source **ret);
/* Re-arm a timer source (also after it fired). */
int loop_source_set_timer(struct loop_source *s, int64_t deadline_ns);

/* Signal source (signalfd); the signal is blocked in the calling thread by this call, and the
 * worker threads block every signal. */
typedef void (*loop_signal_fn)(struct loop_source *s, int signo, void *userdata);
int loop_add_signal(struct loop *l, int signo, loop_signal_fn fn, void *userdata,
		    struct loop_source **ret);

/* Deferred call on the next iteration (runs once, then the source is freed automatically
 * unless *ret was requested, in which case the caller frees it). */
typedef void (*loop_defer_fn)(struct loop_source *s, void *userdata);
int loop_add_defer(struct loop *l, loop_defer_fn fn, void *userdata, struct loop_source **ret);

/* Remove and free a source; safe inside its own callback and with NULL. Returns NULL. */
struct loop_source *loop_source_free(struct loop_source *s);
static inline void loop_source_freep(struct loop_source **s)
{
	loop_source_free(*s);
}
struct loop *loop_source_get_loop(const struct loop_source *s);

/* Worker pool. `work` runs on a worker thread and returns an int result; `done` then runs on the
 * loop thread with that result. `data` is owned by the caller throughout (free it in `done`).
 * At most `size` works run at once; more queue in FIFO order. Default size 32. */
typedef int (*loop_work_fn)(void *data);
typedef void (*loop_done_fn)(struct loop *l, int result, void *data);
int loop_set_pool_size(struct loop *l, unsigned size);
unsigned loop_get_pool_size(const struct loop *l);
int loop_submit_work(struct loop *l, loop_work_fn work, loop_done_fn done, void *data);
/* Number of works queued or running (counted until their done callback has run). */
unsigned loop_pending_work(const struct loop *l);

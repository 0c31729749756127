/* lib/metrics: a small registry of Prometheus counters, gauges and histograms rendered in the
 * text exposition format 0.0.4, and an HTTP/1.1 server on the event loop answering /metrics,
 * /startup, /readyz and /livez. Metric updates are lock-free atomics and may happen on any thread;
 * registration, rendering and the server run on the loop thread (registration and rendering also
 * take a mutex, so a registration on another thread is safe, if unusual). */
#pragma once

#include "base/base.h"
#include "loop/loop.h"

#define METRICS_DEFAULT_ADDRESS "127.0.0.1"
#define METRICS_DEFAULT_PORT 8000
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Limits on what a client may send: request line + headers, concurrent connections, and the
 * time a connection may take from accept to close. */
#define METRICS_HTTP_MAX_HEADER_BYTES 8192
#define METRICS_HTTP_MAX_HEADERS 64
#define METRICS_HTTP_MAX_CONNECTIONS 64
#define METRICS_HTTP_DEFAULT_TIMEOUT_NS (5 * NSEC_PER_SEC)
#define METRICS_PROBE_REASON_MAX 256

/* ---- registry ---- */

struct metrics_registry;
struct metrics_counter;
struct metrics_gauge;
struct metrics_histogram;

int metrics_registry_new(struct metrics_registry **ret);
/* Frees every metric registered; the handles become invalid. Accepts NULL. */
struct metrics_registry *metrics_registry_free(struct metrics_registry *r);
static inline void metrics_registry_freep(struct metrics_registry **r)
{
	metrics_registry_free(*r);
}

/* Registration. name: [a-zA-Z_:][a-zA-Z0-9_:]*; help: any text (may be NULL = empty);
 * labels: NULL or a NULL-terminated list of name, value pairs, constant for the series, e.g.
 * (const char *[]){"provider", "libvirt", NULL}. Label names: [a-zA-Z_][a-zA-Z0-9_]*, not "__*",
 * not "le" for histograms. Registering the same name again with the same type and different
 * labels adds a series to the family (the first help text is kept); the same labels again or a
 * different type is -EEXIST. The returned handle is owned by the registry. */
int metrics_counter_new(struct metrics_registry *r, const char *name, const char *help,
			const char *const *labels, struct metrics_counter **ret);
int metrics_gauge_new(struct metrics_registry *r, const char *name, const char *help,
		      const char *const *labels, struct metrics_gauge **ret);
/* A gauge whose value is fn(userdata), called while rendering (on the thread that renders,
 * i.e. the loop thread for the server). ret may be NULL. */
typedef double (*metrics_gauge_fn)(void *userdata);
int metrics_gauge_new_callback(struct metrics_registry *r, const char *name, const char *help,
			       const char *const *labels, metrics_gauge_fn fn, void *userdata,
			       struct metrics_gauge **ret);
/* Upper bounds must be finite and strictly increasing; +Inf is implied. n_buckets <= 64. */
int metrics_histogram_new(struct metrics_registry *r, const char *name, const char *help,
			  const char *const *labels, const double *buckets, size_t n_buckets,
			  struct metrics_histogram **ret);

/* Updates: thread-safe, no allocation; NULL handles are ignored. */
void metrics_counter_inc(struct metrics_counter *c);
void metrics_counter_add(struct metrics_counter *c, uint64_t n);
uint64_t metrics_counter_get(const struct metrics_counter *c);
void metrics_gauge_set(struct metrics_gauge *g, double v);
void metrics_gauge_add(struct metrics_gauge *g, double delta);
void metrics_gauge_inc(struct metrics_gauge *g);
void metrics_gauge_dec(struct metrics_gauge *g);
double metrics_gauge_get(const struct metrics_gauge *g); /* calls fn for a callback gauge */
void metrics_histogram_observe(struct metrics_histogram *h, double v);

/* Append the whole exposition (families in registration order) to out. */
int metrics_registry_render(struct metrics_registry *r, struct buf *out);

/* ---- HTTP server ---- */

struct metrics_server;

enum metrics_probe {
	METRICS_PROBE_STARTUP, /* /startup */
	METRICS_PROBE_READY,   /* /readyz */
	METRICS_PROBE_LIVE,    /* /livez */
	_METRICS_PROBE_MAX,
};

/* Returns true when healthy. When not, may write a short reason (one line) into reason, which
 * has reason_size bytes and starts empty; it becomes the 500 body ("not ready" when left empty).
 * Runs on the loop thread for each request. */
typedef bool (*metrics_probe_fn)(void *userdata, char *reason, size_t reason_size);

/* Listen on address (an IPv4 or IPv6 literal; NULL = 127.0.0.1) and port (0 = ephemeral) and
 * serve on loop l. registry may be NULL (empty /metrics); it is not owned and must outlive the
 * server. A probe without a callback answers 200 "ok". */
int metrics_server_new(struct loop *l, struct metrics_registry *registry, const char *address,
		       uint16_t port, struct metrics_server **ret);
/* Closes the listener and every open connection. Accepts NULL. */
struct metrics_server *metrics_server_free(struct metrics_server *s);
static inline void metrics_server_freep(struct metrics_server **s)
{
	metrics_server_free(*s);
}
/* The port actually bound (useful after port 0). */
uint16_t metrics_server_get_port(const struct metrics_server *s);
void metrics_server_set_probe(struct metrics_server *s, enum metrics_probe probe,
			      metrics_probe_fn fn, void *userdata);
/* The body of a healthy probe (default "ok"), e.g. to say the daemon runs in a test mode; copied.
 * NULL restores "ok". */
int metrics_server_set_ok_body(struct metrics_server *s, const char *body);

/* Serve /metrics, /startup, /readyz and /livez (the default) or answer them 404, for a server
 * that only carries handlers. */
void metrics_server_set_builtin_paths(struct metrics_server *s, bool enabled);

/* Handlers for other paths, answered asynchronously. The handler runs on the loop thread for a
 * GET or HEAD whose path (query removed) starts with path_prefix; path is valid during the call
 * only. It (or later code on the loop thread) answers exactly once with metrics_request_reply,
 * which frees the request; until then the request stays valid even when the client goes away or
 * the connection times out (the answer is then dropped). The built-in paths take precedence;
 * the first matching handler wins. At most METRICS_MAX_HANDLERS per server. */
#define METRICS_MAX_HANDLERS 8
#define METRICS_HANDLER_PREFIX_MAX 128
struct metrics_request;
typedef void (*metrics_handler_fn)(struct metrics_request *req, const char *path, size_t path_len,
				   void *userdata);
int metrics_server_add_handler(struct metrics_server *s, const char *path_prefix,
			       metrics_handler_fn fn, void *userdata);
/* Answer with status (200, 400, 404, 500, 503, ...), a content type (NULL: text/plain) and a
 * body (no body for HEAD). Returns 0 also when the answer was dropped. */
int metrics_request_reply(struct metrics_request *req, int status, const char *content_type,
			  const void *body, size_t len);
/* True once the answer can no longer reach the client (connection closed or timed out). */
bool metrics_request_is_cancelled(const struct metrics_request *req);

/* Per-connection deadline from accept to close (default METRICS_HTTP_DEFAULT_TIMEOUT_NS);
 * applies to connections accepted afterwards. */
void metrics_server_set_timeout(struct metrics_server *s, int64_t timeout_ns);
/* Connections currently open. */
unsigned metrics_server_get_connections(const struct metrics_server *s);

/* ---- request parsing (exposed for tests and fuzzing) ---- */

enum metrics_http_method {
	METRICS_HTTP_GET,
	METRICS_HTTP_HEAD,
	METRICS_HTTP_OTHER,
};

struct metrics_http_request {
	enum metrics_http_method method;
	const char *path; /* points into the parsed data, not NUL-terminated; query removed */
	size_t path_len;
	int minor_version;   /* HTTP/1.x */
	size_t header_bytes; /* request line + headers + the empty line */
};

/* Parse the request line and headers at the start of data. Returns 0 when complete (ret
 * filled), -EAGAIN when more bytes are needed, -EMSGSIZE when the head would exceed
 * METRICS_HTTP_MAX_HEADER_BYTES (431), -EPROTONOSUPPORT for an HTTP version other than 1.x (505),
 * -EBADMSG for anything malformed (400). */
int metrics_http_parse_request(const char *data, size_t len, struct metrics_http_request *ret);

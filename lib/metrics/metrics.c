/* lib/metrics: Prometheus metrics registry, text exposition 0.0.4, and the small HTTP/1.1 server
 * for /metrics and the health probes. The server serves one request per connection and closes
 * it, which keeps the parser free of bodies, pipelining and keep-alive state. */
#include "metrics/metrics.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <strings.h>
#include <sys/socket.h>

#define MAX_BUCKETS 64
/* After the response, unread request bytes are drained (bounded) before close so the kernel
 * does not answer them with a RST that could destroy the response in flight. */
#define MAX_DRAIN_BYTES (64u * 1024)
#define ACCEPT_RETRY_NS (100 * NSEC_PER_MSEC)

/* ---- registry ---- */

enum family_type {
	TYPE_COUNTER,
	TYPE_GAUGE,
	TYPE_HISTOGRAM,
};

struct series {
	struct series *next;
	char *labels; /* rendered `a="x",b="y"`, "" when none */
};

struct metrics_counter {
	struct series s;
	_Atomic uint64_t value;
};

struct metrics_gauge {
	struct series s;
	_Atomic uint64_t bits; /* a double */
	metrics_gauge_fn fn;
	void *userdata;
};

struct metrics_histogram {
	struct series s;
	size_t n_buckets;
	double bounds[MAX_BUCKETS];
	_Atomic uint64_t counts[MAX_BUCKETS + 1]; /* per bucket, not cumulative; last is +Inf */
	_Atomic uint64_t sum_bits;                /* a double */
};

struct family {
	struct family *next;
	char *name;
	char *help;
	enum family_type type;
	struct series *first;
	struct series **last;
};

struct metrics_registry {
	pthread_mutex_t lock;
	struct family *first;
	struct family **last;
};

static uint64_t double_to_bits(double v)
{
	uint64_t u;
	memcpy(&u, &v, sizeof(u));
	return u;
}

static double bits_to_double(uint64_t u)
{
	double v;
	memcpy(&v, &u, sizeof(v));
	return v;
}

static void atomic_add_double(_Atomic uint64_t *p, double delta)
{
	uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(p, &old,
						      double_to_bits(bits_to_double(old) + delta),
						      memory_order_relaxed, memory_order_relaxed))
		;
}

static bool is_name_char(char c, bool first, bool colon)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
		return true;
	if (c == ':')
		return colon;
	return !first && c >= '0' && c <= '9';
}

static bool valid_name(const char *s, bool colon)
{
	if (str_empty(s))
		return false;
	for (size_t i = 0; s[i]; i++)
		if (!is_name_char(s[i], i == 0, colon))
			return false;
	return true;
}

static int buf_put(struct buf *b, const char *s, size_t n)
{
	return buf_append(b, s, n, 0);
}

static int buf_puts(struct buf *b, const char *s)
{
	return buf_put(b, s, strlen(s));
}

static int append_escaped(struct buf *b, const char *s, bool quote)
{
	int r = 0;
	for (const char *p = s; *p && r >= 0; p++) {
		if (*p == '\\')
			r = buf_put(b, "\\\\", 2);
		else if (*p == '\n')
			r = buf_put(b, "\\n", 2);
		else if (*p == '"' && quote)
			r = buf_put(b, "\\\"", 2);
		else
			r = buf_put(b, p, 1);
	}
	return r;
}

static int render_labels(const char *const *labels, bool histogram, char **ret)
{
	_cleanup_(buf_done) struct buf b = {0};
	size_t n = 0;
	int r;

	for (; labels && labels[n]; n += 2) {
		const char *name = labels[n], *value = labels[n + 1];
		if (!value || !valid_name(name, false) || str_startswith(name, "__") ||
		    (histogram && str_eq(name, "le")))
			return -EINVAL;
		for (size_t j = 0; j < n; j += 2)
			if (str_eq(labels[j], name))
				return -EINVAL;
		if (n > 0 && (r = buf_put(&b, ",", 1)) < 0)
			return r;
		if ((r = buf_puts(&b, name)) < 0 || (r = buf_put(&b, "=\"", 2)) < 0 ||
		    (r = append_escaped(&b, value, true)) < 0 || (r = buf_put(&b, "\"", 1)) < 0)
			return r;
	}
	if ((r = buf_put(&b, "", 1)) < 0)
		return r;
	*ret = (char *)TAKE_PTR(b.data);
	return 0;
}

int metrics_registry_new(struct metrics_registry **ret)
{
	if (!ret)
		return -EINVAL;
	struct metrics_registry *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	pthread_mutex_init(&r->lock, NULL);
	r->last = &r->first;
	*ret = r;
	return 0;
}

struct metrics_registry *metrics_registry_free(struct metrics_registry *r)
{
	if (!r)
		return NULL;
	for (struct family *f = r->first, *fn; f; f = fn) {
		fn = f->next;
		for (struct series *s = f->first, *sn; s; s = sn) {
			sn = s->next;
			free(s->labels);
			free(s); /* the series is the first member of every metric */
		}
		free(f->name);
		free(f->help);
		free(f);
	}
	pthread_mutex_destroy(&r->lock);
	free(r);
	return NULL;
}

/* Adds s (its labels already rendered) to the family `name`, creating it. Takes s on success. */
static int registry_add(struct metrics_registry *r, const char *name, const char *help,
			enum family_type type, struct series *s)
{
	pthread_mutex_lock(&r->lock);
	int ret = 0;
	struct family *f = r->first;
	for (; f && !str_eq(f->name, name); f = f->next)
		;
	if (f) {
		if (f->type != type) {
			ret = -EEXIST;
			goto out;
		}
		for (struct series *o = f->first; o; o = o->next)
			if (str_eq(o->labels, s->labels)) {
				ret = -EEXIST;
				goto out;
			}
	} else {
		f = calloc(1, sizeof(*f));
		if (!f || !(f->name = strdup(name)) || !(f->help = strdup(help ? help : ""))) {
			if (f) {
				free(f->name);
				free(f);
			}
			ret = -ENOMEM;
			goto out;
		}
		f->type = type;
		f->last = &f->first;
		*r->last = f;
		r->last = &f->next;
	}
	*f->last = s;
	f->last = &s->next;
out:
	pthread_mutex_unlock(&r->lock);
	return ret;
}

/* Allocates a metric of `size` bytes (its series first) with its labels rendered. */
static int metric_alloc(struct metrics_registry *r, const char *name, const char *const *labels,
			enum family_type type, size_t size, struct series **ret)
{
	if (!r || !valid_name(name, true))
		return -EINVAL;
	_cleanup_free_ struct series *s = calloc(1, size);
	if (!s)
		return -ENOMEM;
	int k = render_labels(labels, type == TYPE_HISTOGRAM, &s->labels);
	if (k < 0)
		return k;
	*ret = TAKE_PTR(s);
	return 0;
}

/* Makes a fully initialised metric visible; frees it on failure. */
static int metric_publish(struct metrics_registry *r, const char *name, const char *help,
			  enum family_type type, struct series *s)
{
	int k = registry_add(r, name, help, type, s);
	if (k < 0) {
		free(s->labels);
		free(s);
	}
	return k;
}

int metrics_counter_new(struct metrics_registry *r, const char *name, const char *help,
			const char *const *labels, struct metrics_counter **ret)
{
	struct series *s;
	int k = metric_alloc(r, name, labels, TYPE_COUNTER, sizeof(struct metrics_counter), &s);
	if (k < 0 || (k = metric_publish(r, name, help, TYPE_COUNTER, s)) < 0)
		return k;
	if (ret)
		*ret = (struct metrics_counter *)s;
	return 0;
}

int metrics_gauge_new_callback(struct metrics_registry *r, const char *name, const char *help,
			       const char *const *labels, metrics_gauge_fn fn, void *userdata,
			       struct metrics_gauge **ret)
{
	struct series *s;
	int k = metric_alloc(r, name, labels, TYPE_GAUGE, sizeof(struct metrics_gauge), &s);
	if (k < 0)
		return k;
	struct metrics_gauge *g = (struct metrics_gauge *)s;
	g->fn = fn;
	g->userdata = userdata;
	if ((k = metric_publish(r, name, help, TYPE_GAUGE, s)) < 0)
		return k;
	if (ret)
		*ret = g;
	return 0;
}

int metrics_gauge_new(struct metrics_registry *r, const char *name, const char *help,
		      const char *const *labels, struct metrics_gauge **ret)
{
	return metrics_gauge_new_callback(r, name, help, labels, NULL, NULL, ret);
}

int metrics_histogram_new(struct metrics_registry *r, const char *name, const char *help,
			  const char *const *labels, const double *buckets, size_t n_buckets,
			  struct metrics_histogram **ret)
{
	if (n_buckets > MAX_BUCKETS || (n_buckets > 0 && !buckets))
		return -EINVAL;
	for (size_t i = 0; i < n_buckets; i++)
		if (!isfinite(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1]))
			return -EINVAL;
	struct series *s;
	int k = metric_alloc(r, name, labels, TYPE_HISTOGRAM, sizeof(struct metrics_histogram), &s);
	if (k < 0)
		return k;
	struct metrics_histogram *h = (struct metrics_histogram *)s;
	h->n_buckets = n_buckets;
	if (n_buckets > 0)
		memcpy(h->bounds, buckets, n_buckets * sizeof(double));
	if ((k = metric_publish(r, name, help, TYPE_HISTOGRAM, s)) < 0)
		return k;
	if (ret)
		*ret = h;
	return 0;
}

void metrics_counter_inc(struct metrics_counter *c)
{
	metrics_counter_add(c, 1);
}

void metrics_counter_add(struct metrics_counter *c, uint64_t n)
{
	if (c)
		atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

uint64_t metrics_counter_get(const struct metrics_counter *c)
{
	return c ? atomic_load_explicit(&c->value, memory_order_relaxed) : 0;
}

void metrics_gauge_set(struct metrics_gauge *g, double v)
{
	if (g)
		atomic_store_explicit(&g->bits, double_to_bits(v), memory_order_relaxed);
}

void metrics_gauge_add(struct metrics_gauge *g, double delta)
{
	if (g)
		atomic_add_double(&g->bits, delta);
}

void metrics_gauge_inc(struct metrics_gauge *g)
{
	metrics_gauge_add(g, 1);
}

void metrics_gauge_dec(struct metrics_gauge *g)
{
	metrics_gauge_add(g, -1);
}

double metrics_gauge_get(const struct metrics_gauge *g)
{
	if (!g)
		return 0;
	if (g->fn)
		return g->fn(g->userdata);
	return bits_to_double(atomic_load_explicit(&g->bits, memory_order_relaxed));
}

void metrics_histogram_observe(struct metrics_histogram *h, double v)
{
	if (!h)
		return;
	size_t i = 0;
	while (i < h->n_buckets && !(v <= h->bounds[i]))
		i++;
	atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
	atomic_add_double(&h->sum_bits, v);
}

/* The shortest digits that read back to the same double, laid out as Go's
 * strconv.FormatFloat(v, 'g', -1, 64) does, which is what Prometheus clients print. */
static void format_double(double v, char out[32])
{
	if (isnan(v)) {
		memcpy(out, "NaN", 4);
		return;
	}
	if (isinf(v)) {
		memcpy(out, v > 0 ? "+Inf" : "-Inf", 5);
		return;
	}
	int prec = 1;
	for (; prec < 17; prec++) {
		snprintf(out, 32, "%.*e", prec - 1, v);
		if (strtod(out, NULL) == v)
			break;
	}
	snprintf(out, 32, "%.*e", prec - 1, v);
	const char *e = strchr(out, 'e');
	int exp = e ? (int)strtol(e + 1, NULL, 10) : 0;
	if (exp < -4 || exp >= 6)
		return;
	snprintf(out, 32, "%.*f", MAX(prec - 1 - exp, 0), v);
}

static int render_sample(struct buf *b, const char *name, const char *suffix, const char *labels,
			 const char *extra_label, const char *value)
{
	int r = buf_printf(b, "%s%s", name, suffix);
	if (r < 0)
		return r;
	bool any = !str_empty(labels) || extra_label;
	if (any) {
		r = buf_printf(b, "{%s%s%s}", labels, !str_empty(labels) && extra_label ? "," : "",
			       extra_label ? extra_label : "");
		if (r < 0)
			return r;
	}
	return buf_printf(b, " %s\n", value);
}

static int render_histogram(struct buf *b, const char *name, struct metrics_histogram *h)
{
	uint64_t cumulative = 0;
	char value[32], bound[32], le[48];
	int r;

	for (size_t i = 0; i <= h->n_buckets; i++) {
		cumulative += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
		if (i < h->n_buckets)
			format_double(h->bounds[i], bound);
		else
			memcpy(bound, "+Inf", 5);
		snprintf(le, sizeof(le), "le=\"%s\"", bound);
		snprintf(value, sizeof(value), "%" PRIu64, cumulative);
		if ((r = render_sample(b, name, "_bucket", h->s.labels, le, value)) < 0)
			return r;
	}
	format_double(bits_to_double(atomic_load_explicit(&h->sum_bits, memory_order_relaxed)),
		      value);
	if ((r = render_sample(b, name, "_sum", h->s.labels, NULL, value)) < 0)
		return r;
	snprintf(value, sizeof(value), "%" PRIu64, cumulative);
	return render_sample(b, name, "_count", h->s.labels, NULL, value);
}

static int render_locked(struct metrics_registry *reg, struct buf *out)
{
	static const char *const type_names[] = {"counter", "gauge", "histogram"};
	int r;

	for (struct family *f = reg->first; f; f = f->next) {
		if (!str_empty(f->help)) {
			if ((r = buf_printf(out, "# HELP %s ", f->name)) < 0 ||
			    (r = append_escaped(out, f->help, false)) < 0 ||
			    (r = buf_put(out, "\n", 1)) < 0)
				return r;
		}
		if ((r = buf_printf(out, "# TYPE %s %s\n", f->name, type_names[f->type])) < 0)
			return r;
		for (struct series *s = f->first; s; s = s->next) {
			char value[32];
			switch (f->type) {
			case TYPE_COUNTER:
				snprintf(value, sizeof(value), "%" PRIu64,
					 metrics_counter_get((struct metrics_counter *)s));
				r = render_sample(out, f->name, "", s->labels, NULL, value);
				break;
			case TYPE_GAUGE:
				format_double(metrics_gauge_get((struct metrics_gauge *)s), value);
				r = render_sample(out, f->name, "", s->labels, NULL, value);
				break;
			case TYPE_HISTOGRAM:
				r = render_histogram(out, f->name, (struct metrics_histogram *)s);
				break;
			}
			if (r < 0)
				return r;
		}
	}
	return 0;
}

int metrics_registry_render(struct metrics_registry *reg, struct buf *out)
{
	if (!reg || !out)
		return -EINVAL;
	pthread_mutex_lock(&reg->lock);
	int r = render_locked(reg, out);
	pthread_mutex_unlock(&reg->lock);
	return r;
}

/* ---- request parsing ---- */

static bool is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c && strchr("!#$%&'*+-.^_`|~", c);
}

static bool is_field_vchar(unsigned char c)
{
	return c == '\t' || c == ' ' || (c >= 0x21 && c != 0x7f);
}

/* Whether an unfinished line could still become a valid request or header line. */
static bool valid_prefix(const char *d, size_t n, bool request_line)
{
	size_t i = 0;
	while (i < n && is_tchar(d[i]))
		i++;
	if (i == n)
		return true;
	if (i == 0 || d[i] != (request_line ? ' ' : ':'))
		return false;
	for (i++; i < n; i++) {
		unsigned char c = d[i];
		if (request_line ? (c < 0x20 || c >= 0x7f) : !is_field_vchar(c))
			return false;
	}
	return true;
}

/* Index of the CR of the first CRLF in [from, end), or SIZE_MAX. */
static size_t find_crlf(const char *d, size_t from, size_t end)
{
	for (size_t i = from; i + 1 < end; i++)
		if (d[i] == '\r' && d[i + 1] == '\n')
			return i;
	return SIZE_MAX;
}

static int parse_request_line(const char *d, size_t n, struct metrics_http_request *req)
{
	size_t i = 0;
	while (i < n && is_tchar(d[i]))
		i++;
	if (i == 0 || i >= n || d[i] != ' ')
		return -EBADMSG;
	if (i == 3 && memcmp(d, "GET", 3) == 0)
		req->method = METRICS_HTTP_GET;
	else if (i == 4 && memcmp(d, "HEAD", 4) == 0)
		req->method = METRICS_HTTP_HEAD;
	else
		req->method = METRICS_HTTP_OTHER;

	size_t t = ++i;
	while (i < n && (unsigned char)d[i] > 0x20 && (unsigned char)d[i] < 0x7f)
		i++;
	if (i == t || i >= n || d[i] != ' ' || d[t] != '/')
		return -EBADMSG;
	req->path = d + t;
	req->path_len = i - t;
	const char *q = memchr(req->path, '?', req->path_len);
	if (q)
		req->path_len = (size_t)(q - req->path);

	const char *v = d + i + 1;
	size_t vn = n - i - 1;
	if (vn != 8 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.' || v[5] < '0' || v[5] > '9' ||
	    v[7] < '0' || v[7] > '9')
		return -EBADMSG;
	if (v[5] != '1')
		return -EPROTONOSUPPORT;
	req->minor_version = v[7] - '0';
	return 0;
}

/* Checks one header line; counts Host headers. */
static int parse_header_line(const char *d, size_t n, unsigned *n_host)
{
	size_t i = 0;
	while (i < n && is_tchar(d[i]))
		i++;
	if (i == 0 || i >= n || d[i] != ':')
		return -EBADMSG; /* also rejects obs-fold and whitespace before the colon */
	for (size_t j = i + 1; j < n; j++)
		if (!is_field_vchar(d[j]))
			return -EBADMSG;
	size_t vs = i + 1, ve = n;
	while (vs < ve && (d[vs] == ' ' || d[vs] == '\t'))
		vs++;
	while (ve > vs && (d[ve - 1] == ' ' || d[ve - 1] == '\t'))
		ve--;

	if (i == 4 && strncasecmp(d, "host", 4) == 0)
		(*n_host)++;
	else if (i == 17 && strncasecmp(d, "transfer-encoding", 17) == 0)
		return -EBADMSG; /* no request here has a body; refuse rather than guess framing */
	else if (i == 14 && strncasecmp(d, "content-length", 14) == 0) {
		if (ve == vs)
			return -EBADMSG;
		for (size_t j = vs; j < ve; j++)
			if (d[j] < '0' || d[j] > '9')
				return -EBADMSG;
	}
	return 0;
}

int metrics_http_parse_request(const char *data, size_t len, struct metrics_http_request *ret)
{
	if (!data || !ret)
		return -EINVAL;
	struct metrics_http_request req = {0};
	size_t limit = MIN(len, (size_t)METRICS_HTTP_MAX_HEADER_BYTES);
	size_t pos = 0;
	unsigned n_headers = 0, n_host = 0;
	int r;

	for (bool first = true;; first = false) {
		size_t eol = find_crlf(data, pos, limit);
		if (eol == SIZE_MAX) {
			/* Reject early what can never become a valid line. */
			size_t n = limit - pos;
			if (n > 0 && data[limit - 1] == '\r')
				n--;
			if (!valid_prefix(data + pos, n, first))
				return -EBADMSG;
			return len >= METRICS_HTTP_MAX_HEADER_BYTES ? -EMSGSIZE : -EAGAIN;
		}
		const char *line = data + pos;
		size_t n = eol - pos;
		pos = eol + 2;
		for (size_t i = 0; i < n; i++)
			if (line[i] == '\r' || line[i] == '\n' || line[i] == '\0')
				return -EBADMSG;
		if (first) {
			if ((r = parse_request_line(line, n, &req)) < 0)
				return r;
			continue;
		}
		if (n == 0)
			break;
		if (++n_headers > METRICS_HTTP_MAX_HEADERS)
			return -EMSGSIZE;
		if ((r = parse_header_line(line, n, &n_host)) < 0)
			return r;
	}
	if (n_host > 1 || (req.minor_version >= 1 && n_host == 0))
		return -EBADMSG;
	req.header_bytes = pos;
	*ret = req;
	return 0;
}

/* ---- server ---- */

enum conn_state {
	CONN_READ,
	CONN_WRITE,
	CONN_DRAIN,
	CONN_WAIT, /* a handler answers later */
};

struct metrics_request {
	struct conn *conn; /* NULL once the connection is gone */
	bool head;
};

struct conn {
	struct metrics_server *server;
	struct conn *prev, *next;
	int fd;
	struct loop_source *io;
	struct loop_source *timer;
	enum conn_state state;
	size_t in_len;
	size_t drained;
	struct buf out;
	size_t out_off;
	struct metrics_request *pending;
	char in[METRICS_HTTP_MAX_HEADER_BYTES];
};

struct probe {
	metrics_probe_fn fn;
	void *userdata;
};

struct handler {
	char prefix[METRICS_HANDLER_PREFIX_MAX + 1];
	size_t prefix_len;
	metrics_handler_fn fn;
	void *userdata;
};

struct metrics_server {
	struct loop *loop;
	struct metrics_registry *registry;
	int fd;
	uint16_t port;
	struct loop_source *listener;
	struct loop_source *retry;
	bool paused;
	int64_t timeout_ns;
	struct probe probes[_METRICS_PROBE_MAX];
	char *ok_body;
	bool no_builtin;
	struct handler handlers[METRICS_MAX_HANDLERS];
	size_t n_handlers;
	struct conn *conns;
	unsigned n_conns;
};

static void listener_pause(struct metrics_server *s, bool pause)
{
	if (s->paused == pause)
		return;
	if (loop_source_set_io_events(s->listener, pause ? 0 : EPOLLIN) >= 0)
		s->paused = pause;
}

static void conn_free(struct conn *c)
{
	if (!c)
		return;
	struct metrics_server *s = c->server;
	if (c->pending)
		c->pending->conn = NULL;
	loop_source_free(c->io);
	loop_source_free(c->timer);
	safe_close(c->fd);
	buf_done(&c->out);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->n_conns--;
	free(c);
	if (s->n_conns < METRICS_HTTP_MAX_CONNECTIONS && !s->retry)
		listener_pause(s, false);
}

static void start_drain(struct conn *c)
{
	(void)shutdown(c->fd, SHUT_WR);
	buf_done(&c->out);
	c->state = CONN_DRAIN;
	if (loop_source_set_io_events(c->io, EPOLLIN) < 0)
		conn_free(c);
}

/* Sends what it can; frees c on error or moves on to draining. */
static void conn_flush(struct conn *c)
{
	while (c->out_off < c->out.len) {
		ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (loop_source_set_io_events(c->io, EPOLLOUT) < 0)
					conn_free(c);
				return;
			}
			conn_free(c);
			return;
		}
		c->out_off += (size_t)n;
	}
	start_drain(c);
}

static void respond(struct conn *c, int status, const char *content_type, const char *extra,
		    const void *body, size_t body_len, bool head)
{
	const char *phrase;
	switch (status) {
	case 200:
		phrase = "OK";
		break;
	case 400:
		phrase = "Bad Request";
		break;
	case 404:
		phrase = "Not Found";
		break;
	case 503:
		phrase = "Service Unavailable";
		break;
	case 405:
		phrase = "Method Not Allowed";
		break;
	case 431:
		phrase = "Request Header Fields Too Large";
		break;
	case 505:
		phrase = "HTTP Version Not Supported";
		break;
	default:
		phrase = "Internal Server Error";
		break;
	}
	int r = buf_printf(&c->out,
			   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
			   "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
			   status, phrase, content_type, body_len, extra ? extra : "");
	if (r >= 0 && !head && body_len > 0)
		r = buf_append(&c->out, body, body_len, 0);
	if (r < 0) {
		conn_free(c);
		return;
	}
	c->state = CONN_WRITE;
	c->out_off = 0;
	conn_flush(c);
}

static void respond_text(struct conn *c, int status, const char *text, const char *extra, bool head)
{
	respond(c, status, "text/plain; charset=utf-8", extra, text, strlen(text), head);
}

static bool path_is(const struct metrics_http_request *req, const char *p)
{
	return req->path_len == strlen(p) && memcmp(req->path, p, req->path_len) == 0;
}

static void handle_request(struct conn *c, const struct metrics_http_request *req)
{
	static const char *const probe_paths[_METRICS_PROBE_MAX] = {
	    [METRICS_PROBE_STARTUP] = "/startup",
	    [METRICS_PROBE_READY] = "/readyz",
	    [METRICS_PROBE_LIVE] = "/livez",
	};
	struct metrics_server *s = c->server;
	bool head = req->method == METRICS_HTTP_HEAD;
	int probe = -1;

	for (int i = 0; i < _METRICS_PROBE_MAX; i++)
		if (path_is(req, probe_paths[i]))
			probe = i;
	bool builtin = !s->no_builtin && (probe >= 0 || path_is(req, "/metrics"));
	const struct handler *h = NULL;
	for (size_t i = 0; !builtin && !h && i < s->n_handlers; i++)
		if (req->path_len >= s->handlers[i].prefix_len &&
		    memcmp(req->path, s->handlers[i].prefix, s->handlers[i].prefix_len) == 0)
			h = &s->handlers[i];
	if (h && req->method != METRICS_HTTP_OTHER) {
		struct metrics_request *mr = calloc(1, sizeof(*mr));
		/* Nothing is read while the handler works; a client that leaves is noticed. */
		if (!mr || loop_source_set_io_events(c->io, EPOLLRDHUP) < 0) {
			free(mr);
			respond_text(c, 500, "out of memory", NULL, head);
			return;
		}
		*mr = (struct metrics_request){.conn = c, .head = head};
		c->pending = mr;
		c->state = CONN_WAIT;
		h->fn(mr, req->path, req->path_len, h->userdata);
	} else if (!builtin && !h) {
		respond_text(c, 404, "not found", NULL, head);
	} else if (req->method == METRICS_HTTP_OTHER) {
		respond_text(c, 405, "method not allowed", "Allow: GET, HEAD\r\n", false);
	} else if (probe >= 0) {
		const struct probe *p = &s->probes[probe];
		char reason[METRICS_PROBE_REASON_MAX] = "";
		if (!p->fn || p->fn(p->userdata, reason, sizeof(reason))) {
			respond_text(c, 200, s->ok_body ? s->ok_body : "ok", NULL, head);
		} else {
			reason[sizeof(reason) - 1] = 0;
			reason[strcspn(reason, "\r\n")] = 0;
			respond_text(c, 500, reason[0] ? reason : "not ready", NULL, head);
		}
	} else {
		_cleanup_(buf_done) struct buf body = {0};
		if (s->registry && metrics_registry_render(s->registry, &body) < 0)
			respond_text(c, 500, "cannot render metrics", NULL, head);
		else
			respond(c, 200, METRICS_CONTENT_TYPE, NULL, body.data, body.len, head);
	}
}

static void conn_read(struct conn *c)
{
	ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, MSG_DONTWAIT);
	if (n < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			conn_free(c);
		return;
	}
	if (n == 0) {
		conn_free(c); /* the client gave up before a complete request */
		return;
	}
	c->in_len += (size_t)n;

	struct metrics_http_request req;
	int r = metrics_http_parse_request(c->in, c->in_len, &req);
	if (r == 0)
		handle_request(c, &req);
	else if (r == -EMSGSIZE)
		respond_text(c, 431, "request header fields too large", NULL, false);
	else if (r == -EPROTONOSUPPORT)
		respond_text(c, 505, "http version not supported", NULL, false);
	else if (r != -EAGAIN)
		respond_text(c, 400, "bad request", NULL, false);
}

static void conn_drain(struct conn *c)
{
	char scratch[4096];
	ssize_t n = recv(c->fd, scratch, sizeof(scratch), MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0 || (c->drained += (size_t)n) > MAX_DRAIN_BYTES)
		conn_free(c);
}

static void on_conn_io(struct loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct conn *c = userdata;
	switch (c->state) {
	case CONN_READ:
		conn_read(c);
		break;
	case CONN_WRITE:
		if (events & (EPOLLERR | EPOLLHUP) && !(events & EPOLLOUT))
			conn_free(c);
		else
			conn_flush(c);
		break;
	case CONN_DRAIN:
		conn_drain(c);
		break;
	case CONN_WAIT:
		if (events & (EPOLLERR | EPOLLHUP | EPOLLRDHUP))
			conn_free(c);
		break;
	}
}

static void on_conn_timeout(struct loop_source *src, void *userdata)
{
	conn_free(userdata);
}

static void on_retry(struct loop_source *src, void *userdata)
{
	struct metrics_server *s = userdata;
	s->retry = loop_source_free(s->retry);
	if (s->n_conns < METRICS_HTTP_MAX_CONNECTIONS)
		listener_pause(s, false);
}

static int conn_add(struct metrics_server *s, int fd)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (!c) {
		safe_close(fd);
		return -ENOMEM;
	}
	c->server = s;
	c->fd = fd;
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->n_conns++;
	int r = loop_add_io(s->loop, fd, EPOLLIN, on_conn_io, c, &c->io);
	if (r >= 0)
		r = loop_add_timer(s->loop, now_ns() + s->timeout_ns, on_conn_timeout, c,
				   &c->timer);
	if (r < 0)
		conn_free(c);
	return r;
}

static void on_accept(struct loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct metrics_server *s = userdata;
	while (s->n_conns < METRICS_HTTP_MAX_CONNECTIONS) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			/* Out of fds or memory: stop polling the listener for a while rather
			 * than spin on a level-triggered readiness we cannot act on. */
			listener_pause(s, true);
			if (!s->retry && loop_add_timer(s->loop, now_ns() + ACCEPT_RETRY_NS,
							on_retry, s, &s->retry) < 0)
				listener_pause(s, false);
			return;
		}
		if (conn_add(s, cfd) < 0)
			return;
	}
	listener_pause(s, true);
}

int metrics_server_new(struct loop *l, struct metrics_registry *registry, const char *address,
		       uint16_t port, struct metrics_server **ret)
{
	if (!l || !ret)
		return -EINVAL;
	struct metrics_server *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->loop = l;
	s->registry = registry;
	s->fd = -EBADF;
	s->timeout_ns = METRICS_HTTP_DEFAULT_TIMEOUT_NS;
	int r =
	    socket_listen_tcp(address ? address : METRICS_DEFAULT_ADDRESS, port, &s->fd, &s->port);
	if (r >= 0)
		r = loop_add_io(l, s->fd, EPOLLIN, on_accept, s, &s->listener);
	if (r < 0) {
		metrics_server_free(s);
		return r;
	}
	*ret = s;
	return 0;
}

struct metrics_server *metrics_server_free(struct metrics_server *s)
{
	if (!s)
		return NULL;
	s->retry = loop_source_free(s->retry);
	s->listener = loop_source_free(s->listener);
	while (s->conns)
		conn_free(s->conns);
	safe_close(s->fd);
	free(s->ok_body);
	free(s);
	return NULL;
}

uint16_t metrics_server_get_port(const struct metrics_server *s)
{
	return s ? s->port : 0;
}

void metrics_server_set_probe(struct metrics_server *s, enum metrics_probe probe,
			      metrics_probe_fn fn, void *userdata)
{
	if (!s || (unsigned)probe >= _METRICS_PROBE_MAX)
		return;
	s->probes[probe] = (struct probe){fn, userdata};
}

void metrics_server_set_timeout(struct metrics_server *s, int64_t timeout_ns)
{
	if (s && timeout_ns > 0)
		s->timeout_ns = timeout_ns;
}

unsigned metrics_server_get_connections(const struct metrics_server *s)
{
	return s ? s->n_conns : 0;
}

void metrics_server_set_builtin_paths(struct metrics_server *s, bool enabled)
{
	if (s)
		s->no_builtin = !enabled;
}

int metrics_server_set_ok_body(struct metrics_server *s, const char *body)
{
	if (!s)
		return -EINVAL;
	if (body && strcspn(body, "\r\n") != strlen(body))
		return -EINVAL;
	return str_set(&s->ok_body, body);
}

int metrics_server_add_handler(struct metrics_server *s, const char *path_prefix,
			       metrics_handler_fn fn, void *userdata)
{
	if (!s || !fn || !path_prefix || path_prefix[0] != '/')
		return -EINVAL;
	size_t n = strlen(path_prefix);
	if (n > METRICS_HANDLER_PREFIX_MAX)
		return -ENAMETOOLONG;
	if (s->n_handlers >= METRICS_MAX_HANDLERS)
		return -ENOSPC;
	struct handler *h = &s->handlers[s->n_handlers++];
	memcpy(h->prefix, path_prefix, n + 1);
	h->prefix_len = n;
	h->fn = fn;
	h->userdata = userdata;
	return 0;
}

int metrics_request_reply(struct metrics_request *req, int status, const char *content_type,
			  const void *body, size_t len)
{
	if (!req)
		return -EINVAL;
	struct conn *c = req->conn;
	bool head = req->head;
	free(req);
	if (!c)
		return 0;
	c->pending = NULL;
	if (loop_source_set_io_events(c->io, EPOLLIN) < 0) {
		conn_free(c);
		return 0;
	}
	respond(c, status, content_type ? content_type : "text/plain; charset=utf-8", NULL, body,
		body ? len : 0, head);
	return 0;
}

bool metrics_request_is_cancelled(const struct metrics_request *req)
{
	return !req || !req->conn;
}

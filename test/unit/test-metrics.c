/* Unit tests for lib/metrics: exact exposition text for each metric type, label escaping,
 * concurrent updates, the request parser, and the probe/metrics HTTP server over loopback driven
 * by loop_run_once in this thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>

#include "metrics/metrics.h"

static char *render(struct metrics_registry *r)
{
	_cleanup_(buf_done) struct buf b = {0};
	assert_int_equal(metrics_registry_render(r, &b), 0);
	assert_int_equal(buf_append(&b, "", 1, 0), 0);
	return (char *)TAKE_PTR(b.data);
}

static void test_counter_text(void **state)
{
	_cleanup_(metrics_registry_freep) struct metrics_registry *r = NULL;
	struct metrics_counter *c, *c2;
	assert_int_equal(metrics_registry_new(&r), 0);
	assert_int_equal(metrics_counter_new(r, "pp_requests_total", "Requests\\served\nso far",
					     (const char *[]){"method", "create", NULL}, &c),
			 0);
	assert_int_equal(metrics_counter_new(r, "pp_requests_total", "ignored",
					     (const char *[]){"method", "delete", NULL}, &c2),
			 0);
	metrics_counter_inc(c);
	metrics_counter_add(c, 41);
	metrics_counter_inc(c2);
	assert_int_equal(metrics_counter_get(c), 42);
	_cleanup_free_ char *text = render(r);
	assert_string_equal(text, "# HELP pp_requests_total Requests\\\\served\\nso far\n"
				  "# TYPE pp_requests_total counter\n"
				  "pp_requests_total{method=\"create\"} 42\n"
				  "pp_requests_total{method=\"delete\"} 1\n");
}

static double sandboxes(void *userdata)
{
	return *(int *)userdata;
}

static void test_gauge_text(void **state)
{
	_cleanup_(metrics_registry_freep) struct metrics_registry *r = NULL;
	struct metrics_gauge *g;
	int n = 3;
	assert_int_equal(metrics_registry_new(&r), 0);
	assert_int_equal(metrics_gauge_new(r, "pp_temperature", "A gauge", NULL, &g), 0);
	assert_int_equal(
	    metrics_gauge_new_callback(r, "pp_sandboxes", "", NULL, sandboxes, &n, NULL), 0);
	metrics_gauge_set(g, 2.5);
	metrics_gauge_inc(g);
	metrics_gauge_inc(g);
	metrics_gauge_dec(g);
	_cleanup_free_ char *text = render(r);
	assert_string_equal(text, "# HELP pp_temperature A gauge\n"
				  "# TYPE pp_temperature gauge\n"
				  "pp_temperature 3.5\n"
				  "# TYPE pp_sandboxes gauge\n"
				  "pp_sandboxes 3\n");
	n = 7; /* the callback is asked at each render */
	metrics_gauge_set(g, -0.1);
	_cleanup_free_ char *text2 = render(r);
	assert_string_equal(text2, "# HELP pp_temperature A gauge\n"
				   "# TYPE pp_temperature gauge\n"
				   "pp_temperature -0.1\n"
				   "# TYPE pp_sandboxes gauge\n"
				   "pp_sandboxes 7\n");
}

static void test_histogram_text(void **state)
{
	_cleanup_(metrics_registry_freep) struct metrics_registry *r = NULL;
	struct metrics_histogram *h;
	const double buckets[] = {0.25, 1, 10};
	assert_int_equal(metrics_registry_new(&r), 0);
	assert_int_equal(metrics_histogram_new(r, "pp_create_seconds", "Create latency",
					       (const char *[]){"provider", "libvirt", NULL},
					       buckets, ELEMENTSOF(buckets), &h),
			 0);
	metrics_histogram_observe(h, 0.25); /* bounds are inclusive */
	metrics_histogram_observe(h, 0.5);
	metrics_histogram_observe(h, 4);
	metrics_histogram_observe(h, 16);
	_cleanup_free_ char *text = render(r);
	assert_string_equal(text, "# HELP pp_create_seconds Create latency\n"
				  "# TYPE pp_create_seconds histogram\n"
				  "pp_create_seconds_bucket{provider=\"libvirt\",le=\"0.25\"} 1\n"
				  "pp_create_seconds_bucket{provider=\"libvirt\",le=\"1\"} 2\n"
				  "pp_create_seconds_bucket{provider=\"libvirt\",le=\"10\"} 3\n"
				  "pp_create_seconds_bucket{provider=\"libvirt\",le=\"+Inf\"} 4\n"
				  "pp_create_seconds_sum{provider=\"libvirt\"} 20.75\n"
				  "pp_create_seconds_count{provider=\"libvirt\"} 4\n");

	/* No labels and no buckets: only +Inf. */
	assert_int_equal(metrics_histogram_new(r, "pp_empty", NULL, NULL, NULL, 0, &h), 0);
	_cleanup_(buf_done) struct buf b = {0};
	metrics_histogram_observe(h, 1e-3);
	assert_int_equal(metrics_registry_render(r, &b), 0);
	assert_non_null(memmem(b.data, b.len,
			       "# TYPE pp_empty histogram\n"
			       "pp_empty_bucket{le=\"+Inf\"} 1\n"
			       "pp_empty_sum 0.001\n"
			       "pp_empty_count 1\n",
			       strlen("# TYPE pp_empty histogram\n"
				      "pp_empty_bucket{le=\"+Inf\"} 1\n"
				      "pp_empty_sum 0.001\n"
				      "pp_empty_count 1\n")));
}

static void test_label_escaping(void **state)
{
	_cleanup_(metrics_registry_freep) struct metrics_registry *r = NULL;
	assert_int_equal(metrics_registry_new(&r), 0);
	assert_int_equal(metrics_counter_new(r, "pp_x_total", NULL,
					     (const char *[]){"a", "q\"b\\s\nn", "b", "", NULL},
					     NULL),
			 0);
	_cleanup_free_ char *text = render(r);
	assert_string_equal(text, "# TYPE pp_x_total counter\n"
				  "pp_x_total{a=\"q\\\"b\\\\s\\nn\",b=\"\"} 0\n");
}

static void test_registration_errors(void **state)
{
	_cleanup_(metrics_registry_freep) struct metrics_registry *r = NULL;
	const double bad[] = {1, 1};
	const double inf[] = {1, 1.0 / 0.0};
	assert_int_equal(metrics_registry_new(&r), 0);
	assert_int_equal(metrics_counter_new(r, "9bad", NULL, NULL, NULL), -EINVAL);
	assert_int_equal(metrics_counter_new(r, "bad-name", NULL, NULL, NULL), -EINVAL);
	assert_int_equal(metrics_counter_new(r, "", NULL, NULL, NULL), -EINVAL);
	assert_int_equal(
	    metrics_counter_new(r, "ok", NULL, (const char *[]){"a:b", "x", NULL}, NULL), -EINVAL);
	assert_int_equal(
	    metrics_counter_new(r, "ok", NULL, (const char *[]){"__x", "x", NULL}, NULL), -EINVAL);
	assert_int_equal(metrics_counter_new(r, "ok", NULL, (const char *[]){"odd", NULL}, NULL),
			 -EINVAL);
	assert_int_equal(
	    metrics_counter_new(r, "ok", NULL, (const char *[]){"a", "1", "a", "2", NULL}, NULL),
	    -EINVAL);
	assert_int_equal(
	    metrics_histogram_new(r, "h", NULL, (const char *[]){"le", "1", NULL}, NULL, 0, NULL),
	    -EINVAL);
	assert_int_equal(metrics_histogram_new(r, "h", NULL, NULL, bad, 2, NULL), -EINVAL);
	assert_int_equal(metrics_histogram_new(r, "h", NULL, NULL, inf, 2, NULL), -EINVAL);
	assert_int_equal(metrics_counter_new(r, "ns:ok_total", NULL, NULL, NULL), 0);
	assert_int_equal(metrics_counter_new(r, "ns:ok_total", NULL, NULL, NULL), -EEXIST);
	assert_int_equal(
	    metrics_gauge_new(r, "ns:ok_total", NULL, (const char *[]){"a", "b", NULL}, NULL),
	    -EEXIST);
	_cleanup_free_ char *text = render(r);
	assert_string_equal(text, "# TYPE ns:ok_total counter\nns:ok_total 0\n");
	/* NULL handles are ignored by updates. */
	metrics_counter_inc(NULL);
	metrics_gauge_set(NULL, 1);
	metrics_histogram_observe(NULL, 1);
	assert_null(metrics_registry_free(NULL));
}

#define THREADS 8
#define ITERATIONS 100000

struct shared {
	struct metrics_counter *c;
	struct metrics_gauge *g;
	struct metrics_histogram *h;
};

static void *hammer(void *arg)
{
	struct shared *s = arg;
	for (int i = 0; i < ITERATIONS; i++) {
		metrics_counter_inc(s->c);
		metrics_gauge_inc(s->g);
		metrics_histogram_observe(s->h, i % 2 ? 0.5 : 2);
	}
	return NULL;
}

static void test_concurrent_updates(void **state)
{
	_cleanup_(metrics_registry_freep) struct metrics_registry *r = NULL;
	struct shared s;
	const double one[] = {1};
	assert_int_equal(metrics_registry_new(&r), 0);
	assert_int_equal(metrics_counter_new(r, "c_total", NULL, NULL, &s.c), 0);
	assert_int_equal(metrics_gauge_new(r, "g", NULL, NULL, &s.g), 0);
	assert_int_equal(metrics_histogram_new(r, "h", NULL, NULL, one, 1, &s.h), 0);
	pthread_t t[THREADS];
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hammer, &s), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(metrics_counter_get(s.c), THREADS * ITERATIONS);
	assert_true(metrics_gauge_get(s.g) == THREADS * ITERATIONS);
	_cleanup_free_ char *text = render(r);
	assert_string_equal(text, "# TYPE c_total counter\n"
				  "c_total 800000\n"
				  "# TYPE g gauge\n"
				  "g 800000\n"
				  "# TYPE h histogram\n"
				  "h_bucket{le=\"1\"} 400000\n"
				  "h_bucket{le=\"+Inf\"} 800000\n"
				  "h_sum 1e+06\n"
				  "h_count 800000\n");
}

static int parse(const char *s, struct metrics_http_request *req)
{
	return metrics_http_parse_request(s, strlen(s), req);
}

static void test_parser(void **state)
{
	struct metrics_http_request req;
	assert_int_equal(
	    parse("GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\nBODY", &req), 0);
	assert_int_equal(req.method, METRICS_HTTP_GET);
	assert_int_equal(req.path_len, strlen("/metrics"));
	assert_memory_equal(req.path, "/metrics", req.path_len);
	assert_int_equal(req.minor_version, 1);
	assert_int_equal(req.header_bytes, strlen("GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: "
						  "*/*\r\n\r\n"));
	assert_int_equal(parse("HEAD / HTTP/1.0\r\n\r\n", &req), 0);
	assert_int_equal(req.method, METRICS_HTTP_HEAD);
	assert_int_equal(parse("DELETE /x HTTP/1.1\r\nhost:a\r\n\r\n", &req), 0);
	assert_int_equal(req.method, METRICS_HTTP_OTHER);

	/* Incomplete but valid so far. */
	assert_int_equal(parse("", &req), -EAGAIN);
	assert_int_equal(parse("GET /metrics HT", &req), -EAGAIN);
	assert_int_equal(parse("GET /metrics HTTP/1.1\r", &req), -EAGAIN);
	assert_int_equal(parse("GET /metrics HTTP/1.1\r\nHost: a\r\n", &req), -EAGAIN);

	/* Malformed. */
	const char *bad[] = {
	    "GET /metrics HTTP/1.1\nHost: a\n\n",             /* bare LF */
	    "GET /metrics HTTP/1.1\r\nHost: a\r\n\n",         /* bare LF at the end */
	    "GET  /metrics HTTP/1.1\r\nHost: a\r\n\r\n",      /* two spaces */
	    "GET metrics HTTP/1.1\r\nHost: a\r\n\r\n",        /* not origin-form */
	    "GET /metrics HTTP/1.1 \r\nHost: a\r\n\r\n",      /* trailing space */
	    "GET /metrics HTTP/1.12\r\nHost: a\r\n\r\n",      /* version */
	    "GET /metrics\r\nHost: a\r\n\r\n",                /* HTTP/0.9 */
	    "GET /metrics HTTP/1.1\r\nHost : a\r\n\r\n",      /* space before colon */
	    "GET /metrics HTTP/1.1\r\nHost: a\r\n b\r\n\r\n", /* obs-fold */
	    "GET /metrics HTTP/1.1\r\n\r\n",                  /* no Host in 1.1 */
	    "GET /metrics HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
	    "GET /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n",
	    "GET /metrics HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
	    "GET /metrics HTTP/1.1\r\nHost: a\x01\r\n\r\n",
	    "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", /* a TLS ClientHello */
	    "G\rET / HTTP/1.1\r\n",
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		int r = parse(bad[i], &req);
		if (r != -EBADMSG)
			fail_msg("case %zu: %d", i, r);
	}
	assert_int_equal(parse("GET / HTTP/2.0\r\nHost: a\r\n\r\n", &req), -EPROTONOSUPPORT);

	/* Size limit: the head may not exceed 8 KiB. */
	_cleanup_free_ char *big = malloc(METRICS_HTTP_MAX_HEADER_BYTES + 1);
	assert_non_null(big);
	memset(big, 'a', METRICS_HTTP_MAX_HEADER_BYTES);
	memcpy(big, "GET /", 5);
	assert_int_equal(metrics_http_parse_request(big, METRICS_HTTP_MAX_HEADER_BYTES - 1, &req),
			 -EAGAIN);
	assert_int_equal(metrics_http_parse_request(big, METRICS_HTTP_MAX_HEADER_BYTES, &req),
			 -EMSGSIZE);
}

/* ---- server ---- */

struct fixture {
	struct loop *loop;
	struct metrics_registry *registry;
	struct metrics_server *server;
	uint16_t port;
	bool started;
	const char *ready_reason;
};

static bool startup_probe(void *userdata, char *reason, size_t size)
{
	struct fixture *f = userdata;
	if (!f->started)
		snprintf(reason, size, "hypervisor socket not listening\nsecond line");
	return f->started;
}

static bool ready_probe(void *userdata, char *reason, size_t size)
{
	struct fixture *f = userdata;
	if (f->ready_reason)
		snprintf(reason, size, "%s", f->ready_reason);
	return !f->ready_reason;
}

static int setup_server(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	assert_int_equal(loop_new(&f->loop), 0);
	assert_int_equal(metrics_registry_new(&f->registry), 0);
	assert_int_equal(metrics_counter_new(f->registry, "pp_up_total", "Up", NULL, NULL), 0);
	assert_int_equal(metrics_server_new(f->loop, f->registry, "127.0.0.1", 0, &f->server), 0);
	f->port = metrics_server_get_port(f->server);
	assert_true(f->port != 0);
	metrics_server_set_probe(f->server, METRICS_PROBE_STARTUP, startup_probe, f);
	metrics_server_set_probe(f->server, METRICS_PROBE_READY, ready_probe, f);
	*state = f;
	return 0;
}

static int teardown_server(void **state)
{
	struct fixture *f = *state;
	metrics_server_free(f->server);
	metrics_registry_free(f->registry);
	loop_free(f->loop);
	free(f);
	return 0;
}

static int connect_port(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(fd_set_nonblock(fd, true), 0);
	return fd;
}

static void send_str(int fd, const char *s, size_t n)
{
	assert_int_equal(send(fd, s, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Drives the loop until the server closes fd; returns what it sent. A bounded number of loop
 * iterations, each ending as soon as there is something to do, guards against a hang. */
static char *read_until_close(struct fixture *f, int fd)
{
	_cleanup_(buf_done) struct buf b = {0};
	for (int i = 0; i < 2000; i++) {
		char tmp[4096];
		ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			break;
		if (n > 0) {
			assert_int_equal(buf_append(&b, tmp, (size_t)n, 0), 0);
			continue;
		}
		assert_true(errno == EAGAIN);
		assert_true(loop_run_once(f->loop, 50 * NSEC_PER_MSEC) >= 0);
	}
	assert_int_equal(buf_append(&b, "", 1, 0), 0);
	return (char *)TAKE_PTR(b.data);
}

/* Handles every event already pending, e.g. the server seeing a client's close. */
static void settle(struct fixture *f)
{
	while (loop_run_once(f->loop, 0) > 0)
		;
}

static char *exchange_n(struct fixture *f, const char *req, size_t n)
{
	int fd = connect_port(f->port);
	send_str(fd, req, n);
	char *resp = read_until_close(f, fd);
	close(fd);
	settle(f);
	return resp;
}

static char *exchange(struct fixture *f, const char *req)
{
	return exchange_n(f, req, strlen(req));
}

static const char *body_of(const char *resp)
{
	const char *p = strstr(resp, "\r\n\r\n");
	assert_non_null(p);
	return p + 4;
}

static void test_server_metrics(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *resp = exchange(f, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
	const char *body = "# HELP pp_up_total Up\n# TYPE pp_up_total counter\npp_up_total 0\n";
	_cleanup_free_ char *expect =
	    str_printf("HTTP/1.1 200 OK\r\nContent-Type: " METRICS_CONTENT_TYPE
		       "\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n"
		       "Connection: close\r\n\r\n%s",
		       strlen(body), body);
	assert_string_equal(resp, expect);

	/* HEAD: same head, no body. */
	_cleanup_free_ char *head = exchange(f, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
	size_t head_len = strlen(expect) - strlen(body);
	assert_int_equal(strlen(head), head_len);
	assert_memory_equal(head, expect, head_len);

	/* HTTP/1.0 without Host, query string ignored. */
	_cleanup_free_ char *v10 = exchange(f, "GET /metrics?debug=1 HTTP/1.0\r\n\r\n");
	assert_string_equal(body_of(v10), body);
}

static void test_server_probes(void **state)
{
	struct fixture *f = *state;

	_cleanup_free_ char *s1 = exchange(f, "GET /startup HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_true(str_startswith(s1, "HTTP/1.1 500 Internal Server Error\r\n"));
	assert_string_equal(body_of(s1), "hypervisor socket not listening");
	f->started = true;
	_cleanup_free_ char *s2 = exchange(f, "GET /startup HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_true(str_startswith(s2, "HTTP/1.1 200 OK\r\n"));
	assert_string_equal(body_of(s2), "ok");

	_cleanup_free_ char *r1 = exchange(f, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_true(str_startswith(r1, "HTTP/1.1 200 OK\r\n"));
	f->ready_reason = "provider unreachable";
	_cleanup_free_ char *r2 = exchange(f, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_true(str_startswith(r2, "HTTP/1.1 500 "));
	assert_string_equal(body_of(r2), "provider unreachable");
	f->ready_reason = "";
	_cleanup_free_ char *r3 = exchange(f, "HEAD /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_true(str_startswith(r3, "HTTP/1.1 500 "));
	assert_non_null(strstr(r3, "Content-Length: 9\r\n")); /* "not ready" */
	assert_string_equal(body_of(r3), "");

	/* No callback: healthy. */
	_cleanup_free_ char *l1 = exchange(f, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_true(str_startswith(l1, "HTTP/1.1 200 OK\r\n"));
	assert_string_equal(body_of(l1), "ok");
}

static void test_server_errors(void **state)
{
	struct fixture *f = *state;

	_cleanup_free_ char *nf = exchange(f, "GET /metricsx HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_true(str_startswith(nf, "HTTP/1.1 404 Not Found\r\n"));
	_cleanup_free_ char *root = exchange(f, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_true(str_startswith(root, "HTTP/1.1 404 Not Found\r\n"));

	_cleanup_free_ char *post =
	    exchange(f, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
	assert_true(str_startswith(post, "HTTP/1.1 405 Method Not Allowed\r\n"));
	assert_non_null(strstr(post, "\r\nAllow: GET, HEAD\r\n"));

	_cleanup_free_ char *garbage = exchange(f, "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03");
	assert_true(str_startswith(garbage, "HTTP/1.1 400 Bad Request\r\n"));
	_cleanup_free_ char *lf = exchange(f, "GET /metrics HTTP/1.1\nHost: x\n\n");
	assert_true(str_startswith(lf, "HTTP/1.1 400 Bad Request\r\n"));
	_cleanup_free_ char *nohost = exchange(f, "GET /metrics HTTP/1.1\r\n\r\n");
	assert_true(str_startswith(nohost, "HTTP/1.1 400 Bad Request\r\n"));
	_cleanup_free_ char *v2 = exchange(f, "GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n");
	assert_true(str_startswith(v2, "HTTP/1.1 505 "));

	/* An oversized head, bigger than the limit and sent whole: 431, then the connection is
	 * closed without a reset eating the answer. */
	size_t n = 3 * METRICS_HTTP_MAX_HEADER_BYTES;
	_cleanup_free_ char *big = malloc(n);
	assert_non_null(big);
	memset(big, 'a', n);
	const char *start = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: ";
	memcpy(big, start, strlen(start));
	_cleanup_free_ char *resp = exchange_n(f, big, n);
	assert_true(str_startswith(resp, "HTTP/1.1 431 Request Header Fields Too Large\r\n"));
	assert_int_equal(metrics_server_get_connections(f->server), 0);
}

static void test_server_slowloris(void **state)
{
	struct fixture *f = *state;
	metrics_server_set_timeout(f->server, 200 * NSEC_PER_MSEC);

	_cleanup_close_ int slow = connect_port(f->port);
	send_str(slow, "GET /metrics HTTP/1.1\r\nHost: x\r\n", 32);
	while (metrics_server_get_connections(f->server) < 1)
		assert_true(loop_run_once(f->loop, 50 * NSEC_PER_MSEC) >= 0);

	/* Others are served while it dawdles. */
	_cleanup_free_ char *ok = exchange(f, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_true(str_startswith(ok, "HTTP/1.1 200 OK\r\n"));
	assert_int_equal(metrics_server_get_connections(f->server), 1);

	/* Its deadline closes it, with no answer. */
	_cleanup_free_ char *nothing = read_until_close(f, slow);
	assert_string_equal(nothing, "");
	assert_int_equal(metrics_server_get_connections(f->server), 0);
}

static void test_server_connection_limit(void **state)
{
	struct fixture *f = *state;
	int idle[METRICS_HTTP_MAX_CONNECTIONS];

	for (size_t i = 0; i < ELEMENTSOF(idle); i++)
		idle[i] = connect_port(f->port);
	while (metrics_server_get_connections(f->server) < METRICS_HTTP_MAX_CONNECTIONS)
		assert_true(loop_run_once(f->loop, 50 * NSEC_PER_MSEC) >= 0);

	/* One more is left in the backlog: after every pending event is handled it has no
	 * answer and the server has not taken it. */
	int extra = connect_port(f->port);
	send_str(extra, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n", 33);
	settle(f);
	char c;
	assert_int_equal(recv(extra, &c, 1, 0), -1);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(metrics_server_get_connections(f->server), METRICS_HTTP_MAX_CONNECTIONS);

	/* A slot frees up: it is served. */
	close(idle[0]);
	settle(f);
	_cleanup_free_ char *resp = read_until_close(f, extra);
	assert_true(str_startswith(resp, "HTTP/1.1 200 OK\r\n"));
	close(extra);
	for (size_t i = 1; i < ELEMENTSOF(idle); i++)
		close(idle[i]);
	while (metrics_server_get_connections(f->server) > 0)
		assert_true(loop_run_once(f->loop, 50 * NSEC_PER_MSEC) >= 0);
}

/* ---- asynchronous path handlers ---- */

struct handler_state {
	struct metrics_request *req;
	char path[64];
	int calls;
	bool answer_now;
};

static void on_attest(struct metrics_request *req, const char *path, size_t path_len,
		      void *userdata)
{
	struct handler_state *h = userdata;
	h->calls++;
	assert_true(path_len < sizeof(h->path));
	memcpy(h->path, path, path_len);
	h->path[path_len] = 0;
	if (h->answer_now) {
		assert_int_equal(metrics_request_reply(req, 404, NULL, "no such nonce", 13), 0);
		return;
	}
	h->req = req;
}

static void test_server_handler(void **state)
{
	struct fixture *f = *state;
	struct handler_state h = {0};
	assert_int_equal(metrics_server_add_handler(f->server, "/attest/", on_attest, &h), 0);
	assert_int_equal(metrics_server_add_handler(f->server, "attest", on_attest, &h), -EINVAL);

	/* The handler sees the path without the query and answers later: nothing is sent until
	 * then, and the answer carries its status, type and body. */
	int fd = connect_port(f->port);
	send_str(fd, "GET /attest/abc?x=1 HTTP/1.1\r\nHost: x\r\n\r\n", 41);
	while (h.calls == 0)
		assert_true(loop_run_once(f->loop, 50 * NSEC_PER_MSEC) >= 0);
	assert_string_equal(h.path, "/attest/abc");
	assert_non_null(h.req);
	assert_false(metrics_request_is_cancelled(h.req));
	settle(f);
	char c;
	assert_int_equal(recv(fd, &c, 1, 0), -1);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(
	    metrics_request_reply(TAKE_PTR(h.req), 200, "application/json", "{\"a\":1}", 7), 0);
	_cleanup_free_ char *resp = read_until_close(f, fd);
	close(fd);
	assert_string_equal(resp, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
				  "Content-Length: 7\r\nCache-Control: no-store\r\n"
				  "Connection: close\r\n\r\n{\"a\":1}");

	/* An answer given inside the handler; HEAD gets no body. */
	h.answer_now = true;
	_cleanup_free_ char *now = exchange(f, "GET /attest/x HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_true(str_startswith(now, "HTTP/1.1 404 Not Found\r\n"));
	assert_string_equal(body_of(now), "no such nonce");
	_cleanup_free_ char *head = exchange(f, "HEAD /attest/x HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_true(str_startswith(head, "HTTP/1.1 404 Not Found\r\n"));
	assert_non_null(strstr(head, "Content-Length: 13\r\n"));
	assert_string_equal(body_of(head), "");
	assert_int_equal(h.calls, 3);

	/* Other methods, other paths and the built-in paths never reach it. */
	_cleanup_free_ char *post =
	    exchange(f, "POST /attest/x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
	assert_true(str_startswith(post, "HTTP/1.1 405 "));
	_cleanup_free_ char *other = exchange(f, "GET /attest HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_true(str_startswith(other, "HTTP/1.1 404 "));
	assert_string_equal(body_of(other), "not found");
	_cleanup_free_ char *live = exchange(f, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_string_equal(body_of(live), "ok");
	assert_int_equal(h.calls, 3);
	assert_int_equal(metrics_server_get_connections(f->server), 0);

	/* A server for handlers only answers the built-in paths 404. */
	metrics_server_set_builtin_paths(f->server, false);
	_cleanup_free_ char *m404 = exchange(f, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_true(str_startswith(m404, "HTTP/1.1 404 "));
	_cleanup_free_ char *r404 = exchange(f, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_true(str_startswith(r404, "HTTP/1.1 404 "));
	_cleanup_free_ char *still = exchange(f, "GET /attest/y HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_true(str_startswith(still, "HTTP/1.1 404 "));
	assert_string_equal(body_of(still), "no such nonce");
	assert_int_equal(h.calls, 4);
}

static void test_server_handler_cancelled(void **state)
{
	struct fixture *f = *state;
	struct handler_state h = {0};
	assert_int_equal(metrics_server_add_handler(f->server, "/slow/", on_attest, &h), 0);

	/* The client leaves before the answer: the request stays valid, reports it, and the late
	 * answer is dropped. */
	int fd = connect_port(f->port);
	send_str(fd, "GET /slow/1 HTTP/1.1\r\nHost: x\r\n\r\n", 33);
	while (h.calls == 0)
		assert_true(loop_run_once(f->loop, 50 * NSEC_PER_MSEC) >= 0);
	close(fd);
	while (metrics_server_get_connections(f->server) > 0)
		assert_true(loop_run_once(f->loop, 50 * NSEC_PER_MSEC) >= 0);
	assert_true(metrics_request_is_cancelled(h.req));
	assert_int_equal(metrics_request_reply(TAKE_PTR(h.req), 200, NULL, "late", 4), 0);

	/* The connection deadline also ends a request nobody answers. */
	metrics_server_set_timeout(f->server, 100 * NSEC_PER_MSEC);
	int fd2 = connect_port(f->port);
	send_str(fd2, "GET /slow/2 HTTP/1.1\r\nHost: x\r\n\r\n", 33);
	_cleanup_free_ char *nothing = read_until_close(f, fd2);
	close(fd2);
	assert_string_equal(nothing, "");
	assert_true(metrics_request_is_cancelled(h.req));
	assert_int_equal(metrics_request_reply(TAKE_PTR(h.req), 200, NULL, NULL, 0), 0);

	/* Requests pending when the server goes away are dropped as well. */
	metrics_server_set_timeout(f->server, METRICS_HTTP_DEFAULT_TIMEOUT_NS);
	int fd3 = connect_port(f->port);
	send_str(fd3, "GET /slow/3 HTTP/1.1\r\nHost: x\r\n\r\n", 33);
	while (h.calls < 3)
		assert_true(loop_run_once(f->loop, 50 * NSEC_PER_MSEC) >= 0);
	f->server = metrics_server_free(f->server);
	close(fd3);
	assert_true(metrics_request_is_cancelled(h.req));
	assert_int_equal(metrics_request_reply(TAKE_PTR(h.req), 200, NULL, NULL, 0), 0);
}

static void test_server_ok_body(void **state)
{
	struct fixture *f = *state;
	f->started = true;
	assert_int_equal(metrics_server_set_ok_body(f->server, "ok (test mode)"), 0);
	assert_int_equal(metrics_server_set_ok_body(f->server, "two\nlines"), -EINVAL);
	_cleanup_free_ char *l1 = exchange(f, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_string_equal(body_of(l1), "ok (test mode)");
	_cleanup_free_ char *s1 = exchange(f, "GET /startup HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_string_equal(body_of(s1), "ok (test mode)");
	assert_int_equal(metrics_server_set_ok_body(f->server, NULL), 0);
	_cleanup_free_ char *l2 = exchange(f, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_string_equal(body_of(l2), "ok");
}

static void test_server_bad_address(void **state)
{
	_cleanup_(loop_freep) struct loop *l = NULL;
	struct metrics_server *s = NULL;
	assert_int_equal(loop_new(&l), 0);
	assert_int_equal(metrics_server_new(l, NULL, "localhost", 0, &s), -EINVAL);
	assert_int_equal(metrics_server_new(l, NULL, "::1", 0, &s) == 0 || s == NULL, true);
	metrics_server_free(s);
	assert_null(metrics_server_free(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_counter_text),
	    cmocka_unit_test(test_gauge_text),
	    cmocka_unit_test(test_histogram_text),
	    cmocka_unit_test(test_label_escaping),
	    cmocka_unit_test(test_registration_errors),
	    cmocka_unit_test(test_concurrent_updates),
	    cmocka_unit_test(test_parser),
	    cmocka_unit_test_setup_teardown(test_server_metrics, setup_server, teardown_server),
	    cmocka_unit_test_setup_teardown(test_server_probes, setup_server, teardown_server),
	    cmocka_unit_test_setup_teardown(test_server_errors, setup_server, teardown_server),
	    cmocka_unit_test_setup_teardown(test_server_slowloris, setup_server, teardown_server),
	    cmocka_unit_test_setup_teardown(test_server_connection_limit, setup_server,
					    teardown_server),
	    cmocka_unit_test_setup_teardown(test_server_handler, setup_server, teardown_server),
	    cmocka_unit_test_setup_teardown(test_server_handler_cancelled, setup_server,
					    teardown_server),
	    cmocka_unit_test_setup_teardown(test_server_ok_body, setup_server, teardown_server),
	    cmocka_unit_test(test_server_bad_address),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for coordinator/store-etcd.c against a real etcd on loopback (skipped without
 * /usr/bin/etcd): get/set/has, CAS with "absent" as an old value, prefixes, large values,
 * failover between endpoints, racing CAS; canned gateway answers for the parsers and for the
 * failure paths a healthy etcd never shows (5xx, 4xx, a hung replica). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "coordinator/store.h"
#include "http/http.h"
#include "http-test-server.h"
#include "tls/tls.h"

#include <openssl/x509v3.h>

#ifndef ETCD_BIN
#define ETCD_BIN "/usr/bin/etcd"
#endif

/* A member started by the test; the TLS one requires client certificates. */
struct member {
	const char *name;
	pid_t pid;
	char *endpoint;
	bool tls;
};

static char *topdir;
static struct member etcd = {.name = "plain", .pid = -1};
static struct member etcd_tls = {.name = "tls", .pid = -1, .tls = true};

static char *in_dir(const char *name)
{
	char *p = str_printf("%s/%s", topdir, name);
	assert_non_null(p);
	return p;
}

static uint16_t free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	close(fd);
	return ntohs(a.sin_port);
}

static void member_kill(struct member *m)
{
	if (m->pid > 0) {
		kill(m->pid, SIGKILL);
		waitpid(m->pid, NULL, 0);
	}
	m->pid = -1;
}

static void print_log(struct member *m)
{
	_cleanup_free_ char *name = str_printf("%s.log", m->name);
	_cleanup_free_ char *path = in_dir(name);
	_cleanup_free_ char *log = NULL;
	size_t len;
	if (read_file_bounded(path, 1 << 20, &log, &len) == 0)
		fprintf(stderr, "---- etcd log\n%.*s\n", (int)MIN(len, (size_t)4000), log);
}

static bool healthy(struct member *m)
{
	_cleanup_free_ char *url = str_printf("%s/health", m->endpoint);
	_cleanup_free_ char *ca = in_dir("ca.pem"), *cert = in_dir("client.pem"),
			    *key = in_dir("client.key");
	struct http_request req = {.url = url,
				   .timeout_ns = NSEC_PER_SEC,
				   .connect_timeout_ns = NSEC_PER_SEC,
				   .no_proxy = true};
	if (m->tls) {
		req.ca_file = ca;
		req.client_cert_file = cert;
		req.client_key_file = key;
	}
	_cleanup_(http_response_donep) struct http_response resp = {};
	_cleanup_pp_error_ struct pp_error *err = NULL;
	return url && http_request(&req, &resp, &err) == 0 &&
	       strstr(resp.body, "\"health\":\"true\"");
}

/* One attempt on fresh ports: false when etcd exits (a port taken meanwhile) or never gets
 * healthy. */
static bool try_start(struct member *m)
{
	uint16_t cport = free_port(), pport = free_port();
	if (!cport || !pport || cport == pport)
		return false;
	free(m->endpoint);
	/* the TLS member's certificate names localhost */
	m->endpoint = str_printf("%s://%s:%u", m->tls ? "https" : "http",
				 m->tls ? "localhost" : "127.0.0.1", cport);
	_cleanup_free_ char *listen =
	    str_printf("%s://127.0.0.1:%u", m->tls ? "https" : "http", cport);
	_cleanup_free_ char *peer = str_printf("http://127.0.0.1:%u", pport);
	_cleanup_free_ char *cluster = str_printf("%s=%s", m->name, peer);
	_cleanup_free_ char *data_name = str_printf("%s.etcd", m->name);
	_cleanup_free_ char *log_name = str_printf("%s.log", m->name);
	assert_true(m->endpoint && listen && peer && cluster && data_name && log_name);
	_cleanup_free_ char *data = in_dir(data_name), *log = in_dir(log_name);
	_cleanup_free_ char *srv = in_dir("server.pem"), *srv_key = in_dir("server.key"),
			    *ca = in_dir("ca.pem");
	rm_rf(data);
	const char *argv[40] = {
	    ETCD_BIN,
	    "--name",
	    m->name,
	    "--data-dir",
	    data,
	    "--listen-client-urls",
	    listen,
	    "--advertise-client-urls",
	    listen,
	    "--listen-peer-urls",
	    peer,
	    "--initial-advertise-peer-urls",
	    peer,
	    "--initial-cluster",
	    cluster,
	    "--logger",
	    "zap",
	    "--log-outputs",
	    "stderr",
	    "--log-level",
	    "error",
	    /* a CAS of two large values exceeds the 1.5 MiB default */
	    "--max-request-bytes",
	    "8388608",
	};
	size_t n = 23;
	if (m->tls) {
		const char *more[] = {
		    "--cert-file",       srv, "--key-file", srv_key, "--client-cert-auth",
		    "--trusted-ca-file", ca};
		memcpy(argv + n, more, sizeof(more));
		n += ELEMENTSOF(more);
	}
	assert_null(argv[n]);
	pid_t parent = getpid();
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* etcd must not outlive a crashed test */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(ETCD_BIN, (char **)argv);
		_exit(127);
	}
	m->pid = pid;
	for (int i = 0; i < 300; i++) {
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			m->pid = -1;
			return false;
		}
		if (healthy(m))
			return true;
		usleep(100 * 1000);
	}
	member_kill(m);
	return false;
}

static bool member_start(struct member *m)
{
	for (int attempt = 0; attempt < 3; attempt++)
		if (try_start(m))
			return true;
	print_log(m);
	return false;
}

static int group_setup(void **state)
{
	if (access(ETCD_BIN, X_OK) < 0)
		return 0;
	const char *tmp = getenv("TMPDIR");
	topdir = str_printf("%s/pp-etcd-XXXXXX", str_empty(tmp) ? "/tmp" : tmp);
	if (!topdir || !mkdtemp(topdir))
		return -1;
	return member_start(&etcd) ? 0 : -1;
}

static int group_teardown(void **state)
{
	member_kill(&etcd);
	member_kill(&etcd_tls);
	if (topdir)
		rm_rf(topdir);
	topdir = mfree(topdir);
	etcd.endpoint = mfree(etcd.endpoint);
	etcd_tls.endpoint = mfree(etcd_tls.endpoint);
	return 0;
}

#define NEED_ETCD()                                                      \
	do {                                                             \
		if (etcd.pid < 0) {                                      \
			printf("skip: %s is not installed\n", ETCD_BIN); \
			skip();                                          \
		}                                                        \
	} while (0)

static struct store *open_at(const char *endpoints, const char *prefix, int64_t timeout_ns)
{
	struct store_etcd_options o = {
	    .endpoints = endpoints, .prefix = prefix, .timeout_ns = timeout_ns};
	struct store *s = NULL;
	_cleanup_free_ char *msg = NULL;
	int r = store_open_etcd(&o, &s, &msg);
	if (r < 0)
		fprintf(stderr, "store_open_etcd(%s): %s: %s\n", endpoints, strerror(-r),
			msg ? msg : "");
	assert_int_equal(r, 0);
	return s;
}

static struct store *open_etcd(const char *prefix)
{
	return open_at(etcd.endpoint, prefix, 0);
}

static void assert_value(struct store *s, const char *key, const void *want, size_t want_len)
{
	_cleanup_free_ uint8_t *v = NULL;
	size_t len = 0;
	assert_int_equal(store_get(s, key, &v, &len), 0);
	assert_int_equal(len, want_len);
	assert_memory_equal(v, want, want_len);
	assert_int_equal(v[len], 0);
}

static void test_get_set_has(void **state)
{
	NEED_ETCD();
	_cleanup_(store_freep) struct store *s = open_etcd("/t-basic/");
	assert_string_equal(s->vt->name, "etcd");
	uint8_t *v = NULL;
	size_t len;
	assert_int_equal(store_get(s, "a/b", &v, &len), -ENOENT);
	assert_null(v);
	assert_int_equal(store_has(s, "a/b"), 0);
	assert_int_equal(store_set(s, "a/b", "hello", 5), 0);
	assert_int_equal(store_has(s, "a/b"), 1);
	assert_value(s, "a/b", "hello", 5);
	/* binary values with NULs survive */
	assert_int_equal(store_set(s, "a/b", "x\0y\xff", 4), 0);
	assert_value(s, "a/b", "x\0y\xff", 4);
	/* the gateway omits empty values: still present, still empty */
	assert_int_equal(store_set(s, "a/b", "", 0), 0);
	assert_int_equal(store_has(s, "a/b"), 1);
	assert_value(s, "a/b", "", 0);
	assert_int_equal(store_get(s, "a/c", &v, &len), -ENOENT);
	assert_int_equal(store_set(s, "Bad/key", "x", 1), -EINVAL);
}

static void test_cas(void **state)
{
	NEED_ETCD();
	_cleanup_(store_freep) struct store *s = open_etcd("/t-cas/");
	/* absent -> value */
	assert_int_equal(store_cas(s, "t/latest", NULL, 0, "one", 3), 0);
	assert_value(s, "t/latest", "one", 3);
	/* "absent" no longer holds */
	assert_int_equal(store_cas(s, "t/latest", NULL, 0, "two", 3), -ESTALE);
	/* match */
	assert_int_equal(store_cas(s, "t/latest", "one", 3, "two", 3), 0);
	assert_value(s, "t/latest", "two", 3);
	/* mismatch leaves the value alone */
	assert_int_equal(store_cas(s, "t/latest", "one", 3, "three", 5), -ESTALE);
	assert_int_equal(store_cas(s, "t/latest", "tw", 2, "three", 5), -ESTALE);
	assert_value(s, "t/latest", "two", 3);
	/* an empty old value is not "absent", in both directions */
	assert_int_equal(store_cas(s, "t/empty", "", 0, "x", 1), -ESTALE);
	assert_int_equal(store_has(s, "t/empty"), 0);
	assert_int_equal(store_set(s, "t/empty", "", 0), 0);
	assert_int_equal(store_cas(s, "t/empty", NULL, 0, "x", 1), -ESTALE);
	assert_int_equal(store_cas(s, "t/empty", "", 0, "x", 1), 0);
	assert_value(s, "t/empty", "x", 1);
}

static void test_prefix_isolation(void **state)
{
	NEED_ETCD();
	_cleanup_(store_freep) struct store *a = open_etcd("/t-pa/");
	_cleanup_(store_freep) struct store *b = open_etcd("/t-pb/");
	_cleanup_(store_freep) struct store *ab = open_etcd("/t-p");
	assert_int_equal(store_set(a, "k/v", "from-a", 6), 0);
	assert_int_equal(store_has(b, "k/v"), 0);
	assert_int_equal(store_cas(b, "k/v", NULL, 0, "from-b", 6), 0);
	assert_value(a, "k/v", "from-a", 6);
	assert_value(b, "k/v", "from-b", 6);
	/* a shorter prefix does not see the longer ones' keys as its own */
	assert_int_equal(store_has(ab, "k/v"), 0);
	assert_int_equal(store_has(ab, "a/k"), 0);
}

static void test_large_value(void **state)
{
	NEED_ETCD();
	_cleanup_(store_freep) struct store *s = open_etcd("/t-large/");
	size_t n = 1536 * 1024;
	_cleanup_free_ uint8_t *big = malloc(n), *big2 = malloc(n);
	assert_non_null(big);
	assert_non_null(big2);
	for (size_t i = 0; i < n; i += 256)
		assert_int_equal(getrandom(big + i, 256, 0), 256);
	memcpy(big2, big, n);
	big2[n / 2] ^= 1;
	assert_int_equal(store_set(s, "big/v", big, n), 0);
	assert_value(s, "big/v", big, n);
	/* the compare carries the whole old value */
	assert_int_equal(store_cas(s, "big/v", big2, n, "x", 1), -ESTALE);
	assert_int_equal(store_cas(s, "big/v", big, n, big2, n), 0);
	assert_value(s, "big/v", big2, n);
	_cleanup_free_ uint8_t *huge = calloc(1, STORE_VALUE_MAX_BYTES + 1);
	assert_non_null(huge);
	assert_int_equal(store_set(s, "big/v", huge, STORE_VALUE_MAX_BYTES + 1), -EFBIG);
	assert_int_equal(store_set(s, "big/max", huge, STORE_VALUE_MAX_BYTES), 0);
	assert_value(s, "big/max", huge, STORE_VALUE_MAX_BYTES);
}

static void test_dead_first_endpoint(void **state)
{
	NEED_ETCD();
	_cleanup_free_ char *eps =
	    str_printf("http://127.0.0.1:%u/, %s", free_port(), etcd.endpoint);
	_cleanup_(store_freep) struct store *s = open_at(eps, "/t-dead/", 0);
	assert_int_equal(store_set(s, "d/k", "v", 1), 0);
	assert_value(s, "d/k", "v", 1);
	assert_int_equal(store_cas(s, "d/k", "v", 1, "w", 1), 0);
	assert_int_equal(store_has(s, "d/k"), 1);
}

static void test_all_dead(void **state)
{
	_cleanup_free_ char *eps =
	    str_printf("http://127.0.0.1:%u,http://127.0.0.1:%u", free_port(), free_port());
	struct store_etcd_options o = {.endpoints = eps, .timeout_ns = 2 * NSEC_PER_SEC};
	struct store *s = NULL;
	_cleanup_free_ char *msg = NULL;
	assert_int_equal(store_open_etcd(&o, &s, &msg), -EHOSTUNREACH);
	assert_null(s);
	assert_non_null(msg);
	assert_non_null(strstr(msg, "127.0.0.1"));

	/* a replica that accepts and never answers is bounded by the timeout */
	struct test_server hang;
	struct ts_response never[] = {{.status = 0}};
	assert_int_equal(ts_start(&hang, never, 1), 0);
	_cleanup_free_ char *hung = ts_url(&hang, "");
	o.endpoints = hung;
	o.timeout_ns = NSEC_PER_SEC / 2;
	msg = mfree(msg);
	assert_int_equal(store_open_etcd(&o, &s, &msg), -EHOSTUNREACH);
	ts_stop(&hang);

	/* endpoints that die after the store was opened */
	struct test_server t;
	struct ts_response first_ok[] = {{.status = 200, .body = "{\"header\":{}}"}, {.status = 0}};
	assert_int_equal(ts_start(&t, first_ok, 2), 0);
	_cleanup_free_ char *url = ts_url(&t, "");
	_cleanup_free_ char *eps2 = str_printf("%s,http://127.0.0.1:%u", url, free_port());
	struct store *s2 = open_at(eps2, "/t/", NSEC_PER_SEC / 2);
	uint8_t *v = NULL;
	size_t len;
	int r = store_get(s2, "a/b", &v, &len);
	assert_true(r < 0 && r != -ENOENT);
	assert_null(v);
	r = store_cas(s2, "a/b", NULL, 0, "x", 1);
	assert_true(r < 0 && r != -ESTALE);
	store_free(s2);
	ts_stop(&t);
}

static const char RANGE_EMPTY[] = "{\"header\":{\"cluster_id\":\"1\",\"member_id\":\"2\","
				  "\"revision\":\"1\",\"raft_term\":\"2\"}}";

/* A member that fails with 5xx is skipped; the one that answered is asked first afterwards. */
static void test_5xx_failover(void **state)
{
	NEED_ETCD();
	struct test_server t;
	struct ts_response rs[] = {
	    {.status = 200, .body = RANGE_EMPTY},
	    {.status = 503,
	     .body = "{\"error\":\"etcdserver: no leader\",\"message\":\"etcdserver: no leader\","
		     "\"code\":14}"},
	};
	assert_int_equal(ts_start(&t, rs, 2), 0);
	_cleanup_free_ char *url = ts_url(&t, "");
	_cleanup_free_ char *eps = str_printf("%s,%s", url, etcd.endpoint);
	_cleanup_(store_freep) struct store *s = open_at(eps, "/t-5xx/", 0);
	assert_int_equal(ts_n_requests(&t), 1);
	assert_int_equal(store_set(s, "f/k", "v", 1), 0);
	assert_int_equal(ts_n_requests(&t), 2);
	assert_string_equal(t.requests[1].target, "/v3/kv/put");
	assert_value(s, "f/k", "v", 1);
	assert_int_equal(store_cas(s, "f/k", "v", 1, "w", 1), 0);
	assert_int_equal(ts_n_requests(&t), 2);
	ts_stop(&t);
}

/* etcd's own refusal is final: no other endpoint is asked. */
static void test_4xx_is_final(void **state)
{
	struct test_server a, b;
	struct ts_response bad[] = {
	    {.status = 400,
	     .body = "{\"error\":\"etcdserver: key is not provided\",\"message\":\"etcdserver: key "
		     "is not provided\",\"code\":3}"}};
	struct ts_response ok[] = {{.status = 200, .body = RANGE_EMPTY}};
	assert_int_equal(ts_start(&a, bad, 1), 0);
	assert_int_equal(ts_start(&b, ok, 1), 0);
	_cleanup_free_ char *ua = ts_url(&a, ""), *ub = ts_url(&b, "");
	_cleanup_free_ char *eps = str_printf("%s,%s", ua, ub);
	struct store_etcd_options o = {.endpoints = eps};
	struct store *s = NULL;
	_cleanup_free_ char *msg = NULL;
	assert_int_equal(store_open_etcd(&o, &s, &msg), -EINVAL);
	assert_non_null(strstr(msg, "key is not provided"));
	assert_int_equal(ts_n_requests(&a), 1);
	assert_int_equal(ts_n_requests(&b), 0);
	assert_string_equal(a.requests[0].method, "POST");
	assert_string_equal(a.requests[0].target, "/v3/kv/range");
	char ct[64];
	assert_true(ts_request_header(&a.requests[0], "Content-Type", ct, sizeof(ct)));
	assert_string_equal(ct, "application/json");

	/* after open: a 400 to a write is -EINVAL, a size refusal -EFBIG, neither retried */
	struct ts_response seq[] = {
	    {.status = 200, .body = RANGE_EMPTY},
	    {.status = 400, .body = bad[0].body},
	    {.status = 400,
	     .body = "{\"error\":\"etcdserver: request is too large\",\"message\":\"etcdserver: "
		     "request is too large\",\"code\":3}"},
	};
	ts_stop(&a);
	assert_int_equal(ts_start(&a, seq, 3), 0);
	ua = mfree(ua);
	eps = mfree(eps);
	ua = ts_url(&a, "");
	eps = str_printf("%s,%s", ua, ub);
	struct store *s2 = open_at(eps, "/t/", 0);
	assert_int_equal(store_set(s2, "a/b", "x", 1), -EINVAL);
	assert_int_equal(store_set(s2, "a/b", "x", 1), -EFBIG);
	assert_int_equal(ts_n_requests(&a), 3);
	assert_int_equal(ts_n_requests(&b), 0);
	store_free(s2);
	ts_stop(&a);
	ts_stop(&b);
}

/* A txn sent to a member that then timed out may have been committed; the next member then
 * sees our own value and the CAS must report success, but only when the value is ours. */
static void test_ambiguous_cas(void **state)
{
	NEED_ETCD();
	_cleanup_(store_freep) struct store *direct = open_etcd("/t-amb/");
	assert_int_equal(store_set(direct, "a/k", "new", 3), 0);
	/* without an ambiguous attempt, a failed compare is a conflict */
	assert_int_equal(store_cas(direct, "a/k", "old", 3, "new", 3), -ESTALE);

	const char *wants[] = {"new", "other"};
	const int expect[] = {0, -ESTALE};
	for (size_t i = 0; i < ELEMENTSOF(wants); i++) {
		struct test_server t;
		struct ts_response rs[] = {{.status = 200, .body = RANGE_EMPTY}, {.status = 0}};
		assert_int_equal(ts_start(&t, rs, 2), 0);
		_cleanup_free_ char *url = ts_url(&t, "");
		_cleanup_free_ char *eps = str_printf("%s,%s", url, etcd.endpoint);
		struct store *s = open_at(eps, "/t-amb/", NSEC_PER_SEC / 2);
		assert_int_equal(store_cas(s, "a/k", "old", 3, wants[i], strlen(wants[i])),
				 expect[i]);
		assert_int_equal(ts_n_requests(&t), 2);
		assert_string_equal(t.requests[1].target, "/v3/kv/txn");
		store_free(s);
		ts_stop(&t);
	}
	assert_value(direct, "a/k", "new", 3);
}

struct racer {
	struct store *s;
	const char *key;
	const char *value;
	pthread_barrier_t *barrier;
	int result;
};

static void *race(void *arg)
{
	struct racer *r = arg;
	pthread_barrier_wait(r->barrier);
	r->result = store_cas(r->s, r->key, NULL, 0, r->value, strlen(r->value));
	return NULL;
}

static void test_cas_race(void **state)
{
	NEED_ETCD();
	_cleanup_(store_freep) struct store *a = open_etcd("/t-race/");
	_cleanup_(store_freep) struct store *b = open_etcd("/t-race/");
	for (int round = 0; round < 20; round++) {
		char key[32];
		snprintf(key, sizeof(key), "r/k%d", round);
		pthread_barrier_t barrier;
		pthread_barrier_init(&barrier, NULL, 2);
		struct racer ra = {a, key, "from-a", &barrier, 1},
			     rb = {b, key, "from-b", &barrier, 1};
		pthread_t ta, tb;
		assert_int_equal(pthread_create(&ta, NULL, race, &ra), 0);
		assert_int_equal(pthread_create(&tb, NULL, race, &rb), 0);
		pthread_join(ta, NULL);
		pthread_join(tb, NULL);
		pthread_barrier_destroy(&barrier);
		assert_true((ra.result == 0 && rb.result == -ESTALE) ||
			    (ra.result == -ESTALE && rb.result == 0));
		const char *winner = ra.result == 0 ? "from-a" : "from-b";
		assert_value(a, key, winner, 6);
	}
}

static void test_open_errors(void **state)
{
	struct store *s = NULL;
	_cleanup_free_ char *msg = NULL;
	struct store_etcd_options o = {.endpoints = " , "};
	assert_int_equal(store_open_etcd(&o, &s, &msg), -EINVAL);
	o.endpoints = "127.0.0.1:2379";
	assert_int_equal(store_open_etcd(&o, &s, &msg), -EINVAL);
	assert_non_null(strstr(msg, "127.0.0.1:2379"));
	o.endpoints = "http://127.0.0.1:1";
	/* a certificate without its key */
	o.cert_file = "/nonexistent";
	assert_int_equal(store_open_etcd(&o, &s, &msg), -EINVAL);
	o.cert_file = NULL;
	o.timeout_ns = -1;
	assert_int_equal(store_open_etcd(&o, &s, &msg), -EINVAL);
	assert_null(s);
	assert_int_equal(store_open_etcd(NULL, &s, NULL), -EINVAL);
	store_free(NULL);
}

/* Answers captured from etcd 3.4 (key "/p/a" = L3AvYQ==). */
static void test_parse_range(void **state)
{
	static const char present[] =
	    "{\"header\":{\"cluster_id\":\"15118495548433857066\",\"member_id\":"
	    "\"13668033151171901709\",\"revision\":\"2\",\"raft_term\":\"2\"},\"kvs\":[{\"key\":"
	    "\"L3AvYQ==\",\"create_revision\":\"2\",\"mod_revision\":\"2\",\"version\":\"1\","
	    "\"value\":\"aGVsbG8=\"}],\"count\":\"1\"}";
	static const char empty_value[] =
	    "{\"header\":{\"revision\":\"5\"},\"kvs\":[{\"key\":\"L3AvYQ==\",\"create_revision\":"
	    "\"5\",\"mod_revision\":\"5\",\"version\":\"1\"}],\"count\":\"1\"}";
	uint8_t *v = NULL;
	size_t len = 99;
	assert_int_equal(store_etcd_parse_range(present, strlen(present), "/p/a", &v, &len), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(v, "hello\0", 6);
	v = mfree(v);
	assert_int_equal(store_etcd_parse_range(present, strlen(present), NULL, NULL, NULL), 0);
	assert_int_equal(store_etcd_parse_range(present, strlen(present), "/p/b", &v, &len),
			 -EBADMSG);
	assert_int_equal(store_etcd_parse_range(empty_value, strlen(empty_value), "/p/a", &v, &len),
			 0);
	assert_int_equal(len, 0);
	assert_int_equal(v[0], 0);
	v = mfree(v);
	assert_int_equal(store_etcd_parse_range(RANGE_EMPTY, strlen(RANGE_EMPTY), "/p/a", &v, &len),
			 -ENOENT);
	const char *bad[] = {
	    "",
	    "{}", /* not etcd: no header */
	    "[]",
	    "{\"header\":{},\"kvs\":{}}",
	    "{\"header\":{},\"kvs\":[1]}",
	    "{\"header\":{},\"kvs\":[{\"key\":\"L3AvYQ==\",\"value\":\"!!!!\"}]}",
	    "{\"header\":{},\"kvs\":[{\"key\":\"L3AvYQ==\",\"value\":5}]}",
	    "{\"header\":{},\"kvs\":[{\"value\":\"eA==\"}]}",
	    "{\"header\":{},\"kvs\":[{\"key\":\"L3AvYQ==\"},{\"key\":\"L3AvYQ==\"}]}",
	    "{\"header\":{},\"header\":{}}",
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++)
		assert_int_equal(store_etcd_parse_range(bad[i], strlen(bad[i]), "/p/a", &v, &len),
				 -EBADMSG);
	assert_null(v);
	assert_int_equal(store_etcd_parse_range(NULL, 0, NULL, NULL, NULL), -EBADMSG);
}

static void test_parse_txn_and_error(void **state)
{
	static const char won[] =
	    "{\"header\":{\"cluster_id\":\"15118495548433857066\",\"member_id\":"
	    "\"13668033151171901709\",\"revision\":\"3\",\"raft_term\":\"2\"},\"succeeded\":true,"
	    "\"responses\":[{\"response_put\":{\"header\":{\"revision\":\"3\"}}}]}";
	bool ok = false;
	assert_int_equal(store_etcd_parse_txn(won, strlen(won), &ok), 0);
	assert_true(ok);
	/* a failed compare leaves "succeeded" out */
	assert_int_equal(store_etcd_parse_txn(RANGE_EMPTY, strlen(RANGE_EMPTY), &ok), 0);
	assert_false(ok);
	assert_int_equal(store_etcd_parse_txn("{\"header\":{},\"succeeded\":\"true\"}", 33, &ok),
			 -EBADMSG);
	assert_int_equal(store_etcd_parse_txn("{\"succeeded\":true}", 18, &ok), -EBADMSG);

	_cleanup_free_ char *msg = NULL;
	static const char inval[] = "{\"error\":\"etcdserver: key is not provided\",\"message\":"
				    "\"etcdserver: key is not provided\",\"code\":3}";
	assert_int_equal(store_etcd_parse_error(400, inval, strlen(inval), &msg), -EINVAL);
	assert_string_equal(msg, "HTTP 400: etcdserver: key is not provided");
	static const char big[] = "{\"code\":3,\"message\":\"etcdserver: request is too large\"}";
	assert_int_equal(store_etcd_parse_error(400, big, strlen(big), &msg), -EFBIG);
	static const char denied[] = "{\"code\":7,\"message\":\"etcdserver: permission denied\"}";
	/* etcd 3.4 over its gRPC limit: 429 with a ResourceExhausted code */
	static const char limit[] =
	    "{\"error\":\"grpc: received message larger than max (9437195 vs. "
	    "8912896)\",\"code\":8}";
	assert_int_equal(store_etcd_parse_error(429, limit, strlen(limit), &msg), -EFBIG);
	assert_int_equal(store_etcd_parse_error(403, denied, strlen(denied), &msg), -EACCES);
	assert_int_equal(store_etcd_parse_error(404, "Not Found\n\x01", 11, &msg), -EIO);
	assert_string_equal(msg, "HTTP 404: Not Found??");
	assert_int_equal(store_etcd_parse_error(500, NULL, 0, NULL), -EIO);
}

/* A leaf of our test CA for localhost: etcd 3.4's gateway dials etcd itself with the server
 * certificate, so under --client-cert-auth that one needs clientAuth too. */
static X509 *issue_leaf(X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *key, long serial)
{
	X509 *x = X509_new();
	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_gmtime_adj(X509_getm_notBefore(x), -300);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				   (const unsigned char *)"localhost", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(ca));
	X509_set_pubkey(x, key);
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, ca, x, NULL, NULL, 0);
	const struct {
		int nid;
		const char *value;
	} exts[] = {
	    {NID_basic_constraints, "critical,CA:FALSE"},
	    {NID_key_usage, "critical,digitalSignature"},
	    {NID_ext_key_usage, "serverAuth,clientAuth"},
	    {NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1"},
	};
	for (size_t i = 0; i < ELEMENTSOF(exts); i++) {
		X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, exts[i].nid, exts[i].value);
		assert_non_null(e);
		assert_int_equal(X509_add_ext(x, e, -1), 1);
		X509_EXTENSION_free(e);
	}
	assert_true(X509_sign(x, ca_key, EVP_sha256()) > 0);
	return x;
}

/* https endpoints: the server checked against ca_file, our client certificate required. */
static void test_tls_client_certificate(void **state)
{
	NEED_ETCD();
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *ca_key = NULL, *srv_key = NULL, *cli_key = NULL;
	_cleanup_(X509_freep) X509 *ca = NULL, *srv = NULL, *cli = NULL;
	assert_int_equal(tls_key_generate(&ca_key), 0);
	assert_int_equal(tls_key_generate(&srv_key), 0);
	assert_int_equal(tls_key_generate(&cli_key), 0);
	assert_int_equal(tls_ca_create(ca_key, &ca), 0);
	srv = issue_leaf(ca, ca_key, srv_key, 1);
	cli = issue_leaf(ca, ca_key, cli_key, 2);
	_cleanup_free_ char *ca_pem = in_dir("ca.pem"), *srv_pem = in_dir("server.pem"),
			    *srv_key_pem = in_dir("server.key"), *cli_pem = in_dir("client.pem"),
			    *cli_key_pem = in_dir("client.key");
	assert_int_equal(tls_cert_save(ca_pem, ca), 0);
	assert_int_equal(tls_cert_save(srv_pem, srv), 0);
	assert_int_equal(tls_key_save(srv_key_pem, srv_key), 0);
	assert_int_equal(tls_cert_save(cli_pem, cli), 0);
	assert_int_equal(tls_key_save(cli_key_pem, cli_key), 0);
	assert_true(member_start(&etcd_tls));

	struct store_etcd_options o = {.endpoints = etcd_tls.endpoint,
				       .prefix = "/t-tls/",
				       .ca_file = ca_pem,
				       .cert_file = cli_pem,
				       .key_file = cli_key_pem};
	struct store *s = NULL;
	_cleanup_free_ char *msg = NULL;
	int r = store_open_etcd(&o, &s, &msg);
	if (r < 0)
		print_message("%s\n", msg);
	assert_int_equal(r, 0);
	assert_int_equal(store_cas(s, "t/k", NULL, 0, "secure", 6), 0);
	assert_value(s, "t/k", "secure", 6);
	store_free(s);
	s = NULL;

	/* without the client certificate etcd refuses the handshake */
	o.cert_file = o.key_file = NULL;
	assert_int_equal(store_open_etcd(&o, &s, &msg), -EHOSTUNREACH);
	assert_null(s);
	/* without our CA the server is not trusted */
	o.cert_file = cli_pem;
	o.key_file = cli_key_pem;
	o.ca_file = NULL;
	assert_int_equal(store_open_etcd(&o, &s, &msg), -EHOSTUNREACH);
	assert_null(s);
	member_kill(&etcd_tls);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_range),  cmocka_unit_test(test_parse_txn_and_error),
	    cmocka_unit_test(test_open_errors),  cmocka_unit_test(test_4xx_is_final),
	    cmocka_unit_test(test_all_dead),     cmocka_unit_test(test_get_set_has),
	    cmocka_unit_test(test_cas),          cmocka_unit_test(test_prefix_isolation),
	    cmocka_unit_test(test_large_value),  cmocka_unit_test(test_dead_first_endpoint),
	    cmocka_unit_test(test_5xx_failover), cmocka_unit_test(test_ambiguous_cas),
	    cmocka_unit_test(test_cas_race),     cmocka_unit_test(test_tls_client_certificate),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

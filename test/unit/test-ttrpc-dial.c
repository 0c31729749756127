/* Unit tests of the ttRPC dialer: retries until a peer appears, failure detail after the
 * deadline, cancellation, and the client TLS handshake with name and chain verification. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cmocka.h>

#include "ttrpc/ttrpc.h"

/* ---- helpers ---- */

struct result {
	int calls;
	int error;
	char detail[512];
	int fd;
	SSL *ssl;
	int order; /* value of the event counter when the callback ran */
};

static int event_counter;

static void on_dial(struct ttrpc_dial *d, int error, const char *detail, int fd, SSL *ssl,
		    void *userdata)
{
	struct result *res = userdata;

	res->calls++;
	res->error = error;
	res->fd = fd;
	res->ssl = ssl;
	res->order = ++event_counter;
	snprintf(res->detail, sizeof(res->detail), "%s", detail ? detail : "");
	if (error == 0) {
		assert_null(detail);
		assert_true(fd >= 0);
	} else {
		assert_non_null(detail);
		assert_true(fd < 0);
		assert_null(ssl);
	}
}

static void result_done(struct result *res)
{
	SSL_free(res->ssl);
	res->ssl = NULL;
	if (res->fd >= 0)
		close(res->fd);
	res->fd = -1;
}

/* Run the loop until *flag is set; bounded by iterations, not by time. */
static void pump_until(struct loop *l, const int *flag)
{
	for (int i = 0; i < 600 && !*flag; i++)
		assert_true(loop_run_once(l, 100 * NSEC_PER_MSEC) >= 0);
	assert_true(*flag);
}

static int tcp_listener(uint16_t *ret_port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*ret_port = ntohs(sa.sin_port);
	return fd;
}

/* A loopback port with nothing listening: bound, then closed. */
static uint16_t closed_port(void)
{
	uint16_t port;
	close(tcp_listener(&port));
	return port;
}

static int unix_listener(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(str_copy(sa.sun_path, sizeof(sa.sun_path), path), 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 16), 0);
	return fd;
}

static char tmpdir[64];

static int setup_dir(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test-dial-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	return 0;
}

static int teardown_dir(void **state)
{
	rm_rf(tmpdir);
	return 0;
}

/* ---- plain ---- */

static void test_unix_success(void **state)
{
	_cleanup_(loop_freep) struct loop *l = NULL;
	char path[128];
	struct result res = {.fd = -1};
	struct ttrpc_dial *d = NULL;

	snprintf(path, sizeof(path), "%s/ok.sock", tmpdir);
	int lfd = unix_listener(path);
	assert_int_equal(loop_new(&l), 0);
	struct ttrpc_dial_opts opts = {.unix_path = path};
	assert_int_equal(ttrpc_dial_start(l, &opts, on_dial, &res, &d), 0);
	assert_int_equal(res.calls, 0); /* never inside start */
	pump_until(l, &res.calls);
	assert_int_equal(res.error, 0);
	assert_null(res.ssl);

	int afd = accept(lfd, NULL, NULL);
	assert_true(afd >= 0);
	assert_int_equal(write(res.fd, "x", 1), 1);
	char c;
	assert_int_equal(read(afd, &c, 1), 1);
	assert_int_equal(c, 'x');
	close(afd);
	close(lfd);
	ttrpc_dial_free(d);
	result_done(&res);
}

static void test_refused_after_deadline(void **state)
{
	_cleanup_(loop_freep) struct loop *l = NULL;
	struct result res = {.fd = -1};
	struct ttrpc_dial *d = NULL;
	uint16_t port = closed_port();
	char want[64];

	assert_int_equal(loop_new(&l), 0);
	struct ttrpc_dial_opts opts = {
	    .host = "127.0.0.1",
	    .port = port,
	    .deadline_ns = now_ns() + 300 * NSEC_PER_MSEC,
	    .retry_initial_ns = 5 * NSEC_PER_MSEC,
	    .retry_max_ns = 20 * NSEC_PER_MSEC,
	};
	assert_int_equal(ttrpc_dial_start(l, &opts, on_dial, &res, &d), 0);
	pump_until(l, &res.calls);
	/* Retries continue until the deadline, never giving up before it. */
	assert_true(now_ns() >= opts.deadline_ns);
	assert_int_equal(res.calls, 1);
	assert_int_equal(res.error, -ECONNREFUSED);
	snprintf(want, sizeof(want), "connect 127.0.0.1:%u: Connection refused", port);
	assert_string_equal(res.detail, want);
	d = ttrpc_dial_free(d);

	/* Run a little more: exactly one callback. */
	for (int i = 0; i < 5; i++)
		loop_run_once(l, 0);
	assert_int_equal(res.calls, 1);
}

static void test_ipv6_refused_single_attempt(void **state)
{
	_cleanup_(loop_freep) struct loop *l = NULL;
	struct result res = {.fd = -1};
	struct ttrpc_dial *d = NULL;
	struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (fd >= 0)
			close(fd);
		skip(); /* no IPv6 loopback here */
	}
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);

	assert_int_equal(loop_new(&l), 0);
	struct ttrpc_dial_opts opts = {.host = "::1", .port = ntohs(sa.sin6_port)};
	assert_int_equal(ttrpc_dial_start(l, &opts, on_dial, &res, &d), 0);
	pump_until(l, &res.calls);
	assert_int_equal(res.error, -ECONNREFUSED);
	assert_non_null(strstr(res.detail, "connect [::1]:"));
	ttrpc_dial_free(d);
}

static void test_bad_address(void **state)
{
	_cleanup_(loop_freep) struct loop *l = NULL;
	struct result res = {.fd = -1};
	struct ttrpc_dial *d = NULL;

	assert_int_equal(loop_new(&l), 0);
	struct ttrpc_dial_opts opts = {.host = "localhost", .port = 1};
	assert_int_equal(ttrpc_dial_start(l, &opts, on_dial, &res, &d), -EINVAL);
	struct ttrpc_dial_opts opts2 = {.host = "127.0.0.1"};
	assert_int_equal(ttrpc_dial_start(l, &opts2, on_dial, &res, &d), -EINVAL);
	assert_null(d);
}

struct appear {
	const char *path;
	int fd;
	int order;
};

static void on_appear(struct loop_source *s, void *userdata)
{
	struct appear *a = userdata;

	a->fd = unix_listener(a->path);
	a->order = ++event_counter;
}

/* The peer appears only after several failed attempts; the dialer still gets through. */
static void test_retry_until_listener(void **state)
{
	_cleanup_(loop_freep) struct loop *l = NULL;
	struct result res = {.fd = -1};
	struct ttrpc_dial *d = NULL;
	struct loop_source *timer = NULL;
	char path[128];

	snprintf(path, sizeof(path), "%s/late.sock", tmpdir);
	struct appear a = {.path = path, .fd = -1};
	event_counter = 0;
	assert_int_equal(loop_new(&l), 0);
	assert_int_equal(loop_add_timer(l, now_ns() + 150 * NSEC_PER_MSEC, on_appear, &a, &timer),
			 0);
	struct ttrpc_dial_opts opts = {
	    .unix_path = path,
	    .deadline_ns = now_ns() + 30 * NSEC_PER_SEC,
	    .retry_initial_ns = 2 * NSEC_PER_MSEC,
	    .retry_max_ns = 10 * NSEC_PER_MSEC,
	};
	assert_int_equal(ttrpc_dial_start(l, &opts, on_dial, &res, &d), 0);
	pump_until(l, &res.calls);
	assert_int_equal(res.error, 0);
	assert_int_equal(a.order, 1);
	assert_int_equal(res.order, 2);
	ttrpc_dial_free(d);
	result_done(&res);
	loop_source_free(timer);
	close(a.fd);
}

/* deadline 0: one attempt, even if the peer appears right after. */
static void test_single_attempt(void **state)
{
	_cleanup_(loop_freep) struct loop *l = NULL;
	struct result res = {.fd = -1};
	struct ttrpc_dial *d = NULL;
	char path[128], want[192];

	snprintf(path, sizeof(path), "%s/none.sock", tmpdir);
	assert_int_equal(loop_new(&l), 0);
	struct ttrpc_dial_opts opts = {.unix_path = path, .retry_initial_ns = 1};
	assert_int_equal(ttrpc_dial_start(l, &opts, on_dial, &res, &d), 0);
	pump_until(l, &res.calls);
	assert_int_equal(res.error, -ENOENT);
	snprintf(want, sizeof(want), "connect %s: No such file or directory", path);
	assert_string_equal(res.detail, want);
	ttrpc_dial_free(d);
}

static void test_cancel(void **state)
{
	_cleanup_(loop_freep) struct loop *l = NULL;
	struct result res = {.fd = -1};
	struct ttrpc_dial *d = NULL;
	char path[128];

	snprintf(path, sizeof(path), "%s/never.sock", tmpdir);
	assert_int_equal(loop_new(&l), 0);
	struct ttrpc_dial_opts opts = {
	    .unix_path = path,
	    .deadline_ns = now_ns() + 60 * NSEC_PER_SEC,
	    .retry_initial_ns = NSEC_PER_MSEC,
	};
	assert_int_equal(ttrpc_dial_start(l, &opts, on_dial, &res, &d), 0);
	for (int i = 0; i < 10; i++)
		loop_run_once(l, 5 * NSEC_PER_MSEC);
	d = ttrpc_dial_free(d);
	for (int i = 0; i < 5; i++)
		loop_run_once(l, 5 * NSEC_PER_MSEC);
	assert_int_equal(res.calls, 0);
	assert_null(ttrpc_dial_free(NULL));
}

/* ---- TLS ---- */

struct pki {
	EVP_PKEY *ca_key;
	X509 *ca;
	EVP_PKEY *key;
	X509 *cert;
};

static void add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(cert, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key,
		       const char *san)
{
	X509 *x = X509_new();
	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(x), (long)(now_ns() & 0x7fffffff));
	X509_gmtime_adj(X509_getm_notBefore(x), -300);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	assert_int_equal(X509_set_pubkey(x, key), 1);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
	X509 *signer = issuer ? issuer : x;
	if (san) {
		add_ext(x, signer, NID_basic_constraints, "critical,CA:FALSE");
		add_ext(x, signer, NID_subject_alt_name, san);
		add_ext(x, signer, NID_ext_key_usage, "serverAuth");
	} else {
		add_ext(x, signer, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(x, signer, NID_key_usage, "critical,keyCertSign,digitalSignature");
	}
	assert_true(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
	return x;
}

static void pki_make(struct pki *p, const char *ca_cn, const char *dns)
{
	char san[128];
	p->ca_key = EVP_EC_gen("P-256");
	p->key = EVP_EC_gen("P-256");
	assert_non_null(p->ca_key);
	assert_non_null(p->key);
	p->ca = make_cert(p->ca_key, ca_cn, NULL, NULL, NULL);
	snprintf(san, sizeof(san), "DNS:%s", dns);
	p->cert = make_cert(p->key, dns, p->ca, p->ca_key, san);
}

static void pki_done(struct pki *p)
{
	EVP_PKEY_free(p->ca_key);
	EVP_PKEY_free(p->key);
	X509_free(p->ca);
	X509_free(p->cert);
}

static SSL_CTX *server_ctx(const struct pki *p)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	assert_non_null(ctx);
	assert_int_equal(SSL_CTX_use_certificate(ctx, p->cert), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, p->key), 1);
	return ctx;
}

static SSL_CTX *client_ctx(X509 *trust)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(ctx);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	assert_int_equal(X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), trust), 1);
	return ctx;
}

/* A blocking TLS server on a thread: accepts one connection, handshakes, echoes 4 bytes. */
struct tls_server {
	int lfd;
	SSL_CTX *ctx;
	pthread_t thread;
	int handshake; /* 1 ok, -1 failed */
	char echoed[5];
};

static void *tls_server_run(void *arg)
{
	struct tls_server *s = arg;
	struct timeval tv = {.tv_sec = 10};
	sigset_t pipe_set;

	/* Only this thread: the dialer itself must never raise SIGPIPE (the main thread keeps the
	 * default action, which would kill the test). */
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);
	int fd = accept(s->lfd, NULL, NULL);

	if (fd < 0) {
		s->handshake = -1;
		return NULL;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	SSL *ssl = SSL_new(s->ctx);
	SSL_set_fd(ssl, fd);
	if (SSL_accept(ssl) != 1) {
		s->handshake = -1;
	} else {
		s->handshake = 1;
		if (SSL_read(ssl, s->echoed, 4) == 4)
			SSL_write(ssl, s->echoed, 4);
		SSL_shutdown(ssl);
	}
	SSL_free(ssl);
	close(fd);
	ERR_clear_error();
	return NULL;
}

static void tls_server_start(struct tls_server *s, SSL_CTX *ctx, uint16_t *ret_port)
{
	struct timeval tv = {.tv_sec = 10};
	memset(s, 0, sizeof(*s));
	s->ctx = ctx;
	s->lfd = tcp_listener(ret_port);
	setsockopt(s->lfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	assert_int_equal(pthread_create(&s->thread, NULL, tls_server_run, s), 0);
}

static void tls_server_join(struct tls_server *s)
{
	pthread_join(s->thread, NULL);
	close(s->lfd);
}

/* The handed-over SSL is non-blocking (its BIO sends with MSG_DONTWAIT): wait with poll. */
static int ssl_io(SSL *ssl, bool write, void *data, int len)
{
	for (int i = 0; i < 100; i++) {
		int r = write ? SSL_write(ssl, data, len) : SSL_read(ssl, data, len);
		if (r > 0)
			return r;
		int e = SSL_get_error(ssl, r);
		struct pollfd pfd = {.fd = SSL_get_fd(ssl)};
		if (e == SSL_ERROR_WANT_READ)
			pfd.events = POLLIN;
		else if (e == SSL_ERROR_WANT_WRITE)
			pfd.events = POLLOUT;
		else
			return -1;
		poll(&pfd, 1, 100);
	}
	return -1;
}

static void dial_tls(struct loop *l, uint16_t port, SSL_CTX *cctx, const char *name,
		     struct result *res)
{
	struct ttrpc_dial *d = NULL;
	struct ttrpc_dial_opts opts = {
	    .host = "127.0.0.1",
	    .port = port,
	    .tls = cctx,
	    .tls_server_name = name,
	};
	assert_int_equal(ttrpc_dial_start(l, &opts, on_dial, res, &d), 0);
	pump_until(l, &res->calls);
	ttrpc_dial_free(d);
}

static void test_tls_success(void **state)
{
	_cleanup_(loop_freep) struct loop *l = NULL;
	struct result res = {.fd = -1};
	struct tls_server srv;
	struct pki p;
	uint16_t port;
	char buf[4];

	pki_make(&p, "test-ca", "podvm-test-1234");
	SSL_CTX *sctx = server_ctx(&p), *cctx = client_ctx(p.ca);
	assert_int_equal(loop_new(&l), 0);
	tls_server_start(&srv, sctx, &port);
	/* The dialer holds its own reference to the context. */
	SSL_CTX_up_ref(cctx);
	dial_tls(l, port, cctx, "podvm-test-1234", &res);
	SSL_CTX_free(cctx);
	assert_int_equal(res.error, 0);
	assert_non_null(res.ssl);
	assert_int_equal(SSL_get_verify_result(res.ssl), X509_V_OK);
	assert_int_equal(SSL_get_fd(res.ssl), res.fd);
	assert_int_equal(ssl_io(res.ssl, true, "ping", 4), 4);
	assert_int_equal(ssl_io(res.ssl, false, buf, 4), 4);
	assert_memory_equal(buf, "ping", 4);
	tls_server_join(&srv);
	assert_int_equal(srv.handshake, 1);
	result_done(&res);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	pki_done(&p);
}

static void test_tls_wrong_name(void **state)
{
	_cleanup_(loop_freep) struct loop *l = NULL;
	struct result res = {.fd = -1};
	struct tls_server srv;
	struct pki p;
	uint16_t port;
	char want[128];

	pki_make(&p, "test-ca", "podvm-test-1234");
	SSL_CTX *sctx = server_ctx(&p), *cctx = client_ctx(p.ca);
	assert_int_equal(loop_new(&l), 0);
	tls_server_start(&srv, sctx, &port);
	dial_tls(l, port, cctx, "podvm-other-5678", &res);
	assert_true(res.error < 0);
	snprintf(want, sizeof(want),
		 "TLS 127.0.0.1:%u: certificate verify failed: hostname mismatch", port);
	assert_string_equal(res.detail, want);
	tls_server_join(&srv);
	assert_int_equal(srv.handshake, -1);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	pki_done(&p);
}

static void test_tls_untrusted(void **state)
{
	_cleanup_(loop_freep) struct loop *l = NULL;
	struct result res = {.fd = -1};
	struct tls_server srv;
	struct pki p, other;
	uint16_t port;

	pki_make(&p, "test-ca", "podvm-test-1234");
	pki_make(&other, "other-ca", "podvm-test-1234");
	SSL_CTX *sctx = server_ctx(&p), *cctx = client_ctx(other.ca);
	assert_int_equal(loop_new(&l), 0);
	tls_server_start(&srv, sctx, &port);
	dial_tls(l, port, cctx, "podvm-test-1234", &res);
	assert_true(res.error < 0);
	assert_non_null(strstr(res.detail, "certificate verify failed: "));
	assert_non_null(strstr(res.detail, "local issuer"));
	tls_server_join(&srv);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	pki_done(&p);
	pki_done(&other);
}

/* A peer that accepts TCP but closes instead of speaking TLS. */
static void test_tls_peer_closes(void **state)
{
	_cleanup_(loop_freep) struct loop *l = NULL;
	struct result res = {.fd = -1};
	struct ttrpc_dial *d = NULL;
	struct pki p;
	uint16_t port;

	pki_make(&p, "test-ca", "x");
	SSL_CTX *cctx = client_ctx(p.ca);
	int lfd = tcp_listener(&port);
	assert_int_equal(loop_new(&l), 0);
	struct ttrpc_dial_opts opts = {
	    .host = "127.0.0.1", .port = port, .tls = cctx, .tls_server_name = "x"};
	assert_int_equal(ttrpc_dial_start(l, &opts, on_dial, &res, &d), 0);
	/* The connect completes against the backlog; then the peer accepts and closes. */
	struct pollfd pfd = {.fd = lfd, .events = POLLIN};
	while (poll(&pfd, 1, 0) == 0)
		loop_run_once(l, 10 * NSEC_PER_MSEC);
	close(accept(lfd, NULL, NULL));
	pump_until(l, &res.calls);
	assert_true(res.error < 0);
	assert_true(str_startswith(res.detail, "TLS 127.0.0.1:"));
	ttrpc_dial_free(d);
	close(lfd);
	SSL_CTX_free(cctx);
	pki_done(&p);
}

/* Cancel while the TLS handshake waits for a server that accepted nothing and says nothing. */
static void test_cancel_during_handshake(void **state)
{
	_cleanup_(loop_freep) struct loop *l = NULL;
	struct result res = {.fd = -1};
	struct ttrpc_dial *d = NULL;
	struct pki p;
	uint16_t port;

	pki_make(&p, "test-ca", "x");
	SSL_CTX *cctx = client_ctx(p.ca);
	int lfd = tcp_listener(&port);
	assert_int_equal(loop_new(&l), 0);
	struct ttrpc_dial_opts opts = {
	    .host = "127.0.0.1", .port = port, .tls = cctx, .tls_server_name = "x"};
	assert_int_equal(ttrpc_dial_start(l, &opts, on_dial, &res, &d), 0);
	/* The connection sits in the backlog: the dialer has connected and sent its hello. */
	struct pollfd pfd = {.fd = lfd, .events = POLLIN};
	while (poll(&pfd, 1, 0) == 0)
		loop_run_once(l, 10 * NSEC_PER_MSEC);
	for (int i = 0; i < 5; i++)
		loop_run_once(l, 5 * NSEC_PER_MSEC);
	d = ttrpc_dial_free(d);
	for (int i = 0; i < 5; i++)
		loop_run_once(l, 5 * NSEC_PER_MSEC);
	assert_int_equal(res.calls, 0);
	/* The dialer's end is closed: the accepted socket reads EOF. */
	int afd = accept(lfd, NULL, NULL);
	assert_true(afd >= 0);
	struct timeval tv = {.tv_sec = 10};
	setsockopt(afd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	char buf[4096];
	ssize_t n;
	while ((n = read(afd, buf, sizeof(buf))) > 0)
		;
	assert_int_equal(n, 0);
	close(afd);
	close(lfd);
	SSL_CTX_free(cctx);
	pki_done(&p);
}

/* A peer that answers with something that is not TLS: the detail is OpenSSL's reason text. */
static void test_tls_not_tls_peer(void **state)
{
	_cleanup_(loop_freep) struct loop *l = NULL;
	struct result res = {.fd = -1};
	struct ttrpc_dial *d = NULL;
	struct pki p;
	uint16_t port;

	pki_make(&p, "test-ca", "x");
	SSL_CTX *cctx = client_ctx(p.ca);
	int lfd = tcp_listener(&port);
	assert_int_equal(loop_new(&l), 0);
	struct ttrpc_dial_opts opts = {
	    .host = "127.0.0.1", .port = port, .tls = cctx, .tls_server_name = "x"};
	assert_int_equal(ttrpc_dial_start(l, &opts, on_dial, &res, &d), 0);
	struct pollfd pfd = {.fd = lfd, .events = POLLIN};
	while (poll(&pfd, 1, 0) == 0)
		loop_run_once(l, 10 * NSEC_PER_MSEC);
	int afd = accept(lfd, NULL, NULL);
	assert_true(afd >= 0);
	static const char junk[] = "HTTP/1.0 400 Bad Request\r\n\r\n";
	assert_int_equal(write(afd, junk, sizeof(junk) - 1), (ssize_t)sizeof(junk) - 1);
	pump_until(l, &res.calls);
	assert_int_equal(res.error, -EPROTO);
	assert_true(str_startswith(res.detail, "TLS 127.0.0.1:"));
	assert_null(strstr(res.detail, "error:"));
	assert_true(strlen(res.detail) > strlen("TLS 127.0.0.1:1: "));
	ttrpc_dial_free(d);
	close(afd);
	close(lfd);
	SSL_CTX_free(cctx);
	pki_done(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_unix_success),
	    cmocka_unit_test(test_refused_after_deadline),
	    cmocka_unit_test(test_ipv6_refused_single_attempt),
	    cmocka_unit_test(test_bad_address),
	    cmocka_unit_test(test_retry_until_listener),
	    cmocka_unit_test(test_single_attempt),
	    cmocka_unit_test(test_cancel),
	    cmocka_unit_test(test_tls_success),
	    cmocka_unit_test(test_tls_wrong_name),
	    cmocka_unit_test(test_tls_untrusted),
	    cmocka_unit_test(test_tls_peer_closes),
	    cmocka_unit_test(test_cancel_during_handshake),
	    cmocka_unit_test(test_tls_not_tls_peer),
	};
	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}

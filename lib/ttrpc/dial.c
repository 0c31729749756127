/* lib/ttrpc: the dialer. Connects to a Unix path or numeric host:port without blocking the loop,
 * optionally completes a client TLS handshake, and retries with exponential backoff until a
 * deadline (the agent proxy waiting for a booting pod VM, the forwarder waiting for the agent). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "ttrpc/ttrpc-internal.h"

#define DEFAULT_ATTEMPT_TIMEOUT_NS (5 * NSEC_PER_SEC)
#define DEFAULT_RETRY_INITIAL_NS (100 * NSEC_PER_MSEC)
#define DEFAULT_RETRY_MAX_NS (2 * NSEC_PER_SEC)
/* The attempt that runs into the deadline still gets this long for a TCP + TLS handshake, so a
 * peer that appears just before the deadline is not missed by a zero-length attempt. */
#define LAST_ATTEMPT_MIN_NS (200 * NSEC_PER_MSEC)
#define DETAIL_MAX 320

enum state {
	STATE_WAIT,      /* backoff (or the initial deferred start) */
	STATE_CONNECT,   /* non-blocking connect in progress */
	STATE_HANDSHAKE, /* TLS client handshake in progress */
	STATE_DONE,
};

struct ttrpc_dial {
	struct loop *loop;
	ttrpc_dial_fn fn;
	void *userdata;

	struct sockaddr_storage addr;
	socklen_t addr_len;
	bool tcp;
	char *target; /* "127.0.0.1:15150", "[::1]:15150" or the Unix path, for details */

	SSL_CTX *tls;
	char *server_name;

	int64_t deadline_ns;
	int64_t attempt_timeout_ns;
	int64_t backoff_ns;
	int64_t retry_max_ns;
	uint64_t rng;

	enum state state;
	int fd;
	SSL *ssl;
	struct loop_source *io;
	struct loop_source *timer;

	int error;
	char detail[DETAIL_MAX];
};

static void start_attempt(struct ttrpc_dial *d);

static void reset_attempt(struct ttrpc_dial *d)
{
	d->io = loop_source_free(d->io);
	if (d->ssl) {
		SSL_free(d->ssl);
		d->ssl = NULL;
	}
	d->fd = safe_close(d->fd);
}

static int arm_timer(struct ttrpc_dial *d, int64_t at_ns, loop_timer_fn fn)
{
	d->timer = loop_source_free(d->timer);
	return loop_add_timer(d->loop, at_ns, fn, d, &d->timer);
}

static void finish(struct ttrpc_dial *d, int error)
{
	int fd = -EBADF;
	SSL *ssl = NULL;

	d->io = loop_source_free(d->io);
	d->timer = loop_source_free(d->timer);
	d->state = STATE_DONE;
	if (error == 0) {
		fd = TAKE_FD(d->fd);
		ssl = d->ssl;
		d->ssl = NULL;
	} else {
		reset_attempt(d);
	}
	/* The callback may free d: nothing touches it afterwards. */
	d->fn(d, error, error == 0 ? NULL : d->detail, fd, ssl, d->userdata);
}

/* xorshift64*: jitter only needs to decorrelate dialers that failed at the same moment. */
static uint64_t next_random(struct ttrpc_dial *d)
{
	d->rng ^= d->rng >> 12;
	d->rng ^= d->rng << 25;
	d->rng ^= d->rng >> 27;
	return d->rng * 0x2545F4914F6CDD1DULL;
}

static void on_retry_timer(struct loop_source *s, void *userdata)
{
	struct ttrpc_dial *d = userdata;

	start_attempt(d);
}

static void attempt_failed(struct ttrpc_dial *d, int error)
{
	int64_t now = now_ns(), wait_ns;

	reset_attempt(d);
	d->error = error < 0 ? error : -EIO;
	if (d->deadline_ns <= 0 || now >= d->deadline_ns)
		return finish(d, d->error);

	/* +-10% so that many sandboxes retrying against one endpoint do not stay in lockstep. */
	wait_ns = d->backoff_ns;
	if (wait_ns >= 10)
		wait_ns += (int64_t)(next_random(d) % (uint64_t)(wait_ns / 5)) - wait_ns / 10;
	wait_ns = MIN(wait_ns, d->deadline_ns - now);
	d->backoff_ns = MIN(d->backoff_ns * 2, d->retry_max_ns);

	d->state = STATE_WAIT;
	int r = arm_timer(d, now + wait_ns, on_retry_timer);
	if (r < 0) {
		snprintf(d->detail, sizeof(d->detail), "dial %s: cannot arm retry timer: %s",
			 d->target, strerror(-r));
		finish(d, r);
	}
}

static void fail_errno(struct ttrpc_dial *d, const char *what, int error)
{
	snprintf(d->detail, sizeof(d->detail), "%s %s: %s", what, d->target, strerror(-error));
	attempt_failed(d, error);
}

/* Describe a failed handshake: the certificate verification result when that is what failed,
 * else the first OpenSSL error, else the socket error or an early EOF. */
static void fail_tls(struct ttrpc_dial *d, int ssl_error, int saved_errno)
{
	long verify = SSL_get_verify_result(d->ssl);
	unsigned long e = ERR_peek_error();
	char reason[256];
	int error = -EPROTO;

	if (verify != X509_V_OK) {
		snprintf(reason, sizeof(reason), "certificate verify failed: %s",
			 X509_verify_cert_error_string(verify));
		error = -EKEYREJECTED;
	} else if (e != 0) {
		/* "wrong version number" rather than "error:0A00010B:SSL routines::..." */
		const char *text = ERR_reason_error_string(e);
		if (text)
			snprintf(reason, sizeof(reason), "%s", text);
		else
			ERR_error_string_n(e, reason, sizeof(reason));
	} else if (ssl_error == SSL_ERROR_SYSCALL && saved_errno != 0) {
		snprintf(reason, sizeof(reason), "%s", strerror(saved_errno));
		error = -saved_errno;
	} else {
		snprintf(reason, sizeof(reason), "connection closed during handshake");
		error = -ECONNRESET;
	}
	ERR_clear_error();
	snprintf(d->detail, sizeof(d->detail), "TLS %s: %s", d->target, reason);
	attempt_failed(d, error);
}

static void step_handshake(struct ttrpc_dial *d)
{
	int r, ssl_error;

	ERR_clear_error();
	errno = 0;
	r = SSL_do_handshake(d->ssl);
	if (r == 1)
		return finish(d, 0);

	int saved_errno = errno;
	ssl_error = SSL_get_error(d->ssl, r);
	if (ssl_error == SSL_ERROR_WANT_READ || ssl_error == SSL_ERROR_WANT_WRITE) {
		r = loop_source_set_io_events(d->io, ssl_error == SSL_ERROR_WANT_READ ? EPOLLIN
										      : EPOLLOUT);
		if (r < 0)
			fail_errno(d, "TLS", r);
		return;
	}
	fail_tls(d, ssl_error, saved_errno);
}

static int start_tls(struct ttrpc_dial *d)
{
	d->ssl = SSL_new(d->tls);
	if (!d->ssl)
		return -ENOMEM;
	/* The conn's socket BIO: a peer resetting mid-handshake must not raise SIGPIPE. */
	int r = ttrpc_ssl_set_socket(d->ssl, d->fd);
	if (r < 0)
		return r;
	SSL_set_connect_state(d->ssl);
	if (!str_empty(d->server_name)) {
		/* SNI must not carry an IP literal (RFC 6066); the name check still applies. */
		struct in6_addr ip;
		bool is_ip = inet_pton(AF_INET, d->server_name, &ip) == 1 ||
			     inet_pton(AF_INET6, d->server_name, &ip) == 1;
		if (!is_ip && SSL_set_tlsext_host_name(d->ssl, d->server_name) != 1)
			return -ENOMEM;
		if (is_ip
			? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(d->ssl), d->server_name) != 1
			: SSL_set1_host(d->ssl, d->server_name) != 1)
			return -ENOMEM;
	}
	d->state = STATE_HANDSHAKE;
	step_handshake(d);
	return 0;
}

static void connected(struct ttrpc_dial *d)
{
	if (!d->tls)
		return finish(d, 0);
	int r = start_tls(d);
	if (r < 0) {
		ERR_clear_error();
		fail_errno(d, "TLS", r);
	}
}

static void on_io(struct loop_source *s, int fd, uint32_t events, void *userdata)
{
	struct ttrpc_dial *d = userdata;

	if (d->state == STATE_HANDSHAKE)
		return step_handshake(d);
	if (d->state != STATE_CONNECT)
		return;

	int error = 0;
	socklen_t len = sizeof(error);
	if (getsockopt(d->fd, SOL_SOCKET, SO_ERROR, &error, &len) < 0)
		error = errno;
	if (error != 0)
		return fail_errno(d, "connect", -error);
	if (!(events & EPOLLOUT)) {
		if (events & (EPOLLERR | EPOLLHUP))
			return fail_errno(d, "connect", -ECONNRESET);
		return; /* spurious wakeup, still connecting */
	}
	connected(d);
}

static void on_attempt_timeout(struct loop_source *s, void *userdata)
{
	struct ttrpc_dial *d = userdata;

	fail_errno(d, d->state == STATE_HANDSHAKE ? "TLS" : "connect", -ETIMEDOUT);
}

static void start_attempt(struct ttrpc_dial *d)
{
	int64_t now = now_ns(), end;
	int r;

	end = now + d->attempt_timeout_ns;
	if (d->deadline_ns > 0 && end > d->deadline_ns)
		end = MAX(d->deadline_ns, now + MIN(d->attempt_timeout_ns, LAST_ATTEMPT_MIN_NS));
	r = arm_timer(d, end, on_attempt_timeout);
	if (r < 0)
		return fail_errno(d, "connect", r);

	d->state = STATE_CONNECT;
	d->fd = socket(d->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (d->fd < 0)
		return fail_errno(d, "socket for", -errno);
	if (d->tcp) {
		int one = 1;
		(void)setsockopt(d->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	if (connect(d->fd, (struct sockaddr *)&d->addr, d->addr_len) == 0) {
		r = loop_add_io(d->loop, d->fd, EPOLLOUT, on_io, d, &d->io);
		if (r < 0)
			return fail_errno(d, "connect", r);
		return connected(d);
	}
	/* A Unix listener with a full backlog answers EAGAIN: a retryable failure like refusal. */
	if (errno != EINPROGRESS)
		return fail_errno(d, "connect", -errno);
	r = loop_add_io(d->loop, d->fd, EPOLLOUT, on_io, d, &d->io);
	if (r < 0)
		return fail_errno(d, "connect", r);
}

static int parse_target(struct ttrpc_dial *d, const struct ttrpc_dial_opts *opts)
{
	memset(&d->addr, 0, sizeof(d->addr));
	if (!str_empty(opts->unix_path)) {
		struct sockaddr_un *un = (struct sockaddr_un *)&d->addr;
		size_t n = strlen(opts->unix_path);
		if (n >= sizeof(un->sun_path))
			return -ENAMETOOLONG;
		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, opts->unix_path, n + 1);
		d->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
		d->target = strdup(opts->unix_path);
		return d->target ? 0 : -ENOMEM;
	}
	if (str_empty(opts->host) || opts->port == 0)
		return -EINVAL;

	struct sockaddr_in *in4 = (struct sockaddr_in *)&d->addr;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&d->addr;
	d->tcp = true;
	if (inet_pton(AF_INET, opts->host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons(opts->port);
		d->addr_len = sizeof(*in4);
		d->target = str_printf("%s:%u", opts->host, (unsigned)opts->port);
	} else if (inet_pton(AF_INET6, opts->host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(opts->port);
		d->addr_len = sizeof(*in6);
		d->target = str_printf("[%s]:%u", opts->host, (unsigned)opts->port);
	} else {
		return -EINVAL;
	}
	return d->target ? 0 : -ENOMEM;
}

static void on_start(struct loop_source *s, void *userdata)
{
	start_attempt(userdata);
}

int ttrpc_dial_start(struct loop *l, const struct ttrpc_dial_opts *opts, ttrpc_dial_fn fn,
		     void *userdata, struct ttrpc_dial **ret)
{
	struct ttrpc_dial *d;
	int r;

	if (!l || !opts || !fn || !ret)
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->loop = l;
	d->fn = fn;
	d->userdata = userdata;
	d->fd = -EBADF;
	d->state = STATE_WAIT;
	d->deadline_ns = opts->deadline_ns;
	d->attempt_timeout_ns =
	    opts->attempt_timeout_ns > 0 ? opts->attempt_timeout_ns : DEFAULT_ATTEMPT_TIMEOUT_NS;
	d->backoff_ns =
	    opts->retry_initial_ns > 0 ? opts->retry_initial_ns : DEFAULT_RETRY_INITIAL_NS;
	d->retry_max_ns = opts->retry_max_ns > 0 ? opts->retry_max_ns : DEFAULT_RETRY_MAX_NS;
	d->retry_max_ns = MAX(d->retry_max_ns, d->backoff_ns);
	d->rng = (uint64_t)now_ns() ^ (uint64_t)(uintptr_t)d ^ 0x9E3779B97F4A7C15ULL;
	if (d->rng == 0)
		d->rng = 1;

	r = parse_target(d, opts);
	if (r < 0)
		goto fail;
	if (opts->tls) {
		if (SSL_CTX_up_ref(opts->tls) != 1) {
			r = -ENOMEM;
			goto fail;
		}
		d->tls = opts->tls;
		if (opts->tls_server_name) {
			d->server_name = strdup(opts->tls_server_name);
			if (!d->server_name) {
				r = -ENOMEM;
				goto fail;
			}
		}
	}
	/* The first attempt runs from the loop so that the callback never fires inside this
	 * call, before the caller has stored *ret. */
	r = arm_timer(d, now_ns(), on_start);
	if (r < 0)
		goto fail;
	*ret = d;
	return 0;
fail:
	ttrpc_dial_free(d);
	return r;
}

struct ttrpc_dial *ttrpc_dial_free(struct ttrpc_dial *d)
{
	if (!d)
		return NULL;
	d->timer = loop_source_free(d->timer);
	reset_attempt(d);
	SSL_CTX_free(d->tls);
	free(d->server_name);
	free(d->target);
	free(d);
	return NULL;
}

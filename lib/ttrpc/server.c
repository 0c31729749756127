/* lib/ttrpc/server.c: a ttRPC server (WIRE.md 1.3, 1.4, 1.7, 1.8): listeners, per-connection
 * stream-id rules, method dispatch, deadlines and cancellation. Calls are answered whenever
 * their handler finishes, in any order. */
#include <fcntl.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "ttrpc/ttrpc-internal.h"

#define HANDSHAKE_TIMEOUT_NS (10 * NSEC_PER_SEC)
/* Accepts per readiness event, so a connection storm cannot starve established peers. */
#define ACCEPT_BATCH 64
/* How long a listener rests after running out of file descriptors. */
#define ACCEPT_RETRY_NS (100 * NSEC_PER_MSEC)

struct method {
	char *service;
	char *method;
	size_t service_len;
	size_t method_len;
	ttrpc_method_fn fn;
	void *userdata;
};

struct listener {
	struct ttrpc_server *server;
	int fd;
	struct loop_source *io;
	struct loop_source *retry;
	SSL_CTX *tls;
	struct listener *next;
};

struct sconn {
	struct ttrpc_server *server;
	struct ttrpc_conn *conn;
	uint32_t last_id;
	bool paused_for_output;
	struct ttrpc_call *calls; /* answerable calls */
	struct sconn *prev, *next;
};

struct ttrpc_call {
	struct sconn *sc; /* NULL once the call can no longer be answered */
	struct ttrpc_call *prev, *next;
	uint32_t stream_id;
	bool cancelled;
	int64_t deadline_ns;
	int64_t timeout_nano; /* as received */
	struct loop_source *timer;
	ttrpc_cancel_fn cancel_fn;
	void *cancel_userdata;
	const char *service;
	const char *method;
	struct ttrpc_kv *md;
	size_t n_md;
	/* kv array and NUL-terminated copies of the names and metadata follow */
};

struct ttrpc_server {
	struct loop *loop;
	struct method *methods;
	size_t n_methods;
	struct listener *listeners;
	struct sconn *conns;
	size_t n_conns;
	struct buf scratch; /* error responses */
};

/* ---- sending ---- */

static void check_output(struct sconn *sc)
{
	/* A peer that sends requests but does not read answers is throttled here instead of
	 * growing our queue without bound. */
	if (!sc->paused_for_output &&
	    ttrpc_conn_pending_bytes(sc->conn) > TTRPC_CONN_HIGH_WATERMARK_BYTES) {
		sc->paused_for_output = true;
		ttrpc_conn_set_read_paused(sc->conn, true);
	}
}

static int send_errorv(struct sconn *sc, uint32_t stream_id, int code, const char *fmt, va_list ap)
    _printf_(4, 0);
static int send_errorv(struct sconn *sc, uint32_t stream_id, int code, const char *fmt, va_list ap)
{
	struct buf *b = &sc->server->scratch;
	b->len = 0;
	int r = ttrpc_response_encode_errorv(b, code, fmt, ap);
	if (r < 0)
		return r;
	r = ttrpc_conn_send(sc->conn, stream_id, TTRPC_TYPE_RESPONSE, 0, b->data, b->len);
	if (r >= 0)
		check_output(sc);
	return r;
}

static int send_error(struct sconn *sc, uint32_t stream_id, int code, const char *fmt, ...)
    _printf_(4, 5);
static int send_error(struct sconn *sc, uint32_t stream_id, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = send_errorv(sc, stream_id, code, fmt, ap);
	va_end(ap);
	return r;
}

/* ---- calls ---- */

static void call_unlink(struct ttrpc_call *call)
{
	struct sconn *sc = call->sc;
	if (!sc)
		return;
	if (call->prev)
		call->prev->next = call->next;
	else
		sc->calls = call->next;
	if (call->next)
		call->next->prev = call->prev;
	call->prev = call->next = NULL;
	call->sc = NULL;
	call->timer = loop_source_free(call->timer);
}

static void call_cancel(struct ttrpc_call *call, int code)
{
	call_unlink(call);
	call->cancelled = true;
	if (call->cancel_fn) {
		ttrpc_cancel_fn fn = call->cancel_fn;
		call->cancel_fn = NULL;
		/* Last: the function may reply, which frees the call. */
		fn(call, code, call->cancel_userdata);
	}
}

static void on_deadline(struct loop_source *s, void *userdata)
{
	struct ttrpc_call *call = userdata;
	call->timer = loop_source_free(s);
	if (call->sc)
		send_error(call->sc, call->stream_id, TTRPC_DEADLINE_EXCEEDED, TTRPC_MSG_DEADLINE);
	call_cancel(call, TTRPC_DEADLINE_EXCEEDED);
}

static void call_finish(struct ttrpc_call *call)
{
	call_unlink(call);
	free(call);
}

const char *ttrpc_call_service(const struct ttrpc_call *c)
{
	return c->service;
}

const char *ttrpc_call_method(const struct ttrpc_call *c)
{
	return c->method;
}

int64_t ttrpc_call_deadline_ns(const struct ttrpc_call *c)
{
	return c->deadline_ns;
}

int64_t ttrpc_call_timeout_nano(const struct ttrpc_call *c)
{
	return c->timeout_nano;
}

size_t ttrpc_call_n_metadata(const struct ttrpc_call *c)
{
	return c->n_md;
}

const struct ttrpc_kv *ttrpc_call_metadata(const struct ttrpc_call *c)
{
	return c->md;
}

struct ssl_st *ttrpc_call_get_ssl(const struct ttrpc_call *c)
{
	return c && c->sc ? ttrpc_conn_get_ssl(c->sc->conn) : NULL;
}

void ttrpc_call_set_cancel(struct ttrpc_call *c, ttrpc_cancel_fn fn, void *userdata)
{
	c->cancel_fn = fn;
	c->cancel_userdata = userdata;
}

bool ttrpc_call_is_cancelled(const struct ttrpc_call *c)
{
	return c->cancelled;
}

int ttrpc_call_reply(struct ttrpc_call *c, const void *payload, size_t len)
{
	if (!c)
		return -EINVAL;
	struct sconn *sc = c->sc;
	int r = 0;
	if (sc && sc->conn) {
		/* The envelope is the payload behind a field tag and a length: sent from the
		 * caller's buffer without building a copy. */
		uint8_t prefix[1 + TTRPC_VARINT_MAX];
		size_t plen = 0;
		if (len > 0) {
			prefix[0] = 2 << 3 | 2;
			plen = 1 + ttrpc_varint_put(prefix + 1, len);
		}
		struct ttrpc_header h = {.stream_id = c->stream_id, .type = TTRPC_TYPE_RESPONSE};
		if (len > TTRPC_MAX_DATA_BYTES - plen) {
			send_error(sc, c->stream_id, TTRPC_RESOURCE_EXHAUSTED, TTRPC_MSG_OVERSIZE,
				   (uint64_t)(plen + len), TTRPC_MAX_DATA_BYTES);
			r = -EMSGSIZE;
		} else {
			r = ttrpc_conn_sendv(sc->conn, &h, prefix, plen, payload, len);
			if (r >= 0)
				check_output(sc);
		}
	}
	call_finish(c);
	return r;
}

int ttrpc_call_reply_error(struct ttrpc_call *c, int code, const char *fmt, ...)
{
	if (!c)
		return -EINVAL;
	int r = 0;
	if (c->sc && c->sc->conn) {
		va_list ap;
		va_start(ap, fmt);
		r = send_errorv(c->sc, c->stream_id, code, fmt, ap);
		va_end(ap);
	}
	call_finish(c);
	return r;
}

/* ---- dispatch ---- */

static const struct method *find_method(const struct ttrpc_server *s, struct ttrpc_bytes service,
					struct ttrpc_bytes method, bool *ret_service_known)
{
	*ret_service_known = false;
	for (size_t i = 0; i < s->n_methods; i++) {
		const struct method *m = &s->methods[i];
		if (m->service_len != service.len || memcmp(m->service, service.data, service.len))
			continue;
		*ret_service_known = true;
		if (m->method_len == method.len && !memcmp(m->method, method.data, method.len))
			return m;
	}
	return NULL;
}

static struct ttrpc_call *call_new(const struct ttrpc_request_view *req)
{
	/* One allocation per call: the struct, the kv array and every string. */
	size_t size = sizeof(struct ttrpc_call) + req->n_metadata * sizeof(struct ttrpc_kv) +
		      req->service.len + 1 + req->method.len + 1;
	size_t pos = 0;
	struct ttrpc_bytes k, v;
	int r;
	while ((r = ttrpc_request_next_metadata(req, &pos, &k, &v)) > 0)
		size += k.len + 1 + v.len + 1;
	if (r < 0)
		return NULL;

	struct ttrpc_call *call = calloc(1, size);
	if (!call)
		return NULL;
	call->md = (struct ttrpc_kv *)(call + 1);
	char *p = (char *)(call->md + req->n_metadata);
	call->service = p;
	memcpy(p, req->service.data, req->service.len);
	p += req->service.len;
	*p++ = 0;
	call->method = p;
	memcpy(p, req->method.data, req->method.len);
	p += req->method.len;
	*p++ = 0;
	pos = 0;
	while (ttrpc_request_next_metadata(req, &pos, &k, &v) > 0) {
		struct ttrpc_kv *kv = &call->md[call->n_md++];
		kv->key = p;
		memcpy(p, k.data, k.len);
		p += k.len;
		*p++ = 0;
		kv->value = p;
		memcpy(p, v.data, v.len);
		p += v.len;
		*p++ = 0;
	}
	return call;
}

static void handle_request(struct sconn *sc, const struct ttrpc_header *h, const uint8_t *data)
{
	struct ttrpc_server *s = sc->server;
	if (h->stream_id <= sc->last_id) {
		send_error(sc, h->stream_id, TTRPC_INVALID_ARGUMENT, TTRPC_MSG_REUSED_ID);
		return;
	}
	sc->last_id = h->stream_id;

	struct ttrpc_request_view req;
	int r = ttrpc_request_parse(data, h->length, &req);
	if (r < 0) {
		send_error(sc, h->stream_id, TTRPC_INVALID_ARGUMENT,
			   "unmarshal request error: invalid wire-format data");
		return;
	}
	bool service_known;
	const struct method *m = find_method(s, req.service, req.method, &service_known);
	if (!m) {
		if (service_known)
			send_error(sc, h->stream_id, TTRPC_UNIMPLEMENTED, "method %.*s",
				   (int)MIN(req.method.len, (size_t)TTRPC_ERROR_MESSAGE_MAX),
				   (const char *)req.method.data);
		else
			send_error(sc, h->stream_id, TTRPC_UNIMPLEMENTED, "service %.*s",
				   (int)MIN(req.service.len, (size_t)TTRPC_ERROR_MESSAGE_MAX),
				   (const char *)req.service.data);
		return;
	}

	struct ttrpc_call *call = call_new(&req);
	if (!call) {
		send_error(sc, h->stream_id, TTRPC_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	call->stream_id = h->stream_id;
	call->timeout_nano = req.timeout_nano;
	if (req.timeout_nano > 0) {
		int64_t now = now_ns();
		call->deadline_ns =
		    req.timeout_nano > INT64_MAX - now ? INT64_MAX : now + req.timeout_nano;
		r = loop_add_timer(s->loop, call->deadline_ns, on_deadline, call, &call->timer);
		if (r < 0) {
			free(call);
			send_error(sc, h->stream_id, TTRPC_RESOURCE_EXHAUSTED, "out of memory");
			return;
		}
	}
	call->sc = sc;
	call->next = sc->calls;
	if (sc->calls)
		sc->calls->prev = call;
	sc->calls = call;

	m->fn(call, req.payload.data, req.payload.len, m->userdata);
}

static void handle_data(struct sconn *sc, const struct ttrpc_header *h)
{
	/* Only unary methods exist: Data for an open call has nowhere to go and is dropped. */
	for (struct ttrpc_call *c = sc->calls; c; c = c->next)
		if (c->stream_id == h->stream_id)
			return;
	send_error(sc, h->stream_id, TTRPC_INVALID_ARGUMENT, TTRPC_MSG_INACTIVE);
}

static void on_frame(struct ttrpc_conn *conn, const struct ttrpc_header *h, const uint8_t *data,
		     void *userdata)
{
	struct sconn *sc = userdata;
	if (h->type != TTRPC_TYPE_REQUEST && h->type != TTRPC_TYPE_DATA)
		return;
	if (!(h->stream_id & 1)) {
		send_error(sc, h->stream_id, TTRPC_INVALID_ARGUMENT, TTRPC_MSG_EVEN_ID);
		return;
	}
	if (h->type == TTRPC_TYPE_REQUEST)
		handle_request(sc, h, data);
	else
		handle_data(sc, h);
}

static void on_oversize(struct ttrpc_conn *conn, const struct ttrpc_header *h, void *userdata)
{
	struct sconn *sc = userdata;
	send_error(sc, h->stream_id, TTRPC_RESOURCE_EXHAUSTED, TTRPC_MSG_OVERSIZE,
		   (uint64_t)h->length, TTRPC_MAX_DATA_BYTES);
}

static void on_drain(struct ttrpc_conn *conn, void *userdata)
{
	struct sconn *sc = userdata;
	if (sc->paused_for_output) {
		sc->paused_for_output = false;
		ttrpc_conn_set_read_paused(conn, false);
	}
}

/* Free the connection first, so that replies from cancel functions are dropped, then cancel. */
static void sconn_free(struct sconn *sc)
{
	struct ttrpc_server *s = sc->server;
	if (sc->prev)
		sc->prev->next = sc->next;
	else
		s->conns = sc->next;
	if (sc->next)
		sc->next->prev = sc->prev;
	s->n_conns--;
	sc->conn = ttrpc_conn_free(sc->conn);
	while (sc->calls)
		call_cancel(sc->calls, TTRPC_CANCELLED);
	free(sc);
}

static void on_close(struct ttrpc_conn *conn, int error, void *userdata)
{
	sconn_free(userdata);
}

static const struct ttrpc_conn_ops sconn_ops = {
    .on_frame = on_frame,
    .on_oversize = on_oversize,
    .on_drain = on_drain,
    .on_close = on_close,
};

static int server_add(struct ttrpc_server *s, int fd, SSL *ssl)
{
	struct sconn *sc = calloc(1, sizeof(*sc));
	if (!sc)
		return -ENOMEM;
	sc->server = s;
	int r = ttrpc_conn_new(s->loop, fd, ssl, ssl ? HANDSHAKE_TIMEOUT_NS : 0, &sconn_ops, sc,
			       &sc->conn);
	if (r < 0) {
		free(sc);
		return r;
	}
	sc->next = s->conns;
	if (s->conns)
		s->conns->prev = sc;
	s->conns = sc;
	s->n_conns++;
	return 0;
}

int ttrpc_server_add_connection(struct ttrpc_server *s, int fd, struct ssl_st *ssl)
{
	if (!s || fd < 0)
		return -EINVAL;
	return server_add(s, fd, ssl);
}

size_t ttrpc_server_n_connections(const struct ttrpc_server *s)
{
	return s ? s->n_conns : 0;
}

/* ---- listeners ---- */

static void on_accept(struct loop_source *src, int fd, uint32_t events, void *userdata);

static void on_accept_retry(struct loop_source *src, void *userdata)
{
	struct listener *ls = userdata;
	ls->retry = loop_source_free(src);
	(void)loop_source_set_io_events(ls->io, EPOLLIN);
}

static void on_accept(struct loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct listener *ls = userdata;
	for (unsigned i = 0; i < ACCEPT_BATCH; i++) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/* The pending connection keeps the socket readable; rest
				 * instead of spinning on it. */
				if (!ls->retry &&
				    loop_add_timer(ls->server->loop, now_ns() + ACCEPT_RETRY_NS,
						   on_accept_retry, ls, &ls->retry) >= 0)
					(void)loop_source_set_io_events(ls->io, 0);
			}
			return;
		}
		SSL *ssl = NULL;
		if (ls->tls) {
			ssl = SSL_new(ls->tls);
			if (!ssl || ttrpc_ssl_set_socket(ssl, cfd) < 0) {
				SSL_free(ssl);
				close(cfd);
				continue;
			}
			SSL_set_accept_state(ssl);
		}
		if (server_add(ls->server, cfd, ssl) < 0) {
			SSL_free(ssl);
			close(cfd);
		}
	}
}

static int add_listener(struct ttrpc_server *s, int fd, SSL_CTX *tls)
{
	struct listener *ls = calloc(1, sizeof(*ls));
	if (!ls)
		return -ENOMEM;
	int r = loop_add_io(s->loop, fd, EPOLLIN, on_accept, ls, &ls->io);
	if (r < 0) {
		free(ls);
		return r;
	}
	if (tls)
		SSL_CTX_up_ref(tls);
	ls->server = s;
	ls->fd = fd;
	ls->tls = tls;
	ls->next = s->listeners;
	s->listeners = ls;
	return 0;
}

int ttrpc_server_listen_fd(struct ttrpc_server *s, int fd, struct ssl_ctx_st *tls)
{
	if (!s || fd < 0)
		return -EINVAL;
	int r = fd_set_nonblock(fd, true);
	if (r < 0)
		return r;
	return add_listener(s, fd, tls);
}

int ttrpc_server_listen_unix(struct ttrpc_server *s, const char *path, mode_t mode)
{
	if (!s || str_empty(path))
		return -EINVAL;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int r = str_copy(sa.sun_path, sizeof(sa.sun_path), path);
	if (r < 0)
		return r;

	_cleanup_free_ char *dir = str_dup(path);
	if (!dir)
		return -ENOMEM;
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		r = mkdir_p(dir, 0755);
		if (r < 0)
			return r;
	}

	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return -EEXIST;
		if (unlink(path) < 0 && errno != ENOENT)
			return -errno;
	}

	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	if (chmod(path, mode) < 0 || listen(fd, SOMAXCONN) < 0) {
		r = -errno;
		unlink(path);
		return r;
	}
	r = add_listener(s, fd, NULL);
	if (r < 0) {
		unlink(path);
		return r;
	}
	TAKE_FD(fd);
	return 0;
}

/* ---- server ---- */

int ttrpc_server_new(struct loop *l, struct ttrpc_server **ret)
{
	if (!l || !ret)
		return -EINVAL;
	struct ttrpc_server *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->loop = l;
	*ret = s;
	return 0;
}

struct ttrpc_server *ttrpc_server_free(struct ttrpc_server *s)
{
	if (!s)
		return NULL;
	while (s->listeners) {
		struct listener *ls = s->listeners;
		s->listeners = ls->next;
		loop_source_free(ls->io);
		loop_source_free(ls->retry);
		safe_close(ls->fd);
		SSL_CTX_free(ls->tls);
		free(ls);
	}
	while (s->conns)
		sconn_free(s->conns);
	for (size_t i = 0; i < s->n_methods; i++) {
		free(s->methods[i].service);
		free(s->methods[i].method);
	}
	free(s->methods);
	buf_done(&s->scratch);
	free(s);
	return NULL;
}

int ttrpc_server_add_method(struct ttrpc_server *s, const char *service, const char *method,
			    ttrpc_method_fn fn, void *userdata)
{
	if (!s || str_empty(service) || str_empty(method) || !fn)
		return -EINVAL;
	for (size_t i = 0; i < s->n_methods; i++)
		if (str_eq(s->methods[i].service, service) && str_eq(s->methods[i].method, method))
			return -EEXIST;
	struct method *m = reallocarray(s->methods, s->n_methods + 1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	s->methods = m;
	m = &s->methods[s->n_methods];
	*m = (struct method){
	    .service = str_dup(service),
	    .method = str_dup(method),
	    .service_len = strlen(service),
	    .method_len = strlen(method),
	    .fn = fn,
	    .userdata = userdata,
	};
	if (!m->service || !m->method) {
		free(m->service);
		free(m->method);
		return -ENOMEM;
	}
	s->n_methods++;
	return 0;
}

/* lib/ttrpc/conn.c: one framed ttRPC connection on the loop: non-blocking reads into a buffer
 * bounded to one frame, oversized frames skipped in step, an output queue with watermarks, and an
 * optional OpenSSL session whose handshake and re-handshake wants are honoured on both paths.
 * User callbacks run only from loop dispatch (never from inside an API call), and the conn may be
 * freed inside any of them. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <sys/socket.h>
#include <pthread.h>
#include <sys/uio.h>

#include "ttrpc/ttrpc-internal.h"

#define IN_INITIAL_BYTES (64u * 1024)
/* A buffer grown for a large frame is released once empty; a steady stream of frames below this
 * keeps its buffer. */
#define IN_KEEP_BYTES (2u * 1024 * 1024 + TTRPC_HEADER_SIZE)
#define OUT_KEEP_BYTES (1u * 1024 * 1024)
/* Bytes read per readiness event before other sources get their turn. */
#define READ_BUDGET_BYTES (4u * 1024 * 1024)
/* Largest single SSL_write; retries after WANT_WRITE pass at least as much (the queue only grows
 * at its end), as OpenSSL requires. */
#define SSL_WRITE_MAX_BYTES (1u << 30)
#define TLS_READ_BUFFER_BYTES (256u * 1024)
/* TLS records gathered before one send (32 records of 16 KiB): fewer, larger sends cost less
 * CPU here and on the receiving side; more would delay the first byte of a large frame. */
#define TLS_WRITE_BUFFER_BYTES (512u * 1024)
/* Kept between bursts (a few small records); a buffer grown for a large burst is released. */
#define TLS_WRITE_KEEP_BYTES (64u * 1024)
/* Largest TLS record payload. */
#define TLS_RECORD_BYTES 16384u

struct ttrpc_conn {
	struct loop *loop;
	int fd;
	SSL *ssl;
	struct sock_bio *sbio; /* the SSL's socket BIO, which may hold records not yet sent */
	struct loop_source *io;
	struct loop_source *timer; /* handshake timeout */
	struct loop_source *kick;  /* deferred work: on_ready, on_drain, resumed input, close */
	struct ttrpc_conn_ops ops;
	void *userdata;

	uint8_t *in;
	size_t in_start, in_end, in_cap;
	uint64_t discard; /* bytes of an oversized frame still to drop */
	struct ttrpc_header discard_header;

	struct buf out;
	size_t out_start;

	uint32_t events;    /* as registered with the loop */
	uint32_t hs_events; /* what the handshake waits for */
	unsigned busy;      /* nesting of our own dispatch; memory is kept while > 0 */
	int kick_error;     /* close reason found outside dispatch, reported from the kick */

	bool handshaking : 1;
	bool ready_pending : 1;
	bool drain_pending : 1;
	bool above_high : 1;
	bool read_paused : 1;
	bool read_wants_write : 1;
	bool write_wants_read : 1;
	bool shutdown_requested : 1;
	bool parked : 1; /* io source dropped: hang-up while reads are paused */
	bool ssl_failed : 1;
	bool closed : 1;
	bool dead : 1; /* freed by the owner */
};

/* ---- a socket BIO that never raises SIGPIPE and coalesces records ---- */

/* OpenSSL's own socket BIO writes with write(2), which kills a process that has not ignored
 * SIGPIPE when the peer is gone; this one uses send(MSG_NOSIGNAL). It also gathers the records
 * of one SSL_write burst (16 KiB each) and sends them with one call on BIO_flush or when its
 * buffer is full: on this platform a syscall costs more than copying the record. Everything that
 * writes through it must flush afterwards (the handshake and alerts do so inside OpenSSL, the conn
 * after SSL_write). */
struct sock_bio {
	int fd;
	/* Set by the conn, which flushes after writing; other users (the dialer's caller, tests)
	 * get a plain pass-through BIO. */
	bool coalesce;
	/* The last recv returned less than asked (or nothing): the socket was empty then. */
	bool read_short;
	uint8_t *buf; /* grows up to TLS_WRITE_BUFFER_BYTES */
	size_t start, end, cap;
};

static BIO_METHOD *sock_method;
static int sock_method_type;
static pthread_once_t sock_method_once = PTHREAD_ONCE_INIT;

static struct sock_bio *sock_bio_get(BIO *b)
{
	return BIO_get_data(b);
}

static size_t sock_bio_buffered(const struct sock_bio *s)
{
	return s->end - s->start;
}

/* One send(msg) of the buffered bytes followed by data (may be empty); EINTR retried. Returns
 * the bytes sent or -errno. */
static ssize_t sock_bio_send(struct sock_bio *s, const void *data, size_t len)
{
	struct iovec iov[2];
	size_t n = 0;
	if (sock_bio_buffered(s) > 0)
		iov[n++] = (struct iovec){s->buf + s->start, sock_bio_buffered(s)};
	if (len > 0)
		iov[n++] = (struct iovec){(void *)data, len};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = n};
	for (;;) {
		ssize_t r = sendmsg(s->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (r >= 0)
			return r;
		if (errno != EINTR)
			return -errno;
	}
}

/* Consume n sent bytes from the buffer first; returns how many of them came from beyond it. */
static size_t sock_bio_consume(struct sock_bio *s, size_t n)
{
	size_t from_buf = MIN(n, sock_bio_buffered(s));
	s->start += from_buf;
	if (s->start == s->end)
		s->start = s->end = 0;
	return n - from_buf;
}

/* Copy as much of data as fits behind the buffered bytes; returns the bytes taken. */
static size_t sock_bio_take(struct sock_bio *s, const char *data, size_t len)
{
	if (s->start > 0 && s->cap - s->end < len) {
		memmove(s->buf, s->buf + s->start, sock_bio_buffered(s));
		s->end -= s->start;
		s->start = 0;
	}
	if (s->cap - s->end < len && s->cap < TLS_WRITE_BUFFER_BYTES) {
		/* Straight to the full size past the first few records: growing in steps would
		 * copy the gathered records each time. */
		size_t cap = s->end + len <= TLS_WRITE_KEEP_BYTES ? TLS_WRITE_KEEP_BYTES
								  : TLS_WRITE_BUFFER_BYTES;
		uint8_t *p = realloc(s->buf, cap);
		if (p) {
			s->buf = p;
			s->cap = cap;
		}
	}
	size_t n = MIN(len, s->cap - s->end);
	if (n == 0)
		return 0;
	memcpy(s->buf + s->end, data, n);
	s->end += n;
	return n;
}

static int sock_bio_write(BIO *b, const char *data, int len)
{
	struct sock_bio *s = sock_bio_get(b);
	size_t n = (size_t)MAX(len, 0), done = 0;

	BIO_clear_retry_flags(b);
	if (n == 0)
		return 0;
	if (!s->coalesce && sock_bio_buffered(s) == 0) {
		ssize_t r = sock_bio_send(s, data, n);
		if (r >= 0)
			return (int)r;
		if (r == -EAGAIN || r == -EWOULDBLOCK)
			BIO_set_retry_write(b);
		errno = (int)-r;
		return -1;
	}
	if (sock_bio_buffered(s) + n > TLS_WRITE_BUFFER_BYTES) {
		/* Full: send the buffer and as much of this write as the socket takes in one
		 * call, rather than copying a write that is sent anyway. */
		ssize_t r = sock_bio_send(s, data, n);
		if (r < 0 && r != -EAGAIN && r != -EWOULDBLOCK) {
			errno = (int)-r;
			return -1;
		}
		if (r > 0)
			done = sock_bio_consume(s, (size_t)r);
	}
	done += sock_bio_take(s, data + done, n - done);
	if (done == 0) {
		if (sock_bio_buffered(s) == 0) {
			errno = ENOMEM;
			return -1;
		}
		BIO_set_retry_write(b);
		errno = EAGAIN;
		return -1;
	}
	return (int)done;
}

/* 1 when everything buffered is on the wire, 0 (retry set) when the socket is full, -1 on
 * error with errno set. */
static long sock_bio_flush(BIO *b)
{
	struct sock_bio *s = sock_bio_get(b);

	BIO_clear_retry_flags(b);
	while (sock_bio_buffered(s) > 0) {
		ssize_t r = sock_bio_send(s, NULL, 0);
		if (r == -EAGAIN || r == -EWOULDBLOCK) {
			BIO_set_retry_write(b);
			errno = EAGAIN;
			return 0;
		}
		if (r < 0) {
			errno = (int)-r;
			return -1;
		}
		sock_bio_consume(s, (size_t)r);
	}
	if (s->cap > TLS_WRITE_KEEP_BYTES) {
		s->buf = mfree(s->buf);
		s->cap = 0;
	}
	return 1;
}

static int sock_bio_read(BIO *b, char *data, int len)
{
	struct sock_bio *s = sock_bio_get(b);
	ssize_t r;

	BIO_clear_retry_flags(b);
	do
		r = recv(s->fd, data, (size_t)len, MSG_DONTWAIT);
	while (r < 0 && errno == EINTR);
	s->read_short = r < (ssize_t)len;
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		BIO_set_retry_read(b);
	return (int)r;
}

static int sock_bio_puts(BIO *b, const char *s)
{
	return sock_bio_write(b, s, (int)strlen(s));
}

static long sock_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct sock_bio *s = sock_bio_get(b);

	switch (cmd) {
	case BIO_C_GET_FD:
		if (ptr)
			*(int *)ptr = s->fd;
		return s->fd;
	case BIO_CTRL_FLUSH:
		return sock_bio_flush(b);
	case BIO_CTRL_WPENDING:
		return (long)sock_bio_buffered(s);
	case BIO_CTRL_PENDING:
		return 0;
	case BIO_CTRL_DUP:
		return 1;
	default:
		return 0;
	}
}

static int sock_bio_create(BIO *b)
{
	struct sock_bio *s = calloc(1, sizeof(*s));
	if (!s)
		return 0;
	s->fd = -EBADF;
	BIO_set_data(b, s);
	BIO_set_init(b, 1);
	return 1;
}

static int sock_bio_destroy(BIO *b)
{
	struct sock_bio *s = b ? sock_bio_get(b) : NULL;
	if (s) {
		free(s->buf);
		free(s);
		BIO_set_data(b, NULL);
	}
	return 1;
}

static void sock_method_init(void)
{
	int type = BIO_get_new_index();
	if (type < 0)
		return;
	type |= BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR;
	BIO_METHOD *m = BIO_meth_new(type, "ttrpc socket");
	if (!m)
		return;
	if (BIO_meth_set_write(m, sock_bio_write) != 1 ||
	    BIO_meth_set_read(m, sock_bio_read) != 1 || BIO_meth_set_puts(m, sock_bio_puts) != 1 ||
	    BIO_meth_set_ctrl(m, sock_bio_ctrl) != 1 ||
	    BIO_meth_set_create(m, sock_bio_create) != 1 ||
	    BIO_meth_set_destroy(m, sock_bio_destroy) != 1) {
		BIO_meth_free(m);
		return;
	}
	sock_method_type = type;
	sock_method = m;
}

static struct sock_bio *ssl_sock_bio(SSL *ssl)
{
	BIO *b = ssl ? SSL_get_wbio(ssl) : NULL;
	if (!b || !sock_method || BIO_method_type(b) != sock_method_type)
		return NULL;
	return sock_bio_get(b);
}

int ttrpc_ssl_set_socket(struct ssl_st *ssl, int fd)
{
	pthread_once(&sock_method_once, sock_method_init);
	if (!sock_method)
		return -ENOMEM;
	/* Already ours on this socket (the dialer or acceptor attached it): keep it, with any
	 * records it still holds. */
	struct sock_bio *old = ssl_sock_bio(ssl);
	if (!old || old->fd != fd || SSL_get_rbio(ssl) != SSL_get_wbio(ssl)) {
		BIO *b = BIO_new(sock_method);
		if (!b)
			return -ENOMEM;
		sock_bio_get(b)->fd = fd;
		/* Replacing another BIO is safe only because none of ours has buffered output
		 * on a different socket; read-ahead data lives in the SSL object, which keeps it. */
		SSL_set_bio(ssl, b, b);
	}
	/* Read ahead in large chunks: without it every 16 KiB record costs two recv calls (header,
	 * body). Data read ahead raises no epoll event; the conn's first kick and its
	 * SSL_has_pending check pick it up. */
	SSL_set_read_ahead(ssl, 1);
	SSL_set_default_read_buffer_len(ssl, TLS_READ_BUFFER_BYTES);
	/* An idle connection (most pods, most of the time) gives its record buffers back: with
	 * a hundred pods they would otherwise be most of the adaptor's memory. */
	SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
	return 0;
}

static void conn_destroy(struct ttrpc_conn *c)
{
	free(c->in);
	buf_done(&c->out);
	free(c);
}

static void hold(struct ttrpc_conn *c)
{
	c->busy++;
}

/* Returns true when the conn must not be used any more (freed, possibly destroyed now). */
static bool release(struct ttrpc_conn *c)
{
	if (--c->busy == 0 && c->dead) {
		conn_destroy(c);
		return true;
	}
	return c->dead;
}

/* Queued plaintext, not yet passed to the socket or SSL_write. */
static size_t out_pending(const struct ttrpc_conn *c)
{
	return c->out.len - c->out_start;
}

static size_t bio_pending(const struct ttrpc_conn *c)
{
	return c->sbio ? sock_bio_buffered(c->sbio) : 0;
}

/* Everything not yet handed to the kernel. */
static size_t pending(const struct ttrpc_conn *c)
{
	return out_pending(c) + bio_pending(c);
}

static size_t buffered(const struct ttrpc_conn *c)
{
	return c->in_end - c->in_start;
}

static void on_kick(struct loop_source *s, void *userdata);
static void on_io(struct loop_source *s, int fd, uint32_t events, void *userdata);

static void schedule_kick(struct ttrpc_conn *c)
{
	if (c->kick || c->dead)
		return;
	/* Without the kick a deferred notification would be lost; nothing better can be done if
	 * even this allocation fails. */
	(void)loop_add_defer(c->loop, on_kick, c, &c->kick);
}

static void update_events(struct ttrpc_conn *c)
{
	if (!c->io || c->closed)
		return;
	uint32_t ev = 0;
	if (c->handshaking)
		ev = c->hs_events;
	else {
		if ((!c->read_paused && !c->ready_pending) || c->write_wants_read)
			ev |= EPOLLIN;
		if ((out_pending(c) && !c->write_wants_read) || bio_pending(c) ||
		    c->read_wants_write)
			ev |= EPOLLOUT;
	}
	if (ev != c->events && loop_source_set_io_events(c->io, ev) >= 0)
		c->events = ev;
}

static int ssl_error_to_errno(struct ttrpc_conn *c, int e)
{
	if (e == SSL_ERROR_SYSCALL) {
		c->ssl_failed = true;
		return errno > 0 ? -errno : -ECONNRESET;
	}
	c->ssl_failed = true;
	if (SSL_get_verify_result(c->ssl) != X509_V_OK)
		return -EKEYREJECTED;
	return -EPROTO;
}

/* Closes and reports from loop dispatch; the caller holds the conn. */
static void close_with(struct ttrpc_conn *c, int error)
{
	if (c->closed || c->dead)
		return;
	c->closed = true;
	c->io = loop_source_free(c->io);
	c->timer = loop_source_free(c->timer);
	if (c->ssl && error == 0 && !c->ssl_failed && !c->handshaking) {
		/* Best effort close_notify; the socket is non-blocking. */
		ERR_clear_error();
		(void)SSL_shutdown(c->ssl);
		ERR_clear_error();
	}
	if (c->ops.on_close)
		c->ops.on_close(c, error, c->userdata);
}

/* Outside dispatch (inside an API call) errors are only recorded; the kick reports them. */
static void fail_later(struct ttrpc_conn *c, int error)
{
	if (!c->kick_error)
		c->kick_error = error;
	schedule_kick(c);
}

/* ---- output ---- */

static void out_compact(struct ttrpc_conn *c)
{
	if (c->out_start == c->out.len) {
		c->out.len = c->out_start = 0;
		if (c->out.cap > OUT_KEEP_BYTES)
			buf_done(&c->out);
	} else if (c->out_start > c->out.len / 2) {
		buf_consume(&c->out, c->out_start);
		c->out_start = 0;
	}
}

/* Write as much queued output as the socket takes. 0 when done or blocked, <0 on error. */
/* SSL_write p[0, n) record by record. Returns the bytes taken (stopping early when the socket is
 * full, *ret_blocked then set, or when the session wants to read first) or <0 on error. */
static ssize_t ssl_write_some(struct ttrpc_conn *c, const uint8_t *p, size_t n, bool *ret_blocked)
{
	size_t done = 0;
	while (done < n) {
		ERR_clear_error();
		errno = 0;
		int r = SSL_write(c->ssl, p + done, (int)MIN(n - done, SSL_WRITE_MAX_BYTES));
		if (r <= 0) {
			int e = SSL_get_error(c->ssl, r);
			if (e == SSL_ERROR_WANT_WRITE) {
				*ret_blocked = true; /* the BIO just found the socket full */
				break;
			}
			if (e == SSL_ERROR_WANT_READ) {
				c->write_wants_read = true;
				break;
			}
			return ssl_error_to_errno(c, e);
		}
		c->write_wants_read = false;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

/* Send the records the socket BIO gathered. */
static int bio_flush(struct ttrpc_conn *c)
{
	if (bio_pending(c) == 0)
		return 0;
	errno = 0;
	if (BIO_flush(SSL_get_wbio(c->ssl)) < 0) {
		c->ssl_failed = true;
		return errno > 0 ? -errno : -EIO;
	}
	return 0;
}

/* Write as much queued output as the socket takes. 0 when done or blocked, <0 on error. */
static int flush(struct ttrpc_conn *c)
{
	bool blocked = false;
	while (out_pending(c) > 0) {
		const uint8_t *p = c->out.data + c->out_start;
		size_t n = out_pending(c);
		if (c->ssl) {
			ssize_t r = ssl_write_some(c, p, n, &blocked);
			if (r < 0)
				return (int)r;
			c->out_start += (size_t)r;
			if ((size_t)r < n)
				break;
		} else {
			ssize_t r = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (r < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					break;
				return -errno;
			}
			c->out_start += (size_t)r;
		}
	}
	/* After a would-block the BIO has just tried; EPOLLOUT brings us back. */
	if (!blocked) {
		int r = bio_flush(c);
		if (r < 0)
			return r;
	}
	out_compact(c);
	if (c->above_high && pending(c) < TTRPC_CONN_LOW_WATERMARK_BYTES) {
		c->above_high = false;
		c->drain_pending = true;
	}
	return 0;
}

/* Copy bytes [from, from + n) of the iovec array into out. */
static void iov_copy(const struct iovec *iov, size_t n_iov, size_t from, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n_iov && n > 0; i++) {
		if (from >= iov[i].iov_len) {
			from -= iov[i].iov_len;
			continue;
		}
		size_t k = MIN(iov[i].iov_len - from, n);
		memcpy(out, (const uint8_t *)iov[i].iov_base + from, k);
		out += k;
		n -= k;
		from = 0;
	}
}

/* TLS with nothing queued: encrypt a large frame straight from the caller's buffers instead of
 * copying it into the queue first. The first record carries the header with the start of the
 * data (a record of its own would cost a seal and 22 bytes). Returns the bytes taken (the rest
 * is queued by the caller; OpenSSL accepts the retry from the queue because the bytes are the
 * same and the write buffer may move) or <0. */
static ssize_t ssl_write_direct(struct ttrpc_conn *c, const struct iovec *iov, size_t n_iov,
				size_t total, bool *ret_blocked)
{
	uint8_t first[TLS_RECORD_BYTES];
	size_t n = MIN(total, sizeof(first));

	iov_copy(iov, n_iov, 0, first, n);
	ssize_t r = ssl_write_some(c, first, n, ret_blocked);
	if (r < (ssize_t)n)
		return r;
	size_t done = n;
	for (size_t i = 0, pos = 0; i < n_iov && !*ret_blocked && !c->write_wants_read; i++) {
		size_t end = pos + iov[i].iov_len;
		if (end > done) {
			size_t off = done - pos;
			r = ssl_write_some(c, (const uint8_t *)iov[i].iov_base + off,
					   iov[i].iov_len - off, ret_blocked);
			if (r < 0)
				return r;
			done += (size_t)r;
			if (done < end)
				break;
		}
		pos = end;
	}
	return (ssize_t)done;
}

int ttrpc_conn_sendv(struct ttrpc_conn *c, const struct ttrpc_header *h, const void *a, size_t alen,
		     const void *b, size_t blen)
{
	if (!c || c->closed || c->dead || c->kick_error || c->shutdown_requested)
		return -ENOTCONN;
	if (alen > TTRPC_MAX_DATA_BYTES || blen > TTRPC_MAX_DATA_BYTES - alen)
		return -EMSGSIZE;

	struct ttrpc_header hh = *h;
	hh.length = (uint32_t)(alen + blen);
	uint8_t hdr[TTRPC_HEADER_SIZE];
	ttrpc_header_encode(&hh, hdr);
	struct iovec iov[3] = {
	    {hdr, sizeof(hdr)},
	    {(void *)a, alen},
	    {(void *)b, blen},
	};
	size_t total = sizeof(hdr) + alen + blen, done = 0;
	bool blocked = false;

	if (!c->ssl && pending(c) == 0 && !c->parked) {
		/* Plain socket with nothing queued: write straight from the caller's buffers. */
		struct msghdr mh = {.msg_iov = iov, .msg_iovlen = ELEMENTSOF(iov)};
		for (;;) {
			ssize_t r = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (r >= 0) {
				done = (size_t)r;
				break;
			}
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			int err = -errno;
			fail_later(c, err);
			return err;
		}
		if (done == total)
			return 0;
	} else if (c->ssl && !c->handshaking && !c->write_wants_read && !c->parked &&
		   out_pending(c) == 0 && total > TLS_RECORD_BYTES) {
		ssize_t r = ssl_write_direct(c, iov, ELEMENTSOF(iov), total, &blocked);
		if (r < 0) {
			fail_later(c, (int)r);
			return (int)r;
		}
		done = (size_t)r;
	}

	if (done < total) {
		int r = buf_reserve(&c->out, total - done, 0);
		if (r < 0) {
			/* Part of the frame is on the wire already: the stream is out of step. */
			if (done > 0)
				fail_later(c, r);
			return r;
		}
		for (size_t i = 0; i < ELEMENTSOF(iov); i++) {
			size_t skip = MIN(done, iov[i].iov_len);
			done -= skip;
			if (iov[i].iov_len > skip)
				buf_append(&c->out, (const uint8_t *)iov[i].iov_base + skip,
					   iov[i].iov_len - skip, 0);
		}
	}
	if (pending(c) > TTRPC_CONN_HIGH_WATERMARK_BYTES)
		c->above_high = true;

	if (c->ssl && !c->handshaking && !c->write_wants_read && !blocked) {
		int r = flush(c);
		if (r < 0) {
			fail_later(c, r);
			return r;
		}
		if (c->drain_pending)
			schedule_kick(c);
	}
	if (c->parked)
		fail_later(c, -EPIPE);
	update_events(c);
	return 0;
}

int ttrpc_conn_send(struct ttrpc_conn *c, uint32_t stream_id, uint8_t type, uint8_t flags,
		    const void *data, size_t len)
{
	struct ttrpc_header h = {.stream_id = stream_id, .type = type, .flags = flags};
	return ttrpc_conn_sendv(c, &h, data, len, NULL, 0);
}

size_t ttrpc_conn_pending_bytes(const struct ttrpc_conn *c)
{
	return c ? pending(c) : 0;
}

/* ---- input ---- */

/* Hand complete frames to the owner. Returns false when the conn is closed or freed. */
static bool dispatch_input(struct ttrpc_conn *c)
{
	while (!c->read_paused && !c->closed && !c->dead) {
		size_t avail = buffered(c);
		if (c->discard > 0) {
			size_t n = (size_t)MIN((uint64_t)avail, c->discard);
			c->in_start += n;
			c->discard -= n;
			if (c->discard > 0)
				break;
			if (c->ops.on_oversize) {
				hold(c);
				c->ops.on_oversize(c, &c->discard_header, c->userdata);
				if (release(c))
					return false;
			}
			continue;
		}
		if (avail < TTRPC_HEADER_SIZE)
			break;
		struct ttrpc_header h;
		ttrpc_header_decode(c->in + c->in_start, &h);
		if (h.length > TTRPC_MAX_DATA_BYTES) {
			c->in_start += TTRPC_HEADER_SIZE;
			c->discard = h.length;
			c->discard_header = h;
			continue;
		}
		if (avail < TTRPC_HEADER_SIZE + (size_t)h.length)
			break;
		const uint8_t *data = c->in + c->in_start + TTRPC_HEADER_SIZE;
		c->in_start += TTRPC_HEADER_SIZE + h.length;
		/* data stays valid: nothing reads into the buffer until this returns, and a
		 * free inside the callback keeps the memory until release(). */
		hold(c);
		c->ops.on_frame(c, &h, data, c->userdata);
		if (release(c))
			return false;
	}
	if (c->in_start == c->in_end)
		c->in_start = c->in_end = 0;
	return !c->closed && !c->dead;
}

/* Make room for the next read; returns the free bytes at in_end, or <0. */
static ssize_t in_make_room(struct ttrpc_conn *c)
{
	size_t avail = buffered(c);
	size_t need = TTRPC_HEADER_SIZE;
	if (c->discard == 0 && avail >= TTRPC_HEADER_SIZE) {
		struct ttrpc_header h;
		ttrpc_header_decode(c->in + c->in_start, &h);
		need = TTRPC_HEADER_SIZE + h.length; /* <= max: larger ones became discards */
	}
	if (c->in_start > 0 && (c->in_start + need > c->in_cap || c->in_cap - c->in_end < 4096)) {
		memmove(c->in, c->in + c->in_start, avail);
		c->in_start = 0;
		c->in_end = avail;
	}
	if (need > c->in_cap || !c->in) {
		size_t cap = MAX(need, (size_t)IN_INITIAL_BYTES);
		if (cap > IN_INITIAL_BYTES)
			cap = MIN((cap + 65535) & ~(size_t)65535,
				  (size_t)TTRPC_MAX_DATA_BYTES + TTRPC_HEADER_SIZE);
		uint8_t *p = realloc(c->in, cap);
		if (!p)
			return -ENOMEM;
		c->in = p;
		c->in_cap = cap;
	}
	return (ssize_t)(c->in_cap - c->in_end);
}

static void in_shrink(struct ttrpc_conn *c)
{
	if (c->in_end == 0 && c->in_cap > IN_KEEP_BYTES) {
		free(c->in);
		c->in = NULL;
		c->in_cap = 0;
	}
}

/* >0 bytes read, 0 end of stream, -EAGAIN, or another -errno. */
static ssize_t read_some(struct ttrpc_conn *c, uint8_t *p, size_t n)
{
	if (c->ssl) {
		ERR_clear_error();
		errno = 0;
		int r = SSL_read(c->ssl, p, (int)MIN(n, (size_t)INT32_MAX));
		if (r > 0) {
			c->read_wants_write = false;
			return r;
		}
		int e = SSL_get_error(c->ssl, r);
		switch (e) {
		case SSL_ERROR_WANT_READ:
			c->read_wants_write = false;
			return -EAGAIN;
		case SSL_ERROR_WANT_WRITE:
			c->read_wants_write = true;
			return -EAGAIN;
		case SSL_ERROR_ZERO_RETURN:
			return 0;
		default:
			return ssl_error_to_errno(c, e);
		}
	}
	for (;;) {
		ssize_t r = recv(c->fd, p, n, MSG_DONTWAIT);
		if (r >= 0)
			return r;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return -EAGAIN;
		return -errno;
	}
}

static void do_read(struct ttrpc_conn *c)
{
	size_t budget = READ_BUDGET_BYTES;
	bool drained = false;
	for (;;) {
		if (!dispatch_input(c))
			return;
		if (c->read_paused)
			return;
		if (drained && buffered(c) == 0 && c->discard == 0) {
			/* Between frames another recv would most likely only say EAGAIN; the
			 * level-triggered poll reports whatever arrives from now on. Inside a
			 * frame the sender is probably still writing: read on. */
			in_shrink(c);
			return;
		}
		if (budget == 0) {
			/* Decrypted bytes inside OpenSSL raise no epoll event. */
			if (c->ssl && SSL_has_pending(c->ssl))
				schedule_kick(c);
			return;
		}
		ssize_t room = in_make_room(c);
		if (room < 0) {
			close_with(c, (int)room);
			return;
		}
		size_t want = MIN((size_t)room, budget);
		ssize_t n = read_some(c, c->in + c->in_end, want);
		if (n == -EAGAIN) {
			in_shrink(c);
			return;
		}
		if (n <= 0) {
			/* A stream that ends inside a frame lost data; one that ends between
			 * frames is a clean close. */
			int err = (int)n;
			if (n == 0 && (buffered(c) > 0 || c->discard > 0))
				err = -EPIPE;
			close_with(c, err);
			return;
		}
		c->in_end += (size_t)n;
		budget -= MIN(budget, (size_t)n);
		/* Decrypted or read-ahead bytes inside OpenSSL raise no poll event: only an empty
		 * socket behind an empty SSL buffer counts. */
		if (c->ssl)
			drained = c->sbio && c->sbio->read_short && !SSL_has_pending(c->ssl);
		else
			drained = (size_t)n < want;
	}
}

/* ---- handshake, readiness and the deferred kick ---- */

static void deliver_ready(struct ttrpc_conn *c)
{
	c->ready_pending = false;
	if (c->ops.on_ready)
		c->ops.on_ready(c, c->userdata);
}

static void finish_shutdown(struct ttrpc_conn *c)
{
	if (c->shutdown_requested && pending(c) == 0 && !c->handshaking)
		close_with(c, 0);
}

static void do_handshake(struct ttrpc_conn *c)
{
	ERR_clear_error();
	errno = 0;
	int r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		c->handshaking = false;
		c->hs_events = 0;
		c->timer = loop_source_free(c->timer);
		deliver_ready(c);
		if (c->closed || c->dead)
			return;
		int fr = flush(c);
		if (fr < 0) {
			close_with(c, fr);
			return;
		}
		finish_shutdown(c);
		if (c->closed || c->dead)
			return;
		/* Application data may have arrived with the last handshake flight. */
		if (!c->read_paused && SSL_has_pending(c->ssl))
			schedule_kick(c);
		return;
	}
	int e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ)
		c->hs_events = EPOLLIN;
	else if (e == SSL_ERROR_WANT_WRITE)
		c->hs_events = EPOLLOUT;
	else
		close_with(c, ssl_error_to_errno(c, e));
}

static void deliver_drain(struct ttrpc_conn *c)
{
	if (!c->drain_pending)
		return;
	c->drain_pending = false;
	if (c->ops.on_drain)
		c->ops.on_drain(c, c->userdata);
}

static void on_kick(struct loop_source *s, void *userdata)
{
	struct ttrpc_conn *c = userdata;
	c->kick = loop_source_free(s);
	if (c->closed)
		return;
	hold(c);
	if (c->kick_error) {
		close_with(c, c->kick_error);
		goto out;
	}
	if (c->handshaking) {
		do_handshake(c);
		goto out;
	}
	if (c->ready_pending) {
		deliver_ready(c);
		if (c->closed || c->dead)
			goto out;
	}
	deliver_drain(c);
	if (c->closed || c->dead)
		goto out;
	finish_shutdown(c);
	if (c->closed || c->dead)
		goto out;
	if (!c->read_paused && (buffered(c) > 0 || (c->ssl && SSL_has_pending(c->ssl))))
		do_read(c);
out:
	if (!release(c) && !c->closed)
		update_events(c);
}

static void on_io(struct loop_source *s, int fd, uint32_t events, void *userdata)
{
	struct ttrpc_conn *c = userdata;
	hold(c);
	if (c->handshaking) {
		do_handshake(c);
		goto out;
	}

	bool hup = events & (EPOLLHUP | EPOLLERR);
	if (pending(c) > 0 &&
	    ((events & EPOLLOUT) || hup || (c->write_wants_read && (events & EPOLLIN)))) {
		int r = flush(c);
		if (r < 0) {
			close_with(c, r);
			goto out;
		}
		deliver_drain(c);
		if (c->closed || c->dead)
			goto out;
		finish_shutdown(c);
		if (c->closed || c->dead)
			goto out;
	}

	if (c->ready_pending)
		goto out;
	if (!c->read_paused && ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) ||
				(c->read_wants_write && (events & EPOLLOUT))))
		do_read(c);
	else if (hup && c->read_paused && !c->closed && !c->dead) {
		/* A hang-up is reported whatever we ask for; stop listening until reads resume
		 * rather than spin. */
		c->io = loop_source_free(c->io);
		c->events = 0;
		c->parked = true;
	}
out:
	if (!release(c) && !c->closed)
		update_events(c);
}

static void on_handshake_timeout(struct loop_source *s, void *userdata)
{
	struct ttrpc_conn *c = userdata;
	c->timer = loop_source_free(s);
	hold(c);
	if (c->handshaking)
		close_with(c, -ETIMEDOUT);
	release(c);
}

/* ---- lifetime ---- */

int ttrpc_conn_new(struct loop *l, int fd, struct ssl_st *ssl, int64_t handshake_timeout_ns,
		   const struct ttrpc_conn_ops *ops, void *userdata, struct ttrpc_conn **ret)
{
	if (!l || fd < 0 || !ops || !ops->on_frame || !ret)
		return -EINVAL;

	int r = fd_set_nonblock(fd, true);
	if (r < 0)
		return r;
	/* Request and response are each one write; Nagle would hold back the second of two
	 * answers sent close together. Fails harmlessly on Unix sockets. */
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	struct ttrpc_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->loop = l;
	c->fd = fd;
	c->ops = *ops;
	c->userdata = userdata;

	if (ssl) {
		r = ttrpc_ssl_set_socket(ssl, fd);
		if (r < 0) {
			free(c);
			return r;
		}
		SSL_set_mode(ssl,
			     SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
		/* ttRPC frames are self-delimiting, so a missing close_notify cannot hide a
		 * truncation; treat it as a plain end of stream. */
		SSL_set_options(ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
		c->handshaking = !SSL_is_init_finished(ssl);
	}
	c->ready_pending = !c->handshaking;

	r = loop_add_io(l, fd, 0, on_io, c, &c->io);
	if (r < 0) {
		free(c);
		return r;
	}
	if (c->handshaking && handshake_timeout_ns > 0) {
		int64_t now = now_ns();
		int64_t deadline =
		    handshake_timeout_ns > INT64_MAX - now ? INT64_MAX : now + handshake_timeout_ns;
		r = loop_add_timer(l, deadline, on_handshake_timeout, c, &c->timer);
		if (r < 0) {
			loop_source_free(c->io);
			free(c);
			return r;
		}
	}
	/* The first handshake step and on_ready both run from the loop, so the owner has its
	 * pointer before any callback. */
	r = loop_add_defer(l, on_kick, c, &c->kick);
	if (r < 0) {
		loop_source_free(c->timer);
		loop_source_free(c->io);
		free(c);
		return r;
	}
	c->ssl = ssl;
	c->sbio = ssl_sock_bio(ssl);
	if (c->sbio)
		c->sbio->coalesce = true;
	*ret = c;
	return 0;
}

struct ttrpc_conn *ttrpc_conn_free(struct ttrpc_conn *c)
{
	if (!c || c->dead)
		return NULL;
	c->dead = true;
	c->io = loop_source_free(c->io);
	c->timer = loop_source_free(c->timer);
	c->kick = loop_source_free(c->kick);
	if (c->ssl) {
		if (!c->closed && !c->ssl_failed && !c->handshaking) {
			ERR_clear_error();
			(void)SSL_shutdown(c->ssl);
		}
		ERR_clear_error();
		SSL_free(c->ssl);
		c->ssl = NULL;
		c->sbio = NULL;
	}
	c->closed = true;
	c->fd = safe_close(c->fd);
	if (c->busy == 0)
		conn_destroy(c);
	return NULL;
}

void ttrpc_conn_set_read_paused(struct ttrpc_conn *c, bool paused)
{
	if (!c || c->dead || c->closed || c->read_paused == paused)
		return;
	c->read_paused = paused;
	if (!paused) {
		if (c->parked) {
			c->parked = false;
			c->events = 0;
			if (loop_add_io(c->loop, c->fd, 0, on_io, c, &c->io) < 0) {
				fail_later(c, -ENOMEM);
				return;
			}
		}
		if (buffered(c) > 0 || c->discard > 0 || (c->ssl && SSL_has_pending(c->ssl)))
			schedule_kick(c);
	}
	update_events(c);
}

void ttrpc_conn_shutdown(struct ttrpc_conn *c)
{
	if (!c || c->dead || c->closed || c->shutdown_requested)
		return;
	c->shutdown_requested = true;
	c->read_paused = true;
	if (pending(c) == 0)
		schedule_kick(c);
	update_events(c);
}

void ttrpc_conn_set_userdata(struct ttrpc_conn *c, void *userdata)
{
	if (c)
		c->userdata = userdata;
}

void *ttrpc_conn_get_userdata(const struct ttrpc_conn *c)
{
	return c ? c->userdata : NULL;
}

int ttrpc_conn_get_fd(const struct ttrpc_conn *c)
{
	return c ? c->fd : -EBADF;
}

struct ssl_st *ttrpc_conn_get_ssl(const struct ttrpc_conn *c)
{
	return c ? c->ssl : NULL;
}

/* Unit tests of ttRPC connections, server and clients over socketpairs, Unix and loopback TCP
 * sockets: a raw-byte peer checks the wire behaviour of WIRE.md 1.3-1.8 byte by byte, and TLS
 * runs with a self-signed P-256 certificate made here. SIGPIPE is left at its default on
 * purpose: a write to a vanished peer must not kill the process. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "ttrpc/ttrpc.h"

#define BYTES(s) ((const uint8_t *)(s)), (sizeof(s) - 1)
#define SVC "test.Svc"
#define MAX_ITER 4000

/* Drive the loop until cond holds; the cap only keeps a broken build from hanging. */
#define RUN_UNTIL(l, cond)                                                       \
	do {                                                                     \
		bool _ok = false;                                                \
		for (int _i = 0; _i < MAX_ITER && !(_ok = (cond)); _i++)         \
			assert_true(loop_run_once((l), 5 * NSEC_PER_MSEC) >= 0); \
		assert_true(_ok);                                                \
	} while (0)

/* ---- a raw-byte peer ---- */

struct raw {
	int fd;
	struct buf in;
	bool eof;
};

static void raw_init(struct raw *r, int fd)
{
	*r = (struct raw){.fd = fd};
	assert_int_equal(fd_set_nonblock(fd, true), 0);
}

static void raw_done(struct raw *r)
{
	if (r->fd >= 0)
		close(r->fd);
	buf_done(&r->in);
	r->fd = -1;
}

static void raw_write(struct loop *l, struct raw *r, const void *data, size_t len)
{
	const uint8_t *p = data;
	for (int i = 0; len > 0; i++) {
		assert_true(i < 100000);
		ssize_t n = send(r->fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			assert_true(errno == EAGAIN);
			assert_true(loop_run_once(l, 5 * NSEC_PER_MSEC) >= 0);
			continue;
		}
		p += n;
		len -= (size_t)n;
	}
}

static void raw_fill(struct raw *r)
{
	for (;;) {
		assert_int_equal(buf_reserve(&r->in, 65536, 0), 0);
		ssize_t n = recv(r->fd, r->in.data + r->in.len, r->in.cap - r->in.len, 0);
		if (n < 0) {
			assert_true(errno == EAGAIN || errno == ECONNRESET);
			if (errno == ECONNRESET)
				r->eof = true;
			return;
		}
		if (n == 0) {
			r->eof = true;
			return;
		}
		r->in.len += (size_t)n;
	}
}

static bool raw_try_frame(struct raw *r, struct ttrpc_header *h, struct buf *data)
{
	raw_fill(r);
	if (r->in.len < TTRPC_HEADER_SIZE)
		return false;
	ttrpc_header_decode(r->in.data, h);
	if (r->in.len < TTRPC_HEADER_SIZE + (size_t)h->length)
		return false;
	data->len = 0;
	assert_int_equal(buf_append(data, r->in.data + TTRPC_HEADER_SIZE, h->length, 0), 0);
	buf_consume(&r->in, TTRPC_HEADER_SIZE + h->length);
	return true;
}

static void raw_read_frame(struct loop *l, struct raw *r, struct ttrpc_header *h, struct buf *data)
{
	RUN_UNTIL(l, raw_try_frame(r, h, data));
}

/* Read one whole frame and compare it byte for byte. */
static void raw_expect_bytes(struct loop *l, struct raw *r, const uint8_t *want, size_t len)
{
	struct ttrpc_header h;
	struct buf data = {0};
	raw_read_frame(l, r, &h, &data);
	uint8_t hdr[TTRPC_HEADER_SIZE];
	ttrpc_header_encode(&h, hdr);
	assert_int_equal(TTRPC_HEADER_SIZE + data.len, len);
	assert_memory_equal(hdr, want, TTRPC_HEADER_SIZE);
	assert_memory_equal(data.data, want + TTRPC_HEADER_SIZE, data.len);
	buf_done(&data);
}

static void raw_frame(struct loop *l, struct raw *r, uint32_t id, uint8_t type, uint8_t flags,
		      const void *data, size_t len)
{
	uint8_t hdr[TTRPC_HEADER_SIZE];
	ttrpc_header_encode(&(struct ttrpc_header){(uint32_t)len, id, type, flags}, hdr);
	raw_write(l, r, hdr, sizeof(hdr));
	raw_write(l, r, data, len);
}

static void raw_request(struct loop *l, struct raw *r, uint32_t id, const char *service,
			const char *method, const void *payload, size_t len, int64_t timeout_nano,
			const struct ttrpc_kv *md, size_t n_md)
{
	struct buf b = {0};
	assert_int_equal(
	    ttrpc_request_encode(&b, service, method, payload, len, timeout_nano, NULL, md, n_md),
	    0);
	raw_frame(l, r, id, TTRPC_TYPE_REQUEST, 0, b.data, b.len);
	buf_done(&b);
}

/* Read a Response and check id, code, message (NULL: not checked) and payload (OK only). */
static void raw_expect_response(struct loop *l, struct raw *r, uint32_t id, int code,
				const char *message, const void *payload, size_t len)
{
	struct ttrpc_header h;
	struct buf data = {0};
	raw_read_frame(l, r, &h, &data);
	assert_int_equal(h.type, TTRPC_TYPE_RESPONSE);
	assert_int_equal(h.flags, 0);
	assert_int_equal(h.stream_id, id);
	struct ttrpc_response_view v;
	assert_int_equal(ttrpc_response_parse(data.data, data.len, &v), 0);
	assert_int_equal(v.code, code);
	if (message) {
		assert_int_equal(v.message.len, strlen(message));
		assert_memory_equal(v.message.data, message, v.message.len);
	}
	if (code == 0) {
		assert_int_equal(v.payload.len, len);
		if (len)
			assert_memory_equal(v.payload.data, payload, len);
	}
	buf_done(&data);
}

/* Nothing else is queued for us: a fresh echo comes back as the very next frame. */
static void raw_ping(struct loop *l, struct raw *r, uint32_t id)
{
	raw_request(l, r, id, SVC, "Echo", "ping", 4, 0, NULL, 0);
	raw_expect_response(l, r, id, 0, NULL, "ping", 4);
}

/* ---- a server with test methods ---- */

struct fixture {
	struct loop *loop;
	struct ttrpc_server *server;
	struct ttrpc_call *held[16];
	size_t n_held;
	int cancel_codes[16];
	size_t n_cancel;
	char meta[256];
	int64_t deadline_ns;
};

static void m_echo(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *userdata)
{
	assert_int_equal(ttrpc_call_reply(call, payload, len), 0);
}

static void on_cancel(struct ttrpc_call *call, int code, void *userdata)
{
	struct fixture *fx = userdata;
	assert_true(ttrpc_call_is_cancelled(call));
	assert_true(fx->n_cancel < ELEMENTSOF(fx->cancel_codes));
	fx->cancel_codes[fx->n_cancel++] = code;
}

static void m_hold(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *userdata)
{
	struct fixture *fx = userdata;
	assert_true(fx->n_held < ELEMENTSOF(fx->held));
	assert_false(ttrpc_call_is_cancelled(call));
	ttrpc_call_set_cancel(call, on_cancel, fx);
	fx->held[fx->n_held++] = call;
}

static void m_meta(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *userdata)
{
	struct fixture *fx = userdata;
	size_t off = 0;
	fx->meta[0] = 0;
	for (size_t i = 0; i < ttrpc_call_n_metadata(call); i++) {
		const struct ttrpc_kv *kv = &ttrpc_call_metadata(call)[i];
		off += (size_t)snprintf(fx->meta + off, sizeof(fx->meta) - off, "%s=%s;", kv->key,
					kv->value);
	}
	fx->deadline_ns = ttrpc_call_deadline_ns(call);
	assert_string_equal(ttrpc_call_service(call), SVC);
	assert_string_equal(ttrpc_call_method(call), "Meta");
	assert_int_equal(ttrpc_call_reply(call, fx->meta, strlen(fx->meta)), 0);
}

static void m_fail(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *userdata)
{
	assert_int_equal(ttrpc_call_reply_error(call, TTRPC_NOT_FOUND, "no %s here", "thing"), 0);
}

static void m_version(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *userdata)
{
	assert_int_equal(ttrpc_call_reply(call,
					  "\x0a\x05"
					  "0.0.0",
					  7),
			 0);
}

static void m_quit(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *userdata)
{
	struct fixture *fx = userdata;
	ttrpc_call_reply(call, NULL, 0);
	loop_exit(fx->loop, 0);
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	assert_non_null(fx);
	assert_int_equal(loop_new(&fx->loop), 0);
	assert_int_equal(ttrpc_server_new(fx->loop, &fx->server), 0);
	assert_int_equal(ttrpc_server_add_method(fx->server, SVC, "Echo", m_echo, fx), 0);
	assert_int_equal(ttrpc_server_add_method(fx->server, SVC, "Hold", m_hold, fx), 0);
	assert_int_equal(ttrpc_server_add_method(fx->server, SVC, "Meta", m_meta, fx), 0);
	assert_int_equal(ttrpc_server_add_method(fx->server, SVC, "Fail", m_fail, fx), 0);
	assert_int_equal(ttrpc_server_add_method(fx->server, SVC, "Quit", m_quit, fx), 0);
	assert_int_equal(
	    ttrpc_server_add_method(fx->server, "hypervisor.Hypervisor", "Version", m_version, fx),
	    0);
	assert_int_equal(ttrpc_server_add_method(fx->server, SVC, "Echo", m_echo, fx), -EEXIST);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	ttrpc_server_free(fx->server);
	/* Held calls must still be finished; their replies are dropped. */
	for (size_t i = 0; i < fx->n_held; i++)
		if (fx->held[i])
			ttrpc_call_reply(fx->held[i], NULL, 0);
	loop_free(fx->loop);
	free(fx);
	return 0;
}

/* A raw peer connected to the server through a socketpair. */
static void connect_raw(struct fixture *fx, struct raw *r)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(ttrpc_server_add_connection(fx->server, sv[0], NULL), 0);
	raw_init(r, sv[1]);
}

/* ---- server tests ---- */

static const char version_request[] = "\x00\x00\x00\x29\x00\x00\x00\x01\x01\x00"
				      "\x0a\x15"
				      "hypervisor.Hypervisor"
				      "\x12\x07"
				      "Version"
				      "\x1a\x07\x0a\x05"
				      "0.0.0";
static const char version_ok_go[] = "\x00\x00\x00\x09\x00\x00\x00\x01\x02\x00"
				    "\x12\x07\x0a\x05"
				    "0.0.0";
static const char version_ok_rust[] = "\x00\x00\x00\x0b\x00\x00\x00\x01\x02\x00"
				      "\x0a\x00\x12\x07\x0a\x05"
				      "0.0.0";
static const char unknown_method[] = "\x00\x00\x00\x19\x00\x00\x00\x01\x02\x00"
				     "\x0a\x17\x08\x0c\x12\x13"
				     "method NoSuchMethod";
static const char oversize_answer[] =
    "\x00\x00\x00\x43\x00\x00\x00\x05\x02\x00"
    "\x0a\x41\x08\x08\x12\x3d"
    "message length 4194305 exceed maximum message size of 4194304";

static void test_golden(void **state)
{
	struct fixture *fx = *state;
	struct raw r;
	connect_raw(fx, &r);
	raw_write(fx->loop, &r, BYTES(version_request));
	raw_expect_bytes(fx->loop, &r, BYTES(version_ok_go));
	raw_done(&r);

	connect_raw(fx, &r);
	raw_request(fx->loop, &r, 1, "hypervisor.Hypervisor", "NoSuchMethod", NULL, 0, 0, NULL, 0);
	raw_expect_bytes(fx->loop, &r, BYTES(unknown_method));
	raw_request(fx->loop, &r, 3, "nope.Svc", "Version", NULL, 0, 0, NULL, 0);
	raw_expect_response(fx->loop, &r, 3, TTRPC_UNIMPLEMENTED, "service nope.Svc", NULL, 0);
	raw_request(fx->loop, &r, 5, SVC, "Fail", NULL, 0, 0, NULL, 0);
	raw_expect_response(fx->loop, &r, 5, TTRPC_NOT_FOUND, "no thing here", NULL, 0);
	raw_done(&r);
	RUN_UNTIL(fx->loop, ttrpc_server_n_connections(fx->server) == 0);
}

static void test_concurrent(void **state)
{
	struct fixture *fx = *state;
	struct raw r;
	connect_raw(fx, &r);
	raw_request(fx->loop, &r, 1, SVC, "Hold", NULL, 0, 0, NULL, 0);
	raw_request(fx->loop, &r, 3, SVC, "Hold", NULL, 0, 0, NULL, 0);
	RUN_UNTIL(fx->loop, fx->n_held == 2);
	/* A held call delays nothing else. */
	raw_ping(fx->loop, &r, 5);
	assert_int_equal(ttrpc_call_reply(fx->held[1], "second", 6), 0);
	fx->held[1] = NULL;
	raw_expect_response(fx->loop, &r, 3, 0, NULL, "second", 6);
	assert_int_equal(ttrpc_call_reply(fx->held[0], "first", 5), 0);
	fx->held[0] = NULL;
	raw_expect_response(fx->loop, &r, 1, 0, NULL, "first", 5);
	assert_int_equal(fx->n_cancel, 0);
	raw_done(&r);
}

static void test_deadline(void **state)
{
	struct fixture *fx = *state;
	struct raw r;
	connect_raw(fx, &r);
	raw_request(fx->loop, &r, 1, SVC, "Hold", NULL, 0, 20 * NSEC_PER_MSEC, NULL, 0);
	RUN_UNTIL(fx->loop, fx->n_held == 1);
	assert_true(ttrpc_call_deadline_ns(fx->held[0]) > 0);
	raw_expect_response(fx->loop, &r, 1, TTRPC_DEADLINE_EXCEEDED, "context deadline exceeded",
			    NULL, 0);
	assert_int_equal(fx->n_cancel, 1);
	assert_int_equal(fx->cancel_codes[0], TTRPC_DEADLINE_EXCEEDED);
	assert_true(ttrpc_call_is_cancelled(fx->held[0]));
	/* The late reply is dropped and frees the call. */
	assert_int_equal(ttrpc_call_reply(fx->held[0], "late", 4), 0);
	fx->held[0] = NULL;
	raw_ping(fx->loop, &r, 3);

	/* No deadline without timeout_nano; a negative one is none too. */
	raw_request(fx->loop, &r, 5, SVC, "Hold", NULL, 0, -5, NULL, 0);
	RUN_UNTIL(fx->loop, fx->n_held == 2);
	assert_int_equal(ttrpc_call_deadline_ns(fx->held[1]), 0);
	assert_int_equal(ttrpc_call_reply(fx->held[1], NULL, 0), 0);
	fx->held[1] = NULL;
	raw_expect_response(fx->loop, &r, 5, 0, NULL, NULL, 0);
	raw_done(&r);
}

static void test_stream_ids(void **state)
{
	struct fixture *fx = *state;
	struct raw r;
	connect_raw(fx, &r);
	raw_request(fx->loop, &r, 2, SVC, "Echo", "x", 1, 0, NULL, 0);
	raw_expect_response(fx->loop, &r, 2, TTRPC_INVALID_ARGUMENT,
			    "StreamID must be odd for client initiated streams", NULL, 0);
	/* The even id consumed nothing: 1 is still fine. */
	raw_ping(fx->loop, &r, 1);
	raw_ping(fx->loop, &r, 7);
	raw_request(fx->loop, &r, 5, SVC, "Echo", "x", 1, 0, NULL, 0);
	raw_expect_response(fx->loop, &r, 5, TTRPC_INVALID_ARGUMENT,
			    "StreamID cannot be re-used and must increment", NULL, 0);
	raw_request(fx->loop, &r, 7, SVC, "Echo", "x", 1, 0, NULL, 0);
	raw_expect_response(fx->loop, &r, 7, TTRPC_INVALID_ARGUMENT,
			    "StreamID cannot be re-used and must increment", NULL, 0);
	raw_ping(fx->loop, &r, 9);

	/* An undecodable request consumes its id. */
	raw_frame(fx->loop, &r, 11, TTRPC_TYPE_REQUEST, 0,
		  BYTES("\x0a\x05"
			"ab"));
	struct ttrpc_header h;
	struct buf data = {0};
	raw_read_frame(fx->loop, &r, &h, &data);
	assert_int_equal(h.stream_id, 11);
	struct ttrpc_response_view v;
	assert_int_equal(ttrpc_response_parse(data.data, data.len, &v), 0);
	assert_int_equal(v.code, TTRPC_INVALID_ARGUMENT);
	assert_true(v.message.len > 25);
	assert_memory_equal(v.message.data, "unmarshal request error: ", 25);
	buf_done(&data);
	raw_request(fx->loop, &r, 11, SVC, "Echo", "x", 1, 0, NULL, 0);
	raw_expect_response(fx->loop, &r, 11, TTRPC_INVALID_ARGUMENT,
			    "StreamID cannot be re-used and must increment", NULL, 0);
	raw_ping(fx->loop, &r, 13);
	raw_done(&r);
}

static void test_oversize(void **state)
{
	struct fixture *fx = *state;
	struct raw r;
	connect_raw(fx, &r);
	raw_ping(fx->loop, &r, 1);
	size_t n = TTRPC_MAX_DATA_BYTES + 1;
	uint8_t *big = malloc(n);
	assert_non_null(big);
	/* The discarded body looks like frames; it must not be read as any. */
	for (size_t i = 0; i < n; i++)
		big[i] = (uint8_t)(i % 10 == 8 ? 1 : 0);
	raw_frame(fx->loop, &r, 5, TTRPC_TYPE_REQUEST, 0, big, n);
	free(big);
	raw_expect_bytes(fx->loop, &r, BYTES(oversize_answer));
	raw_ping(fx->loop, &r, 7);

	/* A frame of exactly the limit is served (and refused as undecodable, all zeros). */
	big = calloc(1, TTRPC_MAX_DATA_BYTES);
	raw_frame(fx->loop, &r, 9, TTRPC_TYPE_REQUEST, 0, big, TTRPC_MAX_DATA_BYTES);
	free(big);
	raw_expect_response(fx->loop, &r, 9, TTRPC_INVALID_ARGUMENT, NULL, NULL, 0);

	/* And a large valid echo goes both ways. */
	size_t len = 3 * 1024 * 1024;
	big = malloc(len);
	for (size_t i = 0; i < len; i++)
		big[i] = (uint8_t)(i * 7);
	raw_request(fx->loop, &r, 11, SVC, "Echo", big, len, 0, NULL, 0);
	raw_expect_response(fx->loop, &r, 11, 0, NULL, big, len);
	free(big);
	raw_done(&r);
}

static void test_oversize_first(void **state)
{
	/* Oversize answer order: checked with a first frame that is oversized. */
	struct fixture *fx = *state;
	struct raw r;
	connect_raw(fx, &r);
	size_t n = TTRPC_MAX_DATA_BYTES + 1;
	uint8_t *big = calloc(1, n);
	raw_frame(fx->loop, &r, 5, TTRPC_TYPE_REQUEST, 0, big, n);
	free(big);
	raw_request(fx->loop, &r, 7, SVC, "Echo", "ok", 2, 0, NULL, 0);
	raw_expect_bytes(fx->loop, &r, BYTES(oversize_answer));
	raw_expect_response(fx->loop, &r, 7, 0, NULL, "ok", 2);
	raw_done(&r);
}

static void test_garbage(void **state)
{
	struct fixture *fx = *state;
	struct raw a, b, c;
	connect_raw(fx, &a);
	connect_raw(fx, &b);
	connect_raw(fx, &c);
	assert_int_equal(ttrpc_server_n_connections(fx->server), 3);

	/* An HTTP client: byte 0 is not zero, so this is a 1.2 GB frame being skipped. */
	raw_write(fx->loop, &a, BYTES("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
	/* A truncated header and then the end of the stream. */
	raw_write(fx->loop, &c, BYTES("\x00\x00\x00"));
	shutdown(c.fd, SHUT_WR);
	raw_ping(fx->loop, &b, 1);
	RUN_UNTIL(fx->loop, ttrpc_server_n_connections(fx->server) == 2);
	raw_fill(&c);
	assert_true(c.eof);

	uint8_t junk[4096];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 131 + 7);
	raw_write(fx->loop, &a, junk, sizeof(junk));
	raw_ping(fx->loop, &b, 3);
	raw_done(&a);
	RUN_UNTIL(fx->loop, ttrpc_server_n_connections(fx->server) == 1);
	raw_ping(fx->loop, &b, 5);
	raw_done(&b);
	raw_done(&c);
	RUN_UNTIL(fx->loop, ttrpc_server_n_connections(fx->server) == 0);
}

static void test_data_and_unknown_frames(void **state)
{
	struct fixture *fx = *state;
	struct raw r;
	connect_raw(fx, &r);
	raw_frame(fx->loop, &r, 3, TTRPC_TYPE_DATA, 0, "x", 1);
	raw_expect_response(fx->loop, &r, 3, TTRPC_INVALID_ARGUMENT, "StreamID is no longer active",
			    NULL, 0);
	raw_frame(fx->loop, &r, 4, TTRPC_TYPE_DATA, 0, "x", 1);
	raw_expect_response(fx->loop, &r, 4, TTRPC_INVALID_ARGUMENT,
			    "StreamID must be odd for client initiated streams", NULL, 0);
	/* Unknown types and a Response from the client are ignored. */
	raw_frame(fx->loop, &r, 5, 0x07, 0xff, "abc", 3);
	raw_frame(fx->loop, &r, 6, 0x00, 0, NULL, 0);
	raw_frame(fx->loop, &r, 7, TTRPC_TYPE_RESPONSE, 0, NULL, 0);
	raw_ping(fx->loop, &r, 9);
	/* Data for an open unary call is dropped. */
	raw_request(fx->loop, &r, 11, SVC, "Hold", NULL, 0, 0, NULL, 0);
	RUN_UNTIL(fx->loop, fx->n_held == 1);
	raw_frame(fx->loop, &r, 11, TTRPC_TYPE_DATA, TTRPC_FLAG_REMOTE_CLOSED | TTRPC_FLAG_NO_DATA,
		  NULL, 0);
	raw_ping(fx->loop, &r, 13);
	assert_int_equal(ttrpc_call_reply(fx->held[0], NULL, 0), 0);
	fx->held[0] = NULL;
	raw_expect_response(fx->loop, &r, 11, 0, NULL, NULL, 0);
	raw_done(&r);
}

static void test_close_cancels(void **state)
{
	struct fixture *fx = *state;
	struct raw r;
	connect_raw(fx, &r);
	raw_request(fx->loop, &r, 1, SVC, "Hold", NULL, 0, 60 * NSEC_PER_SEC, NULL, 0);
	raw_request(fx->loop, &r, 3, SVC, "Hold", NULL, 0, 0, NULL, 0);
	RUN_UNTIL(fx->loop, fx->n_held == 2);
	raw_done(&r);
	RUN_UNTIL(fx->loop, ttrpc_server_n_connections(fx->server) == 0);
	assert_int_equal(fx->n_cancel, 2);
	assert_int_equal(fx->cancel_codes[0], TTRPC_CANCELLED);
	assert_int_equal(fx->cancel_codes[1], TTRPC_CANCELLED);
	assert_int_equal(ttrpc_call_reply(fx->held[0], "x", 1), 0);
	assert_int_equal(ttrpc_call_reply_error(fx->held[1], TTRPC_INTERNAL, "gone"), 0);
	fx->held[0] = fx->held[1] = NULL;
}

static void test_server_free_cancels(void **state)
{
	struct fixture *fx = *state;
	struct raw r;
	connect_raw(fx, &r);
	raw_request(fx->loop, &r, 1, SVC, "Hold", NULL, 0, 0, NULL, 0);
	RUN_UNTIL(fx->loop, fx->n_held == 1);
	fx->server = ttrpc_server_free(fx->server);
	assert_int_equal(fx->n_cancel, 1);
	assert_int_equal(fx->cancel_codes[0], TTRPC_CANCELLED);
	/* The peer sees the end of the stream. */
	RUN_UNTIL(fx->loop, (raw_fill(&r), r.eof));
	raw_done(&r);
	/* teardown replies to the held call */
}

static void test_metadata(void **state)
{
	struct fixture *fx = *state;
	struct raw r;
	connect_raw(fx, &r);
	struct ttrpc_kv md[] = {{"traceparent", "00-abc"}, {"k", "v1"}, {"k", "v2"}, {"e", ""}};
	int64_t before = now_ns();
	raw_request(fx->loop, &r, 1, SVC, "Meta", NULL, 0, 30 * NSEC_PER_SEC, md, 4);
	const char *want = "traceparent=00-abc;k=v1;k=v2;e=;";
	raw_expect_response(fx->loop, &r, 1, 0, NULL, want, strlen(want));
	assert_true(fx->deadline_ns >= before + 30 * NSEC_PER_SEC);
	raw_done(&r);
}

static void test_listen_unix(void **state)
{
	struct fixture *fx = *state;
	char dir[] = "/tmp/test-ttrpc-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[128];
	snprintf(path, sizeof(path), "%s/sub/dir/s.sock", dir);
	assert_int_equal(ttrpc_server_listen_unix(fx->server, path, 0600), 0);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);

	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	assert_int_equal(str_copy(sa.sun_path, sizeof(sa.sun_path), path), 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	struct raw r;
	raw_init(&r, fd);
	raw_ping(fx->loop, &r, 1);
	assert_int_equal(ttrpc_server_n_connections(fx->server), 1);
	raw_done(&r);

	/* A second server replaces the stale socket; a regular file is not removed. */
	struct ttrpc_server *s2;
	assert_int_equal(ttrpc_server_new(fx->loop, &s2), 0);
	assert_int_equal(ttrpc_server_listen_unix(s2, path, 0660), 0);
	ttrpc_server_free(s2);
	char file[160];
	snprintf(file, sizeof(file), "%s/file", dir);
	assert_int_equal(write_file_atomic(file, "x", 1, 0600), 0);
	assert_int_equal(ttrpc_server_new(fx->loop, &s2), 0);
	assert_int_equal(ttrpc_server_listen_unix(s2, file, 0660), -EEXIST);
	ttrpc_server_free(s2);
	assert_int_equal(rm_rf(dir), 0);
}

/* ---- conn-level behaviour ---- */

struct connfx {
	int frames;
	int closes;
	int close_error;
	int drains;
	int ready;
	bool free_in_frame;
	struct ttrpc_conn *conn;
};

static void cf_frame(struct ttrpc_conn *c, const struct ttrpc_header *h, const uint8_t *data,
		     void *userdata)
{
	struct connfx *cf = userdata;
	cf->frames++;
	if (cf->free_in_frame)
		cf->conn = ttrpc_conn_free(c);
}

static void cf_close(struct ttrpc_conn *c, int error, void *userdata)
{
	struct connfx *cf = userdata;
	cf->closes++;
	cf->close_error = error;
}

static void cf_drain(struct ttrpc_conn *c, void *userdata)
{
	struct connfx *cf = userdata;
	cf->drains++;
}

static void cf_ready(struct ttrpc_conn *c, void *userdata)
{
	struct connfx *cf = userdata;
	cf->ready++;
}

static const struct ttrpc_conn_ops cf_ops = {
    .on_frame = cf_frame,
    .on_close = cf_close,
    .on_drain = cf_drain,
    .on_ready = cf_ready,
};

static void test_conn_flow(void **state)
{
	struct fixture *fx = *state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct connfx cf = {0};
	assert_int_equal(ttrpc_conn_new(fx->loop, sv[0], NULL, 0, &cf_ops, &cf, &cf.conn), 0);
	assert_int_equal(cf.ready, 0);
	RUN_UNTIL(fx->loop, cf.ready == 1);
	assert_int_equal(ttrpc_conn_get_fd(cf.conn), sv[0]);
	assert_ptr_equal(ttrpc_conn_get_userdata(cf.conn), &cf);
	struct raw r;
	raw_init(&r, sv[1]);

	/* Paused: frames wait; resumed: they arrive. */
	ttrpc_conn_set_read_paused(cf.conn, true);
	raw_frame(fx->loop, &r, 1, TTRPC_TYPE_DATA, 0, "a", 1);
	raw_frame(fx->loop, &r, 3, TTRPC_TYPE_DATA, 0, "b", 1);
	for (int i = 0; i < 5; i++)
		loop_run_once(fx->loop, 0);
	assert_int_equal(cf.frames, 0);
	ttrpc_conn_set_read_paused(cf.conn, false);
	RUN_UNTIL(fx->loop, cf.frames == 2);

	/* Past the high watermark and back below the low one: one on_drain. */
	uint8_t *chunk = calloc(1, TTRPC_MAX_DATA_BYTES);
	assert_int_equal(
	    ttrpc_conn_send(cf.conn, 1, TTRPC_TYPE_DATA, 0, chunk, TTRPC_MAX_DATA_BYTES + 1),
	    -EMSGSIZE);
	size_t sent = 0;
	while (ttrpc_conn_pending_bytes(cf.conn) <= TTRPC_CONN_HIGH_WATERMARK_BYTES) {
		assert_int_equal(ttrpc_conn_send(cf.conn, 1, TTRPC_TYPE_DATA, 0, chunk, 1 << 20),
				 0);
		sent += TTRPC_HEADER_SIZE + (1 << 20);
	}
	free(chunk);
	assert_int_equal(cf.drains, 0);
	size_t got = 0;
	struct ttrpc_header h;
	struct buf data = {0};
	while (got < sent) {
		raw_read_frame(fx->loop, &r, &h, &data);
		got += TTRPC_HEADER_SIZE + data.len;
	}
	RUN_UNTIL(fx->loop, ttrpc_conn_pending_bytes(cf.conn) == 0 && cf.drains == 1);
	buf_done(&data);

	/* Shutdown after flush: everything arrives, then the end of the stream. */
	assert_int_equal(ttrpc_conn_send(cf.conn, 5, TTRPC_TYPE_DATA, 0, "last", 4), 0);
	ttrpc_conn_shutdown(cf.conn);
	assert_int_equal(ttrpc_conn_send(cf.conn, 7, TTRPC_TYPE_DATA, 0, "x", 1), -ENOTCONN);
	RUN_UNTIL(fx->loop, cf.closes == 1);
	assert_int_equal(cf.close_error, 0);
	data = (struct buf){0};
	raw_read_frame(fx->loop, &r, &h, &data);
	assert_int_equal(h.stream_id, 5);
	assert_int_equal(data.len, 4);
	buf_done(&data);
	cf.conn = ttrpc_conn_free(cf.conn);
	RUN_UNTIL(fx->loop, (raw_fill(&r), r.eof));
	raw_done(&r);
}

static void test_conn_free_in_callback(void **state)
{
	struct fixture *fx = *state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct connfx cf = {.free_in_frame = true};
	assert_int_equal(ttrpc_conn_new(fx->loop, sv[0], NULL, 0, &cf_ops, &cf, &cf.conn), 0);
	struct raw r;
	raw_init(&r, sv[1]);
	/* Both frames arrive in one read; the first callback frees the conn. */
	uint8_t two[2 * TTRPC_HEADER_SIZE + 2];
	ttrpc_header_encode(&(struct ttrpc_header){1, 1, TTRPC_TYPE_DATA, 0}, two);
	two[TTRPC_HEADER_SIZE] = 'a';
	ttrpc_header_encode(&(struct ttrpc_header){1, 3, TTRPC_TYPE_DATA, 0},
			    two + TTRPC_HEADER_SIZE + 1);
	two[2 * TTRPC_HEADER_SIZE + 1] = 'b';
	raw_write(fx->loop, &r, two, sizeof(two));
	RUN_UNTIL(fx->loop, cf.frames == 1);
	for (int i = 0; i < 5; i++)
		loop_run_once(fx->loop, 0);
	assert_int_equal(cf.frames, 1);
	assert_int_equal(cf.closes, 0);
	assert_null(cf.conn);
	RUN_UNTIL(fx->loop, (raw_fill(&r), r.eof));
	raw_done(&r);

	/* Peer closes in the middle of a frame: an error, not a clean end. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cf = (struct connfx){0};
	assert_int_equal(ttrpc_conn_new(fx->loop, sv[0], NULL, 0, &cf_ops, &cf, &cf.conn), 0);
	raw_init(&r, sv[1]);
	raw_write(fx->loop, &r, BYTES("\x00\x00\x00\x05\x00\x00\x00\x01\x03\x00xy"));
	raw_done(&r);
	RUN_UNTIL(fx->loop, cf.closes == 1);
	assert_true(cf.close_error < 0);
	assert_int_equal(cf.frames, 0);
	/* Sending on a closed conn fails; freeing it is still needed and fine. */
	assert_int_equal(ttrpc_conn_send(cf.conn, 1, TTRPC_TYPE_DATA, 0, "x", 1), -ENOTCONN);
	cf.conn = ttrpc_conn_free(cf.conn);
	assert_null(ttrpc_conn_free(NULL));
}

/* ---- client ---- */

struct reply {
	int n;
	int code;
	char message[256];
	struct buf payload;
};

static void on_reply(struct ttrpc_client *c, int code, const char *message, const uint8_t *payload,
		     size_t len, void *userdata)
{
	struct reply *r = userdata;
	r->n++;
	r->code = code;
	assert_non_null(message);
	snprintf(r->message, sizeof(r->message), "%s", message);
	r->payload.len = 0;
	assert_int_equal(buf_append(&r->payload, payload, len, 0), 0);
	if (code != 0)
		assert_int_equal(len, 0);
}

static void test_client_server(void **state)
{
	struct fixture *fx = *state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(ttrpc_server_add_connection(fx->server, sv[0], NULL), 0);
	struct ttrpc_client *c;
	assert_int_equal(ttrpc_client_new(fx->loop, sv[1], NULL, &c), 0);
	assert_true(ttrpc_client_is_connected(c));

	struct reply r1 = {0}, r2 = {0}, r3 = {0}, r4 = {0};
	assert_int_equal(ttrpc_client_call(c, SVC, "Echo", "hello", 5, 0, NULL, 0, on_reply, &r1),
			 0);
	struct ttrpc_kv md[] = {{"a", "1"}};
	assert_int_equal(
	    ttrpc_client_call(c, SVC, "Meta", NULL, 0, 10 * NSEC_PER_SEC, md, 1, on_reply, &r2), 0);
	assert_int_equal(ttrpc_client_call(c, SVC, "Nope", NULL, 0, 0, NULL, 0, on_reply, &r3), 0);
	assert_int_equal(ttrpc_client_call(c, SVC, "Echo", NULL, 0, 0, NULL, 0, on_reply, &r4), 0);
	RUN_UNTIL(fx->loop, r1.n && r2.n && r3.n && r4.n);
	assert_int_equal(r1.code, 0);
	assert_int_equal(r1.payload.len, 5);
	assert_memory_equal(r1.payload.data, "hello", 5);
	assert_int_equal(r2.code, 0);
	assert_int_equal(r2.payload.len, 4);
	assert_memory_equal(r2.payload.data, "a=1;", 4);
	assert_true(fx->deadline_ns > 0);
	assert_int_equal(r3.code, TTRPC_UNIMPLEMENTED);
	assert_string_equal(r3.message, "method Nope");
	assert_int_equal(r4.code, 0);
	assert_int_equal(r4.payload.len, 0);

	/* The server ends: pending calls fail with -ECONNRESET. */
	struct reply r5 = {0};
	assert_int_equal(ttrpc_client_call(c, SVC, "Hold", NULL, 0, 0, NULL, 0, on_reply, &r5), 0);
	RUN_UNTIL(fx->loop, fx->n_held == 1);
	fx->server = ttrpc_server_free(fx->server);
	RUN_UNTIL(fx->loop, r5.n == 1);
	assert_int_equal(r5.code, -ECONNRESET);
	assert_false(ttrpc_client_is_connected(c));
	assert_int_equal(ttrpc_client_call(c, SVC, "Echo", NULL, 0, 0, NULL, 0, on_reply, &r5),
			 -ENOTCONN);
	ttrpc_client_free(c);
	struct reply *all[] = {&r1, &r2, &r3, &r4, &r5};
	for (size_t i = 0; i < ELEMENTSOF(all); i++)
		buf_done(&all[i]->payload);
}

/* A client against a raw fake server. */
static void client_raw(struct fixture *fx, struct ttrpc_client **c, struct raw *r)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(ttrpc_client_new(fx->loop, sv[0], NULL, c), 0);
	raw_init(r, sv[1]);
}

/* Read a request from the fake server's side and check its id. */
static void raw_expect_request(struct loop *l, struct raw *r, uint32_t id, const char *method,
			       int64_t *ret_timeout)
{
	struct ttrpc_header h;
	struct buf data = {0};
	raw_read_frame(l, r, &h, &data);
	assert_int_equal(h.type, TTRPC_TYPE_REQUEST);
	assert_int_equal(h.flags, 0);
	assert_int_equal(h.stream_id, id);
	struct ttrpc_request_view v;
	assert_int_equal(ttrpc_request_parse(data.data, data.len, &v), 0);
	assert_int_equal(v.method.len, strlen(method));
	assert_memory_equal(v.method.data, method, v.method.len);
	if (ret_timeout)
		*ret_timeout = v.timeout_nano;
	buf_done(&data);
}

static void raw_answer(struct loop *l, struct raw *r, const uint8_t *golden, size_t len,
		       uint32_t id)
{
	uint8_t *f = malloc(len);
	memcpy(f, golden, len);
	f[4] = (uint8_t)(id >> 24);
	f[5] = (uint8_t)(id >> 16);
	f[6] = (uint8_t)(id >> 8);
	f[7] = (uint8_t)id;
	raw_write(l, r, f, len);
	free(f);
}

static void test_client_ok_encodings(void **state)
{
	struct fixture *fx = *state;
	struct ttrpc_client *c;
	struct raw r;
	client_raw(fx, &c, &r);
	struct reply rep[4] = {0};
	for (int i = 0; i < 4; i++)
		assert_int_equal(ttrpc_client_call(c, "hypervisor.Hypervisor", "Version", NULL, 0,
						   0, NULL, 0, on_reply, &rep[i]),
				 0);
	int64_t timeout;
	for (uint32_t id = 1; id <= 7; id += 2) {
		raw_expect_request(fx->loop, &r, id, "Version", &timeout);
		assert_int_equal(timeout, 0);
	}
	/* Answered out of order, each OK form twice. */
	raw_answer(fx->loop, &r, BYTES(version_ok_rust), 3);
	raw_answer(fx->loop, &r, BYTES(version_ok_go), 1);
	raw_answer(fx->loop, &r, BYTES("\x00\x00\x00\x00\x00\x00\x00\x01\x02\x00"), 7);
	raw_answer(fx->loop, &r, BYTES("\x00\x00\x00\x02\x00\x00\x00\x01\x02\x00\x0a\x00"), 5);
	RUN_UNTIL(fx->loop, rep[0].n && rep[1].n && rep[2].n && rep[3].n);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(rep[i].n, 1);
		assert_int_equal(rep[i].code, 0);
		assert_int_equal(rep[i].payload.len, i < 2 ? 7 : 0);
		if (i < 2)
			assert_memory_equal(rep[i].payload.data,
					    "\x0a\x05"
					    "0.0.0",
					    7);
		buf_done(&rep[i].payload);
	}

	/* A malformed answer fails its call only. */
	struct reply bad = {0};
	assert_int_equal(ttrpc_client_call(c, SVC, "X", NULL, 0, 0, NULL, 0, on_reply, &bad), 0);
	raw_expect_request(fx->loop, &r, 9, "X", NULL);
	raw_frame(fx->loop, &r, 9, TTRPC_TYPE_RESPONSE, 0, BYTES("\x0a\x05\x08"));
	RUN_UNTIL(fx->loop, bad.n == 1);
	assert_int_equal(bad.code, -EBADMSG);
	assert_true(ttrpc_client_is_connected(c));
	buf_done(&bad.payload);
	ttrpc_client_free(c);
	raw_done(&r);
}

static void test_client_deadline(void **state)
{
	struct fixture *fx = *state;
	struct ttrpc_client *c;
	struct raw r;
	client_raw(fx, &c, &r);
	struct reply slow = {0}, next = {0};
	assert_int_equal(
	    ttrpc_client_call(c, SVC, "Slow", "x", 1, 20 * NSEC_PER_MSEC, NULL, 0, on_reply, &slow),
	    0);
	int64_t timeout;
	raw_expect_request(fx->loop, &r, 1, "Slow", &timeout);
	assert_int_equal(timeout, 20 * NSEC_PER_MSEC);
	RUN_UNTIL(fx->loop, slow.n == 1);
	assert_int_equal(slow.code, -ETIMEDOUT);

	/* The late answer is dropped; the next call still works. */
	raw_answer(fx->loop, &r, BYTES(version_ok_go), 1);
	assert_int_equal(ttrpc_client_call(c, SVC, "Next", NULL, 0, 0, NULL, 0, on_reply, &next),
			 0);
	raw_expect_request(fx->loop, &r, 3, "Next", NULL);
	raw_answer(fx->loop, &r, BYTES(unknown_method), 3);
	RUN_UNTIL(fx->loop, next.n == 1);
	assert_int_equal(slow.n, 1);
	assert_int_equal(next.code, TTRPC_UNIMPLEMENTED);
	assert_string_equal(next.message, "method NoSuchMethod");

	/* Freeing the client answers pending calls with -ECANCELED. */
	struct reply pend = {0};
	assert_int_equal(ttrpc_client_call(c, SVC, "P", NULL, 0, 0, NULL, 0, on_reply, &pend), 0);
	ttrpc_client_free(c);
	assert_int_equal(pend.n, 1);
	assert_int_equal(pend.code, -ECANCELED);
	buf_done(&slow.payload);
	buf_done(&next.payload);
	buf_done(&pend.payload);
	raw_done(&r);
}

static void free_client_in_reply(struct ttrpc_client *c, int code, const char *message,
				 const uint8_t *payload, size_t len, void *userdata)
{
	int *n = userdata;
	(*n)++;
	ttrpc_client_free(c);
}

static void test_client_close(void **state)
{
	struct fixture *fx = *state;
	struct ttrpc_client *c;
	struct raw r;
	client_raw(fx, &c, &r);
	struct reply a = {0};
	int n = 0;
	assert_int_equal(ttrpc_client_call(c, SVC, "A", NULL, 0, 0, NULL, 0, on_reply, &a), 0);
	assert_int_equal(
	    ttrpc_client_call(c, SVC, "B", NULL, 0, 0, NULL, 0, free_client_in_reply, &n), 0);
	raw_expect_request(fx->loop, &r, 1, "A", NULL);
	raw_expect_request(fx->loop, &r, 3, "B", NULL);
	/* Answer B first: its callback frees the client, which cancels A. */
	raw_answer(fx->loop, &r, BYTES(version_ok_go), 3);
	RUN_UNTIL(fx->loop, n == 1);
	assert_int_equal(a.n, 1);
	assert_int_equal(a.code, -ECANCELED);
	buf_done(&a.payload);
	raw_done(&r);

	/* A peer that goes away fails pending calls with -ECONNRESET. */
	client_raw(fx, &c, &r);
	a = (struct reply){0};
	assert_int_equal(
	    ttrpc_client_call(c, SVC, "A", NULL, 0, 60 * NSEC_PER_SEC, NULL, 0, on_reply, &a), 0);
	raw_expect_request(fx->loop, &r, 1, "A", NULL);
	raw_done(&r);
	RUN_UNTIL(fx->loop, a.n == 1);
	assert_int_equal(a.code, -ECONNRESET);
	ttrpc_client_free(c);
	buf_done(&a.payload);
}

/* ---- TLS ---- */

struct tls {
	SSL_CTX *server;
	SSL_CTX *client;
};

static X509 *make_cert(EVP_PKEY *key)
{
	X509 *x = X509_new();
	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 4242), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -300));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
	X509_NAME *name = X509_get_subject_name(x);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
						    (const unsigned char *)"localhost", -1, -1, 0),
			 1);
	assert_int_equal(X509_set_issuer_name(x, name), 1);
	assert_int_equal(X509_set_pubkey(x, key), 1);
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	X509_EXTENSION *ext =
	    X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	return x;
}

static void tls_init(struct tls *t)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	assert_non_null(key);
	X509 *cert = make_cert(key);
	t->server = SSL_CTX_new(TLS_server_method());
	assert_non_null(t->server);
	assert_int_equal(SSL_CTX_use_certificate(t->server, cert), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(t->server, key), 1);
	assert_int_equal(SSL_CTX_check_private_key(t->server), 1);
	t->client = SSL_CTX_new(TLS_client_method());
	assert_non_null(t->client);
	assert_int_equal(X509_STORE_add_cert(SSL_CTX_get_cert_store(t->client), cert), 1);
	SSL_CTX_set_verify(t->client, SSL_VERIFY_PEER, NULL);
	X509_free(cert);
	EVP_PKEY_free(key);
}

static void tls_done(struct tls *t)
{
	SSL_CTX_free(t->server);
	SSL_CTX_free(t->client);
}

static int tcp_listen(uint16_t *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 16), 0);
	socklen_t len = sizeof(sa);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

static int tcp_connect(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				 .sin_port = htons(port)};
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static SSL *client_ssl(struct tls *t, const char *name)
{
	SSL *ssl = SSL_new(t->client);
	assert_non_null(ssl);
	SSL_set_connect_state(ssl);
	assert_int_equal(SSL_set1_host(ssl, name), 1);
	assert_int_equal(SSL_set_tlsext_host_name(ssl, name), 1);
	return ssl;
}

static void test_tls_async(void **state)
{
	struct fixture *fx = *state;
	struct tls t;
	tls_init(&t);
	uint16_t port;
	assert_int_equal(ttrpc_server_listen_fd(fx->server, tcp_listen(&port), t.server), 0);

	struct ttrpc_client *c;
	assert_int_equal(
	    ttrpc_client_new(fx->loop, tcp_connect(port), client_ssl(&t, "localhost"), &c), 0);
	/* Calls made before the handshake are sent after it. */
	struct reply a = {0}, b = {0};
	assert_int_equal(ttrpc_client_call(c, SVC, "Echo", "tls", 3, 0, NULL, 0, on_reply, &a), 0);
	size_t len = 3 * 1024 * 1024 + 17;
	uint8_t *big = malloc(len);
	for (size_t i = 0; i < len; i++)
		big[i] = (uint8_t)(i * 13 + 1);
	assert_int_equal(ttrpc_client_call(c, SVC, "Echo", big, len, 0, NULL, 0, on_reply, &b), 0);
	RUN_UNTIL(fx->loop, a.n && b.n);
	assert_int_equal(a.code, 0);
	assert_int_equal(a.payload.len, 3);
	assert_memory_equal(a.payload.data, "tls", 3);
	assert_int_equal(b.code, 0);
	assert_int_equal(b.payload.len, len);
	assert_memory_equal(b.payload.data, big, len);
	free(big);
	ttrpc_client_free(c);

	/* A name the certificate does not carry: the handshake fails, the call with it. */
	struct reply e = {0};
	assert_int_equal(
	    ttrpc_client_new(fx->loop, tcp_connect(port), client_ssl(&t, "other.example"), &c), 0);
	assert_int_equal(ttrpc_client_call(c, SVC, "Echo", "x", 1, 0, NULL, 0, on_reply, &e), 0);
	RUN_UNTIL(fx->loop, e.n == 1);
	assert_int_equal(e.code, -ECONNRESET);
	ttrpc_client_free(c);

	/* A plain-text client on the TLS port: the server drops it and keeps serving. */
	struct raw r;
	raw_init(&r, tcp_connect(port));
	raw_write(fx->loop, &r, BYTES(version_request));
	RUN_UNTIL(fx->loop, (raw_fill(&r), r.eof));
	raw_done(&r);

	buf_done(&a.payload);
	buf_done(&b.payload);
	buf_done(&e.payload);
	tls_done(&t);
}

static void test_tls_handshake_timeout(void **state)
{
	struct fixture *fx = *state;
	struct tls t;
	tls_init(&t);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	SSL *ssl = SSL_new(t.server);
	SSL_set_accept_state(ssl);
	struct connfx cf = {0};
	/* A silent peer never sends its ClientHello. */
	assert_int_equal(
	    ttrpc_conn_new(fx->loop, sv[0], ssl, 30 * NSEC_PER_MSEC, &cf_ops, &cf, &cf.conn), 0);
	RUN_UNTIL(fx->loop, cf.closes == 1);
	assert_int_equal(cf.close_error, -ETIMEDOUT);
	assert_int_equal(cf.ready, 0);
	ttrpc_conn_free(cf.conn);
	close(sv[1]);
	tls_done(&t);
}

struct server_thread {
	struct fixture *fx;
	pthread_t thread;
};

static void *serve(void *arg)
{
	struct server_thread *st = arg;
	loop_run(st->fx->loop);
	return NULL;
}

static void test_sync_client(void **state)
{
	struct fixture *fx = *state;
	struct tls t;
	tls_init(&t);
	uint16_t port;
	assert_int_equal(ttrpc_server_listen_fd(fx->server, tcp_listen(&port), t.server), 0);
	char dir[] = "/tmp/test-ttrpc-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[128];
	snprintf(path, sizeof(path), "%s/s.sock", dir);
	assert_int_equal(ttrpc_server_listen_unix(fx->server, path, 0600), 0);

	struct server_thread st = {.fx = fx};
	assert_int_equal(pthread_create(&st.thread, NULL, serve, &st), 0);

	/* Unix path */
	struct ttrpc_sync_client *c;
	assert_int_equal(ttrpc_sync_client_connect(path, NULL, NULL, 5 * NSEC_PER_SEC, &c), 0);
	uint8_t *out = NULL;
	size_t out_len = 0;
	char *msg = NULL;
	assert_int_equal(ttrpc_sync_client_call(c, SVC, "Echo", "sync", 4, 0, &out, &out_len, &msg),
			 0);
	assert_int_equal(out_len, 4);
	assert_memory_equal(out, "sync", 4);
	free(out);
	out = NULL;
	assert_int_equal(
	    ttrpc_sync_client_call(c, SVC, "Fail", NULL, 0, 5 * NSEC_PER_SEC, &out, &out_len, &msg),
	    TTRPC_NOT_FOUND);
	assert_string_equal(msg, "no thing here");
	free(msg);
	msg = NULL;
	assert_int_equal(ttrpc_sync_client_call(c, SVC, "Echo", NULL, 0, 0, &out, &out_len, NULL),
			 0);
	assert_null(out);
	assert_int_equal(out_len, 0);
	ttrpc_sync_client_free(c);

	/* TLS over TCP, by address and by name */
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", (unsigned)port);
	assert_int_equal(
	    ttrpc_sync_client_connect(addr, t.client, "localhost", 5 * NSEC_PER_SEC, &c), 0);
	assert_int_equal(ttrpc_sync_client_call(c, SVC, "Echo", "tls", 3, 0, &out, &out_len, &msg),
			 0);
	assert_int_equal(out_len, 3);
	assert_memory_equal(out, "tls", 3);
	free(out);
	out = NULL;
	ttrpc_sync_client_free(c);
	snprintf(addr, sizeof(addr), "localhost:%u", (unsigned)port);
	assert_int_equal(
	    ttrpc_sync_client_connect(addr, t.client, "127.0.0.1", 5 * NSEC_PER_SEC, &c), 0);
	ttrpc_sync_client_free(c);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", (unsigned)port);
	assert_true(
	    ttrpc_sync_client_connect(addr, t.client, "other.example", 5 * NSEC_PER_SEC, &c) < 0);
	assert_int_equal(ttrpc_sync_client_connect("127.0.0.1", NULL, NULL, 0, &c), -EINVAL);

	/* Stop the server thread through the server itself. */
	assert_int_equal(ttrpc_sync_client_connect(path, NULL, NULL, 0, &c), 0);
	assert_int_equal(ttrpc_sync_client_call(c, SVC, "Quit", NULL, 0, 0, NULL, NULL, NULL), 0);
	assert_int_equal(pthread_join(st.thread, NULL), 0);
	ttrpc_sync_client_free(c);
	assert_int_equal(rm_rf(dir), 0);
	tls_done(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_golden, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stream_ids, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_oversize, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_oversize_first, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_data_and_unknown_frames, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_close_cancels, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_server_free_cancels, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_metadata, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_listen_unix, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_conn_flow, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_conn_free_in_callback, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_client_server, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_client_ok_encodings, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_client_deadline, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_client_close, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tls_async, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tls_handshake_timeout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sync_client, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

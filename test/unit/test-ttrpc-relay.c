/* Unit tests of the ttRPC relay with raw frames over socket pairs: id mapping across downstream
 * connections, the rewrite hook, upstream loss and reconnection, queueing while connecting,
 * deadlines, stream-id rules, oversized and large frames, and the Unix and TLS listeners. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cmocka.h>

#include "ttrpc/ttrpc.h"

#define MAX_LEN (4194304u)

/* ---- a raw peer: a non-blocking socket whose input is collected into a buffer ---- */

struct peer {
	int fd;
	SSL *ssl; /* optional, client side of a TLS connection */
	bool eof;
	bool no_read; /* simulate a peer that stops reading */
	uint8_t *buf;
	size_t start, len, cap; /* unread input is buf[start, len) */
};

struct frame {
	struct ttrpc_header h;
	uint8_t *data;
};

static struct peer *peers[16];

static void peer_register(struct peer *p)
{
	for (size_t i = 0; i < ELEMENTSOF(peers); i++)
		if (!peers[i]) {
			peers[i] = p;
			return;
		}
	fail();
}

static void peer_init(struct peer *p, int fd)
{
	memset(p, 0, sizeof(*p));
	p->fd = fd;
	assert_int_equal(fd_set_nonblock(fd, true), 0);
	peer_register(p);
}

static void peer_close(struct peer *p)
{
	for (size_t i = 0; i < ELEMENTSOF(peers); i++)
		if (peers[i] == p)
			peers[i] = NULL;
	SSL_free(p->ssl);
	p->ssl = NULL;
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	free(p->buf);
	p->buf = NULL;
	p->start = p->len = p->cap = 0;
}

static void peer_fill(struct peer *p)
{
	while (!p->eof && !p->no_read && p->fd >= 0) {
		if (p->start > 0 && p->start >= p->len / 2) {
			memmove(p->buf, p->buf + p->start, p->len - p->start);
			p->len -= p->start;
			p->start = 0;
		}
		if (p->cap - p->len < 65536) {
			p->cap = p->cap ? p->cap * 2 : 1 << 20;
			p->buf = realloc(p->buf, p->cap);
			assert_non_null(p->buf);
		}
		ssize_t n;
		if (p->ssl) {
			n = SSL_read(p->ssl, p->buf + p->len, (int)(p->cap - p->len));
			if (n <= 0) {
				int e = SSL_get_error(p->ssl, (int)n);
				if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
					return;
				p->eof = true;
				ERR_clear_error();
				return;
			}
		} else {
			n = recv(p->fd, p->buf + p->len, p->cap - p->len, 0);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				return;
			if (n <= 0) {
				p->eof = true;
				return;
			}
		}
		p->len += (size_t)n;
	}
}

struct ctx {
	struct loop *l;
	struct ttrpc_relay *r;
	bool auto_connect;
	int n_connect;
	int64_t earliest;
	struct peer agent;
	int n_upstream_closed;
	int n_rewrite;
	char tmpdir[64];
	struct peer clients[8];
	size_t n_clients;
};

/* One loop iteration, then collect whatever the relay wrote to any test peer (so that the relay
 * never blocks on a peer the test is not reading yet). */
static void pump(struct ctx *c)
{
	assert_true(loop_run_once(c->l, NSEC_PER_MSEC) >= 0);
	for (size_t i = 0; i < ELEMENTSOF(peers); i++)
		if (peers[i])
			peer_fill(peers[i]);
}

/* Bounded by iterations; each waits at most 1 ms for the loop. */
#define PUMP_UNTIL(c, cond)                                   \
	do {                                                  \
		for (int _i = 0; _i < 20000 && !(cond); _i++) \
			pump(c);                              \
		assert_true(cond);                            \
	} while (0)

/* Drive the loop until it has nothing left to do. */
static void settle(struct ctx *c)
{
	for (int i = 0; i < 30; i++)
		pump(c);
}

static bool peer_frame_ready(const struct peer *p)
{
	struct ttrpc_header h;
	if (p->len - p->start < TTRPC_HEADER_SIZE)
		return false;
	ttrpc_header_decode(p->buf + p->start, &h);
	return p->len - p->start >= TTRPC_HEADER_SIZE + (size_t)h.length;
}

static void peer_read(struct ctx *c, struct peer *p, struct frame *f)
{
	PUMP_UNTIL(c, peer_frame_ready(p) || p->eof);
	assert_true(peer_frame_ready(p));
	ttrpc_header_decode(p->buf + p->start, &f->h);
	f->data = malloc(f->h.length + 1);
	assert_non_null(f->data);
	memcpy(f->data, p->buf + p->start + TTRPC_HEADER_SIZE, f->h.length);
	f->data[f->h.length] = 0;
	p->start += TTRPC_HEADER_SIZE + f->h.length;
}

static void frame_done(struct frame *f)
{
	free(f->data);
	f->data = NULL;
}

/* Write until done or until max_stalls consecutive loop iterations made no progress; returns
 * the bytes written. */
static size_t peer_write_some(struct ctx *c, struct peer *p, const void *data, size_t len,
			      int max_stalls)
{
	const uint8_t *d = data;
	size_t done = 0;
	for (int stalls = 0; done < len && stalls < max_stalls;) {
		ssize_t n;
		if (p->ssl) {
			n = SSL_write(p->ssl, d + done, (int)MIN(len - done, (size_t)INT32_MAX));
			if (n <= 0) {
				int e = SSL_get_error(p->ssl, (int)n);
				assert_true(e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ);
				n = 0;
			}
		} else {
			n = send(p->fd, d + done, len - done, MSG_NOSIGNAL);
			if (n < 0) {
				assert_int_equal(errno, EAGAIN);
				n = 0;
			}
		}
		done += (size_t)n;
		stalls = n > 0 ? 0 : stalls + 1;
		if (done < len)
			pump(c);
	}
	return done;
}

static void peer_write(struct ctx *c, struct peer *p, const void *data, size_t len)
{
	assert_int_equal(peer_write_some(c, p, data, len, 20000), len);
}

static void peer_send(struct ctx *c, struct peer *p, uint32_t id, uint8_t type, uint8_t flags,
		      const void *data, size_t len)
{
	uint8_t hdr[TTRPC_HEADER_SIZE];
	struct ttrpc_header h = {
	    .length = (uint32_t)len, .stream_id = id, .type = type, .flags = flags};
	ttrpc_header_encode(&h, hdr);
	peer_write(c, p, hdr, sizeof(hdr));
	peer_write(c, p, data, len);
}

/* ---- a tiny protobuf encoder/decoder for the envelopes, independent of the codec ---- */

static void put_varint(struct buf *b, uint64_t v)
{
	uint8_t tmp[10];
	size_t n = 0;
	while (v >= 0x80) {
		tmp[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	tmp[n++] = (uint8_t)v;
	assert_int_equal(buf_append(b, tmp, n, 0), 0);
}

static void put_bytes(struct buf *b, unsigned field, const void *d, size_t n)
{
	put_varint(b, field << 3 | 2);
	put_varint(b, n);
	assert_int_equal(buf_append(b, d, n, 0), 0);
}

/* md: "k", "v", ..., NULL. Metadata entries come last, as the codec emits them. */
static void build_request(struct buf *b, const char *service, const char *method,
			  const void *payload, size_t plen, int64_t timeout_nano,
			  const char *const *md)
{
	b->len = 0;
	put_bytes(b, 1, service, strlen(service));
	put_bytes(b, 2, method, strlen(method));
	if (plen > 0)
		put_bytes(b, 3, payload, plen);
	if (timeout_nano > 0) {
		put_varint(b, 4 << 3);
		put_varint(b, (uint64_t)timeout_nano);
	}
	for (; md && md[0]; md += 2) {
		struct buf kv = {};
		put_bytes(&kv, 1, md[0], strlen(md[0]));
		put_bytes(&kv, 2, md[1], strlen(md[1]));
		put_bytes(b, 5, kv.data, kv.len);
		buf_done(&kv);
	}
}

static void send_request(struct ctx *c, struct peer *p, uint32_t id, const char *method,
			 const char *payload, int64_t timeout_nano, struct buf *ret_frame_data)
{
	struct buf b = {};
	static const char *const md[] = {"trace", "abc", "k", "v", NULL};
	build_request(&b, "grpc.AgentService", method, payload, strlen(payload), timeout_nano, md);
	peer_send(c, p, id, TTRPC_TYPE_REQUEST, 0, b.data, b.len);
	if (ret_frame_data) {
		buf_done(ret_frame_data);
		*ret_frame_data = b;
	} else {
		buf_done(&b);
	}
}

static uint64_t get_varint(const uint8_t **p, const uint8_t *end)
{
	uint64_t v = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		assert_true(*p < end);
		uint8_t byte = *(*p)++;
		v |= (uint64_t)(byte & 0x7f) << shift;
		if (!(byte & 0x80))
			return v;
	}
	fail();
	return 0;
}

struct req {
	char service[128];
	char method[128];
	const uint8_t *payload;
	size_t plen;
	int64_t timeout_nano;
	const uint8_t *md; /* from the first metadata field to the end */
	size_t md_len;
};

static void parse_request(const uint8_t *d, size_t n, struct req *r)
{
	const uint8_t *p = d, *end = d + n;
	memset(r, 0, sizeof(*r));
	while (p < end) {
		const uint8_t *field_start = p;
		uint64_t tag = get_varint(&p, end);
		if ((tag & 7) == 0) {
			uint64_t v = get_varint(&p, end);
			if (tag >> 3 == 4)
				r->timeout_nano = (int64_t)v;
			continue;
		}
		assert_int_equal(tag & 7, 2);
		uint64_t len = get_varint(&p, end);
		assert_true(len <= (uint64_t)(end - p));
		switch (tag >> 3) {
		case 1:
			assert_true(len < sizeof(r->service));
			memcpy(r->service, p, len);
			break;
		case 2:
			assert_true(len < sizeof(r->method));
			memcpy(r->method, p, len);
			break;
		case 3:
			r->payload = p;
			r->plen = len;
			break;
		case 5:
			if (!r->md)
				r->md = field_start;
			break;
		}
		p += len;
	}
	if (r->md)
		r->md_len = (size_t)(end - r->md);
}

struct resp {
	int code;
	char message[512];
	char payload[256];
};

static void parse_response(const uint8_t *d, size_t n, struct resp *r)
{
	const uint8_t *p = d, *end = d + n;
	memset(r, 0, sizeof(*r));
	while (p < end) {
		uint64_t tag = get_varint(&p, end);
		assert_int_equal(tag & 7, 2);
		uint64_t len = get_varint(&p, end);
		assert_true(len <= (uint64_t)(end - p));
		if (tag >> 3 == 1) {
			const uint8_t *q = p, *qend = p + len;
			while (q < qend) {
				uint64_t t = get_varint(&q, qend);
				if (t == (1 << 3)) {
					r->code = (int)get_varint(&q, qend);
				} else {
					assert_int_equal(t, 2 << 3 | 2);
					uint64_t ml = get_varint(&q, qend);
					assert_true(ml < sizeof(r->message));
					memcpy(r->message, q, ml);
					q += ml;
				}
			}
		} else if (tag >> 3 == 2) {
			assert_true(len < sizeof(r->payload));
			memcpy(r->payload, p, len);
		}
		p += len;
	}
}

/* Read one frame from p: a Response on id, parsed. */
static void expect_response(struct ctx *c, struct peer *p, uint32_t id, struct resp *ret)
{
	struct frame f;
	peer_read(c, p, &f);
	assert_int_equal(f.h.type, TTRPC_TYPE_RESPONSE);
	assert_int_equal(f.h.stream_id, id);
	parse_response(f.data, f.h.length, ret);
	frame_done(&f);
}

static void expect_error(struct ctx *c, struct peer *p, uint32_t id, int code, const char *message)
{
	struct resp r;
	expect_response(c, p, id, &r);
	assert_int_equal(r.code, code);
	if (message)
		assert_string_equal(r.message, message);
}

/* The agent answers with payload "r-<request payload>". */
static void agent_answer(struct ctx *c, uint32_t up_id, const char *req_payload)
{
	char payload[256];
	struct buf b = {};
	snprintf(payload, sizeof(payload), "r-%s", req_payload);
	put_bytes(&b, 2, payload, strlen(payload));
	peer_send(c, &c->agent, up_id, TTRPC_TYPE_RESPONSE, 0, b.data, b.len);
	buf_done(&b);
}

static void expect_answer(struct ctx *c, struct peer *p, uint32_t id, const char *req_payload)
{
	struct resp r;
	char want[256];
	expect_response(c, p, id, &r);
	assert_int_equal(r.code, 0);
	snprintf(want, sizeof(want), "r-%s", req_payload);
	assert_string_equal(r.payload, want);
}

/* Read a request at the agent; returns its upstream id and copies its payload. */
static uint32_t agent_read_request(struct ctx *c, char *payload, size_t size, struct frame *ret)
{
	struct frame f;
	struct req rq;
	peer_read(c, &c->agent, &f);
	assert_int_equal(f.h.type, TTRPC_TYPE_REQUEST);
	assert_int_equal(f.h.stream_id & 1, 1);
	parse_request(f.data, f.h.length, &rq);
	assert_true(rq.plen < size);
	memcpy(payload, rq.payload, rq.plen);
	payload[rq.plen] = 0;
	uint32_t id = f.h.stream_id;
	if (ret)
		*ret = f;
	else
		frame_done(&f);
	return id;
}

static bool peer_idle(struct ctx *c, struct peer *p)
{
	settle(c);
	return p->len == p->start;
}

/* ---- fixture ---- */

static void connect_agent(struct ctx *c)
{
	int sp[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	assert_int_equal(ttrpc_relay_set_upstream(c->r, sp[0], NULL), 0);
	peer_init(&c->agent, sp[1]);
}

static void hook_connect(struct ttrpc_relay *r, int64_t earliest_deadline_ns, void *userdata)
{
	struct ctx *c = userdata;
	c->n_connect++;
	c->earliest = earliest_deadline_ns;
	if (c->auto_connect)
		connect_agent(c);
}

static void hook_closed(struct ttrpc_relay *r, int error, void *userdata)
{
	struct ctx *c = userdata;
	c->n_upstream_closed++;
}

static int hook_rewrite(const struct ttrpc_request_view *req, struct buf *new_payload,
			char **ret_message, void *userdata)
{
	struct ctx *c = userdata;
	c->n_rewrite++;
	if (req->method.len == 13 && memcmp(req->method.data, "CreateSandbox", 13) == 0) {
		assert_int_equal(buf_append(new_payload, "rewritten", 9, 0), 0);
		return 1;
	}
	if (req->method.len == 4 && memcmp(req->method.data, "Deny", 4) == 0) {
		*ret_message = strdup("denied by policy");
		return -EPERM;
	}
	return 0;
}

static int setup_common(void **state, bool with_rewrite)
{
	struct ctx *c = calloc(1, sizeof(*c));
	assert_non_null(c);
	memset(peers, 0, sizeof(peers));
	c->agent.fd = -1;
	c->auto_connect = true;
	assert_int_equal(loop_new(&c->l), 0);
	struct ttrpc_relay_ops ops = {
	    .connect_upstream = hook_connect,
	    .upstream_closed = hook_closed,
	    .rewrite = with_rewrite ? hook_rewrite : NULL,
	};
	assert_int_equal(ttrpc_relay_new(c->l, &ops, c, &c->r), 0);
	snprintf(c->tmpdir, sizeof(c->tmpdir), "/tmp/test-relay-XXXXXX");
	assert_non_null(mkdtemp(c->tmpdir));
	*state = c;
	return 0;
}

static int setup(void **state)
{
	return setup_common(state, false);
}

static int setup_rewrite(void **state)
{
	return setup_common(state, true);
}

static int teardown(void **state)
{
	struct ctx *c = *state;
	ttrpc_relay_free(c->r);
	for (size_t i = 0; i < ELEMENTSOF(peers); i++)
		if (peers[i])
			peer_close(peers[i]);
	loop_free(c->l);
	rm_rf(c->tmpdir);
	free(c);
	return 0;
}

static struct peer *new_peer(struct ctx *c, int fd)
{
	assert_true(c->n_clients < ELEMENTSOF(c->clients));
	struct peer *p = &c->clients[c->n_clients++];
	peer_init(p, fd);
	return p;
}

static struct peer *add_client(struct ctx *c)
{
	int sp[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	assert_int_equal(ttrpc_relay_add_downstream(c->r, sp[0], NULL), 0);
	return new_peer(c, sp[1]);
}

/* ---- tests ---- */

static void test_overlapping_ids(void **state)
{
	struct ctx *c = *state;
	struct peer *a = add_client(c), *b = add_client(c);
	struct buf sent[4] = {};
	const char *payloads[4] = {"a1", "b1", "a3", "b3"};
	uint32_t up_ids[4] = {};

	assert_int_equal(ttrpc_relay_n_downstream(c->r), 2);
	send_request(c, a, 1, "ExecProcess", "a1", 0, &sent[0]);
	send_request(c, b, 1, "ExecProcess", "b1", 0, &sent[1]);
	send_request(c, a, 3, "ExecProcess", "a3", 0, &sent[2]);
	send_request(c, b, 3, "ExecProcess", "b3", 0, &sent[3]);

	uint32_t seen = 0;
	for (int i = 0; i < 4; i++) {
		struct frame f;
		char payload[64];
		uint32_t id = agent_read_request(c, payload, sizeof(payload), &f);
		int k = -1;
		for (int j = 0; j < 4; j++)
			if (strcmp(payload, payloads[j]) == 0)
				k = j;
		assert_true(k >= 0);
		/* Relayed byte for byte; only the stream id differs. */
		assert_int_equal(f.h.length, sent[k].len);
		assert_memory_equal(f.data, sent[k].data, sent[k].len);
		assert_int_equal(f.h.flags, 0);
		assert_true(id == 1 || id == 3 || id == 5 || id == 7);
		assert_false(seen & (1u << id));
		seen |= 1u << id;
		up_ids[k] = id;
		frame_done(&f);
	}
	assert_int_equal(c->n_connect, 1);

	/* Answered out of order. */
	for (int k = 3; k >= 0; k--)
		agent_answer(c, up_ids[k], payloads[k]);
	expect_answer(c, b, 3, "b3");
	expect_answer(c, b, 1, "b1");
	expect_answer(c, a, 3, "a3");
	expect_answer(c, a, 1, "a1");
	assert_true(peer_idle(c, a));
	assert_true(peer_idle(c, b));
	for (int k = 0; k < 4; k++)
		buf_done(&sent[k]);
}

static void test_response_bytes_verbatim(void **state)
{
	struct ctx *c = *state;
	struct peer *a = add_client(c);
	/* Rust-style OK (empty status present) plus an unknown field: passed through as is. */
	static const uint8_t answer[] = {0x0a, 0x00, 0x12, 0x02, 0x08, 0x01, 0x78, 0x05};
	char payload[16];

	send_request(c, a, 7, "Check", "x", 0, NULL);
	uint32_t id = agent_read_request(c, payload, sizeof(payload), NULL);
	peer_send(c, &c->agent, id, TTRPC_TYPE_RESPONSE, 0, answer, sizeof(answer));
	struct frame f;
	peer_read(c, a, &f);
	assert_int_equal(f.h.stream_id, 7);
	assert_int_equal(f.h.type, TTRPC_TYPE_RESPONSE);
	assert_int_equal(f.h.length, sizeof(answer));
	assert_memory_equal(f.data, answer, sizeof(answer));
	frame_done(&f);
	/* A second answer to the same id is dropped: the mapping ended with the first. */
	peer_send(c, &c->agent, id, TTRPC_TYPE_RESPONSE, 0, answer, sizeof(answer));
	/* So is an answer to an id never used. */
	peer_send(c, &c->agent, 99, TTRPC_TYPE_RESPONSE, 0, answer, sizeof(answer));
	assert_true(peer_idle(c, a));
}

static void test_rewrite(void **state)
{
	struct ctx *c = *state;
	struct peer *a = add_client(c);
	struct buf sent = {}, other = {};
	struct frame f;
	struct req orig, got;
	char payload[64];

	/* Upstream handed over before any request (as the adaptor does at StartVM), so nothing is
	 * queued and the timeout must pass unchanged. */
	connect_agent(c);
	send_request(c, a, 1, "CreateSandbox", "original", 300 * NSEC_PER_SEC, &sent);
	uint32_t id1 = agent_read_request(c, payload, sizeof(payload), &f);
	assert_string_equal(payload, "rewritten");
	parse_request(sent.data, sent.len, &orig);
	parse_request(f.data, f.h.length, &got);
	assert_string_equal(got.service, "grpc.AgentService");
	assert_string_equal(got.method, "CreateSandbox");
	assert_int_equal(got.timeout_nano, 300 * NSEC_PER_SEC);
	assert_non_null(got.md);
	assert_int_equal(got.md_len, orig.md_len);
	assert_memory_equal(got.md, orig.md, orig.md_len);
	frame_done(&f);

	/* Other methods: byte-identical. */
	send_request(c, a, 3, "StartContainer", "p", 60 * NSEC_PER_SEC, &other);
	uint32_t id3 = agent_read_request(c, payload, sizeof(payload), &f);
	assert_int_equal(f.h.length, other.len);
	assert_memory_equal(f.data, other.data, other.len);
	frame_done(&f);

	/* Refused by the hook: answered locally, nothing goes upstream. */
	send_request(c, a, 5, "Deny", "q", 0, NULL);
	expect_error(c, a, 5, TTRPC_INVALID_ARGUMENT, "denied by policy");
	/* Undecodable with a hook installed: refused too. */
	static const uint8_t garbage[] = {0x0a, 0xff};
	peer_send(c, a, 7, TTRPC_TYPE_REQUEST, 0, garbage, sizeof(garbage));
	struct resp r;
	expect_response(c, a, 7, &r);
	assert_int_equal(r.code, TTRPC_INVALID_ARGUMENT);
	assert_true(str_startswith(r.message, "unmarshal request error"));

	send_request(c, a, 9, "StartContainer", "after", 0, NULL);
	uint32_t id9 = agent_read_request(c, payload, sizeof(payload), NULL);
	assert_string_equal(payload, "after");
	assert_int_equal(c->n_rewrite, 4);

	agent_answer(c, id3, "p");
	agent_answer(c, id1, "rewritten");
	agent_answer(c, id9, "after");
	expect_answer(c, a, 3, "p");
	expect_answer(c, a, 1, "rewritten");
	expect_answer(c, a, 9, "after");
	buf_done(&sent);
	buf_done(&other);
}

static void test_upstream_close(void **state)
{
	struct ctx *c = *state;
	struct peer *a = add_client(c), *b = add_client(c);
	struct frame f;
	struct resp r;
	struct buf sent = {};
	char payload[64];

	send_request(c, a, 1, "WaitProcess", "a1", 0, NULL);
	agent_read_request(c, payload, sizeof(payload), NULL);
	send_request(c, b, 1, "WaitProcess", "b1", 0, NULL);
	agent_read_request(c, payload, sizeof(payload), NULL);
	assert_true(ttrpc_relay_has_upstream(c->r));

	peer_close(&c->agent);
	expect_response(c, a, 1, &r);
	assert_int_equal(r.code, TTRPC_UNAVAILABLE);
	assert_true(str_startswith(r.message, "agent connection closed"));
	expect_response(c, b, 1, &r);
	assert_int_equal(r.code, TTRPC_UNAVAILABLE);
	assert_int_equal(c->n_upstream_closed, 1);
	assert_false(ttrpc_relay_has_upstream(c->r));
	assert_int_equal(c->n_connect, 1);

	/* The next call brings a new upstream, whose ids start again at 1. */
	send_request(c, a, 3, "ExecProcess", "a3", 0, &sent);
	peer_read(c, &c->agent, &f);
	assert_int_equal(c->n_connect, 2);
	assert_int_equal(f.h.stream_id, 1);
	assert_int_equal(f.h.length, sent.len);
	assert_memory_equal(f.data, sent.data, sent.len);
	frame_done(&f);
	agent_answer(c, 1, "a3");
	expect_answer(c, a, 3, "a3");
	buf_done(&sent);
}

static void test_queue_while_connecting(void **state)
{
	struct ctx *c = *state;
	struct peer *a = add_client(c), *b = add_client(c);
	struct buf sent[3] = {};
	const char *payloads[3] = {"a1", "b1", "a3"};
	char payload[64];

	c->auto_connect = false;
	send_request(c, a, 1, "CreateSandbox", "a1", 0, &sent[0]);
	settle(c);
	send_request(c, b, 1, "CreateSandbox", "b1", 0, &sent[1]);
	settle(c);
	send_request(c, a, 3, "CreateSandbox", "a3", 0, &sent[2]);
	settle(c);
	assert_int_equal(c->n_connect, 1); /* once, not once per request */
	assert_int_equal(c->earliest, 0);
	assert_false(ttrpc_relay_has_upstream(c->r));
	assert_true(peer_idle(c, a));
	assert_true(peer_idle(c, b));

	connect_agent(c);
	for (int k = 0; k < 3; k++) {
		struct frame f;
		uint32_t id = agent_read_request(c, payload, sizeof(payload), &f);
		assert_int_equal(id, 2 * k + 1); /* in arrival order */
		assert_string_equal(payload, payloads[k]);
		assert_int_equal(f.h.length, sent[k].len);
		assert_memory_equal(f.data, sent[k].data, sent[k].len);
		frame_done(&f);
	}
	agent_answer(c, 3, "b1");
	agent_answer(c, 5, "a3");
	agent_answer(c, 1, "a1");
	expect_answer(c, b, 1, "b1");
	expect_answer(c, a, 3, "a3");
	expect_answer(c, a, 1, "a1");

	/* Lose the upstream; with room for two queued requests the third is refused. */
	peer_close(&c->agent);
	PUMP_UNTIL(c, c->n_upstream_closed == 1);
	ttrpc_relay_set_queue_limit(c->r, 2);
	send_request(c, a, 5, "ExecProcess", "a5", 0, NULL);
	send_request(c, a, 7, "ExecProcess", "a7", 0, NULL);
	send_request(c, a, 9, "ExecProcess", "a9", 0, NULL);
	struct resp r;
	expect_response(c, a, 9, &r);
	assert_int_equal(r.code, TTRPC_RESOURCE_EXHAUSTED);
	assert_int_equal(c->n_connect, 2);

	ttrpc_relay_upstream_failed(c->r, "dial 192.0.2.1:15150: Connection timed out");
	expect_error(c, a, 5, TTRPC_UNAVAILABLE, "dial 192.0.2.1:15150: Connection timed out");
	expect_error(c, a, 7, TTRPC_UNAVAILABLE, "dial 192.0.2.1:15150: Connection timed out");

	/* After a failure the next request asks again. */
	send_request(c, b, 3, "ExecProcess", "b3", 0, NULL);
	settle(c);
	assert_int_equal(c->n_connect, 3);
	connect_agent(c);
	uint32_t id = agent_read_request(c, payload, sizeof(payload), NULL);
	assert_string_equal(payload, "b3");
	agent_answer(c, id, "b3");
	expect_answer(c, b, 3, "b3");
	for (int k = 0; k < 3; k++)
		buf_done(&sent[k]);
}

static void test_connect_synchronously(void **state)
{
	struct ctx *c = *state;
	struct peer *a = add_client(c);
	char payload[64];

	/* The hook may hand over the upstream from inside its own call. */
	send_request(c, a, 1, "Check", "x", 0, NULL);
	uint32_t id = agent_read_request(c, payload, sizeof(payload), NULL);
	assert_int_equal(id, 1);
	agent_answer(c, id, "x");
	expect_answer(c, a, 1, "x");
}

static void test_queue_deadline(void **state)
{
	struct ctx *c = *state;
	struct peer *a = add_client(c);
	struct buf sent3 = {}, sent5 = {};
	struct frame f;
	struct req orig, got;
	char payload[64];

	c->auto_connect = false;
	int64_t before = now_ns();
	send_request(c, a, 1, "CreateSandbox", "short", 20 * NSEC_PER_MSEC, NULL);
	send_request(c, a, 3, "CreateSandbox", "none", 0, &sent3);
	send_request(c, a, 5, "CreateSandbox", "long", 600 * NSEC_PER_SEC, &sent5);
	PUMP_UNTIL(c, c->n_connect == 1);
	assert_true(c->earliest >= before + 20 * NSEC_PER_MSEC);
	assert_true(c->earliest <= now_ns() + 20 * NSEC_PER_MSEC);

	expect_error(c, a, 1, TTRPC_DEADLINE_EXCEEDED, "context deadline exceeded");
	assert_true(now_ns() >= before + 20 * NSEC_PER_MSEC);

	connect_agent(c);
	agent_read_request(c, payload, sizeof(payload), &f);
	assert_string_equal(payload, "none");
	assert_int_equal(f.h.length, sent3.len);
	assert_memory_equal(f.data, sent3.data, sent3.len);
	frame_done(&f);

	/* Having waited, the long one carries what remains of its deadline, never more. */
	agent_read_request(c, payload, sizeof(payload), &f);
	assert_string_equal(payload, "long");
	parse_request(sent5.data, sent5.len, &orig);
	parse_request(f.data, f.h.length, &got);
	assert_true(got.timeout_nano > 0);
	assert_true(got.timeout_nano < 600 * NSEC_PER_SEC);
	assert_string_equal(got.service, orig.service);
	assert_string_equal(got.method, orig.method);
	assert_int_equal(got.plen, orig.plen);
	assert_memory_equal(got.payload, orig.payload, orig.plen);
	assert_int_equal(got.md_len, orig.md_len);
	assert_memory_equal(got.md, orig.md, orig.md_len);
	frame_done(&f);
	assert_true(peer_idle(c, a));
	buf_done(&sent3);
	buf_done(&sent5);
}

static void test_downstream_disconnect(void **state)
{
	struct ctx *c = *state;
	struct peer *a = add_client(c), *b = add_client(c);
	char payload[64];

	send_request(c, a, 1, "WaitProcess", "a1", 0, NULL);
	uint32_t ida = agent_read_request(c, payload, sizeof(payload), NULL);
	send_request(c, b, 1, "WaitProcess", "b1", 0, NULL);
	uint32_t idb = agent_read_request(c, payload, sizeof(payload), NULL);

	peer_close(a);
	PUMP_UNTIL(c, ttrpc_relay_n_downstream(c->r) == 1);
	/* A new connection may reuse the closed one's slot: the orphan must not reach it. */
	struct peer *a2 = add_client(c);
	agent_answer(c, ida, "a1");
	agent_answer(c, idb, "b1");
	expect_answer(c, b, 1, "b1");
	assert_true(peer_idle(c, b));
	assert_true(peer_idle(c, a2));

	send_request(c, a2, 1, "ExecProcess", "c1", 0, NULL);
	uint32_t idc = agent_read_request(c, payload, sizeof(payload), NULL);
	assert_true(idc > idb);
	agent_answer(c, idc, "c1");
	expect_answer(c, a2, 1, "c1");
	assert_true(ttrpc_relay_has_upstream(c->r));
	assert_int_equal(c->n_connect, 1);
}

static void test_stream_id_rules(void **state)
{
	struct ctx *c = *state;
	struct peer *a = add_client(c);
	char payload[64];

	send_request(c, a, 2, "ExecProcess", "even", 0, NULL);
	expect_error(c, a, 2, TTRPC_INVALID_ARGUMENT,
		     "StreamID must be odd for client initiated streams");
	assert_int_equal(c->n_connect, 0);

	send_request(c, a, 5, "ExecProcess", "five", 0, NULL);
	uint32_t id5 = agent_read_request(c, payload, sizeof(payload), NULL);
	assert_string_equal(payload, "five");
	send_request(c, a, 3, "ExecProcess", "three", 0, NULL);
	expect_error(c, a, 3, TTRPC_INVALID_ARGUMENT,
		     "StreamID cannot be re-used and must increment");
	send_request(c, a, 5, "ExecProcess", "five-again", 0, NULL);
	expect_error(c, a, 5, TTRPC_INVALID_ARGUMENT,
		     "StreamID cannot be re-used and must increment");
	peer_send(c, a, 9, TTRPC_TYPE_DATA, 0, "x", 1);
	expect_error(c, a, 9, TTRPC_INVALID_ARGUMENT, "StreamID is no longer active");
	/* Unknown types and Responses from a client are ignored. */
	peer_send(c, a, 11, 7, 0, "x", 1);
	peer_send(c, a, 11, TTRPC_TYPE_RESPONSE, 0, "", 0);

	send_request(c, a, 7, "ExecProcess", "seven", 0, NULL);
	uint32_t id7 = agent_read_request(c, payload, sizeof(payload), NULL);
	assert_string_equal(payload, "seven");
	assert_true(peer_idle(c, &c->agent));
	agent_answer(c, id7, "seven");
	agent_answer(c, id5, "five");
	expect_answer(c, a, 7, "seven");
	expect_answer(c, a, 5, "five");
}

static void test_oversize(void **state)
{
	struct ctx *c = *state;
	struct peer *a = add_client(c);
	char payload[64];

	uint8_t hdr[TTRPC_HEADER_SIZE];
	struct ttrpc_header h = {.length = MAX_LEN + 1, .stream_id = 3, .type = 1};
	ttrpc_header_encode(&h, hdr);
	uint8_t *junk = calloc(1, MAX_LEN + 1);
	assert_non_null(junk);
	peer_write(c, a, hdr, sizeof(hdr));
	peer_write(c, a, junk, MAX_LEN + 1);
	free(junk);
	expect_error(c, a, 3, TTRPC_RESOURCE_EXHAUSTED,
		     "message length 4194305 exceed maximum message size of 4194304");

	/* The connection stays in step and keeps working. */
	send_request(c, a, 5, "ExecProcess", "five", 0, NULL);
	uint32_t id = agent_read_request(c, payload, sizeof(payload), NULL);
	assert_int_equal(id, 1); /* the oversized frame never went upstream */
	agent_answer(c, id, "five");
	expect_answer(c, a, 5, "five");
}

/* Large payloads from two downstreams interleaved, echoed back by the agent. */
static void test_large_payloads(void **state)
{
	struct ctx *c = *state;
	struct peer *cl[2] = {add_client(c), add_client(c)};
	const size_t size = 1u << 20;
	enum { N = 4 };
	uint8_t *big = malloc(size);
	assert_non_null(big);

	for (int i = 0; i < N; i++)
		for (int k = 0; k < 2; k++) {
			struct buf b = {};
			memset(big, 'a' + k * N + i, size);
			build_request(&b, "grpc.AgentService", "CopyFile", big, size, 0, NULL);
			peer_send(c, cl[k], (uint32_t)(2 * i + 1), TTRPC_TYPE_REQUEST, 0, b.data,
				  b.len);
			buf_done(&b);
		}
	for (int n = 0; n < 2 * N; n++) {
		struct frame f;
		struct req rq;
		struct buf b = {};
		peer_read(c, &c->agent, &f);
		parse_request(f.data, f.h.length, &rq);
		assert_int_equal(rq.plen, size);
		put_bytes(&b, 2, rq.payload, rq.plen);
		peer_send(c, &c->agent, f.h.stream_id, TTRPC_TYPE_RESPONSE, 0, b.data, b.len);
		buf_done(&b);
		frame_done(&f);
	}
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < N; i++) {
			struct frame f;
			peer_read(c, cl[k], &f);
			assert_int_equal(f.h.type, TTRPC_TYPE_RESPONSE);
			assert_int_equal(f.h.stream_id, 2 * i + 1);
			/* field 2 tag, 3-byte length, then the payload */
			assert_int_equal(f.h.length, size + 4);
			memset(big, 'a' + k * N + i, size);
			assert_memory_equal(f.data + 4, big, size);
			frame_done(&f);
		}
	free(big);
}

/* Frames of n requests with 1 MiB payloads (fill byte 'A' + i) on ids 1, 3, ... */
static void build_big_requests(struct buf *out, int n, size_t size)
{
	uint8_t *big = malloc(size);
	assert_non_null(big);
	for (int i = 0; i < n; i++) {
		struct buf b = {};
		uint8_t hdr[TTRPC_HEADER_SIZE];
		memset(big, 'A' + i, size);
		build_request(&b, "grpc.AgentService", "CopyFile", big, size, 0, NULL);
		struct ttrpc_header h = {.length = (uint32_t)b.len,
					 .stream_id = (uint32_t)(2 * i + 1),
					 .type = TTRPC_TYPE_REQUEST};
		ttrpc_header_encode(&h, hdr);
		assert_int_equal(buf_append(out, hdr, sizeof(hdr), 0), 0);
		assert_int_equal(buf_append(out, b.data, b.len, 0), 0);
		buf_done(&b);
	}
	free(big);
}

/* An agent that stops reading: once the relay holds more than the high watermark for it, the
 * relay stops reading its downstreams, so the client's writes stall instead of the relay
 * buffering without bound. Everything arrives once the agent reads again. */
static void test_flow_control_upstream(void **state)
{
	struct ctx *c = *state;
	struct peer *a = add_client(c);
	struct buf all = {};
	enum { N = 40 };
	const size_t size = 1u << 20;

	connect_agent(c);
	c->agent.no_read = true;
	build_big_requests(&all, N, size);
	size_t accepted = peer_write_some(c, a, all.data, all.len, 300);
	assert_true(accepted < all.len);
	/* What the relay took is bounded by its watermark plus socket buffers. */
	assert_true(accepted < 2 * TTRPC_CONN_HIGH_WATERMARK_BYTES + (8u << 20));

	c->agent.no_read = false;
	peer_write(c, a, all.data + accepted, all.len - accepted);
	for (int i = 0; i < N; i++) {
		struct frame f;
		struct req rq;
		peer_read(c, &c->agent, &f);
		assert_int_equal(f.h.stream_id, 2 * i + 1);
		parse_request(f.data, f.h.length, &rq);
		assert_int_equal(rq.plen, size);
		assert_int_equal(rq.payload[0], 'A' + i);
		assert_int_equal(rq.payload[size - 1], 'A' + i);
		frame_done(&f);
	}
	buf_done(&all);
}

/* A client that stops reading its answers: the relay stops reading the upstream once that
 * client's backlog passes the high watermark (head-of-line blocking, by design). */
static void test_flow_control_downstream(void **state)
{
	struct ctx *c = *state;
	struct peer *a = add_client(c);
	struct buf all = {};
	enum { N = 40 };
	const size_t size = 1u << 20;
	uint8_t *big = malloc(size);
	assert_non_null(big);

	connect_agent(c);
	for (int i = 0; i < N; i++) {
		char p[8];
		snprintf(p, sizeof(p), "%d", i);
		send_request(c, a, (uint32_t)(2 * i + 1), "ReadStdout", p, 0, NULL);
	}
	for (int i = 0; i < N; i++) {
		char payload[16];
		uint32_t id = agent_read_request(c, payload, sizeof(payload), NULL);
		assert_int_equal(id, 2 * i + 1);
		struct buf b = {};
		uint8_t hdr[TTRPC_HEADER_SIZE];
		memset(big, 'a' + i, size);
		put_bytes(&b, 2, big, size);
		struct ttrpc_header h = {
		    .length = (uint32_t)b.len, .stream_id = id, .type = TTRPC_TYPE_RESPONSE};
		ttrpc_header_encode(&h, hdr);
		assert_int_equal(buf_append(&all, hdr, sizeof(hdr), 0), 0);
		assert_int_equal(buf_append(&all, b.data, b.len, 0), 0);
		buf_done(&b);
	}
	a->no_read = true;
	size_t accepted = peer_write_some(c, &c->agent, all.data, all.len, 300);
	assert_true(accepted < all.len);
	assert_true(accepted < 2 * TTRPC_CONN_HIGH_WATERMARK_BYTES + (8u << 20));

	a->no_read = false;
	peer_write(c, &c->agent, all.data + accepted, all.len - accepted);
	for (int i = 0; i < N; i++) {
		struct frame f;
		peer_read(c, a, &f);
		assert_int_equal(f.h.stream_id, 2 * i + 1);
		assert_int_equal(f.h.length, size + 4);
		memset(big, 'a' + i, size);
		assert_memory_equal(f.data + 4, big, size);
		frame_done(&f);
	}
	free(big);
	buf_done(&all);
}

static void test_listen_unix(void **state)
{
	struct ctx *c = *state;
	char path[160], file[160];
	struct stat st;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char payload[64];

	snprintf(path, sizeof(path), "%s/pods/abc/agent.ttrpc", c->tmpdir);
	/* A stale socket from an earlier run. */
	snprintf(file, sizeof(file), "%s/pods/abc", c->tmpdir);
	assert_int_equal(mkdir_p(file, 0755), 0);
	assert_int_equal(str_copy(sa.sun_path, sizeof(sa.sun_path), path), 0);
	int stale = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(stale, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(stale);

	assert_int_equal(ttrpc_relay_listen_unix(c->r, path, 0600), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);

	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	struct peer *p = new_peer(c, fd);
	PUMP_UNTIL(c, ttrpc_relay_n_downstream(c->r) == 1);
	send_request(c, p, 1, "Check", "via-path", 0, NULL);
	uint32_t id = agent_read_request(c, payload, sizeof(payload), NULL);
	agent_answer(c, id, "via-path");
	expect_answer(c, p, 1, "via-path");

	/* Never removes something that is not a socket. */
	snprintf(file, sizeof(file), "%s/regular", c->tmpdir);
	assert_int_equal(write_file_atomic(file, "x", 1, 0644), 0);
	assert_int_equal(ttrpc_relay_listen_unix(c->r, file, 0600), -EEXIST);
	assert_int_equal(stat(file, &st), 0);
	assert_true(S_ISREG(st.st_mode));

	peer_close(p);
	PUMP_UNTIL(c, ttrpc_relay_n_downstream(c->r) == 0);
}

/* ---- TLS listener ---- */

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
	ASN1_INTEGER_set(X509_get_serialNumber(x), 12345);
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
	} else {
		add_ext(x, signer, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(x, signer, NID_key_usage, "critical,keyCertSign,digitalSignature");
	}
	assert_true(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
	return x;
}

struct dial_result {
	int calls;
	int error;
	int fd;
	SSL *ssl;
};

static void on_dial(struct ttrpc_dial *d, int error, const char *detail, int fd, SSL *ssl,
		    void *userdata)
{
	struct dial_result *res = userdata;
	res->calls++;
	res->error = error;
	res->fd = fd;
	res->ssl = ssl;
}

static void test_listen_tls(void **state)
{
	struct ctx *c = *state;
	EVP_PKEY *ca_key = EVP_EC_gen("P-256"), *key = EVP_EC_gen("P-256");
	X509 *ca = make_cert(ca_key, "relay-test-ca", NULL, NULL, NULL);
	X509 *cert = make_cert(key, "podvm-x", ca, ca_key, "DNS:podvm-x");
	SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	assert_int_equal(SSL_CTX_use_certificate(sctx, cert), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(sctx, key), 1);
	SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
	assert_int_equal(X509_STORE_add_cert(SSL_CTX_get_cert_store(cctx), ca), 1);

	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 16), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
	assert_int_equal(ttrpc_relay_listen_fd(c->r, lfd, sctx), 0);
	SSL_CTX_free(sctx); /* the relay keeps its own reference */

	struct dial_result res = {.fd = -1};
	struct ttrpc_dial *d = NULL;
	struct ttrpc_dial_opts opts = {
	    .host = "127.0.0.1",
	    .port = ntohs(sa.sin_port),
	    .tls = cctx,
	    .tls_server_name = "podvm-x",
	};
	assert_int_equal(ttrpc_dial_start(c->l, &opts, on_dial, &res, &d), 0);
	PUMP_UNTIL(c, res.calls == 1);
	assert_int_equal(res.error, 0);
	ttrpc_dial_free(d);

	struct peer *p = new_peer(c, res.fd);
	p->ssl = res.ssl;
	PUMP_UNTIL(c, ttrpc_relay_n_downstream(c->r) == 1);
	char payload[64];
	send_request(c, p, 1, "Check", "over-tls", 0, NULL);
	uint32_t id = agent_read_request(c, payload, sizeof(payload), NULL);
	assert_string_equal(payload, "over-tls");
	agent_answer(c, id, "over-tls");
	expect_answer(c, p, 1, "over-tls");

	/* A client that does not complete a handshake costs the relay nothing lasting. */
	int raw = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(raw, (struct sockaddr *)&sa, sizeof(sa)), 0);
	PUMP_UNTIL(c, ttrpc_relay_n_downstream(c->r) == 2);
	assert_int_equal(write(raw, "GET / HTTP/1.0\r\n\r\n", 18), 18);
	PUMP_UNTIL(c, ttrpc_relay_n_downstream(c->r) == 1);
	close(raw);

	peer_close(p);
	SSL_CTX_free(cctx);
	X509_free(ca);
	X509_free(cert);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(key);
}

static void test_free_with_everything_open(void **state)
{
	struct ctx *c = *state;
	struct peer *a = add_client(c);
	char payload[64];
	char path[160];

	snprintf(path, sizeof(path), "%s/l.sock", c->tmpdir);
	assert_int_equal(ttrpc_relay_listen_unix(c->r, path, 0660), 0);
	send_request(c, a, 1, "WaitProcess", "in-flight", 0, NULL);
	agent_read_request(c, payload, sizeof(payload), NULL);
	/* Leave one queued as well: lose the upstream, stop connecting. */
	c->auto_connect = false;
	peer_close(&c->agent);
	expect_error(c, a, 1, TTRPC_UNAVAILABLE, NULL);
	send_request(c, a, 3, "ExecProcess", "queued", 30 * NSEC_PER_SEC, NULL);
	settle(c);
	assert_int_equal(c->n_connect, 2);
	/* teardown frees the relay with a downstream, a listener and a queued request */
	assert_null(ttrpc_relay_free(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_overlapping_ids, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_response_bytes_verbatim, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rewrite, setup_rewrite, teardown),
	    cmocka_unit_test_setup_teardown(test_upstream_close, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_queue_while_connecting, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_connect_synchronously, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_queue_deadline, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_downstream_disconnect, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stream_id_rules, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_oversize, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_large_payloads, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flow_control_upstream, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flow_control_downstream, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_listen_unix, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_listen_tls, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_free_with_everything_open, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

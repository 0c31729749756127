/* Unit tests of the ttRPC connection's output and input paths under pressure: TLS output held
 * back by a slow reader (records gathered in the socket BIO, large frames written straight from
 * the caller's buffer), ordering across mixed frame sizes, shutdown flushing everything, a peer
 * vanishing while output is held, and frames arriving in arbitrary pieces. */
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "ttrpc/ttrpc.h"

#define MAX_ITER 20000
#define RUN_UNTIL(l, cond)                                                       \
	do {                                                                     \
		bool _ok = false;                                                \
		for (int _i = 0; _i < MAX_ITER && !(_ok = (cond)); _i++)         \
			assert_true(loop_run_once((l), 5 * NSEC_PER_MSEC) >= 0); \
		assert_true(_ok);                                                \
	} while (0)

#define N_FRAMES 24
/* Small socket buffers, so that the sender blocks inside a record burst. */
#define SOCK_BUF_BYTES (32 * 1024)

/* ---- one end of a connection under test ---- */

struct end {
	struct ttrpc_conn *conn;
	bool ready;
	bool closed;
	int close_error;
	unsigned n_drain;
	unsigned n_frames;
	struct ttrpc_header h[N_FRAMES * 2];
	uint8_t *data[N_FRAMES * 2];
};

static void on_frame(struct ttrpc_conn *c, const struct ttrpc_header *h, const uint8_t *data,
		     void *userdata)
{
	struct end *e = userdata;
	assert_true(e->n_frames < ELEMENTSOF(e->h));
	e->h[e->n_frames] = *h;
	e->data[e->n_frames] = malloc(h->length + 1);
	assert_non_null(e->data[e->n_frames]);
	memcpy(e->data[e->n_frames], data, h->length);
	e->n_frames++;
}

static void on_ready(struct ttrpc_conn *c, void *userdata)
{
	((struct end *)userdata)->ready = true;
}

static void on_drain(struct ttrpc_conn *c, void *userdata)
{
	((struct end *)userdata)->n_drain++;
}

static void on_close(struct ttrpc_conn *c, int error, void *userdata)
{
	struct end *e = userdata;
	assert_false(e->closed);
	e->closed = true;
	e->close_error = error;
}

static const struct ttrpc_conn_ops ops = {
    .on_frame = on_frame,
    .on_ready = on_ready,
    .on_drain = on_drain,
    .on_close = on_close,
};

static void end_done(struct end *e)
{
	ttrpc_conn_free(e->conn);
	for (unsigned i = 0; i < e->n_frames; i++)
		free(e->data[i]);
	memset(e, 0, sizeof(*e));
}

/* ---- TLS material: a self-signed server certificate trusted by the client ---- */

struct tls {
	SSL_CTX *server;
	SSL_CTX *client;
};

static void tls_init(struct tls *t)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	assert_non_null(key);
	X509 *x = X509_new();
	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 7), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -300));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
	X509_NAME *name = X509_get_subject_name(x);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
						    (const unsigned char *)"conn-test", -1, -1, 0),
			 1);
	assert_int_equal(X509_set_issuer_name(x, name), 1);
	assert_int_equal(X509_set_pubkey(x, key), 1);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);

	t->server = SSL_CTX_new(TLS_server_method());
	assert_non_null(t->server);
	assert_int_equal(SSL_CTX_use_certificate(t->server, x), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(t->server, key), 1);
	t->client = SSL_CTX_new(TLS_client_method());
	assert_non_null(t->client);
	assert_int_equal(X509_STORE_add_cert(SSL_CTX_get_cert_store(t->client), x), 1);
	SSL_CTX_set_verify(t->client, SSL_VERIFY_PEER, NULL);
	X509_free(x);
	EVP_PKEY_free(key);
}

static void tls_done(struct tls *t)
{
	SSL_CTX_free(t->server);
	SSL_CTX_free(t->client);
}

static void shrink_buffers(int fd)
{
	int size = SOCK_BUF_BYTES;
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)), 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)), 0);
}

/* A connected pair over a socketpair; TLS when t is set (a is the client). */
static void pair_open(struct loop *l, struct tls *t, struct end *a, struct end *b)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	shrink_buffers(sv[0]);
	shrink_buffers(sv[1]);
	SSL *sa = NULL, *sb = NULL;
	if (t) {
		sa = SSL_new(t->client);
		sb = SSL_new(t->server);
		assert_non_null(sa);
		assert_non_null(sb);
		SSL_set_connect_state(sa);
		SSL_set_accept_state(sb);
	}
	assert_int_equal(ttrpc_conn_new(l, sv[0], sa, 0, &ops, a, &a->conn), 0);
	assert_int_equal(ttrpc_conn_new(l, sv[1], sb, 0, &ops, b, &b->conn), 0);
	RUN_UNTIL(l, a->ready && b->ready);
}

/* ---- frames with checkable content ---- */

static size_t frame_len(unsigned i)
{
	/* Alternating large frames (straight from the caller's buffer under TLS, several records
	 * each, not a multiple of the record size) and small ones (through the queue). */
	return i % 2 == 0 ? 1024 * 1024 + 3 * i + 1 : 100 + i;
}

static uint8_t frame_byte(unsigned i, size_t off)
{
	return (uint8_t)(off * 31 + i * 7 + (off >> 13));
}

static void send_frames(struct end *e, unsigned n)
{
	size_t max = frame_len(0) + 3 * N_FRAMES;
	uint8_t *p = malloc(max);
	assert_non_null(p);
	for (unsigned i = 0; i < n; i++) {
		size_t len = frame_len(i);
		for (size_t k = 0; k < len; k++)
			p[k] = frame_byte(i, k);
		/* Split in two pieces at an odd place for the second half of the frames. */
		size_t split = i >= n / 2 ? len / 3 : len;
		struct ttrpc_header h = {.stream_id = 2 * i + 1, .type = TTRPC_TYPE_REQUEST};
		assert_int_equal(ttrpc_conn_sendv(e->conn, &h, p, split, p + split, len - split),
				 0);
		/* The caller's buffer may be reused at once. */
		memset(p, 0xee, len);
	}
	free(p);
}

static void check_frames(const struct end *e, unsigned n)
{
	assert_int_equal(e->n_frames, n);
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(e->h[i].stream_id, 2 * i + 1);
		assert_int_equal(e->h[i].type, TTRPC_TYPE_REQUEST);
		assert_int_equal(e->h[i].length, frame_len(i));
		for (size_t k = 0; k < frame_len(i); k++)
			if (e->data[i][k] != frame_byte(i, k))
				fail_msg("frame %u byte %zu differs", i, k);
	}
}

/* ---- tests ---- */

static void slow_reader(bool use_tls)
{
	_cleanup_(loop_freep) struct loop *l = NULL;
	struct tls t;
	struct end a = {0}, b = {0};

	if (use_tls)
		tls_init(&t);
	assert_int_equal(loop_new(&l), 0);
	pair_open(l, use_tls ? &t : NULL, &a, &b);

	ttrpc_conn_set_read_paused(b.conn, true);
	send_frames(&a, N_FRAMES);
	/* Far more than the sockets hold: the rest waits in the sender, above the high watermark. */
	assert_true(ttrpc_conn_pending_bytes(a.conn) > TTRPC_CONN_HIGH_WATERMARK_BYTES);
	for (int i = 0; i < 20; i++)
		assert_true(loop_run_once(l, NSEC_PER_MSEC) >= 0);
	assert_int_equal(b.n_frames, 0);
	assert_true(ttrpc_conn_pending_bytes(a.conn) > 0);
	assert_false(a.closed);

	ttrpc_conn_set_read_paused(b.conn, false);
	RUN_UNTIL(l, b.n_frames == N_FRAMES && ttrpc_conn_pending_bytes(a.conn) == 0);
	check_frames(&b, N_FRAMES);
	assert_int_equal(a.n_drain, 1);
	assert_false(a.closed);
	assert_false(b.closed);

	/* The connection still works both ways after the backlog. */
	assert_int_equal(ttrpc_conn_send(b.conn, 7, TTRPC_TYPE_RESPONSE, 0, "pong", 4), 0);
	RUN_UNTIL(l, a.n_frames == 1);
	assert_int_equal(a.h[0].stream_id, 7);
	assert_memory_equal(a.data[0], "pong", 4);

	end_done(&a);
	end_done(&b);
	if (use_tls)
		tls_done(&t);
}

static void test_tls_slow_reader(void **state)
{
	slow_reader(true);
}

static void test_plain_slow_reader(void **state)
{
	slow_reader(false);
}

/* Shutdown waits for every queued and gathered byte, then ends the stream cleanly. */
static void test_tls_shutdown_flushes(void **state)
{
	_cleanup_(loop_freep) struct loop *l = NULL;
	struct tls t;
	struct end a = {0}, b = {0};

	tls_init(&t);
	assert_int_equal(loop_new(&l), 0);
	pair_open(l, &t, &a, &b);
	send_frames(&a, 6);
	assert_int_equal(ttrpc_conn_send(a.conn, 99, TTRPC_TYPE_DATA, 0, "last", 4), 0);
	assert_true(ttrpc_conn_pending_bytes(a.conn) > 0);
	ttrpc_conn_shutdown(a.conn);
	/* Nothing more may be queued once shutting down. */
	assert_int_equal(ttrpc_conn_send(a.conn, 101, TTRPC_TYPE_DATA, 0, "x", 1), -ENOTCONN);
	RUN_UNTIL(l, a.closed && b.closed);
	assert_int_equal(a.close_error, 0);
	assert_int_equal(b.close_error, 0);
	assert_int_equal(b.n_frames, 7);
	b.n_frames = 6;
	check_frames(&b, 6);
	b.n_frames = 7;
	assert_int_equal(b.h[6].stream_id, 99);
	assert_int_equal(b.h[6].length, 4);
	assert_memory_equal(b.data[6], "last", 4);
	end_done(&a);
	end_done(&b);
	tls_done(&t);
}

/* The reader disappears while the sender holds output: an error, reported once. */
static void test_tls_peer_gone_while_blocked(void **state)
{
	_cleanup_(loop_freep) struct loop *l = NULL;
	struct tls t;
	struct end a = {0}, b = {0};

	tls_init(&t);
	assert_int_equal(loop_new(&l), 0);
	pair_open(l, &t, &a, &b);
	ttrpc_conn_set_read_paused(b.conn, true);
	send_frames(&a, 4);
	for (int i = 0; i < 10; i++)
		assert_true(loop_run_once(l, NSEC_PER_MSEC) >= 0);
	assert_true(ttrpc_conn_pending_bytes(a.conn) > 0);
	b.conn = ttrpc_conn_free(b.conn);
	RUN_UNTIL(l, a.closed);
	assert_true(a.close_error < 0);
	assert_int_equal(ttrpc_conn_send(a.conn, 1001, TTRPC_TYPE_DATA, 0, "x", 1), -ENOTCONN);
	end_done(&a);
	end_done(&b);
	tls_done(&t);
}

/* Frames split at every kind of boundary, with loop iterations between the pieces, and several
 * frames in one write: each is delivered once, whole and in order. */
static void test_plain_pieces(void **state)
{
	_cleanup_(loop_freep) struct loop *l = NULL;
	struct end b = {0};
	int sv[2];
	uint8_t wire[3 * TTRPC_HEADER_SIZE + 5 + 70000 + 1];
	size_t len = 0;
	const size_t lens[3] = {5, 70000, 1};

	assert_int_equal(loop_new(&l), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(ttrpc_conn_new(l, sv[1], NULL, 0, &ops, &b, &b.conn), 0);
	RUN_UNTIL(l, b.ready);
	for (unsigned i = 0; i < 3; i++) {
		struct ttrpc_header h = {.length = (uint32_t)lens[i],
					 .stream_id = 2 * i + 1,
					 .type = TTRPC_TYPE_REQUEST};
		ttrpc_header_encode(&h, wire + len);
		len += TTRPC_HEADER_SIZE;
		for (size_t k = 0; k < lens[i]; k++)
			wire[len++] = frame_byte(i, k);
	}
	/* Pieces: inside the first header, inside the first data, across into the second header,
	 * inside the large data, then the rest (end of the second frame and all of the third). */
	const size_t cuts[] = {3, 12, 20, 30000, len};
	size_t off = 0;
	for (size_t i = 0; i < ELEMENTSOF(cuts); i++) {
		while (off < cuts[i]) {
			ssize_t r = write(sv[0], wire + off, cuts[i] - off);
			assert_true(r > 0);
			off += (size_t)r;
		}
		for (int k = 0; k < 3; k++)
			assert_true(loop_run_once(l, NSEC_PER_MSEC) >= 0);
		if (i == 0 || i == 1)
			assert_int_equal(b.n_frames, 0);
	}
	RUN_UNTIL(l, b.n_frames == 3);
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(b.h[i].stream_id, 2 * i + 1);
		assert_int_equal(b.h[i].length, lens[i]);
		for (size_t k = 0; k < lens[i]; k++)
			assert_int_equal(b.data[i][k], frame_byte(i, k));
	}
	/* End of stream between frames: a clean close. */
	close(sv[0]);
	RUN_UNTIL(l, b.closed);
	assert_int_equal(b.close_error, 0);
	end_done(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tls_slow_reader),
	    cmocka_unit_test(test_plain_slow_reader),
	    cmocka_unit_test(test_tls_shutdown_flushes),
	    cmocka_unit_test(test_tls_peer_gone_while_blocked),
	    cmocka_unit_test(test_plain_pieces),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

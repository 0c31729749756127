/* Unit tests for lib/coordapi: the HTTP attestation document (format, strict parse, the report
 * data binding every field) and the aTLS client's connect path against a real aTLS server
 * thread with simulated evidence: accepted, refused for a wrong measurement, address errors. */
#include <arpa/inet.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/pem.h>

#include "coordapi/coordapi.h"
#include "tls/tls.h"

static struct atls_test_pki *pki;
/* Contexts borrow their configuration's arrays: these outlive them. */
static char *alpn[] = {COORDAPI_ALPN, NULL};

static int setup_pki(void **state)
{
	char *msg = NULL;
	int r = atls_test_pki_new(time(NULL), &pki, &msg);
	if (r < 0)
		print_error("test PKI: %s\n", msg ? msg : "?");
	free(msg);
	return r < 0 ? -1 : 0;
}

static int teardown_pki(void **state)
{
	atls_test_pki_free(pki);
	pki = NULL;
	return 0;
}

/* ---- the HTTP document ---- */

static void make_state(struct coordapi_state *s)
{
	*s = (struct coordapi_state){.kind = ATLS_EVIDENCE_SNP_SIM, .has_latest = true};
	memcpy(s->state, "active", 7);
	memset(s->latest, 0x42, 32);
	s->root_ca_pem = NULL;
	s->evidence = malloc(5);
	assert_non_null(s->evidence);
	memcpy(s->evidence, "ATEVx", 5);
	s->evidence_len = 5;
}

static void test_state_roundtrip(void **state)
{
	struct coordapi_state s, p;
	make_state(&s);
	char *json = NULL;
	assert_int_equal(coordapi_state_format(&s, &json), 0);
	char *msg = NULL;
	assert_int_equal(coordapi_state_parse(json, strlen(json), &p, &msg), 0);
	assert_string_equal(p.state, "active");
	assert_true(p.has_latest);
	assert_memory_equal(p.latest, s.latest, 32);
	assert_false(p.has_manifest);
	assert_null(p.root_ca_pem);
	assert_int_equal(p.kind, ATLS_EVIDENCE_SNP_SIM);
	assert_int_equal(p.evidence_len, 5);
	assert_memory_equal(p.evidence, "ATEVx", 5);

	uint8_t nonce[32] = {1}, a[64], b[64];
	assert_int_equal(coordapi_state_report_data(&s, nonce, a), 0);
	assert_int_equal(coordapi_state_report_data(&p, nonce, b), 0);
	assert_memory_equal(a, b, 64);
	free(json);
	coordapi_state_done(&s);
	coordapi_state_done(&p);
}

static void test_state_binding(void **state)
{
	struct coordapi_state s;
	make_state(&s);
	uint8_t nonce[32] = {7}, base[64], other[64];
	assert_int_equal(coordapi_state_report_data(&s, nonce, base), 0);

	nonce[0] ^= 1;
	assert_int_equal(coordapi_state_report_data(&s, nonce, other), 0);
	assert_memory_not_equal(base, other, 64);
	nonce[0] ^= 1;

	s.latest[31] ^= 1;
	assert_int_equal(coordapi_state_report_data(&s, nonce, other), 0);
	assert_memory_not_equal(base, other, 64);
	s.latest[31] ^= 1;

	memcpy(s.state, "stale", 6);
	assert_int_equal(coordapi_state_report_data(&s, nonce, other), 0);
	assert_memory_not_equal(base, other, 64);
	memcpy(s.state, "active", 7);

	s.has_manifest = true;
	s.manifest[0] = 1;
	assert_int_equal(coordapi_state_report_data(&s, nonce, other), 0);
	assert_memory_not_equal(base, other, 64);
	s.has_manifest = false;

	/* A certificate changes the binding; a PEM that is not one certificate is refused. */
	s.root_ca_pem = NULL;
	BIO *b = BIO_new(BIO_s_mem());
	assert_true(PEM_write_bio_X509(b, pki->ark) == 1);
	char *pem = NULL;
	long n = BIO_get_mem_data(b, &pem);
	s.root_ca_pem = strndup(pem, (size_t)n);
	BIO_free(b);
	assert_int_equal(coordapi_state_report_data(&s, nonce, other), 0);
	assert_memory_not_equal(base, other, 64);
	free(s.root_ca_pem);
	s.root_ca_pem = str_dup("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
	assert_int_equal(coordapi_state_report_data(&s, nonce, other), -EINVAL);
	coordapi_state_done(&s);
}

static void expect_parse_error(const char *json, const char *needle)
{
	struct coordapi_state p;
	char *msg = NULL;
	assert_int_equal(coordapi_state_parse(json, strlen(json), &p, &msg), -EBADMSG);
	assert_non_null(msg);
	if (!strstr(msg, needle))
		fail_msg("message \"%s\" lacks \"%s\"", msg, needle);
	free(msg);
}

static void test_state_parse_errors(void **state)
{
	expect_parse_error("[]", "not an object");
	expect_parse_error("{", "attestation document");
	expect_parse_error(
	    "{\"State\":\"active\",\"Latest\":\"\",\"Manifest\":\"\",\"RootCA\":\"\","
	    "\"MeshCA\":\"\",\"EvidenceOID\":\"1.3.9901.2.99\",\"Evidence\":\"\","
	    "\"Extra\":\"\"}",
	    "unknown key");
	expect_parse_error("{\"State\":\"active\"}", "missing");
	expect_parse_error("{\"State\":\"weird\",\"Latest\":\"\",\"Manifest\":\"\",\"RootCA\":\"\","
			   "\"MeshCA\":\"\",\"EvidenceOID\":\"1.3.9901.2.99\",\"Evidence\":\"\"}",
			   "unknown State");
	expect_parse_error("{\"State\":\"active\",\"Latest\":\"abc\",\"Manifest\":\"\",\"RootCA\":"
			   "\"\",\"MeshCA\":\"\",\"EvidenceOID\":\"1.3.9901.2.99\",\"Evidence\":"
			   "\"\"}",
			   "Latest");
	expect_parse_error(
	    "{\"State\":\"active\",\"Latest\":\"\",\"Manifest\":\"\",\"RootCA\":\"\","
	    "\"MeshCA\":\"\",\"EvidenceOID\":\"1.2.3\",\"Evidence\":\"\"}",
	    "EvidenceOID");
	expect_parse_error(
	    "{\"State\":\"active\",\"Latest\":\"\",\"Manifest\":\"\",\"RootCA\":\"\","
	    "\"MeshCA\":\"\",\"EvidenceOID\":\"1.3.9901.2.99\",\"Evidence\":\"!!\"}",
	    "base64");
	expect_parse_error("{\"State\":1,\"Latest\":\"\",\"Manifest\":\"\",\"RootCA\":\"\","
			   "\"MeshCA\":\"\",\"EvidenceOID\":\"1.3.9901.2.99\",\"Evidence\":\"\"}",
			   "not a string");
}

static void test_split_address(void **state)
{
	const struct {
		const char *in, *host, *port;
	} ok[] = {{"coordinator:1313", "coordinator", "1313"},
		  {"127.0.0.1:7777", "127.0.0.1", "7777"},
		  {"[::1]:1", "::1", "1"}};
	for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
		char *host = NULL, *port = NULL;
		assert_int_equal(coordapi_split_address(ok[i].in, &host, &port), 0);
		assert_string_equal(host, ok[i].host);
		assert_string_equal(port, ok[i].port);
		free(host);
		free(port);
	}
	const char *bad[] = {"",           "host",   "host:", ":80",     "host:0",
			     "host:65536", "::1:80", "[]:80", "[::1]80", "[::1:80"};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		char *host = NULL, *port = NULL;
		if (coordapi_split_address(bad[i], &host, &port) != -EINVAL)
			fail_msg("\"%s\" accepted", bad[i]);
	}
}

/* ---- connect against an aTLS server thread ---- */

struct server {
	int listen_fd;
	uint16_t port;
	SSL_CTX *ctx;
	int result;
	pthread_t thread;
};

static void *serve_one(void *arg)
{
	struct server *s = arg;
	int fd = accept(s->listen_fd, NULL, NULL);
	SSL *ssl = NULL;
	s->result = fd < 0 ? -errno : atls_ssl_new(s->ctx, NULL, &ssl);
	if (s->result >= 0)
		s->result = atls_handshake(ssl, fd, true, now_ns() + 10 * NSEC_PER_SEC, NULL);
	if (s->result >= 0) {
		/* Wait for the client to close. */
		char c;
		while (SSL_read(ssl, &c, 1) > 0)
			;
	}
	SSL_free(ssl);
	if (fd >= 0)
		close(fd);
	return NULL;
}

static void server_start(struct server *s, const struct atls_sim_params *params,
			 struct atls_issuer **ret_issuer)
{
	*s = (struct server){};
	assert_int_equal(atls_issuer_new_sim(pki, params, ret_issuer), 0);
	struct atls_config c = {.issuer = *ret_issuer, .alpn = alpn};
	assert_int_equal(atls_ctx_new_server(&c, &s->ctx, NULL), 0);
	s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s->listen_fd, 4), 0);
	socklen_t len = sizeof(a);
	assert_int_equal(getsockname(s->listen_fd, (struct sockaddr *)&a, &len), 0);
	s->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&s->thread, NULL, serve_one, s), 0);
}

static void server_stop(struct server *s)
{
	pthread_join(s->thread, NULL);
	close(s->listen_fd);
	SSL_CTX_free(s->ctx);
}

static const struct atls_sim_params coordinator_params = {
    .measurement = {0x5a, 0x5a},
    .host_data = {0xc0, 0x0d},
};

static int client_connect(uint16_t port, const uint8_t measurement[48], struct coordapi_conn **c,
			  char **msg)
{
	struct attest_snp_reference ref = {
	    .product = ATTEST_SNP_MILAN,
	    .policy_allowed = ATTEST_SNP_POLICY_SMT,
	    .platform_allowed = ATTEST_SNP_PLATFORM_SMT_EN | ATTEST_SNP_PLATFORM_TSME_EN,
	};
	memcpy(ref.measurement, measurement, 48);
	uint8_t digests[1][32] = {};
	memcpy(digests[0], coordinator_params.host_data, 32);
	struct atls_verifier v = {
	    .test_anchor_pem = pki->ark_pem,
	    .snp_refs = &ref,
	    .n_snp_refs = 1,
	    .skip_crl = true,
	    .digest_rule = {.digests = (const uint8_t(*)[32])digests, .n = 1},
	};
	struct atls_config cc = {.verifier = &v, .alpn = alpn};
	SSL_CTX *ctx = NULL;
	assert_int_equal(atls_ctx_new_client(&cc, &ctx, NULL), 0);
	char address[32];
	snprintf(address, sizeof(address), "127.0.0.1:%u", port);
	int r = coordapi_connect(address, ctx, 10 * NSEC_PER_SEC, c, msg);
	if (r == 0) {
		const struct atls_peer *p = coordapi_conn_peer(*c);
		assert_non_null(p);
		assert_memory_equal(p->policy_digest, coordinator_params.host_data, 32);
		assert_non_null(coordapi_conn_peer_cert(*c));
	}
	SSL_CTX_free(ctx); /* the connection keeps its own reference */
	return r;
}

static void test_connect_verified(void **state)
{
	struct server s;
	struct atls_issuer *is = NULL;
	server_start(&s, &coordinator_params, &is);
	struct coordapi_conn *c = NULL;
	char *msg = NULL;
	int r = client_connect(s.port, coordinator_params.measurement, &c, &msg);
	if (r < 0)
		fail_msg("connect: %d %s", r, msg ? msg : "");
	coordapi_conn_free(c);
	server_stop(&s);
	assert_int_equal(s.result, 0);
	atls_issuer_free(is);
}

static void test_connect_wrong_measurement(void **state)
{
	struct server s;
	struct atls_issuer *is = NULL;
	server_start(&s, &coordinator_params, &is);
	struct coordapi_conn *c = NULL;
	char *msg = NULL;
	uint8_t other[48] = {0x77};
	assert_int_equal(client_connect(s.port, other, &c, &msg), -EACCES);
	assert_null(c);
	assert_non_null(msg);
	assert_non_null(strstr(msg, "127.0.0.1"));
	free(msg);
	server_stop(&s);
	assert_true(s.result < 0);
	atls_issuer_free(is);
}

static void test_connect_address_errors(void **state)
{
	SSL_CTX *ctx = NULL;
	struct atls_config cc = {.alpn = alpn};
	assert_int_equal(atls_ctx_new_client(&cc, &ctx, NULL), 0);
	struct coordapi_conn *c = NULL;
	char *msg = NULL;
	assert_int_equal(coordapi_connect("no-port", ctx, 0, &c, &msg), -EINVAL);
	assert_non_null(strstr(msg, "HOST:PORT"));
	free(msg);
	msg = NULL;
	assert_int_equal(coordapi_connect("::1:80", ctx, 0, &c, &msg), -EINVAL);
	free(msg);
	msg = NULL;

	/* A closed port: connection refused, with the address in the message. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	socklen_t len = sizeof(a);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	char address[32];
	snprintf(address, sizeof(address), "127.0.0.1:%u", ntohs(a.sin_port));
	assert_int_equal(coordapi_connect(address, ctx, NSEC_PER_SEC, &c, &msg), -ECONNREFUSED);
	assert_non_null(strstr(msg, address));
	free(msg);
	close(fd);
	SSL_CTX_free(ctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_state_roundtrip),
	    cmocka_unit_test(test_state_binding),
	    cmocka_unit_test(test_state_parse_errors),
	    cmocka_unit_test(test_split_address),
	    cmocka_unit_test(test_connect_verified),
	    cmocka_unit_test(test_connect_wrong_measurement),
	    cmocka_unit_test(test_connect_address_errors),
	};
	return cmocka_run_group_tests(tests, setup_pki, teardown_pki);
}

/* Tests of the coordinator daemon (build/bin/coordinator, spawned with a temporary data
 * directory and ephemeral loopback ports) through real aTLS clients with simulated SNP
 * evidence: SetManifest / GetManifests / updates and refusals, mesh certificates and the
 * handshake refusals counted in attest_failures_total, mesh CA rotation, restart and user
 * recovery, peer recovery between two coordinators on one store, HTTP attestation, probes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include "coordapi/coordapi.h"
#include "coordinator/daemon.h"
#include "tls/tls.h"
#include "userdata/userdata.h"

#define TOML_COORD                                                                               \
	"algorithm = \"sha256\"\nversion = \"0.1.0\"\n\n[data]\n\"policy.rego\" = '''\npackage " \
	"coordinator\n'''\n"
#define TOML_WEB "algorithm = \"sha256\"\nversion = \"0.1.0\"\n\n[data]\n\"aa.toml\" = '''\n'''\n"
#define TOML_DB "algorithm = \"sha256\"\nversion = \"0.1.0\"\n\n[data]\n\"cdh.toml\" = '''\n'''\n"
#define WEB_SECRET_ID "apps/v1/Deployment/default/web"
/* Hang guard of the polling loops (10 ms steps): not a timing assertion. */
#define POLL_MAX 6000
#define SNP_DEBUG_BIT (1ull << 19)

struct doc {
	char *json;
	char **initdata;
	uint8_t sha256[32];
};

struct env {
	char *dir;
	char *pki_dir;
	char *anchor_path;
	char *bin;
	struct atls_test_pki *pki;
	char *anchor_pem;
	uint8_t measurement[48];
	char measurement_hex[97];
	EVP_PKEY *owner, *share, *stranger;
	struct doc v1, v2, v3; /* v2: web SAN changed; v3: web replaced by db */
	struct manifest *m1;
	uint8_t coord_digest[32], web_digest[32], db_digest[32];
	char coord_hex[65];
};
static struct env E;

/* ---- fixtures ---- */

static struct doc make_doc(const char *web_toml, const char *web_san, const char *secret_id)
{
	char *coord_sans[] = {"coordinator", "coordinator.default.svc", NULL};
	char *web_sans[] = {(char *)web_san, "web.default.svc.cluster.local", "10.0.0.7",
			    "spiffe://cluster.local/ns/default/sa/web", NULL};
	struct manifest_gen_policy pols[] = {
	    {.initdata = TOML_COORD, .sans = coord_sans, .role = "coordinator"},
	    {.initdata = web_toml, .sans = web_sans, .workload_secret_id = secret_id},
	};
	_cleanup_free_ char *refs_text = str_printf(
	    "{\"snp\":[{\"ProductName\":\"Milan\",\"TrustedMeasurement\":\"%s\",\"MinimumTCB\":"
	    "{\"BootloaderVersion\":0,\"TEEVersion\":0,\"SNPVersion\":0,\"MicrocodeVersion\":0},"
	    "\"GuestPolicy\":{\"SMT\":true},\"PlatformInfo\":{\"SMTEnabled\":true,\"TSMEEnabled\":"
	    "true}}]}",
	    E.measurement_hex);
	json_t *refs = json_loads(refs_text, 0, NULL);
	assert_non_null(refs);
	struct manifest_gen g = {
	    .policies = pols,
	    .n_policies = 2,
	    .reference_values = refs,
	    .workload_owners = &E.owner,
	    .n_workload_owners = 1,
	    .seedshare_owners = &E.share,
	    .n_seedshare_owners = 1,
	};
	struct doc d = {0};
	_cleanup_free_ char *msg = NULL;
	int r = manifest_generate(&g, &d.json, &d.initdata, &msg);
	if (r < 0)
		print_error("manifest: %s\n", msg);
	assert_int_equal(r, 0);
	json_decref(refs);
	SHA256((const uint8_t *)d.json, strlen(d.json), d.sha256);
	return d;
}

static void doc_done(struct doc *d)
{
	free(d->json);
	strv_free(d->initdata);
}

static char *self_dir(void)
{
	char *exe = realpath("/proc/self/exe", NULL);
	assert_non_null(exe);
	char *dir = strdup(dirname(exe));
	free(exe);
	return dir;
}

static int group_setup(void **state)
{
	signal(SIGPIPE, SIG_IGN);
	E.dir = strdup("/tmp/pp-coordd-XXXXXX");
	if (!mkdtemp(E.dir))
		return -1;
	_cleanup_free_ char *here = self_dir();
	E.bin = str_printf("%s/../bin/coordinator", here);
	if (access(E.bin, X_OK) != 0) {
		print_error("%s is missing: make build/bin/coordinator\n", E.bin);
		return -1;
	}
	char *msg = NULL;
	if (atls_test_pki_new(time(NULL), &E.pki, &msg) < 0) {
		print_error("test PKI: %s\n", msg ? msg : "?");
		free(msg);
		return -1;
	}
	E.pki_dir = str_printf("%s/pki", E.dir);
	if (atls_test_pki_save(E.pki, E.pki_dir, &msg) < 0) {
		print_error("save PKI: %s\n", msg ? msg : "?");
		free(msg);
		return -1;
	}
	E.anchor_path = str_printf("%s/ark.pem", E.pki_dir);
	E.anchor_pem = strdup(E.pki->ark_pem);
	RAND_bytes(E.measurement, sizeof(E.measurement));
	hex_encode_into(E.measurement, sizeof(E.measurement), E.measurement_hex);
	E.owner = EVP_EC_gen("P-256");
	E.stranger = EVP_EC_gen("P-256");
	E.share = EVP_RSA_gen(2048);
	if (!E.owner || !E.stranger || !E.share)
		return -1;
	E.v1 = make_doc(TOML_WEB, "web", WEB_SECRET_ID);
	E.v2 = make_doc(TOML_WEB, "web2", WEB_SECRET_ID);
	E.v3 = make_doc(TOML_DB, "db", NULL);
	if (manifest_parse(E.v1.json, strlen(E.v1.json), &E.m1, &msg) < 0)
		return -1;
	SHA256((const uint8_t *)TOML_COORD, strlen(TOML_COORD), E.coord_digest);
	SHA256((const uint8_t *)TOML_WEB, strlen(TOML_WEB), E.web_digest);
	SHA256((const uint8_t *)TOML_DB, strlen(TOML_DB), E.db_digest);
	hex_encode_into(E.coord_digest, 32, E.coord_hex);
	return manifest_digest_is_coordinator(E.m1, E.coord_digest) ? 0 : -1;
}

static int group_teardown(void **state)
{
	doc_done(&E.v1);
	doc_done(&E.v2);
	doc_done(&E.v3);
	manifest_free(E.m1);
	EVP_PKEY_free(E.owner);
	EVP_PKEY_free(E.stranger);
	EVP_PKEY_free(E.share);
	atls_test_pki_free(E.pki);
	free(E.anchor_pem);
	if (E.dir)
		rm_rf(E.dir);
	free(E.dir);
	free(E.pki_dir);
	free(E.anchor_path);
	free(E.bin);
	return 0;
}

/* ---- the daemon ---- */

struct daemon {
	pid_t pid;
	char *dir; /* its own: ports file and log */
	char *log;
	uint16_t user, mesh, http, probe;
};

static void dump_log(const struct daemon *dm)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	if (dm->log && read_file_bounded(dm->log, 1 << 20, &text, &len) == 0)
		print_error("---- coordinator log %s ----\n%s\n", dm->log, text);
}

/* peers: NULL or host:port list; mesh_port: 0 for an ephemeral one; interval: of the peer
 * recovery rounds. */
static void daemon_start_opts(struct daemon *dm, const char *data_dir, const char *peers,
			      uint16_t mesh_port, const char *interval)
{
	static int seq;
	*dm = (struct daemon){0};
	dm->dir = str_printf("%s/d%d", E.dir, ++seq);
	assert_int_equal(mkdir_p(dm->dir, 0700), 0);
	dm->log = str_printf("%s/log", dm->dir);
	_cleanup_free_ char *ports = str_printf("%s/ports.json", dm->dir);
	char mesh[8];
	(void)snprintf(mesh, sizeof(mesh), "%u", mesh_port);
	char *argv[] = {E.bin, "-listen-address", "127.0.0.1", "-user-api-port", "0",
			"-mesh-api-port", mesh, "-http-port", "0", "-probe-port", "0",
			"-ports-file", ports, "-data-dir", (char *)data_dir, "-evidence", "sim",
			"-sim-pki", E.pki_dir, "-sim-measurement", E.measurement_hex,
			"-sim-host-data", E.coord_hex, "-test-trust-anchor", E.anchor_path,
			/* tests never reach the KDS: simulated evidence carries its CRL */
			"-offline", "-peer-recovery-interval", (char *)interval, "-log-level",
			"debug", peers ? "-peers" : NULL, (char *)peers, NULL};
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(dm->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0 || dup2(fd, 2) < 0 || dup2(fd, 1) < 0)
			_exit(127);
		execv(E.bin, argv);
		_exit(127);
	}
	dm->pid = pid;
	for (int i = 0; i < POLL_MAX; i++) {
		_cleanup_free_ char *text = NULL;
		size_t len = 0;
		if (read_file_bounded(ports, 4096, &text, &len) == 0) {
			json_t *j = json_loads(text, 0, NULL);
			assert_non_null(j);
			dm->user = (uint16_t)json_integer_value(json_object_get(j, "user"));
			dm->mesh = (uint16_t)json_integer_value(json_object_get(j, "mesh"));
			dm->http = (uint16_t)json_integer_value(json_object_get(j, "http"));
			dm->probe = (uint16_t)json_integer_value(json_object_get(j, "probe"));
			json_decref(j);
			assert_true(dm->user && dm->mesh && dm->http && dm->probe);
			return;
		}
		int status;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			dm->pid = 0;
			dump_log(dm);
			fail_msg("the coordinator exited at start (status %d)", status);
		}
		usleep(10000);
	}
	dump_log(dm);
	fail_msg("the coordinator did not write its ports file");
}

static void daemon_start(struct daemon *dm, const char *data_dir, const char *peers)
{
	daemon_start_opts(dm, data_dir, peers, 0, "200ms");
}

/* SIGTERM; the daemon must exit 0. */
static void daemon_stop(struct daemon *dm)
{
	if (dm->pid > 0) {
		kill(dm->pid, SIGTERM);
		int status = 0;
		assert_int_equal(waitpid(dm->pid, &status, 0), dm->pid);
		dm->pid = 0;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			dump_log(dm);
			fail_msg("the coordinator exited with status %d", status);
		}
	}
	free(dm->dir);
	free(dm->log);
	*dm = (struct daemon){0};
}

/* For teardown after a failed assertion: no checks. */
static void daemon_kill(struct daemon *dm)
{
	if (dm->pid > 0) {
		kill(dm->pid, SIGKILL);
		waitpid(dm->pid, NULL, 0);
	}
	free(dm->dir);
	free(dm->log);
	*dm = (struct daemon){0};
}

struct fixture {
	struct daemon a, b;
	char *data_dir;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	static int seq;
	f->data_dir = str_printf("%s/data%d", E.dir, ++seq);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	daemon_kill(&f->a);
	daemon_kill(&f->b);
	free(f->data_dir);
	free(f);
	return 0;
}

/* ---- HTTP ---- */

static int http_get(uint16_t port, const char *path, char **ret_body)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct timeval tv = {.tv_sec = 60};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	_cleanup_free_ char *req = str_printf("GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
	assert_int_equal(write_all(fd, req, strlen(req)), 0);
	struct buf b = {0};
	for (;;) {
		char tmp[4096];
		ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
		if (n <= 0)
			break;
		assert_int_equal(buf_append(&b, tmp, (size_t)n, 0), 0);
	}
	close(fd);
	assert_int_equal(buf_append(&b, "", 1, 0), 0);
	char *text = (char *)b.data;
	int status = 0;
	assert_int_equal(sscanf(text, "HTTP/1.1 %d", &status), 1);
	const char *body = strstr(text, "\r\n\r\n");
	assert_non_null(body);
	if (ret_body)
		*ret_body = strdup(body + 4);
	free(text);
	return status;
}

/* The value of one series on /metrics (-1 when absent). */
static long long metric(const struct daemon *dm, const char *series)
{
	_cleanup_free_ char *body = NULL;
	assert_int_equal(http_get(dm->probe, "/metrics", &body), 200);
	_cleanup_free_ char *needle = str_printf("\n%s ", series);
	const char *p = strstr(body, needle);
	return p ? strtoll(p + strlen(needle), NULL, 10) : -1;
}

static void wait_metric(const struct daemon *dm, const char *series, long long want)
{
	for (int i = 0; i < POLL_MAX; i++) {
		if (metric(dm, series) == want)
			return;
		usleep(10000);
	}
	dump_log(dm);
	fail_msg("%s never became %lld (is %lld)", series, want, metric(dm, series));
}

static void wait_ready(const struct daemon *dm)
{
	for (int i = 0; i < POLL_MAX; i++) {
		if (http_get(dm->probe, "/readyz", NULL) == 200)
			return;
		usleep(10000);
	}
	dump_log(dm);
	fail_msg("the coordinator never became ready");
}

/* ---- clients ---- */

static char *const alpn[] = {COORDAPI_ALPN, NULL};

struct client {
	SSL_CTX *ctx;
	struct atls_verifier v;
	X509 *cert;
	struct atls_issuer *issuer;
};

static void client_done(struct client *c)
{
	SSL_CTX_free(c->ctx);
	X509_free(c->cert);
	atls_issuer_free(c->issuer);
	*c = (struct client){0};
}

/* A user: verifies the coordinator against the local manifest; presents key if given. */
static void user_client(struct client *c, EVP_PKEY *key)
{
	*c = (struct client){0};
	coord_verifier_init(&c->v, E.m1, true, E.anchor_pem, NULL);
	if (key)
		assert_int_equal(tls_cert_create_client(key, &c->cert), 0);
	struct atls_config cfg = {
	    .verifier = &c->v, .cert = c->cert, .cert_key = key, .alpn = alpn};
	_cleanup_free_ char *msg = NULL;
	int r = atls_ctx_new_client(&cfg, &c->ctx, &msg);
	if (r < 0)
		fail_msg("client context: %s", msg);
}

/* An attesting workload with the given HOST_DATA, guest policy and measurement; key is its
 * TLS key (certified in its evidence) or NULL for a fresh one per connection. */
static void mesh_client(struct client *c, const uint8_t digest[32], uint64_t policy,
			const uint8_t measurement[48], EVP_PKEY *key)
{
	*c = (struct client){0};
	struct atls_sim_params p = {.policy = policy};
	memcpy(p.measurement, measurement, 48);
	memcpy(p.host_data, digest, 32);
	assert_int_equal(atls_issuer_new_sim(E.pki, &p, &c->issuer), 0);
	coord_verifier_init(&c->v, E.m1, true, E.anchor_pem, NULL);
	struct atls_config cfg = {.issuer = c->issuer, .key = key, .verifier = &c->v, .alpn = alpn};
	_cleanup_free_ char *msg = NULL;
	int r = atls_ctx_new_client(&cfg, &c->ctx, &msg);
	if (r < 0)
		fail_msg("client context: %s", msg);
}

static struct coordapi_conn *dial(uint16_t port, const struct client *c)
{
	_cleanup_free_ char *addr = str_printf("127.0.0.1:%u", port);
	struct coordapi_conn *conn = NULL;
	_cleanup_free_ char *msg = NULL;
	int r = coordapi_connect(addr, c->ctx, 0, &conn, &msg);
	if (r < 0)
		fail_msg("connect %s: %s", addr, msg ? msg : strerror(-r));
	return conn;
}

/* One call on a new connection; returns the code (0 OK, ttRPC code, or -errno). */
static int call(uint16_t port, const struct client *c, const char *service, const char *method,
		const ProtobufCMessage *req, const ProtobufCMessageDescriptor *desc,
		ProtobufCMessage **ret)
{
	_cleanup_(coordapi_conn_freep) struct coordapi_conn *conn = dial(port, c);
	_cleanup_free_ char *msg = NULL;
	int r = coordapi_call(conn, service, method, req, desc, 0, ret, &msg);
	if (r != 0)
		print_message("%s: %d %s\n", method, r, msg ? msg : "");
	return r;
}

static int set_manifest(const struct daemon *dm, const struct doc *d, EVP_PKEY *key,
			const uint8_t *sig, size_t sig_len, Coordinator__SetManifestResponse **ret)
{
	struct client c;
	user_client(&c, key);
	Coordinator__SetManifestRequest req = COORDINATOR__SET_MANIFEST_REQUEST__INIT;
	req.manifest = (ProtobufCBinaryData){strlen(d->json), (uint8_t *)d->json};
	req.initdata = d->initdata;
	req.n_initdata = strv_length(d->initdata);
	req.signature = (ProtobufCBinaryData){sig_len, (uint8_t *)sig};
	ProtobufCMessage *resp = NULL;
	int r = call(dm->user, &c, COORDAPI_USER_SERVICE, "SetManifest", &req.base,
		     &coordinator__set_manifest_response__descriptor, &resp);
	client_done(&c);
	if (ret)
		*ret = (Coordinator__SetManifestResponse *)resp;
	else if (resp)
		protobuf_c_message_free_unpacked(resp, NULL);
	return r;
}

static int get_manifests(const struct daemon *dm, Coordinator__GetManifestsResponse **ret)
{
	struct client c;
	user_client(&c, NULL);
	Coordinator__GetManifestsRequest req = COORDINATOR__GET_MANIFESTS_REQUEST__INIT;
	ProtobufCMessage *resp = NULL;
	int r = call(dm->user, &c, COORDAPI_USER_SERVICE, "GetManifests", &req.base,
		     &coordinator__get_manifests_response__descriptor, &resp);
	client_done(&c);
	*ret = (Coordinator__GetManifestsResponse *)resp;
	return r;
}

static int recover(const struct daemon *dm, EVP_PKEY *key, const uint8_t seed[64],
		   const uint8_t salt[32], bool force)
{
	struct client c;
	user_client(&c, key);
	Coordinator__RecoverRequest req = COORDINATOR__RECOVER_REQUEST__INIT;
	req.seed = (ProtobufCBinaryData){64, (uint8_t *)seed};
	req.salt = (ProtobufCBinaryData){32, (uint8_t *)salt};
	req.force = force;
	ProtobufCMessage *resp = NULL;
	int r = call(dm->user, &c, COORDAPI_USER_SERVICE, "Recover", &req.base,
		     &coordinator__recover_response__descriptor, &resp);
	client_done(&c);
	if (resp)
		protobuf_c_message_free_unpacked(resp, NULL);
	return r;
}

static int new_mesh_cert_on(struct coordapi_conn *conn, Coordinator__NewMeshCertResponse **ret)
{
	Coordinator__NewMeshCertRequest req = COORDINATOR__NEW_MESH_CERT_REQUEST__INIT;
	ProtobufCMessage *resp = NULL;
	_cleanup_free_ char *msg = NULL;
	int r = coordapi_call(conn, COORDAPI_MESH_SERVICE, "NewMeshCert", &req.base,
			      &coordinator__new_mesh_cert_response__descriptor, 0, &resp, &msg);
	if (r != 0)
		print_message("NewMeshCert: %d %s\n", r, msg ? msg : "");
	*ret = (Coordinator__NewMeshCertResponse *)resp;
	return r;
}

/* ---- checks ---- */

static void seed_from_shares(const char *json, uint8_t seed[64], uint8_t salt[32])
{
	json_t *j = json_loads(json, 0, NULL);
	assert_non_null(j);
	json_t *share = json_array_get(json_object_get(j, "SeedShares"), 0);
	const char *b64 = json_string_value(json_object_get(share, "EncryptedSeed"));
	assert_non_null(b64);
	_cleanup_free_ uint8_t *enc = NULL, *raw = NULL;
	size_t enc_len, raw_len;
	assert_int_equal(userdata_base64_decode(b64, strlen(b64), 4096, &enc, &enc_len), 0);
	assert_int_equal(coordapi_seed_share_decrypt(E.share, enc, enc_len, seed), 0);
	const char *s = json_string_value(json_object_get(j, "Salt"));
	assert_int_equal(userdata_base64_decode(s, strlen(s), 64, &raw, &raw_len), 0);
	assert_int_equal(raw_len, 32);
	memcpy(salt, raw, 32);
	json_decref(j);
}

static X509 *pem_cert(const char *pem, size_t index)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = NULL;
	for (size_t i = 0; i <= index; i++) {
		X509_free(x);
		x = PEM_read_bio_X509(b, NULL, NULL, NULL);
		assert_non_null(x);
	}
	BIO_free(b);
	return x;
}

/* Does the chain's leaf verify against trust (via the chain's intermediate when asked)? */
static bool chain_verifies(const char *chain_pem, const char *trust_pem, bool via_intermediate)
{
	X509 *leaf = pem_cert(chain_pem, 0), *inter = pem_cert(chain_pem, 1),
	     *trust = pem_cert(trust_pem, 0);
	X509_STORE *store = X509_STORE_new();
	X509_STORE_add_cert(store, trust);
	STACK_OF(X509) *untrusted = sk_X509_new_null();
	if (via_intermediate)
		sk_X509_push(untrusted, inter);
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	X509_STORE_CTX_init(ctx, store, leaf, untrusted);
	bool ok = X509_verify_cert(ctx) == 1;
	X509_STORE_CTX_free(ctx);
	sk_X509_free(untrusted);
	X509_STORE_free(store);
	X509_free(leaf);
	X509_free(inter);
	X509_free(trust);
	ERR_clear_error();
	return ok;
}

static bool same_public_key(const char *pem_a, const char *pem_b)
{
	X509 *a = pem_cert(pem_a, 0), *b = pem_cert(pem_b, 0);
	bool eq = EVP_PKEY_eq(X509_get0_pubkey(a), X509_get0_pubkey(b)) == 1;
	X509_free(a);
	X509_free(b);
	return eq;
}

static void check_sans(X509 *leaf, const char *first_dns)
{
	GENERAL_NAMES *names = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
	assert_non_null(names);
	assert_int_equal(sk_GENERAL_NAME_num(names), 4);
	const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, 0);
	assert_int_equal(g->type, GEN_DNS);
	assert_string_equal((const char *)ASN1_STRING_get0_data(g->d.dNSName), first_dns);
	g = sk_GENERAL_NAME_value(names, 1);
	assert_int_equal(g->type, GEN_DNS);
	assert_string_equal((const char *)ASN1_STRING_get0_data(g->d.dNSName),
			    "web.default.svc.cluster.local");
	g = sk_GENERAL_NAME_value(names, 2);
	assert_int_equal(g->type, GEN_IPADD);
	assert_int_equal(ASN1_STRING_length(g->d.iPAddress), 4);
	assert_memory_equal(ASN1_STRING_get0_data(g->d.iPAddress), "\x0a\x00\x00\x07", 4);
	g = sk_GENERAL_NAME_value(names, 3);
	assert_int_equal(g->type, GEN_URI);
	assert_string_equal((const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier),
			    "spiffe://cluster.local/ns/default/sa/web");
	GENERAL_NAMES_free(names);
}

static void expect_transition(const uint8_t *got, size_t len, const uint8_t manifest[32],
			      const uint8_t prev[32])
{
	uint8_t want[32];
	coordapi_transition_hash(manifest, prev, want);
	assert_int_equal(len, 32);
	assert_memory_equal(got, want, 32);
}

/* A handshake the coordinator refuses: either the handshake or the first call fails. */
static void expect_refused(uint16_t port, const struct client *c)
{
	_cleanup_free_ char *addr = str_printf("127.0.0.1:%u", port);
	struct coordapi_conn *conn = NULL;
	_cleanup_free_ char *msg = NULL;
	int r = coordapi_connect(addr, c->ctx, 0, &conn, &msg);
	if (r == 0) {
		Coordinator__NewMeshCertResponse *resp = NULL;
		r = new_mesh_cert_on(conn, &resp);
		assert_null(resp);
		coordapi_conn_free(conn);
	}
	assert_int_not_equal(r, 0);
}

/* An issuer whose evidence binds a report data other than the one asked for. */
static struct atls_issuer *replay_inner;

static int replayed_evidence(struct atls_issuer *is, const uint8_t rd[ATLS_REPORT_DATA_SIZE],
			     uint8_t **ret, size_t *ret_len, char **ret_msg)
{
	uint8_t other[ATLS_REPORT_DATA_SIZE];
	memcpy(other, rd, sizeof(other));
	other[0] ^= 1;
	return replay_inner->get_evidence(replay_inner, other, ret, ret_len, ret_msg);
}

/* ---- tests ---- */

static const uint8_t zero32[32];

static void test_manifest_lifecycle(void **state)
{
	struct fixture *f = *state;
	daemon_start(&f->a, f->data_dir, NULL);

	/* Before a manifest: not ready, test mode said; GetManifests refused. */
	_cleanup_free_ char *ready = NULL;
	assert_int_equal(http_get(f->a.probe, "/readyz", &ready), 500);
	assert_non_null(strstr(ready, "uninitialized"));
	assert_non_null(strstr(ready, "test mode"));
	assert_int_equal(metric(&f->a, "coordinator_test_mode"), 1);
	assert_int_equal(metric(&f->a, "coordinator_state"), 0);
	Coordinator__GetManifestsResponse *gm = NULL;
	assert_int_equal(get_manifests(&f->a, &gm), TTRPC_FAILED_PRECONDITION);

	/* First manifest: trust on first use, seed shares for the seed-share owner. */
	Coordinator__SetManifestResponse *r1 = NULL;
	assert_int_equal(set_manifest(&f->a, &E.v1, NULL, NULL, 0, &r1), 0);
	uint8_t seed[64], salt[32];
	seed_from_shares(r1->seedsharesjson, seed, salt);
	expect_transition(r1->transition.data, r1->transition.len, E.v1.sha256, zero32);
	assert_true(str_startswith(r1->meshcapem, "-----BEGIN CERTIFICATE-----"));
	_cleanup_free_ char *ok = NULL;
	assert_int_equal(http_get(f->a.probe, "/readyz", &ok), 200);
	assert_non_null(strstr(ok, "test mode"));
	assert_int_equal(metric(&f->a, "coordinator_state"), 1);

	/* An update by the owner's TLS key (a): no seed shares again, the mesh CA rotates, the
	 * root stays. */
	Coordinator__SetManifestResponse *r2 = NULL;
	assert_int_equal(set_manifest(&f->a, &E.v2, E.owner, NULL, 0, &r2), 0);
	assert_string_equal(r2->seedsharesjson, "");
	expect_transition(r2->transition.data, r2->transition.len, E.v2.sha256,
			  r1->transition.data);
	assert_false(same_public_key(r1->meshcapem, r2->meshcapem));
	assert_string_equal(r1->rootcapem, r2->rootcapem);

	/* Not the owner, or nobody: refused, nothing changes. */
	assert_int_equal(set_manifest(&f->a, &E.v1, E.stranger, NULL, 0, NULL),
			 TTRPC_PERMISSION_DENIED);
	assert_int_equal(set_manifest(&f->a, &E.v1, NULL, NULL, 0, NULL), TTRPC_PERMISSION_DENIED);
	/* A signature by another key over the right transition is no better. */
	uint8_t next[32];
	coordapi_transition_hash(E.v1.sha256, r2->transition.data, next);
	_cleanup_free_ uint8_t *bad_sig = NULL, *sig = NULL;
	size_t bad_len = 0, sig_len = 0;
	assert_int_equal(coordapi_update_sign(E.stranger, next, &bad_sig, &bad_len), 0);
	assert_int_equal(set_manifest(&f->a, &E.v1, NULL, bad_sig, bad_len, NULL),
			 TTRPC_PERMISSION_DENIED);
	/* Garbage is invalid. */
	struct doc junk = {.json = "{\"Policies\": 1}", .initdata = NULL};
	assert_int_equal(set_manifest(&f->a, &junk, E.owner, NULL, 0, NULL),
			 TTRPC_INVALID_ARGUMENT);

	/* The owner's signature (b) without its key on the connection. */
	assert_int_equal(coordapi_update_sign(E.owner, next, &sig, &sig_len), 0);
	Coordinator__SetManifestResponse *r3 = NULL;
	assert_int_equal(set_manifest(&f->a, &E.v1, NULL, sig, sig_len, &r3), 0);
	assert_memory_equal(r3->transition.data, next, 32);

	/* The history, oldest first, with the latest policies and a valid signature. */
	assert_int_equal(get_manifests(&f->a, &gm), 0);
	assert_string_equal(gm->state, "active");
	assert_int_equal(gm->n_manifests, 3);
	assert_memory_equal(gm->manifests[0].data, E.v1.json, strlen(E.v1.json));
	assert_memory_equal(gm->manifests[1].data, E.v2.json, strlen(E.v2.json));
	assert_memory_equal(gm->manifests[2].data, E.v1.json, strlen(E.v1.json));
	assert_int_equal(gm->n_policies, 2);
	for (size_t i = 0; i < gm->n_policies; i++) {
		uint8_t d[32];
		char hex[65];
		SHA256(gm->policies[i]->initdata.data, gm->policies[i]->initdata.len, d);
		hex_encode_into(d, 32, hex);
		assert_string_equal(gm->policies[i]->digest, hex);
	}
	assert_memory_equal(gm->latest.data, next, 32);
	assert_string_equal(gm->meshcapem, r3->meshcapem);
	const unsigned char *p = gm->signingpublickey.data;
	EVP_PKEY *signer = d2i_PUBKEY(NULL, &p, (long)gm->signingpublickey.len);
	assert_non_null(signer);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha384(), NULL, signer), 1);
	assert_int_equal(EVP_DigestVerify(md, gm->latestsignature.data, gm->latestsignature.len,
					  gm->latest.data, 32),
			 1);
	EVP_MD_CTX_free(md);
	/* ... and the signing key is the one the seed derives. */
	struct secrets *sec = NULL;
	assert_int_equal(secrets_derive(seed, salt, &sec), 0);
	assert_int_equal(EVP_PKEY_eq(signer, sec->signing_key), 1);
	secrets_free(sec);
	EVP_PKEY_free(signer);

	assert_int_equal(metric(&f->a, "manifest_updates_total{result=\"accepted\"}"), 3);
	assert_int_equal(metric(&f->a, "manifest_updates_total{result=\"denied\"}"), 3);
	assert_int_equal(metric(&f->a, "manifest_updates_total{result=\"invalid\"}"), 1);

	protobuf_c_message_free_unpacked(&gm->base, NULL);
	protobuf_c_message_free_unpacked(&r1->base, NULL);
	protobuf_c_message_free_unpacked(&r2->base, NULL);
	protobuf_c_message_free_unpacked(&r3->base, NULL);
	daemon_stop(&f->a);
}

static void test_mesh_certificates(void **state)
{
	struct fixture *f = *state;
	daemon_start(&f->a, f->data_dir, NULL);

	/* Not active: the handshake itself is refused. */
	EVP_PKEY *wkey = EVP_EC_gen("P-256");
	struct client web;
	mesh_client(&web, E.web_digest, 0, E.measurement, wkey);
	expect_refused(f->a.mesh, &web);
	wait_metric(&f->a, "attest_failures_total{code=\"ATTEST_E_POLICY_DIGEST\"}", 1);

	Coordinator__SetManifestResponse *r1 = NULL;
	assert_int_equal(set_manifest(&f->a, &E.v1, NULL, NULL, 0, &r1), 0);
	uint8_t seed[64], salt[32];
	seed_from_shares(r1->seedsharesjson, seed, salt);

	/* A workload of the manifest gets a leaf for its own key with its SANs and secret. */
	struct coordapi_conn *conn = dial(f->a.mesh, &web);
	Coordinator__NewMeshCertResponse *mc = NULL;
	assert_int_equal(new_mesh_cert_on(conn, &mc), 0);
	assert_string_equal(mc->meshcapem, r1->meshcapem);
	assert_string_equal(mc->rootcapem, r1->rootcapem);
	assert_true(chain_verifies(mc->certchainpem, mc->meshcapem, false));
	assert_true(chain_verifies(mc->certchainpem, mc->rootcapem, true));
	assert_false(chain_verifies(mc->certchainpem, mc->rootcapem, false));
	X509 *leaf = pem_cert(mc->certchainpem, 0);
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(leaf), wkey), 1);
	check_sans(leaf, "web");
	X509_free(leaf);
	struct secrets *sec = NULL;
	assert_int_equal(secrets_derive(seed, salt, &sec), 0);
	uint8_t ws[64];
	assert_int_equal(secrets_workload_secret(sec, WEB_SECRET_ID, ws), 0);
	secrets_free(sec);
	assert_int_equal(mc->workloadsecret.len, 64);
	assert_memory_equal(mc->workloadsecret.data, ws, 64);
	assert_string_equal(mc->workloadsecretid, WEB_SECRET_ID);
	wait_metric(&f->a, "mesh_certs_issued_total", 1);

	/* A workload is not a coordinator: no secrets for it. */
	Coordinator__PeerRecoverRequest prq = COORDINATOR__PEER_RECOVER_REQUEST__INIT;
	ProtobufCMessage *pr = NULL;
	assert_int_equal(coordapi_call(conn, COORDAPI_MESH_SERVICE, "PeerRecover", &prq.base,
				       &coordinator__peer_recover_response__descriptor, 0, &pr,
				       NULL),
			 TTRPC_PERMISSION_DENIED);

	/* Refusals in the handshake, each counted under its class. */
	uint8_t other[32], wrong_m[48];
	RAND_bytes(other, sizeof(other));
	memcpy(wrong_m, E.measurement, 48);
	wrong_m[0] ^= 0xff;
	struct client stranger, debug, badm, replay;
	mesh_client(&stranger, other, 0, E.measurement, NULL);
	mesh_client(&debug, E.web_digest, 0x30000 | SNP_DEBUG_BIT, E.measurement, NULL);
	mesh_client(&badm, E.web_digest, 0, wrong_m, NULL);
	expect_refused(f->a.mesh, &stranger);
	wait_metric(&f->a, "attest_failures_total{code=\"ATTEST_E_POLICY_DIGEST\"}", 2);
	expect_refused(f->a.mesh, &debug);
	wait_metric(&f->a, "attest_failures_total{code=\"ATTEST_E_DEBUG\"}", 1);
	expect_refused(f->a.mesh, &badm);
	wait_metric(&f->a, "attest_failures_total{code=\"ATTEST_E_MEASUREMENT\"}", 1);

	/* Evidence made for another nonce (a replayed attester certificate). */
	mesh_client(&replay, E.web_digest, 0, E.measurement, NULL);
	replay_inner = replay.issuer;
	struct atls_issuer shifted = {.kind = ATLS_EVIDENCE_SNP_SIM,
				      .get_evidence = replayed_evidence};
	SSL_CTX_free(replay.ctx);
	struct atls_config rcfg = {.issuer = &shifted, .verifier = &replay.v, .alpn = alpn};
	assert_int_equal(atls_ctx_new_client(&rcfg, &replay.ctx, NULL), 0);
	expect_refused(f->a.mesh, &replay);
	wait_metric(&f->a, "attest_failures_total{code=\"ATTEST_E_REPORT_DATA\"}", 1);

	/* An update rotates the mesh CA: new leaves chain to the new one only. */
	Coordinator__SetManifestResponse *r2 = NULL;
	assert_int_equal(set_manifest(&f->a, &E.v2, E.owner, NULL, 0, &r2), 0);
	Coordinator__NewMeshCertResponse *mc2 = NULL;
	assert_int_equal(new_mesh_cert_on(conn, &mc2), 0);
	assert_string_equal(mc2->meshcapem, r2->meshcapem);
	assert_true(chain_verifies(mc2->certchainpem, r2->meshcapem, false));
	assert_false(chain_verifies(mc2->certchainpem, r1->meshcapem, false));
	assert_true(chain_verifies(mc2->certchainpem, r1->rootcapem, true));
	leaf = pem_cert(mc2->certchainpem, 0);
	check_sans(leaf, "web2");
	X509_free(leaf);

	/* The workload's policy leaves the manifest: the open connection gets no more leaves. */
	assert_int_equal(set_manifest(&f->a, &E.v3, E.owner, NULL, 0, NULL), 0);
	Coordinator__NewMeshCertResponse *mc3 = NULL;
	assert_int_equal(new_mesh_cert_on(conn, &mc3), TTRPC_PERMISSION_DENIED);
	assert_null(mc3);
	coordapi_conn_free(conn);
	/* ... and new connections with it are refused during the handshake. */
	expect_refused(f->a.mesh, &web);
	wait_metric(&f->a, "attest_failures_total{code=\"ATTEST_E_POLICY_DIGEST\"}", 3);
	wait_metric(&f->a, "mesh_certs_issued_total", 2);

	protobuf_c_message_free_unpacked(&mc->base, NULL);
	protobuf_c_message_free_unpacked(&mc2->base, NULL);
	protobuf_c_message_free_unpacked(&r1->base, NULL);
	protobuf_c_message_free_unpacked(&r2->base, NULL);
	client_done(&web);
	client_done(&stranger);
	client_done(&debug);
	client_done(&badm);
	client_done(&replay);
	EVP_PKEY_free(wkey);
	daemon_stop(&f->a);
}

static void test_restart_and_user_recovery(void **state)
{
	struct fixture *f = *state;
	daemon_start(&f->a, f->data_dir, NULL);
	Coordinator__SetManifestResponse *r1 = NULL, *r2 = NULL;
	assert_int_equal(set_manifest(&f->a, &E.v1, NULL, NULL, 0, &r1), 0);
	assert_int_equal(set_manifest(&f->a, &E.v2, E.owner, NULL, 0, &r2), 0);
	uint8_t seed[64], salt[32];
	seed_from_shares(r1->seedsharesjson, seed, salt);
	daemon_stop(&f->a);

	/* After a restart the seed is gone: stale until recovered. */
	daemon_start(&f->a, f->data_dir, NULL);
	_cleanup_free_ char *ready = NULL;
	assert_int_equal(http_get(f->a.probe, "/readyz", &ready), 500);
	assert_non_null(strstr(ready, "stale"));
	assert_int_equal(metric(&f->a, "coordinator_state"), 2);
	Coordinator__GetManifestsResponse *gm = NULL;
	assert_int_equal(get_manifests(&f->a, &gm), TTRPC_FAILED_PRECONDITION);
	assert_int_equal(set_manifest(&f->a, &E.v1, E.owner, NULL, 0, NULL),
			 TTRPC_FAILED_PRECONDITION);

	/* Not the seed-share key, no key, or a wrong seed: refused. */
	assert_int_equal(recover(&f->a, E.owner, seed, salt, false), TTRPC_PERMISSION_DENIED);
	assert_int_equal(recover(&f->a, NULL, seed, salt, false), TTRPC_PERMISSION_DENIED);
	uint8_t bad_seed[64];
	memcpy(bad_seed, seed, 64);
	bad_seed[5] ^= 1;
	assert_int_equal(recover(&f->a, E.share, bad_seed, salt, false), TTRPC_PERMISSION_DENIED);
	assert_int_equal(metric(&f->a, "coordinator_state"), 2);

	/* The seed-share owner recovers it: same history and root, a new mesh CA. */
	assert_int_equal(recover(&f->a, E.share, seed, salt, false), 0);
	wait_ready(&f->a);
	assert_int_equal(get_manifests(&f->a, &gm), 0);
	assert_int_equal(gm->n_manifests, 2);
	assert_memory_equal(gm->manifests[1].data, E.v2.json, strlen(E.v2.json));
	assert_memory_equal(gm->latest.data, r2->transition.data, 32);
	assert_true(same_public_key(gm->rootcapem, r1->rootcapem));
	assert_false(same_public_key(gm->meshcapem, r2->meshcapem));
	assert_int_equal(recover(&f->a, E.share, seed, salt, false), TTRPC_FAILED_PRECONDITION);
	assert_int_equal(metric(&f->a, "coordinator_recoveries_total{kind=\"user\"}"), 1);

	/* Updates work again. */
	assert_int_equal(set_manifest(&f->a, &E.v3, E.owner, NULL, 0, NULL), 0);

	protobuf_c_message_free_unpacked(&gm->base, NULL);
	protobuf_c_message_free_unpacked(&r1->base, NULL);
	protobuf_c_message_free_unpacked(&r2->base, NULL);
	daemon_stop(&f->a);
}

static void wait_history(const struct daemon *dm, size_t n, const uint8_t latest[32])
{
	for (int i = 0; i < POLL_MAX; i++) {
		Coordinator__GetManifestsResponse *gm = NULL;
		int r = get_manifests(dm, &gm);
		bool done =
		    r == 0 && gm->n_manifests == n && memcmp(gm->latest.data, latest, 32) == 0;
		if (gm)
			protobuf_c_message_free_unpacked(&gm->base, NULL);
		if (done)
			return;
		usleep(20000);
	}
	dump_log(dm);
	fail_msg("the coordinator never caught up to %zu manifests", n);
}

static void test_peer_recovery(void **state)
{
	struct fixture *f = *state;
	daemon_start(&f->a, f->data_dir, NULL);
	Coordinator__SetManifestResponse *r1 = NULL, *r2 = NULL;
	assert_int_equal(set_manifest(&f->a, &E.v1, NULL, NULL, 0, &r1), 0);

	/* A second coordinator on the same store starts stale and recovers from the first. */
	_cleanup_free_ char *peer = str_printf("127.0.0.1:%u", f->a.mesh);
	daemon_start(&f->b, f->data_dir, peer);
	wait_ready(&f->b);
	wait_history(&f->b, 1, r1->transition.data);
	Coordinator__GetManifestsResponse *gb = NULL;
	assert_int_equal(get_manifests(&f->b, &gb), 0);
	assert_true(same_public_key(gb->rootcapem, r1->rootcapem));
	assert_true(same_public_key(gb->meshcapem, r1->meshcapem));
	protobuf_c_message_free_unpacked(&gb->base, NULL);
	assert_int_equal(metric(&f->b, "coordinator_recoveries_total{kind=\"peer\"}"), 1);

	/* Leaves from either chain to the same mesh CA. */
	struct client web;
	mesh_client(&web, E.web_digest, 0, E.measurement, NULL);
	_cleanup_(coordapi_conn_freep) struct coordapi_conn *conn = dial(f->b.mesh, &web);
	Coordinator__NewMeshCertResponse *mc = NULL;
	assert_int_equal(new_mesh_cert_on(conn, &mc), 0);
	assert_true(chain_verifies(mc->certchainpem, r1->meshcapem, false));
	protobuf_c_message_free_unpacked(&mc->base, NULL);

	/* An update on the first: the second notices, goes stale and recovers again, with the
	 * first's new mesh key. */
	assert_int_equal(set_manifest(&f->a, &E.v2, E.owner, NULL, 0, &r2), 0);
	wait_history(&f->b, 2, r2->transition.data);
	assert_int_equal(get_manifests(&f->b, &gb), 0);
	assert_true(same_public_key(gb->meshcapem, r2->meshcapem));
	protobuf_c_message_free_unpacked(&gb->base, NULL);

	/* Updates through the second reach the first the same way. */
	Coordinator__SetManifestResponse *r3 = NULL;
	assert_int_equal(set_manifest(&f->b, &E.v3, E.owner, NULL, 0, &r3), 0);
	assert_int_equal(get_manifests(&f->a, &gb), TTRPC_FAILED_PRECONDITION);

	protobuf_c_message_free_unpacked(&r1->base, NULL);
	protobuf_c_message_free_unpacked(&r2->base, NULL);
	protobuf_c_message_free_unpacked(&r3->base, NULL);
	client_done(&web);
	daemon_stop(&f->b);
	daemon_stop(&f->a);
}

static void test_recover_defers_to_active_peer(void **state)
{
	struct fixture *f = *state;
	daemon_start(&f->a, f->data_dir, NULL);
	Coordinator__SetManifestResponse *r1 = NULL;
	assert_int_equal(set_manifest(&f->a, &E.v1, NULL, NULL, 0, &r1), 0);
	uint8_t seed[64], salt[32];
	seed_from_shares(r1->seedsharesjson, seed, salt);
	uint16_t mesh_a = f->a.mesh;
	daemon_stop(&f->a);

	/* B starts while its peer is down (one round only, at start): stale. */
	_cleanup_free_ char *peer = str_printf("127.0.0.1:%u", mesh_a);
	daemon_start_opts(&f->b, f->data_dir, peer, 0, "1h");
	/* A comes back on the same port and its owner recovers it: a new mesh key. */
	daemon_start_opts(&f->a, f->data_dir, NULL, mesh_a, "1h");
	assert_int_equal(recover(&f->a, E.share, seed, salt, false), 0);
	Coordinator__GetManifestsResponse *ga = NULL, *gb = NULL;
	assert_int_equal(get_manifests(&f->a, &ga), 0);
	assert_false(same_public_key(ga->meshcapem, r1->meshcapem));

	/* Recovering B by hand while A is active would split the mesh key: refused, and B
	 * catches up from A instead. */
	assert_int_equal(metric(&f->b, "coordinator_state"), 2);
	assert_int_equal(recover(&f->b, E.share, seed, salt, false), TTRPC_FAILED_PRECONDITION);
	wait_ready(&f->b);
	assert_int_equal(get_manifests(&f->b, &gb), 0);
	assert_true(same_public_key(gb->meshcapem, ga->meshcapem));
	assert_int_equal(metric(&f->b, "coordinator_recoveries_total{kind=\"peer\"}"), 1);
	assert_int_equal(metric(&f->b, "coordinator_recoveries_total{kind=\"user\"}"), 0);

	protobuf_c_message_free_unpacked(&ga->base, NULL);
	protobuf_c_message_free_unpacked(&gb->base, NULL);
	protobuf_c_message_free_unpacked(&r1->base, NULL);
	daemon_stop(&f->b);
	daemon_stop(&f->a);
}

static void check_attest_doc(const struct daemon *dm, const char *want_state,
			     const uint8_t *want_manifest)
{
	uint8_t nonce[32];
	RAND_bytes(nonce, sizeof(nonce));
	char hex[65];
	hex_encode_into(nonce, 32, hex);
	_cleanup_free_ char *path = str_printf("/attest/%s", hex);
	_cleanup_free_ char *body = NULL;
	assert_int_equal(http_get(dm->http, path, &body), 200);
	struct coordapi_state st = {0};
	_cleanup_free_ char *msg = NULL;
	int r = coordapi_state_parse(body, strlen(body), &st, &msg);
	if (r < 0)
		fail_msg("state document: %s", msg);
	assert_string_equal(st.state, want_state);
	assert_int_equal(st.has_manifest, want_manifest != NULL);
	if (want_manifest)
		assert_memory_equal(st.manifest, want_manifest, 32);
	assert_int_equal(st.kind, ATLS_EVIDENCE_SNP_SIM);

	struct atls_verifier v;
	coord_verifier_init(&v, E.m1, true, E.anchor_pem, NULL);
	uint8_t rd[64];
	assert_int_equal(coordapi_state_report_data(&st, nonce, rd), 0);
	struct atls_verified out = {0};
	enum attest_error code = ATTEST_OK;
	_cleanup_free_ char *vmsg = NULL;
	r = atls_evidence_verify(st.kind, st.evidence, st.evidence_len, rd, &v, &out, &code, &vmsg);
	if (r < 0)
		fail_msg("evidence: %s", vmsg);
	assert_memory_equal(out.peer.policy_digest, E.coord_digest, 32);
	atls_verified_done(&out);

	/* The document is bound to its nonce and its state. */
	uint8_t other[32];
	memcpy(other, nonce, 32);
	other[0] ^= 1;
	assert_int_equal(coordapi_state_report_data(&st, other, rd), 0);
	_cleanup_free_ char *vmsg2 = NULL;
	assert_int_equal(atls_evidence_verify(st.kind, st.evidence, st.evidence_len, rd, &v, &out,
					      &code, &vmsg2),
			 -EACCES);
	assert_int_equal(code, ATTEST_E_REPORT_DATA);
	atls_verified_done(&out);
	coordapi_state_done(&st);
}

static void test_http_attestation(void **state)
{
	struct fixture *f = *state;
	daemon_start(&f->a, f->data_dir, NULL);
	check_attest_doc(&f->a, "uninitialized", NULL);
	assert_int_equal(set_manifest(&f->a, &E.v1, NULL, NULL, 0, NULL), 0);
	check_attest_doc(&f->a, "active", E.v1.sha256);

	assert_int_equal(http_get(f->a.http, "/attest/abc", NULL), 404);
	assert_int_equal(http_get(f->a.http, "/metrics", NULL), 404);
	assert_int_equal(http_get(f->a.http, "/", NULL), 404);
	_cleanup_free_ char *live = NULL;
	assert_int_equal(http_get(f->a.probe, "/startup", &live), 200);
	assert_non_null(strstr(live, "test mode"));
	daemon_stop(&f->a);
}

/* Peer lists may name this coordinator itself (a DNS name of all replicas): skipped without a
 * connection. */
static void test_peer_skips_self(void **state)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof(sa);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	uint16_t port = ntohs(sa.sin_port);

	assert_true(coord_address_is_self((struct sockaddr *)&sa, port));
	assert_false(coord_address_is_self((struct sockaddr *)&sa, (uint16_t)(port + 1)));
	assert_false(coord_address_is_self((struct sockaddr *)&sa, 0));
	struct sockaddr_in remote = sa;
	inet_pton(AF_INET, "192.0.2.1", &remote.sin_addr); /* TEST-NET-1: never local */
	assert_false(coord_address_is_self((struct sockaddr *)&remote, port));

	struct atls_sim_params p = {0};
	memcpy(p.measurement, E.measurement, 48);
	memcpy(p.host_data, E.coord_digest, 32);
	struct atls_issuer *is = NULL;
	assert_int_equal(atls_issuer_new_sim(E.pki, &p, &is), 0);
	_cleanup_free_ char *self = str_printf("127.0.0.1:%u", port);
	char *peers[] = {self, NULL};
	struct coord_peer_query q = {
	    .manifest = (const uint8_t *)E.v1.json,
	    .manifest_len = strlen(E.v1.json),
	    .peers = peers,
	    .self_port = port,
	    .issuer = is,
	    .test_anchor_pem = E.anchor_pem,
	};
	Coordinator__PeerRecoverResponse *resp = NULL;
	_cleanup_free_ char *msg = NULL;
	assert_int_equal(coord_peer_fetch(&q, &resp, NULL, &msg), -ENOENT);
	assert_null(resp);
	assert_non_null(strstr(msg, "besides this one"));
	/* Nothing connected to the listener. */
	assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(accept(fd, NULL, NULL), -1);
	assert_int_equal(errno, EAGAIN);
	atls_issuer_free(is);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_peer_skips_self),
	    cmocka_unit_test_setup_teardown(test_manifest_lifecycle, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_mesh_certificates, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_restart_and_user_recovery, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_peer_recovery, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_recover_defers_to_active_peer, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_http_attestation, setup, teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

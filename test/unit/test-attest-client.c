/* Unit tests for the pod VM attestation client's pieces that need no coordinator: the coordinator
 * address from flag or initdata, HOST_DATA for simulated evidence, the checks on a NewMeshCert
 * answer, the mesh files (modes, atomic replacement, secret removal), the mesh aTLS context
 * against an attesting and verifying server, backoff and renewal timing, and the flag table. */
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "coordinator/ca.h"
#include "coordinator/secrets.h"
#include "podvm/attest/attest-client.h"
#include "tls/tls.h"
#include "userdata/userdata.h"

struct fixture {
	char dir[64];
	struct secrets *secrets;
	struct ca *ca;
	EVP_PKEY *key; /* the client's key */
	int64_t now;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	str_copy(f->dir, sizeof(f->dir), "/tmp/test-attest-client-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->now = (int64_t)time(NULL);
	assert_int_equal(secrets_generate(&f->secrets), 0);
	assert_int_equal(ca_new(f->secrets->root_key, NULL, f->now, &f->ca), 0);
	assert_int_equal(tls_key_generate(&f->key), 0);
	umask(022);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	rm_rf(f->dir);
	ca_free(f->ca);
	secrets_free(f->secrets);
	EVP_PKEY_free(f->key);
	free(f);
	return 0;
}

static char *join(const struct fixture *f, const char *rel)
{
	char *p = str_printf("%s%s", f->dir, rel);
	assert_non_null(p);
	return p;
}

static void write_initdata(const struct fixture *f, const char *toml)
{
	char *dir = join(f, "/run/peerpod"), *path = join(f, ATTEST_CLIENT_INITDATA);
	assert_int_equal(mkdir_p(dir, 0755), 0);
	char *encoded = NULL;
	assert_int_equal(initdata_encode(toml, strlen(toml), &encoded), 0);
	assert_int_equal(write_file_atomic(path, encoded, strlen(encoded), 0644), 0);
	free(encoded);
	free(dir);
	free(path);
}

#define TOML_HEAD "algorithm = \"sha256\"\nversion = \"0.1.0\"\n\n[data]\n"

static void test_address_flag(void **state)
{
	struct fixture *f = *state;
	char *a = NULL, *msg = NULL;
	/* The flag wins over initdata and is trimmed. */
	write_initdata(f, TOML_HEAD "\"coordinator\" = \"other:1\"\n");
	assert_int_equal(
	    attest_client_coordinator_address(f->dir, " coord.default:7777\n", &a, &msg), 0);
	assert_string_equal(a, "coord.default:7777");
	a = mfree(a);
	assert_int_equal(attest_client_coordinator_address(f->dir, "[fd00::1]:7777", &a, &msg), 0);
	assert_string_equal(a, "[fd00::1]:7777");
	a = mfree(a);
	static const char *const bad[] = {"coord", "coord:",       "coord:0",     "coord:70000",
					  ":7777", "fd00::1:7777", "co ord:7777", "[]:7777"};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		assert_int_equal(attest_client_coordinator_address(f->dir, bad[i], &a, &msg),
				 -EINVAL);
		assert_null(a);
		assert_non_null(strstr(msg, "HOST:PORT"));
		msg = mfree(msg);
	}
}

static void test_address_initdata(void **state)
{
	struct fixture *f = *state;
	char *a = NULL, *msg = NULL;
	/* Nothing anywhere: -ENOENT naming the file. */
	assert_int_equal(attest_client_coordinator_address(f->dir, NULL, &a, &msg), -ENOENT);
	assert_non_null(strstr(msg, "run/peerpod/initdata"));
	assert_non_null(strstr(msg, ATTEST_CLIENT_ADDRESS_ENV));
	msg = mfree(msg);

	/* A multi-line literal with surrounding blanks, as a YAML-generated document has it. */
	write_initdata(f, TOML_HEAD "\"aa.toml\" = '''\n'''\n\"coordinator\" = '''\n"
				    "  10.0.0.7:7777  \n'''\n");
	assert_int_equal(attest_client_coordinator_address(f->dir, "", &a, &msg), 0);
	assert_string_equal(a, "10.0.0.7:7777");
	a = mfree(a);

	/* No entry. */
	write_initdata(f, TOML_HEAD "\"aa.toml\" = '''\n'''\n");
	assert_int_equal(attest_client_coordinator_address(f->dir, NULL, &a, &msg), -ENOENT);
	assert_non_null(strstr(msg, "\"coordinator\""));
	msg = mfree(msg);

	/* A malformed entry. */
	write_initdata(f, TOML_HEAD "\"coordinator\" = \"no port\"\n");
	assert_int_equal(attest_client_coordinator_address(f->dir, NULL, &a, &msg), -EINVAL);
	assert_non_null(strstr(msg, "no port"));
	msg = mfree(msg);

	/* A document that is not initdata. */
	char *path = join(f, ATTEST_CLIENT_INITDATA);
	assert_int_equal(write_file_atomic(path, "not base64!", 11, 0644), 0);
	assert_int_equal(attest_client_coordinator_address(f->dir, NULL, &a, &msg), -ENOENT);
	assert_non_null(strstr(msg, "malformed"));
	msg = mfree(msg);
	free(path);
}

static void test_host_data(void **state)
{
	struct fixture *f = *state;
	uint8_t d[32];
	char *msg = NULL;
	assert_int_equal(attest_client_read_host_data(f->dir, d, &msg), -ENOENT);
	msg = mfree(msg);
	char *dir = join(f, "/run/peerpod"), *path = join(f, ATTEST_CLIENT_INITDATA_DIGEST);
	assert_int_equal(mkdir_p(dir, 0755), 0);
	assert_int_equal(
	    write_file_atomic(path, INITDATA_DEFAULT_SHA256, strlen(INITDATA_DEFAULT_SHA256), 0644),
	    0);
	assert_int_equal(attest_client_read_host_data(f->dir, d, &msg), 0);
	assert_int_equal(d[0], 0xad);
	assert_int_equal(d[31], 0x8d);
	/* A sha384 digest is no SNP HOST_DATA. */
	assert_int_equal(write_file_atomic(path, "ab", 2, 0644), 0);
	assert_int_equal(attest_client_read_host_data(f->dir, d, &msg), -EINVAL);
	msg = mfree(msg);
	free(dir);
	free(path);
}

static void mesh_cert(const struct fixture *f, const struct ca *ca, EVP_PKEY *key, const char *id,
		      struct ca_mesh_cert *ret)
{
	char *sans[] = {"web", "web.default.svc", NULL};
	struct manifest_policy p = {.sans = sans, .n_sans = 2, .workload_secret_id = (char *)id};
	memset(p.digest, 0x42, sizeof(p.digest));
	assert_int_equal(ca_new_mesh_cert(ca, f->secrets, &p, key, f->now, ret), 0);
}

static void test_answer_checks(void **state)
{
	struct fixture *f = *state;
	struct ca_mesh_cert mc = {};
	mesh_cert(f, f->ca, f->key, "apps/v1/Deployment/default/web", &mc);
	struct attest_client_answer a = {};
	char *msg = NULL;
	assert_int_equal(attest_client_check_answer(f->key, mc.mesh_ca_pem, mc.chain_pem,
						    mc.root_pem, mc.workload_secret, 64,
						    "apps/v1/Deployment/default/web", 0, &a, &msg),
			 0);
	assert_true(a.has_secret);
	assert_memory_equal(a.secret, mc.workload_secret, 64);
	assert_string_equal(a.secret_id, "apps/v1/Deployment/default/web");
	/* Leaves are backdated 1 h and valid for a year. */
	assert_true(a.not_before_sec <= f->now && a.not_after_sec > f->now + 300 * 86400);
	attest_client_answer_done(&a);

	/* A chain for another key. */
	EVP_PKEY *other = NULL;
	assert_int_equal(tls_key_generate(&other), 0);
	assert_int_equal(attest_client_check_answer(other, mc.mesh_ca_pem, mc.chain_pem,
						    mc.root_pem, NULL, 0, NULL, 0, &a, &msg),
			 -EBADMSG);
	assert_non_null(strstr(msg, "not for this client's key"));
	msg = mfree(msg);

	/* The leaf of another CA: neither the mesh CA nor the root verify it. */
	struct ca *ca2 = NULL;
	struct secrets *s2 = NULL;
	assert_int_equal(secrets_generate(&s2), 0);
	assert_int_equal(ca_new(s2->root_key, NULL, f->now, &ca2), 0);
	struct ca_mesh_cert mc2 = {};
	mesh_cert(f, ca2, f->key, NULL, &mc2);
	assert_int_equal(attest_client_check_answer(f->key, mc.mesh_ca_pem, mc2.chain_pem,
						    mc.root_pem, NULL, 0, NULL, 0, &a, &msg),
			 -EBADMSG);
	assert_non_null(strstr(msg, "mesh CA"));
	msg = mfree(msg);
	/* Right mesh CA, wrong root. */
	assert_int_equal(attest_client_check_answer(f->key, mc.mesh_ca_pem, mc.chain_pem,
						    mc2.root_pem, NULL, 0, NULL, 0, &a, &msg),
			 -EBADMSG);
	assert_non_null(strstr(msg, "root CA"));
	msg = mfree(msg);
	/* Past the leaf's validity. */
	assert_int_equal(attest_client_check_answer(f->key, mc.mesh_ca_pem, mc.chain_pem,
						    mc.root_pem, NULL, 0, NULL,
						    f->now + 2 * 366 * 86400, &a, &msg),
			 -EBADMSG);
	msg = mfree(msg);

	/* The leaf alone, garbage, a chain where a CA belongs. */
	char *leaf_only = strndup(mc.chain_pem, strstr(mc.chain_pem, "-----END CERTIFICATE-----") -
						    mc.chain_pem + 26);
	assert_int_equal(attest_client_check_answer(f->key, mc.mesh_ca_pem, leaf_only, mc.root_pem,
						    NULL, 0, NULL, 0, &a, &msg),
			 -EBADMSG);
	assert_non_null(strstr(msg, "two PEM certificates"));
	msg = mfree(msg);
	assert_int_equal(attest_client_check_answer(f->key, "junk", mc.chain_pem, mc.root_pem, NULL,
						    0, NULL, 0, &a, &msg),
			 -EBADMSG);
	msg = mfree(msg);
	assert_int_equal(attest_client_check_answer(f->key, mc.chain_pem, mc.chain_pem, mc.root_pem,
						    NULL, 0, NULL, 0, &a, &msg),
			 -EBADMSG);
	assert_non_null(strstr(msg, "mesh CA"));
	msg = mfree(msg);
	assert_int_equal(attest_client_check_answer(f->key, mc.mesh_ca_pem, mc.chain_pem, "", NULL,
						    0, NULL, 0, &a, &msg),
			 -EBADMSG);
	msg = mfree(msg);

	/* A secret of the wrong size, a secret without id, an id without secret. */
	assert_int_equal(attest_client_check_answer(f->key, mc.mesh_ca_pem, mc.chain_pem,
						    mc.root_pem, mc.workload_secret, 32, "id", 0,
						    &a, &msg),
			 -EBADMSG);
	msg = mfree(msg);
	assert_int_equal(attest_client_check_answer(f->key, mc.mesh_ca_pem, mc.chain_pem,
						    mc.root_pem, mc.workload_secret, 64, "", 0, &a,
						    &msg),
			 -EBADMSG);
	msg = mfree(msg);
	assert_int_equal(attest_client_check_answer(f->key, mc.mesh_ca_pem, mc.chain_pem,
						    mc.root_pem, NULL, 0, "id", 0, &a, &msg),
			 -EBADMSG);
	msg = mfree(msg);

	free(leaf_only);
	ca_mesh_cert_done(&mc2);
	ca_free(ca2);
	secrets_free(s2);
	EVP_PKEY_free(other);
	ca_mesh_cert_done(&mc);
}

static mode_t mode_of(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	return st.st_mode & 07777;
}

static ino_t inode_of(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	return st.st_ino;
}

static char *slurp(const char *path)
{
	char *s = NULL;
	size_t len;
	assert_int_equal(read_file_bounded(path, 1 << 20, &s, &len), 0);
	return s;
}

static size_t count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (!str_eq(e->d_name, ".") && !str_eq(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void test_write_files(void **state)
{
	struct fixture *f = *state;
	struct ca_mesh_cert mc = {};
	mesh_cert(f, f->ca, f->key, "apps/v1/Deployment/default/web", &mc);
	struct attest_client_answer a = {};
	assert_int_equal(attest_client_check_answer(f->key, mc.mesh_ca_pem, mc.chain_pem,
						    mc.root_pem, mc.workload_secret, 64,
						    "apps/v1/Deployment/default/web", 0, &a, NULL),
			 0);
	/* A pre-existing directory with a stricter mode is fixed up. */
	char *dir = join(f, ATTEST_CLIENT_MESH_DIR);
	assert_int_equal(mkdir_p(dir, 0700), 0);
	char *msg = NULL;
	assert_int_equal(attest_client_write_files(f->dir, f->key, &a, &msg), 0);
	assert_null(msg);

	char *key = join(f, "/run/peerpod/mesh/key.pem"),
	     *chain = join(f, "/run/peerpod/mesh/cert-chain.pem"),
	     *mesh = join(f, "/run/peerpod/mesh/mesh-ca.pem"),
	     *root = join(f, "/run/peerpod/mesh/root-ca.pem"),
	     *secret = join(f, "/run/peerpod/mesh/workload-secret"),
	     *secret_id = join(f, "/run/peerpod/mesh/workload-secret-id");
	assert_int_equal(mode_of(dir), 0755);
	assert_int_equal(mode_of(key), 0600);
	assert_int_equal(mode_of(secret), 0600);
	assert_int_equal(mode_of(chain), 0644);
	assert_int_equal(mode_of(mesh), 0644);
	assert_int_equal(mode_of(root), 0644);
	assert_int_equal(mode_of(secret_id), 0644);
	/* Six files, no temporary left behind. */
	assert_int_equal(count_entries(dir), 6);

	char *s = slurp(key);
	assert_non_null(strstr(s, "-----BEGIN PRIVATE KEY-----"));
	EVP_PKEY *k = NULL;
	assert_int_equal(tls_key_from_pem(s, strlen(s), &k), 0);
	assert_int_equal(EVP_PKEY_eq(k, f->key), 1);
	EVP_PKEY_free(k);
	free_secret(s);
	s = slurp(chain);
	assert_string_equal(s, mc.chain_pem);
	free(s);
	s = slurp(mesh);
	assert_string_equal(s, mc.mesh_ca_pem);
	free(s);
	s = slurp(root);
	assert_string_equal(s, mc.root_pem);
	free(s);
	s = slurp(secret);
	char hex[129];
	hex_encode_into(mc.workload_secret, 64, hex);
	assert_string_equal(s, hex);
	free(s);
	s = slurp(secret_id);
	assert_string_equal(s, "apps/v1/Deployment/default/web");
	free(s);

	/* A renewal replaces each file by rename (new inode: a reader holding the old file sees a
	 * whole old file, never a partial one); a policy without a secret removes both. */
	ino_t chain_ino = inode_of(chain), key_ino = inode_of(key);
	struct ca_mesh_cert mc2 = {};
	mesh_cert(f, f->ca, f->key, NULL, &mc2);
	struct attest_client_answer b = {};
	assert_int_equal(attest_client_check_answer(f->key, mc2.mesh_ca_pem, mc2.chain_pem,
						    mc2.root_pem, NULL, 0, NULL, 0, &b, NULL),
			 0);
	assert_int_equal(attest_client_write_files(f->dir, f->key, &b, &msg), 0);
	assert_int_not_equal(inode_of(chain), chain_ino);
	assert_int_not_equal(inode_of(key), key_ino);
	s = slurp(chain);
	assert_string_equal(s, mc2.chain_pem);
	free(s);
	struct stat st;
	assert_int_equal(stat(secret, &st), -1);
	assert_int_equal(stat(secret_id, &st), -1);
	assert_int_equal(count_entries(dir), 4);
	/* And again without anything to remove. */
	assert_int_equal(attest_client_write_files(f->dir, f->key, &b, &msg), 0);

	/* An unwritable place is an error with the path. */
	char *blocker = join(f, "/blocked");
	assert_int_equal(write_file_atomic(blocker, "x", 1, 0644), 0);
	assert_true(attest_client_write_files(blocker, f->key, &b, &msg) < 0);
	assert_non_null(strstr(msg, "blocked"));
	msg = mfree(msg);

	free(blocker);
	attest_client_answer_done(&a);
	attest_client_answer_done(&b);
	ca_mesh_cert_done(&mc);
	ca_mesh_cert_done(&mc2);
	free(dir);
	free(key);
	free(chain);
	free(mesh);
	free(root);
	free(secret);
	free(secret_id);
}

static void test_backoff(void **state)
{
	const int64_t initial = NSEC_PER_SEC, max = 30 * NSEC_PER_SEC;
	const uint64_t randoms[] = {0, 1, 0x8000000000000000ull, 0x123456789abcdefull, UINT64_MAX};
	for (unsigned attempt = 0; attempt < 70; attempt++) {
		int64_t cap = attempt < 5 ? initial << attempt : max;
		for (size_t i = 0; i < ELEMENTSOF(randoms); i++) {
			int64_t d = attest_client_backoff_ns(attempt, initial, max, randoms[i]);
			assert_true(d >= cap / 2);
			assert_true(d <= cap);
		}
	}
	/* Jitter: different random values give different delays. */
	assert_int_not_equal(attest_client_backoff_ns(3, initial, max, 0),
			     attest_client_backoff_ns(3, initial, max, UINT64_MAX));
}

static void test_renew_delay(void **state)
{
	/* 80% of a 1000 s validity from its start. */
	assert_int_equal(attest_client_renew_delay_ns(1000, 2000, 0.8, 1000), 800 * NSEC_PER_SEC);
	assert_int_equal(attest_client_renew_delay_ns(1000, 2000, 0.5, 1100), 400 * NSEC_PER_SEC);
	/* Past the renewal point, or an expired leaf: the floor, never zero or negative. */
	assert_int_equal(attest_client_renew_delay_ns(1000, 2000, 0.8, 1900),
			 ATTEST_CLIENT_MIN_RENEW_NS);
	assert_int_equal(attest_client_renew_delay_ns(1000, 2000, 0.8, 5000),
			 ATTEST_CLIENT_MIN_RENEW_NS);
	/* A ten-year leaf does not overflow. */
	assert_true(attest_client_renew_delay_ns(0, INT64_C(400000000000), 1.0, 0) > 0);

	double v;
	assert_int_equal(attest_client_parse_fraction("0.8", &v), 0);
	assert_true(v > 0.79 && v < 0.81);
	assert_int_equal(attest_client_parse_fraction("1", &v), 0);
	static const char *const bad[] = {"", "0", "-0.5", "1.01", "abc", "0.5x", "nan", "inf"};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++)
		assert_int_equal(attest_client_parse_fraction(bad[i], &v), -EINVAL);
}

static int parse_flags(char **argv, int argc, struct attest_client_options *o, char **msg)
{
	const struct config_table tables[] = {
	    {attest_client_option_table, attest_client_n_options, o},
	    {attest_client_hidden_option_table, attest_client_n_hidden_options, o},
	};
	int argind = 0;
	return config_parse(tables, ELEMENTSOF(tables), argc, argv, &argind, msg);
}

static void options_free(struct attest_client_options *o)
{
	config_free(attest_client_option_table, attest_client_n_options, o);
	config_free(attest_client_hidden_option_table, attest_client_n_hidden_options, o);
	*o = (struct attest_client_options){};
}

static const char *no_env(const char *name)
{
	return str_eq(name, ATTEST_CLIENT_ADDRESS_ENV) ? "env-coord:7777" : NULL;
}

static void test_flags(void **state)
{
	config_set_getenv(no_env);
	struct attest_client_options o = {};
	char *msg = NULL;
	char *none[] = {NULL};
	assert_int_equal(parse_flags(none, 0, &o, &msg), 0);
	assert_string_equal(o.coordinator, "env-coord:7777");
	assert_string_equal(o.evidence, "auto");
	assert_false(o.once);
	assert_int_equal(o.timeout_ns, 0);
	assert_int_equal(o.retry_max_ns, 30 * NSEC_PER_SEC);
	assert_int_equal(o.retry_initial_ns, NSEC_PER_SEC);
	assert_string_equal(o.renew_fraction, "0.8");
	options_free(&o);

	char *good[] = {"-coordinator",
			"c:1",
			"-evidence=sim",
			"-once",
			"-timeout",
			"2m",
			"-retry-max=5s",
			"-sim-measurement",
			"000000000000000000000000000000000000000000000000000000000000000000000000"
			"000000000000000000000000",
			NULL};
	assert_int_equal(parse_flags(good, 9, &o, &msg), 0);
	assert_string_equal(o.coordinator, "c:1");
	assert_true(o.once);
	assert_int_equal(o.timeout_ns, 120 * NSEC_PER_SEC);
	assert_int_equal(o.retry_max_ns, 5 * NSEC_PER_SEC);
	options_free(&o);

	char *bad[][2] = {{"-evidence", "sgx"},       {"-renew-fraction", "1.5"},
			  {"-retry-max", "0s"},       {"-timeout", "-1s"},
			  {"-sim-measurement", "ab"}, {"-sim-guest-policy", "xyz"}};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		char *argv[] = {bad[i][0], bad[i][1], NULL};
		assert_int_equal(parse_flags(argv, 2, &o, &msg), -EINVAL);
		assert_non_null(msg);
		msg = mfree(msg);
		options_free(&o);
	}
	config_set_getenv(NULL);
}

/* ---- the mesh context against an attesting, verifying server (the coordinator's mesh API) ---- */

struct side {
	SSL_CTX *ctx;
	SSL *ssl;
	int fd;
	bool server;
	bool ok; /* handshake and one byte each way */
};

static void *side_run(void *arg)
{
	struct side *s = arg;
	assert_int_equal(atls_ssl_new(s->ctx, s->server ? NULL : "localhost", &s->ssl), 0);
	SSL_set_fd(s->ssl, s->fd);
	int r = s->server ? SSL_accept(s->ssl) : SSL_connect(s->ssl);
	/* TLS 1.3: the client reads first so that a refusal of its certificate arrives. */
	char c = 'x';
	if (r == 1 && s->server)
		s->ok = SSL_write(s->ssl, &c, 1) == 1 && SSL_read(s->ssl, &c, 1) == 1;
	else if (r == 1)
		s->ok = SSL_read(s->ssl, &c, 1) == 1 && SSL_write(s->ssl, &c, 1) == 1;
	ERR_clear_error();
	shutdown(s->fd, SHUT_RDWR);
	return NULL;
}

static void handshake(struct side *client, struct side *server)
{
	int fds[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
	client->fd = fds[0];
	server->fd = fds[1];
	server->server = true;
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, side_run, server), 0);
	side_run(client);
	assert_int_equal(pthread_join(t, NULL), 0);
	close(fds[0]);
	close(fds[1]);
}

static void test_mesh_handshake(void **state)
{
	struct fixture *f = *state;
	struct atls_test_pki *pki = NULL;
	char *msg = NULL;
	assert_int_equal(atls_test_pki_new(f->now, &pki, &msg), 0);
	struct atls_sim_params p = {.host_data = {0x42}};
	memset(p.measurement, 0xab, sizeof(p.measurement));
	struct atls_issuer *server_is = NULL, *client_is = NULL;
	assert_int_equal(atls_issuer_new_sim(pki, &p, &server_is), 0);
	assert_int_equal(atls_issuer_new_sim(pki, &p, &client_is), 0);
	/* The coordinator's side: attests, verifies the client, speaks ttrpc. */
	static char *alpn[] = {"ttrpc", NULL};
	struct atls_verifier v = {.test_anchor_pem = pki->ark_pem};
	struct atls_config sc = {.issuer = server_is, .verifier = &v, .alpn = alpn};
	struct side server = {}, client = {};
	assert_int_equal(atls_ctx_new_server(&sc, &server.ctx, &msg), 0);

	assert_int_equal(attest_client_ctx_new(client_is, f->key, &client.ctx, &msg), 0);
	handshake(&client, &server);
	assert_true(client.ok);
	assert_true(server.ok);
	/* The server verified evidence bound to the client's own key, and picked ttrpc. */
	const struct atls_peer *peer = atls_ssl_peer(server.ssl);
	assert_non_null(peer);
	assert_int_equal(peer->kind, ATLS_EVIDENCE_SNP_SIM);
	assert_memory_equal(peer->measurement, p.measurement, 48);
	X509 *cert = SSL_get0_peer_certificate(server.ssl);
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(cert), f->key), 1);
	char proto[16];
	assert_int_equal(atls_ssl_get_alpn(client.ssl, proto, sizeof(proto)), 0);
	assert_string_equal(proto, "ttrpc");
	SSL_free(client.ssl);
	SSL_free(server.ssl);
	SSL_CTX_free(client.ctx);

	/* A plain non-verifying aTLS client works too: lib/atls always sends a nonce, which the
	 * attesting server requires. */
	struct atls_config cc = {.issuer = client_is, .key = f->key, .alpn = alpn};
	struct side plain = {}, server2 = {.ctx = server.ctx};
	assert_int_equal(atls_ctx_new_client(&cc, &plain.ctx, &msg), 0);
	handshake(&plain, &server2);
	assert_true(plain.ok);
	assert_true(server2.ok);
	SSL_free(plain.ssl);
	SSL_free(server2.ssl);
	SSL_CTX_free(plain.ctx);

	SSL_CTX_free(server.ctx);
	atls_issuer_free(server_is);
	atls_issuer_free(client_is);
	atls_test_pki_free(pki);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_address_flag, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_address_initdata, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_host_data, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_answer_checks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_write_files, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_mesh_handshake, setup, teardown),
	    cmocka_unit_test(test_backoff),
	    cmocka_unit_test(test_renew_delay),
	    cmocka_unit_test(test_flags),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

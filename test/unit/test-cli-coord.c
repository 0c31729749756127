/* Unit tests for peerpodctl set/verify/recover/state/atls-cert (cli/coord.c) that need no
 * coordinator: usage errors, and the verify checks on crafted GetManifests answers (a broken
 * history chain, a bad signature, a different manifest, policy documents that do not match). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "cli/cli.h"
#include "coordinator.pb-c.h"
#include "coordapi/coordapi.h"
#include "tls/tls.h"

/* ---- usage errors ---- */

struct run {
	int code;
	char *out, *err;
};

static struct run run_argv(char **argv)
{
	struct run r = {};
	size_t n_out = 0, n_err = 0;
	FILE *out = open_memstream(&r.out, &n_out), *err = open_memstream(&r.err, &n_err);
	assert_non_null(out);
	assert_non_null(err);
	int argc = 0;
	while (argv[argc])
		argc++;
	r.code = cli_coord_run(argc, argv, out, err);
	fclose(out);
	fclose(err);
	return r;
}

static void run_done(struct run *r)
{
	free(r->out);
	free(r->err);
}

static void expect_usage(char **argv, const char *needle)
{
	struct run r = run_argv(argv);
	if (r.code != CLI_EXIT_USAGE || !strstr(r.err, needle))
		fail_msg("%s: code %d, stderr \"%s\", want 2 and \"%s\"", argv[0], r.code, r.err,
			 needle);
	run_done(&r);
}

static void test_commands(void **state)
{
	assert_true(cli_coord_is_command("set"));
	assert_true(cli_coord_is_command("verify"));
	assert_true(cli_coord_is_command("recover"));
	assert_true(cli_coord_is_command("state"));
	assert_true(cli_coord_is_command("atls-cert"));
	assert_false(cli_coord_is_command("manifest"));
	assert_false(cli_coord_is_command("create"));
	assert_false(cli_coord_is_command(NULL));

	char *help[] = {"verify", "--help", NULL};
	struct run r = run_argv(help);
	assert_int_equal(r.code, CLI_EXIT_OK);
	assert_non_null(strstr(r.out, "peerpodctl recover"));
	assert_non_null(strstr(r.out, "test only"));
	run_done(&r);
}

static void test_usage_errors(void **state)
{
	expect_usage((char *[]){"set", NULL}, "needs -c HOST:PORT and -m");
	expect_usage((char *[]){"set", "-c", "h:1", NULL}, "needs -c HOST:PORT and -m");
	expect_usage((char *[]){"set", "-c", "h:1", "-m", "m.json", "--sign", NULL},
		     "--sign needs --workload-owner-key");
	expect_usage(
	    (char *[]){"set", "-c", "h:1", "-m", "m.json", "--initdata", "d", "a.yaml", NULL},
	    "not both");
	expect_usage((char *[]){"set", "-c", "h:1", "-m", "m.json", "--seedshare-out", "a",
				"--seedshare-dir", "b", NULL},
		     "not both");
	expect_usage((char *[]){"set", "-c", NULL}, "needs a value");
	expect_usage((char *[]){"set", "--bogus", NULL}, "unknown option '--bogus'");
	expect_usage((char *[]){"verify", NULL}, "verify needs -c");
	expect_usage((char *[]){"verify", "-c", "h:1", "--sign", NULL},
		     "'verify' does not take --sign");
	expect_usage((char *[]){"verify", "-c", "h:1", "extra", NULL}, "unexpected argument");
	expect_usage((char *[]){"recover", "-c", "h:1", "--seedshare-key", "k", NULL},
		     "--seedshare-file");
	expect_usage((char *[]){"recover", "-c", "h:1", "-o", "x", NULL}, "does not take --output");
	expect_usage((char *[]){"state", NULL}, "state needs -u");
	expect_usage((char *[]){"state", "-u", "ftp://h:1", NULL}, "http://");
	expect_usage((char *[]){"state", "-c", "h:1", NULL}, "does not take --coordinator");
	expect_usage((char *[]){"atls-cert", NULL}, "--new-pki");
	expect_usage((char *[]){"atls-cert", "--new-pki", "d", "--pki", "e", NULL},
		     "--new-pki takes no other option");
	expect_usage((char *[]){"atls-cert", "--pki", "d", "--measurement", "ab", "--host-data",
				"cd", "--nonce", "ef", "-o", "c", "-k", "k", NULL},
		     "--measurement needs 96 hex digits");

	/* Not a usage error: a missing manifest file is a failure naming it. */
	struct run r = run_argv(
	    (char *[]){"verify", "-c", "127.0.0.1:1", "-m", "/nonexistent/manifest.json", NULL});
	assert_int_equal(r.code, CLI_EXIT_FAILED);
	assert_non_null(strstr(r.err, "/nonexistent/manifest.json"));
	run_done(&r);
}

/* ---- verify checks ---- */

#define TOML_COORD                                                                  \
	"algorithm = \"sha256\"\nversion = \"0.1.0\"\n\n[data]\n\"policy.rego\" = " \
	"'''\ncoord\n'''\n"
#define TOML_WEB "algorithm = \"sha256\"\nversion = \"0.1.0\"\n\n[data]\n\"aa.toml\" = '''\n'''\n"

static char *digest_of(const char *toml)
{
	uint8_t d[32];
	SHA256((const uint8_t *)toml, strlen(toml), d);
	return hex_encode(d, 32);
}

static char *manifest_json(const char *web_san)
{
	char *c = digest_of(TOML_COORD), *w = digest_of(TOML_WEB);
	char *m = str_printf(
	    "{\"Policies\":{\"%s\":{\"SANs\":[\"coordinator\"],\"Role\":\"coordinator\"},"
	    "\"%s\":{\"SANs\":[\"%s\"]}},"
	    "\"ReferenceValues\":{\"snp\":[{\"ProductName\":\"Milan\",\"TrustedMeasurement\":"
	    "\"%096d\",\"MinimumTCB\":{\"BootloaderVersion\":0,\"TEEVersion\":0,\"SNPVersion\":0,"
	    "\"MicrocodeVersion\":0},\"GuestPolicy\":{\"SMT\":true},\"PlatformInfo\":{}}]},"
	    "\"WorkloadOwnerPubKeys\":[],\"SeedshareOwnerPubKeys\":[]}\n",
	    c, w, web_san, 0);
	free(c);
	free(w);
	return m;
}

/* A consistent answer: two manifests, the policies of the second, CAs, a signed latest. */
struct history_fixture {
	char *m[3]; /* m[2]: not part of the history */
	ProtobufCBinaryData manifests[2];
	Coordinator__Policy policy[2];
	Coordinator__Policy *policies[2];
	uint8_t latest[32];
	uint8_t *sig;
	size_t sig_len;
	uint8_t *spki;
	size_t spki_len;
	char *root_pem, *mesh_pem;
	EVP_PKEY *signer;
	Coordinator__GetManifestsResponse resp;
};

static void sign_latest(struct history_fixture *f, EVP_PKEY *key, const uint8_t hash[32])
{
	free(f->sig);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha384(), NULL, key), 1);
	size_t len = 0;
	assert_int_equal(EVP_DigestSign(md, NULL, &len, hash, 32), 1);
	f->sig = malloc(len);
	assert_int_equal(EVP_DigestSign(md, f->sig, &len, hash, 32), 1);
	f->sig_len = len;
	EVP_MD_CTX_free(md);
	f->resp.latestsignature = (ProtobufCBinaryData){.data = f->sig, .len = f->sig_len};
}

static void set_spki(struct history_fixture *f, EVP_PKEY *key)
{
	free(f->spki);
	unsigned char *der = NULL;
	int n = i2d_PUBKEY(key, &der);
	assert_true(n > 0);
	f->spki = malloc((size_t)n);
	memcpy(f->spki, der, (size_t)n);
	OPENSSL_free(der);
	f->spki_len = (size_t)n;
	f->resp.signingpublickey = (ProtobufCBinaryData){.data = f->spki, .len = f->spki_len};
}

static int history_setup(void **state)
{
	struct history_fixture *f = calloc(1, sizeof(*f));
	f->m[0] = manifest_json("web");
	f->m[1] = manifest_json("web.default.svc");
	f->m[2] = manifest_json("elsewhere");
	uint8_t t[32] = {0};
	for (int i = 0; i < 2; i++) {
		f->manifests[i] =
		    (ProtobufCBinaryData){.data = (uint8_t *)f->m[i], .len = strlen(f->m[i])};
		uint8_t mh[32], next[32];
		SHA256(f->manifests[i].data, f->manifests[i].len, mh);
		coordapi_transition_hash(mh, t, next);
		memcpy(t, next, 32);
	}
	memcpy(f->latest, t, 32);
	static const char *const tomls[] = {TOML_COORD, TOML_WEB};
	for (int i = 0; i < 2; i++) {
		f->policy[i] = (Coordinator__Policy)COORDINATOR__POLICY__INIT;
		f->policy[i].digest = digest_of(tomls[i]);
		f->policy[i].initdata =
		    (ProtobufCBinaryData){.data = (uint8_t *)tomls[i], .len = strlen(tomls[i])};
		f->policies[i] = &f->policy[i];
	}
	EVP_PKEY *ca_key = NULL;
	X509 *ca = NULL;
	assert_int_equal(tls_key_generate(&ca_key), 0);
	assert_int_equal(tls_ca_create(ca_key, &ca), 0);
	assert_int_equal(tls_cert_to_pem(ca, &f->root_pem), 0);
	assert_int_equal(tls_cert_to_pem(ca, &f->mesh_pem), 0);
	X509_free(ca);
	EVP_PKEY_free(ca_key);

	f->signer = EVP_EC_gen("P-384");
	assert_non_null(f->signer);
	f->resp = (Coordinator__GetManifestsResponse)COORDINATOR__GET_MANIFESTS_RESPONSE__INIT;
	f->resp.n_manifests = 2;
	f->resp.manifests = f->manifests;
	f->resp.n_policies = 2;
	f->resp.policies = f->policies;
	f->resp.rootcapem = f->root_pem;
	f->resp.meshcapem = f->mesh_pem;
	f->resp.latest = (ProtobufCBinaryData){.data = f->latest, .len = 32};
	f->resp.state = "active";
	sign_latest(f, f->signer, f->latest);
	set_spki(f, f->signer);
	*state = f;
	return 0;
}

static int history_teardown(void **state)
{
	struct history_fixture *f = *state;
	for (int i = 0; i < 3; i++)
		free(f->m[i]);
	for (int i = 0; i < 2; i++)
		free(f->policy[i].digest);
	free(f->sig);
	free(f->spki);
	free(f->root_pem);
	free(f->mesh_pem);
	EVP_PKEY_free(f->signer);
	free(f);
	return 0;
}

/* Run the checks; on failure the message must contain needle. */
static void check_expect(const struct history_fixture *f, const char *expected, int want,
			 const char *needle)
{
	char *msg = NULL;
	int r =
	    cli_coord_check_manifests(&f->resp, expected, expected ? strlen(expected) : 0, &msg);
	if (r != want || (needle && (!msg || !strstr(msg, needle))))
		fail_msg("check: %d \"%s\", want %d \"%s\"", r, msg ? msg : "", want,
			 needle ? needle : "");
	free(msg);
}

static void test_check_good(void **state)
{
	struct history_fixture *f = *state;
	check_expect(f, NULL, 0, NULL);
	check_expect(f, f->m[1], 0, NULL);
	/* One manifest alone is a history too. */
	f->resp.n_manifests = 1;
	uint8_t mh[32], zero[32] = {0}, t[32];
	SHA256(f->manifests[0].data, f->manifests[0].len, mh);
	coordapi_transition_hash(mh, zero, t);
	f->resp.latest.data = t;
	sign_latest(f, f->signer, t);
	check_expect(f, f->m[0], 0, NULL);
}

static void test_check_manifest_differs(void **state)
{
	struct history_fixture *f = *state;
	check_expect(f, f->m[2], -EBADMSG, "differs from the given one");
	/* The given manifest was replaced by a later one. */
	check_expect(f, f->m[0], -EBADMSG, "superseded");
	/* One byte more (a trailing newline) is another manifest. */
	char *longer = str_printf("%s\n", f->m[1]);
	check_expect(f, longer, -EBADMSG, "differs");
	free(longer);
}

static void test_check_broken_chain(void **state)
{
	struct history_fixture *f = *state;
	/* Reordered. */
	ProtobufCBinaryData swapped[2] = {f->manifests[1], f->manifests[0]};
	f->resp.manifests = swapped;
	check_expect(f, NULL, -EBADMSG, "history is inconsistent");
	/* The first manifest left out. */
	f->resp.manifests = &f->manifests[1];
	f->resp.n_manifests = 1;
	check_expect(f, NULL, -EBADMSG, "history is inconsistent");
	/* An older manifest altered (one byte). */
	char *altered = strdup(f->m[0]);
	altered[strlen(altered) - 2] = ' ';
	ProtobufCBinaryData changed[2] = {{.data = (uint8_t *)altered, .len = strlen(altered)},
					  f->manifests[1]};
	f->resp.manifests = changed;
	f->resp.n_manifests = 2;
	check_expect(f, NULL, -EBADMSG, "history is inconsistent");
	free(altered);
	/* No history at all, or a malformed latest hash. */
	f->resp.manifests = f->manifests;
	f->resp.n_manifests = 0;
	check_expect(f, NULL, -EBADMSG, "no manifest");
	f->resp.n_manifests = 2;
	f->resp.latest.len = 31;
	check_expect(f, NULL, -EBADMSG, "not 32");
}

static void test_check_signature(void **state)
{
	struct history_fixture *f = *state;
	/* Signed by another key than the one returned. */
	EVP_PKEY *other = EVP_EC_gen("P-384");
	sign_latest(f, other, f->latest);
	check_expect(f, NULL, -EBADMSG, "signature");
	/* The returned key matches the signer, but the signature is over another hash. */
	set_spki(f, other);
	check_expect(f, NULL, 0, NULL);
	uint8_t wrong[32];
	memcpy(wrong, f->latest, 32);
	wrong[0] ^= 1;
	sign_latest(f, other, wrong);
	check_expect(f, NULL, -EBADMSG, "signature");
	/* A flipped bit in a good signature. */
	sign_latest(f, other, f->latest);
	f->sig[f->sig_len - 1] ^= 1;
	check_expect(f, NULL, -EBADMSG, "signature");
	/* No signature, a P-256 key, no key. */
	f->resp.latestsignature.len = 0;
	check_expect(f, NULL, -EBADMSG, "signature");
	EVP_PKEY *p256 = EVP_EC_gen("P-256");
	set_spki(f, p256);
	sign_latest(f, p256, f->latest);
	check_expect(f, NULL, -EBADMSG, "not a P-384");
	f->resp.signingpublickey.len = 0;
	check_expect(f, NULL, -EBADMSG, "not a P-384");
	EVP_PKEY_free(p256);
	EVP_PKEY_free(other);
}

static void test_check_policies(void **state)
{
	struct history_fixture *f = *state;
	/* A document that does not hash to its digest. */
	f->policy[1].initdata.len--;
	check_expect(f, NULL, -EBADMSG, "does not hash");
	f->policy[1].initdata.len++;
	/* One missing, one listed twice, one unknown. */
	f->resp.n_policies = 1;
	check_expect(f, NULL, -EBADMSG, "1 policy documents for the 2 policies");
	f->resp.n_policies = 2;
	Coordinator__Policy *twice[2] = {&f->policy[0], &f->policy[0]};
	f->resp.policies = twice;
	check_expect(f, NULL, -EBADMSG, "listed twice");
	f->resp.policies = f->policies;
	char *saved = f->policy[1].digest;
	f->policy[1].digest = "0000000000000000000000000000000000000000000000000000000000000000";
	check_expect(f, NULL, -EBADMSG, "not for a policy");
	f->policy[1].digest = saved;
	/* CAs that are not one certificate. */
	f->resp.rootcapem = "";
	check_expect(f, NULL, -EBADMSG, "root CA");
	f->resp.rootcapem = f->root_pem;
	char *two = str_printf("%s%s", f->mesh_pem, f->mesh_pem);
	f->resp.meshcapem = two;
	check_expect(f, NULL, -EBADMSG, "mesh CA");
	free(two);
	f->resp.meshcapem = f->mesh_pem;
	check_expect(f, NULL, 0, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_commands),
	    cmocka_unit_test(test_usage_errors),
	    cmocka_unit_test_setup_teardown(test_check_good, history_setup, history_teardown),
	    cmocka_unit_test_setup_teardown(test_check_manifest_differs, history_setup,
					    history_teardown),
	    cmocka_unit_test_setup_teardown(test_check_broken_chain, history_setup,
					    history_teardown),
	    cmocka_unit_test_setup_teardown(test_check_signature, history_setup, history_teardown),
	    cmocka_unit_test_setup_teardown(test_check_policies, history_setup, history_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for coordinator/history.c: first manifest (TOFU), updates by owners (client key and
 * signature), refused updates, CAS conflicts between two coordinators on one store, restart and
 * user/peer recovery, and detection of corrupted stored objects. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <time.h>

#include "coordinator/history.h"
#include "tls/tls.h"
#include "userdata/userdata.h"

#define TOML_COORD                                                                               \
	"algorithm = \"sha256\"\nversion = \"0.1.0\"\n\n[data]\n\"policy.rego\" = '''\npackage " \
	"coordinator\n'''\n"
#define TOML_WEB "algorithm = \"sha256\"\nversion = \"0.1.0\"\n\n[data]\n\"aa.toml\" = '''\n'''\n"

static const char refs_json[] =
    "{\"snp\":[{\"ProductName\":\"Milan\",\"TrustedMeasurement\":"
    "\"bece7399a4da054a63a2e3fa1a47ff98c88e391d4379126fc4e75c677f25b6cd6bfd8ef609a8638049633ac7e0"
    "0e4ac1\",\"MinimumTCB\":{\"BootloaderVersion\":3,\"TEEVersion\":0,\"SNPVersion\":8,"
    "\"MicrocodeVersion\":115}}]}";

struct fixture {
	char *dir;
	struct store *store;
	EVP_PKEY *owner;  /* WorkloadOwnerPubKeys */
	EVP_PKEY *share;  /* SeedshareOwnerPubKeys */
	EVP_PKEY *share2; /* another RSA key */
	EVP_PKEY *stranger;
	int64_t now;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	f->dir = str_printf("/tmp/pp-history-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(store_open_dir(f->dir, &f->store), 0);
	f->owner = EVP_EC_gen("P-256");
	f->stranger = EVP_EC_gen("P-384");
	f->share = EVP_RSA_gen(2048);
	f->share2 = EVP_RSA_gen(2048);
	assert_non_null(f->owner);
	assert_non_null(f->share2);
	f->now = (int64_t)time(NULL);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	store_free(f->store);
	assert_int_equal(rm_rf(f->dir), 0);
	free(f->dir);
	EVP_PKEY_free(f->owner);
	EVP_PKEY_free(f->stranger);
	EVP_PKEY_free(f->share);
	EVP_PKEY_free(f->share2);
	free(f);
	return 0;
}

struct doc {
	char *json;
	char **initdata;
	uint8_t sha256[32];
};

static void doc_done(struct doc *d)
{
	free(d->json);
	strv_free(d->initdata);
}

/* A manifest with a coordinator and a web policy; web_san varies it. */
static struct doc make_doc(struct fixture *f, const char *web_san, bool owners, EVP_PKEY *share)
{
	char *coord_sans[] = {"coordinator", NULL};
	char *web_sans[] = {(char *)web_san, NULL};
	struct manifest_gen_policy pols[] = {
	    {.initdata = TOML_COORD, .sans = coord_sans, .role = "coordinator"},
	    {.initdata = TOML_WEB, .sans = web_sans, .workload_secret_id = "web"},
	};
	json_t *refs = json_loads(refs_json, 0, NULL);
	assert_non_null(refs);
	struct manifest_gen g = {
	    .policies = pols,
	    .n_policies = 2,
	    .reference_values = refs,
	    .workload_owners = &f->owner,
	    .n_workload_owners = owners ? 1 : 0,
	    .seedshare_owners = &share,
	    .n_seedshare_owners = share ? 1 : 0,
	};
	struct doc d = {};
	_cleanup_free_ char *msg = NULL;
	int r = manifest_generate(&g, &d.json, &d.initdata, &msg);
	if (r < 0)
		print_error("%s\n", msg);
	assert_int_equal(r, 0);
	json_decref(refs);
	SHA256((const uint8_t *)d.json, strlen(d.json), d.sha256);
	return d;
}

static struct history *open_history(struct store *s, enum history_state want)
{
	struct history *h = NULL;
	assert_int_equal(history_open(s, &h, NULL), 0);
	assert_int_equal(history_get_state(h), want);
	return h;
}

static uint8_t *spki_of(EVP_PKEY *k, size_t *len)
{
	unsigned char *der = NULL;
	int n = i2d_PUBKEY(k, &der);
	assert_true(n > 0);
	*len = (size_t)n;
	return der;
}

static uint8_t *pkcs1_of(EVP_PKEY *k, size_t *len)
{
	unsigned char *der = NULL;
	int n = i2d_PublicKey(k, &der);
	assert_true(n > 0);
	*len = (size_t)n;
	return der;
}

/* SetManifest; returns the errno and checks the error message is set on failure. */
static int set_manifest(struct fixture *f, struct history *h, const struct doc *d, EVP_PKEY *client,
			const uint8_t *sig, size_t sig_len, char **shares)
{
	size_t spki_len = 0;
	uint8_t *spki = client ? spki_of(client, &spki_len) : NULL;
	struct history_set_request req = {
	    .manifest = (const uint8_t *)d->json,
	    .manifest_len = strlen(d->json),
	    .initdata = d->initdata,
	    .n_initdata = strv_length(d->initdata),
	    .client_spki = spki,
	    .client_spki_len = spki_len,
	    .signature = sig,
	    .signature_len = sig_len,
	    .now_sec = f->now,
	};
	struct pp_error *err = NULL;
	int r = history_set_manifest(h, &req, shares, &err);
	OPENSSL_free(spki);
	if (r < 0) {
		assert_non_null(err);
		assert_int_equal(-err->err, r);
	} else
		assert_null(err);
	pp_error_free(err);
	return r;
}

static void share_from_json(struct fixture *f, const char *json, uint8_t seed[64], uint8_t salt[32])
{
	_cleanup_(json_decrefp) json_t *j = json_loads(json, 0, NULL);
	assert_non_null(j);
	json_t *share = json_array_get(json_object_get(j, "SeedShares"), 0);
	const char *b64 = json_string_value(json_object_get(share, "EncryptedSeed"));
	_cleanup_free_ uint8_t *enc = NULL, *raw = NULL;
	size_t enc_len, raw_len;
	assert_int_equal(userdata_base64_decode(b64, strlen(b64), 4096, &enc, &enc_len), 0);
	assert_int_equal(coordapi_seed_share_decrypt(f->share, enc, enc_len, seed), 0);
	const char *s = json_string_value(json_object_get(j, "Salt"));
	assert_int_equal(userdata_base64_decode(s, strlen(s), 64, &raw, &raw_len), 0);
	assert_int_equal(raw_len, 32);
	memcpy(salt, raw, 32);
}

static void expect_latest(struct history *h, const uint8_t manifest[32], const uint8_t prev[32])
{
	uint8_t want[32], got[32];
	coordapi_transition_hash(manifest, prev, want);
	assert_int_equal(history_latest_hash(h, got), 0);
	assert_memory_equal(got, want, 32);
}

static void test_first_and_updates(void **state)
{
	struct fixture *f = *state;
	struct doc d1 = make_doc(f, "web", true, f->share),
		   d2 = make_doc(f, "web2", true, f->share),
		   d3 = make_doc(f, "web3", true, f->share),
		   d4 = make_doc(f, "web4", true, f->share2);
	_cleanup_(history_freep) struct history *h = open_history(f->store, HISTORY_UNINITIALIZED);
	assert_null(history_manifest(h));
	uint8_t zero[32] = {0}, t1[32], t2[32], t3[32];
	assert_int_equal(history_latest_hash(h, t1), -ENOENT);

	/* TOFU, with the seed shares returned once. */
	_cleanup_free_ char *shares = NULL;
	assert_int_equal(set_manifest(f, h, &d1, NULL, NULL, 0, &shares), 0);
	assert_int_equal(history_get_state(h), HISTORY_ACTIVE);
	assert_non_null(shares);
	uint8_t seed[64], salt[32];
	share_from_json(f, shares, seed, salt);
	assert_memory_equal(seed, history_secrets(h)->seed, 64);
	assert_memory_equal(salt, history_secrets(h)->salt, 32);
	assert_memory_equal(history_manifest(h)->sha256, d1.sha256, 32);
	expect_latest(h, d1.sha256, zero);
	history_latest_hash(h, t1);
	EVP_PKEY *mesh1 = history_ca(h)->mesh_key;
	EVP_PKEY_up_ref(mesh1);
	uint8_t w1[64], w2[64];
	assert_int_equal(secrets_workload_secret(history_secrets(h), "web", w1), 0);

	/* Update (a): the aTLS client key is an owner. No shares the second time. */
	char *again = (char *)"x";
	assert_int_equal(set_manifest(f, h, &d2, f->owner, NULL, 0, &again), 0);
	assert_null(again);
	expect_latest(h, d2.sha256, t1);
	history_latest_hash(h, t2);
	assert_int_equal(EVP_PKEY_eq(mesh1, history_ca(h)->mesh_key), 0); /* rotated */
	assert_int_equal(secrets_workload_secret(history_secrets(h), "web", w2), 0);
	assert_memory_equal(w1, w2, 64);

	/* Update (b): a signature over the hex of the new transition hash. */
	uint8_t next[32];
	coordapi_transition_hash(d3.sha256, t2, next);
	_cleanup_free_ uint8_t *sig = NULL, *stale_sig = NULL, *stranger_sig = NULL;
	size_t sig_len, stale_len, stranger_len;
	uint8_t old_next[32];
	coordapi_transition_hash(d3.sha256, t1, old_next); /* bound to the wrong predecessor */
	assert_int_equal(coordapi_update_sign(f->owner, old_next, &stale_sig, &stale_len), 0);
	assert_int_equal(set_manifest(f, h, &d3, NULL, stale_sig, stale_len, NULL), -EACCES);
	assert_int_equal(coordapi_update_sign(f->stranger, next, &stranger_sig, &stranger_len), 0);
	assert_int_equal(set_manifest(f, h, &d3, NULL, stranger_sig, stranger_len, NULL), -EACCES);
	assert_int_equal(coordapi_update_sign(f->owner, next, &sig, &sig_len), 0);
	assert_int_equal(set_manifest(f, h, &d3, NULL, sig, sig_len, NULL), 0);
	expect_latest(h, d3.sha256, t2);
	history_latest_hash(h, t3);

	/* Refused: no authorization, a non-owner client, a seed-share owner change, invalid
	 * input. Nothing changes. */
	assert_int_equal(set_manifest(f, h, &d1, NULL, NULL, 0, NULL), -EACCES);
	assert_int_equal(set_manifest(f, h, &d1, f->stranger, NULL, 0, NULL), -EACCES);
	assert_int_equal(set_manifest(f, h, &d4, f->owner, NULL, 0, NULL), -EPERM);
	struct doc bad = {.json = (char *)"{\"Policies\":{}}", .initdata = d1.initdata};
	assert_int_equal(set_manifest(f, h, &bad, f->owner, NULL, 0, NULL), -EINVAL);
	struct doc no_initdata = {.json = d1.json, .initdata = NULL};
	assert_int_equal(set_manifest(f, h, &no_initdata, f->owner, NULL, 0, NULL), -EINVAL);
	assert_int_equal(history_get_state(h), HISTORY_ACTIVE);
	expect_latest(h, d3.sha256, t2);
	assert_memory_equal(history_manifest(h)->sha256, d3.sha256, 32);

	/* The history, newest first; stored documents come back. */
	struct history_entry *list = NULL;
	size_t n = 0;
	assert_int_equal(history_walk(h, &list, &n, NULL), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(list[0].transition, t3, 32);
	assert_memory_equal(list[0].manifest, d3.sha256, 32);
	assert_memory_equal(list[2].transition, t1, 32);
	assert_memory_equal(list[2].manifest, d1.sha256, 32);
	free(list);
	_cleanup_free_ uint8_t *raw = NULL;
	size_t raw_len;
	assert_int_equal(history_get_manifest(h, d1.sha256, &raw, &raw_len, NULL), 0);
	assert_int_equal(raw_len, strlen(d1.json));
	assert_memory_equal(raw, d1.json, raw_len);
	uint8_t pd[32];
	_cleanup_free_ uint8_t *toml = NULL;
	SHA256((const uint8_t *)TOML_WEB, strlen(TOML_WEB), pd);
	assert_int_equal(history_get_policy(h, pd, &toml, &raw_len, NULL), 0);
	assert_memory_equal(toml, TOML_WEB, raw_len);

	EVP_PKEY_free(mesh1);
	doc_done(&d1);
	doc_done(&d2);
	doc_done(&d3);
	doc_done(&d4);
}

static void test_immutable(void **state)
{
	struct fixture *f = *state;
	struct doc d1 = make_doc(f, "web", false, NULL), d2 = make_doc(f, "web2", false, NULL);
	_cleanup_(history_freep) struct history *h = open_history(f->store, HISTORY_UNINITIALIZED);
	_cleanup_free_ char *shares = NULL;
	assert_int_equal(set_manifest(f, h, &d1, NULL, NULL, 0, &shares), 0);
	assert_true(str_startswith(shares, "{\"SeedShares\":[],\"Salt\":\""));
	/* Empty WorkloadOwnerPubKeys: no update is possible, whoever asks. */
	struct pp_error *err = NULL;
	assert_int_equal(set_manifest(f, h, &d2, f->owner, NULL, 0, NULL), -EPERM);
	assert_int_equal(history_get_state(h), HISTORY_ACTIVE);
	pp_error_free(err);
	doc_done(&d1);
	doc_done(&d2);
}

static void test_conflict_two_coordinators(void **state)
{
	struct fixture *f = *state;
	struct doc d1 = make_doc(f, "web", true, f->share),
		   d2 = make_doc(f, "web2", true, f->share),
		   d3 = make_doc(f, "web3", true, f->share);
	_cleanup_(store_freep) struct store *other = NULL;
	assert_int_equal(store_open_dir(f->dir, &other), 0);
	_cleanup_(history_freep) struct history *a = open_history(f->store, HISTORY_UNINITIALIZED);
	_cleanup_(history_freep) struct history *b = open_history(other, HISTORY_UNINITIALIZED);

	/* Both start on an empty store; the second one to commit loses and is stale. */
	assert_int_equal(set_manifest(f, a, &d1, NULL, NULL, 0, NULL), 0);
	assert_int_equal(set_manifest(f, b, &d2, NULL, NULL, 0, NULL), -ESTALE);
	assert_int_equal(history_get_state(b), HISTORY_STALE);
	assert_null(history_secrets(b));
	assert_int_equal(set_manifest(f, b, &d2, f->owner, NULL, 0, NULL), -ESTALE);

	/* Peer recovery: a's seed, salt, mesh key and latest manifest. */
	const struct secrets *sa = history_secrets(a);
	struct history_recover_request wrong_manifest = {
	    .seed = sa->seed,
	    .salt = sa->salt,
	    .mesh_key = history_ca(a)->mesh_key,
	    .manifest = (const uint8_t *)d2.json,
	    .manifest_len = strlen(d2.json),
	    .now_sec = f->now,
	};
	assert_int_equal(history_recover(b, &wrong_manifest, NULL), -ESTALE);
	struct history_recover_request peer = wrong_manifest;
	peer.manifest = (const uint8_t *)d1.json;
	peer.manifest_len = strlen(d1.json);
	assert_int_equal(history_recover(b, &peer, NULL), 0);
	assert_int_equal(history_get_state(b), HISTORY_ACTIVE);
	assert_int_equal(EVP_PKEY_eq(history_ca(b)->mesh_key, history_ca(a)->mesh_key), 1);
	assert_int_equal(history_recover(b, &peer, NULL), -EALREADY);

	/* a moves on; b's update is based on the old latest: conflict, b is stale. */
	assert_int_equal(set_manifest(f, a, &d2, f->owner, NULL, 0, NULL), 0);
	assert_int_equal(history_refresh(a, NULL), HISTORY_ACTIVE);
	assert_int_equal(set_manifest(f, b, &d3, f->owner, NULL, 0, NULL), -ESTALE);
	assert_int_equal(history_get_state(b), HISTORY_STALE);
	assert_int_equal(history_get_state(a), HISTORY_ACTIVE);

	/* b catches up again by peer recovery; then a notices b's update when refreshing. */
	peer.seed = history_secrets(a)->seed;
	peer.mesh_key = history_ca(a)->mesh_key;
	peer.manifest = (const uint8_t *)d2.json;
	peer.manifest_len = strlen(d2.json);
	assert_int_equal(history_recover(b, &peer, NULL), 0);
	assert_int_equal(set_manifest(f, b, &d3, f->owner, NULL, 0, NULL), 0);
	assert_int_equal(history_refresh(a, NULL), HISTORY_STALE);
	assert_null(history_manifest(a));
	doc_done(&d1);
	doc_done(&d2);
	doc_done(&d3);
}

static void test_restart_and_recovery(void **state)
{
	struct fixture *f = *state;
	struct doc d1 = make_doc(f, "web", true, f->share),
		   d2 = make_doc(f, "web2", true, f->share);
	_cleanup_free_ char *shares = NULL;
	X509 *old_root = NULL, *old_inter = NULL, *old_leaf = NULL;
	EVP_PKEY *old_mesh = NULL, *pod = NULL;
	uint8_t w_before[64], latest_before[32];
	assert_int_equal(tls_key_generate(&pod), 0);
	{
		_cleanup_(history_freep) struct history *h =
		    open_history(f->store, HISTORY_UNINITIALIZED);
		assert_int_equal(set_manifest(f, h, &d1, NULL, NULL, 0, &shares), 0);
		assert_int_equal(set_manifest(f, h, &d2, f->owner, NULL, 0, NULL), 0);
		const struct ca *ca = history_ca(h);
		old_root = X509_dup(ca->root);
		old_inter = X509_dup(ca->intermediate);
		old_mesh = ca->mesh_key;
		EVP_PKEY_up_ref(old_mesh);
		const struct manifest *m = history_manifest(h);
		const struct manifest_policy *web = NULL;
		for (size_t i = 0; i < m->n_policies; i++)
			if (!m->policies[i].coordinator)
				web = &m->policies[i];
		assert_int_equal(ca_issue_leaf(ca, pod, web, f->now, &old_leaf), 0);
		assert_int_equal(secrets_workload_secret(history_secrets(h), "web", w_before), 0);
		history_latest_hash(h, latest_before);
	}

	/* Restart: the history is there, the seed is not. */
	_cleanup_(history_freep) struct history *h = open_history(f->store, HISTORY_STALE);
	assert_null(history_manifest(h));
	assert_int_equal(set_manifest(f, h, &d1, f->owner, NULL, 0, NULL), -ESTALE);

	uint8_t seed[64], salt[32];
	share_from_json(f, shares, seed, salt);
	size_t k1_len, k2_len;
	_cleanup_free_ uint8_t *k1 = pkcs1_of(f->share, &k1_len),
			       *k2 = pkcs1_of(f->share2, &k2_len);
	struct history_recover_request req = {
	    .seed = seed,
	    .salt = salt,
	    .client_pkcs1 = k2,
	    .client_pkcs1_len = k2_len,
	    .now_sec = f->now,
	};
	struct pp_error *err = NULL;
	assert_int_equal(history_recover(h, &req, &err), -EACCES); /* not a seed-share owner */
	assert_non_null(strstr(err->message, "SeedshareOwnerPubKeys"));
	pp_error_free(err);
	err = NULL;
	req.client_pkcs1 = k1;
	req.client_pkcs1_len = k1_len;
	uint8_t wrong[64];
	memcpy(wrong, seed, 64);
	wrong[0] ^= 1;
	req.seed = wrong;
	assert_int_equal(history_recover(h, &req, &err), -EACCES); /* does not sign latest */
	assert_non_null(strstr(err->message, "not signed by the derived key"));
	pp_error_free(err);
	assert_int_equal(history_get_state(h), HISTORY_STALE);

	req.seed = seed;
	assert_int_equal(history_recover(h, &req, NULL), 0);
	assert_int_equal(history_get_state(h), HISTORY_ACTIVE);
	assert_memory_equal(history_manifest(h)->sha256, d2.sha256, 32);
	uint8_t latest[32], w_after[64];
	assert_int_equal(history_latest_hash(h, latest), 0);
	assert_memory_equal(latest, latest_before, 32);

	/* Same root CA and workload secrets; a new mesh CA. */
	const struct ca *ca = history_ca(h);
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(ca->root), X509_get0_pubkey(old_root)), 1);
	assert_int_equal(
	    X509_NAME_cmp(X509_get_subject_name(ca->root), X509_get_subject_name(old_root)), 0);
	assert_int_equal(secrets_workload_secret(history_secrets(h), "web", w_after), 0);
	assert_memory_equal(w_before, w_after, 64);
	assert_int_equal(EVP_PKEY_eq(ca->mesh_key, old_mesh), 0);
	/* The new intermediate chains to the root certificate users kept from before. */
	X509_STORE *xs = X509_STORE_new();
	X509_STORE_add_cert(xs, old_root);
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	assert_int_equal(X509_STORE_CTX_init(ctx, xs, ca->intermediate, NULL), 1);
	assert_int_equal(X509_verify_cert(ctx), 1);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(xs);
	/* Old leaves do not verify against the new mesh CA. */
	assert_int_equal(X509_verify(old_leaf, X509_get0_pubkey(ca->mesh)), 0);
	assert_int_equal(X509_verify(old_leaf, X509_get0_pubkey(old_inter)), 1);
	ERR_clear_error();

	/* Active again: updates work. */
	struct doc d3 = make_doc(f, "web3", true, f->share);
	assert_int_equal(set_manifest(f, h, &d3, f->owner, NULL, 0, NULL), 0);

	X509_free(old_root);
	X509_free(old_inter);
	X509_free(old_leaf);
	EVP_PKEY_free(old_mesh);
	EVP_PKEY_free(pod);
	doc_done(&d1);
	doc_done(&d2);
	doc_done(&d3);
}

static void overwrite(struct fixture *f, const char *prefix, const uint8_t hash[32],
		      const char *data)
{
	_cleanup_free_ char *hex = hex_encode(hash, 32);
	_cleanup_free_ char *path = str_printf("%s/%s/%s", f->dir, prefix, hex);
	assert_int_equal(write_file_atomic(path, data, strlen(data), 0600), 0);
}

static void test_corruption(void **state)
{
	struct fixture *f = *state;
	struct doc d1 = make_doc(f, "web", true, f->share);
	_cleanup_free_ char *shares = NULL;
	uint8_t t1[32];
	{
		_cleanup_(history_freep) struct history *h =
		    open_history(f->store, HISTORY_UNINITIALIZED);
		assert_int_equal(set_manifest(f, h, &d1, NULL, NULL, 0, &shares), 0);
		history_latest_hash(h, t1);
	}
	uint8_t seed[64], salt[32];
	share_from_json(f, shares, seed, salt);
	size_t k_len;
	_cleanup_free_ uint8_t *k = pkcs1_of(f->share, &k_len);
	struct history_recover_request req = {.seed = seed,
					      .salt = salt,
					      .client_pkcs1 = k,
					      .client_pkcs1_len = k_len,
					      .now_sec = f->now};

	/* A changed manifest (still valid JSON of the same size class) is detected on read. */
	_cleanup_free_ char *tampered = strdup(d1.json);
	*strstr(tampered, "\"web\"") = ' ';
	overwrite(f, "manifests", d1.sha256, tampered);
	_cleanup_(history_freep) struct history *h = open_history(f->store, HISTORY_STALE);
	struct pp_error *err = NULL;
	assert_int_equal(history_recover(h, &req, &err), -EUCLEAN);
	assert_non_null(strstr(err->message, "does not match its hash"));
	pp_error_free(err);
	err = NULL;
	struct history_entry *list = NULL;
	size_t n;
	assert_int_equal(history_walk(h, &list, &n, NULL), -EUCLEAN);
	assert_int_equal(history_get_state(h), HISTORY_STALE);

	/* Restored, it recovers; a corrupted transition is detected as well. */
	overwrite(f, "manifests", d1.sha256, d1.json);
	assert_int_equal(history_walk(h, &list, &n, NULL), 0);
	assert_int_equal(n, 1);
	free(list);
	overwrite(f, "transitions", t1,
		  "0123456789012345678901234567890123456789012345678901234567890123");
	assert_int_equal(history_recover(h, &req, &err), -EUCLEAN);
	pp_error_free(err);
	err = NULL;

	/* A malformed latest. */
	_cleanup_free_ char *latest = str_printf("%s/transitions/latest", f->dir);
	assert_int_equal(write_file_atomic(latest, "short", 5, 0600), 0);
	struct history *bad = NULL;
	assert_int_equal(history_open(f->store, &bad, &err), -EUCLEAN);
	assert_null(bad);
	pp_error_free(err);
	doc_done(&d1);
}

static void test_recover_uninitialized(void **state)
{
	struct fixture *f = *state;
	_cleanup_(history_freep) struct history *h = open_history(f->store, HISTORY_UNINITIALIZED);
	uint8_t seed[64] = {1}, salt[32] = {2};
	struct history_recover_request req = {.seed = seed, .salt = salt, .now_sec = f->now};
	assert_int_equal(history_recover(h, &req, NULL), -ENOENT);
	assert_int_equal(history_refresh(h, NULL), HISTORY_UNINITIALIZED);
	assert_string_equal(history_state_name(HISTORY_STALE), "stale");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_first_and_updates, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_immutable, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_conflict_two_coordinators, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_restart_and_recovery, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_corruption, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_recover_uninitialized, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* peerpodctl set | verify | recover | state | atls-cert: the user's side of the coordinator
 * (ATTESTATION.md 7-10; README "Coordinator"). Every command that talks to the coordinator's
 * user API first checks its evidence: against the local manifest's reference values with a Role
 * coordinator policy digest when -m is given. */
#include <getopt.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "cli.h"
#include "coordapi/coordapi.h"
#include "coordinator.pb-c.h"
#include "http/http.h"
#include "manifest/manifest.h"
#include "tls/tls.h"
#include "ttrpc/ttrpc.h"
#include "userdata/userdata.h"

#define KEY_FILE_MAX_BYTES (64 * 1024)
#define SEEDSHARE_FILE_MAX_BYTES (1024 * 1024)
#define INITDATA_LIST_MAX_BYTES (16 * 1024 * 1024)
#define STATE_TIMEOUT_NS (90 * NSEC_PER_SEC)
#define DEFAULT_SEEDSHARE_OUT "seedshare.json"
#define DEFAULT_VERIFY_DIR "verify"

static void free_unpacked(ProtobufCMessage **p)
{
	if (*p)
		protobuf_c_message_free_unpacked(*p, NULL);
}
#define _cleanup_message_ _cleanup_(free_unpacked)

enum cmd {
	CMD_SET,
	CMD_VERIFY,
	CMD_RECOVER,
	CMD_STATE,
	CMD_ATLS_CERT,
};

static const char *const cmd_names[] = {
    [CMD_SET] = "set",     [CMD_VERIFY] = "verify",       [CMD_RECOVER] = "recover",
    [CMD_STATE] = "state", [CMD_ATLS_CERT] = "atls-cert",
};

bool cli_coord_is_command(const char *word)
{
	for (size_t i = 0; i < ELEMENTSOF(cmd_names); i++)
		if (str_eq(word, cmd_names[i]))
			return true;
	return false;
}

enum {
	OPT_COORDINATOR = 'c',
	OPT_MANIFEST = 'm',
	OPT_OUTPUT = 'o',
	OPT_URL = 'u',
	OPT_KEY = 'k',
	OPT_HELP = 'h',
	OPT_INITDATA = 256,
	OPT_OWNER_KEY,
	OPT_SIGN,
	OPT_SEEDSHARE_OUT,
	OPT_SEEDSHARE_DIR,
	OPT_TRUST_ANCHOR,
	OPT_SEEDSHARE_KEY,
	OPT_SEEDSHARE_FILE,
	OPT_FORCE,
	OPT_NEW_PKI,
	OPT_PKI,
	OPT_MEASUREMENT,
	OPT_HOST_DATA,
	OPT_GUEST_POLICY,
	OPT_NONCE,
	OPT_RUNTIME_CLASS,
};

static const struct option options[] = {
    {"coordinator", required_argument, NULL, OPT_COORDINATOR},
    {"manifest", required_argument, NULL, OPT_MANIFEST},
    {"output", required_argument, NULL, OPT_OUTPUT},
    {"url", required_argument, NULL, OPT_URL},
    {"key", required_argument, NULL, OPT_KEY},
    {"help", no_argument, NULL, OPT_HELP},
    {"initdata", required_argument, NULL, OPT_INITDATA},
    {"workload-owner-key", required_argument, NULL, OPT_OWNER_KEY},
    {"owner-key", required_argument, NULL, OPT_OWNER_KEY},
    {"sign", no_argument, NULL, OPT_SIGN},
    {"seedshare-out", required_argument, NULL, OPT_SEEDSHARE_OUT},
    {"seedshare-dir", required_argument, NULL, OPT_SEEDSHARE_DIR},
    {"test-trust-anchor", required_argument, NULL, OPT_TRUST_ANCHOR},
    {"seedshare-key", required_argument, NULL, OPT_SEEDSHARE_KEY},
    {"seedshare-file", required_argument, NULL, OPT_SEEDSHARE_FILE},
    {"force", no_argument, NULL, OPT_FORCE},
    {"new-pki", required_argument, NULL, OPT_NEW_PKI},
    {"pki", required_argument, NULL, OPT_PKI},
    {"measurement", required_argument, NULL, OPT_MEASUREMENT},
    {"host-data", required_argument, NULL, OPT_HOST_DATA},
    {"guest-policy", required_argument, NULL, OPT_GUEST_POLICY},
    {"nonce", required_argument, NULL, OPT_NONCE},
    {"runtime-class", required_argument, NULL, OPT_RUNTIME_CLASS},
    {},
};

struct opts {
	const char *coordinator, *manifest, *output, *url, *key, *initdata, *owner_key,
	    *seedshare_out, *seedshare_dir, *trust_anchor, *seedshare_key, *seedshare_file,
	    *new_pki, *pki, *measurement, *host_data, *guest_policy, *nonce, *runtime_class;
	bool sign, force;
	char *const *files;
	size_t n_files;
};

static void coord_usage(FILE *f)
{
	fputs(
	    "usage: peerpodctl set -c HOST:PORT -m MANIFEST.json [--initdata FILE | FILE.yaml...]\n"
	    "         [--runtime-class NAME] [--workload-owner-key PEM [--sign]]\n"
	    "         [--seedshare-out FILE | --seedshare-dir DIR] [--test-trust-anchor ARK.pem]\n"
	    "       peerpodctl verify -c HOST:PORT [-m MANIFEST.json] [-o DIR] "
	    "[--test-trust-anchor ARK.pem]\n"
	    "       peerpodctl recover -c HOST:PORT --seedshare-key RSA.pem --seedshare-file FILE\n"
	    "         [--force] [-m MANIFEST.json] [--test-trust-anchor ARK.pem]\n"
	    "       peerpodctl state -u http://HOST:PORT [-m MANIFEST.json] "
	    "[--test-trust-anchor ARK.pem]\n"
	    "       peerpodctl atls-cert --new-pki DIR                       (test only)\n"
	    "       peerpodctl atls-cert --pki DIR --measurement HEX96 --host-data HEX64\n"
	    "         [--guest-policy HEX] --nonce HEX64 -o CERT.pem -k KEY.pem   (test only)\n"
	    "set: attest the coordinator (user API, default port 1313) against the manifest, send\n"
	    "  it with the initdata documents of its policies (--initdata: one encoded document\n"
	    "  per line; or the cc_init_data annotations of the YAML workloads), authorized by "
	    "the\n"
	    "  owner key as TLS client key or, with --sign, by its signature; writes the seed\n"
	    "  shares of a first manifest (default " DEFAULT_SEEDSHARE_OUT
	    ", mode 0600) and prints the\n"
	    "  new transition hash.\n"
	    "verify: attest, fetch the history, check it and write DIR (default " DEFAULT_VERIFY_DIR
	    ")/{mesh-root.pem,\n"
	    "  mesh-ca.pem,manifests/manifest-<n>.json,policies/<digest>.toml,"
	    "coordinator-policy.txt}.\n"
	    "recover: decrypt the seed share and hand seed and salt to a stale coordinator.\n"
	    "state: the coordinator's attested state from its HTTP port (default 1314).\n"
	    "--test-trust-anchor accepts simulated evidence (tests only).\n"
	    "exit status: 0 success, 1 failure, 2 usage error\n",
	    f);
}

static int failed(FILE *err, const char *fmt, ...) _printf_(2, 3);
static int failed(FILE *err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("error: ", err);
	vfprintf(err, fmt, ap);
	va_end(ap);
	fputc('\n', err);
	return CLI_EXIT_FAILED;
}

/* ---- shared pieces ---- */

static int read_small(const char *path, size_t max, char **ret, size_t *ret_len, FILE *err)
{
	int r = read_file_bounded(path, max, ret, ret_len);
	if (r < 0)
		return failed(err, "%s: %s", path, strerror(-r));
	return 0;
}

/* What the user trusts the coordinator with: the local manifest and the test anchor. */
struct trust {
	struct manifest *m; /* NULL without -m */
	char *anchor_pem;
	struct atls_verifier v;
};

static void trust_done(struct trust *t)
{
	manifest_free(t->m);
	free(t->anchor_pem);
	*t = (struct trust){};
}

/* The manifest's reference values of the other TEE are absent, and lib/atls skips entry checks
 * without entries: refuse such evidence here. */
static enum attest_error accept_kind(void *userdata, SSL *ssl, const struct atls_peer *peer,
				     char **ret_msg)
{
	const struct manifest *m = userdata;
	bool snp = peer->kind == ATLS_EVIDENCE_SNP || peer->kind == ATLS_EVIDENCE_SNP_SIM;
	if (snp && m->snp.n == 0) {
		*ret_msg = strdup("SEV-SNP evidence, but the manifest has no snp reference values");
		return ATTEST_E_MEASUREMENT;
	}
	if (peer->kind == ATLS_EVIDENCE_TDX && m->n_tdx == 0) {
		*ret_msg = strdup("TDX evidence, but the manifest has no tdx reference values");
		return ATTEST_E_MEASUREMENT;
	}
	return ATTEST_OK;
}

static int load_manifest(const char *path, struct manifest **ret, FILE *err)
{
	_cleanup_free_ char *data = NULL, *msg = NULL;
	size_t len = 0;
	int r = read_file_bounded(path, MANIFEST_MAX_BYTES, &data, &len);
	if (r < 0)
		return failed(err, "%s: %s", path, strerror(-r));
	r = manifest_parse(data, len, ret, &msg);
	if (r < 0)
		return failed(err, "%s: %s", path, msg ? msg : strerror(-r));
	return 0;
}

static int trust_load(const struct opts *o, struct trust *t, FILE *err)
{
	int r;
	if (o->manifest && (r = load_manifest(o->manifest, &t->m, err)) != 0)
		return r;
	if (o->trust_anchor) {
		size_t len;
		if ((r = read_small(o->trust_anchor, KEY_FILE_MAX_BYTES, &t->anchor_pem, &len,
				    err)) != 0)
			return r;
		t->v.test_anchor_pem = t->anchor_pem;
	}
	if (t->m) {
		t->v.snp_refs = t->m->snp.items;
		t->v.n_snp_refs = t->m->snp.n;
		t->v.tdx_refs = t->m->tdx;
		t->v.n_tdx_refs = t->m->n_tdx;
		t->v.digest_rule = manifest_coordinator_digest_rule(t->m);
		t->v.accept = accept_kind;
		t->v.userdata = t->m;
	}
	return 0;
}

static char *const alpn_protocols[] = {(char *)COORDAPI_ALPN, NULL};

/* A connection to the user API; ctx must be freed after the connection. */
static int coord_connect(const char *address, const struct trust *t, X509 *cert, EVP_PKEY *key,
			 SSL_CTX **ret_ctx, struct coordapi_conn **ret, FILE *err)
{
	const struct atls_config c = {
	    .verifier = &t->v, .cert = cert, .cert_key = key, .alpn = alpn_protocols};
	_cleanup_free_ char *msg = NULL;
	int r = atls_ctx_new_client(&c, ret_ctx, &msg);
	if (r < 0)
		return failed(err, "TLS: %s", msg ? msg : strerror(-r));
	r = coordapi_connect(address, *ret_ctx, 0, ret, &msg);
	if (r == -EACCES)
		return failed(err, "the coordinator at %s failed attestation: %s", address,
			      msg ? msg : strerror(-r));
	if (r < 0)
		return failed(err, "cannot reach the coordinator: %s", msg ? msg : strerror(-r));
	return 0;
}

static int call(struct coordapi_conn *c, const char *method, const ProtobufCMessage *req,
		const ProtobufCMessageDescriptor *desc, ProtobufCMessage **ret, FILE *err)
{
	_cleanup_free_ char *msg = NULL;
	int r = coordapi_call(c, COORDAPI_USER_SERVICE, method, req, desc, 0, ret, &msg);
	if (r > 0) {
		char buf[32];
		return failed(err, "%s refused: %s: %s", method, cli_code_name(r, buf, sizeof(buf)),
			      msg ? msg : "no message");
	}
	if (r < 0)
		return failed(err, "%s: %s", method, msg ? msg : strerror(-r));
	return 0;
}

static void print_peer(const struct coordapi_conn *c, FILE *err)
{
	const struct atls_peer *p = coordapi_conn_peer(c);
	if (!p)
		return;
	char meas[97];
	hex_encode_into(p->measurement, sizeof(p->measurement), meas);
	fprintf(err, "coordinator attested (%s evidence): policy %s, measurement %s\n",
		p->kind == ATLS_EVIDENCE_TDX       ? "TDX"
		: p->kind == ATLS_EVIDENCE_SNP_SIM ? "simulated SNP (test)"
						   : "SEV-SNP",
		p->policy_digest_hex, meas);
}

static int load_private_key(const char *path, EVP_PKEY **ret, FILE *err)
{
	_cleanup_secret_ char *pem = NULL;
	size_t len;
	int r = read_small(path, KEY_FILE_MAX_BYTES, &pem, &len, err);
	if (r != 0)
		return r;
	if (tls_key_from_pem(pem, len, ret) < 0) {
		ERR_clear_error();
		return failed(err, "%s: not an unencrypted PEM private key", path);
	}
	return 0;
}

/* ---- GetManifests checks ---- */

static int verify_latest_signature(const uint8_t *spki, size_t spki_len, const uint8_t *hash,
				   const uint8_t *sig, size_t sig_len)
{
	const unsigned char *p = spki;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = d2i_PUBKEY(NULL, &p, (long)spki_len);
	char group[32] = "";
	if (!key || p != spki + spki_len || EVP_PKEY_get_base_id(key) != EVP_PKEY_EC ||
	    EVP_PKEY_get_group_name(key, group, sizeof(group), NULL) != 1 ||
	    !str_eq(group, "secp384r1")) {
		ERR_clear_error();
		return -EINVAL;
	}
	return coordapi_latest_verify(key, hash, sig, sig_len) ? 0 : -EBADMSG;
}

static bool pem_is_one_cert(const char *pem)
{
	_cleanup_(X509_freep) X509 *x = NULL;
	return !str_empty(pem) && tls_cert_from_pem_single(pem, strlen(pem), &x) == 0;
}

int cli_coord_check_manifests(const struct Coordinator__GetManifestsResponse *resp,
			      const void *expected, size_t expected_len, char **ret_msg)
{
	if (resp->n_manifests == 0)
		return str_set_message(ret_msg, EBADMSG, "the coordinator has no manifest yet");
	if (resp->latest.len != 32)
		return str_set_message(ret_msg, EBADMSG,
				       "the latest transition hash is %zu bytes, not 32",
				       resp->latest.len);
	/* The transitions, recomputed from the manifests: they must end at the signed hash. */
	uint8_t t[32] = {0};
	for (size_t i = 0; i < resp->n_manifests; i++) {
		const ProtobufCBinaryData *m = &resp->manifests[i];
		if (m->len > MANIFEST_MAX_BYTES)
			return str_set_message(ret_msg, EBADMSG, "manifest %zu is too large", i);
		uint8_t mh[32], next[32];
		SHA256(m->data, m->len, mh);
		coordapi_transition_hash(mh, t, next);
		memcpy(t, next, 32);
	}
	if (memcmp(t, resp->latest.data, 32) != 0)
		return str_set_message(ret_msg, EBADMSG,
				       "the history is inconsistent: the transitions of its %zu "
				       "manifests do not lead to the latest transition (manifests "
				       "missing, reordered or altered)",
				       resp->n_manifests);
	int r = verify_latest_signature(resp->signingpublickey.data, resp->signingpublickey.len,
					resp->latest.data, resp->latestsignature.data,
					resp->latestsignature.len);
	if (r == -ENOMEM)
		return r;
	if (r == -EINVAL)
		return str_set_message(ret_msg, EBADMSG,
				       "the signing key is not a P-384 public key");
	if (r < 0)
		return str_set_message(ret_msg, EBADMSG,
				       "the signature of the latest transition does not verify "
				       "with the returned signing key");

	const ProtobufCBinaryData *latest = &resp->manifests[resp->n_manifests - 1];
	if (expected &&
	    (latest->len != expected_len || memcmp(latest->data, expected, expected_len))) {
		for (size_t i = 0; i + 1 < resp->n_manifests; i++)
			if (resp->manifests[i].len == expected_len &&
			    memcmp(resp->manifests[i].data, expected, expected_len) == 0)
				return str_set_message(
				    ret_msg, EBADMSG,
				    "the coordinator's latest manifest differs from the given one, "
				    "which is manifest %zu of %zu of its history (superseded)",
				    i, resp->n_manifests);
		return str_set_message(ret_msg, EBADMSG,
				       "the coordinator's latest manifest differs from the given "
				       "one");
	}
	_cleanup_(manifest_freep) struct manifest *m = NULL;
	_cleanup_free_ char *msg = NULL;
	if ((r = manifest_parse(latest->data, latest->len, &m, &msg)) < 0)
		return str_set_message(ret_msg, EBADMSG, "the latest manifest is invalid: %s",
				       msg ? msg : strerror(-r));
	/* Exactly one initdata document per policy of the latest manifest, each hashing to its
	 * digest. */
	if (resp->n_policies != m->n_policies)
		return str_set_message(ret_msg, EBADMSG,
				       "%zu policy documents for the %zu policies of the latest "
				       "manifest",
				       resp->n_policies, m->n_policies);
	for (size_t i = 0; i < resp->n_policies; i++) {
		const Coordinator__Policy *p = resp->policies[i];
		const struct manifest_policy *mp = p && p->digest && strlen(p->digest) == 64
						       ? manifest_policy_find_hex(m, p->digest)
						       : NULL;
		if (!mp)
			return str_set_message(ret_msg, EBADMSG,
					       "policy document %zu is not for a policy of the "
					       "latest manifest",
					       i);
		for (size_t k = 0; k < i; k++)
			if (str_eq(resp->policies[k]->digest, p->digest))
				return str_set_message(ret_msg, EBADMSG,
						       "policy %s is listed twice", p->digest);
		uint8_t d[32];
		SHA256(p->initdata.data, p->initdata.len, d);
		if (memcmp(d, mp->digest, 32) != 0)
			return str_set_message(
			    ret_msg, EBADMSG,
			    "the initdata document of policy %s does not hash to "
			    "its digest",
			    mp->digest_hex);
	}
	if (!pem_is_one_cert(resp->rootcapem))
		return str_set_message(ret_msg, EBADMSG, "the root CA is not one PEM certificate");
	if (!pem_is_one_cert(resp->meshcapem))
		return str_set_message(ret_msg, EBADMSG, "the mesh CA is not one PEM certificate");
	return 0;
}

/* ---- set ---- */

static int push_doc(char ***docs, size_t *n, char *doc)
{
	char **v = reallocarray(*docs, *n + 2, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v[(*n)++] = doc;
	v[*n] = NULL;
	*docs = v;
	return 0;
}

/* SHA-256 of the TOML an encoded document holds. */
static int encoded_digest(const char *encoded, char hex[65], char **ret_msg)
{
	_cleanup_free_ char *toml = NULL;
	size_t len = 0;
	int r = initdata_decode(encoded, strlen(encoded), &toml, &len, ret_msg);
	if (r < 0)
		return r;
	uint8_t d[32];
	SHA256((const uint8_t *)toml, len, d);
	hex_encode_into(d, sizeof(d), hex);
	return 0;
}

static int docs_from_file(const char *path, char ***docs, size_t *n, FILE *err)
{
	_cleanup_free_ char *data = NULL;
	size_t len;
	int r = read_small(path, INITDATA_LIST_MAX_BYTES, &data, &len, err);
	if (r != 0)
		return r;
	_cleanup_strv_free_ char **lines = NULL;
	if (strv_split(data, "\r\n", true, &lines) < 0)
		return failed(err, "out of memory");
	for (size_t i = 0; lines[i]; i++) {
		char *doc = strdup(lines[i]);
		if (!doc || push_doc(docs, n, doc) < 0) {
			free(doc);
			return failed(err, "out of memory");
		}
	}
	return 0;
}

/* The initdata of every peer-pod workload whose digest is a policy of the manifest, once. */
static int docs_from_yaml(const struct opts *o, const struct manifest *m, char ***docs, size_t *n,
			  FILE *err)
{
	for (size_t f = 0; f < o->n_files; f++) {
		struct cli_workload *w = NULL;
		size_t n_w = 0;
		_cleanup_free_ char *msg = NULL;
		int r = cli_workloads_from_yaml(o->files[f], &w, &n_w, &msg);
		if (r < 0)
			return failed(err, "%s", msg ? msg : strerror(-r));
		int code = 0;
		for (size_t i = 0; i < n_w && code == 0; i++) {
			const char *initdata = cli_workload_initdata(&w[i], o->runtime_class);
			if (!initdata)
				continue;
			char *encoded = NULL, hex[65];
			r = initdata_encode_annotation(initdata, strlen(initdata), &encoded, &msg);
			if (r >= 0)
				r = encoded_digest(encoded, hex, &msg);
			if (r < 0) {
				free(encoded);
				code = failed(err, "%s: %s/%s/%s: %s: %s", o->files[f],
					      w[i].namespace, w[i].kind, w[i].name,
					      CLI_INITDATA_ANNOTATION, msg ? msg : strerror(-r));
				break;
			}
			bool dup = false;
			for (size_t k = 0; k < *n && !dup; k++) {
				char other[65];
				dup = encoded_digest((*docs)[k], other, NULL) >= 0 &&
				      str_eq(other, hex);
			}
			if (dup || !manifest_policy_find_hex(m, hex)) {
				if (!dup)
					fprintf(err,
						"note: %s: %s/%s/%s: digest %s is not in the "
						"manifest; skipped\n",
						o->files[f], w[i].namespace, w[i].kind, w[i].name,
						hex);
				free(encoded);
				continue;
			}
			if (push_doc(docs, n, encoded) < 0) {
				free(encoded);
				code = failed(err, "out of memory");
			}
		}
		cli_workloads_free(w, n_w);
		if (code != 0)
			return code;
	}
	return 0;
}

/* The latest transition hash; *ret_has false when the coordinator has no manifest yet. */
static int current_latest(struct coordapi_conn *c, uint8_t ret[32], bool *ret_has, FILE *err)
{
	Coordinator__GetManifestsRequest req = COORDINATOR__GET_MANIFESTS_REQUEST__INIT;
	_cleanup_message_ ProtobufCMessage *out = NULL;
	_cleanup_free_ char *msg = NULL;
	int r = coordapi_call(c, COORDAPI_USER_SERVICE, "GetManifests", &req.base,
			      &coordinator__get_manifests_response__descriptor, 0, &out, &msg);
	/* An uninitialized coordinator has nothing to return (a stale one refuses SetManifest
	 * anyway, with its own message). */
	if (r == TTRPC_NOT_FOUND || r == TTRPC_FAILED_PRECONDITION) {
		fprintf(err, "note: %s; sending the manifest without a signature\n",
			msg ? msg : "the coordinator has no manifest yet");
		*ret_has = false;
		return 0;
	}
	if (r != 0) {
		char buf[32];
		return failed(err, "GetManifests (for --sign): %s: %s",
			      r > 0 ? cli_code_name(r, buf, sizeof(buf)) : strerror(-r),
			      msg ? msg : "no message");
	}
	const Coordinator__GetManifestsResponse *resp = (const void *)out;
	if (resp->latest.len == 0) {
		fputs("note: the coordinator has no manifest yet; sending the manifest without a "
		      "signature\n",
		      err);
		*ret_has = false;
		return 0;
	}
	if (resp->latest.len != 32)
		return failed(err, "GetManifests: the latest transition hash is malformed");
	memcpy(ret, resp->latest.data, 32);
	*ret_has = true;
	return 0;
}

static int cmd_set(const struct opts *o, FILE *out, FILE *err)
{
	if (!o->coordinator || !o->manifest)
		return cli_usage_error(err, "set", "set needs -c HOST:PORT and -m MANIFEST.json");
	if (o->initdata && o->n_files)
		return cli_usage_error(err, "set", "give --initdata or YAML files, not both");
	if (o->sign && !o->owner_key)
		return cli_usage_error(err, "set", "--sign needs --workload-owner-key");
	if (o->seedshare_out && o->seedshare_dir)
		return cli_usage_error(err, "set",
				       "give --seedshare-out or --seedshare-dir, not both");
	_cleanup_(trust_done) struct trust t = {};
	int r = trust_load(o, &t, err);
	if (r != 0)
		return r;

	_cleanup_strv_free_ char **docs = NULL;
	size_t n_docs = 0;
	if (o->initdata)
		r = docs_from_file(o->initdata, &docs, &n_docs, err);
	else
		r = docs_from_yaml(o, t.m, &docs, &n_docs, err);
	if (r != 0)
		return r;
	/* The coordinator checks the same: fail here with the local file names instead. */
	struct manifest_initdata checked = {};
	_cleanup_free_ char *msg = NULL;
	r = manifest_check_initdata(t.m, docs, n_docs, &checked, &msg);
	manifest_initdata_done(&checked);
	if (r < 0)
		return failed(err, "%s: %s", o->manifest, msg ? msg : strerror(-r));

	_cleanup_(EVP_PKEY_freep) EVP_PKEY *owner = NULL;
	_cleanup_(X509_freep) X509 *cert = NULL;
	if (o->owner_key) {
		if ((r = load_private_key(o->owner_key, &owner, err)) != 0)
			return r;
		if (!o->sign && tls_cert_create_client(owner, &cert) < 0) {
			ERR_clear_error();
			return failed(err, "%s: cannot make a client certificate", o->owner_key);
		}
	}

	_cleanup_(SSL_CTX_freep) SSL_CTX *ctx = NULL;
	_cleanup_(coordapi_conn_freep) struct coordapi_conn *c = NULL;
	if ((r = coord_connect(o->coordinator, &t, cert, cert ? owner : NULL, &ctx, &c, err)) != 0)
		return r;
	print_peer(c, err);

	_cleanup_free_ uint8_t *sig = NULL;
	size_t sig_len = 0;
	uint8_t expected[32];
	bool has_expected = false;
	if (o->sign) {
		uint8_t prev[32];
		bool has_prev = false;
		if ((r = current_latest(c, prev, &has_prev, err)) != 0)
			return r;
		if (has_prev) {
			coordapi_transition_hash(t.m->sha256, prev, expected);
			has_expected = true;
			if ((r = coordapi_update_sign(owner, expected, &sig, &sig_len)) < 0)
				return failed(err, "%s: cannot sign the update: %s", o->owner_key,
					      strerror(-r));
		}
	}

	Coordinator__SetManifestRequest req = COORDINATOR__SET_MANIFEST_REQUEST__INIT;
	req.manifest.data = t.m->raw;
	req.manifest.len = t.m->raw_len;
	req.initdata = docs;
	req.n_initdata = n_docs;
	req.signature.data = sig;
	req.signature.len = sig_len;
	_cleanup_message_ ProtobufCMessage *answer = NULL;
	if ((r = call(c, "SetManifest", &req.base, &coordinator__set_manifest_response__descriptor,
		      &answer, err)) != 0)
		return r;
	const Coordinator__SetManifestResponse *resp = (const void *)answer;
	if (resp->transition.len != 32)
		return failed(err, "SetManifest: the answer has no transition hash");
	if (has_expected && memcmp(resp->transition.data, expected, 32) != 0)
		return failed(err, "SetManifest: the coordinator reports another transition than "
				   "the one signed");
	if (!str_empty(resp->seedsharesjson)) {
		_cleanup_free_ char *path =
		    o->seedshare_dir
			? str_printf("%s/%s", o->seedshare_dir, DEFAULT_SEEDSHARE_OUT)
			: strdup(o->seedshare_out ? o->seedshare_out : DEFAULT_SEEDSHARE_OUT);
		if (!path)
			return failed(err, "out of memory");
		if (o->seedshare_dir)
			(void)mkdir_p(o->seedshare_dir, 0700);
		r = write_file_atomic(path, resp->seedsharesjson, strlen(resp->seedsharesjson),
				      0600);
		if (r < 0) {
			/* The shares exist only in this answer: do not lose them. */
			fprintf(err, "error: cannot write %s: %s; the seed shares follow:\n%s\n",
				path, strerror(-r), resp->seedsharesjson);
			return CLI_EXIT_FAILED;
		}
		fprintf(err, "first manifest: seed shares written to %s (keep them safe)\n", path);
	}
	char hex[65];
	hex_encode_into(resp->transition.data, 32, hex);
	fprintf(out, "%s\n", hex);
	return CLI_EXIT_OK;
}

/* ---- verify ---- */

static int write_out(const char *dir, const char *name, const void *data, size_t len, FILE *err)
{
	_cleanup_free_ char *path = str_printf("%s/%s", dir, name);
	if (!path)
		return failed(err, "out of memory");
	int r = write_file_atomic(path, data, len, 0644);
	if (r < 0)
		return failed(err, "cannot write %s: %s", path, strerror(-r));
	return 0;
}

static int cmd_verify(const struct opts *o, FILE *out, FILE *err)
{
	if (!o->coordinator)
		return cli_usage_error(err, "set", "verify needs -c HOST:PORT");
	_cleanup_(trust_done) struct trust t = {};
	int r = trust_load(o, &t, err);
	if (r != 0)
		return r;
	if (!t.m)
		fputs("note: no -m: accepting any coordinator evidence the trust anchors verify "
		      "(trust on first use)\n",
		      err);
	_cleanup_(SSL_CTX_freep) SSL_CTX *ctx = NULL;
	_cleanup_(coordapi_conn_freep) struct coordapi_conn *c = NULL;
	if ((r = coord_connect(o->coordinator, &t, NULL, NULL, &ctx, &c, err)) != 0)
		return r;
	print_peer(c, err);
	const struct atls_peer *peer = coordapi_conn_peer(c);
	if (!peer)
		return failed(err, "the coordinator was not verified");
	char digest[65];
	memcpy(digest, peer->policy_digest_hex, sizeof(digest));

	Coordinator__GetManifestsRequest req = COORDINATOR__GET_MANIFESTS_REQUEST__INIT;
	_cleanup_message_ ProtobufCMessage *answer = NULL;
	if ((r = call(c, "GetManifests", &req.base,
		      &coordinator__get_manifests_response__descriptor, &answer, err)) != 0)
		return r;
	const Coordinator__GetManifestsResponse *resp = (const void *)answer;
	_cleanup_free_ char *msg = NULL;
	r = cli_coord_check_manifests(resp, t.m ? t.m->raw : NULL, t.m ? t.m->raw_len : 0, &msg);
	if (r < 0)
		return failed(err, "%s", msg ? msg : strerror(-r));
	if (!t.m) {
		const ProtobufCBinaryData *l = &resp->manifests[resp->n_manifests - 1];
		_cleanup_(manifest_freep) struct manifest *latest = NULL;
		uint8_t d[32];
		if (manifest_parse(l->data, l->len, &latest, NULL) >= 0 &&
		    hex_decode_exact(digest, 64, d, 32) >= 0 &&
		    !manifest_digest_is_coordinator(latest, d))
			fprintf(err,
				"warning: the coordinator's policy %s is not a coordinator policy "
				"of its latest manifest\n",
				digest);
	}

	const char *dir = o->output ? o->output : DEFAULT_VERIFY_DIR;
	_cleanup_free_ char *mdir = str_printf("%s/manifests", dir),
			    *pdir = str_printf("%s/policies", dir);
	if (!mdir || !pdir)
		return failed(err, "out of memory");
	if ((r = mkdir_p(mdir, 0755)) < 0 || (r = mkdir_p(pdir, 0755)) < 0)
		return failed(err, "cannot create %s: %s", dir, strerror(-r));
	if ((r = write_out(dir, "mesh-root.pem", resp->rootcapem, strlen(resp->rootcapem), err)) ||
	    (r = write_out(dir, "mesh-ca.pem", resp->meshcapem, strlen(resp->meshcapem), err)))
		return r;
	for (size_t i = 0; i < resp->n_manifests; i++) {
		_cleanup_free_ char *name = str_printf("manifests/manifest-%zu.json", i);
		if (!name)
			return failed(err, "out of memory");
		if ((r = write_out(dir, name, resp->manifests[i].data, resp->manifests[i].len,
				   err)))
			return r;
	}
	for (size_t i = 0; i < resp->n_policies; i++) {
		char hex[65];
		/* Lowercase whatever the case on the wire: the name is the digest. */
		uint8_t d[32];
		if (hex_decode_exact(resp->policies[i]->digest, 64, d, 32) < 0)
			return failed(err, "malformed policy digest");
		hex_encode_into(d, 32, hex);
		_cleanup_free_ char *name = str_printf("policies/%s.toml", hex);
		if (!name)
			return failed(err, "out of memory");
		if ((r = write_out(dir, name, resp->policies[i]->initdata.data,
				   resp->policies[i]->initdata.len, err)))
			return r;
	}
	char line[66];
	memcpy(line, digest, 64);
	line[64] = '\n';
	line[65] = 0;
	if ((r = write_out(dir, "coordinator-policy.txt", line, 65, err)))
		return r;
	char latest[65];
	hex_encode_into(resp->latest.data, 32, latest);
	fprintf(out,
		"verified: %zu manifest(s), latest transition %s, signature valid%s; "
		"coordinator policy %s; written to %s/\n",
		resp->n_manifests, latest, t.m ? ", latest manifest matches" : "", digest, dir);
	return CLI_EXIT_OK;
}

/* ---- recover ---- */

/* The share of key in a seed-share document; seed and salt out. */
static int find_share(const char *path, EVP_PKEY *key, uint8_t seed[COORDAPI_SEED_SIZE],
		      uint8_t salt[COORDAPI_SALT_SIZE], FILE *err)
{
	_cleanup_free_ char *data = NULL;
	size_t len;
	int r = read_small(path, SEEDSHARE_FILE_MAX_BYTES, &data, &len, err);
	if (r != 0)
		return r;
	json_error_t jerr;
	_cleanup_(json_decrefp) json_t *j = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	json_t *shares = j ? json_object_get(j, "SeedShares") : NULL;
	const char *salt_b64 = j ? json_string_value(json_object_get(j, "Salt")) : NULL;
	if (!json_is_array(shares) || !salt_b64)
		return failed(err, "%s: not a seed-share document (SeedShares, Salt)", path);
	_cleanup_free_ uint8_t *salt_raw = NULL;
	size_t salt_len = 0;
	if (userdata_base64_decode(salt_b64, strlen(salt_b64), 64, &salt_raw, &salt_len) < 0 ||
	    salt_len != COORDAPI_SALT_SIZE)
		return failed(err, "%s: Salt is not 32 bytes of base64", path);

	unsigned char *pkcs1 = NULL;
	int pkcs1_len = i2d_PublicKey(key, &pkcs1);
	if (pkcs1_len <= 0) {
		ERR_clear_error();
		return failed(err, "the seed-share key cannot be encoded");
	}
	_cleanup_free_ char *mine = hex_encode(pkcs1, (size_t)pkcs1_len);
	OPENSSL_free(pkcs1);
	if (!mine)
		return failed(err, "out of memory");
	size_t i;
	json_t *e;
	json_array_foreach(shares, i, e)
	{
		const char *pub = json_string_value(json_object_get(e, "PublicKey"));
		const char *enc = json_string_value(json_object_get(e, "EncryptedSeed"));
		if (!pub || !enc || strcasecmp(pub, mine) != 0)
			continue;
		_cleanup_free_ uint8_t *ct = NULL;
		size_t ct_len = 0;
		if (userdata_base64_decode(enc, strlen(enc), 4096, &ct, &ct_len) < 0)
			return failed(err, "%s: EncryptedSeed is not base64", path);
		if ((r = coordapi_seed_share_decrypt(key, ct, ct_len, seed)) < 0)
			return failed(err, "%s: the share does not decrypt with this key", path);
		memcpy(salt, salt_raw, COORDAPI_SALT_SIZE);
		return 0;
	}
	return failed(err, "%s: no share for this key", path);
}

static int cmd_recover(const struct opts *o, FILE *out, FILE *err)
{
	if (!o->coordinator || !o->seedshare_key || !o->seedshare_file)
		return cli_usage_error(
		    err, "set", "recover needs -c HOST:PORT, --seedshare-key and --seedshare-file");
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	int r = load_private_key(o->seedshare_key, &key, err);
	if (r != 0)
		return r;
	if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA)
		return failed(err, "%s: the seed-share key must be RSA", o->seedshare_key);
	uint8_t seed[COORDAPI_SEED_SIZE], salt[COORDAPI_SALT_SIZE];
	if ((r = find_share(o->seedshare_file, key, seed, salt, err)) != 0)
		return r;

	_cleanup_(trust_done) struct trust t = {};
	_cleanup_(X509_freep) X509 *cert = NULL;
	_cleanup_(SSL_CTX_freep) SSL_CTX *ctx = NULL;
	_cleanup_(coordapi_conn_freep) struct coordapi_conn *c = NULL;
	_cleanup_message_ ProtobufCMessage *answer = NULL;
	if ((r = trust_load(o, &t, err)) != 0)
		goto out;
	if (!t.m)
		fputs("warning: no -m: the seed goes to any coordinator the trust anchors verify, "
		      "whatever its measurement and policy\n",
		      err);
	if (tls_cert_create_client(key, &cert) < 0) {
		ERR_clear_error();
		r = failed(err, "%s: cannot make a client certificate", o->seedshare_key);
		goto out;
	}
	if ((r = coord_connect(o->coordinator, &t, cert, key, &ctx, &c, err)) != 0)
		goto out;
	print_peer(c, err);
	Coordinator__RecoverRequest req = COORDINATOR__RECOVER_REQUEST__INIT;
	req.seed = (ProtobufCBinaryData){.data = seed, .len = sizeof(seed)};
	req.salt = (ProtobufCBinaryData){.data = salt, .len = sizeof(salt)};
	req.force = o->force;
	if ((r = call(c, "Recover", &req.base, &coordinator__recover_response__descriptor, &answer,
		      err)) != 0)
		goto out;
	fputs("recovered: the coordinator is active again\n", out);
	r = CLI_EXIT_OK;
out:
	OPENSSL_cleanse(seed, sizeof(seed));
	OPENSSL_cleanse(salt, sizeof(salt));
	return r;
}

/* ---- state ---- */

static int cmd_state(const struct opts *o, FILE *out, FILE *err)
{
	if (!o->url)
		return cli_usage_error(err, "set", "state needs -u http://HOST:PORT");
	if (!str_startswith(o->url, "http://") && !str_startswith(o->url, "https://"))
		return cli_usage_error(err, "set", "-u needs an http:// or https:// URL, not '%s'",
				       o->url);
	_cleanup_(trust_done) struct trust t = {};
	int r = trust_load(o, &t, err);
	if (r != 0)
		return r;
	uint8_t nonce[ATLS_NONCE_SIZE];
	if ((r = atls_nonce_generate(nonce)) < 0)
		return failed(err, "no randomness: %s", strerror(-r));
	char nonce_hex[65];
	hex_encode_into(nonce, sizeof(nonce), nonce_hex);
	size_t n = strlen(o->url);
	while (n > 0 && o->url[n - 1] == '/')
		n--;
	_cleanup_free_ char *url =
	    str_printf("%.*s%s%s", (int)n, o->url, COORDAPI_HTTP_PATH_PREFIX, nonce_hex);
	if (!url)
		return failed(err, "out of memory");
	struct http_request hr = {
	    .url = url, .timeout_ns = STATE_TIMEOUT_NS, .max_body_bytes = COORDAPI_STATE_MAX_BYTES};
	_cleanup_(http_response_donep) struct http_response resp = {};
	_cleanup_pp_error_ struct pp_error *perr = NULL;
	if ((r = http_request(&hr, &resp, &perr)) < 0)
		return failed(err, "GET %s: %s", url, pp_error_message(perr, r));
	struct coordapi_state s = {};
	_cleanup_free_ char *msg = NULL;
	if ((r = coordapi_state_parse(resp.body, resp.body_len, &s, &msg)) < 0)
		return failed(err, "the attestation document is malformed: %s",
			      msg ? msg : strerror(-r));
	uint8_t rd[ATLS_REPORT_DATA_SIZE];
	struct atls_verified verified = {};
	enum attest_error code = ATTEST_OK;
	r = coordapi_state_report_data(&s, nonce, rd);
	if (r < 0) {
		coordapi_state_done(&s);
		return failed(err, "the attestation document is malformed: %s", strerror(-r));
	}
	r = atls_evidence_verify(s.kind, s.evidence, s.evidence_len, rd, &t.v, &verified, &code,
				 &msg);
	if (r < 0) {
		coordapi_state_done(&s);
		return failed(err, "the coordinator's evidence was refused (%s): %s",
			      attest_error_name(code), msg ? msg : strerror(-r));
	}
	char latest[65] = "", manifest[65] = "";
	if (s.has_latest)
		hex_encode_into(s.latest, 32, latest);
	if (s.has_manifest)
		hex_encode_into(s.manifest, 32, manifest);
	fprintf(out, "state: %s\nlatest: %s\nmanifest: %s", s.state, latest, manifest);
	if (t.m && s.has_manifest)
		fprintf(out, " (%s %s)",
			memcmp(s.manifest, t.m->sha256, 32) == 0 ? "matches" : "differs from",
			o->manifest);
	fprintf(out, "\ncoordinator policy: %s\n", verified.peer.policy_digest_hex);
	atls_verified_done(&verified);
	coordapi_state_done(&s);
	return CLI_EXIT_OK;
}

/* ---- atls-cert (test tool) ---- */

static int cmd_atls_cert(const struct opts *o, FILE *out, FILE *err)
{
	_cleanup_free_ char *msg = NULL;
	int r;
	if (o->new_pki) {
		if (o->pki || o->measurement || o->host_data || o->guest_policy || o->nonce ||
		    o->output || o->key)
			return cli_usage_error(err, "set", "--new-pki takes no other option");
		_cleanup_(atls_test_pki_freep) struct atls_test_pki *pki = NULL;
		if ((r = atls_test_pki_new(now_realtime_ns() / NSEC_PER_SEC, &pki, &msg)) < 0 ||
		    (r = atls_test_pki_save(pki, o->new_pki, &msg)) < 0)
			return failed(err, "test PKI: %s", msg ? msg : strerror(-r));
		fprintf(out, "test PKI written to %s (trust anchor %s/ark.pem; test only)\n",
			o->new_pki, o->new_pki);
		return CLI_EXIT_OK;
	}
	if (!o->pki || !o->measurement || !o->host_data || !o->nonce || !o->output || !o->key)
		return cli_usage_error(err, "set",
				       "atls-cert needs --new-pki DIR, or --pki, --measurement, "
				       "--host-data, --nonce, -o and -k");
	struct atls_sim_params p = {};
	uint8_t nonce[ATLS_NONCE_SIZE];
	if (hex_decode_exact(o->measurement, strlen(o->measurement), p.measurement, 48) < 0)
		return cli_usage_error(err, "set", "--measurement needs 96 hex digits");
	if (hex_decode_exact(o->host_data, strlen(o->host_data), p.host_data, 32) < 0)
		return cli_usage_error(err, "set", "--host-data needs 64 hex digits");
	if (hex_decode_exact(o->nonce, strlen(o->nonce), nonce, sizeof(nonce)) < 0)
		return cli_usage_error(err, "set", "--nonce needs 64 hex digits");
	if (o->guest_policy) {
		char *end = NULL;
		errno = 0;
		p.policy = strtoull(o->guest_policy, &end, 16);
		if (errno || !end || *end || end == o->guest_policy || o->guest_policy[0] == '-')
			return cli_usage_error(err, "set",
					       "--guest-policy needs hex, e.g. 0x30000");
	}
	_cleanup_(atls_test_pki_freep) struct atls_test_pki *pki = NULL;
	if ((r = atls_test_pki_load(o->pki, &pki, &msg)) < 0)
		return failed(err, "%s: %s", o->pki, msg ? msg : strerror(-r));
	_cleanup_(atls_issuer_freep) struct atls_issuer *is = NULL;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	if ((r = atls_issuer_new_sim(pki, &p, &is)) < 0 || (r = tls_key_generate(&key)) < 0)
		return failed(err, "simulated issuer: %s", strerror(-r));
	uint8_t rd[ATLS_REPORT_DATA_SIZE];
	_cleanup_free_ uint8_t *ev = NULL;
	size_t ev_len = 0;
	_cleanup_(X509_freep) X509 *cert = NULL;
	if ((r = atls_report_data(key, nonce, rd)) < 0 ||
	    (r = is->get_evidence(is, rd, &ev, &ev_len, &msg)) < 0 ||
	    (r = atls_cert_create(key, is->kind, ev, ev_len, now_realtime_ns() / NSEC_PER_SEC,
				  &cert)) < 0)
		return failed(err, "attester certificate: %s", msg ? msg : strerror(-r));
	if ((r = tls_key_save(o->key, key)) < 0)
		return failed(err, "%s: %s", o->key, strerror(-r));
	if ((r = tls_cert_save(o->output, cert)) < 0)
		return failed(err, "%s: %s", o->output, strerror(-r));
	fprintf(out, "attester certificate %s (key %s) bound to nonce %s (test only)\n", o->output,
		o->key, o->nonce);
	return CLI_EXIT_OK;
}

/* ---- options ---- */

/* Options each command accepts: bits of the options' positions in the table (< 64). */
static uint64_t bit(int val)
{
	for (size_t i = 0; options[i].name; i++)
		if (options[i].val == val)
			return UINT64_C(1) << i;
	return 0;
}
#define BIT(o) bit(o)

static uint64_t allowed_options(enum cmd c)
{
	uint64_t common = BIT(OPT_HELP);
	switch (c) {
	case CMD_SET:
		return common | BIT(OPT_COORDINATOR) | BIT(OPT_MANIFEST) | BIT(OPT_INITDATA) |
		       BIT(OPT_OWNER_KEY) | BIT(OPT_SIGN) | BIT(OPT_SEEDSHARE_OUT) |
		       BIT(OPT_SEEDSHARE_DIR) | BIT(OPT_TRUST_ANCHOR) | BIT(OPT_RUNTIME_CLASS);
	case CMD_VERIFY:
		return common | BIT(OPT_COORDINATOR) | BIT(OPT_MANIFEST) | BIT(OPT_OUTPUT) |
		       BIT(OPT_TRUST_ANCHOR);
	case CMD_RECOVER:
		return common | BIT(OPT_COORDINATOR) | BIT(OPT_MANIFEST) | BIT(OPT_SEEDSHARE_KEY) |
		       BIT(OPT_SEEDSHARE_FILE) | BIT(OPT_FORCE) | BIT(OPT_TRUST_ANCHOR);
	case CMD_STATE:
		return common | BIT(OPT_URL) | BIT(OPT_MANIFEST) | BIT(OPT_TRUST_ANCHOR);
	case CMD_ATLS_CERT:
		return common | BIT(OPT_NEW_PKI) | BIT(OPT_PKI) | BIT(OPT_MEASUREMENT) |
		       BIT(OPT_HOST_DATA) | BIT(OPT_GUEST_POLICY) | BIT(OPT_NONCE) |
		       BIT(OPT_OUTPUT) | BIT(OPT_KEY);
	}
	return common;
}

static const char *option_name(int c)
{
	for (const struct option *p = options; p->name; p++)
		if (p->val == c)
			return p->name;
	return "?";
}

int cli_coord_run(int argc, char *const *argv, FILE *out, FILE *err)
{
	if (argc < 1 || !cli_coord_is_command(argv[0])) {
		coord_usage(err);
		return CLI_EXIT_USAGE;
	}
	enum cmd cmd = CMD_SET;
	for (size_t i = 0; i < ELEMENTSOF(cmd_names); i++)
		if (str_eq(argv[0], cmd_names[i]))
			cmd = (enum cmd)i;
	struct opts o = {};
	bool help = false;
	optind = 0; /* reset getopt, also for repeated calls from tests */
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, ":c:m:o:u:k:h", options, NULL)) != -1) {
		if (c == ':')
			return cli_usage_error(err, "set", "option '%s' needs a value",
					       argv[optind - 1]);
		if (c == '?')
			return cli_usage_error(err, "set", "unknown option '%s'", argv[optind - 1]);
		if (!(allowed_options(cmd) & BIT(c)))
			return cli_usage_error(err, "set", "'%s' does not take --%s",
					       cmd_names[cmd], option_name(c));
		switch (c) {
		case OPT_COORDINATOR:
			o.coordinator = optarg;
			break;
		case OPT_MANIFEST:
			o.manifest = optarg;
			break;
		case OPT_OUTPUT:
			o.output = optarg;
			break;
		case OPT_URL:
			o.url = optarg;
			break;
		case OPT_KEY:
			o.key = optarg;
			break;
		case OPT_HELP:
			help = true;
			break;
		case OPT_INITDATA:
			o.initdata = optarg;
			break;
		case OPT_OWNER_KEY:
			o.owner_key = optarg;
			break;
		case OPT_SIGN:
			o.sign = true;
			break;
		case OPT_SEEDSHARE_OUT:
			o.seedshare_out = optarg;
			break;
		case OPT_SEEDSHARE_DIR:
			o.seedshare_dir = optarg;
			break;
		case OPT_TRUST_ANCHOR:
			o.trust_anchor = optarg;
			break;
		case OPT_SEEDSHARE_KEY:
			o.seedshare_key = optarg;
			break;
		case OPT_SEEDSHARE_FILE:
			o.seedshare_file = optarg;
			break;
		case OPT_FORCE:
			o.force = true;
			break;
		case OPT_NEW_PKI:
			o.new_pki = optarg;
			break;
		case OPT_PKI:
			o.pki = optarg;
			break;
		case OPT_MEASUREMENT:
			o.measurement = optarg;
			break;
		case OPT_HOST_DATA:
			o.host_data = optarg;
			break;
		case OPT_GUEST_POLICY:
			o.guest_policy = optarg;
			break;
		case OPT_NONCE:
			o.nonce = optarg;
			break;
		case OPT_RUNTIME_CLASS:
			o.runtime_class = optarg;
			break;
		}
	}
	if (help) {
		coord_usage(out);
		return CLI_EXIT_OK;
	}
	o.files = argv + optind;
	o.n_files = (size_t)(argc - optind);
	if (o.n_files && cmd != CMD_SET)
		return cli_usage_error(err, "set", "unexpected argument '%s'", argv[optind]);

	switch (cmd) {
	case CMD_SET:
		return cmd_set(&o, out, err);
	case CMD_VERIFY:
		return cmd_verify(&o, out, err);
	case CMD_RECOVER:
		return cmd_recover(&o, out, err);
	case CMD_STATE:
		return cmd_state(&o, out, err);
	case CMD_ATLS_CERT:
		return cmd_atls_cert(&o, out, err);
	}
	return CLI_EXIT_USAGE;
}

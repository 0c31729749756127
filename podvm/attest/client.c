/* attestation-client: where the coordinator is, one attestation to its mesh API, the checks on
 * the certificates it returns, and writing them for the pod's workloads. */
#include "attest-client.h"

#include <ctype.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>

#include "coordapi/coordapi.h"
#include "coordinator.pb-c.h"
#include "http/http.h"
#include "tls/tls.h"
#include "userdata/userdata.h"

DEFINE_CLEANUP(BIO, BIO_free)
DEFINE_CLEANUP(X509_STORE, X509_STORE_free)
DEFINE_CLEANUP(X509_STORE_CTX, X509_STORE_CTX_free)

static inline void x509_stack_freep(STACK_OF(X509) * *p)
{
	if (*p)
		sk_X509_pop_free(*p, X509_free);
}

char *attest_client_path(const char *root, const char *path)
{
	if (str_empty(root) || str_eq(root, "/"))
		return strdup(path);
	size_t n = strlen(root);
	while (n > 1 && root[n - 1] == '/')
		n--;
	return str_printf("%.*s%s", (int)n, root, path);
}

/* ---- coordinator address ---- */

static char *trim(const char *s, size_t len)
{
	while (len > 0 && isspace((unsigned char)*s))
		s++, len--;
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		len--;
	return strndup(s, len);
}

/* HOST:PORT or [V6]:PORT, no blanks. */
static bool address_valid(const char *a)
{
	if (str_empty(a))
		return false;
	for (const char *p = a; *p; p++)
		if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p))
			return false;
	_cleanup_free_ char *host = NULL, *port = NULL;
	return coordapi_split_address(a, &host, &port) == 0;
}

int attest_client_coordinator_address(const char *root, const char *flag_value, char **ret,
				      char **ret_msg)
{
	if (!str_empty(flag_value)) {
		_cleanup_free_ char *a = trim(flag_value, strlen(flag_value));
		if (!a)
			return -ENOMEM;
		if (!address_valid(a))
			return str_set_message(ret_msg, EINVAL,
					       "invalid coordinator address \"%s\": want HOST:PORT",
					       flag_value);
		*ret = TAKE_PTR(a);
		return 0;
	}
	_cleanup_free_ char *path = attest_client_path(root, ATTEST_CLIENT_INITDATA);
	if (!path)
		return -ENOMEM;
	_cleanup_free_ char *encoded = NULL, *toml = NULL, *msg = NULL;
	size_t len = 0, toml_len = 0;
	int r = read_file_bounded(path, INITDATA_MAX_ENCODED_BYTES, &encoded, &len);
	if (r < 0)
		return str_set_message(ret_msg, ENOENT,
				       "no coordinator address: no -coordinator flag, no %s, and "
				       "the initdata %s cannot be read: %s",
				       ATTEST_CLIENT_ADDRESS_ENV, path, strerror(-r));
	r = initdata_decode(encoded, len, &toml, &toml_len, &msg);
	_cleanup_(initdata_donep) struct initdata d = {};
	if (r >= 0)
		r = initdata_parse_toml(toml, toml_len, &d, &msg);
	if (r < 0)
		return str_set_message(ret_msg, ENOENT,
				       "no coordinator address: no -coordinator flag, no %s, and "
				       "the initdata %s is malformed: %s",
				       ATTEST_CLIENT_ADDRESS_ENV, path, msg ? msg : strerror(-r));
	for (size_t i = 0; i < d.n_data; i++) {
		if (!str_eq(d.data[i].name, ATTEST_CLIENT_INITDATA_KEY))
			continue;
		_cleanup_free_ char *a = trim(d.data[i].value, d.data[i].value_len);
		if (!a)
			return -ENOMEM;
		if (!address_valid(a))
			return str_set_message(ret_msg, EINVAL,
					       "invalid coordinator address \"%s\" in the initdata "
					       "[data] entry \"%s\" of %s: want HOST:PORT",
					       a, ATTEST_CLIENT_INITDATA_KEY, path);
		*ret = TAKE_PTR(a);
		return 0;
	}
	return str_set_message(ret_msg, ENOENT,
			       "no coordinator address: no -coordinator flag, no %s, and the "
			       "initdata %s has no [data] entry \"%s\"",
			       ATTEST_CLIENT_ADDRESS_ENV, path, ATTEST_CLIENT_INITDATA_KEY);
}

int attest_client_read_host_data(const char *root, uint8_t ret[32], char **ret_msg)
{
	_cleanup_free_ char *path = attest_client_path(root, ATTEST_CLIENT_INITDATA_DIGEST);
	if (!path)
		return -ENOMEM;
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	int r = read_file_bounded(path, 1024, &text, &len);
	if (r < 0)
		return str_set_message(ret_msg, r, "cannot read %s: %s", path, strerror(-r));
	_cleanup_free_ char *hex = trim(text, len);
	if (!hex)
		return -ENOMEM;
	if (hex_decode_exact(hex, strlen(hex), ret, 32) < 0)
		return str_set_message(ret_msg, EINVAL,
				       "%s does not hold a sha256 digest (64 hex digits)", path);
	return 0;
}

/* ---- answer checks ---- */

void attest_client_answer_done(struct attest_client_answer *a)
{
	if (!a)
		return;
	free(a->mesh_ca_pem);
	free(a->chain_pem);
	free(a->root_pem);
	free(a->secret_id);
	OPENSSL_cleanse(a, sizeof(*a));
}

/* Every certificate of a PEM text. */
static int pem_certs(const char *pem, STACK_OF(X509) * *ret)
{
	if (str_empty(pem) || strlen(pem) > COORDAPI_MAX_RESPONSE_BYTES)
		return -EBADMSG;
	_cleanup_(BIO_freep) BIO *bio = BIO_new_mem_buf(pem, (int)strlen(pem));
	_cleanup_(x509_stack_freep) STACK_OF(X509) *sk = sk_X509_new_null();
	if (!bio || !sk)
		return -ENOMEM;
	for (;;) {
		X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
		if (!x)
			break;
		if (sk_X509_push(sk, x) <= 0) {
			X509_free(x);
			return -ENOMEM;
		}
	}
	ERR_clear_error();
	if (sk_X509_num(sk) == 0)
		return -EBADMSG;
	*ret = TAKE_PTR(sk);
	return 0;
}

static int verify_leaf(X509 *leaf, X509 *anchor, STACK_OF(X509) * untrusted, int64_t now_sec)
{
	_cleanup_(X509_STORE_freep) X509_STORE *store = X509_STORE_new();
	_cleanup_(X509_STORE_CTX_freep) X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	if (!store || !ctx || X509_STORE_add_cert(store, anchor) != 1 ||
	    X509_STORE_CTX_init(ctx, store, leaf, untrusted) != 1) {
		ERR_clear_error();
		return -ENOMEM;
	}
	if (now_sec > 0)
		X509_STORE_CTX_set_time(ctx, 0, (time_t)now_sec);
	int ok = X509_verify_cert(ctx);
	ERR_clear_error();
	if (ok == 1)
		return 0;
	return -X509_STORE_CTX_get_error(ctx) - 1000; /* distinct from errno, for messages */
}

static const char *verify_error(int r)
{
	return r <= -1000 ? X509_verify_cert_error_string(-(r + 1000)) : strerror(-r);
}

static int asn1_time_sec(const ASN1_TIME *t, int64_t *ret)
{
	struct tm tm = {};
	if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
		return -EBADMSG;
	time_t s = timegm(&tm);
	if (s == (time_t)-1)
		return -EBADMSG;
	*ret = (int64_t)s;
	return 0;
}

int attest_client_check_answer(EVP_PKEY *key, const char *mesh_ca_pem, const char *chain_pem,
			       const char *root_pem, const uint8_t *secret, size_t secret_len,
			       const char *secret_id, int64_t now_sec,
			       struct attest_client_answer *ret, char **ret_msg)
{
	_cleanup_(x509_stack_freep) STACK_OF(X509) *mesh = NULL, *chain = NULL, *root = NULL;
	if (pem_certs(mesh_ca_pem, &mesh) < 0 || sk_X509_num(mesh) != 1)
		return str_set_message(ret_msg, EBADMSG, "the mesh CA is not one PEM certificate");
	if (pem_certs(root_pem, &root) < 0 || sk_X509_num(root) != 1)
		return str_set_message(ret_msg, EBADMSG, "the root CA is not one PEM certificate");
	if (pem_certs(chain_pem, &chain) < 0 || sk_X509_num(chain) != 2)
		return str_set_message(ret_msg, EBADMSG,
				       "the certificate chain is not two PEM certificates (leaf, "
				       "intermediate)");
	X509 *leaf = sk_X509_value(chain, 0);
	EVP_PKEY *leaf_key = X509_get0_pubkey(leaf);
	if (!leaf_key || EVP_PKEY_eq(leaf_key, key) != 1) {
		ERR_clear_error();
		return str_set_message(ret_msg, EBADMSG,
				       "the leaf certificate is not for this client's key");
	}
	int r = verify_leaf(leaf, sk_X509_value(mesh, 0), NULL, now_sec);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return str_set_message(ret_msg, EBADMSG,
				       "the leaf does not verify against the mesh CA: %s",
				       verify_error(r));
	_cleanup_(x509_stack_freep) STACK_OF(X509) *untrusted = sk_X509_new_null();
	if (!untrusted || sk_X509_push(untrusted, sk_X509_value(chain, 1)) <= 0 ||
	    X509_up_ref(sk_X509_value(chain, 1)) != 1)
		return -ENOMEM;
	r = verify_leaf(leaf, sk_X509_value(root, 0), untrusted, now_sec);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return str_set_message(ret_msg, EBADMSG,
				       "the chain does not verify against the root CA: %s",
				       verify_error(r));
	if ((secret_len != 0 && secret_len != 64) || (secret_len == 64) != !str_empty(secret_id))
		return str_set_message(ret_msg, EBADMSG,
				       "the workload secret (%zu bytes) and its id (%s) do not go "
				       "together",
				       secret_len, str_empty(secret_id) ? "none" : "set");

	struct attest_client_answer a = {};
	if (asn1_time_sec(X509_get0_notBefore(leaf), &a.not_before_sec) < 0 ||
	    asn1_time_sec(X509_get0_notAfter(leaf), &a.not_after_sec) < 0 ||
	    a.not_after_sec <= a.not_before_sec)
		return str_set_message(ret_msg, EBADMSG, "the leaf's validity is malformed");
	a.mesh_ca_pem = strdup(mesh_ca_pem);
	a.chain_pem = strdup(chain_pem);
	a.root_pem = strdup(root_pem);
	a.secret_id = str_empty(secret_id) ? NULL : strdup(secret_id);
	if (!a.mesh_ca_pem || !a.chain_pem || !a.root_pem ||
	    (!str_empty(secret_id) && !a.secret_id)) {
		attest_client_answer_done(&a);
		return -ENOMEM;
	}
	if (secret_len == 64) {
		a.has_secret = true;
		memcpy(a.secret, secret, 64);
	}
	*ret = a;
	return 0;
}

/* ---- files ---- */

static int write_one(const char *dir, const char *name, const void *data, size_t len, mode_t mode,
		     char **ret_msg)
{
	_cleanup_free_ char *path = str_printf("%s/%s", dir, name);
	if (!path)
		return -ENOMEM;
	int r = write_file_atomic(path, data, len, mode);
	if (r < 0)
		return str_set_message(ret_msg, r, "cannot write %s: %s", path, strerror(-r));
	return 0;
}

static int remove_one(const char *dir, const char *name, char **ret_msg)
{
	_cleanup_free_ char *path = str_printf("%s/%s", dir, name);
	if (!path)
		return -ENOMEM;
	if (unlink(path) < 0 && errno != ENOENT)
		return str_set_message(ret_msg, errno, "cannot remove %s: %m", path);
	return 0;
}

int attest_client_write_files(const char *root, EVP_PKEY *key, const struct attest_client_answer *a,
			      char **ret_msg)
{
	_cleanup_free_ char *dir = attest_client_path(root, ATTEST_CLIENT_MESH_DIR);
	if (!dir)
		return -ENOMEM;
	int r = mkdir_p(dir, 0755);
	if (r < 0)
		return str_set_message(ret_msg, r, "cannot create %s: %s", dir, strerror(-r));
	if (chmod(dir, 0755) < 0)
		return str_set_message(ret_msg, errno, "cannot chmod %s: %m", dir);

	_cleanup_secret_ char *key_pem = NULL;
	if ((r = tls_key_to_pem(key, &key_pem)) < 0)
		return str_set_message(ret_msg, r, "cannot encode the key");
	/* The key first: the chain written next must never name a key that is not there. */
	if ((r = write_one(dir, "key.pem", key_pem, strlen(key_pem), 0600, ret_msg)) < 0 ||
	    (r = write_one(dir, "cert-chain.pem", a->chain_pem, strlen(a->chain_pem), 0644,
			   ret_msg)) < 0 ||
	    (r = write_one(dir, "mesh-ca.pem", a->mesh_ca_pem, strlen(a->mesh_ca_pem), 0644,
			   ret_msg)) < 0 ||
	    (r = write_one(dir, "root-ca.pem", a->root_pem, strlen(a->root_pem), 0644, ret_msg)) <
		0)
		return r;
	if (!a->has_secret) {
		if ((r = remove_one(dir, "workload-secret", ret_msg)) < 0 ||
		    (r = remove_one(dir, "workload-secret-id", ret_msg)) < 0)
			return r;
		return 0;
	}
	char hex[129];
	hex_encode_into(a->secret, sizeof(a->secret), hex);
	r = write_one(dir, "workload-secret", hex, 128, 0600, ret_msg);
	OPENSSL_cleanse(hex, sizeof(hex));
	if (r < 0)
		return r;
	return write_one(dir, "workload-secret-id", a->secret_id, strlen(a->secret_id), 0644,
			 ret_msg);
}

/* ---- timing ---- */

int64_t attest_client_backoff_ns(unsigned attempt, int64_t initial_ns, int64_t max_ns,
				 uint64_t random)
{
	return http_backoff_ns(attempt, initial_ns, max_ns, random);
}

int64_t attest_client_renew_delay_ns(int64_t not_before_sec, int64_t not_after_sec, double fraction,
				     int64_t now_sec)
{
	double span = (double)(not_after_sec - not_before_sec);
	double at = (double)not_before_sec + span * fraction;
	double delay_s = at - (double)now_sec;
	/* Far-future renewals are capped at ~290 years, well inside int64 nanoseconds. */
	if (delay_s > 9e9)
		delay_s = 9e9;
	int64_t ns = (int64_t)(delay_s * (double)NSEC_PER_SEC);
	return ns < ATTEST_CLIENT_MIN_RENEW_NS ? ATTEST_CLIENT_MIN_RENEW_NS : ns;
}

/* ---- one attempt ---- */

static char *const alpn_protocols[] = {(char *)COORDAPI_ALPN, NULL};

int attest_client_ctx_new(struct atls_issuer *issuer, EVP_PKEY *key, SSL_CTX **ret, char **ret_msg)
{
	/* No verifier: a rogue coordinator can only issue certificates nobody else trusts. */
	const struct atls_config c = {.issuer = issuer, .key = key, .alpn = alpn_protocols};
	return atls_ctx_new_client(&c, ret, ret_msg);
}

int attest_client_fetch(const char *address, SSL_CTX *ctx, EVP_PKEY *key,
			struct attest_client_answer *ret, char **ret_msg)
{
	_cleanup_(coordapi_conn_freep) struct coordapi_conn *conn = NULL;
	_cleanup_free_ char *msg = NULL;
	int r = coordapi_connect(address, ctx, ATTEST_CLIENT_CALL_TIMEOUT_NS, &conn, &msg);
	if (r < 0)
		return str_set_message(ret_msg, r, "%s", msg ? msg : strerror(-r));
	Coordinator__NewMeshCertRequest req = COORDINATOR__NEW_MESH_CERT_REQUEST__INIT;
	ProtobufCMessage *out = NULL;
	r = coordapi_call(conn, COORDAPI_MESH_SERVICE, "NewMeshCert", &req.base,
			  &coordinator__new_mesh_cert_response__descriptor,
			  ATTEST_CLIENT_CALL_TIMEOUT_NS, &out, &msg);
	if (r > 0)
		return str_set_message(ret_msg, EPROTO, "NewMeshCert refused (ttRPC code %d): %s",
				       r, msg ? msg : "no message");
	/* TLS 1.3: a client certificate the server refused shows up at the first read. */
	if (r < 0)
		return str_set_message(ret_msg, r,
				       "NewMeshCert: %s (the coordinator may have refused this "
				       "VM's evidence: see its log)",
				       msg ? msg : strerror(-r));
	Coordinator__NewMeshCertResponse *resp = (Coordinator__NewMeshCertResponse *)out;
	r = attest_client_check_answer(key, resp->meshcapem, resp->certchainpem, resp->rootcapem,
				       resp->workloadsecret.data, resp->workloadsecret.len,
				       resp->workloadsecretid, 0, ret, &msg);
	if (resp->workloadsecret.data)
		OPENSSL_cleanse(resp->workloadsecret.data, resp->workloadsecret.len);
	protobuf_c_message_free_unpacked(out, NULL);
	if (r < 0)
		return str_set_message(ret_msg, r, "NewMeshCert answer refused: %s",
				       msg ? msg : strerror(-r));
	return 0;
}

/* coordinator/service.c: the cores of the coordinator's ttRPC methods (proto/coordinator.proto):
 * unpack and validate a request, run it against the history (UserAPI) or a snapshot (MeshAPI)
 * and pack the answer or map the failure to a ttRPC code. No I/O besides the store, no logging:
 * the daemon runs these on its workers and the fuzz target runs them directly. */
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "coordinator/daemon.h"
#include "tls/tls.h"

/* Room for the envelope around a response in a ttRPC frame. */
#define RESPONSE_MAX_BYTES (TTRPC_MAX_DATA_BYTES - 64 * 1024)

void coord_reply_done(struct coord_reply *r)
{
	if (!r)
		return;
	free(r->message);
	if (r->payload) {
		OPENSSL_cleanse(r->payload, r->len);
		free(r->payload);
	}
	*r = (struct coord_reply){0};
}

static void reply_error(struct coord_reply *ret, int code, const char *fmt, ...) _printf_(3, 4);
static void reply_error(struct coord_reply *ret, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ret->code = code;
	ret->message = str_vprintf(fmt, ap);
	va_end(ap);
}

static void reply_pack(struct coord_reply *ret, const ProtobufCMessage *msg)
{
	size_t n = protobuf_c_message_get_packed_size(msg);
	if (n > RESPONSE_MAX_BYTES) {
		reply_error(ret, TTRPC_RESOURCE_EXHAUSTED, "response of %zu bytes is too large", n);
		return;
	}
	uint8_t *buf = malloc(n ? n : 1);
	if (!buf) {
		reply_error(ret, TTRPC_INTERNAL, "out of memory");
		return;
	}
	ret->len = protobuf_c_message_pack(msg, buf);
	ret->payload = buf;
	ret->code = TTRPC_OK;
}

/* errno classes of the history to ttRPC codes. */
static int code_of(int r)
{
	switch (-r) {
	case EINVAL:
	case EFBIG:
	case EBADMSG:
		return TTRPC_INVALID_ARGUMENT;
	case EPERM:
	case EACCES:
		return TTRPC_PERMISSION_DENIED;
	case ESTALE:
	case EALREADY:
	case ENOENT:
		return TTRPC_FAILED_PRECONDITION;
	default:
		return TTRPC_INTERNAL;
	}
}

static void reply_errno(struct coord_reply *ret, int r, const struct pp_error *err,
			const char *what)
{
	reply_error(ret, code_of(r), "%s: %s", what, pp_error_message(err, r));
}

int coord_client_from_ssl(SSL *ssl, struct coord_client *ret)
{
	*ret = (struct coord_client){0};
	if (!ssl)
		return 0;
	X509 *cert = SSL_get0_peer_certificate(ssl);
	if (cert) {
		EVP_PKEY *key = X509_get_pubkey(cert);
		if (!key)
			return -EBADMSG;
		ret->key = key;
		unsigned char *der = NULL;
		int n = i2d_PUBKEY(key, &der);
		if (n <= 0) {
			coord_client_done(ret);
			return -ENOMEM;
		}
		ret->spki = der;
		ret->spki_len = (size_t)n;
		if (EVP_PKEY_base_id(key) == EVP_PKEY_RSA) {
			der = NULL;
			n = i2d_PublicKey(key, &der);
			if (n <= 0) {
				coord_client_done(ret);
				return -ENOMEM;
			}
			ret->pkcs1 = der;
			ret->pkcs1_len = (size_t)n;
		}
	}
	const struct atls_peer *peer = atls_ssl_peer(ssl);
	if (peer) {
		ret->attested = true;
		memcpy(ret->digest, peer->policy_digest, 32);
		hex_encode_into(ret->digest, 32, ret->digest_hex);
	}
	return 0;
}

void coord_client_done(struct coord_client *c)
{
	if (!c)
		return;
	EVP_PKEY_free(c->key);
	OPENSSL_free(c->spki);
	OPENSSL_free(c->pkcs1);
	*c = (struct coord_client){0};
}

/* ---- UserAPI ---- */

static const char *set_result(int r)
{
	switch (-r) {
	case EINVAL:
	case EFBIG:
		return "invalid";
	case EPERM:
	case EACCES:
		return "denied";
	case ESTALE:
		return "conflict";
	default:
		return "error";
	}
}

static void set_manifest(struct history *h, const struct coord_client *c,
			 const Coordinator__SetManifestRequest *req, int64_t now_sec,
			 struct coord_reply *ret)
{
	if (req->manifest.len == 0 || req->manifest.len > MANIFEST_MAX_BYTES) {
		reply_error(ret, TTRPC_INVALID_ARGUMENT,
			    "SetManifest: the manifest must have 1 to %d bytes",
			    MANIFEST_MAX_BYTES);
		return;
	}
	struct history_set_request hr = {
	    .manifest = req->manifest.data,
	    .manifest_len = req->manifest.len,
	    .initdata = req->initdata,
	    .n_initdata = req->n_initdata,
	    .client_spki = c && c->spki_len ? c->spki : NULL,
	    .client_spki_len = c ? c->spki_len : 0,
	    .signature = req->signature.len ? req->signature.data : NULL,
	    .signature_len = req->signature.len,
	    .now_sec = now_sec,
	};
	_cleanup_free_ char *shares = NULL;
	_cleanup_pp_error_ struct pp_error *err = NULL;
	int r = history_set_manifest(h, &hr, &shares, &err);
	if (r < 0) {
		ret->result = set_result(r);
		reply_errno(ret, r, err, "SetManifest");
		return;
	}
	ret->result = "accepted";
	uint8_t latest[32];
	const struct ca *ca = history_ca(h);
	_cleanup_free_ char *mesh_pem = NULL, *root_pem = NULL;
	if (history_latest_hash(h, latest) < 0 || !ca || ca_cert_to_pem(ca->mesh, &mesh_pem) < 0 ||
	    ca_cert_to_pem(ca->root, &root_pem) < 0) {
		reply_error(ret, TTRPC_INTERNAL, "SetManifest: accepted, but the answer failed");
		return;
	}
	Coordinator__SetManifestResponse resp = COORDINATOR__SET_MANIFEST_RESPONSE__INIT;
	if (shares)
		resp.seedsharesjson = shares;
	resp.transition = (ProtobufCBinaryData){32, latest};
	resp.meshcapem = mesh_pem;
	resp.rootcapem = root_pem;
	reply_pack(ret, &resp.base);
}

void coord_handle_set_manifest(struct history *h, const struct coord_client *c,
			       const uint8_t *payload, size_t len, int64_t now_sec,
			       struct coord_reply *ret)
{
	*ret = (struct coord_reply){.result = "invalid"};
	Coordinator__SetManifestRequest *req =
	    coordinator__set_manifest_request__unpack(NULL, len, payload);
	if (!req) {
		reply_error(ret, TTRPC_INVALID_ARGUMENT, "SetManifest: malformed request");
		return;
	}
	set_manifest(h, c, req, now_sec, ret);
	coordinator__set_manifest_request__free_unpacked(req, NULL);
}

/* A content-addressed object, re-hashed. */
static int store_get_hashed(struct store *store, const char *prefix, const uint8_t hash[32],
			    uint8_t **ret, size_t *ret_len)
{
	char hex[65], key[STORE_KEY_MAX];
	hex_encode_into(hash, 32, hex);
	(void)snprintf(key, sizeof(key), "%s/%s", prefix, hex);
	_cleanup_free_ uint8_t *data = NULL;
	size_t len = 0;
	int r = store_get(store, key, &data, &len);
	if (r < 0)
		return r;
	uint8_t got[32];
	SHA256(data, len, got);
	if (CRYPTO_memcmp(got, hash, 32) != 0)
		return -EUCLEAN;
	*ret = TAKE_PTR(data);
	*ret_len = len;
	return 0;
}

int coord_latest_manifest(struct store *store, uint8_t **ret, size_t *ret_len)
{
	_cleanup_free_ uint8_t *latest = NULL, *transition = NULL;
	size_t n = 0, tn = 0;
	int r = store_get(store, HISTORY_KEY_LATEST, &latest, &n);
	if (r < 0)
		return r;
	if (n < 32)
		return -EUCLEAN;
	r = store_get_hashed(store, "transitions", latest, &transition, &tn);
	if (r < 0)
		return r;
	if (tn != HISTORY_TRANSITION_SIZE)
		return -EUCLEAN;
	return store_get_hashed(store, "manifests", transition, ret, ret_len);
}

struct manifests_answer {
	Coordinator__GetManifestsResponse resp;
	Coordinator__Policy *policies;
	Coordinator__Policy **policy_ptrs;
	char (*digests)[65];
	uint8_t *latest_value;
	uint8_t *spki;
	char *mesh_pem, *root_pem;
};

static void manifests_answer_done(struct manifests_answer *a)
{
	for (size_t i = 0; i < a->resp.n_manifests; i++)
		free(a->resp.manifests[i].data);
	free(a->resp.manifests);
	for (size_t i = 0; i < a->resp.n_policies; i++)
		free(a->policies[i].initdata.data);
	free(a->policies);
	free(a->policy_ptrs);
	free(a->digests);
	free(a->latest_value);
	OPENSSL_free(a->spki);
	free(a->mesh_pem);
	free(a->root_pem);
}

void coord_handle_get_manifests(struct history *h, struct store *store, const uint8_t *payload,
				size_t len, struct coord_reply *ret)
{
	*ret = (struct coord_reply){0};
	Coordinator__GetManifestsRequest *req =
	    coordinator__get_manifests_request__unpack(NULL, len, payload);
	if (!req) {
		reply_error(ret, TTRPC_INVALID_ARGUMENT, "GetManifests: malformed request");
		return;
	}
	coordinator__get_manifests_request__free_unpacked(req, NULL);
	enum history_state state = history_get_state(h);
	if (state != HISTORY_ACTIVE) {
		reply_error(ret, TTRPC_FAILED_PRECONDITION, "GetManifests: the coordinator is %s",
			    history_state_name(state));
		return;
	}
	const struct manifest *m = history_manifest(h);
	const struct secrets *sec = history_secrets(h);
	const struct ca *ca = history_ca(h);
	_cleanup_free_ struct history_entry *entries = NULL;
	size_t n = 0;
	_cleanup_pp_error_ struct pp_error *err = NULL;
	int r = history_walk(h, &entries, &n, &err);
	if (r < 0) {
		reply_errno(ret, r, err, "GetManifests");
		return;
	}
	uint8_t ours[32];
	if (n == 0 || history_latest_hash(h, ours) < 0 ||
	    CRYPTO_memcmp(ours, entries[0].transition, 32) != 0) {
		reply_error(ret, TTRPC_FAILED_PRECONDITION,
			    "GetManifests: the stored history moved on; this coordinator is "
			    "catching up");
		return;
	}

	struct manifests_answer a = {.resp = COORDINATOR__GET_MANIFESTS_RESPONSE__INIT};
	size_t total = 0;
	a.resp.manifests = calloc(n, sizeof(*a.resp.manifests));
	a.policies = calloc(m->n_policies ? m->n_policies : 1, sizeof(*a.policies));
	a.policy_ptrs = calloc(m->n_policies ? m->n_policies : 1, sizeof(*a.policy_ptrs));
	a.digests = calloc(m->n_policies ? m->n_policies : 1, sizeof(*a.digests));
	if (!a.resp.manifests || !a.policies || !a.policy_ptrs || !a.digests) {
		reply_error(ret, TTRPC_INTERNAL, "out of memory");
		goto out;
	}
	for (size_t i = n; i-- > 0;) {
		ProtobufCBinaryData *d = &a.resp.manifests[a.resp.n_manifests];
		r = history_get_manifest(h, entries[i].manifest, &d->data, &d->len, &err);
		if (r < 0) {
			reply_errno(ret, r, err, "GetManifests");
			goto out;
		}
		a.resp.n_manifests++;
		if ((total += d->len) > RESPONSE_MAX_BYTES) {
			reply_error(ret, TTRPC_RESOURCE_EXHAUSTED,
				    "GetManifests: the history of %zu manifests is too large", n);
			goto out;
		}
	}
	for (size_t i = 0; i < m->n_policies; i++) {
		Coordinator__Policy *p = &a.policies[i];
		coordinator__policy__init(p);
		memcpy(a.digests[i], m->policies[i].digest_hex, 65);
		p->digest = a.digests[i];
		r = history_get_policy(h, m->policies[i].digest, &p->initdata.data,
				       &p->initdata.len, &err);
		if (r < 0) {
			reply_errno(ret, r, err, "GetManifests");
			goto out;
		}
		a.policy_ptrs[i] = p;
		a.resp.n_policies++;
	}
	a.resp.policies = a.policy_ptrs;
	size_t latest_len = 0;
	r = store_get(store, HISTORY_KEY_LATEST, &a.latest_value, &latest_len);
	if (r < 0 || latest_len <= 32 || CRYPTO_memcmp(a.latest_value, ours, 32) != 0) {
		reply_error(ret, r < 0 ? TTRPC_INTERNAL : TTRPC_FAILED_PRECONDITION,
			    "GetManifests: the latest transition cannot be read or moved on");
		goto out;
	}
	int spki_len = i2d_PUBKEY(sec->signing_key, &a.spki);
	if (spki_len <= 0 || ca_cert_to_pem(ca->mesh, &a.mesh_pem) < 0 ||
	    ca_cert_to_pem(ca->root, &a.root_pem) < 0) {
		reply_error(ret, TTRPC_INTERNAL, "GetManifests: encoding failed");
		goto out;
	}
	a.resp.meshcapem = a.mesh_pem;
	a.resp.rootcapem = a.root_pem;
	a.resp.latest = (ProtobufCBinaryData){32, ours};
	a.resp.latestsignature = (ProtobufCBinaryData){latest_len - 32, a.latest_value + 32};
	a.resp.signingpublickey = (ProtobufCBinaryData){(size_t)spki_len, a.spki};
	a.resp.state = (char *)history_state_name(state);
	reply_pack(ret, &a.resp.base);
out:
	manifests_answer_done(&a);
}

static void recover(struct history *h, const struct coord_client *c,
		    const Coordinator__RecoverRequest *req, int64_t now_sec,
		    struct coord_reply *ret)
{
	if (req->seed.len != SECRETS_SEED_SIZE || req->salt.len != SECRETS_SALT_SIZE) {
		reply_error(ret, TTRPC_INVALID_ARGUMENT,
			    "Recover: the seed must have %d bytes and the salt %d",
			    SECRETS_SEED_SIZE, SECRETS_SALT_SIZE);
		return;
	}
	if (!c || c->pkcs1_len == 0) {
		reply_error(ret, TTRPC_PERMISSION_DENIED,
			    "Recover: the TLS client key must be the seed-share RSA key");
		return;
	}
	struct history_recover_request rr = {
	    .seed = req->seed.data,
	    .salt = req->salt.data,
	    .client_pkcs1 = c->pkcs1,
	    .client_pkcs1_len = c->pkcs1_len,
	    .now_sec = now_sec,
	};
	_cleanup_pp_error_ struct pp_error *err = NULL;
	int r = history_recover(h, &rr, &err);
	if (r < 0) {
		reply_errno(ret, r, err, "Recover");
		return;
	}
	Coordinator__RecoverResponse resp = COORDINATOR__RECOVER_RESPONSE__INIT;
	reply_pack(ret, &resp.base);
}

void coord_handle_recover(struct history *h, const struct coord_client *c, const uint8_t *payload,
			  size_t len, int64_t now_sec, struct coord_reply *ret)
{
	*ret = (struct coord_reply){0};
	Coordinator__RecoverRequest *req = coordinator__recover_request__unpack(NULL, len, payload);
	if (!req) {
		reply_error(ret, TTRPC_INVALID_ARGUMENT, "Recover: malformed request");
		return;
	}
	recover(h, c, req, now_sec, ret);
	if (req->seed.data)
		OPENSSL_cleanse(req->seed.data, req->seed.len);
	if (req->salt.data)
		OPENSSL_cleanse(req->salt.data, req->salt.len);
	coordinator__recover_request__free_unpacked(req, NULL);
}

/* ---- MeshAPI ---- */

void coord_handle_new_mesh_cert(const struct coord_snapshot *s, const struct coord_client *c,
				const uint8_t *payload, size_t len, int64_t now_sec,
				struct coord_reply *ret)
{
	*ret = (struct coord_reply){0};
	Coordinator__NewMeshCertRequest *req =
	    coordinator__new_mesh_cert_request__unpack(NULL, len, payload);
	if (!req) {
		reply_error(ret, TTRPC_INVALID_ARGUMENT, "NewMeshCert: malformed request");
		return;
	}
	coordinator__new_mesh_cert_request__free_unpacked(req, NULL);
	if (!s || s->state != HISTORY_ACTIVE) {
		reply_error(ret, TTRPC_FAILED_PRECONDITION, "NewMeshCert: the coordinator is %s",
			    history_state_name(s ? s->state : HISTORY_UNINITIALIZED));
		return;
	}
	if (!c || !c->attested || !c->key) {
		reply_error(ret, TTRPC_PERMISSION_DENIED, "NewMeshCert: the client did not attest");
		return;
	}
	const struct manifest_policy *p = manifest_policy_find(s->manifest, c->digest);
	if (!p) {
		reply_error(ret, TTRPC_PERMISSION_DENIED,
			    "NewMeshCert: policy digest %s is not in the current manifest",
			    c->digest_hex);
		return;
	}
	struct ca_mesh_cert mc = {};
	int r = ca_new_mesh_cert(s->ca, s->secrets, p, c->key, now_sec, &mc);
	if (r < 0) {
		reply_error(ret, r == -EINVAL ? TTRPC_INVALID_ARGUMENT : TTRPC_INTERNAL,
			    "NewMeshCert: cannot issue for this key: %s", strerror(-r));
		return;
	}
	Coordinator__NewMeshCertResponse resp = COORDINATOR__NEW_MESH_CERT_RESPONSE__INIT;
	resp.meshcapem = mc.mesh_ca_pem;
	resp.certchainpem = mc.chain_pem;
	resp.rootcapem = mc.root_pem;
	if (mc.has_workload_secret) {
		resp.workloadsecret =
		    (ProtobufCBinaryData){SECRETS_DERIVED_SIZE, mc.workload_secret};
		resp.workloadsecretid = p->workload_secret_id;
	}
	reply_pack(ret, &resp.base);
	ca_mesh_cert_done(&mc);
}

void coord_handle_peer_recover(const struct coord_snapshot *s, const struct coord_client *c,
			       const uint8_t *payload, size_t len, struct coord_reply *ret)
{
	*ret = (struct coord_reply){0};
	Coordinator__PeerRecoverRequest *req =
	    coordinator__peer_recover_request__unpack(NULL, len, payload);
	if (!req) {
		reply_error(ret, TTRPC_INVALID_ARGUMENT, "PeerRecover: malformed request");
		return;
	}
	coordinator__peer_recover_request__free_unpacked(req, NULL);
	if (!s || s->state != HISTORY_ACTIVE) {
		reply_error(ret, TTRPC_FAILED_PRECONDITION, "PeerRecover: the coordinator is %s",
			    history_state_name(s ? s->state : HISTORY_UNINITIALIZED));
		return;
	}
	if (!c || !c->attested || !manifest_digest_is_coordinator(s->manifest, c->digest)) {
		reply_error(ret, TTRPC_PERMISSION_DENIED,
			    "PeerRecover: policy digest %s is not a coordinator of the manifest",
			    c && c->attested ? c->digest_hex : "(none)");
		return;
	}
	_cleanup_secret_ char *key_pem = NULL;
	int r = ca_mesh_key_to_pem(s->ca, &key_pem);
	if (r < 0) {
		reply_error(ret, TTRPC_INTERNAL, "PeerRecover: %s", strerror(-r));
		return;
	}
	Coordinator__PeerRecoverResponse resp = COORDINATOR__PEER_RECOVER_RESPONSE__INIT;
	resp.seed = (ProtobufCBinaryData){SECRETS_SEED_SIZE, (uint8_t *)s->secrets->seed};
	resp.salt = (ProtobufCBinaryData){SECRETS_SALT_SIZE, (uint8_t *)s->secrets->salt};
	resp.meshcakeypem = key_pem;
	resp.manifest = (ProtobufCBinaryData){s->manifest->raw_len, s->manifest->raw};
	reply_pack(ret, &resp.base);
}

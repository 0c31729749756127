/* coordinator: manifest history, SetManifest, the coordinator state machine and recovery
 * (ATTESTATION.md 9). */
#include "coordinator/history.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

DEFINE_CLEANUP(EVP_PKEY, EVP_PKEY_free)
DEFINE_CLEANUP(EVP_MD_CTX, EVP_MD_CTX_free)

struct history {
	struct store *store;
	enum history_state state;
	/* `latest` as last read or written by us (hash || signature); has_latest false: none. */
	bool has_latest;
	uint8_t latest[32 + HISTORY_SIGNATURE_MAX];
	size_t latest_len;
	/* Only while ACTIVE. */
	struct manifest *manifest;
	struct secrets *secrets;
	struct ca *ca;
};

static const uint8_t zero_hash[32];

const char *history_state_name(enum history_state s)
{
	switch (s) {
	case HISTORY_UNINITIALIZED:
		return "uninitialized";
	case HISTORY_ACTIVE:
		return "active";
	case HISTORY_STALE:
		return "stale";
	}
	return NULL;
}

static void forget_secrets(struct history *h)
{
	manifest_free(h->manifest);
	secrets_free(h->secrets);
	ca_free(h->ca);
	h->manifest = NULL;
	h->secrets = NULL;
	h->ca = NULL;
}

static void become_stale(struct history *h)
{
	forget_secrets(h);
	h->state = HISTORY_STALE;
}

void history_free(struct history *h)
{
	if (!h)
		return;
	forget_secrets(h);
	free(h);
}

enum history_state history_get_state(const struct history *h)
{
	return h->state;
}

const struct manifest *history_manifest(const struct history *h)
{
	return h->state == HISTORY_ACTIVE ? h->manifest : NULL;
}

const struct secrets *history_secrets(const struct history *h)
{
	return h->state == HISTORY_ACTIVE ? h->secrets : NULL;
}

const struct ca *history_ca(const struct history *h)
{
	return h->state == HISTORY_ACTIVE ? h->ca : NULL;
}

int history_latest_hash(const struct history *h, uint8_t ret[32])
{
	if (!h->has_latest)
		return -ENOENT;
	memcpy(ret, h->latest, 32);
	return 0;
}

/* ---- storage ---- */

static int key_for(const char *prefix, const uint8_t hash[32], char out[STORE_KEY_MAX + 1])
{
	char hex[65];
	hex_encode_into(hash, 32, hex);
	return str_copy(out, STORE_KEY_MAX + 1, prefix) < 0 ||
		       str_copy(out + strlen(prefix), STORE_KEY_MAX + 1 - strlen(prefix), hex) < 0
		   ? -ENAMETOOLONG
		   : 0;
}

/* A content-addressed object: its SHA-256 must equal the hash in its key. */
static int get_object(struct history *h, const char *prefix, const uint8_t hash[32], uint8_t **ret,
		      size_t *ret_len, struct pp_error **reterr)
{
	char key[STORE_KEY_MAX + 1];
	int r = key_for(prefix, hash, key);
	if (r < 0)
		return r;
	_cleanup_free_ uint8_t *data = NULL;
	size_t len;
	r = store_get(h->store, key, &data, &len);
	if (r == -ENOENT)
		return pp_error_set(reterr, EUCLEAN, "storage: %s is missing", key);
	if (r < 0)
		return pp_error_set(reterr, r, "storage: reading %s: %s", key, strerror(-r));
	uint8_t got[32];
	SHA256(data, len, got);
	if (CRYPTO_memcmp(got, hash, 32) != 0)
		return pp_error_set(reterr, EUCLEAN,
				    "storage: %s does not match its hash (fatal storage error)",
				    key);
	*ret = TAKE_PTR(data);
	*ret_len = len;
	return 0;
}

static int put_object(struct history *h, const char *prefix, const void *data, size_t len,
		      struct pp_error **reterr)
{
	uint8_t hash[32];
	char key[STORE_KEY_MAX + 1];
	SHA256(data, len, hash);
	int r = key_for(prefix, hash, key);
	if (r == 0)
		r = store_has(h->store, key);
	if (r == 0)
		r = store_set(h->store, key, data, len);
	if (r < 0)
		return pp_error_set(reterr, r, "storage: writing %s: %s", key, strerror(-r));
	return 0;
}

int history_get_manifest(struct history *h, const uint8_t hash[32], uint8_t **ret, size_t *ret_len,
			 struct pp_error **reterr)
{
	return get_object(h, "manifests/", hash, ret, ret_len, reterr);
}

int history_get_policy(struct history *h, const uint8_t hash[32], uint8_t **ret, size_t *ret_len,
		       struct pp_error **reterr)
{
	return get_object(h, "policies/", hash, ret, ret_len, reterr);
}

static int get_transition(struct history *h, const uint8_t hash[32],
			  uint8_t ret[HISTORY_TRANSITION_SIZE], struct pp_error **reterr)
{
	_cleanup_free_ uint8_t *t = NULL;
	size_t len;
	int r = get_object(h, "transitions/", hash, &t, &len, reterr);
	if (r < 0)
		return r;
	if (len != HISTORY_TRANSITION_SIZE)
		return pp_error_set(reterr, EUCLEAN, "storage: transition of %zu bytes", len);
	memcpy(ret, t, HISTORY_TRANSITION_SIZE);
	return 0;
}

/* `latest` as stored: -ENOENT when absent, -EUCLEAN when malformed. */
static int read_latest(struct history *h, uint8_t ret[32 + HISTORY_SIGNATURE_MAX], size_t *ret_len,
		       struct pp_error **reterr)
{
	_cleanup_free_ uint8_t *v = NULL;
	size_t len;
	int r = store_get(h->store, HISTORY_KEY_LATEST, &v, &len);
	if (r == -ENOENT)
		return r;
	if (r < 0)
		return pp_error_set(reterr, r, "storage: reading %s: %s", HISTORY_KEY_LATEST,
				    strerror(-r));
	if (len <= 32 || len > 32 + HISTORY_SIGNATURE_MAX)
		return pp_error_set(reterr, EUCLEAN, "storage: %s has %zu bytes",
				    HISTORY_KEY_LATEST, len);
	memcpy(ret, v, len);
	*ret_len = len;
	return 0;
}

int history_open(struct store *store, struct history **ret, struct pp_error **reterr)
{
	_cleanup_(history_freep) struct history *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->store = store;
	int r = read_latest(h, h->latest, &h->latest_len, reterr);
	if (r < 0 && r != -ENOENT)
		return r;
	h->has_latest = r == 0;
	h->state = h->has_latest ? HISTORY_STALE : HISTORY_UNINITIALIZED;
	*ret = TAKE_PTR(h);
	return 0;
}

/* ---- signatures ---- */

static int sign_latest(EVP_PKEY *key, const uint8_t hash[32], uint8_t *sig, size_t *sig_len)
{
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestSignInit(ctx, NULL, EVP_sha384(), NULL, key) != 1 ||
	    EVP_DigestSign(ctx, sig, sig_len, hash, 32) != 1) {
		ERR_clear_error();
		return -EIO;
	}
	return 0;
}

static bool latest_signed_by(EVP_PKEY *key, const uint8_t *latest, size_t len)
{
	return coordapi_latest_verify(key, latest, latest + 32, len - 32);
}

/* Authorization (b): a signature by a current workload owner over the new transition's hex. */
static bool owner_signed(const struct manifest *cur, const uint8_t transition[32],
			 const uint8_t *sig, size_t sig_len)
{
	for (size_t i = 0; i < cur->n_workload_owners; i++) {
		const unsigned char *p = cur->workload_owners[i].der;
		_cleanup_(EVP_PKEY_freep) EVP_PKEY *k =
		    d2i_PUBKEY(NULL, &p, (long)cur->workload_owners[i].der_len);
		if (k && coordapi_update_verify(k, transition, sig, sig_len))
			return true;
	}
	ERR_clear_error();
	return false;
}

/* ---- SetManifest ---- */

static int store_documents(struct history *h, const struct manifest *m,
			   const struct manifest_initdata *docs, const uint8_t transition[64],
			   struct pp_error **reterr)
{
	int r;
	for (size_t i = 0; i < docs->n; i++)
		if ((r = put_object(h, "policies/", docs->tomls[i], docs->lens[i], reterr)) < 0)
			return r;
	if ((r = put_object(h, "manifests/", m->raw, m->raw_len, reterr)) < 0)
		return r;
	return put_object(h, "transitions/", transition, HISTORY_TRANSITION_SIZE, reterr);
}

static int authorize_update(struct history *h, const struct manifest *next,
			    const uint8_t transition_hash[32],
			    const struct history_set_request *req, struct pp_error **reterr)
{
	const struct manifest *cur = h->manifest;
	if (cur->n_workload_owners == 0)
		return pp_error_set(reterr, EPERM,
				    "manifest updates are disabled: the current manifest has no "
				    "WorkloadOwnerPubKeys");
	bool ok = (req->client_spki &&
		   manifest_is_workload_owner(cur, req->client_spki, req->client_spki_len)) ||
		  (req->signature &&
		   owner_signed(cur, transition_hash, req->signature, req->signature_len));
	if (!ok)
		return pp_error_set(reterr, EACCES,
				    "manifest update not authorized: neither the client key nor "
				    "a signature over the new transition hash is from a "
				    "WorkloadOwnerPubKeys entry of the current manifest");
	if (!manifest_seedshare_owners_equal(cur, next))
		return pp_error_set(reterr, EPERM,
				    "manifest update refused: SeedshareOwnerPubKeys cannot change");
	return 0;
}

int history_set_manifest(struct history *h, const struct history_set_request *req,
			 char **ret_seed_shares, struct pp_error **reterr)
{
	if (ret_seed_shares)
		*ret_seed_shares = NULL;
	if (h->state == HISTORY_STALE)
		return pp_error_set(reterr, ESTALE,
				    "coordinator is stale: it accepts only recovery");

	_cleanup_free_ char *msg = NULL;
	_cleanup_(manifest_freep) struct manifest *next = NULL;
	_cleanup_(manifest_initdata_done) struct manifest_initdata docs = {};
	int r = manifest_parse(req->manifest, req->manifest_len, &next, &msg);
	if (r == 0)
		r = manifest_check_initdata(next, req->initdata, req->n_initdata, &docs, &msg);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return pp_error_set(reterr, r, "invalid manifest: %s", msg ? msg : "rejected");

	const bool first = h->state == HISTORY_UNINITIALIZED;
	const uint8_t *prev = first ? zero_hash : h->latest;
	uint8_t transition[HISTORY_TRANSITION_SIZE], thash[32];
	memcpy(transition, next->sha256, 32);
	memcpy(transition + 32, prev, 32);
	SHA256(transition, sizeof(transition), thash);

	_cleanup_(secrets_freep) struct secrets *fresh = NULL;
	_cleanup_(ca_freep) struct ca *fresh_ca = NULL;
	_cleanup_free_ char *shares = NULL;
	const struct secrets *s = h->secrets;
	if (first) {
		if ((r = secrets_generate(&fresh)) < 0 ||
		    (r = ca_new(fresh->root_key, NULL, req->now_sec, &fresh_ca)) < 0 ||
		    (r = secrets_seed_shares_json(fresh, next, &shares)) < 0)
			return pp_error_set(reterr, r, "cannot set up the coordinator secrets");
		s = fresh;
	} else if ((r = authorize_update(h, next, thash, req, reterr)) < 0)
		return r;

	if ((r = store_documents(h, next, &docs, transition, reterr)) < 0)
		return r;
	uint8_t latest[32 + HISTORY_SIGNATURE_MAX];
	size_t sig_len = HISTORY_SIGNATURE_MAX;
	memcpy(latest, thash, 32);
	if ((r = sign_latest(s->signing_key, thash, latest + 32, &sig_len)) < 0)
		return pp_error_set(reterr, r, "cannot sign the new transition");
	r = store_cas(h->store, HISTORY_KEY_LATEST, h->has_latest ? h->latest : NULL, h->latest_len,
		      latest, 32 + sig_len);
	if (r == -ESTALE) {
		become_stale(h);
		/* What we now know is the other writer's latest. */
		h->has_latest = read_latest(h, h->latest, &h->latest_len, NULL) == 0;
		return pp_error_set(reterr, ESTALE,
				    "manifest history moved: another coordinator changed it; this "
				    "coordinator is stale now");
	}
	if (r < 0)
		return pp_error_set(reterr, r, "storage: updating %s: %s", HISTORY_KEY_LATEST,
				    strerror(-r));
	memcpy(h->latest, latest, 32 + sig_len);
	h->latest_len = 32 + sig_len;
	h->has_latest = true;

	if (first) {
		h->secrets = TAKE_PTR(fresh);
		h->ca = TAKE_PTR(fresh_ca);
	} else if ((r = ca_rotate_mesh(h->ca, req->now_sec)) < 0) {
		/* The history moved on but no mesh CA for it exists: serve nothing stale. */
		become_stale(h);
		return pp_error_set(reterr, r, "cannot create the new mesh CA");
	}
	manifest_free(h->manifest);
	h->manifest = TAKE_PTR(next);
	h->state = HISTORY_ACTIVE;
	if (ret_seed_shares)
		*ret_seed_shares = TAKE_PTR(shares);
	return 0;
}

int history_refresh(struct history *h, struct pp_error **reterr)
{
	uint8_t cur[32 + HISTORY_SIGNATURE_MAX];
	size_t len;
	int r = read_latest(h, cur, &len, reterr);
	if (r == -ENOENT) {
		if (h->has_latest) {
			become_stale(h);
			return pp_error_set(reterr, EUCLEAN, "storage: %s disappeared",
					    HISTORY_KEY_LATEST);
		}
		return h->state;
	}
	if (r < 0)
		return r;
	if (h->has_latest && len == h->latest_len && memcmp(cur, h->latest, len) == 0)
		return h->state;
	if (h->state != HISTORY_STALE)
		become_stale(h);
	memcpy(h->latest, cur, len);
	h->latest_len = len;
	h->has_latest = true;
	return h->state;
}

/* ---- recovery ---- */

int history_recover(struct history *h, const struct history_recover_request *req,
		    struct pp_error **reterr)
{
	if (h->state == HISTORY_ACTIVE)
		return pp_error_set(reterr, EALREADY, "coordinator is active: nothing to recover");
	uint8_t latest[32 + HISTORY_SIGNATURE_MAX];
	size_t latest_len;
	int r = read_latest(h, latest, &latest_len, reterr);
	if (r == -ENOENT)
		return pp_error_set(reterr, ENOENT, "no manifest history: nothing to recover");
	if (r < 0)
		return r;

	/* The latest manifest, untrusted until the derived key verifies `latest`. */
	uint8_t transition[HISTORY_TRANSITION_SIZE];
	_cleanup_free_ uint8_t *raw = NULL;
	size_t raw_len;
	if ((r = get_transition(h, latest, transition, reterr)) < 0 ||
	    (r = history_get_manifest(h, transition, &raw, &raw_len, reterr)) < 0)
		return r;
	_cleanup_free_ char *msg = NULL;
	_cleanup_(manifest_freep) struct manifest *m = NULL;
	r = manifest_parse(raw, raw_len, &m, &msg);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return pp_error_set(reterr, EUCLEAN, "storage: the latest manifest is invalid: %s",
				    msg ? msg : "rejected");
	if (req->manifest) {
		uint8_t peer[32];
		char peer_hex[65];
		SHA256(req->manifest, req->manifest_len, peer);
		hex_encode_into(peer, 32, peer_hex);
		if (memcmp(peer, m->sha256, 32) != 0)
			return pp_error_set(reterr, ESTALE,
					    "the peer's latest manifest %s is not the stored "
					    "latest %s",
					    peer_hex, m->sha256_hex);
	}
	if (req->client_pkcs1 &&
	    !manifest_is_seedshare_owner(m, req->client_pkcs1, req->client_pkcs1_len))
		return pp_error_set(reterr, EACCES,
				    "recovery refused: the client key is not a "
				    "SeedshareOwnerPubKeys entry of the latest manifest");

	_cleanup_(secrets_freep) struct secrets *s = NULL;
	if ((r = secrets_derive(req->seed, req->salt, &s)) < 0)
		return pp_error_set(reterr, r, "cannot derive keys from the seed");
	if (!latest_signed_by(s->signing_key, latest, latest_len))
		return pp_error_set(reterr, EACCES,
				    "recovery refused: the seed and salt do not match the "
				    "manifest history (latest is not signed by the derived key)");

	_cleanup_(ca_freep) struct ca *ca = NULL;
	if ((r = ca_new(s->root_key, req->mesh_key, req->now_sec, &ca)) < 0)
		return pp_error_set(reterr, r, "cannot set up the CA");

	uint8_t again[32 + HISTORY_SIGNATURE_MAX];
	size_t again_len;
	if ((r = read_latest(h, again, &again_len, reterr)) < 0)
		return r;
	if (again_len != latest_len || memcmp(again, latest, latest_len) != 0)
		return pp_error_set(reterr, ESTALE,
				    "recovery refused: the manifest history moved meanwhile");

	forget_secrets(h);
	h->manifest = TAKE_PTR(m);
	h->secrets = TAKE_PTR(s);
	h->ca = TAKE_PTR(ca);
	memcpy(h->latest, latest, latest_len);
	h->latest_len = latest_len;
	h->has_latest = true;
	h->state = HISTORY_ACTIVE;
	return 0;
}

/* ---- walking ---- */

int history_walk(struct history *h, struct history_entry **ret, size_t *ret_n,
		 struct pp_error **reterr)
{
	uint8_t latest[32 + HISTORY_SIGNATURE_MAX];
	size_t latest_len;
	int r = read_latest(h, latest, &latest_len, reterr);
	if (r < 0)
		return r;
	struct history_entry *list = NULL;
	size_t n = 0, cap = 0;
	uint8_t cur[32];
	memcpy(cur, latest, 32);
	while (memcmp(cur, zero_hash, 32) != 0) {
		if (n >= HISTORY_WALK_MAX) {
			free(list);
			return pp_error_set(reterr, EUCLEAN, "storage: history longer than %d",
					    HISTORY_WALK_MAX);
		}
		uint8_t t[HISTORY_TRANSITION_SIZE];
		_cleanup_free_ uint8_t *raw = NULL;
		size_t raw_len;
		if ((r = get_transition(h, cur, t, reterr)) < 0 ||
		    (r = history_get_manifest(h, t, &raw, &raw_len, reterr)) < 0) {
			free(list);
			return r;
		}
		if (n == cap) {
			cap = cap ? 2 * cap : 8;
			struct history_entry *grown = realloc(list, cap * sizeof(*list));
			if (!grown) {
				free(list);
				return -ENOMEM;
			}
			list = grown;
		}
		memcpy(list[n].transition, cur, 32);
		memcpy(list[n].manifest, t, 32);
		n++;
		memcpy(cur, t + 32, 32);
	}
	*ret = list;
	*ret_n = n;
	return 0;
}

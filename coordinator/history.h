/* coordinator: the manifest history and the coordinator's state (ATTESTATION.md 9):
 * content-addressed manifests, initdata documents and transitions in a store, the signed
 * `latest` pointer, SetManifest with update authorization, the state machine
 * uninitialized -> active -> stale, and recovery. Not thread-safe: the daemon serialises calls
 * on one history; several histories (processes) may share one store. */
#pragma once

#include <openssl/evp.h>

#include "base/base.h"
#include "coordapi/coordapi.h"
#include "coordinator/ca.h"
#include "coordinator/secrets.h"
#include "coordinator/store.h"
#include "manifest/manifest.h"

#define HISTORY_KEY_LATEST "transitions/latest"
#define HISTORY_TRANSITION_SIZE 64
/* Upper bound of a DER ECDSA P-384 signature. */
#define HISTORY_SIGNATURE_MAX 104
/* Walks stop after this many transitions. */
#define HISTORY_WALK_MAX 1000000

enum history_state {
	HISTORY_UNINITIALIZED, /* no history in the store */
	HISTORY_ACTIVE,        /* seed known, latest is ours */
	HISTORY_STALE,         /* history exists but no seed, or latest moved: recovery only */
};
const char *history_state_name(enum history_state s);

struct history;

/* Open on a store (borrowed; must outlive the history). UNINITIALIZED when the store has no
 * `latest`, else STALE (after a restart the seed is gone). A malformed `latest` is -EUCLEAN. */
int history_open(struct store *store, struct history **ret, struct pp_error **reterr);
void history_free(struct history *h);
DEFINE_CLEANUP(struct history, history_free)

enum history_state history_get_state(const struct history *h);
/* Valid while ACTIVE (NULL otherwise); owned by the history and replaced by the next accepted
 * SetManifest or recovery. */
const struct manifest *history_manifest(const struct history *h);
const struct secrets *history_secrets(const struct history *h);
const struct ca *history_ca(const struct history *h);
/* The hash `latest` pointed to when this coordinator last read or wrote it; -ENOENT when none. */
int history_latest_hash(const struct history *h, uint8_t ret[32]);

/* Transition hashes and update signatures: lib/coordapi (coordapi_transition_hash, ...). */

struct history_set_request {
	const uint8_t *manifest; /* bytes as received, hashed and stored byte-exact */
	size_t manifest_len;
	char *const *initdata; /* encoded initdata documents (annotation values) */
	size_t n_initdata;
	/* DER SubjectPublicKeyInfo of the aTLS client key (authorization a); NULL: none. */
	const uint8_t *client_spki;
	size_t client_spki_len;
	/* Authorization (b); NULL: none. */
	const uint8_t *signature;
	size_t signature_len;
	int64_t now_sec; /* certificate validity of the new mesh CA */
};

/* SetManifest. The first manifest is trusted on first use: seed and salt are drawn and
 * *ret_seed_shares (optional) gets the SeedShares JSON (secrets_seed_shares_json); later it is
 * set to NULL. Errors (message in *reterr): -EINVAL invalid manifest or initdata; -EPERM updates
 * disabled or SeedshareOwnerPubKeys changed; -EACCES update not authorized; -ESTALE this
 * coordinator is stale, or `latest` moved (another coordinator won; this one is now stale);
 * -EUCLEAN stored data does not match its hash (fatal storage error); other errno from the
 * store. Nothing changes on failure except the move to stale. */
int history_set_manifest(struct history *h, const struct history_set_request *req,
			 char **ret_seed_shares, struct pp_error **reterr);

/* Re-read `latest`: when it moved away from what this coordinator last saw, the coordinator
 * becomes stale (a peer that moved it rotated the mesh key: only peer recovery can catch up).
 * Returns the state. */
int history_refresh(struct history *h, struct pp_error **reterr);

struct history_recover_request {
	const uint8_t *seed; /* SECRETS_SEED_SIZE */
	const uint8_t *salt; /* SECRETS_SALT_SIZE */
	/* User recovery: DER PKCS#1 of the seed-share key the owner authenticated with; it must be
	 * a SeedshareOwnerPubKeys entry of the latest manifest. NULL: peer recovery (the peer was
	 * attested as a coordinator instead). */
	const uint8_t *client_pkcs1;
	size_t client_pkcs1_len;
	/* Peer recovery: the peer's mesh CA key, kept. NULL: a new one is drawn. */
	EVP_PKEY *mesh_key;
	/* Peer recovery: the peer's latest manifest; it must be the stored latest. NULL: none. */
	const uint8_t *manifest;
	size_t manifest_len;
	int64_t now_sec;
};

/* Recovery (only when STALE): read the latest manifest untrusted, check the client key, derive
 * the keys, verify `latest`'s signature with the derived signing key, check `latest` did not
 * move meanwhile, set up the CA and become ACTIVE. -EALREADY when active, -ENOENT when
 * uninitialized, -EACCES for a key that is not a seed-share owner or a seed that does not sign
 * `latest` (nothing changes), -ESTALE when `latest` moved or the peer's manifest is not the
 * latest, -EUCLEAN for corrupt storage. */
int history_recover(struct history *h, const struct history_recover_request *req,
		    struct pp_error **reterr);

/* One transition of the history. */
struct history_entry {
	uint8_t transition[32];
	uint8_t manifest[32];
};
/* The history from the stored `latest` back to the first manifest, newest first, every object
 * re-hashed (-EUCLEAN on a mismatch). -ENOENT when there is none. */
int history_walk(struct history *h, struct history_entry **ret, size_t *ret_n,
		 struct pp_error **reterr);
/* A stored manifest or initdata document by hash, re-hashed on read. */
int history_get_manifest(struct history *h, const uint8_t hash[32], uint8_t **ret, size_t *ret_len,
			 struct pp_error **reterr);
int history_get_policy(struct history *h, const uint8_t hash[32], uint8_t **ret, size_t *ret_len,
		       struct pp_error **reterr);

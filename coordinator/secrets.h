/* coordinator: the secrets of ATTESTATION.md 8: seed and salt, the HKDF-SHA256 derivations, the
 * deterministic P-384 key generation, workload secrets and seed shares (RSA-OAEP). */
#pragma once

#include <openssl/evp.h>

#include "base/base.h"
#include "coordapi/coordapi.h"
#include "manifest/manifest.h"

#define SECRETS_SEED_SIZE COORDAPI_SEED_SIZE
#define SECRETS_SALT_SIZE COORDAPI_SALT_SIZE
#define SECRETS_DERIVED_SIZE 64
#define SECRETS_P384_SCALAR_SIZE 48

#define SECRETS_LABEL_POD_STATE "POD STATE SECRET"
#define SECRETS_LABEL_HISTORY "HISTORY SECRET"
#define SECRETS_LABEL_TRANSACTION "TRANSACTION SIGNING SECRET"
#define SECRETS_LABEL_ROOT_CA "ROOT CA SEED"
#define SECRETS_LABEL_WORKLOAD_PREFIX "WORKLOAD SECRET ID: "
#define SECRETS_DET_KEYGEN_PERS "det ECDSA key gen P-384"

/* Everything derived from one seed. Wiped on free. */
struct secrets {
	uint8_t seed[SECRETS_SEED_SIZE];
	uint8_t salt[SECRETS_SALT_SIZE];
	uint8_t pod_state_seed[SECRETS_DERIVED_SIZE];
	uint8_t history_secret[SECRETS_DERIVED_SIZE]; /* reserved */
	EVP_PKEY *signing_key;                        /* transaction signing key, P-384 */
	EVP_PKEY *root_key;                           /* root CA key, P-384 */
};

/* HKDF-SHA256 (extract and expand) with IKM, salt and an ASCII label as info. */
int secrets_hkdf(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len,
		 const char *label, size_t label_len, uint8_t *out, size_t out_len);
/* det-keygen of ATTESTATION.md 8 for P-384: the scalar d (big-endian) from 64 bytes s.
 * -ERANGE when d = 0 or d >= n (fatal for the caller: the seed cannot be used). */
int secrets_det_keygen_p384(const uint8_t s[SECRETS_DERIVED_SIZE],
			    uint8_t ret_d[SECRETS_P384_SCALAR_SIZE]);
/* The P-384 key pair with private scalar d (big-endian, 0 < d < n). */
int secrets_p384_key_from_scalar(const uint8_t d[SECRETS_P384_SCALAR_SIZE], EVP_PKEY **ret);
/* A fresh random P-384 key (the mesh CA key). */
int secrets_p384_key_generate(EVP_PKEY **ret);

/* Derive everything from seed and salt. */
int secrets_derive(const uint8_t seed[SECRETS_SEED_SIZE], const uint8_t salt[SECRETS_SALT_SIZE],
		   struct secrets **ret);
/* Draw seed and salt (RAND_bytes) and derive. */
int secrets_generate(struct secrets **ret);
void secrets_free(struct secrets *s);
DEFINE_CLEANUP(struct secrets, secrets_free)

/* HKDF(pod-state seed, "WORKLOAD SECRET ID: " + id). */
int secrets_workload_secret(const struct secrets *s, const char *id,
			    uint8_t ret[SECRETS_DERIVED_SIZE]);

/* Seed-share encryption and decryption: lib/coordapi (coordapi_seed_share_*). */
/* The first SetManifest's answer: {"SeedShares":[{"PublicKey":"<hex PKCS#1>",
 * "EncryptedSeed":"<base64>"}],"Salt":"<base64>"}, one share per SeedshareOwnerPubKeys entry. */
int secrets_seed_shares_json(const struct secrets *s, const struct manifest *m, char **ret);

/* lib/manifest: the coordinator manifest (ATTESTATION.md 5-6): strict parsing and validation of
 * the JSON document kept byte-exact with its SHA-256, the initdata check, policy-digest lookup
 * from evidence, owner-key checks, and the generator behind `peerpodctl manifest generate`. */
#pragma once

#include <jansson.h>
#include <openssl/evp.h>

#include "attest/attest.h"
#include "base/base.h"

/* A manifest larger than this is refused before parsing. */
#define MANIFEST_MAX_BYTES (1024 * 1024)
#define MANIFEST_ROLE_COORDINATOR "coordinator"
/* Limits on what one entry may hold (bounded certificates). */
#define MANIFEST_SAN_MAX_BYTES 1024
#define MANIFEST_SANS_MAX 256
#define MANIFEST_WORKLOAD_SECRET_ID_MAX_BYTES 1024
/* Seed-share owner keys: RSA between these sizes. */
#define MANIFEST_RSA_MIN_BITS 2048
#define MANIFEST_RSA_MAX_BITS 16384

/* One Policies entry. */
struct manifest_policy {
	uint8_t digest[32];
	char digest_hex[65]; /* lowercase, whatever the case in the document */
	char **sans;         /* NULL-terminated, n_sans entries, in document order */
	size_t n_sans;
	char *workload_secret_id; /* NULL when absent or empty */
	bool coordinator;         /* Role "coordinator" */
};

/* An owner public key as DER (hex-decoded from the document) and its SHA-256. */
struct manifest_key {
	uint8_t *der;
	size_t der_len;
	uint8_t sha256[32];
};

struct manifest {
	/* The document exactly as received and its SHA-256. */
	uint8_t *raw;
	size_t raw_len;
	uint8_t sha256[32];
	char sha256_hex[65];

	/* Sorted by digest. */
	struct manifest_policy *policies;
	size_t n_policies;

	/* ReferenceValues, in the form lib/attest verifies against. */
	struct attest_snp_references snp;
	struct attest_tdx_reference *tdx;
	size_t n_tdx;

	/* DER SubjectPublicKeyInfo, EC P-256 or P-384. Empty: updates disabled. */
	struct manifest_key *workload_owners;
	size_t n_workload_owners;
	/* DER PKCS#1 RSAPublicKey. Empty: no seed shares, no user recovery. */
	struct manifest_key *seedshare_owners;
	size_t n_seedshare_owners;

	/* Digest rules for lib/attest and lib/atls: every Policies key, and the coordinator ones. */
	uint8_t (*digests)[32];
	uint8_t (*coordinator_digests)[32];
	size_t n_coordinator_digests;
};

void manifest_free(struct manifest *m);
DEFINE_CLEANUP(struct manifest, manifest_free)

/* Parse and validate a manifest (ATTESTATION.md 6): at most MANIFEST_MAX_BYTES of UTF-8 JSON,
 * duplicate keys refused at every level, unknown keys refused at every level, every validation
 * rule of the section except the initdata one (manifest_check_initdata). Failures are -EINVAL
 * (-EFBIG for size) with *ret_msg naming the offending path, e.g.
 * `ReferenceValues.tdx[0].TdAttributes: ...`. */
int manifest_parse(const void *data, size_t len, struct manifest **ret, char **ret_msg);

/* The decompressed initdata document of each policy, aligned with m->policies. */
struct manifest_initdata {
	char **tomls; /* n entries: the TOML bytes whose SHA-256 is the policy's key */
	size_t *lens;
	size_t n;
};
void manifest_initdata_done(struct manifest_initdata *d);

/* The last validation rule: every Policies digest has its initdata document among docs (the
 * annotation values given with SetManifest: base64(gzip(TOML))), the TOML parses as initdata
 * with algorithm sha256 and its SHA-256 equals the key. Documents that match no key are
 * refused too (nothing unreferenced is stored). -EINVAL with *ret_msg. */
int manifest_check_initdata(const struct manifest *m, char *const *docs, size_t n_docs,
			    struct manifest_initdata *ret, char **ret_msg);

/* Lookup by digest; NULL when the digest is not a key of Policies. */
const struct manifest_policy *manifest_policy_find(const struct manifest *m,
						   const uint8_t digest[32]);
/* Lookup by hex key (either case); NULL when malformed or unknown. */
const struct manifest_policy *manifest_policy_find_hex(const struct manifest *m, const char *hex);
/* The policy digest of evidence (ATTESTATION.md 5): SNP HOST_DATA as is; TDX MRCONFIGID[0..31]
 * with -EBADMSG when bytes 32..47 are not zero. */
void manifest_digest_from_snp(const uint8_t host_data[32], uint8_t ret[32]);
int manifest_digest_from_tdx(const uint8_t mr_config_id[48], uint8_t ret[32]);
/* Lookup from evidence; NULL when unknown (or TDX padding non-zero). */
const struct manifest_policy *manifest_policy_for_snp(const struct manifest *m,
						      const uint8_t host_data[32]);
const struct manifest_policy *manifest_policy_for_tdx(const struct manifest *m,
						      const uint8_t mr_config_id[48]);
/* True when the digest is a Policies key with Role coordinator. */
bool manifest_digest_is_coordinator(const struct manifest *m, const uint8_t digest[32]);
/* Digest rules over every key, or over the coordinator keys (pointers into m). */
struct attest_digest_rule manifest_digest_rule(const struct manifest *m);
struct attest_digest_rule manifest_coordinator_digest_rule(const struct manifest *m);

/* Owner checks by SHA-256 of the key's DER: SubjectPublicKeyInfo for workload owners, PKCS#1
 * RSAPublicKey for seed-share owners. */
bool manifest_is_workload_owner(const struct manifest *m, const uint8_t *spki_der, size_t len);
bool manifest_is_seedshare_owner(const struct manifest *m, const uint8_t *pkcs1_der, size_t len);
/* True when both hold the same set of seed-share owner keys. */
bool manifest_seedshare_owners_equal(const struct manifest *a, const struct manifest *b);

/* Lowercase/uppercase hex of exactly n bytes; -EINVAL otherwise. */
int manifest_hex_decode(const char *s, uint8_t *out, size_t n);

/* ---- generator (`peerpodctl manifest generate`) ---- */

struct manifest_gen_policy {
	/* The cc_init_data annotation value: base64(gzip(TOML)), or the TOML itself. */
	const char *initdata;
	char *const *sans;              /* NULL-terminated; NULL: none */
	const char *workload_secret_id; /* NULL or "": none */
	const char *role;               /* NULL, "" or "coordinator" */
};

struct manifest_gen {
	const struct manifest_gen_policy *policies;
	size_t n_policies;
	/* The ReferenceValues object ({"snp": [...], "tdx": [...]}), copied as given. */
	const json_t *reference_values;
	/* Workload owners (EC P-256/P-384 public or private keys) and seed-share owners (RSA). */
	EVP_PKEY *const *workload_owners;
	size_t n_workload_owners;
	EVP_PKEY *const *seedshare_owners;
	size_t n_seedshare_owners;
};

/* Build a manifest: canonical JSON (keys sorted, two-space indentation, final newline; SANs in
 * the given order, lists otherwise in the given order), validated with manifest_parse and
 * manifest_check_initdata before it is returned. *ret_initdata (optional) receives the encoded
 * initdata documents to send with SetManifest, one per policy, NULL-terminated. */
int manifest_generate(const struct manifest_gen *g, char **ret_json, char ***ret_initdata,
		      char **ret_msg);

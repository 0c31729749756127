/* coordinator: the certificate authority of ATTESTATION.md 8: root CA (derived key),
 * intermediate and mesh CA (one random mesh key), mesh leaves for attested pods. */
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "base/base.h"
#include "coordinator/secrets.h"
#include "manifest/manifest.h"

#define CA_ROOT_CN "system:coordinator:root"
#define CA_INTERMEDIATE_CN "system:coordinator:intermediate"
/* Extension holding the workload secret id of a leaf (DER UTF8String). */
#define CA_OID_WORKLOAD_SECRET_ID "1.3.9901.3.1"
#define CA_BACKDATE_SEC 3600
#define CA_LEAF_VALIDITY_YEARS 1
#define CA_VALIDITY_YEARS 10
#define CA_CN_MAX 64

struct ca {
	EVP_PKEY *root_key;
	X509 *root;
	EVP_PKEY *mesh_key;
	X509 *intermediate; /* mesh key, signed by the root */
	X509 *mesh;         /* mesh key, self-signed, same subject */
};

/* Root CA from root_key (referenced, not copied) and a mesh key: mesh_key NULL draws a random
 * one (first manifest, user recovery); a given one is referenced (peer recovery). Validity
 * starts at now_sec - 1 h. */
int ca_new(EVP_PKEY *root_key, EVP_PKEY *mesh_key, int64_t now_sec, struct ca **ret);
void ca_free(struct ca *ca);
DEFINE_CLEANUP(struct ca, ca_free)
/* A new random mesh key and new intermediate/mesh CA certificates; the root stays. */
int ca_rotate_mesh(struct ca *ca, int64_t now_sec);

/* The leaf CN rule: first dNSName SAN; else the first SAN; else "workload-" + the first 16 hex
 * digits of the digest; cut to 64 characters. */
void ca_leaf_common_name(char *const *sans, size_t n_sans, const uint8_t digest[32],
			 char ret[CA_CN_MAX + 1]);
/* Issue a mesh leaf for pod_key with the SANs and workload secret id of policy. */
int ca_issue_leaf(const struct ca *ca, EVP_PKEY *pod_key, const struct manifest_policy *policy,
		  int64_t now_sec, X509 **ret);

/* NewMeshCert's answer (PEM strings). */
struct ca_mesh_cert {
	char *mesh_ca_pem;
	char *chain_pem; /* leaf || intermediate */
	char *root_pem;
	bool has_workload_secret;
	uint8_t workload_secret[SECRETS_DERIVED_SIZE];
};
void ca_mesh_cert_done(struct ca_mesh_cert *c); /* wipes the workload secret */
int ca_new_mesh_cert(const struct ca *ca, const struct secrets *s,
		     const struct manifest_policy *policy, EVP_PKEY *pod_key, int64_t now_sec,
		     struct ca_mesh_cert *ret);

/* PEM of one certificate, and the mesh key as PEM SEC1 ("EC PRIVATE KEY", for peer recovery;
 * free with free_secret). */
int ca_cert_to_pem(X509 *x, char **ret);
int ca_mesh_key_to_pem(const struct ca *ca, char **ret);
int ca_mesh_key_from_pem(const char *pem, size_t len, EVP_PKEY **ret);

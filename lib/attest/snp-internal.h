/* lib/attest: internals shared by the SEV-SNP files: the built-in AMD certificates and OpenSSL
 * cleanup helpers. */
#pragma once

#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "attest/attest.h"
#include "tls/tls.h"

DEFINE_CLEANUP(BIO, BIO_free)
DEFINE_CLEANUP(X509_CRL, X509_CRL_free)
DEFINE_CLEANUP(EVP_MD_CTX, EVP_MD_CTX_free)
DEFINE_CLEANUP(ECDSA_SIG, ECDSA_SIG_free)
DEFINE_CLEANUP(BIGNUM, BN_free)
DEFINE_CLEANUP(RSA_PSS_PARAMS, RSA_PSS_PARAMS_free)
DEFINE_CLEANUP(X509_ALGOR, X509_ALGOR_free)

struct snp_builtin {
	enum attest_snp_product product;
	const char *ark_pem;
	const char *ask_pem;
	const char *asvk_pem;
	const char *ark_spki_sha256; /* lowercase hex */
};
extern const struct snp_builtin snp_builtins[];
extern const size_t snp_n_builtins;

/* The AMD extensions of a parsed certificate. */
int snp_vek_ext_from_x509(X509 *x, struct attest_snp_vek_ext *ret, char **ret_msg);

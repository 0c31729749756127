/* lib/atls: internals shared by its files (OpenSSL cleanup helpers, the clock). */
#pragma once

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "atls/atls.h"
#include "tls/tls.h"

DEFINE_CLEANUP(BIO, BIO_free)
DEFINE_CLEANUP(BIGNUM, BN_free)
DEFINE_CLEANUP(ECDSA_SIG, ECDSA_SIG_free)
DEFINE_CLEANUP(EVP_MD_CTX, EVP_MD_CTX_free)
DEFINE_CLEANUP(EVP_PKEY_CTX, EVP_PKEY_CTX_free)
DEFINE_CLEANUP(X509_CRL, X509_CRL_free)
DEFINE_CLEANUP(X509_NAME, X509_NAME_free)
DEFINE_CLEANUP(X509_EXTENSION, X509_EXTENSION_free)
DEFINE_CLEANUP(ASN1_OBJECT, ASN1_OBJECT_free)
DEFINE_CLEANUP(ASN1_OCTET_STRING, ASN1_OCTET_STRING_free)
DEFINE_CLEANUP(ASN1_INTEGER, ASN1_INTEGER_free)

static inline void opensslfreep(void *p)
{
	OPENSSL_free(*(void **)p);
}
#define _cleanup_openssl_ _cleanup_(opensslfreep)

/* Seconds since the epoch, realtime. */
static inline int64_t atls_now_sec(void)
{
	return now_realtime_ns() / NSEC_PER_SEC;
}

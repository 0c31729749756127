/* lib/tls: OpenSSL 3 helpers for the adaptor <-> forwarder link (WIRE.md 4.3): P-256 keys, the
 * per-adaptor CA, server and client certificates, PEM in and out, and TLS 1.2+ contexts with
 * mutual authentication. */
#pragma once

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "base/base.h"

DEFINE_CLEANUP(EVP_PKEY, EVP_PKEY_free)
DEFINE_CLEANUP(X509, X509_free)
DEFINE_CLEANUP(SSL_CTX, SSL_CTX_free)
DEFINE_CLEANUP(SSL, SSL_free)

/* Upper bound for PEM input (memory or file); larger input is -EFBIG. */
#define TLS_PEM_MAX_BYTES (64 * 1024)

/* Errors: functions without ret_msg leave OpenSSL's detail in its (thread-local) error queue;
 * take it with tls_error_string(). Functions with ret_msg move the detail into the message and
 * leave the queue empty. */

/* Generate an ECDSA P-256 key. */
int tls_key_generate(EVP_PKEY **ret);

/* Certificate profiles of WIRE.md 4.3. All: key usage digitalSignature + keyCertSign, valid two
 * years from 5 minutes before now (clamped to the issuer's validity), random 128-bit serial. */
/* Self-signed CA: CA:TRUE, O=agent-protocol-forwarder. */
int tls_ca_create(EVP_PKEY *key, X509 **ret);
/* Server certificate for a pod VM issued by the CA: O=agent-protocol-forwarder, CN = DNS SAN =
 * name, EKU serverAuth. extra_dns (may be NULL) adds one more DNS SAN (e.g. "podvm-server"). */
int tls_cert_issue_server(X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *key, const char *name,
			  const char *extra_dns, X509 **ret);
/* Self-signed client certificate: not a CA, O=cloud-api-adaptor, no CN, EKU clientAuth. */
int tls_cert_create_client(EVP_PKEY *key, X509 **ret);
/* The CA with an explicit validity start (seconds since epoch), for tests of clamping. */
int tls_ca_create_at(EVP_PKEY *key, int64_t not_before_sec, X509 **ret);
/* Issue with an explicit validity start, for tests of clamping and expiry (seconds since epoch).
 * -EKEYEXPIRED when nothing of the validity is left after clamping to the issuer's. */
int tls_cert_issue_server_at(X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *key, const char *name,
			     const char *extra_dns, int64_t not_before_sec, X509 **ret);

/* PEM: keys as PKCS#8 "PRIVATE KEY". Returned strings are malloc'd; key PEM should be freed
 * with free_secret(). */
int tls_key_to_pem(EVP_PKEY *key, char **ret);
int tls_cert_to_pem(X509 *cert, char **ret);
/* Parsers: the first PEM block of the kind; -EFBIG above TLS_PEM_MAX_BYTES, -EINVAL when none is
 * found. Any unencrypted private key type is accepted (operator keys need not be P-256);
 * encrypted keys are -EINVAL. */
int tls_key_from_pem(const char *pem, size_t len, EVP_PKEY **ret);
int tls_cert_from_pem(const char *pem, size_t len, X509 **ret);
/* The same for a text that holds exactly one certificate (-EINVAL for none or more). */
int tls_cert_from_pem_single(const char *pem, size_t len, X509 **ret);
/* Files (key files are written 0600 atomically). */
int tls_key_load(const char *path, EVP_PKEY **ret);
int tls_cert_load(const char *path, X509 **ret);
int tls_key_save(const char *path, EVP_PKEY *key);
int tls_cert_save(const char *path, X509 *cert);

/* TLS settings shared by both sides. */
struct tls_settings {
	int min_version;           /* TLS1_2_VERSION (default when 0) or TLS1_3_VERSION */
	char **cipher_suites;      /* IANA names (TLS <= 1.2 only), NULL = OpenSSL defaults */
	bool insecure_skip_verify; /* client: do not verify the server (TLS_SKIP_VERIFY) */
};
/* Parse "VersionTLS12"/"VersionTLS13" ("" = 1.2). VersionTLS10/11 and others: -EINVAL with a
 * message. */
int tls_parse_min_version(const char *s, int *ret, char **ret_msg);
/* Check and translate IANA suite names; a 1.3 minimum with suites, or an unknown name: -EINVAL
 * with a message. */
int tls_check_cipher_suites(char *const *suites, int min_version, char **ret_msg);

/* Client context (adaptor side): presents cert/key, verifies the server against ca (unless
 * insecure). The server name is set per connection with tls_ssl_new_client(). */
int tls_ctx_new_client(const struct tls_settings *s, X509 *cert, EVP_PKEY *key, X509 *ca,
		       SSL_CTX **ret, char **ret_msg);
/* Server context (forwarder side): presents cert/key, requires a client certificate verified
 * against client_ca (which may be a self-signed leaf: it is its own trust anchor). */
int tls_ctx_new_server(const struct tls_settings *s, X509 *cert, EVP_PKEY *key, X509 *client_ca,
		       SSL_CTX **ret, char **ret_msg);
/* New SSL for a client connection, with SNI and host-name verification for server_name. */
int tls_ssl_new_client(SSL_CTX *ctx, const char *server_name, SSL **ret);
/* The OpenSSL error queue as one line (and cleared), for messages. malloc'd. */
char *tls_error_string(void);

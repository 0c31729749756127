/* Fuzz target: PEM certificate and key parsing of lib/tls (apf.json TLS material, operator files). */
#include <openssl/err.h>

#include "tls/tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	X509 *cert = NULL;
	if (tls_cert_from_pem((const char *)data, size, &cert) == 0) {
		char *pem = NULL;
		if (tls_cert_to_pem(cert, &pem) == 0)
			free(pem);
		X509_free(cert);
	}
	EVP_PKEY *key = NULL;
	if (tls_key_from_pem((const char *)data, size, &key) == 0) {
		char *pem = NULL;
		if (tls_key_to_pem(key, &pem) == 0)
			free_secret(pem);
		EVP_PKEY_free(key);
	}
	/* The error queue is per thread; keep it from carrying over between inputs. */
	ERR_clear_error();
	return 0;
}

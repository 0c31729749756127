/* Fuzz target for the aTLS nonce parsers (ATTESTATION.md 7): the ClientHello ALPN extension body
 * and the CertificateRequest CA list (the input read as consecutive DER names). A nonce found in
 * either must survive formatting and parsing again. */
#include <openssl/x509.h>

#include "atls/atls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t nonce[ATLS_NONCE_SIZE], again[ATLS_NONCE_SIZE];
	int r = atls_alpn_find_nonce(data, size, nonce);
	if (r == 0) {
		uint8_t *wire = NULL;
		size_t len = 0;
		uint8_t ext[2 + 1 + ATLS_ALPN_NONCE_LEN];
		if (atls_alpn_build(nonce, NULL, &wire, &len) != 0 || len + 2 != sizeof(ext))
			__builtin_trap();
		ext[0] = 0;
		ext[1] = (uint8_t)len;
		memcpy(ext + 2, wire, len);
		free(wire);
		if (atls_alpn_find_nonce(ext, sizeof(ext), again) != 0 ||
		    memcmp(nonce, again, sizeof(nonce)) != 0)
			__builtin_trap();
	} else if (r != -ENOENT && r != -EBADMSG) {
		__builtin_trap();
	}

	STACK_OF(X509_NAME) *sk = sk_X509_NAME_new_null();
	if (!sk)
		return 0;
	const unsigned char *p = data;
	for (int i = 0; i < 4 && p < data + size; i++) {
		X509_NAME *n = d2i_X509_NAME(NULL, &p, (long)(data + size - p));
		if (!n)
			break;
		if (sk_X509_NAME_push(sk, n) <= 0) {
			X509_NAME_free(n);
			break;
		}
	}
	r = atls_ca_list_find_nonce(sk, nonce);
	if (r == 0) {
		X509_NAME *n = NULL;
		if (atls_ca_nonce_name(nonce, &n) != 0)
			__builtin_trap();
		STACK_OF(X509_NAME) *one = sk_X509_NAME_new_null();
		if (!one || sk_X509_NAME_push(one, n) <= 0)
			__builtin_trap();
		if (atls_ca_list_find_nonce(one, again) != 0 || memcmp(nonce, again, sizeof(nonce)))
			__builtin_trap();
		sk_X509_NAME_pop_free(one, X509_NAME_free);
	} else if (r != -ENOENT && r != -EBADMSG) {
		__builtin_trap();
	}
	sk_X509_NAME_pop_free(sk, X509_NAME_free);
	return 0;
}

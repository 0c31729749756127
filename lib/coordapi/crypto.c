/* lib/coordapi/crypto.c: the cryptographic rules both the coordinator and its users apply
 * (ATTESTATION.md 8-9): transition hashes, the owner's update signature, the signature of
 * `latest`, and RSA-OAEP seed shares. */
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>

#include "coordapi/coordapi.h"

DEFINE_CLEANUP(EVP_MD_CTX, EVP_MD_CTX_free)
DEFINE_CLEANUP(EVP_PKEY_CTX, EVP_PKEY_CTX_free)

void coordapi_transition_hash(const uint8_t manifest_sha256[32], const uint8_t prev[32],
			      uint8_t ret[32])
{
	uint8_t t[64];
	memcpy(t, manifest_sha256, 32);
	memcpy(t + 32, prev, 32);
	SHA256(t, sizeof(t), ret);
}

static bool verify_sig(EVP_PKEY *key, const EVP_MD *md, const uint8_t *sig, size_t sig_len,
		       const void *data, size_t len)
{
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = key && ctx && EVP_DigestVerifyInit(ctx, NULL, md, NULL, key) == 1 &&
		  EVP_DigestVerify(ctx, sig, sig_len, data, len) == 1;
	ERR_clear_error();
	return ok;
}

int coordapi_update_sign(EVP_PKEY *owner_key, const uint8_t transition[32], uint8_t **ret,
			 size_t *ret_len)
{
	char hex[65];
	hex_encode_into(transition, 32, hex);
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t len = 0;
	if (!ctx || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, owner_key) != 1 ||
	    EVP_DigestSign(ctx, NULL, &len, (const uint8_t *)hex, 64) != 1) {
		ERR_clear_error();
		return -EINVAL;
	}
	_cleanup_free_ uint8_t *sig = malloc(len);
	if (!sig)
		return -ENOMEM;
	if (EVP_DigestSign(ctx, sig, &len, (const uint8_t *)hex, 64) != 1) {
		ERR_clear_error();
		return -EIO;
	}
	*ret = TAKE_PTR(sig);
	*ret_len = len;
	return 0;
}

bool coordapi_update_verify(EVP_PKEY *owner_key, const uint8_t transition[32], const uint8_t *sig,
			    size_t sig_len)
{
	char hex[65];
	hex_encode_into(transition, 32, hex);
	return verify_sig(owner_key, EVP_sha256(), sig, sig_len, hex, 64);
}

bool coordapi_latest_verify(EVP_PKEY *signing_key, const uint8_t hash[32], const uint8_t *sig,
			    size_t sig_len)
{
	return verify_sig(signing_key, EVP_sha384(), sig, sig_len, hash, 32);
}

static int oaep_setup(EVP_PKEY_CTX *ctx)
{
	size_t n = strlen(COORDAPI_SEEDSHARE_LABEL);
	void *label = OPENSSL_memdup(COORDAPI_SEEDSHARE_LABEL, n);
	if (!label)
		return -ENOMEM;
	if (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) != 1 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) != 1 ||
	    EVP_PKEY_CTX_set0_rsa_oaep_label(ctx, label, (int)n) != 1) {
		OPENSSL_free(label);
		return -EINVAL;
	}
	return 0;
}

int coordapi_seed_share_encrypt(EVP_PKEY *rsa_pub, const uint8_t seed[COORDAPI_SEED_SIZE],
				uint8_t **ret, size_t *ret_len)
{
	if (!rsa_pub || !EVP_PKEY_is_a(rsa_pub, "RSA"))
		return -EINVAL;
	_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx =
	    EVP_PKEY_CTX_new_from_pkey(NULL, rsa_pub, NULL);
	size_t len = 0;
	int r = -EIO;
	if (!ctx || EVP_PKEY_encrypt_init(ctx) != 1 || (r = oaep_setup(ctx)) < 0 ||
	    EVP_PKEY_encrypt(ctx, NULL, &len, seed, COORDAPI_SEED_SIZE) != 1) {
		ERR_clear_error();
		return r < 0 ? r : -EIO;
	}
	_cleanup_free_ uint8_t *out = malloc(len);
	if (!out)
		return -ENOMEM;
	if (EVP_PKEY_encrypt(ctx, out, &len, seed, COORDAPI_SEED_SIZE) != 1) {
		ERR_clear_error();
		return -EIO;
	}
	*ret = TAKE_PTR(out);
	*ret_len = len;
	return 0;
}

int coordapi_seed_share_decrypt(EVP_PKEY *rsa_key, const uint8_t *enc, size_t enc_len,
				uint8_t ret_seed[COORDAPI_SEED_SIZE])
{
	if (!rsa_key || !EVP_PKEY_is_a(rsa_key, "RSA"))
		return -EINVAL;
	_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx =
	    EVP_PKEY_CTX_new_from_pkey(NULL, rsa_key, NULL);
	size_t len = 0;
	int r = -EIO;
	if (!ctx || EVP_PKEY_decrypt_init(ctx) != 1 || (r = oaep_setup(ctx)) < 0 ||
	    EVP_PKEY_decrypt(ctx, NULL, &len, enc, enc_len) != 1) {
		ERR_clear_error();
		return r < 0 ? r : -EBADMSG;
	}
	uint8_t *out = OPENSSL_secure_malloc(len ? len : 1);
	if (!out)
		return -ENOMEM;
	r = 0;
	if (EVP_PKEY_decrypt(ctx, out, &len, enc, enc_len) != 1 || len != COORDAPI_SEED_SIZE)
		r = -EBADMSG;
	else
		memcpy(ret_seed, out, COORDAPI_SEED_SIZE);
	ERR_clear_error();
	OPENSSL_secure_clear_free(out, len ? len : 1);
	return r;
}

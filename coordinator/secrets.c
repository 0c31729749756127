/* coordinator: seed, salt and what is derived from them (ATTESTATION.md 8); seed shares. */
#include "coordapi/coordapi.h"
#include "coordinator/secrets.h"

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "userdata/userdata.h"

DEFINE_CLEANUP(EVP_PKEY, EVP_PKEY_free)
DEFINE_CLEANUP(EVP_PKEY_CTX, EVP_PKEY_CTX_free)
DEFINE_CLEANUP(EVP_KDF, EVP_KDF_free)
DEFINE_CLEANUP(EVP_KDF_CTX, EVP_KDF_CTX_free)
DEFINE_CLEANUP(EC_GROUP, EC_GROUP_free)
DEFINE_CLEANUP(EC_POINT, EC_POINT_free)
DEFINE_CLEANUP(BIGNUM, BN_clear_free)
DEFINE_CLEANUP(OSSL_PARAM_BLD, OSSL_PARAM_BLD_free)
DEFINE_CLEANUP(OSSL_PARAM, OSSL_PARAM_free)

/* Order n of P-384, big-endian. */
static const uint8_t p384_order[SECRETS_P384_SCALAR_SIZE] = {
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xc7, 0x63, 0x4d, 0x81, 0xf4, 0x37, 0x2d, 0xdf,
    0x58, 0x1a, 0x0d, 0xb2, 0x48, 0xb0, 0xa7, 0x7a, 0xec, 0xec, 0x19, 0x6a, 0xcc, 0xc5, 0x29, 0x73};

int secrets_hkdf(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len,
		 const char *label, size_t label_len, uint8_t *out, size_t out_len)
{
	_cleanup_(EVP_KDF_freep) EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	if (!kdf)
		return -ENOTSUP;
	_cleanup_(EVP_KDF_CTX_freep) EVP_KDF_CTX *ctx = EVP_KDF_CTX_new(kdf);
	if (!ctx)
		return -ENOMEM;
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
	    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len),
	    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len),
	    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)label, label_len),
	    OSSL_PARAM_construct_end(),
	};
	if (EVP_KDF_derive(ctx, out, out_len, params) != 1) {
		ERR_clear_error();
		return -EINVAL;
	}
	return 0;
}

static int hmac_sha256(const uint8_t key[32], const uint8_t *data, size_t len, uint8_t out[32])
{
	unsigned int n = 32;
	if (!HMAC(EVP_sha256(), key, 32, data, len, out, &n) || n != 32)
		return -EIO;
	return 0;
}

int secrets_det_keygen_p384(const uint8_t s[SECRETS_DERIVED_SIZE],
			    uint8_t ret_d[SECRETS_P384_SCALAR_SIZE])
{
	static const char pers[] = SECRETS_DET_KEYGEN_PERS;
	const size_t pers_len = sizeof(pers) - 1;
	uint8_t k[32], v[32], t[64];
	/* V || sep || s || pers */
	uint8_t msg[32 + 1 + SECRETS_DERIVED_SIZE + sizeof(pers)];
	const size_t msg_len = 32 + 1 + SECRETS_DERIVED_SIZE + pers_len;
	int r = 0;

	memset(k, 0x00, sizeof(k));
	memset(v, 0x01, sizeof(v));
	for (uint8_t sep = 0; sep <= 1 && r == 0; sep++) {
		memcpy(msg, v, 32);
		msg[32] = sep;
		memcpy(msg + 33, s, SECRETS_DERIVED_SIZE);
		memcpy(msg + 33 + SECRETS_DERIVED_SIZE, pers, pers_len);
		if ((r = hmac_sha256(k, msg, msg_len, k)) == 0)
			r = hmac_sha256(k, v, 32, v);
	}
	if (r == 0 && (r = hmac_sha256(k, v, 32, t)) == 0)
		r = hmac_sha256(k, t, 32, t + 32);
	if (r == 0) {
		bool zero = true;
		for (size_t i = 0; i < SECRETS_P384_SCALAR_SIZE; i++)
			zero = zero && t[i] == 0;
		if (zero || memcmp(t, p384_order, SECRETS_P384_SCALAR_SIZE) >= 0)
			r = -ERANGE;
		else
			memcpy(ret_d, t, SECRETS_P384_SCALAR_SIZE);
	}
	OPENSSL_cleanse(k, sizeof(k));
	OPENSSL_cleanse(v, sizeof(v));
	OPENSSL_cleanse(t, sizeof(t));
	OPENSSL_cleanse(msg, sizeof(msg));
	return r;
}

int secrets_p384_key_from_scalar(const uint8_t d[SECRETS_P384_SCALAR_SIZE], EVP_PKEY **ret)
{
	_cleanup_(EC_GROUP_freep) EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_secp384r1);
	_cleanup_(BN_clear_freep) BIGNUM *priv = BN_secure_new();
	_cleanup_(EC_POINT_freep) EC_POINT *pub = NULL;
	_cleanup_(OSSL_PARAM_BLD_freep) OSSL_PARAM_BLD *bld = NULL;
	_cleanup_(OSSL_PARAM_freep) OSSL_PARAM *params = NULL;
	_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = NULL;
	uint8_t pub_oct[1 + 2 * SECRETS_P384_SCALAR_SIZE];
	EVP_PKEY *k = NULL;

	if (!g || !priv || !BN_bin2bn(d, SECRETS_P384_SCALAR_SIZE, priv))
		return -ENOMEM;
	if (BN_is_zero(priv) || BN_cmp(priv, EC_GROUP_get0_order(g)) >= 0)
		return -ERANGE;
	if (!(pub = EC_POINT_new(g)) || !EC_POINT_mul(g, pub, priv, NULL, NULL, NULL) ||
	    EC_POINT_point2oct(g, pub, POINT_CONVERSION_UNCOMPRESSED, pub_oct, sizeof(pub_oct),
			       NULL) != sizeof(pub_oct) ||
	    !(bld = OSSL_PARAM_BLD_new()) ||
	    !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "secp384r1", 0) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv) ||
	    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub_oct,
					      sizeof(pub_oct)) ||
	    !(params = OSSL_PARAM_BLD_to_param(bld)) ||
	    !(ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) ||
	    EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_KEYPAIR, params) != 1) {
		ERR_clear_error();
		return -EIO;
	}
	*ret = k;
	return 0;
}

int secrets_p384_key_generate(EVP_PKEY **ret)
{
	EVP_PKEY *k = EVP_EC_gen("secp384r1");
	if (!k) {
		ERR_clear_error();
		return -EIO;
	}
	*ret = k;
	return 0;
}

void secrets_free(struct secrets *s)
{
	if (!s)
		return;
	EVP_PKEY_free(s->signing_key);
	EVP_PKEY_free(s->root_key);
	OPENSSL_cleanse(s, sizeof(*s));
	free(s);
}

static int derive(const struct secrets *s, const uint8_t *ikm, const char *label,
		  uint8_t out[SECRETS_DERIVED_SIZE])
{
	return secrets_hkdf(ikm, SECRETS_DERIVED_SIZE, s->salt, SECRETS_SALT_SIZE, label,
			    strlen(label), out, SECRETS_DERIVED_SIZE);
}

static int derive_key(const struct secrets *s, const char *label, EVP_PKEY **ret)
{
	uint8_t okm[SECRETS_DERIVED_SIZE], d[SECRETS_P384_SCALAR_SIZE];
	int r = derive(s, s->seed, label, okm);
	if (r == 0)
		r = secrets_det_keygen_p384(okm, d);
	if (r == 0)
		r = secrets_p384_key_from_scalar(d, ret);
	OPENSSL_cleanse(okm, sizeof(okm));
	OPENSSL_cleanse(d, sizeof(d));
	return r;
}

int secrets_derive(const uint8_t seed[SECRETS_SEED_SIZE], const uint8_t salt[SECRETS_SALT_SIZE],
		   struct secrets **ret)
{
	_cleanup_(secrets_freep) struct secrets *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	memcpy(s->seed, seed, SECRETS_SEED_SIZE);
	memcpy(s->salt, salt, SECRETS_SALT_SIZE);
	int r;
	if ((r = derive(s, s->seed, SECRETS_LABEL_POD_STATE, s->pod_state_seed)) < 0 ||
	    (r = derive(s, s->seed, SECRETS_LABEL_HISTORY, s->history_secret)) < 0 ||
	    (r = derive_key(s, SECRETS_LABEL_TRANSACTION, &s->signing_key)) < 0 ||
	    (r = derive_key(s, SECRETS_LABEL_ROOT_CA, &s->root_key)) < 0)
		return r;
	*ret = TAKE_PTR(s);
	return 0;
}

int secrets_generate(struct secrets **ret)
{
	uint8_t seed[SECRETS_SEED_SIZE], salt[SECRETS_SALT_SIZE];
	int r = 0;
	if (RAND_priv_bytes(seed, sizeof(seed)) != 1 || RAND_bytes(salt, sizeof(salt)) != 1)
		r = -EIO;
	if (r == 0)
		r = secrets_derive(seed, salt, ret);
	OPENSSL_cleanse(seed, sizeof(seed));
	return r;
}

int secrets_workload_secret(const struct secrets *s, const char *id,
			    uint8_t ret[SECRETS_DERIVED_SIZE])
{
	if (!id)
		return -EINVAL;
	_cleanup_free_ char *label = str_printf("%s%s", SECRETS_LABEL_WORKLOAD_PREFIX, id);
	if (!label)
		return -ENOMEM;
	return secrets_hkdf(s->pod_state_seed, SECRETS_DERIVED_SIZE, s->salt, SECRETS_SALT_SIZE,
			    label, strlen(label), ret, SECRETS_DERIVED_SIZE);
}

int secrets_seed_shares_json(const struct secrets *s, const struct manifest *m, char **ret)
{
	_cleanup_(json_decrefp) json_t *root = json_object();
	json_t *shares = json_array();
	if (!root || !shares || json_object_set_new(root, "SeedShares", shares) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < m->n_seedshare_owners; i++) {
		const struct manifest_key *k = &m->seedshare_owners[i];
		const unsigned char *p = k->der;
		_cleanup_(EVP_PKEY_freep) EVP_PKEY *pub =
		    d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, (long)k->der_len);
		if (!pub) {
			ERR_clear_error();
			return -EINVAL;
		}
		_cleanup_free_ uint8_t *enc = NULL;
		size_t enc_len;
		_cleanup_free_ char *hex = hex_encode(k->der, k->der_len), *b64 = NULL;
		int r = coordapi_seed_share_encrypt(pub, s->seed, &enc, &enc_len);
		if (r < 0)
			return r;
		if (!hex || userdata_base64_encode(enc, enc_len, &b64) < 0)
			return -ENOMEM;
		json_t *e = json_pack("{s:s, s:s}", "PublicKey", hex, "EncryptedSeed", b64);
		if (!e || json_array_append_new(shares, e) < 0)
			return -ENOMEM;
	}
	_cleanup_free_ char *salt = NULL;
	if (userdata_base64_encode(s->salt, SECRETS_SALT_SIZE, &salt) < 0 ||
	    json_object_set_new(root, "Salt", json_string(salt)) < 0)
		return -ENOMEM;
	char *text = json_dumps(root, JSON_COMPACT);
	if (!text)
		return -ENOMEM;
	*ret = text;
	return 0;
}

/* Unit tests for coordinator/secrets.c: HKDF and det-keygen known answers, workload secrets,
 * seed shares. The vectors below were computed once by test/unit/coordinator-secrets-kat.py, an
 * independent implementation with Python's hashlib/hmac only (HKDF, det-keygen, P-384 point
 * multiplication), and pasted here. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "coordinator/secrets.h"
#include "userdata/userdata.h"

DEFINE_CLEANUP(EVP_PKEY, EVP_PKEY_free)
DEFINE_CLEANUP(EVP_PKEY_CTX, EVP_PKEY_CTX_free)

#define SEED_HEX                                                                                   \
	"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b" \
	"2c"                                                                                       \
	"2d2e2f303132333435363738393a3b3c3d3e3f"
#define SALT_HEX "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
#define POD_STATE_HEX                                                                              \
	"f81c5fde31d222a06091e0806a6a8030f3826c06e0688401715352d89717a41658e47f0eb54de25230c948f4" \
	"3e"                                                                                       \
	"0a5682537cbad34572a16346801edc8a9bd2af"
#define HISTORY_HEX                                                                                \
	"6d95d475a3c9a7bc8b38230cd294f156f8d384ab551df8f8ae8470e0b1408a4d099216b3523b8095355a47d5" \
	"f1"                                                                                       \
	"4414a724924654cfeea85f354843cf7c631e86"
#define TX_OKM_HEX                                                                                 \
	"efef04b30b16bde0788fd929350ab7ccfc1367c21d302903808da4170adabbefe3d8adecf29cf665e7ebfa54" \
	"36"                                                                                       \
	"a02453e90ea8f603e5096aa7d660a3db956caa"
#define TX_D_HEX                                                                                   \
	"d6a5a0c06cbe8c2d5095168887b37db1c48452cfb9ad1e6964c42163a4660266bdf1817c44d6889e83745ac4" \
	"30"                                                                                       \
	"464922"
#define TX_PUB_HEX                                                                                 \
	"042b7cb32b5c2c31cb4fc42f298ea42071c97c1e829f6834ddf1b3c2938cf442f0789f3ccf9fe15af8b053bf" \
	"cb"                                                                                       \
	"6f76f215da0d402bd1056f64ae1cb3faf84d0c82c3f7d5a18f76d7270b0beeea55b9e93b10aab9c80402229f" \
	"60"                                                                                       \
	"8cecce596e1f77"
#define ROOT_OKM_HEX                                                                               \
	"966234c81086498aba67fa6cc75a63e2b04c20a5955c8cfd31323546cbbb338ca54bb68a25661ed28297debc" \
	"77"                                                                                       \
	"1872ba2317db17eb8d3a8e011ab3cbdb4524d3"
#define ROOT_D_HEX                                                                                 \
	"514ddeec4fdd0ef307ce60950e74d131836b775b3a076d25c1d02ccbcae37ce022552e596a83182618adaeb0" \
	"25"                                                                                       \
	"ab0b41"
#define ROOT_PUB_HEX                                                                               \
	"048927d996eb242d6d6a894919fdc20da80ced7fea4df093f60770ae3e518e20a708d7c812ca5b67c4d6a788" \
	"5a"                                                                                       \
	"1f814c4307e404840bba9f1cc90483f7bc3cc5507e3cf72e1b97a4c87bffbaa001f42aceb4eb72eae8d2deb7" \
	"8a"                                                                                       \
	"e180db8274ec8a"
#define WORKLOAD_WEB_HEX                                                                           \
	"796405ff36c24e8394b2aef8abcf85eb89898b97e6155a3fa309213576a8f9ea2facd6105042cde22ee29e1d" \
	"3f"                                                                                       \
	"b25f58684ba93dfbe66a992614ca6323e0fbeb"
#define WORKLOAD_EMPTY_HEX                                                                         \
	"630c59cb5f00ecd9e1b6085aa9a0fbd161177cafef2de49866dcd01709dd520bd9224f04b194accd189c89f9" \
	"13"                                                                                       \
	"261b5fe12be85206b17fc698a15c85b772e7c8"
#define DETKEYGEN_A5_HEX                                                                           \
	"a949bf8b75395a7e5e003c8a424fa117d11dea6feda5c9c44a0bb43c9d0a5f37b5dc484985416db3fe017aff" \
	"9b"                                                                                       \
	"9300b5"

static void unhex(const char *s, uint8_t *out, size_t n)
{
	assert_int_equal(manifest_hex_decode(s, out, n), 0);
}

static void assert_hex(const uint8_t *data, size_t n, const char *want)
{
	_cleanup_free_ char *h = hex_encode(data, n);
	assert_string_equal(h, want);
}

static void assert_priv(EVP_PKEY *k, const char *want_d, const char *want_pub)
{
	BIGNUM *d = NULL;
	uint8_t buf[SECRETS_P384_SCALAR_SIZE], pub[97];
	size_t pub_len = 0;
	assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_PRIV_KEY, &d), 1);
	assert_int_equal(BN_bn2binpad(d, buf, sizeof(buf)), (int)sizeof(buf));
	BN_clear_free(d);
	assert_hex(buf, sizeof(buf), want_d);
	assert_int_equal(
	    EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub), &pub_len),
	    1);
	assert_int_equal(pub_len, 97);
	assert_hex(pub, pub_len, want_pub);
	assert_int_equal(EVP_PKEY_get_bits(k), 384);
}

static struct secrets *kat_secrets(void)
{
	uint8_t seed[64], salt[32];
	unhex(SEED_HEX, seed, 64);
	unhex(SALT_HEX, salt, 32);
	struct secrets *s = NULL;
	assert_int_equal(secrets_derive(seed, salt, &s), 0);
	return s;
}

static void test_hkdf_rfc5869(void **state)
{
	/* RFC 5869 A.1 */
	uint8_t ikm[22], salt[13], out[42];
	memset(ikm, 0x0b, sizeof(ikm));
	for (size_t i = 0; i < sizeof(salt); i++)
		salt[i] = (uint8_t)i;
	const char info[] = "\xf0\xf1\xf2\xf3\xf4\xf5\xf6\xf7\xf8\xf9";
	assert_int_equal(secrets_hkdf(ikm, sizeof(ikm), salt, sizeof(salt), info, 10, out, 42), 0);
	assert_hex(
	    out, 42,
	    "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b88718"
	    "5865");
}

static void test_derivations_kat(void **state)
{
	_cleanup_(secrets_freep) struct secrets *s = kat_secrets();
	assert_hex(s->pod_state_seed, 64, POD_STATE_HEX);
	assert_hex(s->history_secret, 64, HISTORY_HEX);
	assert_priv(s->signing_key, TX_D_HEX, TX_PUB_HEX);
	assert_priv(s->root_key, ROOT_D_HEX, ROOT_PUB_HEX);

	uint8_t okm[64];
	assert_int_equal(secrets_hkdf(s->seed, 64, s->salt, 32, SECRETS_LABEL_ROOT_CA,
				      strlen(SECRETS_LABEL_ROOT_CA), okm, 64),
			 0);
	assert_hex(okm, 64, ROOT_OKM_HEX);
	assert_int_equal(secrets_hkdf(s->seed, 64, s->salt, 32, SECRETS_LABEL_TRANSACTION,
				      strlen(SECRETS_LABEL_TRANSACTION), okm, 64),
			 0);
	assert_hex(okm, 64, TX_OKM_HEX);

	uint8_t w[64];
	assert_int_equal(secrets_workload_secret(s, "apps/v1/Deployment/default/web", w), 0);
	assert_hex(w, 64, WORKLOAD_WEB_HEX);
	assert_int_equal(secrets_workload_secret(s, "", w), 0);
	assert_hex(w, 64, WORKLOAD_EMPTY_HEX);
	assert_int_equal(secrets_workload_secret(s, NULL, w), -EINVAL);
}

static void test_det_keygen_kat(void **state)
{
	uint8_t s[64], d[48];
	memset(s, 0xa5, sizeof(s));
	assert_int_equal(secrets_det_keygen_p384(s, d), 0);
	assert_hex(d, 48, DETKEYGEN_A5_HEX);
	/* A one-bit change of s changes d. */
	s[63] ^= 1;
	assert_int_equal(secrets_det_keygen_p384(s, d), 0);
	_cleanup_free_ char *h = hex_encode(d, 48);
	assert_string_not_equal(h, DETKEYGEN_A5_HEX);
}

static void test_scalar_range(void **state)
{
	/* d = 0 and d >= n cannot make a key (det-keygen treats them as fatal). */
	uint8_t d[48] = {0};
	EVP_PKEY *k = NULL;
	assert_int_equal(secrets_p384_key_from_scalar(d, &k), -ERANGE);
	unhex("ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec"
	      "196a"
	      "ccc52973",
	      d, 48);
	assert_int_equal(secrets_p384_key_from_scalar(d, &k), -ERANGE);
	d[47] = 0x72; /* n - 1 is the largest valid scalar */
	assert_int_equal(secrets_p384_key_from_scalar(d, &k), 0);
	assert_non_null(k);
	EVP_PKEY_free(k);
	memset(d, 0xff, sizeof(d));
	assert_int_equal(secrets_p384_key_from_scalar(d, &k), -ERANGE);
}

static void test_signing_key_signs(void **state)
{
	/* The derived key pair is consistent: a signature verifies with its public half. */
	_cleanup_(secrets_freep) struct secrets *s = kat_secrets();
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint8_t sig[128];
	size_t sig_len = sizeof(sig);
	assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha384(), NULL, s->signing_key), 1);
	assert_int_equal(EVP_DigestSign(ctx, sig, &sig_len, (const uint8_t *)"abc", 3), 1);
	EVP_MD_CTX_free(ctx);
	unsigned char *der = NULL;
	int der_len = i2d_PUBKEY(s->signing_key, &der);
	const unsigned char *p = der;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pub = d2i_PUBKEY(NULL, &p, der_len);
	OPENSSL_free(der);
	ctx = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, EVP_sha384(), NULL, pub), 1);
	assert_int_equal(EVP_DigestVerify(ctx, sig, sig_len, (const uint8_t *)"abc", 3), 1);
	EVP_MD_CTX_free(ctx);
}

static void test_generate_random(void **state)
{
	_cleanup_(secrets_freep) struct secrets *a = NULL, *b = NULL;
	assert_int_equal(secrets_generate(&a), 0);
	assert_int_equal(secrets_generate(&b), 0);
	assert_memory_not_equal(a->seed, b->seed, 64);
	assert_memory_not_equal(a->salt, b->salt, 32);
	/* Derivation is a function of seed and salt only. */
	_cleanup_(secrets_freep) struct secrets *c = NULL;
	assert_int_equal(secrets_derive(a->seed, a->salt, &c), 0);
	assert_memory_equal(a->pod_state_seed, c->pod_state_seed, 64);
	assert_int_equal(EVP_PKEY_eq(a->root_key, c->root_key), 1);
	assert_int_equal(EVP_PKEY_eq(a->signing_key, c->signing_key), 1);
	assert_int_not_equal(EVP_PKEY_eq(a->root_key, b->root_key), 1);
}

static EVP_PKEY *rsa_key(void)
{
	EVP_PKEY *k = EVP_RSA_gen(2048);
	assert_non_null(k);
	return k;
}

/* Decrypt with explicit OAEP parameters, to show which ones the share uses. */
static int oaep_decrypt(EVP_PKEY *k, const EVP_MD *md, const char *label, const uint8_t *enc,
			size_t len, uint8_t *out, size_t *out_len)
{
	_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);
	assert_int_equal(EVP_PKEY_decrypt_init(ctx), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md), 1);
	if (label)
		assert_int_equal(EVP_PKEY_CTX_set0_rsa_oaep_label(
				     ctx, OPENSSL_memdup(label, strlen(label)), (int)strlen(label)),
				 1);
	int r = EVP_PKEY_decrypt(ctx, out, out_len, enc, len);
	ERR_clear_error();
	return r;
}

static void test_seed_share(void **state)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *k = rsa_key();
	_cleanup_(secrets_freep) struct secrets *s = kat_secrets();
	_cleanup_free_ uint8_t *enc = NULL;
	size_t enc_len;
	assert_int_equal(coordapi_seed_share_encrypt(k, s->seed, &enc, &enc_len), 0);
	assert_int_equal(enc_len, 256);
	uint8_t seed[64];
	assert_int_equal(coordapi_seed_share_decrypt(k, enc, enc_len, seed), 0);
	assert_memory_equal(seed, s->seed, 64);

	uint8_t out[256];
	size_t out_len = sizeof(out);
	assert_int_equal(oaep_decrypt(k, EVP_sha256(), "seedshare", enc, enc_len, out, &out_len),
			 1);
	assert_int_equal(out_len, 64);
	assert_memory_equal(out, s->seed, 64);
	out_len = sizeof(out);
	assert_int_not_equal(oaep_decrypt(k, EVP_sha256(), NULL, enc, enc_len, out, &out_len), 1);
	out_len = sizeof(out);
	assert_int_not_equal(oaep_decrypt(k, EVP_sha256(), "seedshar", enc, enc_len, out, &out_len),
			     1);
	out_len = sizeof(out);
	assert_int_not_equal(oaep_decrypt(k, EVP_sha1(), "seedshare", enc, enc_len, out, &out_len),
			     1);

	/* Tampering and the wrong key are refused. */
	enc[10] ^= 1;
	assert_int_equal(coordapi_seed_share_decrypt(k, enc, enc_len, seed), -EBADMSG);
	enc[10] ^= 1;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *other = rsa_key();
	assert_int_equal(coordapi_seed_share_decrypt(other, enc, enc_len, seed), -EBADMSG);
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *ec = EVP_EC_gen("P-256");
	assert_int_equal(coordapi_seed_share_encrypt(ec, s->seed, &enc, &enc_len), -EINVAL);
}

static void test_seed_shares_json(void **state)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *k1 = rsa_key(), *k2 = rsa_key();
	_cleanup_(secrets_freep) struct secrets *s = kat_secrets();
	struct manifest_key keys[2] = {};
	EVP_PKEY *ks[2] = {k1, k2};
	for (size_t i = 0; i < 2; i++) {
		unsigned char *der = NULL;
		int n = i2d_PublicKey(ks[i], &der);
		assert_true(n > 0);
		keys[i].der = der;
		keys[i].der_len = (size_t)n;
	}
	struct manifest m = {.seedshare_owners = keys, .n_seedshare_owners = 2};
	_cleanup_free_ char *text = NULL;
	assert_int_equal(secrets_seed_shares_json(s, &m, &text), 0);
	_cleanup_(json_decrefp) json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
	assert_non_null(j);
	assert_int_equal(json_object_size(j), 2);
	json_t *shares = json_object_get(j, "SeedShares");
	assert_int_equal(json_array_size(shares), 2);
	for (size_t i = 0; i < 2; i++) {
		json_t *e = json_array_get(shares, i);
		assert_int_equal(json_object_size(e), 2);
		_cleanup_free_ char *hex = hex_encode(keys[i].der, keys[i].der_len);
		assert_string_equal(json_string_value(json_object_get(e, "PublicKey")), hex);
		const char *b64 = json_string_value(json_object_get(e, "EncryptedSeed"));
		_cleanup_free_ uint8_t *enc = NULL;
		size_t enc_len;
		assert_int_equal(userdata_base64_decode(b64, strlen(b64), 4096, &enc, &enc_len), 0);
		uint8_t seed[64];
		assert_int_equal(coordapi_seed_share_decrypt(ks[i], enc, enc_len, seed), 0);
		assert_memory_equal(seed, s->seed, 64);
	}
	const char *salt = json_string_value(json_object_get(j, "Salt"));
	_cleanup_free_ uint8_t *raw = NULL;
	size_t raw_len;
	assert_int_equal(userdata_base64_decode(salt, strlen(salt), 64, &raw, &raw_len), 0);
	assert_int_equal(raw_len, 32);
	assert_memory_equal(raw, s->salt, 32);
	OPENSSL_free(keys[0].der);
	OPENSSL_free(keys[1].der);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hkdf_rfc5869),      cmocka_unit_test(test_derivations_kat),
	    cmocka_unit_test(test_det_keygen_kat),    cmocka_unit_test(test_scalar_range),
	    cmocka_unit_test(test_signing_key_signs), cmocka_unit_test(test_generate_random),
	    cmocka_unit_test(test_seed_share),        cmocka_unit_test(test_seed_shares_json),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

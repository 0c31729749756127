/* lib/attest: SEV-SNP verification (ATTESTATION.md 2-3): the ARK/ASK/VEK chain against the pinned
 * AMD roots, the CRL, the report signature, the VEK binding and the reference-value policy. Every
 * check is recorded in the result; the first failing one gives the error class. */
#include <stdio.h>

#include <openssl/err.h>
#include <openssl/rsa.h>

#include "attest/snp-internal.h"

#define ADD(res, name, st, code, ...)                                        \
	do {                                                                 \
		if (attest_result_add(res, name, st, code, __VA_ARGS__) < 0) \
			return -ENOMEM;                                      \
	} while (0)
#define PASS(res, name, code, ...) ADD(res, name, ATTEST_CHECK_PASS, code, __VA_ARGS__)
#define FAIL(res, name, code, ...) ADD(res, name, ATTEST_CHECK_FAIL, code, __VA_ARGS__)
#define SKIP(res, name, code, ...) ADD(res, name, ATTEST_CHECK_SKIP, code, __VA_ARGS__)

/* ---- certificates ---- */

static X509 *cert_from_bytes(const uint8_t *data, size_t len)
{
	if (!data || len == 0 || len > ATTEST_SNP_FILE_MAX_BYTES)
		return NULL;
	const unsigned char *p = data;
	X509 *x = d2i_X509(NULL, &p, (long)len);
	if (x && p == data + len)
		return x;
	X509_free(x);
	_cleanup_(BIO_freep) BIO *b = BIO_new_mem_buf(data, (int)len);
	return b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
}

/* The CN of a name, or "" (into a bounded buffer). */
static const char *name_cn(const X509_NAME *n, char *buf, size_t size)
{
	buf[0] = 0;
	if (!n || X509_NAME_get_text_by_NID((X509_NAME *)n, NID_commonName, buf, (int)size) < 0)
		buf[0] = 0;
	return buf;
}

static const char *cert_cn(const X509 *x, char *buf, size_t size)
{
	return name_cn(x ? X509_get_subject_name(x) : NULL, buf, size);
}

enum cert_role { ROLE_ARK, ROLE_ASK, ROLE_VEK };

static enum cert_role role_of(const X509 *x)
{
	char cn[80];
	cert_cn(x, cn, sizeof(cn));
	if (str_startswith(cn, "ARK-"))
		return ROLE_ARK;
	if (str_eq(cn, "SEV-VCEK") || str_eq(cn, "SEV-VLEK"))
		return ROLE_VEK;
	return ROLE_ASK;
}

/* Certificates of a PEM bundle by role (first of each kind wins; at most 8 are read). */
static int chain_load(const uint8_t *pem, size_t len, X509 **ark, X509 **ask)
{
	if (len > ATTEST_SNP_FILE_MAX_BYTES)
		return -EFBIG;
	_cleanup_(BIO_freep) BIO *b = BIO_new_mem_buf(pem, (int)len);
	if (!b)
		return -ENOMEM;
	for (int i = 0; i < 8; i++) {
		X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
		if (!x)
			break;
		enum cert_role role = role_of(x);
		X509 **slot = role == ROLE_ARK ? ark : role == ROLE_ASK ? ask : NULL;
		if (slot && !*slot)
			*slot = x;
		else
			X509_free(x);
	}
	ERR_clear_error();
	return 0;
}

static bool spki_sha256(X509 *x, uint8_t out[32])
{
	unsigned char *der = NULL;
	int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
	if (n <= 0)
		return false;
	unsigned int olen = 0;
	bool ok = EVP_Digest(der, (size_t)n, out, &olen, EVP_sha256(), NULL) == 1 && olen == 32;
	OPENSSL_free(der);
	return ok;
}

static bool is_production_pin(const uint8_t h[32], enum attest_snp_product *ret)
{
	_cleanup_free_ char *hex = hex_encode(h, 32);
	for (size_t i = 0; hex && i < snp_n_builtins; i++)
		if (str_eq(hex, snp_builtins[i].ark_spki_sha256)) {
			if (ret)
				*ret = snp_builtins[i].product;
			return true;
		}
	return false;
}

static const struct snp_builtin *builtin_for(enum attest_snp_product p)
{
	for (size_t i = 0; i < snp_n_builtins; i++)
		if (snp_builtins[i].product == p)
			return &snp_builtins[i];
	return NULL;
}

static X509 *cert_from_pem_string(const char *pem)
{
	return pem ? cert_from_bytes((const uint8_t *)pem, strlen(pem)) : NULL;
}

/* RSASSA-PSS with SHA-384, MGF1-SHA-384, salt 48, trailer 1, as AMD signs. */
static bool sigalg_is_amd_pss(const X509_ALGOR *alg)
{
	const ASN1_OBJECT *obj;
	int ptype;
	const void *pval;
	X509_ALGOR_get0(&obj, &ptype, &pval, alg);
	if (OBJ_obj2nid(obj) != NID_rsassaPss || ptype != V_ASN1_SEQUENCE)
		return false;
	const ASN1_STRING *seq = pval;
	const unsigned char *p = ASN1_STRING_get0_data(seq);
	_cleanup_(RSA_PSS_PARAMS_freep) RSA_PSS_PARAMS *pss =
	    d2i_RSA_PSS_PARAMS(NULL, &p, ASN1_STRING_length(seq));
	if (!pss || !pss->hashAlgorithm || !pss->maskGenAlgorithm)
		return false;
	if (OBJ_obj2nid(pss->hashAlgorithm->algorithm) != NID_sha384 ||
	    OBJ_obj2nid(pss->maskGenAlgorithm->algorithm) != NID_mgf1)
		return false;
	/* d2i leaves maskHash empty: MGF1's hash is the AlgorithmIdentifier in its parameter. */
	const ASN1_TYPE *mp = pss->maskGenAlgorithm->parameter;
	if (!mp || mp->type != V_ASN1_SEQUENCE)
		return false;
	const unsigned char *q = ASN1_STRING_get0_data(mp->value.sequence);
	_cleanup_(X509_ALGOR_freep) X509_ALGOR *mh =
	    d2i_X509_ALGOR(NULL, &q, ASN1_STRING_length(mp->value.sequence));
	if (!mh || OBJ_obj2nid(mh->algorithm) != NID_sha384)
		return false;
	if (!pss->saltLength || ASN1_INTEGER_get(pss->saltLength) != 48)
		return false;
	if (pss->trailerField && ASN1_INTEGER_get(pss->trailerField) != 1)
		return false;
	return true;
}

static bool key_is_rsa4096(X509 *x)
{
	EVP_PKEY *k = X509_get0_pubkey(x);
	return k &&
	       (EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA ||
		EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA_PSS) &&
	       EVP_PKEY_get_bits(k) == 4096;
}

static bool key_is_p384(X509 *x)
{
	EVP_PKEY *k = X509_get0_pubkey(x);
	char group[32];
	size_t glen = 0;
	return k && EVP_PKEY_get_base_id(k) == EVP_PKEY_EC &&
	       EVP_PKEY_get_utf8_string_param(k, "group", group, sizeof(group), &glen) == 1 &&
	       str_eq(group, "secp384r1");
}

/* Why `x` is not signed by `issuer` (names, algorithm, signature), or NULL when it is. */
static const char *signed_by(X509 *x, X509 *issuer)
{
	if (X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(issuer)) != 0)
		return "issuer name differs from the issuer's subject";
	if (!sigalg_is_amd_pss(X509_get0_tbs_sigalg(x)))
		return "signature algorithm is not RSASSA-PSS SHA-384/MGF1-SHA-384/salt 48";
	const X509_ALGOR *outer;
	X509_get0_signature(NULL, &outer, x);
	if (X509_ALGOR_cmp(outer, X509_get0_tbs_sigalg(x)) != 0)
		return "outer and inner signature algorithms differ";
	EVP_PKEY *k = X509_get0_pubkey(issuer);
	if (!k)
		return "issuer key cannot be loaded";
	int v = X509_verify(x, k);
	ERR_clear_error();
	return v == 1 ? NULL : "signature does not verify";
}

/* -1 before notBefore, 1 after notAfter, 0 inside, 2 unreadable. */
static int validity_at(const X509 *x, int64_t now)
{
	time_t t = (time_t)now;
	int a = ASN1_TIME_cmp_time_t(X509_get0_notBefore(x), t);
	int b = ASN1_TIME_cmp_time_t(X509_get0_notAfter(x), t);
	if (a == -2 || b == -2)
		return 2;
	if (a > 0)
		return -1;
	if (b < 0)
		return 1;
	return 0;
}

/* ---- chain cache ---- */

struct attest_snp_cache {
	uint8_t key[32]; /* of the input bytes; the entries below belong to it */
	bool have_ext;
	struct attest_snp_vek_ext ext;
	bool ext_ok;
	char ext_msg[256];
	bool valid; /* chain outcome for product/vlek */
	enum attest_snp_product product;
	bool vlek;
	X509 *ark, *ask, *vek;
	bool ark_is_anchor;
	const char *ark_fail, *ask_fail, *vek_fail;
};

struct attest_snp_cache *attest_snp_cache_new(void)
{
	return calloc(1, sizeof(struct attest_snp_cache));
}

static void cache_clear_chain(struct attest_snp_cache *c)
{
	X509_free(c->ark);
	X509_free(c->ask);
	X509_free(c->vek);
	c->ark = c->ask = c->vek = NULL;
	c->valid = false;
}

static void cache_clear(struct attest_snp_cache *c)
{
	cache_clear_chain(c);
	*c = (struct attest_snp_cache){};
}

void attest_snp_cache_free(struct attest_snp_cache *c)
{
	if (!c)
		return;
	cache_clear(c);
	free(c);
}

static void cache_key(const struct attest_snp_options *o, uint8_t out[32])
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	unsigned int n = 0;
	uint64_t lens[3] = {o->vek_len, o->chain ? o->chain_len : 0,
			    o->trust_anchor_pem ? strlen(o->trust_anchor_pem) : 0};
	memset(out, 0, 32);
	if (!m)
		return;
	if (EVP_DigestInit_ex(m, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(m, lens, sizeof(lens)) == 1 &&
	    EVP_DigestUpdate(m, o->vek, o->vek_len) == 1 &&
	    (!o->chain || EVP_DigestUpdate(m, o->chain, o->chain_len) == 1) &&
	    (!o->trust_anchor_pem ||
	     EVP_DigestUpdate(m, o->trust_anchor_pem, strlen(o->trust_anchor_pem)) == 1))
		EVP_DigestFinal_ex(m, out, &n);
	EVP_MD_CTX_free(m);
}

/* ---- the verification state ---- */

struct state {
	const struct attest_snp_options *o;
	struct attest_result *res;
	struct attest_snp_report rep;
	enum attest_snp_product product;
	bool vlek;
	X509 *ark, *ask, *vek; /* borrowed from the cache or owned (owned_* set) */
	bool own;
	const char *ark_fail, *ask_fail, *vek_fail;
	bool ark_is_anchor;
	struct attest_snp_vek_ext ext;
	bool ext_ok;
	char ext_msg[256];
	uint8_t key[32]; /* cache key, when o->cache */
};

static void state_done(struct state *s)
{
	if (s->own) {
		X509_free(s->ark);
		X509_free(s->ask);
		X509_free(s->vek);
	}
}

/* Locate ARK and ASK, check the ARK is an anchor, then the three signatures. The outcome does not
 * depend on `now`, so it can be cached. */
static void chain_build(struct state *s)
{
	const struct attest_snp_options *o = s->o;
	const struct snp_builtin *bi = builtin_for(s->product);
	X509 *ark = NULL, *ask = NULL;

	if (o->chain && chain_load(o->chain, o->chain_len, &ark, &ask) < 0) {
		s->ark_fail = "chain file cannot be read";
		return;
	}
	_cleanup_(X509_freep) X509 *anchor = NULL;
	if (o->trust_anchor_pem) {
		anchor = cert_from_pem_string(o->trust_anchor_pem);
		uint8_t h[32];
		if (!anchor || !spki_sha256(anchor, h))
			s->ark_fail = "the explicit trust anchor cannot be parsed";
		else if (is_production_pin(h, NULL))
			s->ark_fail = "the explicit trust anchor has the key of a production ARK";
		else if (!ark)
			ark = X509_dup(anchor);
		else if (X509_cmp(ark, anchor) != 0)
			s->ark_fail = "the chain's ARK is not the explicit trust anchor";
	} else if (ark) {
		uint8_t h[32];
		if (!spki_sha256(ark, h) || !is_production_pin(h, NULL))
			s->ark_fail = "the chain's ARK is not a pinned AMD ARK";
	} else if (bi) {
		ark = cert_from_pem_string(bi->ark_pem);
	} else {
		s->ark_fail = "no ARK: product line unknown";
	}
	if (!ask && !o->trust_anchor_pem && bi)
		ask = cert_from_pem_string(s->vlek ? bi->asvk_pem : bi->ask_pem);
	s->ark = ark;
	s->ask = ask;
	s->vek = cert_from_bytes(o->vek, o->vek_len);
	s->own = true;
	ERR_clear_error();

	if (!s->ark_fail && !s->ark)
		s->ark_fail = "no ARK";
	if (!s->ark_fail && !key_is_rsa4096(s->ark))
		s->ark_fail = "ARK key is not RSA-4096";
	if (!s->ark_fail) {
		const char *why = signed_by(s->ark, s->ark);
		if (why)
			s->ark_fail = str_eq(why, "signature does not verify")
					  ? "self-signature does not verify"
					  : why;
	}
	if (!s->ask)
		s->ask_fail = "no ASK/ASVK given";
	else if (!key_is_rsa4096(s->ask))
		s->ask_fail = "ASK key is not RSA-4096";
	else if (!s->ark)
		s->ask_fail = "no ARK to verify it with";
	else
		s->ask_fail = signed_by(s->ask, s->ark);
	if (!s->vek)
		s->vek_fail = "VEK certificate cannot be parsed";
	else if (!key_is_p384(s->vek))
		s->vek_fail = "VEK key is not EC P-384";
	else if (!s->ask)
		s->vek_fail = "no ASK/ASVK to verify it with";
	else
		s->vek_fail = signed_by(s->vek, s->ask);
	ERR_clear_error();
}

static void chain_get(struct state *s)
{
	struct attest_snp_cache *c = s->o->cache;
	if (c) {
		if (c->valid && memcmp(c->key, s->key, 32) == 0 && c->product == s->product &&
		    c->vlek == s->vlek) {
			s->ark = c->ark;
			s->ask = c->ask;
			s->vek = c->vek;
			s->ark_fail = c->ark_fail;
			s->ask_fail = c->ask_fail;
			s->vek_fail = c->vek_fail;
			s->own = false;
			return;
		}
	}
	chain_build(s);
	if (c && memcmp(c->key, s->key, 32) == 0) {
		cache_clear_chain(c);
		c->valid = true;
		c->product = s->product;
		c->vlek = s->vlek;
		c->ark = s->ark;
		c->ask = s->ask;
		c->vek = s->vek;
		c->ark_fail = s->ark_fail;
		c->ask_fail = s->ask_fail;
		c->vek_fail = s->vek_fail;
		s->own = false;
	}
}

/* ---- checks ---- */

static int check_names(struct state *s)
{
	const char *pn = attest_snp_product_name(s->product);
	char cn[80], want[80];
	if (!pn) {
		FAIL(s->res, "chain names", ATTEST_E_CHAIN, "product line unknown");
		return 0;
	}
	if (!s->ark || !s->ask || !s->vek) {
		FAIL(s->res, "chain names", ATTEST_E_CHAIN, "certificate missing");
		return 0;
	}
	snprintf(want, sizeof(want), "ARK-%s", pn);
	if (!str_eq(cert_cn(s->ark, cn, sizeof(cn)), want)) {
		FAIL(s->res, "chain names", ATTEST_E_CHAIN, "ARK CN \"%s\", expected \"%s\"", cn,
		     want);
		return 0;
	}
	snprintf(want, sizeof(want), s->vlek ? "SEV-VLEK-%s" : "SEV-%s", pn);
	if (!str_eq(cert_cn(s->ask, cn, sizeof(cn)), want)) {
		FAIL(s->res, "chain names", ATTEST_E_CHAIN, "%s CN \"%s\", expected \"%s\"",
		     s->vlek ? "ASVK" : "ASK", cn, want);
		return 0;
	}
	if (!str_eq(name_cn(X509_get_issuer_name(s->vek), cn, sizeof(cn)), want)) {
		FAIL(s->res, "chain names", ATTEST_E_CHAIN, "VEK issuer CN \"%s\", expected \"%s\"",
		     cn, want);
		return 0;
	}
	const char *vek_cn = s->vlek ? "SEV-VLEK" : "SEV-VCEK";
	if (!str_eq(cert_cn(s->vek, cn, sizeof(cn)), vek_cn)) {
		FAIL(s->res, "chain names", ATTEST_E_CHAIN,
		     "VEK CN \"%s\", expected \"%s\" for SIGNING_KEY %u", cn, vek_cn,
		     s->rep.signing_key);
		return 0;
	}
	PASS(s->res, "chain names", ATTEST_E_CHAIN, "%s chain of %s", s->vlek ? "VLEK" : "VCEK",
	     pn);
	return 0;
}

static int check_validity(struct state *s)
{
	X509 *certs[3] = {s->ark, s->ask, s->vek};
	const char *names[3] = {"ARK", s->vlek ? "ASVK" : "ASK", s->vlek ? "VLEK" : "VCEK"};
	for (size_t i = 0; i < 3; i++) {
		if (!certs[i]) {
			FAIL(s->res, "validity", ATTEST_E_CHAIN, "%s missing", names[i]);
			return 0;
		}
		int v = validity_at(certs[i], s->o->now_sec);
		if (v != 0) {
			FAIL(s->res, "validity", ATTEST_E_CHAIN, "%s %s at %lld", names[i],
			     v < 0   ? "not yet valid"
			     : v > 0 ? "expired"
				     : "has unreadable dates",
			     (long long)s->o->now_sec);
			return 0;
		}
	}
	PASS(s->res, "validity", ATTEST_E_CHAIN, "ARK, ASK and VEK valid at %lld",
	     (long long)s->o->now_sec);
	return 0;
}

static int check_crl(struct state *s)
{
	const struct attest_snp_options *o = s->o;
	if (o->skip_crl) {
		SKIP(s->res, "crl", ATTEST_E_CRL, "CRL check skipped (crl = skip)");
		return 0;
	}
	if (!o->crl || o->crl_len == 0 || o->crl_len > ATTEST_SNP_FILE_MAX_BYTES) {
		FAIL(s->res, "crl", ATTEST_E_CRL, "no CRL supplied");
		return 0;
	}
	const unsigned char *p = o->crl;
	_cleanup_(X509_CRL_freep) X509_CRL *crl = d2i_X509_CRL(NULL, &p, (long)o->crl_len);
	ERR_clear_error();
	if (!crl || !s->ark) {
		FAIL(s->res, "crl", ATTEST_E_CRL, crl ? "no ARK" : "CRL cannot be parsed");
		return 0;
	}
	EVP_PKEY *k = X509_get0_pubkey(s->ark);
	const X509_ALGOR *alg = NULL;
	X509_CRL_get0_signature(crl, NULL, &alg);
	if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(s->ark)) != 0 || !k ||
	    !alg || !sigalg_is_amd_pss(alg) || X509_CRL_verify(crl, k) != 1) {
		ERR_clear_error();
		FAIL(s->res, "crl", ATTEST_E_CRL, "CRL is not issued and signed by the ARK");
		return 0;
	}
	time_t t = (time_t)o->now_sec;
	const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crl);
	if (ASN1_TIME_cmp_time_t(X509_CRL_get0_lastUpdate(crl), t) > 0 || !next ||
	    ASN1_TIME_cmp_time_t(next, t) < 0) {
		FAIL(s->res, "crl", ATTEST_E_COLLATERAL_EXPIRED,
		     "CRL not current at %lld (outside thisUpdate..nextUpdate)", (long long)t);
		return 0;
	}
	X509 *leaves[2] = {s->ask, s->vek};
	for (size_t i = 0; i < 2; i++) {
		X509_REVOKED *rev = NULL;
		if (leaves[i] &&
		    X509_CRL_get0_by_serial(crl, &rev, X509_get0_serialNumber(leaves[i])) == 1) {
			FAIL(s->res, "crl", ATTEST_E_REVOKED, "%s serial is revoked",
			     i == 0 ? "ASK" : "VEK");
			return 0;
		}
	}
	PASS(s->res, "crl", ATTEST_E_CRL, "CRL signed by the ARK, current, no serial listed");
	return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;
	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

static int check_report_signature(struct state *s)
{
	const uint8_t *rr = s->rep.signature_r, *ss = s->rep.signature_s;
	if (!all_zero(rr + 48, 24) || !all_zero(ss + 48, 24)) {
		FAIL(s->res, "report signature", ATTEST_E_SIGNATURE,
		     "non-zero bytes 48..71 of SIGNATURE_R or SIGNATURE_S");
		return 0;
	}
	EVP_PKEY *k = s->vek ? X509_get0_pubkey(s->vek) : NULL;
	if (!k || !key_is_p384(s->vek)) {
		ERR_clear_error();
		FAIL(s->res, "report signature", ATTEST_E_SIGNATURE, "no usable VEK P-384 key");
		return 0;
	}
	uint8_t be[48];
	BIGNUM *r = NULL, *sv = NULL;
	for (size_t i = 0; i < 48; i++)
		be[i] = rr[47 - i];
	r = BN_bin2bn(be, 48, NULL);
	for (size_t i = 0; i < 48; i++)
		be[i] = ss[47 - i];
	sv = BN_bin2bn(be, 48, NULL);
	_cleanup_(ECDSA_SIG_freep) ECDSA_SIG *sig = ECDSA_SIG_new();
	if (!r || !sv || !sig || ECDSA_SIG_set0(sig, r, sv) != 1) {
		BN_free(r);
		BN_free(sv);
		return -ENOMEM;
	}
	unsigned char *der = NULL;
	int dlen = i2d_ECDSA_SIG(sig, &der);
	if (dlen <= 0)
		return -ENOMEM;
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *m = EVP_MD_CTX_new();
	int v = m && EVP_DigestVerifyInit(m, NULL, EVP_sha384(), NULL, k) == 1
		    ? EVP_DigestVerify(m, der, (size_t)dlen, s->rep.raw, ATTEST_SNP_SIGNED_SIZE)
		    : -1;
	OPENSSL_free(der);
	ERR_clear_error();
	if (v == 1)
		PASS(s->res, "report signature", ATTEST_E_SIGNATURE,
		     "ECDSA P-384/SHA-384 over 0x000..0x29F verifies with the VEK");
	else
		FAIL(s->res, "report signature", ATTEST_E_SIGNATURE,
		     "ECDSA P-384/SHA-384 signature does not verify with the VEK");
	return 0;
}

static int check_binding(struct state *s)
{
	const struct attest_snp_vek_ext *e = &s->ext;
	if (!s->vek) {
		FAIL(s->res, "vek binding", ATTEST_E_VEK_BINDING, "no VEK certificate");
		return 0;
	}
	if (!s->ext_ok) {
		FAIL(s->res, "vek binding", ATTEST_E_VEK_BINDING, "VEK extensions: %s", s->ext_msg);
		return 0;
	}
	bool turin = s->product == ATTEST_SNP_TURIN;
	struct attest_snp_tcb t;
	attest_snp_tcb_decode(s->rep.reported_tcb, turin, &t);
	const struct {
		unsigned arc;
		const char *name;
		uint8_t want;
	} spls[] = {
	    {ATTEST_SNP_SPL_BL, "blSPL", t.bootloader},
	    {ATTEST_SNP_SPL_TEE, "teeSPL", t.tee},
	    {ATTEST_SNP_SPL_SNP, "snpSPL", t.snp},
	    {ATTEST_SNP_SPL_UCODE, "ucodeSPL", t.microcode},
	    {ATTEST_SNP_SPL_FMC, "fmcSPL", t.fmc},
	};
	for (size_t i = 0; i < ELEMENTSOF(spls); i++) {
		bool present = e->spl_present & (1u << spls[i].arc);
		if (spls[i].arc == ATTEST_SNP_SPL_FMC && !turin) {
			if (present)
				FAIL(s->res, "vek binding", ATTEST_E_VEK_BINDING,
				     "fmcSPL present on a %s VEK",
				     attest_snp_product_name(s->product));
			if (present)
				return 0;
			continue;
		}
		if (!present) {
			FAIL(s->res, "vek binding", ATTEST_E_VEK_BINDING, "%s missing",
			     spls[i].name);
			return 0;
		}
		if (e->spl[spls[i].arc] != spls[i].want) {
			FAIL(s->res, "vek binding", ATTEST_E_VEK_BINDING,
			     "%s %u != REPORTED_TCB %u", spls[i].name, e->spl[spls[i].arc],
			     spls[i].want);
			return 0;
		}
	}
	for (unsigned arc = 4; arc <= 7; arc++)
		if ((e->spl_present & (1u << arc)) && e->spl[arc] != 0) {
			FAIL(s->res, "vek binding", ATTEST_E_VEK_BINDING,
			     "reserved SPL 3.%u is %u, not 0", arc, e->spl[arc]);
			return 0;
		}
	if (e->has_struct_version && e->struct_version != (turin ? 1 : 0)) {
		FAIL(s->res, "vek binding", ATTEST_E_VEK_BINDING, "structVersion %u for %s",
		     e->struct_version, attest_snp_product_name(s->product));
		return 0;
	}
	if (s->vlek) {
		if (e->hwid_len) {
			FAIL(s->res, "vek binding", ATTEST_E_VEK_BINDING, "VLEK carries a hwID");
			return 0;
		}
	} else {
		size_t want = turin ? 8 : 64;
		if (e->hwid_len != want) {
			FAIL(s->res, "vek binding", ATTEST_E_VEK_BINDING,
			     "hwID is %zu bytes, expected %zu", e->hwid_len, want);
			return 0;
		}
		if (memcmp(e->hwid, s->rep.chip_id, want) != 0 ||
		    !all_zero(s->rep.chip_id + want, 64 - want)) {
			_cleanup_free_ char *a = hex_encode(e->hwid, want);
			_cleanup_free_ char *b = hex_encode(s->rep.chip_id, 64);
			FAIL(s->res, "vek binding", ATTEST_E_VEK_BINDING, "hwID %s != CHIP_ID %s",
			     a ? a : "?", b ? b : "?");
			return 0;
		}
	}
	PASS(s->res, "vek binding", ATTEST_E_VEK_BINDING,
	     "%sSPLs equal REPORTED_TCB (bl %u tee %u snp %u ucode %u%s)",
	     s->vlek ? "" : "hwID = CHIP_ID, ", t.bootloader, t.tee, t.snp, t.microcode,
	     turin ? ", fmc checked" : "");
	return 0;
}

/* Steps 10-16 for one entry; returns the number of checks that passed before the first failure
 * (or the count of all when none failed). */
static int entry_checks(struct state *s, const struct attest_snp_reference *ref,
			struct attest_result *res, size_t *ret_progress)
{
	const struct attest_snp_report *r = &s->rep;
	bool turin = s->product == ATTEST_SNP_TURIN;
	size_t progress = 0;
	bool failed = false;
#define STEP_OK()                   \
	do {                        \
		if (!failed)        \
			progress++; \
	} while (0)
#define STEP_FAIL(name, code, ...)                  \
	do {                                        \
		FAIL(res, name, code, __VA_ARGS__); \
		failed = true;                      \
	} while (0)

	if (!ref) {
		SKIP(res, "guest policy", ATTEST_E_POLICY, "no reference values");
		SKIP(res, "platform info", ATTEST_E_POLICY, "no reference values");
		SKIP(res, "tcb", ATTEST_E_TCB, "no reference values");
		SKIP(res, "measurement", ATTEST_E_MEASUREMENT, "no reference values");
	} else {
		/* 10: guest policy */
		unsigned maj = (r->policy >> 8) & 0xff, min = r->policy & 0xff;
		uint64_t perm = ATTEST_SNP_POLICY_SMT | ATTEST_SNP_POLICY_CXL_ALLOW;
		uint64_t extra = r->policy & perm & ~ref->policy_allowed;
		uint64_t missing = ref->policy_required & ~r->policy;
		if (maj < ref->abi_major || (maj == ref->abi_major && min < ref->abi_minor))
			STEP_FAIL("guest policy", ATTEST_E_POLICY, "ABI %u.%u < required %u.%u",
				  maj, min, ref->abi_major, ref->abi_minor);
		else if (extra)
			STEP_FAIL("guest policy", ATTEST_E_POLICY,
				  "POLICY 0x%016llx sets bits 0x%llx not allowed",
				  (unsigned long long)r->policy, (unsigned long long)extra);
		else if (missing)
			STEP_FAIL("guest policy", ATTEST_E_POLICY,
				  "POLICY 0x%016llx lacks required bits 0x%llx",
				  (unsigned long long)r->policy, (unsigned long long)missing);
		else {
			PASS(res, "guest policy", ATTEST_E_POLICY, "POLICY 0x%016llx acceptable",
			     (unsigned long long)r->policy);
			STEP_OK();
		}
		/* 11: platform info */
		uint64_t pperm = ATTEST_SNP_PLATFORM_SMT_EN | ATTEST_SNP_PLATFORM_TSME_EN |
				 ATTEST_SNP_PLATFORM_TIO_EN;
		uint64_t pextra = r->platform_info & pperm & ~ref->platform_allowed;
		uint64_t pmissing = ref->platform_required & ~r->platform_info;
		if (pextra)
			STEP_FAIL("platform info", ATTEST_E_POLICY,
				  "PLATFORM_INFO 0x%016llx sets bits 0x%llx not allowed",
				  (unsigned long long)r->platform_info, (unsigned long long)pextra);
		else if (pmissing)
			STEP_FAIL("platform info", ATTEST_E_POLICY,
				  "PLATFORM_INFO 0x%016llx lacks required bits 0x%llx",
				  (unsigned long long)r->platform_info,
				  (unsigned long long)pmissing);
		else {
			PASS(res, "platform info", ATTEST_E_POLICY,
			     "PLATFORM_INFO 0x%016llx acceptable",
			     (unsigned long long)r->platform_info);
			STEP_OK();
		}
		/* 12: minimum TCB */
		const struct attest_snp_tcb *m = &ref->min_tcb;
		const char *low = NULL;
		unsigned have = 0, want = 0;
		uint64_t raws[2] = {r->reported_tcb, r->launch_tcb};
		const char *which = NULL;
		for (size_t i = 0; i < 2 && !low; i++) {
			struct attest_snp_tcb t;
			attest_snp_tcb_decode(raws[i], turin, &t);
			which = i == 0 ? "REPORTED_TCB" : "LAUNCH_TCB";
			if (turin && t.fmc < m->fmc)
				low = "FMC", have = t.fmc, want = m->fmc;
			else if (t.bootloader < m->bootloader)
				low = "bootloader", have = t.bootloader, want = m->bootloader;
			else if (t.tee < m->tee)
				low = "TEE", have = t.tee, want = m->tee;
			else if (t.snp < m->snp)
				low = "SNP", have = t.snp, want = m->snp;
			else if (t.microcode < m->microcode)
				low = "microcode", have = t.microcode, want = m->microcode;
		}
		if (low)
			STEP_FAIL("tcb", ATTEST_E_TCB, "%s %s SPL %u < minimum %u", which, low,
				  have, want);
		else {
			PASS(res, "tcb", ATTEST_E_TCB,
			     "REPORTED_TCB and LAUNCH_TCB meet the minimum TCB");
			STEP_OK();
		}
		/* 13: measurement */
		if (memcmp(r->measurement, ref->measurement, 48) != 0) {
			_cleanup_free_ char *a = hex_encode(r->measurement, 48);
			_cleanup_free_ char *b = hex_encode(ref->measurement, 48);
			STEP_FAIL("measurement", ATTEST_E_MEASUREMENT,
				  "MEASUREMENT %s != TrustedMeasurement %s", a ? a : "?",
				  b ? b : "?");
		} else {
			PASS(res, "measurement", ATTEST_E_MEASUREMENT,
			     "MEASUREMENT equals TrustedMeasurement");
			STEP_OK();
		}
	}
	/* 14: HOST_DATA digest rule */
	const struct attest_digest_rule *dr = &s->o->host_data;
	if (dr->n == 0 || !dr->digests) {
		SKIP(res, "host data", ATTEST_E_POLICY_DIGEST, "no digest rule");
	} else {
		bool found = false;
		for (size_t i = 0; i < dr->n && !found; i++)
			found = memcmp(dr->digests[i], r->host_data, 32) == 0;
		_cleanup_free_ char *h = hex_encode(r->host_data, 32);
		if (!found)
			STEP_FAIL("host data", ATTEST_E_POLICY_DIGEST,
				  "HOST_DATA %s is not an accepted policy digest", h ? h : "?");
		else {
			PASS(res, "host data", ATTEST_E_POLICY_DIGEST,
			     "HOST_DATA %s is an accepted policy digest", h ? h : "?");
			STEP_OK();
		}
	}
	/* 15: REPORT_DATA */
	if (!s->o->report_data) {
		SKIP(res, "report data", ATTEST_E_REPORT_DATA, "no expected REPORT_DATA");
	} else if (memcmp(s->o->report_data, r->report_data, 64) != 0) {
		_cleanup_free_ char *a = hex_encode(r->report_data, 64);
		_cleanup_free_ char *b = hex_encode(s->o->report_data, 64);
		STEP_FAIL("report data", ATTEST_E_REPORT_DATA, "REPORT_DATA %s != expected %s",
			  a ? a : "?", b ? b : "?");
	} else {
		PASS(res, "report data", ATTEST_E_REPORT_DATA, "REPORT_DATA equals the expected");
		STEP_OK();
	}
	/* 16: chip id */
	if (!ref || ref->n_chip_ids == 0) {
		SKIP(res, "chip id", ATTEST_E_CHIP, "no AllowedChipIDs");
	} else {
		bool found = false;
		for (size_t i = 0; i < ref->n_chip_ids && !found && !s->vlek; i++)
			found = memcmp(ref->chip_ids[i], r->chip_id, 64) == 0;
		_cleanup_free_ char *h = hex_encode(r->chip_id, 64);
		if (!found)
			STEP_FAIL("chip id", ATTEST_E_CHIP, "CHIP_ID %s not in AllowedChipIDs%s",
				  h ? h : "?", s->vlek ? " (VLEK report)" : "");
		else {
			PASS(res, "chip id", ATTEST_E_CHIP, "CHIP_ID is allowed");
			STEP_OK();
		}
	}
#undef STEP_OK
#undef STEP_FAIL
	*ret_progress = failed ? progress : SIZE_MAX;
	return 0;
}

static int append_checks(struct attest_result *dst, struct attest_result *src)
{
	for (size_t i = 0; i < src->n_checks; i++) {
		const struct attest_check *c = &src->checks[i];
		if (attest_result_add(dst, c->name, c->status, c->code, "%s", c->message) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int policy_checks(struct state *s)
{
	const struct attest_snp_options *o = s->o;
	struct attest_snp_report *r = &s->rep;
	if (r->version >= 2 && r->version <= 5)
		PASS(s->res, "version", ATTEST_E_VERSION, "VERSION %u", r->version);
	else
		FAIL(s->res, "version", ATTEST_E_VERSION, "VERSION %u not in 2..5", r->version);
	if (r->vmpl == 0)
		PASS(s->res, "vmpl", ATTEST_E_VMPL, "VMPL 0");
	else
		FAIL(s->res, "vmpl", ATTEST_E_VMPL, "VMPL %u, expected 0", r->vmpl);
	if (r->policy & ATTEST_SNP_POLICY_DEBUG)
		FAIL(s->res, "debug", ATTEST_E_DEBUG, "POLICY 0x%016llx has DEBUG (bit 19) set",
		     (unsigned long long)r->policy);
	else
		PASS(s->res, "debug", ATTEST_E_DEBUG, "POLICY.DEBUG clear");
	if (r->policy & ATTEST_SNP_POLICY_MIGRATE_MA)
		FAIL(s->res, "migration", ATTEST_E_MIGRATION,
		     "POLICY 0x%016llx has MIGRATE_MA (bit 18) set", (unsigned long long)r->policy);
	else
		PASS(s->res, "migration", ATTEST_E_MIGRATION, "POLICY.MIGRATE_MA clear");

	size_t n_match = 0;
	for (size_t i = 0; i < o->n_refs; i++)
		n_match += o->refs[i].product == s->product;
	if (!o->refs || o->n_refs == 0 || n_match == 0) {
		/* No entry for the product was already reported by the product check. */
		struct attest_result tmp = {};
		size_t progress;
		int k = entry_checks(s, NULL, &tmp, &progress);
		if (k == 0)
			k = append_checks(s->res, &tmp);
		attest_result_done(&tmp);
		return k;
	}
	struct attest_result best = {};
	size_t best_progress = 0;
	bool have_best = false;
	for (size_t i = 0; i < o->n_refs; i++) {
		if (o->refs[i].product != s->product)
			continue;
		struct attest_result tmp = {};
		size_t progress = 0;
		if (entry_checks(s, &o->refs[i], &tmp, &progress) < 0) {
			attest_result_done(&tmp);
			attest_result_done(&best);
			return -ENOMEM;
		}
		if (!have_best || progress > best_progress) {
			attest_result_done(&best);
			best = tmp;
			best_progress = progress;
			have_best = true;
		} else {
			attest_result_done(&tmp);
		}
		if (progress == SIZE_MAX)
			break;
	}
	int k = append_checks(s->res, &best);
	attest_result_done(&best);
	return k;
}

static int run(struct state *s, const uint8_t *report, size_t len,
	       struct attest_snp_report *ret_report)
{
	const struct attest_snp_options *o = s->o;
	_cleanup_free_ char *msg = NULL;

	/* 0: format */
	if (attest_snp_report_parse(report, len, &s->rep, &msg) < 0) {
		FAIL(s->res, "format", ATTEST_E_FORMAT, "%s", msg ? msg : "malformed report");
		return 0;
	}
	if (ret_report)
		*ret_report = s->rep;
	if (s->rep.signature_algo != 1) {
		FAIL(s->res, "format", ATTEST_E_FORMAT, "SIGNATURE_ALGO %u, expected 1",
		     s->rep.signature_algo);
		return 0;
	}
	if (s->rep.signing_key > 1) {
		FAIL(s->res, "format", ATTEST_E_FORMAT,
		     "SIGNING_KEY %u, expected 0 (VCEK) or 1 (VLEK)", s->rep.signing_key);
		return 0;
	}
	s->vlek = s->rep.signing_key == 1;
	if (!o->vek || o->vek_len == 0) {
		FAIL(s->res, "format", ATTEST_E_FORMAT, "no %s certificate supplied",
		     s->vlek ? "VLEK" : "VCEK");
		return 0;
	}
	PASS(s->res, "format", ATTEST_E_FORMAT, "%u-byte version %u report signed by the %s",
	     ATTEST_SNP_REPORT_SIZE, s->rep.version, s->vlek ? "VLEK" : "VCEK");

	/* 1: product line. The VEK's productName is read before its signature is checked; a
	 * forged name only picks the ARK to check against, which then fails. */
	enum attest_snp_product cpu = s->rep.cpuid_product, vekp = ATTEST_SNP_PRODUCT_UNKNOWN;
	struct attest_snp_cache *c = o->cache;
	if (c)
		cache_key(o, s->key);
	if (c && c->have_ext && memcmp(c->key, s->key, 32) == 0) {
		s->ext = c->ext;
		s->ext_ok = c->ext_ok;
		memcpy(s->ext_msg, c->ext_msg, sizeof(s->ext_msg));
	} else {
		_cleanup_(X509_freep) X509 *v = cert_from_bytes(o->vek, o->vek_len);
		ERR_clear_error();
		if (v) {
			_cleanup_free_ char *m = NULL;
			s->ext_ok = snp_vek_ext_from_x509(v, &s->ext, &m) == 0;
			if (!s->ext_ok)
				snprintf(s->ext_msg, sizeof(s->ext_msg), "%s", m ? m : "invalid");
		} else {
			snprintf(s->ext_msg, sizeof(s->ext_msg), "certificate cannot be parsed");
		}
		if (c) {
			cache_clear(c);
			memcpy(c->key, s->key, 32);
			c->have_ext = true;
			c->ext = s->ext;
			c->ext_ok = s->ext_ok;
			memcpy(c->ext_msg, s->ext_msg, sizeof(c->ext_msg));
		}
	}
	if (s->ext_ok && s->ext.has_product_name)
		vekp = attest_snp_product_from_name(s->ext.product_name);
	if (s->rep.version >= 3 && cpu == ATTEST_SNP_PRODUCT_UNKNOWN)
		FAIL(s->res, "product", ATTEST_E_PRODUCT,
		     "unknown CPUID family 0x%02x model 0x%02x", s->rep.cpuid_fam_id,
		     s->rep.cpuid_mod_id);
	else if (s->rep.version < 3 && vekp == ATTEST_SNP_PRODUCT_UNKNOWN)
		FAIL(s->res, "product", ATTEST_E_PRODUCT,
		     "version 2 report and no known VEK productName (\"%s\")",
		     s->ext.has_product_name ? s->ext.product_name : "");
	else if (s->rep.version < 3 && vekp == ATTEST_SNP_TURIN)
		FAIL(s->res, "product", ATTEST_E_PRODUCT, "version 2 report with a Turin VEK");
	else if (cpu && vekp && cpu != vekp)
		FAIL(s->res, "product", ATTEST_E_PRODUCT, "CPUID says %s, VEK productName \"%s\"",
		     attest_snp_product_name(cpu), s->ext.product_name);
	else {
		s->product = cpu ? cpu : vekp;
		bool listed = o->n_refs == 0;
		for (size_t i = 0; i < o->n_refs && o->refs; i++)
			listed = listed || o->refs[i].product == s->product;
		if (!listed)
			FAIL(s->res, "product", ATTEST_E_PRODUCT,
			     "%s is not in the reference values",
			     attest_snp_product_name(s->product));
		else
			PASS(s->res, "product", ATTEST_E_PRODUCT, "%s",
			     attest_snp_product_name(s->product));
	}

	/* 2: chain */
	chain_get(s);
	if (s->ark_fail)
		FAIL(s->res, "ark", ATTEST_E_CHAIN, "ARK: %s", s->ark_fail);
	else
		PASS(s->res, "ark", ATTEST_E_CHAIN, "ARK is %s and self-signed (RSA-PSS)",
		     o->trust_anchor_pem ? "the explicit trust anchor" : "a pinned AMD ARK");
	if (s->ask_fail)
		FAIL(s->res, "ask", ATTEST_E_CHAIN, "%s: %s", s->vlek ? "ASVK" : "ASK",
		     s->ask_fail);
	else
		PASS(s->res, "ask", ATTEST_E_CHAIN, "%s signed by the ARK (RSA-PSS)",
		     s->vlek ? "ASVK" : "ASK");
	if (s->vek_fail)
		FAIL(s->res, "vek", ATTEST_E_CHAIN, "%s: %s", s->vlek ? "VLEK" : "VCEK",
		     s->vek_fail);
	else
		PASS(s->res, "vek", ATTEST_E_CHAIN, "%s signed by the %s (RSA-PSS)",
		     s->vlek ? "VLEK" : "VCEK", s->vlek ? "ASVK" : "ASK");
	int k = check_names(s);
	if (k == 0)
		k = check_validity(s);
	/* 3-5 */
	if (k == 0)
		k = check_crl(s);
	if (k == 0)
		k = check_report_signature(s);
	if (k == 0)
		k = check_binding(s);
	/* 6-16 */
	if (k == 0)
		k = policy_checks(s);
	return k;
}

int attest_snp_verify(const uint8_t *report, size_t len, const struct attest_snp_options *o,
		      struct attest_result *ret, struct attest_snp_report *ret_report)
{
	struct attest_result res = {};
	struct state s = {.o = o, .res = &res};
	int k = run(&s, report, len, ret_report);
	state_done(&s);
	ERR_clear_error();
	if (k < 0) {
		attest_result_done(&res);
		return k;
	}
	res.accepted = res.error == ATTEST_OK;
	for (size_t i = 0; i < res.n_checks; i++)
		res.accepted = res.accepted && res.checks[i].status != ATTEST_CHECK_FAIL;
	*ret = res;
	return 0;
}

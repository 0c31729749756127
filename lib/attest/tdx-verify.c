/* TDX quote verification (ATTESTATION.md 4 "TDX verification order"): PCK chain to the pinned
 * Intel SGX Root CA, CRLs, QE report and quote signatures, collateral, TCB status and the
 * per-entry reference values. Every check is recorded; the first failure gives the class. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "attest/tdx-internal.h"
#include "tls/tls.h"

DEFINE_CLEANUP(X509_STORE, X509_STORE_free)
DEFINE_CLEANUP(X509_STORE_CTX, X509_STORE_CTX_free)
DEFINE_CLEANUP(X509_CRL, X509_CRL_free)
DEFINE_CLEANUP(EVP_MD_CTX, EVP_MD_CTX_free)
DEFINE_CLEANUP(ECDSA_SIG, ECDSA_SIG_free)
DEFINE_CLEANUP(EVP_PKEY_CTX, EVP_PKEY_CTX_free)

static void x509_stack_freep(STACK_OF(X509) * *s)
{
	if (*s)
		sk_X509_pop_free(*s, X509_free);
}

/* Intel SGX Root CA, 2018-05-21..2049-12-31; certificate SHA-256 44a0196b...74d3. */
static const char intel_sgx_root_ca_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIICjzCCAjSgAwIBAgIUImUM1lqdNInzg7SVUr9QGzknBqwwCgYIKoZIzj0EAwIw\n"
    "aDEaMBgGA1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENv\n"
    "cnBvcmF0aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJ\n"
    "BgNVBAYTAlVTMB4XDTE4MDUyMTEwNDUxMFoXDTQ5MTIzMTIzNTk1OVowaDEaMBgG\n"
    "A1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENvcnBvcmF0\n"
    "aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJBgNVBAYT\n"
    "AlVTMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEC6nEwMDIYZOj/iPWsCzaEKi7\n"
    "1OiOSLRFhWGjbnBVJfVnkY4u3IjkDYYL0MxO4mqsyYjlBalTVYxFP2sJBK5zlKOB\n"
    "uzCBuDAfBgNVHSMEGDAWgBQiZQzWWp00ifODtJVSv1AbOScGrDBSBgNVHR8ESzBJ\n"
    "MEegRaBDhkFodHRwczovL2NlcnRpZmljYXRlcy50cnVzdGVkc2VydmljZXMuaW50\n"
    "ZWwuY29tL0ludGVsU0dYUm9vdENBLmRlcjAdBgNVHQ4EFgQUImUM1lqdNInzg7SV\n"
    "Ur9QGzknBqwwDgYDVR0PAQH/BAQDAgEGMBIGA1UdEwEB/wQIMAYBAf8CAQEwCgYI\n"
    "KoZIzj0EAwIDSQAwRgIhAOW/5QkR+S9CiSDcNoowLuPRLsWGf/Yi7GSX94BgwTwg\n"
    "AiEA4J0lrHoMs+Xo5o/sX6O9QWxHRAvZUGOdRQ7cvqRXaqI=\n"
    "-----END CERTIFICATE-----\n";

static const uint8_t intel_root_sha256[32] = {
    0x44, 0xa0, 0x19, 0x6b, 0x2b, 0x99, 0xf8, 0x89, 0xb8, 0xe1, 0x49, 0xe9, 0x5b, 0x80, 0x7a, 0x35,
    0x0e, 0x74, 0x24, 0x96, 0x43, 0x99, 0xe8, 0x85, 0xa7, 0xcb, 0xb8, 0xcc, 0xfa, 0xb6, 0x74, 0xd3};

static const uint8_t intel_qe_vendor_id[16] = {0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9,
					       0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07};

#define SGX_EXT_OID "1.2.840.113741.1.13.1"

/* ---- OpenSSL helpers ---- */

static STACK_OF(X509) * pem_chain(const char *pem, size_t max)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	if (!sk || !pem)
		return sk;
	size_t len = strnlen(pem, ATTEST_TDX_QUOTE_MAX_BYTES);
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio) {
		sk_X509_free(sk);
		return NULL;
	}
	X509 *x;
	while (sk_X509_num(sk) < (int)max && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)))
		if (!sk_X509_push(sk, x)) {
			X509_free(x);
			break;
		}
	BIO_free(bio);
	ERR_clear_error();
	return sk;
}

static bool cert_sha256_eq(X509 *x, const uint8_t want[32])
{
	unsigned char *der = NULL;
	int n = i2d_X509(x, &der);
	if (n <= 0)
		return false;
	uint8_t md[32];
	SHA256(der, (size_t)n, md);
	OPENSSL_free(der);
	return memcmp(md, want, 32) == 0;
}

static X509 *load_anchor(const char *pem)
{
	_cleanup_(x509_stack_freep) STACK_OF(X509) *sk =
	    pem_chain(pem ? pem : intel_sgx_root_ca_pem, 1);
	if (!sk || sk_X509_num(sk) != 1)
		return NULL;
	X509 *x = sk_X509_shift(sk);
	if (!pem && !cert_sha256_eq(x, intel_root_sha256)) {
		X509_free(x);
		return NULL;
	}
	return x;
}

static bool is_p256(EVP_PKEY *k)
{
	char name[32];
	size_t n = 0;
	if (!k || EVP_PKEY_get_base_id(k) != EVP_PKEY_EC)
		return false;
	if (!EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof(name), &n))
		return false;
	return strcmp(name, "prime256v1") == 0;
}

static bool cn_is(X509 *x, const char *want)
{
	char cn[128];
	int n = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
	return n > 0 && strcmp(cn, want) == 0;
}

static EVP_PKEY *p256_from_raw(const uint8_t xy[64])
{
	uint8_t pt[65];
	pt[0] = 0x04;
	memcpy(pt + 1, xy, 64);
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"prime256v1", 0),
	    OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt)),
	    OSSL_PARAM_construct_end(),
	};
	_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx =
	    EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *k = NULL;
	if (!ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
		ERR_clear_error();
		return NULL;
	}
	return k;
}

/* ECDSA P-256/SHA-256 over data with a raw r||s signature. */
static bool verify_raw(EVP_PKEY *k, const void *data, size_t len, const uint8_t sig[64])
{
	_cleanup_(ECDSA_SIG_freep) ECDSA_SIG *es = ECDSA_SIG_new();
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = EVP_MD_CTX_new();
	BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
	unsigned char *der = NULL;
	bool ok = false;

	if (!k || !es || !md || !r || !s || !ECDSA_SIG_set0(es, r, s)) {
		BN_free(r);
		BN_free(s);
		goto out;
	}
	int n = i2d_ECDSA_SIG(es, &der);
	if (n <= 0)
		goto out;
	ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k) == 1 &&
	     EVP_DigestVerify(md, der, (size_t)n, data, len) == 1;
out:
	OPENSSL_free(der);
	ERR_clear_error();
	return ok;
}

/* Verify leaf up to the anchor at now: the anchor is the only trusted certificate and its
 * self-signature is checked too. */
static int verify_cert_chain(X509 *leaf, STACK_OF(X509) * untrusted, X509 *anchor, int64_t now,
			     const char **ret_err)
{
	_cleanup_(X509_STORE_freep) X509_STORE *st = X509_STORE_new();
	_cleanup_(X509_STORE_CTX_freep) X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	if (!st || !ctx || !X509_STORE_add_cert(st, anchor) ||
	    !X509_STORE_CTX_init(ctx, st, leaf, untrusted))
		return -ENOMEM;
	X509_VERIFY_PARAM *p = X509_STORE_CTX_get0_param(ctx);
	X509_VERIFY_PARAM_set_time(p, (time_t)now);
	X509_VERIFY_PARAM_set_flags(p, X509_V_FLAG_CHECK_SS_SIGNATURE);
	int ok = X509_verify_cert(ctx);
	if (ok != 1) {
		*ret_err = X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx));
		ERR_clear_error();
		return -EBADMSG;
	}
	return 0;
}

static int64_t asn1_time_sec(const ASN1_TIME *t)
{
	struct tm tm = {0};
	if (!t || !ASN1_TIME_to_tm(t, &tm))
		return INT64_MIN;
	return (int64_t)timegm(&tm);
}

/* ---- PCK extensions ---- */

static bool oid_is(const ASN1_TYPE *t, const char *want)
{
	char buf[64];
	if (!t || t->type != V_ASN1_OBJECT)
		return false;
	if (OBJ_obj2txt(buf, sizeof(buf), t->value.object, 1) <= 0)
		return false;
	return strcmp(buf, want) == 0;
}

static STACK_OF(ASN1_TYPE) * seq_of(const ASN1_TYPE *t)
{
	if (!t || t->type != V_ASN1_SEQUENCE)
		return NULL;
	const unsigned char *p = t->value.sequence->data;
	return d2i_ASN1_SEQUENCE_ANY(NULL, &p, t->value.sequence->length);
}

static void asn1_seq_freep(STACK_OF(ASN1_TYPE) * *s)
{
	if (*s)
		sk_ASN1_TYPE_pop_free(*s, ASN1_TYPE_free);
}

static bool octets(const ASN1_TYPE *t, uint8_t *out, size_t n)
{
	if (!t || t->type != V_ASN1_OCTET_STRING || (size_t)t->value.octet_string->length != n)
		return false;
	memcpy(out, t->value.octet_string->data, n);
	return true;
}

static bool small_int(const ASN1_TYPE *t, long max, long *ret)
{
	if (!t || t->type != V_ASN1_INTEGER)
		return false;
	long v = ASN1_INTEGER_get(t->value.integer);
	if (v < 0 || v > max)
		return false;
	*ret = v;
	return true;
}

static int pck_extensions(X509 *leaf, struct tdx_pck_tcb *ret)
{
	struct tdx_pck_tcb p = {0};
	unsigned seen = 0;
	ASN1_OBJECT *obj = OBJ_txt2obj(SGX_EXT_OID, 1);
	if (!obj)
		return -ENOMEM;
	int idx = X509_get_ext_by_OBJ(leaf, obj, -1);
	ASN1_OBJECT_free(obj);
	if (idx < 0)
		return -ENOENT;
	ASN1_OCTET_STRING *os = X509_EXTENSION_get_data(X509_get_ext(leaf, idx));
	const unsigned char *d = os->data;
	_cleanup_(asn1_seq_freep) STACK_OF(ASN1_TYPE) *top =
	    d2i_ASN1_SEQUENCE_ANY(NULL, &d, os->length);
	if (!top)
		return -EBADMSG;
	for (int i = 0; i < sk_ASN1_TYPE_num(top); i++) {
		_cleanup_(asn1_seq_freep) STACK_OF(ASN1_TYPE) *kv =
		    seq_of(sk_ASN1_TYPE_value(top, i));
		if (!kv || sk_ASN1_TYPE_num(kv) != 2)
			return -EBADMSG;
		const ASN1_TYPE *k = sk_ASN1_TYPE_value(kv, 0), *v = sk_ASN1_TYPE_value(kv, 1);
		if (oid_is(k, SGX_EXT_OID ".2")) {
			_cleanup_(asn1_seq_freep) STACK_OF(ASN1_TYPE) *tcb = seq_of(v);
			if (!tcb)
				return -EBADMSG;
			unsigned comps = 0;
			for (int j = 0; j < sk_ASN1_TYPE_num(tcb); j++) {
				_cleanup_(asn1_seq_freep) STACK_OF(ASN1_TYPE) *c =
				    seq_of(sk_ASN1_TYPE_value(tcb, j));
				char want[64];
				long val;
				if (!c || sk_ASN1_TYPE_num(c) != 2)
					return -EBADMSG;
				const ASN1_TYPE *ck = sk_ASN1_TYPE_value(c, 0),
						*cv = sk_ASN1_TYPE_value(c, 1);
				for (int n = 1; n <= 17; n++) {
					snprintf(want, sizeof(want), SGX_EXT_OID ".2.%d", n);
					if (!oid_is(ck, want))
						continue;
					if (!small_int(cv, n == 17 ? 65535 : 255, &val))
						return -EBADMSG;
					if (n == 17)
						p.pcesvn = (uint16_t)val;
					else
						p.sgx_svn[n - 1] = (uint8_t)val;
					comps |= 1u << n;
				}
				if (oid_is(ck, SGX_EXT_OID ".2.18")) {
					if (!octets(cv, p.cpu_svn, 16))
						return -EBADMSG;
					comps |= 1u << 18;
				}
			}
			if (comps != 0x7fffeu)
				return -EBADMSG;
			seen |= 1;
		} else if (oid_is(k, SGX_EXT_OID ".3")) {
			if (!octets(v, p.pce_id, 2))
				return -EBADMSG;
			seen |= 2;
		} else if (oid_is(k, SGX_EXT_OID ".4")) {
			if (!octets(v, p.fmspc, 6))
				return -EBADMSG;
			seen |= 4;
		}
	}
	if (seen != 7)
		return -EBADMSG;
	*ret = p;
	return 0;
}

/* ---- the verification ---- */

struct ctx {
	struct attest_result *r;
	int err;
};

static void check_add(struct ctx *c, const char *name, enum attest_check_status st,
		      enum attest_error code, const char *fmt, ...) _printf_(5, 6);
static void check_add(struct ctx *c, const char *name, enum attest_check_status st,
		      enum attest_error code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	_cleanup_free_ char *m = str_vprintf(fmt, ap);
	va_end(ap);
	if (!m || attest_result_add(c->r, name, st, code, "%s", m) < 0)
		c->err = -ENOMEM;
}
#define CHECK check_add

static const char *hexs(char *buf, const uint8_t *p, size_t n)
{
	static const char d[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		buf[2 * i] = d[p[i] >> 4];
		buf[2 * i + 1] = d[p[i] & 15];
	}
	buf[2 * n] = 0;
	return buf;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;
	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Collateral document signature + signer chain + dates; returns the parse status. */
static bool check_signed_doc(struct ctx *c, const char *what, const char *body, size_t len,
			     const uint8_t sig[64], const char *chain_pem, X509 *anchor,
			     int64_t now, int64_t issue, int64_t next, bool parsed,
			     const char *parse_msg)
{
	char name[64];
	snprintf(name, sizeof(name), "%s signature", what);
	_cleanup_(x509_stack_freep) STACK_OF(X509) *chain = pem_chain(chain_pem, 4);
	const char *err = NULL;
	bool ok = false;
	if (!body || !chain_pem) {
		CHECK(c, name, ATTEST_CHECK_FAIL, ATTEST_E_COLLATERAL, "%s not supplied",
		      body ? "signing chain" : what);
	} else if (!chain || sk_X509_num(chain) < 1) {
		CHECK(c, name, ATTEST_CHECK_FAIL, ATTEST_E_COLLATERAL,
		      "no certificate in the chain");
	} else {
		X509 *signer = sk_X509_value(chain, 0);
		EVP_PKEY *k = X509_get0_pubkey(signer);
		if (!cn_is(signer, "Intel SGX TCB Signing") || !is_p256(k))
			CHECK(c, name, ATTEST_CHECK_FAIL, ATTEST_E_COLLATERAL,
			      "signer is not an Intel SGX TCB Signing P-256 certificate");
		else if (verify_cert_chain(signer, chain, anchor, now, &err) < 0)
			CHECK(c, name, ATTEST_CHECK_FAIL, ATTEST_E_COLLATERAL,
			      "TCB signing certificate: %s", err ? err : "invalid");
		else if (!verify_raw(k, body, len, sig))
			CHECK(c, name, ATTEST_CHECK_FAIL, ATTEST_E_COLLATERAL,
			      "ECDSA signature over the %zu body bytes is invalid", len);
		else if (!parsed)
			CHECK(c, name, ATTEST_CHECK_FAIL, ATTEST_E_COLLATERAL, "%s",
			      parse_msg ? parse_msg : "cannot parse");
		else {
			CHECK(c, name, ATTEST_CHECK_PASS, ATTEST_E_COLLATERAL,
			      "signed by Intel SGX TCB Signing, chain to the trust anchor");
			ok = true;
		}
	}
	snprintf(name, sizeof(name), "%s validity", what);
	if (!ok)
		CHECK(c, name, ATTEST_CHECK_SKIP, ATTEST_E_COLLATERAL_EXPIRED, "not checked");
	else if (now < issue || now > next)
		CHECK(c, name, ATTEST_CHECK_FAIL, ATTEST_E_COLLATERAL_EXPIRED,
		      "issueDate %lld .. nextUpdate %lld does not cover %lld", (long long)issue,
		      (long long)next, (long long)now);
	else
		CHECK(c, name, ATTEST_CHECK_PASS, ATTEST_E_COLLATERAL_EXPIRED, "current");
	return ok && now >= issue && now <= next;
}

static void check_crl(struct ctx *c, const char *name, const uint8_t *der, size_t len, X509 *issuer,
		      X509 *subject, int64_t now)
{
	if (!der) {
		CHECK(c, name, ATTEST_CHECK_FAIL, ATTEST_E_CRL, "CRL not supplied");
		return;
	}
	const unsigned char *p = der;
	_cleanup_(X509_CRL_freep) X509_CRL *crl = d2i_X509_CRL(NULL, &p, (long)len);
	ERR_clear_error();
	if (!crl) {
		CHECK(c, name, ATTEST_CHECK_FAIL, ATTEST_E_CRL, "CRL does not parse");
		return;
	}
	if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(issuer)) != 0 ||
	    X509_CRL_verify(crl, X509_get0_pubkey(issuer)) != 1) {
		ERR_clear_error();
		CHECK(c, name, ATTEST_CHECK_FAIL, ATTEST_E_CRL, "CRL is not signed by its issuer");
		return;
	}
	int64_t thisu = asn1_time_sec(X509_CRL_get0_lastUpdate(crl));
	int64_t nextu = asn1_time_sec(X509_CRL_get0_nextUpdate(crl));
	if (thisu == INT64_MIN || nextu == INT64_MIN || now < thisu || now > nextu) {
		CHECK(c, name, ATTEST_CHECK_FAIL, ATTEST_E_COLLATERAL_EXPIRED,
		      "CRL thisUpdate %lld .. nextUpdate %lld does not cover %lld",
		      (long long)thisu, (long long)nextu, (long long)now);
		return;
	}
	X509_REVOKED *rev = NULL;
	if (X509_CRL_get0_by_cert(crl, &rev, subject) == 1) {
		CHECK(c, name, ATTEST_CHECK_FAIL, ATTEST_E_REVOKED, "certificate is revoked");
		return;
	}
	CHECK(c, name, ATTEST_CHECK_PASS, ATTEST_E_CRL, "signed, current, not listed");
}

struct state {
	bool chain_ok;
	bool have_pck;
	struct tdx_pck_tcb pck;
	bool tcb_info_ok;
	struct tdx_tcb_info tcb_info;
	bool qe_id_ok;
	struct tdx_qe_identity qe_id;
	bool tcb_ok; /* platform/module levels found */
	struct tdx_tcb_eval tcb;
	char *tcb_msg;
	bool qe_level_ok;
	enum attest_tdx_tcb_status qe_status;
};

static void state_done(struct state *s)
{
	tdx_tcb_info_done(&s->tcb_info);
	tdx_qe_identity_done(&s->qe_id);
	free(s->tcb_msg);
}

static void check_pck_chain(struct ctx *c, struct state *s, STACK_OF(X509) * chain, X509 *anchor,
			    int64_t now)
{
	const char *err = NULL;
	if (!anchor) {
		CHECK(c, "pck chain", ATTEST_CHECK_FAIL, ATTEST_E_CHAIN, "trust anchor unusable");
		return;
	}
	if (!chain || sk_X509_num(chain) != 3) {
		CHECK(c, "pck chain", ATTEST_CHECK_FAIL, ATTEST_E_CHAIN,
		      "want 3 certificates (leaf, intermediate, root)");
		return;
	}
	X509 *leaf = sk_X509_value(chain, 0), *inter = sk_X509_value(chain, 1),
	     *root = sk_X509_value(chain, 2);
	if (X509_cmp(root, anchor) != 0) {
		CHECK(c, "pck chain", ATTEST_CHECK_FAIL, ATTEST_E_CHAIN,
		      "root certificate of the chain is not the trust anchor");
		return;
	}
	if (!cn_is(leaf, "Intel SGX PCK Certificate") ||
	    (!cn_is(inter, "Intel SGX PCK Platform CA") &&
	     !cn_is(inter, "Intel SGX PCK Processor CA"))) {
		CHECK(c, "pck chain", ATTEST_CHECK_FAIL, ATTEST_E_CHAIN,
		      "unexpected leaf or intermediate subject name");
		return;
	}
	for (int i = 0; i < 3; i++)
		if (!is_p256(X509_get0_pubkey(sk_X509_value(chain, i)))) {
			CHECK(c, "pck chain", ATTEST_CHECK_FAIL, ATTEST_E_CHAIN,
			      "certificate %d does not hold a P-256 key", i);
			return;
		}
	int r = verify_cert_chain(leaf, chain, anchor, now, &err);
	if (r < 0) {
		CHECK(c, "pck chain", ATTEST_CHECK_FAIL, ATTEST_E_CHAIN, "%s",
		      r == -ENOMEM ? "out of memory"
		      : err        ? err
				   : "invalid");
		return;
	}
	if (pck_extensions(leaf, &s->pck) < 0) {
		CHECK(c, "pck chain", ATTEST_CHECK_FAIL, ATTEST_E_CHAIN,
		      "PCK leaf lacks valid SGX extensions (FMSPC, PCE-ID, TCB)");
		return;
	}
	s->have_pck = true;
	s->chain_ok = true;
	CHECK(c, "pck chain", ATTEST_CHECK_PASS, ATTEST_E_CHAIN,
	      "PCK leaf -> %s -> trust anchor, valid at %lld",
	      cn_is(inter, "Intel SGX PCK Platform CA") ? "PCK Platform CA" : "PCK Processor CA",
	      (long long)now);
}

static void check_qe_and_quote(struct ctx *c, const struct attest_tdx_quote *q, EVP_PKEY *leafkey,
			       struct tdx_ak_cache *akc)
{
	if (!leafkey)
		CHECK(c, "qe report signature", ATTEST_CHECK_FAIL, ATTEST_E_QE, "no PCK leaf key");
	else if (!verify_raw(leafkey, q->qe_report_raw, sizeof(q->qe_report_raw),
			     q->qe_report_signature))
		CHECK(c, "qe report signature", ATTEST_CHECK_FAIL, ATTEST_E_QE,
		      "QE report signature does not verify with the PCK leaf key");
	else
		CHECK(c, "qe report signature", ATTEST_CHECK_PASS, ATTEST_E_QE,
		      "signed by the PCK leaf key");

	uint8_t h[32];
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(md, q->attestation_key, 64) != 1 ||
	    EVP_DigestUpdate(md, q->qe_auth_data, q->qe_auth_data_len) != 1 ||
	    EVP_DigestFinal_ex(md, h, NULL) != 1) {
		c->err = -ENOMEM;
		return;
	}
	char a[65], b[65];
	if (memcmp(h, q->qe_report.report_data, 32) != 0 ||
	    !all_zero(q->qe_report.report_data + 32, 32))
		CHECK(c, "qe report data", ATTEST_CHECK_FAIL, ATTEST_E_QE,
		      "QE REPORTDATA[0..31] %s != SHA-256(attestation key || auth data) %s, or "
		      "[32..63] not zero",
		      hexs(a, q->qe_report.report_data, 32), hexs(b, h, 32));
	else
		CHECK(c, "qe report data", ATTEST_CHECK_PASS, ATTEST_E_QE,
		      "binds the attestation key");

	_cleanup_(EVP_PKEY_freep) EVP_PKEY *ak = NULL;
	if (akc && akc->pkey && memcmp(akc->raw, q->attestation_key, 64) == 0) {
		if (EVP_PKEY_up_ref(akc->pkey) == 1)
			ak = akc->pkey;
	} else {
		ak = p256_from_raw(q->attestation_key);
		if (akc && ak && EVP_PKEY_up_ref(ak) == 1) {
			EVP_PKEY_free(akc->pkey);
			akc->pkey = ak;
			memcpy(akc->raw, q->attestation_key, 64);
		}
	}
	if (!ak)
		CHECK(c, "quote signature", ATTEST_CHECK_FAIL, ATTEST_E_SIGNATURE,
		      "attestation key is not a P-256 point");
	else if (!verify_raw(ak, q->signed_region, q->signed_len, q->signature))
		CHECK(c, "quote signature", ATTEST_CHECK_FAIL, ATTEST_E_SIGNATURE,
		      "signature over bytes [0,%zu) does not verify", q->signed_len);
	else
		CHECK(c, "quote signature", ATTEST_CHECK_PASS, ATTEST_E_SIGNATURE,
		      "signed by the attestation key over bytes [0,%zu)", q->signed_len);
}

static void check_collateral(struct ctx *c, struct state *s, const struct attest_tdx_quote *q,
			     const struct attest_tdx_options *o, X509 *anchor)
{
	const struct attest_tdx_collateral *col = o->collateral;
	static const struct attest_tdx_collateral none = {0};
	_cleanup_free_ char *tmsg = NULL, *qmsg = NULL;
	if (!col)
		col = &none;

	bool tparsed = col->tcb_info && tdx_tcb_info_parse(col->tcb_info, col->tcb_info_len,
							   &s->tcb_info, &tmsg) == 0;
	s->tcb_info_ok = check_signed_doc(c, "tcb info", col->tcb_info, col->tcb_info_len,
					  col->tcb_info_signature, col->tcb_info_chain_pem, anchor,
					  o->now_sec, s->tcb_info.issue_date_sec,
					  s->tcb_info.next_update_sec, tparsed, tmsg);
	const char *qchain =
	    col->qe_identity_chain_pem ? col->qe_identity_chain_pem : col->tcb_info_chain_pem;
	bool qparsed =
	    col->qe_identity &&
	    tdx_qe_identity_parse(col->qe_identity, col->qe_identity_len, &s->qe_id, &qmsg) == 0;
	s->qe_id_ok =
	    check_signed_doc(c, "qe identity", col->qe_identity, col->qe_identity_len,
			     col->qe_identity_signature, qchain, anchor, o->now_sec,
			     s->qe_id.issue_date_sec, s->qe_id.next_update_sec, qparsed, qmsg);

	/* TCB Info must be for this platform */
	if (!s->tcb_info_ok || !s->have_pck)
		CHECK(c, "tcb info platform", ATTEST_CHECK_SKIP, ATTEST_E_COLLATERAL,
		      "not checked");
	else if (memcmp(s->tcb_info.fmspc, s->pck.fmspc, 6) != 0 ||
		 memcmp(s->tcb_info.pce_id, s->pck.pce_id, 2) != 0) {
		char a[13], b[13];
		CHECK(c, "tcb info platform", ATTEST_CHECK_FAIL, ATTEST_E_COLLATERAL,
		      "TCB Info fmspc %s / pceId != PCK FMSPC %s / PCE-ID",
		      hexs(a, s->tcb_info.fmspc, 6), hexs(b, s->pck.fmspc, 6));
		s->tcb_info_ok = false;
	} else
		CHECK(c, "tcb info platform", ATTEST_CHECK_PASS, ATTEST_E_COLLATERAL,
		      "fmspc and pceId match the PCK certificate");

	if (s->tcb_info_ok) {
		int r = tdx_tcb_evaluate(&s->tcb_info, &s->pck, q->tee_tcb_svn,
					 q->body_type == 3 ? q->tee_tcb_svn2 : NULL, &s->tcb,
					 &s->tcb_msg);
		s->tcb_ok = r == 0;
	}

	/* 7: QE identity */
	const struct attest_tdx_qe_report *qr = &q->qe_report;
	if (!s->qe_id_ok) {
		CHECK(c, "qe identity match", ATTEST_CHECK_SKIP, ATTEST_E_QE,
		      "no valid QE Identity");
		return;
	}
	bool attr_ok = true;
	for (size_t i = 0; i < 16; i++)
		attr_ok &= (qr->attributes[i] & s->qe_id.attributes_mask[i]) ==
			   (s->qe_id.attributes[i] & s->qe_id.attributes_mask[i]);
	if (memcmp(qr->mr_signer, s->qe_id.mrsigner, 32) != 0)
		CHECK(c, "qe identity match", ATTEST_CHECK_FAIL, ATTEST_E_QE,
		      "QE MRSIGNER differs");
	else if (qr->isv_prod_id != s->qe_id.isvprodid)
		CHECK(c, "qe identity match", ATTEST_CHECK_FAIL, ATTEST_E_QE,
		      "QE ISVPRODID %u != %u", qr->isv_prod_id, s->qe_id.isvprodid);
	else if ((qr->misc_select & s->qe_id.miscselect_mask) !=
		 (s->qe_id.miscselect & s->qe_id.miscselect_mask))
		CHECK(c, "qe identity match", ATTEST_CHECK_FAIL, ATTEST_E_QE,
		      "QE MISCSELECT differs under the mask");
	else if (!attr_ok)
		CHECK(c, "qe identity match", ATTEST_CHECK_FAIL, ATTEST_E_QE,
		      "QE ATTRIBUTES differ under the mask");
	else {
		for (size_t i = 0; i < s->qe_id.n_levels; i++)
			if (s->qe_id.levels[i].isvsvn <= qr->isv_svn) {
				s->qe_level_ok = true;
				s->qe_status = s->qe_id.levels[i].status;
				break;
			}
		if (!s->qe_level_ok)
			CHECK(c, "qe identity match", ATTEST_CHECK_FAIL, ATTEST_E_QE,
			      "no QE Identity TCB level for ISVSVN %u", qr->isv_svn);
		else
			CHECK(c, "qe identity match", ATTEST_CHECK_PASS, ATTEST_E_QE,
			      "MRSIGNER, ISVPRODID, MISCSELECT, ATTRIBUTES match; QE TCB %s",
			      attest_tdx_tcb_status_name(s->qe_status));
	}
}

/* Per-entry checks 11-15 into r; returns how many passed before the first failure. */
static int check_entry(struct ctx *c, const struct attest_tdx_quote *q,
		       const struct attest_tdx_options *o, const struct state *s,
		       const struct attest_tdx_reference *ref)
{
	char a[129], b[129];

	/* 11 */
	unsigned allowed =
	    ref ? ref->allowed_statuses
		: (o->accepted_statuses ? o->accepted_statuses
					: ATTEST_TDX_TCB_BIT(ATTEST_TDX_TCB_UP_TO_DATE));
	allowed &= ~ATTEST_TDX_TCB_BIT(ATTEST_TDX_TCB_REVOKED);
	if (o->skip_collateral)
		CHECK(c, "tcb status", ATTEST_CHECK_SKIP, ATTEST_E_TCB, "collateral skipped");
	else if (!s->tcb_info_ok)
		CHECK(c, "tcb status", ATTEST_CHECK_FAIL, ATTEST_E_TCB, "no valid TCB Info");
	else if (!s->tcb_ok)
		CHECK(c, "tcb status", ATTEST_CHECK_FAIL, ATTEST_E_TCB, "%s",
		      s->tcb_msg ? s->tcb_msg : "no TCB level");
	else {
		enum attest_tdx_tcb_status st = s->tcb.status;
		if (s->qe_level_ok)
			st = tdx_tcb_status_worst(st, s->qe_status);
		int64_t min = ref ? ref->min_tcb_eval_data_number : 0;
		if (!(allowed & ATTEST_TDX_TCB_BIT(st)))
			CHECK(c, "tcb status", ATTEST_CHECK_FAIL, ATTEST_E_TCB,
			      "TCB status %s is not accepted", attest_tdx_tcb_status_name(st));
		else if (s->tcb_info.tcb_eval_data_number < min ||
			 (s->qe_id_ok && s->qe_id.tcb_eval_data_number < min))
			CHECK(c, "tcb status", ATTEST_CHECK_FAIL, ATTEST_E_TCB,
			      "tcbEvaluationDataNumber %lld/%lld below the minimum %lld",
			      (long long)s->tcb_info.tcb_eval_data_number,
			      (long long)s->qe_id.tcb_eval_data_number, (long long)min);
		else
			CHECK(c, "tcb status", ATTEST_CHECK_PASS, ATTEST_E_TCB, "TCB status %s",
			      attest_tdx_tcb_status_name(st));
	}

	/* 12 */
	if (!ref)
		CHECK(c, "td attributes", ATTEST_CHECK_SKIP, ATTEST_E_POLICY, "no reference entry");
	else if (memcmp(q->td_attributes, ref->td_attributes, 8) != 0)
		CHECK(c, "td attributes", ATTEST_CHECK_FAIL, ATTEST_E_POLICY,
		      "TDATTRIBUTES %s != %s", hexs(a, q->td_attributes, 8),
		      hexs(b, ref->td_attributes, 8));
	else
		CHECK(c, "td attributes", ATTEST_CHECK_PASS, ATTEST_E_POLICY, "TDATTRIBUTES %s",
		      hexs(a, q->td_attributes, 8));

	/* 13 */
	if (!ref) {
		CHECK(c, "measurements", ATTEST_CHECK_SKIP, ATTEST_E_MEASUREMENT,
		      "no reference entry");
	} else {
		const char *bad = NULL;
		const uint8_t *got = NULL, *want = NULL;
		size_t n = 48;
		static const uint8_t zero[48];
		if (memcmp(q->xfam, ref->xfam, 8) != 0)
			bad = "XFAM", got = q->xfam, want = ref->xfam, n = 8;
		else if (memcmp(q->mr_td, ref->mr_td, 48) != 0)
			bad = "MRTD", got = q->mr_td, want = ref->mr_td;
		else if (ref->has_mr_seam && memcmp(q->mr_seam, ref->mr_seam, 48) != 0)
			bad = "MRSEAM", got = q->mr_seam, want = ref->mr_seam;
		else if (!all_zero(q->mr_owner, 48))
			bad = "MROWNER", got = q->mr_owner, want = zero;
		else if (!all_zero(q->mr_owner_config, 48))
			bad = "MROWNERCONFIG", got = q->mr_owner_config, want = zero;
		else if (!all_zero(q->mr_servicetd, 48))
			bad = "MRSERVICETD", got = q->mr_servicetd, want = zero;
		for (size_t i = 0; !bad && i < 4; i++)
			if (memcmp(q->rtmr[i], ref->rtmrs[i], 48) != 0) {
				static const char *const names[] = {"RTMR0", "RTMR1", "RTMR2",
								    "RTMR3"};
				bad = names[i], got = q->rtmr[i], want = ref->rtmrs[i];
			}
		if (bad)
			CHECK(c, "measurements", ATTEST_CHECK_FAIL, ATTEST_E_MEASUREMENT,
			      "%s %s != %s", bad, hexs(a, got, n), hexs(b, want, n));
		else
			CHECK(
			    c, "measurements", ATTEST_CHECK_PASS, ATTEST_E_MEASUREMENT,
			    "XFAM, MRTD, RTMR0-3%s equal; MROWNER, MROWNERCONFIG, MRSERVICETD zero",
			    ref->has_mr_seam ? ", MRSEAM" : "");
	}

	/* 14 */
	if (o->digest_rule.n == 0)
		CHECK(c, "mrconfigid", ATTEST_CHECK_SKIP, ATTEST_E_POLICY_DIGEST, "no digest rule");
	else {
		bool found = false;
		for (size_t i = 0; i < o->digest_rule.n && !found; i++)
			found = memcmp(o->digest_rule.digests[i], q->mr_config_id, 32) == 0;
		if (!found || !all_zero(q->mr_config_id + 32, 16))
			CHECK(c, "mrconfigid", ATTEST_CHECK_FAIL, ATTEST_E_POLICY_DIGEST,
			      "MRCONFIGID %s is not an allowed policy digest + 16 zero bytes",
			      hexs(a, q->mr_config_id, 48));
		else
			CHECK(c, "mrconfigid", ATTEST_CHECK_PASS, ATTEST_E_POLICY_DIGEST,
			      "policy digest %s", hexs(a, q->mr_config_id, 32));
	}

	/* 15 */
	if (!o->report_data)
		CHECK(c, "report data", ATTEST_CHECK_SKIP, ATTEST_E_REPORT_DATA, "not checked");
	else if (CRYPTO_memcmp(o->report_data, q->report_data, 64) != 0)
		CHECK(c, "report data", ATTEST_CHECK_FAIL, ATTEST_E_REPORT_DATA,
		      "REPORTDATA %s != expected %s", hexs(a, q->report_data, 64),
		      hexs(b, o->report_data, 64));
	else
		CHECK(c, "report data", ATTEST_CHECK_PASS, ATTEST_E_REPORT_DATA, "as expected");
	/* an entry's score: checks passed before its first failure, 1000 when all pass */
	for (size_t i = 0; i < c->r->n_checks; i++)
		if (c->r->checks[i].status == ATTEST_CHECK_FAIL)
			return (int)i;
	return 1000;
}

static void entry_checks(struct ctx *c, const struct attest_tdx_quote *q,
			 const struct attest_tdx_options *o, const struct state *s)
{
	if (o->n_refs == 0) {
		check_entry(c, q, o, s, NULL);
		return;
	}
	struct attest_result best = {0};
	int best_score = -1;
	for (size_t i = 0; i < o->n_refs; i++) {
		struct attest_result tmp = {0};
		struct ctx tc = {.r = &tmp};
		int score = check_entry(&tc, q, o, s, &o->refs[i]);
		if (tc.err < 0)
			c->err = tc.err;
		if (score > best_score) {
			attest_result_done(&best);
			best = tmp;
			best_score = score;
		} else
			attest_result_done(&tmp);
		if (score == 1000)
			break;
	}
	for (size_t i = 0; i < best.n_checks; i++)
		CHECK(c, best.checks[i].name, best.checks[i].status, best.checks[i].code, "%s",
		      best.checks[i].message);
	attest_result_done(&best);
}

int attest_tdx_verify(const struct attest_tdx_quote *q, const struct attest_tdx_options *o,
		      struct attest_result *ret)
{
	struct attest_result res = {0};
	struct ctx c = {.r = &res};
	struct state s = {0};
	_cleanup_(X509_freep) X509 *anchor = load_anchor(o->trust_anchor_pem);
	_cleanup_(x509_stack_freep) STACK_OF(X509) *chain =
	    pem_chain(o->pck_chain_pem ? o->pck_chain_pem : q->pck_chain_pem, 4);

	CHECK(&c, "format", ATTEST_CHECK_PASS, ATTEST_E_FORMAT,
	      "quote v%u, body type %u (%u bytes), %zu unsigned trailing bytes", q->version,
	      q->body_type, q->body_size, q->trailing_len);

	/* 1 */
	check_pck_chain(&c, &s, chain, anchor, o->now_sec);
	X509 *leaf = s.chain_ok ? sk_X509_value(chain, 0) : NULL;
	X509 *inter = s.chain_ok ? sk_X509_value(chain, 1) : NULL;

	/* 2 */
	const struct attest_tdx_collateral *col = o->collateral;
	if (o->skip_crl) {
		CHECK(&c, "root ca crl", ATTEST_CHECK_SKIP, ATTEST_E_CRL, "crl = skip");
		CHECK(&c, "pck crl", ATTEST_CHECK_SKIP, ATTEST_E_CRL, "crl = skip");
	} else if (!s.chain_ok) {
		CHECK(&c, "root ca crl", ATTEST_CHECK_SKIP, ATTEST_E_CRL, "no valid chain");
		CHECK(&c, "pck crl", ATTEST_CHECK_SKIP, ATTEST_E_CRL, "no valid chain");
	} else {
		check_crl(&c, "root ca crl", col ? col->root_crl_der : NULL,
			  col ? col->root_crl_der_len : 0, anchor, inter, o->now_sec);
		check_crl(&c, "pck crl", col ? col->pck_crl_der : NULL,
			  col ? col->pck_crl_der_len : 0, inter, leaf, o->now_sec);
	}

	/* 3-5: the leaf key is used even if the chain failed, so each check reports on its own */
	X509 *raw_leaf = chain && sk_X509_num(chain) >= 1 ? sk_X509_value(chain, 0) : NULL;
	EVP_PKEY *lk = raw_leaf ? X509_get0_pubkey(raw_leaf) : NULL;
	check_qe_and_quote(&c, q, is_p256(lk) ? lk : NULL, NULL);

	/* 6-7 */
	if (o->skip_collateral) {
		static const char *const skipped[] = {
		    "tcb info signature",   "tcb info validity", "qe identity signature",
		    "qe identity validity", "tcb info platform", "qe identity match"};
		for (size_t i = 0; i < ELEMENTSOF(skipped); i++)
			CHECK(&c, skipped[i], ATTEST_CHECK_SKIP, ATTEST_E_COLLATERAL,
			      "collateral = skip");
	} else
		check_collateral(&c, &s, q, o, anchor);

	/* 8 */
	if (memcmp(q->qe_vendor_id, intel_qe_vendor_id, 16) != 0)
		CHECK(&c, "qe vendor", ATTEST_CHECK_FAIL, ATTEST_E_POLICY,
		      "QE vendor is not Intel");
	else
		CHECK(&c, "qe vendor", ATTEST_CHECK_PASS, ATTEST_E_POLICY, "Intel");
	if (o->skip_collateral || !s.tcb_ok)
		CHECK(&c, "seam module", ATTEST_CHECK_SKIP, ATTEST_E_POLICY,
		      "no TCB Info module entry");
	else {
		bool ok = memcmp(q->mr_signer_seam, s.tcb.module_mrsigner, 48) == 0;
		for (size_t i = 0; ok && i < 8; i++)
			ok = (q->seam_attributes[i] & s.tcb.module_attributes_mask[i]) ==
			     s.tcb.module_attributes[i];
		CHECK(&c, "seam module", ok ? ATTEST_CHECK_PASS : ATTEST_CHECK_FAIL,
		      ATTEST_E_POLICY, "MRSIGNERSEAM and SEAMATTRIBUTES %s the TDX module entry",
		      ok ? "match" : "do not match");
	}

	/* 9-10 */
	uint64_t attrs = le64(q->td_attributes);
	CHECK(&c, "debug", (attrs & 1) ? ATTEST_CHECK_FAIL : ATTEST_CHECK_PASS, ATTEST_E_DEBUG,
	      "TDATTRIBUTES.DEBUG %s", (attrs & 1) ? "set" : "clear");
	CHECK(&c, "migration", (attrs & (1ull << 29)) ? ATTEST_CHECK_FAIL : ATTEST_CHECK_PASS,
	      ATTEST_E_MIGRATION, "TDATTRIBUTES.MIGRATABLE %s",
	      (attrs & (1ull << 29)) ? "set" : "clear");

	/* 11-15 */
	entry_checks(&c, q, o, &s);

	state_done(&s);
	if (c.err < 0) {
		attest_result_done(&res);
		return c.err;
	}
	res.accepted = res.error == ATTEST_OK;
	*ret = res;
	return 0;
}

void tdx_ak_cache_done(struct tdx_ak_cache *c)
{
	EVP_PKEY_free(c->pkey);
	c->pkey = NULL;
}

int tdx_bench_verify_raw(void *leaf_evp_pkey, struct tdx_ak_cache *ak,
			 const struct attest_tdx_quote *q)
{
	struct attest_result res = {0};
	struct ctx c = {.r = &res};
	check_qe_and_quote(&c, q, leaf_evp_pkey, ak);
	int r = c.err < 0 ? c.err : res.error == ATTEST_OK ? 0 : -EBADMSG;
	attest_result_done(&res);
	return r;
}

int tdx_pck_tcb_from_pem(const char *pem, struct tdx_pck_tcb *ret)
{
	_cleanup_(x509_stack_freep) STACK_OF(X509) *chain = pem_chain(pem, 1);
	if (!chain || sk_X509_num(chain) < 1)
		return -EBADMSG;
	return pck_extensions(sk_X509_value(chain, 0), ret);
}

/* lib/atls: the attester certificate (self-signed, evidence in one extension) and its
 * verification: extension, self-signature, validity, binding, then the evidence through lib/attest
 * with the trust anchors its OID allows, then the caller's acceptance. */
#include <stdio.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <pthread.h>

#include "atls/atls-internal.h"

#define VALIDITY_SEC (2 * 3600)
#define SERIAL_BYTES 16
#define OID_ARC "1.3.9901.2."

int atls_cert_create(EVP_PKEY *key, enum atls_evidence_kind kind, const uint8_t *evidence,
		     size_t evidence_len, int64_t now_sec, X509 **ret)
{
	const char *oid = atls_evidence_oid(kind);
	if (!key || !oid || !evidence)
		return -EINVAL;
	if (evidence_len > ATLS_EVIDENCE_MAX_BYTES)
		return -EMSGSIZE;
	_cleanup_(X509_freep) X509 *x = X509_new();
	_cleanup_(X509_NAME_freep) X509_NAME *name = X509_NAME_new();
	_cleanup_(ASN1_OBJECT_freep) ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
	_cleanup_(ASN1_OCTET_STRING_freep) ASN1_OCTET_STRING *oct = ASN1_OCTET_STRING_new();
	if (!x || !name || !obj || !oct)
		return -ENOMEM;

	uint8_t serial[SERIAL_BYTES];
	if (RAND_bytes(serial, sizeof(serial)) != 1)
		return -EIO;
	/* Top bit clear keeps it positive, the next one set keeps all 16 bytes in the encoding. */
	serial[0] = (serial[0] & 0x7f) | 0x40;
	_cleanup_(BN_freep) BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
	_cleanup_(ASN1_INTEGER_freep) ASN1_INTEGER *sn = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
	if (!sn)
		return -ENOMEM;

	if (X509_set_version(x, X509_VERSION_3) != 1 || X509_set_serialNumber(x, sn) != 1 ||
	    X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_ASC,
				       (const unsigned char *)"atls", -1, -1, 0) != 1 ||
	    X509_set_subject_name(x, name) != 1 || X509_set_issuer_name(x, name) != 1 ||
	    !ASN1_TIME_set(X509_getm_notBefore(x), (time_t)(now_sec - VALIDITY_SEC)) ||
	    !ASN1_TIME_set(X509_getm_notAfter(x), (time_t)(now_sec + VALIDITY_SEC)) ||
	    X509_set_pubkey(x, key) != 1 ||
	    ASN1_OCTET_STRING_set(oct, evidence, (int)evidence_len) != 1)
		return -ENOMEM;
	_cleanup_(X509_EXTENSION_freep) X509_EXTENSION *ext =
	    X509_EXTENSION_create_by_OBJ(NULL, obj, 0, oct);
	if (!ext || X509_add_ext(x, ext, -1) != 1)
		return -ENOMEM;
	int base = EVP_PKEY_get_base_id(key);
	const EVP_MD *md = base == EVP_PKEY_ED25519 || base == EVP_PKEY_ED448 ? NULL : EVP_sha256();
	if (X509_sign(x, key, md) <= 0) {
		ERR_clear_error();
		return -EIO;
	}
	*ret = TAKE_PTR(x);
	return 0;
}

static enum atls_evidence_kind kind_of_oid(const char *oid)
{
	for (enum atls_evidence_kind k = ATLS_EVIDENCE_SNP; k <= ATLS_EVIDENCE_SNP_SIM; k++)
		if (str_eq(oid, atls_evidence_oid(k)))
			return k;
	return ATLS_EVIDENCE_NONE;
}

int atls_cert_get_evidence(X509 *x, enum atls_evidence_kind *ret_kind, const uint8_t **ret,
			   size_t *ret_len)
{
	enum atls_evidence_kind found = ATLS_EVIDENCE_NONE;
	const ASN1_OCTET_STRING *value = NULL;
	int n = x ? X509_get_ext_count(x) : 0;
	for (int i = 0; i < n; i++) {
		X509_EXTENSION *ext = X509_get_ext(x, i);
		char oid[80];
		if (!ext || OBJ_obj2txt(oid, sizeof(oid), X509_EXTENSION_get_object(ext), 1) <= 0)
			return -EBADMSG;
		if (!str_startswith(oid, OID_ARC))
			continue;
		enum atls_evidence_kind k = kind_of_oid(oid);
		if (k == ATLS_EVIDENCE_NONE || found != ATLS_EVIDENCE_NONE)
			return -EBADMSG;
		found = k;
		value = X509_EXTENSION_get_data(ext);
	}
	if (found == ATLS_EVIDENCE_NONE || !value)
		return -ENOENT;
	*ret_kind = found;
	*ret = ASN1_STRING_get0_data(value);
	*ret_len = (size_t)ASN1_STRING_length(value);
	return 0;
}

/* ---- verification ---- */

void atls_verified_done(struct atls_verified *v)
{
	if (!v)
		return;
	attest_tdx_quote_free(v->tdx);
	*v = (struct atls_verified){};
}

struct verify_state {
	enum attest_error code;
	char *msg;
};

static int refuse(struct verify_state *st, enum attest_error code, const char *fmt, ...)
    _printf_(3, 4);
static int refuse(struct verify_state *st, enum attest_error code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	free(st->msg);
	st->msg = str_vprintf(fmt, ap);
	va_end(ap);
	st->code = code;
	return -EACCES;
}

/* The result's first failing check as "name: message". */
static int refuse_result(struct verify_state *st, const struct attest_result *res, const char *what)
{
	for (size_t i = 0; i < res->n_checks; i++) {
		const struct attest_check *c = &res->checks[i];
		if (c->status == ATTEST_CHECK_FAIL && c->code == res->error)
			return refuse(st, res->error, "%s evidence: %s: %s", what, c->name,
				      c->message);
	}
	return refuse(st, res->error == ATTEST_OK ? ATTEST_E_FORMAT : res->error,
		      "%s evidence refused", what);
}

/* DER certificates to one PEM bundle (ASK first, as KDS serves it). */
static int der_to_pem_chain(const uint8_t *ask, size_t ask_len, const uint8_t *ark, size_t ark_len,
			    char **ret, size_t *ret_len)
{
	_cleanup_(BIO_freep) BIO *b = BIO_new(BIO_s_mem());
	if (!b)
		return -ENOMEM;
	const uint8_t *ders[2] = {ask, ark};
	size_t lens[2] = {ask_len, ark_len};
	for (size_t i = 0; i < 2; i++) {
		if (!ders[i])
			continue;
		const unsigned char *p = ders[i];
		_cleanup_(X509_freep) X509 *x = d2i_X509(NULL, &p, (long)lens[i]);
		if (!x || p != ders[i] + lens[i]) {
			ERR_clear_error();
			return -EBADMSG;
		}
		if (PEM_write_bio_X509(b, x) != 1)
			return -ENOMEM;
	}
	char *data = NULL;
	long n = BIO_get_mem_data(b, &data);
	char *out = malloc((size_t)n + 1);
	if (!out)
		return -ENOMEM;
	if (n > 0)
		memcpy(out, data, (size_t)n);
	out[n] = 0;
	*ret = out;
	*ret_len = (size_t)n;
	return 0;
}

/* The calling thread's SNP chain cache, freed when the thread exits; NULL when it cannot be
 * made (verification then runs uncached). */
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static bool cache_key_ok;

static void cache_destroy(void *p)
{
	attest_snp_cache_free(p);
}

static void cache_key_init(void)
{
	cache_key_ok = pthread_key_create(&cache_key, cache_destroy) == 0;
}

static struct attest_snp_cache *thread_cache(void)
{
	pthread_once(&cache_once, cache_key_init);
	if (!cache_key_ok)
		return NULL;
	struct attest_snp_cache *c = pthread_getspecific(cache_key);
	if (!c && (c = attest_snp_cache_new()) && pthread_setspecific(cache_key, c) != 0) {
		attest_snp_cache_free(c);
		c = NULL;
	}
	return c;
}

static int verify_snp(const struct atls_verifier *v, enum atls_evidence_kind kind,
		      const struct atls_evidence *e, const uint8_t report_data[64], int64_t now,
		      struct atls_verified *out, struct verify_state *st)
{
	const char *what = kind == ATLS_EVIDENCE_SNP_SIM ? "simulated SNP" : "SNP";
	size_t report_len = 0, vek_len = 0, ask_len = 0, ark_len = 0, crl_len = 0;
	const uint8_t *report = atls_evidence_get(e, ATLS_ENTRY_SNP_REPORT, &report_len);
	const uint8_t *vek = atls_evidence_get(e, ATLS_ENTRY_VEK, &vek_len);
	const uint8_t *ask = atls_evidence_get(e, ATLS_ENTRY_ASK, &ask_len);
	const uint8_t *ark = atls_evidence_get(e, ATLS_ENTRY_ARK, &ark_len);
	const uint8_t *crl = atls_evidence_get(e, ATLS_ENTRY_AMD_CRL, &crl_len);
	if (!report)
		return refuse(st, ATTEST_E_FORMAT, "%s evidence without a report", what);
	if (atls_evidence_get(e, ATLS_ENTRY_TDX_QUOTE, NULL))
		return refuse(st, ATTEST_E_FORMAT, "%s evidence carries a TDX quote", what);

	_cleanup_free_ char *chain = NULL;
	size_t chain_len = 0;
	if (ask || ark) {
		int r = der_to_pem_chain(ask, ask_len, ark, ark_len, &chain, &chain_len);
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			return refuse(st, ATTEST_E_CHAIN, "%s evidence: ASK or ARK is not DER",
				      what);
	}
	if (!crl && !v->skip_crl && v->get_snp_crl) {
		struct attest_snp_report rep;
		if (attest_snp_report_parse(report, report_len, &rep, NULL) == 0) {
			enum attest_snp_product p = rep.cpuid_product;
			struct attest_snp_vek_ext ext;
			if (p == ATTEST_SNP_PRODUCT_UNKNOWN && vek &&
			    attest_snp_vek_ext_parse_der(vek, vek_len, &ext, NULL) == 0 &&
			    ext.has_product_name)
				p = attest_snp_product_from_name(ext.product_name);
			if (p != ATTEST_SNP_PRODUCT_UNKNOWN &&
			    v->get_snp_crl(v->userdata, p, rep.signing_key == 1, &crl, &crl_len) <
				0)
				crl = NULL, crl_len = 0;
		}
	}
	struct attest_snp_options o = {
	    .now_sec = now,
	    .vek = vek,
	    .vek_len = vek_len,
	    .chain = (const uint8_t *)chain,
	    .chain_len = chain_len,
	    /* The test anchor only for the simulated OID, the built-in pins only for the real. */
	    .trust_anchor_pem = kind == ATLS_EVIDENCE_SNP_SIM ? v->test_anchor_pem : NULL,
	    .crl = crl,
	    .crl_len = crl_len,
	    .skip_crl = v->skip_crl,
	    .refs = v->snp_refs,
	    .n_refs = v->snp_refs ? v->n_snp_refs : 0,
	    .report_data = report_data,
	    .host_data = v->digest_rule,
	    .cache = v->snp_cache              ? v->snp_cache
		     : v->snp_cache_per_thread ? thread_cache()
					       : NULL,
	};
	struct attest_result res = {};
	int r = attest_snp_verify(report, report_len, &o, &res, &out->snp);
	if (r < 0)
		return r;
	if (!res.accepted) {
		r = refuse_result(st, &res, what);
		attest_result_done(&res);
		return r;
	}
	attest_result_done(&res);
	out->peer.snp = &out->snp;
	memcpy(out->peer.policy_digest, out->snp.host_data, 32);
	memcpy(out->peer.measurement, out->snp.measurement, 48);
	return 0;
}

static char *dup_text(const uint8_t *p, size_t n)
{
	if (!p)
		return NULL;
	char *s = malloc(n + 1);
	if (s) {
		memcpy(s, p, n);
		s[n] = 0;
	}
	return s;
}

static int collateral_doc(const struct atls_evidence *e, uint16_t type, const char *key, char **ret,
			  size_t *ret_len, uint8_t sig[64])
{
	size_t n = 0, off = 0, len = 0;
	const uint8_t *body = atls_evidence_get(e, type, &n);
	if (!body)
		return 0;
	if (attest_tdx_collateral_split((const char *)body, n, key, &off, &len, sig) < 0)
		return -EBADMSG;
	*ret = dup_text(body + off, len);
	if (!*ret)
		return -ENOMEM;
	*ret_len = len;
	return 0;
}

struct tdx_texts {
	char *tcb, *tcb_chain, *qe, *qe_chain;
};

static void tdx_texts_done(struct tdx_texts *t)
{
	free(t->tcb);
	free(t->tcb_chain);
	free(t->qe);
	free(t->qe_chain);
}

static int verify_tdx(const struct atls_verifier *v, const struct atls_evidence *e,
		      const uint8_t report_data[64], int64_t now, struct atls_verified *out,
		      struct verify_state *st)
{
	size_t qlen = 0;
	const uint8_t *q = atls_evidence_get(e, ATLS_ENTRY_TDX_QUOTE, &qlen);
	if (!q)
		return refuse(st, ATTEST_E_FORMAT, "TDX evidence without a quote");
	if (atls_evidence_get(e, ATLS_ENTRY_SNP_REPORT, NULL))
		return refuse(st, ATTEST_E_FORMAT, "TDX evidence carries an SNP report");
	_cleanup_free_ char *msg = NULL;
	int r = attest_tdx_quote_parse(q, qlen, &out->tdx, &msg);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return refuse(st, ATTEST_E_FORMAT, "TDX quote: %s", msg ? msg : "malformed");

	/* Collateral: the evidence's entries, else the verifier's. */
	struct attest_tdx_collateral col =
	    v->tdx_collateral ? *v->tdx_collateral : (struct attest_tdx_collateral){};
	_cleanup_(tdx_texts_done) struct tdx_texts t = {};
	size_t n = 0;
	r = collateral_doc(e, ATLS_ENTRY_TCB_INFO, "tcbInfo", &t.tcb, &col.tcb_info_len,
			   col.tcb_info_signature);
	if (r == 0 && t.tcb)
		col.tcb_info = t.tcb;
	if (r == 0)
		r = collateral_doc(e, ATLS_ENTRY_QE_IDENTITY, "enclaveIdentity", &t.qe,
				   &col.qe_identity_len, col.qe_identity_signature);
	if (r == 0 && t.qe)
		col.qe_identity = t.qe;
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return refuse(st, ATTEST_E_COLLATERAL, "TDX evidence: malformed collateral body");
	const uint8_t *p = atls_evidence_get(e, ATLS_ENTRY_TCB_INFO_CHAIN, &n);
	if (p) {
		if (!(t.tcb_chain = dup_text(p, n)))
			return -ENOMEM;
		col.tcb_info_chain_pem = t.tcb_chain;
	}
	p = atls_evidence_get(e, ATLS_ENTRY_QE_IDENTITY_CHAIN, &n);
	if (p) {
		if (!(t.qe_chain = dup_text(p, n)))
			return -ENOMEM;
		col.qe_identity_chain_pem = t.qe_chain;
	}
	p = atls_evidence_get(e, ATLS_ENTRY_PCK_CRL, &n);
	if (p) {
		col.pck_crl_der = p;
		col.pck_crl_der_len = n;
	}
	p = atls_evidence_get(e, ATLS_ENTRY_ROOT_CA_CRL, &n);
	if (p) {
		col.root_crl_der = p;
		col.root_crl_der_len = n;
	}
	struct attest_tdx_options o = {
	    .now_sec = now,
	    .collateral = &col,
	    .skip_crl = v->tdx_skip_crl,
	    .skip_collateral = v->tdx_skip_collateral,
	    .refs = v->tdx_refs,
	    .n_refs = v->tdx_refs ? v->n_tdx_refs : 0,
	    .accepted_statuses = v->tdx_accepted_statuses,
	    .digest_rule = v->digest_rule,
	    .report_data = report_data,
	};
	struct attest_result res = {};
	r = attest_tdx_verify(out->tdx, &o, &res);
	if (r < 0)
		return r;
	if (!res.accepted) {
		r = refuse_result(st, &res, "TDX");
		attest_result_done(&res);
		return r;
	}
	attest_result_done(&res);
	static const uint8_t zero[16];
	if (memcmp(out->tdx->mr_config_id + 32, zero, 16) != 0)
		return refuse(st, ATTEST_E_POLICY_DIGEST,
			      "TDX MRCONFIGID bytes 32..47 are not zero: not a policy digest");
	out->peer.tdx = out->tdx;
	memcpy(out->peer.policy_digest, out->tdx->mr_config_id, 32);
	memcpy(out->peer.measurement, out->tdx->mr_td, 48);
	return 0;
}

/* The evidence checks shared by certificates and bare evidence (the HTTP attestation). */
static int evidence_verify(enum atls_evidence_kind kind, const uint8_t *value, size_t len,
			   const uint8_t report_data[ATLS_REPORT_DATA_SIZE],
			   const struct atls_verifier *v, int64_t now, SSL *ssl,
			   struct atls_verified *out, struct verify_state *st)
{
	int r;
	struct atls_evidence e;
	_cleanup_free_ char *msg = NULL;
	r = atls_evidence_decode(value, len, &e, &msg);
	if (r < 0)
		return refuse(st, ATTEST_E_FORMAT, "%s", msg ? msg : "malformed evidence");

	*out = (struct atls_verified){.peer.kind = kind};
	if (kind == ATLS_EVIDENCE_TDX)
		r = verify_tdx(v, &e, report_data, now, out, st);
	else
		r = verify_snp(v, kind, &e, report_data, now, out, st);
	if (r < 0)
		return r;
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < 32; i++) {
		out->peer.policy_digest_hex[2 * i] = digits[out->peer.policy_digest[i] >> 4];
		out->peer.policy_digest_hex[2 * i + 1] = digits[out->peer.policy_digest[i] & 15];
	}
	out->peer.policy_digest_hex[64] = 0;
	if (v->accept) {
		char *why = NULL;
		enum attest_error code = v->accept(v->userdata, ssl, &out->peer, &why);
		if (code != ATTEST_OK) {
			r = refuse(st, code, "peer refused (policy digest %s): %s",
				   out->peer.policy_digest_hex, why ? why : "by the verifier");
			free(why);
			return r;
		}
		free(why);
	}
	return 0;
}

static int cert_verify(X509 *leaf, const uint8_t nonce[ATLS_NONCE_SIZE],
		       const struct atls_verifier *v, SSL *ssl, struct atls_verified *out,
		       struct verify_state *st)
{
	enum atls_evidence_kind kind;
	const uint8_t *value;
	size_t len;
	int r = atls_cert_get_evidence(leaf, &kind, &value, &len);
	if (r == -ENOENT)
		return refuse(st, ATTEST_E_FORMAT, "certificate has no evidence extension");
	if (r < 0)
		return refuse(st, ATTEST_E_FORMAT,
			      "certificate has more than one evidence extension or an unknown "
			      "evidence OID");
	if (kind == ATLS_EVIDENCE_SNP_SIM && !v->test_anchor_pem)
		return refuse(st, ATTEST_E_FORMAT,
			      "evidence OID %s (simulated SNP) is unknown without a test trust "
			      "anchor",
			      ATLS_OID_SNP_SIM);
	EVP_PKEY *key = X509_get0_pubkey(leaf);
	if (!key || X509_verify(leaf, key) != 1) {
		ERR_clear_error();
		return refuse(st, ATTEST_E_CHAIN, "certificate self-signature does not verify");
	}
	int64_t now = v->now_sec ? v->now_sec : atls_now_sec();
	int a = ASN1_TIME_cmp_time_t(X509_get0_notBefore(leaf), (time_t)now);
	int b = ASN1_TIME_cmp_time_t(X509_get0_notAfter(leaf), (time_t)now);
	if (a == -2 || b == -2 || a > 0 || b < 0)
		return refuse(st, ATTEST_E_CHAIN, "certificate %s at %lld",
			      a == -2 || b == -2 ? "has unreadable dates"
			      : a > 0            ? "is not yet valid"
						 : "has expired",
			      (long long)now);
	uint8_t report_data[ATLS_REPORT_DATA_SIZE];
	if (atls_report_data(key, nonce, report_data) < 0)
		return refuse(st, ATTEST_E_FORMAT, "certificate key cannot be encoded");
	return evidence_verify(kind, value, len, report_data, v, now, ssl, out, st);
}

static int finish(int r, struct atls_verified *out, struct verify_state *st,
		  struct atls_verified *ret, enum attest_error *ret_code, char **ret_msg)
{
	ERR_clear_error();
	if (r < 0) {
		atls_verified_done(out);
		if (ret_code)
			*ret_code = r == -EACCES ? st->code : ATTEST_OK;
		if (ret_msg) {
			free(*ret_msg);
			*ret_msg = st->msg ? st->msg : str_dup(strerror(-r));
		} else {
			free(st->msg);
		}
		return r;
	}
	/* The peer's pointers refer into the result itself: fix them after the copy. */
	*ret = *out;
	if (ret->peer.snp)
		ret->peer.snp = &ret->snp;
	return 0;
}

int atls_cert_verify(X509 *leaf, const uint8_t nonce[ATLS_NONCE_SIZE],
		     const struct atls_verifier *v, SSL *ssl, struct atls_verified *ret,
		     enum attest_error *ret_code, char **ret_msg)
{
	struct verify_state st = {};
	struct atls_verified out = {};
	int r = cert_verify(leaf, nonce, v, ssl, &out, &st);
	return finish(r, &out, &st, ret, ret_code, ret_msg);
}

int atls_evidence_verify(enum atls_evidence_kind kind, const uint8_t *evidence, size_t len,
			 const uint8_t report_data[ATLS_REPORT_DATA_SIZE],
			 const struct atls_verifier *v, struct atls_verified *ret,
			 enum attest_error *ret_code, char **ret_msg)
{
	struct verify_state st = {};
	struct atls_verified out = {};
	int r;
	if (kind == ATLS_EVIDENCE_SNP_SIM && !v->test_anchor_pem)
		r = refuse(&st, ATTEST_E_FORMAT,
			   "evidence OID %s (simulated SNP) is unknown without a test trust anchor",
			   ATLS_OID_SNP_SIM);
	else if (kind != ATLS_EVIDENCE_SNP && kind != ATLS_EVIDENCE_TDX &&
		 kind != ATLS_EVIDENCE_SNP_SIM)
		r = refuse(&st, ATTEST_E_FORMAT, "unknown evidence kind");
	else
		r = evidence_verify(kind, evidence, len, report_data, v,
				    v->now_sec ? v->now_sec : atls_now_sec(), NULL, &out, &st);
	return finish(r, &out, &st, ret, ret_code, ret_msg);
}

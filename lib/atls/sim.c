/* lib/atls: simulated SEV-SNP evidence for machines without a TEE (ATTESTATION.md 10): a test
 * AMD-shaped PKI (ARK, ASK, CRL, VCEK), saved to and loaded from a folder, and an issuer that
 * builds version-3 Milan reports field by field and signs them with the test VCEK. */
#include <stdio.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "atls/atls-internal.h"

#define DAY_SEC (24 * 3600)
#define PKI_YEARS 10
#define PRODUCT "Milan"
#define PRODUCT_NAME "Milan-B0"
/* Milan layout: BL 3, TEE 0, SNP 8, microcode 115. */
#define SIM_TCB UINT64_C(0x7308000000000003)
#define SIM_POLICY UINT64_C(0x30000)
#define SIM_PLATFORM_INFO UINT64_C(0x3)
#define AMD_OID_ARC "1.3.6.1.4.1.3704.1."

static int set_msg(char **ret_msg, int r, const char *what)
{
	_cleanup_free_ char *detail = tls_error_string();
	return str_set_message(ret_msg, r, "%s: %s", what, detail ? detail : "");
}

/* ---- test PKI ---- */

void atls_test_pki_free(struct atls_test_pki *p)
{
	if (!p)
		return;
	EVP_PKEY_free(p->ark_key);
	EVP_PKEY_free(p->ask_key);
	EVP_PKEY_free(p->vcek_key);
	X509_free(p->ark);
	X509_free(p->ask);
	X509_free(p->vcek);
	X509_CRL_free(p->crl);
	free(p->ark_pem);
	free(p);
}

static X509_NAME *amd_name(const char *cn)
{
	X509_NAME *n = X509_NAME_new();
	static const struct {
		int nid;
		const char *v;
	} parts[] = {
	    {NID_organizationalUnitName, "Engineering"},
	    {NID_countryName, "US"},
	    {NID_localityName, "Santa Clara"},
	    {NID_stateOrProvinceName, "CA"},
	    {NID_organizationName, "Advanced Micro Devices"},
	};
	for (size_t i = 0; n && i < ELEMENTSOF(parts); i++)
		if (X509_NAME_add_entry_by_NID(n, parts[i].nid, MBSTRING_ASC,
					       (const unsigned char *)parts[i].v, -1, -1, 0) != 1)
			goto fail;
	if (n && X509_NAME_add_entry_by_NID(n, NID_commonName, MBSTRING_ASC,
					    (const unsigned char *)cn, -1, -1, 0) == 1)
		return n;
fail:
	X509_NAME_free(n);
	return NULL;
}

/* RSASSA-PSS SHA-384, MGF1-SHA-384, salt 48: how AMD signs certificates and CRLs. */
static EVP_MD_CTX *pss_ctx(EVP_PKEY *key)
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	if (!m || EVP_DigestSignInit(m, &pctx, EVP_sha384(), NULL, key) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 48) != 1 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha384()) != 1) {
		EVP_MD_CTX_free(m);
		return NULL;
	}
	return m;
}

static int add_ext_der(X509 *x, const char *oid, const uint8_t *value, size_t len)
{
	_cleanup_(ASN1_OBJECT_freep) ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
	_cleanup_(ASN1_OCTET_STRING_freep) ASN1_OCTET_STRING *oct = ASN1_OCTET_STRING_new();
	if (!obj || !oct || ASN1_OCTET_STRING_set(oct, value, (int)len) != 1)
		return -ENOMEM;
	_cleanup_(X509_EXTENSION_freep) X509_EXTENSION *ext =
	    X509_EXTENSION_create_by_OBJ(NULL, obj, 0, oct);
	return ext && X509_add_ext(x, ext, -1) == 1 ? 0 : -ENOMEM;
}

static int add_int_ext(X509 *x, const char *oid, long v)
{
	_cleanup_(ASN1_INTEGER_freep) ASN1_INTEGER *i = ASN1_INTEGER_new();
	if (!i || ASN1_INTEGER_set(i, v) != 1)
		return -ENOMEM;
	_cleanup_openssl_ unsigned char *der = NULL;
	int n = i2d_ASN1_INTEGER(i, &der);
	return n > 0 ? add_ext_der(x, oid, der, (size_t)n) : -ENOMEM;
}

static int add_ia5_ext(X509 *x, const char *oid, const char *s)
{
	ASN1_IA5STRING *str = ASN1_IA5STRING_new();
	if (!str || ASN1_STRING_set(str, s, -1) != 1) {
		ASN1_IA5STRING_free(str);
		return -ENOMEM;
	}
	_cleanup_openssl_ unsigned char *der = NULL;
	int n = i2d_ASN1_IA5STRING(str, &der);
	ASN1_IA5STRING_free(str);
	return n > 0 ? add_ext_der(x, oid, der, (size_t)n) : -ENOMEM;
}

static int add_v3(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX c;
	X509V3_set_ctx_nodb(&c);
	X509V3_set_ctx(&c, issuer, x, NULL, NULL, 0);
	_cleanup_(X509_EXTENSION_freep) X509_EXTENSION *ext =
	    X509V3_EXT_conf_nid(NULL, &c, nid, value);
	return ext && X509_add_ext(x, ext, -1) == 1 ? 0 : -ENOMEM;
}

static X509 *make_cert(const char *cn, X509 *issuer, const char *issuer_cn, EVP_PKEY *pub, bool ca,
		       int64_t now_sec, long serial)
{
	_cleanup_(X509_freep) X509 *x = X509_new();
	_cleanup_(X509_NAME_freep) X509_NAME *subj = amd_name(cn);
	_cleanup_(X509_NAME_freep) X509_NAME *iss = amd_name(issuer_cn);
	if (!x || !subj || !iss || X509_set_version(x, X509_VERSION_3) != 1 ||
	    ASN1_INTEGER_set(X509_get_serialNumber(x), serial) != 1 ||
	    X509_set_subject_name(x, subj) != 1 || X509_set_issuer_name(x, iss) != 1 ||
	    !ASN1_TIME_set(X509_getm_notBefore(x), (time_t)(now_sec - DAY_SEC)) ||
	    !ASN1_TIME_set(X509_getm_notAfter(x), (time_t)(now_sec + PKI_YEARS * 365 * DAY_SEC)) ||
	    X509_set_pubkey(x, pub) != 1)
		return NULL;
	if (ca &&
	    (add_v3(x, issuer ? issuer : x, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
	     add_v3(x, issuer ? issuer : x, NID_key_usage, "critical,keyCertSign,cRLSign") < 0))
		return NULL;
	if (ca && add_v3(x, issuer ? issuer : x, NID_subject_key_identifier, "hash") < 0)
		return NULL;
	return TAKE_PTR(x);
}

static int sign_cert(X509 *x, EVP_PKEY *signer)
{
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *m = pss_ctx(signer);
	return m && X509_sign_ctx(x, m) > 0 ? 0 : -EIO;
}

static int vcek_extensions(X509 *x, const uint8_t chip_id[64], uint64_t tcb)
{
	struct attest_snp_tcb t;
	attest_snp_tcb_decode(tcb, false, &t);
	const struct {
		const char *arc;
		unsigned v;
	} spls[] = {{"3.1", t.bootloader},
		    {"3.2", t.tee},
		    {"3.3", t.snp},
		    {"3.4", 0},
		    {"3.5", 0},
		    {"3.6", 0},
		    {"3.7", 0},
		    {"3.8", t.microcode}};
	char oid[64];
	int r = add_int_ext(x, AMD_OID_ARC "1", 0);
	if (r == 0)
		r = add_ia5_ext(x, AMD_OID_ARC "2", PRODUCT_NAME);
	for (size_t i = 0; r == 0 && i < ELEMENTSOF(spls); i++) {
		snprintf(oid, sizeof(oid), AMD_OID_ARC "%s", spls[i].arc);
		r = add_int_ext(x, oid, spls[i].v);
	}
	if (r == 0)
		r = add_ext_der(x, AMD_OID_ARC "4", chip_id, 64);
	return r;
}

static X509_CRL *make_crl(X509 *ark, EVP_PKEY *ark_key, int64_t now_sec)
{
	X509_CRL *crl = X509_CRL_new();
	ASN1_TIME *last = ASN1_TIME_new(), *next = ASN1_TIME_new();
	EVP_MD_CTX *m = pss_ctx(ark_key);
	bool ok = crl && last && next && m && X509_CRL_set_version(crl, 1) == 1 &&
		  X509_CRL_set_issuer_name(crl, X509_get_subject_name(ark)) == 1 &&
		  ASN1_TIME_set(last, (time_t)(now_sec - DAY_SEC)) &&
		  ASN1_TIME_set(next, (time_t)(now_sec + PKI_YEARS * 365 * DAY_SEC)) &&
		  X509_CRL_set1_lastUpdate(crl, last) == 1 &&
		  X509_CRL_set1_nextUpdate(crl, next) == 1 && X509_CRL_sort(crl) == 1 &&
		  X509_CRL_sign_ctx(crl, m) > 0;
	ASN1_TIME_free(last);
	ASN1_TIME_free(next);
	EVP_MD_CTX_free(m);
	if (!ok) {
		X509_CRL_free(crl);
		return NULL;
	}
	return crl;
}

static char *cert_pem(X509 *x)
{
	char *s = NULL;
	return tls_cert_to_pem(x, &s) == 0 ? s : NULL;
}

int atls_test_pki_new(int64_t now_sec, struct atls_test_pki **ret, char **ret_msg)
{
	_cleanup_(atls_test_pki_freep) struct atls_test_pki *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->ark_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)4096);
	p->ask_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)4096);
	p->vcek_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	if (!p->ark_key || !p->ask_key || !p->vcek_key)
		return set_msg(ret_msg, -EIO, "test PKI key generation");
	if (RAND_bytes(p->chip_id, sizeof(p->chip_id)) != 1)
		return set_msg(ret_msg, -EIO, "test chip id");
	p->reported_tcb = SIM_TCB;

	p->ark = make_cert("ARK-" PRODUCT, NULL, "ARK-" PRODUCT, p->ark_key, true, now_sec, 1);
	if (!p->ark || sign_cert(p->ark, p->ark_key) < 0)
		return set_msg(ret_msg, -EIO, "test ARK");
	p->ask = make_cert("SEV-" PRODUCT, p->ark, "ARK-" PRODUCT, p->ask_key, true, now_sec, 2);
	if (!p->ask || sign_cert(p->ask, p->ark_key) < 0)
		return set_msg(ret_msg, -EIO, "test ASK");
	p->vcek = make_cert("SEV-VCEK", p->ask, "SEV-" PRODUCT, p->vcek_key, false, now_sec, 0);
	if (!p->vcek || vcek_extensions(p->vcek, p->chip_id, p->reported_tcb) < 0 ||
	    sign_cert(p->vcek, p->ask_key) < 0)
		return set_msg(ret_msg, -EIO, "test VCEK");
	p->crl = make_crl(p->ark, p->ark_key, now_sec);
	if (!p->crl)
		return set_msg(ret_msg, -EIO, "test CRL");
	p->ark_pem = cert_pem(p->ark);
	if (!p->ark_pem)
		return -ENOMEM;
	*ret = TAKE_PTR(p);
	return 0;
}

static int save_bio(const char *dir, const char *name, BIO *b, mode_t mode, char **ret_msg)
{
	char *data = NULL;
	long n = BIO_get_mem_data(b, &data);
	_cleanup_free_ char *path = str_printf("%s/%s", dir, name);
	if (!path)
		return -ENOMEM;
	int r = write_file_atomic(path, data, n > 0 ? (size_t)n : 0, mode);
	if (r < 0)
		return str_set_message(ret_msg, r, "%s: %s", path, strerror(-r));
	return 0;
}

enum out_kind { OUT_CERT_PEM, OUT_CERT_DER, OUT_KEY_PEM, OUT_CRL_DER };

static int save_one(const char *dir, const char *name, enum out_kind k, void *obj, void *obj2,
		    char **ret_msg)
{
	_cleanup_(BIO_freep) BIO *b = BIO_new(BIO_s_mem());
	if (!b)
		return -ENOMEM;
	int ok = 0;
	switch (k) {
	case OUT_CERT_PEM:
		ok = PEM_write_bio_X509(b, obj);
		if (ok && obj2)
			ok = PEM_write_bio_X509(b, obj2);
		break;
	case OUT_CERT_DER:
		ok = i2d_X509_bio(b, obj);
		break;
	case OUT_KEY_PEM:
		ok = PEM_write_bio_PrivateKey(b, obj, NULL, NULL, 0, NULL, NULL);
		break;
	case OUT_CRL_DER:
		ok = i2d_X509_CRL_bio(b, obj);
		break;
	}
	if (ok != 1)
		return set_msg(ret_msg, -EIO, name);
	int r = save_bio(dir, name, b, k == OUT_KEY_PEM ? 0600 : 0644, ret_msg);
	if (k == OUT_KEY_PEM) {
		/* The memory BIO held the key: wipe it before it is freed. */
		char *data = NULL;
		long n = BIO_get_mem_data(b, &data);
		if (n > 0)
			OPENSSL_cleanse(data, (size_t)n);
	}
	return r;
}

int atls_test_pki_save(const struct atls_test_pki *p, const char *dir, char **ret_msg)
{
	int r = mkdir_p(dir, 0755);
	if (r < 0)
		return str_set_message(ret_msg, r, "%s: %s", dir, strerror(-r));
	const struct {
		const char *name;
		enum out_kind k;
		void *a, *b;
	} outs[] = {
	    {"ark.pem", OUT_CERT_PEM, p->ark, NULL},
	    {"ask.pem", OUT_CERT_PEM, p->ask, NULL},
	    {"cert_chain.pem", OUT_CERT_PEM, p->ask, p->ark},
	    {"vcek.pem", OUT_CERT_PEM, p->vcek, NULL},
	    {"vcek.der", OUT_CERT_DER, p->vcek, NULL},
	    {"crl.der", OUT_CRL_DER, p->crl, NULL},
	    {"vcek-key.pem", OUT_KEY_PEM, p->vcek_key, NULL},
	    {"ark-key.pem", OUT_KEY_PEM, p->ark_key, NULL},
	    {"ask-key.pem", OUT_KEY_PEM, p->ask_key, NULL},
	};
	for (size_t i = 0; i < ELEMENTSOF(outs); i++) {
		if (!outs[i].a)
			continue; /* a loaded PKI has no ARK/ASK keys */
		r = save_one(dir, outs[i].name, outs[i].k, outs[i].a, outs[i].b, ret_msg);
		if (r < 0)
			return r;
	}
	return 0;
}

static int read_in(const char *dir, const char *name, char **ret, size_t *ret_len, char **ret_msg)
{
	_cleanup_free_ char *path = str_printf("%s/%s", dir, name);
	if (!path)
		return -ENOMEM;
	int r = read_file_bounded(path, ATTEST_SNP_FILE_MAX_BYTES, ret, ret_len);
	if (r < 0)
		return str_set_message(ret_msg, r, "%s: %s", path, strerror(-r));
	return 0;
}

int atls_test_pki_load(const char *dir, struct atls_test_pki **ret, char **ret_msg)
{
	_cleanup_(atls_test_pki_freep) struct atls_test_pki *p = calloc(1, sizeof(*p));
	_cleanup_free_ char *ask = NULL, *vcek = NULL, *crl = NULL;
	_cleanup_secret_ char *key = NULL;
	size_t ark_len = 0, ask_len = 0, vcek_len = 0, crl_len = 0, key_len = 0;
	if (!p)
		return -ENOMEM;
	int r = read_in(dir, "ark.pem", &p->ark_pem, &ark_len, ret_msg);
	if (r == 0)
		r = read_in(dir, "ask.pem", &ask, &ask_len, ret_msg);
	if (r == 0)
		r = read_in(dir, "vcek.der", &vcek, &vcek_len, ret_msg);
	if (r == 0)
		r = read_in(dir, "crl.der", &crl, &crl_len, ret_msg);
	if (r == 0)
		r = read_in(dir, "vcek-key.pem", &key, &key_len, ret_msg);
	if (r < 0)
		return r;
	if (tls_cert_from_pem(p->ark_pem, ark_len, &p->ark) < 0 ||
	    tls_cert_from_pem(ask, ask_len, &p->ask) < 0 ||
	    tls_key_from_pem(key, key_len, &p->vcek_key) < 0)
		return set_msg(ret_msg, -EINVAL, "test PKI: ark.pem, ask.pem or vcek-key.pem");
	const unsigned char *q = (const unsigned char *)vcek;
	p->vcek = d2i_X509(NULL, &q, (long)vcek_len);
	q = (const unsigned char *)crl;
	p->crl = d2i_X509_CRL(NULL, &q, (long)crl_len);
	if (!p->vcek || !p->crl)
		return set_msg(ret_msg, -EINVAL, "test PKI: vcek.der or crl.der");
	if (X509_check_private_key(p->vcek, p->vcek_key) != 1)
		return set_msg(ret_msg, -EINVAL, "test PKI: vcek-key.pem does not match vcek.der");
	struct attest_snp_vek_ext ext = {};
	_cleanup_free_ char *msg = NULL;
	if (attest_snp_vek_ext_parse_der((const uint8_t *)vcek, vcek_len, &ext, &msg) < 0 ||
	    ext.hwid_len != 64)
		return str_set_message(ret_msg, EINVAL, "test PKI: VCEK extensions: %s",
				       msg ? msg : "no 64-byte hwID");
	memcpy(p->chip_id, ext.hwid, 64);
	p->reported_tcb = (uint64_t)ext.spl[ATTEST_SNP_SPL_BL] |
			  (uint64_t)ext.spl[ATTEST_SNP_SPL_TEE] << 8 |
			  (uint64_t)ext.spl[ATTEST_SNP_SPL_SNP] << 48 |
			  (uint64_t)ext.spl[ATTEST_SNP_SPL_UCODE] << 56;
	*ret = TAKE_PTR(p);
	return 0;
}

/* ---- reports ---- */

static void put_le(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (v >> (8 * i)) & 0xff;
}

/* ECDSA P-384 over SHA-384 of the signed part; R and S little-endian in 72-byte fields. */
static int sign_report(EVP_PKEY *key, uint8_t rep[ATTEST_SNP_REPORT_SIZE])
{
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *m = EVP_MD_CTX_new();
	unsigned char der[128];
	size_t der_len = sizeof(der);
	if (!m || EVP_DigestSignInit(m, NULL, EVP_sha384(), NULL, key) != 1 ||
	    EVP_DigestSign(m, der, &der_len, rep, ATTEST_SNP_SIGNED_SIZE) != 1)
		return -EIO;
	const unsigned char *p = der;
	_cleanup_(ECDSA_SIG_freep) ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
	if (!sig)
		return -EIO;
	const BIGNUM *r, *s;
	ECDSA_SIG_get0(sig, &r, &s);
	uint8_t be[48];
	const BIGNUM *parts[2] = {r, s};
	for (size_t i = 0; i < 2; i++) {
		if (BN_bn2binpad(parts[i], be, sizeof(be)) != sizeof(be))
			return -EIO;
		uint8_t *field = rep + 0x2A0 + 72 * i;
		memset(field, 0, 72);
		for (size_t j = 0; j < 48; j++)
			field[j] = be[47 - j];
	}
	return 0;
}

int atls_sim_report(const struct atls_test_pki *pki, const struct atls_sim_params *params,
		    const uint8_t report_data[ATLS_REPORT_DATA_SIZE],
		    uint8_t ret[ATTEST_SNP_REPORT_SIZE])
{
	uint8_t *r = ret;
	memset(r, 0, ATTEST_SNP_REPORT_SIZE);
	put_le(r + 0x000, 3, 4);
	put_le(r + 0x008, params->policy ? params->policy : SIM_POLICY, 8);
	put_le(r + 0x030, params->vmpl, 4);
	put_le(r + 0x034, 1, 4); /* ECDSA P-384 with SHA-384 */
	put_le(r + 0x038, pki->reported_tcb, 8);
	put_le(r + 0x040, SIM_PLATFORM_INFO, 8);
	memcpy(r + 0x050, report_data, 64);
	memcpy(r + 0x090, params->measurement, 48);
	memcpy(r + 0x0C0, params->host_data, 32);
	if (RAND_bytes(r + 0x140, 32) != 1)
		return -EIO;
	memset(r + 0x160, 0xff, 32); /* no migration agent */
	put_le(r + 0x180, pki->reported_tcb, 8);
	r[0x188] = 0x19; /* Milan: family 0x19, model 0x01, stepping 1 */
	r[0x189] = 0x01;
	r[0x18A] = 0x01;
	memcpy(r + 0x1A0, pki->chip_id, 64);
	put_le(r + 0x1E0, pki->reported_tcb, 8);
	r[0x1E8] = 21, r[0x1E9] = 55, r[0x1EA] = 1;
	r[0x1EC] = 21, r[0x1ED] = 55, r[0x1EE] = 1;
	put_le(r + 0x1F0, pki->reported_tcb, 8);
	return sign_report(pki->vcek_key, r);
}

struct sim_issuer {
	struct atls_issuer base;
	const struct atls_test_pki *pki;
	struct atls_sim_params params;
	uint8_t *vcek, *ask, *ark, *crl;
	int vcek_len, ask_len, ark_len, crl_len;
};

static void sim_free(struct atls_issuer *is)
{
	struct sim_issuer *s = (struct sim_issuer *)is;
	OPENSSL_free(s->vcek);
	OPENSSL_free(s->ask);
	OPENSSL_free(s->ark);
	OPENSSL_free(s->crl);
	free(s);
}

static int sim_get_evidence(struct atls_issuer *is, const uint8_t report_data[64], uint8_t **ret,
			    size_t *ret_len, char **ret_msg)
{
	struct sim_issuer *s = (struct sim_issuer *)is;
	uint8_t report[ATTEST_SNP_REPORT_SIZE];
	int r = atls_sim_report(s->pki, &s->params, report_data, report);
	if (r < 0)
		return set_msg(ret_msg, r, "simulated report signature");
	struct atls_evidence e = {};
	if ((r = atls_evidence_add(&e, ATLS_ENTRY_SNP_REPORT, report, sizeof(report))) < 0 ||
	    (r = atls_evidence_add(&e, ATLS_ENTRY_VEK, s->vcek, (size_t)s->vcek_len)) < 0 ||
	    (r = atls_evidence_add(&e, ATLS_ENTRY_ASK, s->ask, (size_t)s->ask_len)) < 0 ||
	    (r = atls_evidence_add(&e, ATLS_ENTRY_ARK, s->ark, (size_t)s->ark_len)) < 0 ||
	    (!s->params.omit_crl &&
	     (r = atls_evidence_add(&e, ATLS_ENTRY_AMD_CRL, s->crl, (size_t)s->crl_len)) < 0) ||
	    (r = atls_evidence_encode(&e, ret, ret_len)) < 0)
		return str_set_message(ret_msg, r, "simulated evidence container: %s",
				       strerror(-r));
	return 0;
}

int atls_issuer_new_sim(const struct atls_test_pki *pki, const struct atls_sim_params *params,
			struct atls_issuer **ret)
{
	if (!pki || !pki->vcek_key || !pki->vcek || !pki->ask || !pki->ark || !pki->crl)
		return -EINVAL;
	struct sim_issuer *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->base = (struct atls_issuer){
	    .kind = ATLS_EVIDENCE_SNP_SIM, .get_evidence = sim_get_evidence, .free = sim_free};
	s->pki = pki;
	if (params)
		s->params = *params;
	s->vcek_len = i2d_X509(pki->vcek, &s->vcek);
	s->ask_len = i2d_X509(pki->ask, &s->ask);
	s->ark_len = i2d_X509(pki->ark, &s->ark);
	s->crl_len = i2d_X509_CRL(pki->crl, &s->crl);
	if (s->vcek_len <= 0 || s->ask_len <= 0 || s->ark_len <= 0 || s->crl_len <= 0) {
		sim_free(&s->base);
		return -ENOMEM;
	}
	*ret = &s->base;
	return 0;
}

void atls_issuer_free(struct atls_issuer *is)
{
	if (is && is->free)
		is->free(is);
}

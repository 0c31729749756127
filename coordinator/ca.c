/* coordinator: root, intermediate and mesh CA certificates and mesh leaves (ATTESTATION.md 8). */
#include "coordinator/ca.h"

#include <arpa/inet.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <time.h>

#include "tls/tls.h"

DEFINE_CLEANUP(X509_EXTENSION, X509_EXTENSION_free)
DEFINE_CLEANUP(GENERAL_NAMES, GENERAL_NAMES_free)
DEFINE_CLEANUP(ASN1_OBJECT, ASN1_OBJECT_free)
DEFINE_CLEANUP(ASN1_OCTET_STRING, ASN1_OCTET_STRING_free)
DEFINE_CLEANUP(ASN1_UTF8STRING, ASN1_UTF8STRING_free)
DEFINE_CLEANUP(BIO, BIO_free)

static int64_t add_years(int64_t t, int years)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (!gmtime_r(&tt, &tm))
		return t;
	tm.tm_year += years;
	return (int64_t)timegm(&tm);
}

/* 16 random bytes as a positive INTEGER of exactly 16 content bytes. */
static int set_serial(X509 *x)
{
	uint8_t b[16];
	if (RAND_bytes(b, sizeof(b)) != 1)
		return -EIO;
	b[0] &= 0x7f;
	if (b[0] == 0)
		b[0] = 1;
	BIGNUM *bn = BN_bin2bn(b, sizeof(b), NULL);
	int ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
	BN_free(bn);
	return ok ? 0 : -ENOMEM;
}

static int set_cn(X509_NAME *n, const char *cn)
{
	return X509_NAME_add_entry_by_NID(n, NID_commonName, MBSTRING_UTF8,
					  (const unsigned char *)cn, -1, -1, 0) == 1
		   ? 0
		   : -EINVAL;
}

/* An extension from its config text, with issuer/subject for the key identifiers. */
static int add_conf_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	_cleanup_(X509_EXTENSION_freep) X509_EXTENSION *e =
	    X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!e || X509_add_ext(x, e, -1) != 1)
		return -EINVAL;
	return 0;
}

/* A certificate shell: version 3, serial, subject, issuer name, validity, public key. */
static int cert_new(EVP_PKEY *key, const char *subject_cn, X509_NAME *issuer_name, int64_t now_sec,
		    int years, X509 **ret)
{
	_cleanup_(X509_freep) X509 *x = X509_new();
	if (!x)
		return -ENOMEM;
	X509_NAME *subject = X509_get_subject_name(x);
	int r;
	if (X509_set_version(x, X509_VERSION_3) != 1 || (r = set_serial(x)) < 0 ||
	    (r = set_cn(subject, subject_cn)) < 0 ||
	    X509_set_issuer_name(x, issuer_name ? issuer_name : subject) != 1 ||
	    !ASN1_TIME_set(X509_getm_notBefore(x), (time_t)(now_sec - CA_BACKDATE_SEC)) ||
	    !ASN1_TIME_set(X509_getm_notAfter(x), (time_t)add_years(now_sec, years)) ||
	    X509_set_pubkey(x, key) != 1)
		return -EINVAL;
	*ret = TAKE_PTR(x);
	return 0;
}

static int sign(X509 *x, EVP_PKEY *key)
{
	/* ecdsa-with-SHA384 for the P-384 signers. */
	return X509_sign(x, key, EVP_sha384()) > 0 ? 0 : -EINVAL;
}

/* A CA certificate: self-signed when issuer is NULL. */
static int ca_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key,
		   int64_t now_sec, X509 **ret)
{
	_cleanup_(X509_freep) X509 *x = NULL;
	int r = cert_new(key, cn, issuer ? X509_get_subject_name(issuer) : NULL, now_sec,
			 CA_VALIDITY_YEARS, &x);
	if (r < 0)
		return r;
	if ((r = add_conf_ext(x, issuer ? issuer : x, NID_basic_constraints, "critical,CA:TRUE")) <
		0 ||
	    (r = add_conf_ext(x, issuer ? issuer : x, NID_key_usage,
			      "critical,keyCertSign,cRLSign,digitalSignature")) < 0 ||
	    (r = add_conf_ext(x, issuer ? issuer : x, NID_subject_key_identifier, "hash")) < 0 ||
	    (r = add_conf_ext(x, issuer ? issuer : x, NID_authority_key_identifier,
			      "keyid:always")) < 0 ||
	    (r = sign(x, issuer ? issuer_key : key)) < 0)
		return r;
	*ret = TAKE_PTR(x);
	return 0;
}

void ca_free(struct ca *ca)
{
	if (!ca)
		return;
	EVP_PKEY_free(ca->root_key);
	X509_free(ca->root);
	EVP_PKEY_free(ca->mesh_key);
	X509_free(ca->intermediate);
	X509_free(ca->mesh);
	free(ca);
}

static int make_mesh(struct ca *ca, EVP_PKEY *mesh_key, int64_t now_sec)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	_cleanup_(X509_freep) X509 *intermediate = NULL, *mesh = NULL;
	int r;
	if (mesh_key) {
		if (!EVP_PKEY_up_ref(mesh_key))
			return -ENOMEM;
		key = mesh_key;
	} else if ((r = secrets_p384_key_generate(&key)) < 0)
		return r;
	if ((r = ca_cert(key, CA_INTERMEDIATE_CN, ca->root, ca->root_key, now_sec, &intermediate)) <
		0 ||
	    (r = ca_cert(key, CA_INTERMEDIATE_CN, NULL, NULL, now_sec, &mesh)) < 0) {
		ERR_clear_error();
		return r;
	}
	EVP_PKEY_free(ca->mesh_key);
	X509_free(ca->intermediate);
	X509_free(ca->mesh);
	ca->mesh_key = TAKE_PTR(key);
	ca->intermediate = TAKE_PTR(intermediate);
	ca->mesh = TAKE_PTR(mesh);
	return 0;
}

int ca_new(EVP_PKEY *root_key, EVP_PKEY *mesh_key, int64_t now_sec, struct ca **ret)
{
	if (!root_key)
		return -EINVAL;
	_cleanup_(ca_freep) struct ca *ca = calloc(1, sizeof(*ca));
	if (!ca || !EVP_PKEY_up_ref(root_key))
		return -ENOMEM;
	ca->root_key = root_key;
	int r = ca_cert(root_key, CA_ROOT_CN, NULL, NULL, now_sec, &ca->root);
	if (r < 0) {
		ERR_clear_error();
		return r;
	}
	if ((r = make_mesh(ca, mesh_key, now_sec)) < 0)
		return r;
	*ret = TAKE_PTR(ca);
	return 0;
}

int ca_rotate_mesh(struct ca *ca, int64_t now_sec)
{
	return make_mesh(ca, NULL, now_sec);
}

static bool is_ip(const char *s)
{
	uint8_t buf[16];
	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

void ca_leaf_common_name(char *const *sans, size_t n_sans, const uint8_t digest[32],
			 char ret[CA_CN_MAX + 1])
{
	const char *cn = NULL;
	for (size_t i = 0; i < n_sans && !cn; i++)
		if (!is_ip(sans[i]) && !strstr(sans[i], "://"))
			cn = sans[i];
	if (!cn && n_sans > 0)
		cn = sans[0];
	if (cn) {
		size_t n = MIN(strlen(cn), (size_t)CA_CN_MAX);
		memcpy(ret, cn, n);
		ret[n] = 0;
		return;
	}
	_cleanup_free_ char *hex = hex_encode(digest, 8);
	memcpy(ret, "workload-", 9);
	if (hex)
		memcpy(ret + 9, hex, 17);
	else
		ret[9] = 0;
}

static int add_sans(X509 *x, char *const *sans, size_t n)
{
	if (n == 0)
		return 0;
	_cleanup_(GENERAL_NAMES_freep) GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
	if (!names)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		GENERAL_NAME *g = GENERAL_NAME_new();
		if (!g || !sk_GENERAL_NAME_push(names, g)) {
			GENERAL_NAME_free(g);
			return -ENOMEM;
		}
		if (is_ip(sans[i])) {
			ASN1_OCTET_STRING *ip = a2i_IPADDRESS(sans[i]);
			if (!ip)
				return -EINVAL;
			GENERAL_NAME_set0_value(g, GEN_IPADD, ip);
		} else {
			ASN1_IA5STRING *s = ASN1_IA5STRING_new();
			if (!s || ASN1_STRING_set(s, sans[i], -1) != 1) {
				ASN1_IA5STRING_free(s);
				return -ENOMEM;
			}
			GENERAL_NAME_set0_value(g, strstr(sans[i], "://") ? GEN_URI : GEN_DNS, s);
		}
	}
	return X509_add1_ext_i2d(x, NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT) == 1
		   ? 0
		   : -EINVAL;
}

static int add_workload_secret_id(X509 *x, const char *id)
{
	_cleanup_(ASN1_OBJECT_freep) ASN1_OBJECT *obj = OBJ_txt2obj(CA_OID_WORKLOAD_SECRET_ID, 1);
	_cleanup_(ASN1_UTF8STRING_freep) ASN1_UTF8STRING *u = ASN1_UTF8STRING_new();
	_cleanup_(ASN1_OCTET_STRING_freep) ASN1_OCTET_STRING *oct = ASN1_OCTET_STRING_new();
	if (!obj || !u || !oct || ASN1_STRING_set(u, id, -1) != 1)
		return -ENOMEM;
	unsigned char *der = NULL;
	int len = i2d_ASN1_UTF8STRING(u, &der);
	if (len <= 0)
		return -ENOMEM;
	int ok = ASN1_OCTET_STRING_set(oct, der, len);
	OPENSSL_free(der);
	if (!ok)
		return -ENOMEM;
	_cleanup_(X509_EXTENSION_freep) X509_EXTENSION *e =
	    X509_EXTENSION_create_by_OBJ(NULL, obj, 0, oct);
	if (!e || X509_add_ext(x, e, -1) != 1)
		return -ENOMEM;
	return 0;
}

int ca_issue_leaf(const struct ca *ca, EVP_PKEY *pod_key, const struct manifest_policy *policy,
		  int64_t now_sec, X509 **ret)
{
	if (!ca || !pod_key || !policy)
		return -EINVAL;
	char cn[CA_CN_MAX + 1];
	ca_leaf_common_name(policy->sans, policy->n_sans, policy->digest, cn);
	_cleanup_(X509_freep) X509 *x = NULL;
	int r = cert_new(pod_key, cn, X509_get_subject_name(ca->mesh), now_sec,
			 CA_LEAF_VALIDITY_YEARS, &x);
	if (r < 0 ||
	    (r = add_conf_ext(x, ca->mesh, NID_basic_constraints, "critical,CA:FALSE")) < 0 ||
	    (r = add_conf_ext(x, ca->mesh, NID_key_usage, "critical,digitalSignature")) < 0 ||
	    (r = add_conf_ext(x, ca->mesh, NID_ext_key_usage, "serverAuth,clientAuth")) < 0 ||
	    (r = add_conf_ext(x, ca->mesh, NID_authority_key_identifier, "keyid:always")) < 0 ||
	    (r = add_sans(x, policy->sans, policy->n_sans)) < 0 ||
	    (policy->workload_secret_id &&
	     (r = add_workload_secret_id(x, policy->workload_secret_id)) < 0) ||
	    (r = sign(x, ca->mesh_key)) < 0) {
		ERR_clear_error();
		return r;
	}
	*ret = TAKE_PTR(x);
	return 0;
}

int ca_cert_to_pem(X509 *x, char **ret)
{
	int r = tls_cert_to_pem(x, ret);
	ERR_clear_error();
	return r;
}

void ca_mesh_cert_done(struct ca_mesh_cert *c)
{
	if (!c)
		return;
	free(c->mesh_ca_pem);
	free(c->chain_pem);
	free(c->root_pem);
	OPENSSL_cleanse(c, sizeof(*c));
}

int ca_new_mesh_cert(const struct ca *ca, const struct secrets *s,
		     const struct manifest_policy *policy, EVP_PKEY *pod_key, int64_t now_sec,
		     struct ca_mesh_cert *ret)
{
	struct ca_mesh_cert c = {};
	_cleanup_(X509_freep) X509 *leaf = NULL;
	_cleanup_free_ char *leaf_pem = NULL, *inter_pem = NULL;
	int r = ca_issue_leaf(ca, pod_key, policy, now_sec, &leaf);
	if (r < 0)
		return r;
	if ((r = ca_cert_to_pem(leaf, &leaf_pem)) < 0 ||
	    (r = ca_cert_to_pem(ca->intermediate, &inter_pem)) < 0 ||
	    (r = ca_cert_to_pem(ca->mesh, &c.mesh_ca_pem)) < 0 ||
	    (r = ca_cert_to_pem(ca->root, &c.root_pem)) < 0)
		goto fail;
	if (!(c.chain_pem = str_printf("%s%s", leaf_pem, inter_pem))) {
		r = -ENOMEM;
		goto fail;
	}
	if (policy->workload_secret_id) {
		if ((r = secrets_workload_secret(s, policy->workload_secret_id,
						 c.workload_secret)) < 0)
			goto fail;
		c.has_workload_secret = true;
	}
	*ret = c;
	return 0;
fail:
	ca_mesh_cert_done(&c);
	return r;
}

int ca_mesh_key_to_pem(const struct ca *ca, char **ret)
{
	_cleanup_(BIO_freep) BIO *b = BIO_new(BIO_s_secmem());
	if (!b ||
	    PEM_write_bio_PrivateKey_traditional(b, ca->mesh_key, NULL, NULL, 0, NULL, NULL) != 1) {
		ERR_clear_error();
		return -ENOMEM;
	}
	char *data;
	long len = BIO_get_mem_data(b, &data);
	char *s = malloc((size_t)len + 1);
	if (!s)
		return -ENOMEM;
	memcpy(s, data, (size_t)len);
	s[len] = 0;
	*ret = s;
	return 0;
}

int ca_mesh_key_from_pem(const char *pem, size_t len, EVP_PKEY **ret)
{
	if (len > TLS_PEM_MAX_BYTES || len > INT_MAX)
		return -EFBIG;
	_cleanup_(BIO_freep) BIO *b = BIO_new_mem_buf(pem, (int)len);
	if (!b)
		return -ENOMEM;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	ERR_clear_error();
	if (!k || !EVP_PKEY_is_a(k, "EC") || EVP_PKEY_get_bits(k) != 384)
		return -EINVAL;
	*ret = TAKE_PTR(k);
	return 0;
}

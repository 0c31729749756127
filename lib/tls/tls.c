/* lib/tls: keys, the certificate profiles of WIRE.md 4.3, PEM, and TLS contexts for the adaptor
 * <-> forwarder link, on OpenSSL 3. */
#include <arpa/inet.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <time.h>

#include "tls/tls.h"

DEFINE_CLEANUP(BIO, BIO_free)
DEFINE_CLEANUP(BIGNUM, BN_free)
DEFINE_CLEANUP(ASN1_INTEGER, ASN1_INTEGER_free)
DEFINE_CLEANUP(X509_EXTENSION, X509_EXTENSION_free)
DEFINE_CLEANUP(GENERAL_NAMES, GENERAL_NAMES_free)
DEFINE_CLEANUP(GENERAL_NAME, GENERAL_NAME_free)
DEFINE_CLEANUP(ASN1_IA5STRING, ASN1_IA5STRING_free)

#define ORG_FORWARDER "agent-protocol-forwarder"
#define ORG_ADAPTOR "cloud-api-adaptor"
#define BACKDATE_SEC (5 * 60)
#define VALIDITY_YEARS 2
#define SERIAL_BYTES 16
#define DNS_NAME_MAX 253
#define ERROR_STRING_MAX 1024
/* Tells OpenSSL's server session cache which contexts may resume each other's sessions; required
 * once client certificates are verified. */
#define SESSION_ID_CONTEXT "pp-forwarder"

struct profile {
	const char *org;
	const char *cn; /* NULL: no CN */
	bool is_ca;
	int eku_nid; /* NID_undef: no extendedKeyUsage */
	const char *dns[2];
};

static int set_msg(char **ret_msg, int r, const char *fmt, ...) _printf_(3, 4);
static int set_msg(char **ret_msg, int r, const char *fmt, ...)
{
	if (ret_msg && !*ret_msg) {
		va_list ap;
		va_start(ap, fmt);
		*ret_msg = str_vprintf(fmt, ap);
		va_end(ap);
	}
	return r;
}

/* Like set_msg with OpenSSL's detail appended; always drains the error queue so no stale entry
 * confuses a later SSL_get_error(). */
static int set_ssl_msg(char **ret_msg, int r, const char *what)
{
	_cleanup_free_ char *detail = tls_error_string();
	return set_msg(ret_msg, r, "%s: %s", what, detail ? detail : "out of memory");
}

/* ---- keys ---- */

int tls_key_generate(EVP_PKEY **ret)
{
	if (!ret)
		return -EINVAL;
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (!key)
		return -EIO;
	*ret = key;
	return 0;
}

/* ---- certificates ---- */

static int asn1_time_to_sec(const ASN1_TIME *t, int64_t *ret)
{
	struct tm tm;
	if (!t || !ASN1_TIME_to_tm(t, &tm))
		return -EINVAL;
	time_t s = timegm(&tm);
	if (s == (time_t)-1)
		return -ERANGE;
	*ret = s;
	return 0;
}

/* Calendar years, so the expiry keeps the issue's day and time of day. */
static int add_years(int64_t sec, int years, int64_t *ret)
{
	time_t t = (time_t)sec;
	struct tm tm;
	if (!gmtime_r(&t, &tm))
		return -ERANGE;
	tm.tm_year += years;
	time_t s = timegm(&tm);
	if (s == (time_t)-1)
		return -ERANGE;
	*ret = s;
	return 0;
}

static int set_validity(X509 *x, X509 *issuer, int64_t not_before_sec)
{
	int64_t nb = not_before_sec, na;
	int r = add_years(nb, VALIDITY_YEARS, &na);
	if (r < 0)
		return r;
	if (issuer) {
		/* A certificate cannot outlive its issuer's validity. */
		int64_t inb, ina;
		r = asn1_time_to_sec(X509_get0_notBefore(issuer), &inb);
		if (r == 0)
			r = asn1_time_to_sec(X509_get0_notAfter(issuer), &ina);
		if (r < 0)
			return r;
		nb = MAX(nb, inb);
		na = MIN(na, ina);
	}
	if (nb >= na)
		return -EKEYEXPIRED;
	if (!ASN1_TIME_set(X509_getm_notBefore(x), (time_t)nb) ||
	    !ASN1_TIME_set(X509_getm_notAfter(x), (time_t)na))
		return -ENOMEM;
	return 0;
}

/* 128 random bits with the top bit forced, so every serial is positive and exactly 128 bits
 * long (the DER integer is then 17 bytes with its leading zero, within RFC 5280's 20). */
static int set_random_serial(X509 *x)
{
	uint8_t bytes[SERIAL_BYTES];
	if (RAND_bytes(bytes, sizeof bytes) != 1)
		return -EIO;
	bytes[0] |= 0x80;
	_cleanup_(BN_freep) BIGNUM *bn = BN_bin2bn(bytes, sizeof bytes, NULL);
	if (!bn)
		return -ENOMEM;
	_cleanup_(ASN1_INTEGER_freep) ASN1_INTEGER *serial = BN_to_ASN1_INTEGER(bn, NULL);
	if (!serial || !X509_set_serialNumber(x, serial))
		return -ENOMEM;
	return 0;
}

static int set_names(X509 *x, X509 *issuer, const struct profile *p)
{
	X509_NAME *name = X509_get_subject_name(x);
	if (!X509_NAME_add_entry_by_NID(name, NID_organizationName, MBSTRING_UTF8,
					(const unsigned char *)p->org, -1, -1, 0))
		return -EINVAL;
	if (p->cn && !X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
						 (const unsigned char *)p->cn, -1, -1, 0))
		return -EINVAL; /* longer than the 64 characters X.520 allows */
	if (!X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name))
		return -ENOMEM;
	return 0;
}

static bool dns_name_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > DNS_NAME_MAX)
		return false;
	for (const char *c = s; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '-' || *c == '.'))
			return false;
	return true;
}

/* Built from GENERAL_NAMEs rather than a "DNS:a,DNS:b" config string so that no name can inject
 * further entries. */
static int add_san(X509 *x, const char *const *dns, size_t n)
{
	_cleanup_(GENERAL_NAMES_freep) GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
	if (!names)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (!dns[i])
			continue;
		_cleanup_(ASN1_IA5STRING_freep) ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
		_cleanup_(GENERAL_NAME_freep) GENERAL_NAME *gen = GENERAL_NAME_new();
		if (!ia5 || !gen || !ASN1_STRING_set(ia5, dns[i], -1))
			return -ENOMEM;
		GENERAL_NAME_set0_value(gen, GEN_DNS, TAKE_PTR(ia5));
		if (!sk_GENERAL_NAME_push(names, gen))
			return -ENOMEM;
		gen = NULL;
	}
	if (sk_GENERAL_NAME_num(names) == 0)
		return 0;
	if (X509_add1_ext_i2d(x, NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT) != 1)
		return -ENOMEM;
	return 0;
}

static int add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
	_cleanup_(X509_EXTENSION_freep) X509_EXTENSION *ext =
	    X509V3_EXT_nconf_nid(NULL, v3, nid, value);
	if (!ext)
		return -EIO;
	if (!X509_add_ext(x, ext, -1))
		return -ENOMEM;
	return 0;
}

static int add_extensions(X509 *x, X509 *issuer, const struct profile *p)
{
	X509V3_CTX v3;
	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);

	int r = add_ext(x, &v3, NID_basic_constraints,
			p->is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	if (r == 0)
		r = add_ext(x, &v3, NID_key_usage, "critical,digitalSignature,keyCertSign");
	if (r == 0 && p->eku_nid != NID_undef)
		r = add_ext(x, &v3, NID_ext_key_usage, OBJ_nid2sn(p->eku_nid));
	/* The subject key id must exist before the authority key id of a self-signed certificate,
	 * which copies it. */
	if (r == 0)
		r = add_ext(x, &v3, NID_subject_key_identifier, "hash");
	if (r == 0)
		r = add_ext(x, &v3, NID_authority_key_identifier, "keyid:always");
	if (r == 0)
		r = add_san(x, p->dns, ELEMENTSOF(p->dns));
	return r;
}

/* issuer NULL: self-signed with key. */
static int make_cert(const struct profile *p, X509 *issuer, EVP_PKEY *issuer_key, EVP_PKEY *key,
		     int64_t not_before_sec, X509 **ret)
{
	if (!key || !ret || (issuer && !issuer_key))
		return -EINVAL;
	for (size_t i = 0; i < ELEMENTSOF(p->dns); i++)
		if (p->dns[i] && !dns_name_valid(p->dns[i]))
			return -EINVAL;
	if (issuer && X509_check_private_key(issuer, issuer_key) != 1)
		return -EINVAL; /* the key is not the issuer's */

	_cleanup_(X509_freep) X509 *x = X509_new();
	if (!x || !X509_set_version(x, X509_VERSION_3) || !X509_set_pubkey(x, key))
		return -ENOMEM;
	int r = set_random_serial(x);
	if (r == 0)
		r = set_validity(x, issuer, not_before_sec);
	if (r == 0)
		r = set_names(x, issuer, p);
	if (r == 0)
		r = add_extensions(x, issuer, p);
	if (r < 0)
		return r;
	if (X509_sign(x, issuer ? issuer_key : key, EVP_sha256()) <= 0)
		return -EIO;
	*ret = TAKE_PTR(x);
	return 0;
}

static int64_t issue_time(void)
{
	return (int64_t)time(NULL) - BACKDATE_SEC;
}

int tls_ca_create_at(EVP_PKEY *key, int64_t not_before_sec, X509 **ret)
{
	const struct profile p = {.org = ORG_FORWARDER, .is_ca = true, .eku_nid = NID_undef};
	return make_cert(&p, NULL, NULL, key, not_before_sec, ret);
}

int tls_ca_create(EVP_PKEY *key, X509 **ret)
{
	return tls_ca_create_at(key, issue_time(), ret);
}

int tls_cert_issue_server_at(X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *key, const char *name,
			     const char *extra_dns, int64_t not_before_sec, X509 **ret)
{
	if (!ca || str_empty(name))
		return -EINVAL;
	const struct profile p = {
	    .org = ORG_FORWARDER,
	    .cn = name,
	    .eku_nid = NID_server_auth,
	    .dns = {name, str_empty(extra_dns) || str_eq(extra_dns, name) ? NULL : extra_dns},
	};
	return make_cert(&p, ca, ca_key, key, not_before_sec, ret);
}

int tls_cert_issue_server(X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *key, const char *name,
			  const char *extra_dns, X509 **ret)
{
	return tls_cert_issue_server_at(ca, ca_key, key, name, extra_dns, issue_time(), ret);
}

int tls_cert_create_client(EVP_PKEY *key, X509 **ret)
{
	const struct profile p = {.org = ORG_ADAPTOR, .eku_nid = NID_client_auth};
	return make_cert(&p, NULL, NULL, key, issue_time(), ret);
}

/* ---- PEM ---- */

/* Encrypted keys are not part of the protocol; without this callback OpenSSL would prompt on
 * the terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *userdata)
{
	return -1;
}

static int bio_to_string(BIO *bio, char **ret)
{
	char *data = NULL;
	long n = BIO_get_mem_data(bio, &data);
	if (n <= 0 || !data)
		return -EIO;
	char *s = malloc((size_t)n + 1);
	if (!s)
		return -ENOMEM;
	memcpy(s, data, (size_t)n);
	s[n] = 0;
	*ret = s;
	return 0;
}

int tls_key_to_pem(EVP_PKEY *key, char **ret)
{
	if (!key || !ret)
		return -EINVAL;
	/* A secure-heap BIO is wiped when freed. */
	_cleanup_(BIO_freep) BIO *bio = BIO_new(BIO_s_secmem());
	if (!bio)
		return -ENOMEM;
	if (!PEM_write_bio_PKCS8PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL))
		return -EIO;
	return bio_to_string(bio, ret);
}

int tls_cert_to_pem(X509 *cert, char **ret)
{
	if (!cert || !ret)
		return -EINVAL;
	_cleanup_(BIO_freep) BIO *bio = BIO_new(BIO_s_mem());
	if (!bio)
		return -ENOMEM;
	if (!PEM_write_bio_X509(bio, cert))
		return -EIO;
	return bio_to_string(bio, ret);
}

static int pem_bio(const char *pem, size_t len, BIO **ret)
{
	if (!pem)
		return -EINVAL;
	if (len > TLS_PEM_MAX_BYTES)
		return -EFBIG;
	if (len == 0)
		return -EINVAL;
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio)
		return -ENOMEM;
	*ret = bio;
	return 0;
}

int tls_key_from_pem(const char *pem, size_t len, EVP_PKEY **ret)
{
	if (!ret)
		return -EINVAL;
	_cleanup_(BIO_freep) BIO *bio = NULL;
	int r = pem_bio(pem, len, &bio);
	if (r < 0)
		return r;
	EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	if (!key)
		return -EINVAL;
	*ret = key;
	return 0;
}

int tls_cert_from_pem(const char *pem, size_t len, X509 **ret)
{
	if (!ret)
		return -EINVAL;
	_cleanup_(BIO_freep) BIO *bio = NULL;
	int r = pem_bio(pem, len, &bio);
	if (r < 0)
		return r;
	X509 *cert = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
	if (!cert)
		return -EINVAL;
	*ret = cert;
	return 0;
}

int tls_cert_from_pem_single(const char *pem, size_t len, X509 **ret)
{
	if (!ret)
		return -EINVAL;
	_cleanup_(BIO_freep) BIO *bio = NULL;
	int r = pem_bio(pem, len, &bio);
	if (r < 0)
		return r;
	_cleanup_(X509_freep) X509 *cert = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
	_cleanup_(X509_freep) X509 *extra =
	    cert ? PEM_read_bio_X509(bio, NULL, no_passphrase, NULL) : NULL;
	ERR_clear_error();
	if (!cert || extra)
		return -EINVAL;
	*ret = TAKE_PTR(cert);
	return 0;
}

/* ---- files ---- */

int tls_key_load(const char *path, EVP_PKEY **ret)
{
	if (!path || !ret)
		return -EINVAL;
	char *data = NULL;
	size_t len = 0;
	int r = read_file_bounded(path, TLS_PEM_MAX_BYTES, &data, &len);
	if (r < 0)
		return r;
	r = tls_key_from_pem(data, len, ret);
	OPENSSL_cleanse(data, len);
	free(data);
	return r;
}

int tls_cert_load(const char *path, X509 **ret)
{
	if (!path || !ret)
		return -EINVAL;
	_cleanup_free_ char *data = NULL;
	size_t len = 0;
	int r = read_file_bounded(path, TLS_PEM_MAX_BYTES, &data, &len);
	if (r < 0)
		return r;
	return tls_cert_from_pem(data, len, ret);
}

int tls_key_save(const char *path, EVP_PKEY *key)
{
	if (!path || !key)
		return -EINVAL;
	_cleanup_secret_ char *pem = NULL;
	int r = tls_key_to_pem(key, &pem);
	if (r < 0)
		return r;
	return write_file_atomic(path, pem, strlen(pem), 0600);
}

int tls_cert_save(const char *path, X509 *cert)
{
	if (!path || !cert)
		return -EINVAL;
	_cleanup_free_ char *pem = NULL;
	int r = tls_cert_to_pem(cert, &pem);
	if (r < 0)
		return r;
	return write_file_atomic(path, pem, strlen(pem), 0644);
}

/* ---- settings ---- */

int tls_parse_min_version(const char *s, int *ret, char **ret_msg)
{
	if (!ret)
		return -EINVAL;
	if (str_empty(s) || str_eq(s, "VersionTLS12"))
		*ret = TLS1_2_VERSION;
	else if (str_eq(s, "VersionTLS13"))
		*ret = TLS1_3_VERSION;
	else if (str_eq(s, "VersionTLS10") || str_eq(s, "VersionTLS11"))
		return set_msg(ret_msg, -EINVAL,
			       "TLS minimum version %s is not allowed: the minimum is VersionTLS12",
			       s);
	else
		return set_msg(ret_msg, -EINVAL,
			       "unknown TLS minimum version \"%.64s\" (expected VersionTLS12 or "
			       "VersionTLS13)",
			       s);
	return 0;
}

/* Go's names for the ChaCha20 suites, which configurations written for the Go adaptor may use. */
static const struct {
	const char *go_name, *iana_name;
} suite_aliases[] = {
    {"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"},
    {"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"},
};

static const SSL_CIPHER *find_cipher(STACK_OF(SSL_CIPHER) * all, const char *name)
{
	for (size_t i = 0; i < ELEMENTSOF(suite_aliases); i++)
		if (str_eq(name, suite_aliases[i].go_name))
			name = suite_aliases[i].iana_name;
	for (int i = 0; i < sk_SSL_CIPHER_num(all); i++) {
		const SSL_CIPHER *c = sk_SSL_CIPHER_value(all, i);
		if (str_eq(SSL_CIPHER_standard_name(c), name))
			return c;
	}
	return NULL;
}

/* IANA names -> OpenSSL cipher list ("A:B"); *ret_list NULL when no suites are configured. */
static int suites_to_list(char *const *suites, int min_version, char **ret_list, char **ret_msg)
{
	*ret_list = NULL;
	if (!suites || !*suites)
		return 0;
	if (min_version == TLS1_3_VERSION)
		return set_msg(
		    ret_msg, -EINVAL,
		    "TLS cipher suite %.80s cannot be set with minimum version VersionTLS13 "
		    "(TLS 1.3 suites are not configurable)",
		    suites[0]);

	/* "ALL" lists every suite this OpenSSL offers except the unencrypted ones. */
	_cleanup_(SSL_CTX_freep) SSL_CTX *probe = SSL_CTX_new(TLS_method());
	if (!probe || !SSL_CTX_set_cipher_list(probe, "ALL"))
		return set_ssl_msg(ret_msg, -ENOMEM, "listing TLS cipher suites");
	STACK_OF(SSL_CIPHER) *all = SSL_CTX_get_ciphers(probe);

	struct buf list = {0};
	int r = 0;
	for (char *const *s = suites; *s; s++) {
		const SSL_CIPHER *c = find_cipher(all, *s);
		if (!c)
			r = set_msg(ret_msg, -EINVAL,
				    "unknown or unsupported TLS cipher suite \"%.80s\"", *s);
		else if (SSL_CIPHER_get_kx_nid(c) ==
			 NID_kx_any) /* only TLS 1.3 leaves key exchange open */
			r = set_msg(
			    ret_msg, -EINVAL,
			    "TLS cipher suite %s is a TLS 1.3 suite; only TLS 1.2 suites can be "
			    "configured",
			    *s);
		else
			r = buf_printf(&list, "%s%s", list.len ? ":" : "", SSL_CIPHER_get_name(c));
		if (r < 0)
			break;
	}
	if (r == 0)
		r = buf_append(&list, "", 1, 0);
	if (r < 0) {
		buf_done(&list);
		return r;
	}
	*ret_list = (char *)list.data;
	return 0;
}

int tls_check_cipher_suites(char *const *suites, int min_version, char **ret_msg)
{
	_cleanup_free_ char *list = NULL;
	return suites_to_list(suites, min_version, &list, ret_msg);
}

/* ---- contexts ---- */

static int ctx_new(const struct tls_settings *s, X509 *cert, EVP_PKEY *key, X509 *anchor,
		   SSL_CTX **ret, char **ret_msg)
{
	if (!ret)
		return -EINVAL;
	int min = s && s->min_version ? s->min_version : TLS1_2_VERSION;
	if (min != TLS1_2_VERSION && min != TLS1_3_VERSION)
		return set_msg(ret_msg, -EINVAL, "unsupported minimum TLS version 0x%x", min);
	if (!cert != !key)
		return set_msg(ret_msg, -EINVAL, "a TLS certificate needs its key and vice versa");

	_cleanup_free_ char *list = NULL;
	int r = suites_to_list(s ? s->cipher_suites : NULL, min, &list, ret_msg);
	if (r < 0)
		return r;

	_cleanup_(SSL_CTX_freep) SSL_CTX *ctx = SSL_CTX_new(TLS_method());
	if (!ctx)
		return set_ssl_msg(ret_msg, -ENOMEM, "creating TLS context");
	if (!SSL_CTX_set_min_proto_version(ctx, min))
		return set_ssl_msg(ret_msg, -EINVAL, "setting minimum TLS version");
	if (list && !SSL_CTX_set_cipher_list(ctx, list))
		return set_ssl_msg(ret_msg, -EINVAL, "setting TLS cipher suites");
	if (cert) {
		if (X509_check_private_key(cert, key) != 1)
			return set_ssl_msg(ret_msg, -EINVAL,
					   "TLS certificate and private key do not match");
		if (SSL_CTX_use_certificate(ctx, cert) != 1)
			return set_ssl_msg(ret_msg, -EINVAL, "using TLS certificate");
		if (SSL_CTX_use_PrivateKey(ctx, key) != 1)
			return set_ssl_msg(ret_msg, -EINVAL, "using TLS key");
	}
	if (anchor && X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), anchor) != 1)
		return set_ssl_msg(ret_msg, -EINVAL, "adding TLS trust anchor");
	/* Like Go's x509 pools: any certificate we were given is a trust anchor, also a
	 * self-signed end-entity certificate or an intermediate CA. */
	if (!X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(ctx), X509_V_FLAG_PARTIAL_CHAIN))
		return set_ssl_msg(ret_msg, -ENOMEM, "setting TLS verification flags");
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
	/* Event-loop callers may retry a write from a different buffer address. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	*ret = TAKE_PTR(ctx);
	return 0;
}

int tls_ctx_new_client(const struct tls_settings *s, X509 *cert, EVP_PKEY *key, X509 *ca,
		       SSL_CTX **ret, char **ret_msg)
{
	bool insecure = s && s->insecure_skip_verify;
	if (!insecure && !ca)
		return set_msg(ret_msg, -EINVAL, "no CA certificate to verify the TLS server with");
	_cleanup_(SSL_CTX_freep) SSL_CTX *ctx = NULL;
	int r = ctx_new(s, cert, key, insecure ? NULL : ca, &ctx, ret_msg);
	if (r < 0)
		return r;
	SSL_CTX_set_verify(ctx, insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
	*ret = TAKE_PTR(ctx);
	return 0;
}

int tls_ctx_new_server(const struct tls_settings *s, X509 *cert, EVP_PKEY *key, X509 *client_ca,
		       SSL_CTX **ret, char **ret_msg)
{
	if (!cert)
		return set_msg(ret_msg, -EINVAL, "no TLS server certificate");
	if (!client_ca)
		return set_msg(ret_msg, -EINVAL, "no CA certificate to verify TLS clients with");
	_cleanup_(SSL_CTX_freep) SSL_CTX *ctx = NULL;
	int r = ctx_new(s, cert, key, client_ca, &ctx, ret_msg);
	if (r < 0)
		return r;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	/* Go clients send a certificate only if its issuer is in this list (or the list is
	 * empty); naming the anchor keeps both cases working. */
	if (SSL_CTX_add_client_CA(ctx, client_ca) != 1)
		return set_ssl_msg(ret_msg, -ENOMEM, "setting TLS client CA list");
	if (SSL_CTX_set_session_id_context(ctx, (const unsigned char *)SESSION_ID_CONTEXT,
					   sizeof(SESSION_ID_CONTEXT) - 1) != 1)
		return set_ssl_msg(ret_msg, -ENOMEM, "setting TLS session id context");
	*ret = TAKE_PTR(ctx);
	return 0;
}

static bool is_ip_literal(const char *s)
{
	unsigned char addr[sizeof(struct in6_addr)];
	return inet_pton(AF_INET, s, addr) == 1 || inet_pton(AF_INET6, s, addr) == 1;
}

int tls_ssl_new_client(SSL_CTX *ctx, const char *server_name, SSL **ret)
{
	if (!ctx || !ret)
		return -EINVAL;
	_cleanup_(SSL_freep) SSL *ssl = SSL_new(ctx);
	if (!ssl)
		return -ENOMEM;
	if (!str_empty(server_name)) {
		if (is_ip_literal(server_name)) {
			/* SNI carries host names only (RFC 6066); an address is checked against
			 * IP SANs. */
			if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), server_name) != 1)
				return -EINVAL;
		} else {
			if (SSL_set_tlsext_host_name(ssl, server_name) != 1 ||
			    SSL_set1_host(ssl, server_name) != 1)
				return -EINVAL;
			SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		}
	}
	SSL_set_connect_state(ssl);
	*ret = TAKE_PTR(ssl);
	return 0;
}

char *tls_error_string(void)
{
	struct buf b = {0};
	unsigned long e;
	const char *data = NULL;
	int flags = 0;
	bool ok = true;
	/* Drain the whole queue even when the text is already long enough. */
	while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
		if (!ok || b.len >= ERROR_STRING_MAX)
			continue;
		const char *reason = ERR_reason_error_string(e);
		char code[32];
		if (!reason) {
			snprintf(code, sizeof code, "error %lx", e);
			reason = code;
		}
		bool has_data = (flags & ERR_TXT_STRING) && data && *data;
		ok = buf_printf(&b, "%s%s%s%s%s", b.len ? "; " : "", reason, has_data ? " (" : "",
				has_data ? data : "", has_data ? ")" : "") == 0;
	}
	if (!ok) {
		buf_done(&b);
		return NULL;
	}
	if (b.len == 0)
		return str_dup("no detail from OpenSSL");
	if (buf_append(&b, "", 1, 0) < 0) {
		buf_done(&b);
		return NULL;
	}
	return (char *)b.data;
}

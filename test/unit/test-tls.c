/* Unit tests for lib/tls: certificate profiles field by field, PEM and files, settings, and real
 * mutual-TLS handshakes over a socketpair. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include "tls/tls.h"

#define INSTANCE "podvm-my-pod-1-88a70031"
#define BACKDATE_SEC (5 * 60)

/* ---- helpers ---- */

static EVP_PKEY *new_key(void)
{
	EVP_PKEY *k = NULL;
	assert_int_equal(tls_key_generate(&k), 0);
	assert_non_null(k);
	return k;
}

static int64_t time_sec(const ASN1_TIME *t)
{
	struct tm tm;
	assert_int_equal(ASN1_TIME_to_tm(t, &tm), 1);
	return (int64_t)timegm(&tm);
}

static int64_t plus_two_years(int64_t sec)
{
	time_t t = (time_t)sec;
	struct tm tm;
	assert_non_null(gmtime_r(&t, &tm));
	tm.tm_year += 2;
	return (int64_t)timegm(&tm);
}

static void assert_subject(X509 *x, const char *org, const char *cn)
{
	X509_NAME *n = X509_get_subject_name(x);
	assert_int_equal(X509_NAME_entry_count(n), cn ? 2 : 1);
	char buf[128];
	assert_int_equal(X509_NAME_get_text_by_NID(n, NID_organizationName, buf, sizeof buf),
			 (int)strlen(org));
	assert_string_equal(buf, org);
	if (cn) {
		assert_int_equal(X509_NAME_get_text_by_NID(n, NID_commonName, buf, sizeof buf),
				 (int)strlen(cn));
		assert_string_equal(buf, cn);
	} else {
		assert_int_equal(X509_NAME_get_index_by_NID(n, NID_commonName, -1), -1);
	}
}

static void assert_sans(X509 *x, const char *const *want, int n)
{
	int crit = -2;
	GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, &crit, NULL);
	if (n == 0) {
		assert_null(names);
		assert_int_equal(crit, -1); /* absent */
		return;
	}
	assert_non_null(names);
	assert_int_equal(crit, 0);
	assert_int_equal(sk_GENERAL_NAME_num(names), n);
	for (int i = 0; i < n; i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
		assert_int_equal(g->type, GEN_DNS);
		assert_int_equal(ASN1_STRING_length(g->d.dNSName), (int)strlen(want[i]));
		assert_memory_equal(ASN1_STRING_get0_data(g->d.dNSName), want[i], strlen(want[i]));
	}
	GENERAL_NAMES_free(names);
}

static void assert_basic_constraints(X509 *x, bool ca)
{
	int crit = -2;
	BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);
	assert_non_null(bc);
	assert_int_equal(crit, 1);
	assert_int_equal(bc->ca != 0, ca);
	assert_null(bc->pathlen);
	BASIC_CONSTRAINTS_free(bc);
}

static void assert_key_usage(X509 *x)
{
	int crit = -2;
	ASN1_BIT_STRING *ku = X509_get_ext_d2i(x, NID_key_usage, &crit, NULL);
	assert_non_null(ku);
	assert_int_equal(crit, 1);
	ASN1_BIT_STRING_free(ku);
	assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE | KU_KEY_CERT_SIGN);
}

/* eku_nid NID_undef: the extension must be absent. */
static void assert_eku(X509 *x, int eku_nid)
{
	int crit = -2;
	EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(x, NID_ext_key_usage, &crit, NULL);
	if (eku_nid == NID_undef) {
		assert_null(eku);
		return;
	}
	assert_non_null(eku);
	assert_int_equal(crit, 0);
	assert_int_equal(sk_ASN1_OBJECT_num(eku), 1);
	assert_int_equal(OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, 0)), eku_nid);
	EXTENDED_KEY_USAGE_free(eku);
}

static void assert_serial(X509 *x)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	assert_non_null(bn);
	assert_false(BN_is_negative(bn));
	assert_int_equal(BN_num_bits(bn), 128);
	BN_free(bn);
}

/* Common to all profiles: v3, subject key, key ids, serial, signature by issuer_key. */
static void assert_common(X509 *x, X509 *issuer, EVP_PKEY *key, EVP_PKEY *issuer_key)
{
	assert_int_equal(X509_get_version(x), X509_VERSION_3);
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(x), key), 1);
	assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(issuer)), 0);
	assert_key_usage(x);
	assert_serial(x);

	const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(x);
	assert_non_null(ski);
	assert_int_equal(ASN1_STRING_length(ski), 20);
	const ASN1_OCTET_STRING *akid = X509_get0_authority_key_id(x);
	assert_non_null(akid);
	assert_int_equal(ASN1_OCTET_STRING_cmp(akid, X509_get0_subject_key_id(issuer)), 0);

	assert_int_equal(X509_get_signature_nid(x), NID_ecdsa_with_SHA256);
	assert_int_equal(X509_verify(x, issuer_key), 1);
	EVP_PKEY *other = new_key();
	assert_int_not_equal(X509_verify(x, other), 1);
	EVP_PKEY_free(other);
	ERR_clear_error();
}

static void assert_validity_now(X509 *x, int64_t t0, int64_t t1)
{
	int64_t nb = time_sec(X509_get0_notBefore(x)), na = time_sec(X509_get0_notAfter(x));
	assert_true(nb >= t0 - BACKDATE_SEC);
	assert_true(nb <= t1 - BACKDATE_SEC);
	assert_int_equal(na, plus_two_years(nb));
}

/* ---- keys and certificate profiles ---- */

static void test_key_is_p256(void **state)
{
	EVP_PKEY *k = new_key();
	assert_true(EVP_PKEY_is_a(k, "EC"));
	char group[64];
	assert_int_equal(EVP_PKEY_get_group_name(k, group, sizeof group, NULL), 1);
	assert_string_equal(group, "prime256v1");
	EVP_PKEY *k2 = new_key();
	assert_int_not_equal(EVP_PKEY_eq(k, k2), 1);
	EVP_PKEY_free(k);
	EVP_PKEY_free(k2);
	assert_int_equal(tls_key_generate(NULL), -EINVAL);
}

static void test_ca_profile(void **state)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = new_key();
	_cleanup_(X509_freep) X509 *ca = NULL;
	int64_t t0 = time(NULL);
	assert_int_equal(tls_ca_create(key, &ca), 0);
	int64_t t1 = time(NULL);

	assert_subject(ca, "agent-protocol-forwarder", NULL);
	assert_basic_constraints(ca, true);
	assert_eku(ca, NID_undef);
	assert_sans(ca, NULL, 0);
	assert_common(ca, ca, key, key);
	assert_validity_now(ca, t0, t1);
	assert_true(X509_check_ca(ca) > 0);
}

static void test_server_profile(void **state)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *ca_key = new_key(), *key = new_key();
	_cleanup_(X509_freep) X509 *ca = NULL, *srv = NULL, *srv2 = NULL;
	assert_int_equal(tls_ca_create(ca_key, &ca), 0);
	int64_t t0 = time(NULL);
	assert_int_equal(tls_cert_issue_server(ca, ca_key, key, INSTANCE, NULL, &srv), 0);
	int64_t t1 = time(NULL);

	assert_subject(srv, "agent-protocol-forwarder", INSTANCE);
	assert_basic_constraints(srv, false);
	assert_eku(srv, NID_server_auth);
	const char *sans[] = {INSTANCE};
	assert_sans(srv, sans, 1);
	assert_common(srv, ca, key, ca_key);
	assert_validity_now(srv, t0, t1);
	assert_int_equal(X509_check_ca(srv), 0);
	assert_int_equal(X509_check_issued(ca, srv), X509_V_OK);

	/* Serials are random. */
	assert_int_equal(tls_cert_issue_server(ca, ca_key, key, INSTANCE, NULL, &srv2), 0);
	assert_int_not_equal(
	    ASN1_INTEGER_cmp(X509_get0_serialNumber(srv), X509_get0_serialNumber(srv2)), 0);
}

static void test_server_extra_dns(void **state)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *ca_key = new_key(), *key = new_key();
	_cleanup_(X509_freep) X509 *ca = NULL, *srv = NULL, *same = NULL;
	assert_int_equal(tls_ca_create(ca_key, &ca), 0);
	assert_int_equal(tls_cert_issue_server(ca, ca_key, key, INSTANCE, "podvm-server", &srv), 0);
	const char *sans[] = {INSTANCE, "podvm-server"};
	assert_sans(srv, sans, 2);
	assert_subject(srv, "agent-protocol-forwarder", INSTANCE);
	/* A repeated name is not listed twice; "" is no extra name. */
	assert_int_equal(tls_cert_issue_server(ca, ca_key, key, INSTANCE, INSTANCE, &same), 0);
	assert_sans(same, sans, 1);
	X509_free(TAKE_PTR(same));
	assert_int_equal(tls_cert_issue_server(ca, ca_key, key, INSTANCE, "", &same), 0);
	assert_sans(same, sans, 1);
}

static void test_server_rejects_bad_input(void **state)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *ca_key = new_key(), *key = new_key();
	_cleanup_(X509_freep) X509 *ca = NULL, *srv = NULL;
	assert_int_equal(tls_ca_create(ca_key, &ca), 0);
	/* Not the CA's key. */
	assert_int_equal(tls_cert_issue_server(ca, key, key, INSTANCE, NULL, &srv), -EINVAL);
	/* A name must not smuggle in more SAN entries or odd characters. */
	assert_int_equal(tls_cert_issue_server(ca, ca_key, key, "a,DNS:evil", NULL, &srv), -EINVAL);
	assert_int_equal(tls_cert_issue_server(ca, ca_key, key, INSTANCE, "x y", &srv), -EINVAL);
	assert_int_equal(tls_cert_issue_server(ca, ca_key, key, "", NULL, &srv), -EINVAL);
	assert_int_equal(tls_cert_issue_server(ca, ca_key, key, NULL, NULL, &srv), -EINVAL);
	assert_int_equal(tls_cert_issue_server(NULL, ca_key, key, INSTANCE, NULL, &srv), -EINVAL);
	/* CN is limited to 64 characters by X.520. */
	char longname[70];
	memset(longname, 'a', sizeof longname - 1);
	longname[sizeof longname - 1] = 0;
	assert_int_equal(tls_cert_issue_server(ca, ca_key, key, longname, NULL, &srv), -EINVAL);
	assert_null(srv);
	ERR_clear_error();
}

static void test_client_profile(void **state)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = new_key();
	_cleanup_(X509_freep) X509 *cli = NULL;
	int64_t t0 = time(NULL);
	assert_int_equal(tls_cert_create_client(key, &cli), 0);
	int64_t t1 = time(NULL);

	assert_subject(cli, "cloud-api-adaptor", NULL);
	assert_basic_constraints(cli, false);
	assert_eku(cli, NID_client_auth);
	assert_sans(cli, NULL, 0);
	assert_common(cli, cli, key, key);
	assert_validity_now(cli, t0, t1);
	assert_int_equal(X509_check_ca(cli), 0);
}

static void test_clamped_to_issuer(void **state)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *ca_key = new_key(), *key = new_key();
	_cleanup_(X509_freep) X509 *ca = NULL, *srv = NULL, *early = NULL, *late = NULL;
	/* A CA issued a year ago expires in a year. */
	int64_t now = time(NULL);
	assert_int_equal(tls_ca_create_at(ca_key, now - 365 * 86400, &ca), 0);
	int64_t ca_nb = time_sec(X509_get0_notBefore(ca)), ca_na = time_sec(X509_get0_notAfter(ca));
	assert_int_equal(ca_nb, now - 365 * 86400);
	assert_true(ca_na < now + 400 * 86400);

	assert_int_equal(tls_cert_issue_server(ca, ca_key, key, INSTANCE, NULL, &srv), 0);
	int64_t nb = time_sec(X509_get0_notBefore(srv));
	assert_true(nb >= now - BACKDATE_SEC);
	assert_true(plus_two_years(nb) > ca_na);
	assert_int_equal(time_sec(X509_get0_notAfter(srv)), ca_na);

	/* A start before the issuer's is raised to it. */
	assert_int_equal(
	    tls_cert_issue_server_at(ca, ca_key, key, INSTANCE, NULL, ca_nb - 86400, &early), 0);
	assert_int_equal(time_sec(X509_get0_notBefore(early)), ca_nb);
	assert_int_equal(time_sec(X509_get0_notAfter(early)), plus_two_years(ca_nb - 86400));

	/* Nothing is left once the issuer has expired. */
	assert_int_equal(
	    tls_cert_issue_server_at(ca, ca_key, key, INSTANCE, NULL, ca_na + 1, &late),
	    -EKEYEXPIRED);
	assert_null(late);
}

/* ---- PEM and files ---- */

static void test_pem_round_trip(void **state)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = new_key(), *key2 = NULL;
	_cleanup_(X509_freep) X509 *ca = NULL, *ca2 = NULL;
	assert_int_equal(tls_ca_create(key, &ca), 0);

	_cleanup_secret_ char *kpem = NULL;
	assert_int_equal(tls_key_to_pem(key, &kpem), 0);
	assert_true(str_startswith(kpem, "-----BEGIN PRIVATE KEY-----\n"));
	assert_true(str_endswith(kpem, "-----END PRIVATE KEY-----\n"));
	assert_int_equal(tls_key_from_pem(kpem, strlen(kpem), &key2), 0);
	assert_int_equal(EVP_PKEY_eq(key, key2), 1);

	_cleanup_free_ char *cpem = NULL;
	assert_int_equal(tls_cert_to_pem(ca, &cpem), 0);
	assert_true(str_startswith(cpem, "-----BEGIN CERTIFICATE-----\n"));
	/* With the terminating NUL counted, too. */
	assert_int_equal(tls_cert_from_pem(cpem, strlen(cpem) + 1, &ca2), 0);
	assert_int_equal(X509_cmp(ca, ca2), 0);

	/* Exactly one certificate: a bundle of two and a key are refused. */
	X509 *one = NULL;
	assert_int_equal(tls_cert_from_pem_single(cpem, strlen(cpem), &one), 0);
	assert_int_equal(X509_cmp(ca, one), 0);
	X509_free(one);
	_cleanup_free_ char *two = str_printf("%s%s", cpem, cpem);
	one = NULL;
	assert_int_equal(tls_cert_from_pem_single(two, strlen(two), &one), -EINVAL);
	assert_null(one);
	assert_int_equal(tls_cert_from_pem_single(kpem, strlen(kpem), &one), -EINVAL);
}

static void test_pem_rejects(void **state)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = new_key();
	_cleanup_(X509_freep) X509 *ca = NULL;
	assert_int_equal(tls_ca_create(key, &ca), 0);
	_cleanup_free_ char *cpem = NULL;
	_cleanup_secret_ char *kpem = NULL;
	assert_int_equal(tls_cert_to_pem(ca, &cpem), 0);
	assert_int_equal(tls_key_to_pem(key, &kpem), 0);

	EVP_PKEY *k = NULL;
	X509 *c = NULL;
	assert_int_equal(tls_key_from_pem("", 0, &k), -EINVAL);
	assert_int_equal(tls_key_from_pem("garbage", 7, &k), -EINVAL);
	assert_int_equal(tls_key_from_pem(cpem, strlen(cpem), &k), -EINVAL);
	assert_int_equal(tls_cert_from_pem(kpem, strlen(kpem), &c), -EINVAL);
	/* Truncated. */
	assert_int_equal(tls_cert_from_pem(cpem, strlen(cpem) / 2, &c), -EINVAL);
	assert_int_equal(tls_key_from_pem(kpem, strlen(kpem) - 30, &k), -EINVAL);

	/* Over 64 KiB, even if it starts with a valid certificate. */
	size_t big = TLS_PEM_MAX_BYTES + 1;
	char *buf = malloc(big);
	assert_non_null(buf);
	memset(buf, '\n', big);
	memcpy(buf, cpem, strlen(cpem));
	assert_int_equal(tls_cert_from_pem(buf, big, &c), -EFBIG);
	assert_int_equal(tls_cert_from_pem(buf, big - 1, &c), 0);
	X509_free(TAKE_PTR(c));
	free(buf);

	/* An encrypted key fails instead of prompting for a passphrase. */
	BIO *bio = BIO_new(BIO_s_mem());
	assert_non_null(bio);
	assert_int_equal(PEM_write_bio_PKCS8PrivateKey(bio, key, EVP_aes_128_cbc(), NULL, 0, NULL,
						       (void *)"secret"),
			 1);
	char *enc = NULL;
	long n = BIO_get_mem_data(bio, &enc);
	assert_true(n > 0);
	assert_int_equal(tls_key_from_pem(enc, (size_t)n, &k), -EINVAL);
	BIO_free(bio);
	assert_null(k);
	assert_null(c);
	ERR_clear_error();
}

static char *make_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char *dir = str_printf("%s/test-tls.XXXXXX", str_empty(base) ? "/tmp" : base);
	assert_non_null(dir);
	assert_non_null(mkdtemp(dir));
	return dir;
}

static void test_files(void **state)
{
	_cleanup_free_ char *dir = make_tmpdir();
	_cleanup_free_ char *kpath = str_printf("%s/key.pem", dir);
	_cleanup_free_ char *cpath = str_printf("%s/cert.pem", dir);
	_cleanup_free_ char *bigpath = str_printf("%s/big.pem", dir);
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = new_key(), *key2 = NULL;
	_cleanup_(X509_freep) X509 *cli = NULL, *cli2 = NULL;
	assert_int_equal(tls_cert_create_client(key, &cli), 0);

	/* 0600 does not depend on the umask. */
	mode_t old = umask(0);
	assert_int_equal(tls_key_save(kpath, key), 0);
	umask(old);
	struct stat st;
	assert_int_equal(stat(kpath, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(tls_key_load(kpath, &key2), 0);
	assert_int_equal(EVP_PKEY_eq(key, key2), 1);

	/* Saving again replaces the file. */
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key3 = new_key(), *key4 = NULL;
	assert_int_equal(tls_key_save(kpath, key3), 0);
	assert_int_equal(tls_key_load(kpath, &key4), 0);
	assert_int_equal(EVP_PKEY_eq(key3, key4), 1);

	assert_int_equal(tls_cert_save(cpath, cli), 0);
	assert_int_equal(tls_cert_load(cpath, &cli2), 0);
	assert_int_equal(X509_cmp(cli, cli2), 0);

	EVP_PKEY *k = NULL;
	X509 *c = NULL;
	assert_int_equal(tls_key_load(cpath, &k), -EINVAL);
	_cleanup_free_ char *missing = str_printf("%s/missing.pem", dir);
	assert_int_equal(tls_cert_load(missing, &c), -ENOENT);
	char *big = calloc(1, TLS_PEM_MAX_BYTES + 10);
	assert_non_null(big);
	memset(big, '\n', TLS_PEM_MAX_BYTES + 10);
	assert_int_equal(write_file_atomic(bigpath, big, TLS_PEM_MAX_BYTES + 10, 0600), 0);
	free(big);
	assert_int_equal(tls_cert_load(bigpath, &c), -EFBIG);
	assert_int_equal(tls_key_load(bigpath, &k), -EFBIG);
	assert_null(k);
	assert_null(c);
	ERR_clear_error();
	assert_int_equal(rm_rf(dir), 0);
}

/* ---- settings ---- */

static void test_min_version(void **state)
{
	int v = 0;
	_cleanup_free_ char *msg = NULL;
	assert_int_equal(tls_parse_min_version("", &v, &msg), 0);
	assert_int_equal(v, TLS1_2_VERSION);
	assert_int_equal(tls_parse_min_version(NULL, &v, &msg), 0);
	assert_int_equal(v, TLS1_2_VERSION);
	assert_int_equal(tls_parse_min_version("VersionTLS12", &v, &msg), 0);
	assert_int_equal(v, TLS1_2_VERSION);
	assert_int_equal(tls_parse_min_version("VersionTLS13", &v, &msg), 0);
	assert_int_equal(v, TLS1_3_VERSION);
	assert_null(msg);

	assert_int_equal(tls_parse_min_version("VersionTLS10", &v, &msg), -EINVAL);
	assert_non_null(strstr(msg, "VersionTLS10"));
	free(TAKE_PTR(msg));
	assert_int_equal(tls_parse_min_version("VersionTLS11", &v, &msg), -EINVAL);
	assert_non_null(strstr(msg, "VersionTLS11"));
	free(TAKE_PTR(msg));
	assert_int_equal(tls_parse_min_version("TLS13", &v, &msg), -EINVAL);
	assert_non_null(strstr(msg, "\"TLS13\""));
	free(TAKE_PTR(msg));
	assert_int_equal(tls_parse_min_version("versiontls13", &v, NULL), -EINVAL);
	assert_int_equal(v, TLS1_3_VERSION); /* untouched on failure */
}

static void test_cipher_suites(void **state)
{
	_cleanup_free_ char *msg = NULL;
	assert_int_equal(tls_check_cipher_suites(NULL, TLS1_2_VERSION, &msg), 0);
	char *none[] = {NULL};
	assert_int_equal(tls_check_cipher_suites(none, TLS1_3_VERSION, &msg), 0);
	char *good[] = {"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
			"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
			"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
			"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", NULL};
	assert_int_equal(tls_check_cipher_suites(good, TLS1_2_VERSION, &msg), 0);
	assert_int_equal(tls_check_cipher_suites(good, 0, &msg), 0);
	char *go_alias[] = {"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", NULL};
	assert_int_equal(tls_check_cipher_suites(go_alias, TLS1_2_VERSION, &msg), 0);
	assert_null(msg);

	char *unknown[] = {"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_BOGUS_SUITE", NULL};
	assert_int_equal(tls_check_cipher_suites(unknown, TLS1_2_VERSION, &msg), -EINVAL);
	assert_non_null(strstr(msg, "TLS_BOGUS_SUITE"));
	free(TAKE_PTR(msg));
	/* OpenSSL's own names are not IANA names. */
	char *openssl_name[] = {"ECDHE-ECDSA-AES128-GCM-SHA256", NULL};
	assert_int_equal(tls_check_cipher_suites(openssl_name, TLS1_2_VERSION, &msg), -EINVAL);
	assert_non_null(strstr(msg, "ECDHE-ECDSA-AES128-GCM-SHA256"));
	free(TAKE_PTR(msg));
	char *null_cipher[] = {"TLS_RSA_WITH_NULL_SHA256", NULL};
	assert_int_equal(tls_check_cipher_suites(null_cipher, TLS1_2_VERSION, &msg), -EINVAL);
	free(TAKE_PTR(msg));
	char *tls13[] = {"TLS_AES_128_GCM_SHA256", NULL};
	assert_int_equal(tls_check_cipher_suites(tls13, TLS1_2_VERSION, &msg), -EINVAL);
	assert_non_null(strstr(msg, "TLS_AES_128_GCM_SHA256"));
	free(TAKE_PTR(msg));
	assert_int_equal(tls_check_cipher_suites(good, TLS1_3_VERSION, &msg), -EINVAL);
	assert_non_null(strstr(msg, "VersionTLS13"));
	assert_non_null(strstr(msg, good[0]));
	free(TAKE_PTR(msg));
	assert_int_equal(tls_check_cipher_suites(unknown, TLS1_2_VERSION, NULL), -EINVAL);
	assert_int_equal(ERR_peek_error(), 0);
}

static void test_error_string(void **state)
{
	ERR_clear_error();
	_cleanup_free_ char *empty = tls_error_string();
	assert_string_equal(empty, "no detail from OpenSSL");
	X509 *c = NULL;
	assert_int_equal(tls_cert_from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n", 33, &c), -EINVAL);
	assert_int_not_equal(ERR_peek_error(), 0);
	_cleanup_free_ char *s = tls_error_string();
	assert_non_null(s);
	assert_true(strlen(s) > 0);
	assert_null(strchr(s, '\n'));
	assert_int_equal(ERR_peek_error(), 0);
}

/* ---- handshakes ---- */

struct pki {
	EVP_PKEY *ca_key, *srv_key, *cli_key;
	X509 *ca, *srv, *cli;
};

static void pki_make(struct pki *p, const char *extra_dns)
{
	p->ca_key = new_key();
	p->srv_key = new_key();
	p->cli_key = new_key();
	assert_int_equal(tls_ca_create(p->ca_key, &p->ca), 0);
	assert_int_equal(
	    tls_cert_issue_server(p->ca, p->ca_key, p->srv_key, INSTANCE, extra_dns, &p->srv), 0);
	assert_int_equal(tls_cert_create_client(p->cli_key, &p->cli), 0);
}

static void pki_done(struct pki *p)
{
	EVP_PKEY_free(p->ca_key);
	EVP_PKEY_free(p->srv_key);
	EVP_PKEY_free(p->cli_key);
	X509_free(p->ca);
	X509_free(p->srv);
	X509_free(p->cli);
}

struct side {
	SSL_CTX *ctx;
	int fd;
	int max_version; /* 0: none */
	bool ok;         /* handshake and one request/response done */
	long verify_result;
	int reason; /* reason of the first OpenSSL error, 0 if none */
	int version;
	char cipher[64];
	char sni[64];
	X509 *peer;
};

static void side_finish(struct side *s, SSL *ssl)
{
	s->verify_result = SSL_get_verify_result(ssl);
	s->reason = ERR_GET_REASON(ERR_peek_error());
	if (s->ok) {
		s->version = SSL_version(ssl);
		str_copy(s->cipher, sizeof s->cipher,
			 SSL_CIPHER_standard_name(SSL_get_current_cipher(ssl)));
	}
	s->peer = SSL_get1_peer_certificate(ssl);
	ERR_clear_error();
	/* Unblock the other side whatever happened here. */
	shutdown(s->fd, SHUT_RDWR);
}

static void *server_main(void *arg)
{
	struct side *s = arg;
	/* No cmocka asserts here: they longjmp, which only works on the test's own thread. */
	SSL *ssl = SSL_new(s->ctx);
	if (!ssl) {
		shutdown(s->fd, SHUT_RDWR);
		return NULL;
	}
	if (SSL_set_fd(ssl, s->fd) == 1 && SSL_accept(ssl) == 1) {
		const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
		str_copy(s->sni, sizeof s->sni, sni ? sni : "");
		char buf[4];
		s->ok = SSL_read(ssl, buf, sizeof buf) == 4 && memcmp(buf, "ping", 4) == 0 &&
			SSL_write(ssl, "pong", 4) == 4;
	}
	side_finish(s, ssl);
	SSL_free(ssl);
	return NULL;
}

static void client_run(struct side *s, const char *server_name)
{
	SSL *ssl = NULL;
	assert_int_equal(tls_ssl_new_client(s->ctx, server_name, &ssl), 0);
	if (s->max_version)
		assert_int_equal(SSL_set_max_proto_version(ssl, s->max_version), 1);
	assert_int_equal(SSL_set_fd(ssl, s->fd), 1);
	if (SSL_connect(ssl) == 1) {
		char buf[4];
		s->ok = SSL_write(ssl, "ping", 4) == 4 && SSL_read(ssl, buf, sizeof buf) == 4 &&
			memcmp(buf, "pong", 4) == 0;
	}
	side_finish(s, ssl);
	SSL_free(ssl);
}

static void side_done(struct side *s)
{
	X509_free(s->peer);
	close(s->fd);
}

static void handshake(SSL_CTX *server_ctx, SSL_CTX *client_ctx, const char *server_name,
		      int client_max_version, struct side *srv, struct side *cli)
{
	int fds[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
	/* A safety net against a hang, not a timing assertion. */
	struct timeval tv = {.tv_sec = 20};
	for (int i = 0; i < 2; i++)
		assert_int_equal(setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
	*srv = (struct side){.ctx = server_ctx, .fd = fds[0]};
	*cli = (struct side){.ctx = client_ctx, .fd = fds[1], .max_version = client_max_version};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, server_main, srv), 0);
	client_run(cli, server_name);
	assert_int_equal(pthread_join(t, NULL), 0);
}

static SSL_CTX *server_ctx(const struct tls_settings *s, X509 *cert, EVP_PKEY *key, X509 *anchor)
{
	SSL_CTX *ctx = NULL;
	_cleanup_free_ char *msg = NULL;
	int r = tls_ctx_new_server(s, cert, key, anchor, &ctx, &msg);
	if (r < 0)
		fail_msg("server context: %s", msg);
	return ctx;
}

static SSL_CTX *client_ctx(const struct tls_settings *s, X509 *cert, EVP_PKEY *key, X509 *ca)
{
	SSL_CTX *ctx = NULL;
	_cleanup_free_ char *msg = NULL;
	int r = tls_ctx_new_client(s, cert, key, ca, &ctx, &msg);
	if (r < 0)
		fail_msg("client context: %s", msg);
	return ctx;
}

static void test_handshake_ok(void **state)
{
	struct pki p = {0};
	pki_make(&p, NULL);
	_cleanup_(SSL_CTX_freep) SSL_CTX *sctx = server_ctx(NULL, p.srv, p.srv_key, p.cli);
	_cleanup_(SSL_CTX_freep) SSL_CTX *cctx = client_ctx(NULL, p.cli, p.cli_key, p.ca);
	struct side srv, cli;
	handshake(sctx, cctx, INSTANCE, 0, &srv, &cli);
	assert_true(cli.ok);
	assert_true(srv.ok);
	assert_int_equal(cli.verify_result, X509_V_OK);
	assert_int_equal(srv.verify_result, X509_V_OK);
	assert_int_equal(cli.version, TLS1_3_VERSION);
	assert_string_equal(srv.sni, INSTANCE);
	assert_int_equal(X509_cmp(srv.peer, p.cli), 0);
	assert_int_equal(X509_cmp(cli.peer, p.srv), 0);
	side_done(&srv);
	side_done(&cli);
	pki_done(&p);
}

static void test_handshake_wrong_name(void **state)
{
	struct pki p = {0};
	pki_make(&p, NULL);
	_cleanup_(SSL_CTX_freep) SSL_CTX *sctx = server_ctx(NULL, p.srv, p.srv_key, p.cli);
	_cleanup_(SSL_CTX_freep) SSL_CTX *cctx = client_ctx(NULL, p.cli, p.cli_key, p.ca);
	struct side srv, cli;
	handshake(sctx, cctx, "podvm-other-pod-12345678", 0, &srv, &cli);
	assert_false(cli.ok);
	assert_false(srv.ok);
	assert_int_equal(cli.verify_result, X509_V_ERR_HOSTNAME_MISMATCH);
	assert_int_equal(cli.reason, SSL_R_CERTIFICATE_VERIFY_FAILED);
	side_done(&srv);
	side_done(&cli);

	/* "podvm-server" is only valid when the certificate carries it. */
	handshake(sctx, cctx, "podvm-server", 0, &srv, &cli);
	assert_false(cli.ok);
	assert_int_equal(cli.verify_result, X509_V_ERR_HOSTNAME_MISMATCH);
	side_done(&srv);
	side_done(&cli);

	/* A CA that did not issue the server certificate. */
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *other_key = new_key();
	_cleanup_(X509_freep) X509 *other_ca = NULL;
	assert_int_equal(tls_ca_create(other_key, &other_ca), 0);
	_cleanup_(SSL_CTX_freep) SSL_CTX *cctx2 = client_ctx(NULL, p.cli, p.cli_key, other_ca);
	handshake(sctx, cctx2, INSTANCE, 0, &srv, &cli);
	assert_false(cli.ok);
	assert_false(srv.ok);
	assert_int_not_equal(cli.verify_result, X509_V_OK);
	side_done(&srv);
	side_done(&cli);

	/* insecure_skip_verify accepts all of that. */
	struct tls_settings insecure = {.insecure_skip_verify = true};
	_cleanup_(SSL_CTX_freep) SSL_CTX *cctx3 = client_ctx(&insecure, p.cli, p.cli_key, NULL);
	handshake(sctx, cctx3, "podvm-other-pod-12345678", 0, &srv, &cli);
	assert_true(cli.ok);
	assert_true(srv.ok);
	side_done(&srv);
	side_done(&cli);
	pki_done(&p);
}

static void test_handshake_client_without_cert(void **state)
{
	struct pki p = {0};
	pki_make(&p, NULL);
	_cleanup_(SSL_CTX_freep) SSL_CTX *sctx = server_ctx(NULL, p.srv, p.srv_key, p.cli);
	_cleanup_(SSL_CTX_freep) SSL_CTX *cctx = client_ctx(NULL, NULL, NULL, p.ca);
	struct side srv, cli;
	handshake(sctx, cctx, INSTANCE, 0, &srv, &cli);
	assert_false(srv.ok);
	assert_false(cli.ok);
	assert_int_equal(srv.reason, SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE);
	assert_null(srv.peer);
	side_done(&srv);
	side_done(&cli);
	pki_done(&p);
}

static void test_handshake_client_not_trusted(void **state)
{
	struct pki p = {0};
	pki_make(&p, NULL);
	/* Another adaptor's client certificate, same profile. */
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *other_key = new_key();
	_cleanup_(X509_freep) X509 *other = NULL;
	assert_int_equal(tls_cert_create_client(other_key, &other), 0);
	_cleanup_(SSL_CTX_freep) SSL_CTX *sctx = server_ctx(NULL, p.srv, p.srv_key, p.cli);
	_cleanup_(SSL_CTX_freep) SSL_CTX *cctx = client_ctx(NULL, other, other_key, p.ca);
	struct side srv, cli;
	handshake(sctx, cctx, INSTANCE, 0, &srv, &cli);
	assert_false(srv.ok);
	assert_false(cli.ok);
	assert_int_not_equal(srv.verify_result, X509_V_OK);
	assert_int_equal(srv.reason, SSL_R_CERTIFICATE_VERIFY_FAILED);
	side_done(&srv);
	side_done(&cli);

	/* The server certificate is not a client certificate (EKU serverAuth only). */
	_cleanup_(SSL_CTX_freep) SSL_CTX *sctx2 = server_ctx(NULL, p.srv, p.srv_key, p.ca);
	_cleanup_(SSL_CTX_freep) SSL_CTX *cctx2 = client_ctx(NULL, p.srv, p.srv_key, p.ca);
	handshake(sctx2, cctx2, INSTANCE, 0, &srv, &cli);
	assert_false(srv.ok);
	assert_int_equal(srv.verify_result, X509_V_ERR_INVALID_PURPOSE);
	side_done(&srv);
	side_done(&cli);
	pki_done(&p);
}

/* An operator's client.crt is issued by its CA: re-sign our client profile by the CA. */
static X509 *client_cert_issued_by(X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *key)
{
	X509 *x = NULL;
	assert_int_equal(tls_cert_create_client(key, &x), 0);
	assert_int_equal(X509_set_issuer_name(x, X509_get_subject_name(ca)), 1);
	int i = X509_get_ext_by_NID(x, NID_authority_key_identifier, -1);
	assert_true(i >= 0);
	X509_EXTENSION_free(X509_delete_ext(x, i));
	assert_true(X509_sign(x, ca_key, EVP_sha256()) > 0);
	return x;
}

static void test_handshake_operator_ca(void **state)
{
	struct pki p = {0};
	pki_make(&p, "podvm-server");
	_cleanup_(X509_freep) X509 *op_cli = client_cert_issued_by(p.ca, p.ca_key, p.cli_key);
	/* Forwarder with -ca-cert-file, adaptor with CACERT_FILE and server name podvm-server. */
	_cleanup_(SSL_CTX_freep) SSL_CTX *sctx = server_ctx(NULL, p.srv, p.srv_key, p.ca);
	_cleanup_(SSL_CTX_freep) SSL_CTX *cctx = client_ctx(NULL, op_cli, p.cli_key, p.ca);
	struct side srv, cli;
	handshake(sctx, cctx, "podvm-server", 0, &srv, &cli);
	assert_true(cli.ok);
	assert_true(srv.ok);
	assert_string_equal(srv.sni, "podvm-server");
	assert_int_equal(X509_cmp(srv.peer, op_cli), 0);
	side_done(&srv);
	side_done(&cli);

	/* The instance name still matches too. */
	handshake(sctx, cctx, INSTANCE, 0, &srv, &cli);
	assert_true(cli.ok);
	assert_true(srv.ok);
	side_done(&srv);
	side_done(&cli);

	/* Like Go's certificate pools, a trust anchor need not be self-signed: the CA-issued
	 * client certificate alone is enough (this needs X509_V_FLAG_PARTIAL_CHAIN). */
	_cleanup_(SSL_CTX_freep) SSL_CTX *sctx_leaf = server_ctx(NULL, p.srv, p.srv_key, op_cli);
	handshake(sctx_leaf, cctx, INSTANCE, 0, &srv, &cli);
	assert_true(cli.ok);
	assert_true(srv.ok);
	assert_int_equal(srv.verify_result, X509_V_OK);
	side_done(&srv);
	side_done(&cli);
	pki_done(&p);
}

static void test_handshake_tls13_minimum(void **state)
{
	struct pki p = {0};
	pki_make(&p, NULL);
	struct tls_settings s13 = {.min_version = TLS1_3_VERSION};
	_cleanup_(SSL_CTX_freep) SSL_CTX *sctx = server_ctx(&s13, p.srv, p.srv_key, p.cli);
	_cleanup_(SSL_CTX_freep) SSL_CTX *cctx = client_ctx(NULL, p.cli, p.cli_key, p.ca);
	struct side srv, cli;
	handshake(sctx, cctx, INSTANCE, TLS1_2_VERSION, &srv, &cli);
	assert_false(srv.ok);
	assert_false(cli.ok);
	assert_int_equal(srv.reason, SSL_R_UNSUPPORTED_PROTOCOL);
	side_done(&srv);
	side_done(&cli);

	handshake(sctx, cctx, INSTANCE, 0, &srv, &cli);
	assert_true(srv.ok);
	assert_true(cli.ok);
	assert_int_equal(srv.version, TLS1_3_VERSION);
	side_done(&srv);
	side_done(&cli);

	/* The default minimum still allows a TLS 1.2 client. */
	_cleanup_(SSL_CTX_freep) SSL_CTX *sctx12 = server_ctx(NULL, p.srv, p.srv_key, p.cli);
	handshake(sctx12, cctx, INSTANCE, TLS1_2_VERSION, &srv, &cli);
	assert_true(srv.ok);
	assert_true(cli.ok);
	assert_int_equal(srv.version, TLS1_2_VERSION);
	side_done(&srv);
	side_done(&cli);
	pki_done(&p);
}

static void test_handshake_cipher_suites(void **state)
{
	struct pki p = {0};
	pki_make(&p, NULL);
	char *aes256[] = {"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", NULL};
	char *aes128[] = {"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", NULL};
	struct tls_settings s256 = {.cipher_suites = aes256};
	struct tls_settings s128 = {.cipher_suites = aes128};
	_cleanup_(SSL_CTX_freep) SSL_CTX *sctx = server_ctx(&s256, p.srv, p.srv_key, p.cli);
	_cleanup_(SSL_CTX_freep) SSL_CTX *cctx = client_ctx(NULL, p.cli, p.cli_key, p.ca);
	struct side srv, cli;
	handshake(sctx, cctx, INSTANCE, TLS1_2_VERSION, &srv, &cli);
	assert_true(srv.ok);
	assert_true(cli.ok);
	assert_string_equal(cli.cipher, aes256[0]);
	side_done(&srv);
	side_done(&cli);

	/* No suite in common. */
	_cleanup_(SSL_CTX_freep) SSL_CTX *cctx128 = client_ctx(&s128, p.cli, p.cli_key, p.ca);
	handshake(sctx, cctx128, INSTANCE, TLS1_2_VERSION, &srv, &cli);
	assert_false(srv.ok);
	assert_false(cli.ok);
	assert_int_equal(srv.reason, SSL_R_NO_SHARED_CIPHER);
	side_done(&srv);
	side_done(&cli);
	pki_done(&p);
}

static void test_ctx_errors(void **state)
{
	struct pki p = {0};
	pki_make(&p, NULL);
	SSL_CTX *ctx = NULL;
	char *msg = NULL;
	/* Key of another certificate. */
	assert_int_equal(tls_ctx_new_server(NULL, p.srv, p.cli_key, p.cli, &ctx, &msg), -EINVAL);
	assert_non_null(strstr(msg, "do not match"));
	free(TAKE_PTR(msg));
	assert_int_equal(tls_ctx_new_server(NULL, p.srv, p.srv_key, NULL, &ctx, &msg), -EINVAL);
	free(TAKE_PTR(msg));
	assert_int_equal(tls_ctx_new_server(NULL, NULL, NULL, p.cli, &ctx, &msg), -EINVAL);
	free(TAKE_PTR(msg));
	assert_int_equal(tls_ctx_new_client(NULL, p.cli, p.cli_key, NULL, &ctx, &msg), -EINVAL);
	free(TAKE_PTR(msg));
	assert_int_equal(tls_ctx_new_client(NULL, p.cli, NULL, p.ca, &ctx, &msg), -EINVAL);
	free(TAKE_PTR(msg));
	char *bad[] = {"TLS_NOPE", NULL};
	struct tls_settings s = {.cipher_suites = bad};
	assert_int_equal(tls_ctx_new_client(&s, p.cli, p.cli_key, p.ca, &ctx, &msg), -EINVAL);
	assert_non_null(strstr(msg, "TLS_NOPE"));
	free(TAKE_PTR(msg));
	struct tls_settings s11 = {.min_version = TLS1_1_VERSION};
	assert_int_equal(tls_ctx_new_server(&s11, p.srv, p.srv_key, p.cli, &ctx, &msg), -EINVAL);
	free(TAKE_PTR(msg));
	assert_null(ctx);
	/* Errors leave nothing behind for a later SSL_get_error(). */
	assert_int_equal(ERR_peek_error(), 0);
	pki_done(&p);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_key_is_p256),
	    cmocka_unit_test(test_ca_profile),
	    cmocka_unit_test(test_server_profile),
	    cmocka_unit_test(test_server_extra_dns),
	    cmocka_unit_test(test_server_rejects_bad_input),
	    cmocka_unit_test(test_client_profile),
	    cmocka_unit_test(test_clamped_to_issuer),
	    cmocka_unit_test(test_pem_round_trip),
	    cmocka_unit_test(test_pem_rejects),
	    cmocka_unit_test(test_files),
	    cmocka_unit_test(test_min_version),
	    cmocka_unit_test(test_cipher_suites),
	    cmocka_unit_test(test_error_string),
	    cmocka_unit_test(test_handshake_ok),
	    cmocka_unit_test(test_handshake_wrong_name),
	    cmocka_unit_test(test_handshake_client_without_cert),
	    cmocka_unit_test(test_handshake_client_not_trusted),
	    cmocka_unit_test(test_handshake_operator_ca),
	    cmocka_unit_test(test_handshake_tls13_minimum),
	    cmocka_unit_test(test_handshake_cipher_suites),
	    cmocka_unit_test(test_ctx_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

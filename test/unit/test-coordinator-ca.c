/* Unit tests for coordinator/ca.c: every field and extension of the root, intermediate, mesh CA
 * and leaf certificates; chains verified with X509_verify_cert; mesh key rotation. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <time.h>

#include "coordinator/ca.h"
#include "tls/tls.h"

static int64_t now_sec(void)
{
	return (int64_t)time(NULL);
}

static int64_t time_of(const ASN1_TIME *t)
{
	struct tm tm;
	assert_int_equal(ASN1_TIME_to_tm(t, &tm), 1);
	return (int64_t)timegm(&tm);
}

static int64_t plus_years(int64_t t, int years)
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	tm.tm_year += years;
	return (int64_t)timegm(&tm);
}

static void assert_cn(const X509_NAME *n, const char *want)
{
	assert_int_equal(X509_NAME_entry_count(n), 1);
	char buf[128];
	assert_true(X509_NAME_get_text_by_NID((X509_NAME *)n, NID_commonName, buf, sizeof(buf)) >
		    0);
	assert_string_equal(buf, want);
}

static void assert_serial(X509 *x)
{
	const ASN1_INTEGER *s = X509_get0_serialNumber(x);
	assert_int_equal(ASN1_STRING_type(s), V_ASN1_INTEGER); /* positive */
	assert_int_equal(ASN1_STRING_length(s), 16);
	assert_true(ASN1_STRING_get0_data(s)[0] != 0);
}

static void assert_ski(X509 *x)
{
	uint8_t want[20];
	unsigned int n = 0;
	assert_int_equal(X509_pubkey_digest(x, EVP_sha1(), want, &n), 1);
	assert_int_equal(n, 20);
	const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(x);
	assert_non_null(ski);
	assert_int_equal(ASN1_STRING_length(ski), 20);
	assert_memory_equal(ASN1_STRING_get0_data(ski), want, 20);
}

static void assert_aki(X509 *x, X509 *issuer)
{
	const ASN1_OCTET_STRING *aki = X509_get0_authority_key_id(x);
	const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(issuer);
	assert_non_null(aki);
	assert_int_equal(ASN1_OCTET_STRING_cmp(aki, ski), 0);
}

static bool ext_critical(X509 *x, int nid)
{
	int i = X509_get_ext_by_NID(x, nid, -1);
	assert_true(i >= 0);
	assert_int_equal(X509_get_ext_by_NID(x, nid, i), -1); /* exactly once */
	return X509_EXTENSION_get_critical(X509_get_ext(x, i));
}

static void assert_ca_profile(X509 *x, const char *cn, X509 *issuer, int64_t now)
{
	assert_int_equal(X509_get_version(x), X509_VERSION_3);
	assert_cn(X509_get_subject_name(x), cn);
	assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(issuer)), 0);
	assert_serial(x);
	assert_int_equal(X509_get_signature_nid(x), NID_ecdsa_with_SHA384);
	assert_int_equal(time_of(X509_get0_notBefore(x)), now - 3600);
	assert_int_equal(time_of(X509_get0_notAfter(x)), plus_years(now, 10));
	assert_true(ext_critical(x, NID_basic_constraints));
	assert_true(ext_critical(x, NID_key_usage));
	assert_int_equal(X509_check_ca(x), 1);
	assert_int_equal(X509_get_key_usage(x),
			 KU_KEY_CERT_SIGN | KU_CRL_SIGN | KU_DIGITAL_SIGNATURE);
	assert_false(ext_critical(x, NID_subject_key_identifier));
	assert_false(ext_critical(x, NID_authority_key_identifier));
	assert_ski(x);
	assert_aki(x, issuer);
	assert_int_equal(X509_get_ext_count(x), 4);
	assert_int_equal(X509_verify(x, X509_get0_pubkey(issuer)), 1);
}

/* 1 when leaf chains to anchor (with the given untrusted intermediates), else 0. */
static int verify(X509 *leaf, X509 *anchor, X509 *untrusted)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_add_cert(store, anchor);
	STACK_OF(X509) *chain = sk_X509_new_null();
	if (untrusted)
		sk_X509_push(chain, untrusted);
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	assert_int_equal(X509_STORE_CTX_init(ctx, store, leaf, chain), 1);
	X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_X509_STRICT);
	X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
	int r = X509_verify_cert(ctx);
	if (r == 1)
		assert_int_equal(X509_STORE_CTX_get_error(ctx), X509_V_OK);
	X509_STORE_CTX_free(ctx);
	sk_X509_free(chain);
	X509_STORE_free(store);
	ERR_clear_error();
	return r == 1 ? 1 : 0;
}

struct fixture {
	struct secrets *secrets;
	struct ca *ca;
	int64_t now;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	f->now = now_sec();
	assert_int_equal(secrets_generate(&f->secrets), 0);
	assert_int_equal(ca_new(f->secrets->root_key, NULL, f->now, &f->ca), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	ca_free(f->ca);
	secrets_free(f->secrets);
	free(f);
	return 0;
}

static void test_ca_certs(void **state)
{
	struct fixture *f = *state;
	struct ca *ca = f->ca;
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(ca->root), f->secrets->root_key), 1);
	assert_ca_profile(ca->root, CA_ROOT_CN, ca->root, f->now);
	assert_ca_profile(ca->intermediate, CA_INTERMEDIATE_CN, ca->root, f->now);
	assert_ca_profile(ca->mesh, CA_INTERMEDIATE_CN, ca->mesh, f->now);
	/* Intermediate and mesh CA: one key, one subject. */
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(ca->intermediate), ca->mesh_key), 1);
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(ca->mesh), ca->mesh_key), 1);
	assert_int_equal(EVP_PKEY_get_bits(ca->mesh_key), 384);
	assert_int_equal(EVP_PKEY_eq(ca->mesh_key, ca->root_key), 0);
	assert_int_equal(
	    X509_NAME_cmp(X509_get_subject_name(ca->intermediate), X509_get_subject_name(ca->mesh)),
	    0);
	/* The intermediate chains to the root; the mesh CA is its own anchor. */
	assert_int_equal(verify(ca->intermediate, ca->root, NULL), 1);
}

static X509 *issue(struct ca *ca, EVP_PKEY *pod, char **sans, const char *id, int64_t now)
{
	struct manifest_policy p = {.sans = sans, .workload_secret_id = (char *)id};
	p.n_sans = strv_length(sans);
	for (size_t i = 0; i < 32; i++)
		p.digest[i] = (uint8_t)(0xa0 + i);
	X509 *x = NULL;
	assert_int_equal(ca_issue_leaf(ca, pod, &p, now, &x), 0);
	return x;
}

static void test_leaf(void **state)
{
	struct fixture *f = *state;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pod = NULL;
	assert_int_equal(tls_key_generate(&pod), 0);
	char *sans[] = {"10.0.0.7",
			"web",
			"web.default.svc.cluster.local",
			"spiffe://cluster.local/ns/default/sa/web",
			"fd00::1",
			NULL};
	_cleanup_(X509_freep) X509 *x =
	    issue(f->ca, pod, sans, "apps/v1/Deployment/default/web", f->now);

	assert_int_equal(X509_get_version(x), X509_VERSION_3);
	assert_cn(X509_get_subject_name(x), "web"); /* first dNSName, not the first SAN */
	assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(f->ca->mesh)),
			 0);
	assert_serial(x);
	assert_int_equal(X509_get_signature_nid(x), NID_ecdsa_with_SHA384);
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(x), pod), 1);
	assert_int_equal(time_of(X509_get0_notBefore(x)), f->now - 3600);
	assert_int_equal(time_of(X509_get0_notAfter(x)), plus_years(f->now, 1));

	assert_true(ext_critical(x, NID_basic_constraints));
	assert_int_equal(X509_check_ca(x), 0);
	assert_true(ext_critical(x, NID_key_usage));
	assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE);
	assert_false(ext_critical(x, NID_ext_key_usage));
	assert_int_equal(X509_get_extended_key_usage(x), XKU_SSL_SERVER | XKU_SSL_CLIENT);
	assert_false(ext_critical(x, NID_authority_key_identifier));
	assert_aki(x, f->ca->mesh);
	assert_aki(x, f->ca->intermediate);
	assert_false(ext_critical(x, NID_subject_alt_name));

	GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	assert_int_equal(sk_GENERAL_NAME_num(names), 5);
	static const int types[] = {GEN_IPADD, GEN_DNS, GEN_DNS, GEN_URI, GEN_IPADD};
	for (int i = 0; i < 5; i++)
		assert_int_equal(sk_GENERAL_NAME_value(names, i)->type, types[i]);
	const ASN1_OCTET_STRING *ip = sk_GENERAL_NAME_value(names, 0)->d.iPAddress;
	assert_int_equal(ASN1_STRING_length(ip), 4);
	assert_memory_equal(ASN1_STRING_get0_data(ip), "\x0a\x00\x00\x07", 4);
	assert_int_equal(ASN1_STRING_length(sk_GENERAL_NAME_value(names, 4)->d.iPAddress), 16);
	assert_string_equal(
	    (const char *)ASN1_STRING_get0_data(sk_GENERAL_NAME_value(names, 2)->d.dNSName),
	    "web.default.svc.cluster.local");
	assert_string_equal((const char *)ASN1_STRING_get0_data(
				sk_GENERAL_NAME_value(names, 3)->d.uniformResourceIdentifier),
			    "spiffe://cluster.local/ns/default/sa/web");
	GENERAL_NAMES_free(names);

	ASN1_OBJECT *obj = OBJ_txt2obj(CA_OID_WORKLOAD_SECRET_ID, 1);
	int i = X509_get_ext_by_OBJ(x, obj, -1);
	ASN1_OBJECT_free(obj);
	assert_true(i >= 0);
	X509_EXTENSION *e = X509_get_ext(x, i);
	assert_false(X509_EXTENSION_get_critical(e));
	const ASN1_OCTET_STRING *v = X509_EXTENSION_get_data(e);
	const char want[] = "\x0c\x1e"
			    "apps/v1/Deployment/default/web";
	assert_int_equal(ASN1_STRING_length(v), sizeof(want) - 1);
	assert_memory_equal(ASN1_STRING_get0_data(v), want, sizeof(want) - 1);
	assert_int_equal(X509_get_ext_count(x), 6);

	/* Leaf -> mesh CA (trust in this manifest), and leaf -> intermediate -> root. */
	assert_int_equal(verify(x, f->ca->mesh, NULL), 1);
	assert_int_equal(verify(x, f->ca->root, f->ca->intermediate), 1);
	assert_int_equal(verify(x, f->ca->root, NULL), 0);
	assert_int_equal(X509_check_host(x, "web.default.svc.cluster.local", 0, 0, NULL), 1);
	assert_int_equal(X509_check_ip_asc(x, "10.0.0.7", 0), 1);
}

static void test_leaf_without_id_and_cn_rules(void **state)
{
	struct fixture *f = *state;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pod = NULL;
	assert_int_equal(tls_key_generate(&pod), 0);
	char *none[] = {NULL};
	_cleanup_(X509_freep) X509 *x = issue(f->ca, pod, none, NULL, f->now);
	assert_cn(X509_get_subject_name(x), "workload-a0a1a2a3a4a5a6a7");
	assert_int_equal(X509_get_ext_by_NID(x, NID_subject_alt_name, -1), -1);
	assert_int_equal(X509_get_ext_count(x), 4);
	assert_int_equal(verify(x, f->ca->mesh, NULL), 1);

	uint8_t d[32] = {0};
	char cn[CA_CN_MAX + 1];
	char *ips[] = {"192.168.1.1", "spiffe://x/y", NULL};
	ca_leaf_common_name(ips, 2, d, cn);
	assert_string_equal(cn, "192.168.1.1");
	char *uris[] = {"spiffe://x/y", "10.1.1.1", NULL};
	ca_leaf_common_name(uris, 2, d, cn);
	assert_string_equal(cn, "spiffe://x/y");
	char longname[100];
	memset(longname, 'a', 99);
	longname[99] = 0;
	char *longs[] = {longname, NULL};
	ca_leaf_common_name(longs, 1, d, cn);
	assert_int_equal(strlen(cn), 64);
	ca_leaf_common_name(NULL, 0, d, cn);
	assert_string_equal(cn, "workload-0000000000000000");
	_cleanup_(X509_freep) X509 *y = issue(f->ca, pod, longs, "", f->now);
	assert_int_equal(verify(y, f->ca->mesh, NULL), 1);
}

static void test_rotation(void **state)
{
	struct fixture *f = *state;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pod = NULL;
	assert_int_equal(tls_key_generate(&pod), 0);
	char *sans[] = {"a", NULL};
	_cleanup_(X509_freep) X509 *old_leaf = issue(f->ca, pod, sans, NULL, f->now);
	_cleanup_(X509_freep) X509 *old_root = X509_dup(f->ca->root);
	_cleanup_(X509_freep) X509 *old_mesh = X509_dup(f->ca->mesh);
	_cleanup_(X509_freep) X509 *old_inter = X509_dup(f->ca->intermediate);
	EVP_PKEY *old_key = f->ca->mesh_key;
	EVP_PKEY_up_ref(old_key);

	assert_int_equal(ca_rotate_mesh(f->ca, f->now), 0);
	assert_int_equal(EVP_PKEY_eq(old_key, f->ca->mesh_key), 0);
	assert_int_equal(X509_cmp(old_root, f->ca->root), 0);
	_cleanup_(X509_freep) X509 *leaf = issue(f->ca, pod, sans, NULL, f->now);
	assert_int_equal(verify(leaf, f->ca->mesh, NULL), 1);
	assert_int_equal(verify(leaf, old_mesh, NULL), 0);
	assert_int_equal(verify(old_leaf, f->ca->mesh, NULL), 0);
	/* Both generations chain to the one root. */
	assert_int_equal(verify(leaf, old_root, f->ca->intermediate), 1);
	assert_int_equal(verify(old_leaf, old_root, old_inter), 1);
	assert_int_equal(verify(old_leaf, old_root, f->ca->intermediate), 0);

	/* A CA rebuilt from the same root key and the old mesh key (peer recovery) verifies the
	 * old leaves with its mesh CA. */
	struct ca *again = NULL;
	assert_int_equal(ca_new(f->secrets->root_key, old_key, f->now, &again), 0);
	assert_int_equal(verify(old_leaf, again->mesh, NULL), 1);
	assert_int_equal(verify(old_leaf, again->root, again->intermediate), 1);
	assert_int_equal(verify(old_leaf, old_root, again->intermediate), 1);
	ca_free(again);
	EVP_PKEY_free(old_key);
}

static void test_mesh_cert_and_pem(void **state)
{
	struct fixture *f = *state;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pod = NULL;
	assert_int_equal(tls_key_generate(&pod), 0);
	char *sans[] = {"web", NULL};
	struct manifest_policy p = {.sans = sans, .n_sans = 1, .workload_secret_id = "wid"};
	struct ca_mesh_cert c = {};
	assert_int_equal(ca_new_mesh_cert(f->ca, f->secrets, &p, pod, f->now, &c), 0);
	assert_true(c.has_workload_secret);
	uint8_t w[64];
	assert_int_equal(secrets_workload_secret(f->secrets, "wid", w), 0);
	assert_memory_equal(c.workload_secret, w, 64);
	/* chain = leaf then intermediate */
	BIO *b = BIO_new_mem_buf(c.chain_pem, -1);
	X509 *leaf = PEM_read_bio_X509(b, NULL, NULL, NULL);
	X509 *inter = PEM_read_bio_X509(b, NULL, NULL, NULL);
	assert_null(PEM_read_bio_X509(b, NULL, NULL, NULL));
	ERR_clear_error();
	BIO_free(b);
	assert_non_null(leaf);
	assert_int_equal(X509_cmp(inter, f->ca->intermediate), 0);
	X509 *mesh = NULL, *root = NULL;
	assert_int_equal(tls_cert_from_pem(c.mesh_ca_pem, strlen(c.mesh_ca_pem), &mesh), 0);
	assert_int_equal(tls_cert_from_pem(c.root_pem, strlen(c.root_pem), &root), 0);
	assert_int_equal(verify(leaf, mesh, NULL), 1);
	assert_int_equal(verify(leaf, root, inter), 1);
	X509_free(leaf);
	X509_free(inter);
	X509_free(mesh);
	X509_free(root);
	ca_mesh_cert_done(&c);

	p.workload_secret_id = NULL;
	assert_int_equal(ca_new_mesh_cert(f->ca, f->secrets, &p, pod, f->now, &c), 0);
	assert_false(c.has_workload_secret);
	ca_mesh_cert_done(&c);

	_cleanup_secret_ char *pem = NULL;
	assert_int_equal(ca_mesh_key_to_pem(f->ca, &pem), 0);
	assert_true(str_startswith(pem, "-----BEGIN EC PRIVATE KEY-----\n"));
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *k = NULL;
	assert_int_equal(ca_mesh_key_from_pem(pem, strlen(pem), &k), 0);
	assert_int_equal(EVP_PKEY_eq(k, f->ca->mesh_key), 1);
	_cleanup_secret_ char *p256 = NULL;
	assert_int_equal(tls_key_to_pem(pod, &p256), 0);
	EVP_PKEY *bad = NULL;
	assert_int_equal(ca_mesh_key_from_pem(p256, strlen(p256), &bad), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_ca_certs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_leaf, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_leaf_without_id_and_cn_rules, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_mesh_cert_and_pem, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

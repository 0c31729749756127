/* Unit tests for coordinator/crl.c: AMD CRLs fetched from a KDS stand-in on loopback (paths per
 * product and VCEK/VLEK), kept in memory and in the cache directory, read back offline, refused
 * when expired or malformed, and a failed fetch not repeated by every handshake. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <openssl/x509.h>

#include "coordinator/daemon.h"
#include "http-test-server.h"
#include "tls/tls.h"

/* A DER CRL whose nextUpdate is now + next_sec. */
static void make_crl(int64_t next_sec, uint8_t **ret, size_t *ret_len)
{
	EVP_PKEY *key = NULL;
	assert_int_equal(tls_key_generate(&key), 0);
	X509_CRL *crl = X509_CRL_new();
	assert_non_null(crl);
	X509_NAME *name = X509_NAME_new();
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"ARK-Milan", -1,
				   -1, 0);
	assert_int_equal(X509_CRL_set_issuer_name(crl, name), 1);
	ASN1_TIME *last = ASN1_TIME_adj(NULL, time(NULL), 0, -3600);
	ASN1_TIME *next = ASN1_TIME_adj(NULL, time(NULL), 0, (long)next_sec);
	assert_int_equal(X509_CRL_set1_lastUpdate(crl, last), 1);
	assert_int_equal(X509_CRL_set1_nextUpdate(crl, next), 1);
	assert_true(X509_CRL_sign(crl, key, EVP_sha256()) > 0);
	unsigned char *der = NULL;
	int n = i2d_X509_CRL(crl, &der);
	assert_true(n > 0);
	*ret = malloc((size_t)n);
	memcpy(*ret, der, (size_t)n);
	*ret_len = (size_t)n;
	OPENSSL_free(der);
	ASN1_TIME_free(last);
	ASN1_TIME_free(next);
	X509_NAME_free(name);
	X509_CRL_free(crl);
	EVP_PKEY_free(key);
}

static char *kds_base(struct test_server *s)
{
	char *url = ts_url(s, "/");
	url[strlen(url) - 1] = 0; /* no trailing slash */
	return url;
}

static void test_fetch_cache_and_offline(void **state)
{
	uint8_t *der = NULL;
	size_t len = 0;
	make_crl(86400, &der, &len);
	struct ts_response resp[] = {{200, NULL, (const char *)der, len}};
	struct test_server s;
	assert_int_equal(ts_start(&s, resp, 1), 0);
	char dir[] = "/tmp/pp-crl-XXXXXX";
	assert_non_null(mkdtemp(dir));
	_cleanup_free_ char *url = kds_base(&s);

	struct coord_crl_cache *c = NULL;
	assert_int_equal(coord_crl_cache_new(url, dir, 5 * NSEC_PER_SEC, &c), 0);
	const uint8_t *got = NULL;
	size_t got_len = 0;
	assert_int_equal(coord_crl_get(c, ATTEST_SNP_MILAN, false, &got, &got_len), 0);
	assert_int_equal(got_len, len);
	assert_memory_equal(got, der, len);
	assert_int_equal(ts_n_requests(&s), 1);
	assert_string_equal(s.requests[0].target, "/vcek/v1/Milan/crl");

	/* Served from memory the second time. */
	assert_int_equal(coord_crl_get(c, ATTEST_SNP_MILAN, false, &got, &got_len), 0);
	assert_int_equal(ts_n_requests(&s), 1);

	/* VLEK chains have CRLs of their own. */
	assert_int_equal(coord_crl_get(c, ATTEST_SNP_GENOA, true, &got, &got_len), 0);
	assert_int_equal(ts_n_requests(&s), 2);
	assert_string_equal(s.requests[1].target, "/vlek/v1/Genoa/crl");
	coord_crl_cache_free(c);

	/* Offline: from the cache directory only; what was never fetched is missing. */
	_cleanup_free_ char *path = str_printf("%s/amd/Milan/crl.der", dir);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(coord_crl_cache_new(NULL, dir, 0, &c), 0);
	assert_int_equal(coord_crl_get(c, ATTEST_SNP_MILAN, false, &got, &got_len), 0);
	assert_memory_equal(got, der, len);
	assert_true(coord_crl_get(c, ATTEST_SNP_TURIN, false, &got, &got_len) < 0);
	assert_int_equal(ts_n_requests(&s), 2);
	coord_crl_cache_free(c);

	ts_stop(&s);
	assert_int_equal(unlink(path), 0);
	_cleanup_free_ char *vlek = str_printf("%s/amd/Genoa/vlek_crl.der", dir);
	assert_int_equal(unlink(vlek), 0);
	const char *subdirs[] = {"amd/Milan", "amd/Genoa", "amd"};
	for (size_t i = 0; i < ELEMENTSOF(subdirs); i++) {
		_cleanup_free_ char *d = str_printf("%s/%s", dir, subdirs[i]);
		assert_int_equal(rmdir(d), 0);
	}
	assert_int_equal(rmdir(dir), 0);
	free(der);
}

static void test_refusals_and_backoff(void **state)
{
	uint8_t *expired = NULL;
	size_t len = 0;
	make_crl(-60, &expired, &len);
	struct ts_response resp[] = {{200, NULL, (const char *)expired, len},
				     {200, NULL, "not a CRL", 0},
				     {503, NULL, "busy", 0}};
	struct test_server s;
	assert_int_equal(ts_start(&s, resp, 3), 0);
	_cleanup_free_ char *url = kds_base(&s);
	const uint8_t *got = NULL;
	size_t got_len = 0;

	/* An expired CRL is never handed out; the failure is not retried at once. */
	struct coord_crl_cache *c = NULL;
	assert_int_equal(coord_crl_cache_new(url, NULL, 5 * NSEC_PER_SEC, &c), 0);
	assert_int_equal(coord_crl_get(c, ATTEST_SNP_MILAN, false, &got, &got_len), -ESTALE);
	assert_int_equal(coord_crl_get(c, ATTEST_SNP_MILAN, false, &got, &got_len), -EAGAIN);
	assert_int_equal(ts_n_requests(&s), 1);
	/* Another product line is a separate entry: a malformed body is refused. */
	assert_true(coord_crl_get(c, ATTEST_SNP_GENOA, false, &got, &got_len) < 0);
	assert_int_equal(ts_n_requests(&s), 2);
	/* 503 is retried by lib/http, then refused. */
	assert_true(coord_crl_get(c, ATTEST_SNP_TURIN, false, &got, &got_len) < 0);
	assert_true(ts_n_requests(&s) >= 3);
	assert_int_equal(coord_crl_get(c, ATTEST_SNP_PRODUCT_UNKNOWN, false, &got, &got_len),
			 -EINVAL);
	coord_crl_cache_free(c);

	/* No KDS and no cache directory: nothing to give. */
	assert_int_equal(coord_crl_cache_new(NULL, NULL, 0, &c), 0);
	assert_int_equal(coord_crl_get(c, ATTEST_SNP_MILAN, false, &got, &got_len), -ENOENT);
	coord_crl_cache_free(c);
	ts_stop(&s);
	free(expired);
}

static void test_next_update(void **state)
{
	uint8_t *der = NULL;
	size_t len = 0;
	make_crl(7200, &der, &len);
	int64_t next = 0;
	assert_int_equal(coord_crl_next_update(der, len, &next), 0);
	int64_t delta = next - (int64_t)time(NULL);
	assert_true(delta > 7000 && delta <= 7200);
	assert_int_equal(coord_crl_next_update(der, len - 1, &next), -EBADMSG);
	assert_int_equal(coord_crl_next_update((const uint8_t *)"x", 1, &next), -EBADMSG);
	free(der);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fetch_cache_and_offline),
	    cmocka_unit_test(test_refusals_and_backoff),
	    cmocka_unit_test(test_next_update),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

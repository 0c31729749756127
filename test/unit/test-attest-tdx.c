/* Tests of lib/attest TDX: the real vectors of ../shared/attestation-vectors, byte mutations of a
 * real quote, and synthetic evidence built here from a test root down to signed quotes and
 * collateral, covering every TCB status and policy rule. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* paths here are short and bounded by the vector names */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "attest/attest.h"
#include "attest/tdx-internal.h"

static char vectors[PATH_MAX];
static char tmpdir[PATH_MAX];

static bool find_vectors(void)
{
	const char *root = getenv("PP_ROOT");
	char exe[PATH_MAX];
	if (root) {
		snprintf(vectors, sizeof(vectors), "%s/../shared/attestation-vectors", root);
		if (access(vectors, R_OK) == 0)
			return true;
	}
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return false;
	exe[n] = 0;
	char *slash = strrchr(exe, '/');
	if (!slash)
		return false;
	*slash = 0;
	snprintf(vectors, sizeof(vectors), "%s/../../../shared/attestation-vectors", exe);
	return access(vectors, R_OK) == 0;
}

static int64_t day(const char *iso)
{
	int64_t t;
	char buf[32];
	snprintf(buf, sizeof(buf), "%sT00:00:00Z", iso);
	assert_int_equal(tdx_parse_time(buf, &t), 0);
	return t;
}

static json_t *load_expected(const char *vec)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/%s/expected.json", vectors, vec);
	json_t *j = json_load_file(p, 0, NULL);
	assert_non_null(j);
	return j;
}

/* A ReferenceValues.tdx entry matching the vector's own key fields. */
static char *write_reference(const char *vec, bool with_td_attributes, const char *statuses)
{
	json_t *e = load_expected(vec);
	json_t *k = json_object_get(e, "key_fields");
	json_t *ref =
	    json_pack("{s:O,s:O,s:[O,O,O,O],s:O}", "MrTd", json_object_get(k, "mr_td"), "MrSeam",
		      json_object_get(k, "mr_seam"), "Rtmrs", json_object_get(k, "rtmr0"),
		      json_object_get(k, "rtmr1"), json_object_get(k, "rtmr2"),
		      json_object_get(k, "rtmr3"), "Xfam", json_object_get(k, "xfam"));
	assert_non_null(ref);
	if (with_td_attributes)
		json_object_set(ref, "TdAttributes", json_object_get(k, "td_attributes"));
	if (statuses)
		json_object_set_new(ref, "AllowedStatuses", json_loads(statuses, 0, NULL));
	char *path = str_printf("%s/ref-%s.json", tmpdir, vec);
	assert_int_equal(json_dump_file(ref, path, 0), 0);
	json_decref(ref);
	json_decref(e);
	return path;
}

static void report_data_of(const char *vec, uint8_t out[64])
{
	json_t *e = load_expected(vec);
	const char *h =
	    json_string_value(json_object_get(json_object_get(e, "key_fields"), "report_data"));
	assert_non_null(h);
	assert_int_equal(tdx_hex_decode(h, strlen(h), out, 64), 0);
	json_decref(e);
}

static const struct attest_check *find_check(const struct attest_result *r, const char *name)
{
	for (size_t i = 0; i < r->n_checks; i++)
		if (strcmp(r->checks[i].name, name) == 0)
			return &r->checks[i];
	return NULL;
}

static void want_check(const struct attest_result *r, const char *name, enum attest_check_status st)
{
	const struct attest_check *c = find_check(r, name);
	if (!c)
		fail_msg("check '%s' missing", name);
	if (c->status != st)
		fail_msg("check '%s': status %d, want %d (%s)", name, c->status, st, c->message);
}

struct vec {
	const char *dir;
	const char *evidence; /* default quote.bin */
	const char *base;     /* vector whose key fields build the reference (default dir) */
	const char *time;
	bool skip_crl, skip_collateral, no_td_attributes, own_anchor;
	const char *statuses;
	enum attest_error want;
	const char *pass[10];
	const char *fail[4];
};

#define CRYPTO_OK "pck chain", "qe report signature", "qe report data", "quote signature"
#define COLL_OK "tcb info signature", "qe identity signature", "qe identity match"

static const struct vec vecs[] = {
    {"tdx-v4-phala", .time = "2025-07-01", .want = ATTEST_OK,
     .pass = {CRYPTO_OK, COLL_OK, "root ca crl", "tcb status"}},
    {"tdx-v4-trustee-q4", .time = "2023-07-01", .want = ATTEST_E_DEBUG,
     .pass = {CRYPTO_OK, COLL_OK, "pck crl", "tcb status"}, .fail = {"debug"}},
    {"tdx-v5-gotdxguest", .time = "2026-02-20", .skip_crl = true, .want = ATTEST_OK,
     .pass = {CRYPTO_OK, COLL_OK, "tcb status"}},
    {"tdx-v4-spr-gotdxguest", .time = "2023-07-01", .want = ATTEST_E_TCB,
     .pass = {CRYPTO_OK, COLL_OK, "pck crl", "root ca crl"}, .fail = {"tcb status"}},
    {"tdx-v4-spr-gotdxguest", .evidence = "quote_trimmed.bin", .time = "2023-07-01",
     .want = ATTEST_E_TCB, .pass = {CRYPTO_OK, COLL_OK}, .fail = {"tcb status"}},
    {"tdx-v4-trustee-q6", .time = "2025-11-01", .skip_crl = true, .want = ATTEST_E_TCB,
     .pass = {CRYPTO_OK, COLL_OK}, .fail = {"tcb status"}},
    {"tdx-v4-trustee-q6", .time = "2025-11-01", .skip_crl = true,
     .statuses = "[\"UpToDate\",\"OutOfDate\"]", .want = ATTEST_OK,
     .pass = {CRYPTO_OK, COLL_OK, "tcb status", "seam module"}},
    {"tdx-v4-azure-trustee", .time = "2026-06-01", .skip_crl = true, .skip_collateral = true,
     .no_td_attributes = true, .want = ATTEST_E_POLICY, .pass = {CRYPTO_OK},
     .fail = {"td attributes"}},
    {"tdx-v4-azure-trustee", .time = "2026-06-01", .skip_crl = true, .skip_collateral = true,
     .want = ATTEST_OK, .pass = {CRYPTO_OK, "td attributes", "measurements", "report data"}},
    {"neg-tdx-teetype-flip", .base = "tdx-v4-phala", .time = "2025-07-01", .want = ATTEST_E_FORMAT,
     .fail = {"format"}},
    {"neg-tdx-pck-leaf-flip", .base = "tdx-v4-phala", .time = "2025-07-01", .want = ATTEST_E_CHAIN,
     .pass = {"quote signature", "qe report signature", "qe report data"}, .fail = {"pck chain"}},
    {"neg-tdx-wrong-root", .base = "tdx-v4-phala", .time = "2025-07-01", .own_anchor = true,
     .want = ATTEST_E_CHAIN, .pass = {"quote signature", "qe report signature"},
     .fail = {"pck chain"}},
    {"neg-tdx-qereport-flip", .base = "tdx-v4-phala", .time = "2025-07-01", .want = ATTEST_E_QE,
     .pass = {"quote signature", "pck chain"}, .fail = {"qe report signature"}},
    {"neg-tdx-qe-authdata-flip", .base = "tdx-v4-phala", .time = "2025-07-01", .want = ATTEST_E_QE,
     .pass = {"quote signature", "qe report signature", "pck chain"}, .fail = {"qe report data"}},
    {"neg-tdx-attkey-flip", .base = "tdx-v4-phala", .time = "2025-07-01", .want = ATTEST_E_QE,
     .pass = {"qe report signature", "pck chain"}, .fail = {"qe report data", "quote signature"}},
    {"neg-tdx-quote-sig-flip", .base = "tdx-v4-phala", .time = "2025-07-01",
     .want = ATTEST_E_SIGNATURE, .pass = {"qe report signature", "pck chain"},
     .fail = {"quote signature"}},
    {"neg-tdx-mrtd-flip", .base = "tdx-v4-phala", .time = "2025-07-01", .want = ATTEST_E_SIGNATURE,
     .pass = {"qe report signature", "pck chain"}, .fail = {"quote signature"}},
    {"neg-tdx-rtmr0-flip", .base = "tdx-v4-phala", .time = "2025-07-01", .want = ATTEST_E_SIGNATURE,
     .pass = {"qe report signature", "pck chain"}, .fail = {"quote signature"}},
    {"neg-tdx-reportdata-flip", .base = "tdx-v4-phala", .time = "2025-07-01",
     .want = ATTEST_E_SIGNATURE, .pass = {"qe report signature", "pck chain"},
     .fail = {"quote signature"}},
    {"neg-tdx-tcbinfo-tamper", .base = "tdx-v4-phala", .time = "2025-07-01",
     .want = ATTEST_E_COLLATERAL, .pass = {CRYPTO_OK, "qe identity signature"},
     .fail = {"tcb info signature"}},
    {"neg-tdx-qeid-tamper", .base = "tdx-v4-phala", .time = "2025-07-01",
     .want = ATTEST_E_COLLATERAL, .pass = {CRYPTO_OK, "tcb info signature"},
     .fail = {"qe identity signature"}},
    {"neg-tdx-stale-collateral", .base = "tdx-v4-phala", .time = "2025-08-01",
     .want = ATTEST_E_COLLATERAL_EXPIRED, .pass = {CRYPTO_OK, "tcb info signature"},
     .fail = {"tcb info validity", "qe identity validity", "pck crl"}},
};

static void run_vector(const struct vec *v)
{
	char dir[PATH_MAX], ev[PATH_MAX], anchor[PATH_MAX];
	uint8_t rd[64];
	const char *base = v->base ? v->base : v->dir;
	snprintf(dir, sizeof(dir), "%s/%s", vectors, v->dir);
	snprintf(ev, sizeof(ev), "%s/%s", dir, v->evidence ? v->evidence : "quote.bin");
	snprintf(anchor, sizeof(anchor), "%s/intel_sgx_root_ca.pem", dir);
	_cleanup_free_ char *ref = write_reference(base, !v->no_td_attributes, v->statuses);
	report_data_of(base, rd);
	struct attest_files f = {
	    .evidence = ev,
	    .collateral_dir = dir,
	    .reference = ref,
	    .report_data = rd,
	    .now_sec = day(v->time),
	    .skip_crl = v->skip_crl,
	    .skip_collateral = v->skip_collateral,
	    .trust_anchor = v->own_anchor ? anchor : NULL,
	};
	struct attest_result r = {0};
	_cleanup_free_ char *msg = NULL;
	int k = attest_tdx_verify_files(&f, &r, &msg);
	if (k < 0)
		fail_msg("%s: %s", v->dir, msg ? msg : strerror(-k));
	if (r.error != v->want || getenv("TDX_VERBOSE")) {
		print_message("%s (%s):\n", v->dir, attest_error_name(r.error));
		for (size_t i = 0; i < r.n_checks; i++)
			print_message("  %s: %d %s: %s\n", r.checks[i].name, r.checks[i].status,
				      attest_error_name(r.checks[i].code), r.checks[i].message);
	}
	if (r.error != v->want)
		fail_msg("%s: error %s, want %s", v->dir, attest_error_name(r.error),
			 attest_error_name(v->want));
	assert_int_equal(r.accepted, v->want == ATTEST_OK);
	for (size_t i = 0; i < ELEMENTSOF(v->pass) && v->pass[i]; i++)
		want_check(&r, v->pass[i], ATTEST_CHECK_PASS);
	for (size_t i = 0; i < ELEMENTSOF(v->fail) && v->fail[i]; i++)
		want_check(&r, v->fail[i], ATTEST_CHECK_FAIL);
	json_t *j = NULL;
	assert_int_equal(attest_result_to_json(&r, &j), 0);
	json_decref(j);
	attest_result_done(&r);
}

static void test_vectors(void **state)
{
	if (!vectors[0])
		skip();
	for (size_t i = 0; i < ELEMENTSOF(vecs); i++)
		run_vector(&vecs[i]);
}

/* The expected outcomes of the positive vectors' crypto checks as their expected.json says. */
static void test_vectors_expected_json(void **state)
{
	static const char *const dirs[] = {"tdx-v4-phala",      "tdx-v4-trustee-q4",
					   "tdx-v5-gotdxguest", "tdx-v4-spr-gotdxguest",
					   "tdx-v4-trustee-q6", "tdx-v4-azure-trustee"};
	if (!vectors[0])
		skip();
	for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
		json_t *e = load_expected(dirs[i]);
		json_t *x = json_object_get(e, "expected");
		char ev[PATH_MAX];
		snprintf(ev, sizeof(ev), "%s/%s/quote.bin", vectors, dirs[i]);
		int64_t now;
		assert_int_equal(tdx_parse_time(json_string_value(json_object_get(
						    x, "recommended_verification_time_utc")),
						&now),
				 0);
		struct attest_files f = {
		    .evidence = ev, .now_sec = now, .skip_crl = true, .skip_collateral = true};
		struct attest_result r = {0};
		assert_int_equal(attest_tdx_verify_files(&f, &r, NULL), 0);
		static const char *const map[][2] = {
		    {"quote_signature_valid", "quote signature"},
		    {"qe_report_signature_valid", "qe report signature"},
		    {"qe_report_data_binding_valid", "qe report data"},
		    {"pck_chain_valid_to_intel_sgx_root_ca", "pck chain"},
		};
		for (size_t k = 0; k < ELEMENTSOF(map); k++)
			want_check(&r, map[k][1],
				   json_is_true(json_object_get(x, map[k][0])) ? ATTEST_CHECK_PASS
									       : ATTEST_CHECK_FAIL);
		attest_result_done(&r);
		json_decref(e);
	}
}

static void test_vectors_key_fields(void **state)
{
	static const char *const dirs[] = {"tdx-v4-phala",      "tdx-v4-trustee-q4",
					   "tdx-v5-gotdxguest", "tdx-v4-spr-gotdxguest",
					   "tdx-v4-trustee-q6", "tdx-v4-azure-trustee"};
	if (!vectors[0])
		skip();
	for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
		char ev[PATH_MAX];
		snprintf(ev, sizeof(ev), "%s/%s/quote.bin", vectors, dirs[i]);
		json_t *e = load_expected(dirs[i]), *show = NULL;
		_cleanup_free_ char *msg = NULL;
		assert_int_equal(attest_tdx_show_file(ev, &show, &msg), 0);
		json_t *k = json_object_get(e, "key_fields");
		json_t *h = json_object_get(show, "header"), *b = json_object_get(show, "body");
		const char *key;
		json_t *want;
		size_t n = 0;
		json_object_foreach(k, key, want)
		{
			json_t *got;
			if (strcmp(key, "tee_type_hex") == 0)
				got = json_object_get(h, "tee_type");
			else if (strcmp(key, "tee_type_u32") == 0)
				continue;
			else if (strcmp(key, "fmspc") == 0)
				got = json_object_get(json_object_get(show, "pck_cert_extensions"),
						      "fmspc");
			else if (json_object_get(h, key))
				got = json_object_get(h, key);
			else
				got = json_object_get(b, key);
			if (!json_equal(got, want))
				fail_msg("%s: key field %s differs", dirs[i], key);
			n++;
		}
		assert_true(n >= 19);
		/* and the sizes the READMEs name */
		assert_true(json_equal(json_object_get(show, "sig_data_len"),
				       json_object_get(e, "sig_data_len")));
		assert_true(json_equal(json_object_get(show, "trailing_bytes_after_sig_data"),
				       json_object_get(e, "trailing_bytes_after_sig_data")));
		assert_true(
		    json_equal(json_object_get(json_object_get(show, "body_info"), "body_size"),
			       json_object_get(json_object_get(e, "body_info"), "body_size")));
		json_t *pe = json_object_get(e, "pck_cert_extensions"),
		       *pg = json_object_get(show, "pck_cert_extensions");
		assert_true(
		    json_equal(json_object_get(pe, "pcesvn"), json_object_get(pg, "pcesvn")));
		assert_true(json_equal(json_object_get(pe, "sgx_tcb_comp_svns"),
				       json_object_get(pg, "sgx_tcb_comp_svns")));
		json_decref(show);
		json_decref(e);
	}
}

/* ---- mutations of a real quote ---- */

static struct attest_tdx_quote *parse_buf(const uint8_t *b, size_t n)
{
	struct attest_tdx_quote *q = NULL;
	_cleanup_free_ char *msg = NULL;
	if (attest_tdx_quote_parse(b, n, &q, &msg) < 0)
		return NULL;
	return q;
}

/* Crypto-only verification (the mutations target signatures, not collateral). */
static bool crypto_accepts(const uint8_t *b, size_t n, const char *chain_pem, int64_t now)
{
	struct attest_tdx_quote *q = parse_buf(b, n);
	if (!q)
		return false;
	struct attest_tdx_options o = {
	    .now_sec = now, .skip_crl = true, .skip_collateral = true, .pck_chain_pem = chain_pem};
	struct attest_result r = {0};
	assert_int_equal(attest_tdx_verify(q, &o, &r), 0);
	bool ok = r.accepted;
	attest_result_done(&r);
	attest_tdx_quote_free(q);
	return ok;
}

static void test_mutations(void **state)
{
	char path[PATH_MAX];
	_cleanup_free_ char *data = NULL;
	size_t len = 0;
	if (!vectors[0])
		skip();
	snprintf(path, sizeof(path), "%s/tdx-v4-phala/quote.bin", vectors);
	assert_int_equal(read_file_bounded(path, 65536, &data, &len), 0);
	uint8_t *b = (uint8_t *)data;
	int64_t now = day("2025-07-01");
	struct attest_tdx_quote *q = parse_buf(b, len);
	assert_non_null(q);
	size_t signed_len = q->signed_len, sig_off = q->signed_len + 4, trailing = q->trailing_len;
	_cleanup_free_ char *chain = strdup(q->pck_chain_pem);
	attest_tdx_quote_free(q);
	assert_int_equal(signed_len, 632);
	assert_int_equal(trailing, 70);
	assert_true(crypto_accepts(b, len, NULL, now));

	for (size_t i = 0; i < signed_len; i++) {
		b[i] ^= 0x01;
		if (crypto_accepts(b, len, NULL, now))
			fail_msg("flipping signed byte %zu was accepted", i);
		b[i] ^= 0x01;
	}
	for (size_t i = sig_off; i < sig_off + 64; i++) {
		b[i] ^= 0x80;
		if (crypto_accepts(b, len, NULL, now))
			fail_msg("flipping signature byte %zu was accepted", i);
		b[i] ^= 0x80;
	}
	for (size_t i = len - trailing; i < len; i++) {
		b[i] ^= 0xff;
		if (!crypto_accepts(b, len, NULL, now))
			fail_msg("flipping unsigned padding byte %zu was rejected", i);
		b[i] ^= 0xff;
	}

	/* each certificate's signature value: its last DER bytes */
	BIO *bio = BIO_new_mem_buf(chain, -1);
	X509 *certs[3];
	for (int i = 0; i < 3; i++)
		assert_non_null(certs[i] = PEM_read_bio_X509(bio, NULL, NULL, NULL));
	BIO_free(bio);
	for (int c = 0; c < 3; c++) {
		unsigned char *der = NULL;
		int n = i2d_X509(certs[c], &der);
		assert_true(n > 70);
		for (int k = n - 64; k < n; k++) {
			der[k] ^= 0x01;
			BIO *out = BIO_new(BIO_s_mem());
			for (int i = 0; i < 3; i++) {
				if (i == c) {
					const unsigned char *p = der;
					X509 *x = d2i_X509(NULL, &p, n);
					if (x) {
						PEM_write_bio_X509(out, x);
						X509_free(x);
					}
				} else
					PEM_write_bio_X509(out, certs[i]);
			}
			BIO_write(out, "", 1);
			char *pem = NULL;
			BIO_get_mem_data(out, &pem);
			if (crypto_accepts(b, len, pem, now))
				fail_msg("flipping byte %d of certificate %d was accepted", k, c);
			BIO_free(out);
			der[k] ^= 0x01;
		}
		OPENSSL_free(der);
	}
	for (int i = 0; i < 3; i++)
		X509_free(certs[i]);
}

/* Truncations and a cap: parse never reads past its input. */
static void test_truncations(void **state)
{
	char path[PATH_MAX];
	_cleanup_free_ char *data = NULL;
	size_t len = 0;
	if (!vectors[0])
		skip();
	snprintf(path, sizeof(path), "%s/tdx-v5-gotdxguest/quote.bin", vectors);
	assert_int_equal(read_file_bounded(path, 65536, &data, &len), 0);
	for (size_t n = 0; n < len; n++) {
		uint8_t *copy = malloc(n ? n : 1);
		memcpy(copy, data, n);
		struct attest_tdx_quote *q = parse_buf(copy, n);
		assert_null(q);
		free(copy);
	}
	/* thousands of zero bytes after the quote are ignored */
	uint8_t *big = calloc(1, len + 20000);
	memcpy(big, data, len);
	assert_true(crypto_accepts(big, len + 20000, NULL, day("2026-02-20")));
	assert_false(crypto_accepts(big, 65537, NULL, day("2026-02-20")));
	free(big);
}

/* ---- synthetic evidence: own root, PCK CA, PCK leaf, TCB signing key, QE, quotes ---- */

struct pki {
	EVP_PKEY *root_key, *inter_key, *leaf_key, *tcb_key, *att_key;
	X509 *root, *inter, *leaf, *tcb;
	char *chain_pem;     /* leaf, inter, root */
	char *tcb_chain_pem; /* tcb signing, root */
	char *root_pem;
};
static struct pki pki;

static const uint8_t fmspc[6] = {0x00, 0x90, 0x6e, 0xd5, 0x00, 0x00};

struct der {
	uint8_t b[2048];
	size_t n;
};

static void der_put(struct der *d, const void *p, size_t n)
{
	assert_true(d->n + n <= sizeof(d->b));
	memcpy(d->b + d->n, p, n);
	d->n += n;
}

static void der_tlv(struct der *d, uint8_t tag, const void *p, size_t n)
{
	uint8_t h[4] = {tag};
	size_t hl = 2;
	if (n < 128)
		h[1] = (uint8_t)n;
	else if (n < 256)
		h[1] = 0x81, h[2] = (uint8_t)n, hl = 3;
	else
		h[1] = 0x82, h[2] = (uint8_t)(n >> 8), h[3] = (uint8_t)n, hl = 4;
	der_put(d, h, hl);
	der_put(d, p, n);
}

static void der_oid(struct der *d, const char *dotted)
{
	ASN1_OBJECT *o = OBJ_txt2obj(dotted, 1);
	unsigned char *p = NULL;
	int n = i2d_ASN1_OBJECT(o, &p);
	assert_true(n > 0);
	der_put(d, p, (size_t)n);
	OPENSSL_free(p);
	ASN1_OBJECT_free(o);
}

/* SEQUENCE { OID base.suffix, value } */
static void der_kv(struct der *out, const char *suffix, uint8_t tag, const void *v, size_t n)
{
	struct der in = {0};
	char oid[64];
	snprintf(oid, sizeof(oid), "1.2.840.113741.1.13.1%s", suffix);
	der_oid(&in, oid);
	der_tlv(&in, tag, v, n);
	der_tlv(out, 0x30, in.b, in.n);
}

static void sgx_extension(struct der *ext, uint8_t comp_svn, uint16_t pcesvn)
{
	struct der tcb = {0}, top = {0};
	uint8_t ppid[16] = {1}, cpusvn[16] = {0}, pceid[2] = {0, 0};
	for (int i = 1; i <= 16; i++) {
		char sfx[16];
		snprintf(sfx, sizeof(sfx), ".2.%d", i);
		der_kv(&tcb, sfx, 0x02, &comp_svn, 1);
	}
	uint8_t pv[2] = {(uint8_t)(pcesvn >> 8), (uint8_t)pcesvn};
	der_kv(&tcb, ".2.17", 0x02, pv[0] ? pv : pv + 1, pv[0] ? 2 : 1);
	der_kv(&tcb, ".2.18", 0x04, cpusvn, 16);
	der_kv(&top, ".1", 0x04, ppid, 16);
	der_kv(&top, ".2", 0x30, tcb.b, tcb.n);
	der_kv(&top, ".3", 0x04, pceid, 2);
	der_kv(&top, ".4", 0x04, fmspc, 6);
	uint8_t sgxtype = 0;
	der_kv(&top, ".5", 0x0a, &sgxtype, 1);
	der_tlv(ext, 0x30, top.b, top.n);
}

static X509 *make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, bool ca,
		       const struct der *sgx)
{
	X509 *x = X509_new();
	static long serial = 1;
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_NAME *n = X509_NAME_new();
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)"Test Corp", -1, -1,
				   0);
	X509_set_subject_name(x, n);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n);
	X509_NAME_free(n);
	ASN1_TIME_set(X509_getm_notBefore(x), day("2020-01-01"));
	ASN1_TIME_set(X509_getm_notAfter(x), day("2040-01-01"));
	X509_set_pubkey(x, key);
	X509V3_CTX v3;
	X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
						ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	e = X509V3_EXT_conf_nid(NULL, &v3, NID_key_usage,
				ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
	X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	if (sgx) {
		ASN1_OBJECT *o = OBJ_txt2obj("1.2.840.113741.1.13.1", 1);
		ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
		ASN1_OCTET_STRING_set(os, sgx->b, (int)sgx->n);
		e = X509_EXTENSION_create_by_OBJ(NULL, o, 0, os);
		X509_add_ext(x, e, -1);
		X509_EXTENSION_free(e);
		ASN1_OCTET_STRING_free(os);
		ASN1_OBJECT_free(o);
	}
	assert_true(X509_sign(x, issuer_key, EVP_sha256()) > 0);
	return x;
}

static char *pem_of(X509 *const *certs, size_t n)
{
	BIO *b = BIO_new(BIO_s_mem());
	for (size_t i = 0; i < n; i++)
		PEM_write_bio_X509(b, certs[i]);
	char *p = NULL;
	long len = BIO_get_mem_data(b, &p);
	char *s = strndup(p, (size_t)len);
	BIO_free(b);
	return s;
}

static void sign_raw(EVP_PKEY *k, const void *data, size_t len, uint8_t out[64])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char der[80];
	size_t dl = sizeof(der);
	assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k), 1);
	assert_int_equal(EVP_DigestSign(md, der, &dl, data, len), 1);
	EVP_MD_CTX_free(md);
	const unsigned char *p = der;
	ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)dl);
	assert_non_null(s);
	BN_bn2binpad(ECDSA_SIG_get0_r(s), out, 32);
	BN_bn2binpad(ECDSA_SIG_get0_s(s), out + 32, 32);
	ECDSA_SIG_free(s);
}

static int pki_setup(void **state)
{
	struct der sgx = {0};
	pki.root_key = EVP_EC_gen("P-256");
	pki.inter_key = EVP_EC_gen("P-256");
	pki.leaf_key = EVP_EC_gen("P-256");
	pki.tcb_key = EVP_EC_gen("P-256");
	pki.att_key = EVP_EC_gen("P-256");
	sgx_extension(&sgx, 5, 13);
	pki.root = make_cert("Intel SGX Root CA", pki.root_key, NULL, pki.root_key, true, NULL);
	pki.inter = make_cert("Intel SGX PCK Platform CA", pki.inter_key, pki.root, pki.root_key,
			      true, NULL);
	pki.leaf = make_cert("Intel SGX PCK Certificate", pki.leaf_key, pki.inter, pki.inter_key,
			     false, &sgx);
	pki.tcb =
	    make_cert("Intel SGX TCB Signing", pki.tcb_key, pki.root, pki.root_key, false, NULL);
	X509 *chain[3] = {pki.leaf, pki.inter, pki.root}, *tchain[2] = {pki.tcb, pki.root};
	pki.chain_pem = pem_of(chain, 3);
	pki.tcb_chain_pem = pem_of(tchain, 2);
	pki.root_pem = pem_of(&pki.root, 1);
	return 0;
}

static int pki_teardown(void **state)
{
	EVP_PKEY_free(pki.root_key);
	EVP_PKEY_free(pki.inter_key);
	EVP_PKEY_free(pki.leaf_key);
	EVP_PKEY_free(pki.tcb_key);
	EVP_PKEY_free(pki.att_key);
	X509_free(pki.root);
	X509_free(pki.inter);
	X509_free(pki.leaf);
	X509_free(pki.tcb);
	free(pki.chain_pem);
	free(pki.tcb_chain_pem);
	free(pki.root_pem);
	return 0;
}

struct qcfg {
	uint16_t version;
	uint16_t body_type;
	uint8_t tee_tcb_svn[16];
	uint8_t tee_tcb_svn2[16];
	uint8_t td_attributes[8];
	uint8_t mr_td[48];
	uint8_t mr_seam[48];
	uint8_t mr_signer_seam[48];
	uint8_t mr_config_id[48];
	uint8_t mr_owner[48];
	uint8_t rtmr[4][48];
	uint8_t xfam[8];
	uint8_t report_data[64];
	uint16_t qe_isvsvn;
	bool bad_vendor;
	size_t trailing;
};

static void default_qcfg(struct qcfg *c)
{
	*c = (struct qcfg){.version = 4, .body_type = 2, .qe_isvsvn = 8};
	c->tee_tcb_svn[0] = 3;
	c->tee_tcb_svn[2] = 2;
	memcpy(c->tee_tcb_svn2, c->tee_tcb_svn, 16);
	c->td_attributes[3] = 0x10;
	memset(c->mr_td, 0xaa, 48);
	memset(c->mr_seam, 0x5e, 48);
	for (int i = 0; i < 4; i++)
		memset(c->rtmr[i], 0x10 + i, 48);
	c->xfam[0] = 0xe7;
	c->xfam[1] = 0x02;
	c->xfam[2] = 0x06;
	memset(c->report_data, 0x42, 64);
	memset(c->mr_config_id, 0xcd, 32);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

static uint8_t *make_quote(const struct qcfg *c, size_t *ret_len)
{
	static const uint8_t vendor[16] = {0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9,
					   0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07};
	size_t pem_len = strlen(pki.chain_pem) + 1; /* with the NUL real quotes carry */
	uint8_t *q = calloc(1, 8192 + c->trailing);
	size_t off = 48;
	put16(q, c->version);
	put16(q + 2, 2);
	put32(q + 4, 0x81);
	memcpy(q + 12, vendor, 16);
	if (c->bad_vendor)
		q[12] ^= 1;
	uint32_t body_size = c->body_type == 3 ? 648 : 584;
	if (c->version == 5) {
		put16(q + off, c->body_type);
		put32(q + off + 2, body_size);
		off += 6;
	}
	uint8_t *b = q + off;
	memcpy(b, c->tee_tcb_svn, 16);
	memcpy(b + 16, c->mr_seam, 48);
	memcpy(b + 64, c->mr_signer_seam, 48);
	memcpy(b + 120, c->td_attributes, 8);
	memcpy(b + 128, c->xfam, 8);
	memcpy(b + 136, c->mr_td, 48);
	memcpy(b + 184, c->mr_config_id, 48);
	memcpy(b + 232, c->mr_owner, 48);
	for (int i = 0; i < 4; i++)
		memcpy(b + 328 + 48 * i, c->rtmr[i], 48);
	memcpy(b + 520, c->report_data, 64);
	if (c->body_type == 3)
		memcpy(b + 584, c->tee_tcb_svn2, 16);
	off += body_size;
	size_t signed_len = off;

	uint8_t ak[65];
	size_t akl = sizeof(ak);
	assert_int_equal(EVP_PKEY_get_octet_string_param(pki.att_key, "pub", ak, sizeof(ak), &akl),
			 1);
	assert_int_equal(akl, 65);
	uint8_t auth[32];
	for (int i = 0; i < 32; i++)
		auth[i] = (uint8_t)i;
	size_t cert_size = 384 + 64 + 2 + 32 + 6 + pem_len;
	size_t sig_len = 134 + cert_size;
	put32(q + off, (uint32_t)sig_len);
	off += 4;
	uint8_t *s = q + off;
	sign_raw(pki.att_key, q, signed_len, s);
	memcpy(s + 64, ak + 1, 64);
	put16(s + 128, 6);
	put32(s + 130, (uint32_t)cert_size);
	uint8_t *cd = s + 134;
	/* QE report */
	memset(cd, 0x03, 16);
	cd[48] = 0x11;
	memset(cd + 128, 0xdc, 32);
	put16(cd + 256, 2);
	put16(cd + 258, c->qe_isvsvn);
	uint8_t h[64];
	memcpy(h, ak + 1, 64);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	EVP_DigestUpdate(md, ak + 1, 64);
	EVP_DigestUpdate(md, auth, 32);
	EVP_DigestFinal_ex(md, cd + 320, NULL);
	EVP_MD_CTX_free(md);
	sign_raw(pki.leaf_key, cd, 384, cd + 384);
	put16(cd + 448, 32);
	memcpy(cd + 450, auth, 32);
	put16(cd + 482, 5);
	put32(cd + 484, (uint32_t)pem_len);
	memcpy(cd + 488, pki.chain_pem, pem_len);
	off += sig_len;
	*ret_len = off + c->trailing;
	return q;
}

/* A TCB Info with one best level (status given) and one low OutOfDate level. */
static char *make_tcb_info(const char *status, const char *fmspc_hex, const char *next_update,
			   const char *modules, const char *mrsigner_hex)
{
	char sgx[512] = "", tdx[512] = "";
	size_t n = 0, m = 0;
	for (int i = 0; i < 16; i++) {
		n += (size_t)snprintf(sgx + n, sizeof(sgx) - n, "%s{\"svn\":5}", i ? "," : "");
		m += (size_t)snprintf(tdx + m, sizeof(tdx) - m, "%s{\"svn\":%d}", i ? "," : "",
				      i == 0   ? 3
				      : i == 2 ? 2
					       : 0);
	}
	char low[512] = "", lowtdx[512] = "";
	n = m = 0;
	for (int i = 0; i < 16; i++) {
		n += (size_t)snprintf(low + n, sizeof(low) - n, "%s{\"svn\":0}", i ? "," : "");
		m += (size_t)snprintf(lowtdx + m, sizeof(lowtdx) - m, "%s{\"svn\":%d}",
				      i ? "," : "", i == 2 ? 1 : 0);
	}
	return str_printf(
	    "{\"id\":\"TDX\",\"version\":3,\"issueDate\":\"2025-01-01T00:00:00Z\","
	    "\"nextUpdate\":\"%s\",\"fmspc\":\"%s\",\"pceId\":\"0000\",\"tcbType\":0,"
	    "\"tcbEvaluationDataNumber\":17,\"tdxModule\":{\"mrsigner\":\"%s\","
	    "\"attributes\":\"0000000000000000\",\"attributesMask\":\"FFFFFFFFFFFFFFFF\"}%s"
	    ",\"tcbLevels\":[{\"tcb\":{\"sgxtcbcomponents\":[%s],\"pcesvn\":13,"
	    "\"tdxtcbcomponents\":[%s]},\"tcbDate\":\"2024-03-13T00:00:00Z\",\"tcbStatus\":\"%s\"},"
	    "{\"tcb\":{\"sgxtcbcomponents\":[%s],\"pcesvn\":1,\"tdxtcbcomponents\":[%s]},"
	    "\"tcbDate\":\"2020-01-01T00:00:00Z\",\"tcbStatus\":\"OutOfDate\"}]}",
	    next_update ? next_update : "2025-12-31T00:00:00Z",
	    fmspc_hex ? fmspc_hex : "00906ED50000",
	    mrsigner_hex
		? mrsigner_hex
		: "000000000000000000000000000000000000000000000000000000000000000000000000"
		  "000000000000000000000000",
	    modules ? modules : "", sgx, tdx, status, low, lowtdx);
}

static char *make_qe_identity(const char *mrsigner_hex)
{
	return str_printf(
	    "{\"id\":\"TD_QE\",\"version\":2,\"issueDate\":\"2025-01-01T00:00:00Z\","
	    "\"nextUpdate\":\"2025-12-31T00:00:00Z\",\"tcbEvaluationDataNumber\":17,"
	    "\"miscselect\":\"00000000\",\"miscselectMask\":\"FFFFFFFF\","
	    "\"attributes\":\"11000000000000000000000000000000\","
	    "\"attributesMask\":\"FBFFFFFFFFFFFFFF0000000000000000\",\"mrsigner\":\"%s\","
	    "\"isvprodid\":2,\"tcbLevels\":[{\"tcb\":{\"isvsvn\":4},\"tcbDate\":"
	    "\"2024-03-13T00:00:00Z\",\"tcbStatus\":\"UpToDate\"}]}",
	    mrsigner_hex ? mrsigner_hex
			 : "DCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDC");
}

struct synth {
	struct qcfg q;
	char *tcb_info;
	char *qe_identity;
	struct attest_tdx_reference refs[2];
	size_t n_refs;
	unsigned accepted;
	struct attest_digest_rule rule;
	const uint8_t *report_data;
	bool builtin_root;
	int64_t now;
};

static void synth_init(struct synth *s)
{
	*s = (struct synth){.now = day("2025-06-01")};
	default_qcfg(&s->q);
}

static void synth_ref(struct synth *s)
{
	struct attest_tdx_reference *r = &s->refs[s->n_refs++];
	*r = (struct attest_tdx_reference){
	    .has_mr_seam = true,
	    .allowed_statuses = ATTEST_TDX_TCB_BIT(ATTEST_TDX_TCB_UP_TO_DATE),
	};
	memcpy(r->mr_td, s->q.mr_td, 48);
	memcpy(r->mr_seam, s->q.mr_seam, 48);
	memcpy(r->rtmrs, s->q.rtmr, sizeof(r->rtmrs));
	memcpy(r->xfam, s->q.xfam, 8);
	memcpy(r->td_attributes, s->q.td_attributes, 8);
}

static enum attest_error synth_run(struct synth *s, struct attest_result *ret)
{
	size_t len;
	uint8_t *buf = make_quote(&s->q, &len);
	struct attest_tdx_quote *q = NULL;
	_cleanup_free_ char *msg = NULL;
	_cleanup_free_ char *ti =
	    s->tcb_info ? NULL : make_tcb_info("UpToDate", NULL, NULL, NULL, NULL);
	_cleanup_free_ char *qi = s->qe_identity ? NULL : make_qe_identity(NULL);
	const char *tcb = s->tcb_info ? s->tcb_info : ti,
		   *qe = s->qe_identity ? s->qe_identity : qi;
	int r = attest_tdx_quote_parse(buf, len, &q, &msg);
	free(buf);
	if (r < 0)
		fail_msg("synthetic quote does not parse: %s", msg);
	struct attest_tdx_collateral col = {
	    .tcb_info = tcb,
	    .tcb_info_len = strlen(tcb),
	    .tcb_info_chain_pem = pki.tcb_chain_pem,
	    .qe_identity = qe,
	    .qe_identity_len = strlen(qe),
	};
	sign_raw(pki.tcb_key, tcb, strlen(tcb), col.tcb_info_signature);
	sign_raw(pki.tcb_key, qe, strlen(qe), col.qe_identity_signature);
	struct attest_tdx_options o = {
	    .now_sec = s->now,
	    .trust_anchor_pem = s->builtin_root ? NULL : pki.root_pem,
	    .collateral = &col,
	    .skip_crl = true,
	    .refs = s->refs,
	    .n_refs = s->n_refs,
	    .accepted_statuses = s->accepted,
	    .digest_rule = s->rule,
	    .report_data = s->report_data,
	};
	struct attest_result res = {0};
	assert_int_equal(attest_tdx_verify(q, &o, &res), 0);
	attest_tdx_quote_free(q);
	free(s->tcb_info);
	free(s->qe_identity);
	s->tcb_info = s->qe_identity = NULL;
	enum attest_error e = res.error;
	assert_int_equal(res.accepted, e == ATTEST_OK);
	if (ret)
		*ret = res;
	else
		attest_result_done(&res);
	return e;
}

static void test_synthetic_anchor(void **state)
{
	struct synth s;
	synth_init(&s);
	assert_int_equal(synth_run(&s, NULL), ATTEST_OK);
	synth_init(&s);
	s.builtin_root = true;
	struct attest_result r;
	assert_int_equal(synth_run(&s, &r), ATTEST_E_CHAIN);
	want_check(&r, "pck chain", ATTEST_CHECK_FAIL);
	want_check(&r, "tcb info signature", ATTEST_CHECK_FAIL);
	attest_result_done(&r);
	/* v5, body type 3 and 2, and a quote followed by thousands of zero bytes */
	synth_init(&s);
	s.q.version = 5;
	s.q.body_type = 3;
	s.q.trailing = 5000;
	assert_int_equal(synth_run(&s, NULL), ATTEST_OK);
	synth_init(&s);
	s.q.version = 5;
	assert_int_equal(synth_run(&s, NULL), ATTEST_OK);
}

static void test_synthetic_tcb_statuses(void **state)
{
	for (int st = 0; st < _ATTEST_TDX_TCB_MAX; st++) {
		struct synth s;
		synth_init(&s);
		s.tcb_info = make_tcb_info(attest_tdx_tcb_status_name(st), NULL, NULL, NULL, NULL);
		struct attest_result r;
		enum attest_error e = synth_run(&s, &r);
		assert_int_equal(e, st == ATTEST_TDX_TCB_UP_TO_DATE ? ATTEST_OK : ATTEST_E_TCB);
		const struct attest_check *c = find_check(&r, "tcb status");
		assert_non_null(strstr(c->message, attest_tdx_tcb_status_name(st)));
		attest_result_done(&r);
		/* accepted when allowed, except Revoked */
		synth_init(&s);
		s.tcb_info = make_tcb_info(attest_tdx_tcb_status_name(st), NULL, NULL, NULL, NULL);
		s.accepted = ATTEST_TDX_TCB_BIT(st);
		assert_int_equal(synth_run(&s, NULL),
				 st == ATTEST_TDX_TCB_REVOKED ? ATTEST_E_TCB : ATTEST_OK);
	}
	/* below the best level's TDX SVN: falls to the OutOfDate level */
	struct synth s;
	synth_init(&s);
	s.q.tee_tcb_svn[0] = 2;
	struct attest_result r;
	assert_int_equal(synth_run(&s, &r), ATTEST_E_TCB);
	assert_non_null(strstr(find_check(&r, "tcb status")->message, "OutOfDate"));
	attest_result_done(&r);
	/* below every level: no platform level at all */
	synth_init(&s);
	s.q.tee_tcb_svn[2] = 0;
	assert_int_equal(synth_run(&s, &r), ATTEST_E_TCB);
	assert_non_null(strstr(find_check(&r, "tcb status")->message, "no TCB Info level"));
	attest_result_done(&r);

	assert_int_equal(
	    tdx_tcb_status_worst(ATTEST_TDX_TCB_OUT_OF_DATE, ATTEST_TDX_TCB_CONFIGURATION_NEEDED),
	    ATTEST_TDX_TCB_OUT_OF_DATE_CONFIGURATION_NEEDED);
	assert_int_equal(
	    tdx_tcb_status_worst(ATTEST_TDX_TCB_SW_HARDENING_NEEDED, ATTEST_TDX_TCB_UP_TO_DATE),
	    ATTEST_TDX_TCB_SW_HARDENING_NEEDED);
}

static void test_synthetic_module(void **state)
{
	static const char mods[] =
	    ",\"tdxModuleIdentities\":[{\"id\":\"TDX_03\",\"mrsigner\":\"0000000000000000000000"
	    "00000000000000000000000000000000000000000000000000000000000000000000000000\","
	    "\"attributes\":\"0000000000000000\",\"attributesMask\":\"FFFFFFFFFFFFFFFF\","
	    "\"tcbLevels\":[{\"tcb\":{\"isvsvn\":5},\"tcbDate\":\"2024-03-13T00:00:00Z\","
	    "\"tcbStatus\":\"UpToDate\"},{\"tcb\":{\"isvsvn\":3},\"tcbDate\":\"2023-01-01T00:00:"
	    "00Z\","
	    "\"tcbStatus\":\"OutOfDate\"}]}]";
	static const struct {
		uint8_t svn0, svn1;
		enum attest_error want;
	} cases[] = {
	    {5, 3, ATTEST_OK},    {6, 3, ATTEST_OK},    {4, 3, ATTEST_E_TCB},
	    {2, 3, ATTEST_E_TCB}, {5, 1, ATTEST_E_TCB}, /* no TDX_01 entry */
	};
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct synth s;
		synth_init(&s);
		s.q.tee_tcb_svn[0] = cases[i].svn0;
		s.q.tee_tcb_svn[1] = cases[i].svn1;
		s.tcb_info = make_tcb_info("UpToDate", NULL, NULL, mods, NULL);
		if (synth_run(&s, NULL) != cases[i].want)
			fail_msg("module case %zu", i);
	}
	/* v5 type 3: TEE_TCB_SVN_2 below every platform level */
	struct synth s;
	struct attest_result r;
	synth_init(&s);
	s.q.version = 5;
	s.q.body_type = 3;
	s.q.tee_tcb_svn2[2] = 0;
	assert_int_equal(synth_run(&s, &r), ATTEST_E_TCB);
	assert_non_null(strstr(find_check(&r, "tcb status")->message, "no TCB Info level"));
	attest_result_done(&r);
}

static void test_synthetic_policy(void **state)
{
	struct synth s;
	uint8_t digests[2][32];
	memset(digests[0], 0x11, 32);
	memset(digests[1], 0xcd, 32);

#define CASE(mutate, want)                                                                \
	do {                                                                              \
		synth_init(&s);                                                           \
		synth_ref(&s);                                                            \
		mutate;                                                                   \
		enum attest_error got_ = synth_run(&s, NULL);                             \
		if (got_ != (want))                                                       \
			fail_msg("%s: got %s, want %s", #mutate, attest_error_name(got_), \
				 attest_error_name(want));                                \
	} while (0)

	CASE((void)0, ATTEST_OK);
	CASE(s.q.td_attributes[0] |= 1, ATTEST_E_DEBUG);
	CASE(s.q.td_attributes[3] |= 0x20, ATTEST_E_MIGRATION);
	CASE(s.q.td_attributes[3] = 0, ATTEST_E_POLICY);
	CASE(s.q.mr_td[5] ^= 1, ATTEST_E_MEASUREMENT);
	CASE(s.q.rtmr[2][47] ^= 1, ATTEST_E_MEASUREMENT);
	CASE(s.q.rtmr[3][0] ^= 1, ATTEST_E_MEASUREMENT);
	CASE(s.q.xfam[0] ^= 1, ATTEST_E_MEASUREMENT);
	CASE(s.q.mr_seam[0] ^= 1, ATTEST_E_MEASUREMENT);
	CASE(s.refs[0].has_mr_seam = false; s.q.mr_seam[0] ^= 1, ATTEST_OK);
	CASE(s.q.mr_owner[0] = 1, ATTEST_E_MEASUREMENT);
	CASE(s.rule = ((struct attest_digest_rule){digests, 2}), ATTEST_OK);
	CASE(s.rule = ((struct attest_digest_rule){digests, 1}), ATTEST_E_POLICY_DIGEST);
	CASE(s.rule = ((struct attest_digest_rule){digests, 2});
	     s.q.mr_config_id[40] = 1, ATTEST_E_POLICY_DIGEST);
	CASE(s.report_data = s.q.report_data, ATTEST_OK);
	static const uint8_t other[64] = {1};
	CASE(s.report_data = other, ATTEST_E_REPORT_DATA);
	CASE(s.refs[0].min_tcb_eval_data_number = 18, ATTEST_E_TCB);
	CASE(s.refs[0].min_tcb_eval_data_number = 17, ATTEST_OK);
	CASE(s.tcb_info = make_tcb_info("SWHardeningNeeded", NULL, NULL, NULL, NULL), ATTEST_E_TCB);
	CASE(s.tcb_info = make_tcb_info("SWHardeningNeeded", NULL, NULL, NULL, NULL);
	     s.refs[0].allowed_statuses |= ATTEST_TDX_TCB_BIT(ATTEST_TDX_TCB_SW_HARDENING_NEEDED),
	     ATTEST_OK);
	/* two entries: the second matches */
	CASE(s.refs[0].mr_td[0] ^= 1; synth_ref(&s), ATTEST_OK);
	CASE(s.q.bad_vendor = true, ATTEST_E_POLICY);
	CASE(s.q.mr_signer_seam[0] = 1, ATTEST_E_POLICY);
	CASE(s.qe_identity = make_qe_identity(
		 "00DCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDC"),
	     ATTEST_E_QE);
	CASE(s.q.qe_isvsvn = 3, ATTEST_E_QE);
	CASE(s.tcb_info = make_tcb_info("UpToDate", "00906ED50001", NULL, NULL, NULL),
	     ATTEST_E_COLLATERAL);
	CASE(s.tcb_info = make_tcb_info("UpToDate", NULL, "2025-05-01T00:00:00Z", NULL, NULL),
	     ATTEST_E_COLLATERAL_EXPIRED);
	CASE(s.now = day("2026-01-15"), ATTEST_E_COLLATERAL_EXPIRED);
	CASE(s.tcb_info = strdup("{\"id\":\"TDX\"}"), ATTEST_E_COLLATERAL);
#undef CASE
}

/* The file entry point on a synthetic vector-style folder, PCS-style collateral. */
static void test_synthetic_files(void **state)
{
	struct qcfg c;
	size_t len;
	default_qcfg(&c);
	uint8_t *quote = make_quote(&c, &len);
	_cleanup_free_ char *ti = make_tcb_info("UpToDate", NULL, NULL, NULL, NULL);
	_cleanup_free_ char *qi = make_qe_identity(NULL);
	uint8_t sig[64], back[64];
	char hex[129];
	sign_raw(pki.tcb_key, ti, strlen(ti), sig);
	for (int i = 0; i < 64; i++)
		snprintf(hex + 2 * i, 3, "%02x", sig[i]);
	_cleanup_free_ char *pcs = str_printf("{\"tcbInfo\": %s ,\"signature\":\"%s\"}\n", ti, hex);
	size_t off, n;
	assert_int_equal(attest_tdx_collateral_split(pcs, strlen(pcs), "tcbInfo", &off, &n, back),
			 0);
	assert_int_equal(n, strlen(ti));
	assert_memory_equal(pcs + off, ti, n);
	assert_memory_equal(back, sig, 64);
	assert_int_equal(
	    attest_tdx_collateral_split(pcs, strlen(pcs) - 3, "tcbInfo", &off, &n, back), -EBADMSG);

	char dir[PATH_MAX], p[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/synth", tmpdir);
	assert_int_equal(mkdir_p(dir, 0700), 0);
#define W(name, data, size)                                                  \
	do {                                                                 \
		snprintf(p, sizeof(p), "%s/%s", dir, name);                  \
		assert_int_equal(write_file_atomic(p, data, size, 0600), 0); \
	} while (0)
	W("quote.bin", quote, len);
	W("collateral_tcb_info.json", pcs, strlen(pcs));
	W("collateral_tcb_info_issuer_chain.pem", pki.tcb_chain_pem, strlen(pki.tcb_chain_pem));
	W("collateral_qe_identity.body.json", qi, strlen(qi));
	sign_raw(pki.tcb_key, qi, strlen(qi), sig);
	for (int i = 0; i < 64; i++)
		snprintf(hex + 2 * i, 3, "%02X", sig[i]);
	W("collateral_qe_identity.sig.hex", hex, 128);
	W("root.pem", pki.root_pem, strlen(pki.root_pem));
#undef W
	free(quote);
	char ev[PATH_MAX], anchor[PATH_MAX];
	snprintf(ev, sizeof(ev), "%s/quote.bin", dir);
	snprintf(anchor, sizeof(anchor), "%s/root.pem", dir);
	struct attest_files f = {.evidence = ev,
				 .collateral_dir = dir,
				 .now_sec = day("2025-06-01"),
				 .skip_crl = true,
				 .trust_anchor = anchor};
	struct attest_result r = {0};
	assert_int_equal(attest_tdx_verify_files(&f, &r, NULL), 0);
	assert_true(r.accepted);
	want_check(&r, "tcb status", ATTEST_CHECK_PASS);
	attest_result_done(&r);
	f.trust_anchor = NULL;
	assert_int_equal(attest_tdx_verify_files(&f, &r, NULL), 0);
	assert_int_equal(r.error, ATTEST_E_CHAIN);
	attest_result_done(&r);

	/* bench: verify N times with cached chain */
	f.trust_anchor = anchor;
	_cleanup_free_ char *msg = NULL;
	assert_int_equal(attest_tdx_bench_files(&f, 3, &msg), 0);
	f.trust_anchor = NULL;
	assert_true(attest_tdx_bench_files(&f, 3, &msg) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vectors),
	    cmocka_unit_test(test_vectors_expected_json),
	    cmocka_unit_test(test_vectors_key_fields),
	    cmocka_unit_test(test_mutations),
	    cmocka_unit_test(test_truncations),
	    cmocka_unit_test(test_synthetic_anchor),
	    cmocka_unit_test(test_synthetic_tcb_statuses),
	    cmocka_unit_test(test_synthetic_module),
	    cmocka_unit_test(test_synthetic_policy),
	    cmocka_unit_test(test_synthetic_files),
	};
	if (!find_vectors()) {
		vectors[0] = 0;
		fprintf(stderr,
			"test-attest-tdx: ../shared/attestation-vectors not found (set PP_ROOT); "
			"vector tests skipped\n");
	}
	snprintf(tmpdir, sizeof(tmpdir), "%s/attest-tdx-XXXXXX", "/tmp");
	if (!mkdtemp(tmpdir))
		return 1;
	int r = cmocka_run_group_tests(tests, pki_setup, pki_teardown);
	rm_rf(tmpdir);
	return r;
}

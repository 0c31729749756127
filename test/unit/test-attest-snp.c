/* Unit tests for the SEV-SNP half of lib/attest: the real vectors of ../shared/attestation-vectors
 * check by check, byte-flip mutations, and synthetic evidence from a test ARK/ASK/VCEK covering
 * the Turin layout, every policy rule, the CRL and the CLI. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <limits.h>
#include <libgen.h>
#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <sys/stat.h>

#include "attest/attest.h"
#include "cli/cli.h"
#include "config/config.h"
#include "tls/tls.h"

#define T_2026_06_01 1780272000LL
#define T_2024_01_01 1704067200LL
#define T_2034_01_01 2019686400LL

/* ---- small helpers ---- */

#define PATHF(b, ...) assert_true(snprintf(b, sizeof(b), __VA_ARGS__) < (int)sizeof(b))

static char *read_text(const char *path, size_t *len)
{
	char *s = NULL;
	size_t n = 0;
	if (read_file_bounded(path, 4 << 20, &s, &n) < 0)
		return NULL;
	if (len)
		*len = n;
	return s;
}

static void put_le(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static const struct attest_check *find_check(const struct attest_result *r, const char *name)
{
	for (size_t i = 0; i < r->n_checks; i++)
		if (str_eq(r->checks[i].name, name))
			return &r->checks[i];
	return NULL;
}

static void want_check(const struct attest_result *r, const char *name, enum attest_check_status st)
{
	const struct attest_check *c = find_check(r, name);
	if (!c)
		fail_msg("check \"%s\" missing", name);
	if (c->status != st)
		fail_msg("check \"%s\": status %d, expected %d (%s)", name, c->status, st,
			 c->message);
}

/* ---- the vectors ---- */

static char vectors_dir[PATH_MAX];

static bool find_vectors(void)
{
	if (vectors_dir[0])
		return true;
	const char *root = config_getenv("PP_ROOT");
	char buf[PATH_MAX];
	if (!str_empty(root)) {
		PATHF(vectors_dir, "%s/../shared/attestation-vectors", root);
	} else {
		/* The repository root is the first parent of the binary holding lib/attest
		 * (build/test/ or build/asan/test/); the vectors are beside the repository. */
		ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
		if (n <= 0)
			return false;
		buf[n] = 0;
		char probe[PATH_MAX + 32];
		bool found = false;
		for (int i = 0; i < 8 && !found && strcmp(buf, "/") != 0; i++) {
			char *slash = strrchr(buf, '/');
			if (!slash)
				break;
			*slash = 0;
			if (!buf[0])
				break;
			PATHF(probe, "%s/lib/attest/attest.h", buf);
			found = access(probe, R_OK) == 0;
		}
		if (!found) {
			print_message("repository root not found from the test binary: skipping\n");
			return false;
		}
		PATHF(vectors_dir, "%s/../shared/attestation-vectors", buf);
	}
	struct stat st;
	if (stat(vectors_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		print_message("attestation vectors not found at %s: skipping\n", vectors_dir);
		vectors_dir[0] = 0;
		return false;
	}
	return true;
}

static int64_t parse_time(const char *s)
{
	struct tm tm = {};
	assert_non_null(s);
	const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	assert_non_null(p);
	return (int64_t)timegm(&tm);
}

/* jansson stops at int64: numbers of 19+ digits outside strings become strings. */
static json_t *load_json(const char *dir, const char *name)
{
	char p[PATH_MAX];
	PATHF(p, "%s/%s", dir, name);
	size_t n = 0;
	_cleanup_free_ char *text = read_text(p, &n);
	assert_non_null(text);
	struct buf b = {};
	bool in_str = false;
	for (size_t i = 0; i < n; i++) {
		char c = text[i];
		if (in_str) {
			if (c == '\\' && i + 1 < n) {
				assert_int_equal(buf_append(&b, text + i, 2, 0), 0);
				i++;
				continue;
			}
			in_str = c != '"';
		} else if (c == '"') {
			in_str = true;
		} else if (c >= '0' && c <= '9') {
			size_t k = i;
			while (k < n && text[k] >= '0' && text[k] <= '9')
				k++;
			bool quote = k - i >= 19;
			if (quote)
				assert_int_equal(buf_append(&b, "\"", 1, 0), 0);
			assert_int_equal(buf_append(&b, text + i, k - i, 0), 0);
			if (quote)
				assert_int_equal(buf_append(&b, "\"", 1, 0), 0);
			i = k - 1;
			continue;
		}
		assert_int_equal(buf_append(&b, &c, 1, 0), 0);
	}
	json_error_t e;
	json_t *j = json_loadb((const char *)b.data, b.len, 0, &e);
	buf_done(&b);
	if (!j)
		fail_msg("%s: %s", p, e.text);
	return j;
}

static bool exists(const char *dir, const char *name)
{
	char p[PATH_MAX];
	PATHF(p, "%s/%s", dir, name);
	return access(p, R_OK) == 0;
}

/* Expected error classes of ATTESTATION.md 11 (with the vector's own reference entry). */
static enum attest_error vector_error(const char *name)
{
	static const struct {
		const char *name;
		enum attest_error e;
	} t[] = {
	    {"snp-milan-v2-gosevguest", ATTEST_E_DEBUG},
	    {"snp-milan-v3-vlek-aws-trustee", ATTEST_E_VMPL},
	    {"neg-snp-truncated", ATTEST_E_FORMAT},
	    {"neg-snp-vcek-sig-flip", ATTEST_E_CHAIN},
	    {"neg-snp-vcek-hwid-flip", ATTEST_E_CHAIN},
	    {"neg-snp-vcek-pubkey-flip", ATTEST_E_CHAIN},
	    {"neg-snp-wrong-product-chain", ATTEST_E_CHAIN},
	    {"neg-snp-vlek-expired", ATTEST_E_CHAIN},
	};
	for (size_t i = 0; i < ELEMENTSOF(t); i++)
		if (str_eq(t[i].name, name))
			return t[i].e;
	return str_startswith(name, "neg-") ? ATTEST_E_SIGNATURE : ATTEST_OK;
}

/* The reference entry a vector's own expected.json implies. */
static char *reference_for(const json_t *exp)
{
	const json_t *f = json_object_get(exp, "fields");
	const char *product = json_string_value(json_object_get(exp, "product"));
	char pn[16] = "";
	sscanf(product, "%15[A-Za-z]", pn);
	const json_t *rt = json_object_get(f, "reported_tcb_parts");
	const json_t *lt = json_object_get(f, "launch_tcb_parts");
	const char *keys[4] = {"bootloader", "tee", "snp", "microcode"};
	int mins[4];
	for (size_t i = 0; i < 4; i++) {
		json_int_t a = json_integer_value(json_object_get(rt, keys[i]));
		json_int_t b = json_integer_value(json_object_get(lt, keys[i]));
		mins[i] = (int)(a < b ? a : b);
	}
	const json_t *pd = json_object_get(f, "policy_decoded");
	json_t *j = json_pack(
	    "{s:s, s:s, s:{s:i, s:i, s:i, s:i}, s:{s:I, s:I, s:b}, s:{s:b, s:b, s:b}, s:[]}",
	    "ProductName", pn, "TrustedMeasurement",
	    json_string_value(json_object_get(f, "measurement")), "MinimumTCB", "BootloaderVersion",
	    mins[0], "TEEVersion", mins[1], "SNPVersion", mins[2], "MicrocodeVersion", mins[3],
	    "GuestPolicy", "ABIMinor", json_integer_value(json_object_get(pd, "abi_minor")),
	    "ABIMajor", json_integer_value(json_object_get(pd, "abi_major")), "SMT", 1,
	    "PlatformInfo", "SMTEnabled", 1, "TSMEEnabled", 1, "TIOEnabled", 1, "AllowedChipIDs");
	assert_non_null(j);
	char *s = json_dumps(j, 0);
	json_decref(j);
	return s;
}

static void check_key_fields(const char *dir, const json_t *exp)
{
	char p[PATH_MAX];
	PATHF(p, "%s/report.bin", dir);
	size_t len = 0;
	_cleanup_free_ char *raw = read_text(p, &len);
	assert_non_null(raw);
	struct attest_snp_report r;
	assert_int_equal(attest_snp_report_parse((uint8_t *)raw, len, &r, NULL), 0);
	const json_t *k = json_object_get(exp, "key_fields");
	assert_int_equal(r.version, json_integer_value(json_object_get(k, "version")));
	assert_int_equal(r.guest_svn, json_integer_value(json_object_get(k, "guest_svn")));
	assert_int_equal(r.policy, (uint64_t)json_integer_value(json_object_get(k, "policy_u64")));
	assert_int_equal(r.vmpl, json_integer_value(json_object_get(k, "vmpl")));
	assert_int_equal(r.signature_algo,
			 json_integer_value(json_object_get(k, "signature_algo")));
	assert_int_equal(r.signing_key, json_integer_value(json_object_get(k, "signing_key")));
	char tcb_hex[32];
	PATHF(tcb_hex, "0x%016llx", (unsigned long long)r.reported_tcb);
	assert_string_equal(tcb_hex, json_string_value(json_object_get(k, "reported_tcb_hex")));
	json_t *u = json_object_get(k, "reported_tcb_u64");
	if (json_is_string(u)) {
		char dec[32];
		PATHF(dec, "%llu", (unsigned long long)r.reported_tcb);
		assert_string_equal(dec, json_string_value(u));
	} else {
		assert_int_equal(r.reported_tcb, (uint64_t)json_integer_value(u));
	}
	assert_string_equal(json_string_value(json_object_get(k, "tcb_layout")), "milan/genoa");
	const struct {
		const char *key;
		const uint8_t *p;
		size_t n;
	} hexes[] = {{"measurement", r.measurement, 48},
		     {"host_data", r.host_data, 32},
		     {"report_data", r.report_data, 64},
		     {"chip_id", r.chip_id, 64}};
	for (size_t i = 0; i < ELEMENTSOF(hexes); i++) {
		_cleanup_free_ char *h = hex_encode(hexes[i].p, hexes[i].n);
		assert_string_equal(h, json_string_value(json_object_get(k, hexes[i].key)));
	}
	struct attest_snp_tcb t;
	attest_snp_tcb_decode(r.reported_tcb, false, &t);
	const json_t *parts = json_object_get(k, "reported_tcb_parts");
	assert_int_equal(t.bootloader, json_integer_value(json_object_get(parts, "bootloader")));
	assert_int_equal(t.tee, json_integer_value(json_object_get(parts, "tee")));
	assert_int_equal(t.snp, json_integer_value(json_object_get(parts, "snp")));
	assert_int_equal(t.microcode, json_integer_value(json_object_get(parts, "microcode")));

	/* Every field of expected.json's "fields" equals the show output's. */
	json_t *shown = NULL;
	assert_int_equal(attest_snp_show_file(p, &shown, NULL), 0);
	const char *key;
	json_t *v;
	json_object_foreach(json_object_get(exp, "fields"), key, v)
	{
		json_t *mine = json_object_get(shown, key);
		if (json_is_object(v)) {
			const char *k2;
			json_t *v2;
			json_object_foreach(v, k2, v2)
			{
				if (!json_equal(json_object_get(mine, k2), v2))
					fail_msg("%s: field %s.%s differs", dir, key, k2);
			}
		} else if (!json_equal(mine, v)) {
			fail_msg("%s: field %s differs", dir, key);
		}
	}
	json_decref(shown);
}

static void run_vector(const char *name)
{
	char dir[PATH_MAX], chain[PATH_MAX], ref[PATH_MAX], tmpd[] = "/tmp/attest-snp-XXXXXX";
	PATHF(dir, "%s/%s", vectors_dir, name);
	json_t *exp = load_json(dir, "expected.json");
	bool neg = str_startswith(name, "neg-");
	const json_t *e = json_object_get(exp, "expected");
	const char *when =
	    neg ? json_string_value(json_object_get(exp, "verification_time_utc"))
		: json_string_value(json_object_get(e, "recommended_verification_time_utc"));

	assert_non_null(mkdtemp(tmpd));
	PATHF(chain, "%s/chain.pem", tmpd);
	{
		char p[PATH_MAX];
		PATHF(p, "%s/ask.pem", dir);
		_cleanup_free_ char *ask = read_text(p, NULL);
		PATHF(p, "%s/ark.pem", dir);
		_cleanup_free_ char *ark = read_text(p, NULL);
		assert_non_null(ask);
		assert_non_null(ark);
		_cleanup_free_ char *both = str_printf("%s\n%s", ask, ark);
		assert_int_equal(write_file_atomic(chain, both, strlen(both), 0644), 0);
	}
	char vek[PATH_MAX], evidence[PATH_MAX];
	const char *vek_name = exists(dir, "vcek.der")   ? "vcek.der"
			       : exists(dir, "vcek.pem") ? "vcek.pem"
							 : "vlek.der";
	PATHF(vek, "%s/%s", dir, vek_name);
	PATHF(evidence, "%s/report.bin", dir);
	uint8_t rd[64];
	struct attest_files f = {.evidence = evidence,
				 .vek = vek,
				 .chain = chain,
				 .now_sec = parse_time(when),
				 .skip_crl = true};
	if (!neg) {
		_cleanup_free_ char *r = reference_for(exp);
		PATHF(ref, "%s/ref.json", tmpd);
		assert_int_equal(write_file_atomic(ref, r, strlen(r), 0644), 0);
		f.reference = ref;
		const char *h = json_string_value(
		    json_object_get(json_object_get(exp, "key_fields"), "report_data"));
		for (size_t i = 0; i < 64; i++)
			assert_int_equal(sscanf(h + 2 * i, "%2hhx", &rd[i]), 1);
		f.report_data = rd;
		check_key_fields(dir, exp);
	}

	struct attest_result res = {};
	_cleanup_free_ char *msg = NULL;
	assert_int_equal(attest_snp_verify_files(&f, &res, &msg), 0);
	enum attest_error want = vector_error(name);
	if (res.error != want)
		fail_msg("%s: error %s, expected %s", name, attest_error_name(res.error),
			 attest_error_name(want));
	assert_int_equal(res.accepted, want == ATTEST_OK);

	if (!neg) {
		/* Chain, signature and VEK binding pass for every positive vector. */
		const char *pass[] = {
		    "format",      "product",     "ark",         "ask",
		    "vek",         "chain names", "validity",    "report signature",
		    "vek binding", "version",     "measurement", "tcb",
		    "report data"};
		for (size_t i = 0; i < ELEMENTSOF(pass); i++)
			want_check(&res, pass[i], ATTEST_CHECK_PASS);
		want_check(&res, "crl", ATTEST_CHECK_SKIP);
	} else {
		const char *k;
		json_t *v;
		json_object_foreach((json_t *)e, k, v)
		{
			const char *s = json_string_value(v);
			enum attest_check_status st =
			    str_startswith(s, "VALID") ? ATTEST_CHECK_PASS : ATTEST_CHECK_FAIL;
			if (str_eq(k, "ark/ask/vcek chain") || str_eq(k, "chain signatures")) {
				want_check(&res, "ark", st);
				want_check(&res, "ask", st);
				want_check(&res, "vek", st);
			} else if (str_eq(k, "report_signature")) {
				want_check(&res, "report signature", st);
			} else if (str_eq(k, "ark_self_signed")) {
				want_check(&res, "ark", st);
			} else if (str_eq(k, "ask_signed_by_ark")) {
				want_check(&res, "ask", st);
			} else if (str_eq(k, "vcek_signed_by_ask")) {
				want_check(&res, "vek", st);
			} else if (str_eq(k, "hwID==chip_id")) {
				want_check(&res, "vek binding", ATTEST_CHECK_FAIL);
			} else if (str_eq(k, "parse")) {
				want_check(&res, "format", ATTEST_CHECK_FAIL);
			} else if (str_startswith(k, "VLEK validity")) {
				want_check(&res, "validity", ATTEST_CHECK_FAIL);
			} else {
				fail_msg("%s: unknown expectation %s", name, k);
			}
		}
	}
	attest_result_done(&res);
	json_decref(exp);
	assert_int_equal(rm_rf(tmpd), 0);
}

static void test_vectors(void **state)
{
	if (!find_vectors())
		skip();
	DIR *d = opendir(vectors_dir);
	assert_non_null(d);
	struct dirent *de;
	size_t n = 0;
	while ((de = readdir(d))) {
		if (!str_startswith(de->d_name, "snp-") && !str_startswith(de->d_name, "neg-snp-"))
			continue;
		run_vector(de->d_name);
		n++;
	}
	closedir(d);
	assert_true(n >= 20);
}

/* The VLEK vector after the VLEK's one-year life: the chain fails. */
static void test_vector_vlek_later(void **state)
{
	if (!find_vectors())
		skip();
	char ev[PATH_MAX], vek[PATH_MAX];
	PATHF(ev, "%s/snp-milan-v3-vlek-aws-trustee/report.bin", vectors_dir);
	PATHF(vek, "%s/snp-milan-v3-vlek-aws-trustee/vlek.der", vectors_dir);
	struct attest_files f = {.evidence = ev, .vek = vek, .skip_crl = true};
	struct attest_result res = {};
	/* Built-in ASVK/ARK (no chain file): VMPL 1 at 2025-06-01, expired at 2026-11-22. */
	f.now_sec = parse_time("2025-06-01T00:00:00Z");
	assert_int_equal(attest_snp_verify_files(&f, &res, NULL), 0);
	assert_int_equal(res.error, ATTEST_E_VMPL);
	want_check(&res, "vek binding", ATTEST_CHECK_PASS);
	attest_result_done(&res);
	f.now_sec = parse_time("2026-11-22T00:00:00Z");
	assert_int_equal(attest_snp_verify_files(&f, &res, NULL), 0);
	assert_int_equal(res.error, ATTEST_E_CHAIN);
	attest_result_done(&res);
}

/* ---- mutations of one real vector ---- */

struct real {
	char *report, *vek, *chain;
	size_t report_len, vek_len, chain_len;
};

static bool load_real(struct real *r)
{
	if (!find_vectors())
		return false;
	char p[PATH_MAX];
	PATHF(p, "%s/snp-milan-v2-virtee/report.bin", vectors_dir);
	r->report = read_text(p, &r->report_len);
	PATHF(p, "%s/snp-milan-v2-virtee/vcek.der", vectors_dir);
	r->vek = read_text(p, &r->vek_len);
	PATHF(p, "%s/snp-milan-v2-virtee/ask.pem", vectors_dir);
	r->chain = read_text(p, &r->chain_len);
	assert_non_null(r->report);
	assert_non_null(r->vek);
	assert_non_null(r->chain);
	return true;
}

static void real_done(struct real *r)
{
	free(r->report);
	free(r->vek);
	free(r->chain);
}

static bool accepted(const uint8_t *rep, size_t len, const struct attest_snp_options *o)
{
	struct attest_result res = {};
	assert_int_equal(attest_snp_verify(rep, len, o, &res, NULL), 0);
	bool a = res.accepted;
	attest_result_done(&res);
	return a;
}

static void test_mutations(void **state)
{
	struct real r = {};
	if (!load_real(&r))
		skip();
	struct attest_snp_cache *cache = attest_snp_cache_new();
	struct attest_snp_options o = {.now_sec = T_2026_06_01,
				       .vek = (uint8_t *)r.vek,
				       .vek_len = r.vek_len,
				       .chain = (uint8_t *)r.chain,
				       .chain_len = r.chain_len,
				       .skip_crl = true,
				       .cache = cache};
	uint8_t *rep = (uint8_t *)r.report;
	assert_true(accepted(rep, r.report_len, &o));
	for (size_t i = 0; i < ATTEST_SNP_SIGNED_SIZE; i++) {
		rep[i] ^= 0x01;
		if (accepted(rep, r.report_len, &o))
			fail_msg("flip at 0x%03zx accepted", i);
		rep[i] ^= 0x01;
	}
	for (size_t base = 0x2A0; base <= 0x2E8; base += 0x48)
		for (size_t i = 0; i < 72; i++) {
			rep[base + i] ^= 0x80;
			if (accepted(rep, r.report_len, &o))
				fail_msg("signature flip at 0x%03zx accepted", base + i);
			rep[base + i] ^= 0x80;
		}
	for (size_t i = 0x330; i < ATTEST_SNP_REPORT_SIZE; i++) {
		rep[i] ^= 0xff;
		if (!accepted(rep, r.report_len, &o))
			fail_msg("flip of unsigned padding at 0x%03zx rejected", i);
		rep[i] ^= 0xff;
	}
	/* The VCEK's signature: the last 512 bytes of the DER are the RSA-PSS signature value. */
	uint8_t *vek = (uint8_t *)r.vek;
	for (size_t i = r.vek_len - 512; i < r.vek_len; i++) {
		vek[i] ^= 0x01;
		if (accepted(rep, r.report_len, &o))
			fail_msg("VCEK signature flip at %zu accepted", i);
		vek[i] ^= 0x01;
	}
	assert_true(accepted(rep, r.report_len, &o));
	/* Without the cache the outcome is the same. */
	o.cache = NULL;
	assert_true(accepted(rep, r.report_len, &o));
	attest_snp_cache_free(cache);
	real_done(&r);
}

/* ---- synthetic evidence ---- */

static EVP_PKEY *ark_key, *ask_key, *vcek_key;

static int setup_keys(void **state)
{
	ark_key = EVP_RSA_gen(4096);
	ask_key = EVP_RSA_gen(4096);
	vcek_key = EVP_EC_gen("secp384r1");
	return ark_key && ask_key && vcek_key ? 0 : -1;
}

static int teardown_keys(void **state)
{
	EVP_PKEY_free(ark_key);
	EVP_PKEY_free(ask_key);
	EVP_PKEY_free(vcek_key);
	return 0;
}

static void sign_pss_ctx(EVP_MD_CTX *m, EVP_PKEY *key)
{
	EVP_PKEY_CTX *pctx = NULL;
	assert_int_equal(EVP_DigestSignInit(m, &pctx, EVP_sha384(), NULL, key), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 48), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha384()), 1);
}

static X509_NAME *amd_name(const char *cn)
{
	X509_NAME *n = X509_NAME_new();
	X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const uint8_t *)"Advanced Micro Devices",
				   -1, -1, 0);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const uint8_t *)cn, -1, -1, 0);
	return n;
}

static void add_ext(X509 *x, const char *oid, const uint8_t *v, size_t len)
{
	ASN1_OBJECT *o = OBJ_txt2obj(oid, 1);
	ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
	assert_int_equal(ASN1_OCTET_STRING_set(os, v, (int)len), 1);
	X509_EXTENSION *e = X509_EXTENSION_create_by_OBJ(NULL, o, 0, os);
	assert_non_null(e);
	assert_int_equal(X509_add_ext(x, e, -1), 1);
	X509_EXTENSION_free(e);
	ASN1_OCTET_STRING_free(os);
	ASN1_OBJECT_free(o);
}

static void add_int_ext(X509 *x, const char *oid, unsigned v)
{
	uint8_t b[4] = {0x02, 0x01, (uint8_t)v};
	size_t n = 3;
	if (v >= 0x80) {
		b[1] = 2;
		b[2] = 0;
		b[3] = (uint8_t)v;
		n = 4;
	}
	add_ext(x, oid, b, n);
}

static void add_str_ext(X509 *x, const char *oid, const char *s)
{
	uint8_t b[80] = {0x16, (uint8_t)strlen(s)};
	memcpy(b + 2, s, strlen(s));
	add_ext(x, oid, b, strlen(s) + 2);
}

struct vek_spec {
	const char *product_name; /* productName extension */
	int struct_version;
	struct attest_snp_tcb tcb; /* SPLs */
	bool fmc;                  /* add fmcSPL */
	const uint8_t *hwid;
	size_t hwid_len;
	long serial;
};

static X509 *make_cert(const char *subject, const char *issuer, EVP_PKEY *pub, EVP_PKEY *signer,
		       const struct vek_spec *vs, long serial)
{
	X509 *x = X509_new();
	assert_int_equal(X509_set_version(x, 2), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_NAME *sn = amd_name(subject), *in = amd_name(issuer);
	X509_set_subject_name(x, sn);
	X509_set_issuer_name(x, in);
	X509_NAME_free(sn);
	X509_NAME_free(in);
	ASN1_TIME_set(X509_getm_notBefore(x), (time_t)T_2024_01_01);
	ASN1_TIME_set(X509_getm_notAfter(x), (time_t)T_2034_01_01);
	assert_int_equal(X509_set_pubkey(x, pub), 1);
	if (vs) {
		add_int_ext(x, "1.3.6.1.4.1.3704.1.1", (unsigned)vs->struct_version);
		add_str_ext(x, "1.3.6.1.4.1.3704.1.2", vs->product_name);
		add_int_ext(x, "1.3.6.1.4.1.3704.1.3.1", vs->tcb.bootloader);
		add_int_ext(x, "1.3.6.1.4.1.3704.1.3.2", vs->tcb.tee);
		add_int_ext(x, "1.3.6.1.4.1.3704.1.3.3", vs->tcb.snp);
		add_int_ext(x, "1.3.6.1.4.1.3704.1.3.8", vs->tcb.microcode);
		if (vs->fmc)
			add_int_ext(x, "1.3.6.1.4.1.3704.1.3.9", vs->tcb.fmc);
		if (vs->hwid_len)
			add_ext(x, "1.3.6.1.4.1.3704.1.4", vs->hwid, vs->hwid_len);
	}
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	sign_pss_ctx(m, signer);
	assert_true(X509_sign_ctx(x, m) > 0);
	EVP_MD_CTX_free(m);
	return x;
}

static char *pem_of(X509 *x)
{
	BIO *b = BIO_new(BIO_s_mem());
	assert_int_equal(PEM_write_bio_X509(b, x), 1);
	char *p;
	long n = BIO_get_mem_data(b, &p);
	char *s = strndup(p, (size_t)n);
	BIO_free(b);
	return s;
}

struct synth {
	enum attest_snp_product product;
	X509 *ark, *ask, *vcek;
	char *ark_pem, *chain_pem;
	uint8_t *vcek_der;
	size_t vcek_len;
	uint8_t report[ATTEST_SNP_REPORT_SIZE];
	struct attest_snp_reference ref;
	uint8_t chip[64][1];
};

static const uint8_t CHIP[64] = {0x3b, 0x42, 0x09, 0x2f, 0x69, 0xc6, 0x56, 0xd3, 0x11, 0x22, 0x33,
				 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee};

/* The TCB raw value in the product's layout. */
static uint64_t tcb_raw(const struct attest_snp_tcb *t, bool turin)
{
	uint64_t v = 0;
	if (turin)
		v = (uint64_t)t->fmc | (uint64_t)t->bootloader << 8 | (uint64_t)t->tee << 16 |
		    (uint64_t)t->snp << 24 | (uint64_t)t->microcode << 56;
	else
		v = (uint64_t)t->bootloader | (uint64_t)t->tee << 8 | (uint64_t)t->snp << 48 |
		    (uint64_t)t->microcode << 56;
	return v;
}

static const struct attest_snp_tcb TCB = {
    .fmc = 0, .bootloader = 1, .tee = 0, .snp = 2, .microcode = 71};

static void synth_report_sign(struct synth *s)
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestSignInit(m, NULL, EVP_sha384(), NULL, vcek_key), 1);
	uint8_t der[128];
	size_t dlen = sizeof(der);
	assert_int_equal(EVP_DigestSign(m, der, &dlen, s->report, ATTEST_SNP_SIGNED_SIZE), 1);
	EVP_MD_CTX_free(m);
	const uint8_t *p = der;
	ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)dlen);
	assert_non_null(sig);
	uint8_t be[48];
	memset(s->report + 0x2A0, 0, 144);
	assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(sig), be, 48), 48);
	for (size_t i = 0; i < 48; i++)
		s->report[0x2A0 + i] = be[47 - i];
	assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(sig), be, 48), 48);
	for (size_t i = 0; i < 48; i++)
		s->report[0x2E8 + i] = be[47 - i];
	ECDSA_SIG_free(sig);
}

/* A v3 report for the product (v5 for Milan) with a matching VCEK and reference entry. */
static void synth_init(struct synth *s, enum attest_snp_product p, const struct vek_spec *override)
{
	*s = (struct synth){.product = p};
	bool turin = p == ATTEST_SNP_TURIN;
	const char *pn = attest_snp_product_name(p);
	char ark_cn[32], ask_cn[32];
	PATHF(ark_cn, "ARK-%s", pn);
	PATHF(ask_cn, "SEV-%s", pn);
	struct vek_spec vs = {.product_name = turin                   ? "Turin"
					      : p == ATTEST_SNP_MILAN ? "Milan-B0"
								      : "Genoa",
			      .struct_version = turin ? 1 : 0,
			      .tcb = TCB,
			      .fmc = turin,
			      .hwid = CHIP,
			      .hwid_len = turin ? 8 : 64};
	if (override)
		vs = *override;
	s->ark = make_cert(ark_cn, ark_cn, ark_key, ark_key, NULL, 1);
	s->ask = make_cert(ask_cn, ark_cn, ask_key, ark_key, NULL, 0x100);
	s->vcek = make_cert("SEV-VCEK", ask_cn, vcek_key, ask_key, &vs, 0);
	s->ark_pem = pem_of(s->ark);
	_cleanup_free_ char *ask_pem = pem_of(s->ask);
	s->chain_pem = str_printf("%s%s", ask_pem, s->ark_pem);
	uint8_t *der = NULL;
	int n = i2d_X509(s->vcek, &der);
	assert_true(n > 0);
	s->vcek_der = der;
	s->vcek_len = (size_t)n;

	uint8_t *r = s->report;
	memset(r, 0, sizeof(s->report));
	put_le(r + 0x000, p == ATTEST_SNP_MILAN ? 5 : 3, 4);
	put_le(r + 0x008, 0x30000, 8); /* SMT, bit 17 */
	put_le(r + 0x034, 1, 4);
	uint64_t tcb = tcb_raw(&TCB, turin);
	put_le(r + 0x038, tcb, 8);
	put_le(r + 0x040, turin ? 0x67 : 0x25, 8); /* Turin: bit 6 set as on real hosts */
	for (size_t i = 0; i < 48; i++)
		r[0x090 + i] = (uint8_t)(0xA0 + i);
	memset(r + 0x160, 0xff, 32);
	put_le(r + 0x180, tcb, 8);
	r[0x188] = turin ? 0x1A : 0x19;
	r[0x189] = turin ? 0x02 : p == ATTEST_SNP_GENOA ? 0x11 : 0x01;
	r[0x18A] = 1;
	memcpy(r + 0x1A0, CHIP, turin ? 8 : 64);
	put_le(r + 0x1E0, tcb, 8);
	put_le(r + 0x1F0, tcb, 8);
	synth_report_sign(s);

	s->ref = (struct attest_snp_reference){
	    .product = p,
	    .min_tcb = TCB,
	    .policy_allowed = ATTEST_SNP_POLICY_SMT,
	    .platform_allowed = ATTEST_SNP_PLATFORM_SMT_EN | ATTEST_SNP_PLATFORM_TSME_EN,
	};
	memcpy(s->ref.measurement, r + 0x090, 48);
}

static void synth_done(struct synth *s)
{
	X509_free(s->ark);
	X509_free(s->ask);
	X509_free(s->vcek);
	free(s->ark_pem);
	free(s->chain_pem);
	OPENSSL_free(s->vcek_der);
}

static struct attest_snp_options synth_opts(struct synth *s,
					    const struct attest_snp_reference *refs, size_t n)
{
	return (struct attest_snp_options){.now_sec = T_2026_06_01,
					   .vek = s->vcek_der,
					   .vek_len = s->vcek_len,
					   .chain = (const uint8_t *)s->chain_pem,
					   .chain_len = strlen(s->chain_pem),
					   .trust_anchor_pem = s->ark_pem,
					   .skip_crl = true,
					   .refs = refs,
					   .n_refs = n};
}

static enum attest_error verify_err(struct synth *s, const struct attest_snp_options *o)
{
	struct attest_result res = {};
	assert_int_equal(attest_snp_verify(s->report, sizeof(s->report), o, &res, NULL), 0);
	enum attest_error e = res.error;
	assert_int_equal(res.accepted, e == ATTEST_OK);
	attest_result_done(&res);
	return e;
}

static void test_synthetic_products(void **state)
{
	enum attest_snp_product ps[] = {ATTEST_SNP_MILAN, ATTEST_SNP_GENOA, ATTEST_SNP_TURIN};
	for (size_t i = 0; i < ELEMENTSOF(ps); i++) {
		struct synth s;
		synth_init(&s, ps[i], NULL);
		struct attest_snp_options o = synth_opts(&s, &s.ref, 1);
		struct attest_result res = {};
		struct attest_snp_report rep;
		assert_int_equal(attest_snp_verify(s.report, sizeof(s.report), &o, &res, &rep), 0);
		if (!res.accepted)
			fail_msg("%s rejected: %s", attest_snp_product_name(ps[i]),
				 attest_error_name(res.error));
		assert_int_equal(rep.cpuid_product, ps[i]);
		attest_result_done(&res);
		/* The built-in anchors do not know the test ARK. */
		o.trust_anchor_pem = NULL;
		assert_int_equal(verify_err(&s, &o), ATTEST_E_CHAIN);
		o.chain = NULL;
		assert_int_equal(verify_err(&s, &o), ATTEST_E_CHAIN);
		synth_done(&s);
	}
}

static void test_synthetic_turin_layout(void **state)
{
	struct synth s;
	synth_init(&s, ATTEST_SNP_TURIN, NULL);
	struct attest_snp_report rep;
	assert_int_equal(attest_snp_report_parse(s.report, sizeof(s.report), &rep, NULL), 0);
	struct attest_snp_tcb t;
	attest_snp_tcb_decode(0x4700000002000100ULL, true, &t);
	assert_int_equal(t.fmc, 0);
	assert_int_equal(t.bootloader, 1);
	assert_int_equal(t.tee, 0);
	assert_int_equal(t.snp, 2);
	assert_int_equal(t.microcode, 71);
	assert_int_equal(rep.reported_tcb, 0x4700000002000100ULL);
	attest_snp_tcb_decode(0x7308000000000003ULL, false, &t);
	assert_int_equal(t.bootloader, 3);
	assert_int_equal(t.snp, 8);
	assert_int_equal(t.microcode, 115);
	json_t *j = NULL;
	assert_int_equal(attest_snp_report_to_json(&rep, ATTEST_SNP_PRODUCT_UNKNOWN, &j), 0);
	assert_string_equal(json_string_value(json_object_get(j, "tcb_layout")), "turin");
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(j, "reported_tcb_parts"), "fmc")),
	    0);
	json_decref(j);
	synth_done(&s);

	/* The wrong VEK content fails the binding: 64-byte hwID, no fmcSPL, other FMC, version. */
	struct vek_spec bad[] = {
	    {"Turin", 1, TCB, true, CHIP, 64, 0},
	    {"Turin", 1, TCB, false, CHIP, 8, 0},
	    {"Turin", 1, {.fmc = 1, .bootloader = 1, .snp = 2, .microcode = 71}, true, CHIP, 8, 0},
	    {"Turin", 0, TCB, true, CHIP, 8, 0},
	    {"Turin", 1, {.bootloader = 2, .snp = 2, .microcode = 71}, true, CHIP, 8, 0},
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		synth_init(&s, ATTEST_SNP_TURIN, &bad[i]);
		struct attest_snp_options o = synth_opts(&s, &s.ref, 1);
		if (verify_err(&s, &o) != ATTEST_E_VEK_BINDING)
			fail_msg("bad Turin VEK %zu not rejected by the binding", i);
		synth_done(&s);
	}
	/* A Turin CHIP_ID with bytes beyond the 8-byte hwID. */
	synth_init(&s, ATTEST_SNP_TURIN, NULL);
	s.report[0x1A0 + 20] = 1;
	synth_report_sign(&s);
	struct attest_snp_options o = synth_opts(&s, &s.ref, 1);
	assert_int_equal(verify_err(&s, &o), ATTEST_E_VEK_BINDING);
	synth_done(&s);
	/* A Milan VEK for a Turin report: product mismatch. */
	struct vek_spec milan = {"Milan-B0", 0, TCB, false, CHIP, 64, 0};
	synth_init(&s, ATTEST_SNP_TURIN, &milan);
	o = synth_opts(&s, &s.ref, 1);
	assert_int_equal(verify_err(&s, &o), ATTEST_E_PRODUCT);
	synth_done(&s);
}

/* Change the report, re-sign it, and expect the error. */
#define EXPECT_AFTER(s, o, err, stmt)                                               \
	do {                                                                        \
		synth_init(&(s), (s).product, NULL);                                \
		stmt;                                                               \
		synth_report_sign(&(s));                                            \
		o = synth_opts(&(s), &(s).ref, 1);                                  \
		if (verify_err(&(s), &(o)) != (err))                                \
			fail_msg("%s: expected %s", #stmt, attest_error_name(err)); \
		synth_done(&(s));                                                   \
	} while (0)

static void test_synthetic_policy(void **state)
{
	struct synth s = {.product = ATTEST_SNP_TURIN};
	struct attest_snp_options o;
	uint8_t *r = s.report;
	EXPECT_AFTER(s, o, ATTEST_OK, (void)0);
	/* 0: format */
	EXPECT_AFTER(s, o, ATTEST_E_FORMAT, put_le(r + 0x034, 2, 4));
	EXPECT_AFTER(s, o, ATTEST_E_FORMAT, put_le(r + 0x048, 7 << 2, 4));
	EXPECT_AFTER(s, o, ATTEST_E_FORMAT, put_le(r + 0x008, 0x10000, 8));
	EXPECT_AFTER(s, o, ATTEST_E_FORMAT, r[0x208] = 1);
	EXPECT_AFTER(s, o, ATTEST_E_FORMAT, r[0x04C] = 1);
	/* 1: product */
	EXPECT_AFTER(s, o, ATTEST_E_PRODUCT, r[0x189] = 0x40);
	/* 6-9 */
	EXPECT_AFTER(s, o, ATTEST_E_VERSION, put_le(r, 6, 4));
	EXPECT_AFTER(s, o, ATTEST_E_VMPL, put_le(r + 0x030, 1, 4));
	EXPECT_AFTER(s, o, ATTEST_E_DEBUG, r[0x00A] |= 0x08);
	EXPECT_AFTER(s, o, ATTEST_E_MIGRATION, r[0x00A] |= 0x04);
	/* 10: guest policy */
	EXPECT_AFTER(s, o, ATTEST_E_POLICY, s.ref.abi_major = 1);
	EXPECT_AFTER(s, o, ATTEST_OK, (s.ref.abi_major = 1, r[0x009] = 1));
	EXPECT_AFTER(s, o, ATTEST_E_POLICY, (s.ref.abi_minor = 5, r[0x008] = 4));
	EXPECT_AFTER(s, o, ATTEST_E_POLICY, s.ref.policy_allowed = 0);
	EXPECT_AFTER(s, o, ATTEST_E_POLICY, r[0x00A] |= 0x20); /* CXL_ALLOW */
	EXPECT_AFTER(s, o, ATTEST_OK,
		     (r[0x00A] |= 0x20, s.ref.policy_allowed |= ATTEST_SNP_POLICY_CXL_ALLOW));
	EXPECT_AFTER(s, o, ATTEST_E_POLICY,
		     s.ref.policy_required = ATTEST_SNP_POLICY_SINGLE_SOCKET);
	EXPECT_AFTER(s, o, ATTEST_OK,
		     (s.ref.policy_required = ATTEST_SNP_POLICY_SINGLE_SOCKET, r[0x00A] |= 0x10));
	EXPECT_AFTER(s, o, ATTEST_E_POLICY,
		     s.ref.policy_required = ATTEST_SNP_POLICY_PAGE_SWAP_DISABLE);
	/* 11: platform info (0x67: SMT, TSME, ECC, ALIAS_CHECK, bit 6) */
	EXPECT_AFTER(s, o, ATTEST_E_POLICY, s.ref.platform_allowed = ATTEST_SNP_PLATFORM_SMT_EN);
	EXPECT_AFTER(s, o, ATTEST_E_POLICY, r[0x040] |= 0x80); /* TIO_EN */
	EXPECT_AFTER(s, o, ATTEST_OK,
		     s.ref.platform_required =
			 ATTEST_SNP_PLATFORM_ECC_EN | ATTEST_SNP_PLATFORM_ALIAS_CHECK_COMPLETE);
	EXPECT_AFTER(s, o, ATTEST_E_POLICY, s.ref.platform_required = ATTEST_SNP_PLATFORM_RAPL_DIS);
	/* 12: TCB per component, FMC on Turin, LAUNCH_TCB too */
	EXPECT_AFTER(s, o, ATTEST_E_TCB, s.ref.min_tcb.fmc = 1);
	EXPECT_AFTER(s, o, ATTEST_E_TCB, s.ref.min_tcb.bootloader = 2);
	EXPECT_AFTER(s, o, ATTEST_E_TCB, s.ref.min_tcb.tee = 1);
	EXPECT_AFTER(s, o, ATTEST_E_TCB, s.ref.min_tcb.snp = 3);
	EXPECT_AFTER(s, o, ATTEST_E_TCB, s.ref.min_tcb.microcode = 72);
	EXPECT_AFTER(s, o, ATTEST_OK, s.ref.min_tcb.microcode = 70);
	EXPECT_AFTER(s, o, ATTEST_E_TCB, r[0x1F0 + 3] = 1); /* LAUNCH_TCB.SNP 1 < 2 */
	/* 13: measurement */
	EXPECT_AFTER(s, o, ATTEST_E_MEASUREMENT, s.ref.measurement[47] ^= 1);
	/* 16: chip ids; the Turin 8-byte form is stored zero-padded */
	uint8_t chips[2][64] = {};
	memcpy(chips[1], CHIP, 8);
	EXPECT_AFTER(s, o, ATTEST_E_CHIP, (s.ref.chip_ids = chips, s.ref.n_chip_ids = 1));
	EXPECT_AFTER(s, o, ATTEST_OK, (s.ref.chip_ids = chips, s.ref.n_chip_ids = 2));

	/* 14, 15 and several entries. */
	synth_init(&s, ATTEST_SNP_TURIN, NULL);
	o = synth_opts(&s, &s.ref, 1);
	uint8_t digests[2][32] = {{1}, {0}};
	o.host_data = (struct attest_digest_rule){.digests = (const uint8_t(*)[32])digests, .n = 1};
	assert_int_equal(verify_err(&s, &o), ATTEST_E_POLICY_DIGEST);
	o.host_data.n = 2;
	assert_int_equal(verify_err(&s, &o), ATTEST_OK);
	uint8_t rd[64] = {};
	o.report_data = rd;
	assert_int_equal(verify_err(&s, &o), ATTEST_OK);
	rd[63] = 1;
	assert_int_equal(verify_err(&s, &o), ATTEST_E_REPORT_DATA);
	rd[63] = 0;
	struct attest_snp_reference refs[3] = {s.ref, s.ref, s.ref};
	refs[0].measurement[0] ^= 1;
	refs[1].min_tcb.snp = 9;
	o = synth_opts(&s, refs, 2);
	/* The TCB entry got further (step 12) than the measurement one (13 fails, 12 passes):
	 * entry 0 fails at 13, entry 1 at 12, so entry 0's error wins. */
	assert_int_equal(verify_err(&s, &o), ATTEST_E_MEASUREMENT);
	o = synth_opts(&s, refs, 3);
	assert_int_equal(verify_err(&s, &o), ATTEST_OK);
	/* No entry for the product line. */
	refs[2].product = ATTEST_SNP_GENOA;
	o = synth_opts(&s, refs + 2, 1);
	assert_int_equal(verify_err(&s, &o), ATTEST_E_PRODUCT);
	synth_done(&s);
}

static X509_CRL *make_crl(struct synth *s, int64_t last, int64_t next, X509 *revoked)
{
	X509_CRL *c = X509_CRL_new();
	X509_CRL_set_version(c, 1);
	X509_CRL_set_issuer_name(c, X509_get_subject_name(s->ark));
	ASN1_TIME *t = ASN1_TIME_set(NULL, (time_t)last);
	X509_CRL_set1_lastUpdate(c, t);
	ASN1_TIME_set(t, (time_t)next);
	X509_CRL_set1_nextUpdate(c, t);
	if (revoked) {
		X509_REVOKED *rv = X509_REVOKED_new();
		X509_REVOKED_set_serialNumber(rv, X509_get_serialNumber(revoked));
		ASN1_TIME_set(t, (time_t)last);
		X509_REVOKED_set_revocationDate(rv, t);
		X509_CRL_add0_revoked(c, rv);
	}
	ASN1_TIME_free(t);
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	sign_pss_ctx(m, ark_key);
	assert_true(X509_CRL_sign_ctx(c, m) > 0);
	EVP_MD_CTX_free(m);
	return c;
}

static void test_synthetic_crl(void **state)
{
	struct synth s;
	synth_init(&s, ATTEST_SNP_MILAN, NULL);
	struct attest_snp_options o = synth_opts(&s, &s.ref, 1);
	o.skip_crl = false;
	assert_int_equal(verify_err(&s, &o), ATTEST_E_CRL); /* missing */
	struct {
		int64_t last, next;
		X509 *rev;
		enum attest_error e;
	} cases[] = {
	    {T_2026_06_01 - 86400, T_2026_06_01 + 86400, NULL, ATTEST_OK},
	    {T_2026_06_01 - 86400, T_2026_06_01 + 86400, s.vcek, ATTEST_E_REVOKED},
	    {T_2026_06_01 - 86400, T_2026_06_01 + 86400, s.ask, ATTEST_E_REVOKED},
	    {T_2026_06_01 - 3 * 86400, T_2026_06_01 - 86400, NULL, ATTEST_E_COLLATERAL_EXPIRED},
	};
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		X509_CRL *c = make_crl(&s, cases[i].last, cases[i].next, cases[i].rev);
		uint8_t *der = NULL;
		int n = i2d_X509_CRL(c, &der);
		o.crl = der;
		o.crl_len = (size_t)n;
		if (verify_err(&s, &o) != cases[i].e)
			fail_msg("CRL case %zu", i);
		der[n - 1] ^= 1; /* the CRL's signature */
		assert_int_equal(verify_err(&s, &o), ATTEST_E_CRL);
		OPENSSL_free(der);
		X509_CRL_free(c);
	}
	synth_done(&s);
}

/* The files API with attest_files.trust_anchor, a KDS-layout cache and the CLI. */
static void test_synthetic_files_and_cli(void **state)
{
	struct synth s;
	synth_init(&s, ATTEST_SNP_MILAN, NULL);
	char d[] = "/tmp/attest-snp-XXXXXX", p[PATH_MAX], ev[PATH_MAX], anchor[PATH_MAX],
	     ref[PATH_MAX];
	assert_non_null(mkdtemp(d));
	PATHF(ev, "%s/report.bin", d);
	assert_int_equal(write_file_atomic(ev, s.report, sizeof(s.report), 0644), 0);
	PATHF(anchor, "%s/ark.pem", d);
	assert_int_equal(write_file_atomic(anchor, s.ark_pem, strlen(s.ark_pem), 0644), 0);
	PATHF(p, "%s/amd/Milan/vcek", d);
	assert_int_equal(mkdir_p(p, 0755), 0);
	_cleanup_free_ char *hw = hex_encode(CHIP, 64);
	PATHF(p, "%s/amd/Milan/vcek/%s-0-1-0-2-71.der", d, hw);
	assert_int_equal(write_file_atomic(p, s.vcek_der, s.vcek_len, 0644), 0);
	PATHF(p, "%s/amd/Milan/cert_chain.pem", d);
	assert_int_equal(write_file_atomic(p, s.chain_pem, strlen(s.chain_pem), 0644), 0);
	_cleanup_free_ char *meas = hex_encode(s.ref.measurement, 48);
	_cleanup_free_ char *refj = str_printf(
	    "{\"snp\": [{\"ProductName\": \"Milan\", \"TrustedMeasurement\": \"%s\", "
	    "\"MinimumTCB\": {\"BootloaderVersion\": 1, \"TEEVersion\": 0, \"SNPVersion\": 2, "
	    "\"MicrocodeVersion\": 71}, \"GuestPolicy\": {\"SMT\": true}, "
	    "\"PlatformInfo\": {\"SMTEnabled\": true, \"ECCEnabled\": true}}], \"tdx\": []}",
	    meas);
	PATHF(ref, "%s/ref.json", d);
	assert_int_equal(write_file_atomic(ref, refj, strlen(refj), 0644), 0);

	struct attest_files f = {.evidence = ev,
				 .collateral_dir = d,
				 .reference = ref,
				 .now_sec = T_2026_06_01,
				 .skip_crl = true,
				 .trust_anchor = anchor};
	struct attest_result res = {};
	_cleanup_free_ char *msg = NULL;
	assert_int_equal(attest_snp_verify_files(&f, &res, &msg), 0);
	assert_true(res.accepted);
	json_t *j = NULL;
	assert_int_equal(attest_result_to_json(&res, &j), 0);
	assert_true(json_is_true(json_object_get(j, "accepted")));
	assert_string_equal(json_string_value(json_object_get(j, "error")), "ATTEST_OK");
	assert_int_equal(json_array_size(json_object_get(j, "checks")), res.n_checks);
	json_decref(j);
	attest_result_done(&res);
	f.trust_anchor = s.ark_pem; /* PEM text works as well */
	assert_int_equal(attest_snp_verify_files(&f, &res, NULL), 0);
	assert_true(res.accepted);
	attest_result_done(&res);
	f.trust_anchor = NULL;
	assert_int_equal(attest_snp_verify_files(&f, &res, NULL), 0);
	assert_false(res.accepted);
	assert_int_equal(res.error, ATTEST_E_CHAIN);
	attest_result_done(&res);

	/* CLI */
	char *null_out = NULL;
	size_t null_len = 0;
	FILE *out = open_memstream(&null_out, &null_len);
	FILE *err = fopen("/dev/null", "w");
	char *argv_ok[] = {"attest",
			   "verify",
			   "--type",
			   "snp",
			   "--evidence",
			   ev,
			   "--collateral",
			   d,
			   "--reference",
			   ref,
			   "--at",
			   "2026-06-01T00:00:00Z",
			   "--skip-crl",
			   "--trust-anchor",
			   anchor,
			   "--json",
			   NULL};
	assert_int_equal(cli_attest_run(ELEMENTSOF(argv_ok) - 1, argv_ok, out, err), 0);
	fflush(out);
	json_t *cj = json_loads(null_out, 0, NULL);
	assert_non_null(cj);
	assert_true(json_is_true(json_object_get(cj, "accepted")));
	json_decref(cj);
	char *argv_rej[] = {"attest",       "verify",
			    "--type",       "snp",
			    "--evidence",   ev,
			    "--collateral", d,
			    "--at",         "2026-06-01T00:00:00+02:00",
			    "--skip-crl",   NULL};
	assert_int_equal(cli_attest_run(ELEMENTSOF(argv_rej) - 1, argv_rej, out, err), 1);
	char *argv_rd[] = {"attest", "verify",        "--type", "snp",        "--evidence",
			   ev,       "--collateral",  d,        "--skip-crl", "--trust-anchor",
			   anchor,   "--report-data", "00",     NULL};
	assert_int_equal(cli_attest_run(ELEMENTSOF(argv_rd) - 1, argv_rd, out, err), 2);
	char *argv_type[] = {"attest", "verify", "--evidence", ev, NULL};
	assert_int_equal(cli_attest_run(ELEMENTSOF(argv_type) - 1, argv_type, out, err), 2);
	char *argv_at[] = {"attest", "verify", "--type",    "snp", "--evidence",
			   ev,       "--at",   "yesterday", NULL};
	assert_int_equal(cli_attest_run(ELEMENTSOF(argv_at) - 1, argv_at, out, err), 2);
	char *argv_bad[] = {"attest", "verify", "--type", "snp", "--evidence", ev, "--nope", NULL};
	assert_int_equal(cli_attest_run(ELEMENTSOF(argv_bad) - 1, argv_bad, out, err), 2);
	char *argv_show[] = {"attest", "show", "--type", "snp", "--evidence", ev, "--json", NULL};
	assert_int_equal(cli_attest_run(ELEMENTSOF(argv_show) - 1, argv_show, out, err), 0);
	char *argv_bench[] = {"attest",
			      "bench",
			      "--type",
			      "snp",
			      "--evidence",
			      ev,
			      "--collateral",
			      d,
			      "--skip-crl",
			      "--trust-anchor",
			      anchor,
			      "--at",
			      "2026-06-01T00:00:00Z",
			      "--seconds",
			      "1",
			      NULL};
	assert_int_equal(cli_attest_run(ELEMENTSOF(argv_bench) - 1, argv_bench, out, err), 0);
	fclose(out);
	fclose(err);
	free(null_out);
	assert_int_equal(rm_rf(d), 0);
	synth_done(&s);
}

static void test_reference_parse(void **state)
{
	const char *m = "\"TrustedMeasurement\": \"" /* 96 hex */
			"000000000000000000000000000000000000000000000000"
			"000000000000000000000000000000000000000000000000\"";
	struct {
		const char *fmt;
		bool ok;
	} cases[] = {
	    {"{\"ProductName\": \"Genoa\", %s, \"MinimumTCB\": {\"BootloaderVersion\": 10, "
	     "\"TEEVersion\": 0, \"SNPVersion\": 23, \"MicrocodeVersion\": 84}}",
	     true},
	    {"[{\"ProductName\": \"Turin\", %s, \"MinimumTCB\": {\"BootloaderVersion\": 1, "
	     "\"TEEVersion\": 0, \"SNPVersion\": 2, \"MicrocodeVersion\": 71, \"FMCVersion\": 0}, "
	     "\"AllowedChipIDs\": [\"3b42092f69c656d3\"]}]",
	     true},
	    {"{\"ProductName\": \"Milan\", %s, \"MinimumTCB\": {\"BootloaderVersion\": 1, "
	     "\"TEEVersion\": 0, \"SNPVersion\": 2, \"MicrocodeVersion\": 71, \"FMCVersion\": 0}}",
	     false},
	    {"{\"ProductName\": \"Turin\", %s, \"MinimumTCB\": {\"BootloaderVersion\": 1, "
	     "\"TEEVersion\": 0, \"SNPVersion\": 2, \"MicrocodeVersion\": 71}}",
	     false},
	    {"{\"ProductName\": \"Milan\", %s, \"MinimumTCB\": {\"BootloaderVersion\": 1, "
	     "\"TEEVersion\": 0, \"SNPVersion\": 2, \"MicrocodeVersion\": 71}, "
	     "\"AllowedChipIDs\": [\"3b42092f69c656d3\"]}",
	     false},
	    {"{\"ProductName\": \"Milan\", %s, \"MinimumTCB\": {\"BootloaderVersion\": 1, "
	     "\"TEEVersion\": 0, \"SNPVersion\": 2, \"MicrocodeVersion\": 256}}",
	     false},
	    {"{\"ProductName\": \"Milan\", %s, \"MinimumTCB\": {\"BootloaderVersion\": 1, "
	     "\"TEEVersion\": 0, \"SNPVersion\": 2, \"MicrocodeVersion\": 1}, \"Extra\": 1}",
	     false},
	    {"{\"ProductName\": \"Milan\", %s, \"MinimumTCB\": {\"BootloaderVersion\": 1, "
	     "\"TEEVersion\": 0, \"SNPVersion\": 2, \"MicrocodeVersion\": 1}, "
	     "\"GuestPolicy\": {\"Debug\": true}}",
	     false},
	    {"{\"ProductName\": \"Milan-B0\", %s, \"MinimumTCB\": {\"BootloaderVersion\": 1, "
	     "\"TEEVersion\": 0, \"SNPVersion\": 2, \"MicrocodeVersion\": 1}}",
	     false},
	};
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		const char *at = strstr(cases[i].fmt, "%s");
		assert_non_null(at);
		_cleanup_free_ char *text =
		    str_printf("%.*s%s%s", (int)(at - cases[i].fmt), cases[i].fmt, m, at + 2);
		struct attest_snp_references refs = {};
		_cleanup_free_ char *msg = NULL;
		int r = attest_snp_references_parse(text, strlen(text), &refs, &msg);
		if ((r == 0) != cases[i].ok)
			fail_msg("case %zu: %d %s", i, r, msg ? msg : "");
		if (r == 0 && i == 1) {
			assert_int_equal(refs.n, 1);
			assert_int_equal(refs.items[0].n_chip_ids, 1);
			assert_int_equal(refs.items[0].chip_ids[0][0], 0x3b);
			assert_int_equal(refs.items[0].chip_ids[0][8], 0);
		}
		attest_snp_references_done(&refs);
	}
}

static void test_ext_parser(void **state)
{
	struct attest_snp_vek_ext e = {};
	const uint8_t spl217[] = {0x02, 0x02, 0x00, 0xD9};
	assert_int_equal(attest_snp_vek_ext_add(&e, "1.3.6.1.4.1.3704.1.3.8", spl217, 4, NULL), 0);
	assert_int_equal(e.spl[8], 217);
	assert_true(attest_snp_vek_ext_add(&e, "1.3.6.1.4.1.3704.1.3.8", spl217, 4, NULL) < 0);
	const uint8_t neg[] = {0x02, 0x01, 0x80}, big[] = {0x02, 0x02, 0x01, 0x00},
		      bad_len[] = {0x02, 0x05, 0x01};
	assert_true(attest_snp_vek_ext_add(&e, "1.3.6.1.4.1.3704.1.3.1", neg, 3, NULL) < 0);
	assert_true(attest_snp_vek_ext_add(&e, "1.3.6.1.4.1.3704.1.3.2", big, 4, NULL) < 0);
	assert_true(attest_snp_vek_ext_add(&e, "1.3.6.1.4.1.3704.1.3.3", bad_len, 3, NULL) < 0);
	const uint8_t name[] = {0x16, 0x05, 'T', 'u', 'r', 'i', 'n'};
	assert_int_equal(attest_snp_vek_ext_add(&e, "1.3.6.1.4.1.3704.1.2", name, 7, NULL), 0);
	assert_string_equal(e.product_name, "Turin");
	assert_int_equal(attest_snp_product_from_name("Milan-B0"), ATTEST_SNP_MILAN);
	assert_int_equal(attest_snp_product_from_name("Genoa"), ATTEST_SNP_GENOA);
	assert_int_equal(attest_snp_product_from_name("Mil"), ATTEST_SNP_PRODUCT_UNKNOWN);
	assert_true(attest_snp_vek_ext_add(&e, "1.3.6.1.4.1.3704.1.4", CHIP, 32, NULL) < 0);
	assert_int_equal(attest_snp_vek_ext_add(&e, "1.3.6.1.4.1.3704.1.4", CHIP, 8, NULL), 0);
	assert_int_equal(e.hwid_len, 8);
	assert_int_equal(attest_snp_vek_ext_add(&e, "2.5.29.19", NULL, 0, NULL), 0);
}

static void test_parse_errors(void **state)
{
	uint8_t r[ATTEST_SNP_REPORT_SIZE + 1] = {};
	struct attest_snp_report rep;
	assert_true(attest_snp_report_parse(r, ATTEST_SNP_REPORT_SIZE, &rep, NULL) < 0);
	put_le(r, 2, 4);
	put_le(r + 8, 0x20000, 8);
	assert_int_equal(attest_snp_report_parse(r, ATTEST_SNP_REPORT_SIZE, &rep, NULL), 0);
	assert_true(attest_snp_report_parse(r, ATTEST_SNP_REPORT_SIZE + 1, &rep, NULL) < 0);
	assert_true(attest_snp_report_parse(r, 0, &rep, NULL) < 0);
	r[0x188] = 0x19; /* CPUID bytes in a v2 report */
	assert_true(attest_snp_report_parse(r, ATTEST_SNP_REPORT_SIZE, &rep, NULL) < 0);
	r[0x188] = 0;
	r[0x1F8] = 1; /* mitigation vector before v5 */
	assert_true(attest_snp_report_parse(r, ATTEST_SNP_REPORT_SIZE, &rep, NULL) < 0);
	put_le(r, 5, 4);
	assert_int_equal(attest_snp_report_parse(r, ATTEST_SNP_REPORT_SIZE, &rep, NULL), 0);
	assert_int_equal(rep.launch_mit_vector, 1);
	assert_string_equal(attest_error_name(ATTEST_E_CHIP), "ATTEST_E_CHIP");
	assert_null(attest_error_name(_ATTEST_E_MAX));
	attest_result_done(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_errors),
	    cmocka_unit_test(test_ext_parser),
	    cmocka_unit_test(test_reference_parse),
	    cmocka_unit_test(test_vectors),
	    cmocka_unit_test(test_vector_vlek_later),
	    cmocka_unit_test(test_mutations),
	    cmocka_unit_test(test_synthetic_products),
	    cmocka_unit_test(test_synthetic_turin_layout),
	    cmocka_unit_test(test_synthetic_policy),
	    cmocka_unit_test(test_synthetic_crl),
	    cmocka_unit_test(test_synthetic_files_and_cli),
	};
	return cmocka_run_group_tests(tests, setup_keys, teardown_keys);
}

/* Unit tests of providers/aws/sigv4: every case of ../shared/sigv4-test-suite (header and query
 * signing, byte for byte) plus the encoding and normalization helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <dirent.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>

#include "aws/sigv4.h"
#include "base/base.h"

#define SUITE_REL "shared/sigv4-test-suite/v4"
#define MAX_CASE_FILE_BYTES (256 * 1024)
#define MAX_CASE_HEADERS 64

static char suite_dir[PATH_MAX];

static bool find_suite(void)
{
	const char *root = getenv("PP_ROOT");
	char exe[PATH_MAX];
	if (root) {
		snprintf(suite_dir, sizeof(suite_dir), "%s/../" SUITE_REL, root);
		if (access(suite_dir, R_OK) == 0)
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
	/* build/test and build/<variant>/test sit two or three levels below the repo. */
	static const char *const ups[] = {"/../../../", "/../../../../"};
	for (size_t i = 0; i < ELEMENTSOF(ups); i++) {
		int n2 = snprintf(suite_dir, sizeof(suite_dir), "%s%s" SUITE_REL, exe, ups[i]);
		if (n2 > 0 && (size_t)n2 < sizeof(suite_dir) && access(suite_dir, R_OK) == 0)
			return true;
	}
	return false;
}

/* ---- a parser for the suite's request.txt ---- */

struct parsed_request {
	char *text; /* owns every string below */
	char *method;
	char *target;     /* verbatim, with ?query */
	char *path;       /* copy of the path part */
	char *query;      /* copy of the query part or NULL */
	char *header_raw; /* header lines verbatim, each ending in '\n' */
	struct sigv4_header headers[MAX_CASE_HEADERS];
	char *names[MAX_CASE_HEADERS];
	char *values[MAX_CASE_HEADERS];
	size_t n_headers;
	const char *body;
	size_t body_len;
};

static void parsed_request_done(struct parsed_request *p)
{
	free(p->text);
	free(p->method);
	free(p->target);
	free(p->path);
	free(p->query);
	free(p->header_raw);
	for (size_t i = 0; i < p->n_headers; i++) {
		free(p->names[i]);
		free(p->values[i]);
	}
	*p = (struct parsed_request){0};
}

static int parse_request(char *text, size_t len, struct parsed_request *p)
{
	*p = (struct parsed_request){.text = text};
	char *nl = memchr(text, '\n', len);
	if (!nl)
		return -EINVAL;
	size_t line_len = (size_t)(nl - text);
	const char *sp = memchr(text, ' ', line_len);
	if (!sp || line_len < (size_t)(sp - text) + 1 + 9 || memcmp(nl - 9, " HTTP/1.1", 9) != 0)
		return -EINVAL;
	p->method = strndup(text, (size_t)(sp - text));
	p->target = strndup(sp + 1, (size_t)(nl - 9 - (sp + 1)));
	char *q = strchr(p->target, '?');
	p->path = strndup(p->target, q ? (size_t)(q - p->target) : strlen(p->target));
	p->query = q ? strdup(q + 1) : NULL;

	char *pos = nl + 1, *end = text + len;
	char *hstart = pos, *hend = end;
	while (pos < end) {
		char *e = memchr(pos, '\n', (size_t)(end - pos));
		if (!e)
			e = end;
		if (e == pos) { /* blank line: body follows */
			hend = pos;
			p->body = e + 1 <= end ? e + 1 : end;
			p->body_len = (size_t)(end - p->body);
			break;
		}
		if (*pos == ' ' || *pos == '\t') {
			/* obs-fold: keep the line break and indentation inside the value */
			if (p->n_headers == 0)
				return -EINVAL;
			char *old = p->values[p->n_headers - 1];
			char *nv = NULL;
			if (asprintf(&nv, "%s\n%.*s", old, (int)(e - pos), pos) < 0)
				return -ENOMEM;
			free(old);
			p->values[p->n_headers - 1] = nv;
		} else {
			char *colon = memchr(pos, ':', (size_t)(e - pos));
			if (!colon || p->n_headers >= MAX_CASE_HEADERS)
				return -EINVAL;
			p->names[p->n_headers] = strndup(pos, (size_t)(colon - pos));
			p->values[p->n_headers] = strndup(colon + 1, (size_t)(e - colon - 1));
			p->n_headers++;
		}
		pos = e + 1;
	}
	if (hend < hstart)
		return -EINVAL;
	p->header_raw = strndup(hstart, (size_t)(hend - hstart));
	for (size_t i = 0; i < p->n_headers; i++)
		p->headers[i] = (struct sigv4_header){p->names[i], p->values[i]};
	return 0;
}

static char *read_case_file(const char *dir, const char *name, size_t *ret_len)
{
	char path[PATH_MAX];
	char *data = NULL;
	size_t len = 0;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (read_file_bounded(path, MAX_CASE_FILE_BYTES, &data, &len) < 0)
		return NULL;
	if (ret_len)
		*ret_len = len;
	return data;
}

struct tally {
	unsigned cases;
	unsigned passed;
	unsigned comparisons;
	unsigned comparisons_passed;
	unsigned query_cases_with_token;
};

static bool compare(struct tally *t, const char *dir, const char *file, const char *got)
{
	_cleanup_free_ char *want = read_case_file(dir, file, NULL);
	t->comparisons++;
	if (want && got && strcmp(want, got) == 0) {
		t->comparisons_passed++;
		return true;
	}
	print_error("MISMATCH %s/%s\n--- want\n%s\n--- got\n%s\n", dir, file,
		    want ? want : "(missing)", got ? got : "(null)");
	return false;
}

/* Serialize the signed request exactly as the suite stores it. */
static char *header_signed_request(const struct parsed_request *p, const struct sigv4_result *res,
				   const char *token, const char *date_time, bool content_sha)
{
	struct buf b = {0};
	char *s = str_printf("%s %s HTTP/1.1\n%s", p->method, p->target, p->header_raw);
	assert_non_null(s);
	assert_int_equal(buf_append(&b, s, strlen(s), 0), 0);
	free(s);
	if (token)
		assert_int_equal(buf_printf(&b, "X-Amz-Security-Token:%s\n", token), 0);
	assert_int_equal(buf_printf(&b, "X-Amz-Date:%s\n", date_time), 0);
	if (content_sha)
		assert_int_equal(buf_printf(&b, "x-amz-content-sha256:%s\n", res->payload_hash), 0);
	assert_int_equal(buf_printf(&b, "Authorization:%s\n\n", res->authorization), 0);
	assert_int_equal(buf_append(&b, p->body ? p->body : "", p->body_len, 0), 0);
	assert_int_equal(buf_append(&b, "", 1, 0), 0);
	return (char *)b.data;
}

static char *query_signed_request(const struct parsed_request *p, const struct sigv4_result *res)
{
	struct buf b = {0};
	assert_int_equal(buf_printf(&b, "%s %s%c%s HTTP/1.1\n%s\n", p->method, p->target,
				    p->query ? '&' : '?', res->presigned_query, p->header_raw),
			 0);
	assert_int_equal(buf_append(&b, p->body ? p->body : "", p->body_len, 0), 0);
	assert_int_equal(buf_append(&b, "", 1, 0), 0);
	return (char *)b.data;
}

static const char *json_str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static void run_case(const char *dir, struct tally *t)
{
	char ctxpath[PATH_MAX];
	size_t len = 0;
	char *text = read_case_file(dir, "request.txt", &len);
	assert_non_null(text);
	struct parsed_request p;
	assert_int_equal(parse_request(text, len, &p), 0);

	snprintf(ctxpath, sizeof(ctxpath), "%s/context.json", dir);
	json_error_t jerr;
	json_t *ctx = json_load_file(ctxpath, 0, &jerr);
	assert_non_null(ctx);
	json_t *cj = json_object_get(ctx, "credentials");
	struct sigv4_credentials creds = {
	    .access_key_id = json_str(cj, "access_key_id"),
	    .secret_access_key = json_str(cj, "secret_access_key"),
	    .session_token = json_str(cj, "token"),
	};
	/* "2015-08-30T12:36:00Z" -> "20150830T123600Z" */
	const char *ts = json_str(ctx, "timestamp");
	assert_non_null(ts);
	char date_time[SIGV4_DATE_TIME_BYTES] = {0};
	size_t k = 0;
	for (const char *c = ts; *c && k < sizeof(date_time) - 1; c++)
		if (*c != '-' && *c != ':')
			date_time[k++] = *c;
	bool sign_body = json_is_true(json_object_get(ctx, "sign_body"));
	unsigned flags = 0;
	if (json_is_true(json_object_get(ctx, "normalize")))
		flags |= SIGV4_NORMALIZE_PATH;
	if (json_is_true(json_object_get(ctx, "omit_session_token")))
		flags |= SIGV4_OMIT_SESSION_TOKEN;
	struct sigv4_signing s = {
	    .credentials = &creds,
	    .date_time = date_time,
	    .region = json_str(ctx, "region"),
	    .service = json_str(ctx, "service"),
	    .flags = flags | (sign_body ? SIGV4_ADD_CONTENT_SHA256 : 0),
	    .expires_s =
		(uint32_t)json_integer_value(json_object_get(ctx, "expiration_in_seconds")),
	};
	struct sigv4_request req = {
	    .method = p.method,
	    .path = p.path,
	    .query = p.query,
	    .headers = p.headers,
	    .n_headers = p.n_headers,
	    /* Without sign_body the suite hashes the empty string whatever the body. */
	    .payload = sign_body ? p.body : NULL,
	    .payload_len = sign_body ? p.body_len : 0,
	};

	bool ok = true;
	struct sigv4_result res;
	assert_int_equal(sigv4_sign_headers(&s, &req, &res), 0);
	ok &= compare(t, dir, "header-canonical-request.txt", res.canonical_request);
	ok &= compare(t, dir, "header-string-to-sign.txt", res.string_to_sign);
	ok &= compare(t, dir, "header-signature.txt", res.signature);
	char *sreq = header_signed_request(&p, &res, creds.session_token, date_time, sign_body);
	ok &= compare(t, dir, "header-signed-request.txt", sreq);
	free(sreq);
	sigv4_result_done(&res);

	s.flags = flags; /* query mode never adds x-amz-content-sha256 */
	assert_int_equal(sigv4_sign_query(&s, &req, &res), 0);
	ok &= compare(t, dir, "query-canonical-request.txt", res.canonical_request);
	ok &= compare(t, dir, "query-string-to-sign.txt", res.string_to_sign);
	ok &= compare(t, dir, "query-signature.txt", res.signature);
	sreq = query_signed_request(&p, &res);
	ok &= compare(t, dir, "query-signed-request.txt", sreq);
	free(sreq);
	if (creds.session_token)
		t->query_cases_with_token++;
	sigv4_result_done(&res);

	t->cases++;
	if (ok)
		t->passed++;
	json_decref(ctx);
	parsed_request_done(&p);
}

static void walk(const char *dir, struct tally *t, int depth)
{
	char path[PATH_MAX];
	assert_true(depth < 8);
	snprintf(path, sizeof(path), "%s/request.txt", dir);
	if (access(path, R_OK) == 0) {
		run_case(dir, t);
		return;
	}
	struct dirent **names = NULL;
	int n = scandir(dir, &names, NULL, alphasort);
	assert_true(n >= 0);
	for (int i = 0; i < n; i++) {
		struct stat st;
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		if (names[i]->d_name[0] != '.' && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
			walk(path, t, depth + 1);
		free(names[i]);
	}
	free(names);
}

static void test_suite(void **state)
{
	if (!find_suite()) {
		print_message("test-sigv4: ../shared/sigv4-test-suite not found (set PP_ROOT); "
			      "skipping the suite\n");
		skip();
	}
	struct tally t = {0};
	walk(suite_dir, &t, 0);
	print_message("test-sigv4: %u/%u suite cases passed (%u/%u comparisons, header and query "
		      "modes; %u with a session token)\n",
		      t.passed, t.cases, t.comparisons_passed, t.comparisons,
		      t.query_cases_with_token);
	assert_true(t.cases >= 38);
	assert_int_equal(t.passed, t.cases);
	assert_int_equal(t.comparisons_passed, t.comparisons);
}

/* ---- helpers ---- */

static void expect_encode(const char *in, bool keep_slash, const char *want)
{
	char *out = NULL;
	assert_int_equal(sigv4_uri_encode(in, strlen(in), keep_slash, &out), 0);
	assert_string_equal(out, want);
	free(out);
}

static void test_uri_encode(void **state)
{
	expect_encode("AZaz09-._~", false, "AZaz09-._~");
	expect_encode("a b/c", true, "a%20b/c");
	expect_encode("a b/c", false, "a%20b%2Fc");
	expect_encode("\xe1\x88\xb4", false, "%E1%88%B4");
	expect_encode("%2F+=;", false, "%252F%2B%3D%3B");
	expect_encode("", false, "");
	char *out = NULL;
	assert_int_equal(sigv4_uri_encode("\0x", 2, false, &out), 0);
	assert_string_equal(out, "%00x");
	free(out);
	char *big = calloc(SIGV4_MAX_FIELD_BYTES + 2, 1);
	assert_non_null(big);
	memset(big, 'a', SIGV4_MAX_FIELD_BYTES + 1);
	assert_int_equal(sigv4_uri_encode(big, SIGV4_MAX_FIELD_BYTES + 1, false, &out), -E2BIG);
	free(big);
}

static void test_uri_decode(void **state)
{
	char *out = NULL;
	size_t n = 0;
	assert_int_equal(sigv4_uri_decode("%E1%88%b4x", 10, &out, &n), 0);
	assert_int_equal(n, 4);
	assert_memory_equal(out, "\xe1\x88\xb4x", 4);
	free(out);
	/* malformed escapes stay literal, including at the very end */
	assert_int_equal(sigv4_uri_decode("%zz%4%", 6, &out, &n), 0);
	assert_string_equal(out, "%zz%4%");
	free(out);
	assert_int_equal(sigv4_uri_decode("%00", 3, &out, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(out[0], 0);
	free(out);
}

static void expect_path(const char *in, unsigned flags, const char *want)
{
	char *out = NULL;
	assert_int_equal(sigv4_canonical_path(in, flags, &out), 0);
	assert_string_equal(out, want);
	free(out);
}

static void test_canonical_path(void **state)
{
	const unsigned N = SIGV4_NORMALIZE_PATH;
	expect_path(NULL, N, "/");
	expect_path("", 0, "/");
	expect_path("//example//", N, "/example/");
	expect_path("//example//", 0, "//example//");
	expect_path("/a/b/../../..", N, "/");
	expect_path("/a/./b/../c", N, "/a/c");
	expect_path("/a/./b/../c", 0, "/a/./b/../c");
	expect_path("/example space/", 0, "/example%20space/");
	expect_path("relative/x", N, "/relative/x");
	/* double encoding (default) vs S3 single encoding of an already-encoded path */
	expect_path("/a%20b", 0, "/a%2520b");
	expect_path("/a%20b", SIGV4_SINGLE_ENCODE_PATH, "/a%20b");
	expect_path("/a%2Fb", SIGV4_SINGLE_ENCODE_PATH, "/a/b");
}

static void expect_query(const char *in, const char *want)
{
	char *out = NULL;
	assert_int_equal(sigv4_canonical_query(in, &out), 0);
	assert_string_equal(out, want);
	free(out);
}

static void test_canonical_query(void **state)
{
	expect_query(NULL, "");
	expect_query("", "");
	expect_query("b=2&a=1", "a=1&b=2");
	expect_query("a=2&a=1&a=10", "a=1&a=10&a=2");
	expect_query("Param-3=V&Param=V&%E1%88%B4=V", "%E1%88%B4=V&Param=V&Param-3=V");
	expect_query("k&&=v&x=", "=v&k=&x=");
	expect_query("a=b=c", "a=b%3Dc");
	expect_query("sp ace=%2f+", "sp%20ace=%2F%2B");
}

static void expect_trim(const char *in, const char *want)
{
	char *out = NULL;
	assert_int_equal(sigv4_trim_value(in, &out), 0);
	assert_string_equal(out, want);
	free(out);
}

static void test_trim(void **state)
{
	expect_trim("  value1  ", "value1");
	expect_trim("\"a   b   c\"", "\"a b c\"");
	expect_trim("value1\n  value2\n     value3", "value1 value2 value3");
	expect_trim("\t\r\n", "");
	expect_trim("", "");
}

static void test_derive_key(void **state)
{
	uint8_t key[SIGV4_KEY_BYTES];
	assert_int_equal(sigv4_derive_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830",
					  "us-east-1", "service", key),
			 0);
	char *hex = hex_encode(key, sizeof(key));
	assert_string_equal(hex,
			    "938127b5336810ddb6a5d6af445fcac9e371f9ed418ed386b022aed82901be75");
	free(hex);
	assert_int_equal(sigv4_derive_key("s", "2015083", "r", "s", key), -EINVAL);
	assert_int_equal(sigv4_derive_key("s", "20150830", "us/east", "s", key), -EINVAL);
	assert_int_equal(sigv4_derive_key("", "20150830", "r", "s", key), -EINVAL);
}

#define QUERY_SIG "e93c787ed7f371d5c6b165c1b38ede9550f4dce4144713e844b25b7192d3865d"

static const struct sigv4_credentials example_creds = {
    .access_key_id = "AKIDEXAMPLE",
    .secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
};

/* get-vanilla, inline, so the module keeps some coverage when ../shared is absent. */
static void test_vanilla_and_cache(void **state)
{
	static const struct sigv4_header h[] = {{"Host", "example.amazonaws.com"}};
	struct sigv4_key_cache cache = {0};
	struct sigv4_signing s = {
	    .credentials = &example_creds,
	    .date_time = "20150830T123600Z",
	    .region = "us-east-1",
	    .service = "service",
	    .flags = SIGV4_NORMALIZE_PATH,
	    .expires_s = 3600,
	    .key_cache = &cache,
	};
	struct sigv4_request req = {.method = "GET", .path = "/", .headers = h, .n_headers = 1};
	struct sigv4_result res;
	for (int i = 0; i < 2; i++) { /* second round hits the cache */
		assert_int_equal(sigv4_sign_headers(&s, &req, &res), 0);
		assert_true(cache.valid);
		assert_string_equal(
		    res.signature,
		    "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
		assert_string_equal(
		    res.authorization,
		    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
		    "aws4_request, SignedHeaders=host;x-amz-date, "
		    "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
		assert_null(res.presigned_query);
		sigv4_result_done(&res);
	}
	/* a rotated secret must not reuse the cached key */
	struct sigv4_credentials other = example_creds;
	other.secret_access_key = "different";
	s.credentials = &other;
	assert_int_equal(sigv4_sign_headers(&s, &req, &res), 0);
	assert_string_not_equal(res.signature,
				"5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
	sigv4_result_done(&res);
	s.credentials = &example_creds;

	assert_int_equal(sigv4_sign_query(&s, &req, &res), 0);
	assert_string_equal(res.signature, QUERY_SIG);
	assert_true(
	    str_startswith(res.presigned_query,
			   "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F"));
	assert_true(str_endswith(res.presigned_query, res.signature));
	assert_null(res.authorization);
	sigv4_result_done(&res);
	sigv4_key_cache_done(&cache);
	assert_false(cache.valid);
}

static void test_session_token_and_payload(void **state)
{
	static const struct sigv4_header h[] = {{"Host", "ec2.amazonaws.com"},
						{"X-Amz-Date", "19990101T000000Z"},
						{"Authorization", "stale"}};
	struct sigv4_credentials c = example_creds;
	c.session_token = "tok/en+=";
	struct sigv4_signing s = {
	    .credentials = &c,
	    .date_time = "20150830T123600Z",
	    .region = "us-east-1",
	    .service = "ec2",
	    .flags = SIGV4_NORMALIZE_PATH | SIGV4_ADD_CONTENT_SHA256 | SIGV4_UNSIGNED_PAYLOAD_HASH,
	    .expires_s = 60,
	};
	struct sigv4_request req = {.method = "POST", .path = "/", .headers = h, .n_headers = 3};
	struct sigv4_result res;
	assert_int_equal(sigv4_sign_headers(&s, &req, &res), 0);
	assert_string_equal(res.signed_headers,
			    "host;x-amz-content-sha256;x-amz-date;x-amz-security-token");
	assert_non_null(strstr(res.canonical_request, "\nx-amz-date:20150830T123600Z\n"));
	assert_null(strstr(res.canonical_request, "19990101"));
	assert_null(strstr(res.canonical_request, "stale"));
	assert_non_null(strstr(res.canonical_request, "x-amz-security-token:tok/en+=\n"));
	assert_true(str_endswith(res.canonical_request, "\nUNSIGNED-PAYLOAD"));
	sigv4_result_done(&res);

	s.flags = SIGV4_NORMALIZE_PATH | SIGV4_OMIT_SESSION_TOKEN;
	req.payload = "abc";
	req.payload_len = 3;
	assert_int_equal(sigv4_sign_query(&s, &req, &res), 0);
	assert_null(strstr(res.canonical_request, "Security-Token"));
	assert_non_null(strstr(res.presigned_query, "&X-Amz-Security-Token=tok%2Fen%2B%3D&"));
	assert_true(
	    str_endswith(res.canonical_request,
			 "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
	sigv4_result_done(&res);
}

static void test_rejects(void **state)
{
	static const struct sigv4_header bad_name[] = {{"Bad Name", "v"}};
	struct sigv4_signing s = {
	    .credentials = &example_creds,
	    .date_time = "20150830T123600Z",
	    .region = "us-east-1",
	    .service = "service",
	    .expires_s = 3600,
	};
	struct sigv4_request req = {.method = "GET", .path = "/"};
	struct sigv4_result res;
	s.date_time = "2015-08-30T12:36:00Z";
	assert_int_equal(sigv4_sign_headers(&s, &req, &res), -EINVAL);
	s.date_time = "20150830T123600Z";
	req.method = "G T";
	assert_int_equal(sigv4_sign_headers(&s, &req, &res), -EINVAL);
	req.method = "GET";
	req.headers = bad_name;
	req.n_headers = 1;
	assert_int_equal(sigv4_sign_headers(&s, &req, &res), -EINVAL);
	req.n_headers = SIGV4_MAX_HEADERS + 1;
	assert_int_equal(sigv4_sign_headers(&s, &req, &res), -E2BIG);
	req.n_headers = 0;
	s.expires_s = 0;
	assert_int_equal(sigv4_sign_query(&s, &req, &res), -EINVAL);
	s.expires_s = 604801;
	assert_int_equal(sigv4_sign_query(&s, &req, &res), -EINVAL);
	s.expires_s = 3600;
	req.payload_hash = "not a hash";
	assert_int_equal(sigv4_sign_headers(&s, &req, &res), -EINVAL);
	req.payload_hash = NULL;
	char *longq = calloc(SIGV4_MAX_FIELD_BYTES + 2, 1);
	assert_non_null(longq);
	memset(longq, 'a', SIGV4_MAX_FIELD_BYTES + 1);
	req.query = longq;
	assert_int_equal(sigv4_sign_headers(&s, &req, &res), -E2BIG);
	free(longq);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_uri_encode),
	    cmocka_unit_test(test_uri_decode),
	    cmocka_unit_test(test_canonical_path),
	    cmocka_unit_test(test_canonical_query),
	    cmocka_unit_test(test_trim),
	    cmocka_unit_test(test_derive_key),
	    cmocka_unit_test(test_vanilla_and_cache),
	    cmocka_unit_test(test_session_token_and_payload),
	    cmocka_unit_test(test_rejects),
	    cmocka_unit_test(test_suite),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

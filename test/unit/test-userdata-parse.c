/* Unit tests for the reader side of lib/userdata: strict cloud-config, base64, initdata. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <zlib.h>

#include "userdata/userdata.h"

static int parse(const char *text, struct userdata_doc *doc, char **msg)
{
	return userdata_parse_cloud_config(text, strlen(text), doc, msg);
}

static void test_cloud_config_roundtrip(void **state)
{
	struct userdata_file files[] = {
	    {USERDATA_PATH_APF_JSON, "{\n    \"pod-network\": {}\n\n}"},
	    {USERDATA_PATH_INITDATA, "H4sIAAAA"},
	    {USERDATA_PATH_SCRATCH_MARKER, NULL},
	};
	_cleanup_free_ char *text = NULL;
	assert_int_equal(userdata_render_cloud_config(files, 3, &text), 0);
	_cleanup_(userdata_doc_donep) struct userdata_doc doc = {0};
	_cleanup_free_ char *msg = NULL;
	assert_int_equal(parse(text, &doc, &msg), 0);
	assert_int_equal(doc.n_files, 3);
	assert_string_equal(doc.files[0].path, USERDATA_PATH_APF_JSON);
	assert_true(doc.files[0].has_content);
	assert_string_equal(doc.files[0].content, "{\n    \"pod-network\": {}\n\n}\n");
	assert_string_equal(doc.files[1].content, "H4sIAAAA\n");
	assert_string_equal(doc.files[2].path, USERDATA_PATH_SCRATCH_MARKER);
	assert_false(doc.files[2].has_content);
	assert_int_equal(doc.files[2].content_len, 0);
}

static void test_cloud_config_forms(void **state)
{
	_cleanup_(userdata_doc_donep) struct userdata_doc doc = {0};
	_cleanup_free_ char *msg = NULL;
	/* No header comment, flow style, quoted scalars with escapes, null content. */
	assert_int_equal(parse("write_files: [{path: \"/a\", content: \"x\\0y\"}, {path: '/b', "
			       "content: ~}]\n",
			       &doc, &msg),
			 0);
	assert_int_equal(doc.n_files, 2);
	assert_int_equal(doc.files[0].content_len, 3);
	assert_memory_equal(doc.files[0].content, "x\0y", 3);
	assert_true(doc.files[1].has_content);
	assert_int_equal(doc.files[1].content_len, 0);
	userdata_doc_done(&doc);
	/* An explicit document and an empty list. */
	assert_int_equal(parse("#cloud-config\n---\nwrite_files: []\n...\n", &doc, &msg), 0);
	assert_int_equal(doc.n_files, 0);
	userdata_doc_done(&doc);
	assert_int_equal(parse("{}", &doc, &msg), 0);
	assert_int_equal(doc.n_files, 0);
}

static void expect_error(const char *text, const char *fragment)
{
	struct userdata_doc doc = {0};
	char *msg = NULL;
	int r = parse(text, &doc, &msg);
	if (r != -EINVAL || !msg || !strstr(msg, fragment))
		fail_msg("input %s: r=%d msg=%s (want \"%s\")", text, r, msg ? msg : "(null)",
			 fragment);
	assert_null(doc.files);
	free(msg);
}

static void test_cloud_config_strict(void **state)
{
	expect_error("", "empty document");
	expect_error("#cloud-config\n", "empty document");
	expect_error("- a\n", "the document must be a mapping");
	expect_error("write_files: []\nruncmd: [ls]\n", "unknown key \"runcmd\"");
	expect_error("write_files: []\nwrite_files: []\n", "duplicate key \"write_files\"");
	expect_error("write_files: {path: /a}\n", "write_files must be a sequence");
	expect_error("write_files:\n", "write_files must be a sequence");
	expect_error("write_files: [/a]\n", "write_files[0] must be a mapping");
	expect_error("write_files:\n  - path: /a\n    owner: root\n", "unknown key \"owner\"");
	expect_error("write_files:\n  - path: /a\n    path: /b\n", "duplicate key \"path\"");
	expect_error("write_files:\n  - content: x\n", "missing path");
	expect_error("write_files:\n  - path: [a]\n", "path must be a string");
	expect_error("write_files:\n  - path:\n", "path must be a string, not null");
	expect_error("write_files:\n  - path: /a\n    content: {a: b}\n",
		     "content must be a string");
	expect_error("write_files:\n  - path: /a\n    content: x\n    content: y\n",
		     "duplicate key \"content\"");
	expect_error("write_files: &a []\n", "anchors are not allowed");
	expect_error("x: &a []\nwrite_files: *a\n", "unknown key");
	expect_error("write_files:\n  - path: &p /a\n  - path: *p\n", "anchors are not allowed");
	expect_error("write_files: !!seq []\n", "tags are not allowed");
	expect_error("write_files:\n  - path: !!str /a\n", "tags are not allowed");
	expect_error("%YAML 1.1\n---\nwrite_files: []\n", "directives are not allowed");
	expect_error("write_files: []\n---\nwrite_files: []\n", "what follows the document");
	expect_error("write_files: [\n", "invalid YAML");
	expect_error("write_files:\n  - path: \"/a\\0b\"\n", "NUL");
	expect_error("? [a]\n: b\n", "a mapping key must be a string");
}

static void test_cloud_config_size(void **state)
{
	size_t n = USERDATA_MAX_BYTES + 1;
	_cleanup_free_ char *big = malloc(n);
	memset(big, '#', n);
	struct userdata_doc doc = {0};
	_cleanup_free_ char *msg = NULL;
	assert_int_equal(userdata_parse_cloud_config(big, n, &doc, &msg), -EFBIG);
	assert_non_null(msg);
}

static void test_base64(void **state)
{
	uint8_t *out = NULL;
	size_t n;
	assert_int_equal(userdata_base64_decode("aGVs\r\nbG8=\n", 11, 0, &out, &n), 0);
	assert_int_equal(n, 5);
	assert_string_equal((char *)out, "hello");
	free(out);
	assert_int_equal(userdata_base64_decode("aGk=", 4, 0, &out, &n), 0);
	assert_string_equal((char *)out, "hi");
	free(out);
	assert_int_equal(userdata_base64_decode("aA==", 4, 0, &out, &n), 0);
	assert_string_equal((char *)out, "h");
	free(out);
	assert_int_equal(userdata_base64_decode("", 0, 0, &out, &n), 0);
	assert_int_equal(n, 0);
	free(out);
	assert_int_equal(userdata_base64_decode("aGk", 3, 0, &out, &n), -EINVAL);
	assert_int_equal(userdata_base64_decode("a=Gk", 4, 0, &out, &n), -EINVAL);
	assert_int_equal(userdata_base64_decode("aG=k", 4, 0, &out, &n), -EINVAL);
	assert_int_equal(userdata_base64_decode("aGk =", 5, 0, &out, &n), -EINVAL);
	assert_int_equal(userdata_base64_decode("aA==aA==", 8, 0, &out, &n), -EINVAL);
	assert_int_equal(userdata_base64_decode("aGVsbG8=", 8, 4, &out, &n), -EFBIG);

	for (size_t len = 0; len < 8; len++) {
		const char *src = "\x01\xff\x80xyz\x00q";
		_cleanup_free_ char *enc = NULL;
		assert_int_equal(userdata_base64_encode(src, len, &enc), 0);
		assert_int_equal(strlen(enc) % 4, 0);
		assert_int_equal(userdata_base64_decode(enc, strlen(enc), 0, &out, &n), 0);
		assert_int_equal(n, len);
		assert_memory_equal(out, src, len);
		free(out);
	}
}

static void test_initdata_default_roundtrip(void **state)
{
	const char *toml = INITDATA_DEFAULT_TOML;
	assert_int_equal(strlen(toml), 66);
	_cleanup_free_ char *enc = NULL;
	assert_int_equal(initdata_encode(toml, 66, &enc), 0);
	_cleanup_free_ char *dec = NULL, *msg = NULL, *hex = NULL;
	size_t dec_len;
	assert_int_equal(initdata_decode(enc, strlen(enc), &dec, &dec_len, &msg), 0);
	assert_int_equal(dec_len, 66);
	assert_memory_equal(dec, toml, 66);
	_cleanup_(initdata_donep) struct initdata d = {0};
	assert_int_equal(initdata_parse_toml(dec, dec_len, &d, &msg), 0);
	assert_string_equal(d.algorithm, "sha256");
	assert_string_equal(d.version, "0.1.0");
	assert_int_equal(d.n_data, 1);
	assert_string_equal(d.data[0].name, "aa.toml");
	assert_int_equal(d.data[0].value_len, 0);
	assert_int_equal(initdata_digest(d.algorithm, dec, dec_len, &hex, &msg), 0);
	assert_string_equal(hex, INITDATA_DEFAULT_SHA256);
	assert_string_equal(hex,
			    "adb48cc14fea9403d3d51f3b5f5068fd4d80445a14e94f1b3d5dbabaad66478d");

	_cleanup_free_ char *digest = NULL;
	assert_int_equal(initdata_validate_encoded(enc, strlen(enc), &digest, &msg), 0);
	assert_string_equal(digest, INITDATA_DEFAULT_SHA256);
}

static void test_initdata_decode_errors(void **state)
{
	_cleanup_free_ char *out = NULL;
	size_t n;
	char *msg = NULL;
	assert_int_equal(initdata_decode("not base64!", 11, &out, &n, &msg), -EINVAL);
	assert_non_null(msg);
	free(msg);
	msg = NULL;
	/* Valid base64 of something that is not gzip. */
	assert_int_equal(initdata_decode("aGVsbG8=", 8, &out, &n, &msg), -EINVAL);
	assert_non_null(strstr(msg, "gzip"));
	free(msg);
	msg = NULL;
	/* A truncated stream. */
	_cleanup_free_ char *enc = NULL;
	assert_int_equal(initdata_encode("algorithm = \"sha256\"", 20, &enc), 0);
	_cleanup_free_ uint8_t *gz = NULL;
	size_t gz_len;
	assert_int_equal(userdata_base64_decode(enc, strlen(enc), 0, &gz, &gz_len), 0);
	_cleanup_free_ char *cut = NULL;
	assert_int_equal(userdata_base64_encode(gz, gz_len - 4, &cut), 0);
	assert_int_equal(initdata_decode(cut, strlen(cut), &out, &n, &msg), -EINVAL);
	free(msg);
	msg = NULL;
	/* Trailing bytes after the stream. */
	uint8_t *more = malloc(gz_len + 3);
	memcpy(more, gz, gz_len);
	memcpy(more + gz_len, "abc", 3);
	_cleanup_free_ char *trail = NULL;
	assert_int_equal(userdata_base64_encode(more, gz_len + 3, &trail), 0);
	free(more);
	assert_int_equal(initdata_decode(trail, strlen(trail), &out, &n, &msg), -EINVAL);
	free(msg);
	msg = NULL;
}

/* gzip without initdata_encode's input limit, to build streams that expand past the cap. */
static char *gzip_b64(const void *data, size_t len)
{
	z_stream z = {0};
	assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY),
			 Z_OK);
	size_t cap = deflateBound(&z, len) + 64;
	uint8_t *gz = malloc(cap);
	z.next_in = (Bytef *)data;
	z.avail_in = (uInt)len;
	z.next_out = gz;
	z.avail_out = (uInt)cap;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	size_t n = cap - z.avail_out;
	deflateEnd(&z);
	char *enc = NULL;
	assert_int_equal(userdata_base64_encode(gz, n, &enc), 0);
	free(gz);
	return enc;
}

static void test_initdata_bomb(void **state)
{
	size_t n = INITDATA_MAX_TOML_BYTES;
	_cleanup_free_ char *zeros = calloc(1, n + 1);
	_cleanup_free_ char *at_limit = gzip_b64(zeros, n);
	_cleanup_free_ char *over = gzip_b64(zeros, n + 1);
	_cleanup_free_ char *out = NULL, *msg = NULL;
	size_t len;
	assert_int_equal(initdata_decode(at_limit, strlen(at_limit), &out, &len, &msg), 0);
	assert_int_equal(len, n);
	char *none = NULL;
	assert_int_equal(initdata_decode(over, strlen(over), &none, &len, &msg), -EFBIG);
	assert_non_null(msg);
	assert_null(none);
	assert_int_equal(initdata_encode(zeros, n + 1, &none), -EFBIG);
}

static int toml_parse(const char *s, struct initdata *d, char **msg)
{
	return initdata_parse_toml(s, strlen(s), d, msg);
}

static void test_toml_strings(void **state)
{
	const char *doc = "# initdata\n"
			  "algorithm = 'sha384' # comment\n"
			  "\"version\" = \"0.1.0\"\r\n"
			  "\n"
			  "[ data ]\n"
			  "\"aa.toml\" = '''\n"
			  "[token_configs]\n"
			  "url = \"http://kbs\"\n"
			  "'''\n"
			  "\"cdh.toml\" = \"\"\"\n"
			  "a = \\\"\\u00e9\\U0001F600\\t\\\\\n"
			  "b = \\\n"
			  "     c\"\"\"\"\n"
			  "'policy.rego' = \"package agent_policy\\n\"\n"
			  "quotes = '''it''s''''\n"
			  "literal = 'C:\\path'\n";
	_cleanup_(initdata_donep) struct initdata d = {0};
	_cleanup_free_ char *msg = NULL;
	int r = toml_parse(doc, &d, &msg);
	if (r < 0)
		fail_msg("%s", msg);
	assert_string_equal(d.algorithm, "sha384");
	assert_string_equal(d.version, "0.1.0");
	assert_int_equal(d.n_data, 5);
	assert_string_equal(d.data[0].name, "aa.toml");
	assert_string_equal(d.data[0].value, "[token_configs]\nurl = \"http://kbs\"\n");
	assert_string_equal(d.data[1].name, "cdh.toml");
	assert_string_equal(d.data[1].value, "a = \"\xc3\xa9\xf0\x9f\x98\x80\t\\\nb = c\"");
	assert_string_equal(d.data[2].name, "policy.rego");
	assert_string_equal(d.data[2].value, "package agent_policy\n");
	assert_string_equal(d.data[3].value, "it''s'");
	assert_string_equal(d.data[4].value, "C:\\path");
}

static void expect_toml_error(const char *doc, const char *fragment)
{
	struct initdata d = {0};
	char *msg = NULL;
	int r = toml_parse(doc, &d, &msg);
	if (r != -EINVAL || !msg || !strstr(msg, fragment))
		fail_msg("input %s: r=%d msg=%s (want \"%s\")", doc, r, msg ? msg : "(null)",
			 fragment);
	assert_null(d.algorithm);
	free(msg);
}

#define HDR "algorithm = \"sha256\"\nversion = \"0.1.0\"\n"

static void test_toml_strict(void **state)
{
	expect_toml_error("version = \"0.1.0\"\n", "missing key \"algorithm\"");
	expect_toml_error("algorithm = \"sha256\"\n", "missing key \"version\"");
	expect_toml_error(HDR "algorithm = \"sha512\"\n", "duplicate key \"algorithm\"");
	expect_toml_error(HDR "other = \"x\"\n", "unknown key \"other\"");
	expect_toml_error(HDR "[other]\n", "unknown table [other]");
	expect_toml_error(HDR "[data]\n[data]\n", "duplicate table [data]");
	expect_toml_error(HDR "[[data]]\n", "arrays of tables");
	expect_toml_error(HDR "[data]\na = 'x'\na = 'y'\n", "duplicate key \"a\"");
	expect_toml_error(HDR "[data]\na = 1\n", "expected a string value");
	expect_toml_error(HDR "[data]\na = true\n", "expected a string value");
	expect_toml_error(HDR "[data]\na = ['x']\n", "expected a string value");
	expect_toml_error(HDR "[data]\na.b = 'x'\n", "dotted keys");
	expect_toml_error(HDR "[data]\na = 'x' 'y'\n", "after a value");
	expect_toml_error(HDR "[data]\na = 'x\n", "unterminated string");
	expect_toml_error(HDR "[data]\na = '''x\n", "unterminated multi-line");
	expect_toml_error(HDR "[data]\na = \"\\q\"\n", "invalid escape");
	expect_toml_error(HDR "[data]\na = \"\\uD800\"\n", "Unicode scalar");
	expect_toml_error(HDR "[data]\na = \"x\x01\"\n", "control character");
	expect_toml_error(HDR "[data]\na = '''''''''\n", "too many quotes");
	expect_toml_error(HDR "[data]\n= 'x'\n", "expected a key");
	expect_toml_error("algorithm 'x'\n", "expected '='");
}

static void test_digest(void **state)
{
	_cleanup_free_ char *h256 = NULL, *h384 = NULL, *h512 = NULL, *msg = NULL;
	assert_int_equal(initdata_digest("sha256", "abc", 3, &h256, &msg), 0);
	assert_string_equal(h256,
			    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_int_equal(initdata_digest("sha384", "abc", 3, &h384, &msg), 0);
	assert_int_equal(strlen(h384), 96);
	assert_true(str_startswith(h384, "cb00753f45a35e8bb5a03d699ac65007"));
	assert_int_equal(initdata_digest("sha512", "abc", 3, &h512, &msg), 0);
	assert_int_equal(strlen(h512), 128);
	assert_true(str_startswith(h512, "ddaf35a193617aba"));
	char *x = NULL;
	assert_int_equal(initdata_digest("md5", "abc", 3, &x, &msg), -ENOTSUP);
	assert_string_equal(msg, "Error creating initdata digest, algorithm md5 is not supported");
	assert_null(x);
}

static void test_annotation(void **state)
{
	const char *toml = HDR "[data]\n\"policy.rego\" = '''\npackage agent_policy\n'''\n";
	_cleanup_free_ char *enc = NULL, *msg = NULL, *digest = NULL;
	assert_int_equal(initdata_encode_annotation(toml, strlen(toml), &enc, &msg), 0);
	assert_int_equal(initdata_validate_encoded(enc, strlen(enc), &digest, &msg), 0);
	_cleanup_free_ char *dec = NULL;
	size_t dec_len;
	assert_int_equal(initdata_decode(enc, strlen(enc), &dec, &dec_len, &msg), 0);
	assert_string_equal(dec, toml);

	/* An already encoded value (with a line break) is kept, minus the line break. */
	_cleanup_free_ char *wrapped = str_printf("%.8s\n%s", enc, enc + 8);
	_cleanup_free_ char *again = NULL;
	assert_int_equal(initdata_encode_annotation(wrapped, strlen(wrapped), &again, &msg), 0);
	assert_string_equal(again, enc);

	/* Invalid TOML or an unsupported algorithm is refused. */
	char *bad = NULL;
	assert_int_equal(initdata_encode_annotation("algorithm = 1", 13, &bad, &msg), -EINVAL);
	assert_non_null(msg);
	free(msg);
	msg = NULL;
	const char *md5 = "algorithm = \"md5\"\nversion = \"0.1.0\"\n";
	assert_int_equal(initdata_encode_annotation(md5, strlen(md5), &bad, &msg), -ENOTSUP);
	assert_string_equal(msg, "Error creating initdata digest, algorithm md5 is not supported");
	free(msg);
	msg = NULL;
	_cleanup_free_ char *md5enc = NULL;
	assert_int_equal(initdata_encode(md5, strlen(md5), &md5enc), 0);
	assert_int_equal(initdata_validate_encoded(md5enc, strlen(md5enc), NULL, &msg), -ENOTSUP);
	assert_null(bad);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cloud_config_roundtrip),
	    cmocka_unit_test(test_cloud_config_forms),
	    cmocka_unit_test(test_cloud_config_strict),
	    cmocka_unit_test(test_cloud_config_size),
	    cmocka_unit_test(test_base64),
	    cmocka_unit_test(test_initdata_default_roundtrip),
	    cmocka_unit_test(test_initdata_decode_errors),
	    cmocka_unit_test(test_initdata_bomb),
	    cmocka_unit_test(test_toml_strings),
	    cmocka_unit_test(test_toml_strict),
	    cmocka_unit_test(test_digest),
	    cmocka_unit_test(test_annotation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

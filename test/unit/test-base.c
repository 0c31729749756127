/* Unit tests of lib/base: number and duration parsing, strings, buffers, files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <sys/stat.h>

#include "base/base.h"

static void test_parse_numbers(void **state)
{
	int64_t i;
	uint32_t u;
	uint16_t port;
	bool b;
	assert_int_equal(parse_i64("-42", &i), 0);
	assert_int_equal(i, -42);
	assert_int_equal(parse_i64("", &i), -EINVAL);
	assert_int_equal(parse_i64("12x", &i), -EINVAL);
	assert_int_equal(parse_i64(" 1", &i), -EINVAL);
	assert_int_equal(parse_i64("99999999999999999999", &i), -ERANGE);
	assert_int_equal(parse_u32("4294967295", &u), 0);
	assert_int_equal(parse_u32("4294967296", &u), -ERANGE);
	assert_int_equal(parse_u32("-1", &u), -EINVAL);
	assert_int_equal(parse_port("15150", &port), 0);
	assert_int_equal(port, 15150);
	assert_int_equal(parse_port("0", &port), -ERANGE);
	assert_int_equal(parse_port("65536", &port), -ERANGE);
	assert_int_equal(parse_bool("True", &b), 0);
	assert_true(b);
	assert_int_equal(parse_bool("f", &b), 0);
	assert_false(b);
	assert_int_equal(parse_bool("yes", &b), -EINVAL);
}

static void test_parse_duration(void **state)
{
	struct {
		const char *s;
		int64_t ns;
	} ok[] = {
	    {"0", 0},
	    {"5m", 300 * NSEC_PER_SEC},
	    {"300ms", 300 * NSEC_PER_MSEC},
	    {"1.5h", 5400 * NSEC_PER_SEC},
	    {"2h45m", (2 * 3600 + 45 * 60) * NSEC_PER_SEC},
	    {"-1s", -NSEC_PER_SEC},
	    {"1us", 1000},
	    {"1\xc2\xb5s", 1000},
	    {"10ns", 10},
	    {".5s", 500 * NSEC_PER_MSEC},
	};
	for (size_t k = 0; k < ELEMENTSOF(ok); k++) {
		int64_t v = -7;
		assert_int_equal(parse_duration(ok[k].s, &v), 0);
		assert_int_equal(v, ok[k].ns);
	}
	const char *bad[] = {"", "5", "m", "1x", "1.s.", "s5", "--1s", "9999999999h"};
	for (size_t k = 0; k < ELEMENTSOF(bad); k++) {
		int64_t v;
		assert_true(parse_duration(bad[k], &v) < 0);
	}
}

static void test_strv_and_buf(void **state)
{
	_cleanup_strv_free_ char **v = NULL;
	assert_int_equal(strv_split("a,,b,c", ",", true, &v), 0);
	assert_int_equal(strv_length(v), 3);
	assert_string_equal(v[2], "c");
	_cleanup_strv_free_ char **w = NULL;
	assert_int_equal(strv_split("a,,b", ",", false, &w), 0);
	assert_int_equal(strv_length(w), 3);
	assert_string_equal(w[1], "");

	struct buf b = {0};
	assert_int_equal(buf_append(&b, "hello", 5, 8), 0);
	assert_int_equal(buf_append(&b, "world", 5, 8), -EMSGSIZE);
	assert_int_equal(b.len, 5);
	buf_consume(&b, 2);
	assert_memory_equal(b.data, "llo", 3);
	buf_done(&b);

	char small[4];
	assert_int_equal(str_copy(small, sizeof(small), "abcdef"), -ENAMETOOLONG);
	assert_string_equal(small, "abc");
	_cleanup_free_ char *h = hex_encode("\x00\xff", 2);
	assert_string_equal(h, "00ff");

	uint8_t d[3];
	assert_int_equal(hex_decode_exact("00aBff", 6, d, 3), 0);
	assert_memory_equal(d, "\x00\xab\xff", 3);
	assert_int_equal(hex_decode_exact("00aBf", 5, d, 3), -EINVAL);    /* short */
	assert_int_equal(hex_decode_exact("00aBffee", 8, d, 3), -EINVAL); /* long */
	assert_int_equal(hex_decode_exact("00gBff", 6, d, 3), -EINVAL);   /* not hex */
	assert_int_equal(hex_decode_exact(NULL, 0, d, 0), -EINVAL);
	assert_int_equal(hex_digit_value('F'), 15);

	struct buf pe = {0};
	assert_int_equal(buf_append_percent_encoded(&pe, "a/b c~\xff", 7, true, 0), 0);
	assert_int_equal(buf_append_percent_encoded(&pe, "/", 1, false, 0), 0);
	assert_int_equal(pe.len, strlen("a/b%20c~%FF%2F"));
	assert_memory_equal(pe.data, "a/b%20c~%FF%2F", pe.len);
	/* the bound applies to the encoded length */
	assert_int_equal(buf_append_percent_encoded(&pe, " ", 1, false, pe.len + 2), -EMSGSIZE);
	buf_done(&pe);
	assert_int_equal(hex_digit_value('/'), -1);
}

static void test_utf8(void **state)
{
	uint8_t u[4];
	assert_int_equal(utf8_encode(0x41, u), 1);
	assert_int_equal(u[0], 0x41);
	assert_int_equal(utf8_encode(0xe9, u), 2);
	assert_memory_equal(u, "\xc3\xa9", 2);
	assert_int_equal(utf8_encode(0x20ac, u), 3);
	assert_memory_equal(u, "\xe2\x82\xac", 3);
	assert_int_equal(utf8_encode(0x1f600, u), 4);
	assert_memory_equal(u, "\xf0\x9f\x98\x80", 4);
	assert_int_equal(utf8_encode(0xd800, u), -EINVAL);
	assert_int_equal(utf8_encode(0x110000, u), -EINVAL);
}

static void test_files(void **state)
{
	char dir[] = "/tmp/pp-test-base.XXXXXX";
	assert_non_null(mkdtemp(dir));
	_cleanup_free_ char *sub = str_printf("%s/a/b/c", dir);
	assert_int_equal(mkdir_p(sub, 0755), 0);
	_cleanup_free_ char *f = str_printf("%s/a/file", dir);
	/* exactly at the bound is accepted, one byte more is not */
	size_t n = 70000;
	char *data = malloc(n);
	memset(data, 'x', n);
	assert_int_equal(write_file_atomic(f, data, n, 0600), 0);
	struct stat st;
	assert_int_equal(stat(f, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	char *back = NULL;
	size_t len = 0;
	assert_int_equal(read_file_bounded(f, n, &back, &len), 0);
	assert_int_equal(len, n);
	assert_int_equal(back[n], 0);
	free(back);
	assert_int_equal(read_file_bounded(f, n - 1, &back, &len), -EFBIG);
	assert_int_equal(write_file_atomic(f, "", 0, 0600), 0);
	assert_int_equal(read_file_bounded(f, 0, &back, &len), 0);
	assert_int_equal(len, 0);
	free(back);
	free(data);
	assert_int_equal(read_file_bounded("/nonexistent/x", 10, &back, &len), -ENOENT);
	assert_int_equal(rm_rf(dir), 0);
	assert_int_equal(access(dir, F_OK), -1);
	assert_int_equal(rm_rf(dir), 0);
}

static void test_error(void **state)
{
	struct pp_error *e = NULL;
	assert_int_equal(pp_error_set(&e, EIO, "inner %d", 1), -EIO);
	assert_int_equal(pp_error_set(&e, ENOENT, "outer"), -ENOENT);
	assert_string_equal(e->message, "inner 1"); /* the innermost failure wins */
	assert_int_equal(pp_error_prefix(&e, "creating %s", "vm"), -EIO);
	assert_string_equal(pp_error_message(e, -EIO), "creating vm: inner 1");
	/* cloud detail: status when given, code and request id unless already there */
	pp_error_add_detail(&e, 429, "Throttled", "rid-1");
	pp_error_add_detail(&e, 0, "Other", "rid-2");
	assert_int_equal(e->status, 429);
	assert_string_equal(e->code, "Throttled");
	assert_string_equal(e->request_id, "rid-1");
	pp_error_free(e);
	struct pp_error *none = NULL;
	pp_error_add_detail(&none, 500, "x", "y");
	assert_null(none);
	pp_error_add_detail(NULL, 500, "x", "y");
	assert_string_equal(pp_error_message(NULL, -ENOENT), strerror(ENOENT));
	assert_int_equal(pp_error_set(NULL, -EPERM, "x"), -EPERM);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_numbers), cmocka_unit_test(test_parse_duration),
	    cmocka_unit_test(test_strv_and_buf),  cmocka_unit_test(test_utf8),
	    cmocka_unit_test(test_files),         cmocka_unit_test(test_error),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for lib/http against a local canned-response server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "http-test-server.h"
#include "http/http.h"

static void test_get_headers_sent_and_captured(void **state)
{
	struct ts_response resp[] = {
	    {200, "X-Request-Id: abc123\r\nX-Other: no\r\n", "hello", 0},
	};
	struct test_server s;
	assert_int_equal(ts_start(&s, resp, 1), 0);
	_cleanup_free_ char *url = ts_url(&s, "/path?q=1");
	struct http_header hdrs[] = {{"Metadata", "true"}, {"X-Empty", ""}};
	const char *capture[] = {"x-request-id", "Missing"};
	struct http_request req = {.url = url,
				   .headers = hdrs,
				   .n_headers = 2,
				   .capture_headers = capture,
				   .n_capture_headers = 2};
	struct http_response r = {0};
	struct pp_error *err = NULL;
	assert_int_equal(http_request(&req, &r, &err), 0);
	assert_null(err);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body_len, 5);
	assert_string_equal(r.body, "hello");
	assert_string_equal(http_response_header(&r, "X-Request-ID"), "abc123");
	assert_null(http_response_header(&r, "Missing"));
	assert_null(http_response_header(&r, "X-Other"));
	assert_int_equal(r.n_attempts, 1);

	assert_int_equal(ts_n_requests(&s), 1);
	char v[64];
	assert_string_equal(s.requests[0].method, "GET");
	assert_string_equal(s.requests[0].target, "/path?q=1");
	assert_true(ts_request_header(&s.requests[0], "Metadata", v, sizeof(v)));
	assert_string_equal(v, "true");
	assert_true(ts_request_header(&s.requests[0], "X-Empty", v, sizeof(v)));
	assert_string_equal(v, "");
	http_response_done(&r);
	ts_stop(&s);
}

static void test_put_body_and_post(void **state)
{
	struct ts_response resp[] = {{200, NULL, "token", 0}};
	struct test_server s;
	assert_int_equal(ts_start(&s, resp, 1), 0);
	_cleanup_free_ char *url = ts_url(&s, "/latest/api/token");
	struct http_request req = {.method = "PUT", .url = url};
	struct http_response r = {0};
	assert_int_equal(http_request(&req, &r, NULL), 0);
	assert_string_equal(r.body, "token");
	http_response_done(&r);

	struct http_request post = {.method = "POST", .url = url, .body = "a=b&c=d", .body_len = 7};
	assert_int_equal(http_request(&post, &r, NULL), 0);
	http_response_done(&r);

	assert_int_equal(ts_n_requests(&s), 2);
	char v[32];
	assert_string_equal(s.requests[0].method, "PUT");
	assert_true(ts_request_header(&s.requests[0], "Content-Length", v, sizeof(v)));
	assert_string_equal(v, "0");
	assert_string_equal(s.requests[1].method, "POST");
	assert_int_equal(s.requests[1].body_len, 7);
	assert_memory_equal(s.requests[1].body, "a=b&c=d", 7);
	ts_stop(&s);
}

static void test_timeout(void **state)
{
	struct ts_response resp[] = {{0, NULL, NULL, 0}};
	struct test_server s;
	assert_int_equal(ts_start(&s, resp, 1), 0);
	_cleanup_free_ char *url = ts_url(&s, "/slow");
	struct http_request req = {.url = url, .timeout_ns = 200 * NSEC_PER_MSEC};
	struct http_response r = {0};
	_cleanup_pp_error_ struct pp_error *err = NULL;
	assert_int_equal(http_request(&req, &r, &err), -ETIMEDOUT);
	assert_non_null(err);
	assert_int_equal(err->err, ETIMEDOUT);
	assert_int_equal(err->status, 0);
	assert_int_equal(r.status, 0);
	http_response_done(&r);
	ts_stop(&s);
}

static void test_body_cap(void **state)
{
	static char big[5000];
	memset(big, 'x', sizeof(big));
	struct ts_response resp[] = {{200, NULL, big, sizeof(big)}};
	struct test_server s;
	assert_int_equal(ts_start(&s, resp, 1), 0);
	_cleanup_free_ char *url = ts_url(&s, "/big");
	struct http_response r = {0};

	/* Exactly at the cap is fine. */
	struct http_request req = {.url = url, .max_body_bytes = sizeof(big)};
	assert_int_equal(http_request(&req, &r, NULL), 0);
	assert_int_equal(r.body_len, sizeof(big));
	http_response_done(&r);

	_cleanup_pp_error_ struct pp_error *err = NULL;
	req.max_body_bytes = 4096;
	req.max_retries = 3; /* an oversized body is not retried */
	assert_int_equal(http_request(&req, &r, &err), -EMSGSIZE);
	assert_non_null(err);
	assert_non_null(strstr(err->message, "4096"));
	http_response_done(&r);
	assert_int_equal(ts_n_requests(&s), 2);
	ts_stop(&s);
}

static void test_retry_503_retry_after(void **state)
{
	struct ts_response resp[] = {
	    {503, "Retry-After: 1\r\n", "busy", 0},
	    {200, NULL, "ok", 0},
	};
	struct test_server s;
	assert_int_equal(ts_start(&s, resp, 2), 0);
	_cleanup_free_ char *url = ts_url(&s, "/flaky");
	/* A huge backoff would make the test hang if Retry-After were ignored; the cap keeps the
	 * honoured delay bounded anyway. */
	struct http_request req = {.url = url,
				   .max_retries = 2,
				   .backoff_initial_ns = 600 * NSEC_PER_SEC,
				   .backoff_max_ns = 600 * NSEC_PER_SEC};
	struct http_response r = {0};
	assert_int_equal(http_request(&req, &r, NULL), 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "ok");
	assert_int_equal(r.n_attempts, 2);
	assert_int_equal(ts_n_requests(&s), 2);
	http_response_done(&r);
	ts_stop(&s);
}

static void test_retries_exhausted(void **state)
{
	struct ts_response resp[] = {{500, "Retry-After: 0\r\n", "boom", 0}};
	struct test_server s;
	assert_int_equal(ts_start(&s, resp, 1), 0);
	_cleanup_free_ char *url = ts_url(&s, "/down");
	struct http_request req = {.url = url, .max_retries = 2};
	struct http_response r = {0};
	_cleanup_pp_error_ struct pp_error *err = NULL;
	assert_int_equal(http_request(&req, &r, &err), -EIO);
	assert_int_equal(err->status, 500);
	assert_non_null(strstr(err->message, "boom"));
	assert_int_equal(r.status, 500);
	assert_string_equal(r.body, "boom");
	assert_int_equal(r.n_attempts, 3);
	assert_int_equal(ts_n_requests(&s), 3);
	http_response_done(&r);
	ts_stop(&s);
}

static void test_no_retry_404(void **state)
{
	struct ts_response resp[] = {{404, NULL, "{\"error\":\"nope\"}", 0},
				     {200, NULL, "late", 0}};
	struct test_server s;
	assert_int_equal(ts_start(&s, resp, 2), 0);
	_cleanup_free_ char *url = ts_url(&s, "/missing?sig=secret");
	struct http_request req = {.url = url, .max_retries = 5};
	struct http_response r = {0};
	_cleanup_pp_error_ struct pp_error *err = NULL;
	assert_int_equal(http_request(&req, &r, &err), -ENOENT);
	assert_int_equal(err->status, 404);
	assert_null(strstr(err->message, "secret"));
	assert_int_equal(r.status, 404);
	assert_string_equal(r.body, "{\"error\":\"nope\"}");
	assert_int_equal(ts_n_requests(&s), 1);
	http_response_done(&r);

	req.accept_any_status = true;
	req.max_retries = 0;
	ts_set_responses(&s, resp, 1);
	assert_int_equal(http_request(&req, &r, NULL), 0);
	assert_int_equal(r.status, 404);
	http_response_done(&r);
	ts_stop(&s);
}

static void test_connection_refused(void **state)
{
	/* Bind a port and close it so nothing listens there. */
	struct ts_response resp[] = {{200, NULL, "x", 0}};
	struct test_server s;
	assert_int_equal(ts_start(&s, resp, 1), 0);
	_cleanup_free_ char *url = ts_url(&s, "/");
	ts_stop(&s);
	struct http_request req = {.url = url, .max_retries = 1, .backoff_initial_ns = 1};
	struct http_response r = {0};
	_cleanup_pp_error_ struct pp_error *err = NULL;
	assert_int_equal(http_request(&req, &r, &err), -ECONNREFUSED);
	assert_non_null(err);
	http_response_done(&r);
}

static void test_bad_input(void **state)
{
	struct http_response r = {0};
	_cleanup_pp_error_ struct pp_error *err = NULL;
	struct http_request req = {.url = "ftp://127.0.0.1/x"};
	assert_int_equal(http_request(&req, &r, &err), -EINVAL);
	pp_error_free(err);
	err = NULL;
	struct http_header bad[] = {{"X-Bad", "a\r\nInjected: 1"}};
	struct http_request req2 = {.url = "http://127.0.0.1:1/", .headers = bad, .n_headers = 1};
	assert_int_equal(http_request(&req2, &r, &err), -EINVAL);
	http_response_done(&r);
}

static void test_retry_after_parse(void **state)
{
	int64_t ns;
	assert_int_equal(http_parse_retry_after("7", 0, &ns), 0);
	assert_int_equal(ns, 7 * NSEC_PER_SEC);
	/* Sun, 06 Nov 1994 08:49:37 GMT = 784111777 */
	int64_t now = 784111770LL * NSEC_PER_SEC;
	assert_int_equal(http_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now, &ns), 0);
	assert_int_equal(ns, 7 * NSEC_PER_SEC);
	assert_int_equal(http_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now * 2, &ns), 0);
	assert_int_equal(ns, 0);
	assert_int_equal(http_parse_retry_after("-1", 0, &ns), -EINVAL);
	assert_int_equal(http_parse_retry_after("soon", 0, &ns), -EINVAL);
	assert_int_equal(http_parse_retry_after("", 0, &ns), -EINVAL);
}

static void test_backoff(void **state)
{
	int64_t s = NSEC_PER_SEC;
	/* random 0 gives the lower half bound, a random equal to the span the upper bound. */
	assert_int_equal(http_backoff_ns(0, s, 10 * s, 0), s / 2);
	assert_int_equal(http_backoff_ns(0, s, 10 * s, s / 2), s);
	assert_int_equal(http_backoff_ns(2, s, 10 * s, 2 * s), 4 * s);
	assert_int_equal(http_backoff_ns(10, s, 10 * s, 5 * s), 10 * s);
	assert_int_equal(http_backoff_ns(200, s, 10 * s, 5 * s), 10 * s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_get_headers_sent_and_captured),
	    cmocka_unit_test(test_put_body_and_post),
	    cmocka_unit_test(test_timeout),
	    cmocka_unit_test(test_body_cap),
	    cmocka_unit_test(test_retry_503_retry_after),
	    cmocka_unit_test(test_retries_exhausted),
	    cmocka_unit_test(test_no_retry_404),
	    cmocka_unit_test(test_connection_refused),
	    cmocka_unit_test(test_bad_input),
	    cmocka_unit_test(test_retry_after_parse),
	    cmocka_unit_test(test_backoff),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for lib/log: text and JSON line layout, JSON escaping of hostile text, %m, levels,
 * and whole lines from concurrent threads. stderr is redirected to a memfd and read back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/mman.h>

#include "log/log.h"

struct capture {
	int saved_stderr;
	int fd;
};

static void capture_start(struct capture *c)
{
	c->fd = memfd_create("log", MFD_CLOEXEC);
	assert_true(c->fd >= 0);
	c->saved_stderr = dup(STDERR_FILENO);
	assert_true(c->saved_stderr >= 0);
	assert_int_equal(dup2(c->fd, STDERR_FILENO), STDERR_FILENO);
}

/* Restore stderr and return everything written meanwhile (malloc'd, NUL-terminated). */
static char *capture_end(struct capture *c)
{
	assert_int_equal(dup2(c->saved_stderr, STDERR_FILENO), STDERR_FILENO);
	close(c->saved_stderr);
	off_t size = lseek(c->fd, 0, SEEK_END);
	assert_true(size >= 0);
	char *data = malloc((size_t)size + 1);
	assert_non_null(data);
	assert_int_equal(pread(c->fd, data, (size_t)size, 0), size);
	data[size] = 0;
	close(c->fd);
	return data;
}

static int setup(void **state)
{
	log_set_program("prog");
	log_set_level(LOG_LEVEL_INFO);
	log_set_format(LOG_FORMAT_TEXT);
	return 0;
}

static size_t count_lines(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static json_t *parse_one_line(const char *out)
{
	assert_int_equal(count_lines(out), 1);
	assert_true(str_endswith(out, "\n"));
	json_error_t err;
	json_t *j = json_loads(out, 0, &err);
	if (!j)
		fail_msg("not JSON (%s): %s", err.text, out);
	assert_true(json_is_object(j));
	return j;
}

static const char *get_str(json_t *j, const char *key)
{
	json_t *v = json_object_get(j, key);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

static void test_text_line_layout(void **state)
{
	struct capture c;
	capture_start(&c);
	struct log_fields f = {.sandbox_id = "abc123", .pod = "ns/web", .instance = "i-0f"};
	assert_int_equal(logp_error_errno(&f, -ENOENT, "create %s failed", "vm"), -ENOENT);
	log_info("plain %d", 5);
	struct log_fields partial = {.pod = "ns/db"};
	logp_warning(&partial, "slow");
	_cleanup_free_ char *out = capture_end(&c);
	assert_string_equal(out, "ERROR prog: [sandbox=abc123 pod=ns/web instance=i-0f] create vm "
				 "failed: No such file or directory\n"
				 "INFO prog: plain 5\n"
				 "WARNING prog: [pod=ns/db] slow\n");
}

static void test_text_escapes_control_chars(void **state)
{
	struct capture c;
	capture_start(&c);
	/* A forged second line must not appear as a line of its own. */
	log_info("user said: %s", "hi\nERROR prog: fake\r\x01");
	_cleanup_free_ char *out = capture_end(&c);
	assert_string_equal(out, "INFO prog: user said: hi\\nERROR prog: fake\\r\\x01\n");
}

static void test_percent_m(void **state)
{
	struct capture c;
	capture_start(&c);
	/* %m expands to the given error and suppresses the ": strerror" suffix. */
	assert_int_equal(log_error_errno(-EACCES, "open %s: %m", "/x"), -EACCES);
	/* Positive errno works the same. */
	log_warning_errno(EACCES, "again: %m");
	/* %%m is a literal "%m", so the suffix is still appended. */
	log_error_errno(-EACCES, "100%%m");
	/* errno of the caller is not used for %m nor changed. */
	errno = EBADF;
	log_error_errno(-EPERM, "op: %m");
	assert_int_equal(errno, EBADF);
	_cleanup_free_ char *out = capture_end(&c);
	assert_string_equal(out, "ERROR prog: open /x: Permission denied\n"
				 "WARNING prog: again: Permission denied\n"
				 "ERROR prog: 100%m: Permission denied\n"
				 "ERROR prog: op: Operation not permitted\n");
}

static void test_levels(void **state)
{
	struct capture c;
	capture_start(&c);
	log_set_level(LOG_LEVEL_WARNING);
	log_info("hidden");
	log_debug("hidden");
	/* Even a filtered line returns its error. */
	assert_int_equal(log_emit(LOG_LEVEL_INFO, -EIO, NULL, "hidden"), -EIO);
	log_warning("shown");
	log_set_level(LOG_LEVEL_DEBUG);
	log_debug("debug shown");
	log_set_level(LOG_LEVEL_INFO);
	_cleanup_free_ char *out = capture_end(&c);
	assert_string_equal(out, "WARNING prog: shown\nDEBUG prog: debug shown\n");
}

static void test_parse(void **state)
{
	enum log_level l;
	enum log_format f;
	assert_int_equal(log_parse_level("debug", &l), 0);
	assert_int_equal(l, LOG_LEVEL_DEBUG);
	assert_int_equal(log_parse_level("warning", &l), 0);
	assert_int_equal(l, LOG_LEVEL_WARNING);
	assert_int_equal(log_parse_level("error", &l), 0);
	assert_int_equal(l, LOG_LEVEL_ERROR);
	assert_int_equal(log_parse_level("info", &l), 0);
	assert_int_equal(l, LOG_LEVEL_INFO);
	assert_int_equal(log_parse_level("verbose", &l), -EINVAL);
	assert_int_equal(log_parse_level(NULL, &l), -EINVAL);
	assert_int_equal(log_parse_format("json", &f), 0);
	assert_int_equal(f, LOG_FORMAT_JSON);
	assert_int_equal(log_parse_format("text", &f), 0);
	assert_int_equal(f, LOG_FORMAT_TEXT);
	assert_int_equal(log_parse_format("yaml", &f), -EINVAL);
}

static bool is_rfc3339_ms_utc(const char *t)
{
	/* 2006-01-02T15:04:05.000Z */
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
	if (strlen(t) != strlen(shape))
		return false;
	for (size_t i = 0; shape[i]; i++) {
		if (shape[i] == 'd' ? !(t[i] >= '0' && t[i] <= '9') : t[i] != shape[i])
			return false;
	}
	return true;
}

static void test_json_fields(void **state)
{
	log_set_format(LOG_FORMAT_JSON);
	struct capture c;
	capture_start(&c);
	struct log_fields f = {.sandbox_id = "sb1", .pod = "ns/web", .instance = "i-0f"};
	logp_error_errno(&f, -ECONNREFUSED, "dial %s", "10.0.0.2:15150");
	_cleanup_free_ char *out = capture_end(&c);
	log_set_format(LOG_FORMAT_TEXT);

	json_t *j = parse_one_line(out);
	assert_true(is_rfc3339_ms_utc(get_str(j, "time")));
	assert_string_equal(get_str(j, "level"), "error");
	assert_string_equal(get_str(j, "msg"), "dial 10.0.0.2:15150");
	assert_string_equal(get_str(j, "sandbox_id"), "sb1");
	assert_string_equal(get_str(j, "pod"), "ns/web");
	assert_string_equal(get_str(j, "instance"), "i-0f");
	assert_string_equal(get_str(j, "error"), "Connection refused");
	assert_int_equal(json_object_size(j), 7);
	json_decref(j);
}

static void test_json_absent_fields(void **state)
{
	log_set_format(LOG_FORMAT_JSON);
	struct capture c;
	capture_start(&c);
	struct log_fields f = {.instance = "vm-1"};
	logp_info(&f, "started");
	_cleanup_free_ char *out = capture_end(&c);
	log_set_format(LOG_FORMAT_TEXT);

	json_t *j = parse_one_line(out);
	assert_string_equal(get_str(j, "level"), "info");
	assert_string_equal(get_str(j, "msg"), "started");
	assert_string_equal(get_str(j, "instance"), "vm-1");
	assert_null(json_object_get(j, "sandbox_id"));
	assert_null(json_object_get(j, "pod"));
	assert_null(json_object_get(j, "error"));
	assert_int_equal(json_object_size(j), 4);
	json_decref(j);
}

static void test_json_escaping(void **state)
{
	log_set_format(LOG_FORMAT_JSON);
	struct capture c;
	capture_start(&c);
	/* Quotes, backslash, control characters, valid UTF-8, invalid UTF-8 (lone continuation
	 * byte, truncated sequence, overlong encoding, encoded surrogate). */
	struct log_fields f = {.pod = "ns/\"evil\"\n"};
	logp_warning(&f, "%s",
		     "q\"b\\n\nt\tc\x01\x1f del\x7f \xc3\xa9 \xe2\x82\xac \xf0\x9f\x99\x82"
		     " bad\x80 trunc\xe2\x82 over\xc0\xaf over3\xe0\x9f\xbf"
		     " sur\xed\xa0\x80!");
	_cleanup_free_ char *out = capture_end(&c);
	log_set_format(LOG_FORMAT_TEXT);

	/* The raw line holds no raw control bytes besides the final newline. */
	for (const char *p = out; p[1]; p++)
		assert_true((unsigned char)*p >= 0x20 && *p != 0x7f);
	json_t *j = parse_one_line(out);
	assert_string_equal(get_str(j, "msg"),
			    "q\"b\\n\nt\tc\x01\x1f del\x7f \xc3\xa9 \xe2\x82\xac \xf0\x9f\x99\x82"
			    " bad\xef\xbf\xbd trunc\xef\xbf\xbd\xef\xbf\xbd over\xef\xbf\xbd\xef"
			    "\xbf\xbd over3\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
			    " sur\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd!");
	assert_string_equal(get_str(j, "pod"), "ns/\"evil\"\n");
	json_decref(j);
}

static void test_json_percent_m_keeps_error_field(void **state)
{
	log_set_format(LOG_FORMAT_JSON);
	struct capture c;
	capture_start(&c);
	log_error_errno(-ETIMEDOUT, "wait: %m");
	_cleanup_free_ char *out = capture_end(&c);
	log_set_format(LOG_FORMAT_TEXT);
	json_t *j = parse_one_line(out);
	assert_string_equal(get_str(j, "msg"), "wait: Connection timed out");
	assert_string_equal(get_str(j, "error"), "Connection timed out");
	json_decref(j);
}

static void test_json_huge_message_stays_valid(void **state)
{
	enum { LEN = 100000 };
	char *big = malloc(LEN + 1);
	assert_non_null(big);
	/* Worst case for escaping: every byte becomes a six-byte \u escape. */
	memset(big, 0x01, LEN);
	big[LEN] = 0;
	log_set_format(LOG_FORMAT_JSON);
	struct capture c;
	capture_start(&c);
	struct log_fields f = {.sandbox_id = "sb", .pod = "ns/p", .instance = "i"};
	logp_error_errno(&f, -EIO, "%s", big);
	_cleanup_free_ char *out = capture_end(&c);
	log_set_format(LOG_FORMAT_TEXT);
	free(big);

	json_t *j = parse_one_line(out);
	const char *msg = get_str(j, "msg");
	assert_non_null(msg);
	assert_true(strlen(msg) > 1000 && strlen(msg) < LEN);
	/* Truncation never costs the fields that follow the message. */
	assert_string_equal(get_str(j, "sandbox_id"), "sb");
	assert_string_equal(get_str(j, "instance"), "i");
	assert_string_equal(get_str(j, "error"), "Input/output error");
	json_decref(j);
}

#define THREADS 8
#define LINES_PER_THREAD 200

static void *log_thread(void *arg)
{
	int id = (int)(intptr_t)arg;
	struct log_fields f = {.sandbox_id = "concurrent"};
	for (int i = 0; i < LINES_PER_THREAD; i++)
		logp_info(&f, "thread %d line %d %s", id, i,
			  "padding padding padding padding padding padding padding padding");
	return NULL;
}

struct drain {
	int fd;
	struct buf out;
};

static void *drain_pipe(void *arg)
{
	struct drain *d = arg;
	for (;;) {
		if (buf_reserve(&d->out, 65536, 0) < 0)
			abort();
		ssize_t n = read(d->fd, d->out.data + d->out.len, d->out.cap - d->out.len);
		if (n <= 0)
			break;
		d->out.len += (size_t)n;
	}
	return NULL;
}

static void test_json_concurrent_lines(void **state)
{
	/* stderr of a daemon is a pipe (container runtime, journald): capture through one. */
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	struct drain d = {.fd = p[0]};
	pthread_t reader;
	assert_int_equal(pthread_create(&reader, NULL, drain_pipe, &d), 0);
	int saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_int_equal(dup2(p[1], STDERR_FILENO), STDERR_FILENO);
	close(p[1]);

	log_set_format(LOG_FORMAT_JSON);
	pthread_t t[THREADS];
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, log_thread, (void *)(intptr_t)i), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	log_set_format(LOG_FORMAT_TEXT);

	assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	pthread_join(reader, NULL);
	close(p[0]);
	assert_int_equal(buf_append(&d.out, "", 1, 0), 0);
	_cleanup_free_ char *out = (char *)d.out.data;

	assert_int_equal(count_lines(out), THREADS * LINES_PER_THREAD);
	int seen[THREADS] = {0};
	char *save = NULL;
	for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		json_error_t err;
		json_t *j = json_loads(line, 0, &err);
		assert_non_null(j);
		int id, n;
		assert_int_equal(sscanf(get_str(j, "msg"), "thread %d line %d", &id, &n), 2);
		assert_true(id >= 0 && id < THREADS);
		/* Each thread's lines arrive whole and in its own order. */
		assert_int_equal(n, seen[id]);
		seen[id]++;
		json_decref(j);
	}
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(seen[i], LINES_PER_THREAD);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_text_line_layout, setup),
	    cmocka_unit_test_setup(test_text_escapes_control_chars, setup),
	    cmocka_unit_test_setup(test_percent_m, setup),
	    cmocka_unit_test_setup(test_levels, setup),
	    cmocka_unit_test_setup(test_parse, setup),
	    cmocka_unit_test_setup(test_json_fields, setup),
	    cmocka_unit_test_setup(test_json_absent_fields, setup),
	    cmocka_unit_test_setup(test_json_escaping, setup),
	    cmocka_unit_test_setup(test_json_percent_m_keeps_error_field, setup),
	    cmocka_unit_test_setup(test_json_huge_message_stays_valid, setup),
	    cmocka_unit_test_setup(test_json_concurrent_lines, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

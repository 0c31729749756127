/* Unit tests for coordinator/store.c: key syntax, the file backend's get/set/has, compare-and-swap
 * with "absent" as a distinct old value, and CAS atomicity between processes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "coordinator/store.h"

static char *tmpdir(void)
{
	const char *base = "/tmp";
	char *t = str_printf("%s/pp-store-XXXXXX", base);
	assert_non_null(mkdtemp(t));
	return t;
}

static void test_keys(void **state)
{
	assert_true(store_key_valid("manifests/0a1b"));
	assert_true(store_key_valid("transitions/latest"));
	assert_true(store_key_valid("a-b/c-d"));
	assert_false(store_key_valid(NULL));
	assert_false(store_key_valid(""));
	assert_false(store_key_valid("nokey"));
	assert_false(store_key_valid("/x"));
	assert_false(store_key_valid("x/"));
	assert_false(store_key_valid("a/b/c"));
	assert_false(store_key_valid("A/b"));
	assert_false(store_key_valid("a/.."));
	assert_false(store_key_valid("../a"));
	assert_false(store_key_valid("a/b c"));
	assert_false(store_key_valid("a/b_c"));
}

static void test_file_backend(void **state)
{
	_cleanup_free_ char *dir = tmpdir();
	_cleanup_free_ char *sub = str_printf("%s/store", dir);
	_cleanup_(store_freep) struct store *s = NULL;
	assert_int_equal(store_open_dir(sub, &s), 0);
	uint8_t *v = NULL;
	size_t len;

	assert_int_equal(store_get(s, "a/b", &v, &len), -ENOENT);
	assert_int_equal(store_has(s, "a/b"), 0);
	assert_int_equal(store_set(s, "a/b", "hello", 5), 0);
	assert_int_equal(store_has(s, "a/b"), 1);
	assert_int_equal(store_get(s, "a/b", &v, &len), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(v, "hello", 5);
	assert_int_equal(v[5], 0);
	v = mfree(v);
	assert_int_equal(store_set(s, "a/b", "", 0), 0);
	assert_int_equal(store_get(s, "a/b", &v, &len), 0);
	assert_int_equal(len, 0);
	v = mfree(v);

	/* Invalid keys never reach the file system. */
	assert_int_equal(store_set(s, "../x", "x", 1), -EINVAL);
	assert_int_equal(store_get(s, "a/../b", &v, &len), -EINVAL);
	assert_int_equal(store_has(s, "a"), -EINVAL);
	assert_int_equal(store_cas(s, "a", NULL, 0, "x", 1), -EINVAL);

	/* CAS: absent is distinct from the empty value. */
	assert_int_equal(store_cas(s, "t/latest", "", 0, "one", 3), -ESTALE);
	assert_int_equal(store_has(s, "t/latest"), 0);
	assert_int_equal(store_cas(s, "t/latest", NULL, 0, "one", 3), 0);
	assert_int_equal(store_cas(s, "t/latest", NULL, 0, "two", 3), -ESTALE);
	assert_int_equal(store_cas(s, "t/latest", "on", 2, "two", 3), -ESTALE);
	assert_int_equal(store_cas(s, "t/latest", "one", 3, "two", 3), 0);
	assert_int_equal(store_get(s, "t/latest", &v, &len), 0);
	assert_memory_equal(v, "two", 3);
	v = mfree(v);
	assert_int_equal(store_cas(s, "a/b", "", 0, "x", 1), 0); /* empty value, present */

	/* Files are private and no temp files are left behind. */
	_cleanup_free_ char *path = str_printf("%s/t/latest", sub);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	_cleanup_free_ char *tdir = str_printf("%s/t", sub);
	DIR *d = opendir(tdir);
	assert_non_null(d);
	size_t n = 0;
	for (struct dirent *e; (e = readdir(d));)
		n += e->d_name[0] != '.' || (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."));
	closedir(d);
	assert_int_equal(n, 1);

	/* A second store on the same directory sees the same data. */
	_cleanup_(store_freep) struct store *s2 = NULL;
	assert_int_equal(store_open_dir(sub, &s2), 0);
	assert_int_equal(store_cas(s2, "t/latest", "one", 3, "three", 5), -ESTALE);
	assert_int_equal(store_cas(s2, "t/latest", "two", 3, "three", 5), 0);
	assert_int_equal(store_cas(s, "t/latest", "two", 3, "four", 4), -ESTALE);
	assert_int_equal(store_set(s, "big/x", "x", STORE_VALUE_MAX_BYTES + 1), -EFBIG);
	assert_int_equal(rm_rf(dir), 0);
}

/* Read a decimal counter, CAS it one higher; retry on conflict. */
static void increment(struct store *s)
{
	for (;;) {
		uint8_t *v = NULL;
		size_t len = 0;
		int r = store_get(s, "c/counter", &v, &len);
		assert_true(r == 0 || r == -ENOENT);
		unsigned long n = r == 0 ? strtoul((char *)v, NULL, 10) : 0;
		char next[32];
		int nl = snprintf(next, sizeof(next), "%lu", n + 1);
		r = store_cas(s, "c/counter", r == 0 ? v : NULL, len, next, (size_t)nl);
		free(v);
		if (r == 0)
			return;
		assert_int_equal(r, -ESTALE);
	}
}

static void test_cas_between_processes(void **state)
{
	_cleanup_free_ char *dir = tmpdir();
	enum { PROCS = 4, ROUNDS = 50 };
	pid_t pids[PROCS];
	for (int i = 0; i < PROCS; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			struct store *s = NULL;
			if (store_open_dir(dir, &s) < 0)
				_exit(2);
			for (int k = 0; k < ROUNDS; k++)
				increment(s);
			store_free(s);
			_exit(0);
		}
	}
	for (int i = 0; i < PROCS; i++) {
		int status;
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	_cleanup_(store_freep) struct store *s = NULL;
	assert_int_equal(store_open_dir(dir, &s), 0);
	_cleanup_free_ uint8_t *v = NULL;
	size_t len;
	assert_int_equal(store_get(s, "c/counter", &v, &len), 0);
	assert_string_equal((char *)v, "200");
	assert_int_equal(rm_rf(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_keys),
	    cmocka_unit_test(test_file_backend),
	    cmocka_unit_test(test_cas_between_processes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

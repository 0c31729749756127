/* Tests of providers/instance-type: WIRE.md 7's selection and its error texts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "instance-type.h"

/* An AWS-like catalog, deliberately unsorted. */
static const struct instance_type_spec known[] = {
    {"m6a.2xlarge", 8, 32768, 0}, {"g5.xlarge", 4, 16384, 1},  {"m6a.large", 2, 8192, 0},
    {"c6a.large", 2, 4096, 0},    {"m6a.xlarge", 4, 16384, 0}, {"g5.12xlarge", 48, 196608, 4},
};

static char *allowed_all[] = {"m6a.large", "m6a.xlarge",  "m6a.2xlarge", "c6a.large",
			      "g5.xlarge", "g5.12xlarge", NULL};

static void init(struct instance_type_catalog *c, const char *def, char **allowed)
{
	_cleanup_free_ char *msg = NULL;
	assert_int_equal(
	    instance_type_catalog_init(c, def, allowed, known, ELEMENTSOF(known), &msg), 0);
	assert_null(msg);
}

static void expect(const struct instance_type_catalog *c, const char *machine, unsigned v,
		   uint64_t m, unsigned g, const char *want)
{
	_cleanup_free_ char *got = NULL, *msg = NULL;
	assert_int_equal(instance_type_select(c, machine, v, m, g, &got, &msg), 0);
	assert_null(msg);
	assert_string_equal(got, want);
}

static void expect_error(const struct instance_type_catalog *c, const char *machine, unsigned v,
			 uint64_t m, unsigned g, const char *want)
{
	_cleanup_free_ char *got = NULL, *msg = NULL;
	assert_int_equal(instance_type_select(c, machine, v, m, g, &got, &msg), -EINVAL);
	assert_null(got);
	assert_non_null(msg);
	assert_string_equal(msg, want);
}

static void test_sorted_by_gpus_memory_vcpus(void **state)
{
	struct instance_type_catalog c;
	init(&c, "m6a.large", allowed_all);
	assert_int_equal(c.n_specs, 6);
	const char *order[] = {"c6a.large",   "m6a.large", "m6a.xlarge",
			       "m6a.2xlarge", "g5.xlarge", "g5.12xlarge"};
	for (size_t i = 0; i < ELEMENTSOF(order); i++)
		assert_string_equal(c.specs[i].name, order[i]);
	instance_type_catalog_done(&c);
}

static void test_default_when_nothing_asked(void **state)
{
	struct instance_type_catalog c;
	init(&c, "m6a.large", NULL);
	expect(&c, NULL, 0, 0, 0, "m6a.large");
	expect(&c, "", 0, 0, 0, "m6a.large");
	/* vCPUs without memory is not a request (step 3 needs both) */
	expect(&c, NULL, 4, 0, 0, "m6a.large");
	assert_int_equal(c.n_specs, 1);
	instance_type_catalog_done(&c);
}

static void test_smallest_fit(void **state)
{
	struct instance_type_catalog c;
	init(&c, "m6a.large", allowed_all);
	expect(&c, NULL, 2, 4096, 0, "c6a.large");
	expect(&c, NULL, 2, 6000, 0, "m6a.large");
	expect(&c, NULL, 3, 6000, 0, "m6a.xlarge");
	expect(&c, NULL, 8, 1, 0, "m6a.2xlarge");
	/* GPU-less requests never get a GPU type */
	expect_error(&c, NULL, 16, 8192, 0,
		     "failed to get instance type based on vCPU and memory annotations: no "
		     "instance type found for the given vcpus (16) and memory (8192)");
	expect(&c, NULL, 0, 0, 1, "g5.xlarge");
	expect(&c, NULL, 8, 0, 1, "g5.12xlarge");
	expect(&c, NULL, 0, 0, 2, "g5.12xlarge");
	expect_error(&c, NULL, 4, 1024, 8,
		     "failed to get instance type based on GPU, vCPU, and memory annotations: no "
		     "instance type found for the given GPUs (8), vCPUs (4), and memory (1024)");
	instance_type_catalog_done(&c);
}

static void test_machine_type_verified(void **state)
{
	struct instance_type_catalog c;
	init(&c, "m6a.large", NULL);
	expect(&c, "m6a.large", 0, 0, 0, "m6a.large");
	/* machine_type wins over vCPUs/memory */
	expect(&c, "m6a.large", 64, 1 << 20, 0, "m6a.large");
	expect_error(&c, "m6a.xlarge", 0, 0, 0,
		     "failed to verify instance type: requested instance type (\"m6a.xlarge\") is "
		     "not default (\"m6a.large\") and supported instance types list is empty");
	instance_type_catalog_done(&c);

	char *allowed[] = {"m6a.large", "m6a.xlarge", NULL};
	init(&c, "m6a.large", allowed);
	expect(&c, "m6a.xlarge", 0, 0, 0, "m6a.xlarge");
	expect_error(&c, "c6a.large", 0, 0, 0,
		     "failed to verify instance type: requested instance type (\"c6a.large\") is "
		     "not part of supported instance types list");
	/* a size chosen from the catalog is allow-listed by construction */
	expect(&c, NULL, 3, 100, 0, "m6a.xlarge");
	instance_type_catalog_done(&c);
}

static void test_unknown_type_refused(void **state)
{
	struct instance_type_catalog c;
	_cleanup_free_ char *msg = NULL;
	char *allowed[] = {"m6a.large", "m9z.huge", NULL};
	assert_int_equal(
	    instance_type_catalog_init(&c, "m6a.large", allowed, known, ELEMENTSOF(known), &msg),
	    -ENOENT);
	assert_non_null(strstr(msg, "m9z.huge"));
	assert_null(c.specs);
	instance_type_catalog_done(&c);
}

static void test_empty_catalog(void **state)
{
	/* The cloud gave no sizes: the default and machine_type still work. */
	struct instance_type_catalog c;
	_cleanup_free_ char *msg = NULL;
	char *allowed[] = {"a", "b", NULL};
	assert_int_equal(instance_type_catalog_init(&c, "a", allowed, NULL, 0, &msg), 0);
	expect(&c, NULL, 0, 0, 0, "a");
	expect(&c, "b", 0, 0, 0, "b");
	expect_error(&c, NULL, 2, 1024, 0,
		     "failed to get instance type based on vCPU and memory annotations: no "
		     "instance type found for the given vcpus (2) and memory (1024)");
	instance_type_catalog_done(&c);
	instance_type_catalog_done(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sorted_by_gpus_memory_vcpus),
	    cmocka_unit_test(test_default_when_nothing_asked),
	    cmocka_unit_test(test_smallest_fit),
	    cmocka_unit_test(test_machine_type_verified),
	    cmocka_unit_test(test_unknown_type_refused),
	    cmocka_unit_test(test_empty_catalog),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

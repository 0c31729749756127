/* Unit tests for lib/config: precedence flag > non-empty env > default, Go flag forms, booleans,
 * durations, lists, error messages that name the option, help/version, and help output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>

#include "config/config.h"

struct settings {
	char *socket;
	char *secret;
	bool debug;
	bool disable_cvm;
	int64_t limit;
	uint64_t size;
	uint16_t port;
	int64_t timeout_ns;
	char **tags;
	char *image;
	char *node;
};

static int require_image(const void *field, char **ret_msg)
{
	if (str_empty(*(char *const *)field)) {
		*ret_msg = strdup("must be set");
		return -EINVAL;
	}
	return 0;
}

static const struct config_option options[] = {
    {"socket", "REMOTE_HYPERVISOR_ENDPOINT", CONFIG_STRING, "/run/peerpod/hypervisor.sock",
     offsetof(struct settings, socket), "hypervisor socket", NULL},
    {"secret", "CLIENT_SECRET", CONFIG_SECRET, "built-in-secret", offsetof(struct settings, secret),
     "client secret", NULL},
    {"debug", NULL, CONFIG_BOOL, NULL, offsetof(struct settings, debug), "debug logging", NULL},
    {"disable-cvm", "DISABLECVM", CONFIG_BOOL, "true", offsetof(struct settings, disable_cvm),
     "no confidential VM", NULL},
    {"limit", "LIMIT", CONFIG_INT, "10", offsetof(struct settings, limit), "pods per node", NULL},
    {"size", "SIZE", CONFIG_UINT, "30", offsetof(struct settings, size), "disk GiB", NULL},
    {"forwarder-port", "FORWARDER_PORT", CONFIG_PORT, "15150", offsetof(struct settings, port),
     "forwarder port", NULL},
    {"proxy-timeout", "PROXY_TIMEOUT", CONFIG_DURATION, "5m", offsetof(struct settings, timeout_ns),
     "proxy timeout", NULL},
    {"tags", "TAGS", CONFIG_LIST, NULL, offsetof(struct settings, tags), "k=v,k=v", NULL},
    {"imageid", "PODVM_AMI_ID", CONFIG_STRING, "ami-default", offsetof(struct settings, image),
     "image", require_image},
    {NULL, "NODE_NAME", CONFIG_STRING, NULL, offsetof(struct settings, node), "node name", NULL},
};

/* A fake environment: name=value pairs set per test. */
static const char *fake_env[16][2];

static const char *lookup_env(const char *name)
{
	for (size_t i = 0; i < ELEMENTSOF(fake_env) && fake_env[i][0]; i++)
		if (strcmp(fake_env[i][0], name) == 0)
			return fake_env[i][1];
	return NULL;
}

static void set_env(const char *name, const char *value)
{
	for (size_t i = 0; i < ELEMENTSOF(fake_env); i++)
		if (!fake_env[i][0] || strcmp(fake_env[i][0], name) == 0) {
			fake_env[i][0] = name;
			fake_env[i][1] = value;
			return;
		}
	fail_msg("fake environment full");
}

static int setup(void **state)
{
	memset(fake_env, 0, sizeof(fake_env));
	config_set_getenv(lookup_env);
	return 0;
}

static int teardown(void **state)
{
	config_set_getenv(NULL);
	return 0;
}

struct result {
	struct settings s;
	int r;
	int argind;
	char *msg;
};

/* Parse a NULL-terminated list of arguments into res (which the caller releases). */
static void parse(struct result *res, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;
	va_start(ap, res);
	for (char *a; (a = va_arg(ap, char *));)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	*res = (struct result){.argind = -1};
	struct config_table t = {options, ELEMENTSOF(options), &res->s};
	res->r = config_parse(&t, 1, argc, argv, &res->argind, &res->msg);
}

static void result_done(struct result *res)
{
	config_free(options, ELEMENTSOF(options), &res->s);
	/* Freed members are reset, so a second free is harmless. */
	assert_null(res->s.socket);
	assert_null(res->s.secret);
	assert_null(res->s.tags);
	config_free(options, ELEMENTSOF(options), &res->s);
	free(res->msg);
}

static void test_defaults(void **state)
{
	struct result res;
	parse(&res, NULL);
	assert_int_equal(res.r, 0);
	assert_null(res.msg);
	assert_int_equal(res.argind, 0);
	assert_string_equal(res.s.socket, "/run/peerpod/hypervisor.sock");
	assert_string_equal(res.s.secret, "built-in-secret");
	assert_false(res.s.debug);
	assert_true(res.s.disable_cvm);
	assert_int_equal(res.s.limit, 10);
	assert_int_equal(res.s.size, 30);
	assert_int_equal(res.s.port, 15150);
	assert_int_equal(res.s.timeout_ns, 5 * 60 * NSEC_PER_SEC);
	assert_null(res.s.tags);
	assert_string_equal(res.s.image, "ami-default");
	assert_null(res.s.node);
	result_done(&res);
}

static void test_precedence(void **state)
{
	struct result res;
	/* env beats default */
	set_env("REMOTE_HYPERVISOR_ENDPOINT", "/env.sock");
	set_env("FORWARDER_PORT", "16000");
	set_env("NODE_NAME", "worker-1");
	set_env("LIMIT", ""); /* empty: ignored, default stays */
	parse(&res, NULL);
	assert_int_equal(res.r, 0);
	assert_string_equal(res.s.socket, "/env.sock");
	assert_int_equal(res.s.port, 16000);
	assert_string_equal(res.s.node, "worker-1");
	assert_int_equal(res.s.limit, 10);
	result_done(&res);

	/* flag beats env, whatever the order of discovery */
	parse(&res, "-socket", "/flag.sock", "-forwarder-port=17000", NULL);
	assert_int_equal(res.r, 0);
	assert_string_equal(res.s.socket, "/flag.sock");
	assert_int_equal(res.s.port, 17000);
	result_done(&res);

	/* an explicitly empty flag still wins over env and default */
	parse(&res, "-socket=", NULL);
	assert_int_equal(res.r, 0);
	assert_null(res.s.socket);
	result_done(&res);
}

static void test_go_flag_forms(void **state)
{
	static const char *const forms[][3] = {
	    {"-socket", "/a", "/a"},
	    {"--socket", "/b", "/b"},
	    {"-socket=/c", NULL, "/c"},
	    {"--socket=/d", NULL, "/d"},
	    {"-socket=a=b", NULL, "a=b"},
	    /* a value taken from the next argument may start with a dash */
	    {"-socket", "-weird", "-weird"},
	};
	for (size_t i = 0; i < ELEMENTSOF(forms); i++) {
		struct result res;
		if (forms[i][1])
			parse(&res, (char *)forms[i][0], (char *)forms[i][1], "rest", NULL);
		else
			parse(&res, (char *)forms[i][0], "rest", NULL);
		assert_int_equal(res.r, 0);
		assert_string_equal(res.s.socket, forms[i][2]);
		assert_int_equal(res.argind, forms[i][1] ? 2 : 1);
		result_done(&res);
	}

	/* The last occurrence of a plain flag wins. */
	struct result res;
	parse(&res, "-limit", "1", "--limit=-2", NULL);
	assert_int_equal(res.r, 0);
	assert_int_equal(res.s.limit, -2);
	result_done(&res);
}

static void test_stop_conditions(void **state)
{
	struct result res;
	parse(&res, "-debug", "create", "-limit=3", NULL);
	assert_int_equal(res.r, 0);
	assert_int_equal(res.argind, 1);
	assert_int_equal(res.s.limit, 10); /* after the first non-flag nothing is parsed */
	result_done(&res);

	parse(&res, "-debug", "--", "-limit=3", NULL);
	assert_int_equal(res.r, 0);
	assert_int_equal(res.argind, 2);
	result_done(&res);

	parse(&res, "-", "-limit=3", NULL);
	assert_int_equal(res.r, 0);
	assert_int_equal(res.argind, 0);
	result_done(&res);
}

static void test_bool_forms(void **state)
{
	static const struct {
		const char *arg;
		bool want;
	} forms[] = {
	    {"-debug", true},        {"--debug", true},   {"-debug=true", true},
	    {"-debug=1", true},      {"-debug=T", true},  {"--debug=TRUE", true},
	    {"-debug=false", false}, {"-debug=0", false}, {"--debug=F", false},
	};
	for (size_t i = 0; i < ELEMENTSOF(forms); i++) {
		struct result res;
		parse(&res, (char *)forms[i].arg, NULL);
		assert_int_equal(res.r, 0);
		assert_int_equal(res.s.debug, forms[i].want);
		result_done(&res);
	}
	struct result res;
	parse(&res, "-disable-cvm=false", NULL);
	assert_int_equal(res.r, 0);
	assert_false(res.s.disable_cvm);
	result_done(&res);

	/* A bare bool never takes the next argument: "false" is a positional argument. */
	parse(&res, "-debug", "false", NULL);
	assert_int_equal(res.r, 0);
	assert_true(res.s.debug);
	assert_int_equal(res.argind, 1);
	result_done(&res);

	parse(&res, "-debug=yes", NULL);
	assert_int_equal(res.r, -EINVAL);
	assert_non_null(strstr(res.msg, "-debug"));
	assert_non_null(strstr(res.msg, "\"yes\""));
	result_done(&res);
}

static void test_env_booleans(void **state)
{
	static const struct {
		const char *value;
		bool want;
	} cases[] = {
	    {"1", true},    {"true", true}, {"TRUE", true},     {"True", true},
	    {"tRuE", true}, {"0", false},   {"false", false},   {"yes", false},
	    {"on", false},  {"t", false},   {"garbage", false},
	};
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		set_env("DISABLECVM", cases[i].value);
		struct result res;
		parse(&res, NULL);
		/* Never an error: anything but 1/true is false (the default here is true). */
		assert_int_equal(res.r, 0);
		assert_int_equal(res.s.disable_cvm, cases[i].want);
		result_done(&res);
	}
	/* Empty is "not set": the default (true) stays. */
	set_env("DISABLECVM", "");
	struct result res;
	parse(&res, NULL);
	assert_true(res.s.disable_cvm);
	result_done(&res);
	/* The flag still beats the environment. */
	set_env("DISABLECVM", "false");
	parse(&res, "-disable-cvm", NULL);
	assert_true(res.s.disable_cvm);
	result_done(&res);
}

static void test_durations(void **state)
{
	static const struct {
		const char *value;
		int64_t want;
	} cases[] = {
	    {"90s", 90 * NSEC_PER_SEC},
	    {"1h30m", 5400 * NSEC_PER_SEC},
	    {"1.5h", 5400 * NSEC_PER_SEC},
	    {"300ms", 300 * NSEC_PER_MSEC},
	    {"0", 0},
	    {"-1s", -NSEC_PER_SEC},
	};
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		_cleanup_free_ char *arg = str_printf("-proxy-timeout=%s", cases[i].value);
		struct result res;
		parse(&res, arg, NULL);
		assert_int_equal(res.r, 0);
		assert_int_equal(res.s.timeout_ns, cases[i].want);
		result_done(&res);
	}
	set_env("PROXY_TIMEOUT", "2m");
	struct result res;
	parse(&res, NULL);
	assert_int_equal(res.s.timeout_ns, 120 * NSEC_PER_SEC);
	result_done(&res);

	/* Go requires a unit. */
	parse(&res, "-proxy-timeout", "5", NULL);
	assert_int_equal(res.r, -EINVAL);
	assert_string_equal(res.msg, "invalid value \"5\" for flag -proxy-timeout (env "
				     "PROXY_TIMEOUT): not a duration (examples: 300ms, 30s, 5m, "
				     "1h30m)");
	result_done(&res);
}

static void test_lists(void **state)
{
	struct result res;
	parse(&res, "-tags=a=1, b=2,,c=3 ,", NULL);
	assert_int_equal(res.r, 0);
	assert_int_equal(strv_length(res.s.tags), 3);
	assert_string_equal(res.s.tags[0], "a=1");
	assert_string_equal(res.s.tags[1], "b=2");
	assert_string_equal(res.s.tags[2], "c=3");
	assert_null(res.s.tags[3]);
	result_done(&res);

	/* The flag replaces the environment's list; a repeated flag adds to it. */
	set_env("TAGS", "env=1,env=2");
	parse(&res, NULL);
	assert_int_equal(strv_length(res.s.tags), 2);
	assert_string_equal(res.s.tags[0], "env=1");
	result_done(&res);
	parse(&res, "-tags", "x=1", "-tags", "y=2,z=3", NULL);
	assert_int_equal(res.r, 0);
	assert_int_equal(strv_length(res.s.tags), 3);
	assert_string_equal(res.s.tags[0], "x=1");
	assert_string_equal(res.s.tags[1], "y=2");
	assert_string_equal(res.s.tags[2], "z=3");
	result_done(&res);

	/* Only separators: no items at all. */
	parse(&res, "-tags=,,", NULL);
	assert_int_equal(res.r, 0);
	assert_null(res.s.tags);
	result_done(&res);
}

static void test_numbers(void **state)
{
	struct result res;
	parse(&res, "-limit=-1", "-size", "18446744073709551615", "-forwarder-port=1", NULL);
	assert_int_equal(res.r, 0);
	assert_int_equal(res.s.limit, -1);
	assert_true(res.s.size == UINT64_MAX);
	assert_int_equal(res.s.port, 1);
	result_done(&res);

	static const struct {
		const char *arg;
		const char *msg;
	} bad[] = {
	    {"-forwarder-port=0",
	     "invalid value \"0\" for flag -forwarder-port (env FORWARDER_PORT)"
	     ": port out of range 1-65535"},
	    {"-forwarder-port=65536", "invalid value \"65536\" for flag -forwarder-port (env "
				      "FORWARDER_PORT): port out of range 1-65535"},
	    {"-forwarder-port=http", "invalid value \"http\" for flag -forwarder-port (env "
				     "FORWARDER_PORT): not a port number"},
	    {"-size=-1", "invalid value \"-1\" for flag -size (env SIZE): not an integer"},
	    {"-limit=12x", "invalid value \"12x\" for flag -limit (env LIMIT): not an integer"},
	    {"-limit=99999999999999999999",
	     "invalid value \"99999999999999999999\" for flag -limit "
	     "(env LIMIT): value out of range"},
	    {"-limit=", "invalid value \"\" for flag -limit (env LIMIT): not an integer"},
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		parse(&res, (char *)bad[i].arg, NULL);
		assert_int_equal(res.r, -EINVAL);
		assert_string_equal(res.msg, bad[i].msg);
		result_done(&res);
	}
}

static void test_env_errors_name_env_and_flag(void **state)
{
	struct result res;
	set_env("FORWARDER_PORT", "x");
	parse(&res, NULL);
	assert_int_equal(res.r, -EINVAL);
	assert_string_equal(res.msg, "invalid value \"x\" in environment variable FORWARDER_PORT "
				     "(flag -forwarder-port): not a port number");
	result_done(&res);

	/* The flag would override it, but a broken environment value is still reported. */
	parse(&res, "-forwarder-port=1", NULL);
	assert_int_equal(res.r, -EINVAL);
	result_done(&res);
}

static void test_unknown_and_missing(void **state)
{
	struct result res;
	parse(&res, "-nope", NULL);
	assert_int_equal(res.r, -EINVAL);
	assert_string_equal(res.msg, "flag provided but not defined: -nope");
	result_done(&res);

	parse(&res, "--nope=1", NULL);
	assert_int_equal(res.r, -EINVAL);
	assert_string_equal(res.msg, "flag provided but not defined: -nope");
	result_done(&res);

	parse(&res, "-limit", NULL);
	assert_int_equal(res.r, -EINVAL);
	assert_string_equal(res.msg, "flag needs an argument: -limit");
	result_done(&res);

	parse(&res, "---x", NULL);
	assert_int_equal(res.r, -EINVAL);
	assert_string_equal(res.msg, "bad flag syntax: ---x");
	result_done(&res);

	parse(&res, "-=x", NULL);
	assert_int_equal(res.r, -EINVAL);
	assert_string_equal(res.msg, "bad flag syntax: -=x");
	result_done(&res);
}

static void test_help_and_version(void **state)
{
	static const char *const help[] = {"-h", "-help", "--help", "--h", "-help=1"};
	for (size_t i = 0; i < ELEMENTSOF(help); i++) {
		struct result res;
		parse(&res, "-debug", (char *)help[i], "-nope", NULL);
		assert_int_equal(res.r, -EAGAIN);
		assert_null(res.msg);
		result_done(&res);
	}
	static const char *const version[] = {"-version", "--version"};
	for (size_t i = 0; i < ELEMENTSOF(version); i++) {
		struct result res;
		parse(&res, (char *)version[i], NULL);
		assert_int_equal(res.r, -EALREADY);
		result_done(&res);
	}
	/* Help wins even when a required option is missing. */
	set_env("PODVM_AMI_ID", "");
	struct result res;
	parse(&res, "-imageid=", "-h", NULL);
	assert_int_equal(res.r, -EAGAIN);
	result_done(&res);
}

static void test_validator(void **state)
{
	struct result res;
	parse(&res, "-imageid=", NULL);
	assert_int_equal(res.r, -EINVAL);
	assert_string_equal(res.msg,
			    "invalid value for flag -imageid (env PODVM_AMI_ID): must be set");
	result_done(&res);

	set_env("PODVM_AMI_ID", "ami-123");
	parse(&res, NULL);
	assert_int_equal(res.r, 0);
	assert_string_equal(res.s.image, "ami-123");
	result_done(&res);
}

static void test_secret_never_echoed(void **state)
{
	struct result res;
	set_env("CLIENT_SECRET", "from-env");
	parse(&res, NULL);
	assert_string_equal(res.s.secret, "from-env");
	result_done(&res);
	parse(&res, "-secret", "hunter2", NULL);
	assert_string_equal(res.s.secret, "hunter2");
	result_done(&res);

	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	config_print_help(f, options, ELEMENTSOF(options));
	fclose(f);
	assert_null(strstr(buf, "built-in-secret"));
	assert_non_null(strstr(buf, "  -secret (CLIENT_SECRET, secret)\n\tclient secret\n"));
	free(buf);
}

static void test_print_help(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	config_print_help(f, options, ELEMENTSOF(options));
	fclose(f);
	assert_non_null(strstr(buf, "  -socket (REMOTE_HYPERVISOR_ENDPOINT, default "
				    "/run/peerpod/hypervisor.sock)\n\thypervisor socket\n"));
	assert_non_null(strstr(buf, "  -debug\n\tdebug logging\n"));
	assert_non_null(strstr(buf, "  -tags (TAGS)\n\tk=v,k=v\n"));
	assert_non_null(strstr(buf, "  -proxy-timeout (PROXY_TIMEOUT, default 5m)\n"));
	assert_non_null(strstr(buf, "  NODE_NAME\n\tnode name\n"));
	free(buf);
}

static void test_print_values(void **state)
{
	struct result res;
	parse(&res, "-tags", "a=b,c=d", "-proxy-timeout", "90s", "-debug", "-limit", "-3", NULL);
	assert_int_equal(res.r, 0);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	config_print_values(f, options, ELEMENTSOF(options), &res.s);
	fclose(f);
	assert_non_null(strstr(buf, "REMOTE_HYPERVISOR_ENDPOINT=/run/peerpod/hypervisor.sock\n"));
	/* a secret is only ever "<set>" or empty */
	assert_non_null(strstr(buf, "CLIENT_SECRET=<set>\n"));
	assert_null(strstr(buf, "built-in-secret"));
	assert_non_null(strstr(buf, "-debug=true\n"));
	assert_non_null(strstr(buf, "DISABLECVM=true\n"));
	assert_non_null(strstr(buf, "LIMIT=-3\n"));
	assert_non_null(strstr(buf, "SIZE=30\n"));
	assert_non_null(strstr(buf, "FORWARDER_PORT=15150\n"));
	assert_non_null(strstr(buf, "PROXY_TIMEOUT=90s\n"));
	assert_non_null(strstr(buf, "TAGS=a=b,c=d\n"));
	assert_non_null(strstr(buf, "NODE_NAME=\n"));
	free(buf);
	result_done(&res);
}

struct common {
	char *socket;
};
struct provider {
	char *region;
	bool public_ip;
};

static void test_multiple_tables(void **state)
{
	static const struct config_option common_opts[] = {
	    {"socket", NULL, CONFIG_STRING, "/s", offsetof(struct common, socket), NULL, NULL},
	};
	static const struct config_option provider_opts[] = {
	    {"region", "AWS_REGION", CONFIG_STRING, NULL, offsetof(struct provider, region), NULL,
	     NULL},
	    {"use-public-ip", "USE_PUBLIC_IP", CONFIG_BOOL, NULL,
	     offsetof(struct provider, public_ip), NULL, NULL},
	};
	struct common c = {0};
	struct provider p = {0};
	struct config_table tables[] = {
	    {common_opts, ELEMENTSOF(common_opts), &c},
	    {provider_opts, ELEMENTSOF(provider_opts), &p},
	};
	set_env("AWS_REGION", "eu-west-1");
	char *argv[] = {"-use-public-ip", "-socket=/x", NULL};
	int argind;
	_cleanup_free_ char *msg = NULL;
	assert_int_equal(config_parse(tables, 2, 2, argv, &argind, &msg), 0);
	assert_int_equal(argind, 2);
	assert_string_equal(c.socket, "/x");
	assert_string_equal(p.region, "eu-west-1");
	assert_true(p.public_ip);
	config_free(common_opts, ELEMENTSOF(common_opts), &c);
	config_free(provider_opts, ELEMENTSOF(provider_opts), &p);
	config_free(provider_opts, ELEMENTSOF(provider_opts), NULL);
}

static void test_config_getenv(void **state)
{
	set_env("SOME_VAR", "v");
	assert_string_equal(config_getenv("SOME_VAR"), "v");
	assert_null(config_getenv("OTHER_VAR"));
	assert_null(config_getenv(NULL));
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_defaults),
	    T(test_precedence),
	    T(test_go_flag_forms),
	    T(test_stop_conditions),
	    T(test_bool_forms),
	    T(test_env_booleans),
	    T(test_durations),
	    T(test_lists),
	    T(test_numbers),
	    T(test_env_errors_name_env_and_flag),
	    T(test_unknown_and_missing),
	    T(test_help_and_version),
	    T(test_validator),
	    T(test_secret_never_echoed),
	    T(test_print_help),
	    T(test_print_values),
	    T(test_multiple_tables),
	    T(test_config_getenv),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

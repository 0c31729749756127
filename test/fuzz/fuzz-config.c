/* Fuzz target for lib/config: the input, split at NUL bytes, is an argv parsed against a table
 * holding every option type, with a fixed fake environment and a validator. */
#include "config/config.h"

#define MAX_ARGS 128

struct settings {
	char *str;
	char *secret;
	bool flag;
	int64_t num;
	uint64_t unum;
	uint16_t port;
	int64_t timeout_ns;
	char **list;
	char *checked;
	char *env_only;
};

static int check_no_space(const void *field, char **ret_msg)
{
	const char *s = *(char *const *)field;
	if (s && strchr(s, ' ')) {
		*ret_msg = strdup("must not contain spaces");
		return -EINVAL;
	}
	return 0;
}

/* Real option names of the adaptor (WIRE 8), one of each type. */
static const struct config_option options[] = {
    {"socket", "REMOTE_HYPERVISOR_ENDPOINT", CONFIG_STRING, "/run/peerpod/hypervisor.sock",
     offsetof(struct settings, str), "s", NULL},
    {"aws-secret-key", "AWS_SECRET_ACCESS_KEY", CONFIG_SECRET, NULL,
     offsetof(struct settings, secret), "s", NULL},
    {"disable-cvm", "DISABLECVM", CONFIG_BOOL, "true", offsetof(struct settings, flag), "b", NULL},
    {"peerpods-limit-per-node", "PEERPODS_LIMIT_PER_NODE", CONFIG_INT, "10",
     offsetof(struct settings, num), "i", NULL},
    {"root-volume-size", "ROOT_VOLUME_SIZE", CONFIG_UINT, "30", offsetof(struct settings, unum),
     "u", NULL},
    {"forwarder-port", "FORWARDER_PORT", CONFIG_PORT, "15150", offsetof(struct settings, port), "p",
     NULL},
    {"proxy-timeout", "PROXY_TIMEOUT", CONFIG_DURATION, "5m", offsetof(struct settings, timeout_ns),
     "d", NULL},
    {"tags", "TAGS", CONFIG_LIST, "a=1,b=2", offsetof(struct settings, list), "l", NULL},
    {"imageid", "PODVM_AMI_ID", CONFIG_STRING, NULL, offsetof(struct settings, checked), "n",
     check_no_space},
    {NULL, "NODE_NAME", CONFIG_STRING, NULL, offsetof(struct settings, env_only), "e", NULL},
};

static const char *fake_getenv(const char *name)
{
	if (strcmp(name, "DISABLECVM") == 0)
		return "TRUE";
	if (strcmp(name, "TAGS") == 0)
		return "x=1, y=2";
	if (strcmp(name, "PROXY_TIMEOUT") == 0)
		return "1h2m3s";
	if (strcmp(name, "NODE_NAME") == 0)
		return "worker-1";
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A private NUL-terminated copy: every argument, including the last, ends in a NUL. */
	char *copy = malloc(size + 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	copy[size] = 0;

	char *argv[MAX_ARGS + 1];
	int argc = 0;
	for (size_t i = 0; i <= size && argc < MAX_ARGS;) {
		argv[argc++] = copy + i;
		i += strlen(copy + i) + 1;
	}
	argv[argc] = NULL;

	config_set_getenv(fake_getenv);
	struct settings s = {0};
	struct config_table t = {options, ELEMENTSOF(options), &s};
	int argind = -1;
	char *msg = NULL;
	int r = config_parse(&t, 1, argc, argv, &argind, &msg);
	if (r == -EINVAL && !msg)
		abort(); /* every refusal must say why (allocation failures aside) */
	if (r >= 0 && (argind < 0 || argind > argc))
		abort();
	if (r >= 0 && s.port == 0)
		abort(); /* the default and every accepted value are 1..65535 */
	for (char **i = s.list; i && *i; i++)
		if (**i == 0 || strchr(*i, ','))
			abort(); /* empty items are dropped, items never hold the separator */
	free(msg);
	config_free(options, ELEMENTSOF(options), &s);
	free(copy);
	return 0;
}

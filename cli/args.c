/* peerpodctl: command-line parsing, the shim's CreateVM annotations, sandbox ids and hex input. */
#include "cli.h"

#include <sys/random.h>

/* ---- key/value lists ---- */

void cli_kvs_done(struct cli_kvs *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++) {
		free(l->items[i].key);
		free(l->items[i].value);
	}
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

int cli_kvs_set(struct cli_kvs *l, const char *key, const char *value)
{
	for (size_t i = 0; i < l->n; i++)
		if (str_eq(l->items[i].key, key))
			return str_set(&l->items[i].value, value ? value : "");

	_cleanup_free_ char *k = strdup(key);
	_cleanup_free_ char *v = strdup(value ? value : "");
	if (!k || !v)
		return -ENOMEM;
	struct cli_kv *items = reallocarray(l->items, l->n + 1, sizeof(*items));
	if (!items)
		return -ENOMEM;
	l->items = items;
	l->items[l->n++] = (struct cli_kv){.key = TAKE_PTR(k), .value = TAKE_PTR(v)};
	return 0;
}

const char *cli_kvs_get(const struct cli_kvs *l, const char *key)
{
	for (size_t i = 0; i < l->n; i++)
		if (str_eq(l->items[i].key, key))
			return l->items[i].value;
	return NULL;
}

/* ---- annotations ---- */

int cli_annotation_parse(const char *s, char **ret_key, char **ret_value)
{
	const char *eq = strchr(s, '=');
	if (!eq || eq == s)
		return -EINVAL;
	_cleanup_free_ char *k = strndup(s, eq - s);
	_cleanup_free_ char *v = strdup(eq + 1);
	if (!k || !v)
		return -ENOMEM;
	*ret_key = TAKE_PTR(k);
	*ret_value = TAKE_PTR(v);
	return 0;
}

int cli_annotations_build(const char *pod, const char *ns, char *const *overrides,
			  struct cli_kvs *ret, const char **ret_bad)
{
	/* Same keys, order and defaults as the Go shim's remote hypervisor (WIRE 2.2). */
	const struct {
		const char *key;
		const char *value;
	} base[] = {
	    {"io.kubernetes.cri.sandbox-name", pod ? pod : ""},
	    {"io.kubernetes.cri.sandbox-namespace", ns ? ns : ""},
	    {"io.katacontainers.config.hypervisor.machine_type", ""},
	    {"io.katacontainers.config.hypervisor.image", ""},
	    {"io.katacontainers.config.hypervisor.default_vcpus", "0"},
	    {"io.katacontainers.config.hypervisor.default_memory", "0"},
	    {"io.katacontainers.config.hypervisor.cc_init_data", ""},
	    {"io.katacontainers.config.hypervisor.default_gpus", "0"},
	    {"io.katacontainers.config.hypervisor.default_gpu_model", ""},
	};
	struct cli_kvs l = {};
	int r;

	for (size_t i = 0; i < ELEMENTSOF(base); i++) {
		r = cli_kvs_set(&l, base[i].key, base[i].value);
		if (r < 0)
			goto fail;
	}
	for (char *const *o = overrides; o && *o; o++) {
		_cleanup_free_ char *k = NULL, *v = NULL;
		r = cli_annotation_parse(*o, &k, &v);
		if (r < 0) {
			if (ret_bad)
				*ret_bad = *o;
			goto fail;
		}
		r = cli_kvs_set(&l, k, v);
		if (r < 0)
			goto fail;
	}
	*ret = l;
	return 0;
fail:
	cli_kvs_done(&l);
	return r;
}

/* ---- sandbox ids ---- */

int cli_sid_generate(char ret[CLI_SID_LEN + 1])
{
	uint8_t raw[CLI_SID_LEN / 2];
	size_t got = 0;

	while (got < sizeof(raw)) {
		ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)n;
	}
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < sizeof(raw); i++) {
		ret[2 * i] = digits[raw[i] >> 4];
		ret[2 * i + 1] = digits[raw[i] & 0xf];
	}
	ret[CLI_SID_LEN] = '\0';
	return 0;
}

bool cli_sid_is_valid(const char *s)
{
	if (!s || strlen(s) != CLI_SID_LEN)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

/* ---- hex ---- */

int cli_hex_decode(const char *s, uint8_t **ret, size_t *ret_len)
{
	size_t n = strlen(s);
	if (n % 2)
		return -EINVAL;
	_cleanup_free_ uint8_t *out = malloc(n / 2 + 1);
	if (!out)
		return -ENOMEM;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hex_digit_value(s[2 * i]), lo = hex_digit_value(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	*ret = TAKE_PTR(out);
	*ret_len = n / 2;
	return 0;
}

/* ---- arguments ---- */

enum opt_kind { KIND_BOOL, KIND_STRING, KIND_LIST, KIND_DURATION, KIND_SIZE };

static const struct {
	const char *name;
	enum opt_kind kind;
	size_t offset;
} options[_CLI_OPT_MAX] = {
    [CLI_OPT_SOCKET] = {"socket", KIND_STRING, offsetof(struct cli_args, socket)},
    [CLI_OPT_TIMEOUT] = {"timeout", KIND_DURATION, offsetof(struct cli_args, timeout_ns)},
    [CLI_OPT_JSON] = {"json", KIND_BOOL, offsetof(struct cli_args, json)},
    [CLI_OPT_HELP] = {"help", KIND_BOOL, offsetof(struct cli_args, help)},
    [CLI_OPT_VERSION] = {"version", KIND_BOOL, offsetof(struct cli_args, version)},
    [CLI_OPT_ANNOTATION] = {"annotation", KIND_LIST, offsetof(struct cli_args, annotations)},
    [CLI_OPT_NETNS] = {"netns", KIND_STRING, offsetof(struct cli_args, netns)},
    [CLI_OPT_POD] = {"pod", KIND_STRING, offsetof(struct cli_args, pod)},
    [CLI_OPT_NAMESPACE] = {"namespace", KIND_STRING, offsetof(struct cli_args, ns)},
    [CLI_OPT_WAIT] = {"wait", KIND_BOOL, offsetof(struct cli_args, wait)},
    [CLI_OPT_SID] = {"sid", KIND_STRING, offsetof(struct cli_args, sid)},
    [CLI_OPT_AGENT_SOCKET] = {"agent-socket", KIND_STRING, offsetof(struct cli_args, agent_socket)},
    [CLI_OPT_SANDBOX_ID] = {"sandbox-id", KIND_STRING, offsetof(struct cli_args, sandbox_id)},
    [CLI_OPT_HOSTNAME] = {"hostname", KIND_STRING, offsetof(struct cli_args, hostname)},
    [CLI_OPT_DNS] = {"dns", KIND_LIST, offsetof(struct cli_args, dns)},
    [CLI_OPT_ID] = {"id", KIND_STRING, offsetof(struct cli_args, id)},
    [CLI_OPT_PATH] = {"path", KIND_STRING, offsetof(struct cli_args, path)},
    [CLI_OPT_SIZE] = {"size", KIND_SIZE, offsetof(struct cli_args, size)},
    [CLI_OPT_ADDRESS] = {"address", KIND_STRING, offsetof(struct cli_args, address)},
    [CLI_OPT_SERVICE] = {"service", KIND_STRING, offsetof(struct cli_args, service)},
    [CLI_OPT_METHOD] = {"method", KIND_STRING, offsetof(struct cli_args, method)},
    [CLI_OPT_PAYLOAD_HEX] = {"payload-hex", KIND_STRING, offsetof(struct cli_args, payload_hex)},
};

const char *cli_opt_name(enum cli_opt o)
{
	return o < _CLI_OPT_MAX ? options[o].name : NULL;
}

static int strv_push(char ***v, const char *s)
{
	size_t n = strv_length(*v);
	_cleanup_free_ char *copy = strdup(s);
	if (!copy)
		return -ENOMEM;
	char **nv = reallocarray(*v, n + 2, sizeof(char *));
	if (!nv)
		return -ENOMEM;
	nv[n] = TAKE_PTR(copy);
	nv[n + 1] = NULL;
	*v = nv;
	return 0;
}

static int push_positional(struct cli_args *a, const char *s)
{
	int r = strv_push(&a->positional, s);
	if (r < 0)
		return r;
	a->n_positional++;
	return 0;
}

static _printf_(2, 3) int usage_error(char **ret_msg, const char *fmt, ...)
{
	if (ret_msg) {
		va_list ap;
		va_start(ap, fmt);
		*ret_msg = str_vprintf(fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static int set_value(struct cli_args *a, enum cli_opt o, const char *value, char **ret_msg)
{
	void *field = (uint8_t *)a + options[o].offset;
	int r;

	switch (options[o].kind) {
	case KIND_BOOL: {
		bool b = true;
		if (value && parse_bool(value, &b) < 0)
			return usage_error(ret_msg, "invalid boolean value for --%s",
					   options[o].name);
		*(bool *)field = b;
		break;
	}
	case KIND_STRING:
		r = str_set((char **)field, value);
		if (r < 0)
			return r;
		break;
	case KIND_LIST:
		r = strv_push((char ***)field, value);
		if (r < 0)
			return r;
		break;
	case KIND_DURATION: {
		int64_t ns;
		if (parse_duration(value, &ns) < 0 || ns <= 0)
			return usage_error(ret_msg, "invalid duration for --%s (e.g. 90s, 5m)",
					   options[o].name);
		*(int64_t *)field = ns;
		break;
	}
	case KIND_SIZE: {
		uint64_t n;
		if (parse_u64(value, &n) < 0)
			return usage_error(ret_msg, "invalid number for --%s", options[o].name);
		*(uint64_t *)field = n;
		break;
	}
	}
	a->set |= CLI_OPT_BIT(o);
	return 0;
}

int cli_args_parse(int argc, char *const *argv, struct cli_args *ret, char **ret_msg)
{
	struct cli_args a = {};
	bool dashdash = false;
	int r = 0;

	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i];

		if (dashdash || arg[0] != '-' || arg[1] == '\0') {
			r = push_positional(&a, arg);
			if (r < 0)
				goto fail;
			if (!dashdash)
				a.n_before_dashdash = a.n_positional;
			continue;
		}
		if (str_eq(arg, "--")) {
			dashdash = true;
			continue;
		}

		const char *name = arg + 1;
		if (*name == '-')
			name++;
		const char *eq = strchr(name, '=');
		size_t name_len = eq ? (size_t)(eq - name) : strlen(name);

		enum cli_opt o = _CLI_OPT_MAX;
		for (size_t k = 0; k < _CLI_OPT_MAX; k++)
			if (strlen(options[k].name) == name_len &&
			    memcmp(options[k].name, name, name_len) == 0) {
				o = (enum cli_opt)k;
				break;
			}
		if (o == _CLI_OPT_MAX && name_len == 1 && *name == 'h')
			o = CLI_OPT_HELP;
		if (o == _CLI_OPT_MAX) {
			r = usage_error(ret_msg, "unknown option %s", arg);
			goto fail;
		}

		const char *value = eq ? eq + 1 : NULL;
		if (!value && options[o].kind != KIND_BOOL) {
			if (i + 1 >= argc) {
				r = usage_error(ret_msg, "option --%s needs a value",
						options[o].name);
				goto fail;
			}
			value = argv[++i];
		}
		r = set_value(&a, o, value, ret_msg);
		if (r < 0)
			goto fail;
	}
	*ret = a;
	return 0;
fail:
	cli_args_done(&a);
	return r;
}

void cli_args_done(struct cli_args *a)
{
	if (!a)
		return;
	for (size_t k = 0; k < _CLI_OPT_MAX; k++) {
		void *field = (uint8_t *)a + options[k].offset;
		if (options[k].kind == KIND_STRING)
			free(*(char **)field);
		else if (options[k].kind == KIND_LIST)
			strv_free(*(char ***)field);
	}
	strv_free(a->positional);
	*a = (struct cli_args){};
}

int cli_args_check(const struct cli_args *a, uint64_t allowed, const char *command, char **ret_msg)
{
	for (size_t k = 0; k < _CLI_OPT_MAX; k++)
		if ((a->set & CLI_OPT_BIT(k)) && !(allowed & CLI_OPT_BIT(k))) {
			if (ret_msg)
				*ret_msg = str_printf("option --%s is not valid for '%s'",
						      options[k].name, command);
			return -EINVAL;
		}
	return 0;
}

/* lib/config: applies defaults, then non-empty environment values, then Go-style command-line
 * flags to a program's settings structs from its option tables, then runs the validators. */
#include "config/config.h"

#include <inttypes.h>
#include <limits.h>
#include <strings.h>

/* Values are echoed in messages; keep a hostile or mistaken huge value from flooding them. */
#define ECHO_MAX "256"

enum source { SOURCE_DEFAULT, SOURCE_ENV, SOURCE_FLAG };

static config_getenv_fn getenv_fn;

void config_set_getenv(config_getenv_fn fn)
{
	getenv_fn = fn;
}

const char *config_getenv(const char *name)
{
	if (!name)
		return NULL;
	return getenv_fn ? getenv_fn(name) : getenv(name);
}

static void *field_of(const struct config_option *o, void *settings)
{
	return (char *)settings + o->offset;
}

static void field_clear(const struct config_option *o, void *field)
{
	switch (o->type) {
	case CONFIG_STRING:
		free(*(char **)field);
		*(char **)field = NULL;
		break;
	case CONFIG_SECRET:
		free_secret(*(char **)field);
		*(char **)field = NULL;
		break;
	case CONFIG_LIST:
		strv_free(*(char ***)field);
		*(char ***)field = NULL;
		break;
	case CONFIG_BOOL:
	case CONFIG_INT:
	case CONFIG_UINT:
	case CONFIG_PORT:
	case CONFIG_DURATION:
		break;
	}
}

static const char *type_reason(enum config_type type, int r)
{
	switch (type) {
	case CONFIG_BOOL:
		return "not a boolean (true, false, 1, 0)";
	case CONFIG_INT:
	case CONFIG_UINT:
		return r == -ERANGE ? "value out of range" : "not an integer";
	case CONFIG_PORT:
		return r == -ERANGE ? "port out of range 1-65535" : "not a port number";
	case CONFIG_DURATION:
		return r == -ERANGE ? "duration out of range"
				    : "not a duration (examples: 300ms, 30s, 5m, 1h30m)";
	case CONFIG_STRING:
	case CONFIG_SECRET:
	case CONFIG_LIST:
		break;
	}
	return strerror(-r);
}

static int list_append(char ***list, const char *value)
{
	size_t n = strv_length(*list);
	const char *p = value;
	for (;;) {
		size_t len = strcspn(p, ",");
		const char *start = p, *end = p + len;
		while (start < end && (*start == ' ' || *start == '\t'))
			start++;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if (end > start) {
			char **v = reallocarray(*list, n + 2, sizeof(char *));
			if (!v)
				return -ENOMEM;
			*list = v;
			v[n] = strndup(start, (size_t)(end - start));
			if (!v[n]) {
				if (n == 0) {
					free(v);
					*list = NULL;
				}
				return -ENOMEM;
			}
			v[++n] = NULL;
		}
		if (!p[len])
			return 0;
		p += len + 1;
	}
}

/* Parse value into the field; on a syntax error return <0 with *ret_reason set (static text). */
static int field_set(const struct config_option *o, void *field, const char *value, enum source src,
		     bool append, const char **ret_reason)
{
	bool empty = str_empty(value);
	int r = 0;
	/* An empty default means "unset": the zero value of the type. */
	if (empty && src == SOURCE_DEFAULT && o->type != CONFIG_STRING &&
	    o->type != CONFIG_SECRET && o->type != CONFIG_LIST) {
		switch (o->type) {
		case CONFIG_BOOL:
			*(bool *)field = false;
			break;
		case CONFIG_INT:
		case CONFIG_DURATION:
			*(int64_t *)field = 0;
			break;
		case CONFIG_UINT:
			*(uint64_t *)field = 0;
			break;
		case CONFIG_PORT:
			*(uint16_t *)field = 0;
			break;
		default:
			break;
		}
		return 0;
	}

	switch (o->type) {
	case CONFIG_STRING:
	case CONFIG_SECRET: {
		char *copy = NULL;
		if (!empty) {
			copy = strdup(value);
			if (!copy)
				return -ENOMEM;
		}
		field_clear(o, field);
		*(char **)field = copy;
		return 0;
	}
	case CONFIG_LIST: {
		char **list = NULL;
		if (append) {
			list = *(char ***)field;
			*(char ***)field = NULL;
		}
		r = empty ? 0 : list_append(&list, value);
		field_clear(o, field);
		*(char ***)field = list;
		return r;
	}
	case CONFIG_BOOL: {
		bool b;
		if (src == SOURCE_ENV) {
			/* WIRE 8: the environment is true only for 1/true, anything else is false. */
			b = strcmp(value, "1") == 0 || strcasecmp(value, "true") == 0;
		} else {
			r = parse_bool(value, &b);
			if (r < 0)
				break;
		}
		*(bool *)field = b;
		return 0;
	}
	case CONFIG_INT: {
		int64_t v;
		r = parse_i64(value, &v);
		if (r == 0)
			*(int64_t *)field = v;
		break;
	}
	case CONFIG_UINT: {
		uint64_t v;
		r = parse_u64(value, &v);
		if (r == 0)
			*(uint64_t *)field = v;
		break;
	}
	case CONFIG_PORT: {
		uint16_t v;
		r = parse_port(value, &v);
		if (r == 0)
			*(uint16_t *)field = v;
		break;
	}
	case CONFIG_DURATION: {
		int64_t v;
		r = parse_duration(value, &v);
		if (r == 0)
			*(int64_t *)field = v;
		break;
	}
	}
	if (r < 0 && r != -ENOMEM) {
		*ret_reason = type_reason(o->type, r);
		return -EINVAL;
	}
	return r;
}

/* "flag -x (env X)", "flag -x" or "environment variable X". */
static void describe(const struct config_option *o, char *buf, size_t size)
{
	if (o->flag && o->env)
		snprintf(buf, size, "flag -%s (env %s)", o->flag, o->env);
	else if (o->flag)
		snprintf(buf, size, "flag -%s", o->flag);
	else
		snprintf(buf, size, "environment variable %s", o->env ? o->env : "?");
}

static int apply(const struct config_option *o, void *settings, const char *value, enum source src,
		 bool append, char **ret_msg)
{
	const char *reason = NULL;
	int r = field_set(o, field_of(o, settings), value, src, append, &reason);
	if (r != -EINVAL)
		return r;

	/* Only typed values can be refused here; strings, and so secrets, always parse, which keeps
	 * a secret out of every message below. */
	char what[256];
	describe(o, what, sizeof(what));
	switch (src) {
	case SOURCE_DEFAULT:
		return str_set_message(ret_msg, EINVAL,
				       "invalid default \"%." ECHO_MAX "s\" for %s: %s", value,
				       what, reason);
	case SOURCE_ENV:
		if (o->flag)
			snprintf(what, sizeof(what), "environment variable %s (flag -%s)", o->env,
				 o->flag);
		return str_set_message(ret_msg, EINVAL,
				       "invalid value \"%." ECHO_MAX "s\" in %s: %s", value, what,
				       reason);
	case SOURCE_FLAG:
		if (o->type == CONFIG_BOOL)
			return str_set_message(
			    ret_msg, EINVAL, "invalid boolean value \"%." ECHO_MAX "s\" for %s: %s",
			    value, what, reason);
		return str_set_message(ret_msg, EINVAL,
				       "invalid value \"%." ECHO_MAX "s\" for %s: %s", value, what,
				       reason);
	}
	return -EINVAL;
}

static bool name_is(const char *name, size_t len, const char *want)
{
	return strlen(want) == len && memcmp(name, want, len) == 0;
}

static const struct config_option *lookup(const struct config_table *tables, size_t n_tables,
					  const char *name, size_t len, size_t *ret_table,
					  size_t *ret_index)
{
	size_t index = 0;
	for (size_t t = 0; t < n_tables; t++)
		for (size_t i = 0; i < tables[t].n_options; i++, index++) {
			const struct config_option *o = &tables[t].options[i];
			if (o->flag && name_is(name, len, o->flag)) {
				*ret_table = t;
				*ret_index = index;
				return o;
			}
		}
	return NULL;
}

static int parse_flags(const struct config_table *tables, size_t n_tables, int argc, char **argv,
		       bool *seen, int *ret_argind, char **ret_msg)
{
	int i = 0;
	while (i < argc) {
		const char *s = argv[i];
		/* Go's flag package: "-" alone and anything not starting with '-' end the flags. */
		if (!s || s[0] != '-' || s[1] == 0)
			break;
		const char *name = s + 1;
		if (*name == '-') {
			name++;
			if (*name == 0) {
				i++;
				break;
			}
		}
		if (*name == '-' || *name == '=') {
			*ret_argind = i;
			return str_set_message(ret_msg, EINVAL, "bad flag syntax: %." ECHO_MAX "s",
					       s);
		}
		const char *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);
		size_t t, index;
		const struct config_option *o = lookup(tables, n_tables, name, len, &t, &index);
		i++;
		if (!o) {
			*ret_argind = i;
			if (name_is(name, len, "help") || name_is(name, len, "h"))
				return -EAGAIN;
			if (name_is(name, len, "version"))
				return -EALREADY;
			return str_set_message(ret_msg, EINVAL,
					       "flag provided but not defined: -%.*s",
					       (int)MIN(len, (size_t)256), name);
		}

		const char *value;
		if (eq)
			value = eq + 1;
		else if (o->type == CONFIG_BOOL)
			value = "true";
		else if (i < argc && argv[i])
			value = argv[i++];
		else {
			*ret_argind = i;
			return str_set_message(ret_msg, EINVAL, "flag needs an argument: -%s",
					       o->flag);
		}
		/* A repeated list flag adds to the list; any other repeated flag: last one wins. */
		int r = apply(o, tables[t].settings, value, SOURCE_FLAG, seen[index], ret_msg);
		if (r < 0) {
			*ret_argind = i;
			return r;
		}
		seen[index] = true;
	}
	*ret_argind = i;
	return 0;
}

int config_parse(const struct config_table *tables, size_t n_tables, int argc, char **argv,
		 int *ret_argind, char **ret_msg)
{
	int argind_dummy;
	if (!ret_argind)
		ret_argind = &argind_dummy;
	*ret_argind = 0;
	if (ret_msg)
		*ret_msg = NULL;
	if (!tables && n_tables > 0)
		return -EINVAL;
	if (argc < 0 || (argc > 0 && !argv))
		return -EINVAL;

	size_t total = 0;
	for (size_t t = 0; t < n_tables; t++)
		total += tables[t].n_options;

	int r;
	for (size_t t = 0; t < n_tables; t++)
		for (size_t i = 0; i < tables[t].n_options; i++) {
			r = apply(&tables[t].options[i], tables[t].settings,
				  tables[t].options[i].def, SOURCE_DEFAULT, false, ret_msg);
			if (r < 0)
				return r;
		}

	for (size_t t = 0; t < n_tables; t++)
		for (size_t i = 0; i < tables[t].n_options; i++) {
			const struct config_option *o = &tables[t].options[i];
			const char *v = config_getenv(o->env);
			if (str_empty(v))
				continue;
			r = apply(o, tables[t].settings, v, SOURCE_ENV, false, ret_msg);
			if (r < 0)
				return r;
		}

	_cleanup_free_ bool *seen = calloc(total ? total : 1, sizeof(bool));
	if (!seen)
		return -ENOMEM;
	r = parse_flags(tables, n_tables, argc, argv, seen, ret_argind, ret_msg);
	if (r < 0)
		return r;

	for (size_t t = 0; t < n_tables; t++)
		for (size_t i = 0; i < tables[t].n_options; i++) {
			const struct config_option *o = &tables[t].options[i];
			if (!o->validate)
				continue;
			_cleanup_free_ char *m = NULL;
			r = o->validate(field_of(o, tables[t].settings), &m);
			if (r >= 0)
				continue;
			char what[256];
			describe(o, what, sizeof(what));
			return str_set_message(ret_msg, EINVAL, "invalid value for %s: %s", what,
					       m ? m : strerror(r == INT_MIN ? EINVAL : -r));
		}
	return 0;
}

void config_free(const struct config_option *options, size_t n_options, void *settings)
{
	if (!options || !settings)
		return;
	for (size_t i = 0; i < n_options; i++)
		field_clear(&options[i], field_of(&options[i], settings));
}

void config_print_values(FILE *f, const struct config_option *options, size_t n_options,
			 const void *settings)
{
	if (!f || !options || !settings)
		return;
	for (size_t i = 0; i < n_options; i++) {
		const struct config_option *o = &options[i];
		const void *field = (const uint8_t *)settings + o->offset;
		if (o->env)
			fprintf(f, "%s=", o->env);
		else
			fprintf(f, "-%s=", o->flag ? o->flag : "?");
		switch (o->type) {
		case CONFIG_STRING:
			fputs(*(char *const *)field ?: "", f);
			break;
		case CONFIG_SECRET:
			fputs(str_empty(*(char *const *)field) ? "" : "<set>", f);
			break;
		case CONFIG_BOOL:
			fputs(*(const bool *)field ? "true" : "false", f);
			break;
		case CONFIG_INT:
			fprintf(f, "%" PRId64, *(const int64_t *)field);
			break;
		case CONFIG_UINT:
			fprintf(f, "%" PRIu64, *(const uint64_t *)field);
			break;
		case CONFIG_PORT:
			fprintf(f, "%u", (unsigned)*(const uint16_t *)field);
			break;
		case CONFIG_DURATION: {
			int64_t ns = *(const int64_t *)field;
			if (ns % NSEC_PER_SEC == 0)
				fprintf(f, "%" PRId64 "s", ns / (int64_t)NSEC_PER_SEC);
			else
				fprintf(f, "%.9gs", (double)ns / NSEC_PER_SEC);
			break;
		}
		case CONFIG_LIST: {
			char *const *v = *(char *const *const *)field;
			for (size_t k = 0; v && v[k]; k++)
				fprintf(f, "%s%s", k ? "," : "", v[k]);
			break;
		}
		}
		fputc('\n', f);
	}
}

void config_print_help(FILE *f, const struct config_option *options, size_t n_options)
{
	if (!f || !options)
		return;
	for (size_t i = 0; i < n_options; i++) {
		const struct config_option *o = &options[i];
		const char *parts[2];
		size_t n = 0;
		_cleanup_free_ char *def = NULL;
		if (o->flag && o->env)
			parts[n++] = o->env;
		/* A secret's default could be a real credential baked into a table: never shown. */
		if (o->type == CONFIG_SECRET)
			parts[n++] = "secret";
		else if (!str_empty(o->def) && (def = str_printf("default %s", o->def)))
			parts[n++] = def;

		if (o->flag)
			fprintf(f, "  -%s", o->flag);
		else
			fprintf(f, "  %s", o->env ? o->env : "?");
		if (n == 1)
			fprintf(f, " (%s)", parts[0]);
		else if (n == 2)
			fprintf(f, " (%s, %s)", parts[0], parts[1]);
		fputc('\n', f);
		if (o->help)
			fprintf(f, "\t%s\n", o->help);
	}
}

/* peerpodctl: the pod-creating objects of Kubernetes YAML files (Pods and the pod templates of
 * workload controllers), read into a small bounded tree so that `manifest generate` sees the
 * annotations the kubelet will see. */
#include <yaml.h>

#include "cli.h"
#include "userdata/userdata.h"

/* A tree deeper than this, or with more nodes in one document, is refused: real objects stay
 * far below, and the bounds keep memory in proportion to the (bounded) input. */
#define YAML_MAX_DEPTH 128
#define YAML_MAX_NODES (512 * 1024)
#define K8S_NAME_MAX 253
#define K8S_LABEL_MAX 63

enum ytype { Y_SCALAR, Y_SEQ, Y_MAP };

struct ynode {
	enum ytype type;
	bool is_string; /* scalar that resolves to a string (not null, bool or number) */
	bool is_null;
	char *value; /* scalar, NUL-terminated; len may be shorter than strlen if NULs inside */
	size_t len;
	struct ynode **items; /* sequence items; mapping keys and values alternating */
	size_t n, cap;
	size_t line;
};

static void ynode_free(struct ynode *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->n; i++)
		ynode_free(n->items[i]);
	free(n->items);
	free(n->value);
	free(n);
}

struct reader {
	yaml_parser_t parser;
	yaml_event_t event;
	bool have_event;
	const char *name;
	size_t doc; /* 1-based number of the current (or next) document */
	size_t n_nodes;
	char **ret_msg;
	struct cli_workload *w;
	size_t n_w;
};

static int fail(struct reader *rd, const char *fmt, ...) _printf_(2, 3);
static int fail(struct reader *rd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	_cleanup_free_ char *m = str_vprintf(fmt, ap);
	va_end(ap);
	if (!m)
		return -ENOMEM;
	if (rd->ret_msg) {
		free(*rd->ret_msg);
		*rd->ret_msg = str_printf("%s: document %zu: %s", rd->name, rd->doc, m);
	}
	return -EINVAL;
}

static int next(struct reader *rd)
{
	if (rd->have_event) {
		yaml_event_delete(&rd->event);
		rd->have_event = false;
	}
	if (!yaml_parser_parse(&rd->parser, &rd->event)) {
		if (rd->parser.error == YAML_MEMORY_ERROR)
			return -ENOMEM;
		return fail(rd, "line %zu: invalid YAML: %s", rd->parser.problem_mark.line + 1,
			    rd->parser.problem ? rd->parser.problem : "syntax error");
	}
	rd->have_event = true;
	if (rd->event.type == YAML_ALIAS_EVENT)
		return fail(rd, "line %zu: YAML aliases are not allowed",
			    rd->event.start_mark.line + 1);
	return 0;
}

/* ---- scalar resolution as Kubernetes' YAML 1.1 decoder does it ---- */

static bool is_in(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (str_eq(s, *list))
			return true;
	return false;
}

static bool all_digits(const char *s, const char *set)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!strchr(set, *s))
			return false;
	return true;
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static bool is_float(const char *s)
{
	if (*s == '-' || *s == '+')
		s++;
	size_t before = strspn(s, "0123456789");
	s += before;
	if (*s == '.') {
		s++;
		size_t after = strspn(s, "0123456789");
		if (before == 0 && after == 0)
			return false;
		s += after;
	} else if (before == 0) {
		return false;
	}
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '-' || *s == '+')
			s++;
		size_t exp = strspn(s, "0123456789");
		if (exp == 0)
			return false;
		s += exp;
	}
	return *s == 0;
}

/* An integer in Go's base-prefix syntax, underscores removed first. */
static bool is_int(const char *s)
{
	char buf[128];
	size_t n = 0;
	for (; *s; s++) {
		if (*s == '_')
			continue;
		if (n + 1 >= sizeof(buf))
			return false; /* too long for an integer anyway */
		buf[n++] = *s;
	}
	buf[n] = 0;
	const char *p = buf;
	if (*p == '-' || *p == '+')
		p++;
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
		return all_digits(p + 2, "0123456789abcdefABCDEF");
	if (p[0] == '0' && (p[1] == 'b' || p[1] == 'B'))
		return all_digits(p + 2, "01");
	if (p[0] == '0' && (p[1] == 'o' || p[1] == 'O'))
		return all_digits(p + 2, "01234567");
	return all_digits(p, "0123456789");
}

static bool plain_is_null(const char *s)
{
	static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
	return is_in(s, nulls);
}

static bool plain_is_string(const char *s)
{
	static const char *const others[] = {
	    "y",     "Y",     "yes",   "Yes",   "YES",   "n",     "N",     "no",    "No",
	    "NO",    "true",  "True",  "TRUE",  "false", "False", "FALSE", "on",    "On",
	    "ON",    "off",   "Off",   "OFF",   ".inf",  ".Inf",  ".INF",  "+.inf", "+.Inf",
	    "+.INF", "-.inf", "-.Inf", "-.INF", ".nan",  ".NaN",  ".NAN",  NULL};
	return !plain_is_null(s) && !is_in(s, others) && !is_float(s) && !is_int(s);
}

static void resolve_scalar(struct ynode *n, const yaml_event_t *e)
{
	const char *tag = (const char *)e->data.scalar.tag;
	bool plain = e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	if (tag && (str_eq(tag, "!") || str_eq(tag, YAML_STR_TAG))) {
		n->is_string = true;
	} else if (tag && str_eq(tag, YAML_NULL_TAG)) {
		n->is_null = true;
	} else if (tag && str_startswith(tag, "tag:yaml.org,2002:")) {
		n->is_string = false;
	} else if (!plain) {
		n->is_string = true;
	} else {
		n->is_null = plain_is_null(n->value);
		n->is_string = plain_is_string(n->value);
	}
}

/* ---- building the tree of one document ---- */

static int node_append(struct reader *rd, struct ynode *parent, struct ynode *child)
{
	if (parent->n == parent->cap) {
		size_t cap = parent->cap ? parent->cap * 2 : 8;
		struct ynode **items = reallocarray(parent->items, cap, sizeof(*items));
		if (!items)
			return -ENOMEM;
		parent->items = items;
		parent->cap = cap;
	}
	parent->items[parent->n++] = child;
	return 0;
}

static int key_cmp(const void *a, const void *b)
{
	const struct ynode *x = *(struct ynode *const *)a, *y = *(struct ynode *const *)b;
	int c = memcmp(x->value, y->value, MIN(x->len, y->len));
	if (c)
		return c;
	return x->len < y->len ? -1 : x->len > y->len;
}

/* Duplicate keys are refused: two readers of the same file could otherwise take different
 * values (Kubernetes' strict decoder refuses them too). Sorting keeps large mappings cheap. */
static int map_check_keys(struct reader *rd, const struct ynode *m)
{
	size_t nk = m->n / 2;
	if (nk < 2)
		return 0;
	_cleanup_free_ struct ynode **keys = calloc(nk, sizeof(*keys));
	if (!keys)
		return -ENOMEM;
	for (size_t i = 0; i < nk; i++)
		keys[i] = m->items[2 * i];
	qsort(keys, nk, sizeof(*keys), key_cmp);
	for (size_t i = 1; i < nk; i++)
		if (key_cmp(&keys[i - 1], &keys[i]) == 0)
			return fail(rd, "line %zu: duplicate mapping key \"%.64s\"",
				    keys[i]->line + 1, keys[i]->value);
	return 0;
}

static struct ynode *node_new(struct reader *rd, enum ytype type)
{
	struct ynode *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->type = type;
	n->line = rd->event.start_mark.line;
	return n;
}

/* Build the tree of the node whose first event comes next; iterative, depth bounded. */
static int build(struct reader *rd, struct ynode **ret)
{
	struct ynode *stack[YAML_MAX_DEPTH];
	size_t depth = 0;
	struct ynode *root = NULL;
	int r;

	for (;;) {
		if ((r = next(rd)) < 0)
			goto fail;
		const yaml_event_t *e = &rd->event;
		struct ynode *n = NULL;
		switch (e->type) {
		case YAML_SCALAR_EVENT:
			if (!(n = node_new(rd, Y_SCALAR)) ||
			    !(n->value = malloc(e->data.scalar.length + 1))) {
				free(n);
				r = -ENOMEM;
				goto fail;
			}
			memcpy(n->value, e->data.scalar.value, e->data.scalar.length);
			n->value[e->data.scalar.length] = 0;
			n->len = e->data.scalar.length;
			resolve_scalar(n, e);
			break;
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT:
			n = node_new(rd, e->type == YAML_MAPPING_START_EVENT ? Y_MAP : Y_SEQ);
			if (!n) {
				r = -ENOMEM;
				goto fail;
			}
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT: {
			if (depth == 0) {
				r = fail(rd, "invalid YAML structure");
				goto fail;
			}
			struct ynode *done = stack[--depth];
			if (done->type == Y_MAP && (r = map_check_keys(rd, done)) < 0)
				goto fail;
			if (depth == 0) {
				*ret = root;
				return 0;
			}
			continue;
		}
		default:
			r = fail(rd, "line %zu: unexpected YAML event", e->start_mark.line + 1);
			goto fail;
		}

		if (++rd->n_nodes > YAML_MAX_NODES) {
			ynode_free(n);
			r = fail(rd, "more than %d YAML nodes", YAML_MAX_NODES);
			goto fail;
		}
		if (depth == 0) {
			root = n;
		} else {
			struct ynode *parent = stack[depth - 1];
			if (parent->type == Y_MAP && parent->n % 2 == 0) {
				if (n->type != Y_SCALAR) {
					ynode_free(n);
					r = fail(rd, "line %zu: mapping keys must be scalars",
						 rd->event.start_mark.line + 1);
					goto fail;
				}
				if (str_eq(n->value, "<<") &&
				    e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
					ynode_free(n);
					r = fail(rd, "line %zu: YAML merge keys are not supported",
						 rd->event.start_mark.line + 1);
					goto fail;
				}
			}
			if ((r = node_append(rd, parent, n)) < 0) {
				ynode_free(n);
				goto fail;
			}
		}
		if (n->type == Y_SCALAR) {
			if (depth == 0) {
				*ret = root;
				return 0;
			}
		} else {
			if (depth == YAML_MAX_DEPTH) {
				r = fail(rd, "line %zu: nested deeper than %d levels",
					 rd->event.start_mark.line + 1, YAML_MAX_DEPTH);
				goto fail;
			}
			stack[depth++] = n;
		}
	}
fail:
	ynode_free(root);
	return r;
}

/* ---- reading objects ---- */

static const struct ynode *map_get(const struct ynode *m, const char *key)
{
	if (!m || m->type != Y_MAP)
		return NULL;
	size_t klen = strlen(key);
	for (size_t i = 0; i + 1 < m->n; i += 2)
		if (m->items[i]->len == klen && memcmp(m->items[i]->value, key, klen) == 0)
			return m->items[i + 1];
	return NULL;
}

static bool is_absent(const struct ynode *n)
{
	return !n || (n->type == Y_SCALAR && n->is_null);
}

/* A string field: NULL when absent or null; -EINVAL when of another type. */
static int get_string(struct reader *rd, const char *ctx, const struct ynode *m, const char *key,
		      const char *what, const char **ret)
{
	const struct ynode *n = map_get(m, key);
	*ret = NULL;
	if (is_absent(n))
		return 0;
	if (n->type != Y_SCALAR || !n->is_string)
		return fail(rd, "%sline %zu: %s must be a string", ctx, n->line + 1, what);
	if (strlen(n->value) != n->len)
		return fail(rd, "%sline %zu: %s contains a NUL byte", ctx, n->line + 1, what);
	*ret = n->value;
	return 0;
}

/* A mapping field: NULL when absent or null. */
static int get_map(struct reader *rd, const char *ctx, const struct ynode *m, const char *key,
		   const char *what, const struct ynode **ret)
{
	const struct ynode *n = map_get(m, key);
	*ret = NULL;
	if (is_absent(n))
		return 0;
	if (n->type != Y_MAP)
		return fail(rd, "%sline %zu: %s must be a mapping", ctx, n->line + 1, what);
	*ret = n;
	return 0;
}

/* RFC 1123 names as Kubernetes checks them: lowercase alphanumerics and '-' (and '.' between
 * labels of a subdomain), alphanumeric at both ends. They become certificate SANs. */
static bool k8s_name_is_valid(const char *s, bool subdomain)
{
	size_t len = strlen(s);
	if (len == 0 || len > (subdomain ? K8S_NAME_MAX : K8S_LABEL_MAX))
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
		if (alnum)
			continue;
		if (i == 0 || i == len - 1)
			return false;
		if (c == '-')
			continue;
		if (c == '.' && subdomain && s[i - 1] != '.' && s[i - 1] != '-' && s[i + 1] != '-')
			continue;
		return false;
	}
	return true;
}

static bool api_group_is(const char *api_version, const char *group)
{
	size_t n = strlen(group);
	return strncmp(api_version, group, n) == 0 && api_version[n] == '/';
}

/* Where the pod template of a kind lives; NULL path for kinds that do not create pods. */
static const char *const *template_path(const char *api_version, const char *kind)
{
	static const char *const pod[] = {NULL};
	static const char *const tmpl[] = {"spec", "template", NULL};
	static const char *const cron[] = {"spec", "jobTemplate", "spec", "template", NULL};
	if (str_eq(kind, "Pod") && str_eq(api_version, "v1"))
		return pod;
	if ((str_eq(kind, "Deployment") || str_eq(kind, "StatefulSet") ||
	     str_eq(kind, "DaemonSet") || str_eq(kind, "ReplicaSet")) &&
	    (api_group_is(api_version, "apps") || api_group_is(api_version, "extensions")))
		return tmpl;
	if (str_eq(kind, "Job") && api_group_is(api_version, "batch"))
		return tmpl;
	if (str_eq(kind, "CronJob") && api_group_is(api_version, "batch"))
		return cron;
	return NULL;
}

static int add_workload(struct reader *rd, const struct cli_workload *src)
{
	struct cli_workload *w = reallocarray(rd->w, rd->n_w + 1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	rd->w = w;
	struct cli_workload *d = &w[rd->n_w];
	*d = (struct cli_workload){
	    .api_version = str_dup(src->api_version),
	    .kind = str_dup(src->kind),
	    .namespace = str_dup(src->namespace),
	    .name = str_dup(src->name),
	    .runtime_class = str_dup(src->runtime_class),
	    .initdata = str_dup(src->initdata),
	    .role = str_dup(src->role),
	};
	rd->n_w++;
	if (!d->api_version || !d->kind || !d->namespace || !d->name ||
	    (src->runtime_class && !d->runtime_class) || (src->initdata && !d->initdata) ||
	    (src->role && !d->role))
		return -ENOMEM;
	return 0;
}

static int read_object(struct reader *rd, const struct ynode *obj, const char *ctx, bool in_list);

static int read_list(struct reader *rd, const struct ynode *obj, const char *kind)
{
	const struct ynode *items = map_get(obj, "items");
	if (is_absent(items))
		return 0;
	if (items->type != Y_SEQ)
		return fail(rd, "line %zu: %.64s items must be a sequence", items->line + 1, kind);
	for (size_t i = 0; i < items->n; i++) {
		char ctx[48];
		snprintf(ctx, sizeof(ctx), "items[%zu]: ", i);
		if (items->items[i]->type != Y_MAP)
			return fail(rd, "%sline %zu: must be a mapping", ctx,
				    items->items[i]->line + 1);
		int r = read_object(rd, items->items[i], ctx, true);
		if (r < 0)
			return r;
	}
	return 0;
}

static int read_object(struct reader *rd, const struct ynode *obj, const char *ctx, bool in_list)
{
	const char *kind, *api_version;
	int r;
	if ((r = get_string(rd, ctx, obj, "kind", "kind", &kind)) < 0 ||
	    (r = get_string(rd, ctx, obj, "apiVersion", "apiVersion", &api_version)) < 0)
		return r;
	if (str_empty(kind))
		return fail(rd, "%sline %zu: kind is missing", ctx, obj->line + 1);
	if (str_empty(api_version))
		return fail(rd, "%sline %zu: apiVersion is missing", ctx, obj->line + 1);

	if (str_endswith(kind, "List") && map_get(obj, "items")) {
		if (in_list)
			return fail(rd, "%sline %zu: a %.64s inside a List is not supported", ctx,
				    obj->line + 1, kind);
		return read_list(rd, obj, kind);
	}
	const char *const *path = template_path(api_version, kind);
	if (!path)
		return 0; /* Service, ConfigMap, custom resources, ...: no pod of ours */

	const struct ynode *meta, *pod = obj, *pod_meta, *pod_spec, *ann, *pod_ann;
	struct cli_workload w = {.api_version = (char *)api_version, .kind = (char *)kind};
	if ((r = get_map(rd, ctx, obj, "metadata", "metadata", &meta)) < 0 ||
	    (r = get_string(rd, ctx, meta, "name", "metadata.name", (const char **)&w.name)) < 0 ||
	    (r = get_string(rd, ctx, meta, "namespace", "metadata.namespace",
			    (const char **)&w.namespace)) < 0 ||
	    (r = get_map(rd, ctx, meta, "annotations", "metadata.annotations", &ann)) < 0)
		return r;
	if (str_empty(w.name))
		return fail(rd, "%sline %zu: %s without metadata.name", ctx, obj->line + 1, kind);
	if (!k8s_name_is_valid(w.name, true))
		return fail(rd, "%s%s \"%.64s\": metadata.name is not a valid Kubernetes name", ctx,
			    kind, w.name);
	if (str_empty(w.namespace))
		w.namespace = (char *)"default";
	else if (!k8s_name_is_valid(w.namespace, false))
		return fail(rd,
			    "%s%s \"%s\": metadata.namespace \"%.64s\" is not a valid namespace",
			    ctx, kind, w.name, w.namespace);

	_cleanup_free_ char *where = NULL;
	for (size_t i = 0; path[i]; i++) {
		_cleanup_free_ char *p =
		    where ? str_printf("%s.%s", where, path[i]) : str_dup(path[i]);
		if (!p)
			return -ENOMEM;
		free(where);
		where = TAKE_PTR(p);
		const struct ynode *next_pod;
		if ((r = get_map(rd, ctx, pod, path[i], where, &next_pod)) < 0)
			return r;
		if (!next_pod)
			return fail(rd, "%s%s \"%s\": %s is missing", ctx, kind, w.name, where);
		pod = next_pod;
	}
	if ((r = get_map(rd, ctx, pod, "metadata", "the pod's metadata", &pod_meta)) < 0 ||
	    (r = get_map(rd, ctx, pod, "spec", "the pod's spec", &pod_spec)) < 0 ||
	    (r = get_map(rd, ctx, pod_meta, "annotations", "the pod's annotations", &pod_ann)) <
		0 ||
	    (r = get_string(rd, ctx, pod_spec, "runtimeClassName", "runtimeClassName",
			    (const char **)&w.runtime_class)) < 0 ||
	    (r = get_string(rd, ctx, pod_ann, CLI_INITDATA_ANNOTATION, CLI_INITDATA_ANNOTATION,
			    (const char **)&w.initdata)) < 0 ||
	    (r = get_string(rd, ctx, pod_ann, CLI_ROLE_ANNOTATION, CLI_ROLE_ANNOTATION,
			    (const char **)&w.role)) < 0)
		return r;
	/* The role is read by peerpodctl only, so it may sit on the controller object too. */
	if (pod != obj) {
		const char *outer_role;
		if ((r = get_string(rd, ctx, ann, CLI_ROLE_ANNOTATION, CLI_ROLE_ANNOTATION,
				    &outer_role)) < 0)
			return r;
		if (outer_role && w.role && !str_eq(outer_role, w.role))
			return fail(rd,
				    "%s%s \"%s\": %s differs between the object and its pod "
				    "template",
				    ctx, kind, w.name, CLI_ROLE_ANNOTATION);
		if (!w.role)
			w.role = (char *)outer_role;
	}
	return add_workload(rd, &w);
}

static int read_stream(struct reader *rd)
{
	int r;
	if ((r = next(rd)) < 0)
		return r;
	if (rd->event.type != YAML_STREAM_START_EVENT)
		return fail(rd, "invalid YAML stream");
	for (;;) {
		rd->n_nodes = 0;
		if ((r = next(rd)) < 0)
			return r;
		if (rd->event.type == YAML_STREAM_END_EVENT)
			return 0;
		if (rd->event.type != YAML_DOCUMENT_START_EVENT)
			return fail(rd, "invalid YAML stream");
		struct ynode *root = NULL;
		if ((r = build(rd, &root)) < 0)
			return r;
		if (root->type == Y_MAP)
			r = read_object(rd, root, "", false);
		else if (!(root->type == Y_SCALAR && root->is_null))
			r = fail(rd, "line %zu: a Kubernetes object must be a mapping",
				 root->line + 1);
		ynode_free(root);
		if (r < 0)
			return r;
		if ((r = next(rd)) < 0)
			return r;
		if (rd->event.type != YAML_DOCUMENT_END_EVENT)
			return fail(rd, "invalid YAML document end");
		rd->doc++;
	}
}

int cli_workloads_from_yaml_buffer(const char *data, size_t len, const char *name,
				   struct cli_workload **ret, size_t *ret_n, char **ret_msg)
{
	if (len > CLI_YAML_MAX_BYTES)
		return str_set_message(ret_msg, EFBIG, "%s: larger than %d bytes", name,
				       CLI_YAML_MAX_BYTES);
	struct reader rd = {.name = name, .doc = 1, .ret_msg = ret_msg};
	if (!yaml_parser_initialize(&rd.parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&rd.parser, (const unsigned char *)data, len);
	yaml_parser_set_encoding(&rd.parser, YAML_UTF8_ENCODING);
	int r = read_stream(&rd);
	if (rd.have_event)
		yaml_event_delete(&rd.event);
	yaml_parser_delete(&rd.parser);
	if (r < 0) {
		cli_workloads_free(rd.w, rd.n_w);
		if (r == -ENOMEM)
			str_set_message(ret_msg, ENOMEM, "%s: out of memory", name);
		return r;
	}
	*ret = rd.w;
	*ret_n = rd.n_w;
	return 0;
}

int cli_workloads_from_yaml(const char *path, struct cli_workload **ret, size_t *ret_n,
			    char **ret_msg)
{
	_cleanup_free_ char *data = NULL;
	size_t len;
	int r = read_file_bounded(path, CLI_YAML_MAX_BYTES, &data, &len);
	if (r == -EFBIG)
		return str_set_message(ret_msg, r, "%s: larger than %d bytes", path,
				       CLI_YAML_MAX_BYTES);
	if (r < 0)
		return str_set_message(ret_msg, r, "%s: %s", path, strerror(-r));
	return cli_workloads_from_yaml_buffer(data, len, path, ret, ret_n, ret_msg);
}

void cli_workloads_free(struct cli_workload *w, size_t n)
{
	if (!w)
		return;
	for (size_t i = 0; i < n; i++) {
		free(w[i].api_version);
		free(w[i].kind);
		free(w[i].namespace);
		free(w[i].name);
		free(w[i].runtime_class);
		free(w[i].initdata);
		free(w[i].role);
	}
	free(w);
}

const char *cli_workload_initdata(const struct cli_workload *w, const char *runtime_class)
{
	if (w->initdata)
		return w->initdata;
	if (str_eq(w->runtime_class, runtime_class ? runtime_class : CLI_DEFAULT_RUNTIME_CLASS))
		return INITDATA_DEFAULT_TOML;
	return NULL;
}

/* lib/k8s: where the API server is and how to authenticate: the in-cluster service account and
 * kubeconfig files (YAML through libyaml, mapped onto a jansson tree). */
#include <libgen.h>
#include <yaml.h>

#include "k8s/k8s.h"
#include "userdata/userdata.h"

/* An alias may repeat a subtree many times ("billion laughs"); this bounds the tree we build. */
#define MAX_NODES 100000
#define MAX_DEPTH 64
#define MAX_PEM_BYTES (256 * 1024)

void k8s_config_free(struct k8s_config *c)
{
	if (!c)
		return;
	free(c->server);
	free(c->ca_file);
	free(c->ca_data);
	free_secret(c->token);
	free(c->token_file);
	free(c->client_cert_file);
	free(c->client_key_file);
	free(c->client_cert_data);
	free_secret(c->client_key_data);
	free(c->namespace);
	free(c);
}

static char *trim_dup(const char *s)
{
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
		n--;
	while (n > 0 && (*s == ' ' || *s == '\n')) {
		s++;
		n--;
	}
	return strndup(s, n);
}

int k8s_config_in_cluster(const char *sa_dir, const char *host, const char *port,
			  const char *server_url, struct k8s_config **ret, char **ret_msg)
{
	if (str_empty(sa_dir))
		sa_dir = K8S_SERVICEACCOUNT_DIR;
	_cleanup_(k8s_config_freep) struct k8s_config *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	if (!str_empty(server_url))
		c->server = strdup(server_url);
	else if (!str_empty(host)) {
		/* an IPv6 service address needs brackets in a URL */
		bool v6 = strchr(host, ':') != NULL;
		c->server = str_printf("https://%s%s%s:%s", v6 ? "[" : "", host, v6 ? "]" : "",
				       str_empty(port) ? "443" : port);
	} else
		return str_set_message(ret_msg, ENOENT,
				       "no API server (KUBERNETES_SERVICE_HOST is not set)");
	c->token_file = str_printf("%s/token", sa_dir);
	_cleanup_free_ char *ca = str_printf("%s/ca.crt", sa_dir);
	_cleanup_free_ char *nsfile = str_printf("%s/namespace", sa_dir);
	if (!c->server || !c->token_file || !ca || !nsfile)
		return -ENOMEM;
	if (access(c->token_file, R_OK) < 0)
		return str_set_message(ret_msg, ENOENT, "no service-account token at %s",
				       c->token_file);
	/* http:// (a test server) needs no CA; https without ca.crt uses the system store */
	if (access(ca, R_OK) == 0)
		c->ca_file = TAKE_PTR(ca);
	_cleanup_free_ char *ns = NULL;
	if (read_file_bounded(nsfile, 256, &ns, NULL) >= 0) {
		c->namespace = trim_dup(ns);
		if (!c->namespace)
			return -ENOMEM;
	}
	*ret = TAKE_PTR(c);
	return 0;
}

/* ---- YAML -> JSON ---- */

struct conv {
	yaml_document_t *doc;
	size_t n_nodes;
};

static json_t *convert(struct conv *cv, yaml_node_t *n, unsigned depth)
{
	if (!n || depth > MAX_DEPTH || ++cv->n_nodes > MAX_NODES)
		return NULL;
	switch (n->type) {
	case YAML_SCALAR_NODE: {
		const char *v = (const char *)n->data.scalar.value;
		size_t len = n->data.scalar.length;
		if (memchr(v, 0, len))
			return NULL;
		/* Plain scalars are strings here; callers interpret booleans themselves. */
		return json_stringn(v, len);
	}
	case YAML_SEQUENCE_NODE: {
		json_t *a = json_array();
		for (yaml_node_item_t *i = n->data.sequence.items.start;
		     a && i < n->data.sequence.items.top; i++) {
			json_t *v = convert(cv, yaml_document_get_node(cv->doc, *i), depth + 1);
			if (!v || json_array_append_new(a, v) < 0) {
				json_decref(a);
				return NULL;
			}
		}
		return a;
	}
	case YAML_MAPPING_NODE: {
		json_t *o = json_object();
		for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
		     o && p < n->data.mapping.pairs.top; p++) {
			yaml_node_t *k = yaml_document_get_node(cv->doc, p->key);
			if (!k || k->type != YAML_SCALAR_NODE) {
				json_decref(o);
				return NULL;
			}
			_cleanup_free_ char *key =
			    strndup((const char *)k->data.scalar.value, k->data.scalar.length);
			json_t *v =
			    convert(cv, yaml_document_get_node(cv->doc, p->value), depth + 1);
			if (!key || !v || json_object_set_new(o, key, v) < 0) {
				json_decref(v);
				json_decref(o);
				return NULL;
			}
		}
		return o;
	}
	default:
		return NULL;
	}
}

static int yaml_to_json(const char *data, size_t len, json_t **ret, char **ret_msg)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
	yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);
	if (!yaml_parser_load(&parser, &doc)) {
		int r = str_set_message(ret_msg, EINVAL, "YAML error at line %zu: %s",
					parser.problem_mark.line + 1,
					parser.problem ? parser.problem : "unknown");
		yaml_parser_delete(&parser);
		return r;
	}
	struct conv cv = {.doc = &doc};
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	json_t *j = root ? convert(&cv, root, 0) : json_object();
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	if (!j)
		return str_set_message(ret_msg, EINVAL, "unsupported or oversized YAML structure");
	*ret = j;
	return 0;
}

/* ---- kubeconfig ---- */

static json_t *named(const json_t *root, const char *list, const char *name, const char *member)
{
	const json_t *a = json_object_get(root, list);
	size_t i;
	json_t *v;
	if (!json_is_array(a))
		return NULL;
	json_array_foreach(a, i, v)
	{
		const json_t *n = json_object_get(v, "name");
		if (json_is_string(n) && str_eq(json_string_value(n), name)) {
			json_t *m = json_object_get(v, member);
			return json_is_object(m) ? m : NULL;
		}
	}
	return NULL;
}

static const char *str_member(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

static int set_path(char **dst, const char *base_dir, const char *p)
{
	if (str_empty(p))
		return 0;
	char *v = p[0] == '/' || str_empty(base_dir) ? strdup(p) : str_printf("%s/%s", base_dir, p);
	if (!v)
		return -ENOMEM;
	free(*dst);
	*dst = v;
	return 0;
}

static int set_data(char **dst, const char *b64, const char *what, char **ret_msg)
{
	if (str_empty(b64))
		return 0;
	uint8_t *pem = NULL;
	size_t len;
	int r = userdata_base64_decode(b64, strlen(b64), MAX_PEM_BYTES, &pem, &len);
	if (r < 0)
		return str_set_message(ret_msg, EINVAL, "%s is not valid base64", what);
	if (memchr(pem, 0, len)) {
		free_secret((char *)pem);
		return str_set_message(ret_msg, EINVAL, "%s holds a NUL byte", what);
	}
	free_secret(*dst);
	*dst = (char *)pem;
	return 0;
}

int k8s_config_parse_kubeconfig(const char *data, size_t len, const char *base_dir,
				const char *context, struct k8s_config **ret, char **ret_msg)
{
	if (len > K8S_KUBECONFIG_MAX_BYTES)
		return str_set_message(ret_msg, EFBIG, "kubeconfig larger than %d bytes",
				       K8S_KUBECONFIG_MAX_BYTES);
	_cleanup_(json_decrefp) json_t *root = NULL;
	int r = yaml_to_json(data, len, &root, ret_msg);
	if (r < 0)
		return r;
	if (!json_is_object(root))
		return str_set_message(ret_msg, EINVAL, "kubeconfig is not a mapping");
	if (str_empty(context))
		context = str_member(root, "current-context");
	if (str_empty(context))
		return str_set_message(ret_msg, EINVAL, "kubeconfig has no current-context");
	json_t *ctx = named(root, "contexts", context, "context");
	if (!ctx)
		return str_set_message(ret_msg, EINVAL, "context \"%s\" not found", context);
	const char *cluster_name = str_member(ctx, "cluster");
	const char *user_name = str_member(ctx, "user");
	json_t *cluster = cluster_name ? named(root, "clusters", cluster_name, "cluster") : NULL;
	if (!cluster)
		return str_set_message(ret_msg, EINVAL,
				       "cluster \"%s\" of context \"%s\" not found",
				       cluster_name ?: "", context);
	/* A context without a user is allowed (anonymous); a named but missing one is not. */
	json_t *user = NULL;
	if (!str_empty(user_name)) {
		user = named(root, "users", user_name, "user");
		if (!user)
			return str_set_message(ret_msg, EINVAL, "user \"%s\" not found", user_name);
	}

	_cleanup_(k8s_config_freep) struct k8s_config *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	const char *server = str_member(cluster, "server");
	if (str_empty(server) ||
	    !(str_startswith(server, "https://") || str_startswith(server, "http://")))
		return str_set_message(ret_msg, EINVAL, "cluster \"%s\" has no http(s) server",
				       cluster_name);
	c->server = strdup(server);
	if (!c->server)
		return -ENOMEM;
	/* drop a trailing slash so paths can be appended */
	size_t sl = strlen(c->server);
	while (sl > 0 && c->server[sl - 1] == '/')
		c->server[--sl] = 0;
	const char *insecure = str_member(cluster, "insecure-skip-tls-verify");
	if (insecure) {
		if (parse_bool(insecure, &c->insecure_skip_tls_verify) < 0)
			return str_set_message(ret_msg, EINVAL,
					       "insecure-skip-tls-verify is not a boolean");
	}
	r = set_path(&c->ca_file, base_dir, str_member(cluster, "certificate-authority"));
	r = r
		?: set_data(&c->ca_data, str_member(cluster, "certificate-authority-data"),
			    "certificate-authority-data", ret_msg);
	if (user) {
		const char *token = str_member(user, "token");
		if (!str_empty(token) && !(c->token = strdup(token)))
			r = r ?: -ENOMEM;
		r = r ?: set_path(&c->token_file, base_dir, str_member(user, "tokenFile"));
		r = r
			?: set_path(&c->client_cert_file, base_dir,
				    str_member(user, "client-certificate"));
		r = r ?: set_path(&c->client_key_file, base_dir, str_member(user, "client-key"));
		r = r
			?: set_data(&c->client_cert_data,
				    str_member(user, "client-certificate-data"),
				    "client-certificate-data", ret_msg);
		r = r
			?: set_data(&c->client_key_data, str_member(user, "client-key-data"),
				    "client-key-data", ret_msg);
	}
	if (r < 0)
		return r;
	bool has_cert = c->client_cert_file || c->client_cert_data;
	bool has_key = c->client_key_file || c->client_key_data;
	if (has_cert != has_key)
		return str_set_message(ret_msg, EINVAL,
				       "user \"%s\" has a client certificate without a key or the "
				       "reverse",
				       user_name);
	const char *ns = str_member(ctx, "namespace");
	c->namespace = strdup(str_empty(ns) ? "default" : ns);
	if (!c->namespace)
		return -ENOMEM;
	*ret = TAKE_PTR(c);
	return 0;
}

int k8s_config_load_kubeconfig(const char *path, const char *context, struct k8s_config **ret,
			       char **ret_msg)
{
	_cleanup_free_ char *text = NULL;
	size_t len;
	int r = read_file_bounded(path, K8S_KUBECONFIG_MAX_BYTES, &text, &len);
	if (r < 0)
		return str_set_message(ret_msg, r, "cannot read %s: %s", path, strerror(-r));
	_cleanup_free_ char *copy = strdup(path);
	_cleanup_free_ char *abs = NULL;
	if (!copy)
		return -ENOMEM;
	const char *dir = dirname(copy);
	if (dir[0] != '/') {
		_cleanup_free_ char *cwd = getcwd(NULL, 0);
		abs = cwd ? str_printf("%s/%s", cwd, dir) : NULL;
		if (!abs)
			return -ENOMEM;
		dir = abs;
	}
	r = k8s_config_parse_kubeconfig(text, len, dir, context, ret, ret_msg);
	explicit_bzero(text, len);
	if (r < 0 && ret_msg && *ret_msg) {
		char *m = str_printf("%s: %s", path, *ret_msg);
		if (m) {
			free(*ret_msg);
			*ret_msg = m;
		}
	}
	return r;
}

/* apf.json (WIRE.md 4.2): the per-pod configuration the adaptor hands to the forwarder, parsed
 * strictly by type but leniently by shape, like Go's encoding/json into a struct. The
 * pod-network object is read into lib/netns's model. */
#include "forwarder.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <strings.h>

struct enum_name {
	const char *name;
	int value;
};

static const struct enum_name route_protocols[] = {
    {"", APF_ROUTE_PROTOCOL_UNSPEC},   {"kernel", APF_ROUTE_PROTOCOL_KERNEL},
    {"boot", APF_ROUTE_PROTOCOL_BOOT}, {"static", APF_ROUTE_PROTOCOL_STATIC},
    {"dhcp", APF_ROUTE_PROTOCOL_DHCP},
};

static const struct enum_name route_scopes[] = {
    {"", APF_ROUTE_SCOPE_UNIVERSE}, {"universe", APF_ROUTE_SCOPE_UNIVERSE},
    {"site", APF_ROUTE_SCOPE_SITE}, {"link", APF_ROUTE_SCOPE_LINK},
    {"host", APF_ROUTE_SCOPE_HOST}, {"nowhere", APF_ROUTE_SCOPE_NOWHERE},
};

static const struct enum_name neighbor_states[] = {
    {"", APF_NEIGHBOR_NONE},
    {"none", APF_NEIGHBOR_NONE},
    {"incomplete", APF_NEIGHBOR_INCOMPLETE},
    {"reachable", APF_NEIGHBOR_REACHABLE},
    {"stale", APF_NEIGHBOR_STALE},
    {"delay", APF_NEIGHBOR_DELAY},
    {"probe", APF_NEIGHBOR_PROBE},
    {"failed", APF_NEIGHBOR_FAILED},
    {"noarp", APF_NEIGHBOR_NOARP},
    {"permanent", APF_NEIGHBOR_PERMANENT},
};

static const char *enum_to_string(const struct enum_name *names, size_t n, int value,
				  const char *fallback)
{
	/* Skip "" so a zero value prints as its named form where one exists. */
	for (size_t i = 0; i < n; i++)
		if (names[i].value == value && names[i].name[0])
			return names[i].name;
	return fallback;
}

const char *apf_route_protocol_to_string(enum apf_route_protocol p)
{
	return enum_to_string(route_protocols, ELEMENTSOF(route_protocols), p, "");
}

const char *apf_route_scope_to_string(enum apf_route_scope s)
{
	return enum_to_string(route_scopes, ELEMENTSOF(route_scopes), s, "");
}

const char *apf_neighbor_state_to_string(enum apf_neighbor_state s)
{
	return enum_to_string(neighbor_states, ELEMENTSOF(neighbor_states), s, "");
}

/* ---- error messages naming the key ---- */

static int fail(char **ret_msg, const char *path, const char *fmt, ...) _printf_(3, 4);
static int fail(char **ret_msg, const char *path, const char *fmt, ...)
{
	if (ret_msg) {
		va_list ap;
		va_start(ap, fmt);
		_cleanup_free_ char *detail = str_vprintf(fmt, ap);
		va_end(ap);
		free(*ret_msg);
		*ret_msg = str_printf("%s: %s", path, detail ? detail : "invalid");
	}
	return -EINVAL;
}

static const char *type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a number with a fraction or exponent";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
		return "null";
	}
	return "something else";
}

/* "pod-network" + "routes" -> "pod-network.routes"; "" + "podip" -> "podip". */
static char *join_path(const char *prefix, const char *key)
{
	return str_printf("%s%s%s", prefix, *prefix ? "." : "", key);
}

/* Go's encoding/json matches keys exactly first, then ignoring (ASCII) case. */
static json_t *member(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	if (v)
		return v;
	const char *k;
	json_object_foreach(obj, k, v)
	{
		if (strcasecmp(k, key) == 0)
			return v;
	}
	return NULL;
}

/* ---- typed getters: NULL or JSON null = missing = zero value ---- */

static int get_string_value(json_t *v, const char *path, char **ret, char **ret_msg)
{
	if (!v || json_is_null(v))
		return str_set(ret, "");
	if (!json_is_string(v))
		return fail(ret_msg, path, "expected a string, got %s", type_name(v));
	const char *s = json_string_value(v);
	if (strlen(s) != json_string_length(v))
		return fail(ret_msg, path, "string contains a NUL character");
	return str_set(ret, s);
}

static int get_string(json_t *obj, const char *prefix, const char *key, char **ret, char **ret_msg)
{
	_cleanup_free_ char *path = join_path(prefix, key);
	if (!path)
		return -ENOMEM;
	return get_string_value(member(obj, key), path, ret, ret_msg);
}

static int get_int(json_t *obj, const char *prefix, const char *key, int64_t min, int64_t max,
		   int64_t *ret, char **ret_msg)
{
	_cleanup_free_ char *path = join_path(prefix, key);
	if (!path)
		return -ENOMEM;
	json_t *v = member(obj, key);
	if (!v || json_is_null(v)) {
		*ret = 0;
		return 0;
	}
	if (!json_is_integer(v))
		return fail(ret_msg, path, "expected an integer, got %s", type_name(v));
	json_int_t i = json_integer_value(v);
	if (i < min || i > max)
		return fail(ret_msg, path, "%lld is out of range %lld..%lld", (long long)i,
			    (long long)min, (long long)max);
	*ret = i;
	return 0;
}

static int get_bool(json_t *obj, const char *prefix, const char *key, bool *ret, char **ret_msg)
{
	_cleanup_free_ char *path = join_path(prefix, key);
	if (!path)
		return -ENOMEM;
	json_t *v = member(obj, key);
	if (!v || json_is_null(v)) {
		*ret = false;
		return 0;
	}
	if (!json_is_boolean(v))
		return fail(ret_msg, path, "expected a boolean, got %s", type_name(v));
	*ret = json_is_true(v);
	return 0;
}

static int get_enum(json_t *obj, const char *prefix, const char *key, const struct enum_name *names,
		    size_t n, int *ret, char **ret_msg)
{
	_cleanup_free_ char *path = join_path(prefix, key);
	_cleanup_free_ char *s = NULL;
	if (!path)
		return -ENOMEM;
	int r = get_string_value(member(obj, key), path, &s, ret_msg);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i].name, s) == 0) {
			*ret = names[i].value;
			return 0;
		}
	return fail(ret_msg, path, "unknown value \"%s\"", s);
}

/* Array member: *ret_arr = NULL for missing/null; else a JSON array. */
static int get_array(json_t *obj, const char *prefix, const char *key, json_t **ret_arr,
		     char **ret_msg)
{
	_cleanup_free_ char *path = join_path(prefix, key);
	if (!path)
		return -ENOMEM;
	json_t *v = member(obj, key);
	*ret_arr = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v))
		return fail(ret_msg, path, "expected an array, got %s", type_name(v));
	*ret_arr = v;
	return 0;
}

/* Object member or element: *ret_obj = NULL for missing/null. */
static int as_object(json_t *v, const char *path, json_t **ret_obj, char **ret_msg)
{
	*ret_obj = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return fail(ret_msg, path, "expected an object, got %s", type_name(v));
	*ret_obj = v;
	return 0;
}

/* ---- address syntax, checked like Go's netip text unmarshalling ---- */

static bool is_address(const char *s)
{
	unsigned char a[16];
	return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

static bool is_prefix(const char *s)
{
	const char *slash = strrchr(s, '/');
	if (!slash || slash == s || slash - s >= INET6_ADDRSTRLEN)
		return false;
	char addr[INET6_ADDRSTRLEN];
	memcpy(addr, s, (size_t)(slash - s));
	addr[slash - s] = '\0';
	unsigned char a[16];
	int max_bits;
	if (inet_pton(AF_INET, addr, a) == 1)
		max_bits = 32;
	else if (inet_pton(AF_INET6, addr, a) == 1)
		max_bits = 128;
	else
		return false;
	/* Decimal without sign or leading zeros, as netip.ParsePrefix wants. */
	const char *bits = slash + 1;
	size_t n = strlen(bits);
	if (n == 0 || n > 3 || (n > 1 && bits[0] == '0'))
		return false;
	int v = 0;
	for (size_t i = 0; i < n; i++) {
		if (bits[i] < '0' || bits[i] > '9')
			return false;
		v = v * 10 + (bits[i] - '0');
	}
	return v <= max_bits;
}

static int check_address(const char *prefix, const char *key, const char *value, bool want_prefix,
			 char **ret_msg)
{
	if (value[0] == '\0')
		return 0;
	if (want_prefix ? is_prefix(value) : is_address(value))
		return 0;
	_cleanup_free_ char *path = join_path(prefix, key);
	if (!path)
		return -ENOMEM;
	return fail(ret_msg, path, "\"%s\" is not a valid %s", value,
		    want_prefix ? "address/prefix" : "IP address");
}

/* ---- the structure ---- */

static int parse_route(json_t *v, const char *path, struct apf_route *rt, char **ret_msg)
{
	json_t *o;
	int r = as_object(v, path, &o, ret_msg);
	if (r < 0)
		return r;
	if (!o) {
		/* A null element is a zero route, as in Go. */
		if (str_set(&rt->dst, "") < 0 || str_set(&rt->gw, "") < 0 ||
		    str_set(&rt->dev, "") < 0)
			return -ENOMEM;
		return 0;
	}
	int protocol = 0, scope = 0;
	if ((r = get_string(o, path, "dst", &rt->dst, ret_msg)) < 0 ||
	    (r = check_address(path, "dst", rt->dst, true, ret_msg)) < 0 ||
	    (r = get_string(o, path, "gw", &rt->gw, ret_msg)) < 0 ||
	    (r = check_address(path, "gw", rt->gw, false, ret_msg)) < 0 ||
	    (r = get_string(o, path, "dev", &rt->dev, ret_msg)) < 0 ||
	    (r = get_enum(o, path, "protocol", route_protocols, ELEMENTSOF(route_protocols),
			  &protocol, ret_msg)) < 0 ||
	    (r = get_enum(o, path, "scope", route_scopes, ELEMENTSOF(route_scopes), &scope,
			  ret_msg)) < 0)
		return r;
	rt->protocol = protocol;
	rt->scope = scope;
	return 0;
}

static int parse_neighbor(json_t *v, const char *path, struct apf_neighbor *nb, char **ret_msg)
{
	json_t *o;
	int r = as_object(v, path, &o, ret_msg);
	if (r < 0)
		return r;
	if (!o) {
		if (str_set(&nb->ip, "") < 0 || str_set(&nb->hw_addr, "") < 0 ||
		    str_set(&nb->dev, "") < 0)
			return -ENOMEM;
		return 0;
	}
	int state = 0;
	if ((r = get_string(o, path, "ip", &nb->ip, ret_msg)) < 0 ||
	    (r = check_address(path, "ip", nb->ip, false, ret_msg)) < 0 ||
	    (r = get_string(o, path, "hw-addr", &nb->hw_addr, ret_msg)) < 0 ||
	    (r = get_string(o, path, "dev", &nb->dev, ret_msg)) < 0 ||
	    (r = get_enum(o, path, "state", neighbor_states, ELEMENTSOF(neighbor_states), &state,
			  ret_msg)) < 0)
		return r;
	nb->state = state;
	return 0;
}

static int parse_routes(json_t *pn, const char *prefix, struct apf_pod_network *net, char **ret_msg)
{
	json_t *arr;
	int r = get_array(pn, prefix, "routes", &arr, ret_msg);
	if (r < 0 || !arr || json_array_size(arr) == 0)
		return r;
	net->routes = calloc(json_array_size(arr), sizeof(*net->routes));
	if (!net->routes)
		return -ENOMEM;
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v)
	{
		_cleanup_free_ char *path = str_printf("%s.routes[%zu]", prefix, i);
		if (!path)
			return -ENOMEM;
		/* Count first so apf_config_done frees a partly filled entry. */
		net->n_routes = i + 1;
		r = parse_route(v, path, &net->routes[i], ret_msg);
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_neighbors(json_t *pn, const char *prefix, struct apf_pod_network *net,
			   char **ret_msg)
{
	json_t *arr;
	int r = get_array(pn, prefix, "neighbors", &arr, ret_msg);
	if (r < 0 || !arr || json_array_size(arr) == 0)
		return r;
	net->neighbors = calloc(json_array_size(arr), sizeof(*net->neighbors));
	if (!net->neighbors)
		return -ENOMEM;
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v)
	{
		_cleanup_free_ char *path = str_printf("%s.neighbors[%zu]", prefix, i);
		if (!path)
			return -ENOMEM;
		net->n_neighbors = i + 1;
		r = parse_neighbor(v, path, &net->neighbors[i], ret_msg);
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_pod_network(json_t *root, struct apf_pod_network *net, char **ret_msg)
{
	static const char prefix[] = "pod-network";
	_cleanup_(json_decrefp) json_t *empty = NULL;
	json_t *pn;
	int r = as_object(member(root, prefix), prefix, &pn, ret_msg);
	if (r < 0)
		return r;
	if (!pn) {
		/* Absent: parse an empty object so the strings become "" and the rest zero. */
		pn = empty = json_object();
		if (!pn)
			return -ENOMEM;
	}
	if ((r = get_string(pn, prefix, "podip", &net->podip, ret_msg)) < 0 ||
	    (r = check_address(prefix, "podip", net->podip, true, ret_msg)) < 0 ||
	    (r = get_string(pn, prefix, "pod-hw-addr", &net->pod_hw_addr, ret_msg)) < 0 ||
	    (r = get_string(pn, prefix, "interface", &net->interface, ret_msg)) < 0 ||
	    (r = get_string(pn, prefix, "worker-node-ip", &net->worker_node_ip, ret_msg)) < 0 ||
	    (r = check_address(prefix, "worker-node-ip", net->worker_node_ip, true, ret_msg)) < 0 ||
	    (r = get_string(pn, prefix, "tunnel-type", &net->tunnel_type, ret_msg)) < 0 ||
	    (r = parse_routes(pn, prefix, net, ret_msg)) < 0 ||
	    (r = parse_neighbors(pn, prefix, net, ret_msg)) < 0 ||
	    (r = get_int(pn, prefix, "mtu", 0, 65535, &net->mtu, ret_msg)) < 0 ||
	    (r = get_int(pn, prefix, "index", INT64_MIN, INT64_MAX, &net->index, ret_msg)) < 0 ||
	    (r = get_int(pn, prefix, "vxlan-port", 0, 65535, &net->vxlan_port, ret_msg)) < 0 ||
	    (r = get_int(pn, prefix, "vxlan-id", 0, (1 << 24) - 1, &net->vxlan_id, ret_msg)) < 0 ||
	    (r = get_bool(pn, prefix, "dedicated", &net->dedicated, ret_msg)) < 0 ||
	    (r = get_bool(pn, prefix, "external-net-via-pod-vm", &net->external_net_via_pod_vm,
			  ret_msg)) < 0)
		return r;
	return 0;
}

static int parse_cipher_suites(json_t *root, struct apf_config *c, char **ret_msg)
{
	static const char key[] = "tls-cipher-suites";
	json_t *arr;
	int r = get_array(root, "", key, &arr, ret_msg);
	if (r < 0 || !arr)
		return r;
	c->tls_cipher_suites = calloc(json_array_size(arr) + 1, sizeof(char *));
	if (!c->tls_cipher_suites)
		return -ENOMEM;
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v)
	{
		_cleanup_free_ char *path = str_printf("%s[%zu]", key, i);
		if (!path)
			return -ENOMEM;
		if (!json_is_string(v))
			return fail(ret_msg, path, "expected a string, got %s", type_name(v));
		r = get_string_value(v, path, &c->tls_cipher_suites[i], ret_msg);
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_root(json_t *root, struct apf_config *c, char **ret_msg)
{
	int r;
	if ((r = parse_pod_network(root, &c->pod_network, ret_msg)) < 0 ||
	    (r = get_string(root, "", "pod-namespace", &c->pod_namespace, ret_msg)) < 0 ||
	    (r = get_string(root, "", "pod-name", &c->pod_name, ret_msg)) < 0 ||
	    (r = get_string(root, "", "tls-server-key", &c->tls_server_key, ret_msg)) < 0 ||
	    (r = get_string(root, "", "tls-server-cert", &c->tls_server_cert, ret_msg)) < 0 ||
	    (r = get_string(root, "", "tls-client-ca", &c->tls_client_ca, ret_msg)) < 0 ||
	    (r = get_string(root, "", "tls-min-version", &c->tls_min_version, ret_msg)) < 0 ||
	    (r = parse_cipher_suites(root, c, ret_msg)) < 0)
		return r;
	return 0;
}

int apf_config_parse(const char *text, size_t len, struct apf_config *ret, char **ret_msg)
{
	*ret = (struct apf_config){0};
	json_error_t jerr;
	/* NULs inside strings are valid JSON; they are refused per key where they matter. */
	_cleanup_(json_decrefp) json_t *root =
	    json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	if (!root) {
		if (ret_msg) {
			free(*ret_msg);
			*ret_msg = str_printf("invalid JSON at line %d column %d: %s", jerr.line,
					      jerr.column, jerr.text);
		}
		return -EINVAL;
	}
	int r;
	if (json_is_null(root)) {
		/* Go leaves the struct untouched for "null"; every member reads as empty. */
		json_t *empty = json_object();
		if (!empty)
			return -ENOMEM;
		r = parse_root(empty, ret, ret_msg);
		json_decref(empty);
	} else if (!json_is_object(root)) {
		if (ret_msg) {
			free(*ret_msg);
			*ret_msg = str_printf("expected a JSON object, got %s", type_name(root));
		}
		r = -EINVAL;
	} else
		r = parse_root(root, ret, ret_msg);
	if (r < 0) {
		apf_config_done(ret);
		if (r == -ENOMEM && ret_msg && !*ret_msg)
			*ret_msg = str_dup("out of memory");
	}
	return r;
}

int apf_config_load(const char *path, struct apf_config *ret, char **ret_msg)
{
	_cleanup_secret_ char *text = NULL;
	size_t len = 0;
	*ret = (struct apf_config){0};
	/* read_file_bounded reads in 4 KiB steps and refuses a file within the last step below
	 * its bound; ask for one step more and enforce the exact bound here. */
	int r = read_file_bounded(path, APF_CONFIG_MAX_BYTES + 4096, &text, &len);
	if (r >= 0 && len > APF_CONFIG_MAX_BYTES)
		r = -EFBIG;
	if (r < 0) {
		if (ret_msg) {
			free(*ret_msg);
			*ret_msg = r == -EFBIG ? str_printf("%s: larger than %u bytes", path,
							    APF_CONFIG_MAX_BYTES)
					       : str_printf("%s: %s", path, strerror(-r));
		}
		return r;
	}
	_cleanup_free_ char *msg = NULL;
	r = apf_config_parse(text, len, ret, &msg);
	if (r < 0 && ret_msg) {
		free(*ret_msg);
		*ret_msg = str_printf("%s: %s", path, msg ? msg : strerror(-r));
	}
	/* The text holds the server key; free_secret wipes up to the first NUL only. */
	if (text)
		explicit_bzero(text, len);
	return r;
}

void apf_config_done(struct apf_config *c)
{
	if (!c)
		return;
	netns_pod_network_done(&c->pod_network);
	free(c->pod_namespace);
	free(c->pod_name);
	free_secret(c->tls_server_key);
	free(c->tls_server_cert);
	free(c->tls_client_ca);
	free(c->tls_min_version);
	strv_free(c->tls_cipher_suites);
	*c = (struct apf_config){0};
}

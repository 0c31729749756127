/* adaptor/podnet.c: the worker's half of the pod network (WIRE.md 6.1, 6.2): what the pod netns
 * looks like, and the tunnel that carries its traffic to the pod VM. */
#include <inttypes.h>
#include <net/if.h>
#include <unistd.h>

#include "podnet.h"

#define HOST_VXLAN_MAX 5

static int failf(char **ret_msg, int r, const char *fmt, ...) _printf_(3, 4);
static int failf(char **ret_msg, int r, const char *fmt, ...)
{
	if (ret_msg) {
		va_list ap;
		va_start(ap, fmt);
		_cleanup_free_ char *what = str_vprintf(fmt, ap);
		va_end(ap);
		free(*ret_msg);
		*ret_msg = str_printf("%s: %s", what ? what : "pod network", strerror(-r));
	}
	return r;
}

/* An error whose text is the whole message (the exact texts of WIRE.md 6.1). */
static int fail_text(char **ret_msg, int r, const char *fmt, ...) _printf_(3, 4);
static int fail_text(char **ret_msg, int r, const char *fmt, ...)
{
	if (ret_msg) {
		va_list ap;
		va_start(ap, fmt);
		free(*ret_msg);
		*ret_msg = str_vprintf(fmt, ap);
		va_end(ap);
	}
	return r;
}

/* ---- inspection (6.1) ---- */

static int inspect_host(const struct podnet_params *p, struct netns_pod_network *ret,
			char **ret_msg)
{
	_cleanup_(netns_freep) struct netns *host = NULL;
	int r = netns_open(NULL, &host);
	if (r < 0)
		return failf(ret_msg, r, "netlink in the host namespace");
	_cleanup_free_ char *primary = NULL;
	r = netns_default_route(host, &primary, NULL);
	if (r < 0 && str_empty(p->host_interface))
		return failf(ret_msg, r, "finding the host's primary interface");
	const char *dev = str_empty(p->host_interface) ? primary : p->host_interface;
	ret->dedicated = !str_empty(p->host_interface) && !str_eq(p->host_interface, primary);
	_cleanup_strv_free_ char **addrs = NULL;
	r = netns_link_ipv4_addrs(host, dev, &addrs);
	if (r < 0)
		return failf(ret_msg, r, "reading the addresses of host interface %s", dev);
	if (!addrs[0])
		return fail_text(ret_msg, -EADDRNOTAVAIL, "no IPv4 address found on %s", dev);
	return str_set(&ret->worker_node_ip, addrs[0]);
}

static int append_route(struct netns_pod_network *n, const char *dst, const char *gw,
			const char *dev)
{
	struct netns_route *v = realloc(n->routes, (n->n_routes + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	n->routes = v;
	struct netns_route *e = &v[n->n_routes++];
	*e = (struct netns_route){.dst = str_dup(dst), .gw = str_dup(gw), .dev = str_dup(dev)};
	return e->dst && e->gw && e->dev ? 0 : -ENOMEM;
}

static int inspect_pod(const char *path, const struct podnet_params *p,
		       struct netns_pod_network *ret, char **ret_msg)
{
	_cleanup_(netns_freep) struct netns *pod = NULL;
	int r = netns_open(path, &pod);
	if (r < 0)
		return failf(ret_msg, r, "opening netns %s", path);
	_cleanup_free_ char *gw = NULL;
	if ((r = netns_default_route(pod, &ret->interface, &gw)) < 0)
		return failf(ret_msg, r, "finding the default route of netns %s", path);
	const char *dev = ret->interface;
	_cleanup_strv_free_ char **addrs = NULL;
	if ((r = netns_link_ipv4_addrs(pod, dev, &addrs)) < 0)
		return failf(ret_msg, r, "reading the addresses of %s of netns %s", dev, path);
	if (!addrs[0])
		return fail_text(ret_msg, -EADDRNOTAVAIL, "no IPv4 address found on %s of netns %s",
				 dev, path);
	if (addrs[1])
		return fail_text(ret_msg, -EINVAL,
				 "more than one IPv4 addresses found on %s of netns %s", dev, path);
	if ((r = str_set(&ret->podip, addrs[0])) < 0)
		return r;
	char mac[18];
	uint32_t mtu;
	if ((r = netns_link_info(pod, dev, mac, &mtu)) < 0)
		return failf(ret_msg, r, "reading %s of netns %s", dev, path);
	if ((r = str_set(&ret->pod_hw_addr, mac)) < 0)
		return r;
	ret->mtu = mtu;
	if ((r = netns_link_routes(pod, dev, &ret->routes, &ret->n_routes)) < 0)
		return failf(ret_msg, r, "reading the routes of netns %s", path);
	for (char *const *c = p->pod_subnet_cidrs; c && *c; c++)
		if (!str_empty(*c) && (r = append_route(ret, *c, gw, dev)) < 0)
			return r;
	if ((r = netns_link_neighbors(pod, dev, &ret->neighbors, &ret->n_neighbors)) < 0)
		return failf(ret_msg, r, "reading the neighbours of netns %s", path);
	return 0;
}

int podnet_inspect(const char *netns_path, const struct podnet_params *p,
		   struct netns_pod_network *ret, char **ret_msg)
{
	*ret = (struct netns_pod_network){0};
	if (str_empty(netns_path))
		return fail_text(ret_msg, -EINVAL, "no network namespace path for the pod");
	int r = inspect_host(p, ret, ret_msg);
	if (r >= 0)
		r = inspect_pod(netns_path, p, ret, ret_msg);
	if (r >= 0)
		r = str_set(&ret->tunnel_type,
			    str_empty(p->tunnel_type) ? "vxlan" : p->tunnel_type);
	if (r < 0) {
		netns_pod_network_done(ret);
		if (r == -ENOMEM && ret_msg && !*ret_msg)
			*ret_msg = str_dup("out of memory");
		return r;
	}
	ret->index = p->index;
	ret->vxlan_id =
	    (p->vxlan_min_id > 0 ? p->vxlan_min_id : PODNET_DEFAULT_VXLAN_MIN_ID) + p->index;
	ret->vxlan_port = p->vxlan_port > 0 ? p->vxlan_port : PODNET_DEFAULT_VXLAN_PORT;
	ret->external_net_via_pod_vm = p->external_net_via_pod_vm;
	return 0;
}

/* ---- setup and teardown (6.2) ---- */

static uint16_t port_of(const struct netns_pod_network *n)
{
	return n->vxlan_port > 0 && n->vxlan_port <= 65535 ? (uint16_t)n->vxlan_port
							   : PODNET_DEFAULT_VXLAN_PORT;
}

static int teardown_pod(const struct netns_pod_network *n, const char *netns_path, char **ret_msg)
{
	if (str_empty(netns_path) || access(netns_path, F_OK) < 0)
		return 0; /* the pod netns is gone, and vxlan1 went with it */
	_cleanup_(netns_freep) struct netns *pod = NULL;
	int r = netns_open(netns_path, &pod);
	if (r == -ENOENT || r == -EINVAL)
		return 0; /* not (or no longer) a namespace */
	if (r < 0)
		return failf(ret_msg, r, "opening netns %s", netns_path);
	if (!str_empty(n->interface) && (r = netns_tc_redirect_del(pod, n->interface)) < 0)
		return failf(ret_msg, r, "removing the redirect of %s", n->interface);
	if ((r = netns_tc_redirect_del(pod, PODNET_POD_VXLAN)) < 0)
		return failf(ret_msg, r, "removing the redirect of %s", PODNET_POD_VXLAN);
	r = netns_link_del(pod, PODNET_POD_VXLAN);
	if (r < 0 && r != -ENODEV)
		return failf(ret_msg, r, "deleting %s in %s", PODNET_POD_VXLAN, netns_path);
	return 0;
}

int podnet_teardown(const struct netns_pod_network *n, const char *vm_ip, const char *netns_path,
		    const char *iptables, char **ret_msg)
{
	/* Keep going after a failure so one stuck piece does not strand the others. */
	int r = teardown_pod(n, netns_path, ret_msg);
	if (!str_empty(vm_ip) && n->vxlan_id > 0) {
		struct netns_iptables ipt = {.binary = iptables, .netns_fd = -1};
		_cleanup_free_ char *msg = NULL;
		int q = netns_iptables_del(&ipt, vm_ip, (uint32_t)n->vxlan_id, port_of(n), &msg);
		if (q < 0 && r >= 0) {
			r = q;
			if (ret_msg) {
				free(*ret_msg);
				*ret_msg =
				    str_printf("iptables rules: %s", msg ? msg : strerror(-q));
			}
		}
	}
	return r;
}

/* Create ppvxlan<N> in the host namespace, N the first name not taken; another worker thread
 * may be between create and move with the same N, so EEXIST moves on to the next. */
static int create_host_vxlan(struct netns *host, const struct netns_pod_network *n,
			     const char *vm_ip, char ret_name[IFNAMSIZ])
{
	for (int i = 1; i <= HOST_VXLAN_MAX; i++) {
		snprintf(ret_name, IFNAMSIZ, "ppvxlan%d", i);
		struct netns_vxlan vx = {.name = ret_name,
					 .remote = vm_ip,
					 .id = (uint32_t)n->vxlan_id,
					 .port = port_of(n)};
		int r = netns_vxlan_add(host, &vx);
		if (r != -EEXIST)
			return r;
	}
	return -EBUSY;
}

static int setup(const struct netns_pod_network *n, const char *vm_ip, const char *netns_path,
		 const char *iptables, char **ret_msg)
{
	struct netns_iptables ipt = {.binary = iptables, .netns_fd = -1};
	_cleanup_free_ char *msg = NULL;
	int r = netns_iptables_add(&ipt, vm_ip, (uint32_t)n->vxlan_id, port_of(n), &msg);
	if (r < 0) {
		if (ret_msg) {
			free(*ret_msg);
			*ret_msg = str_printf("iptables rules: %s", msg ? msg : strerror(-r));
		}
		return r;
	}
	_cleanup_(netns_freep) struct netns *host = NULL, *pod = NULL;
	if ((r = netns_open(NULL, &host)) < 0)
		return failf(ret_msg, r, "netlink in the host namespace");
	if ((r = netns_open(netns_path, &pod)) < 0)
		return failf(ret_msg, r, "opening netns %s", netns_path);
	if ((r = teardown_pod(n, netns_path, ret_msg)) < 0)
		return r;
	char name[IFNAMSIZ];
	if ((r = create_host_vxlan(host, n, vm_ip, name)) < 0)
		return failf(ret_msg, r, "creating a vxlan device to %s id %" PRId64, vm_ip,
			     n->vxlan_id);
	if ((r = netns_link_move(host, name, pod, PODNET_POD_VXLAN)) < 0) {
		(void)netns_link_del(host, name);
		return failf(ret_msg, r, "moving %s into %s as %s", name, netns_path,
			     PODNET_POD_VXLAN);
	}
	if ((r = netns_link_set_up(pod, PODNET_POD_VXLAN)) < 0)
		return failf(ret_msg, r, "setting %s up", PODNET_POD_VXLAN);
	if ((r = netns_tc_redirect_add(pod, n->interface, PODNET_POD_VXLAN)) < 0)
		return failf(ret_msg, r, "redirecting %s to %s", n->interface, PODNET_POD_VXLAN);
	if ((r = netns_tc_redirect_add(pod, PODNET_POD_VXLAN, n->interface)) < 0)
		return failf(ret_msg, r, "redirecting %s to %s", PODNET_POD_VXLAN, n->interface);
	return 0;
}

int podnet_setup(const struct netns_pod_network *n, const char *vm_ip, const char *netns_path,
		 const char *iptables, char **ret_msg)
{
	if (str_empty(vm_ip) || str_empty(netns_path) || str_empty(n->interface) ||
	    n->vxlan_id <= 0)
		return fail_text(ret_msg, -EINVAL,
				 "pod network setup needs the VM IP, the pod netns, the pod "
				 "interface and a VNI");
	int r = setup(n, vm_ip, netns_path, iptables, ret_msg);
	if (r < 0)
		(void)podnet_teardown(n, vm_ip, netns_path, iptables, NULL);
	return r;
}

/* ---- apf.json (4.2) ---- */

static int set_new(json_t *o, const char *key, json_t *v)
{
	return json_object_set_new(o, key, v) < 0 ? -ENOMEM : 0;
}

static const char *empty_if_null(const char *s)
{
	return s ? s : "";
}

int podnet_to_json(const struct netns_pod_network *n, json_t **ret)
{
	_cleanup_(json_decrefp) json_t *o = json_object();
	_cleanup_(json_decrefp) json_t *routes = json_array();
	_cleanup_(json_decrefp) json_t *neighbors = json_array();
	if (!o || !routes || !neighbors)
		return -ENOMEM;
	for (size_t i = 0; i < n->n_routes; i++) {
		const struct netns_route *rt = &n->routes[i];
		json_t *e = json_object();
		if (!e || json_array_append_new(routes, e) < 0)
			return -ENOMEM;
		int r = 0;
		r = r ?: set_new(e, "dst", json_string(empty_if_null(rt->dst)));
		r = r ?: set_new(e, "gw", json_string(empty_if_null(rt->gw)));
		r = r ?: set_new(e, "dev", json_string(empty_if_null(rt->dev)));
		const char *proto = netns_route_protocol_to_string(rt->protocol);
		if (r == 0 && *proto)
			r = set_new(e, "protocol", json_string(proto));
		if (r == 0 && rt->scope != NETNS_ROUTE_SCOPE_UNIVERSE)
			r = set_new(e, "scope",
				    json_string(netns_route_scope_to_string(rt->scope)));
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < n->n_neighbors; i++) {
		const struct netns_neighbor *nb = &n->neighbors[i];
		json_t *e = json_object();
		if (!e || json_array_append_new(neighbors, e) < 0)
			return -ENOMEM;
		int r = 0;
		r = r ?: set_new(e, "ip", json_string(empty_if_null(nb->ip)));
		r = r ?: set_new(e, "hw-addr", json_string(empty_if_null(nb->hw_addr)));
		r = r ?: set_new(e, "dev", json_string(empty_if_null(nb->dev)));
		r = r
			?: set_new(e, "state",
				   json_string(netns_neighbor_state_to_string(nb->state)));
		if (r < 0)
			return r;
	}
	int r = 0;
	r = r ?: set_new(o, "podip", json_string(empty_if_null(n->podip)));
	r = r ?: set_new(o, "pod-hw-addr", json_string(empty_if_null(n->pod_hw_addr)));
	r = r ?: set_new(o, "interface", json_string(empty_if_null(n->interface)));
	r = r ?: set_new(o, "worker-node-ip", json_string(empty_if_null(n->worker_node_ip)));
	r = r ?: set_new(o, "tunnel-type", json_string(empty_if_null(n->tunnel_type)));
	r = r ?: set_new(o, "routes", TAKE_PTR(routes));
	r = r ?: set_new(o, "neighbors", TAKE_PTR(neighbors));
	r = r ?: set_new(o, "mtu", json_integer(n->mtu));
	r = r ?: set_new(o, "index", json_integer(n->index));
	if (r == 0 && n->vxlan_port != 0)
		r = set_new(o, "vxlan-port", json_integer(n->vxlan_port));
	if (r == 0 && n->vxlan_id != 0)
		r = set_new(o, "vxlan-id", json_integer(n->vxlan_id));
	r = r ?: set_new(o, "dedicated", json_boolean(n->dedicated));
	r = r ?: set_new(o, "external-net-via-pod-vm", json_boolean(n->external_net_via_pod_vm));
	if (r < 0)
		return r;
	*ret = TAKE_PTR(o);
	return 0;
}

static int read_string(json_t *o, const char *key, char **ret)
{
	json_t *v = json_object_get(o, key);
	if (v && !json_is_null(v) && !json_is_string(v))
		return -EINVAL;
	return str_set(ret, v && json_is_string(v) ? json_string_value(v) : "");
}

static int read_int(json_t *o, const char *key, int64_t *ret)
{
	json_t *v = json_object_get(o, key);
	if (v && !json_is_null(v) && !json_is_integer(v))
		return -EINVAL;
	*ret = v && json_is_integer(v) ? json_integer_value(v) : 0;
	return 0;
}

static int read_bool(json_t *o, const char *key, bool *ret)
{
	json_t *v = json_object_get(o, key);
	if (v && !json_is_null(v) && !json_is_boolean(v))
		return -EINVAL;
	*ret = v && json_is_true(v);
	return 0;
}

/* Names to kernel values, by asking the writer's to_string for each candidate. */
static int read_enum(json_t *o, const char *key, const char *(*to_string)(int), const int *values,
		     size_t n_values, int *ret)
{
	_cleanup_free_ char *s = NULL;
	int r = read_string(o, key, &s);
	if (r < 0)
		return r;
	if (!*s) {
		*ret = 0;
		return 0;
	}
	for (size_t i = 0; i < n_values; i++)
		if (str_eq(to_string(values[i]), s)) {
			*ret = values[i];
			return 0;
		}
	return -EINVAL;
}

static const char *protocol_name(int v)
{
	return netns_route_protocol_to_string(v);
}
static const char *scope_name(int v)
{
	return netns_route_scope_to_string(v);
}
static const char *state_name(int v)
{
	return netns_neighbor_state_to_string(v);
}

static const int protocols[] = {2, 3, 4, 16};
static const int scopes[] = {0, 200, 253, 254, 255};
static const int states[] = {0, 1, 2, 4, 8, 0x10, 0x20, 0x40, 0x80};

static int read_lists(json_t *o, struct netns_pod_network *n)
{
	json_t *routes = json_object_get(o, "routes"), *neighbors = json_object_get(o, "neighbors");
	if ((routes && !json_is_null(routes) && !json_is_array(routes)) ||
	    (neighbors && !json_is_null(neighbors) && !json_is_array(neighbors)))
		return -EINVAL;
	size_t nr = json_is_array(routes) ? json_array_size(routes) : 0;
	size_t nn = json_is_array(neighbors) ? json_array_size(neighbors) : 0;
	if (nr && !(n->routes = calloc(nr, sizeof(*n->routes))))
		return -ENOMEM;
	if (nn && !(n->neighbors = calloc(nn, sizeof(*n->neighbors))))
		return -ENOMEM;
	int r;
	for (size_t i = 0; i < nr; i++) {
		json_t *e = json_array_get(routes, i);
		struct netns_route *rt = &n->routes[i];
		n->n_routes = i + 1;
		int protocol = 0, scope = 0;
		if (!json_is_object(e))
			return -EINVAL;
		if ((r = read_string(e, "dst", &rt->dst)) < 0 ||
		    (r = read_string(e, "gw", &rt->gw)) < 0 ||
		    (r = read_string(e, "dev", &rt->dev)) < 0 ||
		    (r = read_enum(e, "protocol", protocol_name, protocols, ELEMENTSOF(protocols),
				   &protocol)) < 0 ||
		    (r = read_enum(e, "scope", scope_name, scopes, ELEMENTSOF(scopes), &scope)) < 0)
			return r;
		rt->protocol = protocol;
		rt->scope = scope;
	}
	for (size_t i = 0; i < nn; i++) {
		json_t *e = json_array_get(neighbors, i);
		struct netns_neighbor *nb = &n->neighbors[i];
		n->n_neighbors = i + 1;
		int state = 0;
		if (!json_is_object(e))
			return -EINVAL;
		if ((r = read_string(e, "ip", &nb->ip)) < 0 ||
		    (r = read_string(e, "hw-addr", &nb->hw_addr)) < 0 ||
		    (r = read_string(e, "dev", &nb->dev)) < 0 ||
		    (r = read_enum(e, "state", state_name, states, ELEMENTSOF(states), &state)) < 0)
			return r;
		nb->state = state;
	}
	return 0;
}

int podnet_from_json(json_t *o, struct netns_pod_network *ret)
{
	*ret = (struct netns_pod_network){0};
	if (!json_is_object(o))
		return -EINVAL;
	int r;
	if ((r = read_string(o, "podip", &ret->podip)) < 0 ||
	    (r = read_string(o, "pod-hw-addr", &ret->pod_hw_addr)) < 0 ||
	    (r = read_string(o, "interface", &ret->interface)) < 0 ||
	    (r = read_string(o, "worker-node-ip", &ret->worker_node_ip)) < 0 ||
	    (r = read_string(o, "tunnel-type", &ret->tunnel_type)) < 0 ||
	    (r = read_lists(o, ret)) < 0 || (r = read_int(o, "mtu", &ret->mtu)) < 0 ||
	    (r = read_int(o, "index", &ret->index)) < 0 ||
	    (r = read_int(o, "vxlan-port", &ret->vxlan_port)) < 0 ||
	    (r = read_int(o, "vxlan-id", &ret->vxlan_id)) < 0 ||
	    (r = read_bool(o, "dedicated", &ret->dedicated)) < 0 ||
	    (r = read_bool(o, "external-net-via-pod-vm", &ret->external_net_via_pod_vm)) < 0) {
		netns_pod_network_done(ret);
		return r;
	}
	return 0;
}

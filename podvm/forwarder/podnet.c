/* podvm/forwarder: the pod VM's half of the pod network (WIRE.md 6.3): a vxlan tunnel to the
 * worker, moved into the pod netns and dressed as the pod's interface on the worker. */
#include <time.h>

#include "forwarder.h"

#define DEFAULT_VXLAN_PORT 4789
#define VXLAN_NAME "vxlan0"

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

static void sleep_ns(int64_t ns)
{
	struct timespec ts = {.tv_sec = ns / NSEC_PER_SEC, .tv_nsec = ns % NSEC_PER_SEC};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Poll until the VM has an IPv4 default route, then until its device has an address: cloud
 * VMs may still be running DHCP when the forwarder starts. */
static int wait_primary(struct netns *root, const struct forwarder_podnet_options *o,
			char **ret_dev, char **ret_msg)
{
	int64_t timeout = o->wait_timeout_ns > 0 ? o->wait_timeout_ns : FORWARDER_PODNET_WAIT_NS;
	int64_t interval = o->poll_interval_ns > 0 ? o->poll_interval_ns : NSEC_PER_SEC;
	_cleanup_free_ char *dev = NULL;
	int64_t deadline = now_ns() + timeout;
	int r;
	for (;;) {
		r = netns_default_route(root, &dev, NULL);
		if (r >= 0)
			break;
		if (r != -ENETUNREACH)
			return failf(ret_msg, r, "reading the default route");
		if (now_ns() >= deadline)
			return failf(ret_msg, -ETIMEDOUT, "waiting for the primary interface");
		sleep_ns(interval);
	}
	deadline = now_ns() + timeout;
	for (;;) {
		_cleanup_strv_free_ char **addrs = NULL;
		r = netns_link_ipv4_addrs(root, dev, &addrs);
		if (r < 0 && r != -ENODEV)
			return failf(ret_msg, r, "reading the addresses of %s", dev);
		if (r >= 0 && addrs[0])
			break;
		if (now_ns() >= deadline)
			return failf(ret_msg, -ETIMEDOUT, "waiting for an IPv4 address on %s", dev);
		sleep_ns(interval);
	}
	*ret_dev = TAKE_PTR(dev);
	return 0;
}

static bool is_host_prefix(const char *prefix)
{
	const char *slash = strchr(prefix, '/');
	return !slash || strcmp(slash, "/32") == 0;
}

static int build_pod_side(struct netns *pod, const struct netns_pod_network *n, char **ret_msg)
{
	const char *dev = n->interface;
	int64_t mtu = n->mtu > 0 ? MIN(n->mtu, FORWARDER_PODNET_MAX_MTU) : FORWARDER_PODNET_MAX_MTU;
	int r;
	if (!str_empty(n->pod_hw_addr) && (r = netns_link_set_mac(pod, dev, n->pod_hw_addr)) < 0)
		return failf(ret_msg, r, "setting MAC %s on %s", n->pod_hw_addr, dev);
	if ((r = netns_link_set_mtu(pod, dev, (uint32_t)mtu)) < 0)
		return failf(ret_msg, r, "setting MTU %" PRId64 " on %s", mtu, dev);
	if ((r = netns_addr_add(pod, dev, n->podip)) < 0)
		return failf(ret_msg, r, "adding %s to %s", n->podip, dev);
	if ((r = netns_link_set_up(pod, dev)) < 0)
		return failf(ret_msg, r, "setting %s up", dev);
	/* Point-to-point CNIs give the pod a /24 but route everything through a gateway route;
	 * the kernel's subnet route would shadow that, and the model re-adds it if it was real. */
	if (!is_host_prefix(n->podip) && (r = netns_route_del_subnet(pod, dev, n->podip)) < 0)
		return failf(ret_msg, r, "deleting the subnet route of %s", n->podip);
	/* A gateway must be reachable when its route is added, so direct routes go first. */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < n->n_routes; i++) {
			const struct netns_route *rt = &n->routes[i];
			if (str_empty(rt->gw) != (pass == 0))
				continue;
			if ((r = netns_route_add(pod, rt, dev)) < 0)
				return failf(ret_msg, r, "adding route %s via %s", rt->dst,
					     str_empty(rt->gw) ? dev : rt->gw);
		}
	for (size_t i = 0; i < n->n_neighbors; i++)
		if ((r = netns_neighbor_add(pod, &n->neighbors[i], dev)) < 0)
			return failf(ret_msg, r, "adding neighbour %s", n->neighbors[i].ip);
	return 0;
}

int forwarder_podnet_setup(const struct netns_pod_network *n,
			   const struct forwarder_podnet_options *o, char **ret_msg)
{
	static const struct forwarder_podnet_options defaults = {0};
	if (!o)
		o = &defaults;
	const char *pod_path = o->pod_netns ? o->pod_netns : FORWARDER_DEFAULT_POD_NETNS;
	if (str_empty(n->podip) || str_empty(n->interface) || str_empty(n->worker_node_ip) ||
	    n->vxlan_id <= 0)
		return failf(ret_msg, -EINVAL,
			     "pod-network needs podip, interface, worker-node-ip and vxlan-id");
	if (!str_empty(n->tunnel_type) && !str_eq(n->tunnel_type, "vxlan"))
		return failf(ret_msg, -EOPNOTSUPP, "tunnel type \"%s\"", n->tunnel_type);
	uint16_t port = n->vxlan_port > 0 ? (uint16_t)n->vxlan_port : DEFAULT_VXLAN_PORT;

	_cleanup_(netns_freep) struct netns *root = NULL;
	int r = netns_open(NULL, &root);
	if (r < 0)
		return failf(ret_msg, r, "netlink");
	_cleanup_free_ char *primary = NULL;
	if ((r = wait_primary(root, o, &primary, ret_msg)) < 0)
		return r;

	struct netns_iptables ipt = {.binary = o->iptables, .netns_fd = -1};
	_cleanup_free_ char *msg = NULL;
	r = netns_iptables_add(&ipt, n->worker_node_ip, (uint32_t)n->vxlan_id, port, &msg);
	if (r < 0) {
		if (ret_msg) {
			free(*ret_msg);
			*ret_msg = str_printf("iptables rules: %s", msg ? msg : strerror(-r));
		}
		return r;
	}

	if (!netns_is_mounted(pod_path) && (r = netns_create(pod_path)) < 0)
		return failf(ret_msg, r, "creating the pod netns %s", pod_path);
	_cleanup_(netns_freep) struct netns *pod = NULL;
	if ((r = netns_open(pod_path, &pod)) < 0)
		return failf(ret_msg, r, "opening %s", pod_path);
	int ifindex;
	if (netns_link_index(pod, n->interface, &ifindex) >= 0)
		return 0; /* built by an earlier run of the forwarder in this VM */

	/* A vxlan0 left by an earlier run that failed half-way. */
	(void)netns_link_del(root, VXLAN_NAME);
	_cleanup_free_ char *worker = str_dup(n->worker_node_ip);
	if (!worker)
		return -ENOMEM;
	char *slash = strchr(worker, '/');
	if (slash)
		*slash = '\0';
	struct netns_vxlan vx = {
	    .name = VXLAN_NAME, .remote = worker, .id = (uint32_t)n->vxlan_id, .port = port};
	if ((r = netns_vxlan_add(root, &vx)) < 0)
		return failf(ret_msg, r, "creating %s to %s id %" PRId64, VXLAN_NAME, worker,
			     n->vxlan_id);
	if ((r = netns_link_move(root, VXLAN_NAME, pod, n->interface)) < 0) {
		(void)netns_link_del(root, VXLAN_NAME);
		return failf(ret_msg, r, "moving %s into %s as %s", VXLAN_NAME, pod_path,
			     n->interface);
	}
	return build_pod_side(pod, n, ret_msg);
}

/* lib/netns: network namespaces and netlink (libnl-route-3) for pod networking (WIRE.md 6): the
 * pod network model shared by the adaptor and the forwarder, running code inside a namespace,
 * reading links/addresses/routes/neighbours, vxlan devices, tc redirects, and the iptables raw
 * rules that keep the tunnel's UDP traffic out of conntrack. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#include "base/base.h"

/* ---- the pod network model (apf.json "pod-network", WIRE.md 4.2) ---- */

/* Kernel values (RTPROT_*, RT_SCOPE_*, NUD_*) so they go to netlink unchanged. */
enum netns_route_protocol {
	NETNS_ROUTE_PROTOCOL_UNSPEC = 0,
	NETNS_ROUTE_PROTOCOL_KERNEL = 2,
	NETNS_ROUTE_PROTOCOL_BOOT = 3,
	NETNS_ROUTE_PROTOCOL_STATIC = 4,
	NETNS_ROUTE_PROTOCOL_DHCP = 16,
};
enum netns_route_scope {
	NETNS_ROUTE_SCOPE_UNIVERSE = 0,
	NETNS_ROUTE_SCOPE_SITE = 200,
	NETNS_ROUTE_SCOPE_LINK = 253,
	NETNS_ROUTE_SCOPE_HOST = 254,
	NETNS_ROUTE_SCOPE_NOWHERE = 255,
};
enum netns_neighbor_state {
	NETNS_NEIGHBOR_NONE = 0x00,
	NETNS_NEIGHBOR_INCOMPLETE = 0x01,
	NETNS_NEIGHBOR_REACHABLE = 0x02,
	NETNS_NEIGHBOR_STALE = 0x04,
	NETNS_NEIGHBOR_DELAY = 0x08,
	NETNS_NEIGHBOR_PROBE = 0x10,
	NETNS_NEIGHBOR_FAILED = 0x20,
	NETNS_NEIGHBOR_NOARP = 0x40,
	NETNS_NEIGHBOR_PERMANENT = 0x80,
};

struct netns_route {
	char *dst; /* prefix, "0.0.0.0/0" = default */
	char *gw;  /* address or "" */
	char *dev;
	enum netns_route_protocol protocol;
	enum netns_route_scope scope;
};

struct netns_neighbor {
	char *ip;
	char *hw_addr;
	char *dev;
	enum netns_neighbor_state state;
};

struct netns_pod_network {
	char *podip;          /* address/prefix */
	char *pod_hw_addr;    /* aa:bb:cc:dd:ee:ff */
	char *interface;      /* pod interface name on the worker */
	char *worker_node_ip; /* address/prefix */
	char *tunnel_type;    /* "vxlan" */
	struct netns_route *routes;
	size_t n_routes;
	struct netns_neighbor *neighbors;
	size_t n_neighbors;
	int64_t mtu;
	int64_t index;
	int64_t vxlan_port;
	int64_t vxlan_id;
	bool dedicated;
	bool external_net_via_pod_vm;
};

/* Free every member and zero the struct; accepts NULL and zeroed structs. */
void netns_pod_network_done(struct netns_pod_network *n);
static inline void netns_pod_network_donep(struct netns_pod_network *n)
{
	netns_pod_network_done(n);
}

/* apf.json spellings (WIRE.md 4.2): "" for an unspecified protocol, "universe" for scope 0,
 * "none" for state 0; "" for values without a name. */
const char *netns_route_protocol_to_string(enum netns_route_protocol p);
const char *netns_route_scope_to_string(enum netns_route_scope s);
const char *netns_neighbor_state_to_string(enum netns_neighbor_state s);

/* ---- namespaces ---- */

/* Run fn(userdata) on a new thread that has joined the network namespace at path (NULL: the
 * calling thread's own), wait for it and return its result. The calling thread never changes
 * namespace, so this is safe from any thread. -errno when the namespace cannot be entered. */
int netns_run(const char *path, int (*fn)(void *userdata), void *userdata);

/* Like `ip netns add`: a new network namespace bind-mounted on path (the parent directory is
 * created and made a shared mount, as iproute2 does), with lo up. -EEXIST when path exists. */
int netns_create(const char *path);
/* True when path is a mounted network namespace. */
bool netns_is_mounted(const char *path);
/* Unmount and unlink path; 0 when it does not exist. */
int netns_remove(const char *path);

/* ---- netlink in one namespace ---- */

/* A route netlink socket bound to one network namespace, plus an fd of that namespace. */
struct netns;

/* path NULL: the calling thread's namespace. */
int netns_open(const char *path, struct netns **ret);
struct netns *netns_free(struct netns *n);
static inline void netns_freep(struct netns **n)
{
	netns_free(*n);
}
/* The namespace's fd (owned by n). */
int netns_get_fd(const struct netns *n);

/* ifindex of name: -ENODEV when absent. */
int netns_link_index(struct netns *n, const char *name, int *ret_ifindex);
/* The device of the IPv4 default route in the main table (several: same name stem, lowest
 * number), and its gateway ("" when none); -ENETUNREACH when there is no default route.
 * ret_gw may be NULL. */
int netns_default_route(struct netns *n, char **ret_dev, char **ret_gw);
/* The IPv4 addresses of a link as "a.b.c.d/len", in kernel order; NULL-terminated (empty list
 * when none). */
int netns_link_ipv4_addrs(struct netns *n, const char *link, char ***ret);
/* MAC ("aa:bb:cc:dd:ee:ff", 18 bytes) and MTU of a link; either out-parameter may be NULL. */
int netns_link_info(struct netns *n, const char *link, char ret_mac[18], uint32_t *ret_mtu);
/* IPv4 main-table unicast routes through link whose protocol is static, boot, dhcp or kernel. */
int netns_link_routes(struct netns *n, const char *link, struct netns_route **ret, size_t *ret_n);
/* IPv4 permanent neighbours of link. */
int netns_link_neighbors(struct netns *n, const char *link, struct netns_neighbor **ret,
			 size_t *ret_n);
void netns_routes_free(struct netns_route *r, size_t n);
void netns_neighbors_free(struct netns_neighbor *nb, size_t n);

struct netns_vxlan {
	const char *name;
	const char *remote;   /* IPv4 address of the far end */
	const char *local;    /* optional source address */
	const char *underlay; /* optional device to send through */
	uint32_t id;          /* VNI */
	uint16_t port;        /* UDP destination port */
};
/* Create a vxlan device (down). -EEXIST when the name is taken. */
int netns_vxlan_add(struct netns *n, const struct netns_vxlan *v);
/* Move link into the namespace of target, named new_name there (NULL keeps the name). */
int netns_link_move(struct netns *n, const char *link, const struct netns *target,
		    const char *new_name);
int netns_link_set_mac(struct netns *n, const char *link, const char *mac);
int netns_link_set_mtu(struct netns *n, const char *link, uint32_t mtu);
int netns_link_set_up(struct netns *n, const char *link);
/* -ENODEV when absent. */
int netns_link_del(struct netns *n, const char *link);
/* Add "a.b.c.d/len" to link. */
int netns_addr_add(struct netns *n, const char *link, const char *prefix);
/* Delete the route the kernel added for the subnet of "a.b.c.d/len" on link; 0 when absent. */
int netns_route_del_subnet(struct netns *n, const char *link, const char *prefix);
/* Add a route through dev (NULL: the route's own dev). gw "" = directly connected. */
int netns_route_add(struct netns *n, const struct netns_route *rt, const char *dev);
/* Add (or replace) a neighbour on dev (NULL: the entry's own dev); state 0 = permanent. */
int netns_neighbor_add(struct netns *n, const struct netns_neighbor *nb, const char *dev);

/* Ingress qdisc (ffff:) on from with a match-all u32 filter (all protocols) whose action is a
 * mirred egress redirect to to (stolen). */
int netns_tc_redirect_add(struct netns *n, const char *from, const char *to);
/* Delete from's ingress qdisc and so its filters; 0 when the link or qdisc is absent. */
int netns_tc_redirect_del(struct netns *n, const char *from);
/* Whether link has an ingress qdisc (for checks and tests). */
int netns_tc_has_ingress(struct netns *n, const char *link, bool *ret);

/* ---- iptables raw rules (WIRE.md 6.2, 6.3) ---- */

struct netns_iptables {
	const char *binary; /* NULL: "iptables" from PATH */
	int netns_fd;       /* namespace to run in; -1: the calling thread's */
};

/* Run `binary -w args...` (no shell), capturing up to 64 KiB of stdout (ret_out may be NULL)
 * and stderr for *ret_msg on failure. Returns the exit status (>= 0) or -errno when it cannot
 * run. */
int netns_iptables_run(const struct netns_iptables *ipt, const char *const *args, char **ret_out,
		       char **ret_msg);
/* The NOTRACK rules for the tunnel to peer (an address; a "/len" suffix is ignored): chain
 * peerpod-OUTPUT (jump from OUTPUT, -d peer) and peerpod-PREROUTING (jump from PREROUTING,
 * -s peer) with comment "peerpod [vni:<vni>]", udp dport port. Chains and jumps are created on
 * first use, rules appended once. -EIO with *ret_msg when iptables fails. */
int netns_iptables_add(const struct netns_iptables *ipt, const char *peer, uint32_t vni,
		       uint16_t port, char **ret_msg);
/* Remove those rules, then the chains and jumps when the chains are empty; 0 when absent. */
int netns_iptables_del(const struct netns_iptables *ipt, const char *peer, uint32_t vni,
		       uint16_t port, char **ret_msg);

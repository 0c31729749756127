/* adaptor/podnet.h: the worker's half of the pod network (WIRE.md 6.1, 6.2): inspecting the pod
 * netns at CreateVM, the vxlan tunnel and tc redirects at StartVM, their removal at StopVM, and
 * the apf.json "pod-network" object. All functions block and are safe on worker threads. */
#pragma once

#include <jansson.h>

#include "netns/netns.h"

#define PODNET_DEFAULT_VXLAN_PORT 4789
#define PODNET_DEFAULT_VXLAN_MIN_ID 555000
/* The tunnel's name inside the pod netns (WIRE.md 6.2). */
#define PODNET_POD_VXLAN "vxlan1"

struct podnet_params {
	const char *host_interface;    /* -host-interface; NULL or "": the default-route device */
	char *const *pod_subnet_cidrs; /* POD_SUBNET_CIDRS, NULL-terminated; may be NULL */
	int64_t index;                 /* the sandbox's pod counter value */
	int64_t vxlan_min_id;          /* 0: PODNET_DEFAULT_VXLAN_MIN_ID */
	int64_t vxlan_port;            /* 0: PODNET_DEFAULT_VXLAN_PORT */
	const char *tunnel_type;       /* NULL or "": "vxlan" */
	bool external_net_via_pod_vm;
};

/* WIRE.md 6.1: fill *ret (zeroed first; netns_pod_network_done frees it) from the host's
 * namespace (the calling thread's) and the pod netns at netns_path. On failure *ret_msg
 * (malloc'd) is e.g. "no IPv4 address found on eth0 of netns /var/run/netns/cni-1". */
int podnet_inspect(const char *netns_path, const struct podnet_params *p,
		   struct netns_pod_network *ret, char **ret_msg);

/* WIRE.md 6.2, in the calling thread's namespace (the host's): NOTRACK rules for vm_ip, vxlan
 * ppvxlan<N> (N = first free of 1..5) to vm_ip with id n->vxlan_id and port n->vxlan_port,
 * moved into netns_path as vxlan1 and up, and the tc redirects between n->interface and
 * vxlan1. vm_ip is the instance's first address, its second when n->dedicated. iptables NULL
 * = "iptables" from PATH. A previous setup of the same pod netns is replaced. On failure what
 * was made is removed again and *ret_msg says which step failed. */
int podnet_setup(const struct netns_pod_network *n, const char *vm_ip, const char *netns_path,
		 const char *iptables, char **ret_msg);

/* Undo podnet_setup: the redirects and qdiscs, vxlan1, the rules, and the chains and jumps
 * once empty. Needs only n->interface, n->vxlan_id and n->vxlan_port of the model. Idempotent:
 * a gone netns, device or rule counts as removed. vm_ip NULL or "" skips the rules. */
int podnet_teardown(const struct netns_pod_network *n, const char *vm_ip, const char *netns_path,
		    const char *iptables, char **ret_msg);

/* The apf.json "pod-network" object (WIRE.md 4.2): every key present except vxlan-port and
 * vxlan-id when 0; route protocol omitted when unspecified and scope when universe. */
int podnet_to_json(const struct netns_pod_network *n, json_t **ret);
/* Read back an object written by podnet_to_json (e.g. from state.json or the worker's copy of
 * apf.json, for teardown after a restart). Missing keys read as empty/zero; wrong types and
 * unknown enum names are -EINVAL. *ret is zeroed first and freed on failure. */
int podnet_from_json(json_t *o, struct netns_pod_network *ret);

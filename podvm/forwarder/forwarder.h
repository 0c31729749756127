/* podvm/forwarder: the pieces of agent-protocol-forwarder (WIRE.md 4) that main.c wires together
 * and the unit tests and fuzz targets use directly: apf.json, the two request rewrites, the
 * command-line options, TLS material, the listening socket, the relay to the kata-agent and the
 * systemd readiness notification. */
#pragma once

#include <sys/socket.h>

#include "base/base.h"
#include "config/config.h"
#include "loop/loop.h"
#include "netns/netns.h"
#include "tls/tls.h"
#include "ttrpc/ttrpc.h"

/* ---- apf.json (WIRE.md 4.2) ---- */

#define APF_CONFIG_MAX_BYTES (1u << 20)

/* The pod network model is lib/netns's, shared with the adaptor; the apf_ names stay for the
 * callers that use them. */
#define apf_pod_network netns_pod_network
#define apf_route netns_route
#define apf_neighbor netns_neighbor
#define apf_route_protocol netns_route_protocol
#define apf_route_scope netns_route_scope
#define apf_neighbor_state netns_neighbor_state
#define APF_ROUTE_PROTOCOL_UNSPEC NETNS_ROUTE_PROTOCOL_UNSPEC
#define APF_ROUTE_PROTOCOL_KERNEL NETNS_ROUTE_PROTOCOL_KERNEL
#define APF_ROUTE_PROTOCOL_BOOT NETNS_ROUTE_PROTOCOL_BOOT
#define APF_ROUTE_PROTOCOL_STATIC NETNS_ROUTE_PROTOCOL_STATIC
#define APF_ROUTE_PROTOCOL_DHCP NETNS_ROUTE_PROTOCOL_DHCP
#define APF_ROUTE_SCOPE_UNIVERSE NETNS_ROUTE_SCOPE_UNIVERSE
#define APF_ROUTE_SCOPE_SITE NETNS_ROUTE_SCOPE_SITE
#define APF_ROUTE_SCOPE_LINK NETNS_ROUTE_SCOPE_LINK
#define APF_ROUTE_SCOPE_HOST NETNS_ROUTE_SCOPE_HOST
#define APF_ROUTE_SCOPE_NOWHERE NETNS_ROUTE_SCOPE_NOWHERE
#define APF_NEIGHBOR_NONE NETNS_NEIGHBOR_NONE
#define APF_NEIGHBOR_INCOMPLETE NETNS_NEIGHBOR_INCOMPLETE
#define APF_NEIGHBOR_REACHABLE NETNS_NEIGHBOR_REACHABLE
#define APF_NEIGHBOR_STALE NETNS_NEIGHBOR_STALE
#define APF_NEIGHBOR_DELAY NETNS_NEIGHBOR_DELAY
#define APF_NEIGHBOR_PROBE NETNS_NEIGHBOR_PROBE
#define APF_NEIGHBOR_FAILED NETNS_NEIGHBOR_FAILED
#define APF_NEIGHBOR_NOARP NETNS_NEIGHBOR_NOARP
#define APF_NEIGHBOR_PERMANENT NETNS_NEIGHBOR_PERMANENT

struct apf_config {
	struct apf_pod_network pod_network;
	char *pod_namespace; /* Kubernetes namespace of the pod */
	char *pod_name;
	char *tls_server_key;     /* secret PEM; wiped on free */
	char *tls_server_cert;    /* PEM */
	char *tls_client_ca;      /* PEM */
	char *tls_min_version;    /* "VersionTLS12", "VersionTLS13" or "" */
	char **tls_cipher_suites; /* NULL-terminated; NULL when absent */
};

/* Parse apf.json text (len bytes, need not be NUL-terminated). Any valid JSON object is accepted
 * (null = empty), unknown keys are ignored, missing or null members read as empty/zero; wrong
 * types, malformed addresses and unknown enum strings fail with -EINVAL and *ret_msg (malloc'd)
 * naming the key, e.g. "pod-network.routes[1].scope: unknown value \"galaxy\"". An empty enum
 * string reads as the zero value (unspecified/universe/none). On failure *ret is left empty. */
int apf_config_parse(const char *text, size_t len, struct apf_config *ret, char **ret_msg);
/* Read path (at most APF_CONFIG_MAX_BYTES) and parse it. Read errors return -errno with a
 * message naming the path. */
int apf_config_load(const char *path, struct apf_config *ret, char **ret_msg);
/* Free every member (the key wiped) and zero the struct; accepts NULL and zeroed structs. */
void apf_config_done(struct apf_config *c);
static inline void apf_config_donep(struct apf_config *c)
{
	apf_config_done(c);
}

const char *apf_route_protocol_to_string(enum apf_route_protocol p); /* "" for unspec */
const char *apf_route_scope_to_string(enum apf_route_scope s);       /* "universe" for 0 */
const char *apf_neighbor_state_to_string(enum apf_neighbor_state s);

/* ---- the rewrites (WIRE.md 4.1) ---- */

#define FORWARDER_AGENT_SERVICE "grpc.AgentService"
#define FORWARDER_DEFAULT_POD_NETNS "/run/netns/podns"

/* Decide and apply the rewrite of one request payload. service/method are not NUL-terminated.
 * Returns 0 when the payload is to be relayed untouched (other calls, or nothing to change), 1
 * when the rewritten payload was appended to out, <0 when the payload cannot be decoded
 * (-EBADMSG; *ret_message, malloc'd, says why; the call must then fail with INVALID_ARGUMENT) or
 * on -ENOMEM/-EMSGSIZE. pod_netns NULL means FORWARDER_DEFAULT_POD_NETNS. */
int forwarder_rewrite(const char *service, size_t slen, const char *method, size_t mlen,
		      const uint8_t *payload, size_t len, const char *pod_netns, struct buf *out,
		      char **ret_message);

/* ---- command-line options ---- */

#define FORWARDER_DEFAULT_LISTEN "0.0.0.0:15150"
#define FORWARDER_DEFAULT_AGENT_SOCKET "/run/kata-containers/agent.sock"
#define FORWARDER_DEFAULT_CONFIG "/run/peerpod/apf.json"

struct forwarder_options {
	char *listen;
	char *kata_agent_socket;
	char *config;
	char *pod_namespace;
	char *cert_file;
	char *cert_key;
	char *ca_cert_file;
	bool disable_tls;
	char *tls_min_version;
	char **tls_cipher_suites;
	char *log_format;
	char *log_level;
	int64_t agent_dial_timeout_ns;
};

extern const struct config_option forwarder_option_table[];
extern const size_t forwarder_n_options;
/* Free the members; accepts NULL. */
void forwarder_options_done(struct forwarder_options *o);

/* ---- TLS (WIRE.md 4.3) ---- */

/* The server's TLS material after applying the precedence of WIRE.md 4.2: -cert-file/-cert-key
 * over tls-server-cert/-key, -ca-cert-file over tls-client-ca, -tls-min-version and
 * -tls-cipher-suites over the file's. */
struct forwarder_tls {
	X509 *cert;
	EVP_PKEY *key;
	X509 *client_ca;
	int min_version;
	char **cipher_suites; /* copy, NULL-terminated, or NULL */
};
/* Resolve and load. Missing pieces, unreadable files, bad PEM and bad versions/suites: -EINVAL
 * (or the load error) with *ret_msg saying which, and *ret zeroed. */
int forwarder_tls_load(const struct forwarder_options *o, const struct apf_config *cfg,
		       struct forwarder_tls *ret, char **ret_msg);
void forwarder_tls_done(struct forwarder_tls *t);
int forwarder_tls_ctx_new(const struct forwarder_tls *t, SSL_CTX **ret, char **ret_msg);

/* ---- listening socket ---- */

/* Split "host:port", ":port" or "[v6]:port" (port 0..65535). *ret_host is malloc'd, "" for
 * ":port". -EINVAL on anything else. */
int forwarder_parse_listen(const char *address, char **ret_host, uint16_t *ret_port);
/* Bind and listen (SO_REUSEADDR, non-blocking, close-on-exec). ":port" listens on all IPv6 and
 * IPv4 addresses when the host has IPv6, else on 0.0.0.0. */
int forwarder_listen_socket(const char *address, int *ret_fd, char **ret_msg);
/* The bound port of a socket, for logs and tests. */
int forwarder_socket_port(int fd, uint16_t *ret_port);

/* ---- the relay ---- */

struct forwarder;

/* Serve agent calls arriving on listen_fd (ownership passes, also on failure), with tls (may be
 * NULL = plain; the relay takes its own reference), relaying them to the agent socket, dialled
 * within agent_dial_timeout_ns (bounded also by the queued calls' deadlines), rewriting with
 * pod_netns. */
int forwarder_new(struct loop *l, int listen_fd, SSL_CTX *tls, const char *agent_socket,
		  int64_t agent_dial_timeout_ns, const char *pod_netns, struct forwarder **ret);
struct forwarder *forwarder_free(struct forwarder *f);
static inline void forwarder_freep(struct forwarder **f)
{
	forwarder_free(*f);
}
/* Counters for logs and tests. */
uint64_t forwarder_n_rewritten(const struct forwarder *f);
uint64_t forwarder_n_rejected(const struct forwarder *f);

/* ---- pod network (WIRE.md 6.3) ---- */

#define FORWARDER_PODNET_WAIT_NS (180 * NSEC_PER_SEC)
#define FORWARDER_PODNET_MAX_MTU 1450

struct forwarder_podnet_options {
	const char *pod_netns;    /* NULL: FORWARDER_DEFAULT_POD_NETNS; created when missing */
	const char *iptables;     /* NULL: "iptables" from PATH */
	int64_t wait_timeout_ns;  /* per wait; 0: FORWARDER_PODNET_WAIT_NS */
	int64_t poll_interval_ns; /* 0: 1 s */
};

/* Build the pod network from n in the calling thread's network namespace (the VM's root):
 * wait for the primary interface and its IPv4 address, add the NOTRACK rules for the worker,
 * create vxlan0 to worker-node-ip, move it into the pod netns as n->interface with the pod's
 * MAC, MTU min(mtu, 1450), podip, routes and neighbours. On failure *ret_msg (malloc'd) says
 * which step failed; what was made is left for the operator to inspect (the VM is
 * single-purpose and a failed pod VM is deleted). -ETIMEDOUT when a wait runs out. */
int forwarder_podnet_setup(const struct netns_pod_network *n,
			   const struct forwarder_podnet_options *o, char **ret_msg);

/* ---- systemd readiness ---- */

/* Send one datagram (e.g. "READY=1") to the $NOTIFY_SOCKET address: an absolute path or an
 * abstract name starting with '@'. NULL/empty address: nothing to do, 0. Other forms: -EINVAL. */
int forwarder_sd_notify(const char *address, const char *state);

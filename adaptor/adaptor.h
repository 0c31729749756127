/* adaptor/adaptor.h: the cloud-api-adaptor's modules, shared by its main.c and the unit tests.
 * Everything here runs on the loop thread unless it says otherwise. */
#pragma once

#include <jansson.h>

#include "base/base.h"
#include "config/config.h"
#include "loop/loop.h"
#include "metrics/metrics.h"
#include "netns/netns.h"
#include "provider.h"
#include "ttrpc/ttrpc.h"

struct ssl_ctx_st;

/* ---- settings (WIRE.md 8.1) ---- */

struct adaptor_settings {
	char *socket;
	char *pods_dir;
	char *data_dir;
	char *pause_image;
	uint16_t forwarder_port;
	char *ca_cert_file;
	char *cert_file;
	char *cert_key;
	bool tls_skip_verify;
	char *tls_min_version;
	char **tls_cipher_suites;
	int64_t proxy_timeout_ns;
	char *tunnel_type;
	uint16_t vxlan_port;
	int64_t vxlan_min_id;
	char *host_interface;
	char *initdata;
	bool cloud_config_verify;
	int64_t peerpods_limit_per_node;
	bool enable_scratch_space;
	bool ext_network_via_podvm;
	char **pod_subnet_cidrs;
	bool disable_tls;
	bool print_config;
	char *node_name;
	char *log_format;
	char *log_level;
	uint64_t worker_pool_size;
	uint16_t probe_port;
	/* Kubernetes (adaptor/k8s.c) */
	char *kubeconfig;
	char *k8s_serviceaccount_dir;
	char *k8s_api_server;
	char *k8s_service_host, *k8s_service_port; /* KUBERNETES_SERVICE_HOST/PORT */
	char *pod_uid;
	char *runtimeclass_name;
	int64_t k8s_timeout_ns;
	int64_t k8s_retry_interval_ns;
	int64_t health_interval_ns;
};

extern const struct config_option adaptor_options[];
extern const size_t adaptor_n_options;

/* ---- naming (WIRE.md 2.2, 4.4) ---- */

#define ANNOTATION_SANDBOX_NAME "io.kubernetes.cri.sandbox-name"
#define ANNOTATION_SANDBOX_NAMESPACE "io.kubernetes.cri.sandbox-namespace"
#define ANNOTATION_MACHINE_TYPE "io.katacontainers.config.hypervisor.machine_type"
#define ANNOTATION_IMAGE "io.katacontainers.config.hypervisor.image"
#define ANNOTATION_VCPUS "io.katacontainers.config.hypervisor.default_vcpus"
#define ANNOTATION_MEMORY "io.katacontainers.config.hypervisor.default_memory"
#define ANNOTATION_INITDATA "io.katacontainers.config.hypervisor.cc_init_data"
#define ANNOTATION_GPUS "io.katacontainers.config.hypervisor.default_gpus"
#define ANNOTATION_GPU_MODEL "io.katacontainers.config.hypervisor.default_gpu_model"

/* "podvm-<pod>-<sid8>", at most 63 characters. malloc'd. */
char *naming_instance_name(const char *pod_name, const char *sandbox_id);
/* Pod name from the sandbox-name annotation, handling CRI-O's k8s_<pod>_<ns>_<uid>_<n>. */
char *naming_pod_name(const char *sandbox_name);
/* A sandbox id is used in file names: 1..128 of [A-Za-z0-9_.-], not "." or "..". */
bool naming_sandbox_id_valid(const char *sid);
/* Annotation integers: non-integers count as 0 (WIRE.md 2.2). */
unsigned naming_annotation_uint(const char *value);

/* ---- certificates: the adaptor's CA and client identity ---- */

struct adaptor_certs;

/* Load or create (and persist in data_dir, keys 0600) the CA and the client certificate, or use
 * the operator's files. Builds the client SSL_CTX (NULL when disable_tls). */
int certs_init(const struct adaptor_settings *s, struct adaptor_certs **ret, char **ret_msg);
struct adaptor_certs *certs_free(struct adaptor_certs *c);
/* Whether server certificates can be issued (not with an operator CA file). */
bool certs_can_issue(const struct adaptor_certs *c);
/* Issue a pod VM's server certificate: PEMs of key (free with free_secret) and cert. */
int certs_issue_server(struct adaptor_certs *c, const char *instance_name, char **ret_key_pem,
		       char **ret_cert_pem);
/* PEM of the client certificate, sent as tls-client-ca; NULL with operator certificates. */
const char *certs_client_ca_pem(const struct adaptor_certs *c);
struct ssl_ctx_st *certs_client_ctx(const struct adaptor_certs *c);
/* Name to verify the server against: the instance name, or "podvm-server" with an operator CA. */
const char *certs_server_name(const struct adaptor_certs *c, const char *instance_name);

/* ---- sandboxes ---- */

enum sandbox_state {
	SANDBOX_CREATED,  /* CreateVM done, no instance */
	SANDBOX_STARTING, /* create_instance or the first dial in progress */
	SANDBOX_RUNNING,  /* instance up, agent proxy serving */
	SANDBOX_STOPPING, /* delete_instance in progress */
};
const char *sandbox_state_to_string(enum sandbox_state s);
int sandbox_state_from_string(const char *s, enum sandbox_state *ret);

struct sandbox;
typedef void (*proxy_connected_fn)(struct sandbox *sb, int error, const char *detail);

struct sandbox {
	/* persisted */
	char *id;
	char *pod_name;
	char *pod_namespace;
	char *netns;
	char *instance_name;
	char *instance_id;
	char *ips[2];
	size_t n_ips;
	char *image;
	char *machine_type;
	unsigned vcpus;
	unsigned memory_mib;
	unsigned gpus;
	int64_t index;
	enum sandbox_state state;
	/* the pod network (WIRE.md 6), when the provider has one and the shim gave a netns */
	bool has_podnet;
	struct netns_pod_network podnet;
	bool podnet_active; /* tunnel and redirects are set up on this node */
	char *vm_ip;        /* the tunnel's remote end */
	char *peerpod_name; /* the PeerPod holding our finalizer (in pod_namespace) */

	/* runtime */
	struct adaptor *adaptor;
	char *dir; /* <pods-dir>/<id> */
	char *agent_socket;
	struct ttrpc_relay *relay;
	struct ttrpc_dial *dial;
	proxy_connected_fn on_connected; /* StartVM waiting for the first upstream */
	struct ttrpc_call *start_call;
	struct ttrpc_call **stop_calls;
	size_t n_stop_calls;
	int64_t start_deadline_ns;
	int64_t start_begin_ns; /* when StartVM began, for the duration histogram */
	bool stop_requested;
	bool start_cancelled;
	char *pod_label; /* "<ns>/<name>" for logs */
	struct sandbox *next;
};

/* Serialise / parse state.json (bounded, strict about types; unknown keys ignored). */
int sandbox_to_json(const struct sandbox *sb, char **ret);
int sandbox_from_json(const char *json, size_t len, struct sandbox **ret, char **ret_msg);
struct sandbox *sandbox_free(struct sandbox *sb);

/* ---- the daemon ---- */

struct adaptor {
	struct loop *loop;
	struct adaptor_settings *settings;
	const struct provider_ops *provider_ops;
	struct provider *provider;
	struct adaptor_certs *certs;
	struct ttrpc_server *server;
	struct sandbox *sandboxes;
	size_t n_sandboxes;
	int64_t next_index;
	struct info_waiter *info_waiters;
	unsigned pending_deletes; /* delete_instance works in flight, for draining */
	bool draining;
	bool reconciled;         /* the restore's sweep of the provider's instances has run */
	struct adaptor_k8s *k8s; /* NULL: no cluster configured */
	/* /readyz: the provider's last check (adaptor/metrics.c) */
	bool provider_unreachable;
	char *provider_check_msg;
	bool provider_check_running;
	struct loop_source *health_timer;
	/* metrics (NULL handles are ignored by lib/metrics) */
	struct metrics_counter *startvm_ok, *startvm_failed, *stopvm_total;
	struct metrics_histogram *startvm_seconds;
};

/* Register the adaptor's metrics (adaptor/metrics.c) and its probes on the server; the probes
 * also start the periodic provider check behind /readyz. */
int adaptor_metrics_init(struct adaptor *a, struct metrics_registry *r);
void adaptor_probes_init(struct adaptor *a, struct metrics_server *s);
void adaptor_probes_done(struct adaptor *a);

/* ---- Kubernetes (adaptor/k8s.c, WIRE.md 8.5, 8.7) ---- */

struct adaptor_k8s;
/* Set a->k8s when NODE_NAME is set and a cluster is configured (KUBECONFIG / -kubeconfig, or
 * the in-cluster service account); leaves it NULL otherwise. <0 only for a broken config. */
int adaptor_k8s_init(struct adaptor *a);
void adaptor_k8s_free(struct adaptor *a);
/* After adaptor_restore: advertise the node resource, clean up PeerPods left behind, retry
 * pending finalizer releases, and start checking this node's pods for /startup. */
int adaptor_k8s_start(struct adaptor *a);
/* At drain: remove the node resource if this instance still owns it (on the worker pool). */
void adaptor_k8s_shutdown(struct adaptor *a);
bool adaptor_k8s_startup_ready(const struct adaptor *a, char *reason, size_t size);
/* Record a PeerPod whose finalizer could not be released; persisted and retried. */
void adaptor_k8s_release_later(struct adaptor *a, const char *ns, const char *name);
/* Worker-thread calls for a pod's start and stop (one attempt each, bounded by -k8s-timeout).
 * pod_prepare: the pod's uid and its merged image pull secrets as auth.json (NULL when none;
 * free with free_secret); *ret_msg is a warning about what was skipped. */
int adaptor_k8s_pod_prepare(struct adaptor_k8s *k, const char *ns, const char *pod, char **ret_uid,
			    char **ret_auth_json, char **ret_msg);
int adaptor_k8s_peerpod_create(struct adaptor_k8s *k, const char *ns, const char *pod,
			       const char *pod_uid, const char *instance_id, char **ret_name,
			       struct pp_error **reterr);
/* Merge one image pull secret (kubernetes.io/dockerconfigjson or dockercfg) into an "auths"
 * object; registries already there are kept. 0 for other secret types; -EINVAL if malformed. */
int adaptor_k8s_merge_secret(const json_t *secret, json_t *auths);
/* 0 when the finalizer is released or the PeerPod is gone. */
int adaptor_k8s_peerpod_release(struct adaptor_k8s *k, const char *ns, const char *name,
				struct pp_error **reterr);

int adaptor_new(struct loop *loop, struct adaptor_settings *settings,
		const struct provider_ops *ops, struct provider *provider,
		struct adaptor_certs *certs, struct adaptor **ret);
struct adaptor *adaptor_free(struct adaptor *a);
/* Reload sandboxes from the pods dir, re-listen on their agent sockets, and sweep the
 * provider's instances that no sandbox owns (asynchronously, on the worker pool). */
int adaptor_restore(struct adaptor *a);
/* Register the hypervisor and podvminfo services and listen on the socket. */
int adaptor_serve(struct adaptor *a);
/* Stop accepting; returns true when nothing is in flight any more. */
bool adaptor_drain(struct adaptor *a);

struct sandbox *adaptor_find_sandbox(struct adaptor *a, const char *id);
/* Write <dir>/state.json atomically. */
int adaptor_save_sandbox(struct adaptor *a, struct sandbox *sb);

/* apf.json for a sandbox (WIRE.md 4.2); key/cert/client-ca may be NULL. */
int adaptor_build_apf_json(const struct adaptor *a, const struct sandbox *sb, const char *key_pem,
			   const char *cert_pem, char **ret);
/* The cloud-config user-data around apf.json (WIRE.md 5.1). */
int adaptor_build_user_data(const struct adaptor *a, const char *apf_json, const char *initdata,
			    char **ret);
/* The same with auth.json (registry credentials; NULL or "" for none). Safe on any thread. */
int adaptor_build_user_data_auth(const struct adaptor *a, const char *apf_json,
				 const char *auth_json, const char *initdata, char **ret);

/* The per-sandbox agent proxy (adaptor/proxy.c). */
int proxy_start(struct sandbox *sb);
void proxy_stop(struct sandbox *sb);
/* Dial the forwarder until deadline_ns; cb runs once with 0 or a negative errno and detail,
 * unless proxy_stop() comes first. */
int proxy_connect(struct sandbox *sb, int64_t deadline_ns, proxy_connected_fn cb);

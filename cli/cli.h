/* peerpodctl internals shared by cli/main.c and the unit tests: argument parsing, the shim-like
 * request builders, result output and the subcommands. */
#pragma once

#include <stdio.h>

#include <jansson.h>

#include "base/base.h"

#define CLI_DEFAULT_SOCKET "/run/peerpod/hypervisor.sock"
#define CLI_SOCKET_ENV "PEERPODCTL_SOCKET"
#define CLI_START_TIMEOUT_NS (600 * NSEC_PER_SEC)
#define CLI_DEFAULT_TIMEOUT_NS (60 * NSEC_PER_SEC)
/* How long lifecycle keeps dialling the agent socket, like the shim's dial_timeout. */
#define CLI_AGENT_DIAL_TIMEOUT_NS (30 * NSEC_PER_SEC)
/* CopyFile carries at most this much data per call (WIRE 3.2). */
#define CLI_COPY_CHUNK_BYTES (1u << 20)
#define CLI_SID_LEN 64

enum {
	CLI_EXIT_OK = 0,
	CLI_EXIT_FAILED = 1,
	CLI_EXIT_USAGE = 2,
};

/* ---- key/value lists (annotations, result fields); order is kept ---- */

struct cli_kv {
	char *key;
	char *value;
};

struct cli_kvs {
	struct cli_kv *items;
	size_t n;
};

void cli_kvs_done(struct cli_kvs *l);
/* Replace the value of an existing key or append a new entry. */
int cli_kvs_set(struct cli_kvs *l, const char *key, const char *value);
const char *cli_kvs_get(const struct cli_kvs *l, const char *key);

/* Split "k=v" at the first '='; the value may contain '=' and may be empty, the key may not.
 * -EINVAL without '=' or with an empty key. */
int cli_annotation_parse(const char *s, char **ret_key, char **ret_value);

/* The nine annotations the shim always sends (WIRE 2.2), with the shim's defaults, pod and
 * namespace filled from the arguments (NULL = ""), then each "k=v" of overrides applied in order.
 * On a malformed override returns -EINVAL and sets *ret_bad to it. */
int cli_annotations_build(const char *pod, const char *ns, char *const *overrides,
			  struct cli_kvs *ret, const char **ret_bad);

/* 64 lowercase hex characters from the kernel's random source. */
int cli_sid_generate(char ret[CLI_SID_LEN + 1]);
bool cli_sid_is_valid(const char *s);

/* Decode hex (upper or lower case, even length) into a malloc'd buffer. */
int cli_hex_decode(const char *s, uint8_t **ret, size_t *ret_len);

/* ---- arguments ---- */

enum cli_opt {
	CLI_OPT_SOCKET,
	CLI_OPT_TIMEOUT,
	CLI_OPT_JSON,
	CLI_OPT_HELP,
	CLI_OPT_VERSION,
	CLI_OPT_ANNOTATION,
	CLI_OPT_NETNS,
	CLI_OPT_POD,
	CLI_OPT_NAMESPACE,
	CLI_OPT_WAIT,
	CLI_OPT_SID,
	CLI_OPT_AGENT_SOCKET,
	CLI_OPT_SANDBOX_ID,
	CLI_OPT_HOSTNAME,
	CLI_OPT_DNS,
	CLI_OPT_ID,
	CLI_OPT_PATH,
	CLI_OPT_SIZE,
	CLI_OPT_ADDRESS,
	CLI_OPT_SERVICE,
	CLI_OPT_METHOD,
	CLI_OPT_PAYLOAD_HEX,
	_CLI_OPT_MAX,
};
#define CLI_OPT_BIT(o) (UINT64_C(1) << (o))
#define CLI_OPTS_GLOBAL                                                                           \
	(CLI_OPT_BIT(CLI_OPT_SOCKET) | CLI_OPT_BIT(CLI_OPT_TIMEOUT) | CLI_OPT_BIT(CLI_OPT_JSON) | \
	 CLI_OPT_BIT(CLI_OPT_HELP) | CLI_OPT_BIT(CLI_OPT_VERSION))

struct cli_args {
	char *socket; /* NULL: $PEERPODCTL_SOCKET, then the default */
	int64_t timeout_ns;
	bool json;
	bool help;
	bool version;
	char **annotations; /* "k=v" as given */
	char *netns;
	char *pod;
	char *ns;
	bool wait;
	char *sid;
	char *agent_socket;
	char *sandbox_id;
	char *hostname;
	char **dns;
	char *id;
	char *path;
	uint64_t size;
	char *address;
	char *service;
	char *method;
	char *payload_hex;
	char **positional; /* subcommand words and, after "--", process arguments */
	size_t n_positional;
	size_t n_before_dashdash; /* positional entries that came before "--" */
	uint64_t set;             /* CLI_OPT_BIT of each option given */
};

/* Options may appear anywhere, as -name, --name, with "=value" or the value in the next
 * argument; booleans also take "=true"/"=false". "--" ends the options. Returns -EINVAL with a
 * malloc'd *ret_msg on a usage error. */
int cli_args_parse(int argc, char *const *argv, struct cli_args *ret, char **ret_msg);
void cli_args_done(struct cli_args *a);
/* -EINVAL with *ret_msg naming the first given option outside `allowed`. */
int cli_args_check(const struct cli_args *a, uint64_t allowed, const char *command, char **ret_msg);
const char *cli_opt_name(enum cli_opt o);

/* ---- results and output ---- */

struct cli_output {
	FILE *out;
	FILE *err;
	bool json;
};

struct cli_result {
	const char *step;    /* NULL for a bare call */
	int code;            /* 0 OK, >0 ttRPC status code */
	const char *message; /* error text, NULL on success */
	bool hide_code;      /* human form: error has no meaningful code (connect failure) */
	bool show_step;      /* human form: "<step> ok <seconds>s  <detail>" instead of detail */
	int64_t duration_ns; /* <0: not measured */
	const char *detail;  /* human form on success; may be NULL */
	const struct cli_kvs *fields; /* extra string members of the JSON object; may be NULL */
};

/* "OK", "NOT_FOUND", ... or "CODE(<n>)" in buf for values without a name. */
const char *cli_code_name(int code, char *buf, size_t size);
/* Map a local failure (negative errno of the client) onto the ttRPC code a gRPC client would
 * report: own deadline -> DEADLINE_EXCEEDED, lost connection -> UNAVAILABLE, ... */
int cli_code_from_errno(int r);

/* One JSON object per result: {"step", "code", "code_name", "message", "duration_ms", fields...};
 * step, message and duration_ms only when set. */
json_t *cli_result_to_json(const struct cli_result *r);
/* Print a result: JSON line on out, or the human form (success on out, "error: ..." on err). */
void cli_output_result(const struct cli_output *o, const struct cli_result *r);

/* CreateVMRequest{id, annotations, networkNamespacePath} as the shim encodes it. */
int cli_create_vm_request_pack(const char *sid, const char *netns, const struct cli_kvs *ann,
			       uint8_t **ret, size_t *ret_len);

/* CreateSandboxRequest{sandbox_id, hostname, dns}. */
int cli_create_sandbox_request_pack(const char *sandbox_id, const char *hostname, char *const *dns,
				    uint8_t **ret, size_t *ret_len);
/* CreateContainerRequest with an OCI spec like the shim's: Root.Path
 * /run/kata-containers/<id>/rootfs, pid/ipc/uts/mount namespaces, the container-type and
 * sandbox-id annotations ("sandbox" when the id is the sandbox id; sandbox_id NULL = id), and the
 * process arguments (NULL or empty: "/pause"). */
int cli_create_container_request_pack(const char *container_id, const char *sandbox_id,
				      char *const *args, uint8_t **ret, size_t *ret_len);

/* ---- commands (return an exit code) ---- */

struct cli_ctx {
	const struct cli_args *args;
	struct cli_output out;
	const char *socket; /* resolved hypervisor socket */
};

/* Parse, resolve defaults and run; the whole program. */
int cli_run(int argc, char *const *argv, FILE *out, FILE *err);
void cli_print_help(FILE *f);

int cli_cmd_version(const struct cli_ctx *c);
int cli_cmd_create(const struct cli_ctx *c);
int cli_cmd_start(const struct cli_ctx *c);
int cli_cmd_stop(const struct cli_ctx *c);
int cli_cmd_info(const struct cli_ctx *c);
int cli_cmd_lifecycle(const struct cli_ctx *c);
int cli_cmd_agent(const struct cli_ctx *c);
int cli_cmd_call(const struct cli_ctx *c);
/* `peerpodctl attest verify|show|bench ...`: its own options (argv[0] is "attest"). */
int cli_attest_run(int argc, char *const *argv, FILE *out, FILE *err);
/* "error: <message> (see peerpodctl <command> --help)" on err; returns CLI_EXIT_USAGE. */
int cli_usage_error(FILE *err, const char *command, const char *fmt, ...) _printf_(3, 4);
/* `peerpodctl manifest generate ...` (cli/manifest.c): argv[0] is "manifest". */
int cli_manifest_run(int argc, char *const *argv, FILE *out, FILE *err);
/* The coordinator commands (cli/coord.c): set, verify, recover, state, atls-cert. */
bool cli_coord_is_command(const char *word);
int cli_coord_run(int argc, char *const *argv, FILE *out, FILE *err);
struct Coordinator__GetManifestsResponse;
/* The checks of `peerpodctl verify` on a GetManifests answer: the manifests (oldest first) chain
 * to the latest transition hash, whose signature verifies with the returned P-384 signing key;
 * the latest manifest equals expected byte for byte (NULL: any) and parses; one initdata
 * document per policy of it, hashing to its digest; root and mesh CA are one PEM certificate
 * each. -EBADMSG with *ret_msg naming the mismatch. */
int cli_coord_check_manifests(const struct Coordinator__GetManifestsResponse *resp,
			      const void *expected, size_t expected_len, char **ret_msg);

/* ---- Kubernetes workloads in YAML files (cli/podyaml.c) ---- */

#define CLI_INITDATA_ANNOTATION "io.katacontainers.config.hypervisor.cc_init_data"
#define CLI_ROLE_ANNOTATION "peerpod.io/coordinator-role"

/* One pod-creating object of a YAML file: a Pod, or the pod template of a Deployment,
 * StatefulSet, DaemonSet, ReplicaSet, Job or CronJob. */
struct cli_workload {
	char *api_version; /* e.g. "apps/v1" */
	char *kind;
	char *namespace; /* "default" when absent */
	char *name;
	char *runtime_class; /* spec.runtimeClassName of the pod (template), or NULL */
	char *initdata;      /* the cc_init_data annotation of the pod (template), or NULL */
	char *role;          /* the CLI_ROLE_ANNOTATION value, or NULL */
};
/* Every workload of a (multi-document) YAML file, in document order; documents of other kinds
 * (Service, ConfigMap, ...) are skipped; a List's items are read. -EINVAL with *ret_msg naming the
 * file and document for malformed YAML or a workload without a name. */
int cli_workloads_from_yaml(const char *path, struct cli_workload **ret, size_t *ret_n,
			    char **ret_msg);
void cli_workloads_free(struct cli_workload *w, size_t n);
/* Larger YAML input is refused with -EFBIG. Aliases, merge keys, duplicate mapping keys and
 * nesting deeper than 128 levels are refused too (-EINVAL). */
#define CLI_YAML_MAX_BYTES (16 * 1024 * 1024)
/* The same on a buffer; name stands for the file in messages. */
int cli_workloads_from_yaml_buffer(const char *data, size_t len, const char *name,
				   struct cli_workload **ret, size_t *ret_n, char **ret_msg);
#define CLI_DEFAULT_RUNTIME_CLASS "kata-remote"
/* The initdata a workload's pod VM will run: its annotation; the default document (WIRE 5.4,
 * plain TOML) for a pod of runtime_class (NULL: CLI_DEFAULT_RUNTIME_CLASS) without one; NULL
 * for other pods (not peer pods, no policy). */
const char *cli_workload_initdata(const struct cli_workload *w, const char *runtime_class);

/* ---- helpers for the commands ---- */

struct ttrpc_sync_client;
struct ProtobufCMessage;

/* Unix socket path as given, "./name" for a bare file name (the sync client reads names without
 * '/' as host:port). malloc'd. */
char *cli_unix_address(const char *path);
/* Pack a protobuf message into a malloc'd buffer (NULL for an empty message). */
int cli_pack(const struct ProtobufCMessage *m, uint8_t **ret, size_t *ret_len);

/* Outcome of one unary call; message malloc'd. */
struct cli_call {
	int code; /* 0, ttRPC code, or mapped local error */
	char *message;
	uint8_t *payload;
	size_t len;
	int64_t duration_ns;
	bool connect_failed;
};
void cli_call_done(struct cli_call *r);
/* Connect (when *client is NULL; dial_timeout_ns > 0 retries a missing or refusing socket until
 * then) and make one call. On connect failure sets connect_failed and message
 * "cannot connect to <address>: <error>". */
void cli_call_run(struct ttrpc_sync_client **client, const char *address, int64_t dial_timeout_ns,
		  const char *service, const char *method, const struct ProtobufCMessage *req,
		  const void *raw, size_t raw_len, int64_t timeout_ns, struct cli_call *ret);
/* Fill a result from a call (code, message, duration). */
void cli_result_from_call(struct cli_result *r, const char *step, const struct cli_call *call);

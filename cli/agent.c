/* peerpodctl: driving an agent socket the way the shim does for one pod (WIRE 3.2), and the
 * generic ttRPC call. */
#include "cli.h"

#include <inttypes.h>
#include <sys/stat.h>

#include "agent.pb-c.h"
#include "health.pb-c.h"
#include "ttrpc/ttrpc.h"

#define AGENT_SERVICE "grpc.AgentService"
#define HEALTH_SERVICE "grpc.Health"

DEFINE_CLEANUP(struct ttrpc_sync_client, ttrpc_sync_client_free)

static int64_t timeout_of(const struct cli_ctx *c)
{
	return (c->args->set & CLI_OPT_BIT(CLI_OPT_TIMEOUT)) ? c->args->timeout_ns
							     : CLI_DEFAULT_TIMEOUT_NS;
}

/* ---- request builders ---- */

int cli_create_sandbox_request_pack(const char *sandbox_id, const char *hostname, char *const *dns,
				    uint8_t **ret, size_t *ret_len)
{
	Grpc__CreateSandboxRequest req = GRPC__CREATE_SANDBOX_REQUEST__INIT;

	req.sandbox_id = (char *)sandbox_id;
	req.hostname = (char *)(hostname ? hostname : "");
	req.n_dns = strv_length(dns);
	req.dns = (char **)dns;
	return cli_pack(&req.base, ret, ret_len);
}

int cli_create_container_request_pack(const char *container_id, const char *sandbox_id,
				      char *const *args, uint8_t **ret, size_t *ret_len)
{
	static char *default_args[] = {(char *)"/pause", NULL};
	static char *env[] = {(char *)"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
				      "/sbin:/bin",
			      NULL};
	static const char *const ns_types[] = {"pid", "ipc", "uts", "mount"};
	Grpc__CreateContainerRequest req = GRPC__CREATE_CONTAINER_REQUEST__INIT;
	Grpc__Spec spec = GRPC__SPEC__INIT;
	Grpc__Process process = GRPC__PROCESS__INIT;
	Grpc__User user = GRPC__USER__INIT;
	Grpc__Root root = GRPC__ROOT__INIT;
	Grpc__Linux linux_ = GRPC__LINUX__INIT;
	Grpc__LinuxNamespace nss[ELEMENTSOF(ns_types)];
	Grpc__LinuxNamespace *ns_ptrs[ELEMENTSOF(ns_types)];
	Grpc__Spec__AnnotationsEntry ann[2];
	Grpc__Spec__AnnotationsEntry *ann_ptrs[2];

	if (!sandbox_id)
		sandbox_id = container_id;
	/* The pause container carries the sandbox id as its own id. */
	bool is_sandbox = str_eq(container_id, sandbox_id);
	_cleanup_free_ char *rootfs = str_printf("/run/kata-containers/%s/rootfs", container_id);
	if (!rootfs)
		return -ENOMEM;

	for (size_t i = 0; i < ELEMENTSOF(ns_types); i++) {
		grpc__linux_namespace__init(&nss[i]);
		nss[i].type = (char *)ns_types[i];
		ns_ptrs[i] = &nss[i];
	}
	linux_.n_namespaces = ELEMENTSOF(nss);
	linux_.namespaces = ns_ptrs;

	for (size_t i = 0; i < ELEMENTSOF(ann); i++) {
		grpc__spec__annotations_entry__init(&ann[i]);
		ann_ptrs[i] = &ann[i];
	}
	ann[0].key = (char *)"io.kubernetes.cri.container-type";
	ann[0].value = (char *)(is_sandbox ? "sandbox" : "container");
	ann[1].key = (char *)"io.kubernetes.cri.sandbox-id";
	ann[1].value = (char *)sandbox_id;

	if (!args || !*args)
		args = default_args;
	process.n_args = strv_length(args);
	process.args = (char **)args;
	process.n_env = ELEMENTSOF(env) - 1;
	process.env = env;
	process.cwd = (char *)"/";
	process.user = &user;

	root.path = rootfs;

	spec.version = (char *)"1.1.0";
	spec.process = &process;
	spec.root = &root;
	spec.n_annotations = ELEMENTSOF(ann);
	spec.annotations = ann_ptrs;
	spec.linux = &linux_;

	req.container_id = (char *)container_id;
	req.exec_id = (char *)container_id;
	req.oci = &spec;
	return cli_pack(&req.base, ret, ret_len);
}

/* ---- output of one agent step ---- */

static int step_output(const struct cli_ctx *c, const char *step, const struct cli_call *call,
		       const char *detail, const struct cli_kvs *fields)
{
	struct cli_result r;
	cli_result_from_call(&r, step, call);
	r.show_step = true;
	r.detail = detail;
	r.fields = fields;
	cli_output_result(&c->out, &r);
	return call->code == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILED;
}

static void set_failure(struct cli_call *call, int code, char *message)
{
	call->code = code;
	free(call->message);
	call->message = message ? message : strdup("out of memory");
}

/* ---- subcommands ---- */

struct agent_cmd {
	const char *name;
	uint64_t options; /* beyond the global ones and --agent-socket */
	int (*run)(const struct cli_ctx *c, const char *address);
	bool needs_id;
	bool takes_args; /* process arguments after "--" */
};

static int agent_health(const struct cli_ctx *c, const char *address)
{
	Grpc__CheckRequest req = GRPC__CHECK_REQUEST__INIT;
	_cleanup_(ttrpc_sync_client_freep) struct ttrpc_sync_client *client = NULL;
	_cleanup_(cli_call_done) struct cli_call call = {};
	_cleanup_(cli_kvs_done) struct cli_kvs fields = {};
	const char *status = NULL;

	cli_call_run(&client, address, 0, HEALTH_SERVICE, "Check", &req.base, NULL, 0,
		     timeout_of(c), &call);
	if (call.code == 0) {
		Grpc__HealthCheckResponse *resp =
		    grpc__health_check_response__unpack(NULL, call.len, call.payload);
		if (!resp) {
			set_failure(&call, TTRPC_INTERNAL,
				    strdup("cannot decode HealthCheckResponse"));
		} else {
			const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
			    &grpc__health_check_response__serving_status__descriptor, resp->status);
			status = v ? v->name : "UNKNOWN";
			if (resp->status != GRPC__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING)
				set_failure(&call, TTRPC_UNAVAILABLE,
					    str_printf("agent reports %s", status));
			grpc__health_check_response__free_unpacked(resp, NULL);
		}
	}
	if (status && cli_kvs_set(&fields, "status", status) < 0)
		return CLI_EXIT_FAILED;
	return step_output(c, "health", &call, status, &fields);
}

static int agent_version(const struct cli_ctx *c, const char *address)
{
	Grpc__CheckRequest req = GRPC__CHECK_REQUEST__INIT;
	_cleanup_(ttrpc_sync_client_freep) struct ttrpc_sync_client *client = NULL;
	_cleanup_(cli_call_done) struct cli_call call = {};
	_cleanup_(cli_kvs_done) struct cli_kvs fields = {};
	_cleanup_free_ char *detail = NULL;

	cli_call_run(&client, address, 0, HEALTH_SERVICE, "Version", &req.base, NULL, 0,
		     timeout_of(c), &call);
	if (call.code == 0) {
		Grpc__VersionCheckResponse *resp =
		    grpc__version_check_response__unpack(NULL, call.len, call.payload);
		if (!resp) {
			set_failure(&call, TTRPC_INTERNAL,
				    strdup("cannot decode VersionCheckResponse"));
		} else {
			int r = cli_kvs_set(&fields, "agent_version", resp->agent_version);
			if (r >= 0)
				r = cli_kvs_set(&fields, "grpc_version", resp->grpc_version);
			detail = str_printf("agent %s, grpc %s", resp->agent_version,
					    resp->grpc_version);
			grpc__version_check_response__free_unpacked(resp, NULL);
			if (r < 0 || !detail)
				return CLI_EXIT_FAILED;
		}
	}
	return step_output(c, "version", &call, detail, &fields);
}

/* A call whose request is already packed and whose answer is Empty. */
static int simple_call(const struct cli_ctx *c, const char *address, const char *step,
		       const char *method, const uint8_t *payload, size_t len, const char *detail,
		       const struct cli_kvs *fields)
{
	_cleanup_(ttrpc_sync_client_freep) struct ttrpc_sync_client *client = NULL;
	_cleanup_(cli_call_done) struct cli_call call = {};

	cli_call_run(&client, address, 0, AGENT_SERVICE, method, NULL, payload, len, timeout_of(c),
		     &call);
	return step_output(c, step, &call, detail, fields);
}

static int agent_create_sandbox(const struct cli_ctx *c, const char *address)
{
	const struct cli_args *a = c->args;
	char generated[CLI_SID_LEN + 1];
	const char *sandbox_id = a->sandbox_id;
	_cleanup_free_ uint8_t *payload = NULL;
	size_t len = 0;
	int r;

	if (!sandbox_id) {
		r = cli_sid_generate(generated);
		if (r < 0)
			return CLI_EXIT_FAILED;
		sandbox_id = generated;
	}
	r = cli_create_sandbox_request_pack(sandbox_id, a->hostname, a->dns, &payload, &len);
	if (r < 0)
		return CLI_EXIT_FAILED;
	_cleanup_(cli_kvs_done) struct cli_kvs fields = {};
	if (cli_kvs_set(&fields, "sandbox_id", sandbox_id) < 0)
		return CLI_EXIT_FAILED;
	return simple_call(c, address, "create-sandbox", "CreateSandbox", payload, len, sandbox_id,
			   &fields);
}

static int agent_create_container(const struct cli_ctx *c, const char *address)
{
	const struct cli_args *a = c->args;
	_cleanup_free_ uint8_t *payload = NULL;
	size_t len = 0;

	int r = cli_create_container_request_pack(
	    a->id, a->sandbox_id, a->positional + a->n_before_dashdash, &payload, &len);
	if (r < 0)
		return CLI_EXIT_FAILED;
	_cleanup_(cli_kvs_done) struct cli_kvs fields = {};
	if (cli_kvs_set(&fields, "container_id", a->id) < 0)
		return CLI_EXIT_FAILED;
	return simple_call(c, address, "create-container", "CreateContainer", payload, len, a->id,
			   &fields);
}

/* StartContainer and RemoveContainer take just the container id. */
static int container_call(const struct cli_ctx *c, const char *address, const char *step,
			  const char *method)
{
	Grpc__StartContainerRequest start = GRPC__START_CONTAINER_REQUEST__INIT;
	Grpc__RemoveContainerRequest remove = GRPC__REMOVE_CONTAINER_REQUEST__INIT;
	bool is_start = str_eq(method, "StartContainer");
	_cleanup_free_ uint8_t *payload = NULL;
	size_t len = 0;

	start.container_id = remove.container_id = c->args->id;
	if (cli_pack(is_start ? &start.base : &remove.base, &payload, &len) < 0)
		return CLI_EXIT_FAILED;
	_cleanup_(cli_kvs_done) struct cli_kvs fields = {};
	if (cli_kvs_set(&fields, "container_id", c->args->id) < 0)
		return CLI_EXIT_FAILED;
	return simple_call(c, address, step, method, payload, len, c->args->id, &fields);
}

static int agent_start_container(const struct cli_ctx *c, const char *address)
{
	return container_call(c, address, "start-container", "StartContainer");
}

static int agent_remove_container(const struct cli_ctx *c, const char *address)
{
	return container_call(c, address, "remove-container", "RemoveContainer");
}

static int agent_destroy_sandbox(const struct cli_ctx *c, const char *address)
{
	return simple_call(c, address, "destroy-sandbox", "DestroySandbox", NULL, 0, NULL, NULL);
}

static int agent_wait_process(const struct cli_ctx *c, const char *address)
{
	Grpc__WaitProcessRequest req = GRPC__WAIT_PROCESS_REQUEST__INIT;
	_cleanup_(ttrpc_sync_client_freep) struct ttrpc_sync_client *client = NULL;
	_cleanup_(cli_call_done) struct cli_call call = {};
	_cleanup_(cli_kvs_done) struct cli_kvs fields = {};
	_cleanup_free_ char *detail = NULL;

	req.container_id = c->args->id;
	req.exec_id = (char *)"";
	cli_call_run(&client, address, 0, AGENT_SERVICE, "WaitProcess", &req.base, NULL, 0,
		     timeout_of(c), &call);
	if (call.code == 0) {
		Grpc__WaitProcessResponse *resp =
		    grpc__wait_process_response__unpack(NULL, call.len, call.payload);
		if (!resp) {
			set_failure(&call, TTRPC_INTERNAL,
				    strdup("cannot decode WaitProcessResponse"));
		} else {
			detail = str_printf("%d", resp->status);
			grpc__wait_process_response__free_unpacked(resp, NULL);
			if (!detail || cli_kvs_set(&fields, "status", detail) < 0)
				return CLI_EXIT_FAILED;
		}
	}
	return step_output(c, "wait-process", &call, detail, &fields);
}

static int agent_copy_file(const struct cli_ctx *c, const char *address)
{
	const struct cli_args *a = c->args;
	_cleanup_(ttrpc_sync_client_freep) struct ttrpc_sync_client *client = NULL;
	_cleanup_(cli_call_done) struct cli_call call = {};
	_cleanup_free_ uint8_t *chunk = NULL;
	int64_t total_ns = 0;
	uint64_t offset = 0;
	unsigned n_calls = 0;

	if (a->size > INT64_MAX)
		return CLI_EXIT_USAGE;
	chunk = malloc(MIN(a->size, (uint64_t)CLI_COPY_CHUNK_BYTES) + 1);
	if (!chunk)
		return CLI_EXIT_FAILED;
	memset(chunk, 'x', MIN(a->size, (uint64_t)CLI_COPY_CHUNK_BYTES));

	/* Like the shim: whole-file size in every chunk, at least one call for an empty file. */
	do {
		Grpc__CopyFileRequest req = GRPC__COPY_FILE_REQUEST__INIT;
		size_t n = (size_t)MIN(a->size - offset, (uint64_t)CLI_COPY_CHUNK_BYTES);

		req.path = a->path;
		req.file_size = (int64_t)a->size;
		req.file_mode = S_IFREG | 0644;
		req.dir_mode = S_IFDIR | 0755;
		req.offset = (int64_t)offset;
		req.data.data = chunk;
		req.data.len = n;
		cli_call_done(&call);
		cli_call_run(&client, address, 0, AGENT_SERVICE, "CopyFile", &req.base, NULL, 0,
			     timeout_of(c), &call);
		total_ns += call.duration_ns;
		n_calls++;
		offset += n;
	} while (call.code == 0 && offset < a->size);

	call.duration_ns = total_ns;
	_cleanup_free_ char *detail =
	    str_printf("%s, %" PRIu64 " bytes in %u calls", a->path, a->size, n_calls);
	_cleanup_(cli_kvs_done) struct cli_kvs fields = {};
	if (!detail || cli_kvs_set(&fields, "path", a->path) < 0)
		return CLI_EXIT_FAILED;
	return step_output(c, "copy-file", &call, detail, &fields);
}

/* Generic call: payload in, payload out as hex. */
static int raw_call(const struct cli_ctx *c, const char *address)
{
	const struct cli_args *a = c->args;
	_cleanup_free_ uint8_t *payload = NULL;
	size_t len = 0;

	if (a->payload_hex && cli_hex_decode(a->payload_hex, &payload, &len) < 0) {
		fprintf(c->out.err, "peerpodctl: --payload-hex is not valid hex\n");
		return CLI_EXIT_USAGE;
	}

	_cleanup_(ttrpc_sync_client_freep) struct ttrpc_sync_client *client = NULL;
	_cleanup_(cli_call_done) struct cli_call call = {};
	cli_call_run(&client, address, 0, a->service, a->method, NULL, payload, len, timeout_of(c),
		     &call);

	struct cli_result r;
	cli_result_from_call(&r, NULL, &call);
	/* Scripts match "error: <CODE_NAME>: ..." for every failure of a raw call. */
	r.hide_code = false;
	r.duration_ns = -1;
	_cleanup_free_ char *hex = NULL;
	_cleanup_(cli_kvs_done) struct cli_kvs fields = {};
	if (call.code == 0) {
		hex = call.len ? hex_encode(call.payload, call.len) : strdup("");
		if (!hex || cli_kvs_set(&fields, "payload_hex", hex) < 0)
			return CLI_EXIT_FAILED;
		r.detail = hex;
		r.fields = &fields;
	}
	cli_output_result(&c->out, &r);
	return call.code == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILED;
}

#define B(o) CLI_OPT_BIT(CLI_OPT_##o)
static const struct agent_cmd agent_cmds[] = {
    {"health", 0, agent_health, false, false},
    {"version", 0, agent_version, false, false},
    {"create-sandbox", B(SANDBOX_ID) | B(HOSTNAME) | B(DNS), agent_create_sandbox, false, false},
    {"create-container", B(ID) | B(SANDBOX_ID), agent_create_container, true, true},
    {"start-container", B(ID), agent_start_container, true, false},
    {"remove-container", B(ID), agent_remove_container, true, false},
    {"wait-process", B(ID), agent_wait_process, true, false},
    {"destroy-sandbox", 0, agent_destroy_sandbox, false, false},
    {"copy-file", B(PATH) | B(SIZE), agent_copy_file, false, false},
    {"call", B(SERVICE) | B(METHOD) | B(PAYLOAD_HEX), raw_call, false, false},
};
#undef B

static int usage(const struct cli_ctx *c, const char *msg)
{
	fprintf(c->out.err, "peerpodctl: %s (see peerpodctl --help)\n", msg);
	return CLI_EXIT_USAGE;
}

static int check_call_options(const struct cli_ctx *c)
{
	if (str_empty(c->args->service) || str_empty(c->args->method))
		return usage(c, "call needs --service and --method");
	return 0;
}

int cli_cmd_agent(const struct cli_ctx *c)
{
	const struct cli_args *a = c->args;

	if (a->n_before_dashdash < 2)
		return usage(c, "agent needs a subcommand");
	const char *name = a->positional[1];
	const struct agent_cmd *cmd = NULL;
	for (size_t i = 0; i < ELEMENTSOF(agent_cmds); i++)
		if (str_eq(agent_cmds[i].name, name))
			cmd = &agent_cmds[i];
	if (!cmd) {
		_cleanup_free_ char *m = str_printf("unknown agent subcommand '%s'", name);
		return usage(c, m ? m : "unknown agent subcommand");
	}

	_cleanup_free_ char *msg = NULL;
	if (cli_args_check(a, CLI_OPTS_GLOBAL | CLI_OPT_BIT(CLI_OPT_AGENT_SOCKET) | cmd->options,
			   name, &msg) < 0)
		return usage(c, msg ? msg : "invalid option");
	if (a->n_before_dashdash > 2)
		return usage(c, "too many arguments");
	if (!cmd->takes_args && a->n_positional > a->n_before_dashdash)
		return usage(c, "unexpected arguments after --");
	if (str_empty(a->agent_socket))
		return usage(c, "agent needs --agent-socket PATH");
	if (cmd->needs_id && str_empty(a->id))
		return usage(c, "this agent subcommand needs --id CONTAINER");
	if (cmd->run == agent_copy_file && str_empty(a->path))
		return usage(c, "copy-file needs --path");
	if (cmd->run == raw_call && check_call_options(c) != 0)
		return CLI_EXIT_USAGE;

	_cleanup_free_ char *address = cli_unix_address(a->agent_socket);
	if (!address)
		return CLI_EXIT_FAILED;
	return cmd->run(c, address);
}

int cli_cmd_call(const struct cli_ctx *c)
{
	if (str_empty(c->args->address))
		return usage(c, "call needs --address");
	if (check_call_options(c) != 0)
		return CLI_EXIT_USAGE;
	return raw_call(c, c->args->address);
}

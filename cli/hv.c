/* peerpodctl: the hypervisor socket commands (version, create, start, stop, info, lifecycle),
 * called the way the Kata shim calls them (WIRE 2). */
#include "cli.h"

#include "health.pb-c.h"
#include "hypervisor.pb-c.h"
#include "podvminfo.pb-c.h"
#include "ttrpc/ttrpc.h"

#define HV_SERVICE "hypervisor.Hypervisor"
#define INFO_SERVICE "podvminfo.PodVMInfo"

DEFINE_CLEANUP(struct ttrpc_sync_client, ttrpc_sync_client_free)

static int64_t timeout_or(const struct cli_ctx *c, int64_t def)
{
	return (c->args->set & CLI_OPT_BIT(CLI_OPT_TIMEOUT)) ? c->args->timeout_ns : def;
}

/* One call on a fresh connection, as the Go shim does for every hypervisor call. */
static void hv_call(const struct cli_ctx *c, const char *service, const char *method,
		    const ProtobufCMessage *req, int64_t timeout_ns, struct cli_call *ret)
{
	_cleanup_(ttrpc_sync_client_freep) struct ttrpc_sync_client *client = NULL;
	cli_call_run(&client, c->socket, 0, service, method, req, NULL, 0, timeout_ns, ret);
}

static int fail_output(const struct cli_ctx *c, const char *step, const struct cli_call *call,
		       const struct cli_kvs *fields)
{
	struct cli_result r;
	cli_result_from_call(&r, step, call);
	r.fields = fields;
	cli_output_result(&c->out, &r);
	return CLI_EXIT_FAILED;
}

int cli_create_vm_request_pack(const char *sid, const char *netns, const struct cli_kvs *ann,
			       uint8_t **ret, size_t *ret_len)
{
	Hypervisor__CreateVMRequest req = HYPERVISOR__CREATE_VMREQUEST__INIT;
	_cleanup_free_ Hypervisor__CreateVMRequest__AnnotationsEntry *entries =
	    calloc(ann->n ? ann->n : 1, sizeof(*entries));
	_cleanup_free_ Hypervisor__CreateVMRequest__AnnotationsEntry **ptrs =
	    calloc(ann->n ? ann->n : 1, sizeof(*ptrs));
	if (!entries || !ptrs)
		return -ENOMEM;

	for (size_t i = 0; i < ann->n; i++) {
		hypervisor__create_vmrequest__annotations_entry__init(&entries[i]);
		entries[i].key = ann->items[i].key;
		entries[i].value = ann->items[i].value;
		ptrs[i] = &entries[i];
	}
	req.id = (char *)sid;
	req.n_annotations = ann->n;
	req.annotations = ptrs;
	req.networknamespacepath = (char *)(netns ? netns : "");
	return cli_pack(&req.base, ret, ret_len);
}

/* CreateVM; on success *ret_socket is the agent socket path. */
static int do_create(const struct cli_ctx *c, const char *sid, bool show_step, char **ret_socket)
{
	const struct cli_args *a = c->args;
	_cleanup_(cli_kvs_done) struct cli_kvs ann = {};
	_cleanup_free_ uint8_t *payload = NULL;
	size_t len = 0;
	const char *bad = NULL;
	int r;

	r = cli_annotations_build(a->pod, a->ns, a->annotations, &ann, &bad);
	if (r == -EINVAL) {
		fprintf(c->out.err, "peerpodctl: invalid --annotation '%s': expected KEY=VALUE\n",
			bad ? bad : "");
		return CLI_EXIT_USAGE;
	}
	if (r >= 0)
		r = cli_create_vm_request_pack(sid, a->netns, &ann, &payload, &len);
	if (r < 0) {
		fprintf(c->out.err, "error: %s\n", strerror(-r));
		return CLI_EXIT_FAILED;
	}

	_cleanup_(cli_call_done) struct cli_call call = {};
	_cleanup_(ttrpc_sync_client_freep) struct ttrpc_sync_client *client = NULL;
	cli_call_run(&client, c->socket, 0, HV_SERVICE, "CreateVM", NULL, payload, len,
		     timeout_or(c, CLI_DEFAULT_TIMEOUT_NS), &call);

	_cleanup_(cli_kvs_done) struct cli_kvs fields = {};
	if (cli_kvs_set(&fields, "sandbox_id", sid) < 0)
		return CLI_EXIT_FAILED;
	if (call.code != 0)
		return fail_output(c, "create", &call, &fields);

	Hypervisor__CreateVMResponse *resp =
	    hypervisor__create_vmresponse__unpack(NULL, call.len, call.payload);
	if (!resp || str_empty(resp->agentsocketpath)) {
		call.code = TTRPC_UNKNOWN;
		free(call.message);
		call.message = strdup(resp ? "remote hypervisor does not return tunnel socket path"
					   : "cannot decode CreateVMResponse");
		if (resp)
			hypervisor__create_vmresponse__free_unpacked(resp, NULL);
		return fail_output(c, "create", &call, &fields);
	}
	_cleanup_free_ char *socket = strdup(resp->agentsocketpath);
	hypervisor__create_vmresponse__free_unpacked(resp, NULL);
	if (!socket || cli_kvs_set(&fields, "agent_socket_path", socket) < 0)
		return CLI_EXIT_FAILED;

	_cleanup_free_ char *detail = show_step ? str_printf("agent socket %s", socket) : NULL;
	struct cli_result res = {
	    .step = "create",
	    .show_step = show_step,
	    .duration_ns = call.duration_ns,
	    .detail = show_step ? detail : socket,
	    .fields = &fields,
	};
	cli_output_result(&c->out, &res);
	if (ret_socket)
		*ret_socket = TAKE_PTR(socket);
	return CLI_EXIT_OK;
}

/* StartVM or StopVM. */
static int do_start_stop(const struct cli_ctx *c, const char *sid, bool start, bool show_step)
{
	Hypervisor__StartVMRequest start_req = HYPERVISOR__START_VMREQUEST__INIT;
	Hypervisor__StopVMRequest stop_req = HYPERVISOR__STOP_VMREQUEST__INIT;
	const char *step = start ? "start" : "stop";
	_cleanup_(cli_call_done) struct cli_call call = {};

	start_req.id = stop_req.id = (char *)sid;
	hv_call(c, HV_SERVICE, start ? "StartVM" : "StopVM",
		start ? &start_req.base : &stop_req.base,
		timeout_or(c, start ? CLI_START_TIMEOUT_NS : CLI_DEFAULT_TIMEOUT_NS), &call);

	_cleanup_(cli_kvs_done) struct cli_kvs fields = {};
	if (cli_kvs_set(&fields, "sandbox_id", sid) < 0)
		return CLI_EXIT_FAILED;
	if (call.code != 0)
		return fail_output(c, step, &call, &fields);

	struct cli_result res = {
	    .step = step,
	    .show_step = true,
	    .duration_ns = call.duration_ns,
	    .detail = show_step ? NULL : sid,
	    .fields = &fields,
	};
	cli_output_result(&c->out, &res);
	return CLI_EXIT_OK;
}

int cli_cmd_version(const struct cli_ctx *c)
{
	Hypervisor__VersionRequest req = HYPERVISOR__VERSION_REQUEST__INIT;
	_cleanup_(cli_call_done) struct cli_call call = {};
	_cleanup_(cli_kvs_done) struct cli_kvs fields = {};

	req.version = (char *)PP_VERSION;
	if (cli_kvs_set(&fields, "client", PP_VERSION) < 0)
		return CLI_EXIT_FAILED;
	if (!c->out.json)
		fprintf(c->out.out, "peerpodctl %s\n", PP_VERSION);

	hv_call(c, HV_SERVICE, "Version", &req.base, timeout_or(c, CLI_DEFAULT_TIMEOUT_NS), &call);
	if (call.code != 0)
		return fail_output(c, "version", &call, &fields);

	Hypervisor__VersionResponse *resp =
	    hypervisor__version_response__unpack(NULL, call.len, call.payload);
	if (!resp) {
		call.code = TTRPC_INTERNAL;
		free(call.message);
		call.message = strdup("cannot decode VersionResponse");
		return fail_output(c, "version", &call, &fields);
	}
	int r = cli_kvs_set(&fields, "server", resp->version);
	_cleanup_free_ char *detail = str_printf("hypervisor %s", resp->version);
	hypervisor__version_response__free_unpacked(resp, NULL);
	if (r < 0 || !detail)
		return CLI_EXIT_FAILED;

	struct cli_result res = {
	    .step = "version",
	    .duration_ns = call.duration_ns,
	    .detail = detail,
	    .fields = &fields,
	};
	cli_output_result(&c->out, &res);
	return CLI_EXIT_OK;
}

int cli_cmd_create(const struct cli_ctx *c)
{
	return do_create(c, c->args->positional[1], false, NULL);
}

int cli_cmd_start(const struct cli_ctx *c)
{
	return do_start_stop(c, c->args->positional[1], true, false);
}

int cli_cmd_stop(const struct cli_ctx *c)
{
	return do_start_stop(c, c->args->positional[1], false, false);
}

int cli_cmd_info(const struct cli_ctx *c)
{
	const struct cli_args *a = c->args;
	Podvminfo__GetInfoRequest req = PODVMINFO__GET_INFO_REQUEST__INIT;
	_cleanup_(cli_call_done) struct cli_call call = {};
	_cleanup_(cli_kvs_done) struct cli_kvs fields = {};

	req.podname = a->pod;
	req.podnamespace = a->ns;
	req.wait = a->wait;
	if (cli_kvs_set(&fields, "pod", a->pod) < 0 || cli_kvs_set(&fields, "namespace", a->ns) < 0)
		return CLI_EXIT_FAILED;

	hv_call(c, INFO_SERVICE, "GetInfo", &req.base, timeout_or(c, CLI_DEFAULT_TIMEOUT_NS),
		&call);
	if (call.code != 0)
		return fail_output(c, "info", &call, &fields);

	Podvminfo__GetInfoResponse *resp =
	    podvminfo__get_info_response__unpack(NULL, call.len, call.payload);
	if (!resp) {
		call.code = TTRPC_INTERNAL;
		free(call.message);
		call.message = strdup("cannot decode GetInfoResponse");
		return fail_output(c, "info", &call, &fields);
	}
	_cleanup_free_ char *vmid = strdup(resp->vmid);
	podvminfo__get_info_response__free_unpacked(resp, NULL);
	if (!vmid || cli_kvs_set(&fields, "vm_id", vmid) < 0)
		return CLI_EXIT_FAILED;

	struct cli_result res = {
	    .step = "info",
	    .duration_ns = call.duration_ns,
	    .detail = vmid,
	    .fields = &fields,
	};
	cli_output_result(&c->out, &res);
	return CLI_EXIT_OK;
}

/* grpc.Health/Check through the agent socket StartVM made reachable. */
static int lifecycle_health(const struct cli_ctx *c, const char *sid, const char *agent_socket)
{
	Grpc__CheckRequest req = GRPC__CHECK_REQUEST__INIT;
	_cleanup_(cli_call_done) struct cli_call call = {};
	_cleanup_(cli_kvs_done) struct cli_kvs fields = {};
	_cleanup_(ttrpc_sync_client_freep) struct ttrpc_sync_client *client = NULL;
	_cleanup_free_ char *address = cli_unix_address(agent_socket);

	if (!address || cli_kvs_set(&fields, "sandbox_id", sid) < 0)
		return CLI_EXIT_FAILED;
	cli_call_run(&client, address, CLI_AGENT_DIAL_TIMEOUT_NS, "grpc.Health", "Check", &req.base,
		     NULL, 0, timeout_or(c, CLI_DEFAULT_TIMEOUT_NS), &call);
	if (call.code != 0)
		return fail_output(c, "health", &call, &fields);

	Grpc__HealthCheckResponse *resp =
	    grpc__health_check_response__unpack(NULL, call.len, call.payload);
	int status = resp ? (int)resp->status : -1;
	if (resp)
		grpc__health_check_response__free_unpacked(resp, NULL);
	const char *name =
	    status == GRPC__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING       ? "SERVING"
	    : status == GRPC__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING ? "NOT_SERVING"
	    : status == GRPC__HEALTH_CHECK_RESPONSE__SERVING_STATUS__UNKNOWN     ? "UNKNOWN"
										 : NULL;
	if (!name) {
		call.code = TTRPC_INTERNAL;
		free(call.message);
		call.message = strdup("cannot decode HealthCheckResponse");
		return fail_output(c, "health", &call, &fields);
	}
	if (cli_kvs_set(&fields, "status", name) < 0)
		return CLI_EXIT_FAILED;
	if (status != GRPC__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING) {
		call.code = TTRPC_UNAVAILABLE;
		free(call.message);
		call.message = str_printf("agent reports %s", name);
		return fail_output(c, "health", &call, &fields);
	}

	struct cli_result res = {
	    .step = "health",
	    .show_step = true,
	    .duration_ns = call.duration_ns,
	    .detail = name,
	    .fields = &fields,
	};
	cli_output_result(&c->out, &res);
	return CLI_EXIT_OK;
}

int cli_cmd_lifecycle(const struct cli_ctx *c)
{
	const struct cli_args *a = c->args;
	char generated[CLI_SID_LEN + 1];
	const char *sid = a->sid;
	int64_t start = now_ns();
	int r;

	if (!sid) {
		r = cli_sid_generate(generated);
		if (r < 0) {
			fprintf(c->out.err, "error: cannot generate a sandbox id: %s\n",
				strerror(-r));
			return CLI_EXIT_FAILED;
		}
		sid = generated;
	}
	if (!c->out.json)
		fprintf(c->out.out, "sandbox %s pod %s/%s\n", sid, a->ns, a->pod);

	_cleanup_free_ char *agent_socket = NULL;
	r = do_create(c, sid, true, &agent_socket);
	if (r != CLI_EXIT_OK)
		return r;

	int rc = do_start_stop(c, sid, true, true);
	if (rc == CLI_EXIT_OK)
		rc = lifecycle_health(c, sid, agent_socket);
	/* Tear down whatever happened before, as the shim does. */
	int rc_stop = do_start_stop(c, sid, false, true);
	if (rc == CLI_EXIT_OK)
		rc = rc_stop;

	_cleanup_(cli_kvs_done) struct cli_kvs fields = {};
	if (cli_kvs_set(&fields, "sandbox_id", sid) < 0)
		return CLI_EXIT_FAILED;
	struct cli_result total = {
	    .step = "lifecycle",
	    .show_step = true,
	    .code = rc == CLI_EXIT_OK ? 0 : TTRPC_UNKNOWN,
	    .message = "a step failed",
	    .duration_ns = now_ns() - start,
	    .fields = &fields,
	};
	/* In text form the failing step has already said what went wrong. */
	if (c->out.json || rc == CLI_EXIT_OK)
		cli_output_result(&c->out, &total);
	return rc;
}

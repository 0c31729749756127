/* Unit tests of peerpodctl: argument parsing, the shim's annotations and requests, sandbox ids,
 * result output, and the commands against an in-process fake hypervisor/agent server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <pthread.h>

#include <cmocka.h>
#include <jansson.h>

#include "agent.pb-c.h"
#include "cli/cli.h"
#include "config/config.h"
#include "health.pb-c.h"
#include "hypervisor.pb-c.h"
#include "loop/loop.h"
#include "podvminfo.pb-c.h"
#include "ttrpc/ttrpc.h"

#define SHIM_KEYS 9

/* ---- annotations ---- */

static void test_annotation_parse(void **state)
{
	char *k = NULL, *v = NULL;

	assert_int_equal(cli_annotation_parse("io.x/y=a=b=c", &k, &v), 0);
	assert_string_equal(k, "io.x/y");
	assert_string_equal(v, "a=b=c");
	free(k);
	free(v);

	assert_int_equal(cli_annotation_parse("key=", &k, &v), 0);
	assert_string_equal(k, "key");
	assert_string_equal(v, "");
	free(k);
	free(v);

	assert_int_equal(cli_annotation_parse("=value", &k, &v), -EINVAL);
	assert_int_equal(cli_annotation_parse("novalue", &k, &v), -EINVAL);
	assert_int_equal(cli_annotation_parse("", &k, &v), -EINVAL);
}

static void test_annotations_defaults(void **state)
{
	struct cli_kvs l = {};

	assert_int_equal(cli_annotations_build(NULL, NULL, NULL, &l, NULL), 0);
	assert_int_equal(l.n, SHIM_KEYS);
	assert_string_equal(cli_kvs_get(&l, "io.kubernetes.cri.sandbox-name"), "");
	assert_string_equal(cli_kvs_get(&l, "io.kubernetes.cri.sandbox-namespace"), "");
	assert_string_equal(cli_kvs_get(&l, "io.katacontainers.config.hypervisor.machine_type"),
			    "");
	assert_string_equal(cli_kvs_get(&l, "io.katacontainers.config.hypervisor.image"), "");
	assert_string_equal(cli_kvs_get(&l, "io.katacontainers.config.hypervisor.default_vcpus"),
			    "0");
	assert_string_equal(cli_kvs_get(&l, "io.katacontainers.config.hypervisor.default_memory"),
			    "0");
	assert_string_equal(cli_kvs_get(&l, "io.katacontainers.config.hypervisor.cc_init_data"),
			    "");
	assert_string_equal(cli_kvs_get(&l, "io.katacontainers.config.hypervisor.default_gpus"),
			    "0");
	assert_string_equal(
	    cli_kvs_get(&l, "io.katacontainers.config.hypervisor.default_gpu_model"), "");
	cli_kvs_done(&l);
}

static void test_annotations_pod_and_overrides(void **state)
{
	char *overrides[] = {
	    "io.katacontainers.config.hypervisor.default_vcpus=1.5",
	    "io.katacontainers.config.hypervisor.cc_init_data=algorithm = \"sha256\"\nx=y",
	    "example.com/extra=v",
	    "io.kubernetes.cri.sandbox-name=override",
	    NULL,
	};
	struct cli_kvs l = {};

	assert_int_equal(cli_annotations_build("nginx", "default", overrides, &l, NULL), 0);
	assert_int_equal(l.n, SHIM_KEYS + 1);
	assert_string_equal(cli_kvs_get(&l, "io.kubernetes.cri.sandbox-namespace"), "default");
	/* --annotation wins over --pod. */
	assert_string_equal(cli_kvs_get(&l, "io.kubernetes.cri.sandbox-name"), "override");
	assert_string_equal(cli_kvs_get(&l, "io.katacontainers.config.hypervisor.default_vcpus"),
			    "1.5");
	assert_string_equal(cli_kvs_get(&l, "io.katacontainers.config.hypervisor.cc_init_data"),
			    "algorithm = \"sha256\"\nx=y");
	assert_string_equal(cli_kvs_get(&l, "example.com/extra"), "v");
	/* The added key comes after the nine the shim sends. */
	assert_string_equal(l.items[SHIM_KEYS].key, "example.com/extra");
	cli_kvs_done(&l);

	char *bad[] = {"good=1", "broken", NULL};
	const char *which = NULL;
	assert_int_equal(cli_annotations_build("p", "n", bad, &l, &which), -EINVAL);
	assert_string_equal(which, "broken");
	assert_null(l.items);
}

static void test_create_vm_request(void **state)
{
	char *overrides[] = {"io.katacontainers.config.hypervisor.machine_type=Standard_DC2as_v5",
			     NULL};
	struct cli_kvs l = {};
	uint8_t *buf = NULL;
	size_t len = 0;

	assert_int_equal(cli_annotations_build("nginx", "ns1", overrides, &l, NULL), 0);
	assert_int_equal(cli_create_vm_request_pack("abc", "/var/run/netns/x", &l, &buf, &len), 0);
	Hypervisor__CreateVMRequest *req = hypervisor__create_vmrequest__unpack(NULL, len, buf);
	assert_non_null(req);
	assert_string_equal(req->id, "abc");
	assert_string_equal(req->networknamespacepath, "/var/run/netns/x");
	assert_int_equal(req->n_annotations, SHIM_KEYS);
	bool seen_name = false, seen_type = false;
	for (size_t i = 0; i < req->n_annotations; i++) {
		if (str_eq(req->annotations[i]->key, "io.kubernetes.cri.sandbox-name")) {
			assert_string_equal(req->annotations[i]->value, "nginx");
			seen_name = true;
		}
		if (str_eq(req->annotations[i]->key,
			   "io.katacontainers.config.hypervisor.machine_type")) {
			assert_string_equal(req->annotations[i]->value, "Standard_DC2as_v5");
			seen_type = true;
		}
	}
	assert_true(seen_name && seen_type);
	hypervisor__create_vmrequest__free_unpacked(req, NULL);
	free(buf);
	cli_kvs_done(&l);
}

/* ---- agent requests ---- */

static const char *spec_annotation(const Grpc__Spec *spec, const char *key)
{
	for (size_t i = 0; i < spec->n_annotations; i++)
		if (str_eq(spec->annotations[i]->key, key))
			return spec->annotations[i]->value;
	return NULL;
}

static void test_create_container_request(void **state)
{
	uint8_t *buf = NULL;
	size_t len = 0;

	/* The pause container: id = sandbox id, default args. */
	assert_int_equal(cli_create_container_request_pack("sb1", NULL, NULL, &buf, &len), 0);
	Grpc__CreateContainerRequest *req = grpc__create_container_request__unpack(NULL, len, buf);
	assert_non_null(req);
	assert_string_equal(req->container_id, "sb1");
	assert_non_null(req->oci);
	assert_string_equal(req->oci->root->path, "/run/kata-containers/sb1/rootfs");
	assert_string_equal(spec_annotation(req->oci, "io.kubernetes.cri.container-type"),
			    "sandbox");
	assert_string_equal(spec_annotation(req->oci, "io.kubernetes.cri.sandbox-id"), "sb1");
	assert_int_equal(req->oci->process->n_args, 1);
	assert_string_equal(req->oci->process->args[0], "/pause");
	const char *want[] = {"pid", "ipc", "uts", "mount"};
	assert_int_equal(req->oci->linux->n_namespaces, ELEMENTSOF(want));
	for (size_t i = 0; i < ELEMENTSOF(want); i++)
		assert_string_equal(req->oci->linux->namespaces[i]->type, want[i]);
	grpc__create_container_request__free_unpacked(req, NULL);
	free(buf);

	char *args[] = {"sh", "-c", "echo hi", NULL};
	assert_int_equal(cli_create_container_request_pack("c1", "sb1", args, &buf, &len), 0);
	req = grpc__create_container_request__unpack(NULL, len, buf);
	assert_non_null(req);
	assert_string_equal(req->oci->root->path, "/run/kata-containers/c1/rootfs");
	assert_string_equal(spec_annotation(req->oci, "io.kubernetes.cri.container-type"),
			    "container");
	assert_string_equal(spec_annotation(req->oci, "io.kubernetes.cri.sandbox-id"), "sb1");
	assert_int_equal(req->oci->process->n_args, 3);
	assert_string_equal(req->oci->process->args[2], "echo hi");
	grpc__create_container_request__free_unpacked(req, NULL);
	free(buf);
}

static void test_create_sandbox_request(void **state)
{
	char *dns[] = {"nameserver 10.96.0.10", "search default.svc.cluster.local", NULL};
	uint8_t *buf = NULL;
	size_t len = 0;

	assert_int_equal(cli_create_sandbox_request_pack("sb1", "web-0", dns, &buf, &len), 0);
	Grpc__CreateSandboxRequest *req = grpc__create_sandbox_request__unpack(NULL, len, buf);
	assert_non_null(req);
	assert_string_equal(req->sandbox_id, "sb1");
	assert_string_equal(req->hostname, "web-0");
	assert_int_equal(req->n_dns, 2);
	assert_string_equal(req->dns[1], "search default.svc.cluster.local");
	grpc__create_sandbox_request__free_unpacked(req, NULL);
	free(buf);
}

/* ---- sid and hex ---- */

static void test_sid(void **state)
{
	char a[CLI_SID_LEN + 1], b[CLI_SID_LEN + 1];

	assert_int_equal(cli_sid_generate(a), 0);
	assert_int_equal(cli_sid_generate(b), 0);
	assert_int_equal(strlen(a), 64);
	for (size_t i = 0; i < 64; i++)
		assert_non_null(strchr("0123456789abcdef", a[i]));
	assert_true(cli_sid_is_valid(a));
	assert_string_not_equal(a, b);

	assert_false(cli_sid_is_valid("abc"));
	a[10] = 'A';
	assert_false(cli_sid_is_valid(a));
	assert_false(cli_sid_is_valid(NULL));
}

static void test_hex_decode(void **state)
{
	uint8_t *out = NULL;
	size_t len = 0;

	assert_int_equal(cli_hex_decode("0a05302E302e30", &out, &len), 0);
	assert_int_equal(len, 7);
	assert_memory_equal(out,
			    "\x0a\x05"
			    "0.0.0",
			    7);
	free(out);

	assert_int_equal(cli_hex_decode("", &out, &len), 0);
	assert_int_equal(len, 0);
	free(out);

	assert_int_equal(cli_hex_decode("abc", &out, &len), -EINVAL);
	assert_int_equal(cli_hex_decode("zz", &out, &len), -EINVAL);
}

/* ---- arguments ---- */

static void test_args_anywhere(void **state)
{
	char *argv[] = {"create",    "--json",          "SID",       "--annotation", "a=b=c",
			"-netns=/x", "--annotation=d=", "--timeout", "90s",          "--pod",
			"p",         "--namespace",     "ns"};
	struct cli_args a = {};
	char *msg = NULL;

	assert_int_equal(cli_args_parse(ELEMENTSOF(argv), argv, &a, &msg), 0);
	assert_true(a.json);
	assert_int_equal(a.n_positional, 2);
	assert_string_equal(a.positional[0], "create");
	assert_string_equal(a.positional[1], "SID");
	assert_int_equal(strv_length(a.annotations), 2);
	assert_string_equal(a.annotations[0], "a=b=c");
	assert_string_equal(a.annotations[1], "d=");
	assert_string_equal(a.netns, "/x");
	assert_int_equal(a.timeout_ns, 90 * NSEC_PER_SEC);
	assert_string_equal(a.pod, "p");
	assert_string_equal(a.ns, "ns");
	assert_true(a.set & CLI_OPT_BIT(CLI_OPT_TIMEOUT));
	assert_false(a.set & CLI_OPT_BIT(CLI_OPT_SOCKET));

	assert_int_equal(cli_args_check(&a,
					CLI_OPTS_GLOBAL | CLI_OPT_BIT(CLI_OPT_ANNOTATION) |
					    CLI_OPT_BIT(CLI_OPT_NETNS) | CLI_OPT_BIT(CLI_OPT_POD) |
					    CLI_OPT_BIT(CLI_OPT_NAMESPACE),
					"create", &msg),
			 0);
	assert_int_equal(cli_args_check(&a, CLI_OPTS_GLOBAL, "start", &msg), -EINVAL);
	assert_non_null(strstr(msg, "--annotation"));
	free(msg);
	cli_args_done(&a);
}

static void test_args_dashdash_and_bools(void **state)
{
	char *argv[] = {
	    "agent", "create-container", "--json=false", "--id", "c1", "--", "sh", "--json", "-c"};
	struct cli_args a = {};

	assert_int_equal(cli_args_parse(ELEMENTSOF(argv), argv, &a, NULL), 0);
	assert_false(a.json);
	assert_true(a.set & CLI_OPT_BIT(CLI_OPT_JSON));
	assert_int_equal(a.n_before_dashdash, 2);
	assert_int_equal(a.n_positional, 5);
	assert_string_equal(a.positional[2], "sh");
	assert_string_equal(a.positional[3], "--json");
	assert_null(a.positional[5]);
	cli_args_done(&a);
}

static void test_args_errors(void **state)
{
	struct cli_args a = {};
	char *msg = NULL;

	char *unknown[] = {"start", "--frobnicate"};
	assert_int_equal(cli_args_parse(2, unknown, &a, &msg), -EINVAL);
	assert_non_null(strstr(msg, "--frobnicate"));
	free(msg);

	char *missing[] = {"start", "--timeout"};
	assert_int_equal(cli_args_parse(2, missing, &a, &msg), -EINVAL);
	assert_non_null(strstr(msg, "timeout"));
	free(msg);

	char *bad_duration[] = {"--timeout", "60"};
	assert_int_equal(cli_args_parse(2, bad_duration, &a, &msg), -EINVAL);
	free(msg);

	char *bad_size[] = {"--size", "-1"};
	assert_int_equal(cli_args_parse(2, bad_size, &a, &msg), -EINVAL);
	free(msg);

	char *bad_bool[] = {"--wait=maybe"};
	assert_int_equal(cli_args_parse(1, bad_bool, &a, &msg), -EINVAL);
	free(msg);
}

/* ---- output ---- */

static char *capture_result(const struct cli_result *r, bool json, char **ret_err)
{
	char *out = NULL, *err = NULL;
	size_t out_len = 0, err_len = 0;
	FILE *fo = open_memstream(&out, &out_len);
	FILE *fe = open_memstream(&err, &err_len);
	struct cli_output o = {.out = fo, .err = fe, .json = json};

	cli_output_result(&o, r);
	fclose(fo);
	fclose(fe);
	*ret_err = err;
	return out;
}

static void test_result_json(void **state)
{
	struct cli_kvs fields = {};
	assert_int_equal(cli_kvs_set(&fields, "sandbox_id", "abc"), 0);
	assert_int_equal(cli_kvs_set(&fields, "agent_socket_path", "/run/x \"y\""), 0);

	struct cli_result ok = {.step = "create", .duration_ns = 1500000, .fields = &fields};
	json_t *j = cli_result_to_json(&ok);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "step")), "create");
	assert_int_equal(json_integer_value(json_object_get(j, "code")), 0);
	assert_string_equal(json_string_value(json_object_get(j, "code_name")), "OK");
	assert_null(json_object_get(j, "message"));
	assert_true(json_real_value(json_object_get(j, "duration_ms")) == 1.5);
	assert_string_equal(json_string_value(json_object_get(j, "agent_socket_path")),
			    "/run/x \"y\"");
	json_decref(j);

	/* The form of a failed raw call: exactly code, code_name, message. */
	struct cli_result bad = {
	    .code = 5, .message = "VM ID for ns:p was not found", .duration_ns = -1};
	j = cli_result_to_json(&bad);
	assert_int_equal(json_object_size(j), 3);
	assert_int_equal(json_integer_value(json_object_get(j, "code")), 5);
	assert_string_equal(json_string_value(json_object_get(j, "code_name")), "NOT_FOUND");
	assert_string_equal(json_string_value(json_object_get(j, "message")),
			    "VM ID for ns:p was not found");
	json_decref(j);

	struct cli_result odd = {.code = 99, .message = "m", .duration_ns = -1};
	j = cli_result_to_json(&odd);
	assert_string_equal(json_string_value(json_object_get(j, "code_name")), "CODE(99)");
	json_decref(j);

	/* One line of JSON on stdout, nothing on stderr, even for an error. */
	char *err = NULL;
	char *out = capture_result(&bad, true, &err);
	assert_string_equal(err, "");
	assert_non_null(strchr(out, '\n'));
	assert_int_equal(strchr(out, '\n')[1], '\0');
	json_error_t jerr;
	j = json_loads(out, 0, &jerr);
	assert_non_null(j);
	json_decref(j);
	free(out);
	free(err);
	cli_kvs_done(&fields);
}

static void test_result_human(void **state)
{
	char *err = NULL, *out;

	struct cli_result bad = {.code = 12, .message = "method Nope", .duration_ns = -1};
	out = capture_result(&bad, false, &err);
	assert_string_equal(out, "");
	assert_string_equal(err, "error: UNIMPLEMENTED: method Nope\n");
	free(out);
	free(err);

	struct cli_result conn = {.step = "create",
				  .code = 14,
				  .hide_code = true,
				  .message = "cannot connect to /x: No such file or directory"};
	out = capture_result(&conn, false, &err);
	assert_string_equal(err,
			    "error: create: cannot connect to /x: No such file or directory\n");
	free(out);
	free(err);

	struct cli_result empty = {.detail = ""};
	out = capture_result(&empty, false, &err);
	assert_string_equal(out, "\n");
	free(out);
	free(err);

	struct cli_result step = {
	    .step = "start", .show_step = true, .duration_ns = 2 * NSEC_PER_SEC, .detail = "abc"};
	out = capture_result(&step, false, &err);
	assert_non_null(strstr(out, "start"));
	assert_non_null(strstr(out, " ok "));
	assert_non_null(strstr(out, "2.000s"));
	assert_non_null(strstr(out, "abc\n"));
	free(out);
	free(err);
}

static void test_code_from_errno(void **state)
{
	assert_int_equal(cli_code_from_errno(-ETIMEDOUT), TTRPC_DEADLINE_EXCEEDED);
	assert_int_equal(cli_code_from_errno(-ECONNRESET), TTRPC_UNAVAILABLE);
	assert_int_equal(cli_code_from_errno(-ENOENT), TTRPC_UNAVAILABLE);
	assert_int_equal(cli_code_from_errno(-ENOMEM), TTRPC_UNKNOWN);
}

/* ---- cli_run: usage ---- */

struct run_output {
	int rc;
	char *out;
	char *err;
};

static void run_output_done(struct run_output *r)
{
	free(r->out);
	free(r->err);
}

static struct run_output run_cli(char **argv)
{
	struct run_output r = {};
	size_t ol = 0, el = 0;
	FILE *fo = open_memstream(&r.out, &ol);
	FILE *fe = open_memstream(&r.err, &el);
	int argc = 0;
	while (argv[argc])
		argc++;
	r.rc = cli_run(argc, argv, fo, fe);
	fclose(fo);
	fclose(fe);
	return r;
}

static const char *fake_env_socket;
static const char *fake_getenv(const char *name)
{
	return str_eq(name, CLI_SOCKET_ENV) ? fake_env_socket : NULL;
}

static void test_run_usage(void **state)
{
	struct run_output r;

	r = run_cli((char *[]){"peerpodctl", NULL});
	assert_int_equal(r.rc, CLI_EXIT_USAGE);
	run_output_done(&r);

	r = run_cli((char *[]){"peerpodctl", "frobnicate", NULL});
	assert_int_equal(r.rc, CLI_EXIT_USAGE);
	assert_non_null(strstr(r.err, "unknown command 'frobnicate'"));
	run_output_done(&r);

	r = run_cli((char *[]){"peerpodctl", "start", NULL});
	assert_int_equal(r.rc, CLI_EXIT_USAGE);
	assert_non_null(strstr(r.err, "sandbox id"));
	run_output_done(&r);

	r = run_cli((char *[]){"peerpodctl", "start", "a", "b", NULL});
	assert_int_equal(r.rc, CLI_EXIT_USAGE);
	run_output_done(&r);

	r = run_cli((char *[]){"peerpodctl", "start", "a", "--pod", "x", NULL});
	assert_int_equal(r.rc, CLI_EXIT_USAGE);
	assert_non_null(strstr(r.err, "--pod"));
	run_output_done(&r);

	r = run_cli((char *[]){"peerpodctl", "info", "--pod", "x", NULL});
	assert_int_equal(r.rc, CLI_EXIT_USAGE);
	run_output_done(&r);

	r = run_cli((char *[]){"peerpodctl", "create", "s", "--annotation", "noequals", NULL});
	assert_int_equal(r.rc, CLI_EXIT_USAGE);
	assert_non_null(strstr(r.err, "noequals"));
	run_output_done(&r);

	r = run_cli((char *[]){"peerpodctl", "agent", "health", NULL});
	assert_int_equal(r.rc, CLI_EXIT_USAGE);
	assert_non_null(strstr(r.err, "--agent-socket"));
	run_output_done(&r);

	r = run_cli(
	    (char *[]){"peerpodctl", "agent", "--agent-socket", "/x", "start-container", NULL});
	assert_int_equal(r.rc, CLI_EXIT_USAGE);
	run_output_done(&r);

	r = run_cli((char *[]){"peerpodctl", "agent", "--agent-socket", "/x", "health", "--pod",
			       "p", NULL});
	assert_int_equal(r.rc, CLI_EXIT_USAGE);
	run_output_done(&r);

	r = run_cli((char *[]){"peerpodctl", "call", "--address", "/x", "--service", "s", NULL});
	assert_int_equal(r.rc, CLI_EXIT_USAGE);
	run_output_done(&r);

	r = run_cli((char *[]){"peerpodctl", "call", "--address", "/x", "--service", "s",
			       "--method", "m", "--payload-hex", "xyz", NULL});
	assert_int_equal(r.rc, CLI_EXIT_USAGE);
	run_output_done(&r);

	r = run_cli((char *[]){"peerpodctl", "--version", NULL});
	assert_int_equal(r.rc, CLI_EXIT_OK);
	assert_string_equal(r.out, "peerpodctl " PP_VERSION "\n");
	run_output_done(&r);

	r = run_cli((char *[]){"peerpodctl", "start", "--help", NULL});
	assert_int_equal(r.rc, CLI_EXIT_OK);
	assert_non_null(strstr(r.out, "lifecycle"));
	run_output_done(&r);
}

/* ---- cli_run against an in-process server ---- */

struct fake {
	char dir[64];
	char hv_path[128];
	char agent_path[128];
	struct loop *loop;
	struct ttrpc_server *server;
	int stop_fd;
	pthread_t thread;
	/* What the server saw; read after the thread joined. */
	char *create_id;
	char *create_netns;
	char *create_pod;
	size_t create_n_annotations;
	unsigned n_start, n_stop, n_health;
};

static void fake_create(struct ttrpc_call *call, const uint8_t *p, size_t len, void *userdata)
{
	struct fake *f = userdata;
	Hypervisor__CreateVMRequest *req = hypervisor__create_vmrequest__unpack(NULL, len, p);
	if (!req) {
		ttrpc_call_reply_error(call, TTRPC_INVALID_ARGUMENT, "bad request");
		return;
	}
	free(f->create_id);
	free(f->create_netns);
	free(f->create_pod);
	f->create_id = strdup(req->id);
	f->create_netns = strdup(req->networknamespacepath);
	f->create_pod = NULL;
	f->create_n_annotations = req->n_annotations;
	for (size_t i = 0; i < req->n_annotations; i++)
		if (str_eq(req->annotations[i]->key, "io.kubernetes.cri.sandbox-name"))
			f->create_pod = strdup(req->annotations[i]->value);

	if (str_eq(req->id, "exists")) {
		ttrpc_call_reply_error(call, TTRPC_UNKNOWN, "sandbox exists already exists");
	} else {
		Hypervisor__CreateVMResponse resp = HYPERVISOR__CREATE_VMRESPONSE__INIT;
		uint8_t buf[256];
		resp.agentsocketpath = f->agent_path;
		ttrpc_call_reply(call, buf, hypervisor__create_vmresponse__pack(&resp, buf));
	}
	hypervisor__create_vmrequest__free_unpacked(req, NULL);
}

static void fake_start_stop(struct ttrpc_call *call, const uint8_t *p, size_t len, void *userdata)
{
	struct fake *f = userdata;
	Hypervisor__StartVMRequest *req = hypervisor__start_vmrequest__unpack(NULL, len, p);
	bool start = str_eq(ttrpc_call_method(call), "StartVM");
	if (!req) {
		ttrpc_call_reply_error(call, TTRPC_INVALID_ARGUMENT, "bad request");
		return;
	}
	if (start)
		f->n_start++;
	else
		f->n_stop++;
	if (start && str_eq(req->id, "fail"))
		ttrpc_call_reply_error(call, TTRPC_UNKNOWN, "creating an instance: quota exceeded");
	else
		ttrpc_call_reply(call, NULL, 0);
	hypervisor__start_vmrequest__free_unpacked(req, NULL);
}

static void fake_version(struct ttrpc_call *call, const uint8_t *p, size_t len, void *userdata)
{
	Hypervisor__VersionResponse resp = HYPERVISOR__VERSION_RESPONSE__INIT;
	uint8_t buf[32];
	resp.version = "0.0.0";
	ttrpc_call_reply(call, buf, hypervisor__version_response__pack(&resp, buf));
}

static void fake_info(struct ttrpc_call *call, const uint8_t *p, size_t len, void *userdata)
{
	Podvminfo__GetInfoRequest *req = podvminfo__get_info_request__unpack(NULL, len, p);
	if (req && str_eq(req->podname, "web") && str_eq(req->podnamespace, "prod")) {
		Podvminfo__GetInfoResponse resp = PODVMINFO__GET_INFO_RESPONSE__INIT;
		uint8_t buf[64];
		resp.vmid = "i-0123456789";
		ttrpc_call_reply(call, buf, podvminfo__get_info_response__pack(&resp, buf));
	} else {
		ttrpc_call_reply_error(call, TTRPC_NOT_FOUND, "VM ID for %s:%s was not found",
				       req ? req->podnamespace : "?", req ? req->podname : "?");
	}
	if (req)
		podvminfo__get_info_request__free_unpacked(req, NULL);
}

static void fake_health(struct ttrpc_call *call, const uint8_t *p, size_t len, void *userdata)
{
	struct fake *f = userdata;
	Grpc__HealthCheckResponse resp = GRPC__HEALTH_CHECK_RESPONSE__INIT;
	uint8_t buf[8];
	f->n_health++;
	resp.status = GRPC__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
	ttrpc_call_reply(call, buf, grpc__health_check_response__pack(&resp, buf));
}

static void fake_stop_io(struct loop_source *s, int fd, uint32_t events, void *userdata)
{
	loop_exit(loop_source_get_loop(s), 0);
}

static void *fake_thread(void *arg)
{
	struct fake *f = arg;
	loop_run(f->loop);
	return NULL;
}

static int fake_setup(void **state)
{
	struct fake *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test-cli-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->hv_path, sizeof(f->hv_path), "%s/hv.sock", f->dir);
	snprintf(f->agent_path, sizeof(f->agent_path), "%s/agent.ttrpc", f->dir);

	assert_int_equal(loop_new(&f->loop), 0);
	assert_int_equal(ttrpc_server_new(f->loop, &f->server), 0);
	assert_int_equal(
	    ttrpc_server_add_method(f->server, "hypervisor.Hypervisor", "CreateVM", fake_create, f),
	    0);
	assert_int_equal(ttrpc_server_add_method(f->server, "hypervisor.Hypervisor", "StartVM",
						 fake_start_stop, f),
			 0);
	assert_int_equal(ttrpc_server_add_method(f->server, "hypervisor.Hypervisor", "StopVM",
						 fake_start_stop, f),
			 0);
	assert_int_equal(
	    ttrpc_server_add_method(f->server, "hypervisor.Hypervisor", "Version", fake_version, f),
	    0);
	assert_int_equal(
	    ttrpc_server_add_method(f->server, "podvminfo.PodVMInfo", "GetInfo", fake_info, f), 0);
	assert_int_equal(ttrpc_server_add_method(f->server, "grpc.Health", "Check", fake_health, f),
			 0);
	assert_int_equal(ttrpc_server_listen_unix(f->server, f->hv_path, 0600), 0);
	assert_int_equal(ttrpc_server_listen_unix(f->server, f->agent_path, 0600), 0);

	f->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_true(f->stop_fd >= 0);
	assert_int_equal(loop_add_io(f->loop, f->stop_fd, EPOLLIN, fake_stop_io, f, NULL), 0);
	assert_int_equal(pthread_create(&f->thread, NULL, fake_thread, f), 0);

	fake_env_socket = f->hv_path;
	config_set_getenv(fake_getenv);
	*state = f;
	return 0;
}

/* Stop the server thread so its recorded state can be read. */
static void fake_join(struct fake *f)
{
	if (f->stop_fd < 0)
		return;
	uint64_t one = 1;
	assert_int_equal(write(f->stop_fd, &one, sizeof(one)), sizeof(one));
	pthread_join(f->thread, NULL);
	f->server = ttrpc_server_free(f->server);
	f->loop = loop_free(f->loop);
	f->stop_fd = safe_close(f->stop_fd);
}

static int fake_teardown(void **state)
{
	struct fake *f = *state;
	fake_join(f);
	rm_rf(f->dir);
	free(f->create_id);
	free(f->create_netns);
	free(f->create_pod);
	free(f);
	config_set_getenv(NULL);
	fake_env_socket = NULL;
	return 0;
}

static void test_run_create_uses_env_socket(void **state)
{
	struct fake *f = *state;

	/* No --socket: PEERPODCTL_SOCKET (through config_getenv) names the fake. */
	struct run_output r =
	    run_cli((char *[]){"peerpodctl", "create", "sid1", "--pod", "nginx", "--namespace",
			       "default", "--netns", "/var/run/netns/cni-1", NULL});
	assert_int_equal(r.rc, CLI_EXIT_OK);
	char *want = str_printf("%s\n", f->agent_path);
	assert_string_equal(r.out, want);
	free(want);
	run_output_done(&r);

	fake_join(f);
	assert_string_equal(f->create_id, "sid1");
	assert_string_equal(f->create_netns, "/var/run/netns/cni-1");
	assert_string_equal(f->create_pod, "nginx");
	assert_int_equal(f->create_n_annotations, SHIM_KEYS);
}

static void test_run_server_errors(void **state)
{
	struct fake *f = *state;
	struct run_output r;

	r = run_cli((char *[]){"peerpodctl", "--socket", f->hv_path, "create", "exists", NULL});
	assert_int_equal(r.rc, CLI_EXIT_FAILED);
	assert_string_equal(r.err, "error: create: UNKNOWN: sandbox exists already exists\n");
	run_output_done(&r);

	r = run_cli(
	    (char *[]){"peerpodctl", "info", "--pod", "x", "--namespace", "y", "--json", NULL});
	assert_int_equal(r.rc, CLI_EXIT_FAILED);
	json_error_t jerr;
	json_t *j = json_loads(r.out, 0, &jerr);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "code_name")), "NOT_FOUND");
	assert_string_equal(json_string_value(json_object_get(j, "message")),
			    "VM ID for y:x was not found");
	json_decref(j);
	run_output_done(&r);

	r = run_cli((char *[]){"peerpodctl", "info", "--pod", "web", "--namespace", "prod", NULL});
	assert_int_equal(r.rc, CLI_EXIT_OK);
	assert_string_equal(r.out, "i-0123456789\n");
	run_output_done(&r);

	r = run_cli((char *[]){"peerpodctl", "version", "--json", NULL});
	assert_int_equal(r.rc, CLI_EXIT_OK);
	j = json_loads(r.out, 0, &jerr);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "server")), "0.0.0");
	assert_string_equal(json_string_value(json_object_get(j, "client")), PP_VERSION);
	json_decref(j);
	run_output_done(&r);
}

static void test_run_lifecycle(void **state)
{
	struct fake *f = *state;

	struct run_output r = run_cli((char *[]){"peerpodctl", "lifecycle", "--pod", "web",
						 "--namespace", "prod", "--json", NULL});
	assert_int_equal(r.rc, CLI_EXIT_OK);
	/* One JSON object per step, in order, all OK, all with the same generated sid. */
	const char *steps[] = {"create", "start", "health", "stop", "lifecycle"};
	char *line = r.out, *sid = NULL;
	for (size_t i = 0; i < ELEMENTSOF(steps); i++) {
		char *nl = strchr(line, '\n');
		assert_non_null(nl);
		*nl = '\0';
		json_error_t jerr;
		json_t *j = json_loads(line, 0, &jerr);
		assert_non_null(j);
		assert_string_equal(json_string_value(json_object_get(j, "step")), steps[i]);
		assert_int_equal(json_integer_value(json_object_get(j, "code")), 0);
		assert_true(json_is_real(json_object_get(j, "duration_ms")));
		const char *s = json_string_value(json_object_get(j, "sandbox_id"));
		assert_true(cli_sid_is_valid(s));
		if (!sid)
			sid = strdup(s);
		assert_string_equal(s, sid);
		json_decref(j);
		line = nl + 1;
	}
	assert_string_equal(line, "");
	run_output_done(&r);

	fake_join(f);
	assert_string_equal(f->create_id, sid);
	assert_int_equal(f->n_start, 1);
	assert_int_equal(f->n_health, 1);
	assert_int_equal(f->n_stop, 1);
	free(sid);
}

static void test_run_lifecycle_start_fails_still_stops(void **state)
{
	struct fake *f = *state;

	struct run_output r = run_cli((char *[]){"peerpodctl", "lifecycle", "--sid", "fail",
						 "--pod", "web", "--namespace", "prod", NULL});
	assert_int_equal(r.rc, CLI_EXIT_FAILED);
	assert_non_null(
	    strstr(r.err, "error: start: UNKNOWN: creating an instance: quota exceeded"));
	assert_non_null(strstr(r.out, "sandbox fail pod prod/web"));
	run_output_done(&r);

	fake_join(f);
	assert_int_equal(f->n_start, 1);
	assert_int_equal(f->n_health, 0);
	assert_int_equal(f->n_stop, 1);
}

static void test_run_call(void **state)
{
	struct fake *f = *state;
	struct run_output r;

	/* Golden VersionRequest{version:"0.0.0"} -> VersionResponse{version:"0.0.0"}. */
	r = run_cli((char *[]){"peerpodctl", "call", "--address", f->hv_path, "--service",
			       "hypervisor.Hypervisor", "--method", "Version", "--payload-hex",
			       "0a05302e302e30", NULL});
	assert_int_equal(r.rc, CLI_EXIT_OK);
	assert_string_equal(r.out, "0a05302e302e30\n");
	run_output_done(&r);

	/* Empty response: an empty line. */
	r = run_cli((char *[]){"peerpodctl", "call", "--address", f->hv_path, "--service",
			       "hypervisor.Hypervisor", "--method", "StopVM", NULL});
	assert_int_equal(r.rc, CLI_EXIT_OK);
	assert_string_equal(r.out, "\n");
	run_output_done(&r);

	r = run_cli((char *[]){"peerpodctl", "call", "--address", f->hv_path, "--service",
			       "hypervisor.Hypervisor", "--method", "NoSuchMethod", NULL});
	assert_int_equal(r.rc, CLI_EXIT_FAILED);
	assert_string_equal(r.err, "error: UNIMPLEMENTED: method NoSuchMethod\n");
	run_output_done(&r);

	r = run_cli((char *[]){"peerpodctl", "--json", "call", "--address", f->hv_path, "--service",
			       "nope.Service", "--method", "X", NULL});
	assert_int_equal(r.rc, CLI_EXIT_FAILED);
	json_error_t jerr;
	json_t *j = json_loads(r.out, 0, &jerr);
	assert_non_null(j);
	assert_int_equal(json_object_size(j), 3);
	assert_int_equal(json_integer_value(json_object_get(j, "code")), 12);
	assert_string_equal(json_string_value(json_object_get(j, "code_name")), "UNIMPLEMENTED");
	assert_string_equal(json_string_value(json_object_get(j, "message")),
			    "service nope.Service");
	json_decref(j);
	run_output_done(&r);

	/* The agent side of the same fake. */
	r = run_cli(
	    (char *[]){"peerpodctl", "agent", "--agent-socket", f->agent_path, "health", NULL});
	assert_int_equal(r.rc, CLI_EXIT_OK);
	assert_non_null(strstr(r.out, "SERVING"));
	run_output_done(&r);
}

static void test_run_connect_failure(void **state)
{
	char dir[] = "/tmp/test-cli-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char *path = str_printf("%s/missing.sock", dir);

	struct run_output r =
	    run_cli((char *[]){"peerpodctl", "--socket", path, "start", "s", NULL});
	assert_int_equal(r.rc, CLI_EXIT_FAILED);
	char *want = str_printf("error: start: cannot connect to %s: %s\n", path, strerror(ENOENT));
	assert_string_equal(r.err, want);
	free(want);
	run_output_done(&r);

	r = run_cli((char *[]){"peerpodctl", "--json", "--socket", path, "stop", "s", NULL});
	assert_int_equal(r.rc, CLI_EXIT_FAILED);
	json_error_t jerr;
	json_t *j = json_loads(r.out, 0, &jerr);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "code_name")), "UNAVAILABLE");
	assert_non_null(strstr(json_string_value(json_object_get(j, "message")), "cannot connect"));
	json_decref(j);
	run_output_done(&r);

	free(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_annotation_parse),
	    cmocka_unit_test(test_annotations_defaults),
	    cmocka_unit_test(test_annotations_pod_and_overrides),
	    cmocka_unit_test(test_create_vm_request),
	    cmocka_unit_test(test_create_container_request),
	    cmocka_unit_test(test_create_sandbox_request),
	    cmocka_unit_test(test_sid),
	    cmocka_unit_test(test_hex_decode),
	    cmocka_unit_test(test_args_anywhere),
	    cmocka_unit_test(test_args_dashdash_and_bools),
	    cmocka_unit_test(test_args_errors),
	    cmocka_unit_test(test_result_json),
	    cmocka_unit_test(test_result_human),
	    cmocka_unit_test(test_code_from_errno),
	    cmocka_unit_test(test_run_usage),
	    cmocka_unit_test(test_run_connect_failure),
	    cmocka_unit_test_setup_teardown(test_run_create_uses_env_socket, fake_setup,
					    fake_teardown),
	    cmocka_unit_test_setup_teardown(test_run_server_errors, fake_setup, fake_teardown),
	    cmocka_unit_test_setup_teardown(test_run_lifecycle, fake_setup, fake_teardown),
	    cmocka_unit_test_setup_teardown(test_run_lifecycle_start_fails_still_stops, fake_setup,
					    fake_teardown),
	    cmocka_unit_test_setup_teardown(test_run_call, fake_setup, fake_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* adaptor/service.c: the remote-hypervisor service (WIRE.md 2) and the sandbox lifecycle.
 * Handlers run on the loop thread; provider calls run on the worker pool and come back through
 * the done callbacks below. Every state change is persisted before it is acted upon, so a
 * restart finds either the instance id or nothing to own (and the sweep removes strays). */
#include <dirent.h>
#include <sys/stat.h>

#include "adaptor.h"
#include "hypervisor.pb-c.h"
#include "log/log.h"
#include "podnet.h"
#include "podvminfo.pb-c.h"
#include "userdata/userdata.h"

#define STATE_FILE_MAX_BYTES (64u << 10)
#define APF_FILE_MAX_BYTES (1u << 20)
#define INITDATA_FILE_MAX_BYTES (1u << 20)
#define DELETE_ATTEMPTS 3
#define GETINFO_MARGIN_NS (10 * NSEC_PER_MSEC)

/* ---- helpers ---- */

static void sandbox_log_fields(const struct sandbox *sb, struct log_fields *lf)
{
	*lf = (struct log_fields){sb->id, sb->pod_label, sb->instance_id};
}

static void reply_message(struct ttrpc_call *call, const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	_cleanup_free_ uint8_t *buf = malloc(n ? n : 1);
	if (!buf) {
		ttrpc_call_reply_error(call, TTRPC_INTERNAL, "out of memory");
		return;
	}
	protobuf_c_message_pack(m, buf);
	ttrpc_call_reply(call, buf, n);
}

struct sandbox *adaptor_find_sandbox(struct adaptor *a, const char *id)
{
	for (struct sandbox *sb = a->sandboxes; sb; sb = sb->next)
		if (str_eq(sb->id, id))
			return sb;
	return NULL;
}

static void sandbox_link(struct adaptor *a, struct sandbox *sb)
{
	sb->adaptor = a;
	sb->next = a->sandboxes;
	a->sandboxes = sb;
	a->n_sandboxes++;
}

static void sandbox_unlink_and_free(struct adaptor *a, struct sandbox *sb)
{
	for (struct sandbox **p = &a->sandboxes; *p; p = &(*p)->next)
		if (*p == sb) {
			*p = sb->next;
			a->n_sandboxes--;
			break;
		}
	proxy_stop(sb);
	sandbox_free(sb);
}

int adaptor_save_sandbox(struct adaptor *a, struct sandbox *sb)
{
	_cleanup_free_ char *json = NULL;
	_cleanup_free_ char *path = str_printf("%s/state.json", sb->dir);
	if (!path)
		return -ENOMEM;
	int r = sandbox_to_json(sb, &json);
	if (r < 0)
		return r;
	r = write_file_atomic(path, json, strlen(json), 0600);
	if (r < 0) {
		struct log_fields lf;
		sandbox_log_fields(sb, &lf);
		logp_error_errno(&lf, r, "cannot write %s", path);
	}
	return r;
}

static int sandbox_paths(struct adaptor *a, struct sandbox *sb)
{
	sb->dir = str_printf("%s/%s", a->settings->pods_dir, sb->id);
	sb->agent_socket = str_printf("%s/%s/agent.ttrpc", a->settings->pods_dir, sb->id);
	sb->pod_label = str_printf("%s/%s", sb->pod_namespace, sb->pod_name);
	return sb->dir && sb->agent_socket && sb->pod_label ? 0 : -ENOMEM;
}

static void set_state(struct sandbox *sb, enum sandbox_state st)
{
	sb->state = st;
	(void)adaptor_save_sandbox(sb->adaptor, sb);
}

static int sandbox_podnet_json(const struct sandbox *sb, char **ret)
{
	json_t *o = NULL;
	int r = podnet_to_json(&sb->podnet, &o);
	if (r < 0)
		return r;
	*ret = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return *ret ? 0 : -ENOMEM;
}

/* ---- provider work on the pool ---- */

enum work_kind { WORK_CREATE, WORK_DELETE, WORK_LIST };

struct work {
	struct adaptor *adaptor;
	enum work_kind kind;
	char *sandbox_id;
	char *instance_id;
	/* create */
	char *instance_name, *pod_name, *pod_namespace, *node_name, *user_data, *apf_json, *image,
	    *machine_type;
	unsigned vcpus, memory_mib, gpus;
	struct provider_instance result;
	/* pod network: the model as apf.json's object (a deep copy the worker parses) */
	char *podnet_json;
	char *netns;
	char *vm_ip;        /* delete: the tunnel's remote end; create: chosen after creation */
	bool podnet_active; /* delete: tear the tunnel down first */
	bool podnet_done;   /* create: the tunnel is up */
	char *podnet_msg;   /* why setup or teardown failed */
	/* Kubernetes (adaptor/k8s.c): create fills pod_uid and peerpod_name; delete releases
	 * peerpod_name's finalizer after the instance is gone */
	char *initdata;
	char *peerpod_name;
	char *k8s_msg;       /* a warning about what the Kubernetes calls could not do */
	bool release_failed; /* delete: the instance is gone, the finalizer stays */
	/* list */
	struct provider_instance *list;
	size_t n_list;
	struct pp_error *err;
	void (*done)(struct adaptor *a, struct work *w, int r);
};

static void work_free(struct work *w)
{
	if (!w)
		return;
	free(w->sandbox_id);
	free(w->instance_id);
	free(w->instance_name);
	free(w->pod_name);
	free(w->pod_namespace);
	free(w->node_name);
	free_secret(w->user_data);
	free_secret(w->apf_json);
	free(w->image);
	free(w->machine_type);
	free(w->podnet_json);
	free(w->netns);
	free(w->vm_ip);
	free(w->podnet_msg);
	free(w->initdata);
	free(w->peerpod_name);
	free(w->k8s_msg);
	provider_instance_done(&w->result);
	provider_instances_free(w->list, w->n_list);
	pp_error_free(w->err);
	free(w);
}

/* The worker's copy of the sandbox's pod network model. */
static int podnet_load(const char *json_text, struct netns_pod_network *ret)
{
	json_error_t jerr;
	json_t *o = json_loads(json_text, 0, &jerr);
	if (!o)
		return -EINVAL;
	int r = podnet_from_json(o, ret);
	json_decref(o);
	return r;
}

static int podnet_setup_after_create(struct work *w)
{
	struct netns_pod_network n = {0};
	int r = podnet_load(w->podnet_json, &n);
	if (r < 0) {
		w->podnet_msg = strdup("cannot read the pod network model");
		return r;
	}
	/* WIRE.md 6.2: the second address when the tunnel uses a dedicated interface */
	const char *ip = n.dedicated && w->result.n_ips > 1 ? w->result.ips[1] : w->result.ips[0];
	w->vm_ip = strdup(ip);
	r = w->vm_ip ? podnet_setup(&n, ip, w->netns, NULL, &w->podnet_msg) : -ENOMEM;
	netns_pod_network_done(&n);
	w->podnet_done = r >= 0;
	return r;
}

static void podnet_teardown_before_delete(struct work *w)
{
	struct netns_pod_network n = {0};
	int r = podnet_load(w->podnet_json, &n);
	if (r >= 0)
		r = podnet_teardown(&n, w->vm_ip, w->netns, NULL, &w->podnet_msg);
	else
		w->podnet_msg = strdup("cannot read the pod network model");
	netns_pod_network_done(&n);
}

/* Before creating the instance: the pod's uid for the PeerPod and its registry credentials for
 * auth.json. A failing API server costs one bounded call and a warning, never the start. */
static void k8s_before_create(struct work *w, char **ret_uid)
{
	struct adaptor *a = w->adaptor;
	_cleanup_secret_ char *auth = NULL;
	int r = adaptor_k8s_pod_prepare(a->k8s, w->pod_namespace, w->pod_name, ret_uid, &auth,
					&w->k8s_msg);
	if (r < 0 || !auth)
		return;
	char *ud = NULL;
	r = adaptor_build_user_data_auth(a, w->apf_json, auth, w->initdata, &ud);
	if (r < 0) {
		free(w->k8s_msg);
		w->k8s_msg = strdup("cannot add auth.json to the user data");
		return;
	}
	free_secret(w->user_data);
	w->user_data = ud;
}

static void k8s_after_create(struct work *w, const char *pod_uid)
{
	_cleanup_pp_error_ struct pp_error *err = NULL;
	int r = adaptor_k8s_peerpod_create(w->adaptor->k8s, w->pod_namespace, w->pod_name, pod_uid,
					   w->result.id, &w->peerpod_name, &err);
	if (r < 0 && !w->k8s_msg)
		w->k8s_msg = str_printf("creating the PeerPod: %s", pp_error_message(err, r));
}

static int work_run(void *data)
{
	struct work *w = data;
	const struct provider_ops *ops = w->adaptor->provider_ops;
	struct provider *p = w->adaptor->provider;
	switch (w->kind) {
	case WORK_CREATE: {
		if (!ops->create_instance)
			return -EOPNOTSUPP;
		struct provider_instance_spec spec = {
		    .instance_name = w->instance_name,
		    .sandbox_id = w->sandbox_id,
		    .pod_name = w->pod_name,
		    .pod_namespace = w->pod_namespace,
		    .node_name = w->node_name,
		    .user_data = w->user_data,
		    .apf_json = w->apf_json,
		    .image = w->image ?: "",
		    .machine_type = w->machine_type ?: "",
		    .vcpus = w->vcpus,
		    .memory_mib = w->memory_mib,
		    .gpus = w->gpus,
		};
		_cleanup_free_ char *pod_uid = NULL;
		if (w->adaptor->k8s) {
			k8s_before_create(w, &pod_uid);
			spec.user_data = w->user_data;
		}
		int r = ops->create_instance(p, &spec, &w->result, &w->err);
		if (r >= 0 && pod_uid && w->result.id)
			k8s_after_create(w, pod_uid);
		/* The tunnel needs the instance's address; a failure here is reported beside
		 * the created instance, which create_done() then deletes. */
		if (r >= 0 && w->podnet_json && w->result.n_ips > 0)
			(void)podnet_setup_after_create(w);
		return r;
	}
	case WORK_DELETE: {
		if (!ops->delete_instance)
			return -EOPNOTSUPP;
		if (w->podnet_active)
			podnet_teardown_before_delete(w);
		int r = 0;
		for (int attempt = 0; attempt < DELETE_ATTEMPTS; attempt++) {
			if (attempt > 0) {
				/* back off 1 s, 2 s: cloud throttling and transient faults */
				sleep(1u << (attempt - 1));
				pp_error_free(w->err);
				w->err = NULL;
			}
			r = ops->delete_instance(p, w->instance_id, &w->err);
			if (r >= 0)
				break;
		}
		if (r >= 0 && w->peerpod_name && w->adaptor->k8s) {
			_cleanup_pp_error_ struct pp_error *err = NULL;
			int k = adaptor_k8s_peerpod_release(w->adaptor->k8s, w->pod_namespace,
							    w->peerpod_name, &err);
			if (k < 0) {
				w->release_failed = true;
				w->k8s_msg = str_printf("releasing PeerPod %s: %s", w->peerpod_name,
							pp_error_message(err, k));
			}
		}
		return r;
	}
	case WORK_LIST:
		if (!ops->list_instances)
			return -EOPNOTSUPP;
		return ops->list_instances(p, &w->list, &w->n_list, &w->err);
	}
	return -EINVAL;
}

static void work_done(struct loop *l, int r, void *data)
{
	struct work *w = data;
	if (w->kind == WORK_DELETE)
		w->adaptor->pending_deletes--;
	w->done(w->adaptor, w, r);
	work_free(w);
}

static int work_submit(struct adaptor *a, struct work *w)
{
	if (w->kind == WORK_DELETE)
		a->pending_deletes++;
	int r = loop_submit_work(a->loop, work_run, work_done, w);
	if (r < 0) {
		if (w->kind == WORK_DELETE)
			a->pending_deletes--;
		work_free(w);
	}
	return r;
}

/* ---- stopping ---- */

static void finish_stop(struct sandbox *sb)
{
	struct adaptor *a = sb->adaptor;
	struct log_fields lf;
	sandbox_log_fields(sb, &lf);
	int r = rm_rf(sb->dir);
	if (r < 0)
		logp_warning_errno(&lf, r, "cannot remove %s", sb->dir);
	for (size_t i = 0; i < sb->n_stop_calls; i++)
		ttrpc_call_reply(sb->stop_calls[i], NULL, 0);
	sb->n_stop_calls = 0;
	logp_info(&lf, "sandbox stopped");
	sandbox_unlink_and_free(a, sb);
}

/* A delete work finished: the tunnel is gone (or was never there) and the outcome is logged.
 * Returns the sandbox, or NULL when it is not known any more. */
static struct sandbox *delete_finished(struct adaptor *a, struct work *w, int r,
				       const char *context)
{
	struct sandbox *sb = adaptor_find_sandbox(a, w->sandbox_id);
	if (!sb)
		return NULL;
	struct log_fields lf;
	sandbox_log_fields(sb, &lf);
	if (w->podnet_active) {
		if (w->podnet_msg)
			logp_error(&lf, "removing the pod network tunnel: %s", w->podnet_msg);
		sb->podnet_active = false;
	}
	if (r < 0)
		logp_error(&lf, "deleting instance %s%s failed: %s", w->instance_id, context,
			   pp_error_message(w->err, r));
	else
		logp_info(&lf, "instance %s deleted%s", w->instance_id, context);
	if (r >= 0 && w->peerpod_name) {
		if (w->release_failed) {
			logp_warning(&lf, "%s; retrying later",
				     w->k8s_msg ?: "releasing the PeerPod");
			adaptor_k8s_release_later(a, sb->pod_namespace, w->peerpod_name);
		} else
			logp_info(&lf, "PeerPod %s released", w->peerpod_name);
		sb->peerpod_name = mfree(sb->peerpod_name);
	}
	return sb;
}

static void delete_done_stop(struct adaptor *a, struct work *w, int r)
{
	/* After a failure the instance keeps its tags: the sweep at the next start deletes it. */
	struct sandbox *sb = delete_finished(a, w, r, "");
	if (sb)
		finish_stop(sb);
}

static int submit_delete(struct sandbox *sb, void (*done)(struct adaptor *, struct work *, int))
{
	struct adaptor *a = sb->adaptor;
	struct work *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	*w = (struct work){.adaptor = a, .kind = WORK_DELETE, .done = done};
	w->sandbox_id = strdup(sb->id);
	w->instance_id = strdup(sb->instance_id);
	if (sb->peerpod_name && a->k8s) {
		w->peerpod_name = strdup(sb->peerpod_name);
		w->pod_namespace = strdup(sb->pod_namespace);
		if (!w->peerpod_name || !w->pod_namespace) {
			work_free(w);
			return -ENOMEM;
		}
	}
	if (!w->sandbox_id || !w->instance_id) {
		work_free(w);
		return -ENOMEM;
	}
	if (sb->has_podnet && sb->podnet_active) {
		w->podnet_active = true;
		w->netns = str_dup(sb->netns);
		w->vm_ip = str_dup(sb->vm_ip);
		if (sandbox_podnet_json(sb, &w->podnet_json) < 0 || !w->netns) {
			work_free(w);
			return -ENOMEM;
		}
	}
	return work_submit(a, w);
}

static void begin_stop(struct sandbox *sb)
{
	struct log_fields lf;
	sandbox_log_fields(sb, &lf);
	proxy_stop(sb);
	set_state(sb, SANDBOX_STOPPING);
	if (!sb->instance_id) {
		finish_stop(sb);
		return;
	}
	logp_info(&lf, "deleting instance %s", sb->instance_id);
	int r = submit_delete(sb, delete_done_stop);
	if (r < 0) {
		logp_error_errno(&lf, r, "cannot schedule deletion of instance %s",
				 sb->instance_id);
		finish_stop(sb);
	}
}

/* A start attempt ended (successfully or not); honour a StopVM that came meanwhile. */
static void settle(struct sandbox *sb)
{
	if (sb->stop_requested && sb->state != SANDBOX_STOPPING)
		begin_stop(sb);
}

/* ---- starting ---- */

static void start_reply_error(struct sandbox *sb, int code, const char *fmt, ...) _printf_(3, 4);
static void start_reply_error(struct sandbox *sb, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	_cleanup_free_ char *msg = str_vprintf(fmt, ap);
	va_end(ap);
	struct log_fields lf;
	sandbox_log_fields(sb, &lf);
	logp_error(&lf, "StartVM failed: %s", msg ?: "out of memory");
	metrics_counter_inc(sb->adaptor->startvm_failed);
	if (sb->start_call)
		ttrpc_call_reply_error(sb->start_call, code, "%s", msg ?: "out of memory");
	sb->start_call = NULL;
}

static void delete_done_failed_start(struct adaptor *a, struct work *w, int r)
{
	struct sandbox *sb = delete_finished(a, w, r, " after a failed start");
	if (!sb)
		return;
	free(sb->instance_id);
	sb->instance_id = NULL;
	for (size_t i = 0; i < sb->n_ips; i++) {
		free(sb->ips[i]);
		sb->ips[i] = NULL;
	}
	sb->n_ips = 0;
	set_state(sb, SANDBOX_CREATED);
	settle(sb);
}

/* Undo a start after the instance exists. */
static void abort_start(struct sandbox *sb)
{
	proxy_stop(sb);
	struct log_fields lf;
	sandbox_log_fields(sb, &lf);
	int r = submit_delete(sb, delete_done_failed_start);
	if (r < 0) {
		logp_error_errno(&lf, r, "cannot schedule deletion of instance %s",
				 sb->instance_id);
		set_state(sb, SANDBOX_CREATED);
		settle(sb);
	}
}

static void start_connected(struct sandbox *sb, int error, const char *detail)
{
	struct log_fields lf;
	sandbox_log_fields(sb, &lf);
	if (error < 0) {
		start_reply_error(
		    sb, TTRPC_UNKNOWN,
		    "failed to connect to the agent-protocol-forwarder of %s at %s:%u: "
		    "%s",
		    sb->instance_name, sb->ips[0], sb->adaptor->settings->forwarder_port,
		    detail ?: strerror(-error));
		abort_start(sb);
		return;
	}
	set_state(sb, SANDBOX_RUNNING);
	logp_info(&lf, "sandbox running, agent socket %s", sb->agent_socket);
	metrics_counter_inc(sb->adaptor->startvm_ok);
	metrics_histogram_observe(sb->adaptor->startvm_seconds,
				  (double)(now_ns() - sb->start_begin_ns) / NSEC_PER_SEC);
	if (sb->start_call)
		ttrpc_call_reply(sb->start_call, NULL, 0);
	sb->start_call = NULL;
	settle(sb);
}

static void notify_info_waiters(struct adaptor *a, struct sandbox *sb);

static void create_done(struct adaptor *a, struct work *w, int r)
{
	struct sandbox *sb = adaptor_find_sandbox(a, w->sandbox_id);
	if (!sb) {
		/* Cannot happen: a sandbox is only forgotten after its start settled. */
		return;
	}
	struct log_fields lf;
	sandbox_log_fields(sb, &lf);
	if (r < 0) {
		if (w->k8s_msg)
			logp_warning(&lf, "Kubernetes: %s", w->k8s_msg);
		start_reply_error(sb, TTRPC_UNKNOWN, "creating an instance : %s",
				  pp_error_message(w->err, r));
		set_state(sb, SANDBOX_CREATED);
		settle(sb);
		return;
	}
	/* Record the instance before anything else can fail, so it is never forgotten. */
	sb->instance_id = TAKE_PTR(w->result.id);
	for (size_t i = 0; i < w->result.n_ips && i < ELEMENTSOF(sb->ips); i++)
		sb->ips[sb->n_ips++] = TAKE_PTR(w->result.ips[i]);
	if (w->podnet_done) {
		sb->podnet_active = true;
		free(sb->vm_ip);
		sb->vm_ip = TAKE_PTR(w->vm_ip);
	}
	if (w->peerpod_name) {
		free(sb->peerpod_name);
		sb->peerpod_name = TAKE_PTR(w->peerpod_name);
	}
	set_state(sb, SANDBOX_STARTING);
	sandbox_log_fields(sb, &lf);
	logp_info(&lf, "instance %s created, address %s", sb->instance_id,
		  sb->n_ips ? sb->ips[0] : "(none)");
	if (w->k8s_msg)
		logp_warning(&lf, "Kubernetes: %s", w->k8s_msg);
	if (sb->peerpod_name)
		logp_info(&lf, "PeerPod %s/%s created", sb->pod_namespace, sb->peerpod_name);
	notify_info_waiters(a, sb);

	if (sb->stop_requested || sb->start_cancelled || !sb->start_call) {
		start_reply_error(sb, TTRPC_CANCELLED, "StartVM of sandbox %s was cancelled",
				  sb->id);
		abort_start(sb);
		return;
	}
	if (sb->n_ips == 0) {
		start_reply_error(sb, TTRPC_UNKNOWN, "instance %s has no IP address",
				  sb->instance_id);
		abort_start(sb);
		return;
	}
	if (sb->has_podnet && !sb->podnet_active) {
		start_reply_error(sb, TTRPC_UNKNOWN, "setting up the pod network: %s",
				  w->podnet_msg ?: "failed");
		abort_start(sb);
		return;
	}
	r = proxy_start(sb);
	if (r < 0) {
		start_reply_error(sb, TTRPC_UNKNOWN, "cannot listen on %s: %s", sb->agent_socket,
				  strerror(-r));
		abort_start(sb);
		return;
	}
	int64_t deadline = now_ns() + a->settings->proxy_timeout_ns;
	if (sb->start_deadline_ns > 0 && sb->start_deadline_ns < deadline)
		deadline = sb->start_deadline_ns;
	r = proxy_connect(sb, deadline, start_connected);
	if (r < 0)
		start_connected(sb, r, NULL);
}

static void start_cancel(struct ttrpc_call *call, int code, void *userdata)
{
	struct sandbox *sb = userdata;
	/* The server has answered (or cannot answer) the call; finish the start anyway and
	 * roll it back, as the shim will not use this VM. */
	sb->start_call = NULL;
	sb->start_cancelled = true;
	ttrpc_call_reply(call, NULL, 0); /* frees the call; the answer is dropped */
	if (sb->on_connected) {
		proxy_stop(sb);
		struct log_fields lf;
		sandbox_log_fields(sb, &lf);
		logp_warning(&lf, "StartVM cancelled (%s) while waiting for the forwarder",
			     ttrpc_code_name(code) ?: "?");
		abort_start(sb);
	}
}

static void start_vm(struct adaptor *a, struct ttrpc_call *call, const char *id)
{
	struct sandbox *sb = adaptor_find_sandbox(a, id);
	if (!sb) {
		ttrpc_call_reply_error(call, TTRPC_NOT_FOUND, "sandbox %s does not exist", id);
		return;
	}
	if (sb->state == SANDBOX_RUNNING) {
		ttrpc_call_reply(call, NULL, 0);
		return;
	}
	if (sb->state != SANDBOX_CREATED || sb->stop_requested) {
		ttrpc_call_reply_error(call, TTRPC_FAILED_PRECONDITION, "sandbox %s is %s", sb->id,
				       sb->stop_requested ? "stopping"
							  : sandbox_state_to_string(sb->state));
		return;
	}

	struct log_fields lf;
	sandbox_log_fields(sb, &lf);
	_cleanup_free_ char *apf_path = str_printf("%s/apf.json", sb->dir);
	_cleanup_secret_ char *apf = NULL;
	int r = apf_path ? read_file_bounded(apf_path, APF_FILE_MAX_BYTES, &apf, NULL) : -ENOMEM;
	if (r < 0) {
		ttrpc_call_reply_error(call, TTRPC_INTERNAL, "cannot read %s: %s", apf_path ?: "",
				       strerror(-r));
		return;
	}
	/* The pod's own initdata (encoded at CreateVM) wins over the global default. */
	_cleanup_free_ char *initdata_path = str_printf("%s/initdata", sb->dir);
	_cleanup_free_ char *initdata = NULL;
	if (!initdata_path)
		r = -ENOMEM;
	else if ((r = read_file_bounded(initdata_path, INITDATA_FILE_MAX_BYTES, &initdata, NULL)) ==
		 -ENOENT)
		r = 0;
	if (r < 0) {
		ttrpc_call_reply_error(call, TTRPC_INTERNAL, "cannot read %s: %s",
				       initdata_path ?: "", strerror(-r));
		return;
	}
	_cleanup_secret_ char *user_data = NULL;
	r = adaptor_build_user_data(a, apf, initdata ?: a->settings->initdata, &user_data);
	if (r < 0) {
		ttrpc_call_reply_error(call, TTRPC_INTERNAL, "cannot build user data: %s",
				       strerror(-r));
		return;
	}

	struct work *w = calloc(1, sizeof(*w));
	if (!w) {
		ttrpc_call_reply_error(call, TTRPC_INTERNAL, "out of memory");
		return;
	}
	*w = (struct work){.adaptor = a,
			   .kind = WORK_CREATE,
			   .done = create_done,
			   .vcpus = sb->vcpus,
			   .memory_mib = sb->memory_mib,
			   .gpus = sb->gpus};
	w->sandbox_id = strdup(sb->id);
	w->instance_name = strdup(sb->instance_name);
	w->pod_name = strdup(sb->pod_name);
	w->pod_namespace = strdup(sb->pod_namespace);
	w->node_name = strdup(a->settings->node_name ?: "");
	w->user_data = TAKE_PTR(user_data);
	w->apf_json = TAKE_PTR(apf);
	w->initdata = str_dup(initdata ?: a->settings->initdata);
	w->image = str_dup(sb->image);
	w->machine_type = str_dup(sb->machine_type);
	if (sb->has_podnet) {
		w->netns = str_dup(sb->netns);
		if (sandbox_podnet_json(sb, &w->podnet_json) < 0)
			w->netns = mfree(w->netns);
	}
	if (!w->sandbox_id || !w->instance_name || !w->pod_name || !w->pod_namespace ||
	    !w->node_name || (sb->has_podnet && !w->netns)) {
		work_free(w);
		ttrpc_call_reply_error(call, TTRPC_INTERNAL, "out of memory");
		return;
	}

	sb->start_call = call;
	sb->start_cancelled = false;
	sb->start_deadline_ns = ttrpc_call_deadline_ns(call);
	sb->start_begin_ns = now_ns();
	ttrpc_call_set_cancel(call, start_cancel, sb);
	set_state(sb, SANDBOX_STARTING);
	logp_info(&lf, "creating instance %s", sb->instance_name);
	r = work_submit(a, w);
	if (r < 0) {
		start_reply_error(sb, TTRPC_INTERNAL, "cannot schedule instance creation: %s",
				  strerror(-r));
		set_state(sb, SANDBOX_CREATED);
	}
}

static void handle_start_vm(struct ttrpc_call *call, const uint8_t *payload, size_t len,
			    void *userdata)
{
	Hypervisor__StartVMRequest *req = hypervisor__start_vmrequest__unpack(NULL, len, payload);
	if (!req) {
		ttrpc_call_reply_error(call, TTRPC_INVALID_ARGUMENT,
				       "unmarshal request error: invalid StartVMRequest");
		return;
	}
	start_vm(userdata, call, req->id);
	hypervisor__start_vmrequest__free_unpacked(req, NULL);
}

/* ---- StopVM ---- */

static void handle_stop_vm(struct ttrpc_call *call, const uint8_t *payload, size_t len,
			   void *userdata)
{
	struct adaptor *a = userdata;
	Hypervisor__StopVMRequest *req = hypervisor__stop_vmrequest__unpack(NULL, len, payload);
	if (!req) {
		ttrpc_call_reply_error(call, TTRPC_INVALID_ARGUMENT,
				       "unmarshal request error: invalid StopVMRequest");
		return;
	}
	struct sandbox *sb = adaptor_find_sandbox(a, req->id);
	hypervisor__stop_vmrequest__free_unpacked(req, NULL);
	metrics_counter_inc(a->stopvm_total);
	if (!sb) {
		/* Already stopped (or never created): teardown is idempotent for the shim. */
		ttrpc_call_reply(call, NULL, 0);
		return;
	}
	struct ttrpc_call **calls =
	    reallocarray(sb->stop_calls, sb->n_stop_calls + 1, sizeof(*calls));
	if (!calls) {
		ttrpc_call_reply_error(call, TTRPC_INTERNAL, "out of memory");
		return;
	}
	sb->stop_calls = calls;
	sb->stop_calls[sb->n_stop_calls++] = call;
	/* StopVM finishes its work even after the caller's deadline (WIRE.md 2.3): no cancel
	 * callback; a late reply is dropped by the server. */
	struct log_fields lf;
	sandbox_log_fields(sb, &lf);
	if (sb->stop_requested || sb->state == SANDBOX_STOPPING)
		return;
	sb->stop_requested = true;
	logp_info(&lf, "stopping sandbox (state %s)", sandbox_state_to_string(sb->state));
	switch (sb->state) {
	case SANDBOX_CREATED:
	case SANDBOX_RUNNING:
		begin_stop(sb);
		break;
	case SANDBOX_STARTING:
		if (sb->on_connected) {
			/* Waiting for the forwarder: give up on it now. */
			start_reply_error(sb, TTRPC_CANCELLED, "sandbox %s is being stopped",
					  sb->id);
			begin_stop(sb);
		}
		/* else the provider call is in flight; create_done() settles. */
		break;
	case SANDBOX_STOPPING:
		break;
	}
}

/* ---- CreateVM ---- */

static const char *annotation(const Hypervisor__CreateVMRequest *req, const char *key)
{
	for (size_t i = 0; i < req->n_annotations; i++)
		if (str_eq(req->annotations[i]->key, key))
			return req->annotations[i]->value;
	return NULL;
}

static void handle_create_vm(struct ttrpc_call *call, const uint8_t *payload, size_t len,
			     void *userdata)
{
	struct adaptor *a = userdata;
	Hypervisor__CreateVMRequest *req = hypervisor__create_vmrequest__unpack(NULL, len, payload);
	struct sandbox *sb = NULL;
	_cleanup_secret_ char *key_pem = NULL;
	_cleanup_free_ char *cert_pem = NULL, *apf_path = NULL;
	_cleanup_secret_ char *apf = NULL;
	_cleanup_free_ char *initdata = NULL;
	bool dir_made = false;
	int r;

	if (!req) {
		ttrpc_call_reply_error(call, TTRPC_INVALID_ARGUMENT,
				       "unmarshal request error: invalid CreateVMRequest");
		return;
	}
	if (str_empty(req->id)) {
		ttrpc_call_reply_error(call, TTRPC_INVALID_ARGUMENT, "empty sandbox id");
		goto out;
	}
	if (!naming_sandbox_id_valid(req->id)) {
		ttrpc_call_reply_error(call, TTRPC_INVALID_ARGUMENT,
				       "invalid sandbox id: only letters, digits, '-', '_' and "
				       "'.' are allowed, at most 128");
		goto out;
	}
	const char *name = annotation(req, ANNOTATION_SANDBOX_NAME);
	const char *ns = annotation(req, ANNOTATION_SANDBOX_NAMESPACE);
	if (str_empty(name)) {
		ttrpc_call_reply_error(call, TTRPC_INVALID_ARGUMENT,
				       "pod name " ANNOTATION_SANDBOX_NAME
				       " is missing in annotations");
		goto out;
	}
	if (str_empty(ns)) {
		ttrpc_call_reply_error(call, TTRPC_INVALID_ARGUMENT,
				       "namespace name " ANNOTATION_SANDBOX_NAMESPACE
				       " is missing in annotations");
		goto out;
	}
	if (adaptor_find_sandbox(a, req->id)) {
		ttrpc_call_reply_error(call, TTRPC_ALREADY_EXISTS, "sandbox %s already exists",
				       req->id);
		goto out;
	}

	sb = calloc(1, sizeof(*sb));
	if (!sb)
		goto oom;
	sb->adaptor = a;
	sb->id = strdup(req->id);
	sb->pod_name = naming_pod_name(name);
	sb->pod_namespace = strdup(ns);
	sb->netns = strdup(req->networknamespacepath ?: "");
	sb->image = str_dup(annotation(req, ANNOTATION_IMAGE));
	sb->machine_type = str_dup(annotation(req, ANNOTATION_MACHINE_TYPE));
	sb->vcpus = naming_annotation_uint(annotation(req, ANNOTATION_VCPUS));
	sb->memory_mib = naming_annotation_uint(annotation(req, ANNOTATION_MEMORY));
	sb->gpus = naming_annotation_uint(annotation(req, ANNOTATION_GPUS));
	sb->index = a->next_index++;
	sb->state = SANDBOX_CREATED;
	if (!sb->id || !sb->pod_name || !sb->pod_namespace || !sb->netns)
		goto oom;
	sb->instance_name = naming_instance_name(sb->pod_name, sb->id);
	if (!sb->instance_name || sandbox_paths(a, sb) < 0)
		goto oom;

	/* The pod network is extended into real VMs only; it needs the pod's netns. */
	if (a->provider_ops->pod_network && !str_empty(sb->netns)) {
		const struct adaptor_settings *s = a->settings;
		struct podnet_params pp = {
		    .host_interface = s->host_interface,
		    .pod_subnet_cidrs = s->pod_subnet_cidrs,
		    .index = sb->index,
		    .vxlan_min_id = s->vxlan_min_id,
		    .vxlan_port = s->vxlan_port,
		    .tunnel_type = s->tunnel_type,
		    .external_net_via_pod_vm = s->ext_network_via_podvm,
		};
		_cleanup_free_ char *msg = NULL;
		r = podnet_inspect(sb->netns, &pp, &sb->podnet, &msg);
		if (r < 0) {
			ttrpc_call_reply_error(call, TTRPC_UNKNOWN, "%s",
					       msg ?: "cannot inspect the pod network");
			goto fail;
		}
		sb->has_podnet = true;
	}
	const char *cc_init_data = annotation(req, ANNOTATION_INITDATA);
	if (!str_empty(cc_init_data)) {
		_cleanup_free_ char *msg = NULL;
		r = initdata_encode_annotation(cc_init_data, strlen(cc_init_data), &initdata, &msg);
		if (r < 0) {
			ttrpc_call_reply_error(call, TTRPC_INVALID_ARGUMENT,
					       "annotation " ANNOTATION_INITDATA ": %s",
					       msg ?: strerror(-r));
			goto fail;
		}
	}

	r = mkdir(sb->dir, 0700);
	if (r < 0) {
		r = -errno;
		ttrpc_call_reply_error(call, TTRPC_INTERNAL, "cannot create %s: %s", sb->dir,
				       strerror(-r));
		goto fail;
	}
	dir_made = true;
	if (certs_can_issue(a->certs)) {
		r = certs_issue_server(a->certs, sb->instance_name, &key_pem, &cert_pem);
		if (r < 0) {
			ttrpc_call_reply_error(call, TTRPC_INTERNAL,
					       "cannot issue the pod VM's certificate: %s",
					       strerror(-r));
			goto fail;
		}
	}
	r = adaptor_build_apf_json(a, sb, key_pem, cert_pem, &apf);
	apf_path = str_printf("%s/apf.json", sb->dir);
	if (r >= 0 && !apf_path)
		r = -ENOMEM;
	if (r >= 0)
		r = write_file_atomic(apf_path, apf, strlen(apf), 0600);
	if (r >= 0 && initdata) {
		_cleanup_free_ char *p = str_printf("%s/initdata", sb->dir);
		r = p ? write_file_atomic(p, initdata, strlen(initdata), 0600) : -ENOMEM;
	}
	if (r >= 0)
		r = adaptor_save_sandbox(a, sb);
	if (r < 0) {
		ttrpc_call_reply_error(call, TTRPC_INTERNAL, "cannot write the sandbox state: %s",
				       strerror(-r));
		goto fail;
	}

	sandbox_link(a, sb);
	struct log_fields lf;
	sandbox_log_fields(sb, &lf);
	logp_info(&lf, "sandbox created, instance name %s", sb->instance_name);
	Hypervisor__CreateVMResponse resp = HYPERVISOR__CREATE_VMRESPONSE__INIT;
	resp.agentsocketpath = sb->agent_socket;
	reply_message(call, &resp.base);
	goto out;

oom:
	ttrpc_call_reply_error(call, TTRPC_INTERNAL, "out of memory");
fail:
	if (dir_made)
		(void)rm_rf(sb->dir);
	sandbox_free(sb);
out:
	hypervisor__create_vmrequest__free_unpacked(req, NULL);
}

/* ---- Version ---- */

static void handle_version(struct ttrpc_call *call, const uint8_t *payload, size_t len,
			   void *userdata)
{
	Hypervisor__VersionRequest *req = hypervisor__version_request__unpack(NULL, len, payload);
	if (!req) {
		ttrpc_call_reply_error(call, TTRPC_INVALID_ARGUMENT,
				       "unmarshal request error: invalid VersionRequest");
		return;
	}
	hypervisor__version_request__free_unpacked(req, NULL);
	Hypervisor__VersionResponse resp = HYPERVISOR__VERSION_RESPONSE__INIT;
	resp.version = (char *)"0.0.0";
	reply_message(call, &resp.base);
}

/* ---- podvminfo.PodVMInfo/GetInfo ---- */

struct info_waiter {
	struct adaptor *adaptor;
	struct ttrpc_call *call;
	char *name, *ns;
	struct loop_source *timer;
	struct info_waiter *next;
};

static void info_waiter_remove(struct info_waiter *w)
{
	for (struct info_waiter **p = &w->adaptor->info_waiters; *p; p = &(*p)->next)
		if (*p == w) {
			*p = w->next;
			break;
		}
	loop_source_free(w->timer);
	free(w->name);
	free(w->ns);
	free(w);
}

static void reply_vmid(struct ttrpc_call *call, const char *id)
{
	Podvminfo__GetInfoResponse resp = PODVMINFO__GET_INFO_RESPONSE__INIT;
	resp.vmid = (char *)id;
	reply_message(call, &resp.base);
}

static void notify_info_waiters(struct adaptor *a, struct sandbox *sb)
{
	for (struct info_waiter *w = a->info_waiters, *next; w; w = next) {
		next = w->next;
		if (str_eq(w->name, sb->pod_name) && str_eq(w->ns, sb->pod_namespace)) {
			reply_vmid(w->call, sb->instance_id);
			info_waiter_remove(w);
		}
	}
}

static void info_timeout(struct loop_source *s, void *userdata)
{
	struct info_waiter *w = userdata;
	ttrpc_call_reply_error(w->call, TTRPC_DEADLINE_EXCEEDED,
			       "getting VM ID for %s:%s: getting instance ID: context deadline "
			       "exceeded",
			       w->ns, w->name);
	info_waiter_remove(w);
}

static void info_cancel(struct ttrpc_call *call, int code, void *userdata)
{
	struct info_waiter *w = userdata;
	ttrpc_call_reply(call, NULL, 0); /* dropped; frees the call */
	info_waiter_remove(w);
}

static void handle_get_info(struct ttrpc_call *call, const uint8_t *payload, size_t len,
			    void *userdata)
{
	struct adaptor *a = userdata;
	Podvminfo__GetInfoRequest *req = podvminfo__get_info_request__unpack(NULL, len, payload);
	if (!req) {
		ttrpc_call_reply_error(call, TTRPC_INVALID_ARGUMENT,
				       "unmarshal request error: invalid GetInfoRequest");
		return;
	}
	for (struct sandbox *sb = a->sandboxes; sb; sb = sb->next)
		if (sb->instance_id && str_eq(sb->pod_name, req->podname) &&
		    str_eq(sb->pod_namespace, req->podnamespace)) {
			reply_vmid(call, sb->instance_id);
			goto out;
		}
	if (!req->wait) {
		ttrpc_call_reply_error(call, TTRPC_NOT_FOUND, "VM ID for %s:%s was not found",
				       req->podnamespace, req->podname);
		goto out;
	}
	struct info_waiter *w = calloc(1, sizeof(*w));
	if (!w || !(w->name = strdup(req->podname)) || !(w->ns = strdup(req->podnamespace))) {
		if (w) {
			free(w->name);
			free(w);
		}
		ttrpc_call_reply_error(call, TTRPC_INTERNAL, "out of memory");
		goto out;
	}
	w->adaptor = a;
	w->call = call;
	int64_t deadline = ttrpc_call_deadline_ns(call);
	/* Answer just before the server's own DEADLINE_EXCEEDED, with the reference text. */
	if (deadline > 0 &&
	    loop_add_timer(a->loop, deadline - GETINFO_MARGIN_NS, info_timeout, w, &w->timer) < 0) {
		free(w->name);
		free(w->ns);
		free(w);
		ttrpc_call_reply_error(call, TTRPC_INTERNAL, "out of memory");
		goto out;
	}
	ttrpc_call_set_cancel(call, info_cancel, w);
	w->next = a->info_waiters;
	a->info_waiters = w;
out:
	podvminfo__get_info_request__free_unpacked(req, NULL);
}

/* ---- restore and sweep ---- */

static void sweep_delete_done(struct adaptor *a, struct work *w, int r)
{
	if (r < 0)
		log_error("deleting stray instance %s failed: %s", w->instance_id,
			  pp_error_message(w->err, r));
	else
		log_info("deleted stray instance %s (no sandbox owns it)", w->instance_id);
}

static bool instance_owned(struct adaptor *a, const struct provider_instance *pi)
{
	for (struct sandbox *sb = a->sandboxes; sb; sb = sb->next) {
		if (str_eq(sb->instance_id, pi->id))
			return true;
		/* A start in flight may have created it before recording it. */
		if (pi->sandbox_id && str_eq(sb->id, pi->sandbox_id))
			return true;
	}
	return false;
}

static void list_done(struct adaptor *a, struct work *w, int r)
{
	a->reconciled = true;
	if (r == -EOPNOTSUPP)
		return;
	if (r < 0) {
		log_warning("listing instances for the leak sweep failed: %s",
			    pp_error_message(w->err, r));
		return;
	}
	const char *node = a->settings->node_name ?: "";
	for (size_t i = 0; i < w->n_list; i++) {
		struct provider_instance *pi = &w->list[i];
		if (!str_eq(pi->node_name ?: "", node) || instance_owned(a, pi))
			continue;
		struct work *d = calloc(1, sizeof(*d));
		if (!d)
			return;
		*d = (struct work){.adaptor = a, .kind = WORK_DELETE, .done = sweep_delete_done};
		d->instance_id = strdup(pi->id);
		if (!d->instance_id) {
			work_free(d);
			return;
		}
		log_info("instance %s (%s) belongs to no sandbox; deleting it", pi->id,
			 pi->name ?: "?");
		(void)work_submit(a, d);
	}
}

static int restore_one(struct adaptor *a, const char *id)
{
	_cleanup_free_ char *path = str_printf("%s/%s/state.json", a->settings->pods_dir, id);
	_cleanup_free_ char *text = NULL;
	size_t len;
	if (!path)
		return -ENOMEM;
	int r = read_file_bounded(path, STATE_FILE_MAX_BYTES, &text, &len);
	if (r < 0) {
		log_warning_errno(r, "ignoring %s/%s: cannot read state.json",
				  a->settings->pods_dir, id);
		return 0;
	}
	_cleanup_free_ char *msg = NULL;
	struct sandbox *sb = NULL;
	r = sandbox_from_json(text, len, &sb, &msg);
	if (r < 0 || !str_eq(sb->id, id)) {
		log_warning("ignoring %s: %s", path, msg ?: "id does not match its directory");
		sandbox_free(sb);
		return 0;
	}
	sb->adaptor = a;
	if (sandbox_paths(a, sb) < 0) {
		sandbox_free(sb);
		return -ENOMEM;
	}
	sandbox_link(a, sb);
	if (sb->index >= a->next_index)
		a->next_index = sb->index + 1;
	struct log_fields lf;
	sandbox_log_fields(sb, &lf);
	switch (sb->state) {
	case SANDBOX_CREATED:
		logp_info(&lf, "restored sandbox (created)");
		break;
	case SANDBOX_RUNNING:
		r = proxy_start(sb);
		if (r < 0)
			logp_error_errno(&lf, r, "cannot listen on %s", sb->agent_socket);
		else
			logp_info(&lf, "restored running sandbox, agent socket %s",
				  sb->agent_socket);
		break;
	case SANDBOX_STARTING:
		/* The start died with the previous process: roll it back. */
		logp_info(&lf, "restored an interrupted start; rolling it back");
		if (sb->instance_id)
			abort_start(sb);
		else
			set_state(sb, SANDBOX_CREATED);
		break;
	case SANDBOX_STOPPING:
		logp_info(&lf, "restored an interrupted stop; finishing it");
		sb->stop_requested = true;
		begin_stop(sb);
		break;
	}
	return 0;
}

int adaptor_restore(struct adaptor *a)
{
	DIR *d = opendir(a->settings->pods_dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	struct dirent *de;
	int r = 0;
	while ((de = readdir(d))) {
		if (!naming_sandbox_id_valid(de->d_name) || de->d_name[0] == '.')
			continue;
		r = restore_one(a, de->d_name);
		if (r < 0)
			break;
	}
	closedir(d);
	if (r < 0)
		return r;

	struct work *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	*w = (struct work){.adaptor = a, .kind = WORK_LIST, .done = list_done};
	return work_submit(a, w);
}

/* ---- lifecycle of the daemon ---- */

int adaptor_new(struct loop *loop, struct adaptor_settings *settings,
		const struct provider_ops *ops, struct provider *provider,
		struct adaptor_certs *certs, struct adaptor **ret)
{
	struct adaptor *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	*a = (struct adaptor){.loop = loop,
			      .settings = settings,
			      .provider_ops = ops,
			      .provider = provider,
			      .certs = certs};
	int r = mkdir_p(settings->pods_dir, 0755);
	if (r < 0) {
		free(a);
		return r;
	}
	*ret = a;
	return 0;
}

struct adaptor *adaptor_free(struct adaptor *a)
{
	if (!a)
		return NULL;
	a->server = ttrpc_server_free(a->server);
	adaptor_k8s_free(a);
	while (a->info_waiters)
		info_waiter_remove(a->info_waiters);
	while (a->sandboxes) {
		struct sandbox *sb = a->sandboxes;
		a->sandboxes = sb->next;
		proxy_stop(sb);
		sandbox_free(sb);
	}
	free(a);
	return NULL;
}

int adaptor_serve(struct adaptor *a)
{
	int r = ttrpc_server_new(a->loop, &a->server);
	if (r < 0)
		return r;
	static const struct {
		const char *service, *method;
		ttrpc_method_fn fn;
	} methods[] = {
	    {"hypervisor.Hypervisor", "CreateVM", handle_create_vm},
	    {"hypervisor.Hypervisor", "StartVM", handle_start_vm},
	    {"hypervisor.Hypervisor", "StopVM", handle_stop_vm},
	    {"hypervisor.Hypervisor", "Version", handle_version},
	    {"podvminfo.PodVMInfo", "GetInfo", handle_get_info},
	};
	for (size_t i = 0; i < ELEMENTSOF(methods); i++) {
		r = ttrpc_server_add_method(a->server, methods[i].service, methods[i].method,
					    methods[i].fn, a);
		if (r < 0)
			return r;
	}
	return ttrpc_server_listen_unix(a->server, a->settings->socket, 0660);
}

bool adaptor_drain(struct adaptor *a)
{
	if (!a->draining) {
		a->draining = true;
		/* No new calls; running pods keep their agent proxies until we exit, and their
		 * VMs keep running: the next adaptor process picks them up. */
		a->server = ttrpc_server_free(a->server);
		(void)unlink(a->settings->socket);
		adaptor_k8s_shutdown(a);
	}
	return loop_pending_work(a->loop) == 0;
}

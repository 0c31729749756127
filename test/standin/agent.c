/* agent-standin: the grpc.Health and grpc.AgentService handlers (WIRE 3.1) and the little state
 * they check: which sandboxes and containers exist, and which WaitProcess calls are parked. */
#include "standin.h"

#include <inttypes.h>

#include "agent.pb-c.h"
#include "health.pb-c.h"

#define AGENT_SERVICE "grpc.AgentService"
#define HEALTH_SERVICE "grpc.Health"
/* Leaves room for the Response envelope around a ReadStreamResponse. */
#define READ_MAX_BYTES (TTRPC_MAX_DATA_BYTES - 64)

struct container {
	char *id;
	char *sandbox_id;
	bool started;
	struct container *next;
};

/* A parked WaitProcess call. */
struct waiter {
	struct standin *s;
	struct ttrpc_call *call;
	char *container_id;
	struct waiter *next;
};

struct standin {
	struct loop *loop;
	struct ttrpc_server *server;
	int record_fd;
	bool wait_blocks;
	char **sandboxes;
	struct container *containers;
	struct waiter *waiters;
	struct binding *bindings; /* one per entry of methods[] */
};

typedef void (*handler_fn)(struct standin *s, struct ttrpc_call *call, const uint8_t *payload,
			   size_t len);

struct binding {
	struct standin *s;
	const struct method *m;
};

struct method {
	const char *service;
	const char *name;
	handler_fn fn; /* NULL: empty OK */
};

/* ---- state ---- */

static struct container *container_find(struct standin *s, const char *id)
{
	for (struct container *c = s->containers; c; c = c->next)
		if (str_eq(c->id, id))
			return c;
	return NULL;
}

static bool sandbox_known(struct standin *s, const char *id)
{
	for (char **p = s->sandboxes; p && *p; p++)
		if (str_eq(*p, id))
			return true;
	return false;
}

static void container_free(struct container *c)
{
	if (!c)
		return;
	free(c->id);
	free(c->sandbox_id);
	free(c);
}

static void waiter_free(struct waiter *w)
{
	if (!w)
		return;
	free(w->container_id);
	free(w);
}

static void waiter_unlink(struct waiter *w)
{
	for (struct waiter **p = &w->s->waiters; *p; p = &(*p)->next)
		if (*p == w) {
			*p = w->next;
			return;
		}
}

static void reply_status(struct ttrpc_call *call, int32_t status)
{
	Grpc__WaitProcessResponse resp = GRPC__WAIT_PROCESS_RESPONSE__INIT;
	uint8_t buf[16];

	resp.status = status;
	size_t n = grpc__wait_process_response__pack(&resp, buf);
	ttrpc_call_reply(call, buf, n);
}

/* Complete the parked WaitProcess calls of a container (all when id is NULL). */
static void release_waiters(struct standin *s, const char *id, int32_t status)
{
	struct waiter **p = &s->waiters;
	while (*p) {
		struct waiter *w = *p;
		if (id && !str_eq(w->container_id, id)) {
			p = &w->next;
			continue;
		}
		*p = w->next;
		reply_status(w->call, status);
		waiter_free(w);
	}
}

static void remove_container(struct standin *s, const char *id)
{
	for (struct container **p = &s->containers; *p; p = &(*p)->next)
		if (str_eq((*p)->id, id)) {
			struct container *c = *p;
			*p = c->next;
			container_free(c);
			break;
		}
	release_waiters(s, id, 0);
}

/* ---- handlers ---- */

#define UNPACK_OR_FAIL(type, prefix, var, call, payload, len)                            \
	type *var = prefix##__unpack(NULL, len, payload);                                \
	if (!var) {                                                                      \
		ttrpc_call_reply_error(call, TTRPC_INVALID_ARGUMENT,                     \
				       "unmarshal request error: cannot decode " #type); \
		return;                                                                  \
	}

static void health_check(struct standin *s, struct ttrpc_call *call, const uint8_t *payload,
			 size_t len)
{
	Grpc__HealthCheckResponse resp = GRPC__HEALTH_CHECK_RESPONSE__INIT;
	uint8_t buf[8];

	resp.status = GRPC__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
	ttrpc_call_reply(call, buf, grpc__health_check_response__pack(&resp, buf));
}

static void health_version(struct standin *s, struct ttrpc_call *call, const uint8_t *payload,
			   size_t len)
{
	Grpc__VersionCheckResponse resp = GRPC__VERSION_CHECK_RESPONSE__INIT;
	uint8_t buf[128];

	resp.grpc_version = (char *)"0.0.1";
	resp.agent_version = (char *)"agent-standin " PP_VERSION;
	ttrpc_call_reply(call, buf, grpc__version_check_response__pack(&resp, buf));
}

static void create_sandbox(struct standin *s, struct ttrpc_call *call, const uint8_t *payload,
			   size_t len)
{
	UNPACK_OR_FAIL(Grpc__CreateSandboxRequest, grpc__create_sandbox_request, req, call, payload,
		       len);

	if (sandbox_known(s, req->sandbox_id)) {
		ttrpc_call_reply_error(call, TTRPC_ALREADY_EXISTS, "sandbox %s already exists",
				       req->sandbox_id);
	} else {
		size_t n = strv_length(s->sandboxes);
		char *id = strdup(req->sandbox_id);
		char **v = id ? reallocarray(s->sandboxes, n + 2, sizeof(char *)) : NULL;
		if (!v) {
			free(id);
			ttrpc_call_reply_error(call, TTRPC_INTERNAL, "out of memory");
		} else {
			v[n] = id;
			v[n + 1] = NULL;
			s->sandboxes = v;
			ttrpc_call_reply(call, NULL, 0);
		}
	}
	grpc__create_sandbox_request__free_unpacked(req, NULL);
}

static void destroy_sandbox(struct standin *s, struct ttrpc_call *call, const uint8_t *payload,
			    size_t len)
{
	/* One agent serves one pod: tearing down the sandbox ends every container. */
	while (s->containers) {
		struct container *c = s->containers;
		s->containers = c->next;
		container_free(c);
	}
	release_waiters(s, NULL, 0);
	strv_free(s->sandboxes);
	s->sandboxes = NULL;
	ttrpc_call_reply(call, NULL, 0);
}

static const char *spec_annotation(const Grpc__Spec *spec, const char *key)
{
	for (size_t i = 0; spec && i < spec->n_annotations; i++)
		if (str_eq(spec->annotations[i]->key, key))
			return spec->annotations[i]->value;
	return NULL;
}

static void create_container(struct standin *s, struct ttrpc_call *call, const uint8_t *payload,
			     size_t len)
{
	UNPACK_OR_FAIL(Grpc__CreateContainerRequest, grpc__create_container_request, req, call,
		       payload, len);
	const char *sandbox_id = spec_annotation(req->oci, "io.kubernetes.cri.sandbox-id");

	if (str_empty(req->container_id))
		ttrpc_call_reply_error(call, TTRPC_INVALID_ARGUMENT, "empty container id");
	else if (!req->oci)
		ttrpc_call_reply_error(call, TTRPC_INVALID_ARGUMENT, "no OCI spec");
	else if (!s->sandboxes)
		ttrpc_call_reply_error(call, TTRPC_FAILED_PRECONDITION, "no sandbox created");
	else if (sandbox_id && !sandbox_known(s, sandbox_id))
		ttrpc_call_reply_error(call, TTRPC_FAILED_PRECONDITION, "sandbox %s does not exist",
				       sandbox_id);
	else if (container_find(s, req->container_id))
		ttrpc_call_reply_error(call, TTRPC_ALREADY_EXISTS, "container %s already exists",
				       req->container_id);
	else {
		struct container *c = calloc(1, sizeof(*c));
		if (c) {
			c->id = strdup(req->container_id);
			c->sandbox_id = strdup(sandbox_id ? sandbox_id : s->sandboxes[0]);
		}
		if (!c || !c->id || !c->sandbox_id) {
			container_free(c);
			ttrpc_call_reply_error(call, TTRPC_INTERNAL, "out of memory");
		} else {
			c->next = s->containers;
			s->containers = c;
			ttrpc_call_reply(call, NULL, 0);
		}
	}
	grpc__create_container_request__free_unpacked(req, NULL);
}

static void start_container(struct standin *s, struct ttrpc_call *call, const uint8_t *payload,
			    size_t len)
{
	UNPACK_OR_FAIL(Grpc__StartContainerRequest, grpc__start_container_request, req, call,
		       payload, len);
	struct container *c = container_find(s, req->container_id);
	if (!c) {
		ttrpc_call_reply_error(call, TTRPC_NOT_FOUND, "container %s not found",
				       req->container_id);
	} else {
		c->started = true;
		ttrpc_call_reply(call, NULL, 0);
	}
	grpc__start_container_request__free_unpacked(req, NULL);
}

static void remove_container_handler(struct standin *s, struct ttrpc_call *call,
				     const uint8_t *payload, size_t len)
{
	UNPACK_OR_FAIL(Grpc__RemoveContainerRequest, grpc__remove_container_request, req, call,
		       payload, len);
	if (!container_find(s, req->container_id)) {
		ttrpc_call_reply_error(call, TTRPC_NOT_FOUND, "container %s not found",
				       req->container_id);
	} else {
		remove_container(s, req->container_id);
		ttrpc_call_reply(call, NULL, 0);
	}
	grpc__remove_container_request__free_unpacked(req, NULL);
}

static void set_policy(struct standin *s, struct ttrpc_call *call, const uint8_t *payload,
		       size_t len)
{
	UNPACK_OR_FAIL(Grpc__SetPolicyRequest, grpc__set_policy_request, req, call, payload, len);
	grpc__set_policy_request__free_unpacked(req, NULL);
	ttrpc_call_reply(call, NULL, 0);
}

static void copy_file(struct standin *s, struct ttrpc_call *call, const uint8_t *payload,
		      size_t len)
{
	UNPACK_OR_FAIL(Grpc__CopyFileRequest, grpc__copy_file_request, req, call, payload, len);
	if (str_empty(req->path) || req->path[0] != '/')
		ttrpc_call_reply_error(call, TTRPC_INVALID_ARGUMENT, "path must be absolute");
	else if (req->offset < 0 || req->file_size < 0 ||
		 (uint64_t)req->offset + req->data.len > (uint64_t)req->file_size)
		ttrpc_call_reply_error(call, TTRPC_INVALID_ARGUMENT,
				       "chunk at %" PRId64 "+%zu beyond file size %" PRId64,
				       req->offset, req->data.len, req->file_size);
	else
		ttrpc_call_reply(call, NULL, 0);
	grpc__copy_file_request__free_unpacked(req, NULL);
}

static void waiter_cancelled(struct ttrpc_call *call, int code, void *userdata)
{
	struct waiter *w = userdata;

	/* The answer is dropped, but replying is what releases the call. */
	waiter_unlink(w);
	ttrpc_call_reply_error(call, code ? code : TTRPC_CANCELLED, "cancelled");
	waiter_free(w);
}

static void wait_process(struct standin *s, struct ttrpc_call *call, const uint8_t *payload,
			 size_t len)
{
	UNPACK_OR_FAIL(Grpc__WaitProcessRequest, grpc__wait_process_request, req, call, payload,
		       len);
	_cleanup_free_ char *id = strdup(req->container_id);
	grpc__wait_process_request__free_unpacked(req, NULL);
	if (!id) {
		ttrpc_call_reply_error(call, TTRPC_INTERNAL, "out of memory");
		return;
	}
	if (!s->wait_blocks) {
		reply_status(call, 0);
		return;
	}
	if (!container_find(s, id)) {
		ttrpc_call_reply_error(call, TTRPC_NOT_FOUND, "container %s not found", id);
		return;
	}

	struct waiter *w = calloc(1, sizeof(*w));
	if (!w) {
		ttrpc_call_reply_error(call, TTRPC_INTERNAL, "out of memory");
		return;
	}
	*w =
	    (struct waiter){.s = s, .call = call, .container_id = TAKE_PTR(id), .next = s->waiters};
	s->waiters = w;
	ttrpc_call_set_cancel(call, waiter_cancelled, w);
}

static void signal_process(struct standin *s, struct ttrpc_call *call, const uint8_t *payload,
			   size_t len)
{
	UNPACK_OR_FAIL(Grpc__SignalProcessRequest, grpc__signal_process_request, req, call, payload,
		       len);
	if (!container_find(s, req->container_id)) {
		ttrpc_call_reply_error(call, TTRPC_NOT_FOUND, "container %s not found",
				       req->container_id);
	} else {
		/* The container's init "dies" of the signal, as the shim's teardown expects:
		 * SignalProcess, WaitProcess returns, RemoveContainer. */
		bool init = str_empty(req->exec_id) || str_eq(req->exec_id, req->container_id);
		if (init && req->signal != 0)
			release_waiters(s, req->container_id, 128 + (int32_t)req->signal);
		ttrpc_call_reply(call, NULL, 0);
	}
	grpc__signal_process_request__free_unpacked(req, NULL);
}

static void read_stdout(struct standin *s, struct ttrpc_call *call, const uint8_t *payload,
			size_t len)
{
	UNPACK_OR_FAIL(Grpc__ReadStreamRequest, grpc__read_stream_request, req, call, payload, len);
	size_t n = MIN((size_t)req->len, (size_t)READ_MAX_BYTES);
	grpc__read_stream_request__free_unpacked(req, NULL);

	Grpc__ReadStreamResponse resp = GRPC__READ_STREAM_RESPONSE__INIT;
	_cleanup_free_ uint8_t *data = malloc(n + 1);
	_cleanup_free_ uint8_t *out = NULL;
	if (data) {
		memset(data, 'x', n);
		resp.data.data = data;
		resp.data.len = n;
		out = malloc(grpc__read_stream_response__get_packed_size(&resp));
	}
	if (!out) {
		ttrpc_call_reply_error(call, TTRPC_INTERNAL, "out of memory");
		return;
	}
	ttrpc_call_reply(call, out, grpc__read_stream_response__pack(&resp, out));
}

static void write_stdin(struct standin *s, struct ttrpc_call *call, const uint8_t *payload,
			size_t len)
{
	UNPACK_OR_FAIL(Grpc__WriteStreamRequest, grpc__write_stream_request, req, call, payload,
		       len);
	Grpc__WriteStreamResponse resp = GRPC__WRITE_STREAM_RESPONSE__INIT;
	uint8_t buf[16];

	resp.len = (uint32_t)req->data.len;
	grpc__write_stream_request__free_unpacked(req, NULL);
	ttrpc_call_reply(call, buf, grpc__write_stream_response__pack(&resp, buf));
}

/* The 42 AgentService methods of WIRE 3.1 plus grpc.Health. */
static const struct method methods[] = {
    {HEALTH_SERVICE, "Check", health_check},
    {HEALTH_SERVICE, "Version", health_version},
    {AGENT_SERVICE, "CreateContainer", create_container},
    {AGENT_SERVICE, "StartContainer", start_container},
    {AGENT_SERVICE, "RemoveContainer", remove_container_handler},
    {AGENT_SERVICE, "ExecProcess", NULL},
    {AGENT_SERVICE, "SignalProcess", signal_process},
    {AGENT_SERVICE, "UpdateContainer", NULL},
    {AGENT_SERVICE, "UpdateEphemeralMounts", NULL},
    {AGENT_SERVICE, "PauseContainer", NULL},
    {AGENT_SERVICE, "ResumeContainer", NULL},
    {AGENT_SERVICE, "RemoveStaleVirtiofsShareMounts", NULL},
    {AGENT_SERVICE, "CloseStdin", NULL},
    {AGENT_SERVICE, "TtyWinResize", NULL},
    {AGENT_SERVICE, "AddARPNeighbors", NULL},
    {AGENT_SERVICE, "CreateSandbox", create_sandbox},
    {AGENT_SERVICE, "DestroySandbox", destroy_sandbox},
    {AGENT_SERVICE, "OnlineCPUMem", NULL},
    {AGENT_SERVICE, "ReseedRandomDev", NULL},
    {AGENT_SERVICE, "MemHotplugByProbe", NULL},
    {AGENT_SERVICE, "SetGuestDateTime", NULL},
    {AGENT_SERVICE, "CopyFile", copy_file},
    {AGENT_SERVICE, "AddSwap", NULL},
    {AGENT_SERVICE, "AddSwapPath", NULL},
    {AGENT_SERVICE, "ResizeVolume", NULL},
    {AGENT_SERVICE, "SetPolicy", set_policy},
    {AGENT_SERVICE, "MemAgentMemcgSet", NULL},
    {AGENT_SERVICE, "MemAgentCompactSet", NULL},
    {AGENT_SERVICE, "WaitProcess", wait_process},
    {AGENT_SERVICE, "StatsContainer", NULL},
    {AGENT_SERVICE, "GetDiagnosticData", NULL},
    {AGENT_SERVICE, "GetIPTables", NULL},
    {AGENT_SERVICE, "SetIPTables", NULL},
    {AGENT_SERVICE, "WriteStdin", write_stdin},
    {AGENT_SERVICE, "ReadStdout", read_stdout},
    {AGENT_SERVICE, "ReadStderr", NULL},
    {AGENT_SERVICE, "UpdateInterface", NULL},
    {AGENT_SERVICE, "UpdateRoutes", NULL},
    {AGENT_SERVICE, "ListRoutes", NULL},
    {AGENT_SERVICE, "ListInterfaces", NULL},
    {AGENT_SERVICE, "GetMetrics", NULL},
    {AGENT_SERVICE, "GetGuestDetails", NULL},
    {AGENT_SERVICE, "GetOOMEvent", NULL},
    {AGENT_SERVICE, "GetVolumeStats", NULL},
};

/* ---- dispatch ---- */

/* Record the request as received, then run its handler. */
static void dispatch(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *userdata)
{
	struct binding *b = userdata;
	struct standin *s = b->s;

	if (s->record_fd >= 0) {
		int r = record_write(s->record_fd, b->m->service, b->m->name, payload, len,
				     ttrpc_call_timeout_nano(call), ttrpc_call_metadata(call),
				     ttrpc_call_n_metadata(call));
		if (r < 0) {
			ttrpc_call_reply_error(call, TTRPC_INTERNAL, "cannot record request: %s",
					       strerror(-r));
			return;
		}
	}
	if (b->m->fn)
		b->m->fn(s, call, payload, len);
	else
		ttrpc_call_reply(call, NULL, 0);
}

int standin_new(struct loop *l, const struct standin_options *opts, struct standin **ret)
{
	struct standin *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return -ENOMEM;
	s->loop = l;
	s->record_fd = -EBADF;
	s->wait_blocks = opts->wait_blocks;

	if (opts->record_path) {
		r = record_open(opts->record_path);
		if (r < 0)
			goto fail;
		s->record_fd = r;
	}
	s->bindings = calloc(ELEMENTSOF(methods), sizeof(*s->bindings));
	if (!s->bindings) {
		r = -ENOMEM;
		goto fail;
	}
	r = ttrpc_server_new(l, &s->server);
	if (r < 0)
		goto fail;
	for (size_t i = 0; i < ELEMENTSOF(methods); i++) {
		s->bindings[i] = (struct binding){.s = s, .m = &methods[i]};
		r = ttrpc_server_add_method(s->server, methods[i].service, methods[i].name,
					    dispatch, &s->bindings[i]);
		if (r < 0)
			goto fail;
	}
	*ret = s;
	return 0;
fail:
	standin_free(s);
	return r;
}

int standin_listen(struct standin *s, const char *path)
{
	return ttrpc_server_listen_unix(s->server, path, 0660);
}

struct standin *standin_free(struct standin *s)
{
	if (!s)
		return NULL;
	/* Parked calls must be answered to be released. */
	while (s->waiters) {
		struct waiter *w = s->waiters;
		s->waiters = w->next;
		ttrpc_call_reply_error(w->call, TTRPC_UNAVAILABLE, "agent shutting down");
		waiter_free(w);
	}
	ttrpc_server_free(s->server);
	while (s->containers) {
		struct container *c = s->containers;
		s->containers = c->next;
		container_free(c);
	}
	strv_free(s->sandboxes);
	safe_close(s->record_fd);
	free(s->bindings);
	free(s);
	return NULL;
}

/* coordinator/server.c: the coordinator daemon on its event loop: the user and mesh API
 * listeners (accept on the loop, aTLS handshakes on workers, then ttRPC on the loop), the FIFO of
 * history operations run one at a time on workers, the snapshots published after each, mesh
 * certificates, peer recovery rounds, HTTP attestation, probes and metrics. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/err.h>

#include "coordapi/coordapi.h"
#include "coordinator/daemon.h"
#include "log/log.h"
#include "tls/tls.h"

#define LIMIT_RECHECK_NS (100 * NSEC_PER_MSEC)
#define HTTP_TIMEOUT_NS (60 * NSEC_PER_SEC)
/* Calls waiting for a worker or the history, over all connections: each holds its request
 * (up to a frame), and clients may pipeline. */
#define MAX_PENDING_CALLS 256

enum api { API_USER, API_MESH, _API_MAX };
static const char *const api_names[_API_MAX] = {"user", "mesh"};
static char *const user_alpn[] = {COORDAPI_ALPN, NULL};

enum update_result { UPD_ACCEPTED, UPD_INVALID, UPD_DENIED, UPD_CONFLICT, UPD_ERROR, _UPD_MAX };
static const char *const update_names[_UPD_MAX] = {"accepted", "invalid", "denied", "conflict",
						   "error"};

struct listener {
	struct coord *d;
	enum api api;
	int fd;
	uint16_t port;
	struct loop_source *src;
	bool paused;
};

struct handshake;
struct hjob;

struct coord {
	struct loop *loop;
	const struct coord_settings *settings;
	struct store *store;
	struct history *history;
	struct atls_issuer *issuer;
	const char *test_anchor_pem;
	struct coord_mesh_config mesh_config;
	SSL_CTX *user_ctx;
	struct coord_snapshot *snap;

	struct ttrpc_server *servers[_API_MAX];
	struct listener listeners[_API_MAX];
	struct metrics_server *http;
	struct metrics_server *probes;
	bool listening;
	atomic_bool stopping;

	struct handshake *handshakes;
	unsigned n_handshakes;
	struct loop_source *limit_timer;

	struct hjob *hq_head, *hq_tail;
	bool hq_running;
	unsigned n_calls;

	struct loop_source *peer_timer;
	bool peer_round;

	struct metrics_registry *registry;
	struct metrics_counter *attest_failures[_ATTEST_E_MAX];
	struct metrics_counter *handshake_failures[_API_MAX];
	struct metrics_counter *updates[_UPD_MAX];
	struct metrics_counter *mesh_certs;
	struct metrics_counter *recoveries_user, *recoveries_peer;
	struct metrics_gauge *state_gauge;
};

static bool test_mode(const struct coord *d)
{
	return d->test_anchor_pem != NULL;
}

static int64_t now_sec(void)
{
	return (int64_t)time(NULL);
}

/* ---- snapshots ---- */

static void publish(struct coord *d, struct coord_snapshot *s)
{
	struct coord_snapshot *old = d->snap;
	d->snap = s;
	metrics_gauge_set(d->state_gauge, s->state == HISTORY_ACTIVE  ? 1
					  : s->state == HISTORY_STALE ? 2
								      : 0);
	bool manifest_changed =
	    s->manifest &&
	    (!old || !old->manifest || memcmp(old->manifest->sha256, s->manifest->sha256, 32) != 0);
	if (!old || old->state != s->state)
		log_info("state: %s%s%s", old ? history_state_name(old->state) : "",
			 old ? " -> " : "", history_state_name(s->state));
	if (manifest_changed) {
		char latest[65] = "";
		if (s->has_latest)
			hex_encode_into(s->latest, 32, latest);
		log_info("serving manifest %s (latest transition %s, %zu policies)",
			 s->manifest->sha256_hex, latest, s->manifest->n_policies);
		if (test_mode(d))
			log_warning("TEST MODE: simulated evidence signed by the test trust anchor "
				    "is accepted for manifest %s; never use this in production",
				    s->manifest->sha256_hex);
	}
	coord_snapshot_unref(old);
}

/* ---- history jobs: one at a time, in order ---- */

enum hjob_kind {
	HJOB_SET_MANIFEST,
	HJOB_GET_MANIFESTS,
	HJOB_USER_RECOVER,
	HJOB_REFRESH,      /* re-read latest; when stale, read the latest manifest untrusted */
	HJOB_PEER_RECOVER, /* recover with a peer's answer */
};

/* A ttRPC call waiting for a worker. */
struct call_job {
	struct coord *d;
	struct ttrpc_call *call;
	const char *api;
	const char *method;
	uint8_t *payload;
	size_t len;
	struct coord_client client;
	struct coord_snapshot *snap;
	struct coord_reply reply;
	bool force;
};

static void call_job_free(struct call_job *j)
{
	if (!j)
		return;
	j->d->n_calls--;
	if (j->payload) {
		OPENSSL_cleanse(j->payload, j->len);
		free(j->payload);
	}
	coord_client_done(&j->client);
	coord_snapshot_unref(j->snap);
	coord_reply_done(&j->reply);
	free(j);
}

struct hjob {
	struct coord *d;
	enum hjob_kind kind;
	struct hjob *next;
	struct call_job *call; /* UserAPI methods; a Recover waiting for the probe (REFRESH) */
	bool round;            /* part of the periodic peer recovery round */
	/* before: the state the loop served when the job started */
	enum history_state prev_state;
	bool prev_has_latest;
	uint8_t prev_latest[32];
	bool mutated;
	/* results */
	struct coord_snapshot *snap;
	char *snap_msg;
	int r;
	char *msg;
	uint8_t *manifest; /* REFRESH: the latest stored manifest when stale */
	size_t manifest_len;
	/* PEER_RECOVER */
	Coordinator__PeerRecoverResponse *peer_resp;
	char *peer;
};

static void wipe_peer_resp(Coordinator__PeerRecoverResponse *p)
{
	if (!p)
		return;
	if (p->seed.data)
		OPENSSL_cleanse(p->seed.data, p->seed.len);
	if (p->salt.data)
		OPENSSL_cleanse(p->salt.data, p->salt.len);
	if (p->meshcakeypem)
		OPENSSL_cleanse(p->meshcakeypem, strlen(p->meshcakeypem));
	coordinator__peer_recover_response__free_unpacked(p, NULL);
}

static void hjob_free(struct hjob *j)
{
	if (!j)
		return;
	call_job_free(j->call);
	coord_snapshot_unref(j->snap);
	free(j->snap_msg);
	free(j->msg);
	free(j->manifest);
	wipe_peer_resp(j->peer_resp);
	free(j->peer);
	free(j);
}

static int hjob_work(void *data)
{
	struct hjob *j = data;
	struct coord *d = j->d;
	struct history *h = d->history;
	_cleanup_pp_error_ struct pp_error *err = NULL;
	int r;

	switch (j->kind) {
	case HJOB_SET_MANIFEST:
		coord_handle_set_manifest(h, &j->call->client, j->call->payload, j->call->len,
					  now_sec(), &j->call->reply);
		j->mutated = j->call->reply.code == TTRPC_OK;
		break;
	case HJOB_GET_MANIFESTS:
		coord_handle_get_manifests(h, d->store, j->call->payload, j->call->len,
					   &j->call->reply);
		break;
	case HJOB_USER_RECOVER:
		coord_handle_recover(h, &j->call->client, j->call->payload, j->call->len, now_sec(),
				     &j->call->reply);
		j->mutated = j->call->reply.code == TTRPC_OK;
		break;
	case HJOB_REFRESH:
		r = history_refresh(h, &err);
		if (r < 0) {
			j->r = r;
			j->msg = str_printf("%s", pp_error_message(err, r));
			break;
		}
		if (history_get_state(h) == HISTORY_STALE) {
			r = coord_latest_manifest(d->store, &j->manifest, &j->manifest_len);
			if (r < 0) {
				j->r = r;
				j->msg = str_printf("latest stored manifest: %s", strerror(-r));
			}
		}
		break;
	case HJOB_PEER_RECOVER: {
		const Coordinator__PeerRecoverResponse *p = j->peer_resp;
		_cleanup_(EVP_PKEY_freep) EVP_PKEY *mesh_key = NULL;
		if (p->seed.len != SECRETS_SEED_SIZE || p->salt.len != SECRETS_SALT_SIZE ||
		    str_empty(p->meshcakeypem) || p->manifest.len == 0) {
			j->r = -EBADMSG;
			j->msg = str_printf("the peer's answer is incomplete");
			break;
		}
		r = ca_mesh_key_from_pem(p->meshcakeypem, strlen(p->meshcakeypem), &mesh_key);
		if (r < 0) {
			j->r = r;
			j->msg = str_printf("the peer's mesh CA key: %s", strerror(-r));
			break;
		}
		struct history_recover_request rr = {
		    .seed = p->seed.data,
		    .salt = p->salt.data,
		    .mesh_key = mesh_key,
		    .manifest = p->manifest.data,
		    .manifest_len = p->manifest.len,
		    .now_sec = now_sec(),
		};
		r = history_recover(h, &rr, &err);
		if (r < 0) {
			j->r = r;
			j->msg = str_printf("%s", pp_error_message(err, r));
		} else
			j->mutated = true;
		break;
	}
	}

	uint8_t latest[32] = {0};
	bool has_latest = history_latest_hash(h, latest) == 0;
	if (j->mutated || history_get_state(h) != j->prev_state ||
	    has_latest != j->prev_has_latest ||
	    (has_latest && memcmp(latest, j->prev_latest, 32) != 0)) {
		r = coord_snapshot_new(h, &d->mesh_config, &j->snap, &j->snap_msg);
		if (r < 0 && !j->snap_msg)
			j->snap_msg = str_printf("%s", strerror(-r));
	}
	return 0;
}

static void hjob_done(struct loop *l, int result, void *data);

static void hq_kick(struct coord *d)
{
	if (d->hq_running || !d->hq_head || atomic_load(&d->stopping))
		return;
	struct hjob *j = d->hq_head;
	d->hq_head = j->next;
	if (!d->hq_head)
		d->hq_tail = NULL;
	j->next = NULL;
	j->prev_state = d->snap->state;
	j->prev_has_latest = d->snap->has_latest;
	memcpy(j->prev_latest, d->snap->latest, 32);
	int r = loop_submit_work(d->loop, hjob_work, hjob_done, j);
	if (r < 0) {
		log_error_errno(r, "cannot run a history operation");
		hjob_done(d->loop, r, j);
		return;
	}
	d->hq_running = true;
}

static void hq_push(struct coord *d, struct hjob *j)
{
	j->d = d;
	if (d->hq_tail)
		d->hq_tail->next = j;
	else
		d->hq_head = j;
	d->hq_tail = j;
	hq_kick(d);
}

static struct hjob *hjob_new(enum hjob_kind kind, struct call_job *call)
{
	struct hjob *j = calloc(1, sizeof(*j));
	if (j) {
		j->kind = kind;
		j->call = call;
	}
	return j;
}

/* ---- replies ---- */

static void finish_call(struct call_job *j)
{
	struct coord_reply *rep = &j->reply;
	if (rep->code == TTRPC_OK) {
		(void)ttrpc_call_reply(j->call, rep->payload, rep->len);
	} else {
		log_warning("%s API %s refused (%s): %s", j->api, j->method,
			    ttrpc_code_name(rep->code) ?: "error",
			    rep->message ? rep->message : "");
		(void)ttrpc_call_reply_error(j->call, rep->code, "%s",
					     rep->message ? rep->message : "");
	}
	j->call = NULL;
}

static void fail_call(struct call_job *j, int code, const char *fmt, ...) _printf_(3, 4);
static void fail_call(struct call_job *j, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	coord_reply_done(&j->reply);
	j->reply.code = code;
	j->reply.message = str_vprintf(fmt, ap);
	va_end(ap);
	finish_call(j);
}

static void queue_user_recover(struct coord *d, struct call_job *c)
{
	struct hjob *j = hjob_new(HJOB_USER_RECOVER, c);
	if (j) {
		hq_push(d, j);
		return;
	}
	fail_call(c, TTRPC_INTERNAL, "out of memory");
	call_job_free(c);
}

/* ---- peer recovery ---- */

struct peer_job {
	struct coord *d;
	uint8_t *manifest;
	size_t manifest_len;
	struct call_job *recover; /* a Recover without Force waiting for this probe */
	bool round;
	Coordinator__PeerRecoverResponse *resp;
	char *peer;
	char *msg;
	int r;
};

static void peer_job_free(struct peer_job *p)
{
	if (!p)
		return;
	free(p->manifest);
	call_job_free(p->recover);
	wipe_peer_resp(p->resp);
	free(p->peer);
	free(p->msg);
	free(p);
}

static int peer_work(void *data)
{
	struct peer_job *p = data;
	const struct coord *d = p->d;
	const struct coord_settings *s = d->settings;
	struct coord_peer_query q = {
	    .manifest = p->manifest,
	    .manifest_len = p->manifest_len,
	    .peers = s->peers,
	    .dns_name = s->peer_dns,
	    .dns_port = s->mesh_api_port ? (uint16_t)s->mesh_api_port : d->listeners[API_MESH].port,
	    .self_port = d->listeners[API_MESH].port,
	    .issuer = d->issuer,
	    .test_anchor_pem = d->test_anchor_pem,
	    .crl = d->mesh_config.crl,
	    .stop = &d->stopping,
	};
	p->r = coord_peer_fetch(&q, &p->resp, &p->peer, &p->msg);
	return 0;
}

static bool have_peers(const struct coord *d)
{
	return (d->settings->peers && d->settings->peers[0]) || !str_empty(d->settings->peer_dns);
}

static void peer_done(struct loop *l, int result, void *data)
{
	struct peer_job *p = data;
	struct coord *d = p->d;
	bool stopping = atomic_load(&d->stopping) || result < 0;
	if (p->round)
		d->peer_round = false;
	if (stopping) {
		if (p->recover)
			fail_call(p->recover, TTRPC_UNAVAILABLE, "the coordinator is stopping");
		peer_job_free(p);
		return;
	}
	if (p->r == 0) {
		log_info("peer coordinator %s is active: recovering from it", p->peer);
		struct hjob *j = hjob_new(HJOB_PEER_RECOVER, NULL);
		if (j) {
			j->peer_resp = TAKE_PTR(p->resp);
			j->peer = TAKE_PTR(p->peer);
			j->round = p->round;
			if (p->round)
				d->peer_round = true; /* until the recovery ran */
			hq_push(d, j);
		}
		if (p->recover)
			fail_call(p->recover, TTRPC_FAILED_PRECONDITION,
				  "Recover: an active peer coordinator is reachable and this one "
				  "recovers from it (Force overrides)");
	} else if (p->recover) {
		log_info("user recovery: no active peer (%s)", p->msg ? p->msg : "");
		queue_user_recover(d, TAKE_PTR(p->recover));
	} else
		log_info("peer recovery: %s", p->msg ? p->msg : strerror(-p->r));
	peer_job_free(p);
}

static void start_peer_job(struct coord *d, uint8_t *manifest, size_t len, struct call_job *recover)
{
	struct peer_job *p = calloc(1, sizeof(*p));
	if (!p) {
		free(manifest);
		if (recover)
			fail_call(recover, TTRPC_INTERNAL, "out of memory");
		call_job_free(recover);
		return;
	}
	*p = (struct peer_job){.d = d,
			       .manifest = manifest,
			       .manifest_len = len,
			       .recover = recover,
			       .round = !recover};
	if (!recover)
		d->peer_round = true;
	int r = loop_submit_work(d->loop, peer_work, peer_done, p);
	if (r < 0)
		peer_done(d->loop, r, p);
}

static void on_peer_timer(struct loop_source *s, void *userdata)
{
	struct coord *d = userdata;
	(void)loop_source_set_timer(s, now_ns() + d->settings->peer_recovery_interval_ns);
	if (d->peer_round || atomic_load(&d->stopping))
		return;
	struct hjob *j = hjob_new(HJOB_REFRESH, NULL);
	if (!j)
		return;
	j->round = true;
	d->peer_round = true;
	hq_push(d, j);
}

/* ---- history job completion ---- */

static void count_update(struct coord *d, const char *result)
{
	for (int i = 0; i < _UPD_MAX; i++)
		if (str_eq(update_names[i], result))
			metrics_counter_inc(d->updates[i]);
}

static void hjob_done(struct loop *l, int result, void *data)
{
	struct hjob *j = data;
	struct coord *d = j->d;
	d->hq_running = false;
	if (atomic_load(&d->stopping) || result < 0) {
		if (j->call)
			fail_call(j->call, TTRPC_UNAVAILABLE, "the coordinator is stopping");
		if (j->round)
			d->peer_round = false;
		hjob_free(j);
		return;
	}
	if (j->snap) {
		bool became_stale =
		    j->snap->state == HISTORY_STALE && d->snap->state != HISTORY_STALE;
		publish(d, TAKE_PTR(j->snap));
		/* Another coordinator moved on: catch up now rather than at the next tick. */
		if (became_stale && !d->peer_round && d->peer_timer)
			(void)loop_source_set_timer(d->peer_timer, now_ns());
	} else if (j->snap_msg)
		log_error("cannot publish the new state: %s", j->snap_msg);

	switch (j->kind) {
	case HJOB_SET_MANIFEST:
		count_update(d, j->call->reply.result);
		if (j->call->reply.code == TTRPC_OK)
			log_info("manifest update accepted (client key %s)",
				 j->call->client.spki_len ? "presented" : "absent");
		finish_call(j->call);
		break;
	case HJOB_GET_MANIFESTS:
		finish_call(j->call);
		break;
	case HJOB_USER_RECOVER:
		if (j->call->reply.code == TTRPC_OK) {
			metrics_counter_inc(d->recoveries_user);
			log_info("recovered by a seed-share owner; new mesh CA");
		}
		finish_call(j->call);
		break;
	case HJOB_REFRESH:
		if (j->r < 0)
			log_warning("history refresh: %s", j->msg ? j->msg : strerror(-j->r));
		if (j->call) {
			/* A Recover without Force: ask the peers first. */
			if (j->manifest && have_peers(d))
				start_peer_job(d, TAKE_PTR(j->manifest), j->manifest_len,
					       TAKE_PTR(j->call));
			else
				queue_user_recover(d, TAKE_PTR(j->call));
			break;
		}
		if (j->manifest && have_peers(d))
			start_peer_job(d, TAKE_PTR(j->manifest), j->manifest_len, NULL);
		else
			d->peer_round = false;
		break;
	case HJOB_PEER_RECOVER:
		if (j->round)
			d->peer_round = false;
		if (j->r == -EALREADY)
			log_info("peer recovery from %s not needed: already active", j->peer);
		else if (j->r < 0)
			log_warning("peer recovery from %s failed: %s", j->peer,
				    j->msg ? j->msg : strerror(-j->r));
		else {
			metrics_counter_inc(d->recoveries_peer);
			log_info("recovered from peer coordinator %s", j->peer);
		}
		break;
	}
	hjob_free(j);
	hq_kick(d);
}

/* ---- ttRPC methods ---- */

static struct call_job *call_job_new(struct coord *d, struct ttrpc_call *call, const char *api,
				     const uint8_t *payload, size_t len)
{
	if (d->n_calls >= MAX_PENDING_CALLS) {
		(void)ttrpc_call_reply_error(call, TTRPC_RESOURCE_EXHAUSTED,
					     "too many calls in progress; retry later");
		return NULL;
	}
	struct call_job *j = calloc(1, sizeof(*j));
	if (!j) {
		(void)ttrpc_call_reply_error(call, TTRPC_INTERNAL, "out of memory");
		return NULL;
	}
	j->d = d;
	j->call = call;
	j->api = api;
	j->method = ttrpc_call_method(call);
	j->payload = malloc(len ? len : 1);
	if (!j->payload || coord_client_from_ssl(ttrpc_call_get_ssl(call), &j->client) < 0) {
		free(j->payload);
		free(j);
		(void)ttrpc_call_reply_error(call, TTRPC_INTERNAL, "out of memory");
		return NULL;
	}
	d->n_calls++;
	if (len)
		memcpy(j->payload, payload, len);
	j->len = len;
	return j;
}

static void user_method(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *userdata,
			enum hjob_kind kind)
{
	struct coord *d = userdata;
	struct call_job *c = call_job_new(d, call, "user", payload, len);
	if (!c)
		return;
	struct hjob *j = hjob_new(kind, c);
	if (!j) {
		fail_call(c, TTRPC_INTERNAL, "out of memory");
		call_job_free(c);
		return;
	}
	hq_push(d, j);
}

static void on_set_manifest(struct ttrpc_call *call, const uint8_t *payload, size_t len,
			    void *userdata)
{
	user_method(call, payload, len, userdata, HJOB_SET_MANIFEST);
}

static void on_get_manifests(struct ttrpc_call *call, const uint8_t *payload, size_t len,
			     void *userdata)
{
	user_method(call, payload, len, userdata, HJOB_GET_MANIFESTS);
}

static void on_recover(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *userdata)
{
	struct coord *d = userdata;
	Coordinator__RecoverRequest *req = coordinator__recover_request__unpack(NULL, len, payload);
	bool force = req && req->force;
	if (req) {
		if (req->seed.data)
			OPENSSL_cleanse(req->seed.data, req->seed.len);
		coordinator__recover_request__free_unpacked(req, NULL);
	}
	/* Without Force, a reachable active peer wins: recovering here would split the mesh
	 * key. The probe runs after re-reading the history, with its latest manifest. */
	user_method(call, payload, len, userdata,
		    !force && req && have_peers(d) ? HJOB_REFRESH : HJOB_USER_RECOVER);
}

static int mesh_work(void *data)
{
	struct call_job *j = data;
	if (str_eq(j->method, "NewMeshCert"))
		coord_handle_new_mesh_cert(j->snap, &j->client, j->payload, j->len, now_sec(),
					   &j->reply);
	else
		coord_handle_peer_recover(j->snap, &j->client, j->payload, j->len, &j->reply);
	return 0;
}

static void mesh_done(struct loop *l, int result, void *data)
{
	struct call_job *j = data;
	struct coord *d = j->d;
	if (result < 0)
		fail_call(j, TTRPC_UNAVAILABLE, "the coordinator is stopping");
	else {
		if (j->reply.code == TTRPC_OK) {
			if (str_eq(j->method, "NewMeshCert")) {
				metrics_counter_inc(d->mesh_certs);
				log_info("mesh certificate issued for policy %s",
					 j->client.digest_hex);
			} else
				log_info("secrets handed to peer coordinator %s for recovery",
					 j->client.digest_hex);
		}
		finish_call(j);
	}
	call_job_free(j);
}

static void on_mesh_method(struct ttrpc_call *call, const uint8_t *payload, size_t len,
			   void *userdata)
{
	struct coord *d = userdata;
	struct call_job *j = call_job_new(d, call, "mesh", payload, len);
	if (!j)
		return;
	/* NewMeshCert looks the digest up in the manifest in force now, not the one the
	 * connection was made with. */
	j->snap = coord_snapshot_ref(d->snap);
	int r = loop_submit_work(d->loop, mesh_work, mesh_done, j);
	if (r < 0)
		mesh_done(d->loop, r, j);
}

/* ---- handshakes ---- */

struct handshake {
	struct coord *d;
	struct handshake *prev, *next;
	enum api api;
	int fd;
	char peer[INET6_ADDRSTRLEN + 8];
	SSL_CTX *ctx;
	struct coord_snapshot *snap;
	SSL *ssl;
	int r;
	char *msg;
	enum attest_error code;
	bool has_code;
};

static void handshake_free(struct handshake *h)
{
	SSL_free(h->ssl);
	SSL_CTX_free(h->ctx);
	coord_snapshot_unref(h->snap);
	safe_close(h->fd);
	free(h->msg);
	free(h);
}

static int handshake_work(void *data)
{
	struct handshake *h = data;
	int r = atls_ssl_new(h->ctx, NULL, &h->ssl);
	if (r >= 0 && h->snap)
		r = coord_snapshot_attach(h->ssl, h->snap);
	if (r < 0) {
		h->r = r;
		h->msg = str_printf("aTLS connection setup: %s", strerror(-r));
		return 0;
	}
	h->r = atls_handshake(h->ssl, h->fd, true, now_ns() + ATLS_SERVER_HANDSHAKE_TIMEOUT_NS,
			      &h->msg);
	const struct atls_failure *f = atls_ssl_failure(h->ssl);
	if (h->r < 0 && f && f->code != ATTEST_OK) {
		h->code = f->code;
		h->has_code = true;
	}
	return 0;
}

static void accept_resume(struct coord *d);

static void handshake_done(struct loop *l, int result, void *data)
{
	struct handshake *h = data;
	struct coord *d = h->d;
	if (h->prev)
		h->prev->next = h->next;
	else
		d->handshakes = h->next;
	if (h->next)
		h->next->prev = h->prev;
	d->n_handshakes--;

	if (result < 0 && h->r == 0)
		h->r = result;
	if (h->r == 0 && !atomic_load(&d->stopping)) {
		int r = ttrpc_server_add_connection(d->servers[h->api], h->fd, h->ssl);
		if (r >= 0) {
			h->fd = -EBADF;
			h->ssl = NULL;
		} else
			log_warning_errno(r, "%s API: cannot serve %s", api_names[h->api], h->peer);
	} else if (h->r < 0 && !atomic_load(&d->stopping)) {
		metrics_counter_inc(d->handshake_failures[h->api]);
		if (h->has_code) {
			metrics_counter_inc(d->attest_failures[h->code]);
			log_warning("%s API: refused %s in the aTLS handshake: %s: %s",
				    api_names[h->api], h->peer, attest_error_name(h->code),
				    h->msg ? h->msg : "");
		} else
			log_info("%s API: aTLS handshake with %s failed: %s", api_names[h->api],
				 h->peer, h->msg ? h->msg : strerror(-h->r));
	}
	handshake_free(h);
	accept_resume(d);
}

static size_t n_connections(const struct coord *d)
{
	return ttrpc_server_n_connections(d->servers[API_USER]) +
	       ttrpc_server_n_connections(d->servers[API_MESH]) + d->n_handshakes;
}

static bool at_limit(const struct coord *d)
{
	return d->n_handshakes >= d->settings->max_handshakes ||
	       n_connections(d) >= d->settings->max_connections;
}

static void listener_pause(struct listener *ls, bool pause)
{
	if (ls->paused == pause || !ls->src)
		return;
	if (loop_source_set_io_events(ls->src, pause ? 0 : EPOLLIN) >= 0)
		ls->paused = pause;
}

static void on_limit_timer(struct loop_source *s, void *userdata)
{
	struct coord *d = userdata;
	d->limit_timer = loop_source_free(d->limit_timer);
	accept_resume(d);
}

/* Resume accepting below the limits; connections closing are not announced, so while at the
 * limit a timer looks again. */
static void accept_resume(struct coord *d)
{
	if (atomic_load(&d->stopping))
		return;
	bool limit = at_limit(d);
	for (int i = 0; i < _API_MAX; i++)
		listener_pause(&d->listeners[i], limit);
	if (limit && d->n_handshakes < d->settings->max_handshakes && !d->limit_timer)
		(void)loop_add_timer(d->loop, now_ns() + LIMIT_RECHECK_NS, on_limit_timer, d,
				     &d->limit_timer);
}

static void peer_name(int fd, char *buf, size_t size)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char ip[INET6_ADDRSTRLEN] = "?";
	uint16_t port = 0;
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET) {
			const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
			inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
			port = ntohs(in->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			const struct sockaddr_in6 *in = (const struct sockaddr_in6 *)&ss;
			inet_ntop(AF_INET6, &in->sin6_addr, ip, sizeof(ip));
			port = ntohs(in->sin6_port);
		}
	}
	(void)snprintf(buf, size, ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip, port);
}

static void start_handshake(struct coord *d, enum api api, int fd)
{
	struct handshake *h = calloc(1, sizeof(*h));
	if (!h) {
		safe_close(fd);
		return;
	}
	h->d = d;
	h->api = api;
	h->fd = fd;
	peer_name(fd, h->peer, sizeof(h->peer));
	if (api == API_USER) {
		h->ctx = d->user_ctx;
	} else {
		h->snap = coord_snapshot_ref(d->snap);
		h->ctx = h->snap->mesh_ctx;
	}
	if (!h->ctx || SSL_CTX_up_ref(h->ctx) != 1) {
		h->ctx = NULL;
		handshake_free(h);
		return;
	}
	h->next = d->handshakes;
	if (d->handshakes)
		d->handshakes->prev = h;
	d->handshakes = h;
	d->n_handshakes++;
	int r = loop_submit_work(d->loop, handshake_work, handshake_done, h);
	if (r < 0) {
		h->r = r;
		h->msg = str_printf("cannot start the handshake: %s", strerror(-r));
		handshake_done(d->loop, 0, h);
	}
}

static void on_accept(struct loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct listener *ls = userdata;
	struct coord *d = ls->d;
	while (!at_limit(d)) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				/* Out of fds: look again a little later. */
				log_warning_errno(errno, "%s API: accept", api_names[ls->api]);
				listener_pause(ls, true);
				if (!d->limit_timer)
					(void)loop_add_timer(d->loop, now_ns() + LIMIT_RECHECK_NS,
							     on_limit_timer, d, &d->limit_timer);
			}
			return;
		}
		start_handshake(d, ls->api, cfd);
	}
	accept_resume(d);
}

/* ---- HTTP attestation ---- */

struct attest_job {
	struct coord *d;
	struct metrics_request *req;
	struct coord_snapshot *snap;
	uint8_t nonce[ATLS_NONCE_SIZE];
	char *json;
	char *msg;
	int r;
};

static int attest_work(void *data)
{
	struct attest_job *a = data;
	const struct coord_snapshot *s = a->snap;
	struct atls_issuer *is = a->d->issuer;
	struct coordapi_state st = {.kind = is->kind};
	_cleanup_free_ char *emsg = NULL;
	(void)str_copy(st.state, sizeof(st.state), history_state_name(s->state));
	st.has_latest = s->has_latest;
	memcpy(st.latest, s->latest, 32);
	if (s->manifest) {
		st.has_manifest = true;
		memcpy(st.manifest, s->manifest->sha256, 32);
	}
	if ((s->root_pem && !(st.root_ca_pem = strdup(s->root_pem))) ||
	    (s->mesh_pem && !(st.mesh_ca_pem = strdup(s->mesh_pem)))) {
		a->r = -ENOMEM;
		goto out;
	}
	uint8_t rd[ATLS_REPORT_DATA_SIZE];
	a->r = coordapi_state_report_data(&st, a->nonce, rd);
	if (a->r < 0) {
		a->msg = str_printf("report data: %s", strerror(-a->r));
		goto out;
	}
	a->r = is->get_evidence(is, rd, &st.evidence, &st.evidence_len, &emsg);
	if (a->r < 0) {
		a->msg = str_printf("evidence: %s", emsg ? emsg : strerror(-a->r));
		goto out;
	}
	a->r = coordapi_state_format(&st, &a->json);
	if (a->r < 0)
		a->msg = str_printf("document: %s", strerror(-a->r));
out:
	coordapi_state_done(&st);
	return 0;
}

static void attest_done(struct loop *l, int result, void *data)
{
	struct attest_job *a = data;
	if (result < 0 && a->r == 0)
		a->r = result;
	if (a->r == 0) {
		(void)metrics_request_reply(a->req, 200, "application/json", a->json,
					    strlen(a->json));
	} else {
		log_error("HTTP attestation: %s", a->msg ? a->msg : strerror(-a->r));
		const char *body = "cannot produce the attestation document\n";
		(void)metrics_request_reply(a->req, 500, NULL, body, strlen(body));
	}
	coord_snapshot_unref(a->snap);
	free(a->json);
	free(a->msg);
	free(a);
}

static void on_attest(struct metrics_request *req, const char *path, size_t path_len,
		      void *userdata)
{
	struct coord *d = userdata;
	size_t plen = strlen(COORDAPI_HTTP_PATH_PREFIX);
	uint8_t nonce[ATLS_NONCE_SIZE];
	if (path_len != plen + 2 * ATLS_NONCE_SIZE ||
	    hex_decode_exact(path + plen, 2 * ATLS_NONCE_SIZE, nonce, sizeof(nonce)) < 0) {
		const char *body = "not found: GET " COORDAPI_HTTP_PATH_PREFIX "<64 hex nonce>\n";
		(void)metrics_request_reply(req, 404, NULL, body, strlen(body));
		return;
	}
	struct attest_job *a = calloc(1, sizeof(*a));
	if (!a) {
		(void)metrics_request_reply(req, 500, NULL, "out of memory\n", 14);
		return;
	}
	a->d = d;
	a->req = req;
	a->snap = coord_snapshot_ref(d->snap);
	memcpy(a->nonce, nonce, sizeof(nonce));
	int r = loop_submit_work(d->loop, attest_work, attest_done, a);
	if (r < 0)
		attest_done(d->loop, r, a);
}

/* ---- probes and metrics ---- */

static bool probe_startup(void *userdata, char *reason, size_t size)
{
	const struct coord *d = userdata;
	if (!d->listening)
		(void)snprintf(reason, size, "not listening yet%s",
			       test_mode(d) ? " (test mode)" : "");
	return d->listening;
}

static bool probe_ready(void *userdata, char *reason, size_t size)
{
	const struct coord *d = userdata;
	if (d->listening && d->snap->state == HISTORY_ACTIVE)
		return true;
	(void)snprintf(reason, size, "coordinator is %s%s%s", history_state_name(d->snap->state),
		       d->snap->state == HISTORY_STALE ? ": waiting for peer or user recovery"
		       : d->snap->state == HISTORY_UNINITIALIZED ? ": waiting for a manifest"
								 : "",
		       test_mode(d) ? " (test mode)" : "");
	return false;
}

static double connections_gauge(void *userdata)
{
	struct ttrpc_server *const *slot = userdata;
	return (double)ttrpc_server_n_connections(*slot);
}

static int metrics_init(struct coord *d)
{
	struct metrics_registry *reg = d->registry;
	int r;
	for (int i = 1; i < _ATTEST_E_MAX; i++) {
		r = metrics_counter_new(
		    reg, "attest_failures_total",
		    "Peers refused during the aTLS handshake, by attestation error class",
		    (const char *[]){"code", attest_error_name((enum attest_error)i), NULL},
		    &d->attest_failures[i]);
		if (r < 0)
			return r;
	}
	for (int i = 0; i < _API_MAX; i++) {
		r = metrics_counter_new(reg, "coordinator_handshake_failures_total",
					"Failed aTLS handshakes (any reason), by API",
					(const char *[]){"api", api_names[i], NULL},
					&d->handshake_failures[i]);
		if (r >= 0)
			r = metrics_gauge_new_callback(reg, "coordinator_connections",
						       "Open API connections",
						       (const char *[]){"api", api_names[i], NULL},
						       connections_gauge, &d->servers[i], NULL);
		if (r < 0)
			return r;
	}
	for (int i = 0; i < _UPD_MAX; i++) {
		r = metrics_counter_new(
		    reg, "manifest_updates_total", "SetManifest calls by result",
		    (const char *[]){"result", update_names[i], NULL}, &d->updates[i]);
		if (r < 0)
			return r;
	}
	struct metrics_gauge *tm = NULL;
	if ((r = metrics_counter_new(reg, "mesh_certs_issued_total", "Mesh certificates issued",
				     NULL, &d->mesh_certs)) < 0 ||
	    (r = metrics_counter_new(reg, "coordinator_recoveries_total", "Recoveries by kind",
				     (const char *[]){"kind", "user", NULL}, &d->recoveries_user)) <
		0 ||
	    (r = metrics_counter_new(reg, "coordinator_recoveries_total", NULL,
				     (const char *[]){"kind", "peer", NULL}, &d->recoveries_peer)) <
		0 ||
	    (r = metrics_gauge_new(reg, "coordinator_state", "0 uninitialized, 1 active, 2 stale",
				   NULL, &d->state_gauge)) < 0 ||
	    (r = metrics_gauge_new(reg, "coordinator_test_mode",
				   "1 when simulated evidence from a test trust anchor is accepted",
				   NULL, &tm)) < 0)
		return r;
	metrics_gauge_set(tm, test_mode(d) ? 1 : 0);
	return 0;
}

/* ---- lifecycle ---- */

static int accept_any_certificate(X509_STORE_CTX *xs, void *arg)
{
	/* The user API authorizes by key (owner or seed-share key), which TLS 1.3's
	 * CertificateVerify proves possession of; the certificate itself is not trusted. */
	X509_STORE_CTX_set_error(xs, X509_V_OK);
	return 1;
}

int coord_new(const struct coord_deps *deps, struct coord **ret, char **ret_msg)
{
	_cleanup_free_ struct coord *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->loop = deps->loop;
	d->settings = deps->settings;
	d->store = deps->store;
	d->history = deps->history;
	d->issuer = deps->issuer;
	d->test_anchor_pem = deps->test_anchor_pem;
	d->mesh_config = (struct coord_mesh_config){
	    .issuer = deps->issuer, .test_anchor_pem = deps->test_anchor_pem, .crl = deps->crl};
	atomic_init(&d->stopping, false);
	for (int i = 0; i < _API_MAX; i++)
		d->listeners[i] = (struct listener){.d = d, .api = (enum api)i, .fd = -EBADF};

	struct atls_config ucfg = {.issuer = d->issuer, .alpn = user_alpn};
	_cleanup_free_ char *msg = NULL;
	int r = atls_ctx_new_server(&ucfg, &d->user_ctx, &msg);
	if (r < 0) {
		str_set_message(ret_msg, r, "user API aTLS context: %s", msg ? msg : strerror(-r));
		goto fail;
	}
	/* An optional client certificate: asked for, not required, not path-validated. */
	SSL_CTX_set_verify(d->user_ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_cert_verify_callback(d->user_ctx, accept_any_certificate, NULL);

	r = coord_snapshot_new(d->history, &d->mesh_config, &d->snap, &msg);
	if (r < 0) {
		str_set_message(ret_msg, r, "%s", msg ? msg : strerror(-r));
		goto fail;
	}
	for (int i = 0; i < _API_MAX; i++)
		if ((r = ttrpc_server_new(d->loop, &d->servers[i])) < 0)
			goto fail;
	if ((r = ttrpc_server_add_method(d->servers[API_USER], COORDAPI_USER_SERVICE, "SetManifest",
					 on_set_manifest, d)) < 0 ||
	    (r = ttrpc_server_add_method(d->servers[API_USER], COORDAPI_USER_SERVICE,
					 "GetManifests", on_get_manifests, d)) < 0 ||
	    (r = ttrpc_server_add_method(d->servers[API_USER], COORDAPI_USER_SERVICE, "Recover",
					 on_recover, d)) < 0 ||
	    (r = ttrpc_server_add_method(d->servers[API_MESH], COORDAPI_MESH_SERVICE, "NewMeshCert",
					 on_mesh_method, d)) < 0 ||
	    (r = ttrpc_server_add_method(d->servers[API_MESH], COORDAPI_MESH_SERVICE, "PeerRecover",
					 on_mesh_method, d)) < 0)
		goto fail;
	if ((r = metrics_registry_new(&d->registry)) < 0 || (r = metrics_init(d)) < 0) {
		str_set_message(ret_msg, r, "metrics: %s", strerror(-r));
		goto fail;
	}
	metrics_gauge_set(d->state_gauge, d->snap->state == HISTORY_ACTIVE  ? 1
					  : d->snap->state == HISTORY_STALE ? 2
									    : 0);
	*ret = TAKE_PTR(d);
	return 0;
fail:
	coord_free(TAKE_PTR(d));
	return r;
}

static int write_ports_file(const struct coord *d, const char *path)
{
	_cleanup_free_ char *json =
	    str_printf("{\"user\": %u, \"mesh\": %u, \"http\": %u, \"probe\": %u}\n",
		       d->listeners[API_USER].port, d->listeners[API_MESH].port,
		       metrics_server_get_port(d->http), metrics_server_get_port(d->probes));
	if (!json)
		return -ENOMEM;
	return write_file_atomic(path, json, strlen(json), 0644);
}

int coord_start(struct coord *d, char **ret_msg)
{
	const struct coord_settings *s = d->settings;
	const uint64_t ports[_API_MAX] = {s->user_api_port, s->mesh_api_port};
	int r;
	for (int i = 0; i < _API_MAX; i++) {
		struct listener *ls = &d->listeners[i];
		r = socket_listen_tcp(s->listen_address, (uint16_t)ports[i], &ls->fd, &ls->port);
		if (r < 0)
			return str_set_message(ret_msg, r, "%s API: cannot listen on %s:%llu: %s",
					       api_names[i], s->listen_address,
					       (unsigned long long)ports[i], strerror(-r));
		r = loop_add_io(d->loop, ls->fd, EPOLLIN, on_accept, ls, &ls->src);
		if (r < 0)
			return str_set_message(ret_msg, r, "%s API: %s", api_names[i],
					       strerror(-r));
	}
	r = metrics_server_new(d->loop, NULL, s->listen_address, (uint16_t)s->http_port, &d->http);
	if (r < 0)
		return str_set_message(ret_msg, r, "HTTP attestation: cannot listen on %s:%llu: %s",
				       s->listen_address, (unsigned long long)s->http_port,
				       strerror(-r));
	metrics_server_set_builtin_paths(d->http, false);
	metrics_server_set_timeout(d->http, HTTP_TIMEOUT_NS);
	if ((r = metrics_server_add_handler(d->http, COORDAPI_HTTP_PATH_PREFIX, on_attest, d)) < 0)
		return str_set_message(ret_msg, r, "HTTP attestation: %s", strerror(-r));

	r = metrics_server_new(d->loop, d->registry, s->probe_address, (uint16_t)s->probe_port,
			       &d->probes);
	if (r < 0)
		return str_set_message(ret_msg, r, "probes: cannot listen on %s:%llu: %s",
				       s->probe_address, (unsigned long long)s->probe_port,
				       strerror(-r));
	metrics_server_set_probe(d->probes, METRICS_PROBE_STARTUP, probe_startup, d);
	metrics_server_set_probe(d->probes, METRICS_PROBE_READY, probe_ready, d);
	if (test_mode(d))
		(void)metrics_server_set_ok_body(d->probes,
						 "ok (test mode: simulated evidence accepted)");

	d->listening = true;
	log_info("listening: user API %s:%u, mesh API %s:%u, HTTP attestation %s:%u, probes "
		 "%s:%u",
		 s->listen_address, d->listeners[API_USER].port, s->listen_address,
		 d->listeners[API_MESH].port, s->listen_address, metrics_server_get_port(d->http),
		 s->probe_address, metrics_server_get_port(d->probes));
	if (!str_empty(s->ports_file) && (r = write_ports_file(d, s->ports_file)) < 0)
		return str_set_message(ret_msg, r, "cannot write %s: %s", s->ports_file,
				       strerror(-r));

	/* The first round right away: a restarted coordinator catches up from its peers. */
	r = loop_add_timer(d->loop, now_ns(), on_peer_timer, d, &d->peer_timer);
	if (r < 0)
		return str_set_message(ret_msg, r, "peer recovery timer: %s", strerror(-r));
	return 0;
}

void coord_stop(struct coord *d)
{
	if (!d)
		return;
	atomic_store(&d->stopping, true);
	d->peer_timer = loop_source_free(d->peer_timer);
	d->limit_timer = loop_source_free(d->limit_timer);
	for (int i = 0; i < _API_MAX; i++) {
		d->listeners[i].src = loop_source_free(d->listeners[i].src);
		d->listeners[i].fd = safe_close(d->listeners[i].fd);
	}
	/* Handshakes in progress fail at once instead of running to their deadline. */
	for (struct handshake *h = d->handshakes; h; h = h->next)
		(void)shutdown(h->fd, SHUT_RDWR);
	d->http = metrics_server_free(d->http);
	d->probes = metrics_server_free(d->probes);
	/* Open connections close; calls still with a worker are answered into the void. */
	for (int i = 0; i < _API_MAX; i++)
		d->servers[i] = ttrpc_server_free(d->servers[i]);
	/* Queued history jobs never start; their callers get UNAVAILABLE. */
	while (d->hq_head) {
		struct hjob *j = d->hq_head;
		d->hq_head = j->next;
		if (j->call)
			fail_call(j->call, TTRPC_UNAVAILABLE, "the coordinator is stopping");
		hjob_free(j);
	}
	d->hq_tail = NULL;
}

struct coord *coord_free(struct coord *d)
{
	if (!d)
		return NULL;
	coord_stop(d);
	coord_snapshot_unref(d->snap);
	SSL_CTX_free(d->user_ctx);
	metrics_registry_free(d->registry);
	free(d);
	return NULL;
}

uint16_t coord_user_port(const struct coord *d)
{
	return d ? d->listeners[API_USER].port : 0;
}

uint16_t coord_mesh_port(const struct coord *d)
{
	return d ? d->listeners[API_MESH].port : 0;
}

uint16_t coord_http_port(const struct coord *d)
{
	return d ? metrics_server_get_port(d->http) : 0;
}

uint16_t coord_probe_port(const struct coord *d)
{
	return d ? metrics_server_get_port(d->probes) : 0;
}

/* lib/ttrpc: the frame-level relay behind the agent proxy (adaptor: shim socket -> TLS to the
 * forwarder) and the forwarder (TLS from the adaptor -> kata-agent socket). Frames pass through
 * with only the stream id rewritten; many downstream connections share one upstream. */
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "ttrpc/ttrpc.h"

#define DEFAULT_QUEUE_LIMIT 256
/* Frames held while connecting may be up to 4 MiB each: bound the bytes as well as the count. */
#define QUEUE_MAX_BYTES (64u << 20)
/* Calls in flight upstream, orphaned ones included (a downstream may open calls that never end,
 * e.g. WaitProcess, and disconnect). */
#define MAX_IN_FLIGHT 65536u
#define MAP_INITIAL_CAPACITY 64u
#define HANDSHAKE_TIMEOUT_NS (10 * NSEC_PER_SEC)
#define ACCEPT_BATCH 64
#define ACCEPT_BACKOFF_NS (100 * NSEC_PER_MSEC)
/* Upstream ids are odd and never reused on a connection; close to the top of the id space the
 * upstream is replaced instead (2^31 calls on one connection, in practice never). */
#define LAST_UPSTREAM_ID 0xFFFFFFF0u
/* Send buffer for Unix sockets, so that a 1 MiB frame (CopyFile) leaves in one sendmsg instead
 * of being copied into the conn's queue and trickled out in ~200 KiB steps (about a third less
 * CPU per relayed MiB). */
#define UNIX_SNDBUF_BYTES (1 << 20)

struct downstream {
	struct ttrpc_relay *relay;
	struct ttrpc_conn *conn;
	uint32_t slot;
	uint32_t last_id; /* highest Request id accepted on this connection */
	bool blocking;    /* its output is above the high watermark: the upstream is paused */
};

/* Downstreams are referred to by (slot, generation) so that a mapping outliving its downstream
 * connection is recognised as orphaned without a back-pointer to clear. */
struct ds_slot {
	struct downstream *ds;
	uint32_t gen;
	uint32_t next_free;
};

/* One call in flight upstream, stored at index (up_id / 2) & mask. Ids are allocated so that
 * their slot is free (ids need only increase, not be contiguous), so lookups never probe. */
struct mapping {
	uint32_t up_id; /* 0: free */
	uint32_t ds_id;
	uint32_t ds_slot;
	uint32_t ds_gen;
};

struct queued {
	struct queued *next;
	uint32_t ds_slot;
	uint32_t ds_gen;
	uint32_t ds_id;
	uint8_t type;
	uint8_t flags;
	int64_t deadline_ns; /* absolute, 0 = none */
	size_t len;
	uint8_t data[];
};

struct listener {
	struct ttrpc_relay *relay;
	struct listener *next;
	int fd;
	SSL_CTX *tls;
	struct loop_source *io;
	struct loop_source *retry;
};

struct ttrpc_relay {
	struct loop *loop;
	struct ttrpc_relay_ops ops;
	void *userdata;

	struct listener *listeners;

	struct ds_slot *slots;
	uint32_t n_slots;
	uint32_t free_slot; /* head of the free list, UINT32_MAX = none */
	size_t n_downstream;

	struct ttrpc_conn *up;
	bool connecting;
	uint32_t next_up_id;
	struct mapping *map;
	uint32_t map_mask;
	uint32_t n_map;

	struct queued *queue_head;
	struct queued **queue_tail;
	size_t n_queued;
	size_t queued_bytes;
	size_t queue_limit;
	struct loop_source *queue_timer;
	int64_t queue_timer_at; /* 0 = not armed */

	bool ds_paused;      /* upstream output above the high watermark */
	uint32_t n_blocking; /* downstreams above the high watermark */

	struct buf payload; /* scratch: rewritten payload */
	struct buf frame;   /* scratch: re-encoded Request */
	struct buf reply;   /* scratch: error Responses */
};

static const char MSG_EVEN_ID[] = "StreamID must be odd for client initiated streams";
static const char MSG_REUSED_ID[] = "StreamID cannot be re-used and must increment";
static const char MSG_INACTIVE[] = "StreamID is no longer active";

/* ---- helpers ---- */

static struct downstream *slot_get(const struct ttrpc_relay *r, uint32_t slot, uint32_t gen)
{
	if (slot >= r->n_slots || r->slots[slot].gen != gen)
		return NULL;
	return r->slots[slot].ds;
}

static void send_error(struct ttrpc_relay *r, struct ttrpc_conn *c, uint32_t id, int code,
		       const char *fmt, ...) _printf_(5, 6);
static void send_error(struct ttrpc_relay *r, struct ttrpc_conn *c, uint32_t id, int code,
		       const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	r->reply.len = 0;
	if (ttrpc_response_encode(&r->reply, code, msg, NULL, 0) < 0)
		return;
	/* A failure means the connection is closing; its on_close reports that. */
	(void)ttrpc_conn_send(c, id, TTRPC_TYPE_RESPONSE, 0, r->reply.data, r->reply.len);
}

static void set_downstreams_paused(struct ttrpc_relay *r, bool paused)
{
	if (r->ds_paused == paused)
		return;
	r->ds_paused = paused;
	for (uint32_t i = 0; i < r->n_slots; i++)
		if (r->slots[i].ds)
			ttrpc_conn_set_read_paused(r->slots[i].ds->conn, paused);
}

/* Flow control. The upstream is shared, so when one downstream cannot take its responses fast
 * enough, reading the upstream stops for every downstream until that one drains: head-of-line
 * blocking across downstreams, accepted in exchange for bounded memory (the alternative is
 * buffering without limit for a reader that may never catch up). A downstream is normally one
 * shim with one connection per sandbox, so in practice the stall only affects that sandbox. */
static void check_upstream_pressure(struct ttrpc_relay *r)
{
	if (r->up && !r->ds_paused &&
	    ttrpc_conn_pending_bytes(r->up) > TTRPC_CONN_HIGH_WATERMARK_BYTES)
		set_downstreams_paused(r, true);
}

static void check_downstream_pressure(struct ttrpc_relay *r, struct downstream *ds)
{
	if (ds->blocking || ttrpc_conn_pending_bytes(ds->conn) <= TTRPC_CONN_HIGH_WATERMARK_BYTES)
		return;
	ds->blocking = true;
	if (r->n_blocking++ == 0 && r->up)
		ttrpc_conn_set_read_paused(r->up, true);
}

static void downstream_unblock(struct ttrpc_relay *r, struct downstream *ds)
{
	if (!ds->blocking)
		return;
	ds->blocking = false;
	if (--r->n_blocking == 0 && r->up)
		ttrpc_conn_set_read_paused(r->up, false);
}

static void tune_socket(int fd)
{
	int domain = 0, size = UNIX_SNDBUF_BYTES;
	socklen_t len = sizeof(domain);

	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0 || domain != AF_UNIX)
		return; /* TCP autotunes its buffers; a fixed size would disable that */
	/* Beyond net.core.wmem_max only with CAP_NET_ADMIN; else capped, which is harmless. */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
}

/* Forward a frame keeping its data, with a new stream id. */
static int forward(struct ttrpc_conn *c, uint32_t id, uint8_t type, uint8_t flags,
		   const uint8_t *data, size_t len)
{
	struct ttrpc_header h = {
	    .length = (uint32_t)len,
	    .stream_id = id,
	    .type = type,
	    .flags = flags,
	};
	return ttrpc_conn_sendv(c, &h, data, len, NULL, 0);
}

static char *bytes_dup(struct ttrpc_bytes b)
{
	if (b.len == 0)
		return strdup("");
	if (memchr(b.data, 0, b.len))
		return NULL;
	return strndup((const char *)b.data, b.len);
}

/* Re-encode a parsed Request into r->frame with a new payload and timeout; metadata verbatim. */
static int reencode(struct ttrpc_relay *r, const struct ttrpc_request_view *req,
		    const void *payload, size_t payload_len, int64_t timeout_nano)
{
	_cleanup_free_ char *service = bytes_dup(req->service);
	_cleanup_free_ char *method = bytes_dup(req->method);

	if (!service || !method)
		return -EBADMSG;
	r->frame.len = 0;
	return ttrpc_request_encode(&r->frame, service, method, payload, payload_len, timeout_nano,
				    &req->metadata_raw, NULL, 0);
}

/* ---- mapping table ---- */

static int map_grow(struct ttrpc_relay *r)
{
	uint32_t cap = r->map ? (r->map_mask + 1) * 2 : MAP_INITIAL_CAPACITY;
	struct mapping *m = calloc(cap, sizeof(*m));

	if (!m)
		return -ENOMEM;
	/* Live ids occupied distinct slots modulo the old size, so they cannot collide modulo
	 * twice that size. */
	if (r->map)
		for (uint32_t i = 0; i <= r->map_mask; i++)
			if (r->map[i].up_id != 0)
				m[(r->map[i].up_id >> 1) & (cap - 1)] = r->map[i];
	free(r->map);
	r->map = m;
	r->map_mask = cap - 1;
	return 0;
}

static struct mapping *map_find(struct ttrpc_relay *r, uint32_t up_id)
{
	struct mapping *m;

	if (!r->map || up_id == 0)
		return NULL;
	m = &r->map[(up_id >> 1) & r->map_mask];
	return m->up_id == up_id ? m : NULL;
}

static void map_remove(struct ttrpc_relay *r, struct mapping *m)
{
	m->up_id = 0;
	r->n_map--;
}

/* Reverse lookup for Data frames of client-streaming calls, which Kata never makes: a scan is
 * acceptable there and keeps the hot path (Request/Response) to one table. */
static struct mapping *map_find_downstream(struct ttrpc_relay *r, uint32_t slot, uint32_t gen,
					   uint32_t ds_id)
{
	if (!r->map || r->n_map == 0)
		return NULL;
	for (uint32_t i = 0; i <= r->map_mask; i++) {
		struct mapping *m = &r->map[i];
		if (m->up_id != 0 && m->ds_id == ds_id && m->ds_slot == slot && m->ds_gen == gen)
			return m;
	}
	return NULL;
}

static int map_add(struct ttrpc_relay *r, uint32_t slot, uint32_t gen, uint32_t ds_id,
		   uint32_t *ret_up_id)
{
	int ret;

	if (r->n_map >= MAX_IN_FLIGHT)
		return -EBUSY;
	if (!r->map || (r->n_map + 1) * 2 > r->map_mask + 1) {
		ret = map_grow(r);
		if (ret < 0)
			return ret;
	}
	for (;;) {
		uint32_t id = r->next_up_id;
		if (id > LAST_UPSTREAM_ID)
			return -EOVERFLOW;
		r->next_up_id += 2;
		struct mapping *m = &r->map[(id >> 1) & r->map_mask];
		if (m->up_id != 0)
			continue; /* a long-running call holds this slot: skip the id */
		*m = (struct mapping){.up_id = id, .ds_id = ds_id, .ds_slot = slot, .ds_gen = gen};
		r->n_map++;
		*ret_up_id = id;
		return 0;
	}
}

/* ---- upstream ---- */

static void upstream_lost(struct ttrpc_relay *r, int error, bool notify);

/* Relay a Request to the connected upstream. data is the envelope as it should go upstream. */
static void send_request(struct ttrpc_relay *r, struct downstream *ds, uint32_t ds_id,
			 uint8_t flags, const uint8_t *data, size_t len)
{
	uint32_t up_id;
	int ret;

	if (len > TTRPC_MAX_DATA_BYTES)
		return send_error(r, ds->conn, ds_id, TTRPC_RESOURCE_EXHAUSTED,
				  "message length %zu exceed maximum message size of %u", len,
				  TTRPC_MAX_DATA_BYTES);
	ret = map_add(r, ds->slot, r->slots[ds->slot].gen, ds_id, &up_id);
	if (ret == -EBUSY)
		return send_error(r, ds->conn, ds_id, TTRPC_RESOURCE_EXHAUSTED,
				  "too many calls in flight to the agent");
	if (ret < 0)
		return send_error(r, ds->conn, ds_id, TTRPC_UNAVAILABLE, "cannot relay request: %s",
				  strerror(-ret));
	ret = forward(r->up, up_id, TTRPC_TYPE_REQUEST, flags, data, len);
	if (ret < 0) {
		map_remove(r, map_find(r, up_id));
		return send_error(r, ds->conn, ds_id, TTRPC_UNAVAILABLE,
				  "agent connection closed: %s", strerror(-ret));
	}
	check_upstream_pressure(r);
}

static void on_up_frame(struct ttrpc_conn *c, const struct ttrpc_header *h, const uint8_t *data,
			void *userdata)
{
	struct ttrpc_relay *r = userdata;
	struct mapping *m;
	struct downstream *ds;
	uint32_t ds_id;

	if (h->type != TTRPC_TYPE_RESPONSE && h->type != TTRPC_TYPE_DATA)
		return; /* the agent never initiates streams; unknown types are ignored */
	m = map_find(r, h->stream_id);
	if (!m)
		return; /* late answer to a forgotten call */
	ds = slot_get(r, m->ds_slot, m->ds_gen);
	ds_id = m->ds_id;
	if (h->type == TTRPC_TYPE_RESPONSE || (h->flags & TTRPC_FLAG_REMOTE_CLOSED))
		map_remove(r, m);
	if (!ds)
		return; /* orphaned: the downstream connection is gone */
	if (forward(ds->conn, ds_id, h->type, h->flags, data, h->length) >= 0)
		check_downstream_pressure(r, ds);
}

static void on_up_oversize(struct ttrpc_conn *c, const struct ttrpc_header *h, void *userdata)
{
	struct ttrpc_relay *r = userdata;
	struct mapping *m = map_find(r, h->stream_id);
	struct downstream *ds;
	uint32_t ds_id;

	if (!m || (h->type != TTRPC_TYPE_RESPONSE && h->type != TTRPC_TYPE_DATA))
		return;
	ds = slot_get(r, m->ds_slot, m->ds_gen);
	ds_id = m->ds_id;
	map_remove(r, m);
	if (ds)
		send_error(r, ds->conn, ds_id, TTRPC_RESOURCE_EXHAUSTED,
			   "message length %" PRIu32 " exceed maximum message size of %u",
			   h->length, TTRPC_MAX_DATA_BYTES);
}

static void on_up_drain(struct ttrpc_conn *c, void *userdata)
{
	set_downstreams_paused(userdata, false);
}

static void on_up_close(struct ttrpc_conn *c, int error, void *userdata)
{
	upstream_lost(userdata, error, true);
}

static const struct ttrpc_conn_ops upstream_ops = {
    .on_frame = on_up_frame,
    .on_oversize = on_up_oversize,
    .on_drain = on_up_drain,
    .on_close = on_up_close,
};

/* Drop the upstream and answer every call in flight, then tell the owner. */
static void upstream_lost(struct ttrpc_relay *r, int error, bool notify)
{
	r->up = ttrpc_conn_free(r->up);
	r->next_up_id = 1;
	set_downstreams_paused(r, false);
	if (r->n_map > 0)
		for (uint32_t i = 0; i <= r->map_mask; i++) {
			struct mapping *m = &r->map[i];
			if (m->up_id == 0)
				continue;
			struct downstream *ds = slot_get(r, m->ds_slot, m->ds_gen);
			m->up_id = 0;
			if (ds)
				send_error(r, ds->conn, m->ds_id, TTRPC_UNAVAILABLE,
					   "agent connection closed%s%s", error < 0 ? ": " : "",
					   error < 0 ? strerror(-error) : "");
		}
	r->n_map = 0;
	if (notify && r->ops.upstream_closed)
		r->ops.upstream_closed(r, error, r->userdata);
}

/* ---- queue while connecting ---- */

static void queue_unlink_all(struct ttrpc_relay *r, struct queued **ret)
{
	*ret = r->queue_head;
	r->queue_head = NULL;
	r->queue_tail = &r->queue_head;
	r->n_queued = 0;
	r->queued_bytes = 0;
}

static void queue_remove(struct ttrpc_relay *r, struct queued **link)
{
	struct queued *q = *link;

	*link = q->next;
	if (r->queue_tail == &q->next)
		r->queue_tail = link;
	r->n_queued--;
	r->queued_bytes -= q->len;
	free(q);
}

static int64_t queue_earliest_deadline(const struct ttrpc_relay *r)
{
	int64_t earliest = 0;

	for (const struct queued *q = r->queue_head; q; q = q->next)
		if (q->deadline_ns > 0 && (earliest == 0 || q->deadline_ns < earliest))
			earliest = q->deadline_ns;
	return earliest;
}

static void on_queue_timer(struct loop_source *s, void *userdata)
{
	struct ttrpc_relay *r = userdata;
	int64_t now = now_ns(), next;

	r->queue_timer_at = 0;
	for (struct queued **link = &r->queue_head; *link;) {
		struct queued *q = *link;
		if (q->deadline_ns == 0 || q->deadline_ns > now) {
			link = &q->next;
			continue;
		}
		struct downstream *ds = slot_get(r, q->ds_slot, q->ds_gen);
		if (ds && q->type == TTRPC_TYPE_REQUEST)
			send_error(r, ds->conn, q->ds_id, TTRPC_DEADLINE_EXCEEDED,
				   "context deadline exceeded");
		queue_remove(r, link);
	}
	next = queue_earliest_deadline(r);
	if (next > 0 && loop_source_set_timer(r->queue_timer, next) >= 0)
		r->queue_timer_at = next;
}

static void arm_queue_timer(struct ttrpc_relay *r, int64_t deadline_ns)
{
	int ret;

	if (deadline_ns == 0 || (r->queue_timer_at != 0 && r->queue_timer_at <= deadline_ns))
		return;
	if (r->queue_timer)
		ret = loop_source_set_timer(r->queue_timer, deadline_ns);
	else
		ret = loop_add_timer(r->loop, deadline_ns, on_queue_timer, r, &r->queue_timer);
	/* Without a timer the request still fails when the connection attempt ends. */
	if (ret >= 0)
		r->queue_timer_at = deadline_ns;
}

static void queue_push(struct ttrpc_relay *r, struct downstream *ds, const struct ttrpc_header *h,
		       const uint8_t *data, size_t len, int64_t deadline_ns)
{
	struct queued *q;

	if (r->n_queued >= r->queue_limit || r->queued_bytes + len > QUEUE_MAX_BYTES) {
		if (h->type == TTRPC_TYPE_REQUEST)
			send_error(r, ds->conn, h->stream_id, TTRPC_RESOURCE_EXHAUSTED,
				   "too many requests waiting for the agent connection");
		return;
	}
	q = malloc(sizeof(*q) + len);
	if (!q) {
		if (h->type == TTRPC_TYPE_REQUEST)
			send_error(r, ds->conn, h->stream_id, TTRPC_RESOURCE_EXHAUSTED,
				   "out of memory");
		return;
	}
	*q = (struct queued){
	    .ds_slot = ds->slot,
	    .ds_gen = r->slots[ds->slot].gen,
	    .ds_id = h->stream_id,
	    .type = h->type,
	    .flags = h->flags,
	    .deadline_ns = deadline_ns,
	    .len = len,
	};
	if (len > 0)
		memcpy(q->data, data, len);
	*r->queue_tail = q;
	r->queue_tail = &q->next;
	r->n_queued++;
	r->queued_bytes += len;
	arm_queue_timer(r, deadline_ns);
}

static bool queue_has_request(const struct ttrpc_relay *r, uint32_t slot, uint32_t gen,
			      uint32_t ds_id)
{
	for (const struct queued *q = r->queue_head; q; q = q->next)
		if (q->type == TTRPC_TYPE_REQUEST && q->ds_id == ds_id && q->ds_slot == slot &&
		    q->ds_gen == gen)
			return true;
	return false;
}

static void queue_drop_downstream(struct ttrpc_relay *r, uint32_t slot, uint32_t gen)
{
	for (struct queued **link = &r->queue_head; *link;) {
		if ((*link)->ds_slot == slot && (*link)->ds_gen == gen)
			queue_remove(r, link);
		else
			link = &(*link)->next;
	}
}

/* Send what was queued now that an upstream exists. A queued Request has waited, so its
 * timeout_nano is replaced by what remains of its deadline (a proxy must never extend it). */
static void queue_flush(struct ttrpc_relay *r)
{
	struct queued *q, *next;
	int64_t now = now_ns();

	queue_unlink_all(r, &q);
	for (; q; q = next) {
		next = q->next;
		struct downstream *ds = slot_get(r, q->ds_slot, q->ds_gen);
		if (!ds || !r->up) {
			if (ds && q->type == TTRPC_TYPE_REQUEST)
				send_error(r, ds->conn, q->ds_id, TTRPC_UNAVAILABLE,
					   "agent connection closed");
		} else if (q->type == TTRPC_TYPE_REQUEST) {
			const uint8_t *data = q->data;
			size_t len = q->len;
			struct ttrpc_request_view req;
			if (q->deadline_ns > 0) {
				if (q->deadline_ns <= now) {
					send_error(r, ds->conn, q->ds_id, TTRPC_DEADLINE_EXCEEDED,
						   "context deadline exceeded");
					free(q);
					continue;
				}
				/* Parsed when queued, so this cannot fail on content. */
				if (ttrpc_request_parse(q->data, q->len, &req) >= 0 &&
				    reencode(r, &req, req.payload.data, req.payload.len,
					     q->deadline_ns - now) >= 0) {
					data = r->frame.data;
					len = r->frame.len;
				}
			}
			send_request(r, ds, q->ds_id, q->flags, data, len);
		} else {
			struct mapping *m = map_find_downstream(r, q->ds_slot, q->ds_gen, q->ds_id);
			if (m)
				(void)forward(r->up, m->up_id, q->type, q->flags, q->data, q->len);
		}
		free(q);
	}
}

static void need_upstream(struct ttrpc_relay *r)
{
	if (r->up || r->connecting)
		return;
	if (!r->ops.connect_upstream)
		return ttrpc_relay_upstream_failed(r, "no agent connection");
	r->connecting = true;
	/* May call ttrpc_relay_set_upstream() or ttrpc_relay_upstream_failed() right away. */
	r->ops.connect_upstream(r, queue_earliest_deadline(r), r->userdata);
}

/* ---- downstream ---- */

static void handle_request(struct ttrpc_relay *r, struct downstream *ds,
			   const struct ttrpc_header *h, const uint8_t *data)
{
	struct ttrpc_request_view req;
	const uint8_t *body = data;
	size_t len = h->length;
	bool parsed = false;
	int ret;

	if ((h->stream_id & 1) == 0)
		return send_error(r, ds->conn, h->stream_id, TTRPC_INVALID_ARGUMENT, "%s",
				  MSG_EVEN_ID);
	if (h->stream_id <= ds->last_id)
		return send_error(r, ds->conn, h->stream_id, TTRPC_INVALID_ARGUMENT, "%s",
				  MSG_REUSED_ID);
	ds->last_id = h->stream_id;
	if (r->up && r->next_up_id > LAST_UPSTREAM_ID)
		upstream_lost(r, -EOVERFLOW, true); /* this request then waits for a new one */

	/* Without a rewrite hook the steady state never decodes the envelope, and a malformed
	 * one is left for the upstream to reject. With a hook it must be understood: a request
	 * the hook cannot see must not slip past it. */
	if (r->ops.rewrite || !r->up) {
		ret = ttrpc_request_parse(data, len, &req);
		if (ret < 0 && r->ops.rewrite)
			return send_error(r, ds->conn, h->stream_id, TTRPC_INVALID_ARGUMENT,
					  "unmarshal request error: %s", strerror(-ret));
		parsed = ret >= 0;
	}
	if (r->ops.rewrite) {
		_cleanup_free_ char *message = NULL;
		r->payload.len = 0;
		ret = r->ops.rewrite(&req, &r->payload, &message, r->userdata);
		if (ret < 0)
			return send_error(r, ds->conn, h->stream_id, TTRPC_INVALID_ARGUMENT, "%s",
					  message ? message : strerror(-ret));
		if (ret > 0) {
			/* Same service, method and timeout_nano; metadata byte for byte. */
			ret = reencode(r, &req, r->payload.data, r->payload.len, req.timeout_nano);
			if (ret < 0)
				return send_error(r, ds->conn, h->stream_id, TTRPC_INTERNAL,
						  "cannot re-encode request: %s", strerror(-ret));
			body = r->frame.data;
			len = r->frame.len;
		}
	}

	/* timeout_nano is relayed unchanged: the frame leaves within microseconds of arriving, far
	 * below the deadline's resolution, so the remaining deadline is what the client sent. */
	if (r->up)
		return send_request(r, ds, h->stream_id, h->flags, body, len);

	int64_t deadline_ns = 0;
	if (parsed && req.timeout_nano > 0)
		deadline_ns = now_ns() + req.timeout_nano;
	queue_push(r, ds, h, body, len, deadline_ns);
	need_upstream(r);
}

static void handle_downstream_data(struct ttrpc_relay *r, struct downstream *ds,
				   const struct ttrpc_header *h, const uint8_t *data)
{
	uint32_t gen = r->slots[ds->slot].gen;

	if (r->up) {
		struct mapping *m = map_find_downstream(r, ds->slot, gen, h->stream_id);
		if (m) {
			if (forward(r->up, m->up_id, h->type, h->flags, data, h->length) >= 0)
				check_upstream_pressure(r);
			return;
		}
	} else if (queue_has_request(r, ds->slot, gen, h->stream_id)) {
		return queue_push(r, ds, h, data, h->length, 0);
	}
	send_error(r, ds->conn, h->stream_id, TTRPC_INVALID_ARGUMENT, "%s", MSG_INACTIVE);
}

static void on_ds_frame(struct ttrpc_conn *c, const struct ttrpc_header *h, const uint8_t *data,
			void *userdata)
{
	struct downstream *ds = userdata;

	if (h->type == TTRPC_TYPE_REQUEST)
		handle_request(ds->relay, ds, h, data);
	else if (h->type == TTRPC_TYPE_DATA)
		handle_downstream_data(ds->relay, ds, h, data);
	/* Responses from a client and unknown types are ignored, as a server does. */
}

static void on_ds_oversize(struct ttrpc_conn *c, const struct ttrpc_header *h, void *userdata)
{
	struct downstream *ds = userdata;

	send_error(ds->relay, c, h->stream_id, TTRPC_RESOURCE_EXHAUSTED,
		   "message length %" PRIu32 " exceed maximum message size of %u", h->length,
		   TTRPC_MAX_DATA_BYTES);
}

static void on_ds_drain(struct ttrpc_conn *c, void *userdata)
{
	struct downstream *ds = userdata;

	downstream_unblock(ds->relay, ds);
}

static void downstream_free(struct ttrpc_relay *r, struct downstream *ds)
{
	struct ds_slot *s = &r->slots[ds->slot];

	downstream_unblock(r, ds);
	queue_drop_downstream(r, ds->slot, s->gen);
	/* Mappings of this connection become orphans: their answers are dropped on arrival. */
	s->gen++;
	s->ds = NULL;
	s->next_free = r->free_slot;
	r->free_slot = ds->slot;
	r->n_downstream--;
	ttrpc_conn_free(ds->conn);
	free(ds);
}

static void on_ds_close(struct ttrpc_conn *c, int error, void *userdata)
{
	struct downstream *ds = userdata;

	downstream_free(ds->relay, ds);
}

static const struct ttrpc_conn_ops downstream_ops = {
    .on_frame = on_ds_frame,
    .on_oversize = on_ds_oversize,
    .on_drain = on_ds_drain,
    .on_close = on_ds_close,
};

static int slot_alloc(struct ttrpc_relay *r, uint32_t *ret)
{
	if (r->free_slot == UINT32_MAX) {
		uint32_t n = r->n_slots ? r->n_slots * 2 : 8;
		struct ds_slot *s = reallocarray(r->slots, n, sizeof(*s));
		if (!s)
			return -ENOMEM;
		for (uint32_t i = r->n_slots; i < n; i++)
			s[i] =
			    (struct ds_slot){.gen = 1, .next_free = i + 1 < n ? i + 1 : UINT32_MAX};
		r->slots = s;
		r->free_slot = r->n_slots;
		r->n_slots = n;
	}
	*ret = r->free_slot;
	r->free_slot = r->slots[*ret].next_free;
	return 0;
}

/* On failure fd and ssl stay with the caller, as with ttrpc_conn_new(). */
static int add_downstream(struct ttrpc_relay *r, int fd, SSL *ssl, int64_t handshake_timeout_ns)
{
	struct downstream *ds;
	uint32_t slot;
	int ret;

	ds = calloc(1, sizeof(*ds));
	if (!ds)
		return -ENOMEM;
	ret = slot_alloc(r, &slot);
	if (ret < 0) {
		free(ds);
		return ret;
	}
	ds->relay = r;
	ds->slot = slot;
	tune_socket(fd);
	ret =
	    ttrpc_conn_new(r->loop, fd, ssl, handshake_timeout_ns, &downstream_ops, ds, &ds->conn);
	if (ret < 0) {
		r->slots[slot].next_free = r->free_slot;
		r->free_slot = slot;
		free(ds);
		return ret;
	}
	r->slots[slot].ds = ds;
	r->n_downstream++;
	if (r->ds_paused)
		ttrpc_conn_set_read_paused(ds->conn, true);
	return 0;
}

/* ---- listeners ---- */

static void on_accept(struct loop_source *s, int fd, uint32_t events, void *userdata);

static void on_accept_retry(struct loop_source *s, void *userdata)
{
	struct listener *l = userdata;

	(void)loop_source_set_io_events(l->io, EPOLLIN);
}

static void on_accept(struct loop_source *s, int fd, uint32_t events, void *userdata)
{
	struct listener *l = userdata;

	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int cfd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/* Level-triggered: back off instead of spinning until fds free up. */
				(void)loop_source_set_io_events(l->io, 0);
				if (l->retry)
					(void)loop_source_set_timer(l->retry,
								    now_ns() + ACCEPT_BACKOFF_NS);
				else
					(void)loop_add_timer(loop_source_get_loop(s),
							     now_ns() + ACCEPT_BACKOFF_NS,
							     on_accept_retry, l, &l->retry);
			}
			return;
		}
		int one = 1;
		(void)setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		SSL *ssl = NULL;
		if (l->tls) {
			ssl = SSL_new(l->tls);
			if (!ssl) {
				safe_close(cfd);
				continue;
			}
			/* The conn attaches the socket and runs the server handshake. */
			SSL_set_accept_state(ssl);
		}
		if (add_downstream(l->relay, cfd, ssl, ssl ? HANDSHAKE_TIMEOUT_NS : 0) < 0) {
			SSL_free(ssl);
			safe_close(cfd);
		}
	}
}

static void listener_free(struct listener *l)
{
	if (!l)
		return;
	loop_source_free(l->io);
	loop_source_free(l->retry);
	safe_close(l->fd);
	SSL_CTX_free(l->tls);
	free(l);
}

/* On failure fd stays with the caller. */
static int add_listener(struct ttrpc_relay *r, int fd, SSL_CTX *tls)
{
	struct listener *l;
	int ret;

	ret = fd_set_nonblock(fd, true);
	if (ret < 0)
		return ret;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	ret = loop_add_io(r->loop, fd, EPOLLIN, on_accept, l, &l->io);
	if (ret < 0) {
		free(l);
		return ret;
	}
	if (tls)
		SSL_CTX_up_ref(tls);
	l->relay = r;
	l->fd = fd;
	l->tls = tls;
	l->next = r->listeners;
	r->listeners = l;
	return 0;
}

int ttrpc_relay_listen_unix(struct ttrpc_relay *r, const char *path, mode_t mode)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	_cleanup_free_ char *dir = NULL;
	_cleanup_close_ int fd = -EBADF;
	struct stat st;
	size_t n;
	int ret;

	if (!r || str_empty(path))
		return -EINVAL;
	n = strlen(path);
	if (n >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, n + 1);

	const char *slash = strrchr(path, '/');
	if (slash && slash != path) {
		dir = strndup(path, (size_t)(slash - path));
		if (!dir)
			return -ENOMEM;
		ret = mkdir_p(dir, 0755);
		if (ret < 0)
			return ret;
	}
	/* A socket left by an earlier run (the adaptor restarts and listens again); anything
	 * else at the path is not ours to remove. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return -EEXIST;
		if (unlink(path) < 0 && errno != ENOENT)
			return -errno;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	if (chmod(path, mode) < 0 || listen(fd, SOMAXCONN) < 0) {
		ret = -errno;
		(void)unlink(path);
		return ret;
	}
	ret = add_listener(r, fd, NULL);
	if (ret < 0) {
		(void)unlink(path);
		return ret;
	}
	TAKE_FD(fd);
	return 0;
}

/* The socket is adopted whatever happens: closed here on failure too. */
int ttrpc_relay_listen_fd(struct ttrpc_relay *r, int fd, struct ssl_ctx_st *tls)
{
	int ret;

	if (fd < 0)
		return -EINVAL;
	ret = r ? add_listener(r, fd, tls) : -EINVAL;
	if (ret < 0)
		safe_close(fd);
	return ret;
}

/* ---- public ---- */

int ttrpc_relay_new(struct loop *l, const struct ttrpc_relay_ops *ops, void *userdata,
		    struct ttrpc_relay **ret)
{
	struct ttrpc_relay *r;

	if (!l || !ret)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->loop = l;
	if (ops)
		r->ops = *ops;
	r->userdata = userdata;
	r->free_slot = UINT32_MAX;
	r->next_up_id = 1;
	r->queue_tail = &r->queue_head;
	r->queue_limit = DEFAULT_QUEUE_LIMIT;
	*ret = r;
	return 0;
}

struct ttrpc_relay *ttrpc_relay_free(struct ttrpc_relay *r)
{
	struct queued *q;

	if (!r)
		return NULL;
	while (r->listeners) {
		struct listener *l = r->listeners;
		r->listeners = l->next;
		listener_free(l);
	}
	for (uint32_t i = 0; i < r->n_slots; i++)
		if (r->slots[i].ds) {
			ttrpc_conn_free(r->slots[i].ds->conn);
			free(r->slots[i].ds);
		}
	free(r->slots);
	ttrpc_conn_free(r->up);
	free(r->map);
	queue_unlink_all(r, &q);
	while (q) {
		struct queued *next = q->next;
		free(q);
		q = next;
	}
	loop_source_free(r->queue_timer);
	buf_done(&r->payload);
	buf_done(&r->frame);
	buf_done(&r->reply);
	free(r);
	return NULL;
}

int ttrpc_relay_add_downstream(struct ttrpc_relay *r, int fd, struct ssl_st *ssl)
{
	if (!r || fd < 0)
		return -EINVAL;
	return add_downstream(r, fd, ssl, ssl ? HANDSHAKE_TIMEOUT_NS : 0);
}

int ttrpc_relay_set_upstream(struct ttrpc_relay *r, int fd, struct ssl_st *ssl)
{
	struct ttrpc_conn *c;
	int ret;

	if (!r || fd < 0)
		return -EINVAL;
	if (r->up)
		return -EBUSY;
	tune_socket(fd);
	ret = ttrpc_conn_new(r->loop, fd, ssl, 0, &upstream_ops, r, &c);
	if (ret < 0)
		return ret;
	r->up = c;
	r->connecting = false;
	r->next_up_id = 1;
	if (r->n_blocking > 0)
		ttrpc_conn_set_read_paused(c, true);
	queue_flush(r);
	return 0;
}

void ttrpc_relay_upstream_failed(struct ttrpc_relay *r, const char *message)
{
	struct queued *q;

	if (!r)
		return;
	r->connecting = false;
	queue_unlink_all(r, &q);
	while (q) {
		struct queued *next = q->next;
		struct downstream *ds = slot_get(r, q->ds_slot, q->ds_gen);
		if (ds && q->type == TTRPC_TYPE_REQUEST)
			send_error(r, ds->conn, q->ds_id, TTRPC_UNAVAILABLE, "%s",
				   message ? message : "agent connection failed");
		free(q);
		q = next;
	}
}

bool ttrpc_relay_has_upstream(const struct ttrpc_relay *r)
{
	return r && r->up;
}

size_t ttrpc_relay_n_downstream(const struct ttrpc_relay *r)
{
	return r ? r->n_downstream : 0;
}

void ttrpc_relay_set_queue_limit(struct ttrpc_relay *r, size_t n)
{
	if (r)
		r->queue_limit = n;
}

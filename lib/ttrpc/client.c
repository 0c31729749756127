/* lib/ttrpc/client.c: an asynchronous ttRPC client on one connection (WIRE.md 1.4, 1.6, 1.8):
 * odd increasing stream ids, local deadlines, both OK encodings, late answers dropped. */
#include "ttrpc/ttrpc-internal.h"

struct ccall {
	struct ttrpc_client *client;
	uint32_t id;
	ttrpc_reply_fn fn;
	void *userdata;
	struct loop_source *timer;
	struct ccall *next; /* in its bucket */
};

struct ttrpc_client {
	struct loop *loop;
	struct ttrpc_conn *conn;
	uint64_t next_id;
	/* Pending calls by id. Ids are consecutive odd numbers, so id/2 spreads evenly. */
	struct ccall **buckets;
	size_t n_buckets;
	size_t n_calls;
	struct buf scratch; /* request encoding */
	unsigned busy;
	bool closed;
	bool dead;
};

/* ---- pending call table ---- */

static size_t bucket_of(const struct ttrpc_client *c, uint32_t id)
{
	return (id >> 1) & (c->n_buckets - 1);
}

static int table_grow(struct ttrpc_client *c)
{
	size_t n = c->n_buckets ? c->n_buckets * 2 : 16;
	struct ccall **b = calloc(n, sizeof(*b));
	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < c->n_buckets; i++)
		while (c->buckets[i]) {
			struct ccall *call = c->buckets[i];
			c->buckets[i] = call->next;
			size_t j = (call->id >> 1) & (n - 1);
			call->next = b[j];
			b[j] = call;
		}
	free(c->buckets);
	c->buckets = b;
	c->n_buckets = n;
	return 0;
}

static int table_add(struct ttrpc_client *c, struct ccall *call)
{
	if (c->n_calls >= c->n_buckets) {
		int r = table_grow(c);
		if (r < 0)
			return r;
	}
	struct ccall **head = &c->buckets[bucket_of(c, call->id)];
	call->next = *head;
	*head = call;
	c->n_calls++;
	return 0;
}

static struct ccall *table_take(struct ttrpc_client *c, uint32_t id)
{
	if (c->n_calls == 0)
		return NULL;
	for (struct ccall **p = &c->buckets[bucket_of(c, id)]; *p; p = &(*p)->next)
		if ((*p)->id == id) {
			struct ccall *call = *p;
			*p = call->next;
			c->n_calls--;
			return call;
		}
	return NULL;
}

static struct ccall *table_take_any(struct ttrpc_client *c)
{
	if (c->n_calls == 0)
		return NULL;
	for (size_t i = 0; i < c->n_buckets; i++)
		if (c->buckets[i])
			return table_take(c, c->buckets[i]->id);
	return NULL;
}

/* ---- completion ---- */

static void client_destroy(struct ttrpc_client *c)
{
	free(c->buckets);
	buf_done(&c->scratch);
	free(c);
}

/* Run the call's function and free it. Returns true when the client is gone afterwards. */
static bool complete(struct ttrpc_client *c, struct ccall *call, int code, const char *message,
		     const uint8_t *payload, size_t len)
{
	call->timer = loop_source_free(call->timer);
	ttrpc_reply_fn fn = call->fn;
	void *userdata = call->userdata;
	free(call);
	c->busy++;
	fn(c, code, message, payload, len, userdata);
	if (--c->busy == 0 && c->dead) {
		client_destroy(c);
		return true;
	}
	return c->dead;
}

static void fail_all(struct ttrpc_client *c, int code, const char *message)
{
	struct ccall *call;
	c->busy++;
	while ((call = table_take_any(c)))
		complete(c, call, code, message, NULL, 0);
	if (--c->busy == 0 && c->dead)
		client_destroy(c);
}

static void on_call_timeout(struct loop_source *s, void *userdata)
{
	struct ccall *call = userdata;
	struct ttrpc_client *c = call->client;
	call->timer = loop_source_free(s);
	/* Forgetting the id makes a late answer an unknown id, which is dropped. */
	table_take(c, call->id);
	complete(c, call, -ETIMEDOUT, "deadline exceeded (local)", NULL, 0);
}

static void on_frame(struct ttrpc_conn *conn, const struct ttrpc_header *h, const uint8_t *data,
		     void *userdata)
{
	struct ttrpc_client *c = userdata;
	if (h->type != TTRPC_TYPE_RESPONSE)
		return;
	struct ccall *call = table_take(c, h->stream_id);
	if (!call)
		return;

	struct ttrpc_response_view resp;
	if (ttrpc_response_parse(data, h->length, &resp) < 0) {
		complete(c, call, -EBADMSG, "malformed response", NULL, 0);
		return;
	}
	if (resp.code == TTRPC_OK) {
		complete(c, call, 0, "", resp.payload.data, resp.payload.len);
		return;
	}
	/* A negative code would read as a local errno. */
	int code = resp.code > 0 ? resp.code : TTRPC_UNKNOWN;
	_cleanup_free_ char *msg = malloc(resp.message.len + 1);
	if (msg) {
		memcpy(msg, resp.message.data, resp.message.len);
		msg[resp.message.len] = 0;
	}
	complete(c, call, code, msg ? msg : "", NULL, 0);
}

static void on_oversize(struct ttrpc_conn *conn, const struct ttrpc_header *h, void *userdata)
{
	struct ttrpc_client *c = userdata;
	if (h->type != TTRPC_TYPE_RESPONSE)
		return;
	struct ccall *call = table_take(c, h->stream_id);
	if (!call)
		return;
	char msg[128];
	snprintf(msg, sizeof(msg), TTRPC_MSG_OVERSIZE, (uint64_t)h->length, TTRPC_MAX_DATA_BYTES);
	complete(c, call, TTRPC_RESOURCE_EXHAUSTED, msg, NULL, 0);
}

static void on_close(struct ttrpc_conn *conn, int error, void *userdata)
{
	struct ttrpc_client *c = userdata;
	c->closed = true;
	char msg[160];
	if (error < 0)
		snprintf(msg, sizeof(msg), "connection closed: %s", strerror(-error));
	else
		snprintf(msg, sizeof(msg), "connection closed");
	fail_all(c, -ECONNRESET, msg);
}

static const struct ttrpc_conn_ops client_ops = {
    .on_frame = on_frame,
    .on_oversize = on_oversize,
    .on_close = on_close,
};

int ttrpc_client_new(struct loop *l, int fd, struct ssl_st *ssl, struct ttrpc_client **ret)
{
	if (!l || fd < 0 || !ret)
		return -EINVAL;
	struct ttrpc_client *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->loop = l;
	c->next_id = 1;
	int r = ttrpc_conn_new(l, fd, ssl, 0, &client_ops, c, &c->conn);
	if (r < 0) {
		free(c);
		return r;
	}
	*ret = c;
	return 0;
}

struct ttrpc_client *ttrpc_client_free(struct ttrpc_client *c)
{
	if (!c || c->dead)
		return NULL;
	c->dead = true;
	c->conn = ttrpc_conn_free(c->conn);
	c->busy++;
	fail_all(c, -ECANCELED, "client closed");
	if (--c->busy == 0)
		client_destroy(c);
	return NULL;
}

bool ttrpc_client_is_connected(const struct ttrpc_client *c)
{
	return c && c->conn && !c->closed && !c->dead;
}

int ttrpc_client_call(struct ttrpc_client *c, const char *service, const char *method,
		      const void *payload, size_t len, int64_t timeout_ns,
		      const struct ttrpc_kv *md, size_t n_md, ttrpc_reply_fn fn, void *userdata)
{
	if (!c || !fn || str_empty(service) || str_empty(method))
		return -EINVAL;
	if (!ttrpc_client_is_connected(c))
		return -ENOTCONN;
	if (c->next_id > UINT32_MAX)
		return -EOVERFLOW;
	if (timeout_ns < 0)
		timeout_ns = 0;

	c->scratch.len = 0;
	int r = ttrpc_request_encode(&c->scratch, service, method, payload, len, timeout_ns, NULL,
				     md, n_md);
	if (r < 0)
		return r;

	struct ccall *call = calloc(1, sizeof(*call));
	if (!call)
		return -ENOMEM;
	call->client = c;
	call->id = (uint32_t)c->next_id;
	call->fn = fn;
	call->userdata = userdata;
	if (timeout_ns > 0) {
		int64_t now = now_ns();
		int64_t deadline = timeout_ns > INT64_MAX - now ? INT64_MAX : now + timeout_ns;
		r = loop_add_timer(c->loop, deadline, on_call_timeout, call, &call->timer);
		if (r < 0) {
			free(call);
			return r;
		}
	}
	r = table_add(c, call);
	if (r < 0) {
		loop_source_free(call->timer);
		free(call);
		return r;
	}
	r = ttrpc_conn_send(c->conn, call->id, TTRPC_TYPE_REQUEST, 0, c->scratch.data,
			    c->scratch.len);
	if (r < 0) {
		table_take(c, call->id);
		loop_source_free(call->timer);
		free(call);
		return r;
	}
	c->next_id += 2;
	/* Large request bodies should not pin memory in an idle client. */
	if (c->scratch.cap > 256 * 1024)
		buf_done(&c->scratch);
	return 0;
}

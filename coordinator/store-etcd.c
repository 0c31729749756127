/* coordinator: the etcd v3 backend of the store (store.h), spoken through etcd's JSON gateway
 * with lib/http, so the coordinator needs no gRPC stack. */
#include "coordinator/store.h"

#include <jansson.h>

#include "http/http.h"
#include "userdata/userdata.h"

#define PREFIX_MAX_BYTES 512
#define FULL_KEY_MAX_BYTES (PREFIX_MAX_BYTES + STORE_KEY_MAX)
#define MESSAGE_MAX_BYTES 256

/* gRPC status codes as the gateway reports them in "code". */
enum {
	GRPC_INVALID_ARGUMENT = 3,
	GRPC_PERMISSION_DENIED = 7,
	GRPC_FAILED_PRECONDITION = 9,
	GRPC_OUT_OF_RANGE = 11,
	GRPC_UNAUTHENTICATED = 16,
};

struct etcd_store {
	struct store base;
	char **endpoints; /* without a trailing '/' */
	size_t n_endpoints;
	size_t preferred; /* the endpoint that answered last is tried first */
	char *prefix;
	char *ca_file;
	char *cert_file;
	char *key_file;
	int64_t timeout_ns;
};

static struct etcd_store *to_etcd(struct store *s)
{
	return (struct etcd_store *)s;
}

/* ---- response parsers (untrusted input) ---- */

/* A JSON object or NULL. */
static json_t *load_object(const char *body, size_t len)
{
	if (!body)
		return NULL;
	json_error_t jerr;
	json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (j && !json_is_object(j)) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/* Every successful gateway answer carries a response header; its absence means the endpoint is
 * not etcd (or not its v3 gateway) and must not be read as "key absent". */
static json_t *load_answer(const char *body, size_t len)
{
	json_t *j = load_object(body, len);
	if (j && !json_is_object(json_object_get(j, "header"))) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/* The gateway leaves empty bytes fields out, so an absent field is the empty value. */
static int bytes_field(const json_t *o, const char *name, size_t max_bytes, uint8_t **ret,
		       size_t *ret_len)
{
	const json_t *v = json_object_get(o, name);
	if (!v) {
		*ret = calloc(1, 1);
		*ret_len = 0;
		return *ret ? 0 : -ENOMEM;
	}
	if (!json_is_string(v))
		return -EBADMSG;
	int r = userdata_base64_decode(json_string_value(v), json_string_length(v), max_bytes, ret,
				       ret_len);
	return r == -EINVAL ? -EBADMSG : r;
}

int store_etcd_parse_range(const char *body, size_t len, const char *key, uint8_t **ret,
			   size_t *ret_len)
{
	json_auto_t *j = load_answer(body, len);
	if (!j)
		return -EBADMSG;
	const json_t *kvs = json_object_get(j, "kvs");
	if (!kvs)
		return -ENOENT;
	/* One key was asked for: more than one answer is not etcd's range semantics. */
	if (!json_is_array(kvs) || json_array_size(kvs) > 1)
		return -EBADMSG;
	if (json_array_size(kvs) == 0)
		return -ENOENT;
	const json_t *kv = json_array_get(kvs, 0);
	if (!json_is_object(kv))
		return -EBADMSG;
	if (key) {
		_cleanup_free_ uint8_t *k = NULL;
		size_t k_len = 0;
		int r = bytes_field(kv, "key", FULL_KEY_MAX_BYTES, &k, &k_len);
		if (r == -ENOMEM)
			return r;
		if (r < 0 || k_len != strlen(key) || memcmp(k, key, k_len) != 0)
			return -EBADMSG;
	}
	if (!ret)
		return 0;
	return bytes_field(kv, "value", STORE_VALUE_MAX_BYTES, ret, ret_len);
}

int store_etcd_parse_txn(const char *body, size_t len, bool *ret_succeeded)
{
	json_auto_t *j = load_answer(body, len);
	if (!j)
		return -EBADMSG;
	const json_t *s = json_object_get(j, "succeeded");
	if (s && !json_is_boolean(s))
		return -EBADMSG;
	*ret_succeeded = s && json_is_true(s);
	return 0;
}

static char *printable(const char *s, size_t n)
{
	n = MIN(n, (size_t)MESSAGE_MAX_BYTES);
	char *m = malloc(n + 1);
	if (!m)
		return NULL;
	for (size_t i = 0; i < n; i++)
		m[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	m[n] = 0;
	return m;
}

int store_etcd_parse_error(long status, const char *body, size_t len, char **ret_msg)
{
	json_auto_t *j = load_object(body, len);
	json_int_t code = -1;
	const json_t *m = NULL;
	if (j) {
		const json_t *c = json_object_get(j, "code");
		if (json_is_integer(c))
			code = json_integer_value(c);
		m = json_object_get(j, "message");
		if (!json_is_string(m))
			m = json_object_get(j, "error");
		if (!json_is_string(m))
			m = NULL;
	}
	const char *text = m ? json_string_value(m) : body ? body : "";
	size_t text_len = m ? json_string_length(m) : body ? len : 0;

	int r;
	switch (code) {
	case GRPC_INVALID_ARGUMENT:
	case GRPC_FAILED_PRECONDITION:
	case GRPC_OUT_OF_RANGE:
		r = -EINVAL;
		break;
	case GRPC_PERMISSION_DENIED:
	case GRPC_UNAUTHENTICATED:
		r = -EACCES;
		break;
	default:
		r = status == 401 || status == 403 ? -EACCES : status == 400 ? -EINVAL : -EIO;
	}
	/* etcd's --max-request-bytes, or the gRPC message limit in front of it. */
	if (memmem(text, text_len, "request is too large", 20) ||
	    memmem(text, text_len, "larger than max", 15))
		r = -EFBIG;

	if (ret_msg) {
		_cleanup_free_ char *p = printable(text, text_len);
		free(*ret_msg);
		*ret_msg = p ? str_printf("HTTP %ld: %s", status, p) : NULL;
	}
	return r;
}

/* ---- requests ---- */

struct outcome {
	bool answered;  /* an etcd endpoint gave its verdict (2xx or 4xx) */
	bool ambiguous; /* a failed endpoint may still have applied the request */
	char *msg;      /* why the last endpoint failed */
};

static void outcome_done(struct outcome *o)
{
	free(o->msg);
}

static void set_msg(struct outcome *o, const char *endpoint, const char *what)
{
	free(o->msg);
	o->msg = str_printf("%s: %s", endpoint, what);
}

/* POST body to /v3/kv/<op>, on each endpoint in turn from the one that answered last. 0 with a
 * 2xx answer in *ret; etcd's own refusal (4xx) as its errno without trying further; otherwise the
 * failure of the last endpoint. */
static int call(struct etcd_store *e, const char *op, const char *body, struct http_response *ret,
		struct outcome *out)
{
	static const struct http_header hdrs[] = {
	    {"Content-Type", "application/json"},
	    {"Accept", "application/json"},
	};
	size_t first = __atomic_load_n(&e->preferred, __ATOMIC_RELAXED);
	int r = -EHOSTUNREACH;
	for (size_t i = 0; i < e->n_endpoints; i++) {
		size_t idx = (first + i) % e->n_endpoints;
		const char *ep = e->endpoints[idx];
		_cleanup_free_ char *url = str_printf("%s/v3/kv/%s", ep, op);
		if (!url)
			return -ENOMEM;
		struct http_request req = {
		    .method = "POST",
		    .url = url,
		    .headers = hdrs,
		    .n_headers = ELEMENTSOF(hdrs),
		    .body = body,
		    .body_len = strlen(body),
		    .connect_timeout_ns = e->timeout_ns,
		    .timeout_ns = e->timeout_ns,
		    .max_body_bytes = STORE_ETCD_RESPONSE_MAX_BYTES,
		    .ca_file = e->ca_file,
		    .client_cert_file = e->cert_file,
		    .client_key_file = e->key_file,
		    /* etcd is cluster-internal; a proxy from the environment has no business in
		     * the path of the manifest history. */
		    .no_proxy = true,
		    .accept_any_status = true,
		};
		http_response_done(ret);
		_cleanup_pp_error_ struct pp_error *err = NULL;
		r = http_request(&req, ret, &err);
		if (r == -ENOMEM)
			return r;
		if (r == -EMSGSIZE) {
			/* An over-long answer is the data's fault, not the replica's. */
			set_msg(out, ep, pp_error_message(err, r));
			return -EFBIG;
		}
		if (r < 0) {
			if (r != -ECONNREFUSED && r != -EHOSTUNREACH)
				out->ambiguous = true;
			set_msg(out, ep, pp_error_message(err, r));
			continue;
		}
		if (ret->status >= 200 && ret->status < 300) {
			__atomic_store_n(&e->preferred, idx, __ATOMIC_RELAXED);
			out->answered = true;
			return 0;
		}
		_cleanup_free_ char *m = NULL;
		r = store_etcd_parse_error(ret->status, ret->body, ret->body_len, &m);
		set_msg(out, ep, m ? m : "error");
		if (r == -EFBIG || (ret->status < 500 && ret->status != 429)) {
			__atomic_store_n(&e->preferred, idx, __ATOMIC_RELAXED);
			out->answered = true;
			return r;
		}
		/* 5xx (no leader, timeout inside etcd) or 429: another member may do better. */
		out->ambiguous = true;
		r = -EIO;
	}
	return r;
}

static char *full_key_b64(struct etcd_store *e, const char *key, char **ret_full)
{
	_cleanup_free_ char *full = str_printf("%s%s", e->prefix, key);
	char *b64 = NULL;
	if (!full || userdata_base64_encode(full, strlen(full), &b64) < 0)
		return NULL;
	if (ret_full)
		*ret_full = TAKE_PTR(full);
	return b64;
}

static char *b64(const void *data, size_t len)
{
	char *s = NULL;
	return userdata_base64_encode(data, len, &s) < 0 ? NULL : s;
}

static int range(struct etcd_store *e, const char *key, bool keys_only, uint8_t **ret,
		 size_t *ret_len)
{
	_cleanup_free_ char *full = NULL;
	_cleanup_free_ char *k = full_key_b64(e, key, &full);
	_cleanup_free_ char *body =
	    k ? str_printf("{\"key\":\"%s\"%s}", k, keys_only ? ",\"keys_only\":true" : "") : NULL;
	if (!body)
		return -ENOMEM;
	_cleanup_(http_response_donep) struct http_response resp = {};
	_cleanup_(outcome_done) struct outcome out = {};
	int r = call(e, "range", body, &resp, &out);
	if (r < 0)
		return r;
	return store_etcd_parse_range(resp.body, resp.body_len, full, ret, ret_len);
}

static int etcd_get(struct store *s, const char *key, uint8_t **ret, size_t *ret_len)
{
	return range(to_etcd(s), key, false, ret, ret_len);
}

static int etcd_has(struct store *s, const char *key)
{
	int r = range(to_etcd(s), key, true, NULL, NULL);
	return r == -ENOENT ? 0 : r < 0 ? r : 1;
}

static int etcd_set(struct store *s, const char *key, const void *data, size_t len)
{
	struct etcd_store *e = to_etcd(s);
	_cleanup_free_ char *k = full_key_b64(e, key, NULL);
	_cleanup_free_ char *v = b64(data, len);
	_cleanup_free_ char *body =
	    k && v ? str_printf("{\"key\":\"%s\",\"value\":\"%s\"}", k, v) : NULL;
	if (!body)
		return -ENOMEM;
	_cleanup_(http_response_donep) struct http_response resp = {};
	_cleanup_(outcome_done) struct outcome out = {};
	int r = call(e, "put", body, &resp, &out);
	if (r < 0)
		return r;
	json_auto_t *j = load_answer(resp.body, resp.body_len);
	return j ? 0 : -EBADMSG;
}

static int etcd_cas(struct store *s, const char *key, const void *old, size_t old_len,
		    const void *data, size_t len)
{
	struct etcd_store *e = to_etcd(s);
	_cleanup_free_ char *k = full_key_b64(e, key, NULL);
	_cleanup_free_ char *v = b64(data, len);
	_cleanup_free_ char *o = old ? b64(old, old_len) : NULL;
	if (!k || !v || (old && !o))
		return -ENOMEM;
	/* A VALUE compare on an absent key always fails in etcd, so "absent" and "empty" stay
	 * distinct like in the file backend. */
	_cleanup_free_ char *cmp =
	    old ? str_printf("{\"key\":\"%s\",\"target\":\"VALUE\",\"result\":\"EQUAL\","
			     "\"value\":\"%s\"}",
			     k, o)
		: str_printf("{\"key\":\"%s\",\"target\":\"CREATE\",\"result\":\"EQUAL\","
			     "\"create_revision\":\"0\"}",
			     k);
	_cleanup_free_ char *body =
	    cmp ? str_printf("{\"compare\":[%s],\"success\":[{\"request_put\":{\"key\":\"%s\","
			     "\"value\":\"%s\"}}]}",
			     cmp, k, v)
		: NULL;
	if (!body)
		return -ENOMEM;
	_cleanup_(http_response_donep) struct http_response resp = {};
	_cleanup_(outcome_done) struct outcome out = {};
	int r = call(e, "txn", body, &resp, &out);
	if (r < 0)
		return r;
	bool ok;
	r = store_etcd_parse_txn(resp.body, resp.body_len, &ok);
	if (r < 0 || ok)
		return r;
	if (out.ambiguous) {
		/* An endpoint that timed out may have committed our txn before we asked the next
		 * one, which then saw our own value: that is our success, not a conflict. */
		_cleanup_free_ uint8_t *cur = NULL;
		size_t cur_len = 0;
		if (etcd_get(s, key, &cur, &cur_len) == 0 && cur_len == len &&
		    memcmp(cur, data, len) == 0)
			return 0;
	}
	return -ESTALE;
}

static void etcd_free(struct store *s)
{
	struct etcd_store *e = to_etcd(s);
	strv_free(e->endpoints);
	free(e->prefix);
	free(e->ca_file);
	free(e->cert_file);
	free(e->key_file);
	free(e);
}

static const struct store_vtable etcd_vtable = {
    .name = "etcd",
    .get = etcd_get,
    .set = etcd_set,
    .has = etcd_has,
    .cas = etcd_cas,
    .free = etcd_free,
};

int store_open_etcd(const struct store_etcd_options *o, struct store **ret, char **ret_msg)
{
	if (!o || str_empty(o->endpoints))
		return str_set_message(ret_msg, EINVAL, "no etcd endpoint given");
	if (!o->cert_file != !o->key_file)
		return str_set_message(
		    ret_msg, EINVAL, "an etcd client certificate needs both its file and its key");
	const char *prefix = o->prefix ? o->prefix : STORE_ETCD_DEFAULT_PREFIX;
	if (strlen(prefix) > PREFIX_MAX_BYTES)
		return str_set_message(ret_msg, EINVAL, "etcd key prefix longer than %d bytes",
				       PREFIX_MAX_BYTES);
	if (o->timeout_ns < 0)
		return str_set_message(ret_msg, EINVAL, "negative etcd timeout");

	_cleanup_strv_free_ char **eps = NULL;
	int r = strv_split(o->endpoints, ", \t\n", true, &eps);
	if (r < 0)
		return r;
	size_t n = strv_length(eps);
	if (n == 0)
		return str_set_message(ret_msg, EINVAL, "no etcd endpoint given");
	if (n > STORE_ETCD_MAX_ENDPOINTS)
		return str_set_message(ret_msg, EINVAL, "more than %d etcd endpoints",
				       STORE_ETCD_MAX_ENDPOINTS);
	for (size_t i = 0; i < n; i++) {
		if (!str_startswith(eps[i], "http://") && !str_startswith(eps[i], "https://"))
			return str_set_message(ret_msg, EINVAL,
					       "etcd endpoint %s: not an http(s) URL", eps[i]);
		size_t l = strlen(eps[i]);
		while (l > 0 && eps[i][l - 1] == '/')
			eps[i][--l] = 0;
	}

	_cleanup_(store_freep) struct store *s = NULL;
	struct etcd_store *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->base.vt = &etcd_vtable;
	s = &e->base;
	e->endpoints = TAKE_PTR(eps);
	e->n_endpoints = n;
	e->timeout_ns = o->timeout_ns ? o->timeout_ns : STORE_ETCD_DEFAULT_TIMEOUT_NS;
	e->prefix = strdup(prefix);
	if (!e->prefix || str_set(&e->ca_file, o->ca_file) < 0 ||
	    str_set(&e->cert_file, o->cert_file) < 0 || str_set(&e->key_file, o->key_file) < 0)
		return -ENOMEM;

	/* A read of the bare prefix proves that some endpoint is an etcd v3 gateway. */
	_cleanup_free_ char *k = b64(e->prefix, strlen(e->prefix));
	_cleanup_free_ char *body = k ? str_printf("{\"key\":\"%s\",\"keys_only\":true}", k) : NULL;
	if (!body)
		return -ENOMEM;
	_cleanup_(http_response_donep) struct http_response resp = {};
	_cleanup_(outcome_done) struct outcome out = {};
	r = call(e, "range", body, &resp, &out);
	if (r < 0 && !out.answered)
		return str_set_message(ret_msg, EHOSTUNREACH, "no etcd endpoint answers (%s)",
				       out.msg ? out.msg : strerror(-r));
	if (r < 0)
		return str_set_message(ret_msg, r, "etcd refused a read (%s)",
				       out.msg ? out.msg : strerror(-r));
	r = store_etcd_parse_range(resp.body, resp.body_len, NULL, NULL, NULL);
	if (r < 0 && r != -ENOENT)
		return str_set_message(ret_msg, EBADMSG,
				       "%s does not answer like an etcd v3 gateway",
				       e->endpoints[e->preferred]);
	*ret = TAKE_PTR(s);
	return 0;
}

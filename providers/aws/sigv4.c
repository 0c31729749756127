/* providers/aws/sigv4: AWS Signature Version 4 signing, pure functions over caller-given inputs
 * (the signing time included), checked byte for byte against the aws-c-auth test suite. */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <strings.h>

#include "aws/sigv4.h"
#include "base/base.h"

#define ALGORITHM "AWS4-HMAC-SHA256"
#define TERMINATOR "aws4_request"
#define MAX_EXPIRES_S 604800U
#define MAX_KEY_ID_BYTES 128
#define MAX_SECRET_BYTES 1024

static void buf_donep(struct buf *b)
{
	buf_done(b);
}
#define _cleanup_buf_ _cleanup_(buf_donep)

static int put(struct buf *b, const void *data, size_t n)
{
	return buf_append(b, data, n, SIGV4_MAX_CANONICAL_BYTES);
}

static int puts_(struct buf *b, const char *s)
{
	return put(b, s, strlen(s));
}

/* NUL-terminate and hand the bytes over as a string. */
static int take_string(struct buf *b, char **ret)
{
	int r = put(b, "", 1);
	if (r < 0)
		return r;
	*ret = (char *)TAKE_PTR(b->data);
	*b = (struct buf){0};
	return 0;
}

static int encode_into(struct buf *b, const uint8_t *p, size_t len, bool keep_slash)
{
	return buf_append_percent_encoded(b, p, len, keep_slash, SIGV4_MAX_CANONICAL_BYTES);
}

int sigv4_uri_encode(const void *data, size_t len, bool keep_slash, char **ret)
{
	_cleanup_buf_ struct buf b = {0};
	if (!ret || (!data && len))
		return -EINVAL;
	if (len > SIGV4_MAX_FIELD_BYTES)
		return -E2BIG;
	int r = encode_into(&b, data, len, keep_slash);
	if (r < 0)
		return r;
	return take_string(&b, ret);
}

int sigv4_uri_decode(const char *s, size_t len, char **ret, size_t *ret_len)
{
	if (!ret || (!s && len))
		return -EINVAL;
	if (len > SIGV4_MAX_FIELD_BYTES)
		return -E2BIG;
	char *out = malloc(len + 1);
	if (!out)
		return -ENOMEM;
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		int hi, lo;
		if (s[i] == '%' && i + 2 < len && (hi = hex_digit_value(s[i + 1])) >= 0 &&
		    (lo = hex_digit_value(s[i + 2])) >= 0) {
			out[n++] = (char)(hi << 4 | lo);
			i += 2;
		} else
			out[n++] = s[i];
	}
	out[n] = 0;
	*ret = out;
	if (ret_len)
		*ret_len = n;
	return 0;
}

/* ---- path ---- */

struct segment {
	const char *p;
	size_t len;
};

static int normalize_into(struct buf *b, const char *path, size_t len)
{
	/* Each kept segment is at least one byte plus a slash, so len/2+1 bounds the stack. */
	size_t cap = len / 2 + 1, n = 0;
	_cleanup_free_ struct segment *segs = calloc(cap, sizeof(*segs));
	if (!segs)
		return -ENOMEM;
	for (size_t i = 0; i < len;) {
		size_t j = i;
		while (j < len && path[j] != '/')
			j++;
		size_t sl = j - i;
		if (sl == 0 || (sl == 1 && path[i] == '.')) {
			/* empty or "." */
		} else if (sl == 2 && path[i] == '.' && path[i + 1] == '.') {
			if (n > 0)
				n--;
		} else if (n < cap)
			segs[n++] = (struct segment){path + i, sl};
		else
			return -E2BIG;
		i = j + 1;
	}
	int r = put(b, "/", 1);
	for (size_t k = 0; r >= 0 && k < n; k++) {
		if (k > 0)
			r = put(b, "/", 1);
		if (r >= 0)
			r = put(b, segs[k].p, segs[k].len);
	}
	if (r >= 0 && n > 0 && len > 0 && path[len - 1] == '/')
		r = put(b, "/", 1);
	return r;
}

int sigv4_canonical_path(const char *path, unsigned flags, char **ret)
{
	_cleanup_free_ char *decoded = NULL;
	_cleanup_buf_ struct buf norm = {0};
	if (!ret)
		return -EINVAL;
	if (!path || !*path)
		path = "/";
	size_t len = strlen(path);
	if (len > SIGV4_MAX_FIELD_BYTES)
		return -E2BIG;
	int r;
	if (flags & SIGV4_SINGLE_ENCODE_PATH) {
		r = sigv4_uri_decode(path, len, &decoded, &len);
		if (r < 0)
			return r;
		path = decoded;
	}
	if (flags & SIGV4_NORMALIZE_PATH) {
		r = normalize_into(&norm, path, len);
		if (r < 0)
			return r;
		return sigv4_uri_encode(norm.data, norm.len, true, ret);
	}
	return sigv4_uri_encode(path, len, true, ret);
}

/* ---- query ---- */

struct param {
	char *key; /* encoded */
	char *value;
};

struct params {
	struct param *v;
	size_t n;
};

static void params_done(struct params *ps)
{
	for (size_t i = 0; i < ps->n; i++) {
		free(ps->v[i].key);
		free(ps->v[i].value);
	}
	free(ps->v);
	*ps = (struct params){0};
}

/* Add one parameter from raw (still encoded as sent) or plain bytes. */
static int params_add(struct params *ps, const char *k, size_t klen, const char *v, size_t vlen,
		      bool decode)
{
	_cleanup_free_ char *dk = NULL, *dv = NULL;
	char *ek = NULL, *ev = NULL;
	int r;
	if (ps->n >= SIGV4_MAX_QUERY_PARAMS)
		return -E2BIG;
	if (decode) {
		r = sigv4_uri_decode(k, klen, &dk, &klen);
		if (r < 0)
			return r;
		r = sigv4_uri_decode(v, vlen, &dv, &vlen);
		if (r < 0)
			return r;
		k = dk;
		v = dv;
	}
	r = sigv4_uri_encode(k, klen, false, &ek);
	if (r < 0)
		return r;
	r = sigv4_uri_encode(v, vlen, false, &ev);
	if (r < 0) {
		free(ek);
		return r;
	}
	struct param *nv = realloc(ps->v, (ps->n + 1) * sizeof(*nv));
	if (!nv) {
		free(ek);
		free(ev);
		return -ENOMEM;
	}
	ps->v = nv;
	ps->v[ps->n++] = (struct param){ek, ev};
	return 0;
}

static int params_parse(struct params *ps, const char *query, bool drop_signature)
{
	if (!query)
		return 0;
	size_t len = strlen(query);
	if (len > SIGV4_MAX_FIELD_BYTES)
		return -E2BIG;
	for (size_t i = 0; i < len;) {
		size_t j = i;
		while (j < len && query[j] != '&')
			j++;
		if (j > i) {
			const char *eq = memchr(query + i, '=', j - i);
			size_t klen = eq ? (size_t)(eq - (query + i)) : j - i;
			const char *v = eq ? eq + 1 : query + j;
			size_t vlen = eq ? (size_t)(query + j - v) : 0;
			int r = params_add(ps, query + i, klen, v, vlen, true);
			if (r < 0)
				return r;
			if (drop_signature && str_eq(ps->v[ps->n - 1].key, "X-Amz-Signature")) {
				ps->n--;
				free(ps->v[ps->n].key);
				free(ps->v[ps->n].value);
			}
		}
		i = j + 1;
	}
	return 0;
}

static int param_cmp(const void *a, const void *b)
{
	const struct param *x = a, *y = b;
	int c = strcmp(x->key, y->key);
	return c ? c : strcmp(x->value, y->value);
}

static int params_join(struct params *ps, struct buf *b)
{
	if (ps->n > 1)
		qsort(ps->v, ps->n, sizeof(*ps->v), param_cmp);
	for (size_t i = 0; i < ps->n; i++) {
		int r = 0;
		if (i > 0)
			r = put(b, "&", 1);
		if (r >= 0)
			r = puts_(b, ps->v[i].key);
		if (r >= 0)
			r = put(b, "=", 1);
		if (r >= 0)
			r = puts_(b, ps->v[i].value);
		if (r < 0)
			return r;
	}
	return 0;
}

int sigv4_canonical_query(const char *query, char **ret)
{
	_cleanup_(params_done) struct params ps = {0};
	_cleanup_buf_ struct buf b = {0};
	if (!ret)
		return -EINVAL;
	int r = params_parse(&ps, query, false);
	if (r < 0)
		return r;
	r = params_join(&ps, &b);
	if (r < 0)
		return r;
	return take_string(&b, ret);
}

/* ---- headers ---- */

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static int trim_into(struct buf *b, const char *v)
{
	while (is_ws(*v))
		v++;
	while (*v) {
		const char *e = v;
		while (*e && !is_ws(*e))
			e++;
		int r = put(b, v, (size_t)(e - v));
		if (r < 0)
			return r;
		while (is_ws(*e))
			e++;
		if (*e) {
			r = put(b, " ", 1);
			if (r < 0)
				return r;
		}
		v = e;
	}
	return 0;
}

int sigv4_trim_value(const char *value, char **ret)
{
	_cleanup_buf_ struct buf b = {0};
	if (!value || !ret)
		return -EINVAL;
	if (strlen(value) > SIGV4_MAX_FIELD_BYTES)
		return -E2BIG;
	int r = trim_into(&b, value);
	if (r < 0)
		return r;
	return take_string(&b, ret);
}

struct hdr {
	char *name; /* lowercase copy */
	const char *value;
	size_t order;
};

static int hdr_cmp(const void *a, const void *b)
{
	const struct hdr *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

static bool valid_header_name(const char *n)
{
	size_t len = strlen(n);
	if (len == 0 || len > SIGV4_MAX_FIELD_BYTES)
		return false;
	for (const char *p = n; *p; p++)
		if ((uint8_t)*p <= 0x20 || (uint8_t)*p >= 0x7f || *p == ':')
			return false;
	return true;
}

static bool is_signer_header(const char *name, bool query_mode)
{
	if (!strcasecmp(name, "authorization"))
		return true;
	if (query_mode)
		return false;
	return !strcasecmp(name, "x-amz-date") || !strcasecmp(name, "x-amz-security-token") ||
	       !strcasecmp(name, "x-amz-content-sha256");
}

struct hdrs {
	struct hdr *v;
	size_t n;
};

static void hdrs_done(struct hdrs *hs)
{
	if (hs->v)
		for (size_t i = 0; i < hs->n; i++)
			free(hs->v[i].name);
	free(hs->v);
	*hs = (struct hdrs){0};
}

static int hdrs_add(struct hdrs *hs, const char *name, const char *value)
{
	if (!name || !value || !valid_header_name(name))
		return -EINVAL;
	if (strlen(value) > SIGV4_MAX_FIELD_BYTES)
		return -E2BIG;
	char *lower = strdup(name);
	if (!lower)
		return -ENOMEM;
	for (char *p = lower; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	hs->v[hs->n] = (struct hdr){lower, value, hs->n};
	hs->n++;
	return 0;
}

/* Canonical header block (each line ends in '\n') and the signed-header list. */
static int headers_build(struct hdrs *hs, struct buf *block, struct buf *signed_list)
{
	if (hs->n > 1)
		qsort(hs->v, hs->n, sizeof(*hs->v), hdr_cmp);
	for (size_t i = 0; i < hs->n; i++) {
		bool first = i == 0 || strcmp(hs->v[i - 1].name, hs->v[i].name) != 0;
		bool last = i + 1 == hs->n || strcmp(hs->v[i + 1].name, hs->v[i].name) != 0;
		int r = 0;
		if (first) {
			if (i > 0)
				r = put(signed_list, ";", 1);
			if (r >= 0)
				r = puts_(signed_list, hs->v[i].name);
			if (r >= 0)
				r = puts_(block, hs->v[i].name);
			if (r >= 0)
				r = put(block, ":", 1);
		} else
			r = put(block, ",", 1);
		if (r >= 0)
			r = trim_into(block, hs->v[i].value);
		if (r >= 0 && last)
			r = put(block, "\n", 1);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- crypto ---- */

static int hmac(const void *key, size_t key_len, const void *msg, size_t msg_len,
		uint8_t out[SIGV4_KEY_BYTES])
{
	unsigned int out_len = 0;
	if (!HMAC(EVP_sha256(), key, (int)key_len, msg, msg_len, out, &out_len) ||
	    out_len != SIGV4_KEY_BYTES)
		return -EIO;
	return 0;
}

static bool valid_scope_part(const char *s)
{
	if (!s)
		return false;
	size_t len = strlen(s);
	if (len == 0 || len > SIGV4_MAX_SCOPE_PART_BYTES)
		return false;
	for (; *s; s++)
		if (!url_char_unreserved((uint8_t)*s))
			return false;
	return true;
}

static bool valid_date8(const char *d)
{
	for (int i = 0; i < 8; i++)
		if (d[i] < '0' || d[i] > '9')
			return false;
	return true;
}

static bool valid_date_time(const char *dt)
{
	if (!dt || strlen(dt) != SIGV4_DATE_TIME_BYTES - 1 || !valid_date8(dt) || dt[8] != 'T' ||
	    dt[15] != 'Z')
		return false;
	for (int i = 9; i < 15; i++)
		if (dt[i] < '0' || dt[i] > '9')
			return false;
	return true;
}

int sigv4_derive_key(const char *secret, const char *date8, const char *region, const char *service,
		     uint8_t ret_key[SIGV4_KEY_BYTES])
{
	if (!secret || !date8 || strlen(date8) != 8 || !valid_date8(date8) ||
	    !valid_scope_part(region) || !valid_scope_part(service) || !ret_key)
		return -EINVAL;
	size_t slen = strlen(secret);
	if (slen == 0 || slen > MAX_SECRET_BYTES)
		return -EINVAL;
	uint8_t k0[4 + MAX_SECRET_BYTES];
	uint8_t a[SIGV4_KEY_BYTES], b[SIGV4_KEY_BYTES];
	memcpy(k0, "AWS4", 4);
	memcpy(k0 + 4, secret, slen);
	int r = hmac(k0, 4 + slen, date8, 8, a);
	if (r >= 0)
		r = hmac(a, sizeof(a), region, strlen(region), b);
	if (r >= 0)
		r = hmac(b, sizeof(b), service, strlen(service), a);
	if (r >= 0)
		r = hmac(a, sizeof(a), TERMINATOR, strlen(TERMINATOR), ret_key);
	OPENSSL_cleanse(k0, sizeof(k0));
	OPENSSL_cleanse(a, sizeof(a));
	OPENSSL_cleanse(b, sizeof(b));
	return r;
}

void sigv4_key_cache_done(struct sigv4_key_cache *c)
{
	if (c)
		OPENSSL_cleanse(c, sizeof(*c));
}

static int signing_key(const struct sigv4_signing *s, uint8_t key[SIGV4_KEY_BYTES])
{
	char date8[9];
	memcpy(date8, s->date_time, 8);
	date8[8] = 0;
	struct sigv4_key_cache *c = s->key_cache;
	if (!c)
		return sigv4_derive_key(s->credentials->secret_access_key, date8, s->region,
					s->service, key);
	uint8_t digest[32];
	const char *secret = s->credentials->secret_access_key;
	if (!SHA256((const uint8_t *)secret, strlen(secret), digest))
		return -EIO;
	if (c->valid && str_eq(c->date, date8) && str_eq(c->region, s->region) &&
	    str_eq(c->service, s->service) && CRYPTO_memcmp(c->secret_digest, digest, 32) == 0) {
		memcpy(key, c->key, SIGV4_KEY_BYTES);
		return 0;
	}
	sigv4_key_cache_done(c);
	int r = sigv4_derive_key(secret, date8, s->region, s->service, key);
	if (r < 0)
		return r;
	memcpy(c->date, date8, sizeof(date8));
	/* Lengths were checked by sigv4_derive_key. */
	memcpy(c->region, s->region, strlen(s->region) + 1);
	memcpy(c->service, s->service, strlen(s->service) + 1);
	memcpy(c->secret_digest, digest, 32);
	memcpy(c->key, key, SIGV4_KEY_BYTES);
	c->valid = true;
	return 0;
}

int sigv4_string_to_sign(const char *date_time, const char *region, const char *service,
			 const char *canonical_request, char **ret)
{
	if (!valid_date_time(date_time) || !valid_scope_part(region) ||
	    !valid_scope_part(service) || !canonical_request || !ret)
		return -EINVAL;
	size_t len = strlen(canonical_request);
	if (len > SIGV4_MAX_CANONICAL_BYTES)
		return -E2BIG;
	uint8_t digest[SHA256_DIGEST_LENGTH];
	char hex[SIGV4_HEX_BYTES];
	if (!SHA256((const uint8_t *)canonical_request, len, digest))
		return -EIO;
	hex_encode_into(digest, sizeof(digest), hex);
	char *s = str_printf(ALGORITHM "\n%s\n%.8s/%s/%s/" TERMINATOR "\n%s", date_time, date_time,
			     region, service, hex);
	if (!s)
		return -ENOMEM;
	*ret = s;
	return 0;
}

int sigv4_signature(const uint8_t key[SIGV4_KEY_BYTES], const char *string_to_sign,
		    char ret_hex[SIGV4_HEX_BYTES])
{
	uint8_t mac[SIGV4_KEY_BYTES];
	if (!key || !string_to_sign || !ret_hex)
		return -EINVAL;
	int r = hmac(key, SIGV4_KEY_BYTES, string_to_sign, strlen(string_to_sign), mac);
	if (r < 0)
		return r;
	hex_encode_into(mac, sizeof(mac), ret_hex);
	return 0;
}

/* ---- signing ---- */

void sigv4_result_done(struct sigv4_result *r)
{
	if (!r)
		return;
	free(r->canonical_request);
	free(r->string_to_sign);
	free(r->signed_headers);
	free(r->authorization);
	free(r->presigned_query);
	*r = (struct sigv4_result){0};
}

static bool valid_method(const char *m)
{
	if (!m)
		return false;
	size_t len = strlen(m);
	if (len == 0 || len > SIGV4_MAX_METHOD_BYTES)
		return false;
	for (; *m; m++)
		if (!((*m >= 'A' && *m <= 'Z') || (*m >= 'a' && *m <= 'z') || *m == '-' ||
		      *m == '_'))
			return false;
	return true;
}

/* Printable ASCII without spaces: access key ids and session tokens end up in headers. */
static bool valid_token(const char *t, size_t max)
{
	size_t len = strlen(t);
	if (len == 0 || len > max)
		return false;
	for (; *t; t++)
		if ((uint8_t)*t <= 0x20 || (uint8_t)*t >= 0x7f)
			return false;
	return true;
}

static int payload_hash(const struct sigv4_signing *s, const struct sigv4_request *req,
			char out[SIGV4_HEX_BYTES + 16])
{
	if (req->payload_hash) {
		size_t len = strlen(req->payload_hash);
		if (len == 0 || len > SIGV4_HEX_BYTES - 1)
			return -EINVAL;
		for (const char *p = req->payload_hash; *p; p++)
			if (!url_char_unreserved((uint8_t)*p))
				return -EINVAL;
		memcpy(out, req->payload_hash, len + 1);
		return 0;
	}
	if (s->flags & SIGV4_UNSIGNED_PAYLOAD_HASH) {
		memcpy(out, SIGV4_UNSIGNED_PAYLOAD, sizeof(SIGV4_UNSIGNED_PAYLOAD));
		return 0;
	}
	if (!req->payload && req->payload_len)
		return -EINVAL;
	uint8_t digest[SHA256_DIGEST_LENGTH];
	if (!SHA256(req->payload ? req->payload : (const void *)"", req->payload_len, digest))
		return -EIO;
	hex_encode_into(digest, sizeof(digest), out);
	return 0;
}

static int validate(const struct sigv4_signing *s, const struct sigv4_request *req, bool query_mode)
{
	if (!s || !req || !s->credentials || !s->credentials->access_key_id ||
	    !s->credentials->secret_access_key)
		return -EINVAL;
	if (!valid_token(s->credentials->access_key_id, MAX_KEY_ID_BYTES))
		return -EINVAL;
	size_t slen = strlen(s->credentials->secret_access_key);
	if (slen == 0 || slen > MAX_SECRET_BYTES)
		return -EINVAL;
	if (s->credentials->session_token &&
	    !valid_token(s->credentials->session_token, SIGV4_MAX_FIELD_BYTES))
		return -EINVAL;
	if (!valid_date_time(s->date_time) || !valid_scope_part(s->region) ||
	    !valid_scope_part(s->service) || !valid_method(req->method))
		return -EINVAL;
	if (query_mode && (s->expires_s == 0 || s->expires_s > MAX_EXPIRES_S))
		return -EINVAL;
	if (req->n_headers > SIGV4_MAX_HEADERS)
		return -E2BIG;
	if (req->n_headers && !req->headers)
		return -EINVAL;
	return 0;
}

static int add_param(struct params *ps, const char *k, const char *v)
{
	return params_add(ps, k, strlen(k), v, strlen(v), false);
}

static int sign(const struct sigv4_signing *s, const struct sigv4_request *req, bool query_mode,
		struct sigv4_result *ret)
{
	_cleanup_(hdrs_done) struct hdrs hs = {0};
	_cleanup_(params_done) struct params ps = {0};
	_cleanup_buf_ struct buf block = {0}, signed_list = {0}, creq = {0}, out = {0};
	_cleanup_free_ char *path = NULL, *credential = NULL, *enc = NULL;
	struct sigv4_result res = {0};
	uint8_t key[SIGV4_KEY_BYTES];
	int r;

	if (!ret)
		return -EINVAL;
	r = validate(s, req, query_mode);
	if (r < 0)
		return r;
	const char *token = s->credentials->session_token;
	bool sign_token = token && !(s->flags & SIGV4_OMIT_SESSION_TOKEN);

	r = payload_hash(s, req, res.payload_hash);
	if (r < 0)
		return r;

	hs.v = calloc(req->n_headers + 3, sizeof(*hs.v));
	if (!hs.v)
		return -ENOMEM;
	for (size_t i = 0; i < req->n_headers; i++) {
		if (!req->headers[i].name || !req->headers[i].value)
			return -EINVAL;
		if (is_signer_header(req->headers[i].name, query_mode))
			continue;
		r = hdrs_add(&hs, req->headers[i].name, req->headers[i].value);
		if (r < 0)
			return r;
	}
	if (!query_mode) {
		r = hdrs_add(&hs, "x-amz-date", s->date_time);
		if (r >= 0 && sign_token)
			r = hdrs_add(&hs, "x-amz-security-token", token);
		if (r >= 0 && (s->flags & SIGV4_ADD_CONTENT_SHA256))
			r = hdrs_add(&hs, "x-amz-content-sha256", res.payload_hash);
		if (r < 0)
			return r;
	}
	r = headers_build(&hs, &block, &signed_list);
	if (r >= 0)
		r = take_string(&signed_list, &res.signed_headers);
	if (r < 0)
		goto fail;

	credential = str_printf("%s/%.8s/%s/%s/" TERMINATOR, s->credentials->access_key_id,
				s->date_time, s->region, s->service);
	if (!credential) {
		r = -ENOMEM;
		goto fail;
	}

	r = params_parse(&ps, req->query, query_mode);
	if (r >= 0 && query_mode) {
		char expires[16];
		snprintf(expires, sizeof(expires), "%u", s->expires_s);
		r = add_param(&ps, "X-Amz-Algorithm", ALGORITHM);
		if (r >= 0)
			r = add_param(&ps, "X-Amz-Credential", credential);
		if (r >= 0)
			r = add_param(&ps, "X-Amz-Date", s->date_time);
		if (r >= 0)
			r = add_param(&ps, "X-Amz-Expires", expires);
		if (r >= 0)
			r = add_param(&ps, "X-Amz-SignedHeaders", res.signed_headers);
		if (r >= 0 && sign_token)
			r = add_param(&ps, "X-Amz-Security-Token", token);
	}
	if (r >= 0)
		r = sigv4_canonical_path(req->path, s->flags, &path);
	if (r < 0)
		goto fail;

	r = puts_(&creq, req->method);
	if (r >= 0)
		r = put(&creq, "\n", 1);
	if (r >= 0)
		r = puts_(&creq, path);
	if (r >= 0)
		r = put(&creq, "\n", 1);
	if (r >= 0)
		r = params_join(&ps, &creq);
	if (r >= 0)
		r = put(&creq, "\n", 1);
	if (r >= 0)
		r = put(&creq, block.data, block.len);
	if (r >= 0)
		r = put(&creq, "\n", 1);
	if (r >= 0)
		r = puts_(&creq, res.signed_headers);
	if (r >= 0)
		r = put(&creq, "\n", 1);
	if (r >= 0)
		r = puts_(&creq, res.payload_hash);
	if (r >= 0)
		r = take_string(&creq, &res.canonical_request);
	if (r >= 0)
		r = sigv4_string_to_sign(s->date_time, s->region, s->service, res.canonical_request,
					 &res.string_to_sign);
	if (r >= 0)
		r = signing_key(s, key);
	if (r >= 0) {
		r = sigv4_signature(key, res.string_to_sign, res.signature);
		OPENSSL_cleanse(key, sizeof(key));
	}
	if (r < 0)
		goto fail;

	if (!query_mode) {
		res.authorization =
		    str_printf(ALGORITHM " Credential=%s, SignedHeaders=%s, Signature=%s",
			       credential, res.signed_headers, res.signature);
		if (!res.authorization) {
			r = -ENOMEM;
			goto fail;
		}
	} else {
		/* The order mirrors what AWS SDKs emit; servers do not depend on it. */
		r = puts_(&out, "X-Amz-Algorithm=" ALGORITHM "&X-Amz-Credential=");
		if (r >= 0)
			r = sigv4_uri_encode(credential, strlen(credential), false, &enc);
		if (r >= 0)
			r = puts_(&out, enc);
		enc = mfree(enc);
		if (r >= 0)
			r = puts_(&out, "&X-Amz-Date=");
		if (r >= 0)
			r = puts_(&out, s->date_time);
		if (r >= 0)
			r = puts_(&out, "&X-Amz-SignedHeaders=");
		if (r >= 0)
			r = sigv4_uri_encode(res.signed_headers, strlen(res.signed_headers), false,
					     &enc);
		if (r >= 0)
			r = puts_(&out, enc);
		enc = mfree(enc);
		if (r >= 0) {
			char expires[32];
			snprintf(expires, sizeof(expires), "&X-Amz-Expires=%u", s->expires_s);
			r = puts_(&out, expires);
		}
		if (r >= 0 && token) {
			r = puts_(&out, "&X-Amz-Security-Token=");
			if (r >= 0)
				r = sigv4_uri_encode(token, strlen(token), false, &enc);
			if (r >= 0)
				r = puts_(&out, enc);
			enc = mfree(enc);
		}
		if (r >= 0)
			r = puts_(&out, "&X-Amz-Signature=");
		if (r >= 0)
			r = puts_(&out, res.signature);
		if (r >= 0)
			r = take_string(&out, &res.presigned_query);
		if (r < 0)
			goto fail;
	}
	*ret = res;
	return 0;
fail:
	sigv4_result_done(&res);
	return r;
}

int sigv4_sign_headers(const struct sigv4_signing *s, const struct sigv4_request *req,
		       struct sigv4_result *ret)
{
	return sign(s, req, false, ret);
}

int sigv4_sign_query(const struct sigv4_signing *s, const struct sigv4_request *req,
		     struct sigv4_result *ret)
{
	return sign(s, req, true, ret);
}

/* lib/k8s: JSON requests to the API server over lib/http, with a bearer token that follows the
 * service-account file as the kubelet rotates it, retries, and Status errors. */
#include <pthread.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <time.h>

#include "http/http.h"
#include "k8s/k8s.h"

#define DEFAULT_BACKOFF_MAX_NS (5 * NSEC_PER_SEC)

struct k8s_client {
	struct k8s_config *cfg;
	struct k8s_client_options opts;
	pthread_mutex_t lock; /* guards the token cache */
	char *token;
	struct timespec token_mtime;
	dev_t token_dev;
	ino_t token_ino;
	off_t token_size;
};

int k8s_client_new(struct k8s_config *cfg, const struct k8s_client_options *opts,
		   struct k8s_client **ret)
{
	if (!cfg || str_empty(cfg->server)) {
		k8s_config_free(cfg);
		return -EINVAL;
	}
	struct k8s_client *c = calloc(1, sizeof(*c));
	if (!c) {
		k8s_config_free(cfg);
		return -ENOMEM;
	}
	c->cfg = cfg;
	if (opts)
		c->opts = *opts;
	pthread_mutex_init(&c->lock, NULL);
	*ret = c;
	return 0;
}

struct k8s_client *k8s_client_free(struct k8s_client *c)
{
	if (!c)
		return NULL;
	k8s_config_free(c->cfg);
	free_secret(c->token);
	pthread_mutex_destroy(&c->lock);
	free(c);
	return NULL;
}

const struct k8s_config *k8s_client_config(const struct k8s_client *c)
{
	return c->cfg;
}

/* The current bearer token (malloc'd copy, NULL for none). The file is read again when its
 * identity, size or mtime changed: the kubelet swaps the projected token atomically. */
static int current_token(struct k8s_client *c, char **ret)
{
	*ret = NULL;
	if (!c->cfg->token_file)
		return c->cfg->token && !(*ret = strdup(c->cfg->token)) ? -ENOMEM : 0;
	struct stat st;
	if (stat(c->cfg->token_file, &st) < 0)
		return -errno;
	pthread_mutex_lock(&c->lock);
	int r = 0;
	if (!c->token || st.st_ino != c->token_ino || st.st_dev != c->token_dev ||
	    st.st_size != c->token_size || st.st_mtim.tv_sec != c->token_mtime.tv_sec ||
	    st.st_mtim.tv_nsec != c->token_mtime.tv_nsec) {
		char *text = NULL;
		size_t len;
		r = read_file_bounded(c->cfg->token_file, K8S_TOKEN_MAX_BYTES, &text, &len);
		if (r >= 0) {
			while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' ||
					   text[len - 1] == ' '))
				text[--len] = 0;
			if (strpbrk(text, "\r\n")) {
				free_secret(text);
				r = -EINVAL;
			} else {
				free_secret(c->token);
				c->token = text;
				c->token_ino = st.st_ino;
				c->token_dev = st.st_dev;
				c->token_size = st.st_size;
				c->token_mtime = st.st_mtim;
			}
		}
	}
	if (r >= 0 && c->token && !(*ret = strdup(c->token)))
		r = -ENOMEM;
	pthread_mutex_unlock(&c->lock);
	return r;
}

/* ---- helpers ---- */

json_t *k8s_patch_op(const char *op, const char *path, json_t *value)
{
	json_t *o = json_pack("{s:s, s:s}", "op", op, "path", path);
	if (!o) {
		json_decref(value);
		return NULL;
	}
	if (value && json_object_set_new(o, "value", value) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

char *k8s_pointer_escape(const char *s)
{
	struct buf b = {0};
	for (; *s; s++) {
		const char *rep = *s == '~' ? "~0" : *s == '/' ? "~1" : NULL;
		if (buf_append(&b, rep ? rep : s, rep ? 2 : 1, 0) < 0) {
			buf_done(&b);
			return NULL;
		}
	}
	if (buf_append(&b, "", 1, 0) < 0) {
		buf_done(&b);
		return NULL;
	}
	return (char *)b.data;
}

char *k8s_url_escape(const char *s)
{
	struct buf b = {0};
	if (buf_append_percent_encoded(&b, s, strlen(s), false, 0) < 0 ||
	    buf_append(&b, "", 1, 0) < 0) {
		buf_done(&b);
		return NULL;
	}
	return (char *)b.data;
}

const char *k8s_json_str(const json_t *o, ...)
{
	va_list ap;
	va_start(ap, o);
	const char *key;
	while (o && (key = va_arg(ap, const char *)))
		o = json_object_get(o, key);
	va_end(ap);
	return json_is_string(o) ? json_string_value(o) : NULL;
}

static int digits(const char **p, int n, int *ret)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (**p < '0' || **p > '9')
			return -EINVAL;
		v = v * 10 + (*(*p)++ - '0');
	}
	*ret = v;
	return 0;
}

int k8s_parse_time(const char *s, int64_t *ret_sec)
{
	if (!s)
		return -EINVAL;
	struct tm tm = {0};
	int y, mo, d, h, mi, se;
	const char *p = s;
	if (digits(&p, 4, &y) < 0 || *p++ != '-' || digits(&p, 2, &mo) < 0 || *p++ != '-' ||
	    digits(&p, 2, &d) < 0 || (*p != 'T' && *p != 't' && *p != ' ') || !*p++ ||
	    digits(&p, 2, &h) < 0 || *p++ != ':' || digits(&p, 2, &mi) < 0 || *p++ != ':' ||
	    digits(&p, 2, &se) < 0)
		return -EINVAL;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
		return -EINVAL;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	int offset = 0;
	if (*p == 'Z' || *p == 'z')
		p++;
	else if (*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1, oh, om;
		if (digits(&p, 2, &oh) < 0 || *p++ != ':' || digits(&p, 2, &om) < 0 || oh > 23 ||
		    om > 59)
			return -EINVAL;
		offset = sign * (oh * 3600 + om * 60);
	} else
		return -EINVAL;
	if (*p)
		return -EINVAL;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = se;
	*ret_sec = (int64_t)timegm(&tm) - offset;
	return 0;
}

static int status_errno(long status, const char *reason)
{
	switch (status) {
	case 400:
	case 422:
		return -EINVAL;
	case 401:
	case 403:
		return -EACCES;
	case 404:
		return -ENOENT;
	case 409:
		return -EEXIST;
	case 429:
		return -EBUSY;
	default:
		break;
	}
	if (str_eq(reason, "NotFound"))
		return -ENOENT;
	return -EIO;
}

static char *excerpt(const char *body, size_t len)
{
	size_t n = MIN(len, 200);
	char *s = malloc(n + 1);
	if (!s)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)body[i];
		s[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : ' ';
	}
	s[n] = 0;
	return s;
}

int k8s_status_error(long http_status, const char *body, size_t len, const char *what,
		     struct pp_error **reterr)
{
	json_error_t jerr;
	_cleanup_(json_decrefp) json_t *st =
	    body && len ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
	const char *kind = k8s_json_str(st, "kind", NULL);
	what = what ?: "request";
	if (json_is_object(st) && str_eq(kind, "Status")) {
		const char *reason = k8s_json_str(st, "reason", NULL);
		const char *message = k8s_json_str(st, "message", NULL);
		json_t *code = json_object_get(st, "code");
		long status = json_is_integer(code) && json_integer_value(code) >= 100 &&
				      json_integer_value(code) <= 599
				  ? (long)json_integer_value(code)
				  : http_status;
		int e = status_errno(status, reason);
		int r = pp_error_set(reterr, e, "%s: %s", what,
				     !str_empty(message)  ? message
				     : !str_empty(reason) ? reason
							  : "failed");
		if (reterr && *reterr && (*reterr)->err == -e) {
			(*reterr)->status = (int)status;
			if (!str_empty(reason) && !(*reterr)->code)
				(*reterr)->code = strdup(reason);
		}
		return r;
	}
	int e = status_errno(http_status, NULL);
	_cleanup_free_ char *ex = body ? excerpt(body, len) : NULL;
	int r = pp_error_set(reterr, e, "%s: HTTP %ld%s%s", what, http_status,
			     str_empty(ex) ? "" : ": ", ex ?: "");
	if (reterr && *reterr && (*reterr)->err == -e)
		(*reterr)->status = (int)http_status;
	return r;
}

/* ---- requests ---- */

int k8s_request(struct k8s_client *c, const char *method, const char *path,
		const char *content_type, const json_t *body, json_t **ret,
		struct pp_error **reterr)
{
	if (ret)
		*ret = NULL;
	if (!c || !method || !path || path[0] != '/')
		return pp_error_set(reterr, EINVAL, "invalid Kubernetes request");
	_cleanup_free_ char *what = str_printf("%s %s", method, path);
	_cleanup_free_ char *url = str_printf("%s%s", c->cfg->server, path);
	_cleanup_free_ char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	if (!what || !url || (body && !text))
		return pp_error_set(reterr, ENOMEM, "out of memory");
	_cleanup_secret_ char *token = NULL;
	int r = current_token(c, &token);
	if (r < 0)
		return pp_error_set(reterr, r, "%s: cannot read the service-account token: %s",
				    what, strerror(-r));
	_cleanup_secret_ char *auth = token ? str_printf("Bearer %s", token) : NULL;
	if (token && !auth)
		return pp_error_set(reterr, ENOMEM, "out of memory");
	struct http_header headers[3] = {{"Accept", "application/json"}};
	size_t n_headers = 1;
	if (body)
		headers[n_headers++] =
		    (struct http_header){"Content-Type", content_type ?: K8S_CONTENT_JSON};
	if (auth)
		headers[n_headers++] = (struct http_header){"Authorization", auth};

	const struct k8s_config *cfg = c->cfg;
	int64_t timeout = c->opts.timeout_ns > 0 ? c->opts.timeout_ns : K8S_DEFAULT_TIMEOUT_NS;
	struct http_request req = {
	    .method = method,
	    .url = url,
	    .headers = headers,
	    .n_headers = n_headers,
	    .body = text,
	    .body_len = text ? strlen(text) : 0,
	    .connect_timeout_ns =
		c->opts.connect_timeout_ns > 0 ? c->opts.connect_timeout_ns : timeout,
	    .timeout_ns = timeout,
	    .max_body_bytes = c->opts.max_body_bytes ?: K8S_DEFAULT_MAX_BODY_BYTES,
	    .max_retries = c->opts.max_retries,
	    .backoff_initial_ns = c->opts.backoff_initial_ns,
	    .backoff_max_ns = c->opts.backoff_max_ns ?: DEFAULT_BACKOFF_MAX_NS,
	    .ca_file = cfg->ca_file,
	    .ca_pem = cfg->ca_data,
	    .client_cert_file = cfg->client_cert_file,
	    .client_cert_pem = cfg->client_cert_data,
	    .client_key_file = cfg->client_key_file,
	    .client_key_pem = cfg->client_key_data,
	    .insecure_skip_verify = cfg->insecure_skip_tls_verify,
	    /* The API server is reached directly, as client-go does for the in-cluster address. */
	    .no_proxy = true,
	};
	_cleanup_(http_response_donep) struct http_response resp = {};
	_cleanup_(pp_error_freep) struct pp_error *err = NULL;
	r = http_request(&req, &resp, &err);
	if (r < 0) {
		/* An answer from the API server: its Status says more than the HTTP layer. */
		if (resp.status != 0)
			return k8s_status_error(resp.status, resp.body, resp.body_len, what,
						reterr);
		/* lib/http's message names the method and URL already. */
		return pp_error_set(reterr, r, "%s",
				    r == -EMSGSIZE ? "answer too large"
				    : err          ? err->message
						   : strerror(-r));
	}
	if (ret && resp.body_len > 0) {
		json_error_t jerr;
		*ret = json_loadb(resp.body, resp.body_len, JSON_REJECT_DUPLICATES, &jerr);
		if (!*ret)
			return pp_error_set(reterr, EBADMSG, "%s: invalid JSON answer: %s", what,
					    jerr.text);
	}
	return 0;
}

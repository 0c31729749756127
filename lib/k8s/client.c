/* lib/k8s: JSON requests to the API server over libcurl, with a bearer token that follows the
 * service-account file as the kubelet rotates it, retries, and Status errors. */
#include <curl/curl.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include "http/http.h"
#include "k8s/k8s.h"

DEFINE_CLEANUP(CURL, curl_easy_cleanup)
DEFINE_CLEANUP(struct curl_slist, curl_slist_free_all)

#define DEFAULT_BACKOFF_MAX_NS (5 * NSEC_PER_SEC)
#define RETRY_AFTER_MAX 64

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

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_result = CURLE_FAILED_INIT;

static void global_init(void)
{
	global_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

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
	pthread_once(&global_once, global_init);
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

struct attempt {
	struct buf body;
	size_t max_body;
	bool too_big;
	char retry_after[RETRY_AFTER_MAX];
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct attempt *a = userdata;
	size_t n = size * nmemb;
	if (buf_append(&a->body, ptr, n, a->max_body) < 0) {
		a->too_big = true;
		return 0;
	}
	return n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct attempt *a = userdata;
	size_t n = size * nmemb;
	static const char name[] = "retry-after:";
	if (n > sizeof(name) - 1 && strncasecmp(ptr, name, sizeof(name) - 1) == 0) {
		const char *v = ptr + sizeof(name) - 1;
		size_t vl = n - (sizeof(name) - 1);
		while (vl && (*v == ' ' || *v == '\t')) {
			v++;
			vl--;
		}
		while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
			vl--;
		if (vl < sizeof(a->retry_after)) {
			memcpy(a->retry_after, v, vl);
			a->retry_after[vl] = 0;
		}
	}
	return n;
}

static int curl_errno(CURLcode c, bool too_big, bool *retryable)
{
	*retryable = false;
	switch (c) {
	case CURLE_OPERATION_TIMEDOUT:
		*retryable = true;
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
		*retryable = true;
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
		*retryable = true;
		return -EHOSTUNREACH;
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		*retryable = true;
		return -ECONNRESET;
	case CURLE_WRITE_ERROR:
	case CURLE_FILESIZE_EXCEEDED:
		return too_big ? -EMSGSIZE : -EIO;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return -EINVAL;
	default:
		return -EIO;
	}
}

static void sleep_ns(int64_t ns)
{
	struct timespec ts = {ns / NSEC_PER_SEC, ns % NSEC_PER_SEC};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static uint64_t random_u64(void)
{
	uint64_t v = 0;
	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != sizeof(v))
		v = (uint64_t)now_ns();
	return v;
}

static int setup(struct k8s_client *c, CURL *h, const char *method, const char *url,
		 struct curl_slist *hdrs, const char *body, struct attempt *a, char *errbuf)
{
	const struct k8s_config *cfg = c->cfg;
	int64_t connect_ns =
	    c->opts.connect_timeout_ns > 0 ? c->opts.connect_timeout_ns : K8S_DEFAULT_TIMEOUT_NS;
	int64_t total_ns = c->opts.timeout_ns > 0 ? c->opts.timeout_ns : K8S_DEFAULT_TIMEOUT_NS;
	CURLcode e = CURLE_OK;
#define SET(opt, val)                                      \
	do {                                               \
		if (e == CURLE_OK)                         \
			e = curl_easy_setopt(h, opt, val); \
	} while (0)
	SET(CURLOPT_URL, url);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_NOPROXY, "*"); /* the API server is reached directly, as client-go does
				    * for the in-cluster address */
	SET(CURLOPT_CONNECTTIMEOUT_MS, (long)MAX(1, connect_ns / NSEC_PER_MSEC));
	SET(CURLOPT_TIMEOUT_MS, (long)MAX(1, total_ns / NSEC_PER_MSEC));
	SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)a->max_body);
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, a);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, a);
	SET(CURLOPT_ERRORBUFFER, errbuf);
	SET(CURLOPT_HTTPHEADER, hdrs);
	if (cfg->insecure_skip_tls_verify) {
		SET(CURLOPT_SSL_VERIFYPEER, 0L);
		SET(CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (cfg->ca_data) {
		struct curl_blob b = {cfg->ca_data, strlen(cfg->ca_data), CURL_BLOB_COPY};
		SET(CURLOPT_CAINFO_BLOB, &b);
	} else if (cfg->ca_file)
		SET(CURLOPT_CAINFO, cfg->ca_file);
	if (cfg->client_cert_data) {
		struct curl_blob b = {cfg->client_cert_data, strlen(cfg->client_cert_data),
				      CURL_BLOB_COPY};
		SET(CURLOPT_SSLCERT_BLOB, &b);
		SET(CURLOPT_SSLCERTTYPE, "PEM");
	} else if (cfg->client_cert_file)
		SET(CURLOPT_SSLCERT, cfg->client_cert_file);
	if (cfg->client_key_data) {
		struct curl_blob b = {cfg->client_key_data, strlen(cfg->client_key_data),
				      CURL_BLOB_COPY};
		SET(CURLOPT_SSLKEY_BLOB, &b);
		SET(CURLOPT_SSLKEYTYPE, "PEM");
	} else if (cfg->client_key_file)
		SET(CURLOPT_SSLKEY, cfg->client_key_file);
	if (!str_eq(method, "GET") || body) {
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? strlen(body) : 0));
		SET(CURLOPT_POSTFIELDS, body ? body : "");
		SET(CURLOPT_CUSTOMREQUEST, method);
	}
#undef SET
	return e == CURLE_OK ? 0 : -EINVAL;
}

static int build_headers(struct k8s_client *c, const char *content_type, bool has_body,
			 struct curl_slist **ret)
{
	_cleanup_secret_ char *token = NULL;
	int r = current_token(c, &token);
	if (r < 0)
		return r;
	_cleanup_(curl_slist_free_allp) struct curl_slist *l = curl_slist_append(NULL, "Expect:");
	if (!l || !(l = curl_slist_append(l, "Accept: application/json")))
		return -ENOMEM;
	if (has_body) {
		_cleanup_free_ char *ct = str_printf("Content-Type: %s", content_type);
		struct curl_slist *n = ct ? curl_slist_append(l, ct) : NULL;
		if (!n)
			return -ENOMEM;
		l = n;
	}
	if (token) {
		_cleanup_secret_ char *auth = str_printf("Authorization: Bearer %s", token);
		struct curl_slist *n = auth ? curl_slist_append(l, auth) : NULL;
		if (!n)
			return -ENOMEM;
		l = n;
	}
	*ret = TAKE_PTR(l);
	return 0;
}

/* curl copies header strings into its list; wipe the one that holds the token. */
static void headers_free(struct curl_slist *l)
{
	for (struct curl_slist *i = l; i; i = i->next)
		if (str_startswith(i->data, "Authorization:"))
			explicit_bzero(i->data, strlen(i->data));
	curl_slist_free_all(l);
}

int k8s_request(struct k8s_client *c, const char *method, const char *path,
		const char *content_type, const json_t *body, json_t **ret,
		struct pp_error **reterr)
{
	if (ret)
		*ret = NULL;
	if (!c || !method || !path || path[0] != '/')
		return pp_error_set(reterr, EINVAL, "invalid Kubernetes request");
	if (global_result != CURLE_OK)
		return pp_error_set(reterr, EIO, "cannot initialise libcurl");
	_cleanup_free_ char *what = str_printf("%s %s", method, path);
	_cleanup_free_ char *url = str_printf("%s%s", c->cfg->server, path);
	_cleanup_free_ char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	if (!what || !url || (body && !text))
		return pp_error_set(reterr, ENOMEM, "out of memory");
	struct curl_slist *hdrs = NULL;
	int r = build_headers(c, content_type ?: K8S_CONTENT_JSON, body != NULL, &hdrs);
	if (r < 0)
		return pp_error_set(reterr, r, "%s: cannot read the service-account token: %s",
				    what, strerror(-r));
	_cleanup_(curl_easy_cleanupp) CURL *h = curl_easy_init();
	if (!h) {
		headers_free(hdrs);
		return pp_error_set(reterr, ENOMEM, "cannot create a libcurl handle");
	}
	struct attempt a = {.max_body = c->opts.max_body_bytes ?: K8S_DEFAULT_MAX_BODY_BYTES};
	int64_t backoff_max = c->opts.backoff_max_ns ?: DEFAULT_BACKOFF_MAX_NS;
	for (unsigned attempt = 0;; attempt++) {
		buf_done(&a.body);
		a.too_big = false;
		a.retry_after[0] = 0;
		char errbuf[CURL_ERROR_SIZE] = "";
		curl_easy_reset(h);
		r = setup(c, h, method, url, hdrs, text, &a, errbuf);
		if (r < 0) {
			r = pp_error_set(reterr, r, "%s: cannot set up the request", what);
			break;
		}
		CURLcode e = curl_easy_perform(h);
		long status = 0;
		bool retryable;
		if (e == CURLE_OK) {
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
			if (status >= 200 && status < 300) {
				r = 0;
				if (ret && a.body.len > 0) {
					json_error_t jerr;
					*ret = json_loadb((const char *)a.body.data, a.body.len,
							  JSON_REJECT_DUPLICATES, &jerr);
					if (!*ret)
						r = pp_error_set(reterr, EBADMSG,
								 "%s: invalid JSON answer: %s",
								 what, jerr.text);
				}
				break;
			}
			retryable = status == 429 || (status >= 500 && status <= 599);
			if (!retryable || attempt >= c->opts.max_retries) {
				r = k8s_status_error(status, (const char *)a.body.data, a.body.len,
						     what, reterr);
				break;
			}
		} else {
			r = curl_errno(e, a.too_big, &retryable);
			if (!retryable || attempt >= c->opts.max_retries) {
				r = pp_error_set(reterr, r, "%s: %s", what,
						 r == -EMSGSIZE ? "answer too large"
						 : errbuf[0]    ? errbuf
								: curl_easy_strerror(e));
				break;
			}
		}
		int64_t delay =
		    http_backoff_ns(attempt, c->opts.backoff_initial_ns, backoff_max, random_u64());
		int64_t server_ns;
		if (a.retry_after[0] &&
		    http_parse_retry_after(a.retry_after, now_realtime_ns(), &server_ns) >= 0)
			delay = MIN(server_ns, backoff_max);
		sleep_ns(delay);
	}
	buf_done(&a.body);
	headers_free(hdrs);
	return r;
}

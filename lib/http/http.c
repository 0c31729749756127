/* lib/http: blocking HTTP requests over libcurl's easy API with caps, timeouts and retries. */
#include "http/http.h"

#include <curl/curl.h>
#include <pthread.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

DEFINE_CLEANUP(CURL, curl_easy_cleanup)

/* Header lines may carry bearer tokens: wipe them before libcurl frees them. */
static void headers_free(struct curl_slist *l)
{
	for (struct curl_slist *i = l; i; i = i->next)
		explicit_bzero(i->data, strlen(i->data));
	curl_slist_free_all(l);
}
DEFINE_CLEANUP(struct curl_slist, headers_free)

/* Response header lines are kept only when captured; this bounds what one attempt can store. */
#define HEADER_VALUE_MAX 4096

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_result = CURLE_FAILED_INIT;

static void global_init(void)
{
	global_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct attempt {
	const struct http_request *req;
	struct buf body;
	size_t max_body;
	bool too_big;
	struct http_response_header headers[HTTP_MAX_CAPTURED_HEADERS];
	size_t n_headers;
	char *retry_after;
};

static void clear_headers(struct attempt *a)
{
	for (size_t i = 0; i < a->n_headers; i++) {
		free(a->headers[i].name);
		free(a->headers[i].value);
	}
	a->n_headers = 0;
	free(a->retry_after);
	a->retry_after = NULL;
}

static void attempt_reset(struct attempt *a)
{
	buf_done(&a->body);
	a->too_big = false;
	clear_headers(a);
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct attempt *a = userdata;
	size_t n = size * nmemb;
	if (buf_append(&a->body, ptr, n, a->max_body) < 0) {
		a->too_big = true;
		return 0; /* makes curl fail with CURLE_WRITE_ERROR */
	}
	return n;
}

static char *trimmed_dup(const char *s, size_t len)
{
	while (len > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		len--;
	}
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r' ||
			   s[len - 1] == '\n'))
		len--;
	return strndup(s, len);
}

static int store_header(char **slot, const char *value, size_t len)
{
	char *v = trimmed_dup(value, len);
	if (!v)
		return -ENOMEM;
	free(*slot);
	*slot = v;
	return 0;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct attempt *a = userdata;
	size_t n = size * nmemb;
	/* A new status line (after 100 Continue, say) starts a new header block. */
	if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0) {
		clear_headers(a);
		return n;
	}
	const char *colon = memchr(ptr, ':', n);
	if (!colon)
		return n;
	size_t name_len = (size_t)(colon - ptr);
	const char *value = colon + 1;
	size_t value_len = n - name_len - 1;
	if (value_len > HEADER_VALUE_MAX)
		return n;
	if (name_len == strlen("Retry-After") && strncasecmp(ptr, "Retry-After", name_len) == 0 &&
	    store_header(&a->retry_after, value, value_len) < 0)
		return 0;
	for (size_t i = 0; i < a->req->n_capture_headers && i < HTTP_MAX_CAPTURED_HEADERS; i++) {
		const char *want = a->req->capture_headers[i];
		if (strlen(want) != name_len || strncasecmp(ptr, want, name_len) != 0)
			continue;
		size_t j;
		for (j = 0; j < a->n_headers; j++)
			if (strcasecmp(a->headers[j].name, want) == 0)
				break;
		if (j == a->n_headers) {
			if (a->n_headers >= HTTP_MAX_CAPTURED_HEADERS)
				return n;
			a->headers[j].name = strdup(want);
			a->headers[j].value = NULL;
			if (!a->headers[j].name)
				return 0;
			a->n_headers++;
		}
		if (store_header(&a->headers[j].value, value, value_len) < 0)
			return 0;
		break;
	}
	return n;
}

void http_response_done(struct http_response *r)
{
	if (!r)
		return;
	free(r->body);
	for (size_t i = 0; i < r->n_headers; i++) {
		free(r->headers[i].name);
		free(r->headers[i].value);
	}
	free(r->headers);
	*r = (struct http_response){0};
}

const char *http_response_header(const struct http_response *r, const char *name)
{
	if (!r || !name)
		return NULL;
	for (size_t i = 0; i < r->n_headers; i++)
		if (strcasecmp(r->headers[i].name, name) == 0)
			return r->headers[i].value;
	return NULL;
}

int http_parse_retry_after(const char *value, int64_t now_realtime, int64_t *ret_ns)
{
	if (str_empty(value))
		return -EINVAL;
	uint64_t secs;
	if (value[0] >= '0' && value[0] <= '9') {
		if (parse_u64(value, &secs) < 0 || secs > INT64_MAX / NSEC_PER_SEC)
			return -EINVAL;
		*ret_ns = (int64_t)secs * NSEC_PER_SEC;
		return 0;
	}
	time_t t = curl_getdate(value, NULL);
	if (t < 0)
		return -EINVAL;
	int64_t at = (int64_t)t * NSEC_PER_SEC;
	*ret_ns = at > now_realtime ? at - now_realtime : 0;
	return 0;
}

int64_t http_backoff_ns(unsigned attempt, int64_t initial_ns, int64_t max_ns, uint64_t random)
{
	if (initial_ns <= 0)
		initial_ns = HTTP_DEFAULT_BACKOFF_INITIAL_NS;
	if (max_ns <= 0)
		max_ns = HTTP_DEFAULT_BACKOFF_MAX_NS;
	int64_t d = initial_ns;
	for (unsigned i = 0; i < attempt && d < max_ns; i++)
		d = d > max_ns / 2 ? max_ns : d * 2;
	d = MIN(d, max_ns);
	int64_t half = d / 2;
	return half + (int64_t)(random % (uint64_t)(d - half + 1));
}

static uint64_t random_u64(void)
{
	uint64_t v;
	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) == (ssize_t)sizeof(v))
		return v;
	return (uint64_t)now_ns() * 6364136223846793005ULL + 1442695040888963407ULL;
}

static void sleep_ns(int64_t ns)
{
	if (ns <= 0)
		return;
	struct timespec ts = {.tv_sec = ns / NSEC_PER_SEC, .tv_nsec = ns % NSEC_PER_SEC};
	while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
		;
}

/* The URL without its query, so signed or secret parameters never reach an error message. */
static char *url_for_message(const char *url)
{
	return strndup(url, strcspn(url, "?#"));
}

static int curl_errno(CURLcode c, bool too_big, bool *ret_retryable)
{
	*ret_retryable = false;
	if (too_big)
		return -EMSGSIZE;
	switch (c) {
	case CURLE_OPERATION_TIMEDOUT:
		*ret_retryable = true;
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
		*ret_retryable = true;
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		*ret_retryable = true;
		return -EHOSTUNREACH;
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
		*ret_retryable = true;
		return -ECONNRESET;
	case CURLE_FILESIZE_EXCEEDED:
		return -EMSGSIZE;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return -EINVAL;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

static int status_errno(long status)
{
	switch (status) {
	case 400:
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
		return -EIO;
	}
}

/* A printable excerpt of an error body for the message. */
static char *body_excerpt(const struct buf *b)
{
	size_t n = MIN(b->len, (size_t)200);
	char *s = malloc(n + 1);
	if (!s)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = b->data[i];
		s[i] = (c >= 0x20 && c < 0x7f) ? (char)c : ' ';
	}
	s[n] = 0;
	return s;
}

static int setup_handle(CURL *h, const struct http_request *req, struct curl_slist *hdrs,
			struct attempt *a, char *errbuf)
{
	int64_t connect_ns =
	    req->connect_timeout_ns > 0 ? req->connect_timeout_ns : HTTP_DEFAULT_CONNECT_TIMEOUT_NS;
	int64_t total_ns = req->timeout_ns > 0 ? req->timeout_ns : HTTP_DEFAULT_TIMEOUT_NS;
	const char *method = req->method ? req->method : "GET";
	CURLcode c = CURLE_OK;

#define SET(opt, val)                                      \
	do {                                               \
		if (c == CURLE_OK)                         \
			c = curl_easy_setopt(h, opt, val); \
	} while (0)
	SET(CURLOPT_URL, req->url);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_CONNECTTIMEOUT_MS, (long)MAX(1, connect_ns / NSEC_PER_MSEC));
	SET(CURLOPT_TIMEOUT_MS, (long)MAX(1, total_ns / NSEC_PER_MSEC));
	SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)a->max_body);
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, a);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, a);
	SET(CURLOPT_ERRORBUFFER, errbuf);
	SET(CURLOPT_HTTPHEADER, hdrs);
	if (req->no_proxy)
		SET(CURLOPT_NOPROXY, "*");
	if (req->ca_pem) {
		struct curl_blob b = {(void *)req->ca_pem, strlen(req->ca_pem), CURL_BLOB_COPY};
		SET(CURLOPT_CAINFO_BLOB, &b);
	} else if (req->ca_file)
		SET(CURLOPT_CAINFO, req->ca_file);
	if (req->client_cert_pem) {
		struct curl_blob b = {(void *)req->client_cert_pem, strlen(req->client_cert_pem),
				      CURL_BLOB_COPY};
		SET(CURLOPT_SSLCERT_BLOB, &b);
		SET(CURLOPT_SSLCERTTYPE, "PEM");
	} else if (req->client_cert_file)
		SET(CURLOPT_SSLCERT, req->client_cert_file);
	if (req->client_key_pem) {
		struct curl_blob b = {(void *)req->client_key_pem, strlen(req->client_key_pem),
				      CURL_BLOB_COPY};
		SET(CURLOPT_SSLKEY_BLOB, &b);
		SET(CURLOPT_SSLKEYTYPE, "PEM");
	} else if (req->client_key_file)
		SET(CURLOPT_SSLKEY, req->client_key_file);
	if (req->insecure_skip_verify) {
		SET(CURLOPT_SSL_VERIFYPEER, 0L);
		SET(CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (strcmp(method, "HEAD") == 0)
		SET(CURLOPT_NOBODY, 1L);
	else if (strcmp(method, "GET") != 0 || req->body) {
		/* POSTFIELDS with size 0 still sends "Content-Length: 0", which some servers want. */
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
		SET(CURLOPT_POSTFIELDS, req->body ? req->body : "");
		SET(CURLOPT_CUSTOMREQUEST, method);
	}
#undef SET
	return c == CURLE_OK ? 0 : -EINVAL;
}

static int build_headers(const struct http_request *req, struct curl_slist **ret)
{
	struct curl_slist *list = curl_slist_append(NULL, "Expect:");
	if (!list)
		return -ENOMEM;
	for (size_t i = 0; i < req->n_headers; i++) {
		const struct http_header *hd = &req->headers[i];
		if (str_empty(hd->name) || strpbrk(hd->name, ":\r\n") ||
		    (hd->value && strpbrk(hd->value, "\r\n"))) {
			headers_free(list);
			return -EINVAL;
		}
		/* "Name;" is curl's way to send a header with an empty value. */
		_cleanup_secret_ char *line = str_empty(hd->value)
						  ? str_printf("%s;", hd->name)
						  : str_printf("%s: %s", hd->name, hd->value);
		struct curl_slist *n = line ? curl_slist_append(list, line) : NULL;
		if (!n) {
			headers_free(list);
			return -ENOMEM;
		}
		list = n;
	}
	*ret = list;
	return 0;
}

static int move_to_response(struct attempt *a, long status, unsigned n_attempts,
			    struct http_response *ret)
{
	http_response_done(ret);
	if (buf_append(&a->body, "", 1, 0) < 0)
		return -ENOMEM;
	ret->status = status;
	ret->body_len = a->body.len - 1;
	ret->body = (char *)TAKE_PTR(a->body.data);
	a->body = (struct buf){0};
	ret->n_attempts = n_attempts;
	if (a->n_headers > 0) {
		ret->headers = calloc(a->n_headers, sizeof(*ret->headers));
		if (!ret->headers)
			return -ENOMEM;
		for (size_t i = 0; i < a->n_headers; i++) {
			ret->headers[i] = a->headers[i];
			a->headers[i] = (struct http_response_header){0};
		}
		ret->n_headers = a->n_headers;
		a->n_headers = 0;
	}
	return 0;
}

int http_request(const struct http_request *req, struct http_response *ret,
		 struct pp_error **reterr)
{
	if (!req || !req->url || !ret)
		return pp_error_set(reterr, EINVAL, "invalid HTTP request");
	const char *method = req->method ? req->method : "GET";
	_cleanup_free_ char *shown = url_for_message(req->url);
	if (!shown)
		return pp_error_set(reterr, ENOMEM, "out of memory");

	pthread_once(&global_once, global_init);
	if (global_result != CURLE_OK)
		return pp_error_set(reterr, EIO, "cannot initialise libcurl: %s",
				    curl_easy_strerror(global_result));

	_cleanup_(headers_freep) struct curl_slist *hdrs = NULL;
	int r = build_headers(req, &hdrs);
	if (r < 0)
		return pp_error_set(reterr, r, "%s %s: invalid request header", method, shown);
	_cleanup_(curl_easy_cleanupp) CURL *h = curl_easy_init();
	if (!h)
		return pp_error_set(reterr, ENOMEM, "cannot create a libcurl handle");

	struct attempt a = {
	    .req = req,
	    .max_body = req->max_body_bytes ? req->max_body_bytes : HTTP_DEFAULT_MAX_BODY_BYTES,
	};
	int64_t backoff_max =
	    req->backoff_max_ns > 0 ? req->backoff_max_ns : HTTP_DEFAULT_BACKOFF_MAX_NS;
	for (unsigned attempt = 0;; attempt++) {
		attempt_reset(&a);
		char errbuf[CURL_ERROR_SIZE] = "";
		curl_easy_reset(h);
		r = setup_handle(h, req, hdrs, &a, errbuf);
		if (r < 0) {
			attempt_reset(&a);
			return pp_error_set(reterr, r, "%s %s: cannot set up the request", method,
					    shown);
		}
		CURLcode c = curl_easy_perform(h);
		long status = 0;
		bool retryable = false;
		if (c == CURLE_OK) {
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
			bool ok = req->accept_any_status || (status >= 200 && status < 300);
			if (ok) {
				r = move_to_response(&a, status, attempt + 1, ret);
				attempt_reset(&a);
				return r < 0 ? pp_error_set(reterr, r, "out of memory") : 0;
			}
			retryable = status == 429 || (status >= 500 && status <= 599);
			r = status_errno(status);
		} else
			r = curl_errno(c, a.too_big, &retryable);

		if (!retryable || attempt >= req->max_retries) {
			int e;
			if (c == CURLE_OK) {
				_cleanup_free_ char *excerpt = body_excerpt(&a.body);
				e = pp_error_set(reterr, r, "%s %s: HTTP %ld%s%s", method, shown,
						 status, str_empty(excerpt) ? "" : ": ",
						 excerpt ? excerpt : "");
				if (reterr && *reterr)
					(*reterr)->status = (int)status;
				int m = move_to_response(&a, status, attempt + 1, ret);
				if (m < 0)
					e = m;
			} else if (r == -EMSGSIZE)
				e = pp_error_set(reterr, r,
						 "%s %s: response body larger than %zu bytes",
						 method, shown, a.max_body);
			else
				e = pp_error_set(reterr, r, "%s %s: %s", method, shown,
						 errbuf[0] ? errbuf : curl_easy_strerror(c));
			attempt_reset(&a);
			return e;
		}

		int64_t delay =
		    http_backoff_ns(attempt, req->backoff_initial_ns, backoff_max, random_u64());
		int64_t server_ns;
		if (a.retry_after &&
		    http_parse_retry_after(a.retry_after, now_realtime_ns(), &server_ns) >= 0)
			delay = MIN(server_ns, backoff_max);
		sleep_ns(delay);
	}
}

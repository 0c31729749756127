/* lib/http: a small libcurl (easy API) wrapper for programs and providers: one blocking request
 * with connect and total timeouts, a capped response body, optional retries with exponential
 * backoff, jitter and Retry-After, client certificates, and errors with detail. Header lines are
 * wiped when freed (they may carry tokens). Safe to call from several threads at
 * once (each call has its own handle). */
#pragma once

#include "base/base.h"

#define HTTP_DEFAULT_CONNECT_TIMEOUT_NS (10 * NSEC_PER_SEC)
#define HTTP_DEFAULT_TIMEOUT_NS (30 * NSEC_PER_SEC)
#define HTTP_DEFAULT_MAX_BODY_BYTES (4u * 1024 * 1024)
#define HTTP_DEFAULT_BACKOFF_INITIAL_NS (500 * NSEC_PER_MSEC)
#define HTTP_DEFAULT_BACKOFF_MAX_NS (30 * NSEC_PER_SEC)
#define HTTP_MAX_CAPTURED_HEADERS 16

struct http_header {
	const char *name;
	const char *value;
};

struct http_request {
	const char *method; /* "GET" (NULL means GET), "PUT", "POST", "DELETE", ... */
	const char *url;    /* http:// or https:// only; redirects are not followed */
	const struct http_header *headers;
	size_t n_headers;
	const void *body; /* sent for any method when body_len > 0 or body != NULL */
	size_t body_len;
	int64_t connect_timeout_ns; /* per attempt; 0 = HTTP_DEFAULT_CONNECT_TIMEOUT_NS */
	int64_t timeout_ns;         /* whole attempt; 0 = HTTP_DEFAULT_TIMEOUT_NS */
	size_t max_body_bytes;      /* response body cap; 0 = HTTP_DEFAULT_MAX_BODY_BYTES */
	/* Extra attempts after a connection error, a timeout, 429 or 5xx; 0 = no retry. */
	unsigned max_retries;
	int64_t backoff_initial_ns; /* 0 = HTTP_DEFAULT_BACKOFF_INITIAL_NS; doubles per retry */
	int64_t backoff_max_ns;     /* 0 = HTTP_DEFAULT_BACKOFF_MAX_NS; also caps Retry-After */
	/* Response headers to keep (case-insensitive names), at most HTTP_MAX_CAPTURED_HEADERS. */
	const char *const *capture_headers;
	size_t n_capture_headers;
	const char *ca_file; /* PEM bundle for https; NULL = system default */
	const char *ca_pem;  /* the same in memory; wins over ca_file */
	/* Client identity for https: PEM files or PEM in memory (memory wins). */
	const char *client_cert_file;
	const char *client_cert_pem;
	const char *client_key_file;
	const char *client_key_pem;
	/* Skip server certificate and name checks (kubeconfig insecure-skip-tls-verify). */
	bool insecure_skip_verify;
	/* Ignore the proxy environment (http_proxy, ...), e.g. for link-local metadata services. */
	bool no_proxy;
	/* Treat every HTTP status as success (the caller inspects it); default: non-2xx fails. */
	bool accept_any_status;
};

struct http_response_header {
	char *name; /* as asked for in capture_headers */
	char *value;
};

struct http_response {
	long status; /* 0 if no response was received */
	char *body;  /* NUL-terminated (the NUL is not counted); never NULL after a response */
	size_t body_len;
	struct http_response_header *headers; /* captured headers of the last attempt */
	size_t n_headers;
	unsigned n_attempts;
};

void http_response_done(struct http_response *r);
static inline void http_response_donep(struct http_response *r)
{
	http_response_done(r);
}
/* The value of a captured header (case-insensitive), or NULL. */
const char *http_response_header(const struct http_response *r, const char *name);

/* Run the request. *ret must be zeroed; it is filled whenever a response was received (also on
 * a non-2xx failure, so a caller can parse a cloud error body) and must be released with
 * http_response_done whatever this returns. Returns 0 for a 2xx status (any status with
 * accept_any_status), else a negative errno with *reterr set (status = HTTP status or 0):
 *   -ETIMEDOUT timeout, -ECONNREFUSED/-EHOSTUNREACH/-ECONNRESET connection failures,
 *   -EMSGSIZE body over the cap, -EINVAL bad request or URL, -ENOENT 404, -EACCES 401/403,
 *   -EEXIST 409, -EBUSY 429, -EIO other statuses and transport errors. */
int http_request(const struct http_request *req, struct http_response *ret,
		 struct pp_error **reterr);

/* Parse a Retry-After value: delta seconds or an HTTP date (relative to now_realtime). A date in
 * the past gives 0. Returns -EINVAL for anything else. */
int http_parse_retry_after(const char *value, int64_t now_realtime, int64_t *ret_ns);

/* The delay before retry number `attempt` (0-based): min(max, initial * 2^attempt), with jitter
 * picking uniformly in [delay/2, delay]. `random` is any 64-bit random value. */
int64_t http_backoff_ns(unsigned attempt, int64_t initial_ns, int64_t max_ns, uint64_t random);

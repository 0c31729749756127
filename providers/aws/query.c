/* providers/aws/query: the AWS Query protocol (EC2, STS): a form body, SigV4 header signing
 * with a fresh date on every attempt, retries with backoff and jitter on throttling, 5xx and
 * transport failures, and service errors turned into pp_error (status, code, message, id). */
#include <stdio.h>
#include <sys/random.h>
#include <time.h>

#include "aws-internal.h"
#include "http/http.h"

unsigned aws_query_attempts;

/* ---- form ---- */

void aws_form_done(struct aws_form *f)
{
	if (!f)
		return;
	if (f->b.data)
		explicit_bzero(f->b.data, f->b.cap);
	buf_done(&f->b);
	f->err = 0;
}

static void form_append(struct aws_form *f, const char *s, size_t len)
{
	if (f->err < 0)
		return;
	_cleanup_free_ char *enc = NULL;
	int r = sigv4_uri_encode(s, len, false, &enc);
	if (r >= 0)
		r = buf_append(&f->b, enc, strlen(enc), AWS_FORM_MAX_BYTES);
	if (r < 0)
		f->err = r;
}

void aws_form_add(struct aws_form *f, const char *name, const char *value)
{
	if (f->err < 0)
		return;
	if (f->b.len > 0 && buf_append(&f->b, "&", 1, AWS_FORM_MAX_BYTES) < 0) {
		f->err = -EMSGSIZE;
		return;
	}
	form_append(f, name, strlen(name));
	if (f->err >= 0 && buf_append(&f->b, "=", 1, AWS_FORM_MAX_BYTES) < 0)
		f->err = -EMSGSIZE;
	form_append(f, value ?: "", strlen(value ?: ""));
}

void aws_form_add_fmt(struct aws_form *f, const char *value, const char *name_fmt, ...)
{
	va_list ap;
	va_start(ap, name_fmt);
	_cleanup_free_ char *name = str_vprintf(name_fmt, ap);
	va_end(ap);
	if (!name) {
		if (f->err >= 0)
			f->err = -ENOMEM;
		return;
	}
	aws_form_add(f, name, value);
}

const char *aws_form_body(struct aws_form *f)
{
	if (f->err < 0)
		return NULL;
	if (buf_reserve(&f->b, 1, AWS_FORM_MAX_BYTES + 1) < 0) {
		f->err = -ENOMEM;
		return NULL;
	}
	f->b.data[f->b.len] = 0;
	return (const char *)f->b.data;
}

/* ---- endpoints ---- */

void aws_endpoint_done(struct aws_endpoint *e)
{
	if (!e)
		return;
	free(e->url);
	free(e->host);
	free(e->path);
	*e = (struct aws_endpoint){0};
}

int aws_endpoint_parse(const char *url, struct aws_endpoint *ret)
{
	const char *rest;
	if (str_startswith(url, "https://"))
		rest = url + 8;
	else if (str_startswith(url, "http://"))
		rest = url + 7;
	else
		return -EINVAL;
	size_t hl = strcspn(rest, "/?#");
	if (hl == 0 || rest[hl] == '?' || rest[hl] == '#' || strchr(rest, '@'))
		return -EINVAL;
	struct aws_endpoint e = {.url = strdup(url), .host = strndup(rest, hl)};
	const char *path = rest + hl;
	size_t pl = strlen(path);
	while (pl > 0 && path[pl - 1] == '/')
		pl--;
	e.path = pl > 0 ? strndup(path, pl) : strdup("/");
	if (e.url) {
		size_t ul = strlen(e.url);
		while (ul > 0 && e.url[ul - 1] == '/')
			e.url[--ul] = 0;
	}
	if (!e.url || !e.host || !e.path) {
		aws_endpoint_done(&e);
		return -ENOMEM;
	}
	*ret = e;
	return 0;
}

/* ---- calls ---- */

struct aws_tuning aws_tuning = {
    .max_attempts = 8,
    .backoff_initial_ns = 300 * NSEC_PER_MSEC,
    .backoff_max_ns = 20 * NSEC_PER_SEC,
    .connect_timeout_ns = 10 * NSEC_PER_SEC,
    .timeout_ns = 60 * NSEC_PER_SEC,
    .imds_timeout_ns = 5 * NSEC_PER_SEC,
    .refresh_before_ns = 5 * 60 * NSEC_PER_SEC,
    .ip_wait_ns = 180 * NSEC_PER_SEC,
    .ip_poll_initial_ns = 1 * NSEC_PER_SEC,
    .clock_realtime_ns = NULL,
    .ca_file = NULL,
};

int64_t aws_now_realtime_ns(void)
{
	return aws_tuning.clock_realtime_ns ? aws_tuning.clock_realtime_ns() : now_realtime_ns();
}

static void sleep_ns(int64_t ns)
{
	if (ns <= 0)
		return;
	struct timespec ts = {ns / NSEC_PER_SEC, ns % NSEC_PER_SEC};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void date_time(char out[SIGV4_DATE_TIME_BYTES])
{
	time_t t = (time_t)(aws_now_realtime_ns() / NSEC_PER_SEC);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, SIGV4_DATE_TIME_BYTES, "%Y%m%dT%H%M%SZ", &tm);
}

static int errno_of_code(long status, const char *code)
{
	if (str_startswith(code, "InvalidInstanceID.NotFound") || str_endswith(code, ".NotFound"))
		return ENOENT;
	if (str_eq(code, "UnauthorizedOperation") || str_eq(code, "AuthFailure") ||
	    str_eq(code, "AccessDenied") || str_eq(code, "InvalidClientTokenId") ||
	    str_eq(code, "SignatureDoesNotMatch") || str_eq(code, "ExpiredToken") ||
	    str_eq(code, "InvalidIdentityToken") || str_eq(code, "Blocked") ||
	    str_eq(code, "OptInRequired"))
		return EACCES;
	if (aws_error_code_is_throttle(code) || status == 429)
		return EBUSY;
	if (str_eq(code, "IdempotentParameterMismatch"))
		return EEXIST;
	if (str_startswith(code, "Invalid") || str_startswith(code, "Missing") ||
	    str_eq(code, "ValidationError") || str_eq(code, "UnknownParameter"))
		return EINVAL;
	if (status == 401 || status == 403)
		return EACCES;
	if (status == 404)
		return ENOENT;
	return EIO;
}

static bool code_expired(const char *code)
{
	return str_eq(code, "RequestExpired") || str_eq(code, "ExpiredToken") ||
	       str_eq(code, "ExpiredTokenException");
}

/* One failed attempt, classified. */
struct attempt {
	long status;
	int r; /* transport error, 0 when a response arrived */
	struct aws_api_error api;
	bool retry;
};

static int fail_attempt(const struct aws_query *q, struct attempt *a, int http_r,
			struct pp_error *http_err, struct pp_error **reterr)
{
	struct pp_error *e = NULL;
	int err;
	if (a->api.code) {
		err = errno_of_code(a->status, a->api.code);
		pp_error_set(&e, err, "%s %s: %s: %s%s%s%s", q->service, q->action, a->api.code,
			     a->api.message ?: "(no message)",
			     a->api.request_id ? " (request id " : "", a->api.request_id ?: "",
			     a->api.request_id ? ")" : "");
		if (e) {
			e->code = TAKE_PTR(a->api.code);
			e->request_id = a->api.request_id ? TAKE_PTR(a->api.request_id) : NULL;
		}
	} else if (a->status) {
		err = errno_of_code(a->status, NULL);
		pp_error_set(&e, err, "%s %s: HTTP status %ld", q->service, q->action, a->status);
	} else {
		err = http_r < 0 ? -http_r : EIO;
		pp_error_set(&e, err, "%s %s: %s", q->service, q->action,
			     pp_error_message(http_err, http_r));
	}
	if (e)
		e->status = (int)a->status;
	if (reterr && !*reterr)
		*reterr = e;
	else
		pp_error_free(e);
	return -err;
}

static int attempt_once(const struct aws_query *q, const char *body, size_t body_len,
			struct attempt *a, char **ret_body, size_t *ret_len,
			struct pp_error **http_err, struct pp_error **reterr)
{
	char dt[SIGV4_DATE_TIME_BYTES];
	date_time(dt);
	struct http_header hdrs[5] = {
	    {"Host", q->endpoint->host},
	    {"Content-Type", AWS_FORM_CONTENT_TYPE},
	    {"X-Amz-Date", dt},
	};
	size_t nh = 3;
	struct sigv4_result sig = {0};
	struct aws_credentials cred = {0};
	int r = 0;
	if (q->credentials) {
		r = aws_credential_provider_get(q->credentials, &cred, reterr);
		if (r < 0)
			return r;
		struct sigv4_credentials sc = {cred.access_key_id, cred.secret_access_key,
					       cred.session_token};
		struct sigv4_signing s = {
		    .credentials = &sc,
		    .date_time = dt,
		    .region = q->region,
		    .service = q->service,
		    .flags = SIGV4_NORMALIZE_PATH,
		};
		const struct sigv4_header sh[] = {
		    {"host", q->endpoint->host},
		    {"content-type", AWS_FORM_CONTENT_TYPE},
		};
		struct sigv4_request sr = {
		    .method = "POST",
		    .path = q->endpoint->path,
		    .headers = sh,
		    .n_headers = ELEMENTSOF(sh),
		    .payload = body,
		    .payload_len = body_len,
		};
		r = sigv4_sign_headers(&s, &sr, &sig);
		if (r < 0) {
			aws_credentials_done(&cred);
			return pp_error_set(reterr, r, "%s %s: cannot sign the request: %s",
					    q->service, q->action, strerror(-r));
		}
		if (cred.session_token)
			hdrs[nh++] =
			    (struct http_header){"X-Amz-Security-Token", cred.session_token};
		hdrs[nh++] = (struct http_header){"Authorization", sig.authorization};
	}
	struct http_request req = {
	    .method = "POST",
	    .url = q->endpoint->url,
	    .headers = hdrs,
	    .n_headers = nh,
	    .body = body,
	    .body_len = body_len,
	    .connect_timeout_ns = aws_tuning.connect_timeout_ns,
	    .timeout_ns = aws_tuning.timeout_ns,
	    .max_body_bytes = AWS_XML_MAX_BYTES,
	    .ca_file = aws_tuning.ca_file,
	    .accept_any_status = true,
	};
	struct http_response resp = {0};
	__atomic_add_fetch(&aws_query_attempts, 1, __ATOMIC_RELAXED);
	r = http_request(&req, &resp, http_err);
	/* the signature is worthless without the secret, but the token is a secret */
	if (sig.authorization)
		explicit_bzero(sig.authorization, strlen(sig.authorization));
	sigv4_result_done(&sig);
	char *used_key = cred.access_key_id ? strdup(cred.access_key_id) : NULL;
	aws_credentials_done(&cred);
	a->status = resp.status;
	a->r = r;
	if (r < 0) {
		/* transport failure or timeout; an oversized body is not worth retrying */
		a->retry = r != -EMSGSIZE && r != -EINVAL;
		http_response_done(&resp);
		free(used_key);
		return 1;
	}
	if (resp.status >= 200 && resp.status < 300) {
		free(used_key);
		*ret_body = TAKE_PTR(resp.body);
		*ret_len = resp.body_len;
		http_response_done(&resp);
		return 0;
	}
	(void)aws_api_error_parse(resp.body, resp.body_len, &a->api);
	http_response_done(&resp);
	a->retry =
	    resp.status >= 500 || resp.status == 429 || aws_error_code_is_throttle(a->api.code);
	if (code_expired(a->api.code) && q->credentials) {
		aws_credential_provider_invalidate(q->credentials, used_key);
		a->retry = true;
	}
	free_secret(used_key);
	return 1;
}

int aws_query_call(const struct aws_query *q, const struct aws_form *params, char **ret_body,
		   size_t *ret_len, struct pp_error **reterr)
{
	struct aws_form f = {0};
	aws_form_add(&f, "Action", q->action);
	aws_form_add(&f, "Version", q->version);
	if (params && params->err < 0)
		f.err = params->err;
	if (params && params->b.len > 0 && f.err >= 0 &&
	    (buf_append(&f.b, "&", 1, AWS_FORM_MAX_BYTES) < 0 ||
	     buf_append(&f.b, params->b.data, params->b.len, AWS_FORM_MAX_BYTES) < 0))
		f.err = -EMSGSIZE;
	const char *body = aws_form_body(&f);
	if (!body) {
		int r = f.err;
		aws_form_done(&f);
		return pp_error_set(reterr, r, "%s %s: cannot build the request: %s", q->service,
				    q->action, strerror(-r));
	}
	unsigned max = MAX(1u, aws_tuning.max_attempts);
	int r = -EIO;
	for (unsigned i = 0; i < max; i++) {
		if (i > 0) {
			uint64_t rnd = 0;
			if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
				rnd = (uint64_t)now_ns();
			sleep_ns(http_backoff_ns(i - 1, aws_tuning.backoff_initial_ns,
						 aws_tuning.backoff_max_ns, rnd));
		}
		struct attempt a = {0};
		_cleanup_pp_error_ struct pp_error *http_err = NULL;
		r = attempt_once(q, body, f.b.len, &a, ret_body, ret_len, &http_err, reterr);
		if (r <= 0) { /* success, or a local failure (credentials, signing) */
			aws_api_error_done(&a.api);
			break;
		}
		if (!a.retry || i + 1 == max) {
			r = fail_attempt(q, &a, a.r, http_err, reterr);
			aws_api_error_done(&a.api);
			break;
		}
		aws_api_error_done(&a.api);
	}
	aws_form_done(&f);
	return r;
}

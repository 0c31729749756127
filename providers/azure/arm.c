/* providers/azure: the ARM REST client: authenticated requests with retries, ARM error bodies
 * turned into pp_error, and long-running operations (Azure-AsyncOperation, Location, or the
 * resource's provisioningState). */
#include <strings.h>
#include <time.h>

#include "azure/azure-internal.h"

#define ARM_HTTP_RETRIES 5
#define POLL_DEFAULT_NS (5 * NSEC_PER_SEC)
#define POLL_MAX_NS (60 * NSEC_PER_SEC)
#define ARM_BODY_MAX_BYTES (8u << 20)

static const char *const captured[] = {"x-ms-request-id", "Azure-AsyncOperation", "Location",
				       "Retry-After"};

int64_t arm_now(const struct arm_client *c)
{
	return c->hooks && c->hooks->now_ns ? c->hooks->now_ns(c->hooks->userdata) : now_ns();
}

void arm_sleep(const struct arm_client *c, int64_t ns)
{
	if (ns <= 0)
		return;
	if (c->hooks && c->hooks->sleep_ns) {
		c->hooks->sleep_ns(c->hooks->userdata, ns);
		return;
	}
	struct timespec ts = {ns / NSEC_PER_SEC, ns % NSEC_PER_SEC};
	while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
		;
}

char *arm_url(const struct arm_client *c, const char *path, const char *api_version)
{
	return str_printf("%s%s%sapi-version=%s", c->base, path, strchr(path, '?') ? "&" : "?",
			  api_version);
}

/* Length of "scheme://authority". */
static size_t origin_len(const char *url)
{
	const char *p = strstr(url, "://");
	if (!p)
		return 0;
	p += 3;
	return (size_t)(p - url) + strcspn(p, "/?#");
}

/* The bearer token goes only to the resource manager: poll URLs and nextLinks come from
 * responses and must not send it elsewhere. */
static bool same_origin(const struct arm_client *c, const char *url)
{
	size_t n = origin_len(c->base);
	return n > 0 && strncasecmp(url, c->base, n) == 0 &&
	       (url[n] == '/' || url[n] == '?' || url[n] == 0) && !strpbrk(url, " \r\n\t");
}

static int arm_error(struct pp_error **reterr, int r, const struct http_response *resp,
		     struct pp_error **herr)
{
	if (resp->status <= 0) {
		if (reterr && !*reterr && *herr) {
			*reterr = TAKE_PTR(*herr);
			return -(*reterr)->err;
		}
		return pp_error_set(reterr, r, "%s", pp_error_message(*herr, r));
	}
	_cleanup_free_ char *code = NULL, *message = NULL;
	const char *rid = http_response_header(resp, "x-ms-request-id");
	if (arm_error_parse(resp->body, resp->body_len, &code, &message) < 0)
		code = message = NULL;
	if (message || code)
		r = pp_error_set(reterr, r, "HTTP %ld%s%s: %s%s%s%s", resp->status, code ? " " : "",
				 code ?: "", message ?: "", rid ? " (request id " : "", rid ?: "",
				 rid ? ")" : "");
	else
		r = pp_error_set(reterr, r, "%s%s%s%s", pp_error_message(*herr, r),
				 rid ? " (request id " : "", rid ?: "", rid ? ")" : "");
	pp_error_add_detail(reterr, (int)resp->status, code, rid);
	return r;
}

int arm_call(struct arm_client *c, const char *method, const char *url, const char *body,
	     struct http_response *ret, struct pp_error **reterr)
{
	if (!same_origin(c, url))
		return pp_error_set(reterr, EINVAL,
				    "refusing to call %.*s: not the resource manager endpoint %s",
				    (int)origin_len(url), url, c->base);
	for (int attempt = 0;; attempt++) {
		_cleanup_secret_ char *token = NULL;
		int r = azure_auth_token(c->auth, &token, reterr);
		if (r < 0)
			return r;
		_cleanup_secret_ char *bearer = str_printf("Bearer %s", token);
		if (!bearer)
			return pp_error_set(reterr, ENOMEM, "out of memory");
		struct http_header hdrs[] = {
		    {"Authorization", bearer},
		    {"Accept", "application/json"},
		    {"Content-Type", "application/json"},
		};
		struct http_request req = {
		    .method = method,
		    .url = url,
		    .headers = hdrs,
		    .n_headers = body ? 3 : 2,
		    .body = body,
		    .body_len = body ? strlen(body) : 0,
		    .max_body_bytes = ARM_BODY_MAX_BYTES,
		    .max_retries = ARM_HTTP_RETRIES,
		    .capture_headers = captured,
		    .n_capture_headers = ELEMENTSOF(captured),
		};
		http_response_done(ret);
		_cleanup_pp_error_ struct pp_error *herr = NULL;
		r = http_request(&req, ret, &herr);
		if (r >= 0)
			return 0;
		if (ret->status == 401 && attempt == 0) {
			/* revoked or expired early: one more try with a fresh token */
			azure_auth_invalidate(c->auth, token);
			continue;
		}
		return arm_error(reterr, r, ret, &herr);
	}
}

static int64_t poll_delay(const struct http_response *r)
{
	int64_t ns;
	const char *ra = http_response_header(r, "Retry-After");
	if (ra && http_parse_retry_after(ra, now_realtime_ns(), &ns) >= 0)
		return MIN(ns, POLL_MAX_NS);
	return POLL_DEFAULT_NS;
}

static int lro_failed(struct pp_error **reterr, enum arm_lro_state st, char *code, char *message,
		      const struct http_response *resp)
{
	const char *rid = http_response_header(resp, "x-ms-request-id");
	int r = pp_error_set(reterr, EIO, "the operation %s%s%s%s%s%s%s%s",
			     st == ARM_LRO_CANCELED ? "was canceled" : "failed", code ? ": " : "",
			     code ?: "", message ? ": " : "", message ?: "",
			     rid ? " (request id " : "", rid ?: "", rid ? ")" : "");
	pp_error_add_detail(reterr, 0, code, rid);
	return r;
}

enum poll_mode { POLL_ASYNC, POLL_LOCATION, POLL_RESOURCE };

int arm_lro_wait(struct arm_client *c, const struct http_response *first, const char *resource_url,
		 bool is_delete, int64_t deadline_ns, struct pp_error **reterr)
{
	const char *async = http_response_header(first, "Azure-AsyncOperation");
	const char *loc = http_response_header(first, "Location");
	enum poll_mode mode;
	const char *url;
	if (!str_empty(async)) {
		mode = POLL_ASYNC;
		url = async;
	} else if (!str_empty(loc)) {
		mode = POLL_LOCATION;
		url = loc;
	} else if (is_delete || first->status == 204) {
		return 0;
	} else {
		enum arm_lro_state st;
		if (arm_provisioning_state_parse(first->body, first->body_len, &st) < 0)
			return pp_error_set(reterr, EBADMSG,
					    "the resource manager answered HTTP %ld with a body "
					    "that is not a resource",
					    first->status);
		if (st == ARM_LRO_SUCCEEDED)
			return 0;
		if (st != ARM_LRO_RUNNING)
			return lro_failed(reterr, st, NULL, (char *)"provisioning state Failed",
					  first);
		mode = POLL_RESOURCE;
		url = resource_url;
	}
	_cleanup_free_ char *poll_url = strdup(url);
	if (!poll_url)
		return pp_error_set(reterr, ENOMEM, "out of memory");
	int64_t wait = poll_delay(first);
	for (;;) {
		int64_t t = arm_now(c);
		if (t >= deadline_ns)
			return pp_error_set(reterr, ETIMEDOUT,
					    "the operation did not finish within the deadline "
					    "(-azure-operation-timeout %llds)",
					    (long long)(c->operation_timeout_ns / NSEC_PER_SEC));
		arm_sleep(c, MIN(wait, deadline_ns - t));
		_cleanup_(http_response_donep) struct http_response resp = {0};
		struct pp_error *err = NULL;
		int r = arm_call(c, "GET", poll_url, NULL, &resp, &err);
		if (r < 0) {
			if (is_delete && resp.status == 404 && mode != POLL_ASYNC) {
				pp_error_free(err);
				return 0;
			}
			if (reterr && !*reterr)
				*reterr = err;
			else
				pp_error_free(err);
			pp_error_prefix(reterr, "polling the operation");
			return r;
		}
		wait = poll_delay(&resp);
		enum arm_lro_state st = ARM_LRO_RUNNING;
		_cleanup_free_ char *code = NULL, *message = NULL;
		switch (mode) {
		case POLL_ASYNC:
			r = arm_lro_status_parse(resp.body, resp.body_len, &st, &code, &message);
			break;
		case POLL_LOCATION:
			st = resp.status == 202 ? ARM_LRO_RUNNING : ARM_LRO_SUCCEEDED;
			break;
		case POLL_RESOURCE:
			r = arm_provisioning_state_parse(resp.body, resp.body_len, &st);
			break;
		}
		if (r < 0)
			return pp_error_set(reterr, r == -ENOMEM ? ENOMEM : EBADMSG,
					    "polling the operation: unexpected answer (HTTP %ld)",
					    resp.status);
		if (st == ARM_LRO_SUCCEEDED)
			return 0;
		if (st != ARM_LRO_RUNNING)
			return lro_failed(reterr, st, code, message, &resp);
	}
}

int arm_delete(struct arm_client *c, const char *resource_url, int64_t deadline_ns,
	       struct pp_error **reterr)
{
	_cleanup_(http_response_donep) struct http_response resp = {0};
	struct pp_error *err = NULL;
	int r = arm_call(c, "DELETE", resource_url, NULL, &resp, &err);
	if (r < 0) {
		if (resp.status == 404) {
			pp_error_free(err);
			return 0;
		}
		if (reterr && !*reterr)
			*reterr = err;
		else
			pp_error_free(err);
		return r;
	}
	return arm_lro_wait(c, &resp, resource_url, true, deadline_ns, reterr);
}

/* providers/azure: access tokens for ARM from a client secret, a workload identity (federated
 * token file, re-read on each request) or the managed identity (IMDS), cached per provider and
 * refreshed before expiry. Tokens and secrets are wiped after use and never put in messages. */
#include <pthread.h>
#include <openssl/crypto.h>

#include "azure/azure-internal.h"

#define REFRESH_MARGIN_NS (5 * 60 * NSEC_PER_SEC)
#define TOKEN_BODY_MAX_BYTES (256u << 10)
#define FEDERATED_TOKEN_MAX_BYTES (64u << 10)
#define TOKEN_HTTP_RETRIES 3

struct azure_auth {
	enum azure_auth_mode mode;
	char *token_url; /* Entra ID token endpoint or the IMDS URL */
	char *audience;
	const struct azure_settings *s;
	const struct azure_hooks *hooks;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	char *token;
	int64_t refresh_at_ns, expires_at_ns;
	bool fetching;
	uint64_t failures;
	struct pp_error *last_error;
	unsigned requests;
};

enum azure_auth_mode azure_auth_mode_of(const struct azure_settings *s)
{
	if (!str_empty(s->client_secret))
		return AZURE_AUTH_CLIENT_SECRET;
	if (!str_empty(s->federated_token_file))
		return AZURE_AUTH_WORKLOAD_IDENTITY;
	return AZURE_AUTH_MANAGED_IDENTITY;
}

const char *azure_auth_mode_name(enum azure_auth_mode m)
{
	switch (m) {
	case AZURE_AUTH_CLIENT_SECRET:
		return "client secret";
	case AZURE_AUTH_WORKLOAD_IDENTITY:
		return "workload identity";
	default:
		return "managed identity";
	}
}

static int64_t now(const struct azure_auth *a)
{
	return a->hooks && a->hooks->now_ns ? a->hooks->now_ns(a->hooks->userdata) : now_ns();
}

/* application/x-www-form-urlencoded value */
static int form_append(struct buf *b, const char *name, const char *value)
{
	int r = buf_printf(b, "%s%s=", b->len ? "&" : "", name);
	for (const char *c = value; r >= 0 && *c; c++) {
		unsigned char ch = (unsigned char)*c;
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' || ch == '~')
			r = buf_append(b, c, 1, 0);
		else
			r = buf_printf(b, "%%%02X", ch);
	}
	return r;
}

static char *strip_slash(const char *s)
{
	size_t n = strlen(s);
	while (n > 0 && s[n - 1] == '/')
		n--;
	return strndup(s, n);
}

static bool tenant_valid(const char *s)
{
	if (str_empty(s) || strlen(s) > 128)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '.'))
			return false;
	return true;
}

int azure_auth_new(const struct azure_settings *s, const char *audience,
		   const struct azure_hooks *hooks, struct azure_auth **ret)
{
	struct azure_auth *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->mode = azure_auth_mode_of(s);
	a->s = s;
	a->hooks = hooks;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->cond, NULL);
	a->audience = strdup(audience);
	int r = a->audience ? 0 : -ENOMEM;
	if (r >= 0 && a->mode == AZURE_AUTH_MANAGED_IDENTITY) {
		_cleanup_free_ char *imds = strip_slash(
		    str_empty(s->imds_endpoint) ? "http://169.254.169.254" : s->imds_endpoint);
		struct buf q = {0};
		r = imds ? form_append(&q, "api-version", "2018-02-01") : -ENOMEM;
		if (r >= 0)
			r = form_append(&q, "resource", audience);
		if (r >= 0 && !str_empty(s->client_id))
			r = form_append(&q, "client_id", s->client_id);
		if (r >= 0)
			r = buf_append(&q, "", 1, 0);
		if (r >= 0) {
			a->token_url = str_printf("%s/metadata/identity/oauth2/token?%s", imds,
						  (char *)q.data);
			r = a->token_url ? 0 : -ENOMEM;
		}
		buf_done(&q);
	} else if (r >= 0) {
		if (!tenant_valid(s->tenant_id))
			r = -EINVAL;
		_cleanup_free_ char *authority =
		    strip_slash(str_empty(s->authority_host) ? "https://login.microsoftonline.com/"
							     : s->authority_host);
		if (r >= 0 && !authority)
			r = -ENOMEM;
		if (r >= 0) {
			a->token_url =
			    str_printf("%s/%s/oauth2/v2.0/token", authority, s->tenant_id);
			r = a->token_url ? 0 : -ENOMEM;
		}
	}
	if (r < 0) {
		azure_auth_free(a);
		return r;
	}
	*ret = a;
	return 0;
}

void azure_auth_free(struct azure_auth *a)
{
	if (!a)
		return;
	free_secret(a->token);
	free_secret(a->token_url); /* may carry the managed identity's client id */
	free(a->audience);
	pp_error_free(a->last_error);
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->cond);
	free(a);
}

static int auth_error(struct pp_error **reterr, int r, const char *what,
		      const struct http_response *resp)
{
	_cleanup_free_ char *code = NULL, *message = NULL;
	/* only a parsed OAuth error is quoted: a raw body could echo the request */
	if (resp && resp->status > 0 &&
	    arm_error_parse(resp->body, resp->body_len, &code, &message) < 0)
		code = message = NULL;
	const char *rid = resp ? http_response_header(resp, "x-ms-request-id") : NULL;
	if (resp && resp->status > 0)
		r = pp_error_set(reterr, r, "%s: HTTP %ld%s%s%s%s%s%s%s", what, resp->status,
				 code ? " " : "", code ?: "", message ? ": " : "", message ?: "",
				 rid ? " (request id " : "", rid ?: "", rid ? ")" : "");
	else
		r = pp_error_set(reterr, r, "%s", what);
	pp_error_add_detail(reterr, resp ? (int)resp->status : 0, code, rid);
	return r;
}

/* One token request; no locks held. */
static int fetch(struct azure_auth *a, struct azure_token *ret, struct pp_error **reterr)
{
	const struct azure_settings *s = a->s;
	struct buf form = {0};
	_cleanup_secret_ char *assertion = NULL;
	const char *what = NULL;
	int r = 0;
	if (a->mode == AZURE_AUTH_WORKLOAD_IDENTITY) {
		/* re-read each time: the kubelet rotates the projected token */
		size_t len = 0;
		r = read_file_bounded(s->federated_token_file, FEDERATED_TOKEN_MAX_BYTES,
				      &assertion, &len);
		if (r < 0)
			return pp_error_set(reterr, r,
					    "workload identity: cannot read the federated token "
					    "file %s: %s",
					    s->federated_token_file, strerror(-r));
		while (len > 0 && strchr(" \t\r\n", assertion[len - 1]))
			assertion[--len] = 0;
		if (len == 0)
			return pp_error_set(reterr, EINVAL,
					    "workload identity: the federated token file %s is "
					    "empty",
					    s->federated_token_file);
	}
	_cleanup_free_ char *scope = str_printf("%s/.default", a->audience);
	if (!scope)
		return -ENOMEM;
	struct http_request req = {
	    .url = a->token_url,
	    .max_retries = TOKEN_HTTP_RETRIES,
	    .max_body_bytes = TOKEN_BODY_MAX_BYTES,
	    .capture_headers = (const char *const[]){"x-ms-request-id"},
	    .n_capture_headers = 1,
	};
	struct http_header form_hdr[] = {{"Content-Type", "application/x-www-form-urlencoded"},
					 {"Accept", "application/json"}};
	struct http_header imds_hdr[] = {{"Metadata", "true"}, {"Accept", "application/json"}};
	if (a->mode == AZURE_AUTH_MANAGED_IDENTITY) {
		what = "managed identity: token request to IMDS failed";
		req.headers = imds_hdr;
		req.n_headers = ELEMENTSOF(imds_hdr);
		req.no_proxy = true;
		req.connect_timeout_ns = 5 * NSEC_PER_SEC;
	} else {
		what = a->mode == AZURE_AUTH_CLIENT_SECRET
			   ? "client secret: token request failed"
			   : "workload identity: token request failed";
		r = form_append(&form, "grant_type", "client_credentials");
		if (r >= 0)
			r = form_append(&form, "client_id", s->client_id ?: "");
		if (r >= 0)
			r = form_append(&form, "scope", scope);
		if (r >= 0 && a->mode == AZURE_AUTH_CLIENT_SECRET)
			r = form_append(&form, "client_secret", s->client_secret);
		if (r >= 0 && a->mode == AZURE_AUTH_WORKLOAD_IDENTITY) {
			r = form_append(&form, "client_assertion_type",
					"urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
			if (r >= 0)
				r = form_append(&form, "client_assertion", assertion);
		}
		if (r < 0) {
			if (form.data)
				OPENSSL_cleanse(form.data, form.cap);
			buf_done(&form);
			return pp_error_set(reterr, r, "out of memory");
		}
		req.method = "POST";
		req.headers = form_hdr;
		req.n_headers = ELEMENTSOF(form_hdr);
		req.body = form.data;
		req.body_len = form.len;
	}
	pthread_mutex_lock(&a->lock);
	a->requests++;
	pthread_mutex_unlock(&a->lock);

	_cleanup_(http_response_donep) struct http_response resp = {0};
	_cleanup_pp_error_ struct pp_error *herr = NULL;
	r = http_request(&req, &resp, &herr);
	if (form.data)
		OPENSSL_cleanse(form.data, form.cap);
	buf_done(&form);
	if (r < 0) {
		/* lib/http's text quotes the body, which could echo the request: our own */
		if (resp.status > 0)
			r = auth_error(reterr, r, what, &resp);
		else /* lib/http's text names the URL, whose path holds the tenant id */
			r = pp_error_set(reterr, r, "%s: %s", what, strerror(-r));
	} else {
		r = azure_token_parse(resp.body, resp.body_len, now_realtime_ns(), ret);
		if (r < 0)
			r = pp_error_set(reterr, r == -ENOMEM ? ENOMEM : EBADMSG,
					 "%s: the answer holds no usable access token", what);
	}
	if (resp.body)
		OPENSSL_cleanse(resp.body, resp.body_len);
	return r;
}

static struct pp_error *error_copy(const struct pp_error *e)
{
	if (!e)
		return NULL;
	struct pp_error *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	*c = (struct pp_error){.err = e->err, .status = e->status};
	c->message = strdup(e->message ?: "");
	c->code = str_dup(e->code);
	c->request_id = str_dup(e->request_id);
	if (!c->message || (e->code && !c->code) || (e->request_id && !c->request_id)) {
		pp_error_free(c);
		return NULL;
	}
	return c;
}

static int copy_token(const struct azure_auth *a, char **ret)
{
	*ret = strdup(a->token);
	return *ret ? 0 : -ENOMEM;
}

int azure_auth_token(struct azure_auth *a, char **ret, struct pp_error **reterr)
{
	pthread_mutex_lock(&a->lock);
	for (;;) {
		int64_t t = now(a);
		if (a->token && t < a->refresh_at_ns) {
			int r = copy_token(a, ret);
			pthread_mutex_unlock(&a->lock);
			return r;
		}
		if (!a->fetching)
			break;
		/* someone else asks: a still valid token does meanwhile, else wait for them */
		if (a->token && t < a->expires_at_ns) {
			int r = copy_token(a, ret);
			pthread_mutex_unlock(&a->lock);
			return r;
		}
		uint64_t failures = a->failures;
		pthread_cond_wait(&a->cond, &a->lock);
		if (a->failures != failures && !(a->token && now(a) < a->expires_at_ns)) {
			int err = a->last_error ? a->last_error->err : EIO;
			if (reterr && !*reterr && !(*reterr = error_copy(a->last_error)))
				pp_error_set(reterr, err, "token request failed");
			pthread_mutex_unlock(&a->lock);
			return -err;
		}
	}
	a->fetching = true;
	pthread_mutex_unlock(&a->lock);

	struct azure_token tok = {0};
	struct pp_error *err = NULL;
	int r = fetch(a, &tok, &err);

	pthread_mutex_lock(&a->lock);
	a->fetching = false;
	int64_t t = now(a);
	if (r >= 0) {
		free_secret(a->token);
		a->token = TAKE_PTR(tok.access_token);
		a->expires_at_ns = t + tok.lifetime_ns;
		/* 5 minutes early, or at half-life for short tokens, or when told */
		int64_t margin = MIN(REFRESH_MARGIN_NS, tok.lifetime_ns / 2);
		a->refresh_at_ns = t + tok.lifetime_ns - margin;
		if (tok.refresh_in_ns > 0)
			a->refresh_at_ns = MIN(a->refresh_at_ns, t + tok.refresh_in_ns);
		r = copy_token(a, ret);
	} else {
		a->failures++;
		pp_error_free(a->last_error);
		a->last_error = error_copy(err);
		if (a->token && t < a->expires_at_ns) {
			/* the refresh failed but the old token still works */
			pp_error_free(err);
			err = NULL;
			r = copy_token(a, ret);
		}
	}
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	azure_token_done(&tok);
	if (err) {
		if (reterr && !*reterr)
			*reterr = err;
		else
			pp_error_free(err);
	}
	return r;
}

void azure_auth_invalidate(struct azure_auth *a, const char *token)
{
	pthread_mutex_lock(&a->lock);
	if (a->token && str_eq(a->token, token)) {
		free_secret(a->token);
		a->token = NULL;
		a->refresh_at_ns = a->expires_at_ns = 0;
	}
	pthread_mutex_unlock(&a->lock);
}

unsigned azure_auth_requests(struct azure_auth *a)
{
	pthread_mutex_lock(&a->lock);
	unsigned n = a->requests;
	pthread_mutex_unlock(&a->lock);
	return n;
}

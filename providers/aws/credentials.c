/* providers/aws/credentials: where the adaptor's AWS credentials come from (static keys, web
 * identity through STS, or the instance role through IMDSv2) and a cache that refreshes them
 * before they expire, one refresh at a time. */
#include <stdio.h>

#include "aws-internal.h"

/* Credentials this close to expiry are not handed out even while a refresh runs. */
#define USABLE_MARGIN_NS (10 * NSEC_PER_SEC)

int aws_credential_provider_init(struct aws_credential_provider *cp, const struct aws_settings *s,
				 const char *sts_url, const char *imds_url,
				 struct pp_error **reterr)
{
	*cp = (struct aws_credential_provider){0};
	pthread_mutex_init(&cp->lock, NULL);
	pthread_cond_init(&cp->cond, NULL);
	int r = 0;
	if (!str_empty(s->access_key_id) && !str_empty(s->secret_key)) {
		cp->source = AWS_CREDENTIALS_STATIC;
		struct aws_credentials c = {
		    .access_key_id = s->access_key_id,
		    .secret_access_key = s->secret_key,
		    .session_token = str_empty(s->session_token) ? NULL : s->session_token};
		r = aws_credentials_copy(&c, &cp->cur);
		cp->have = r >= 0;
	} else if (!str_empty(s->role_arn) && !str_empty(s->web_identity_token_file)) {
		cp->source = AWS_CREDENTIALS_WEB_IDENTITY;
		cp->role_arn = strdup(s->role_arn);
		cp->token_file = strdup(s->web_identity_token_file);
		cp->session_name = str_dup(s->role_session_name);
		cp->sts_url = str_dup(sts_url);
		if (!cp->role_arn || !cp->token_file || !cp->sts_url ||
		    (s->role_session_name && !cp->session_name))
			r = -ENOMEM;
	} else {
		cp->source = AWS_CREDENTIALS_IMDS;
		cp->imds_url = str_dup(imds_url);
		if (!cp->imds_url)
			r = -ENOMEM;
	}
	if (r < 0) {
		aws_credential_provider_done(cp);
		return pp_error_set(reterr, r, "cannot set up AWS credentials: %s", strerror(-r));
	}
	return 0;
}

void aws_credential_provider_done(struct aws_credential_provider *cp)
{
	if (!cp)
		return;
	aws_credentials_done(&cp->cur);
	free(cp->role_arn);
	free(cp->token_file);
	free(cp->session_name);
	free(cp->sts_url);
	free(cp->imds_url);
	pthread_mutex_destroy(&cp->lock);
	pthread_cond_destroy(&cp->cond);
	*cp = (struct aws_credential_provider){0};
}

static int fetch_web_identity(struct aws_credential_provider *cp, struct aws_credentials *ret,
			      struct pp_error **reterr)
{
	/* re-read every time: the kubelet rotates the projected token */
	_cleanup_secret_ char *token = NULL;
	size_t len = 0;
	int r = read_file_bounded(cp->token_file, AWS_TOKEN_FILE_MAX_BYTES, &token, &len);
	if (r < 0)
		return pp_error_set(reterr, r, "cannot read the web identity token file %s: %s",
				    cp->token_file, strerror(-r));
	while (len > 0 &&
	       (token[len - 1] == '\n' || token[len - 1] == '\r' || token[len - 1] == ' '))
		token[--len] = 0;
	if (len == 0)
		return pp_error_set(reterr, EINVAL, "the web identity token file %s is empty",
				    cp->token_file);
	_cleanup_free_ char *session = NULL;
	if (str_empty(cp->session_name))
		session = str_printf("cloud-api-adaptor-%lld",
				     (long long)(aws_now_realtime_ns() / NSEC_PER_SEC));
	struct aws_endpoint ep = {0};
	r = aws_endpoint_parse(cp->sts_url, &ep);
	if (r < 0)
		return pp_error_set(reterr, r, "bad STS endpoint URL %s", cp->sts_url);
	struct aws_form f = {0};
	aws_form_add(&f, "RoleArn", cp->role_arn);
	aws_form_add(&f, "RoleSessionName", session ?: cp->session_name);
	aws_form_add(&f, "WebIdentityToken", token);
	struct aws_query q = {
	    .endpoint = &ep,
	    .region = "us-east-1", /* unsigned: unused */
	    .service = "sts",
	    .action = "AssumeRoleWithWebIdentity",
	    .version = STS_API_VERSION,
	};
	_cleanup_free_ char *body = NULL;
	size_t body_len = 0;
	r = aws_query_call(&q, &f, &body, &body_len, reterr);
	aws_form_done(&f);
	aws_endpoint_done(&ep);
	if (r < 0)
		return r;
	r = sts_credentials_parse(body, body_len, ret);
	explicit_bzero(body, body_len);
	if (r < 0)
		return pp_error_set(reterr, r, "sts AssumeRoleWithWebIdentity: malformed response");
	return 0;
}

static int fetch_imds(struct aws_credential_provider *cp, struct aws_credentials *ret,
		      struct pp_error **reterr)
{
	struct aws_imds m = {.endpoint = cp->imds_url};
	_cleanup_free_ char *roles = NULL;
	int r = aws_imds_get(&m, "/latest/meta-data/iam/security-credentials/", &roles, reterr);
	if (r < 0) {
		aws_imds_done(&m);
		pp_error_prefix(reterr, "no AWS credentials (no keys, no web identity, no "
					"instance role)");
		return r;
	}
	size_t n = strcspn(roles, "\r\n");
	roles[n] = 0;
	if (n == 0 || strchr(roles, '/') || str_eq(roles, "..") || str_eq(roles, ".")) {
		aws_imds_done(&m);
		return pp_error_set(reterr, ENOENT, "the instance has no IAM role");
	}
	_cleanup_free_ char *path =
	    str_printf("/latest/meta-data/iam/security-credentials/%s", roles);
	if (!path) {
		aws_imds_done(&m);
		return -ENOMEM;
	}
	_cleanup_secret_ char *doc = NULL;
	r = aws_imds_get(&m, path, &doc, reterr);
	aws_imds_done(&m);
	if (r < 0)
		return r;
	r = imds_credentials_parse(doc, strlen(doc), ret);
	if (r < 0)
		return pp_error_set(reterr, r, "instance role %s: malformed credentials", roles);
	return 0;
}

static int fetch(struct aws_credential_provider *cp, struct aws_credentials *ret,
		 struct pp_error **reterr)
{
	switch (cp->source) {
	case AWS_CREDENTIALS_WEB_IDENTITY:
		return fetch_web_identity(cp, ret, reterr);
	case AWS_CREDENTIALS_IMDS:
		return fetch_imds(cp, ret, reterr);
	case AWS_CREDENTIALS_STATIC:
		break;
	}
	return pp_error_set(reterr, EINVAL, "static credentials cannot be refreshed");
}

int aws_credential_provider_get(struct aws_credential_provider *cp, struct aws_credentials *ret,
				struct pp_error **reterr)
{
	pthread_mutex_lock(&cp->lock);
	for (;;) {
		int64_t now = aws_now_realtime_ns();
		int64_t exp = cp->cur.expires_ns;
		bool fresh = cp->have && (exp == 0 || now < exp - aws_tuning.refresh_before_ns);
		bool usable = cp->have && (exp == 0 || now < exp - USABLE_MARGIN_NS);
		if (fresh || (cp->refreshing && usable) || cp->source == AWS_CREDENTIALS_STATIC) {
			int r = cp->have ? aws_credentials_copy(&cp->cur, ret) : -ENOKEY;
			pthread_mutex_unlock(&cp->lock);
			return r < 0 ? pp_error_set(reterr, r, "no AWS credentials") : 0;
		}
		if (cp->refreshing) {
			pthread_cond_wait(&cp->cond, &cp->lock);
			continue;
		}
		cp->refreshing = true;
		pthread_mutex_unlock(&cp->lock);

		struct aws_credentials n = {0};
		struct pp_error *e = NULL;
		int r = fetch(cp, &n, &e);

		pthread_mutex_lock(&cp->lock);
		cp->refreshing = false;
		cp->n_refreshes++;
		pthread_cond_broadcast(&cp->cond);
		if (r >= 0) {
			aws_credentials_done(&cp->cur);
			cp->cur = n;
			cp->have = true;
		}
		/* a failed refresh still leaves valid credentials to use */
		if (r >= 0 || usable) {
			pp_error_free(e);
			r = aws_credentials_copy(&cp->cur, ret);
			pthread_mutex_unlock(&cp->lock);
			return r < 0 ? pp_error_set(reterr, r, "no AWS credentials") : 0;
		}
		pthread_mutex_unlock(&cp->lock);
		if (reterr && !*reterr)
			*reterr = e;
		else
			pp_error_free(e);
		return r;
	}
}

void aws_credential_provider_invalidate(struct aws_credential_provider *cp,
					const char *access_key_id)
{
	pthread_mutex_lock(&cp->lock);
	if (cp->source != AWS_CREDENTIALS_STATIC && cp->have &&
	    str_eq(cp->cur.access_key_id, access_key_id))
		cp->cur.expires_ns = 1;
	pthread_mutex_unlock(&cp->lock);
}

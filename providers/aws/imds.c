/* providers/aws/imds: a client of the EC2 instance metadata service, IMDSv2 only (a session token
 * from PUT /latest/api/token on every GET), used for the node's region, network and key name and
 * for the instance role's credentials. The proxy environment is ignored: the service is
 * link-local. */
#include <stdio.h>

#include "aws-internal.h"
#include "http/http.h"

#define IMDS_TOKEN_TTL_S "21600"

void aws_imds_done(struct aws_imds *m)
{
	if (!m)
		return;
	free_secret(m->token);
	m->token = NULL;
	m->failed = false;
}

static int imds_token(struct aws_imds *m, struct pp_error **reterr)
{
	_cleanup_free_ char *url = str_printf("%s/latest/api/token", m->endpoint);
	if (!url)
		return -ENOMEM;
	const struct http_header h[] = {{"X-aws-ec2-metadata-token-ttl-seconds", IMDS_TOKEN_TTL_S}};
	struct http_request req = {
	    .method = "PUT",
	    .url = url,
	    .headers = h,
	    .n_headers = ELEMENTSOF(h),
	    .body = "",
	    .connect_timeout_ns = MIN(aws_tuning.imds_timeout_ns, 2 * NSEC_PER_SEC),
	    .timeout_ns = aws_tuning.imds_timeout_ns,
	    .max_body_bytes = 4096,
	    .max_retries = 1,
	    .backoff_initial_ns = 100 * NSEC_PER_MSEC,
	    .no_proxy = true,
	};
	_cleanup_(http_response_donep) struct http_response resp = {0};
	int r = http_request(&req, &resp, reterr);
	if (r < 0) {
		m->failed = true;
		pp_error_prefix(reterr, "instance metadata token (%s)", m->endpoint);
		return r;
	}
	if (resp.body_len == 0 || strpbrk(resp.body, "\r\n")) {
		m->failed = true;
		return pp_error_set(reterr, EBADMSG, "instance metadata token (%s): bad token",
				    m->endpoint);
	}
	free_secret(m->token);
	m->token = TAKE_PTR(resp.body);
	return 0;
}

int aws_imds_get(struct aws_imds *m, const char *path, char **ret, struct pp_error **reterr)
{
	if (m->failed)
		return pp_error_set(reterr, EHOSTUNREACH,
				    "instance metadata service %s is not available", m->endpoint);
	_cleanup_free_ char *url = str_printf("%s%s", m->endpoint, path);
	if (!url)
		return -ENOMEM;
	for (int attempt = 0;; attempt++) {
		if (!m->token) {
			int r = imds_token(m, reterr);
			if (r < 0)
				return r;
		}
		const struct http_header h[] = {{"X-aws-ec2-metadata-token", m->token}};
		struct http_request req = {
		    .url = url,
		    .headers = h,
		    .n_headers = ELEMENTSOF(h),
		    .connect_timeout_ns = MIN(aws_tuning.imds_timeout_ns, 2 * NSEC_PER_SEC),
		    .timeout_ns = aws_tuning.imds_timeout_ns,
		    .max_body_bytes = AWS_IMDS_MAX_BYTES,
		    .max_retries = 2,
		    .backoff_initial_ns = 100 * NSEC_PER_MSEC,
		    .no_proxy = true,
		};
		_cleanup_(http_response_donep) struct http_response resp = {0};
		_cleanup_pp_error_ struct pp_error *e = NULL;
		int r = http_request(&req, &resp, &e);
		if (r >= 0) {
			*ret = TAKE_PTR(resp.body);
			return 0;
		}
		if (resp.status == 401 && attempt == 0) {
			/* the session token expired: get a new one */
			free_secret(m->token);
			m->token = NULL;
			continue;
		}
		if (resp.body)
			explicit_bzero(resp.body, resp.body_len);
		if (reterr && !*reterr)
			*reterr = TAKE_PTR(e);
		pp_error_prefix(reterr, "instance metadata %s", path);
		return r;
	}
}

int aws_imds_key_name_parse(const char *listing, const char *openssh_key, char **ret)
{
	/* "0=my-key\n1=other": the key pair name of index 0 */
	for (const char *l = listing; l && *l;) {
		size_t n = strcspn(l, "\r\n");
		if (n > 2 && l[0] == '0' && l[1] == '=') {
			*ret = strndup(l + 2, n - 2);
			return *ret ? 0 : -ENOMEM;
		}
		l += n;
		l += strspn(l, "\r\n");
	}
	/* "ssh-ed25519 AAAA... comment": the comment, which EC2 sets to the key pair name */
	const char *s = openssh_key;
	for (int field = 0; s && field < 2; field++) {
		s += strspn(s, " \t");
		s += strcspn(s, " \t\r\n");
	}
	if (s) {
		s += strspn(s, " \t");
		size_t n = strcspn(s, "\r\n");
		while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
			n--;
		if (n > 0) {
			*ret = strndup(s, n);
			return *ret ? 0 : -ENOMEM;
		}
	}
	return -ENOENT;
}

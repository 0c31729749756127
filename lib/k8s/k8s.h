/* lib/k8s: a small Kubernetes API client over libcurl and jansson: where the API server is and
 * how to authenticate (in-cluster service account or a kubeconfig file), and JSON requests
 * (GET, POST, merge patch, JSON patch, DELETE) with timeouts, retries and Kubernetes Status
 * errors turned into struct pp_error. A client is safe to use from several threads at once. */
#pragma once

#include <jansson.h>

#include "base/base.h"

#define K8S_SERVICEACCOUNT_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define K8S_KUBECONFIG_MAX_BYTES (1024 * 1024)
#define K8S_TOKEN_MAX_BYTES (64 * 1024)
#define K8S_DEFAULT_TIMEOUT_NS (10 * NSEC_PER_SEC)
#define K8S_DEFAULT_MAX_BODY_BYTES (8u * 1024 * 1024)

/* Where the API server is and how to talk to it. Paths are absolute; *_data members hold PEM
 * (already base64-decoded from a kubeconfig). Everything is malloc'd; secrets are wiped. */
struct k8s_config {
	char *server; /* "https://host:port" (http:// is accepted, for tests) */
	char *ca_file;
	char *ca_data;
	bool insecure_skip_tls_verify;
	char *token;      /* a fixed bearer token */
	char *token_file; /* re-read whenever it changes (service-account token rotation) */
	char *client_cert_file, *client_key_file;
	char *client_cert_data, *client_key_data;
	char *namespace; /* default namespace: the service account's, or the context's */
};

void k8s_config_free(struct k8s_config *c);
static inline void k8s_config_freep(struct k8s_config **c)
{
	k8s_config_free(*c);
}

/* In-cluster configuration from a service-account directory (token, ca.crt, namespace) and the
 * API server's address. server_url, when non-empty, replaces https://host:port (tests). host and
 * port come from KUBERNETES_SERVICE_HOST/PORT (the caller looks them up). -ENOENT when there is
 * no token file or no address: not in a cluster. */
int k8s_config_in_cluster(const char *sa_dir, const char *host, const char *port,
			  const char *server_url, struct k8s_config **ret, char **ret_msg);

/* Parse a kubeconfig document (YAML or JSON). base_dir resolves relative file paths (the
 * kubeconfig's directory). context NULL or "" means current-context. -EINVAL with *ret_msg on
 * anything malformed or missing; -EFBIG above K8S_KUBECONFIG_MAX_BYTES. Files it names are not
 * read here. */
int k8s_config_parse_kubeconfig(const char *data, size_t len, const char *base_dir,
				const char *context, struct k8s_config **ret, char **ret_msg);
/* Read and parse a kubeconfig file. */
int k8s_config_load_kubeconfig(const char *path, const char *context, struct k8s_config **ret,
			       char **ret_msg);

/* ---- client ---- */

struct k8s_client;

struct k8s_client_options {
	int64_t connect_timeout_ns; /* 0: K8S_DEFAULT_TIMEOUT_NS */
	int64_t timeout_ns;         /* per attempt; 0: K8S_DEFAULT_TIMEOUT_NS */
	unsigned max_retries;       /* after a connection error, timeout, 429 or 5xx */
	int64_t backoff_initial_ns; /* 0: HTTP_DEFAULT_BACKOFF_INITIAL_NS */
	int64_t backoff_max_ns;     /* 0: 5 s; also caps Retry-After */
	size_t max_body_bytes;      /* 0: K8S_DEFAULT_MAX_BODY_BYTES */
};

/* Takes ownership of cfg (also on failure). opts may be NULL (defaults, no retries). */
int k8s_client_new(struct k8s_config *cfg, const struct k8s_client_options *opts,
		   struct k8s_client **ret);
struct k8s_client *k8s_client_free(struct k8s_client *c);
static inline void k8s_client_freep(struct k8s_client **c)
{
	k8s_client_free(*c);
}
const struct k8s_config *k8s_client_config(const struct k8s_client *c);

#define K8S_CONTENT_JSON "application/json"
#define K8S_CONTENT_MERGE_PATCH "application/merge-patch+json"
#define K8S_CONTENT_JSON_PATCH "application/json-patch+json"

/* One request. path starts with "/" (query included, already escaped). body may be NULL;
 * it is sent with content_type (NULL: application/json). *ret (may be NULL) receives the decoded
 * JSON response (NULL for an empty body). Non-2xx answers fail: the Kubernetes Status body
 * becomes *reterr (status, code = reason, message), with errno -ENOENT 404, -EEXIST 409
 * (AlreadyExists or Conflict), -EACCES 401/403, -EINVAL 400/422, -EBUSY 429, -EIO otherwise;
 * transport failures as lib/http. */
int k8s_request(struct k8s_client *c, const char *method, const char *path,
		const char *content_type, const json_t *body, json_t **ret,
		struct pp_error **reterr);

static inline int k8s_get(struct k8s_client *c, const char *path, json_t **ret,
			  struct pp_error **reterr)
{
	return k8s_request(c, "GET", path, NULL, NULL, ret, reterr);
}
static inline int k8s_post(struct k8s_client *c, const char *path, const json_t *body, json_t **ret,
			   struct pp_error **reterr)
{
	return k8s_request(c, "POST", path, K8S_CONTENT_JSON, body, ret, reterr);
}
static inline int k8s_merge_patch(struct k8s_client *c, const char *path, const json_t *patch,
				  json_t **ret, struct pp_error **reterr)
{
	return k8s_request(c, "PATCH", path, K8S_CONTENT_MERGE_PATCH, patch, ret, reterr);
}
static inline int k8s_json_patch(struct k8s_client *c, const char *path, const json_t *ops,
				 json_t **ret, struct pp_error **reterr)
{
	return k8s_request(c, "PATCH", path, K8S_CONTENT_JSON_PATCH, ops, ret, reterr);
}
static inline int k8s_delete(struct k8s_client *c, const char *path, json_t **ret,
			     struct pp_error **reterr)
{
	return k8s_request(c, "DELETE", path, NULL, NULL, ret, reterr);
}

/* ---- helpers (pure; exposed for tests and fuzzing) ---- */

/* Turn an error answer into *reterr: a Status object's reason/message/code when the body is
 * one, else the HTTP status and a body excerpt. Returns the negative errno. */
int k8s_status_error(long http_status, const char *body, size_t len, const char *what,
		     struct pp_error **reterr);
/* One JSON patch operation {"op","path"[,"value"]}; value is taken over (may be NULL). */
json_t *k8s_patch_op(const char *op, const char *path, json_t *value);
/* A JSON pointer token: "~" -> "~0", "/" -> "~1". malloc'd. */
char *k8s_pointer_escape(const char *s);
/* Percent-encoding for a query value or path segment (RFC 3986 unreserved kept). malloc'd. */
char *k8s_url_escape(const char *s);
/* A string member of a nested object: k8s_json_str(o, "metadata", "uid", NULL). */
const char *k8s_json_str(const json_t *o, ...);
/* An RFC 3339 time ("2024-01-02T03:04:05Z", optional fraction and offset) as Unix seconds. */
int k8s_parse_time(const char *s, int64_t *ret_sec);

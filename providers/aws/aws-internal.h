/* providers/aws: internals shared by the provider's files, its unit test, its fuzz target and the
 * benchmark: settings, tuning knobs, the Query-API form and call loop, the XML/JSON response
 * parsers, credentials and the instance metadata (IMDSv2) client. */
#pragma once

#include <pthread.h>

#include "aws/sigv4.h"
#include "base/base.h"
#include "instance-type.h"
#include "provider.h"

#define EC2_API_VERSION "2016-11-15"
#define STS_API_VERSION "2011-06-15"
#define AWS_FORM_CONTENT_TYPE "application/x-www-form-urlencoded; charset=utf-8"
#define AWS_DEFAULT_IMDS_ENDPOINT "http://169.254.169.254"

/* EC2 limits user data to 16 KB of raw data, before base64 (which makes it ~21848 bytes). */
#define AWS_USER_DATA_MAX_BYTES 16384
#define AWS_XML_MAX_BYTES (4u << 20)    /* one response document */
#define AWS_TEXT_MAX_BYTES 4096         /* one parsed field (ids, addresses, tags) */
#define AWS_MESSAGE_MAX_BYTES 1024      /* an error message, truncated beyond */
#define AWS_MAX_ITEMS_PER_PAGE 10000    /* elements of one list in one document */
#define AWS_MAX_PAGES 1000              /* NextToken pages followed */
#define AWS_FORM_MAX_BYTES (256u << 10) /* one request body */
#define AWS_TOKEN_FILE_MAX_BYTES (64u << 10)
#define AWS_IMDS_MAX_BYTES (64u << 10)

/* The project's tags (CLOUD.md). */
#define AWS_TAG_NODE "peerpod-node"
#define AWS_TAG_SANDBOX "peerpod-sandbox-id"
#define AWS_TAG_POD "peerpod-pod"
#define AWS_TAG_VALUE_MAX 256

struct aws_settings {
	char *access_key_id; /* secret */
	char *secret_key;    /* secret */
	char *session_token; /* secret */
	char *region;
	char *instance_type;
	char **instance_types;
	char *image_id;
	char *key_name;
	char *subnet_id;
	char **security_group_ids;
	bool use_lt;
	char *lt_name;
	bool use_public_ip;
	uint64_t root_volume_size_gib;
	bool disable_cvm;
	char **tags; /* "k=v" items */
	char *profile;
	char *role_arn;
	char *web_identity_token_file;
	char *role_session_name;
	char *endpoint_url;
	char *endpoint_url_ec2;
	char *endpoint_url_sts;
	char *imds_endpoint;
};

/* Timing knobs; tests shorten them and replace the clock. Read at each use. */
struct aws_tuning {
	unsigned max_attempts;              /* per Query call, first attempt included */
	int64_t backoff_initial_ns;         /* doubles per retry, jittered */
	int64_t backoff_max_ns;             /* cap of one pause */
	int64_t connect_timeout_ns;         /* per attempt */
	int64_t timeout_ns;                 /* per attempt */
	int64_t imds_timeout_ns;            /* per IMDS request */
	int64_t refresh_before_ns;          /* refresh credentials this long before they expire */
	int64_t ip_wait_ns;                 /* public-IP mode: how long to wait for "running" */
	int64_t ip_poll_initial_ns;         /* first pause between DescribeInstances polls */
	int64_t (*clock_realtime_ns)(void); /* signing dates and credential expiry */
	const char *ca_file;                /* NULL: system bundle */
};
extern struct aws_tuning aws_tuning;
int64_t aws_now_realtime_ns(void);

/* ---- credentials ---- */

struct aws_credentials {
	char *access_key_id;
	char *secret_access_key;
	char *session_token; /* may be NULL */
	int64_t expires_ns;  /* CLOCK_REALTIME ns; 0 = never */
};
void aws_credentials_done(struct aws_credentials *c);
int aws_credentials_copy(const struct aws_credentials *c, struct aws_credentials *ret);

enum aws_credential_source {
	AWS_CREDENTIALS_STATIC,       /* keys from flags or environment */
	AWS_CREDENTIALS_WEB_IDENTITY, /* STS AssumeRoleWithWebIdentity */
	AWS_CREDENTIALS_IMDS,         /* the instance role, IMDSv2 */
};

/* A thread-safe cache of one credential source. Exactly one caller refreshes at a time; while it
 * does, callers holding still-valid credentials keep using them and others wait. */
struct aws_credential_provider {
	enum aws_credential_source source;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool refreshing;
	bool have;
	struct aws_credentials cur;
	char *role_arn;
	char *token_file;
	char *session_name;
	char *sts_url;
	char *imds_url;
	unsigned n_refreshes; /* for tests */
};
/* Pick the source: static keys when both are set, else web identity when AWS_ROLE_ARN and
 * AWS_WEB_IDENTITY_TOKEN_FILE are set, else the instance role. No network I/O. */
int aws_credential_provider_init(struct aws_credential_provider *cp, const struct aws_settings *s,
				 const char *sts_url, const char *imds_url,
				 struct pp_error **reterr);
void aws_credential_provider_done(struct aws_credential_provider *cp);
int aws_credential_provider_get(struct aws_credential_provider *cp, struct aws_credentials *ret,
				struct pp_error **reterr);
/* The service rejected these credentials as expired: refresh on next use (if still current). */
void aws_credential_provider_invalidate(struct aws_credential_provider *cp,
					const char *access_key_id);

/* ---- instance metadata (IMDSv2) ---- */

struct aws_imds {
	const char *endpoint; /* without trailing slash */
	char *token;
	bool failed; /* the token could not be had: skip further lookups */
};
void aws_imds_done(struct aws_imds *m);
/* GET <endpoint>/<path> with a session token (fetched once). *ret is NUL-terminated. */
int aws_imds_get(struct aws_imds *m, const char *path, char **ret, struct pp_error **reterr);
/* The key pair name from the "public-keys/" listing ("0=<name>") or, failing that, the comment
 * of public-keys/0/openssh-key. */
int aws_imds_key_name_parse(const char *listing, const char *openssh_key, char **ret);

/* ---- Query API: form, calls, errors ---- */

struct aws_form {
	struct buf b;
	int err; /* first failure; the form is unusable then */
};
void aws_form_done(struct aws_form *f);
void aws_form_add(struct aws_form *f, const char *name, const char *value);
void aws_form_add_fmt(struct aws_form *f, const char *value, const char *name_fmt, ...)
    _printf_(3, 4);
/* The body as a NUL-terminated string (or NULL after a failure). */
const char *aws_form_body(struct aws_form *f);

struct aws_endpoint {
	char *url;  /* as given, without trailing slash */
	char *host; /* host[:port] as in the URL, sent as Host and signed */
	char *path; /* "/" or the URL's path */
};
int aws_endpoint_parse(const char *url, struct aws_endpoint *ret);
void aws_endpoint_done(struct aws_endpoint *e);

struct aws_query {
	const struct aws_endpoint *endpoint;
	const char *region;
	const char *service; /* "ec2", "sts" */
	const char *action;
	const char *version;
	struct aws_credential_provider *credentials; /* NULL: unsigned (STS web identity) */
};
/* POST Action+Version+params, signing each attempt afresh; retries transport failures, 5xx,
 * 429 and throttling codes with backoff and jitter. On success *ret_body holds the response.
 * On failure reterr carries the HTTP status, the service's code, message and request id. */
int aws_query_call(const struct aws_query *q, const struct aws_form *params, char **ret_body,
		   size_t *ret_len, struct pp_error **reterr);
/* Counts attempts made by aws_query_call since start (tests). */
extern unsigned aws_query_attempts;

/* The error document of EC2 (<Response><Errors><Error>) or STS (<ErrorResponse><Error>). */
struct aws_api_error {
	char *code;
	char *message;
	char *request_id;
};
void aws_api_error_done(struct aws_api_error *e);
int aws_api_error_parse(const char *body, size_t len, struct aws_api_error *ret);
bool aws_error_code_is_throttle(const char *code);

/* ---- response parsers (bounded; -EBADMSG for anything malformed) ---- */

struct ec2_instance {
	char *id;
	char *state; /* pending, running, ... */
	char *private_ip;
	char *public_ip;
	char *name; /* tag Name */
	char *sandbox_id;
	char *node_name;
};
void ec2_instance_done(struct ec2_instance *i);
void ec2_instances_free(struct ec2_instance *v, size_t n);
/* RunInstancesResponse or DescribeInstancesResponse; *ret_next_token may be NULL. */
int ec2_instances_parse(const char *body, size_t len, struct ec2_instance **ret, size_t *ret_n,
			char **ret_next_token);
int ec2_instance_types_parse(const char *body, size_t len, struct instance_type_spec **ret,
			     size_t *ret_n, char **ret_next_token);
void ec2_instance_types_free(struct instance_type_spec *v, size_t n);

struct ec2_image {
	char *root_device_name;
	uint64_t root_snapshot_gib; /* 0 when unknown */
};
void ec2_image_done(struct ec2_image *i);
/* The image with this id in a DescribeImagesResponse; -ENOENT when absent. */
int ec2_image_parse(const char *body, size_t len, const char *image_id, struct ec2_image *ret);
/* AssumeRoleWithWebIdentityResponse's Credentials. */
int sts_credentials_parse(const char *body, size_t len, struct aws_credentials *ret);
/* The IMDS security-credentials JSON document. */
int imds_credentials_parse(const char *body, size_t len, struct aws_credentials *ret);
/* ISO 8601 UTC "YYYY-MM-DDTHH:MM:SS[.fff]Z" to CLOCK_REALTIME ns. */
int aws_time_parse(const char *s, int64_t *ret_ns);

/* ---- the RunInstances request (pure, for tests) ---- */

struct aws_run_params {
	const struct aws_settings *settings;
	const char *image_id;
	const char *instance_type;
	const char *subnet_id;
	char *const *security_group_ids;
	const char *key_name;
	const char *root_device_name; /* NULL: no block device mapping */
	uint64_t volume_size_gib;
	const char *client_token;
};
int aws_run_instances_form(const struct aws_run_params *rp,
			   const struct provider_instance_spec *spec, struct aws_form *f,
			   struct pp_error **reterr);
/* The idempotency token of a sandbox: 64 hex characters (EC2's maximum length). */
int aws_client_token(const char *sandbox_id, char ret[65]);

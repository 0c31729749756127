/* providers/azure internals shared by its files and its unit tests and fuzz target: the pure
 * ARM/token response parsers and VM body builder, the token cache and the ARM client. */
#pragma once

#include <jansson.h>

#include "azure/azure.h"
#include "http/http.h"
#include "instance-type.h"

#define AZURE_COMPUTE_API_VERSION "2022-08-01"
#define AZURE_NETWORK_API_VERSION "2022-07-01"
#define AZURE_RESOURCES_API_VERSION "2021-04-01"
#define AZURE_GALLERY_API_VERSION "2022-03-03"
/* networkProfile.networkApiVersion: the only value compute 2022-08-01 accepts */
#define AZURE_VM_NETWORK_API_VERSION "2020-11-01"
#define AZURE_USER_DATA_MAX_BYTES 65536u
#define AZURE_TOKEN_MAX_BYTES 16384u

/* ---- arm-parse.c: no I/O ---- */

/* An error body: ARM {"error":{"code","message","details"}}, the bare {"code","message"}, or
 * OAuth {"error":"x","error_description":"..."}. Texts are bounded and made printable.
 * -EBADMSG when the body is none of these. */
int arm_error_parse(const char *body, size_t len, char **ret_code, char **ret_message);

enum arm_lro_state {
	ARM_LRO_RUNNING,
	ARM_LRO_SUCCEEDED,
	ARM_LRO_FAILED,
	ARM_LRO_CANCELED,
};
/* An Azure-AsyncOperation status body {"status":..., "error":{...}}; on Failed/Canceled the
 * error code and message, when given, are returned (else NULL). */
int arm_lro_status_parse(const char *body, size_t len, enum arm_lro_state *ret, char **ret_code,
			 char **ret_message);
/* properties.provisioningState of a resource body (missing: succeeded, as ARM says). */
int arm_provisioning_state_parse(const char *body, size_t len, enum arm_lro_state *ret);

struct azure_token {
	char *access_token; /* wiped on done */
	int64_t lifetime_ns;
	int64_t refresh_in_ns; /* 0 when the service gave no hint */
};
void azure_token_done(struct azure_token *t);
/* A token response of Entra ID (expires_in number) or IMDS (expires_in/expires_on strings). */
int azure_token_parse(const char *body, size_t len, int64_t now_realtime_ns,
		      struct azure_token *ret);

/* GET .../locations/{region}/vmSizes: {"value":[{"name","numberOfCores","memoryInMB"}]}. */
int arm_vm_sizes_parse(const char *body, size_t len, struct instance_type_spec **ret,
		       size_t *ret_n);
void arm_vm_sizes_free(struct instance_type_spec *v, size_t n);
/* One page of a VM list: the VMs tagged peerpod-sandbox-id and not being deleted, and the
 * nextLink (NULL on the last page). */
int arm_vm_list_parse(const char *body, size_t len, struct provider_instance **ret, size_t *ret_n,
		      char **ret_next_link);
/* A VM: its id and the id of its first network interface. */
int arm_vm_parse(const char *body, size_t len, char **ret_id, char **ret_nic_id);
/* A NIC: the first IP configuration's private address and public IP resource id (either may be
 * NULL when not (yet) there). */
int arm_nic_parse(const char *body, size_t len, char **ret_private_ip, char **ret_public_ip_id);
/* A public IP address resource: properties.ipAddress, NULL until assigned. */
int arm_public_ip_parse(const char *body, size_t len, char **ret_ip);

/* ---- vm-body.c: no I/O ---- */

enum azure_image_kind {
	AZURE_IMAGE_ID,        /* /subscriptions/... (managed image or gallery version) */
	AZURE_IMAGE_COMMUNITY, /* /CommunityGalleries/... */
	AZURE_IMAGE_SHARED,    /* /SharedGalleries/... */
};
int azure_image_kind(const char *image, enum azure_image_kind *ret);

struct azure_vm_params {
	const struct azure_settings *s;
	const char *name;
	const char *vm_size;
	const char *image;
	const char *ssh_public_key; /* OpenSSH one-line form */
	const char *user_data;      /* cloud-config text, base64-encoded here */
	const char *sandbox_id;
	const char *node_name;
	const char *pod_name;
	const char *pod_namespace;
};
/* The PUT virtualMachines body. -EINVAL/-EMSGSIZE with *ret_msg for a bad image or user data
 * over AZURE_USER_DATA_MAX_BYTES once encoded. */
int azure_vm_body(const struct azure_vm_params *p, char **ret_json, char **ret_msg);
/* Resource ids and names that go into URL paths: a conservative character set. */
bool azure_path_valid(const char *s);

/* ---- sshkey.c ---- */

/* A fresh RSA key pair whose private half is dropped at once (nobody can log in): the public
 * key in OpenSSH "ssh-rsa AAAA..." form. */
int azure_ssh_key_generate(char **ret);
/* The first key line of an OpenSSH public key file. */
int azure_ssh_key_read(const char *path, char **ret, char **ret_msg);

/* ---- auth.c ---- */

/* What the outside world looks like to the provider; tests replace the clock and sleep. */
struct azure_hooks {
	int64_t (*now_ns)(void *userdata);
	void (*sleep_ns)(void *userdata, int64_t ns);
	void *userdata;
};

enum azure_auth_mode {
	AZURE_AUTH_CLIENT_SECRET,
	AZURE_AUTH_WORKLOAD_IDENTITY,
	AZURE_AUTH_MANAGED_IDENTITY,
};
enum azure_auth_mode azure_auth_mode_of(const struct azure_settings *s);
const char *azure_auth_mode_name(enum azure_auth_mode m);

struct azure_auth;
/* audience: the resource manager's, e.g. "https://management.azure.com". */
int azure_auth_new(const struct azure_settings *s, const char *audience,
		   const struct azure_hooks *hooks, struct azure_auth **ret);
void azure_auth_free(struct azure_auth *a);
/* A valid access token (a copy: release with free_secret). Thread-safe; one request at a time
 * reaches the token endpoint, the others wait for its result. */
int azure_auth_token(struct azure_auth *a, char **ret, struct pp_error **reterr);
/* Forget the cached token if it is still `token` (ARM said 401). */
void azure_auth_invalidate(struct azure_auth *a, const char *token);
/* Token requests sent so far (for tests). */
unsigned azure_auth_requests(struct azure_auth *a);

/* ---- arm.c ---- */

struct arm_client {
	char *base; /* resource manager endpoint without the final '/' */
	struct azure_auth *auth;
	const struct azure_hooks *hooks;
	int64_t operation_timeout_ns;
};

/* base + path + "?api-version=" (or "&" when path has a query). */
char *arm_url(const struct arm_client *c, const char *path, const char *api_version);
/* One authenticated ARM request, with retries on 429/5xx. A non-2xx status fails with reterr
 * holding the HTTP status, ARM error code and message, and x-ms-request-id; *ret is filled
 * whenever a response came. Only URLs on the resource manager's origin are accepted. */
int arm_call(struct arm_client *c, const char *method, const char *url, const char *body,
	     struct http_response *ret, struct pp_error **reterr);
/* Follow a long-running operation started by `first` (the PUT or DELETE response) until it
 * ends or deadline_ns (hooks clock) passes. is_delete: a 404 means done. */
int arm_lro_wait(struct arm_client *c, const struct http_response *first, const char *resource_url,
		 bool is_delete, int64_t deadline_ns, struct pp_error **reterr);
/* DELETE and wait; a missing resource is success. */
int arm_delete(struct arm_client *c, const char *resource_url, int64_t deadline_ns,
	       struct pp_error **reterr);
int64_t arm_now(const struct arm_client *c);
void arm_sleep(const struct arm_client *c, int64_t ns);

/* ---- azure.c ---- */

/* init with replaced hooks (tests); ops.init passes NULL. */
int azure_init_with_hooks(const void *settings, const struct provider_context *ctx,
			  const struct azure_hooks *hooks, struct provider **ret,
			  struct pp_error **reterr);
struct azure_auth *azure_provider_auth(struct provider *p);

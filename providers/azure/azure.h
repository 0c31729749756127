/* providers/azure: pod VMs as Azure virtual machines through the ARM REST API (lib/http), with
 * client-secret, workload-identity or managed-identity tokens. The settings are the options of
 * WIRE.md 8.3 plus the endpoints and the long-running operation timeout. */
#pragma once

#include "provider.h"

struct azure_settings {
	char *client_id;     /* secret */
	char *client_secret; /* secret; empty: workload identity, else managed identity */
	char *tenant_id;     /* secret */
	char *subscription_id;
	char *region;
	char *resource_group;
	char *instance_size;
	char **instance_sizes;
	char *subnet_id;
	char *nsg_id;
	char *image_id;
	char *ssh_key_path;
	char *ssh_username;
	bool disable_cvm;
	bool enable_secure_boot;
	bool use_public_ip;
	uint64_t root_volume_size_gib;
	char **tags; /* "k=v" items */
	char *zone;
	/* environment only */
	char *authority_host;
	char *resource_manager_endpoint;
	char *imds_endpoint;
	char *federated_token_file;
	int64_t operation_timeout_ns;
};

extern const struct provider_ops azure_provider_ops;

/* CLOUD_CONFIG_VERIFY: check with Azure that a token can be obtained and that the resource
 * group, the subnet and the image (unless a gallery image) exist. init calls it when
 * ctx->cloud_config_verify is set. */
int azure_verify_cloud(struct provider *p, struct pp_error **reterr);

/* The confidential technology a VM size provides: "AMD SEV-SNP", "Intel TDX", or NULL when the
 * size name does not say (e.g. a non-confidential size). */
const char *azure_size_tee(const char *vm_size);

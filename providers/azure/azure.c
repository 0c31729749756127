/* providers/azure: the provider vtable. One pod VM = one Azure VM whose OS disk, NIC and public
 * IP are created inline and deleted with it (deleteOption Delete), so deleting the VM by its ARM
 * id removes everything; the project's tags let the leak sweep find our VMs. */
#include <strings.h>

#include "azure/azure-internal.h"

#define IP_POLL_NS (2 * NSEC_PER_SEC)
#define LIST_MAX_PAGES 1000
#define OS_DISK_MAX_GIB 4095

#define OFF(m) offsetof(struct azure_settings, m)
static const struct config_option azure_options[] = {
    {"clientid", "AZURE_CLIENT_ID", CONFIG_SECRET, NULL, OFF(client_id),
     "client id of the service principal, workload or user-assigned managed identity", NULL},
    {"secret", "AZURE_CLIENT_SECRET", CONFIG_SECRET, NULL, OFF(client_secret),
     "client secret (empty: workload identity with AZURE_FEDERATED_TOKEN_FILE, else the "
     "managed identity)",
     NULL},
    {"tenantid", "AZURE_TENANT_ID", CONFIG_SECRET, NULL, OFF(tenant_id), "tenant id", NULL},
    {"subscriptionid", "AZURE_SUBSCRIPTION_ID", CONFIG_STRING, NULL, OFF(subscription_id),
     "subscription id (required)", NULL},
    {"region", "AZURE_REGION", CONFIG_STRING, NULL, OFF(region), "region (required)", NULL},
    {"resourcegroup", "AZURE_RESOURCE_GROUP", CONFIG_STRING, NULL, OFF(resource_group),
     "resource group of the pod VMs (required)", NULL},
    {"instance-size", "AZURE_INSTANCE_SIZE", CONFIG_STRING, "Standard_DC2as_v5", OFF(instance_size),
     "default VM size", NULL},
    {"instance-sizes", "AZURE_INSTANCE_SIZES", CONFIG_LIST, NULL, OFF(instance_sizes),
     "VM sizes pods may ask for (comma-separated)", NULL},
    {"subnetid", "AZURE_SUBNET_ID", CONFIG_STRING, NULL, OFF(subnet_id),
     "subnet resource id of the pod VMs (required)", NULL},
    {"securitygroupid", "AZURE_NSG_ID", CONFIG_STRING, NULL, OFF(nsg_id),
     "network security group resource id of the pod VMs' NICs", NULL},
    {"imageid", "AZURE_IMAGE_ID", CONFIG_STRING, NULL, OFF(image_id),
     "pod VM image: resource id, /CommunityGalleries/... or /SharedGalleries/... (required)", NULL},
    {"ssh-key-path", NULL, CONFIG_STRING, NULL, OFF(ssh_key_path),
     "OpenSSH public key for the VMs (empty: a throwaway key)", NULL},
    {"ssh-username", "SSH_USERNAME", CONFIG_STRING, "peerpod", OFF(ssh_username),
     "admin user name of the VMs", NULL},
    {"disable-cvm", "DISABLECVM", CONFIG_BOOL, "false", OFF(disable_cvm),
     "create plain (non-confidential) VMs", NULL},
    {"enable-secure-boot", "ENABLE_SECURE_BOOT", CONFIG_BOOL, "false", OFF(enable_secure_boot),
     "UEFI secure boot on confidential VMs", NULL},
    {"use-public-ip", "USE_PUBLIC_IP", CONFIG_BOOL, "false", OFF(use_public_ip),
     "give each VM a public IP and reach it there", NULL},
    {"root-volume-size", "ROOT_VOLUME_SIZE", CONFIG_UINT, "0", OFF(root_volume_size_gib),
     "OS disk size in GiB (0: the image's)", NULL},
    {"tags", "TAGS", CONFIG_LIST, NULL, OFF(tags), "extra VM tags, key=value,key=value", NULL},
    {"zone", NULL, CONFIG_STRING, NULL, OFF(zone), "availability zone of the VMs", NULL},
    {NULL, "AZURE_AUTHORITY_HOST", CONFIG_STRING, "https://login.microsoftonline.com/",
     OFF(authority_host), "Entra ID authority", NULL},
    {NULL, "AZURE_RESOURCE_MANAGER_ENDPOINT", CONFIG_STRING, "https://management.azure.com/",
     OFF(resource_manager_endpoint), "Azure Resource Manager endpoint (also the token audience)",
     NULL},
    {NULL, "AZURE_IMDS_ENDPOINT", CONFIG_STRING, "http://169.254.169.254", OFF(imds_endpoint),
     "instance metadata service, for the managed identity", NULL},
    {NULL, "AZURE_FEDERATED_TOKEN_FILE", CONFIG_STRING, NULL, OFF(federated_token_file),
     "workload identity token file (used when there is no client secret)", NULL},
    {"azure-operation-timeout", "AZURE_OPERATION_TIMEOUT", CONFIG_DURATION, "10m",
     OFF(operation_timeout_ns), "how long to wait for a VM creation or deletion", NULL},
};
#undef OFF

struct provider {
	const struct azure_settings *s;
	struct azure_hooks hooks;
	struct arm_client arm;
	char *ssh_key;
	struct instance_type_catalog catalog;
};

/* ---- checks ---- */

static bool name_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > 64 || s[0] == '-' || s[0] == '.')
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-'))
			return false;
	return true;
}

static bool chars_in(const char *s, const char *extra)
{
	for (; s && *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr(extra, *s)))
			return false;
	return true;
}

static bool id_has(const char *id, const char *prefix, const char *part)
{
	return id && strncasecmp(id, prefix, strlen(prefix)) == 0 && strcasestr(id, part);
}

static bool vm_id_valid(const char *id)
{
	return azure_path_valid(id) &&
	       id_has(id, "/subscriptions/", "/providers/Microsoft.Compute/virtualMachines/");
}

static bool url_valid(const char *s)
{
	return str_startswith(s, "https://") || str_startswith(s, "http://");
}

static int azure_verify_config(const void *settings, struct pp_error **reterr)
{
	const struct azure_settings *s = settings;
	static const struct {
		size_t offset;
		const char *what;
	} required[] = {
	    {offsetof(struct azure_settings, subscription_id),
	     "-subscriptionid (AZURE_SUBSCRIPTION_ID)"},
	    {offsetof(struct azure_settings, region), "-region (AZURE_REGION)"},
	    {offsetof(struct azure_settings, resource_group),
	     "-resourcegroup (AZURE_RESOURCE_GROUP)"},
	    {offsetof(struct azure_settings, subnet_id), "-subnetid (AZURE_SUBNET_ID)"},
	    {offsetof(struct azure_settings, image_id), "-imageid (AZURE_IMAGE_ID)"},
	    {offsetof(struct azure_settings, instance_size),
	     "-instance-size (AZURE_INSTANCE_SIZE)"},
	    {offsetof(struct azure_settings, ssh_username), "-ssh-username (SSH_USERNAME)"},
	};
	for (size_t i = 0; i < ELEMENTSOF(required); i++)
		if (str_empty(*(char *const *)((const char *)s + required[i].offset)))
			return pp_error_set(reterr, EINVAL, "%s is required", required[i].what);
	if (!chars_in(s->subscription_id, "-") || strlen(s->subscription_id) > 64)
		return pp_error_set(reterr, EINVAL,
				    "-subscriptionid (AZURE_SUBSCRIPTION_ID) \"%s\" is not a "
				    "subscription id",
				    s->subscription_id);
	if (!chars_in(s->region, "") || strlen(s->region) > 64)
		return pp_error_set(reterr, EINVAL,
				    "-region (AZURE_REGION) \"%s\" is not a region name (e.g. "
				    "eastus)",
				    s->region);
	if (!chars_in(s->resource_group, "-_.()") || strlen(s->resource_group) > 90)
		return pp_error_set(
		    reterr, EINVAL,
		    "-resourcegroup (AZURE_RESOURCE_GROUP) \"%s\" is not a resource "
		    "group name",
		    s->resource_group);
	if (!azure_path_valid(s->subnet_id) ||
	    !id_has(s->subnet_id, "/subscriptions/",
		    "/providers/Microsoft.Network/virtualNetworks/") ||
	    !strcasestr(s->subnet_id, "/subnets/"))
		return pp_error_set(reterr, EINVAL,
				    "-subnetid (AZURE_SUBNET_ID) \"%s\" is not a subnet id "
				    "(/subscriptions/.../providers/Microsoft.Network/"
				    "virtualNetworks/VNET/subnets/SUBNET)",
				    s->subnet_id);
	if (!str_empty(s->nsg_id) &&
	    (!azure_path_valid(s->nsg_id) ||
	     !id_has(s->nsg_id, "/subscriptions/",
		     "/providers/Microsoft.Network/networkSecurityGroups/")))
		return pp_error_set(reterr, EINVAL,
				    "-securitygroupid (AZURE_NSG_ID) \"%s\" is not a network "
				    "security group id",
				    s->nsg_id);
	enum azure_image_kind kind;
	if (azure_image_kind(s->image_id, &kind) < 0)
		return pp_error_set(
		    reterr, EINVAL,
		    "-imageid (AZURE_IMAGE_ID) \"%s\" is neither a resource id "
		    "(/subscriptions/...) nor a community (/CommunityGalleries/...) "
		    "or shared (/SharedGalleries/...) gallery image id",
		    s->image_id);
	if (!chars_in(s->instance_size, "_-"))
		return pp_error_set(reterr, EINVAL,
				    "-instance-size (AZURE_INSTANCE_SIZE) \"%s\" is not a VM size",
				    s->instance_size);
	for (char *const *t = s->instance_sizes; t && *t; t++)
		if (!chars_in(*t, "_-"))
			return pp_error_set(
			    reterr, EINVAL,
			    "-instance-sizes (AZURE_INSTANCE_SIZES): \"%s\" is not a "
			    "VM size",
			    *t);
	if (!chars_in(s->ssh_username, "_-") || strlen(s->ssh_username) > 32 ||
	    s->ssh_username[0] == '-' || str_eq(s->ssh_username, "root"))
		return pp_error_set(reterr, EINVAL,
				    "-ssh-username (SSH_USERNAME) \"%s\" is not a valid admin user "
				    "name",
				    s->ssh_username);
	if (!str_empty(s->zone) && (!chars_in(s->zone, "") || strlen(s->zone) > 8))
		return pp_error_set(reterr, EINVAL, "-zone \"%s\" is not an availability zone",
				    s->zone);
	if (s->root_volume_size_gib > OS_DISK_MAX_GIB)
		return pp_error_set(reterr, EINVAL,
				    "-root-volume-size (ROOT_VOLUME_SIZE) %llu is above Azure's "
				    "%u GiB OS disk limit",
				    (unsigned long long)s->root_volume_size_gib, OS_DISK_MAX_GIB);
	for (char *const *t = s->tags; t && *t; t++) {
		const char *eq = strchr(*t, '=');
		if (!eq || eq == *t)
			return pp_error_set(reterr, EINVAL, "-tags (TAGS): \"%s\" is not key=value",
					    *t);
	}
	if (s->operation_timeout_ns <= 0)
		return pp_error_set(reterr, EINVAL,
				    "-azure-operation-timeout (AZURE_OPERATION_TIMEOUT) must be "
				    "positive");
	const char *const endpoints[][2] = {
	    {s->authority_host, "AZURE_AUTHORITY_HOST"},
	    {s->resource_manager_endpoint, "AZURE_RESOURCE_MANAGER_ENDPOINT"},
	    {s->imds_endpoint, "AZURE_IMDS_ENDPOINT"},
	};
	for (size_t i = 0; i < ELEMENTSOF(endpoints); i++)
		if (!str_empty(endpoints[i][0]) && !url_valid(endpoints[i][0]))
			return pp_error_set(reterr, EINVAL, "%s \"%s\" is not an http(s) URL",
					    endpoints[i][1], endpoints[i][0]);
	enum azure_auth_mode mode = azure_auth_mode_of(s);
	if (mode != AZURE_AUTH_MANAGED_IDENTITY) {
		const char *how = mode == AZURE_AUTH_CLIENT_SECRET
				      ? "a client secret (-secret, AZURE_CLIENT_SECRET)"
				      : "workload identity (AZURE_FEDERATED_TOKEN_FILE)";
		if (str_empty(s->client_id))
			return pp_error_set(reterr, EINVAL,
					    "-clientid (AZURE_CLIENT_ID) is required with %s", how);
		if (str_empty(s->tenant_id))
			return pp_error_set(reterr, EINVAL,
					    "-tenantid (AZURE_TENANT_ID) is required with %s", how);
		if (!chars_in(s->tenant_id, "-.") || strlen(s->tenant_id) > 128)
			return pp_error_set(reterr, EINVAL,
					    "-tenantid (AZURE_TENANT_ID) is not a tenant id or "
					    "domain");
	}
	return 0;
}

/* ---- helpers ---- */

static char *vm_path(const struct provider *p, const char *name)
{
	return str_printf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/"
			  "virtualMachines/%s",
			  p->s->subscription_id, p->s->resource_group, name);
}

static int64_t deadline(const struct provider *p)
{
	return arm_now(&p->arm) + p->s->operation_timeout_ns;
}

/* GET a resource by id with the given api-version. */
static int get_resource(struct provider *p, const char *id, const char *api_version,
			struct http_response *ret, struct pp_error **reterr)
{
	_cleanup_free_ char *url = arm_url(&p->arm, id, api_version);
	if (!url)
		return pp_error_set(reterr, ENOMEM, "out of memory");
	return arm_call(&p->arm, "GET", url, NULL, ret, reterr);
}

/* ---- create ---- */

/* The VM's id and addresses once it runs: VM -> NIC -> (public IP). The NIC may show its
 * address, and a public IP its ipAddress, a little after the VM is ready. */
static int read_addresses(struct provider *p, const char *vm_url, int64_t until, char **ret_id,
			  struct provider_instance *ret, struct pp_error **reterr)
{
	_cleanup_(http_response_donep) struct http_response vm = {0};
	int r = arm_call(&p->arm, "GET", vm_url, NULL, &vm, reterr);
	if (r < 0)
		return (void)pp_error_prefix(reterr, "reading the VM"), r;
	_cleanup_free_ char *id = NULL, *nic_id = NULL;
	r = arm_vm_parse(vm.body, vm.body_len, &id, &nic_id);
	if (r < 0 || !nic_id || !azure_path_valid(nic_id) ||
	    strncasecmp(nic_id, "/subscriptions/", strlen("/subscriptions/")) != 0)
		return pp_error_set(reterr, r == -ENOMEM ? ENOMEM : EBADMSG,
				    "reading the VM: no network interface id in its "
				    "networkProfile");
	for (;;) {
		_cleanup_(http_response_donep) struct http_response nic = {0};
		r = get_resource(p, nic_id, AZURE_NETWORK_API_VERSION, &nic, reterr);
		if (r < 0)
			return (void)pp_error_prefix(reterr, "reading network interface %s",
						     nic_id),
			       r;
		_cleanup_free_ char *priv = NULL, *pub_id = NULL, *pub = NULL;
		r = arm_nic_parse(nic.body, nic.body_len, &priv, &pub_id);
		if (r < 0)
			return pp_error_set(reterr, r == -ENOMEM ? ENOMEM : EBADMSG,
					    "reading network interface %s: unexpected answer",
					    nic_id);
		if (pub_id && p->s->use_public_ip) {
			if (!azure_path_valid(pub_id))
				return pp_error_set(reterr, EBADMSG,
						    "network interface %s: bad public IP id",
						    nic_id);
			_cleanup_(http_response_donep) struct http_response pip = {0};
			r = get_resource(p, pub_id, AZURE_NETWORK_API_VERSION, &pip, reterr);
			if (r < 0)
				return (void)pp_error_prefix(reterr, "reading public IP address %s",
							     pub_id),
				       r;
			r = arm_public_ip_parse(pip.body, pip.body_len, &pub);
			if (r < 0)
				return pp_error_set(reterr, r == -ENOMEM ? ENOMEM : EBADMSG,
						    "reading public IP address %s: unexpected "
						    "answer",
						    pub_id);
		}
		if (priv && (!p->s->use_public_ip || pub)) {
			if (pub) {
				ret->ips[0] = TAKE_PTR(pub);
				ret->ips[1] = TAKE_PTR(priv);
				ret->n_ips = 2;
			} else {
				ret->ips[0] = TAKE_PTR(priv);
				ret->n_ips = 1;
			}
			*ret_id = TAKE_PTR(id);
			return 0;
		}
		int64_t t = arm_now(&p->arm);
		if (t >= until)
			return pp_error_set(reterr, ETIMEDOUT,
					    "network interface %s got no %s address before the "
					    "deadline",
					    nic_id, priv ? "public IP" : "private IP");
		arm_sleep(&p->arm, MIN(IP_POLL_NS, until - t));
	}
}

/* Delete what a failed creation left; the original error stays, with a note if this fails. */
static void cleanup_vm(struct provider *p, const char *vm_url, struct pp_error **reterr)
{
	struct pp_error *err = NULL;
	int r = arm_delete(&p->arm, vm_url, deadline(p), &err);
	if (r < 0 && reterr && *reterr) {
		char *m =
		    str_printf("%s (and deleting the VM failed too, it may be left behind: %s)",
			       (*reterr)->message, pp_error_message(err, r));
		if (m) {
			free((*reterr)->message);
			(*reterr)->message = m;
		}
	}
	pp_error_free(err);
}

static int create_steps(struct provider *p, const struct provider_instance_spec *spec,
			const char *size, const char *vm_url, struct provider_instance *ret,
			struct pp_error **reterr)
{
	const struct azure_settings *s = p->s;
	struct azure_vm_params params = {
	    .s = s,
	    .name = spec->instance_name,
	    .vm_size = size,
	    .image = !str_empty(spec->image) ? spec->image : s->image_id,
	    .ssh_public_key = p->ssh_key,
	    .user_data = spec->user_data,
	    .sandbox_id = spec->sandbox_id,
	    .node_name = spec->node_name,
	    .pod_name = spec->pod_name,
	    .pod_namespace = spec->pod_namespace,
	};
	_cleanup_free_ char *body = NULL, *msg = NULL;
	int r = azure_vm_body(&params, &body, &msg);
	if (r < 0)
		return pp_error_set(reterr, r, "%s", msg ?: strerror(-r));

	int64_t until = deadline(p);
	_cleanup_(http_response_donep) struct http_response put = {0};
	r = arm_call(&p->arm, "PUT", vm_url, body, &put, reterr);
	if (r < 0) {
		/* no answer or a server error: the VM may exist all the same */
		if (put.status == 0 || put.status >= 500)
			cleanup_vm(p, vm_url, reterr);
		return r;
	}
	_cleanup_free_ char *id = NULL;
	r = arm_lro_wait(&p->arm, &put, vm_url, false, until, reterr);
	if (r >= 0)
		r = read_addresses(p, vm_url, until, &id, ret, reterr);
	if (r < 0) {
		provider_instance_done(ret);
		cleanup_vm(p, vm_url, reterr);
		return r;
	}
	_cleanup_free_ char *path = vm_path(p, spec->instance_name);
	ret->id = vm_id_valid(id) ? TAKE_PTR(id) : TAKE_PTR(path);
	ret->name = strdup(spec->instance_name);
	ret->sandbox_id = str_dup(spec->sandbox_id);
	ret->node_name = strdup(spec->node_name ?: "");
	if (!ret->id || !ret->name || !ret->node_name || (spec->sandbox_id && !ret->sandbox_id)) {
		provider_instance_done(ret);
		cleanup_vm(p, vm_url, reterr);
		return pp_error_set(reterr, ENOMEM, "out of memory");
	}
	return 0;
}

static int azure_create_instance(struct provider *p, const struct provider_instance_spec *spec,
				 struct provider_instance *ret, struct pp_error **reterr)
{
	if (!name_valid(spec->instance_name))
		return pp_error_set(reterr, EINVAL, "invalid Azure VM name \"%s\"",
				    spec->instance_name ?: "");
	_cleanup_free_ char *size = NULL, *msg = NULL;
	int r = instance_type_select(&p->catalog, spec->machine_type, spec->vcpus, spec->memory_mib,
				     spec->gpus, &size, &msg);
	if (r < 0)
		return pp_error_set(reterr, r, "%s", msg ?: strerror(-r));
	_cleanup_free_ char *path = vm_path(p, spec->instance_name);
	_cleanup_free_ char *url = path ? arm_url(&p->arm, path, AZURE_COMPUTE_API_VERSION) : NULL;
	if (!url)
		return pp_error_set(reterr, ENOMEM, "out of memory");
	*ret = (struct provider_instance){0};
	r = create_steps(p, spec, size, url, ret, reterr);
	if (r < 0) {
		/* the TEE is said here, not logged: libraries do not log */
		const char *tee = p->s->disable_cvm ? "not confidential" : azure_size_tee(size);
		pp_error_prefix(reterr, "creating Azure VM %s (size %s%s%s)", spec->instance_name,
				size, tee ? ", " : "", tee ?: "");
	}
	return r;
}

/* ---- delete, list ---- */

static int azure_delete_instance(struct provider *p, const char *instance_id,
				 struct pp_error **reterr)
{
	if (!vm_id_valid(instance_id))
		return pp_error_set(reterr, EINVAL, "invalid Azure VM id \"%s\"",
				    instance_id ?: "");
	_cleanup_free_ char *url = arm_url(&p->arm, instance_id, AZURE_COMPUTE_API_VERSION);
	if (!url)
		return pp_error_set(reterr, ENOMEM, "out of memory");
	int r = arm_delete(&p->arm, url, deadline(p), reterr);
	if (r < 0)
		pp_error_prefix(reterr, "deleting Azure VM %s", instance_id);
	return r;
}

static int azure_list_instances(struct provider *p, struct provider_instance **ret, size_t *ret_n,
				struct pp_error **reterr)
{
	_cleanup_free_ char *path =
	    str_printf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/"
		       "virtualMachines",
		       p->s->subscription_id, p->s->resource_group);
	char *url = path ? arm_url(&p->arm, path, AZURE_COMPUTE_API_VERSION) : NULL;
	if (!url)
		return pp_error_set(reterr, ENOMEM, "out of memory");
	struct provider_instance *all = NULL;
	size_t n_all = 0;
	int r = 0;
	for (unsigned page = 0; url; page++) {
		if (page >= LIST_MAX_PAGES) {
			r = pp_error_set(reterr, ELOOP, "more than %d pages of VMs",
					 LIST_MAX_PAGES);
			break;
		}
		_cleanup_(http_response_donep) struct http_response resp = {0};
		r = arm_call(&p->arm, "GET", url, NULL, &resp, reterr);
		url = mfree(url);
		if (r < 0)
			break;
		struct provider_instance *v = NULL;
		size_t n = 0;
		r = arm_vm_list_parse(resp.body, resp.body_len, &v, &n, &url);
		if (r < 0) {
			r = pp_error_set(reterr, r == -ENOMEM ? ENOMEM : EBADMSG,
					 "unexpected answer to the VM list");
			break;
		}
		struct provider_instance *grown =
		    n ? realloc(all, (n_all + n) * sizeof(*all)) : all;
		if (n && !grown) {
			provider_instances_free(v, n);
			r = pp_error_set(reterr, ENOMEM, "out of memory");
			break;
		}
		all = grown;
		if (n)
			memcpy(all + n_all, v, n * sizeof(*v));
		n_all += n;
		free(v);
	}
	free(url);
	if (r < 0) {
		provider_instances_free(all, n_all);
		pp_error_prefix(reterr, "listing Azure VMs in resource group %s",
				p->s->resource_group);
		return r;
	}
	*ret = all;
	*ret_n = n_all;
	return 0;
}

/* ---- setup ---- */

int azure_verify_cloud(struct provider *p, struct pp_error **reterr)
{
	const struct azure_settings *s = p->s;
	_cleanup_secret_ char *token = NULL;
	int r = azure_auth_token(p->arm.auth, &token, reterr);
	if (r < 0)
		return (void)pp_error_prefix(reterr,
					     "CLOUD_CONFIG_VERIFY: cannot get an access token (%s)",
					     azure_auth_mode_name(azure_auth_mode_of(s))),
		       r;
	_cleanup_free_ char *rg = str_printf("/subscriptions/%s/resourcegroups/%s",
					     s->subscription_id, s->resource_group);
	if (!rg)
		return pp_error_set(reterr, ENOMEM, "out of memory");
	enum azure_image_kind kind = AZURE_IMAGE_ID;
	(void)azure_image_kind(s->image_id, &kind);
	const struct {
		const char *id, *api, *what;
	} checks[] = {
	    {rg, AZURE_RESOURCES_API_VERSION, "resource group"},
	    {s->subnet_id, AZURE_NETWORK_API_VERSION, "subnet"},
	    {s->nsg_id, AZURE_NETWORK_API_VERSION, "network security group"},
	    {kind == AZURE_IMAGE_ID ? s->image_id : NULL,
	     strcasestr(s->image_id, "/galleries/") ? AZURE_GALLERY_API_VERSION
						    : AZURE_COMPUTE_API_VERSION,
	     "image"},
	};
	for (size_t i = 0; i < ELEMENTSOF(checks); i++) {
		if (str_empty(checks[i].id))
			continue;
		_cleanup_(http_response_donep) struct http_response resp = {0};
		r = get_resource(p, checks[i].id, checks[i].api, &resp, reterr);
		if (r < 0)
			return (void)pp_error_prefix(reterr, "CLOUD_CONFIG_VERIFY: %s %s",
						     checks[i].what, checks[i].id),
			       r;
	}
	return 0;
}

static void azure_done(struct provider *p)
{
	if (!p)
		return;
	azure_auth_free(p->arm.auth);
	free(p->arm.base);
	free(p->ssh_key);
	instance_type_catalog_done(&p->catalog);
	free(p);
}

static int load_catalog(struct provider *p, struct pp_error **reterr)
{
	const struct azure_settings *s = p->s;
	_cleanup_free_ char *path =
	    str_printf("/subscriptions/%s/providers/Microsoft.Compute/locations/%s/vmSizes",
		       s->subscription_id, s->region);
	_cleanup_free_ char *url = path ? arm_url(&p->arm, path, AZURE_COMPUTE_API_VERSION) : NULL;
	if (!url)
		return pp_error_set(reterr, ENOMEM, "out of memory");
	_cleanup_(http_response_donep) struct http_response resp = {0};
	int r = arm_call(&p->arm, "GET", url, NULL, &resp, reterr);
	if (r < 0)
		return (void)pp_error_prefix(reterr, "listing the VM sizes of region %s",
					     s->region),
		       r;
	struct instance_type_spec *known = NULL;
	size_t n = 0;
	r = arm_vm_sizes_parse(resp.body, resp.body_len, &known, &n);
	if (r < 0)
		return pp_error_set(reterr, r == -ENOMEM ? ENOMEM : EBADMSG,
				    "listing the VM sizes of region %s: unexpected answer",
				    s->region);
	_cleanup_free_ char *msg = NULL;
	r = instance_type_catalog_init(&p->catalog, s->instance_size, s->instance_sizes, known, n,
				       &msg);
	arm_vm_sizes_free(known, n);
	if (r < 0)
		return pp_error_set(reterr, r, "VM sizes of region %s: %s", s->region,
				    msg ?: strerror(-r));
	return 0;
}

int azure_init_with_hooks(const void *settings, const struct provider_context *ctx,
			  const struct azure_hooks *hooks, struct provider **ret,
			  struct pp_error **reterr)
{
	const struct azure_settings *s = settings;
	struct provider *p = calloc(1, sizeof(*p));
	if (!p)
		return pp_error_set(reterr, ENOMEM, "out of memory");
	p->s = s;
	if (hooks)
		p->hooks = *hooks;
	const char *arm = str_empty(s->resource_manager_endpoint) ? "https://management.azure.com/"
								  : s->resource_manager_endpoint;
	size_t n = strlen(arm);
	while (n > 0 && arm[n - 1] == '/')
		n--;
	p->arm = (struct arm_client){
	    .base = strndup(arm, n),
	    .hooks = &p->hooks,
	    .operation_timeout_ns = s->operation_timeout_ns,
	};
	int r = p->arm.base ? azure_auth_new(s, p->arm.base, &p->hooks, &p->arm.auth) : -ENOMEM;
	if (r < 0) {
		azure_done(p);
		return pp_error_set(reterr, r, "cannot set up %s credentials",
				    azure_auth_mode_name(azure_auth_mode_of(s)));
	}
	if (!str_empty(s->ssh_key_path)) {
		_cleanup_free_ char *msg = NULL;
		r = azure_ssh_key_read(s->ssh_key_path, &p->ssh_key, &msg);
		if (r < 0) {
			azure_done(p);
			return pp_error_set(reterr, r, "-ssh-key-path: %s", msg ?: strerror(-r));
		}
	} else if ((r = azure_ssh_key_generate(&p->ssh_key)) < 0) {
		azure_done(p);
		return pp_error_set(reterr, r, "cannot generate an SSH key: %s", strerror(-r));
	}
	r = load_catalog(p, reterr);
	if (r >= 0 && ctx && ctx->cloud_config_verify)
		r = azure_verify_cloud(p, reterr);
	if (r < 0) {
		azure_done(p);
		return r;
	}
	*ret = p;
	return 0;
}

static int azure_init(const void *settings, const struct provider_context *ctx,
		      struct provider **ret, struct pp_error **reterr)
{
	return azure_init_with_hooks(settings, ctx, NULL, ret, reterr);
}

struct azure_auth *azure_provider_auth(struct provider *p)
{
	return p->arm.auth;
}

const struct provider_ops azure_provider_ops = {
    .name = "azure",
    .pod_network = true,
    .options = azure_options,
    .n_options = ELEMENTSOF(azure_options),
    .settings_size = sizeof(struct azure_settings),
    .verify_config = azure_verify_config,
    .init = azure_init,
    .done = azure_done,
    .create_instance = azure_create_instance,
    .delete_instance = azure_delete_instance,
    .list_instances = azure_list_instances,
};

/* providers/azure: the PUT virtualMachines body (compute 2022-08-01) of a pod VM, and the small
 * pure helpers around it (image id kinds, VM size families). No I/O. */
#include <strings.h>
#include <openssl/evp.h>

#include "azure/azure-internal.h"

bool azure_path_valid(const char *s)
{
	if (str_empty(s) || strlen(s) > 1024)
		return false;
	for (const char *c = s; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || strchr("-._()/", *c)))
			return false;
	return !strstr(s, "/../") && !str_endswith(s, "/..") && !strstr(s, "//");
}

int azure_image_kind(const char *image, enum azure_image_kind *ret)
{
	if (!azure_path_valid(image))
		return -EINVAL;
	if (strncasecmp(image, "/CommunityGalleries/", strlen("/CommunityGalleries/")) == 0)
		*ret = AZURE_IMAGE_COMMUNITY;
	else if (strncasecmp(image, "/SharedGalleries/", strlen("/SharedGalleries/")) == 0)
		*ret = AZURE_IMAGE_SHARED;
	else if (strncasecmp(image, "/subscriptions/", strlen("/subscriptions/")) == 0)
		*ret = AZURE_IMAGE_ID;
	else
		return -EINVAL;
	return 0;
}

const char *azure_size_tee(const char *vm_size)
{
	if (!vm_size)
		return NULL;
	const char *s = vm_size;
	if (strncasecmp(s, "Standard_", strlen("Standard_")) == 0)
		s += strlen("Standard_");
	if (strncasecmp(s, "DC", 2) != 0 && strncasecmp(s, "EC", 2) != 0)
		return NULL;
	s += 2;
	if (*s < '0' || *s > '9')
		return NULL;
	while (*s >= '0' && *s <= '9')
		s++;
	/* "DC2as_v5", "EC4ads_cc_v5" (constrained cores keep the family) */
	size_t n = strcspn(s, "_");
	const char *ver = strrchr(s, '_');
	if (!ver || (strcasecmp(ver, "_v5") != 0 && strcasecmp(ver, "_v6") != 0))
		return NULL;
	if ((n == 2 && strncasecmp(s, "as", 2) == 0) || (n == 3 && strncasecmp(s, "ads", 3) == 0))
		return "AMD SEV-SNP";
	if ((n == 2 && strncasecmp(s, "es", 2) == 0) || (n == 3 && strncasecmp(s, "eds", 3) == 0))
		return "Intel TDX";
	return NULL;
}

static char *base64_of(const char *s, size_t len)
{
	if (len > SIZE_MAX / 2)
		return NULL;
	size_t out = 4 * ((len + 2) / 3);
	char *r = malloc(out + 1);
	if (!r)
		return NULL;
	int n = len ? EVP_EncodeBlock((unsigned char *)r, (const unsigned char *)s, (int)len) : 0;
	r[n] = 0;
	return r;
}

#define CHECK(x)                  \
	do {                      \
		if ((x) < 0)      \
			goto oom; \
	} while (0)

static json_t *tags_json(const struct azure_vm_params *p, int *ret_err, char **ret_msg)
{
	_cleanup_free_ char *pod = str_printf("%s/%s", p->pod_namespace ?: "", p->pod_name ?: "");
	json_t *tags = pod ? json_object() : NULL;
	if (!tags) {
		*ret_err = -ENOMEM;
		return NULL;
	}
	/* Azure tag values hold at most 256 characters; the sweep never reads this one. */
	if (strlen(pod) > 256)
		pod[256] = '\0';
	for (char *const *t = p->s->tags; t && *t; t++) {
		const char *eq = strchr(*t, '=');
		if (!eq || eq == *t) {
			*ret_err = str_set_message(ret_msg, EINVAL,
						   "TAGS item \"%s\" is not key=value", *t);
			json_decref(tags);
			return NULL;
		}
		_cleanup_free_ char *k = strndup(*t, (size_t)(eq - *t));
		if (!k || json_object_set_new(tags, k, json_string(eq + 1)) < 0)
			goto oom;
	}
	/* ours last: they override TAGS */
	CHECK(json_object_set_new(tags, "peerpod-node", json_string(p->node_name ?: "")));
	CHECK(json_object_set_new(tags, "peerpod-sandbox-id", json_string(p->sandbox_id ?: "")));
	CHECK(json_object_set_new(tags, "peerpod-pod", json_string(pod)));
	return tags;
oom:
	json_decref(tags);
	*ret_err = -ENOMEM;
	return NULL;
}

static json_t *storage_json(const struct azure_vm_params *p, int *ret_err, char **ret_msg)
{
	const struct azure_settings *s = p->s;
	enum azure_image_kind kind;
	if (azure_image_kind(p->image, &kind) < 0) {
		*ret_err =
		    str_set_message(ret_msg, EINVAL,
				    "image \"%s\" is neither a resource id (/subscriptions/...) "
				    "nor a community (/CommunityGalleries/...) or shared "
				    "(/SharedGalleries/...) gallery image id",
				    p->image ?: "");
		return NULL;
	}
	const char *key = kind == AZURE_IMAGE_COMMUNITY ? "communityGalleryImageId"
			  : kind == AZURE_IMAGE_SHARED  ? "sharedGalleryImageId"
							: "id";
	json_t *managed = json_pack("{s:s}", "storageAccountType", "Premium_LRS");
	if (managed && !s->disable_cvm &&
	    json_object_set_new(managed, "securityProfile",
				json_pack("{s:s}", "securityEncryptionType", "VMGuestStateOnly")) <
		0)
		managed = (json_decref(managed), NULL);
	json_t *os = managed ? json_pack("{s:s, s:s, s:o}", "createOption", "FromImage",
					 "deleteOption", "Delete", "managedDisk", managed)
			     : NULL;
	if (os && s->root_volume_size_gib > 0 &&
	    json_object_set_new(os, "diskSizeGB",
				json_integer((json_int_t)s->root_volume_size_gib)) < 0)
		os = (json_decref(os), NULL);
	json_t *r =
	    os ? json_pack("{s:{s:s}, s:o}", "imageReference", key, p->image, "osDisk", os) : NULL;
	if (!r)
		*ret_err = -ENOMEM;
	return r;
}

static json_t *network_json(const struct azure_vm_params *p)
{
	const struct azure_settings *s = p->s;
	_cleanup_free_ char *nic = str_printf("%s-nic", p->name);
	_cleanup_free_ char *ipc = str_printf("%s-ipconfig", p->name);
	_cleanup_free_ char *pip = str_printf("%s-pip", p->name);
	if (!nic || !ipc || !pip)
		return NULL;
	json_t *ipprops = json_pack("{s:b, s:{s:s}}", "primary", 1, "subnet", "id", s->subnet_id);
	if (ipprops && s->use_public_ip &&
	    json_object_set_new(ipprops, "publicIPAddressConfiguration",
				json_pack("{s:s, s:{s:s, s:s}, s:{s:s, s:s}}", "name", pip, "sku",
					  "name", "Standard", "tier", "Regional", "properties",
					  "deleteOption", "Delete", "publicIPAllocationMethod",
					  "Static")) < 0)
		ipprops = (json_decref(ipprops), NULL);
	json_t *nicprops =
	    ipprops ? json_pack("{s:b, s:s, s:[{s:s, s:o}]}", "primary", 1, "deleteOption",
				"Delete", "ipConfigurations", "name", ipc, "properties", ipprops)
		    : NULL;
	if (nicprops && !str_empty(s->nsg_id) &&
	    json_object_set_new(nicprops, "networkSecurityGroup",
				json_pack("{s:s}", "id", s->nsg_id)) < 0)
		nicprops = (json_decref(nicprops), NULL);
	return nicprops ? json_pack("{s:s, s:[{s:s, s:o}]}", "networkApiVersion",
				    AZURE_VM_NETWORK_API_VERSION, "networkInterfaceConfigurations",
				    "name", nic, "properties", nicprops)
			: NULL;
}

int azure_vm_body(const struct azure_vm_params *p, char **ret_json, char **ret_msg)
{
	const struct azure_settings *s = p->s;
	int err = -ENOMEM;
	size_t ud_len = p->user_data ? strlen(p->user_data) : 0;
	size_t encoded = 4 * ((ud_len + 2) / 3);
	if (encoded > AZURE_USER_DATA_MAX_BYTES)
		return str_set_message(ret_msg, EMSGSIZE,
				       "user data is %zu bytes once base64-encoded, above Azure's "
				       "limit of %u bytes",
				       encoded, AZURE_USER_DATA_MAX_BYTES);
	_cleanup_free_ char *ud = base64_of(p->user_data ?: "", ud_len);
	_cleanup_free_ char *key_path =
	    str_printf("/home/%s/.ssh/authorized_keys", s->ssh_username ?: "peerpod");
	if (!ud || !key_path)
		return -ENOMEM;

	_cleanup_(json_decrefp) json_t *storage = storage_json(p, &err, ret_msg);
	if (!storage)
		return err;
	_cleanup_(json_decrefp) json_t *tags = tags_json(p, &err, ret_msg);
	if (!tags)
		return err;
	json_t *network = network_json(p);
	json_t *os = json_pack("{s:s, s:s, s:{s:b, s:{s:[{s:s, s:s}]}}}", "adminUsername",
			       s->ssh_username ?: "peerpod", "computerName", p->name,
			       "linuxConfiguration", "disablePasswordAuthentication", 1, "ssh",
			       "publicKeys", "path", key_path, "keyData", p->ssh_public_key ?: "");
	json_t *props = network && os
			    ? json_pack("{s:{s:s}, s:O, s:o, s:o, s:s}", "hardwareProfile",
					"vmSize", p->vm_size, "storageProfile", storage,
					"osProfile", os, "networkProfile", network, "userData", ud)
			    : (json_decref(network), json_decref(os), NULL);
	if (props && !s->disable_cvm &&
	    json_object_set_new(props, "securityProfile",
				json_pack("{s:s, s:{s:b, s:b}}", "securityType", "ConfidentialVM",
					  "uefiSettings", "secureBootEnabled",
					  (int)s->enable_secure_boot, "vTpmEnabled", 1)) < 0)
		props = (json_decref(props), NULL);
	_cleanup_(json_decrefp) json_t *vm =
	    props ? json_pack("{s:s, s:O, s:o}", "location", s->region, "tags", tags, "properties",
			      props)
		  : NULL;
	if (!vm)
		return -ENOMEM;
	if (!str_empty(s->zone) && json_object_set_new(vm, "zones", json_pack("[s]", s->zone)) < 0)
		return -ENOMEM;
	char *out = json_dumps(vm, JSON_COMPACT);
	if (!out)
		return -ENOMEM;
	*ret_json = out;
	return 0;
}

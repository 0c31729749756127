/* Unit tests for the Azure provider against a canned-response loopback server: the VM body,
 * tokens (client secret, workload identity, managed identity, caching, refresh, one request
 * for many callers), long-running operations with cleanup, retries, ARM errors, delete, list. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "http-test-server.h"
#include "azure/azure-internal.h"

#define SUB "sub-1"
#define RG "rg1"
#define SUBNET                                                                                 \
	"/subscriptions/sub-1/resourceGroups/rg1/providers/Microsoft.Network/virtualNetworks/" \
	"vnet/subnets/default"
#define NSG                                                                    \
	"/subscriptions/sub-1/resourceGroups/rg1/providers/Microsoft.Network/" \
	"networkSecurityGroups/nsg1"
#define IMAGE "/subscriptions/sub-1/resourceGroups/rg1/providers/Microsoft.Compute/images/podvm"
#define VM_PATH                                                                                \
	"/subscriptions/sub-1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/" \
	"podvm-abc"
#define NIC_ID                                                                                   \
	"/subscriptions/sub-1/resourceGroups/rg1/providers/Microsoft.Network/networkInterfaces/" \
	"podvm-abc-nic"
#define PIP_ID                                                                                   \
	"/subscriptions/sub-1/resourceGroups/rg1/providers/Microsoft.Network/publicIPAddresses/" \
	"podvm-abc-pip"
#define SECRET "s3cr&t=x"

#define TOKEN1 "{\"token_type\":\"Bearer\",\"expires_in\":3600,\"access_token\":\"tok-1\"}"
#define SIZES                                                                                   \
	"{\"value\":[{\"name\":\"Standard_DC2as_v5\",\"numberOfCores\":2,\"memoryInMB\":8192}," \
	"{\"name\":\"Standard_DC4as_v5\",\"numberOfCores\":4,\"memoryInMB\":16384},"            \
	"{\"name\":\"Standard_DC2es_v5\",\"numberOfCores\":2,\"memoryInMB\":8192}]}"
#define VM_BODY                                                                           \
	"{\"id\":\"" VM_PATH                                                              \
	"\",\"properties\":{\"networkProfile\":{\"networkInterfaces\":[{\"id\":\"" NIC_ID \
	"\"}]}}}"
#define NIC_BODY                                                                                 \
	"{\"properties\":{\"ipConfigurations\":[{\"properties\":{\"privateIPAddress\":\"10.0.0." \
	"4\"}}]}}"
#define NIC_PUB_BODY                                                                    \
	"{\"properties\":{\"ipConfigurations\":[{\"properties\":{\"privateIPAddress\":" \
	"\"10.0.0.4\",\"publicIPAddress\":{\"id\":\"" PIP_ID "\"}}}]}}"

static const char *fake_env[8][2];

static const char *lookup_env(const char *name)
{
	for (size_t i = 0; i < ELEMENTSOF(fake_env) && fake_env[i][0]; i++)
		if (strcmp(fake_env[i][0], name) == 0)
			return fake_env[i][1];
	return NULL;
}

static void env_add(const char *name, const char *value)
{
	for (size_t i = 0; i < ELEMENTSOF(fake_env); i++)
		if (!fake_env[i][0] || strcmp(fake_env[i][0], name) == 0) {
			fake_env[i][0] = name;
			fake_env[i][1] = value;
			return;
		}
	fail();
}

/* ---- a fake clock: sleeping advances it ---- */

struct clock {
	int64_t now;
	int64_t slept[64];
	size_t n_slept;
};

static int64_t clock_now(void *u)
{
	return ((struct clock *)u)->now;
}

static void clock_sleep(void *u, int64_t ns)
{
	struct clock *c = u;
	if (c->n_slept < ELEMENTSOF(c->slept))
		c->slept[c->n_slept++] = ns;
	c->now += ns;
}

/* ---- fixture ---- */

struct fx {
	struct test_server ts;
	char *base;
	char dir[64];
	char key_path[96];
	char fed_path[96];
	struct azure_settings s;
	struct clock clk;
	struct azure_hooks hooks;
	struct provider *p;
	struct pp_error *err;
	/* storage for headers that hold the port */
	char hdr[8][256];
};

static const char *base_args[] = {"-subscriptionid", SUB,       "-region",   "eastus",
				  "-resourcegroup",  RG,        "-subnetid", SUBNET,
				  "-imageid",        IMAGE,     "-clientid", "cid",
				  "-tenantid",       "tenant-1"};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	memset(fake_env, 0, sizeof(fake_env));
	config_set_getenv(lookup_env);
	struct ts_response none = {500, NULL, NULL, 0};
	assert_int_equal(ts_start(&f->ts, &none, 1), 0);
	f->base = ts_url(&f->ts, "/");
	env_add("AZURE_AUTHORITY_HOST", f->base);
	env_add("AZURE_RESOURCE_MANAGER_ENDPOINT", f->base);
	env_add("AZURE_IMDS_ENDPOINT", f->base);
	snprintf(f->dir, sizeof(f->dir), "%s/test-azure-XXXXXX", getenv("TMPDIR") ?: "/tmp");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->key_path, sizeof(f->key_path), "%s/key.pub", f->dir);
	snprintf(f->fed_path, sizeof(f->fed_path), "%s/federated", f->dir);
	const char *key = "# comment\nssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 me@host\n";
	assert_int_equal(write_file_atomic(f->key_path, key, strlen(key), 0644), 0);
	f->hooks = (struct azure_hooks){clock_now, clock_sleep, &f->clk};
	f->clk.now = 1000 * NSEC_PER_SEC;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	if (f->p)
		azure_provider_ops.done(f->p);
	config_free(azure_provider_ops.options, azure_provider_ops.n_options, &f->s);
	pp_error_free(f->err);
	ts_stop(&f->ts);
	free(f->base);
	rm_rf(f->dir);
	free(f);
	config_set_getenv(NULL);
	return 0;
}

/* Parse the base options plus extra ones (NULL-terminated), with -ssh-key-path and a secret
 * unless told otherwise. */
static void parse(struct fx *f, bool with_secret, const char *const *extra)
{
	char *argv[64];
	int argc = 0;
	for (size_t i = 0; i < ELEMENTSOF(base_args); i++)
		argv[argc++] = (char *)base_args[i];
	argv[argc++] = (char *)"-ssh-key-path";
	argv[argc++] = f->key_path;
	if (with_secret) {
		argv[argc++] = (char *)"-secret";
		argv[argc++] = (char *)SECRET;
	}
	for (; extra && *extra; extra++)
		argv[argc++] = (char *)*extra;
	struct config_table t = {azure_provider_ops.options, azure_provider_ops.n_options, &f->s};
	int argind;
	_cleanup_free_ char *msg = NULL;
	assert_int_equal(config_parse(&t, 1, argc, argv, &argind, &msg), 0);
	assert_int_equal(azure_provider_ops.verify_config(&f->s, NULL), 0);
}

static int init(struct fx *f, bool verify)
{
	struct provider_context ctx = {.node_name = "node-1", .cloud_config_verify = verify};
	return azure_init_with_hooks(&f->s, &ctx, &f->hooks, &f->p, &f->err);
}

/* "http://127.0.0.1:PORT<path>" header line into slot i */
static const char *hdr(struct fx *f, size_t i, const char *name, const char *path, const char *more)
{
	snprintf(f->hdr[i], sizeof(f->hdr[i]), "%s: http://127.0.0.1:%u%s\r\n%s", name, f->ts.port,
		 path, more ?: "");
	return f->hdr[i];
}

static struct ts_request *req(struct fx *f, size_t i)
{
	assert_true(i < ts_n_requests(&f->ts));
	return &f->ts.requests[i];
}

static void assert_header(struct ts_request *q, const char *name, const char *want)
{
	char v[512];
	assert_true(ts_request_header(q, name, v, sizeof(v)));
	assert_string_equal(v, want);
}

/* Value at a dotted path; numeric parts index arrays. */
static json_t *jpath(json_t *j, const char *path)
{
	_cleanup_strv_free_ char **parts = NULL;
	assert_int_equal(strv_split(path, ".", true, &parts), 0);
	for (char **p = parts; *p && j; p++) {
		uint32_t idx;
		if (json_is_array(j) && parse_u32(*p, &idx) == 0)
			j = json_array_get(j, idx);
		else
			j = json_object_get(j, *p);
	}
	return j;
}

static const char *jstr(json_t *j, const char *path)
{
	json_t *v = jpath(j, path);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

static const struct provider_instance_spec spec = {
    .instance_name = "podvm-abc",
    .sandbox_id = "sbx-1",
    .pod_name = "web",
    .pod_namespace = "default",
    .node_name = "node-1",
    .user_data = "#cloud-config\nwrite_files: []\n",
    .image = "",
    .machine_type = "",
};

static json_t *vm_body(struct fx *f, const char *image, const char *user_data, int *ret_r,
		       char **ret_msg)
{
	struct azure_vm_params params = {
	    .s = &f->s,
	    .name = "podvm-abc",
	    .vm_size = "Standard_DC2as_v5",
	    .image = image ?: f->s.image_id,
	    .ssh_public_key = "ssh-rsa AAAA",
	    .user_data = user_data ?: spec.user_data,
	    .sandbox_id = "sbx-1",
	    .node_name = "node-1",
	    .pod_name = "web",
	    .pod_namespace = "default",
	};
	_cleanup_free_ char *out = NULL;
	*ret_r = azure_vm_body(&params, &out, ret_msg);
	return *ret_r < 0 ? NULL : json_loads(out, 0, NULL);
}

/* ---- VM body ---- */

static void test_vm_body_confidential(void **state)
{
	struct fx *f = *state;
	parse(f, true, NULL);
	int r;
	json_t *vm = vm_body(f, NULL, NULL, &r, NULL);
	assert_non_null(vm);
	assert_string_equal(jstr(vm, "location"), "eastus");
	assert_string_equal(jstr(vm, "properties.hardwareProfile.vmSize"), "Standard_DC2as_v5");
	assert_string_equal(jstr(vm, "properties.storageProfile.imageReference.id"), IMAGE);
	json_t *os = jpath(vm, "properties.storageProfile.osDisk");
	assert_string_equal(jstr(os, "createOption"), "FromImage");
	assert_string_equal(jstr(os, "deleteOption"), "Delete");
	assert_string_equal(jstr(os, "managedDisk.storageAccountType"), "Premium_LRS");
	assert_string_equal(jstr(os, "managedDisk.securityProfile.securityEncryptionType"),
			    "VMGuestStateOnly");
	assert_null(jpath(os, "diskSizeGB"));
	assert_string_equal(jstr(vm, "properties.osProfile.adminUsername"), "peerpod");
	assert_string_equal(jstr(vm, "properties.osProfile.computerName"), "podvm-abc");
	json_t *lin = jpath(vm, "properties.osProfile.linuxConfiguration");
	assert_true(json_is_true(jpath(lin, "disablePasswordAuthentication")));
	assert_string_equal(jstr(lin, "ssh.publicKeys.0.path"),
			    "/home/peerpod/.ssh/authorized_keys");
	assert_string_equal(jstr(lin, "ssh.publicKeys.0.keyData"), "ssh-rsa AAAA");
	json_t *net = jpath(vm, "properties.networkProfile");
	assert_string_equal(jstr(net, "networkApiVersion"), "2020-11-01");
	json_t *nic = jpath(net, "networkInterfaceConfigurations.0");
	assert_string_equal(jstr(nic, "name"), "podvm-abc-nic");
	assert_true(json_is_true(jpath(nic, "properties.primary")));
	assert_string_equal(jstr(nic, "properties.deleteOption"), "Delete");
	assert_null(jpath(nic, "properties.networkSecurityGroup"));
	assert_string_equal(jstr(nic, "properties.ipConfigurations.0.properties.subnet.id"),
			    SUBNET);
	assert_null(jpath(nic, "properties.ipConfigurations.0.properties."
			       "publicIPAddressConfiguration"));
	assert_string_equal(jstr(vm, "properties.securityProfile.securityType"), "ConfidentialVM");
	assert_true(json_is_true(jpath(vm, "properties.securityProfile.uefiSettings.vTpmEnabled")));
	assert_true(
	    json_is_false(jpath(vm, "properties.securityProfile.uefiSettings.secureBootEnabled")));
	assert_null(jpath(vm, "zones"));
	/* base64 of the cloud-config */
	unsigned char dec[256];
	const char *ud = jstr(vm, "properties.userData");
	assert_non_null(ud);
	int n = EVP_DecodeBlock(dec, (const unsigned char *)ud, (int)strlen(ud));
	assert_true(n >= (int)strlen(spec.user_data));
	assert_memory_equal(dec, spec.user_data, strlen(spec.user_data));
	assert_string_equal(jstr(vm, "tags.peerpod-sandbox-id"), "sbx-1");
	assert_string_equal(jstr(vm, "tags.peerpod-node"), "node-1");
	assert_string_equal(jstr(vm, "tags.peerpod-pod"), "default/web");
	json_decref(vm);
}

static void test_vm_body_plain_public_ip(void **state)
{
	struct fx *f = *state;
	const char *extra[] = {"-disable-cvm",
			       "-use-public-ip",
			       "-securitygroupid",
			       NSG,
			       "-zone",
			       "2",
			       "-root-volume-size",
			       "50",
			       "-ssh-username",
			       "alice",
			       "-tags",
			       "team=a,peerpod-node=evil",
			       NULL};
	parse(f, true, extra);
	int r;
	json_t *vm = vm_body(f, NULL, NULL, &r, NULL);
	assert_non_null(vm);
	assert_null(jpath(vm, "properties.securityProfile"));
	json_t *os = jpath(vm, "properties.storageProfile.osDisk");
	assert_null(jpath(os, "managedDisk.securityProfile"));
	assert_string_equal(jstr(os, "managedDisk.storageAccountType"), "Premium_LRS");
	assert_int_equal(json_integer_value(jpath(os, "diskSizeGB")), 50);
	json_t *nic = jpath(vm, "properties.networkProfile.networkInterfaceConfigurations.0");
	assert_string_equal(jstr(nic, "properties.networkSecurityGroup.id"), NSG);
	json_t *pip =
	    jpath(nic, "properties.ipConfigurations.0.properties.publicIPAddressConfiguration");
	assert_non_null(pip);
	assert_string_equal(jstr(pip, "name"), "podvm-abc-pip");
	assert_string_equal(jstr(pip, "properties.deleteOption"), "Delete");
	assert_string_equal(jstr(vm, "zones.0"), "2");
	assert_int_equal(json_array_size(jpath(vm, "zones")), 1);
	assert_string_equal(jstr(vm, "properties.osProfile.adminUsername"), "alice");
	assert_string_equal(
	    jstr(vm, "properties.osProfile.linuxConfiguration.ssh.publicKeys.0.path"),
	    "/home/alice/.ssh/authorized_keys");
	assert_string_equal(jstr(vm, "tags.team"), "a");
	assert_string_equal(jstr(vm, "tags.peerpod-node"), "node-1"); /* ours win */
	json_decref(vm);
}

static void test_vm_body_secure_boot(void **state)
{
	struct fx *f = *state;
	const char *extra[] = {"-enable-secure-boot", NULL};
	parse(f, true, extra);
	int r;
	json_t *vm = vm_body(f, NULL, NULL, &r, NULL);
	assert_true(
	    json_is_true(jpath(vm, "properties.securityProfile.uefiSettings.secureBootEnabled")));
	json_decref(vm);
}

static void test_image_kinds(void **state)
{
	struct fx *f = *state;
	parse(f, true, NULL);
	int r;
	json_t *vm =
	    vm_body(f, "/CommunityGalleries/cg-1/Images/podvm/Versions/latest", NULL, &r, NULL);
	json_t *ref = jpath(vm, "properties.storageProfile.imageReference");
	assert_string_equal(jstr(ref, "communityGalleryImageId"),
			    "/CommunityGalleries/cg-1/Images/podvm/Versions/latest");
	assert_null(jpath(ref, "id"));
	json_decref(vm);
	vm = vm_body(f, "/SharedGalleries/sg-1/Images/podvm/Versions/1.0.0", NULL, &r, NULL);
	ref = jpath(vm, "properties.storageProfile.imageReference");
	assert_string_equal(jstr(ref, "sharedGalleryImageId"),
			    "/SharedGalleries/sg-1/Images/podvm/Versions/1.0.0");
	assert_int_equal(json_object_size(ref), 1);
	json_decref(vm);
	_cleanup_free_ char *msg = NULL;
	assert_null(vm_body(f, "Canonical:ubuntu:22_04:latest", NULL, &r, &msg));
	assert_int_equal(r, -EINVAL);
	assert_non_null(strstr(msg, "Canonical:ubuntu"));
}

static void test_user_data_limit(void **state)
{
	struct fx *f = *state;
	parse(f, true, NULL);
	/* 49152 bytes encode to exactly 65536 */
	_cleanup_free_ char *ud = malloc(49154);
	memset(ud, 'x', 49153);
	ud[49152] = 0;
	int r;
	json_t *vm = vm_body(f, NULL, ud, &r, NULL);
	assert_non_null(vm);
	assert_int_equal(strlen(jstr(vm, "properties.userData")), 65536);
	json_decref(vm);
	ud[49152] = 'x';
	ud[49153] = 0;
	_cleanup_free_ char *msg = NULL;
	assert_null(vm_body(f, NULL, ud, &r, &msg));
	assert_int_equal(r, -EMSGSIZE);
	assert_non_null(strstr(msg, "65536"));
}

static void test_size_tee(void **state)
{
	assert_string_equal(azure_size_tee("Standard_DC2as_v5"), "AMD SEV-SNP");
	assert_string_equal(azure_size_tee("Standard_EC16ads_v5"), "AMD SEV-SNP");
	assert_string_equal(azure_size_tee("Standard_DC4as_v6"), "AMD SEV-SNP");
	assert_string_equal(azure_size_tee("Standard_DC2es_v5"), "Intel TDX");
	assert_string_equal(azure_size_tee("Standard_DC8eds_v5"), "Intel TDX");
	assert_string_equal(azure_size_tee("Standard_EC4es_v5"), "Intel TDX");
	assert_null(azure_size_tee("Standard_D2as_v5"));
	assert_null(azure_size_tee("Standard_DC2s_v3"));
	assert_null(azure_size_tee("Standard_DC2as_v4"));
	assert_null(azure_size_tee(NULL));
}

static void test_ssh_keys(void **state)
{
	struct fx *f = *state;
	_cleanup_free_ char *a = NULL, *b = NULL, *read = NULL, *msg = NULL;
	assert_int_equal(azure_ssh_key_generate(&a), 0);
	assert_int_equal(azure_ssh_key_generate(&b), 0);
	/* base64 of "\0\0\0\7ssh-rsa" */
	assert_true(str_startswith(a, "ssh-rsa AAAAB3NzaC1yc2E"));
	assert_string_not_equal(a, b);
	assert_int_equal(azure_ssh_key_read(f->key_path, &read, &msg), 0);
	assert_string_equal(read, "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 me@host");
	char bad[128];
	snprintf(bad, sizeof(bad), "%s/bad", f->dir);
	assert_int_equal(write_file_atomic(bad, "-----BEGIN", 10, 0600), 0);
	_cleanup_free_ char *none = NULL;
	assert_int_equal(azure_ssh_key_read(bad, &none, &msg), -EINVAL);
}

/* ---- tokens ---- */

static void test_token_cache_and_refresh(void **state)
{
	struct fx *f = *state;
	struct ts_response resp[] = {
	    {200, NULL, TOKEN1, 0},
	    {200, NULL, SIZES, 0},
	    {200, NULL, "{\"value\":[]}", 0},
	    {200, NULL, "{\"value\":[]}", 0},
	    {200, NULL, "{\"token_type\":\"Bearer\",\"expires_in\":600,\"access_token\":\"tok-2\"}",
	     0},
	    {200, NULL, "{\"value\":[]}", 0},
	    {200, NULL, "{\"value\":[]}", 0},
	    {200, NULL, "{\"expires_in\":600,\"access_token\":\"tok-3\"}", 0},
	    {200, NULL, "{\"value\":[]}", 0},
	};
	ts_set_responses(&f->ts, resp, ELEMENTSOF(resp));
	parse(f, true, NULL);
	assert_int_equal(init(f, false), 0);

	struct ts_request *q = req(f, 0);
	assert_string_equal(q->method, "POST");
	assert_string_equal(q->target, "/tenant-1/oauth2/v2.0/token");
	assert_header(q, "Content-Type", "application/x-www-form-urlencoded");
	_cleanup_free_ char *scope =
	    str_printf("scope=http%%3A%%2F%%2F127.0.0.1%%3A%u%%2F.default", f->ts.port);
	assert_non_null(strstr(q->body, "grant_type=client_credentials"));
	assert_non_null(strstr(q->body, "client_id=cid"));
	assert_non_null(strstr(q->body, "client_secret=s3cr%26t%3Dx"));
	assert_non_null(strstr(q->body, scope));
	assert_null(strstr(q->body, "client_assertion"));
	assert_string_equal(req(f, 1)->target, "/subscriptions/sub-1/providers/Microsoft.Compute/"
					       "locations/eastus/vmSizes?api-version=2022-08-01");
	assert_header(req(f, 1), "Authorization", "Bearer tok-1");

	struct provider_instance *v = NULL;
	size_t n = 0;
	/* cached */
	assert_int_equal(azure_provider_ops.list_instances(f->p, &v, &n, &f->err), 0);
	provider_instances_free(v, n);
	f->clk.now += 3299 * NSEC_PER_SEC;
	assert_int_equal(azure_provider_ops.list_instances(f->p, &v, &n, &f->err), 0);
	provider_instances_free(v, n);
	assert_int_equal(ts_n_requests(&f->ts), 4);
	assert_header(req(f, 3), "Authorization", "Bearer tok-1");
	/* 5 minutes before expiry: a new token */
	f->clk.now += 2 * NSEC_PER_SEC;
	assert_int_equal(azure_provider_ops.list_instances(f->p, &v, &n, &f->err), 0);
	provider_instances_free(v, n);
	assert_string_equal(req(f, 4)->method, "POST");
	assert_header(req(f, 5), "Authorization", "Bearer tok-2");
	/* a 10-minute token is renewed at half-life */
	f->clk.now += 299 * NSEC_PER_SEC;
	assert_int_equal(azure_provider_ops.list_instances(f->p, &v, &n, &f->err), 0);
	provider_instances_free(v, n);
	assert_header(req(f, 6), "Authorization", "Bearer tok-2");
	f->clk.now += 2 * NSEC_PER_SEC;
	assert_int_equal(azure_provider_ops.list_instances(f->p, &v, &n, &f->err), 0);
	provider_instances_free(v, n);
	assert_string_equal(req(f, 7)->method, "POST");
	assert_header(req(f, 8), "Authorization", "Bearer tok-3");
	assert_int_equal(azure_auth_requests(azure_provider_auth(f->p)), 3);
}

static void test_workload_identity_rereads_file(void **state)
{
	struct fx *f = *state;
	struct ts_response resp[] = {
	    {200, NULL, TOKEN1, 0},
	    {200, NULL, SIZES, 0},
	    {200, NULL, "{\"expires_in\":3600,\"access_token\":\"tok-2\"}", 0},
	    {200, NULL, "{\"value\":[]}", 0},
	};
	ts_set_responses(&f->ts, resp, ELEMENTSOF(resp));
	assert_int_equal(write_file_atomic(f->fed_path, "jwt-one\n", 8, 0600), 0);
	env_add("AZURE_FEDERATED_TOKEN_FILE", f->fed_path);
	parse(f, false, NULL);
	assert_int_equal(azure_auth_mode_of(&f->s), AZURE_AUTH_WORKLOAD_IDENTITY);
	assert_int_equal(init(f, false), 0);
	struct ts_request *q = req(f, 0);
	assert_string_equal(q->target, "/tenant-1/oauth2/v2.0/token");
	assert_non_null(strstr(q->body, "client_assertion=jwt-one&") ||
			str_endswith(q->body, "client_assertion=jwt-one"));
	assert_non_null(strstr(q->body, "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3A"
					"client-assertion-type%3Ajwt-bearer"));
	assert_null(strstr(q->body, "client_secret"));
	/* the kubelet rotates the file; the next token request sends the new one */
	assert_int_equal(write_file_atomic(f->fed_path, "jwt-two", 7, 0600), 0);
	f->clk.now += 4000 * NSEC_PER_SEC;
	struct provider_instance *v = NULL;
	size_t n = 0;
	assert_int_equal(azure_provider_ops.list_instances(f->p, &v, &n, &f->err), 0);
	provider_instances_free(v, n);
	assert_true(str_endswith(req(f, 2)->body, "client_assertion=jwt-two"));
	assert_header(req(f, 3), "Authorization", "Bearer tok-2");
}

static void test_managed_identity(void **state)
{
	struct fx *f = *state;
	struct ts_response resp[] = {
	    {200, NULL,
	     "{\"access_token\":\"mi-tok\",\"expires_in\":\"86399\",\"expires_on\":\"1700000000\","
	     "\"resource\":\"x\",\"token_type\":\"Bearer\"}",
	     0},
	    {200, NULL, SIZES, 0},
	};
	ts_set_responses(&f->ts, resp, ELEMENTSOF(resp));
	parse(f, false, NULL);
	assert_int_equal(azure_auth_mode_of(&f->s), AZURE_AUTH_MANAGED_IDENTITY);
	assert_int_equal(init(f, false), 0);
	struct ts_request *q = req(f, 0);
	assert_string_equal(q->method, "GET");
	_cleanup_free_ char *want =
	    str_printf("/metadata/identity/oauth2/token?api-version=2018-02-01&resource=http%%3A%%"
		       "2F%%2F127.0.0.1%%3A%u&client_id=cid",
		       f->ts.port);
	assert_string_equal(q->target, want);
	assert_header(q, "Metadata", "true");
	assert_header(req(f, 1), "Authorization", "Bearer mi-tok");
}

struct race {
	struct azure_auth *auth;
	pthread_barrier_t *barrier;
	char *token;
	int r;
};

static void *race_main(void *arg)
{
	struct race *x = arg;
	pthread_barrier_wait(x->barrier);
	x->r = azure_auth_token(x->auth, &x->token, NULL);
	return NULL;
}

static void test_token_one_request_for_many(void **state)
{
	struct fx *f = *state;
	struct ts_response resp[] = {{200, NULL, TOKEN1, 0}};
	ts_set_responses(&f->ts, resp, 1);
	parse(f, true, NULL);
	struct azure_auth *auth = NULL;
	assert_int_equal(azure_auth_new(&f->s, "http://127.0.0.1", NULL, &auth), 0);
	enum { N = 8 };
	pthread_barrier_t barrier;
	pthread_barrier_init(&barrier, NULL, N);
	struct race x[N];
	pthread_t t[N];
	for (int i = 0; i < N; i++) {
		x[i] = (struct race){.auth = auth, .barrier = &barrier};
		assert_int_equal(pthread_create(&t[i], NULL, race_main, &x[i]), 0);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(x[i].r, 0);
		assert_string_equal(x[i].token, "tok-1");
		free_secret(x[i].token);
	}
	pthread_barrier_destroy(&barrier);
	assert_int_equal(ts_n_requests(&f->ts), 1);
	assert_int_equal(azure_auth_requests(auth), 1);
	azure_auth_free(auth);
}

static void test_token_errors_hide_secrets(void **state)
{
	struct fx *f = *state;
	struct ts_response resp[] = {
	    {401, "x-ms-request-id: aad-7\r\n",
	     "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: Invalid client "
	     "secret provided.\"}",
	     0},
	    {400, NULL, "echo: client_secret=s3cr%26t%3Dx&client_id=cid", 0},
	};
	ts_set_responses(&f->ts, resp, ELEMENTSOF(resp));
	parse(f, true, NULL);
	assert_int_equal(init(f, false), -EACCES);
	assert_non_null(f->err);
	assert_int_equal(f->err->status, 401);
	assert_string_equal(f->err->code, "invalid_client");
	assert_string_equal(f->err->request_id, "aad-7");
	assert_non_null(strstr(f->err->message, "AADSTS7000215"));
	assert_null(strstr(f->err->message, "s3cr"));
	assert_null(strstr(f->err->message, "tenant-1"));
	pp_error_free(f->err);
	f->err = NULL;
	assert_int_equal(init(f, false), -EINVAL);
	assert_non_null(strstr(f->err->message, "HTTP 400"));
	assert_null(strstr(f->err->message, "s3cr"));
	assert_null(strstr(f->err->message, "tenant-1"));
	assert_null(strstr(f->err->message, "echo"));
}

/* ---- create ---- */

static void test_create_success(void **state)
{
	struct fx *f = *state;
	struct ts_response resp[] = {
	    {200, NULL, TOKEN1, 0},
	    {200, NULL, SIZES, 0},
	    {201, hdr(f, 0, "Azure-AsyncOperation", "/op/1", "Retry-After: 7\r\n"), "{}", 0},
	    {200, "Retry-After: 3\r\n", "{\"status\":\"InProgress\"}", 0},
	    {200, NULL, "{\"status\":\"Succeeded\"}", 0},
	    {200, NULL, VM_BODY, 0},
	    {200, NULL, NIC_BODY, 0},
	};
	ts_set_responses(&f->ts, resp, ELEMENTSOF(resp));
	parse(f, true, NULL);
	assert_int_equal(init(f, false), 0);
	struct provider_instance inst = {0};
	assert_int_equal(azure_provider_ops.create_instance(f->p, &spec, &inst, &f->err), 0);
	assert_string_equal(inst.id, VM_PATH);
	assert_string_equal(inst.name, "podvm-abc");
	assert_int_equal(inst.n_ips, 1);
	assert_string_equal(inst.ips[0], "10.0.0.4");
	assert_string_equal(inst.sandbox_id, "sbx-1");
	assert_string_equal(inst.node_name, "node-1");
	provider_instance_done(&inst);

	assert_int_equal(ts_n_requests(&f->ts), 7);
	struct ts_request *put = req(f, 2);
	assert_string_equal(put->method, "PUT");
	assert_string_equal(put->target, VM_PATH "?api-version=2022-08-01");
	assert_header(put, "Authorization", "Bearer tok-1");
	assert_header(put, "Content-Type", "application/json");
	json_t *vm = json_loads(put->body, 0, NULL);
	assert_non_null(vm);
	assert_string_equal(jstr(vm, "tags.peerpod-sandbox-id"), "sbx-1");
	assert_string_equal(jstr(vm, "properties.hardwareProfile.vmSize"), "Standard_DC2as_v5");
	assert_string_equal(
	    jstr(vm, "properties.osProfile.linuxConfiguration.ssh.publicKeys.0.keyData"),
	    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 me@host");
	json_decref(vm);
	assert_string_equal(req(f, 3)->target, "/op/1");
	assert_string_equal(req(f, 4)->target, "/op/1");
	/* Retry-After honoured on each poll */
	assert_int_equal(f->clk.n_slept, 2);
	assert_int_equal(f->clk.slept[0], 7 * NSEC_PER_SEC);
	assert_int_equal(f->clk.slept[1], 3 * NSEC_PER_SEC);
	assert_string_equal(req(f, 5)->target, VM_PATH "?api-version=2022-08-01");
	assert_string_equal(req(f, 6)->target, NIC_ID "?api-version=2022-07-01");
}

static void test_create_public_ip_and_annotations(void **state)
{
	struct fx *f = *state;
	struct ts_response resp[] = {
	    {200, NULL, TOKEN1, 0},
	    {200, NULL, SIZES, 0},
	    /* no operation header: the body's provisioningState says it is done */
	    {200, NULL, "{\"properties\":{\"provisioningState\":\"Succeeded\"}}", 0},
	    {200, NULL, VM_BODY, 0},
	    {200, NULL, NIC_PUB_BODY, 0},
	    {200, NULL, "{\"properties\":{\"provisioningState\":\"Updating\"}}", 0},
	    {200, NULL, NIC_PUB_BODY, 0},
	    {200, NULL, "{\"properties\":{\"ipAddress\":\"20.1.2.3\"}}", 0},
	};
	ts_set_responses(&f->ts, resp, ELEMENTSOF(resp));
	const char *extra[] = {"-use-public-ip", "-instance-sizes",
			       "Standard_DC2as_v5,Standard_DC4as_v5", NULL};
	parse(f, true, extra);
	assert_int_equal(init(f, false), 0);
	struct provider_instance_spec s2 = spec;
	s2.image = "/CommunityGalleries/cg/Images/podvm/Versions/latest";
	s2.vcpus = 3;
	s2.memory_mib = 4096;
	struct provider_instance inst = {0};
	assert_int_equal(azure_provider_ops.create_instance(f->p, &s2, &inst, &f->err), 0);
	assert_int_equal(inst.n_ips, 2);
	assert_string_equal(inst.ips[0], "20.1.2.3");
	assert_string_equal(inst.ips[1], "10.0.0.4");
	provider_instance_done(&inst);
	json_t *vm = json_loads(req(f, 2)->body, 0, NULL);
	assert_string_equal(jstr(vm, "properties.hardwareProfile.vmSize"), "Standard_DC4as_v5");
	assert_string_equal(
	    jstr(vm, "properties.storageProfile.imageReference.communityGalleryImageId"), s2.image);
	json_decref(vm);
	assert_string_equal(req(f, 5)->target, PIP_ID "?api-version=2022-07-01");
	assert_string_equal(req(f, 7)->target, PIP_ID "?api-version=2022-07-01");
	assert_int_equal(ts_n_requests(&f->ts), 8);
}

static void test_create_lro_failed_deletes_vm(void **state)
{
	struct fx *f = *state;
	struct ts_response resp[] = {
	    {200, NULL, TOKEN1, 0},
	    {200, NULL, SIZES, 0},
	    {201, hdr(f, 0, "Azure-AsyncOperation", "/op/2", NULL), "{}", 0},
	    {200, "x-ms-request-id: rid-9\r\n",
	     "{\"status\":\"Failed\",\"error\":{\"code\":\"OSProvisioningTimedOut\",\"message\":"
	     "\"OS provisioning did not finish\"}}",
	     0},
	    {202, hdr(f, 1, "Location", "/oploc/2", "Retry-After: 1\r\n"), NULL, 0},
	    {202, "Retry-After: 1\r\n", NULL, 0},
	    {200, NULL, NULL, 0},
	};
	ts_set_responses(&f->ts, resp, ELEMENTSOF(resp));
	parse(f, true, NULL);
	assert_int_equal(init(f, false), 0);
	struct provider_instance inst = {0};
	assert_int_equal(azure_provider_ops.create_instance(f->p, &spec, &inst, &f->err), -EIO);
	assert_null(inst.id);
	assert_string_equal(f->err->code, "OSProvisioningTimedOut");
	assert_string_equal(f->err->request_id, "rid-9");
	assert_true(str_startswith(f->err->message,
				   "creating Azure VM podvm-abc (size Standard_DC2as_v5, AMD "
				   "SEV-SNP): "));
	assert_non_null(strstr(f->err->message, "OS provisioning did not finish"));
	assert_string_equal(req(f, 4)->method, "DELETE");
	assert_string_equal(req(f, 4)->target, VM_PATH "?api-version=2022-08-01");
	assert_string_equal(req(f, 5)->target, "/oploc/2");
	assert_string_equal(req(f, 6)->target, "/oploc/2");
	assert_int_equal(ts_n_requests(&f->ts), 7);
}

static void test_create_deadline_deletes_vm(void **state)
{
	struct fx *f = *state;
	struct ts_response resp[] = {
	    {200, NULL, TOKEN1, 0},
	    {200, NULL, SIZES, 0},
	    {201, hdr(f, 0, "Azure-AsyncOperation", "/op/3", "Retry-After: 10\r\n"), "{}", 0},
	    {200, "Retry-After: 10\r\n", "{\"status\":\"InProgress\"}", 0},
	    {200, "Retry-After: 10\r\n", "{\"status\":\"InProgress\"}", 0},
	    {200, "Retry-After: 10\r\n", "{\"status\":\"InProgress\"}", 0},
	    {204, NULL, NULL, 0},
	};
	ts_set_responses(&f->ts, resp, ELEMENTSOF(resp));
	const char *extra[] = {"-azure-operation-timeout", "30s", "-disable-cvm", NULL};
	parse(f, true, extra);
	assert_int_equal(init(f, false), 0);
	struct provider_instance inst = {0};
	assert_int_equal(azure_provider_ops.create_instance(f->p, &spec, &inst, &f->err),
			 -ETIMEDOUT);
	assert_non_null(strstr(f->err->message, "not confidential"));
	assert_non_null(strstr(f->err->message, "deadline"));
	assert_int_equal(ts_n_requests(&f->ts), 7);
	assert_string_equal(req(f, 6)->method, "DELETE");
	json_t *vm = json_loads(req(f, 2)->body, 0, NULL);
	assert_null(jpath(vm, "properties.securityProfile"));
	json_decref(vm);
}

static void test_arm_error_fields(void **state)
{
	struct fx *f = *state;
	struct ts_response resp[] = {
	    {200, NULL, TOKEN1, 0},
	    {200, NULL, SIZES, 0},
	    {400, "x-ms-request-id: req-42\r\n",
	     "{\"error\":{\"code\":\"InvalidParameter\",\"message\":\"The value of parameter "
	     "imageReference is invalid.\",\"target\":\"imageReference\"}}",
	     0},
	};
	ts_set_responses(&f->ts, resp, ELEMENTSOF(resp));
	parse(f, true, NULL);
	assert_int_equal(init(f, false), 0);
	struct provider_instance inst = {0};
	assert_int_equal(azure_provider_ops.create_instance(f->p, &spec, &inst, &f->err), -EINVAL);
	assert_int_equal(f->err->status, 400);
	assert_string_equal(f->err->code, "InvalidParameter");
	assert_string_equal(f->err->request_id, "req-42");
	assert_non_null(strstr(f->err->message, "HTTP 400 InvalidParameter: The value of parameter "
						"imageReference is invalid. (request id req-42)"));
	assert_null(strstr(f->err->message, "tok-1"));
	/* a refused PUT created nothing: no delete */
	assert_int_equal(ts_n_requests(&f->ts), 3);
}

static void test_instance_type_refused(void **state)
{
	struct fx *f = *state;
	struct ts_response resp[] = {{200, NULL, TOKEN1, 0}, {200, NULL, SIZES, 0}};
	ts_set_responses(&f->ts, resp, ELEMENTSOF(resp));
	parse(f, true, NULL);
	assert_int_equal(init(f, false), 0);
	struct provider_instance_spec s2 = spec;
	s2.machine_type = "Standard_DC4as_v5";
	struct provider_instance inst = {0};
	assert_true(azure_provider_ops.create_instance(f->p, &s2, &inst, &f->err) < 0);
	assert_non_null(strstr(f->err->message, "failed to verify instance type"));
	assert_int_equal(ts_n_requests(&f->ts), 2);
}

/* ---- retries, delete, list ---- */

static void test_429_retried(void **state)
{
	struct fx *f = *state;
	struct ts_response resp[] = {
	    {200, NULL, TOKEN1, 0},
	    {200, NULL, SIZES, 0},
	    {429, "Retry-After: 0\r\n",
	     "{\"error\":{\"code\":\"TooManyRequests\",\"message\":\"slow down\"}}", 0},
	    {200, NULL, "{\"value\":[]}", 0},
	};
	ts_set_responses(&f->ts, resp, ELEMENTSOF(resp));
	parse(f, true, NULL);
	assert_int_equal(init(f, false), 0);
	struct provider_instance *v = NULL;
	size_t n = 9;
	assert_int_equal(azure_provider_ops.list_instances(f->p, &v, &n, &f->err), 0);
	assert_int_equal(n, 0);
	provider_instances_free(v, n);
	assert_int_equal(ts_n_requests(&f->ts), 4);
	assert_string_equal(req(f, 2)->target, req(f, 3)->target);
}

static void test_delete(void **state)
{
	struct fx *f = *state;
	struct ts_response resp[] = {
	    {200, NULL, TOKEN1, 0},
	    {200, NULL, SIZES, 0},
	    {404, NULL, "{\"error\":{\"code\":\"ResourceNotFound\",\"message\":\"gone\"}}", 0},
	    {202, hdr(f, 0, "Azure-AsyncOperation", "/op/del", NULL), NULL, 0},
	    {200, NULL, "{\"status\":\"Succeeded\"}", 0},
	    {409, NULL, "{\"error\":{\"code\":\"OperationNotAllowed\",\"message\":\"busy\"}}", 0},
	};
	ts_set_responses(&f->ts, resp, ELEMENTSOF(resp));
	parse(f, true, NULL);
	assert_int_equal(init(f, false), 0);
	/* missing = success */
	assert_int_equal(azure_provider_ops.delete_instance(f->p, VM_PATH, &f->err), 0);
	assert_null(f->err);
	assert_string_equal(req(f, 2)->method, "DELETE");
	assert_string_equal(req(f, 2)->target, VM_PATH "?api-version=2022-08-01");
	/* long-running */
	assert_int_equal(azure_provider_ops.delete_instance(f->p, VM_PATH, &f->err), 0);
	assert_string_equal(req(f, 4)->target, "/op/del");
	/* a real failure */
	assert_int_equal(azure_provider_ops.delete_instance(f->p, VM_PATH, &f->err), -EEXIST);
	assert_string_equal(f->err->code, "OperationNotAllowed");
	assert_true(str_startswith(f->err->message, "deleting Azure VM " VM_PATH ": HTTP 409"));
	pp_error_free(f->err);
	f->err = NULL;
	/* not an ARM VM id: refused without a request */
	size_t before = ts_n_requests(&f->ts);
	assert_int_equal(azure_provider_ops.delete_instance(f->p, "i-123", &f->err), -EINVAL);
	assert_int_equal(ts_n_requests(&f->ts), before);
}

static void test_list_next_link_and_tags(void **state)
{
	struct fx *f = *state;
	char page1[1024];
	snprintf(page1, sizeof(page1),
		 "{\"value\":[{\"id\":\"/x/a\",\"name\":\"a\",\"tags\":{\"peerpod-sandbox-id\":"
		 "\"sa\",\"peerpod-node\":\"node-1\"}},{\"id\":\"/x/b\",\"name\":\"b\",\"tags\":{"
		 "\"other\":\"1\"}},{\"id\":\"/x/n\",\"name\":\"n\"}],\"nextLink\":"
		 "\"http://127.0.0.1:%u/subscriptions/sub-1/resourceGroups/rg1/providers/"
		 "Microsoft.Compute/virtualMachines?api-version=2022-08-01&$skiptoken=abc\"}",
		 f->ts.port);
	struct ts_response resp[] = {
	    {200, NULL, TOKEN1, 0},
	    {200, NULL, SIZES, 0},
	    {200, NULL, page1, 0},
	    {200, NULL,
	     "{\"value\":[{\"id\":\"/x/c\",\"name\":\"c\",\"tags\":{\"peerpod-sandbox-id\":\"sc\"},"
	     "\"properties\":{\"provisioningState\":\"Succeeded\"}},{\"id\":\"/x/d\",\"name\":"
	     "\"d\",\"tags\":{\"peerpod-sandbox-id\":\"sd\"},\"properties\":{"
	     "\"provisioningState\":\"Deleting\"}}]}",
	     0},
	    {200, NULL, "{\"value\":[],\"nextLink\":\"http://evil.example/steal\"}", 0},
	};
	ts_set_responses(&f->ts, resp, ELEMENTSOF(resp));
	parse(f, true, NULL);
	assert_int_equal(init(f, false), 0);
	struct provider_instance *v = NULL;
	size_t n = 0;
	assert_int_equal(azure_provider_ops.list_instances(f->p, &v, &n, &f->err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].id, "/x/a");
	assert_string_equal(v[0].name, "a");
	assert_string_equal(v[0].sandbox_id, "sa");
	assert_string_equal(v[0].node_name, "node-1");
	assert_string_equal(v[1].id, "/x/c");
	assert_string_equal(v[1].sandbox_id, "sc");
	assert_string_equal(v[1].node_name, "");
	provider_instances_free(v, n);
	assert_string_equal(req(f, 2)->target,
			    "/subscriptions/sub-1/resourceGroups/rg1/providers/Microsoft.Compute/"
			    "virtualMachines?api-version=2022-08-01");
	assert_non_null(strstr(req(f, 3)->target, "skiptoken=abc"));
	/* a nextLink elsewhere does not get the token */
	v = NULL;
	assert_int_equal(azure_provider_ops.list_instances(f->p, &v, &n, &f->err), -EINVAL);
	assert_non_null(strstr(f->err->message, "evil.example"));
	assert_int_equal(ts_n_requests(&f->ts), 5);
}

/* ---- configuration ---- */

static void expect_config_error(struct fx *f, const char *const *argv, int argc, const char *want)
{
	struct azure_settings s = {0};
	struct config_table t = {azure_provider_ops.options, azure_provider_ops.n_options, &s};
	int argind;
	_cleanup_free_ char *msg = NULL;
	assert_int_equal(config_parse(&t, 1, argc, (char **)argv, &argind, &msg), 0);
	struct pp_error *err = NULL;
	int r = azure_provider_ops.verify_config(&s, &err);
	if (!want) {
		assert_int_equal(r, 0);
	} else {
		assert_int_equal(r, -EINVAL);
		if (!strstr(err->message, want))
			fail_msg("\"%s\" does not contain \"%s\"", err->message, want);
	}
	pp_error_free(err);
	config_free(azure_provider_ops.options, azure_provider_ops.n_options, &s);
}

static void test_verify_config(void **state)
{
	struct fx *f = *state;
	const char *ok[] = {"-subscriptionid", SUB,    "-region",  "eastus", "-resourcegroup", RG,
			    "-subnetid",       SUBNET, "-imageid", IMAGE};
	/* no secret, no federated token: managed identity, nothing else needed */
	expect_config_error(f, ok, ELEMENTSOF(ok), NULL);
	expect_config_error(f, ok, 8, "-imageid (AZURE_IMAGE_ID) is required");
	expect_config_error(f, ok + 2, 8, "-subscriptionid (AZURE_SUBSCRIPTION_ID) is required");
	const char *secret[] = {"-subscriptionid", SUB,   "-region",   "eastus",
				"-resourcegroup",  RG,    "-subnetid", SUBNET,
				"-imageid",        IMAGE, "-secret",   "x",
				"-clientid",       "c"};
	expect_config_error(f, secret, ELEMENTSOF(secret),
			    "-tenantid (AZURE_TENANT_ID) is required with a client secret");
	env_add("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token");
	expect_config_error(f, ok, ELEMENTSOF(ok),
			    "-clientid (AZURE_CLIENT_ID) is required with workload identity");
	const char *bad_image[] = {"-subscriptionid", SUB,      "-region",   "eastus",
				   "-resourcegroup",  RG,       "-subnetid", SUBNET,
				   "-imageid",        "ubuntu", "-clientid", "c",
				   "-tenantid",       "t"};
	expect_config_error(f, bad_image, ELEMENTSOF(bad_image), "-imageid (AZURE_IMAGE_ID)");
	const char *bad_subnet[] = {"-subscriptionid", SUB,   "-region",   "eastus",
				    "-resourcegroup",  RG,    "-subnetid", "subnet-1",
				    "-imageid",        IMAGE, "-clientid", "c",
				    "-tenantid",       "t"};
	expect_config_error(f, bad_subnet, ELEMENTSOF(bad_subnet), "-subnetid (AZURE_SUBNET_ID)");
	const char *bad_tags[] = {"-subscriptionid", SUB,   "-region",   "eastus",
				  "-resourcegroup",  RG,    "-subnetid", SUBNET,
				  "-imageid",        IMAGE, "-tags",     "novalue",
				  "-clientid",       "c",   "-tenantid", "t"};
	expect_config_error(f, bad_tags, ELEMENTSOF(bad_tags), "-tags (TAGS)");
}

static void test_options_defaults(void **state)
{
	struct fx *f = *state;
	parse(f, true, NULL);
	assert_string_equal(f->s.instance_size, "Standard_DC2as_v5");
	assert_string_equal(f->s.ssh_username, "peerpod");
	assert_int_equal(f->s.operation_timeout_ns, 600 * NSEC_PER_SEC);
	assert_false(f->s.disable_cvm);
	assert_false(f->s.use_public_ip);
	assert_int_equal(f->s.root_volume_size_gib, 0);
	assert_null(f->s.zone);
	/* environment names of WIRE.md 8.3 */
	config_free(azure_provider_ops.options, azure_provider_ops.n_options, &f->s);
	memset(&f->s, 0, sizeof(f->s));
	env_add("DISABLECVM", "true");
	env_add("USE_PUBLIC_IP", "1");
	env_add("AZURE_INSTANCE_SIZE", "Standard_DC4as_v5");
	env_add("AZURE_OPERATION_TIMEOUT", "90s");
	parse(f, true, NULL);
	assert_true(f->s.disable_cvm);
	assert_true(f->s.use_public_ip);
	assert_string_equal(f->s.instance_size, "Standard_DC4as_v5");
	assert_int_equal(f->s.operation_timeout_ns, 90 * NSEC_PER_SEC);
}

static void test_verify_cloud(void **state)
{
	struct fx *f = *state;
	struct ts_response resp[] = {
	    {200, NULL, TOKEN1, 0},
	    {200, NULL, SIZES, 0},
	    {200, NULL, "{\"name\":\"rg1\"}", 0},
	    {404, "x-ms-request-id: r-404\r\n",
	     "{\"error\":{\"code\":\"NotFound\",\"message\":\"Resource not found.\"}}", 0},
	};
	ts_set_responses(&f->ts, resp, ELEMENTSOF(resp));
	parse(f, true, NULL);
	assert_int_equal(init(f, true), -ENOENT);
	assert_null(f->p);
	assert_true(str_startswith(f->err->message, "CLOUD_CONFIG_VERIFY: subnet " SUBNET ": "));
	assert_non_null(strstr(f->err->message, "NotFound"));
	assert_string_equal(req(f, 2)->target,
			    "/subscriptions/sub-1/resourcegroups/rg1?api-version=2021-04-01");
	assert_string_equal(req(f, 3)->target, SUBNET "?api-version=2022-07-01");
}

static void test_verify_cloud_ok(void **state)
{
	struct fx *f = *state;
	struct ts_response resp[] = {
	    {200, NULL, TOKEN1, 0},
	    {200, NULL, SIZES, 0},
	    {200, NULL, "{}", 0},
	};
	ts_set_responses(&f->ts, resp, ELEMENTSOF(resp));
	parse(f, true, NULL);
	assert_int_equal(init(f, true), 0);
	assert_int_equal(ts_n_requests(&f->ts), 5);
	assert_string_equal(req(f, 4)->target, IMAGE "?api-version=2022-08-01");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_vm_body_confidential, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vm_body_plain_public_ip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vm_body_secure_boot, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_image_kinds, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_user_data_limit, setup, teardown),
	    cmocka_unit_test(test_size_tee),
	    cmocka_unit_test_setup_teardown(test_ssh_keys, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_token_cache_and_refresh, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_workload_identity_rereads_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_managed_identity, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_token_one_request_for_many, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_token_errors_hide_secrets, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_create_success, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_create_public_ip_and_annotations, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_create_lro_failed_deletes_vm, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_create_deadline_deletes_vm, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_arm_error_fields, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_instance_type_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_429_retried, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_list_next_link_and_tags, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_verify_config, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_options_defaults, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_verify_cloud, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_verify_cloud_ok, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

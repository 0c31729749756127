/* providers/aws: pod VMs as EC2 instances through the EC2 Query API (SigV4, version 2016-11-15).
 * Each instance carries the project's tags, which is how list_instances finds ours for the leak
 * sweep; RunInstances is made idempotent per sandbox with a ClientToken, so a retried create
 * never starts a second VM. */
#include <libxml/parser.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <time.h>

#include "aws-internal.h"

#define EBS_MAX_GIB 65536
#define TAG_KEY_MAX 128
#define TAG_VALUE_MAX 256

static int validate_tags(const void *field, char **ret_msg)
{
	char *const *v = *(char **const *)field;
	for (size_t i = 0; v && v[i]; i++) {
		const char *eq = strchr(v[i], '=');
		if (!eq || eq == v[i])
			return str_set_message(ret_msg, EINVAL, "tag \"%s\" is not key=value",
					       v[i]);
		if ((size_t)(eq - v[i]) > TAG_KEY_MAX || strlen(eq + 1) > TAG_VALUE_MAX)
			return str_set_message(ret_msg, EINVAL,
					       "tag \"%s\": keys are at most %d characters, "
					       "values %d",
					       v[i], TAG_KEY_MAX, TAG_VALUE_MAX);
	}
	return 0;
}

#define S(m) offsetof(struct aws_settings, m)
static const struct config_option aws_options[] = {
    {"aws-access-key-id", "AWS_ACCESS_KEY_ID", CONFIG_SECRET, NULL, S(access_key_id),
     "access key id", NULL},
    {"aws-secret-key", "AWS_SECRET_ACCESS_KEY", CONFIG_SECRET, NULL, S(secret_key),
     "secret access key", NULL},
    {"aws-session-token", "AWS_SESSION_TOKEN", CONFIG_SECRET, NULL, S(session_token),
     "session token of temporary keys", NULL},
    {"aws-region", "AWS_REGION", CONFIG_STRING, NULL, S(region),
     "region (default: the instance metadata's)", NULL},
    {"instance-type", "PODVM_INSTANCE_TYPE", CONFIG_STRING, "m6a.large", S(instance_type),
     "default instance type of pod VMs", NULL},
    {"instance-types", "PODVM_INSTANCE_TYPES", CONFIG_LIST, NULL, S(instance_types),
     "instance types pods may ask for (comma-separated)", NULL},
    {"imageid", "PODVM_AMI_ID", CONFIG_STRING, NULL, S(image_id),
     "AMI of pod VMs (the pod's image annotation overrides it)", NULL},
    {"keyname", "SSH_KP_NAME", CONFIG_STRING, NULL, S(key_name),
     "EC2 key pair name (default: the instance metadata's)", NULL},
    {"subnetid", "AWS_SUBNET_ID", CONFIG_STRING, NULL, S(subnet_id),
     "subnet of pod VMs (default: the instance metadata's)", NULL},
    {"securitygroupids", "AWS_SG_IDS", CONFIG_LIST, NULL, S(security_group_ids),
     "security groups of pod VMs (default: the instance metadata's)", NULL},
    {"use-lt", "USE_PODVM_LAUNCHTEMPLATE", CONFIG_BOOL, "false", S(use_lt),
     "launch pod VMs from a launch template", NULL},
    {"aws-lt-name", "PODVM_LAUNCHTEMPLATE_NAME", CONFIG_STRING, "kata", S(lt_name),
     "launch template name", NULL},
    {"use-public-ip", "USE_PUBLIC_IP", CONFIG_BOOL, "false", S(use_public_ip),
     "give pod VMs a public IP and connect to it", NULL},
    {"root-volume-size", "ROOT_VOLUME_SIZE", CONFIG_UINT, "30", S(root_volume_size_gib),
     "root volume size in GiB (at least the AMI's)", NULL},
    {"disable-cvm", "DISABLECVM", CONFIG_BOOL, "false", S(disable_cvm),
     "plain instances (no AMD SEV-SNP)", NULL},
    {"tags", "TAGS", CONFIG_LIST, NULL, S(tags), "extra tags, key=value,key=value", validate_tags},
    {"aws-profile", NULL, CONFIG_STRING, NULL, S(profile),
     "shared-configuration profile (not supported: use keys or web identity)", NULL},
    {NULL, "AWS_ROLE_ARN", CONFIG_STRING, NULL, S(role_arn), "web identity: role to assume", NULL},
    {NULL, "AWS_WEB_IDENTITY_TOKEN_FILE", CONFIG_STRING, NULL, S(web_identity_token_file),
     "web identity: token file (re-read at each refresh)", NULL},
    {NULL, "AWS_ROLE_SESSION_NAME", CONFIG_STRING, NULL, S(role_session_name),
     "web identity: session name", NULL},
    {NULL, "AWS_ENDPOINT_URL", CONFIG_STRING, NULL, S(endpoint_url),
     "endpoint of every AWS service", NULL},
    {NULL, "AWS_ENDPOINT_URL_EC2", CONFIG_STRING, NULL, S(endpoint_url_ec2), "EC2 endpoint", NULL},
    {NULL, "AWS_ENDPOINT_URL_STS", CONFIG_STRING, NULL, S(endpoint_url_sts), "STS endpoint", NULL},
    {NULL, "AWS_EC2_METADATA_SERVICE_ENDPOINT", CONFIG_STRING, NULL, S(imds_endpoint),
     "instance metadata service (default http://169.254.169.254)", NULL},
};
#undef S

struct provider {
	const struct aws_settings *s;
	char *region;
	char *subnet_id;
	char **sg_ids;
	char *key_name;
	struct aws_endpoint ec2;
	struct aws_credential_provider creds;
	struct instance_type_catalog catalog;
	bool have_catalog;
	/* the root device of the last image asked about (almost always the one image) */
	pthread_mutex_t image_lock;
	char *image_id;
	struct ec2_image image;
};

/* ---- helpers ---- */

static void sleep_ns(int64_t ns)
{
	struct timespec ts = {ns / NSEC_PER_SEC, ns % NSEC_PER_SEC};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static bool region_valid(const char *s)
{
	if (str_empty(s) || strlen(s) > SIGV4_MAX_SCOPE_PART_BYTES)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-'))
			return false;
	return true;
}

static bool url_valid(const char *s)
{
	struct aws_endpoint e = {0};
	if (aws_endpoint_parse(s, &e) < 0)
		return false;
	aws_endpoint_done(&e);
	return true;
}

static bool instance_id_plausible(const char *s)
{
	return !str_empty(s) && strlen(s) <= 64;
}

static struct aws_query query(struct provider *p, const char *action)
{
	return (struct aws_query){
	    .endpoint = &p->ec2,
	    .region = p->region,
	    .service = "ec2",
	    .action = action,
	    .version = EC2_API_VERSION,
	    .credentials = &p->creds,
	};
}

static int ec2_call(struct provider *p, const char *action, const struct aws_form *f,
		    char **ret_body, size_t *ret_len, struct pp_error **reterr)
{
	struct aws_query q = query(p, action);
	return aws_query_call(&q, f, ret_body, ret_len, reterr);
}

static int malformed(struct pp_error **reterr, const char *action, int r)
{
	return pp_error_set(reterr, r == -ENOMEM ? ENOMEM : EBADMSG, "ec2 %s: malformed response",
			    action);
}

int aws_client_token(const char *sandbox_id, char ret[65])
{
	static const char prefix[] = "peerpod-create:";
	if (str_empty(sandbox_id))
		return -EINVAL;
	_cleanup_free_ char *in = str_printf("%s%s", prefix, sandbox_id);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned md_len = 0;
	if (!in)
		return -ENOMEM;
	if (!EVP_Digest(in, strlen(in), md, &md_len, EVP_sha256(), NULL) || md_len != 32)
		return -EIO;
	for (size_t i = 0; i < md_len; i++)
		snprintf(ret + 2 * i, 3, "%02x", md[i]);
	return 0;
}

/* ---- the RunInstances form ---- */

static bool reserved_tag(const char *key, size_t len)
{
	static const char *const ours[] = {"Name", AWS_TAG_NODE, AWS_TAG_SANDBOX, AWS_TAG_POD};
	for (size_t i = 0; i < ELEMENTSOF(ours); i++)
		if (strlen(ours[i]) == len && memcmp(ours[i], key, len) == 0)
			return true;
	return false;
}

/* TAGS (a later duplicate wins, ours override), then Name and the project's tags. */
static void add_tags(struct aws_form *f, unsigned spec_n, char *const *tags,
		     const struct provider_instance_spec *spec, const char *pod)
{
	unsigned n = 0;
	for (size_t i = 0; tags && tags[i]; i++) {
		const char *eq = strchr(tags[i], '=');
		if (!eq)
			continue;
		size_t kl = (size_t)(eq - tags[i]);
		if (reserved_tag(tags[i], kl))
			continue;
		bool later = false;
		for (size_t j = i + 1; tags[j] && !later; j++)
			later = strncmp(tags[j], tags[i], kl + 1) == 0;
		if (later)
			continue;
		_cleanup_free_ char *key = strndup(tags[i], kl);
		if (!key) {
			f->err = -ENOMEM;
			return;
		}
		n++;
		aws_form_add_fmt(f, key, "TagSpecification.%u.Tag.%u.Key", spec_n, n);
		aws_form_add_fmt(f, eq + 1, "TagSpecification.%u.Tag.%u.Value", spec_n, n);
	}
	const char *ours[][2] = {
	    {"Name", spec->instance_name},
	    {AWS_TAG_NODE, spec->node_name ?: ""},
	    {AWS_TAG_SANDBOX, spec->sandbox_id},
	    {AWS_TAG_POD, pod},
	};
	for (size_t i = 0; i < ELEMENTSOF(ours); i++) {
		n++;
		aws_form_add_fmt(f, ours[i][0], "TagSpecification.%u.Tag.%u.Key", spec_n, n);
		aws_form_add_fmt(f, ours[i][1], "TagSpecification.%u.Tag.%u.Value", spec_n, n);
	}
}

int aws_run_instances_form(const struct aws_run_params *rp,
			   const struct provider_instance_spec *spec, struct aws_form *f,
			   struct pp_error **reterr)
{
	const struct aws_settings *s = rp->settings;
	size_t ud_len = strlen(spec->user_data ?: "");
	if (ud_len > AWS_USER_DATA_MAX_BYTES)
		return pp_error_set(reterr, E2BIG,
				    "the pod VM's user data is %zu bytes, above EC2's limit of %d "
				    "bytes (before base64)",
				    ud_len, AWS_USER_DATA_MAX_BYTES);
	_cleanup_free_ char *ud = malloc(4 * ((ud_len + 2) / 3) + 1);
	_cleanup_free_ char *pod =
	    str_printf("%s/%s", spec->pod_namespace ?: "", spec->pod_name ?: "");
	if (!ud || !pod)
		return -ENOMEM;
	/* EC2 tag values hold at most 256 characters; Kubernetes allows a longer namespace/name.
	 * The sweep reads only the node and sandbox tags, so a cut pod tag is harmless. */
	if (strlen(pod) > AWS_TAG_VALUE_MAX)
		pod[AWS_TAG_VALUE_MAX] = '\0';
	EVP_EncodeBlock((unsigned char *)ud, (const unsigned char *)(spec->user_data ?: ""),
			(int)ud_len);

	if (s->use_lt) {
		aws_form_add(f, "LaunchTemplate.LaunchTemplateName", s->lt_name);
	} else {
		aws_form_add(f, "ImageId", rp->image_id);
		aws_form_add(f, "InstanceType", rp->instance_type);
	}
	aws_form_add(f, "MinCount", "1");
	aws_form_add(f, "MaxCount", "1");
	aws_form_add(f, "ClientToken", rp->client_token);
	aws_form_add(f, "UserData", ud);
	if (!s->use_lt) {
		if (s->use_public_ip) {
			/* a public address needs the interface spelt out, which then carries the
			 * subnet and groups instead of the top level */
			aws_form_add(f, "NetworkInterface.1.DeviceIndex", "0");
			aws_form_add(f, "NetworkInterface.1.AssociatePublicIpAddress", "true");
			aws_form_add(f, "NetworkInterface.1.DeleteOnTermination", "true");
			if (!str_empty(rp->subnet_id))
				aws_form_add(f, "NetworkInterface.1.SubnetId", rp->subnet_id);
			for (size_t i = 0; rp->security_group_ids && rp->security_group_ids[i]; i++)
				aws_form_add_fmt(f, rp->security_group_ids[i],
						 "NetworkInterface.1.SecurityGroupId.%zu", i + 1);
		} else {
			if (!str_empty(rp->subnet_id))
				aws_form_add(f, "SubnetId", rp->subnet_id);
			for (size_t i = 0; rp->security_group_ids && rp->security_group_ids[i]; i++)
				aws_form_add_fmt(f, rp->security_group_ids[i],
						 "SecurityGroupId.%zu", i + 1);
		}
		if (!str_empty(rp->key_name))
			aws_form_add(f, "KeyName", rp->key_name);
		if (!str_empty(rp->root_device_name) && rp->volume_size_gib > 0) {
			char size[24];
			snprintf(size, sizeof(size), "%llu",
				 (unsigned long long)rp->volume_size_gib);
			aws_form_add(f, "BlockDeviceMapping.1.DeviceName", rp->root_device_name);
			aws_form_add(f, "BlockDeviceMapping.1.Ebs.VolumeSize", size);
			aws_form_add(f, "BlockDeviceMapping.1.Ebs.DeleteOnTermination", "true");
		}
		if (!s->disable_cvm)
			aws_form_add(f, "CpuOptions.AmdSevSnp", "enabled");
		aws_form_add(f, "MetadataOptions.HttpTokens", "required");
		aws_form_add(f, "MetadataOptions.HttpEndpoint", "enabled");
	}
	aws_form_add(f, "TagSpecification.1.ResourceType", "instance");
	add_tags(f, 1, s->tags, spec, pod);
	aws_form_add(f, "TagSpecification.2.ResourceType", "volume");
	add_tags(f, 2, s->tags, spec, pod);
	explicit_bzero(ud, strlen(ud));
	if (f->err < 0)
		return pp_error_set(reterr, f->err, "cannot build the RunInstances request: %s",
				    strerror(-f->err));
	return 0;
}

/* ---- images ---- */

static int describe_image(struct provider *p, const char *image_id, struct ec2_image *ret,
			  struct pp_error **reterr)
{
	struct aws_form f = {0};
	aws_form_add(&f, "ImageId.1", image_id);
	_cleanup_free_ char *body = NULL;
	size_t len = 0;
	int r = ec2_call(p, "DescribeImages", &f, &body, &len, reterr);
	aws_form_done(&f);
	if (r < 0)
		return r;
	r = ec2_image_parse(body, len, image_id, ret);
	if (r == -ENOENT)
		return pp_error_set(reterr, ENOENT,
				    "image %s does not exist (or is not visible "
				    "to these credentials)",
				    image_id);
	return r < 0 ? malformed(reterr, "DescribeImages", r) : 0;
}

/* The root device name and size of an image, cached for the common case of one image. */
static int image_root(struct provider *p, const char *image_id, char **ret_device,
		      uint64_t *ret_gib, struct pp_error **reterr)
{
	pthread_mutex_lock(&p->image_lock);
	if (str_eq(p->image_id, image_id)) {
		*ret_device = str_dup(p->image.root_device_name);
		*ret_gib = p->image.root_snapshot_gib;
		pthread_mutex_unlock(&p->image_lock);
		return 0;
	}
	pthread_mutex_unlock(&p->image_lock);
	struct ec2_image img = {0};
	int r = describe_image(p, image_id, &img, reterr);
	if (r < 0)
		return r;
	*ret_device = str_dup(img.root_device_name);
	*ret_gib = img.root_snapshot_gib;
	char *id = strdup(image_id);
	pthread_mutex_lock(&p->image_lock);
	if (id) {
		free(p->image_id);
		ec2_image_done(&p->image);
		p->image_id = id;
		p->image = img;
	} else
		ec2_image_done(&img);
	pthread_mutex_unlock(&p->image_lock);
	return 0;
}

/* ---- instances ---- */

static int describe_one(struct provider *p, const char *id, struct ec2_instance **ret,
			size_t *ret_n, struct pp_error **reterr)
{
	struct aws_form f = {0};
	aws_form_add(&f, "InstanceId.1", id);
	_cleanup_free_ char *body = NULL;
	size_t len = 0;
	int r = ec2_call(p, "DescribeInstances", &f, &body, &len, reterr);
	aws_form_done(&f);
	if (r < 0)
		return r;
	r = ec2_instances_parse(body, len, ret, ret_n, NULL);
	return r < 0 ? malformed(reterr, "DescribeInstances", r) : 0;
}

/* Poll until the instance runs with the addresses we need (public IP mode), or the private
 * address appears; bounded by aws_tuning.ip_wait_ns. */
static int wait_addresses(struct provider *p, const char *id, bool need_public,
			  struct ec2_instance *inst, struct pp_error **reterr)
{
	int64_t deadline = now_ns() + aws_tuning.ip_wait_ns;
	int64_t pause = aws_tuning.ip_poll_initial_ns;
	for (;;) {
		struct ec2_instance *v = NULL;
		size_t n = 0;
		struct pp_error *e = NULL;
		int r = describe_one(p, id, &v, &n, &e);
		if (r < 0 && r != -ENOENT) { /* NotFound: not yet visible (eventual consistency) */
			ec2_instances_free(v, n);
			if (reterr && !*reterr)
				*reterr = e;
			else
				pp_error_free(e);
			return r;
		}
		pp_error_free(e);
		if (n > 0) {
			const struct ec2_instance *i = &v[0];
			if (str_eq(i->state, "terminated") || str_eq(i->state, "shutting-down") ||
			    str_eq(i->state, "stopped") || str_eq(i->state, "stopping")) {
				r = pp_error_set(reterr, EIO, "instance %s is %s before it ran", id,
						 i->state);
				ec2_instances_free(v, n);
				return r;
			}
			bool ok = !str_empty(i->private_ip) &&
				  (!need_public ||
				   (str_eq(i->state, "running") && !str_empty(i->public_ip)));
			if (ok) {
				free(inst->private_ip);
				free(inst->public_ip);
				inst->private_ip = TAKE_PTR(v[0].private_ip);
				inst->public_ip = TAKE_PTR(v[0].public_ip);
				ec2_instances_free(v, n);
				return 0;
			}
		}
		ec2_instances_free(v, n);
		if (now_ns() + pause > deadline)
			return pp_error_set(reterr, ETIMEDOUT,
					    "instance %s got no %s address within %llds", id,
					    need_public ? "public" : "private",
					    (long long)(aws_tuning.ip_wait_ns / NSEC_PER_SEC));
		sleep_ns(pause);
		pause = MIN(pause * 3 / 2, 5 * NSEC_PER_SEC);
	}
}

static int terminate(struct provider *p, const char *id, struct pp_error **reterr)
{
	struct aws_form f = {0};
	aws_form_add(&f, "InstanceId.1", id);
	_cleanup_free_ char *body = NULL;
	size_t len = 0;
	struct pp_error *e = NULL;
	int r = ec2_call(p, "TerminateInstances", &f, &body, &len, &e);
	aws_form_done(&f);
	if (r < 0 && e &&
	    (str_eq(e->code, "InvalidInstanceID.NotFound") ||
	     str_eq(e->code, "InvalidInstanceID.Malformed")))
		r = 0; /* gone already, or never an instance id: nothing to delete */
	if (r < 0 && reterr && !*reterr)
		*reterr = TAKE_PTR(e);
	pp_error_free(e);
	return r;
}

static int aws_create_instance(struct provider *p, const struct provider_instance_spec *spec,
			       struct provider_instance *ret, struct pp_error **reterr)
{
	const struct aws_settings *s = p->s;
	if (str_empty(spec->instance_name) || strlen(spec->instance_name) > TAG_VALUE_MAX)
		return pp_error_set(reterr, EINVAL, "invalid instance name \"%s\"",
				    spec->instance_name ?: "");
	if (str_empty(spec->sandbox_id) || strlen(spec->sandbox_id) > TAG_VALUE_MAX)
		return pp_error_set(reterr, EINVAL, "invalid sandbox id");
	_cleanup_free_ char *type = NULL, *msg = NULL, *device = NULL;
	const char *image = !str_empty(spec->image) ? spec->image : s->image_id;
	uint64_t snapshot_gib = 0;
	int r;
	if (!s->use_lt) {
		r = instance_type_select(&p->catalog, spec->machine_type, spec->vcpus,
					 spec->memory_mib, spec->gpus, &type, &msg);
		if (r < 0)
			return pp_error_set(reterr, r, "%s", msg ?: strerror(-r));
		if (str_empty(image))
			return pp_error_set(reterr, EINVAL,
					    "no image: set -imageid (PODVM_AMI_ID)");
		if (s->root_volume_size_gib > 0) {
			r = image_root(p, image, &device, &snapshot_gib, reterr);
			if (r < 0)
				return r;
		}
	}
	char token[65];
	r = aws_client_token(spec->sandbox_id, token);
	if (r < 0)
		return pp_error_set(reterr, r, "cannot derive the client token");
	struct aws_run_params rp = {
	    .settings = s,
	    .image_id = image,
	    .instance_type = type,
	    .subnet_id = p->subnet_id,
	    .security_group_ids = p->sg_ids,
	    .key_name = p->key_name,
	    .root_device_name = device,
	    .volume_size_gib = MAX(s->root_volume_size_gib, snapshot_gib),
	    .client_token = token,
	};
	struct aws_form f = {0};
	r = aws_run_instances_form(&rp, spec, &f, reterr);
	_cleanup_free_ char *body = NULL;
	size_t len = 0;
	if (r >= 0)
		r = ec2_call(p, "RunInstances", &f, &body, &len, reterr);
	aws_form_done(&f);
	if (r < 0)
		return r;
	struct ec2_instance *v = NULL;
	size_t n = 0;
	r = ec2_instances_parse(body, len, &v, &n, NULL);
	if (r < 0 || n != 1) {
		ec2_instances_free(v, n);
		return malformed(reterr, "RunInstances", r < 0 ? r : -EBADMSG);
	}
	struct ec2_instance inst = v[0];
	free(v);
	if (s->use_public_ip || str_empty(inst.private_ip)) {
		r = wait_addresses(p, inst.id, s->use_public_ip, &inst, reterr);
		if (r < 0) {
			/* roll back: an instance we cannot reach must not keep running */
			(void)terminate(p, inst.id, NULL);
			pp_error_prefix(reterr, "instance %s (terminated again)", inst.id);
			ec2_instance_done(&inst);
			return r;
		}
	}
	*ret = (struct provider_instance){
	    .id = TAKE_PTR(inst.id),
	    .name = strdup(spec->instance_name),
	    .sandbox_id = strdup(spec->sandbox_id),
	    .node_name = strdup(spec->node_name ?: ""),
	};
	if (s->use_public_ip && !str_empty(inst.public_ip))
		ret->ips[ret->n_ips++] = TAKE_PTR(inst.public_ip);
	ret->ips[ret->n_ips++] = TAKE_PTR(inst.private_ip);
	bool oom = !ret->name || !ret->sandbox_id || !ret->node_name;
	ec2_instance_done(&inst);
	if (oom) {
		provider_instance_done(ret);
		return -ENOMEM;
	}
	return 0;
}

static int aws_delete_instance(struct provider *p, const char *instance_id,
			       struct pp_error **reterr)
{
	if (!instance_id_plausible(instance_id))
		return pp_error_set(reterr, EINVAL, "invalid EC2 instance id \"%.64s\"",
				    instance_id ?: "");
	int r = terminate(p, instance_id, reterr);
	if (r < 0)
		pp_error_prefix(reterr, "deleting EC2 instance %s", instance_id);
	return r;
}

static int aws_list_instances(struct provider *p, struct provider_instance **ret, size_t *ret_n,
			      struct pp_error **reterr)
{
	static const char *const states[] = {"pending", "running", "stopping", "stopped"};
	struct provider_instance *out = NULL;
	size_t n_out = 0;
	_cleanup_free_ char *next = NULL;
	int r = 0;
	for (unsigned page = 0; r >= 0 && page < AWS_MAX_PAGES; page++) {
		struct aws_form f = {0};
		aws_form_add(&f, "Filter.1.Name", "tag-key");
		aws_form_add(&f, "Filter.1.Value.1", AWS_TAG_SANDBOX);
		aws_form_add(&f, "Filter.2.Name", "instance-state-name");
		for (size_t i = 0; i < ELEMENTSOF(states); i++)
			aws_form_add_fmt(&f, states[i], "Filter.2.Value.%zu", i + 1);
		aws_form_add(&f, "MaxResults", "1000");
		if (next)
			aws_form_add(&f, "NextToken", next);
		_cleanup_free_ char *body = NULL;
		size_t len = 0;
		r = ec2_call(p, "DescribeInstances", &f, &body, &len, reterr);
		aws_form_done(&f);
		if (r < 0)
			break;
		struct ec2_instance *v = NULL;
		size_t n = 0;
		next = mfree(next);
		r = ec2_instances_parse(body, len, &v, &n, &next);
		if (r < 0) {
			r = malformed(reterr, "DescribeInstances", r);
			break;
		}
		/* an empty page (the usual first sweep) allocates nothing */
		struct provider_instance *nv = n ? reallocarray(out, n_out + n, sizeof(*out)) : out;
		if (n && !nv) {
			ec2_instances_free(v, n);
			r = -ENOMEM;
			break;
		}
		out = nv;
		for (size_t i = 0; i < n; i++) {
			struct ec2_instance *e = &v[i];
			if (!e->sandbox_id) /* the filter asks for the tag; be sure */
				continue;
			struct provider_instance *pi = &out[n_out++];
			*pi = (struct provider_instance){
			    .id = TAKE_PTR(e->id),
			    .name = e->name ? TAKE_PTR(e->name) : strdup(""),
			    .sandbox_id = TAKE_PTR(e->sandbox_id),
			    .node_name = e->node_name ? TAKE_PTR(e->node_name) : strdup(""),
			};
			bool pub_first = p->s->use_public_ip && !str_empty(e->public_ip);
			char **first = pub_first ? &e->public_ip : &e->private_ip;
			char **second = pub_first ? &e->private_ip : &e->public_ip;
			if (!str_empty(*first))
				pi->ips[pi->n_ips++] = TAKE_PTR(*first);
			if (!str_empty(*second))
				pi->ips[pi->n_ips++] = TAKE_PTR(*second);
			if (!pi->id || !pi->name || !pi->node_name)
				r = -ENOMEM;
		}
		ec2_instances_free(v, n);
		if (!next)
			break;
	}
	if (r < 0) {
		provider_instances_free(out, n_out);
		pp_error_prefix(reterr, "listing EC2 instances");
		return r;
	}
	*ret = out;
	*ret_n = n_out;
	return 0;
}

/* ---- setup ---- */

static int aws_verify_config(const void *settings, struct pp_error **reterr)
{
	const struct aws_settings *s = settings;
	if (!str_empty(s->profile))
		return pp_error_set(reterr, EOPNOTSUPP,
				    "-aws-profile is not supported: use -aws-access-key-id/"
				    "-aws-secret-key, web identity (AWS_ROLE_ARN + "
				    "AWS_WEB_IDENTITY_TOKEN_FILE) or the instance role");
	if (str_empty(s->access_key_id) != str_empty(s->secret_key))
		return pp_error_set(reterr, EINVAL,
				    "-aws-access-key-id (AWS_ACCESS_KEY_ID) and -aws-secret-key "
				    "(AWS_SECRET_ACCESS_KEY) must be set together");
	if (!str_empty(s->session_token) && str_empty(s->access_key_id))
		return pp_error_set(reterr, EINVAL,
				    "-aws-session-token (AWS_SESSION_TOKEN) needs "
				    "-aws-access-key-id and -aws-secret-key");
	if (str_empty(s->access_key_id) &&
	    str_empty(s->role_arn) != str_empty(s->web_identity_token_file))
		return pp_error_set(reterr, EINVAL,
				    "AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE must be set "
				    "together");
	if (!str_empty(s->region) && !region_valid(s->region))
		return pp_error_set(reterr, EINVAL,
				    "-aws-region (AWS_REGION) \"%s\" is not a region", s->region);
	if (s->use_lt) {
		if (str_empty(s->lt_name))
			return pp_error_set(
			    reterr, EINVAL,
			    "-use-lt needs -aws-lt-name (PODVM_LAUNCHTEMPLATE_NAME)");
	} else {
		if (str_empty(s->image_id))
			return pp_error_set(reterr, EINVAL,
					    "-imageid (PODVM_AMI_ID) is required (or -use-lt)");
		if (str_empty(s->instance_type))
			return pp_error_set(
			    reterr, EINVAL,
			    "-instance-type (PODVM_INSTANCE_TYPE) must not be empty");
	}
	if (s->root_volume_size_gib > EBS_MAX_GIB)
		return pp_error_set(reterr, EINVAL,
				    "-root-volume-size (ROOT_VOLUME_SIZE) must be at most %d GiB",
				    EBS_MAX_GIB);
	const char *urls[][2] = {
	    {"AWS_ENDPOINT_URL", s->endpoint_url},
	    {"AWS_ENDPOINT_URL_EC2", s->endpoint_url_ec2},
	    {"AWS_ENDPOINT_URL_STS", s->endpoint_url_sts},
	    {"AWS_EC2_METADATA_SERVICE_ENDPOINT", s->imds_endpoint},
	};
	for (size_t i = 0; i < ELEMENTSOF(urls); i++)
		if (!str_empty(urls[i][1]) && !url_valid(urls[i][1]))
			return pp_error_set(reterr, EINVAL, "%s \"%s\" is not an http(s) URL",
					    urls[i][0], urls[i][1]);
	return 0;
}

/* Region, subnet, security groups and key name of the node we run on, where not configured. */
static int imds_defaults(struct provider *p, const char *imds_url, struct pp_error **reterr)
{
	const struct aws_settings *s = p->s;
	struct aws_imds m = {.endpoint = imds_url};
	int r = 0;
	if (str_empty(s->region)) {
		_cleanup_free_ char *region = NULL;
		r = aws_imds_get(&m, "/latest/meta-data/placement/region", &region, reterr);
		if (r < 0) {
			pp_error_prefix(reterr, "no -aws-region (AWS_REGION), and none from the "
						"instance metadata");
			goto out;
		}
		region[strcspn(region, "\r\n")] = 0;
		if (!region_valid(region)) {
			r = pp_error_set(reterr, EBADMSG,
					 "bad region \"%.64s\" from the instance "
					 "metadata",
					 region);
			goto out;
		}
		p->region = TAKE_PTR(region);
	}
	if (s->use_lt)
		goto out; /* the template holds the network and the key */
	/* best effort: without them EC2 uses the default VPC's subnet and group */
	if (str_empty(s->subnet_id) || !s->security_group_ids) {
		_cleanup_free_ char *mac = NULL;
		if (aws_imds_get(&m, "/latest/meta-data/mac", &mac, NULL) >= 0) {
			mac[strcspn(mac, "\r\n")] = 0;
			bool ok = !str_empty(mac) &&
				  strspn(mac, "0123456789abcdefABCDEF:") == strlen(mac);
			_cleanup_free_ char *base =
			    ok ? str_printf("/latest/meta-data/network/interfaces/macs/%s", mac)
			       : NULL;
			_cleanup_free_ char *subnet_path =
			    base ? str_printf("%s/subnet-id", base) : NULL;
			_cleanup_free_ char *sg_path =
			    base ? str_printf("%s/security-group-ids", base) : NULL;
			_cleanup_free_ char *v = NULL;
			if (subnet_path && str_empty(s->subnet_id) &&
			    aws_imds_get(&m, subnet_path, &v, NULL) >= 0) {
				v[strcspn(v, "\r\n")] = 0;
				if (!str_empty(v))
					p->subnet_id = TAKE_PTR(v);
			}
			v = mfree(v);
			if (sg_path && !s->security_group_ids &&
			    aws_imds_get(&m, sg_path, &v, NULL) >= 0) {
				strv_free(p->sg_ids);
				p->sg_ids = NULL;
				if (strv_split(v, "\r\n", true, &p->sg_ids) < 0)
					p->sg_ids = NULL;
			}
		}
	}
	if (str_empty(s->key_name)) {
		_cleanup_free_ char *listing = NULL, *openssh = NULL;
		(void)aws_imds_get(&m, "/latest/meta-data/public-keys/", &listing, NULL);
		if (!listing)
			(void)aws_imds_get(&m, "/latest/meta-data/public-keys/0/openssh-key",
					   &openssh, NULL);
		char *name = NULL;
		if (aws_imds_key_name_parse(listing, openssh, &name) >= 0)
			p->key_name = name;
	}
out:
	aws_imds_done(&m);
	return r;
}

/* The catalog of the default and allow-listed types, from DescribeInstanceTypes. */
static int catalog_init(struct provider *p, struct pp_error **reterr)
{
	const struct aws_settings *s = p->s;
	struct instance_type_spec *known = NULL;
	size_t n_known = 0;
	_cleanup_free_ char *next = NULL;
	int r = 0;
	for (unsigned page = 0; page < AWS_MAX_PAGES; page++) {
		struct aws_form f = {0};
		unsigned k = 0;
		aws_form_add_fmt(&f, s->instance_type, "InstanceType.%u", ++k);
		for (size_t i = 0; s->instance_types && s->instance_types[i]; i++)
			if (!str_eq(s->instance_types[i], s->instance_type))
				aws_form_add_fmt(&f, s->instance_types[i], "InstanceType.%u", ++k);
		if (next)
			aws_form_add(&f, "NextToken", next);
		_cleanup_free_ char *body = NULL;
		size_t len = 0;
		r = ec2_call(p, "DescribeInstanceTypes", &f, &body, &len, reterr);
		aws_form_done(&f);
		if (r < 0)
			break;
		struct instance_type_spec *v = NULL;
		size_t n = 0;
		next = mfree(next);
		r = ec2_instance_types_parse(body, len, &v, &n, &next);
		if (r < 0) {
			r = malformed(reterr, "DescribeInstanceTypes", r);
			break;
		}
		struct instance_type_spec *nk =
		    n ? reallocarray(known, n_known + n, sizeof(*known)) : known;
		if (n && !nk) {
			ec2_instance_types_free(v, n);
			r = -ENOMEM;
			break;
		}
		known = nk;
		memcpy(known + n_known, v, n * sizeof(*v));
		n_known += n;
		free(v);
		if (!next)
			break;
	}
	if (r >= 0) {
		_cleanup_free_ char *msg = NULL;
		r = instance_type_catalog_init(&p->catalog, s->instance_type, s->instance_types,
					       known, n_known, &msg);
		if (r < 0)
			pp_error_set(reterr, r, "%s", msg ?: strerror(-r));
		else
			p->have_catalog = true;
	}
	ec2_instance_types_free(known, n_known);
	if (r < 0)
		pp_error_prefix(reterr, "instance types");
	return r;
}

/* CLOUD_CONFIG_VERIFY: credentials work and the image or launch template exists. */
static int verify_cloud(struct provider *p, struct pp_error **reterr)
{
	if (!p->s->use_lt) {
		char *device = NULL;
		uint64_t gib = 0;
		int r = image_root(p, p->s->image_id, &device, &gib, reterr);
		free(device);
		return r;
	}
	struct aws_form f = {0};
	aws_form_add(&f, "LaunchTemplateName.1", p->s->lt_name);
	_cleanup_free_ char *body = NULL;
	size_t len = 0;
	int r = ec2_call(p, "DescribeLaunchTemplates", &f, &body, &len, reterr);
	aws_form_done(&f);
	return r;
}

static void aws_done(struct provider *p)
{
	if (!p)
		return;
	free(p->region);
	free(p->subnet_id);
	strv_free(p->sg_ids);
	free(p->key_name);
	aws_endpoint_done(&p->ec2);
	aws_credential_provider_done(&p->creds);
	if (p->have_catalog)
		instance_type_catalog_done(&p->catalog);
	pthread_mutex_destroy(&p->image_lock);
	free(p->image_id);
	ec2_image_done(&p->image);
	free(p);
}

static int endpoint_url(const char *specific, const char *all, const char *service,
			const char *region, char **ret)
{
	if (!str_empty(specific))
		*ret = strdup(specific);
	else if (!str_empty(all))
		*ret = strdup(all);
	else
		*ret = str_printf("https://%s.%s.amazonaws.com", service, region);
	return *ret ? 0 : -ENOMEM;
}

static int aws_init(const void *settings, const struct provider_context *ctx, struct provider **ret,
		    struct pp_error **reterr)
{
	const struct aws_settings *s = settings;
	/* libxml2 must be set up once before threads use it */
	xmlInitParser();
	struct provider *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->image_lock, NULL);
	pthread_mutex_init(&p->creds.lock, NULL);
	pthread_cond_init(&p->creds.cond, NULL);
	p->s = s;
	_cleanup_free_ char *ec2_url = NULL, *sts_url = NULL;
	const char *imds_url =
	    str_empty(s->imds_endpoint) ? AWS_DEFAULT_IMDS_ENDPOINT : s->imds_endpoint;
	_cleanup_free_ char *imds = strdup(imds_url);
	int r = imds ? 0 : -ENOMEM;
	if (r >= 0) {
		size_t l = strlen(imds);
		while (l > 0 && imds[l - 1] == '/')
			imds[--l] = 0;
		p->region = str_dup(s->region);
		p->subnet_id = str_dup(s->subnet_id);
		p->key_name = str_dup(s->key_name);
		if ((s->region && !p->region) || (s->subnet_id && !p->subnet_id) ||
		    (s->key_name && !p->key_name))
			r = -ENOMEM;
		for (size_t i = 0; r >= 0 && s->security_group_ids && s->security_group_ids[i];
		     i++) {
			size_t n = strv_length(p->sg_ids);
			char **nv = reallocarray(p->sg_ids, n + 2, sizeof(char *));
			if (!nv || !(nv[n] = strdup(s->security_group_ids[i]))) {
				if (nv)
					p->sg_ids = nv, nv[n] = NULL;
				r = -ENOMEM;
				break;
			}
			nv[n + 1] = NULL;
			p->sg_ids = nv;
		}
	}
	if (r >= 0)
		r = imds_defaults(p, imds, reterr);
	if (r >= 0)
		r = endpoint_url(s->endpoint_url_ec2, s->endpoint_url, "ec2", p->region, &ec2_url);
	if (r >= 0)
		r = endpoint_url(s->endpoint_url_sts, s->endpoint_url, "sts", p->region, &sts_url);
	if (r >= 0 && aws_endpoint_parse(ec2_url, &p->ec2) < 0)
		r = pp_error_set(reterr, EINVAL, "bad EC2 endpoint URL %s", ec2_url);
	if (r >= 0) {
		pthread_mutex_destroy(&p->creds.lock);
		pthread_cond_destroy(&p->creds.cond);
		r = aws_credential_provider_init(&p->creds, s, sts_url, imds, reterr);
	}
	if (r >= 0 && !s->use_lt)
		r = catalog_init(p, reterr);
	if (r >= 0 && ctx && ctx->cloud_config_verify) {
		r = verify_cloud(p, reterr);
		if (r < 0)
			pp_error_prefix(reterr, "CLOUD_CONFIG_VERIFY");
	}
	if (r < 0) {
		if (r == -ENOMEM)
			pp_error_set(reterr, ENOMEM, "out of memory");
		aws_done(p);
		return r;
	}
	*ret = p;
	return 0;
}

const struct provider_ops aws_provider_ops = {
    .name = "aws",
    .pod_network = true,
    .options = aws_options,
    .n_options = ELEMENTSOF(aws_options),
    .settings_size = sizeof(struct aws_settings),
    .verify_config = aws_verify_config,
    .init = aws_init,
    .done = aws_done,
    .create_instance = aws_create_instance,
    .delete_instance = aws_delete_instance,
    .list_instances = aws_list_instances,
};

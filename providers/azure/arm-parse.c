/* providers/azure: parsers of what ARM, Entra ID and IMDS answer. No I/O here, so the fuzz
 * target links only this; every text taken from a body is bounded and made printable. */
#include <arpa/inet.h>
#include <strings.h>

#include "azure/azure-internal.h"

#define CODE_MAX 256
#define MESSAGE_MAX 2048
#define ID_MAX 1024
#define DETAILS_MAX 3
#define LIST_PAGE_MAX 100000

static json_t *load(const char *body, size_t len)
{
	if (!body || len == 0)
		return NULL;
	return json_loadb(body, len, 0, NULL);
}

/* A printable, bounded copy of s (control characters become spaces). */
static char *clean_text(const char *s, size_t max)
{
	size_t n = strlen(s);
	bool cut = n > max;
	if (cut)
		n = max;
	char *r = malloc(n + 4);
	if (!r)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		r[i] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
	}
	if (cut)
		memcpy(r + n, "...", 3), n += 3;
	r[n] = 0;
	return r;
}

static const char *get_str(const json_t *o, const char *key)
{
	json_t *v = json_is_object(o) ? json_object_get(o, key) : NULL;
	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* A path-like id (resource ids, nextLinks are checked again by their users). */
static int dup_id(const char *s, char **ret)
{
	*ret = NULL;
	if (!s)
		return 0;
	if (strlen(s) > ID_MAX)
		return -EBADMSG;
	*ret = clean_text(s, ID_MAX);
	return *ret ? 0 : -ENOMEM;
}

static int error_of(const json_t *e, char **ret_code, char **ret_message)
{
	const char *code = get_str(e, "code");
	const char *message = get_str(e, "message");
	if (!code && !message)
		return -EBADMSG;
	struct buf b = {0};
	int r = buf_printf(&b, "%s", message ?: "");
	json_t *details = json_object_get(e, "details");
	size_t i;
	json_t *d;
	if (json_is_array(details))
		json_array_foreach(details, i, d)
		{
			if (i >= DETAILS_MAX || r < 0)
				break;
			const char *dc = get_str(d, "code"), *dm = get_str(d, "message");
			if (!dc && !dm)
				continue;
			r = buf_printf(&b, "%s%s%s%s", b.len ? "; " : "", dc ?: "",
				       dc && dm ? ": " : "", dm ?: "");
		}
	if (r >= 0)
		r = buf_append(&b, "", 1, 0);
	if (r < 0) {
		buf_done(&b);
		return -ENOMEM;
	}
	_cleanup_free_ char *c = code ? clean_text(code, CODE_MAX) : NULL;
	_cleanup_free_ char *m = clean_text((char *)b.data, MESSAGE_MAX);
	buf_done(&b);
	if ((code && !c) || !m)
		return -ENOMEM;
	*ret_code = TAKE_PTR(c);
	*ret_message = TAKE_PTR(m);
	return 0;
}

int arm_error_parse(const char *body, size_t len, char **ret_code, char **ret_message)
{
	_cleanup_(json_decrefp) json_t *j = load(body, len);
	if (!json_is_object(j))
		return -EBADMSG;
	json_t *e = json_object_get(j, "error");
	if (json_is_object(e))
		return error_of(e, ret_code, ret_message);
	if (json_is_string(e)) {
		/* OAuth 2 (Entra ID, IMDS) */
		const char *desc = get_str(j, "error_description");
		_cleanup_free_ char *c = clean_text(json_string_value(e), CODE_MAX);
		_cleanup_free_ char *m = clean_text(desc ?: json_string_value(e), MESSAGE_MAX);
		if (!c || !m)
			return -ENOMEM;
		*ret_code = TAKE_PTR(c);
		*ret_message = TAKE_PTR(m);
		return 0;
	}
	return error_of(j, ret_code, ret_message);
}

static enum arm_lro_state state_of(const char *s)
{
	if (strcasecmp(s, "Succeeded") == 0)
		return ARM_LRO_SUCCEEDED;
	if (strcasecmp(s, "Failed") == 0)
		return ARM_LRO_FAILED;
	if (strcasecmp(s, "Canceled") == 0 || strcasecmp(s, "Cancelled") == 0)
		return ARM_LRO_CANCELED;
	return ARM_LRO_RUNNING;
}

int arm_lro_status_parse(const char *body, size_t len, enum arm_lro_state *ret, char **ret_code,
			 char **ret_message)
{
	*ret_code = *ret_message = NULL;
	_cleanup_(json_decrefp) json_t *j = load(body, len);
	const char *status = get_str(j, "status");
	if (!status)
		return -EBADMSG;
	*ret = state_of(status);
	json_t *e = json_object_get(j, "error");
	if (*ret != ARM_LRO_SUCCEEDED && *ret != ARM_LRO_RUNNING && json_is_object(e)) {
		int r = error_of(e, ret_code, ret_message);
		if (r == -ENOMEM)
			return r;
	}
	return 0;
}

int arm_provisioning_state_parse(const char *body, size_t len, enum arm_lro_state *ret)
{
	_cleanup_(json_decrefp) json_t *j = load(body, len);
	if (!json_is_object(j))
		return -EBADMSG;
	const char *s = get_str(json_object_get(j, "properties"), "provisioningState");
	*ret = s ? state_of(s) : ARM_LRO_SUCCEEDED;
	return 0;
}

void azure_token_done(struct azure_token *t)
{
	if (!t)
		return;
	free_secret(t->access_token);
	*t = (struct azure_token){0};
}

/* Seconds as a JSON number or a decimal string (IMDS sends strings). */
static int seconds_of(const json_t *v, int64_t *ret)
{
	if (json_is_integer(v)) {
		*ret = json_integer_value(v);
		return 0;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v);
		if (!(d >= -1e12 && d <= 1e12))
			return -ERANGE;
		*ret = (int64_t)d;
		return 0;
	}
	if (json_is_string(v))
		return parse_i64(json_string_value(v), ret);
	return -ENOENT;
}

int azure_token_parse(const char *body, size_t len, int64_t now_realtime_ns,
		      struct azure_token *ret)
{
	_cleanup_(json_decrefp) json_t *j = load(body, len);
	const char *tok = get_str(j, "access_token");
	if (!tok || !*tok || strlen(tok) > AZURE_TOKEN_MAX_BYTES)
		return -EBADMSG;
	/* it goes into an HTTP header */
	for (const char *c = tok; *c; c++)
		if (*c <= 0x20 || *c >= 0x7f)
			return -EBADMSG;
	const char *type = get_str(j, "token_type");
	if (type && strcasecmp(type, "Bearer") != 0)
		return -EBADMSG;
	int64_t secs;
	if (seconds_of(json_object_get(j, "expires_in"), &secs) < 0) {
		int64_t on;
		if (seconds_of(json_object_get(j, "expires_on"), &on) < 0)
			return -EBADMSG;
		secs = on - now_realtime_ns / NSEC_PER_SEC;
	}
	/* a year is far beyond any Azure token; also keeps the arithmetic in range */
	if (secs <= 0 || secs > 366 * 86400)
		return -EBADMSG;
	int64_t refresh = 0;
	if (seconds_of(json_object_get(j, "refresh_in"), &refresh) < 0 || refresh < 0 ||
	    refresh > secs)
		refresh = 0;
	char *t = strdup(tok);
	if (!t)
		return -ENOMEM;
	*ret = (struct azure_token){
	    .access_token = t,
	    .lifetime_ns = secs * NSEC_PER_SEC,
	    .refresh_in_ns = refresh * NSEC_PER_SEC,
	};
	return 0;
}

void arm_vm_sizes_free(struct instance_type_spec *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i].name);
	free(v);
}

int arm_vm_sizes_parse(const char *body, size_t len, struct instance_type_spec **ret, size_t *ret_n)
{
	_cleanup_(json_decrefp) json_t *j = load(body, len);
	json_t *value = json_is_object(j) ? json_object_get(j, "value") : NULL;
	if (!json_is_array(value))
		return -EBADMSG;
	size_t n = json_array_size(value);
	if (n > LIST_PAGE_MAX)
		return -EBADMSG;
	struct instance_type_spec *v = calloc(n ?: 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	size_t count = 0, i;
	json_t *e;
	json_array_foreach(value, i, e)
	{
		const char *name = get_str(e, "name");
		json_t *cores = json_object_get(e, "numberOfCores");
		json_t *mem = json_object_get(e, "memoryInMB");
		if (!name || !*name || strlen(name) > CODE_MAX || !json_is_integer(cores) ||
		    !json_is_integer(mem) || json_integer_value(cores) < 0 ||
		    json_integer_value(cores) > UINT32_MAX || json_integer_value(mem) < 0)
			continue;
		v[count].name = strdup(name);
		if (!v[count].name) {
			arm_vm_sizes_free(v, count);
			return -ENOMEM;
		}
		v[count].vcpus = (unsigned)json_integer_value(cores);
		v[count].memory_mib = (uint64_t)json_integer_value(mem);
		v[count].gpus = 0; /* vmSizes does not say; GPU sizes are picked by name */
		count++;
	}
	*ret = v;
	*ret_n = count;
	return 0;
}

int arm_vm_list_parse(const char *body, size_t len, struct provider_instance **ret, size_t *ret_n,
		      char **ret_next_link)
{
	*ret_next_link = NULL;
	_cleanup_(json_decrefp) json_t *j = load(body, len);
	json_t *value = json_is_object(j) ? json_object_get(j, "value") : NULL;
	if (!json_is_array(value))
		return -EBADMSG;
	size_t n = json_array_size(value);
	if (n > LIST_PAGE_MAX)
		return -EBADMSG;
	struct provider_instance *v = calloc(n ?: 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	size_t count = 0, i;
	json_t *e;
	int r = 0;
	json_array_foreach(value, i, e)
	{
		json_t *tags = json_object_get(e, "tags");
		const char *sid = get_str(tags, "peerpod-sandbox-id");
		const char *id = get_str(e, "id");
		const char *name = get_str(e, "name");
		if (!sid || !id || !name || strlen(id) > ID_MAX || strlen(name) > ID_MAX)
			continue;
		const char *state = get_str(json_object_get(e, "properties"), "provisioningState");
		if (state && strcasecmp(state, "Deleting") == 0)
			continue;
		const char *node = get_str(tags, "peerpod-node");
		struct provider_instance *p = &v[count++];
		p->id = clean_text(id, ID_MAX);
		p->name = clean_text(name, ID_MAX);
		p->sandbox_id = clean_text(sid, ID_MAX);
		p->node_name = clean_text(node ?: "", ID_MAX);
		if (!p->id || !p->name || !p->sandbox_id || !p->node_name) {
			r = -ENOMEM;
			break;
		}
	}
	const char *next = get_str(j, "nextLink");
	if (r >= 0 && next && *next) {
		if (strlen(next) > 8192)
			r = -EBADMSG;
		else if (!(*ret_next_link = clean_text(next, 8192)))
			r = -ENOMEM;
	}
	if (r < 0) {
		provider_instances_free(v, count);
		return r;
	}
	*ret = v;
	*ret_n = count;
	return 0;
}

int arm_vm_parse(const char *body, size_t len, char **ret_id, char **ret_nic_id)
{
	*ret_id = *ret_nic_id = NULL;
	_cleanup_(json_decrefp) json_t *j = load(body, len);
	if (!json_is_object(j))
		return -EBADMSG;
	json_t *nics =
	    json_object_get(json_object_get(json_object_get(j, "properties"), "networkProfile"),
			    "networkInterfaces");
	_cleanup_free_ char *id = NULL, *nic = NULL;
	if (dup_id(get_str(j, "id"), &id) < 0 ||
	    dup_id(get_str(json_array_get(nics, 0), "id"), &nic) < 0)
		return -EBADMSG;
	/* the primary interface first, else the first one */
	size_t i;
	json_t *e;
	json_array_foreach(nics, i, e)
	{
		json_t *primary = json_object_get(json_object_get(e, "properties"), "primary");
		if (json_is_true(primary) && get_str(e, "id")) {
			free(nic);
			if (dup_id(get_str(e, "id"), &nic) < 0)
				return -EBADMSG;
			break;
		}
	}
	*ret_id = TAKE_PTR(id);
	*ret_nic_id = TAKE_PTR(nic);
	return 0;
}

static bool ip_valid(const char *s)
{
	unsigned char b[16];
	return s && (inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1);
}

int arm_nic_parse(const char *body, size_t len, char **ret_private_ip, char **ret_public_ip_id)
{
	*ret_private_ip = *ret_public_ip_id = NULL;
	_cleanup_(json_decrefp) json_t *j = load(body, len);
	if (!json_is_object(j))
		return -EBADMSG;
	json_t *cfgs = json_object_get(json_object_get(j, "properties"), "ipConfigurations");
	json_t *cfg = json_array_get(cfgs, 0);
	size_t i;
	json_t *e;
	json_array_foreach(cfgs, i, e)
	{
		if (json_is_true(json_object_get(json_object_get(e, "properties"), "primary"))) {
			cfg = e;
			break;
		}
	}
	json_t *props = json_object_get(cfg, "properties");
	const char *ip = get_str(props, "privateIPAddress");
	if (ip && *ip && !ip_valid(ip))
		return -EBADMSG;
	_cleanup_free_ char *pub = NULL;
	if (dup_id(get_str(json_object_get(props, "publicIPAddress"), "id"), &pub) < 0)
		return -EBADMSG;
	if (ip && *ip && !(*ret_private_ip = strdup(ip)))
		return -ENOMEM;
	*ret_public_ip_id = TAKE_PTR(pub);
	return 0;
}

int arm_public_ip_parse(const char *body, size_t len, char **ret_ip)
{
	*ret_ip = NULL;
	_cleanup_(json_decrefp) json_t *j = load(body, len);
	if (!json_is_object(j))
		return -EBADMSG;
	const char *ip = get_str(json_object_get(j, "properties"), "ipAddress");
	if (!ip || !*ip)
		return 0;
	if (!ip_valid(ip))
		return -EBADMSG;
	*ret_ip = strdup(ip);
	return *ret_ip ? 0 : -ENOMEM;
}

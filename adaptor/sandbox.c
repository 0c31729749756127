/* adaptor/sandbox.c: a sandbox's persisted state, <pods-dir>/<sid>/state.json. */
#include <jansson.h>

#include "adaptor.h"
#include "podnet.h"

static const char *const state_names[] = {
    [SANDBOX_CREATED] = "created",
    [SANDBOX_STARTING] = "starting",
    [SANDBOX_RUNNING] = "running",
    [SANDBOX_STOPPING] = "stopping",
};

const char *sandbox_state_to_string(enum sandbox_state s)
{
	return (size_t)s < ELEMENTSOF(state_names) ? state_names[s] : "unknown";
}

int sandbox_state_from_string(const char *s, enum sandbox_state *ret)
{
	for (size_t i = 0; i < ELEMENTSOF(state_names); i++)
		if (str_eq(s, state_names[i])) {
			*ret = (enum sandbox_state)i;
			return 0;
		}
	return -EINVAL;
}

struct sandbox *sandbox_free(struct sandbox *sb)
{
	if (!sb)
		return NULL;
	free(sb->id);
	free(sb->pod_name);
	free(sb->pod_namespace);
	free(sb->netns);
	free(sb->instance_name);
	free(sb->instance_id);
	for (size_t i = 0; i < ELEMENTSOF(sb->ips); i++)
		free(sb->ips[i]);
	free(sb->image);
	free(sb->machine_type);
	netns_pod_network_done(&sb->podnet);
	free(sb->vm_ip);
	free(sb->peerpod_name);
	free(sb->dir);
	free(sb->agent_socket);
	free(sb->stop_calls);
	free(sb->pod_label);
	free(sb);
	return NULL;
}

static int set_str(json_t *o, const char *key, const char *v)
{
	if (!v)
		return 0;
	return json_object_set_new(o, key, json_string(v)) < 0 ? -ENOMEM : 0;
}

int sandbox_to_json(const struct sandbox *sb, char **ret)
{
	_cleanup_(json_decrefp) json_t *o = json_object();
	_cleanup_(json_decrefp) json_t *ips = json_array();
	if (!o || !ips)
		return -ENOMEM;
	for (size_t i = 0; i < sb->n_ips; i++)
		if (json_array_append_new(ips, json_string(sb->ips[i])) < 0)
			return -ENOMEM;
	int r = 0;
	r = r ?: set_str(o, "id", sb->id);
	r = r ?: set_str(o, "pod-name", sb->pod_name);
	r = r ?: set_str(o, "pod-namespace", sb->pod_namespace);
	r = r ?: set_str(o, "netns", sb->netns);
	r = r ?: set_str(o, "instance-name", sb->instance_name);
	r = r ?: set_str(o, "instance-id", sb->instance_id);
	r = r ?: set_str(o, "image", sb->image);
	r = r ?: set_str(o, "machine-type", sb->machine_type);
	r = r ?: set_str(o, "state", sandbox_state_to_string(sb->state));
	r = r ?: set_str(o, "vm-ip", sb->vm_ip);
	r = r ?: set_str(o, "peerpod", sb->peerpod_name);
	if (r < 0)
		return r;
	if (sb->has_podnet) {
		json_t *net = NULL;
		r = podnet_to_json(&sb->podnet, &net);
		if (r < 0)
			return r;
		if (json_object_set_new(o, "pod-network", net) < 0 ||
		    json_object_set_new(o, "pod-network-active", json_boolean(sb->podnet_active)) <
			0)
			return -ENOMEM;
	}
	if (json_object_set(o, "ips", ips) < 0 ||
	    json_object_set_new(o, "vcpus", json_integer(sb->vcpus)) < 0 ||
	    json_object_set_new(o, "memory-mib", json_integer(sb->memory_mib)) < 0 ||
	    json_object_set_new(o, "gpus", json_integer(sb->gpus)) < 0 ||
	    json_object_set_new(o, "index", json_integer(sb->index)) < 0)
		return -ENOMEM;
	char *s = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (!s)
		return -ENOMEM;
	*ret = s;
	return 0;
}

static int get_str(json_t *o, const char *key, bool required, char **ret, char **ret_msg)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v)) {
		if (required) {
			*ret_msg = str_printf("missing \"%s\"", key);
			return -EINVAL;
		}
		return 0;
	}
	if (!json_is_string(v)) {
		*ret_msg = str_printf("\"%s\" is not a string", key);
		return -EINVAL;
	}
	return str_set(ret, json_string_value(v));
}

static int get_uint(json_t *o, const char *key, int64_t max, int64_t *ret, char **ret_msg)
{
	json_t *v = json_object_get(o, key);
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max) {
		*ret_msg = str_printf("\"%s\" is not an integer in 0..%lld", key, (long long)max);
		return -EINVAL;
	}
	*ret = json_integer_value(v);
	return 0;
}

int sandbox_from_json(const char *text, size_t len, struct sandbox **ret, char **ret_msg)
{
	json_error_t err;
	_cleanup_(json_decrefp) json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
	if (!o) {
		*ret_msg = str_printf("line %d: %s", err.line, err.text);
		return -EINVAL;
	}
	if (!json_is_object(o)) {
		*ret_msg = strdup("not a JSON object");
		return -EINVAL;
	}
	struct sandbox *sb = calloc(1, sizeof(*sb));
	if (!sb)
		return -ENOMEM;
	_cleanup_free_ char *state = NULL;
	int64_t vcpus = 0, mem = 0, gpus = 0, index = 0;
	int r = 0;
	r = r ?: get_str(o, "id", true, &sb->id, ret_msg);
	r = r ?: get_str(o, "pod-name", true, &sb->pod_name, ret_msg);
	r = r ?: get_str(o, "pod-namespace", true, &sb->pod_namespace, ret_msg);
	r = r ?: get_str(o, "netns", false, &sb->netns, ret_msg);
	r = r ?: get_str(o, "instance-name", true, &sb->instance_name, ret_msg);
	r = r ?: get_str(o, "instance-id", false, &sb->instance_id, ret_msg);
	r = r ?: get_str(o, "image", false, &sb->image, ret_msg);
	r = r ?: get_str(o, "machine-type", false, &sb->machine_type, ret_msg);
	r = r ?: get_str(o, "state", true, &state, ret_msg);
	r = r ?: get_str(o, "vm-ip", false, &sb->vm_ip, ret_msg);
	r = r ?: get_str(o, "peerpod", false, &sb->peerpod_name, ret_msg);
	json_t *net = json_object_get(o, "pod-network");
	if (r == 0 && net) {
		r = podnet_from_json(net, &sb->podnet);
		if (r < 0)
			*ret_msg = strdup("invalid \"pod-network\"");
		sb->has_podnet = r == 0;
		json_t *active = json_object_get(o, "pod-network-active");
		if (r == 0 && active && !json_is_boolean(active)) {
			*ret_msg = strdup("\"pod-network-active\" is not a boolean");
			r = -EINVAL;
		}
		sb->podnet_active = json_is_true(active);
	}
	r = r ?: get_uint(o, "vcpus", UINT32_MAX, &vcpus, ret_msg);
	r = r ?: get_uint(o, "memory-mib", UINT32_MAX, &mem, ret_msg);
	r = r ?: get_uint(o, "gpus", UINT32_MAX, &gpus, ret_msg);
	r = r ?: get_uint(o, "index", INT64_MAX, &index, ret_msg);
	if (r == 0 && sandbox_state_from_string(state, &sb->state) < 0) {
		*ret_msg = str_printf("unknown state \"%s\"", state);
		r = -EINVAL;
	}
	if (r == 0 && !naming_sandbox_id_valid(sb->id)) {
		*ret_msg = strdup("invalid \"id\"");
		r = -EINVAL;
	}
	json_t *ips = json_object_get(o, "ips");
	if (r == 0 && ips) {
		if (!json_is_array(ips) || json_array_size(ips) > ELEMENTSOF(sb->ips)) {
			*ret_msg = strdup("\"ips\" is not an array of at most 2 strings");
			r = -EINVAL;
		}
		for (size_t i = 0; r == 0 && i < json_array_size(ips); i++) {
			json_t *ip = json_array_get(ips, i);
			if (!json_is_string(ip)) {
				*ret_msg = strdup("\"ips\" holds a non-string");
				r = -EINVAL;
			} else if (!(sb->ips[sb->n_ips++] = strdup(json_string_value(ip))))
				r = -ENOMEM;
		}
	}
	if (r < 0) {
		sandbox_free(sb);
		return r;
	}
	sb->vcpus = (unsigned)vcpus;
	sb->memory_mib = (unsigned)mem;
	sb->gpus = (unsigned)gpus;
	sb->index = index;
	*ret = sb;
	return 0;
}

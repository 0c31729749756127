/* adaptor/apf.c: the forwarder's configuration (apf.json, WIRE.md 4.2) and the cloud-config
 * user-data that carries it into the pod VM (WIRE.md 5.1). */
#include <jansson.h>

#include "adaptor.h"
#include "podnet.h"
#include "userdata/userdata.h"

static int add_str(json_t *o, const char *key, const char *v)
{
	if (str_empty(v))
		return 0; /* optional keys are omitted when empty */
	return json_object_set_new(o, key, json_string(v)) < 0 ? -ENOMEM : 0;
}

static int add_int(json_t *o, const char *key, int64_t v)
{
	if (v == 0)
		return 0;
	return json_object_set_new(o, key, json_integer(v)) < 0 ? -ENOMEM : 0;
}

/* Without a pod network (the local provider, or no netns from the shim) the VM side gets the
 * tunnel parameters only, and sets up nothing. */
static int tunnel_only_json(const struct adaptor_settings *s, const struct sandbox *sb,
			    json_t **ret)
{
	_cleanup_(json_decrefp) json_t *net = json_object();
	if (!net)
		return -ENOMEM;
	int r = add_str(net, "tunnel-type", s->tunnel_type);
	if (r == 0 && json_object_set_new(net, "index", json_integer(sb->index)) < 0)
		r = -ENOMEM;
	r = r ?: add_int(net, "vxlan-port", s->vxlan_port);
	r = r ?: add_int(net, "vxlan-id", s->vxlan_min_id + sb->index);
	if (r == 0 && s->ext_network_via_podvm &&
	    json_object_set_new(net, "external-net-via-pod-vm", json_true()) < 0)
		r = -ENOMEM;
	if (r < 0)
		return r;
	*ret = TAKE_PTR(net);
	return 0;
}

int adaptor_build_apf_json(const struct adaptor *a, const struct sandbox *sb, const char *key_pem,
			   const char *cert_pem, char **ret)
{
	const struct adaptor_settings *s = a->settings;
	_cleanup_(json_decrefp) json_t *o = json_object();
	_cleanup_(json_decrefp) json_t *net = NULL;
	if (!o)
		return -ENOMEM;
	int r = sb->has_podnet ? podnet_to_json(&sb->podnet, &net) : tunnel_only_json(s, sb, &net);
	if (r < 0)
		return r;
	if (json_object_set(o, "pod-network", net) < 0)
		return -ENOMEM;
	r = r ?: add_str(o, "pod-namespace", sb->pod_namespace);
	r = r ?: add_str(o, "pod-name", sb->pod_name);
	r = r ?: add_str(o, "tls-server-key", key_pem);
	r = r ?: add_str(o, "tls-server-cert", cert_pem);
	r = r ?: add_str(o, "tls-client-ca", certs_client_ca_pem(a->certs));
	r = r ?: add_str(o, "tls-min-version", s->tls_min_version);
	if (r < 0)
		return r;
	if (s->tls_cipher_suites && s->tls_cipher_suites[0]) {
		_cleanup_(json_decrefp) json_t *cs = json_array();
		if (!cs)
			return -ENOMEM;
		for (char **i = s->tls_cipher_suites; *i; i++)
			if (json_array_append_new(cs, json_string(*i)) < 0)
				return -ENOMEM;
		if (json_object_set(o, "tls-cipher-suites", cs) < 0)
			return -ENOMEM;
	}
	char *text = json_dumps(o, JSON_INDENT(4) | JSON_PRESERVE_ORDER);
	if (!text)
		return -ENOMEM;
	*ret = text;
	return 0;
}

int adaptor_build_user_data(const struct adaptor *a, const char *apf_json, const char *initdata,
			    char **ret)
{
	return adaptor_build_user_data_auth(a, apf_json, NULL, initdata, ret);
}

int adaptor_build_user_data_auth(const struct adaptor *a, const char *apf_json,
				 const char *auth_json, const char *initdata, char **ret)
{
	struct userdata_file files[4];
	size_t n = 0;
	files[n++] = (struct userdata_file){USERDATA_PATH_APF_JSON, apf_json};
	if (!str_empty(auth_json))
		files[n++] = (struct userdata_file){USERDATA_PATH_AUTH_JSON, auth_json};
	if (!str_empty(initdata))
		files[n++] = (struct userdata_file){USERDATA_PATH_INITDATA, initdata};
	if (a->settings->enable_scratch_space)
		files[n++] = (struct userdata_file){USERDATA_PATH_SCRATCH_MARKER, NULL};
	return userdata_render_cloud_config(files, n, ret);
}

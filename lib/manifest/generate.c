/* lib/manifest: building a manifest from pod initdata, reference values and owner keys, for
 * `peerpodctl manifest generate`. The output is canonical so that the same inputs give the same
 * bytes (and so the same manifest hash). */
#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "manifest/manifest.h"
#include "userdata/userdata.h"

static int key_hex(EVP_PKEY *k, bool rsa, char **ret)
{
	unsigned char *der = NULL;
	int len = rsa ? i2d_PublicKey(k, &der) : i2d_PUBKEY(k, &der);
	if (len <= 0) {
		ERR_clear_error();
		return -EINVAL;
	}
	*ret = hex_encode(der, (size_t)len);
	OPENSSL_free(der);
	return *ret ? 0 : -ENOMEM;
}

static int add_keys(json_t *root, const char *name, EVP_PKEY *const *keys, size_t n, bool rsa,
		    char **ret_msg)
{
	json_t *arr = json_array();
	if (!arr || json_object_set_new(root, name, arr) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (!keys[i] ||
		    (rsa ? !EVP_PKEY_is_a(keys[i], "RSA") : !EVP_PKEY_is_a(keys[i], "EC")))
			return str_set_message(ret_msg, EINVAL, "%s[%zu]: must be an %s key", name,
					       i, rsa ? "RSA" : "EC");
		_cleanup_free_ char *hex = NULL;
		int r = key_hex(keys[i], rsa, &hex);
		if (r < 0)
			return str_set_message(ret_msg, r, "%s[%zu]: cannot encode the key", name,
					       i);
		if (json_array_append_new(arr, json_string(hex)) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int add_policy(json_t *policies, const struct manifest_gen_policy *p, size_t i,
		      char **ret_encoded, char **ret_msg)
{
	_cleanup_free_ char *msg = NULL, *encoded = NULL, *toml = NULL;
	size_t len;
	if (!p->initdata)
		return str_set_message(ret_msg, EINVAL, "policy %zu: initdata is required", i);
	/* Normalises either form (plain TOML or base64 of gzip) and checks it is initdata. */
	int r = initdata_encode_annotation(p->initdata, strlen(p->initdata), &encoded, &msg);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return str_set_message(ret_msg, EINVAL, "policy %zu: %s", i,
				       msg ? msg : "invalid initdata");
	if ((r = initdata_decode(encoded, strlen(encoded), &toml, &len, &msg)) < 0)
		return str_set_message(ret_msg, r, "policy %zu: %s", i,
				       msg ? msg : "invalid initdata");
	uint8_t digest[32];
	SHA256((const uint8_t *)toml, len, digest);
	_cleanup_free_ char *key = hex_encode(digest, 32);
	if (!key)
		return -ENOMEM;
	if (json_object_get(policies, key))
		return str_set_message(ret_msg, EINVAL,
				       "policy %zu: the same initdata (digest %s) is given twice",
				       i, key);
	json_t *entry = json_object(), *sans = json_array();
	if (!entry || !sans || json_object_set_new(policies, key, entry) < 0 ||
	    json_object_set_new(entry, "SANs", sans) < 0) {
		json_decref(sans);
		return -ENOMEM;
	}
	for (size_t k = 0; p->sans && p->sans[k]; k++)
		if (json_array_append_new(sans, json_string(p->sans[k])) < 0)
			return str_set_message(ret_msg, EINVAL, "policy %zu: SAN %zu is not UTF-8",
					       i, k);
	if (!str_empty(p->workload_secret_id) &&
	    json_object_set_new(entry, "WorkloadSecretID", json_string(p->workload_secret_id)) < 0)
		return str_set_message(ret_msg, EINVAL, "policy %zu: WorkloadSecretID is not UTF-8",
				       i);
	if (!str_empty(p->role) && json_object_set_new(entry, "Role", json_string(p->role)) < 0)
		return str_set_message(ret_msg, EINVAL, "policy %zu: Role is not UTF-8", i);
	*ret_encoded = TAKE_PTR(encoded);
	return 0;
}

int manifest_generate(const struct manifest_gen *g, char **ret_json, char ***ret_initdata,
		      char **ret_msg)
{
	_cleanup_(json_decrefp) json_t *root = json_object();
	json_t *policies = json_object();
	if (!root || !policies || json_object_set_new(root, "Policies", policies) < 0)
		return -ENOMEM;
	_cleanup_strv_free_ char **encoded = calloc(g->n_policies + 1, sizeof(char *));
	if (!encoded)
		return -ENOMEM;
	int r;
	for (size_t i = 0; i < g->n_policies; i++)
		if ((r = add_policy(policies, &g->policies[i], i, &encoded[i], ret_msg)) < 0)
			return r;
	if (!g->reference_values)
		return str_set_message(ret_msg, EINVAL, "ReferenceValues: required");
	json_t *refs = json_deep_copy(g->reference_values);
	if (!refs || json_object_set_new(root, "ReferenceValues", refs) < 0)
		return -ENOMEM;
	if ((r = add_keys(root, "WorkloadOwnerPubKeys", g->workload_owners, g->n_workload_owners,
			  false, ret_msg)) < 0 ||
	    (r = add_keys(root, "SeedshareOwnerPubKeys", g->seedshare_owners, g->n_seedshare_owners,
			  true, ret_msg)) < 0)
		return r;

	_cleanup_free_ char *text = json_dumps(root, JSON_SORT_KEYS | JSON_INDENT(2));
	if (!text)
		return -ENOMEM;
	_cleanup_free_ char *json = str_printf("%s\n", text);
	if (!json)
		return -ENOMEM;
	_cleanup_(manifest_freep) struct manifest *m = NULL;
	if ((r = manifest_parse(json, strlen(json), &m, ret_msg)) < 0 ||
	    (r = manifest_check_initdata(m, encoded, g->n_policies, NULL, ret_msg)) < 0)
		return r;
	*ret_json = TAKE_PTR(json);
	if (ret_initdata)
		*ret_initdata = TAKE_PTR(encoded);
	return 0;
}

/* lib/manifest: strict reader and validator of the coordinator manifest (ATTESTATION.md 6), the
 * initdata check and lookups by policy digest. */
#include "manifest/manifest.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "userdata/userdata.h"

DEFINE_CLEANUP(EVP_PKEY, EVP_PKEY_free)

/* Bounds on owner-key DER: a P-384 SPKI is 120 bytes, a 16384-bit PKCS#1 key about 2 KiB. */
#define KEY_DER_MAX_BYTES 4096

int manifest_hex_decode(const char *s, uint8_t *out, size_t n)
{
	return hex_decode_exact(s, s ? strlen(s) : 0, out, n);
}

static void policy_done(struct manifest_policy *p)
{
	strv_free(p->sans);
	free(p->workload_secret_id);
}

static void keys_free(struct manifest_key *k, size_t n)
{
	for (size_t i = 0; k && i < n; i++)
		free(k[i].der);
	free(k);
}

void manifest_free(struct manifest *m)
{
	if (!m)
		return;
	free(m->raw);
	for (size_t i = 0; i < m->n_policies; i++)
		policy_done(&m->policies[i]);
	free(m->policies);
	attest_snp_references_done(&m->snp);
	free(m->tdx);
	keys_free(m->workload_owners, m->n_workload_owners);
	keys_free(m->seedshare_owners, m->n_seedshare_owners);
	free(m->digests);
	free(m->coordinator_digests);
	free(m);
}

/* Every key of o must be in the NULL-terminated list. */
static int only_keys(const json_t *o, const char *const *keys, const char *where, char **ret_msg)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)o, k, v)
	{
		bool ok = false;
		for (size_t i = 0; keys[i] && !ok; i++)
			ok = str_eq(k, keys[i]);
		if (!ok)
			return str_set_message(ret_msg, EINVAL, "%s: unknown key \"%s\"", where, k);
	}
	return 0;
}

/* SANs end up in IA5String fields (dNSName, URI) or as IP literals: printable ASCII only. */
static bool san_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > MANIFEST_SAN_MAX_BYTES)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return false;
	return true;
}

static int parse_policy(const char *key, const json_t *v, struct manifest_policy *p, char **ret_msg)
{
	static const char *const keys[] = {"SANs", "WorkloadSecretID", "Role", NULL};
	_cleanup_free_ char *where = str_printf("Policies[\"%s\"]", key);
	if (!where)
		return -ENOMEM;
	if (manifest_hex_decode(key, p->digest, 32) < 0)
		return str_set_message(ret_msg, EINVAL, "%s: key must be 64 hex digits", where);
	hex_encode_into(p->digest, 32, p->digest_hex);
	if (!json_is_object(v))
		return str_set_message(ret_msg, EINVAL, "%s: must be an object", where);
	int r = only_keys(v, keys, where, ret_msg);
	if (r < 0)
		return r;

	const json_t *sans = json_object_get(v, "SANs");
	if (sans && !json_is_array(sans))
		return str_set_message(ret_msg, EINVAL, "%s.SANs: must be an array of strings",
				       where);
	size_t n = json_array_size(sans);
	if (n > MANIFEST_SANS_MAX)
		return str_set_message(ret_msg, EINVAL, "%s.SANs: more than %d entries", where,
				       MANIFEST_SANS_MAX);
	p->sans = calloc(n + 1, sizeof(char *));
	if (!p->sans)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const char *s = json_string_value(json_array_get(sans, i));
		if (!s)
			return str_set_message(ret_msg, EINVAL, "%s.SANs[%zu]: must be a string",
					       where, i);
		if (!san_ok(s))
			return str_set_message(ret_msg, EINVAL,
					       "%s.SANs[%zu]: must be 1..%d printable ASCII "
					       "characters without spaces",
					       where, i, MANIFEST_SAN_MAX_BYTES);
		for (size_t k = 0; k < i; k++)
			if (str_eq(p->sans[k], s))
				return str_set_message(
				    ret_msg, EINVAL, "%s.SANs[%zu]: duplicate \"%s\"", where, i, s);
		if (!(p->sans[i] = strdup(s)))
			return -ENOMEM;
		p->n_sans++;
	}

	const json_t *id = json_object_get(v, "WorkloadSecretID");
	if (id) {
		if (!json_is_string(id))
			return str_set_message(ret_msg, EINVAL,
					       "%s.WorkloadSecretID: must be a string", where);
		if (json_string_length(id) > MANIFEST_WORKLOAD_SECRET_ID_MAX_BYTES)
			return str_set_message(ret_msg, EINVAL,
					       "%s.WorkloadSecretID: longer than %d bytes", where,
					       MANIFEST_WORKLOAD_SECRET_ID_MAX_BYTES);
		if (json_string_length(id) > 0 &&
		    !(p->workload_secret_id = strdup(json_string_value(id))))
			return -ENOMEM;
	}

	const json_t *role = json_object_get(v, "Role");
	if (role) {
		const char *s = json_string_value(role);
		if (!s || (!str_eq(s, "") && !str_eq(s, MANIFEST_ROLE_COORDINATOR)))
			return str_set_message(ret_msg, EINVAL,
					       "%s.Role: must be \"\" or \"coordinator\"", where);
		p->coordinator = str_eq(s, MANIFEST_ROLE_COORDINATOR);
	}
	return 0;
}

static int cmp_policy(const void *a, const void *b)
{
	return memcmp(((const struct manifest_policy *)a)->digest,
		      ((const struct manifest_policy *)b)->digest, 32);
}

static int parse_policies(const json_t *j, struct manifest *m, char **ret_msg)
{
	if (!j)
		return str_set_message(ret_msg, EINVAL, "Policies: required");
	if (!json_is_object(j))
		return str_set_message(ret_msg, EINVAL, "Policies: must be an object");
	size_t n = json_object_size(j);
	if (n == 0)
		return str_set_message(
		    ret_msg, EINVAL,
		    "Policies: needs at least one entry with Role \"coordinator\"");
	m->policies = calloc(n, sizeof(*m->policies));
	m->digests = calloc(n, sizeof(*m->digests));
	m->coordinator_digests = calloc(n, sizeof(*m->coordinator_digests));
	if (!m->policies || !m->digests || !m->coordinator_digests)
		return -ENOMEM;
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)j, k, v)
	{
		int r = parse_policy(k, v, &m->policies[m->n_policies], ret_msg);
		m->n_policies++;
		if (r < 0)
			return r;
	}
	qsort(m->policies, m->n_policies, sizeof(*m->policies), cmp_policy);
	for (size_t i = 0; i < m->n_policies; i++) {
		if (i > 0 && memcmp(m->policies[i - 1].digest, m->policies[i].digest, 32) == 0)
			return str_set_message(ret_msg, EINVAL,
					       "Policies: key %s appears twice (keys are compared "
					       "after hex decoding)",
					       m->policies[i].digest_hex);
		memcpy(m->digests[i], m->policies[i].digest, 32);
		if (m->policies[i].coordinator)
			memcpy(m->coordinator_digests[m->n_coordinator_digests++],
			       m->policies[i].digest, 32);
	}
	if (m->n_coordinator_digests == 0)
		return str_set_message(
		    ret_msg, EINVAL,
		    "Policies: needs at least one entry with Role \"coordinator\"");
	return 0;
}

static int no_duplicate_entries(const json_t *arr, const char *where, char **ret_msg)
{
	for (size_t i = 0; i < json_array_size(arr); i++)
		for (size_t k = 0; k < i; k++)
			if (json_equal(json_array_get(arr, i), json_array_get(arr, k)))
				return str_set_message(ret_msg, EINVAL,
						       "%s[%zu]: duplicate of %s[%zu]", where, i,
						       where, k);
	return 0;
}

static int parse_tdx(const json_t *e, size_t i, struct attest_tdx_reference *ret, char **ret_msg)
{
	static const char *const keys[] = {"MrTd",
					   "MrSeam",
					   "Rtmrs",
					   "Xfam",
					   "TdAttributes",
					   "MinimumTCBEvaluationDataNumber",
					   "AllowedStatuses",
					   NULL};
	_cleanup_free_ char *where = str_printf("ReferenceValues.tdx[%zu]", i);
	if (!where)
		return -ENOMEM;
	if (!json_is_object(e))
		return str_set_message(ret_msg, EINVAL, "%s: must be an object", where);
	int r = only_keys(e, keys, where, ret_msg);
	if (r < 0)
		return r;
	const json_t *n = json_object_get(e, "MinimumTCBEvaluationDataNumber");
	if (n && (!json_is_integer(n) || json_integer_value(n) < 0))
		return str_set_message(ret_msg, EINVAL,
				       "%s.MinimumTCBEvaluationDataNumber: must be an integer >= 0",
				       where);
	_cleanup_free_ char *m = NULL;
	r = attest_tdx_reference_parse(e, ret, &m);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return str_set_message(ret_msg, EINVAL, "%s.%s", where, m ? m : "invalid");
	/* TDATTRIBUTES is a little-endian u64: bit 0 DEBUG, bit 29 MIGRATABLE. */
	if ((ret->td_attributes[0] & 0x01) || (ret->td_attributes[3] & 0x20))
		return str_set_message(ret_msg, EINVAL,
				       "%s.TdAttributes: bits 0 (DEBUG) and 29 (MIGRATABLE) must "
				       "be clear",
				       where);
	const json_t *st = json_object_get(e, "AllowedStatuses");
	for (size_t a = 0; a < json_array_size(st); a++)
		for (size_t b = 0; b < a; b++)
			if (json_equal(json_array_get(st, a), json_array_get(st, b)))
				return str_set_message(
				    ret_msg, EINVAL, "%s.AllowedStatuses[%zu]: duplicate \"%s\"",
				    where, a, json_string_value(json_array_get(st, a)));
	return 0;
}

static int parse_reference_values(const json_t *j, struct manifest *m, char **ret_msg)
{
	static const char *const keys[] = {"snp", "tdx", NULL};
	if (!j)
		return str_set_message(ret_msg, EINVAL, "ReferenceValues: required");
	if (!json_is_object(j))
		return str_set_message(ret_msg, EINVAL, "ReferenceValues: must be an object");
	int r = only_keys(j, keys, "ReferenceValues", ret_msg);
	if (r < 0)
		return r;
	const json_t *snp = json_object_get(j, "snp"), *tdx = json_object_get(j, "tdx");
	if (snp && !json_is_array(snp))
		return str_set_message(ret_msg, EINVAL, "ReferenceValues.snp: must be an array");
	if (tdx && !json_is_array(tdx))
		return str_set_message(ret_msg, EINVAL, "ReferenceValues.tdx: must be an array");
	if (json_array_size(snp) + json_array_size(tdx) == 0)
		return str_set_message(ret_msg, EINVAL,
				       "ReferenceValues: needs at least one snp or tdx entry");
	if ((r = no_duplicate_entries(snp, "ReferenceValues.snp", ret_msg)) < 0 ||
	    (r = no_duplicate_entries(tdx, "ReferenceValues.tdx", ret_msg)) < 0)
		return r;
	if (json_array_size(snp) > 0) {
		_cleanup_free_ char *msg = NULL;
		r = attest_snp_references_from_json(snp, &m->snp, &msg);
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			return str_set_message(ret_msg, EINVAL, "ReferenceValues.%s",
					       msg ? msg : "snp: invalid");
	}
	size_t n = json_array_size(tdx);
	if (n > 0) {
		m->tdx = calloc(n, sizeof(*m->tdx));
		if (!m->tdx)
			return -ENOMEM;
		for (size_t i = 0; i < n; i++) {
			if ((r = parse_tdx(json_array_get(tdx, i), i, &m->tdx[i], ret_msg)) < 0)
				return r;
			m->n_tdx++;
		}
	}
	return 0;
}

static int check_ec_spki(const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *k = d2i_PUBKEY(NULL, &p, (long)len);
	if (!k || (size_t)(p - der) != len || !EVP_PKEY_is_a(k, "EC"))
		return -EINVAL;
	char group[64];
	if (!EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
					    NULL) ||
	    (!str_eq(group, "prime256v1") && !str_eq(group, "secp384r1")))
		return -EINVAL;
	/* The hash of this DER is compared with i2d_PUBKEY of a TLS key: it must be canonical. */
	unsigned char *re = NULL;
	int re_len = i2d_PUBKEY(k, &re);
	bool same = re_len > 0 && (size_t)re_len == len && memcmp(re, der, len) == 0;
	OPENSSL_free(re);
	return same ? 0 : -EINVAL;
}

static int check_rsa_pkcs1(const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *k = d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, (long)len);
	if (!k || (size_t)(p - der) != len)
		return -EINVAL;
	int bits = EVP_PKEY_get_bits(k);
	if (bits < MANIFEST_RSA_MIN_BITS || bits > MANIFEST_RSA_MAX_BITS)
		return -ERANGE;
	unsigned char *re = NULL;
	int re_len = i2d_PublicKey(k, &re);
	bool same = re_len > 0 && (size_t)re_len == len && memcmp(re, der, len) == 0;
	OPENSSL_free(re);
	return same ? 0 : -EINVAL;
}

static int parse_keys(const json_t *j, const char *where, bool rsa, struct manifest_key **ret,
		      size_t *ret_n, char **ret_msg)
{
	if (!j)
		return 0;
	if (!json_is_array(j))
		return str_set_message(ret_msg, EINVAL, "%s: must be an array of hex strings",
				       where);
	size_t n = json_array_size(j);
	if (n == 0)
		return 0;
	struct manifest_key *keys = calloc(n, sizeof(*keys));
	if (!keys)
		return -ENOMEM;
	*ret = keys;
	for (size_t i = 0; i < n; i++) {
		const char *s = json_string_value(json_array_get(j, i));
		size_t slen = s ? strlen(s) : 0;
		if (!s || slen == 0 || slen % 2 != 0 || slen / 2 > KEY_DER_MAX_BYTES)
			return str_set_message(ret_msg, EINVAL, "%s[%zu]: must be hex of DER",
					       where, i);
		keys[i].der_len = slen / 2;
		if (!(keys[i].der = malloc(keys[i].der_len)))
			return -ENOMEM;
		(*ret_n)++;
		if (manifest_hex_decode(s, keys[i].der, keys[i].der_len) < 0)
			return str_set_message(ret_msg, EINVAL, "%s[%zu]: must be hex of DER",
					       where, i);
		int r = rsa ? check_rsa_pkcs1(keys[i].der, keys[i].der_len)
			    : check_ec_spki(keys[i].der, keys[i].der_len);
		ERR_clear_error();
		if (r == -ERANGE)
			return str_set_message(ret_msg, EINVAL,
					       "%s[%zu]: RSA key must have %d..%d bits", where, i,
					       MANIFEST_RSA_MIN_BITS, MANIFEST_RSA_MAX_BITS);
		if (r < 0)
			return str_set_message(
			    ret_msg, EINVAL, "%s[%zu]: not a DER %s", where, i,
			    rsa ? "PKCS#1 RSAPublicKey"
				: "SubjectPublicKeyInfo of an EC P-256 or P-384 key");
		SHA256(keys[i].der, keys[i].der_len, keys[i].sha256);
		for (size_t k = 0; k < i; k++)
			if (keys[k].der_len == keys[i].der_len &&
			    memcmp(keys[k].der, keys[i].der, keys[i].der_len) == 0)
				return str_set_message(ret_msg, EINVAL,
						       "%s[%zu]: duplicate of %s[%zu]", where, i,
						       where, k);
	}
	return 0;
}

int manifest_parse(const void *data, size_t len, struct manifest **ret, char **ret_msg)
{
	static const char *const keys[] = {"Policies", "ReferenceValues", "WorkloadOwnerPubKeys",
					   "SeedshareOwnerPubKeys", NULL};
	if (len > MANIFEST_MAX_BYTES)
		return str_set_message(ret_msg, EFBIG, "manifest: larger than %d bytes",
				       MANIFEST_MAX_BYTES);
	json_error_t jerr;
	_cleanup_(json_decrefp) json_t *j = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j)
		return str_set_message(ret_msg, EINVAL, "manifest: %s (line %d, column %d)",
				       jerr.text, jerr.line, jerr.column);
	if (!json_is_object(j))
		return str_set_message(ret_msg, EINVAL, "manifest: must be a JSON object");
	int r = only_keys(j, keys, "manifest", ret_msg);
	if (r < 0)
		return r;

	_cleanup_(manifest_freep) struct manifest *m = calloc(1, sizeof(*m));
	if (!m || !(m->raw = malloc(len ? len : 1)))
		return -ENOMEM;
	if (len)
		memcpy(m->raw, data, len);
	m->raw_len = len;
	SHA256(m->raw, len, m->sha256);
	hex_encode_into(m->sha256, 32, m->sha256_hex);

	if ((r = parse_policies(json_object_get(j, "Policies"), m, ret_msg)) < 0 ||
	    (r = parse_reference_values(json_object_get(j, "ReferenceValues"), m, ret_msg)) < 0 ||
	    (r = parse_keys(json_object_get(j, "WorkloadOwnerPubKeys"), "WorkloadOwnerPubKeys",
			    false, &m->workload_owners, &m->n_workload_owners, ret_msg)) < 0 ||
	    (r = parse_keys(json_object_get(j, "SeedshareOwnerPubKeys"), "SeedshareOwnerPubKeys",
			    true, &m->seedshare_owners, &m->n_seedshare_owners, ret_msg)) < 0)
		return r;
	*ret = TAKE_PTR(m);
	return 0;
}

/* ---- initdata ---- */

void manifest_initdata_done(struct manifest_initdata *d)
{
	if (!d)
		return;
	for (size_t i = 0; d->tomls && i < d->n; i++)
		free(d->tomls[i]);
	free(d->tomls);
	free(d->lens);
	*d = (struct manifest_initdata){};
}

static ssize_t policy_index(const struct manifest *m, const uint8_t digest[32])
{
	size_t lo = 0, hi = m->n_policies;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = memcmp(m->policies[mid].digest, digest, 32);
		if (c == 0)
			return (ssize_t)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

int manifest_check_initdata(const struct manifest *m, char *const *docs, size_t n_docs,
			    struct manifest_initdata *ret, char **ret_msg)
{
	struct manifest_initdata d = {.n = m->n_policies};
	int r = 0;
	d.tomls = calloc(m->n_policies, sizeof(char *));
	d.lens = calloc(m->n_policies, sizeof(size_t));
	if (!d.tomls || !d.lens) {
		r = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < n_docs; i++) {
		_cleanup_free_ char *msg = NULL, *toml = NULL;
		size_t len;
		uint8_t digest[32];
		char hex[65];
		r = docs[i] ? initdata_decode(docs[i], strlen(docs[i]), &toml, &len, &msg)
			    : -EINVAL;
		if (r == -ENOMEM)
			goto fail;
		if (r < 0) {
			r = str_set_message(ret_msg, EINVAL, "initdata[%zu]: %s", i,
					    msg ? msg : "cannot be decoded");
			goto fail;
		}
		SHA256((const uint8_t *)toml, len, digest);
		hex_encode_into(digest, 32, hex);
		ssize_t k = policy_index(m, digest);
		if (k < 0) {
			r = str_set_message(ret_msg, EINVAL,
					    "initdata[%zu]: its digest %s is not a key of Policies",
					    i, hex);
			goto fail;
		}
		if (d.tomls[k])
			continue; /* the same document twice */
		_cleanup_(initdata_donep) struct initdata parsed = {};
		r = initdata_parse_toml(toml, len, &parsed, &msg);
		if (r == -ENOMEM)
			goto fail;
		if (r < 0) {
			r = str_set_message(ret_msg, EINVAL, "initdata[%zu] (%s): %s", i, hex,
					    msg ? msg : "not an initdata document");
			goto fail;
		}
		if (!str_eq(parsed.algorithm, "sha256")) {
			r = str_set_message(ret_msg, EINVAL,
					    "initdata[%zu] (%s): algorithm \"%s\" is not supported "
					    "(only sha256)",
					    i, hex, parsed.algorithm);
			goto fail;
		}
		d.tomls[k] = TAKE_PTR(toml);
		d.lens[k] = len;
	}
	for (size_t k = 0; k < m->n_policies; k++)
		if (!d.tomls[k]) {
			r = str_set_message(
			    ret_msg, EINVAL,
			    "Policies[\"%s\"]: no initdata document with this digest "
			    "was given",
			    m->policies[k].digest_hex);
			goto fail;
		}
	if (ret)
		*ret = d;
	else
		manifest_initdata_done(&d);
	return 0;
fail:
	manifest_initdata_done(&d);
	return r;
}

/* ---- lookups ---- */

const struct manifest_policy *manifest_policy_find(const struct manifest *m,
						   const uint8_t digest[32])
{
	ssize_t k = m ? policy_index(m, digest) : -1;
	return k < 0 ? NULL : &m->policies[k];
}

const struct manifest_policy *manifest_policy_find_hex(const struct manifest *m, const char *hex)
{
	uint8_t d[32];
	if (manifest_hex_decode(hex, d, 32) < 0)
		return NULL;
	return manifest_policy_find(m, d);
}

void manifest_digest_from_snp(const uint8_t host_data[32], uint8_t ret[32])
{
	memcpy(ret, host_data, 32);
}

int manifest_digest_from_tdx(const uint8_t mr_config_id[48], uint8_t ret[32])
{
	for (size_t i = 32; i < 48; i++)
		if (mr_config_id[i] != 0)
			return -EBADMSG;
	memcpy(ret, mr_config_id, 32);
	return 0;
}

const struct manifest_policy *manifest_policy_for_snp(const struct manifest *m,
						      const uint8_t host_data[32])
{
	uint8_t d[32];
	manifest_digest_from_snp(host_data, d);
	return manifest_policy_find(m, d);
}

const struct manifest_policy *manifest_policy_for_tdx(const struct manifest *m,
						      const uint8_t mr_config_id[48])
{
	uint8_t d[32];
	if (manifest_digest_from_tdx(mr_config_id, d) < 0)
		return NULL;
	return manifest_policy_find(m, d);
}

bool manifest_digest_is_coordinator(const struct manifest *m, const uint8_t digest[32])
{
	const struct manifest_policy *p = manifest_policy_find(m, digest);
	return p && p->coordinator;
}

struct attest_digest_rule manifest_digest_rule(const struct manifest *m)
{
	return (struct attest_digest_rule){.digests = (const uint8_t(*)[32])m->digests,
					   .n = m->n_policies};
}

struct attest_digest_rule manifest_coordinator_digest_rule(const struct manifest *m)
{
	return (struct attest_digest_rule){.digests = (const uint8_t(*)[32])m->coordinator_digests,
					   .n = m->n_coordinator_digests};
}

static bool key_listed(const struct manifest_key *keys, size_t n, const uint8_t *der, size_t len)
{
	uint8_t h[32];
	if (!der)
		return false;
	SHA256(der, len, h);
	for (size_t i = 0; i < n; i++)
		if (CRYPTO_memcmp(keys[i].sha256, h, 32) == 0)
			return true;
	return false;
}

bool manifest_is_workload_owner(const struct manifest *m, const uint8_t *spki_der, size_t len)
{
	return m && key_listed(m->workload_owners, m->n_workload_owners, spki_der, len);
}

bool manifest_is_seedshare_owner(const struct manifest *m, const uint8_t *pkcs1_der, size_t len)
{
	return m && key_listed(m->seedshare_owners, m->n_seedshare_owners, pkcs1_der, len);
}

bool manifest_seedshare_owners_equal(const struct manifest *a, const struct manifest *b)
{
	/* Lists hold no duplicates, so equal sizes and inclusion one way mean equal sets. */
	if (a->n_seedshare_owners != b->n_seedshare_owners)
		return false;
	for (size_t i = 0; i < a->n_seedshare_owners; i++)
		if (!key_listed(b->seedshare_owners, b->n_seedshare_owners,
				a->seedshare_owners[i].der, a->seedshare_owners[i].der_len))
			return false;
	return true;
}

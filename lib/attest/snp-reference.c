/* lib/attest: ReferenceValues.snp[] entries (ATTESTATION.md 6) from JSON, strictly: unknown keys,
 * wrong hex sizes and contradictory settings are errors. */
#include <stdio.h>

#include "attest/snp-internal.h"

void attest_snp_references_done(struct attest_snp_references *refs)
{
	if (!refs)
		return;
	for (size_t i = 0; i < refs->n; i++)
		free(refs->items[i].chip_ids);
	free(refs->items);
	*refs = (struct attest_snp_references){};
}

static int unhex_exact(const char *s, uint8_t *out, size_t n)
{
	return hex_decode_exact(s, s ? strlen(s) : 0, out, n);
}

/* Every key of o must be in the NULL-terminated list. */
static int only_keys(const json_t *o, const char *const *keys, const char *where, char **ret_msg)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)o, k, v)
	{
		bool ok = false;
		for (size_t i = 0; keys[i]; i++)
			ok = ok || str_eq(k, keys[i]);
		if (!ok)
			return str_set_message(ret_msg, EINVAL, "%s: unknown key \"%s\"", where, k);
	}
	return 0;
}

static int get_u8(const json_t *o, const char *key, bool required, uint8_t *ret, bool *present,
		  char **ret_msg)
{
	json_t *v = json_object_get(o, key);
	if (present)
		*present = v != NULL;
	if (!v) {
		if (required)
			return str_set_message(ret_msg, EINVAL, "%s is required", key);
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 255)
		return str_set_message(ret_msg, EINVAL, "%s must be an integer 0..255", key);
	*ret = (uint8_t)json_integer_value(v);
	return 0;
}

struct flag {
	const char *key;
	uint64_t bit;
	bool permission; /* true: allows the bit; false: demands it */
};

static int get_flags(const json_t *o, const struct flag *flags, size_t n, uint64_t *allowed,
		     uint64_t *required, char **ret_msg)
{
	for (size_t i = 0; i < n; i++) {
		json_t *v = json_object_get(o, flags[i].key);
		if (!v)
			continue;
		if (!json_is_boolean(v))
			return str_set_message(ret_msg, EINVAL, "%s must be a boolean",
					       flags[i].key);
		if (json_is_true(v))
			*(flags[i].permission ? allowed : required) |= flags[i].bit;
	}
	return 0;
}

static int parse_entry(const json_t *j, struct attest_snp_reference *ret, char **ret_msg)
{
	static const char *const keys[] = {"ProductName", "TrustedMeasurement", "MinimumTCB",
					   "GuestPolicy", "PlatformInfo",       "AllowedChipIDs",
					   NULL};
	static const char *const tcb_keys[] = {"BootloaderVersion", "TEEVersion", "SNPVersion",
					       "MicrocodeVersion",  "FMCVersion", NULL};
	static const char *const pol_keys[] = {
	    "ABIMinor",        "ABIMajor",   "SMT",          "MigrateMA", "Debug",
	    "SingleSocket",    "CXLAllowed", "MemAES256XTS", "RAPLDis",   "CipherTextHidingDRAM",
	    "PageSwapDisable", NULL};
	static const char *const pi_keys[] = {"SMTEnabled",
					      "TSMEEnabled",
					      "ECCEnabled",
					      "RAPLDisabled",
					      "CiphertextHidingDRAMEnabled",
					      "AliasCheckComplete",
					      "TIOEnabled",
					      NULL};
	static const struct flag pol_flags[] = {
	    {"SMT", ATTEST_SNP_POLICY_SMT, true},
	    {"CXLAllowed", ATTEST_SNP_POLICY_CXL_ALLOW, true},
	    {"SingleSocket", ATTEST_SNP_POLICY_SINGLE_SOCKET, false},
	    {"MemAES256XTS", ATTEST_SNP_POLICY_MEM_AES_256_XTS, false},
	    {"RAPLDis", ATTEST_SNP_POLICY_RAPL_DIS, false},
	    {"CipherTextHidingDRAM", ATTEST_SNP_POLICY_CIPHERTEXT_HIDING, false},
	    {"PageSwapDisable", ATTEST_SNP_POLICY_PAGE_SWAP_DISABLE, false},
	};
	static const struct flag pi_flags[] = {
	    {"SMTEnabled", ATTEST_SNP_PLATFORM_SMT_EN, true},
	    {"TSMEEnabled", ATTEST_SNP_PLATFORM_TSME_EN, true},
	    {"TIOEnabled", ATTEST_SNP_PLATFORM_TIO_EN, true},
	    {"ECCEnabled", ATTEST_SNP_PLATFORM_ECC_EN, false},
	    {"RAPLDisabled", ATTEST_SNP_PLATFORM_RAPL_DIS, false},
	    {"CiphertextHidingDRAMEnabled", ATTEST_SNP_PLATFORM_CIPHERTEXT_HIDING_EN, false},
	    {"AliasCheckComplete", ATTEST_SNP_PLATFORM_ALIAS_CHECK_COMPLETE, false},
	};
	struct attest_snp_reference e = {};
	int r;

	if (!json_is_object(j))
		return str_set_message(ret_msg, EINVAL, "snp entry is not an object");
	if ((r = only_keys(j, keys, "snp entry", ret_msg)) < 0)
		return r;
	json_t *v = json_object_get(j, "ProductName");
	e.product = attest_snp_product_from_name(json_string_value(v));
	if (!json_is_string(v) || !attest_snp_product_name(e.product) ||
	    !str_eq(json_string_value(v), attest_snp_product_name(e.product)))
		return str_set_message(ret_msg, EINVAL,
				       "ProductName must be \"Milan\", \"Genoa\" or \"Turin\"");
	if (unhex_exact(json_string_value(json_object_get(j, "TrustedMeasurement")), e.measurement,
			48) < 0)
		return str_set_message(ret_msg, EINVAL, "TrustedMeasurement must be 96 hex digits");

	json_t *tcb = json_object_get(j, "MinimumTCB");
	if (!json_is_object(tcb))
		return str_set_message(ret_msg, EINVAL, "MinimumTCB object is required");
	if ((r = only_keys(tcb, tcb_keys, "MinimumTCB", ret_msg)) < 0)
		return r;
	bool has_fmc = false;
	if ((r = get_u8(tcb, "BootloaderVersion", true, &e.min_tcb.bootloader, NULL, ret_msg)) <
		0 ||
	    (r = get_u8(tcb, "TEEVersion", true, &e.min_tcb.tee, NULL, ret_msg)) < 0 ||
	    (r = get_u8(tcb, "SNPVersion", true, &e.min_tcb.snp, NULL, ret_msg)) < 0 ||
	    (r = get_u8(tcb, "MicrocodeVersion", true, &e.min_tcb.microcode, NULL, ret_msg)) < 0 ||
	    (r = get_u8(tcb, "FMCVersion", false, &e.min_tcb.fmc, &has_fmc, ret_msg)) < 0)
		return r;
	if (has_fmc != (e.product == ATTEST_SNP_TURIN))
		return str_set_message(ret_msg, EINVAL, "FMCVersion is %s for %s",
				       has_fmc ? "forbidden" : "required",
				       attest_snp_product_name(e.product));

	json_t *pol = json_object_get(j, "GuestPolicy");
	if (pol) {
		if (!json_is_object(pol))
			return str_set_message(ret_msg, EINVAL, "GuestPolicy must be an object");
		if ((r = only_keys(pol, pol_keys, "GuestPolicy", ret_msg)) < 0 ||
		    (r = get_u8(pol, "ABIMinor", false, &e.abi_minor, NULL, ret_msg)) < 0 ||
		    (r = get_u8(pol, "ABIMajor", false, &e.abi_major, NULL, ret_msg)) < 0 ||
		    (r = get_flags(pol, pol_flags, ELEMENTSOF(pol_flags), &e.policy_allowed,
				   &e.policy_required, ret_msg)) < 0)
			return r;
		for (size_t i = 0; i < 2; i++) {
			const char *k = i == 0 ? "Debug" : "MigrateMA";
			json_t *b = json_object_get(pol, k);
			if (b && !json_is_boolean(b))
				return str_set_message(ret_msg, EINVAL, "%s must be a boolean", k);
			if (json_is_true(b))
				return str_set_message(ret_msg, EINVAL, "%s must be false", k);
		}
	}
	json_t *pi = json_object_get(j, "PlatformInfo");
	if (pi) {
		if (!json_is_object(pi))
			return str_set_message(ret_msg, EINVAL, "PlatformInfo must be an object");
		if ((r = only_keys(pi, pi_keys, "PlatformInfo", ret_msg)) < 0 ||
		    (r = get_flags(pi, pi_flags, ELEMENTSOF(pi_flags), &e.platform_allowed,
				   &e.platform_required, ret_msg)) < 0)
			return r;
	}

	json_t *ids = json_object_get(j, "AllowedChipIDs");
	if (ids && !json_is_array(ids))
		return str_set_message(ret_msg, EINVAL, "AllowedChipIDs must be an array");
	size_t n = json_array_size(ids);
	if (n > 0) {
		_cleanup_free_ uint8_t(*chips)[64] = calloc(n, sizeof(*chips));
		if (!chips)
			return -ENOMEM;
		for (size_t i = 0; i < n; i++) {
			const char *s = json_string_value(json_array_get(ids, i));
			bool ok =
			    unhex_exact(s, chips[i], 64) == 0 ||
			    (e.product == ATTEST_SNP_TURIN && unhex_exact(s, chips[i], 8) == 0);
			if (!ok)
				return str_set_message(
				    ret_msg, EINVAL, "AllowedChipIDs[%zu] must be 128 hex digits%s",
				    i, e.product == ATTEST_SNP_TURIN ? " or 16" : "");
			for (size_t k = 0; k < i; k++)
				if (memcmp(chips[k], chips[i], 64) == 0)
					return str_set_message(ret_msg, EINVAL,
							       "AllowedChipIDs[%zu] is a duplicate",
							       i);
		}
		e.chip_ids = TAKE_PTR(chips);
		e.n_chip_ids = n;
	}
	*ret = e;
	return 0;
}

int attest_snp_references_from_json(const json_t *j, struct attest_snp_references *ret,
				    char **ret_msg)
{
	const json_t *arr = j;
	json_t *single = NULL;
	if (json_is_object(j)) {
		if (json_object_get(j, "ProductName")) {
			single = (json_t *)j;
		} else {
			static const char *const keys[] = {"snp", "tdx", NULL};
			int r = only_keys(j, keys, "reference values", ret_msg);
			if (r < 0)
				return r;
			arr = json_object_get(j, "snp");
			if (!arr) {
				*ret = (struct attest_snp_references){};
				return 0;
			}
		}
	}
	if (!single && !json_is_array(arr))
		return str_set_message(ret_msg, EINVAL,
				       "reference values must be an entry, an "
				       "array or {\"snp\": [...]}");
	size_t n = single ? 1 : json_array_size(arr);
	struct attest_snp_references refs = {};
	if (n > 0) {
		refs.items = calloc(n, sizeof(*refs.items));
		if (!refs.items)
			return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *m = NULL;
		int r = parse_entry(single ? single : json_array_get(arr, i), &refs.items[i], &m);
		if (r < 0) {
			attest_snp_references_done(&refs);
			return str_set_message(ret_msg, r, "snp[%zu]: %s", i, m ? m : "invalid");
		}
		refs.n++;
	}
	*ret = refs;
	return 0;
}

int attest_snp_references_parse(const char *text, size_t len, struct attest_snp_references *ret,
				char **ret_msg)
{
	if (len > ATTEST_SNP_FILE_MAX_BYTES)
		return str_set_message(ret_msg, EFBIG, "reference values larger than %u bytes",
				       ATTEST_SNP_FILE_MAX_BYTES);
	json_error_t jerr;
	_cleanup_(json_decrefp) json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j)
		return str_set_message(ret_msg, EINVAL, "reference values: %s (line %d)", jerr.text,
				       jerr.line);
	return attest_snp_references_from_json(j, ret, ret_msg);
}

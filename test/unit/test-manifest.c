/* Unit tests for lib/manifest: the example manifest of ATTESTATION.md 6, every validation rule
 * with the path its message names, the initdata check, lookups and the generator. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "manifest/manifest.h"
#include "userdata/userdata.h"

DEFINE_CLEANUP(EVP_PKEY, EVP_PKEY_free)

static const char example[] =
    "{\n"
    "  \"Policies\": {\n"
    "    \"0bc898e1342fd1c0d16d25d999baf2f8b2cc98a24639efd10298bcbd7f9cf684\": {\n"
    "      \"SANs\": [\"coordinator\", \"coordinator.default.svc\"],\n"
    "      \"WorkloadSecretID\": \"apps/v1/StatefulSet/default/coordinator\",\n"
    "      \"Role\": \"coordinator\"\n"
    "    },\n"
    "    \"7169ad27a72085f0a169821f78408d272adcfe7e132d738f267a431770cd7042\": {\n"
    "      \"SANs\": [\"web\", \"web.default.svc.cluster.local\", \"10.0.0.7\", "
    "\"spiffe://cluster.local/ns/default/sa/web\"],\n"
    "      \"WorkloadSecretID\": \"apps/v1/Deployment/default/web\"\n"
    "    }\n"
    "  },\n"
    "  \"ReferenceValues\": {\n"
    "    \"snp\": [\n"
    "      {\n"
    "        \"ProductName\": \"Genoa\",\n"
    "        \"TrustedMeasurement\": "
    "\"bece7399a4da054a63a2e3fa1a47ff98c88e391d4379126fc4e75c677f25b6cd6bfd8ef609a8638049633ac7e00e"
    "4ac1\",\n"
    "        \"MinimumTCB\": {\"BootloaderVersion\": 10, \"TEEVersion\": 0, \"SNPVersion\": 23, "
    "\"MicrocodeVersion\": 84},\n"
    "        \"GuestPolicy\": {\"ABIMinor\": 0, \"ABIMajor\": 0, \"SMT\": true, \"MigrateMA\": "
    "false, \"Debug\": false},\n"
    "        \"PlatformInfo\": {\"SMTEnabled\": true, \"TSMEEnabled\": true},\n"
    "        \"AllowedChipIDs\": []\n"
    "      },\n"
    "      {\n"
    "        \"ProductName\": \"Turin\",\n"
    "        \"TrustedMeasurement\": "
    "\"f924dd18f168df60fbea937f0b086284d51b1b376de872bac43694f61134d57967c318018de7335503023dbb50de"
    "e624\",\n"
    "        \"MinimumTCB\": {\"BootloaderVersion\": 1, \"TEEVersion\": 0, \"SNPVersion\": 2, "
    "\"MicrocodeVersion\": 71, \"FMCVersion\": 0},\n"
    "        \"GuestPolicy\": {\"ABIMinor\": 0, \"ABIMajor\": 0, \"SMT\": true},\n"
    "        \"PlatformInfo\": {\"SMTEnabled\": true, \"TSMEEnabled\": true, \"ECCEnabled\": true, "
    "\"AliasCheckComplete\": true},\n"
    "        \"AllowedChipIDs\": [\"3b42092f69c656d3\"]\n"
    "      }\n"
    "    ],\n"
    "    \"tdx\": [\n"
    "      {\n"
    "        \"MrTd\": "
    "\"91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b25388731"
    "18b7\",\n"
    "        \"MrSeam\": "
    "\"5b38e33a6487958b72c3c12a938eaa5e3fd4510c51aeeab58c7d5ecee41d7c436489d6c8e4f92f160b7cad34207b"
    "00c1\",\n"
    "        \"Rtmrs\": [\n"
    "          "
    "\"44c0197b39157fdd7a4dcc44767f9d6b0bb3977c7a8e347b8492f827fe9d9e5c48aca29b220b80b6a540cf994b9b"
    "c9c0\",\n"
    "          "
    "\"0084452c01668329d4bc06acdf58a7205c26743304509973949e5619bf81a6a7aea8c323c173019b3093d54e579e"
    "9378\",\n"
    "          "
    "\"d833feef2cd945148aa38ead2c53e9b7f138190aaaebfc551dccd829fc207aa3ba80b70870d7330733642e01d48c"
    "3132\",\n"
    "          "
    "\"00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "0000\"\n"
    "        ],\n"
    "        \"Xfam\": \"e702060000000000\",\n"
    "        \"TdAttributes\": \"0000001000000000\",\n"
    "        \"MinimumTCBEvaluationDataNumber\": 17,\n"
    "        \"AllowedStatuses\": [\"UpToDate\", \"SWHardeningNeeded\"]\n"
    "      }\n"
    "    ]\n"
    "  },\n"
    "  \"WorkloadOwnerPubKeys\": [\n"
    "    "
    "\"3059301306072a8648ce3d020106082a8648ce3d03010703420004478c7814ed5acdbfca596841e523d3dca2bfbf"
    "da2f7cddf7256dd912602f3597ad51b780aa8f8eb10b5846f15052b15aa7d9df6256eca1adb6ee29248650a054\"\n"
    "  ],\n"
    "  \"SeedshareOwnerPubKeys\": [\n"
    "    "
    "\"3082010a02820101009512ea0475d69f84c472ac2176a59196d733713079020130641173c770b3b842056816732a"
    "81dee818dc71355f37b33ca55e669e920156241b8e63906af978430489ec9dccc0126e21609954691b928bd13b3d76"
    "f88c1023e443d10f87b8ae2edb3e1b1a5de0b334d4cb6a84c39707dfbb7ffb493bfe9e5b1a3efd942ee9c889bbb00e"
    "3fb357f3696e82f16be9769df4b8704be5e0e3280a22c42385409ba85edd98e7c2ace03d7293240f8cd7a5d77d3e54"
    "2771e3016ba9fd3e5755280e877d063a8c84e839ce875bdd895016559b769477666d9f45854a71338eb5054f867d31"
    "4c71f8ad6a6e71d74ac284a93cbccc3999541a12166eec4de2c6ae80ccf6130203010001\"\n"
    "  ]\n"
    "}\n";

#define COORD_KEY "0bc898e1342fd1c0d16d25d999baf2f8b2cc98a24639efd10298bcbd7f9cf684"
#define WEB_KEY "7169ad27a72085f0a169821f78408d272adcfe7e132d738f267a431770cd7042"

static int parse_text(const char *text, struct manifest **m, char **msg)
{
	return manifest_parse(text, strlen(text), m, msg);
}

static json_t *example_json(void)
{
	json_t *j = json_loads(example, 0, NULL);
	assert_non_null(j);
	return j;
}

/* Set (or with v == NULL delete) the value at a dotted path; numeric parts index arrays. */
static void set_path(json_t *root, const char *path, json_t *v)
{
	_cleanup_strv_free_ char **parts = NULL;
	assert_int_equal(strv_split(path, ".", true, &parts), 0);
	size_t n = strv_length(parts);
	json_t *cur = root;
	for (size_t i = 0; i + 1 < n; i++) {
		cur = json_is_array(cur) ? json_array_get(cur, strtoul(parts[i], NULL, 10))
					 : json_object_get(cur, parts[i]);
		assert_non_null(cur);
	}
	if (json_is_array(cur)) {
		size_t idx = strtoul(parts[n - 1], NULL, 10);
		if (v)
			assert_int_equal(json_array_set_new(cur, idx, v), 0);
		else
			assert_int_equal(json_array_remove(cur, idx), 0);
	} else if (v)
		assert_int_equal(json_object_set_new(cur, parts[n - 1], v), 0);
	else
		assert_int_equal(json_object_del(cur, parts[n - 1]), 0);
}

/* Parse j and expect -EINVAL with a message containing want. */
static void expect_reject(json_t *j, const char *want)
{
	_cleanup_free_ char *text = json_dumps(j, 0);
	_cleanup_free_ char *msg = NULL;
	struct manifest *m = NULL;
	int r = parse_text(text, &m, &msg);
	if (r == 0 || !msg || !strstr(msg, want))
		print_error("want rejection with \"%s\", got %d \"%s\"\n", want, r,
			    msg ? msg : "(none)");
	assert_int_equal(r, -EINVAL);
	assert_non_null(msg);
	assert_non_null(strstr(msg, want));
	assert_null(m);
}

/* Mutate a fresh copy of the example at path and expect the message. */
static void reject_with(const char *path, json_t *v, const char *want)
{
	_cleanup_(json_decrefp) json_t *j = example_json();
	set_path(j, path, v);
	expect_reject(j, want);
}

static void test_example(void **state)
{
	_cleanup_(manifest_freep) struct manifest *m = NULL;
	_cleanup_free_ char *msg = NULL;
	int r = parse_text(example, &m, &msg);
	if (r < 0)
		print_error("%s\n", msg);
	assert_int_equal(r, 0);
	assert_int_equal(m->raw_len, strlen(example));
	assert_memory_equal(m->raw, example, m->raw_len);
	uint8_t h[32];
	SHA256((const uint8_t *)example, strlen(example), h);
	assert_memory_equal(m->sha256, h, 32);
	_cleanup_free_ char *hex = hex_encode(h, 32);
	assert_string_equal(m->sha256_hex, hex);

	assert_int_equal(m->n_policies, 2);
	assert_string_equal(m->policies[0].digest_hex, COORD_KEY); /* sorted */
	assert_true(m->policies[0].coordinator);
	assert_int_equal(m->policies[0].n_sans, 2);
	assert_string_equal(m->policies[0].sans[1], "coordinator.default.svc");
	assert_null(m->policies[0].sans[2]);
	assert_string_equal(m->policies[0].workload_secret_id,
			    "apps/v1/StatefulSet/default/coordinator");
	assert_string_equal(m->policies[1].digest_hex, WEB_KEY);
	assert_false(m->policies[1].coordinator);
	assert_int_equal(m->policies[1].n_sans, 4);
	assert_string_equal(m->policies[1].sans[3], "spiffe://cluster.local/ns/default/sa/web");

	assert_int_equal(m->snp.n, 2);
	assert_int_equal(m->snp.items[0].product, ATTEST_SNP_GENOA);
	assert_int_equal(m->snp.items[0].min_tcb.microcode, 84);
	assert_int_equal(m->snp.items[0].policy_allowed, ATTEST_SNP_POLICY_SMT);
	assert_int_equal(m->snp.items[0].policy_required, 0); /* absent booleans are false */
	assert_int_equal(m->snp.items[0].platform_allowed,
			 ATTEST_SNP_PLATFORM_SMT_EN | ATTEST_SNP_PLATFORM_TSME_EN);
	assert_int_equal(m->snp.items[0].platform_required, 0);
	assert_int_equal(m->snp.items[1].product, ATTEST_SNP_TURIN);
	assert_int_equal(m->snp.items[1].n_chip_ids, 1);
	assert_int_equal(m->snp.items[1].platform_required,
			 ATTEST_SNP_PLATFORM_ECC_EN | ATTEST_SNP_PLATFORM_ALIAS_CHECK_COMPLETE);
	assert_int_equal(m->n_tdx, 1);
	assert_int_equal(m->tdx[0].min_tcb_eval_data_number, 17);
	assert_int_equal(m->tdx[0].allowed_statuses,
			 ATTEST_TDX_TCB_BIT(ATTEST_TDX_TCB_UP_TO_DATE) |
			     ATTEST_TDX_TCB_BIT(ATTEST_TDX_TCB_SW_HARDENING_NEEDED));
	assert_true(m->tdx[0].has_mr_seam);

	assert_int_equal(m->n_workload_owners, 1);
	assert_int_equal(m->workload_owners[0].der_len, 91);
	assert_int_equal(m->n_seedshare_owners, 1);
	assert_int_equal(m->seedshare_owners[0].der_len, 270);
	assert_true(manifest_is_workload_owner(m, m->workload_owners[0].der, 91));
	assert_false(manifest_is_workload_owner(m, m->seedshare_owners[0].der, 270));
	assert_true(manifest_is_seedshare_owner(m, m->seedshare_owners[0].der, 270));
	assert_false(manifest_is_seedshare_owner(m, NULL, 0));
	assert_true(manifest_seedshare_owners_equal(m, m));
}

static void test_defaults(void **state)
{
	/* Optional parts absent: TdAttributes, AllowedStatuses, MrSeam, SANs, Role, owner lists. */
	_cleanup_(json_decrefp) json_t *j = example_json();
	set_path(j, "ReferenceValues.tdx.0.TdAttributes", NULL);
	set_path(j, "ReferenceValues.tdx.0.AllowedStatuses", NULL);
	set_path(j, "ReferenceValues.tdx.0.MrSeam", NULL);
	set_path(j, "ReferenceValues.snp.0.GuestPolicy", NULL);
	set_path(j, "Policies." WEB_KEY ".SANs", NULL);
	set_path(j, "Policies." WEB_KEY ".WorkloadSecretID", json_string(""));
	set_path(j, "WorkloadOwnerPubKeys", NULL);
	set_path(j, "SeedshareOwnerPubKeys", json_array());
	_cleanup_free_ char *text = json_dumps(j, 0), *msg = NULL;
	_cleanup_(manifest_freep) struct manifest *m = NULL;
	assert_int_equal(parse_text(text, &m, &msg), 0);
	static const uint8_t def_attr[8] = {0, 0, 0, 0x10, 0, 0, 0, 0};
	assert_memory_equal(m->tdx[0].td_attributes, def_attr, 8);
	assert_int_equal(m->tdx[0].allowed_statuses, ATTEST_TDX_TCB_BIT(ATTEST_TDX_TCB_UP_TO_DATE));
	assert_false(m->tdx[0].has_mr_seam);
	assert_int_equal(m->snp.items[0].abi_major, 0);
	assert_int_equal(m->snp.items[0].policy_allowed, 0);
	assert_int_equal(m->policies[1].n_sans, 0);
	assert_non_null(m->policies[1].sans);
	assert_null(m->policies[1].workload_secret_id);
	assert_int_equal(m->n_workload_owners, 0);
	assert_int_equal(m->n_seedshare_owners, 0);
}

static void test_lookup(void **state)
{
	_cleanup_(manifest_freep) struct manifest *m = NULL;
	_cleanup_free_ char *msg = NULL;
	assert_int_equal(parse_text(example, &m, &msg), 0);
	uint8_t d[32], cfg[48] = {0};
	assert_int_equal(manifest_hex_decode(WEB_KEY, d, 32), 0);
	const struct manifest_policy *p = manifest_policy_find(m, d);
	assert_non_null(p);
	assert_string_equal(p->digest_hex, WEB_KEY);
	assert_ptr_equal(manifest_policy_for_snp(m, d), p);
	memcpy(cfg, d, 32);
	assert_ptr_equal(manifest_policy_for_tdx(m, cfg), p);
	uint8_t out[32];
	assert_int_equal(manifest_digest_from_tdx(cfg, out), 0);
	assert_memory_equal(out, d, 32);
	cfg[47] = 1; /* MRCONFIGID padding must be zero */
	assert_null(manifest_policy_for_tdx(m, cfg));
	assert_int_equal(manifest_digest_from_tdx(cfg, out), -EBADMSG);
	assert_false(manifest_digest_is_coordinator(m, d));
	d[0] ^= 1;
	assert_null(manifest_policy_find(m, d));
	assert_null(manifest_policy_for_snp(m, d));

	/* Hex keys are read in either case. */
	p = manifest_policy_find_hex(
	    m, "0BC898E1342FD1C0D16D25D999BAF2F8B2CC98A24639EFD10298BCBD7F9CF684");
	assert_non_null(p);
	assert_true(p->coordinator);
	assert_true(manifest_digest_is_coordinator(m, p->digest));
	assert_null(manifest_policy_find_hex(m, "0bc8"));
	assert_null(manifest_policy_find_hex(m, NULL));

	struct attest_digest_rule all = manifest_digest_rule(m);
	struct attest_digest_rule coord = manifest_coordinator_digest_rule(m);
	assert_int_equal(all.n, 2);
	assert_int_equal(coord.n, 1);
	assert_memory_equal(coord.digests[0], p->digest, 32);
}

static void test_reject_structure(void **state)
{
	struct manifest *m = NULL;
	_cleanup_free_ char *msg = NULL;
	assert_int_equal(parse_text("[]", &m, &msg), -EINVAL);
	assert_non_null(strstr(msg, "must be a JSON object"));
	msg = mfree(msg);
	assert_int_equal(parse_text("{\"Policies\":{}} x", &m, &msg), -EINVAL);
	msg = mfree(msg);
	assert_int_equal(parse_text("{\"Policies\":{},\"Policies\":{}}", &m, &msg), -EINVAL);
	assert_non_null(strstr(msg, "duplicate object key"));
	msg = mfree(msg);
	assert_int_equal(parse_text("{\"Policies\":\"\xff\"}", &m, &msg), -EINVAL);
	msg = mfree(msg);
	assert_int_equal(manifest_parse("{}", MANIFEST_MAX_BYTES + 1, &m, &msg), -EFBIG);
	msg = mfree(msg);
	/* Duplicate keys deep inside, as raw text. */
	char *dup = str_printf("%.*s\"TEEVersion\": 0, %s",
			       (int)(strstr(example, "\"TEEVersion\"") - example), example,
			       strstr(example, "\"TEEVersion\""));
	assert_int_equal(parse_text(dup, &m, &msg), -EINVAL);
	assert_non_null(strstr(msg, "duplicate object key"));
	free(dup);
	assert_null(m);

	reject_with("Extra", json_true(), "manifest: unknown key \"Extra\"");
	reject_with("Policies", NULL, "Policies: required");
	reject_with("Policies", json_array(), "Policies: must be an object");
	reject_with("ReferenceValues", NULL, "ReferenceValues: required");
	reject_with("ReferenceValues.sev", json_array(), "ReferenceValues: unknown key \"sev\"");
	reject_with("ReferenceValues.snp", json_object(), "ReferenceValues.snp: must be an array");
	_cleanup_(json_decrefp) json_t *j = example_json();
	set_path(j, "ReferenceValues.snp", json_array());
	set_path(j, "ReferenceValues.tdx", NULL);
	expect_reject(j, "ReferenceValues: needs at least one snp or tdx entry");
}

static void test_reject_policies(void **state)
{
	reject_with("Policies.0bc8", json_object(),
		    "Policies[\"0bc8\"]: key must be 64 hex digits");
	reject_with("Policies." WEB_KEY ".Foo", json_true(),
		    "Policies[\"" WEB_KEY "\"]: unknown key \"Foo\"");
	reject_with("Policies." WEB_KEY ".Role", json_string("admin"),
		    "Policies[\"" WEB_KEY "\"].Role: must be \"\" or \"coordinator\"");
	reject_with("Policies." WEB_KEY ".Role", json_integer(1), ".Role: must be");
	reject_with("Policies." WEB_KEY ".SANs", json_string("web"), ".SANs: must be an array");
	reject_with("Policies." WEB_KEY ".SANs.1", json_string("web"),
		    "Policies[\"" WEB_KEY "\"].SANs[1]: duplicate \"web\"");
	reject_with("Policies." WEB_KEY ".SANs.1", json_string("a b"), ".SANs[1]: must be");
	reject_with("Policies." WEB_KEY ".SANs.1", json_string(""), ".SANs[1]: must be");
	reject_with("Policies." WEB_KEY ".SANs.0", json_integer(3), ".SANs[0]: must be a string");
	reject_with("Policies." WEB_KEY ".WorkloadSecretID", json_integer(3),
		    ".WorkloadSecretID: must be a string");
	reject_with("Policies." COORD_KEY ".Role", json_string(""),
		    "needs at least one entry with Role \"coordinator\"");
	reject_with("Policies." WEB_KEY, json_string("x"), "\"]: must be an object");
	/* The same digest in two spellings. */
	reject_with("Policies.7169AD27A72085F0A169821F78408D272ADCFE7E132D738F267A431770CD7042",
		    json_object(), "appears twice");
}

static void test_reject_reference_values(void **state)
{
	reject_with("ReferenceValues.snp.0.GuestPolicy.Foo", json_true(),
		    "ReferenceValues.snp[0]: GuestPolicy: unknown key \"Foo\"");
	reject_with("ReferenceValues.snp.0.Foo", json_true(),
		    "ReferenceValues.snp[0]: snp entry: unknown key");
	reject_with("ReferenceValues.snp.0.GuestPolicy.Debug", json_true(),
		    "snp[0]: Debug must be false");
	reject_with("ReferenceValues.snp.0.GuestPolicy.MigrateMA", json_true(),
		    "snp[0]: MigrateMA must be false");
	reject_with("ReferenceValues.snp.1.TrustedMeasurement", json_string("00"),
		    "snp[1]: TrustedMeasurement must be 96 hex digits");
	reject_with("ReferenceValues.snp.0.MinimumTCB.FMCVersion", json_integer(0),
		    "snp[0]: FMCVersion is forbidden for Genoa");
	reject_with("ReferenceValues.snp.1.MinimumTCB.FMCVersion", NULL,
		    "snp[1]: FMCVersion is required for Turin");
	reject_with("ReferenceValues.snp.0.MinimumTCB.SNPVersion", json_integer(256),
		    "SNPVersion must be an integer 0..255");
	reject_with("ReferenceValues.snp.0.ProductName", json_string("Naples"),
		    "snp[0]: ProductName");
	reject_with("ReferenceValues.snp.0.AllowedChipIDs",
		    json_pack("[s,s]", "3b42092f69c656d3", "3b42092f69c656d3"),
		    "snp[0]: AllowedChipIDs[0] must be 128 hex digits");
	reject_with("ReferenceValues.snp.1.AllowedChipIDs",
		    json_pack("[s,s]", "3b42092f69c656d3", "3B42092F69C656D3"),
		    "AllowedChipIDs[1] is a duplicate");
	_cleanup_(json_decrefp) json_t *j = example_json();
	json_t *snp = json_object_get(json_object_get(j, "ReferenceValues"), "snp");
	json_array_append(snp, json_array_get(snp, 0));
	expect_reject(j, "ReferenceValues.snp[2]: duplicate of ReferenceValues.snp[0]");

	reject_with("ReferenceValues.tdx.0.Foo", json_true(),
		    "ReferenceValues.tdx[0]: unknown key \"Foo\"");
	reject_with("ReferenceValues.tdx.0.Rtmrs.3", NULL, "ReferenceValues.tdx[0].Rtmrs");
	reject_with("ReferenceValues.tdx.0.MrTd", json_string("91eb"),
		    "ReferenceValues.tdx[0].MrTd");
	reject_with("ReferenceValues.tdx.0.Xfam", json_string("e7020600"), "tdx[0].Xfam");
	reject_with("ReferenceValues.tdx.0.TdAttributes", json_string("0100001000000000"),
		    "ReferenceValues.tdx[0].TdAttributes: bits 0 (DEBUG) and 29 (MIGRATABLE)");
	reject_with("ReferenceValues.tdx.0.TdAttributes", json_string("0000002000000000"),
		    "tdx[0].TdAttributes: bits 0");
	reject_with("ReferenceValues.tdx.0.AllowedStatuses", json_pack("[s]", "Revoked"),
		    "tdx[0].AllowedStatuses[0]");
	reject_with("ReferenceValues.tdx.0.AllowedStatuses", json_pack("[s]", "Fine"),
		    "tdx[0].AllowedStatuses[0]");
	reject_with("ReferenceValues.tdx.0.AllowedStatuses",
		    json_pack("[s,s]", "OutOfDate", "OutOfDate"),
		    "tdx[0].AllowedStatuses[1]: duplicate \"OutOfDate\"");
	reject_with("ReferenceValues.tdx.0.MinimumTCBEvaluationDataNumber", json_integer(-1),
		    "tdx[0].MinimumTCBEvaluationDataNumber: must be an integer >= 0");
	reject_with("ReferenceValues.tdx.0.MinimumTCBEvaluationDataNumber", json_string("1"),
		    "tdx[0].MinimumTCBEvaluationDataNumber");
	reject_with("ReferenceValues.tdx.0", json_string("x"),
		    "ReferenceValues.tdx[0]: must be an object");

	/* TdAttributes other bits, upper-case hex: accepted. */
	_cleanup_(json_decrefp) json_t *ok = example_json();
	set_path(ok, "ReferenceValues.tdx.0.TdAttributes", json_string("000000100000000A"));
	_cleanup_free_ char *text = json_dumps(ok, 0), *msg = NULL;
	_cleanup_(manifest_freep) struct manifest *m = NULL;
	assert_int_equal(parse_text(text, &m, &msg), 0);
	assert_int_equal(m->tdx[0].td_attributes[7], 0x0a);
}

static char *key_hex(EVP_PKEY *k, bool pkcs1)
{
	unsigned char *der = NULL;
	int n = pkcs1 ? i2d_PublicKey(k, &der) : i2d_PUBKEY(k, &der);
	assert_true(n > 0);
	char *h = hex_encode(der, (size_t)n);
	OPENSSL_free(der);
	return h;
}

static void test_reject_keys(void **state)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *p384 = EVP_EC_gen("P-384"), *p521 = EVP_EC_gen("P-521"),
					   *rsa1024 = EVP_RSA_gen(1024),
					   *rsa2048 = EVP_RSA_gen(2048);
	_cleanup_free_ char *h384 = key_hex(p384, false), *h521 = key_hex(p521, false),
			    *h1024 = key_hex(rsa1024, true), *h2048 = key_hex(rsa2048, true),
			    *h2048spki = key_hex(rsa2048, false);

	_cleanup_(json_decrefp) json_t *j = example_json();
	json_array_append_new(json_object_get(j, "WorkloadOwnerPubKeys"), json_string(h384));
	json_array_append_new(json_object_get(j, "SeedshareOwnerPubKeys"), json_string(h2048));
	_cleanup_free_ char *text = json_dumps(j, 0), *msg = NULL;
	_cleanup_(manifest_freep) struct manifest *m = NULL;
	assert_int_equal(parse_text(text, &m, &msg), 0);
	assert_int_equal(m->n_workload_owners, 2);
	assert_int_equal(m->n_seedshare_owners, 2);

	reject_with(
	    "WorkloadOwnerPubKeys.0", json_string(h521),
	    "WorkloadOwnerPubKeys[0]: not a DER SubjectPublicKeyInfo of an EC P-256 or P-384 key");
	reject_with("WorkloadOwnerPubKeys.0", json_string(h2048spki),
		    "WorkloadOwnerPubKeys[0]: not a DER");
	reject_with("WorkloadOwnerPubKeys.0", json_string("zz"),
		    "WorkloadOwnerPubKeys[0]: must be hex");
	reject_with("WorkloadOwnerPubKeys.0", json_string(""),
		    "WorkloadOwnerPubKeys[0]: must be hex");
	reject_with("WorkloadOwnerPubKeys", json_string(h384),
		    "WorkloadOwnerPubKeys: must be an array");
	reject_with("SeedshareOwnerPubKeys.0", json_string(h1024),
		    "SeedshareOwnerPubKeys[0]: RSA key must have 2048..16384 bits");
	reject_with("SeedshareOwnerPubKeys.0", json_string(h2048spki),
		    "SeedshareOwnerPubKeys[0]: not a DER PKCS#1 RSAPublicKey");
	reject_with("SeedshareOwnerPubKeys.0", json_string(h384),
		    "SeedshareOwnerPubKeys[0]: not a DER");
	/* Trailing bytes after the DER. */
	_cleanup_free_ char *trail = str_printf("%s00", h384);
	reject_with("WorkloadOwnerPubKeys.0", json_string(trail),
		    "WorkloadOwnerPubKeys[0]: not a DER");

	_cleanup_(json_decrefp) json_t *d = example_json();
	json_t *list = json_object_get(d, "SeedshareOwnerPubKeys");
	json_array_append_new(list, json_string(json_string_value(json_array_get(list, 0))));
	expect_reject(d, "SeedshareOwnerPubKeys[1]: duplicate of SeedshareOwnerPubKeys[0]");
	_cleanup_(json_decrefp) json_t *e = example_json();
	list = json_object_get(e, "WorkloadOwnerPubKeys");
	/* Upper-case hex of the same key is the same key. */
	_cleanup_free_ char *upper = strdup(json_string_value(json_array_get(list, 0)));
	for (char *c = upper; *c; c++)
		if (*c >= 'a' && *c <= 'f')
			*c = (char)(*c - 'a' + 'A');
	json_array_append_new(list, json_string(upper));
	expect_reject(e, "WorkloadOwnerPubKeys[1]: duplicate of WorkloadOwnerPubKeys[0]");
}

/* ---- initdata and the generator ---- */

#define TOML_A                                                                                   \
	"algorithm = \"sha256\"\nversion = \"0.1.0\"\n\n[data]\n\"policy.rego\" = '''\npackage " \
	"agent_policy\ndefault AllowRequestsFailingPolicy := true\n'''\n"
#define TOML_B "algorithm = \"sha256\"\nversion = \"0.1.0\"\n\n[data]\n\"aa.toml\" = '''\n'''\n"

static json_t *reference_values(void)
{
	json_t *j = example_json();
	json_t *r = json_incref(json_object_get(j, "ReferenceValues"));
	json_decref(j);
	return r;
}

static char *encode(const char *toml)
{
	char *enc = NULL;
	assert_int_equal(initdata_encode(toml, strlen(toml), &enc), 0);
	return enc;
}

static void digest_hex(const char *toml, char out[65])
{
	uint8_t d[32];
	SHA256((const uint8_t *)toml, strlen(toml), d);
	_cleanup_free_ char *h = hex_encode(d, 32);
	memcpy(out, h, 65);
}

static void test_generate_and_initdata(void **state)
{
	_cleanup_(json_decrefp) json_t *refs = reference_values();
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *owner = EVP_EC_gen("P-256"), *share = EVP_RSA_gen(2048);
	_cleanup_free_ char *enc_b = encode(TOML_B);
	char *sans_a[] = {"coordinator", "10.0.0.1", NULL};
	struct manifest_gen_policy pols[] = {
	    {.initdata = TOML_A,
	     .sans = sans_a,
	     .workload_secret_id = "coord",
	     .role = "coordinator"},
	    {.initdata = enc_b, .sans = NULL, .workload_secret_id = "", .role = NULL},
	};
	struct manifest_gen g = {
	    .policies = pols,
	    .n_policies = 2,
	    .reference_values = refs,
	    .workload_owners = &owner,
	    .n_workload_owners = 1,
	    .seedshare_owners = &share,
	    .n_seedshare_owners = 1,
	};
	_cleanup_free_ char *json = NULL, *json2 = NULL, *msg = NULL;
	_cleanup_strv_free_ char **docs = NULL, **docs2 = NULL;
	int r = manifest_generate(&g, &json, &docs, &msg);
	if (r < 0)
		print_error("%s\n", msg);
	assert_int_equal(r, 0);
	assert_int_equal(manifest_generate(&g, &json2, &docs2, &msg), 0);
	assert_string_equal(json, json2); /* stable */
	assert_true(str_endswith(json, "}\n"));
	assert_int_equal(strv_length(docs), 2);

	char ka[65], kb[65];
	digest_hex(TOML_A, ka);
	digest_hex(TOML_B, kb);
	_cleanup_(manifest_freep) struct manifest *m = NULL;
	assert_int_equal(parse_text(json, &m, &msg), 0);
	const struct manifest_policy *pa = manifest_policy_find_hex(m, ka);
	const struct manifest_policy *pb = manifest_policy_find_hex(m, kb);
	assert_non_null(pa);
	assert_non_null(pb);
	assert_true(pa->coordinator);
	assert_string_equal(pa->sans[0], "coordinator");
	assert_string_equal(pa->sans[1], "10.0.0.1");
	assert_string_equal(pa->workload_secret_id, "coord");
	assert_false(pb->coordinator);
	assert_null(pb->workload_secret_id);
	assert_int_equal(m->n_workload_owners, 1);
	assert_int_equal(m->n_seedshare_owners, 1);
	/* Canonical: sorted keys, so "Policies" precedes "ReferenceValues" and the key order is
	 * independent of the input order. */
	assert_true(strstr(json, "\"Policies\"") < strstr(json, "\"ReferenceValues\""));
	struct manifest_gen_policy swapped[] = {pols[1], pols[0]};
	g.policies = swapped;
	_cleanup_free_ char *json3 = NULL;
	_cleanup_strv_free_ char **docs3 = NULL;
	assert_int_equal(manifest_generate(&g, &json3, &docs3, &msg), 0);
	assert_string_equal(json, json3);
	g.policies = pols;

	/* The initdata check: both documents, in any order, possibly twice. */
	struct manifest_initdata got = {};
	char *both[] = {docs[1], docs[0], docs[1]};
	assert_int_equal(manifest_check_initdata(m, both, 3, &got, &msg), 0);
	assert_int_equal(got.n, 2);
	size_t ia = (size_t)(pa - m->policies), ib = (size_t)(pb - m->policies);
	assert_int_equal(got.lens[ia], strlen(TOML_A));
	assert_memory_equal(got.tomls[ia], TOML_A, strlen(TOML_A));
	assert_memory_equal(got.tomls[ib], TOML_B, strlen(TOML_B));
	manifest_initdata_done(&got);

	msg = mfree(msg);
	char *one[] = {docs[0]};
	assert_int_equal(manifest_check_initdata(m, one, 1, NULL, &msg), -EINVAL);
	_cleanup_free_ char *want = str_printf("Policies[\"%s\"]: no initdata document", kb);
	assert_non_null(strstr(msg, want));
	msg = mfree(msg);

	_cleanup_free_ char *enc_other = encode(TOML_B "# another\n");
	char *extra[] = {docs[0], docs[1], enc_other};
	assert_int_equal(manifest_check_initdata(m, extra, 3, NULL, &msg), -EINVAL);
	assert_non_null(strstr(msg, "initdata[2]: its digest"));
	assert_non_null(strstr(msg, "is not a key of Policies"));
	msg = mfree(msg);

	char *garbage[] = {docs[0], "!!not base64!!"};
	assert_int_equal(manifest_check_initdata(m, garbage, 2, NULL, &msg), -EINVAL);
	assert_non_null(strstr(msg, "initdata[1]:"));
	msg = mfree(msg);

	/* A digest that matches but a document that is not sha256 initdata. */
	const char *toml384 = "algorithm = \"sha384\"\nversion = \"0.1.0\"\n\n[data]\n";
	_cleanup_free_ char *enc384 = encode(toml384);
	char k384[65];
	digest_hex(toml384, k384);
	_cleanup_(json_decrefp) json_t *mj = json_loads(json, 0, NULL);
	json_object_set_new(json_object_get(mj, "Policies"), k384, json_object());
	_cleanup_free_ char *text384 = json_dumps(mj, 0);
	_cleanup_(manifest_freep) struct manifest *m384 = NULL;
	assert_int_equal(parse_text(text384, &m384, &msg), 0);
	char *with384[] = {docs[0], docs[1], enc384};
	assert_int_equal(manifest_check_initdata(m384, with384, 3, NULL, &msg), -EINVAL);
	assert_non_null(strstr(msg, "algorithm \"sha384\" is not supported"));
}

static void test_generate_errors(void **state)
{
	_cleanup_(json_decrefp) json_t *refs = reference_values();
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *rsa = EVP_RSA_gen(2048), *ec = EVP_EC_gen("P-256");
	struct manifest_gen_policy pols[] = {
	    {.initdata = TOML_A, .role = "coordinator"},
	    {.initdata = TOML_A},
	};
	struct manifest_gen g = {.policies = pols, .n_policies = 2, .reference_values = refs};
	_cleanup_free_ char *json = NULL, *msg = NULL;
	assert_int_equal(manifest_generate(&g, &json, NULL, &msg), -EINVAL);
	assert_non_null(strstr(msg, "policy 1: the same initdata"));
	msg = mfree(msg);

	g.n_policies = 1;
	pols[0].role = "";
	assert_int_equal(manifest_generate(&g, &json, NULL, &msg), -EINVAL);
	assert_non_null(strstr(msg, "Role \"coordinator\""));
	msg = mfree(msg);
	pols[0].role = "coordinator";

	g.workload_owners = &rsa;
	g.n_workload_owners = 1;
	assert_int_equal(manifest_generate(&g, &json, NULL, &msg), -EINVAL);
	assert_non_null(strstr(msg, "WorkloadOwnerPubKeys[0]: must be an EC key"));
	msg = mfree(msg);
	g.n_workload_owners = 0;
	g.seedshare_owners = &ec;
	g.n_seedshare_owners = 1;
	assert_int_equal(manifest_generate(&g, &json, NULL, &msg), -EINVAL);
	assert_non_null(strstr(msg, "SeedshareOwnerPubKeys[0]: must be an RSA key"));
	msg = mfree(msg);
	g.n_seedshare_owners = 0;

	pols[0].initdata = "not toml at all";
	assert_int_equal(manifest_generate(&g, &json, NULL, &msg), -EINVAL);
	assert_non_null(strstr(msg, "policy 0:"));
	msg = mfree(msg);
	pols[0].initdata = TOML_A;

	_cleanup_(json_decrefp) json_t *bad = json_deep_copy(refs);
	json_object_set_new(json_array_get(json_object_get(bad, "tdx"), 0), "Xfam",
			    json_string("00"));
	g.reference_values = bad;
	assert_int_equal(manifest_generate(&g, &json, NULL, &msg), -EINVAL);
	assert_non_null(strstr(msg, "ReferenceValues.tdx[0].Xfam"));
	msg = mfree(msg);
	g.reference_values = NULL;
	assert_int_equal(manifest_generate(&g, &json, NULL, &msg), -EINVAL);
	assert_null(json);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_example),         cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_lookup),          cmocka_unit_test(test_reject_structure),
	    cmocka_unit_test(test_reject_policies), cmocka_unit_test(test_reject_reference_values),
	    cmocka_unit_test(test_reject_keys),     cmocka_unit_test(test_generate_and_initdata),
	    cmocka_unit_test(test_generate_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

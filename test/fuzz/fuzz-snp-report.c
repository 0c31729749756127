/* Fuzz target for the SEV-SNP report parser and its JSON view (ATTESTATION.md 1): any input,
 * padded or cut to the report size by the first byte, must parse or fail cleanly, and what parses
 * must render and keep its fields. */
#include "attest/attest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct attest_snp_report r;
	char *msg = NULL;
	/* As given (mostly the wrong size) ... */
	if (attest_snp_report_parse(data, size, &r, &msg) == 0 && size != ATTEST_SNP_REPORT_SIZE)
		__builtin_trap();
	free(msg);
	msg = NULL;
	/* ... and fitted to the exact size so the field checks are reached. */
	uint8_t buf[ATTEST_SNP_REPORT_SIZE] = {};
	memcpy(buf, data, MIN(size, sizeof(buf)));
	if (attest_snp_report_parse(buf, sizeof(buf), &r, &msg) == 0) {
		if (r.version < 2 || !(r.policy & ATTEST_SNP_POLICY_RESERVED_1) ||
		    memcmp(r.raw, buf, sizeof(buf)) != 0)
			__builtin_trap();
		for (enum attest_snp_product p = ATTEST_SNP_PRODUCT_UNKNOWN; p <= ATTEST_SNP_TURIN;
		     p++) {
			json_t *j = NULL;
			if (attest_snp_report_to_json(&r, p, &j) == 0) {
				if (json_integer_value(json_object_get(j, "version")) != r.version)
					__builtin_trap();
				char *s = json_dumps(j, 0);
				free(s);
				json_decref(j);
			}
		}
		/* Verification without a VEK must reject, never crash. */
		struct attest_snp_options o = {.skip_crl = true};
		struct attest_result res = {};
		if (attest_snp_verify(buf, sizeof(buf), &o, &res, NULL) == 0) {
			if (res.accepted)
				__builtin_trap();
			attest_result_done(&res);
		}
	} else if (!msg) {
		__builtin_trap();
	}
	free(msg);
	return 0;
}

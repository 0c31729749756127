/* Fuzz target for the SEV-SNP reference-value JSON (ATTESTATION.md 6): parse or reject, and every
 * accepted entry respects the rules the parser promises. */
#include "attest/attest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct attest_snp_references refs = {};
	char *msg = NULL;
	int r = attest_snp_references_parse((const char *)data, size, &refs, &msg);
	if (r == 0) {
		for (size_t i = 0; i < refs.n; i++) {
			const struct attest_snp_reference *e = &refs.items[i];
			if (!attest_snp_product_name(e->product))
				__builtin_trap();
			if (e->product != ATTEST_SNP_TURIN && e->min_tcb.fmc != 0)
				__builtin_trap();
			if ((e->n_chip_ids == 0) != (e->chip_ids == NULL))
				__builtin_trap();
		}
	} else if (!msg) {
		__builtin_trap();
	}
	free(msg);
	attest_snp_references_done(&refs);
	return 0;
}

/* Fuzz target for the aTLS evidence container decoder (ATTESTATION.md 7): any input must decode or
 * fail with a message, and what decodes must re-encode to the same bytes. The same bytes are also
 * read as an SNP certificate table. */
#include "atls/atls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct atls_evidence e;
	char *msg = NULL;
	if (atls_evidence_decode(data, size, &e, &msg) == 0) {
		if (msg || e.n > ATLS_EVIDENCE_MAX_ENTRIES)
			__builtin_trap();
		for (size_t i = 0; i < e.n; i++)
			if (!atls_entry_type_known(e.entries[i].type) ||
			    e.entries[i].value < data ||
			    e.entries[i].value + e.entries[i].len > data + size)
				__builtin_trap();
		uint8_t *out = NULL;
		size_t len = 0;
		if (atls_evidence_encode(&e, &out, &len) != 0 || len != size ||
		    memcmp(out, data, size) != 0)
			__builtin_trap();
		free(out);
	} else if (!msg) {
		__builtin_trap();
	}
	free(msg);

	struct atls_evidence t = {};
	if (atls_snp_cert_table_parse(data, size, &t) == 0)
		for (size_t i = 0; i < t.n; i++)
			if (t.entries[i].value + t.entries[i].len > data + size)
				__builtin_trap();
	return 0;
}

/* Fuzz target for the VCEK/VLEK extension parser (ATTESTATION.md 2): the input is tried as a
 * whole DER certificate and, split at the first byte, as the value of each AMD extension. */
#include "attest/attest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const oids[] = {
    "1.3.6.1.4.1.3704.1.1",   "1.3.6.1.4.1.3704.1.2",   "1.3.6.1.4.1.3704.1.3.1",
    "1.3.6.1.4.1.3704.1.3.2", "1.3.6.1.4.1.3704.1.3.3", "1.3.6.1.4.1.3704.1.3.4",
    "1.3.6.1.4.1.3704.1.3.8", "1.3.6.1.4.1.3704.1.3.9", "1.3.6.1.4.1.3704.1.4",
    "1.3.6.1.4.1.3704.1.5",   "1.3.6.1.4.1.3704.1.6",
};

static void check(const struct attest_snp_vek_ext *e)
{
	if (e->hwid_len != 0 && e->hwid_len != 8 && e->hwid_len != 64)
		__builtin_trap();
	if (e->has_product_name && strlen(e->product_name) >= sizeof(e->product_name))
		__builtin_trap();
	if (e->has_csp_id && strlen(e->csp_id) >= sizeof(e->csp_id))
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct attest_snp_vek_ext e = {};
	char *msg = NULL;
	if (attest_snp_vek_ext_parse_der(data, size, &e, &msg) == 0)
		check(&e);
	else if (!msg)
		__builtin_trap();
	free(msg);
	if (size == 0)
		return 0;
	struct attest_snp_vek_ext one = {};
	const char *oid = oids[data[0] % (sizeof(oids) / sizeof(oids[0]))];
	msg = NULL;
	int r = attest_snp_vek_ext_add(&one, oid, data + 1, size - 1, &msg);
	if (r < 0 && !msg)
		__builtin_trap();
	free(msg);
	check(&one);
	/* A second add of the same OID is a duplicate whenever the first one took. */
	if (r == 0 && one.spl_present + one.hwid_len + one.has_product_name + one.has_csp_id +
			      one.has_struct_version >
			  0) {
		msg = NULL;
		if (attest_snp_vek_ext_add(&one, oid, data + 1, size - 1, &msg) == 0)
			__builtin_trap();
		free(msg);
	}
	return 0;
}

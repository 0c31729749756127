/* Fuzz target: the TDX quote parser, its JSON view and the crypto-only verification path. */
#include <stdint.h>
#include <stdlib.h>

#include <openssl/err.h>

#include "attest/attest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct attest_tdx_quote *q = NULL;
	char *msg = NULL;
	if (attest_tdx_quote_parse(data, size, &q, &msg) == 0) {
		json_t *j = NULL;
		if (attest_tdx_quote_to_json(q, &j) == 0)
			json_decref(j);
		struct attest_tdx_options o = {
		    .now_sec = 1750000000, .skip_crl = true, .skip_collateral = true};
		struct attest_result r = {0};
		if (attest_tdx_verify(q, &o, &r) == 0)
			attest_result_done(&r);
		attest_tdx_quote_free(q);
	}
	free(msg);
	ERR_clear_error();
	return 0;
}

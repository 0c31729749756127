/* Fuzz target: the PCS response scanner and the TCB Info / QE Identity parsers, with TCB level
 * matching on whatever parses. */
#include <stdint.h>
#include <stdlib.h>

#include <openssl/err.h>
#include <string.h>

#include "attest/tdx-internal.h"

static void parse_all(const char *p, size_t n)
{
	struct tdx_tcb_info t = {0};
	struct tdx_qe_identity q = {0};
	char *msg = NULL;
	if (tdx_tcb_info_parse(p, n, &t, &msg) == 0) {
		struct tdx_pck_tcb pck = {.pcesvn = 11};
		uint8_t svn[16] = {3, 1, 2}, svn2[16] = {3, 3, 2};
		struct tdx_tcb_eval ev;
		memset(pck.sgx_svn, 3, sizeof(pck.sgx_svn));
		(void)tdx_tcb_evaluate(&t, &pck, svn, svn2, &ev, &msg);
		tdx_tcb_info_done(&t);
	}
	if (tdx_qe_identity_parse(p, n, &q, &msg) == 0)
		tdx_qe_identity_done(&q);
	free(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	size_t off, len;
	uint8_t sig[64];
	if (attest_tdx_collateral_split(p, size, "tcbInfo", &off, &len, sig) == 0)
		parse_all(p + off, len);
	if (attest_tdx_collateral_split(p, size, "enclaveIdentity", &off, &len, sig) == 0)
		parse_all(p + off, len);
	parse_all(p, size);
	ERR_clear_error();
	return 0;
}

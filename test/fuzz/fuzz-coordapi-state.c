/* Fuzz target for lib/coordapi: the coordinator's HTTP attestation document (what `peerpodctl
 * state` reads from the network). Accepted documents must re-format and parse to the same state;
 * rejections must say why. */
#include "coordapi/coordapi.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct coordapi_state s, again;
	char *msg = NULL;
	int r = coordapi_state_parse((const char *)data, size, &s, &msg);
	if (r < 0) {
		if (r == -EBADMSG && !msg)
			__builtin_trap();
		free(msg);
		return 0;
	}
	char *json = NULL;
	if (coordapi_state_format(&s, &json) < 0)
		__builtin_trap();
	if (coordapi_state_parse(json, strlen(json), &again, NULL) < 0 ||
	    !str_eq(s.state, again.state) || s.has_latest != again.has_latest ||
	    memcmp(s.latest, again.latest, 32) != 0 || s.kind != again.kind ||
	    s.evidence_len != again.evidence_len ||
	    memcmp(s.evidence, again.evidence, s.evidence_len) != 0)
		__builtin_trap();
	uint8_t nonce[ATLS_NONCE_SIZE] = {}, rd[ATLS_REPORT_DATA_SIZE];
	(void)coordapi_state_report_data(&s, nonce, rd);
	free(json);
	coordapi_state_done(&s);
	coordapi_state_done(&again);
	return 0;
}

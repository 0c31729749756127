/* Fuzz target: what the adaptor parses from API server answers: Status error bodies, image pull
 * secrets (base64 inside JSON) merged into auth.json, and RFC 3339 times. */
#include "adaptor/adaptor.h"
#include "k8s/k8s.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pp_error *err = NULL;
	(void)k8s_status_error(500, (const char *)data, size, "GET /x", &err);
	pp_error_free(err);

	json_error_t jerr;
	json_t *secret = json_loadb((const char *)data, size, 0, &jerr);
	json_t *auths = json_object();
	if (secret && auths)
		(void)adaptor_k8s_merge_secret(secret, auths);
	json_decref(secret);
	json_decref(auths);

	char *s = strndup((const char *)data, size);
	int64_t t;
	if (s)
		(void)k8s_parse_time(s, &t);
	free(s);
	return 0;
}

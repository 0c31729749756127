/* Fuzz target: the etcd store backend's parsers of etcd JSON gateway answers (range, txn and
 * error bodies), which come from the network. */
#include "coordinator/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;
	uint8_t *v = NULL;
	size_t len = 0;
	if (store_etcd_parse_range(body, size, "/p/a", &v, &len) == 0 && v[len] != 0)
		__builtin_trap();
	free(v);
	v = NULL;
	if (store_etcd_parse_range(body, size, NULL, &v, &len) == 0 && v[len] != 0)
		__builtin_trap();
	free(v);
	(void)store_etcd_parse_range(body, size, NULL, NULL, NULL);

	bool ok;
	(void)store_etcd_parse_txn(body, size, &ok);

	char *msg = NULL;
	int r = store_etcd_parse_error(size & 1 ? 400 : 503, body, size, &msg);
	if (r >= 0 || (msg && strlen(msg) > 300))
		__builtin_trap();
	free(msg);
	return 0;
}

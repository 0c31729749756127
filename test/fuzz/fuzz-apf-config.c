/* Fuzz target for apf.json parsing (WIRE.md 4.2): the input is the file's text. A success must
 * leave every string set; a failure must say why. */
#include "podvm/forwarder/forwarder.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > APF_CONFIG_MAX_BYTES)
		return 0;
	struct apf_config c;
	char *msg = NULL;
	int r = apf_config_parse((const char *)data, size, &c, &msg);
	if (r == 0) {
		const struct apf_pod_network *n = &c.pod_network;
		if (!n->podip || !n->interface || !c.pod_name || !c.tls_server_key)
			__builtin_trap();
		for (size_t i = 0; i < n->n_routes; i++)
			if (!n->routes[i].dst || !n->routes[i].gw || !n->routes[i].dev ||
			    !apf_route_scope_to_string(n->routes[i].scope))
				__builtin_trap();
		for (size_t i = 0; i < n->n_neighbors; i++)
			if (!n->neighbors[i].ip || !n->neighbors[i].hw_addr)
				__builtin_trap();
	} else if (r == -EINVAL && !msg)
		__builtin_trap();
	free(msg);
	apf_config_done(&c);
	return 0;
}

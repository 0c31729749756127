/* Fuzz target: the kubeconfig parser (YAML through libyaml onto a JSON tree, then the lookups of
 * context, cluster and user). */
#include "k8s/k8s.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct k8s_config *c = NULL;
	char *msg = NULL;
	if (k8s_config_parse_kubeconfig((const char *)data, size, "/base", NULL, &c, &msg) == 0)
		k8s_config_free(c);
	free(msg);
	return 0;
}

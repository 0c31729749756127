/* Fuzz target for the Kubernetes YAML reader of `peerpodctl manifest` (cli/podyaml.c): any input
 * either yields workloads with the fields the manifest needs, or an error naming file and
 * document. */
#include "cli/cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cli_workload *w = NULL;
	size_t n = 0;
	char *msg = NULL;
	int r = cli_workloads_from_yaml_buffer((const char *)data, size, "fuzz.yaml", &w, &n, &msg);
	if (r == 0) {
		for (size_t i = 0; i < n; i++) {
			if (!w[i].api_version || !w[i].kind || !w[i].name || !w[i].namespace ||
			    !*w[i].name || !*w[i].namespace)
				__builtin_trap();
			const char *initdata = cli_workload_initdata(&w[i], NULL);
			if (w[i].initdata && initdata != w[i].initdata)
				__builtin_trap();
		}
		cli_workloads_free(w, n);
	} else if (r == -EINVAL) {
		if (!msg || !str_startswith(msg, "fuzz.yaml: document "))
			__builtin_trap();
	} else if (r != -ENOMEM && r != -EFBIG) {
		__builtin_trap();
	}
	free(msg);
	return 0;
}

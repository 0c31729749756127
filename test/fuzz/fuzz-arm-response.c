/* Fuzz target for the Azure provider's parsers of what ARM, Entra ID and IMDS answer: error
 * bodies, operation status, tokens, VM sizes, VM list pages, VMs, NICs and public IPs. Every
 * parser sees each input; texts they return must be bounded and printable. */
#include "azure/azure-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_text(const char *s)
{
	if (!s)
		return;
	size_t n = strlen(s);
	if (n > 8192 + 3)
		__builtin_trap();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;
	char *code = NULL, *message = NULL;
	if (arm_error_parse(body, size, &code, &message) == 0) {
		if (!message)
			__builtin_trap();
		check_text(code);
		check_text(message);
	}
	free(code);
	free(message);

	enum arm_lro_state st;
	code = message = NULL;
	if (arm_lro_status_parse(body, size, &st, &code, &message) == 0) {
		check_text(code);
		check_text(message);
	}
	free(code);
	free(message);
	(void)arm_provisioning_state_parse(body, size, &st);

	struct azure_token tok = {0};
	if (azure_token_parse(body, size, 1700000000LL * NSEC_PER_SEC, &tok) == 0) {
		if (!tok.access_token || tok.lifetime_ns <= 0 || tok.refresh_in_ns < 0 ||
		    tok.refresh_in_ns > tok.lifetime_ns || strlen(tok.access_token) == 0)
			__builtin_trap();
		check_text(tok.access_token);
	}
	azure_token_done(&tok);

	struct instance_type_spec *sizes = NULL;
	size_t n = 0;
	if (arm_vm_sizes_parse(body, size, &sizes, &n) == 0)
		arm_vm_sizes_free(sizes, n);

	struct provider_instance *v = NULL;
	char *next = NULL;
	if (arm_vm_list_parse(body, size, &v, &n, &next) == 0) {
		for (size_t i = 0; i < n; i++) {
			if (!v[i].id || !v[i].name || !v[i].sandbox_id || !v[i].node_name)
				__builtin_trap();
			check_text(v[i].id);
			check_text(v[i].sandbox_id);
		}
		check_text(next);
		provider_instances_free(v, n);
		free(next);
	}

	char *a = NULL, *b = NULL;
	if (arm_vm_parse(body, size, &a, &b) == 0) {
		check_text(a);
		check_text(b);
		free(a);
		free(b);
	}
	if (arm_nic_parse(body, size, &a, &b) == 0) {
		check_text(a);
		check_text(b);
		free(a);
		free(b);
	}
	if (arm_public_ip_parse(body, size, &a) == 0) {
		check_text(a);
		free(a);
	}
	return 0;
}

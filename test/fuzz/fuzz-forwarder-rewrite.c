/* Fuzz target for the forwarder's rewrites (WIRE.md 4.1): the first byte picks the method
 * (0 CreateSandbox, 1 CreateContainer, else a method that must pass untouched), the rest is the
 * request payload as it arrives from the adaptor. A rewritten payload must decode again and
 * carry the change. */
#include "podvm/forwarder/forwarder.h"

#include "apf-rewrite.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	static const char *const methods[] = {"CreateSandbox", "CreateContainer", "StartContainer"};
	const char *method = methods[data[0] % 3];
	const char *service = FORWARDER_AGENT_SERVICE;
	struct buf out = {0};
	char *msg = NULL;
	int r = forwarder_rewrite(service, strlen(service), method, strlen(method), data + 1,
				  size - 1, "/run/netns/podns", &out, &msg);
	if (data[0] % 3 == 2 && (r != 0 || out.len != 0))
		__builtin_trap();
	if (r < 0 && (r != -EBADMSG || !msg) && r != -EMSGSIZE && r != -ENOMEM)
		__builtin_trap();
	if (r == 1) {
		if (data[0] % 3 == 0) {
			Apfrewrite__CreateSandbox *m =
			    apfrewrite__create_sandbox__unpack(NULL, out.len, out.data);
			if (!m || m->n_dns != 0)
				__builtin_trap();
			apfrewrite__create_sandbox__free_unpacked(m, NULL);
		} else {
			Apfrewrite__CreateContainer *m =
			    apfrewrite__create_container__unpack(NULL, out.len, out.data);
			if (!m || !m->oci || !m->oci->linux || m->oci->linux->n_namespaces == 0)
				__builtin_trap();
			const Apfrewrite__Namespace *last =
			    m->oci->linux->namespaces[m->oci->linux->n_namespaces - 1];
			if (strcmp(last->type, "network") != 0 ||
			    strcmp(last->path, "/run/netns/podns") != 0)
				__builtin_trap();
			apfrewrite__create_container__free_unpacked(m, NULL);
		}
	}
	free(msg);
	buf_done(&out);
	return 0;
}

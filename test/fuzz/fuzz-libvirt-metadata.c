/* Fuzz target for the libvirt provider's metadata parser: the input is what
 * virDomainGetMetadata returns for our namespace (anyone with access to libvirtd can edit it).
 * A success must round-trip: formatting the result and parsing it again gives the same fields. */
#include "libvirt/libvirt-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct libvirt_metadata m = {0}, again = {0};
	if (libvirt_metadata_parse((const char *)data, size, &m) < 0)
		return 0;
	char *xml = libvirt_metadata_format(&m);
	if (!xml)
		__builtin_trap();
	if (libvirt_metadata_parse(xml, strlen(xml), &again) < 0)
		__builtin_trap();
	if (!same(m.sandbox_id, again.sandbox_id) || !same(m.node_name, again.node_name) ||
	    !same(m.pod_name, again.pod_name) || !same(m.pod_namespace, again.pod_namespace) ||
	    !same(m.mac, again.mac) || !same(m.root_volume, again.root_volume) ||
	    !same(m.cidata_volume, again.cidata_volume))
		__builtin_trap();
	free(xml);
	libvirt_metadata_done(&m);
	libvirt_metadata_done(&again);
	return 0;
}

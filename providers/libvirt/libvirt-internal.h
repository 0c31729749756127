/* providers/libvirt: internals shared by the provider's files, its unit test and its fuzz
 * target (the domain XML and cidata builders, the metadata format, and test hooks). */
#pragma once

#include <libvirt/libvirt.h>

#include "provider.h"

/* The project's namespace for the <metadata> element of the domains it creates. */
#define LIBVIRT_METADATA_URI "https://github.com/confidential-containers/peerpods-c/1"
#define LIBVIRT_METADATA_PREFIX "peerpod"
#define LIBVIRT_METADATA_MAX_BYTES (64u << 10)
#define LIBVIRT_METADATA_VALUE_MAX 1024

struct libvirt_settings {
	char *uri;
	char *pool_name;
	char *network_name;
	char *vol_name;
	char *launch_security;
	char *firmware;
	uint64_t cpu;
	uint64_t memory_mib;
	char *cpuset;
	uint64_t root_disk_size_gib;
	char *data_dir;
	bool disable_cvm;
	uint64_t ip_retries;
	int64_t ip_interval_ns;
	char *kernel;
	char *initrd;
	char *cmdline;
	char *machine;
	char *console_log_dir;
};

/* What the provider records in each domain's <metadata>, and reads back when listing. */
struct libvirt_metadata {
	char *sandbox_id;
	char *node_name;
	char *pod_name;
	char *pod_namespace;
	char *mac;           /* the NIC's MAC, for DHCP lease lookups */
	char *root_volume;   /* path of the root overlay volume */
	char *cidata_volume; /* path of the cidata ISO volume */
};
void libvirt_metadata_done(struct libvirt_metadata *m);
/* The element as given to virDomainSetMetadata (no namespace declaration; libvirt adds it). */
char *libvirt_metadata_format(const struct libvirt_metadata *m);
/* Strictly parse what virDomainGetMetadata returns: one element named "instance" (any
 * namespace prefix) whose attributes are the fields above; unknown attributes, duplicates,
 * child elements or text, and oversize values are errors (-EBADMSG). */
int libvirt_metadata_parse(const char *xml, size_t len, struct libvirt_metadata *ret);

/* Build the cidata ISO 9660 image (volume "cidata", Rock Ridge + Joliet) in memory: files
 * user-data, meta-data ("local-hostname: <hostname>", no newline) and empty vendor-data. */
int libvirt_cidata_build(const char *user_data, const char *hostname, uint8_t **ret,
			 size_t *ret_len);

enum libvirt_launch {
	LIBVIRT_LAUNCH_NONE,
	LIBVIRT_LAUNCH_SEV_SNP,
	LIBVIRT_LAUNCH_TDX,
};

/* Everything the domain XML depends on, resolved. */
struct libvirt_domain_params {
	const char *name;
	const char *virt_type; /* "kvm" or "qemu" (or "test" for the test driver) */
	const char *machine;
	unsigned vcpus;
	uint64_t memory_mib;
	const char *cpuset;      /* may be NULL */
	const char *root_path;   /* root overlay volume path */
	const char *cidata_path; /* cidata ISO volume path */
	const char *network;
	const char *mac;
	const char *firmware; /* loader path for plain VMs, may be NULL */
	const char *kernel;   /* direct kernel boot, may be NULL */
	const char *initrd;
	const char *cmdline;
	const char *console_log; /* serial log file, may be NULL (pty only) */
	enum libvirt_launch launch;
	const char *metadata_xml; /* the <instance> element, without namespace */
};
char *libvirt_domain_xml(const struct libvirt_domain_params *d);

/* Test hooks: replace the calls the test driver cannot serve. Both get the provider's
 * userdata. upload writes the bytes into the volume (virStorageVolUpload) and fills reterr on
 * failure; lookup_ip returns a malloc'd IPv4 for a MAC, or -EAGAIN when there is none yet.
 * NULL members keep the real implementations. */
struct libvirt_hooks {
	int (*upload)(void *userdata, virConnectPtr conn, virStorageVolPtr vol, const uint8_t *data,
		      size_t len, struct pp_error **reterr);
	int (*lookup_ip)(void *userdata, virConnectPtr conn, const char *network, const char *mac,
			 char **ret_ip);
	void *userdata;
};
void libvirt_set_hooks(struct provider *p, const struct libvirt_hooks *hooks);

extern const struct provider_ops libvirt_provider_ops;

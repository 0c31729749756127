/* providers/instance-type: the instance type selection of WIRE.md 7, shared by the cloud
 * providers (AWS instance types, Azure VM sizes). Pure: no I/O; the provider fills the catalog
 * from its cloud's size list once at init. */
#pragma once

#include "base/base.h"

struct instance_type_spec {
	char *name;
	unsigned vcpus;
	uint64_t memory_mib;
	unsigned gpus;
};

/* The default type, the allow-list and the specs of the allow-listed types (only the default's
 * when the allow-list is empty), sorted by GPUs, then memory, then vCPUs. */
struct instance_type_catalog {
	char *default_type;
	char **allowed; /* NULL-terminated, may be empty */
	size_t n_allowed;
	struct instance_type_spec *specs;
	size_t n_specs;
};

/* Build a catalog. `allowed` is NULL-terminated (NULL = empty). `known` is every type the
 * cloud reported (any order, may hold more than needed); the specs kept are those of the
 * allow-listed types, or of the default type alone when the allow-list is empty. A type that is
 * allow-listed (or the default) but unknown to the cloud is -ENOENT with *ret_msg naming it,
 * unless `known` is empty (the cloud gave no catalog: selection by vCPUs/memory then finds
 * nothing, machine_type and the default still work). Strings are copied. */
int instance_type_catalog_init(struct instance_type_catalog *c, const char *default_type,
			       char *const *allowed, const struct instance_type_spec *known,
			       size_t n_known, char **ret_msg);
void instance_type_catalog_done(struct instance_type_catalog *c);

/* Pick the instance type for a pod from its annotations (machine_type may be NULL or "";
 * vcpus/memory_mib/gpus 0 = unset). On success *ret is a malloc'd type name. On failure returns
 * -EINVAL (or -ENOMEM) and *ret_msg holds WIRE.md 7's text, e.g. "failed to verify instance
 * type: requested instance type (\"X\") is not part of supported instance types list". */
int instance_type_select(const struct instance_type_catalog *c, const char *machine_type,
			 unsigned vcpus, uint64_t memory_mib, unsigned gpus, char **ret,
			 char **ret_msg);

/* providers/instance-type: WIRE.md 7, the choice of an instance type from a pod's annotations,
 * the provider's default and its allow-list. The error texts are the Go adaptor's, since
 * end-to-end suites match them in pod events. */
#include <inttypes.h>

#include "instance-type.h"

static void spec_done(struct instance_type_spec *s)
{
	free(s->name);
	*s = (struct instance_type_spec){0};
}

void instance_type_catalog_done(struct instance_type_catalog *c)
{
	if (!c)
		return;
	free(c->default_type);
	strv_free(c->allowed);
	for (size_t i = 0; i < c->n_specs; i++)
		spec_done(&c->specs[i]);
	free(c->specs);
	*c = (struct instance_type_catalog){0};
}

static int spec_compare(const void *a, const void *b)
{
	const struct instance_type_spec *x = a, *y = b;
	if (x->gpus != y->gpus)
		return x->gpus < y->gpus ? -1 : 1;
	if (x->memory_mib != y->memory_mib)
		return x->memory_mib < y->memory_mib ? -1 : 1;
	if (x->vcpus != y->vcpus)
		return x->vcpus < y->vcpus ? -1 : 1;
	return strcmp(x->name, y->name);
}

static const struct instance_type_spec *find_known(const struct instance_type_spec *known, size_t n,
						   const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (str_eq(known[i].name, name))
			return &known[i];
	return NULL;
}

static int add_spec(struct instance_type_catalog *c, const struct instance_type_spec *known,
		    size_t n_known, const char *name, char **ret_msg)
{
	for (size_t i = 0; i < c->n_specs; i++)
		if (str_eq(c->specs[i].name, name))
			return 0; /* listed twice */
	const struct instance_type_spec *k = find_known(known, n_known, name);
	if (!k) {
		if (n_known == 0)
			return 0;
		*ret_msg = str_printf("instance type \"%s\" is not offered in this region", name);
		return -ENOENT;
	}
	struct instance_type_spec *v = reallocarray(c->specs, c->n_specs + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	c->specs = v;
	v[c->n_specs] = *k;
	v[c->n_specs].name = strdup(name);
	if (!v[c->n_specs].name)
		return -ENOMEM;
	c->n_specs++;
	return 0;
}

int instance_type_catalog_init(struct instance_type_catalog *c, const char *default_type,
			       char *const *allowed, const struct instance_type_spec *known,
			       size_t n_known, char **ret_msg)
{
	*c = (struct instance_type_catalog){0};
	*ret_msg = NULL;
	int r = -ENOMEM;
	c->default_type = strdup(default_type ?: "");
	c->allowed = calloc(strv_length(allowed) + 1, sizeof(char *));
	if (!c->default_type || !c->allowed)
		goto fail;
	for (size_t i = 0; allowed && allowed[i]; i++) {
		if (str_empty(allowed[i]))
			continue;
		c->allowed[c->n_allowed] = strdup(allowed[i]);
		if (!c->allowed[c->n_allowed])
			goto fail;
		c->n_allowed++;
	}
	if (c->n_allowed == 0) {
		if (!str_empty(c->default_type)) {
			r = add_spec(c, known, n_known, c->default_type, ret_msg);
			if (r < 0)
				goto fail;
		}
	} else {
		for (size_t i = 0; i < c->n_allowed; i++) {
			r = add_spec(c, known, n_known, c->allowed[i], ret_msg);
			if (r < 0)
				goto fail;
		}
	}
	if (c->n_specs > 1)
		qsort(c->specs, c->n_specs, sizeof(*c->specs), spec_compare);
	return 0;
fail:
	instance_type_catalog_done(c);
	if (r == -ENOMEM) {
		free(*ret_msg);
		*ret_msg = NULL;
	}
	return r;
}

static bool is_allowed(const struct instance_type_catalog *c, const char *name)
{
	for (size_t i = 0; i < c->n_allowed; i++)
		if (str_eq(c->allowed[i], name))
			return true;
	return false;
}

static int fail(char **ret_msg, char *msg)
{
	*ret_msg = msg;
	return msg ? -EINVAL : -ENOMEM;
}

int instance_type_select(const struct instance_type_catalog *c, const char *machine_type,
			 unsigned vcpus, uint64_t memory_mib, unsigned gpus, char **ret,
			 char **ret_msg)
{
	*ret = NULL;
	*ret_msg = NULL;
	const char *candidate = "";

	if (!str_empty(machine_type))
		candidate = machine_type;
	else if (gpus > 0) {
		const struct instance_type_spec *found = NULL;
		for (size_t i = 0; i < c->n_specs && !found; i++) {
			const struct instance_type_spec *s = &c->specs[i];
			if (s->gpus >= gpus && s->vcpus >= vcpus && s->memory_mib >= memory_mib)
				found = s;
		}
		if (!found)
			return fail(
			    ret_msg,
			    str_printf("failed to get instance type based on GPU, vCPU, and "
				       "memory annotations: no instance type found for the "
				       "given GPUs (%u), vCPUs (%u), and memory (%" PRIu64 ")",
				       gpus, vcpus, memory_mib));
		candidate = found->name;
	} else if (vcpus != 0 && memory_mib != 0) {
		const struct instance_type_spec *found = NULL;
		for (size_t i = 0; i < c->n_specs && !found; i++) {
			const struct instance_type_spec *s = &c->specs[i];
			if (s->gpus == 0 && s->memory_mib >= memory_mib && s->vcpus >= vcpus)
				found = s;
		}
		if (!found)
			return fail(
			    ret_msg,
			    str_printf("failed to get instance type based on vCPU and memory "
				       "annotations: no instance type found for the given "
				       "vcpus (%u) and memory (%" PRIu64 ")",
				       vcpus, memory_mib));
		candidate = found->name;
	}

	if (str_empty(candidate))
		candidate = c->default_type;
	else if (c->n_allowed == 0 && !str_eq(candidate, c->default_type))
		return fail(ret_msg,
			    str_printf("failed to verify instance type: requested instance "
				       "type (\"%s\") is not default (\"%s\") and "
				       "supported instance types list is empty",
				       candidate, c->default_type));
	else if (c->n_allowed > 0 && !is_allowed(c, candidate))
		return fail(ret_msg,
			    str_printf("failed to verify instance type: requested instance "
				       "type (\"%s\") is not part of supported instance "
				       "types list",
				       candidate));
	*ret = strdup(candidate);
	return *ret ? 0 : -ENOMEM;
}

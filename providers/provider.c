/* providers/provider.c: the table of providers built into this binary. */
#include "provider.h"

extern const struct provider_ops local_provider_ops;
extern const struct provider_ops libvirt_provider_ops;
extern const struct provider_ops azure_provider_ops;
extern const struct provider_ops aws_provider_ops;

const struct provider_ops *const provider_table[] = {
    &local_provider_ops, &libvirt_provider_ops, &azure_provider_ops, &aws_provider_ops, NULL,
};

const struct provider_ops *provider_find(const char *name)
{
	for (size_t i = 0; provider_table[i]; i++)
		if (str_eq(provider_table[i]->name, name))
			return provider_table[i];
	return NULL;
}

void provider_instance_done(struct provider_instance *i)
{
	if (!i)
		return;
	free(i->id);
	free(i->name);
	for (size_t k = 0; k < ELEMENTSOF(i->ips); k++)
		free(i->ips[k]);
	free(i->sandbox_id);
	free(i->node_name);
	*i = (struct provider_instance){0};
}

void provider_instances_free(struct provider_instance *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		provider_instance_done(&v[i]);
	free(v);
}

/* providers/provider.h: the interface between the adaptor and a cloud (or local) provider.
 * A provider is a const table of functions chosen at build time; an unimplemented slot is NULL
 * and the adaptor treats it as -EOPNOTSUPP. create/delete/list run on worker threads, possibly
 * several at once, so implementations must be thread-safe. Errors carry detail in reterr. */
#pragma once

#include "base/base.h"
#include "config/config.h"

struct provider; /* a provider's private state */

/* What every provider may need from the adaptor's common settings. */
struct provider_context {
	const char *data_dir;    /* the adaptor's data directory (providers may use a subfolder) */
	const char *node_name;   /* NODE_NAME, may be "" */
	const char *program_dir; /* directory of the running adaptor binary */
	uint16_t forwarder_port; /* where the forwarder listens in the VM */
	bool disable_tls;        /* the forwarder runs without TLS (tests) */
	/* CLOUD_CONFIG_VERIFY: init checks with the cloud that credentials, network and image
	 * exist, and fails with a clear error otherwise. */
	bool cloud_config_verify;
};

/* What the adaptor asks for, per pod. All strings are owned by the caller. */
struct provider_instance_spec {
	const char *instance_name; /* WIRE 4.4, also the TLS server name */
	const char *sandbox_id;
	const char *pod_name;
	const char *pod_namespace;
	const char *node_name;    /* for the tag the leak sweep matches; may be "" */
	const char *user_data;    /* cloud-config document (WIRE 5.1) */
	const char *apf_json;     /* the forwarder configuration alone (for providers that
				    * pass it directly, e.g. local) */
	const char *image;        /* annotation, may be "" */
	const char *machine_type; /* annotation, may be "" */
	unsigned vcpus;           /* 0 = unset */
	unsigned memory_mib;      /* 0 = unset */
	unsigned gpus;
};

struct provider_instance {
	char *id;   /* cloud instance id; libvirt domain UUID; local: "local-<name>" */
	char *name; /* instance name */
	char *ips[2];
	size_t n_ips;
	char *sandbox_id; /* from the instance's tags/metadata, when listed */
	char *node_name;  /* likewise */
};
void provider_instance_done(struct provider_instance *i);
void provider_instances_free(struct provider_instance *v, size_t n);

struct provider_ops {
	const char *name;
	/* Instances are VMs on a network the worker reaches: the adaptor extends the pod network
	 * into them (WIRE.md 6). False for the local provider, whose "VMs" are processes. */
	bool pod_network;
	/* Provider options (flags/env), parsed by the adaptor into a zeroed settings struct of
	 * settings_size bytes that is then given to init. */
	const struct config_option *options;
	size_t n_options;
	size_t settings_size;

	/* Check settings without network I/O (e.g. required keys). */
	int (*verify_config)(const void *settings, struct pp_error **reterr);
	/* Set up clients/connections. settings stays valid until done. */
	int (*init)(const void *settings, const struct provider_context *ctx, struct provider **ret,
		    struct pp_error **reterr);
	void (*done)(struct provider *p);

	int (*create_instance)(struct provider *p, const struct provider_instance_spec *spec,
			       struct provider_instance *ret, struct pp_error **reterr);
	/* Deleting a missing instance is success. */
	int (*delete_instance)(struct provider *p, const char *instance_id,
			       struct pp_error **reterr);
	/* Instances this adaptor created (tagged with the project's tags), for the leak sweep. */
	int (*list_instances)(struct provider *p, struct provider_instance **ret, size_t *ret_n,
			      struct pp_error **reterr);
	/* Optional: whether the cloud (or libvirt) answers, for /readyz. Runs periodically on a
	 * worker thread; must be cheap. NULL means always reachable. */
	int (*check)(struct provider *p, struct pp_error **reterr);
};

/* The providers built into this binary. */
const struct provider_ops *provider_find(const char *name);
/* NULL-terminated. */
extern const struct provider_ops *const provider_table[];

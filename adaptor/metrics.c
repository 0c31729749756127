/* adaptor/metrics.c: the adaptor's Prometheus metrics and its probes (ARCHITECTURE.md,
 * Observability; WIRE.md 8.5). */
#include "adaptor.h"

static double sandboxes(void *userdata)
{
	const struct adaptor *a = userdata;
	return (double)a->n_sandboxes;
}

static double running(void *userdata)
{
	const struct adaptor *a = userdata;
	size_t n = 0;
	for (const struct sandbox *sb = a->sandboxes; sb; sb = sb->next)
		n += sb->state == SANDBOX_RUNNING;
	return (double)n;
}

static double pending_calls(void *userdata)
{
	const struct adaptor *a = userdata;
	return (double)loop_pending_work(a->loop);
}

int adaptor_metrics_init(struct adaptor *a, struct metrics_registry *reg)
{
	/* StartVM covers instance creation and the first connection to the forwarder: a VM's
	 * boot, seconds to minutes */
	static const double buckets[] = {0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300};
	static const char *const ok[] = {"result", "ok", NULL};
	static const char *const failed[] = {"result", "error", NULL};
	int r = 0;
	r = r
		?: metrics_gauge_new_callback(reg, "cloud_api_adaptor_sandboxes",
					      "Sandboxes this adaptor manages", NULL, sandboxes, a,
					      NULL);
	r = r
		?: metrics_gauge_new_callback(reg, "cloud_api_adaptor_sandboxes_running",
					      "Sandboxes whose pod VM is up and proxied", NULL,
					      running, a, NULL);
	r = r
		?: metrics_gauge_new_callback(reg, "cloud_api_adaptor_provider_calls_pending",
					      "Provider calls queued or running on the worker pool",
					      NULL, pending_calls, a, NULL);
	r = r
		?: metrics_counter_new(reg, "cloud_api_adaptor_startvm_total",
				       "StartVM calls by result", ok, &a->startvm_ok);
	r = r
		?: metrics_counter_new(reg, "cloud_api_adaptor_startvm_total", NULL, failed,
				       &a->startvm_failed);
	r = r
		?: metrics_counter_new(reg, "cloud_api_adaptor_stopvm_total", "StopVM calls", NULL,
				       &a->stopvm_total);
	r = r
		?: metrics_histogram_new(reg, "cloud_api_adaptor_startvm_seconds",
					 "Time from StartVM to a connected agent proxy", NULL,
					 buckets, ELEMENTSOF(buckets), &a->startvm_seconds);
	return r;
}

/* Ready once the hypervisor socket serves and until draining starts. (WIRE.md 8.5's /startup
 * also waits for this node's kata-remote pods to be Ready; that needs the Kubernetes API.) */
static bool serving(void *userdata, char *reason, size_t size)
{
	const struct adaptor *a = userdata;
	if (a->draining) {
		str_copy(reason, size, "draining");
		return false;
	}
	if (!a->server) {
		str_copy(reason, size, "hypervisor socket not listening");
		return false;
	}
	return true;
}

void adaptor_probes_init(struct adaptor *a, struct metrics_server *s)
{
	metrics_server_set_probe(s, METRICS_PROBE_STARTUP, serving, a);
	metrics_server_set_probe(s, METRICS_PROBE_READY, serving, a);
}

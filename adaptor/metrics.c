/* adaptor/metrics.c: the adaptor's Prometheus metrics and its probes (ARCHITECTURE.md,
 * Observability; WIRE.md 8.5). */
#include <stdio.h>

#include "adaptor.h"
#include "log/log.h"

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

static bool serving(const struct adaptor *a, char *reason, size_t size)
{
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

/* WIRE.md 8.5: the socket serves, the restored state is reconciled with the provider, and
 * (with a cluster) this node's kata-remote pods are Ready again since our start. */
static bool startup(void *userdata, char *reason, size_t size)
{
	const struct adaptor *a = userdata;
	if (!serving(a, reason, size))
		return false;
	if (!a->reconciled) {
		str_copy(reason, size, "reconciling instances with the provider");
		return false;
	}
	return adaptor_k8s_startup_ready(a, reason, size);
}

/* Ready while serving and the provider answers its last check. */
static bool ready(void *userdata, char *reason, size_t size)
{
	const struct adaptor *a = userdata;
	if (!serving(a, reason, size))
		return false;
	if (a->provider_unreachable) {
		(void)snprintf(reason, size, "provider %s unreachable: %s", a->provider_ops->name,
			       a->provider_check_msg ?: "check failed");
		return false;
	}
	return true;
}

struct check_work {
	struct adaptor *adaptor;
	struct pp_error *err;
};

static int check_run(void *data)
{
	struct check_work *cw = data;
	struct adaptor *a = cw->adaptor;
	return a->provider_ops->check(a->provider, &cw->err);
}

static void health_tick(struct loop_source *s, void *userdata);

static void check_done(struct loop *l, int r, void *data)
{
	struct check_work *cw = data;
	struct adaptor *a = cw->adaptor;
	a->provider_check_running = false;
	bool was = a->provider_unreachable;
	a->provider_unreachable = r < 0;
	free(a->provider_check_msg);
	a->provider_check_msg = r < 0 ? strdup(pp_error_message(cw->err, r)) : NULL;
	if (r < 0 && !was)
		log_warning("provider %s unreachable: %s", a->provider_ops->name,
			    pp_error_message(cw->err, r));
	else if (r >= 0 && was)
		log_info("provider %s reachable again", a->provider_ops->name);
	pp_error_free(cw->err);
	free(cw);
}

static void health_tick(struct loop_source *s, void *userdata)
{
	struct adaptor *a = userdata;
	int64_t interval = MAX(a->settings->health_interval_ns, 100 * NSEC_PER_MSEC);
	(void)loop_source_set_timer(s, now_ns() + interval);
	if (a->provider_check_running || a->draining)
		return;
	struct check_work *cw = calloc(1, sizeof(*cw));
	if (!cw)
		return;
	cw->adaptor = a;
	a->provider_check_running = true;
	if (loop_submit_work(a->loop, check_run, check_done, cw) < 0) {
		a->provider_check_running = false;
		free(cw);
	}
}

void adaptor_probes_init(struct adaptor *a, struct metrics_server *s)
{
	metrics_server_set_probe(s, METRICS_PROBE_STARTUP, startup, a);
	metrics_server_set_probe(s, METRICS_PROBE_READY, ready, a);
	if (a->provider_ops->check && !a->health_timer)
		(void)loop_add_timer(a->loop, now_ns(), health_tick, a, &a->health_timer);
}

void adaptor_probes_done(struct adaptor *a)
{
	a->health_timer = loop_source_free(a->health_timer);
	a->provider_check_msg = mfree(a->provider_check_msg);
}

/* cloud-api-adaptor: the remote-hypervisor daemon on each worker node.
 * Usage: cloud-api-adaptor <provider> [flags]   (provider also from CLOUD_PROVIDER) */
#include <libgen.h>
#include <signal.h>
#include <stdio.h>

#include "adaptor.h"
#include "log/log.h"
#include "userdata/userdata.h"

#define DRAIN_POLL_NS (50 * NSEC_PER_MSEC)
#define DRAIN_MAX_NS (20 * NSEC_PER_SEC)

struct daemon_state {
	struct adaptor *adaptor;
	struct loop_source *drain_timer;
	int64_t drain_deadline_ns;
};

#define PROBE_RETRY_NS (1 * NSEC_PER_SEC)

/* The /metrics and probe listener, bound now or, while the port is taken, retried. */
struct probe_binder {
	struct adaptor *adaptor;
	struct metrics_registry *registry;
	uint16_t port;
	struct metrics_server *server;
	struct loop_source *timer;
};

static int probes_bind(struct probe_binder *pb)
{
	int r =
	    metrics_server_new(pb->adaptor->loop, pb->registry, "127.0.0.1", pb->port, &pb->server);
	if (r >= 0)
		adaptor_probes_init(pb->adaptor, pb->server);
	return r;
}

static void probes_retry(struct loop_source *s, void *userdata)
{
	struct probe_binder *pb = userdata;
	int r = probes_bind(pb);
	if (r == -EADDRINUSE) {
		(void)loop_source_set_timer(s, now_ns() + PROBE_RETRY_NS);
		return;
	}
	if (r < 0)
		log_error_errno(r, "cannot serve /metrics and the probes on 127.0.0.1:%u",
				pb->port);
	else
		log_info("serving /metrics and the probes on 127.0.0.1:%u", pb->port);
	pb->timer = loop_source_free(pb->timer);
}

static void drain_tick(struct loop_source *s, void *userdata)
{
	struct daemon_state *d = userdata;
	if (adaptor_drain(d->adaptor) || now_ns() >= d->drain_deadline_ns) {
		if (!adaptor_drain(d->adaptor))
			log_warning("exiting with provider calls still in flight; the next start "
				    "sweeps any instance they leave behind");
		loop_exit(loop_source_get_loop(s), 0);
		return;
	}
	loop_source_set_timer(s, now_ns() + DRAIN_POLL_NS);
}

static void on_signal(struct loop_source *s, int signo, void *userdata)
{
	struct daemon_state *d = userdata;
	if (d->drain_timer) {
		log_warning("second signal: exiting now");
		loop_exit(loop_source_get_loop(s), 0);
		return;
	}
	log_info("%s: draining (pods keep running)", strsignal(signo));
	d->drain_deadline_ns = now_ns() + DRAIN_MAX_NS;
	(void)adaptor_drain(d->adaptor);
	if (loop_add_timer(loop_source_get_loop(s), now_ns(), drain_tick, d, &d->drain_timer) < 0)
		loop_exit(loop_source_get_loop(s), 0);
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: cloud-api-adaptor <provider> [flags]\n\nProviders:");
	for (size_t i = 0; provider_table[i]; i++)
		fprintf(f, " %s", provider_table[i]->name);
	fprintf(f, "\n\nCommon flags (flag > environment variable > default):\n");
	config_print_help(f, adaptor_options, adaptor_n_options);
	for (size_t i = 0; provider_table[i]; i++) {
		if (!provider_table[i]->n_options)
			continue;
		fprintf(f, "\n%s provider flags:\n", provider_table[i]->name);
		config_print_help(f, provider_table[i]->options, provider_table[i]->n_options);
	}
}

int main(int argc, char **argv)
{
	log_set_program("cloud-api-adaptor");
	/* provider: first argument, or CLOUD_PROVIDER */
	const char *pname = NULL;
	int argi = 1;
	if (argc > 1 && argv[1][0] != '-') {
		pname = argv[1];
		argi = 2;
	} else
		pname = config_getenv("CLOUD_PROVIDER");
	if (argc > 1 &&
	    (str_eq(argv[1], "--help") || str_eq(argv[1], "-help") || str_eq(argv[1], "-h"))) {
		usage(stdout);
		return 0;
	}
	if (argc > 1 && (str_eq(argv[1], "--version") || str_eq(argv[1], "-version"))) {
		printf("cloud-api-adaptor %s\n", PP_VERSION);
		return 0;
	}
	if (str_empty(pname)) {
		usage(stderr);
		fprintf(stderr, "\nerror: no provider given (first argument or CLOUD_PROVIDER)\n");
		return 2;
	}
	const struct provider_ops *ops = provider_find(pname);
	if (!ops) {
		fprintf(stderr, "error: unknown provider \"%s\"\n", pname);
		return 2;
	}

	struct adaptor_settings settings = {0};
	_cleanup_free_ void *psettings = calloc(1, ops->settings_size ? ops->settings_size : 1);
	if (!psettings)
		return 1;
	struct config_table tables[] = {
	    {adaptor_options, adaptor_n_options, &settings},
	    {ops->options, ops->n_options, psettings},
	};
	int argind = 0;
	_cleanup_free_ char *msg = NULL;
	int r =
	    config_parse(tables, ops->n_options ? 2 : 1, argc - argi, argv + argi, &argind, &msg);
	if (r == -EAGAIN) {
		usage(stdout);
		return 0;
	}
	if (r == -EALREADY) {
		printf("cloud-api-adaptor %s\n", PP_VERSION);
		return 0;
	}
	if (r < 0) {
		fprintf(stderr, "error: %s\n", msg ?: strerror(-r));
		return 2;
	}
	if (argind < argc - argi) {
		fprintf(stderr, "error: unexpected argument \"%s\"\n", argv[argi + argind]);
		return 2;
	}
	if (settings.print_config) {
		printf("CLOUD_PROVIDER=%s\n", ops->name);
		for (size_t t = 0; t < ELEMENTSOF(tables); t++)
			config_print_values(stdout, tables[t].options, tables[t].n_options,
					    tables[t].settings);
		return 0;
	}

	enum log_format lfmt;
	enum log_level llvl;
	/* validated by the option table */
	(void)log_parse_format(settings.log_format, &lfmt);
	(void)log_parse_level(settings.log_level, &llvl);
	log_set_format(lfmt);
	log_set_level(llvl);
	if (!str_eq(settings.tunnel_type, "vxlan")) {
		log_error("unsupported tunnel type \"%s\" (only vxlan)", settings.tunnel_type);
		return 2;
	}
	if (!str_empty(settings.initdata)) {
		/* WIRE.md 5.4: refuse to start on an INITDATA the pod VMs could not decode */
		_cleanup_free_ char *digest = NULL, *imsg = NULL;
		r = initdata_validate_encoded(settings.initdata, strlen(settings.initdata), &digest,
					      &imsg);
		if (r < 0) {
			log_error("INITDATA: %s", imsg ?: strerror(-r));
			return 2;
		}
		log_info("INITDATA accepted, digest %s", digest);
	}
	if (settings.worker_pool_size < 1 || settings.worker_pool_size > 1024) {
		log_error("-worker-pool-size must be between 1 and 1024");
		return 2;
	}

	_cleanup_pp_error_ struct pp_error *err = NULL;
	if (ops->verify_config && (r = ops->verify_config(psettings, &err)) < 0) {
		log_error("%s provider configuration: %s", ops->name, pp_error_message(err, r));
		return 2;
	}

	signal(SIGPIPE, SIG_IGN);
	_cleanup_(loop_freep) struct loop *loop = NULL;
	r = loop_new(&loop);
	if (r < 0)
		return log_error_errno(r, "cannot create the event loop"), 1;
	loop_set_pool_size(loop, (unsigned)settings.worker_pool_size);

	_cleanup_free_ char *self = realpath("/proc/self/exe", NULL);
	_cleanup_free_ char *self_dir = self ? strdup(self) : NULL;
	struct provider_context pctx = {
	    .data_dir = settings.data_dir,
	    .node_name = settings.node_name ?: "",
	    .program_dir = self_dir ? dirname(self_dir) : ".",
	    .forwarder_port = settings.forwarder_port,
	    .disable_tls = settings.disable_tls,
	    .cloud_config_verify = settings.cloud_config_verify,
	};
	struct adaptor_certs *certs = NULL;
	r = certs_init(&settings, &certs, &msg);
	if (r < 0) {
		log_error("TLS setup: %s", msg ?: strerror(-r));
		return 1;
	}
	struct provider *provider = NULL;
	r = ops->init(psettings, &pctx, &provider, &err);
	if (r < 0) {
		log_error("%s provider: %s", ops->name, pp_error_message(err, r));
		certs_free(certs);
		return 1;
	}

	struct adaptor *a = NULL;
	struct metrics_registry *registry = NULL;
	struct probe_binder pb = {0};
	r = adaptor_new(loop, &settings, ops, provider, certs, &a);
	if (r < 0) {
		log_error_errno(r, "cannot create %s", settings.pods_dir);
		goto out;
	}
	r = metrics_registry_new(&registry);
	if (r >= 0)
		r = adaptor_metrics_init(a, registry);
	if (r < 0) {
		log_error_errno(r, "cannot set up metrics");
		goto out;
	}
	r = adaptor_k8s_init(a);
	if (r < 0)
		goto out;
	r = adaptor_restore(a);
	if (r < 0) {
		log_error_errno(r, "cannot restore sandboxes from %s", settings.pods_dir);
		goto out;
	}
	r = adaptor_serve(a);
	if (r < 0) {
		log_error_errno(r, "cannot listen on %s", settings.socket);
		goto out;
	}
	pb = (struct probe_binder){.adaptor = a, .registry = registry, .port = settings.probe_port};
	r = probes_bind(&pb);
	if (r == -EADDRINUSE) {
		/* A rolling update (maxSurge 1, host network) runs the old adaptor beside us until we
		 * are ready; its probes answer for the node meanwhile, and we take the port over
		 * when it exits. */
		log_warning(
		    "127.0.0.1:%u is in use (the previous adaptor during a rolling update?); "
		    "retrying every second",
		    settings.probe_port);
		r = loop_add_timer(loop, now_ns() + PROBE_RETRY_NS, probes_retry, &pb, &pb.timer);
	}
	if (r < 0) {
		log_error_errno(r, "cannot serve /metrics and the probes on 127.0.0.1:%u",
				settings.probe_port);
		goto out;
	}
	r = adaptor_k8s_start(a);
	if (r < 0) {
		log_error_errno(r, "cannot start the Kubernetes integration");
		goto out;
	}

	struct daemon_state d = {.adaptor = a};
	if (loop_add_signal(loop, SIGTERM, on_signal, &d, NULL) < 0 ||
	    loop_add_signal(loop, SIGINT, on_signal, &d, NULL) < 0) {
		r = -errno;
		log_error("cannot set up signal handling");
		goto out;
	}
	log_info("cloud-api-adaptor %s serving %s (provider %s, %zu sandboxes restored)",
		 PP_VERSION, settings.socket, ops->name, a->n_sandboxes);
	r = loop_run(loop);
	log_info("exiting");
out:
	loop_source_free(pb.timer);
	if (a)
		adaptor_probes_done(a);
	metrics_server_free(pb.server);
	adaptor_free(a);
	metrics_registry_free(registry);
	/* Join the workers before the provider goes away. */
	loop = loop_free(loop);
	if (ops->done)
		ops->done(provider);
	certs_free(certs);
	config_free(adaptor_options, adaptor_n_options, &settings);
	config_free(ops->options, ops->n_options, psettings);
	return r < 0 ? 1 : 0;
}

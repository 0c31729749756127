/* agent-protocol-forwarder: runs in each pod VM, serves the adaptor's agent calls on TCP (mutual
 * TLS) and relays them to the kata-agent's Unix socket, rewriting CreateSandbox and
 * CreateContainer (WIRE.md 4). */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>

#include "forwarder.h"
#include "log/log.h"

static void on_signal(struct loop_source *s, int signo, void *userdata)
{
	log_info("received %s, exiting", strsignal(signo));
	loop_exit(loop_source_get_loop(s), 0);
}

static void log_pod_network(const struct apf_config *cfg)
{
	const struct apf_pod_network *n = &cfg->pod_network;
	if (str_empty(n->podip))
		return;
	log_info("pod network: podip %s, interface %s, worker %s, %s id %" PRId64 " port %" PRId64
		 ", %zu routes, %zu neighbours",
		 n->podip, n->interface, n->worker_node_ip,
		 str_empty(n->tunnel_type) ? "vxlan" : n->tunnel_type, n->vxlan_id, n->vxlan_port,
		 n->n_routes, n->n_neighbors);
}

/* WIRE.md 6.3, before listening: the agent's containers join the pod netns built here. Only
 * when the adaptor sent a pod IP (the local provider's forwarders get none). */
static int setup_pod_network(const struct forwarder_options *o, const struct apf_config *cfg)
{
	if (str_empty(cfg->pod_network.podip))
		return 0;
	struct forwarder_podnet_options po = {.pod_netns = o->pod_namespace};
	_cleanup_free_ char *msg = NULL;
	int r = forwarder_podnet_setup(&cfg->pod_network, &po, &msg);
	if (r < 0)
		return log_error_errno(r, "pod network setup failed: %s", msg ? msg : strerror(-r));
	log_info("pod network ready in %s",
		 str_empty(o->pod_namespace) ? FORWARDER_DEFAULT_POD_NETNS : o->pod_namespace);
	return 0;
}

static int run(const struct forwarder_options *o)
{
	_cleanup_free_ char *msg = NULL;
	_cleanup_(apf_config_donep) struct apf_config cfg = {0};
	int r = apf_config_load(o->config, &cfg, &msg);
	if (r == -ENOENT) {
		log_warning(
		    "%s not found, continuing without pod network and apf.json TLS material",
		    o->config);
		free(msg);
		msg = NULL;
	} else if (r < 0) {
		log_error("cannot load the configuration: %s", msg ? msg : strerror(-r));
		return r;
	}

	struct log_fields fields = {0};
	_cleanup_free_ char *pod = NULL;
	if (!str_empty(cfg.pod_name)) {
		pod = str_printf("%s/%s",
				 str_empty(cfg.pod_namespace) ? "default" : cfg.pod_namespace,
				 cfg.pod_name);
		fields.pod = pod;
	}
	logp_info(&fields, "agent-protocol-forwarder %s starting", PP_VERSION);
	log_pod_network(&cfg);
	if ((r = setup_pod_network(o, &cfg)) < 0)
		return r;

	_cleanup_(SSL_CTX_freep) SSL_CTX *ctx = NULL;
	if (o->disable_tls)
		log_warning("TLS is disabled: agent calls are served without authentication");
	else {
		struct forwarder_tls t = {0};
		r = forwarder_tls_load(o, &cfg, &t, &msg);
		if (r >= 0) {
			r = forwarder_tls_ctx_new(&t, &ctx, &msg);
			forwarder_tls_done(&t);
		}
		if (r < 0) {
			log_error("TLS setup failed: %s", msg ? msg : strerror(-r));
			return r;
		}
	}
	/* The key material now lives in the SSL_CTX only. */
	apf_config_done(&cfg);

	_cleanup_(loop_freep) struct loop *l = NULL;
	if ((r = loop_new(&l)) < 0)
		return log_error_errno(r, "cannot create the event loop");
	if ((r = loop_add_signal(l, SIGTERM, on_signal, NULL, NULL)) < 0 ||
	    (r = loop_add_signal(l, SIGINT, on_signal, NULL, NULL)) < 0)
		return log_error_errno(r, "cannot handle signals");

	int fd = -EBADF;
	if ((r = forwarder_listen_socket(o->listen, &fd, &msg)) < 0) {
		log_error("%s", msg ? msg : strerror(-r));
		return r;
	}
	uint16_t port = 0;
	(void)forwarder_socket_port(fd, &port);

	_cleanup_(forwarder_freep) struct forwarder *f = NULL;
	r = forwarder_new(l, fd, ctx, o->kata_agent_socket, o->agent_dial_timeout_ns,
			  o->pod_namespace, &f);
	if (r < 0)
		return log_error_errno(r, "cannot serve on %s", o->listen);
	logp_info(&fields, "listening on %s (port %u, %s), relaying to %s", o->listen, port,
		  ctx ? "mutual TLS" : "plain", o->kata_agent_socket);

	r = forwarder_sd_notify(config_getenv("NOTIFY_SOCKET"), "READY=1");
	if (r < 0)
		log_warning_errno(r, "cannot notify systemd");

	r = loop_run(l);
	logp_info(&fields, "stopped (%" PRIu64 " requests rewritten, %" PRIu64 " rejected)",
		  forwarder_n_rewritten(f), forwarder_n_rejected(f));
	return r;
}

int main(int argc, char **argv)
{
	struct forwarder_options o = {0};
	const struct config_table table = {forwarder_option_table, forwarder_n_options, &o};
	_cleanup_free_ char *msg = NULL;
	int argind = 0;

	log_set_program("agent-protocol-forwarder");
	/* The table parser starts at the first flag, not at the program name. */
	int r = config_parse(&table, 1, argc - 1, argv + 1, &argind, &msg);
	if (r == -EAGAIN) {
		printf("Usage: %s [flags]\n\nFlags:\n", argv[0]);
		config_print_help(stdout, forwarder_option_table, forwarder_n_options);
		forwarder_options_done(&o);
		return 0;
	}
	if (r == -EALREADY) {
		printf("agent-protocol-forwarder %s\n", PP_VERSION);
		forwarder_options_done(&o);
		return 0;
	}
	if (r < 0) {
		fprintf(stderr, "agent-protocol-forwarder: %s\n", msg ? msg : strerror(-r));
		forwarder_options_done(&o);
		return 2;
	}
	if (argind < argc - 1) {
		fprintf(stderr, "agent-protocol-forwarder: unexpected argument \"%s\"\n",
			argv[argind + 1]);
		forwarder_options_done(&o);
		return 2;
	}

	enum log_format format = LOG_FORMAT_TEXT;
	enum log_level level = LOG_LEVEL_INFO;
	if (o.log_format)
		(void)log_parse_format(o.log_format, &format);
	if (o.log_level)
		(void)log_parse_level(o.log_level, &level);
	log_set_format(format);
	log_set_level(level);

	/* Peers vanish mid-write; that is an error return, not a reason to die. */
	signal(SIGPIPE, SIG_IGN);

	r = run(&o);
	forwarder_options_done(&o);
	return r < 0 ? 1 : 0;
}

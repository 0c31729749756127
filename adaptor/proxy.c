/* adaptor/proxy.c: a sandbox's agent proxy. The shim connects to <pods-dir>/<sid>/agent.ttrpc;
 * a lib/ttrpc relay forwards its calls over one mutual-TLS connection to the forwarder in the
 * pod VM, redialling when that connection breaks (e.g. after the adaptor restarted). */
#include <arpa/inet.h>
#include <openssl/ssl.h>

#include "adaptor.h"
#include "log/log.h"

#define AGENT_SOCKET_MODE 0600

static void dial_done(struct ttrpc_dial *d, int error, const char *detail, int fd,
		      struct ssl_st *ssl, void *userdata)
{
	struct sandbox *sb = userdata;
	sb->dial = ttrpc_dial_free(sb->dial);
	struct log_fields lf = {sb->id, sb->pod_label, sb->instance_id};
	if (error >= 0 && !sb->relay)
		error = -ECANCELED;
	if (error >= 0) {
		error = ttrpc_relay_set_upstream(sb->relay, fd, ssl);
		if (error < 0)
			detail = "cannot adopt the forwarder connection";
		else
			logp_debug(&lf, "connected to the forwarder at %s:%u", sb->ips[0],
				   sb->adaptor->settings->forwarder_port);
	}
	if (error < 0 && fd >= 0) {
		/* not adopted: the connection is still ours */
		SSL_free(ssl);
		close(fd);
	}
	if (error < 0 && sb->relay)
		ttrpc_relay_upstream_failed(sb->relay, detail);
	if (error < 0 && !sb->on_connected)
		logp_warning(&lf, "cannot reach the forwarder: %s", detail);
	proxy_connected_fn cb = sb->on_connected;
	sb->on_connected = NULL;
	if (cb)
		cb(sb, error, detail);
}

static int dial(struct sandbox *sb, int64_t deadline_ns)
{
	if (sb->dial)
		return 0;
	if (sb->n_ips == 0)
		return -EADDRNOTAVAIL;
	const struct adaptor *a = sb->adaptor;
	struct ttrpc_dial_opts o = {
	    .host = sb->ips[0],
	    .port = a->settings->forwarder_port,
	    .tls = certs_client_ctx(a->certs),
	    .tls_server_name = certs_server_name(a->certs, sb->instance_name),
	    .deadline_ns = deadline_ns,
	    .attempt_timeout_ns = 5 * NSEC_PER_SEC,
	    /* A booting VM refuses connections until its forwarder listens: retry quickly at
	     * first (a refusal costs nothing), backing off for slow clouds. */
	    .retry_initial_ns = 20 * NSEC_PER_MSEC,
	    .retry_max_ns = 1 * NSEC_PER_SEC,
	};
	return ttrpc_dial_start(a->loop, &o, dial_done, sb, &sb->dial);
}

static void connect_upstream(struct ttrpc_relay *r, int64_t earliest_deadline_ns, void *userdata)
{
	struct sandbox *sb = userdata;
	int64_t deadline = now_ns() + sb->adaptor->settings->proxy_timeout_ns;
	if (earliest_deadline_ns > 0 && earliest_deadline_ns < deadline)
		deadline = earliest_deadline_ns;
	int k = dial(sb, deadline);
	if (k < 0)
		ttrpc_relay_upstream_failed(r, strerror(-k));
}

static void upstream_closed(struct ttrpc_relay *r, int error, void *userdata)
{
	struct sandbox *sb = userdata;
	struct log_fields lf = {sb->id, sb->pod_label, sb->instance_id};
	logp_info(&lf, "connection to the forwarder closed%s%s", error < 0 ? ": " : "",
		  error < 0 ? strerror(-error) : "");
}

static const struct ttrpc_relay_ops relay_ops = {
    .connect_upstream = connect_upstream,
    .upstream_closed = upstream_closed,
};

int proxy_start(struct sandbox *sb)
{
	if (sb->relay)
		return 0;
	int r = ttrpc_relay_new(sb->adaptor->loop, &relay_ops, sb, &sb->relay);
	if (r < 0)
		return r;
	r = ttrpc_relay_listen_unix(sb->relay, sb->agent_socket, AGENT_SOCKET_MODE);
	if (r < 0)
		sb->relay = ttrpc_relay_free(sb->relay);
	return r;
}

void proxy_stop(struct sandbox *sb)
{
	sb->dial = ttrpc_dial_free(sb->dial);
	sb->on_connected = NULL;
	sb->relay = ttrpc_relay_free(sb->relay);
	if (sb->agent_socket)
		(void)unlink(sb->agent_socket);
}

int proxy_connect(struct sandbox *sb, int64_t deadline_ns, proxy_connected_fn cb)
{
	sb->on_connected = cb;
	int r = dial(sb, deadline_ns);
	if (r < 0)
		sb->on_connected = NULL;
	return r;
}

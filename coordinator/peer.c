/* coordinator/peer.c: the client side of peer recovery (ATTESTATION.md 9): find the peer
 * coordinators (a list and/or a DNS name), skip this process's own listener, and ask each over
 * mutual aTLS for the secrets, verifying it against the latest stored manifest with the
 * coordinator digest rule. Blocking: runs on a worker. */
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include "coordapi/coordapi.h"
#include "coordinator/daemon.h"
#include "tls/tls.h"

#define PEER_HANDSHAKE_TIMEOUT_NS (10 * NSEC_PER_SEC)
#define PEER_CALL_TIMEOUT_NS (10 * NSEC_PER_SEC)
#define PEER_CANDIDATES_MAX 64
#define PEER_ERRORS_MAX 4

static char *const peer_alpn[] = {COORDAPI_ALPN, NULL};

bool coord_address_is_self(const struct sockaddr *sa, uint16_t self_port)
{
	struct sockaddr_storage ss = {0};
	socklen_t len;
	uint16_t port;
	if (self_port == 0)
		return false;
	if (sa->sa_family == AF_INET) {
		len = sizeof(struct sockaddr_in);
		memcpy(&ss, sa, len);
		port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		((struct sockaddr_in *)&ss)->sin_port = 0;
	} else if (sa->sa_family == AF_INET6) {
		len = sizeof(struct sockaddr_in6);
		memcpy(&ss, sa, len);
		port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		((struct sockaddr_in6 *)&ss)->sin6_port = 0;
	} else
		return false;
	if (port != self_port)
		return false;
	/* An address is local exactly when a socket can be bound to it. */
	_cleanup_close_ int fd = socket(sa->sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	return fd >= 0 && bind(fd, (struct sockaddr *)&ss, len) == 0;
}

struct candidates {
	char *addr[PEER_CANDIDATES_MAX];
	size_t n;
	size_t skipped_self;
};

static void candidates_done(struct candidates *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->addr[i]);
}

static void add_resolved(struct candidates *c, const char *host, const char *port,
			 uint16_t self_port, struct buf *errors)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC};
	struct addrinfo *res = NULL;
	int r = getaddrinfo(host, port, &hints, &res);
	if (r != 0) {
		(void)buf_printf(errors, "%s%s: %s", errors->len ? "; " : "", host,
				 gai_strerror(r));
		return;
	}
	for (struct addrinfo *ai = res; ai && c->n < PEER_CANDIDATES_MAX; ai = ai->ai_next) {
		if (coord_address_is_self(ai->ai_addr, self_port)) {
			c->skipped_self++;
			continue;
		}
		char ip[INET6_ADDRSTRLEN];
		uint16_t p;
		if (ai->ai_family == AF_INET) {
			const struct sockaddr_in *in = (const struct sockaddr_in *)ai->ai_addr;
			inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
			p = ntohs(in->sin_port);
		} else if (ai->ai_family == AF_INET6) {
			const struct sockaddr_in6 *in = (const struct sockaddr_in6 *)ai->ai_addr;
			inet_ntop(AF_INET6, &in->sin6_addr, ip, sizeof(ip));
			p = ntohs(in->sin6_port);
		} else
			continue;
		char *a = ai->ai_family == AF_INET6 ? str_printf("[%s]:%u", ip, p)
						    : str_printf("%s:%u", ip, p);
		bool dup = false;
		for (size_t i = 0; a && i < c->n; i++)
			dup = dup || str_eq(c->addr[i], a);
		if (!a || dup)
			free(a);
		else
			c->addr[c->n++] = a;
	}
	freeaddrinfo(res);
}

static void note_error(struct buf *errors, size_t *n, const char *addr, const char *msg)
{
	if ((*n)++ < PEER_ERRORS_MAX)
		(void)buf_printf(errors, "%s%s: %s", errors->len ? "; " : "", addr, msg);
}

int coord_peer_fetch(const struct coord_peer_query *q, Coordinator__PeerRecoverResponse **ret,
		     char **ret_peer, char **ret_msg)
{
	if (!q || !q->manifest || !q->issuer || !ret)
		return -EINVAL;
	_cleanup_(manifest_freep) struct manifest *m = NULL;
	_cleanup_free_ char *msg = NULL;
	int r = manifest_parse(q->manifest, q->manifest_len, &m, &msg);
	if (r < 0)
		return str_set_message(ret_msg, r, "latest stored manifest: %s",
				       msg ? msg : strerror(-r));
	struct atls_verifier v;
	coord_verifier_init(&v, m, true, q->test_anchor_pem, q->crl);
	struct atls_config cfg = {.issuer = q->issuer, .verifier = &v, .alpn = peer_alpn};
	_cleanup_(SSL_CTX_freep) SSL_CTX *ctx = NULL;
	r = atls_ctx_new_client(&cfg, &ctx, &msg);
	if (r < 0)
		return str_set_message(ret_msg, r, "aTLS client: %s", msg ? msg : strerror(-r));

	_cleanup_(buf_done) struct buf errors = {0};
	_cleanup_(candidates_done) struct candidates c = {0};
	for (size_t i = 0; q->peers && q->peers[i]; i++) {
		_cleanup_free_ char *host = NULL, *port = NULL;
		if (coordapi_split_address(q->peers[i], &host, &port) < 0) {
			(void)buf_printf(&errors, "%s%s: not host:port", errors.len ? "; " : "",
					 q->peers[i]);
			continue;
		}
		add_resolved(&c, host, port, q->self_port, &errors);
	}
	if (!str_empty(q->dns_name)) {
		char port[8];
		(void)snprintf(port, sizeof(port), "%u", q->dns_port);
		add_resolved(&c, q->dns_name, port, q->self_port, &errors);
	}

	size_t n_errors = 0;
	for (size_t i = 0; i < c.n; i++) {
		if (q->stop && atomic_load(q->stop))
			break;
		_cleanup_(coordapi_conn_freep) struct coordapi_conn *conn = NULL;
		_cleanup_free_ char *cmsg = NULL;
		r = coordapi_connect(c.addr[i], ctx, PEER_HANDSHAKE_TIMEOUT_NS, &conn, &cmsg);
		if (r < 0) {
			note_error(&errors, &n_errors, c.addr[i], cmsg ? cmsg : strerror(-r));
			continue;
		}
		Coordinator__PeerRecoverRequest req = COORDINATOR__PEER_RECOVER_REQUEST__INIT;
		ProtobufCMessage *resp = NULL;
		r = coordapi_call(conn, COORDAPI_MESH_SERVICE, "PeerRecover", &req.base,
				  &coordinator__peer_recover_response__descriptor,
				  PEER_CALL_TIMEOUT_NS, &resp, &cmsg);
		if (r != 0) {
			_cleanup_free_ char *m2 =
			    r > 0 ? str_printf("%s: %s", ttrpc_code_name(r) ?: "error",
					       cmsg ? cmsg : "")
				  : str_printf("%s", cmsg ? cmsg : strerror(-r));
			note_error(&errors, &n_errors, c.addr[i], m2 ? m2 : "failed");
			continue;
		}
		if (ret_peer)
			*ret_peer = strdup(c.addr[i]);
		*ret = (Coordinator__PeerRecoverResponse *)resp;
		return 0;
	}
	if (c.n == 0 && errors.len == 0)
		return str_set_message(ret_msg, ENOENT, "no peer coordinator%s",
				       c.skipped_self ? " besides this one" : " configured");
	return str_set_message(ret_msg, ENOENT, "no active peer answered: %.*s", (int)errors.len,
			       errors.data ? (const char *)errors.data : "");
}

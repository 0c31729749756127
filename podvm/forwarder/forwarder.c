/* The forwarder's serving side: the TCP listener and the ttRPC relay between the adaptor's
 * connection(s) and the kata-agent socket, dialled on demand, with the rewrite hook. */
#include "forwarder.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include "log/log.h"

/* ---- listening socket ---- */

static int parse_port_or_zero(const char *s, uint16_t *ret)
{
	uint32_t v;
	if (str_empty(s) || s[0] == '+' || s[0] == '-' || parse_u32(s, &v) < 0 || v > 65535)
		return -EINVAL;
	*ret = (uint16_t)v;
	return 0;
}

int forwarder_parse_listen(const char *address, char **ret_host, uint16_t *ret_port)
{
	const char *host, *port;
	size_t host_len;
	if (address[0] == '[') {
		const char *end = strchr(address, ']');
		if (!end || end[1] != ':')
			return -EINVAL;
		host = address + 1;
		host_len = (size_t)(end - host);
		port = end + 2;
		if (host_len == 0)
			return -EINVAL;
	} else {
		const char *colon = strrchr(address, ':');
		if (!colon)
			return -EINVAL;
		host = address;
		host_len = (size_t)(colon - address);
		port = colon + 1;
		/* An IPv6 literal needs brackets, as in Go. */
		if (memchr(host, ':', host_len))
			return -EINVAL;
	}
	uint16_t p;
	if (parse_port_or_zero(port, &p) < 0)
		return -EINVAL;
	char *h = strndup(host, host_len);
	if (!h)
		return -ENOMEM;
	*ret_host = h;
	*ret_port = p;
	return 0;
}

static int bind_listen(const struct sockaddr *sa, socklen_t salen, bool dual_stack, int *ret_fd)
{
	_cleanup_close_ int fd =
	    socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	int one = 1, zero = 0;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		return -errno;
	if (sa->sa_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, dual_stack ? &zero : &one, sizeof(int)) < 0)
		return -errno;
	if (bind(fd, sa, salen) < 0)
		return -errno;
	if (listen(fd, SOMAXCONN) < 0)
		return -errno;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

/* Replace *ret_msg (if wanted) with msg, taking ownership of msg. */
static void set_msg(char **ret_msg, char *msg)
{
	if (ret_msg) {
		free(*ret_msg);
		*ret_msg = msg;
	} else
		free(msg);
}

int forwarder_listen_socket(const char *address, int *ret_fd, char **ret_msg)
{
	_cleanup_free_ char *host = NULL;
	uint16_t port;
	int r = forwarder_parse_listen(address, &host, &port);
	if (r < 0) {
		set_msg(ret_msg, str_printf("invalid listen address \"%s\"", address));
		return r;
	}

	if (host[0] == '\0') {
		/* ":port": every address, IPv6 and IPv4 together when the host has IPv6. */
		struct sockaddr_in6 s6 = {.sin6_family = AF_INET6,
					  .sin6_port = htons(port),
					  .sin6_addr = IN6ADDR_ANY_INIT};
		r = bind_listen((struct sockaddr *)&s6, sizeof(s6), true, ret_fd);
		if (r != -EAFNOSUPPORT)
			goto done;
		struct sockaddr_in s4 = {.sin_family = AF_INET,
					 .sin_port = htons(port),
					 .sin_addr.s_addr = htonl(INADDR_ANY)};
		r = bind_listen((struct sockaddr *)&s4, sizeof(s4), false, ret_fd);
		goto done;
	}

	struct addrinfo hints = {
	    .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
	struct addrinfo *res = NULL;
	int g = getaddrinfo(host, NULL, &hints, &res);
	if (g != 0) {
		set_msg(ret_msg, str_printf("listen address %s: %s", address, gai_strerror(g)));
		return -EADDRNOTAVAIL;
	}
	r = -EADDRNOTAVAIL;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		struct sockaddr_storage ss;
		if (ai->ai_addrlen > sizeof(ss))
			continue;
		memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
		bool any = false;
		if (ss.ss_family == AF_INET)
			((struct sockaddr_in *)&ss)->sin_port = htons(port);
		else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
			s6->sin6_port = htons(port);
			/* "[::]:port" serves IPv4 too, as Go's listener does. */
			any = IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr);
		} else
			continue;
		r = bind_listen((struct sockaddr *)&ss, ai->ai_addrlen, any, ret_fd);
		if (r >= 0)
			break;
	}
	freeaddrinfo(res);
done:
	if (r < 0)
		set_msg(ret_msg, str_printf("listen on %s: %s", address, strerror(-r)));
	return r;
}

int forwarder_socket_port(int fd, uint16_t *ret_port)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	if (ss.ss_family == AF_INET)
		*ret_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	else if (ss.ss_family == AF_INET6)
		*ret_port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	else
		return -EAFNOSUPPORT;
	return 0;
}

/* ---- the relay ---- */

struct forwarder {
	struct loop *loop;
	struct ttrpc_relay *relay;
	struct ttrpc_dial *dial;
	char *agent_socket;
	char *pod_netns;
	int64_t dial_timeout_ns;
	uint64_t n_rewritten;
	uint64_t n_rejected;
};

static void on_dial(struct ttrpc_dial *d, int error, const char *detail, int fd, struct ssl_st *ssl,
		    void *userdata)
{
	struct forwarder *f = userdata;
	if (error < 0) {
		/* detail lives in d: use it before freeing d. */
		const char *why = detail ? detail : strerror(-error);
		log_warning("cannot connect to the kata-agent at %s: %s", f->agent_socket, why);
		_cleanup_free_ char *msg = str_printf("kata-agent unavailable: %s", why);
		f->dial = ttrpc_dial_free(d);
		ttrpc_relay_upstream_failed(f->relay, msg ? msg : "kata-agent unavailable");
		return;
	}
	f->dial = ttrpc_dial_free(d);
	int r = ttrpc_relay_set_upstream(f->relay, fd, ssl);
	if (r < 0) {
		/* Not adopted: still ours to close. */
		SSL_free(ssl);
		safe_close(fd);
		log_error_errno(r, "cannot use the kata-agent connection");
		ttrpc_relay_upstream_failed(f->relay, "kata-agent connection unusable");
		return;
	}
	log_info("connected to the kata-agent at %s", f->agent_socket);
}

static void on_connect_upstream(struct ttrpc_relay *r, int64_t earliest_deadline_ns, void *userdata)
{
	struct forwarder *f = userdata;
	if (f->dial)
		return; /* one dial at a time; it serves every queued call */
	int64_t deadline_ns = now_ns() + f->dial_timeout_ns;
	/* No point retrying after every queued call has timed out. */
	if (earliest_deadline_ns > 0 && earliest_deadline_ns < deadline_ns)
		deadline_ns = earliest_deadline_ns;
	struct ttrpc_dial_opts o = {
	    .unix_path = f->agent_socket,
	    .deadline_ns = deadline_ns,
	};
	log_debug("connecting to the kata-agent at %s", f->agent_socket);
	int k = ttrpc_dial_start(f->loop, &o, on_dial, f, &f->dial);
	if (k < 0) {
		f->dial = NULL;
		log_error_errno(k, "cannot start connecting to the kata-agent at %s",
				f->agent_socket);
		ttrpc_relay_upstream_failed(r, "kata-agent unavailable");
	}
}

static int on_rewrite(const struct ttrpc_request_view *req, struct buf *new_payload,
		      char **ret_message, void *userdata)
{
	struct forwarder *f = userdata;
	int r =
	    forwarder_rewrite((const char *)req->service.data, req->service.len,
			      (const char *)req->method.data, req->method.len, req->payload.data,
			      req->payload.len, f->pod_netns, new_payload, ret_message);
	if (r > 0) {
		f->n_rewritten++;
		log_debug("rewrote %.*s/%.*s", (int)req->service.len,
			  (const char *)req->service.data, (int)req->method.len,
			  (const char *)req->method.data);
	} else if (r < 0) {
		f->n_rejected++;
		log_warning("rejected %.*s/%.*s: %s", (int)req->service.len,
			    (const char *)req->service.data, (int)req->method.len,
			    (const char *)req->method.data,
			    ret_message && *ret_message ? *ret_message : strerror(-r));
	}
	return r;
}

static void on_upstream_closed(struct ttrpc_relay *r, int error, void *userdata)
{
	struct forwarder *f = userdata;
	if (error < 0)
		log_warning_errno(error, "connection to the kata-agent at %s lost",
				  f->agent_socket);
	else
		log_info("the kata-agent at %s closed the connection", f->agent_socket);
}

static const struct ttrpc_relay_ops relay_ops = {
    .connect_upstream = on_connect_upstream,
    .rewrite = on_rewrite,
    .upstream_closed = on_upstream_closed,
};

int forwarder_new(struct loop *l, int listen_fd, SSL_CTX *tls, const char *agent_socket,
		  int64_t agent_dial_timeout_ns, const char *pod_netns, struct forwarder **ret)
{
	_cleanup_close_ int fd = listen_fd;
	_cleanup_(forwarder_freep) struct forwarder *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->loop = l;
	f->dial_timeout_ns = agent_dial_timeout_ns;
	if (!(f->agent_socket = strdup(agent_socket)) ||
	    !(f->pod_netns = strdup(pod_netns ? pod_netns : FORWARDER_DEFAULT_POD_NETNS)))
		return -ENOMEM;
	int r = ttrpc_relay_new(l, &relay_ops, f, &f->relay);
	if (r < 0)
		return r;
	/* The relay owns the socket from here, also when this fails. */
	r = ttrpc_relay_listen_fd(f->relay, TAKE_FD(fd), tls);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(f);
	return 0;
}

struct forwarder *forwarder_free(struct forwarder *f)
{
	if (!f)
		return NULL;
	f->dial = ttrpc_dial_free(f->dial);
	f->relay = ttrpc_relay_free(f->relay);
	free(f->agent_socket);
	free(f->pod_netns);
	free(f);
	return NULL;
}

uint64_t forwarder_n_rewritten(const struct forwarder *f)
{
	return f->n_rewritten;
}

uint64_t forwarder_n_rejected(const struct forwarder *f)
{
	return f->n_rejected;
}

/* lib/ttrpc/sync.c: a blocking ttRPC client for programs without their own loop (the CLI, tests):
 * one connection, dialled and served on a private loop that runs only inside these calls. */
#include <arpa/inet.h>
#include <netdb.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include "ttrpc/ttrpc-internal.h"

struct ttrpc_sync_client {
	struct loop *loop;
	struct ttrpc_client *client;
};

struct dial_result {
	bool done;
	int error;
	int fd;
	struct ssl_st *ssl;
};

struct call_result {
	bool done;
	int code;
	char *message;
	uint8_t *payload;
	size_t len;
};

static void on_dialled(struct ttrpc_dial *d, int error, const char *detail, int fd,
		       struct ssl_st *ssl, void *userdata)
{
	struct dial_result *res = userdata;
	res->done = true;
	res->error = error;
	res->fd = fd;
	res->ssl = ssl;
}

#define MAX_ADDRESSES 8

/* "host:port" or "[v6]:port" into numeric hosts (names are resolved here, blocking). */
static int resolve(const char *address, char hosts[][INET6_ADDRSTRLEN], size_t *n_hosts,
		   uint16_t *port)
{
	const char *colon = strrchr(address, ':');
	if (!colon || colon == address)
		return -EINVAL;
	int r = parse_port(colon + 1, port);
	if (r < 0)
		return r;
	const char *h = address;
	size_t n = (size_t)(colon - address);
	if (h[0] == '[') {
		if (n < 2 || h[n - 1] != ']')
			return -EINVAL;
		h++;
		n -= 2;
	}
	if (n == 0 || n >= 256)
		return -EINVAL;
	_cleanup_free_ char *name = strndup(h, n);
	if (!name)
		return -ENOMEM;

	struct in6_addr a;
	if (inet_pton(AF_INET, name, &a) == 1 || inet_pton(AF_INET6, name, &a) == 1) {
		*n_hosts = 1;
		return str_copy(hosts[0], INET6_ADDRSTRLEN, name);
	}

	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *list = NULL;
	if (getaddrinfo(name, NULL, &hints, &list) != 0)
		return -EHOSTUNREACH;
	*n_hosts = 0;
	for (struct addrinfo *ai = list; ai && *n_hosts < MAX_ADDRESSES; ai = ai->ai_next) {
		const void *src;
		if (ai->ai_family == AF_INET)
			src = &((struct sockaddr_in *)ai->ai_addr)->sin_addr;
		else if (ai->ai_family == AF_INET6)
			src = &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
		else
			continue;
		if (inet_ntop(ai->ai_family, src, hosts[*n_hosts], INET6_ADDRSTRLEN))
			(*n_hosts)++;
	}
	freeaddrinfo(list);
	return *n_hosts > 0 ? 0 : -EHOSTUNREACH;
}

/* One dial attempt on the private loop. */
static int dial(struct loop *l, const struct ttrpc_dial_opts *opts, struct dial_result *res)
{
	*res = (struct dial_result){.fd = -EBADF};
	struct ttrpc_dial *d = NULL;
	int r = ttrpc_dial_start(l, opts, on_dialled, res, &d);
	while (r >= 0 && !res->done) {
		r = loop_run_once(l, -1);
		if (r > 0)
			r = 0;
	}
	ttrpc_dial_free(d);
	return r < 0 ? r : res->error;
}

int ttrpc_sync_client_connect(const char *address, struct ssl_ctx_st *tls, const char *server_name,
			      int64_t timeout_ns, struct ttrpc_sync_client **ret)
{
	if (str_empty(address) || !ret)
		return -EINVAL;

	char hosts[MAX_ADDRESSES][INET6_ADDRSTRLEN];
	size_t n_hosts = 1;
	struct ttrpc_dial_opts opts = {
	    .tls = tls,
	    .tls_server_name = server_name,
	    .attempt_timeout_ns = timeout_ns > 0 ? timeout_ns : 0,
	};
	int r;
	if (strchr(address, '/'))
		opts.unix_path = address;
	else {
		r = resolve(address, hosts, &n_hosts, &opts.port);
		if (r < 0)
			return r;
	}

	struct ttrpc_sync_client *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	r = loop_new(&c->loop);
	if (r < 0) {
		free(c);
		return r;
	}

	/* Each address of a name in turn ("localhost" may be ::1 and 127.0.0.1). */
	struct dial_result res;
	for (size_t i = 0; i < n_hosts; i++) {
		if (!opts.unix_path)
			opts.host = hosts[i];
		r = dial(c->loop, &opts, &res);
		if (r >= 0)
			break;
	}
	if (r >= 0) {
		r = ttrpc_client_new(c->loop, res.fd, res.ssl, &c->client);
		if (r < 0) {
			SSL_free(res.ssl);
			safe_close(res.fd);
		}
	}
	if (r < 0) {
		ttrpc_sync_client_free(c);
		return r;
	}
	*ret = c;
	return 0;
}

int ttrpc_sync_client_new(int fd, struct ssl_st *ssl, struct ttrpc_sync_client **ret)
{
	if (fd < 0 || !ret)
		return -EINVAL;
	struct ttrpc_sync_client *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	int r = loop_new(&c->loop);
	if (r >= 0)
		r = ttrpc_client_new(c->loop, fd, ssl, &c->client);
	if (r < 0) {
		c->loop = loop_free(c->loop);
		free(c);
		return r;
	}
	*ret = c;
	return 0;
}

struct ttrpc_sync_client *ttrpc_sync_client_free(struct ttrpc_sync_client *c)
{
	if (!c)
		return NULL;
	c->client = ttrpc_client_free(c->client);
	c->loop = loop_free(c->loop);
	free(c);
	return NULL;
}

static void on_reply(struct ttrpc_client *client, int code, const char *message,
		     const uint8_t *payload, size_t len, void *userdata)
{
	struct call_result *res = userdata;
	res->done = true;
	res->code = code;
	if (code != 0) {
		res->message = str_dup(message ? message : "");
		return;
	}
	if (len > 0) {
		res->payload = malloc(len);
		if (!res->payload) {
			res->code = -ENOMEM;
			return;
		}
		memcpy(res->payload, payload, len);
		res->len = len;
	}
}

int ttrpc_sync_client_call(struct ttrpc_sync_client *c, const char *service, const char *method,
			   const void *payload, size_t len, int64_t timeout_ns,
			   uint8_t **ret_payload, size_t *ret_len, char **ret_message)
{
	if (!c)
		return -EINVAL;
	if (!c->client)
		return -ENOTCONN;
	struct call_result res = {0};
	int r = ttrpc_client_call(c->client, service, method, payload, len, timeout_ns, NULL, 0,
				  on_reply, &res);
	if (r < 0)
		return r;
	while (!res.done) {
		r = loop_run_once(c->loop, -1);
		if (r < 0) {
			/* res lives on this stack: the call must be answered before we return,
			 * which freeing the client does (-ECANCELED). */
			c->client = ttrpc_client_free(c->client);
			free(res.payload);
			free(res.message);
			return r;
		}
	}
	if (res.code == 0) {
		if (ret_payload)
			*ret_payload = TAKE_PTR(res.payload);
		if (ret_len)
			*ret_len = res.len;
	} else if (ret_message)
		*ret_message = TAKE_PTR(res.message);
	free(res.payload);
	free(res.message);
	return res.code;
}

/* Fuzz target for the ttRPC server: the input is a byte stream from a client on a socketpair.
 * The server must answer or drop whatever it gets, close at the end of the stream, and leak
 * nothing; a connection that never closes is reported as a crash. */
#include <sys/socket.h>

#include "ttrpc/ttrpc.h"

#define CHECK(x)                          \
	do {                              \
		if (!(x))                 \
			__builtin_trap(); \
	} while (0)

#define MAX_HELD 64
#define MAX_ITER 20000

static struct loop *loop;
static struct ttrpc_call *held[MAX_HELD];
static size_t n_held;

static void m_echo(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *userdata)
{
	ttrpc_call_reply(call, payload, len);
}

static void m_error(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *userdata)
{
	ttrpc_call_reply_error(call, TTRPC_NOT_FOUND, "no %zu", len);
}

static void on_cancel(struct ttrpc_call *call, int code, void *userdata)
{
	CHECK(code == TTRPC_CANCELLED || code == TTRPC_DEADLINE_EXCEEDED);
}

/* Answered only at the end of the input (or cancelled by deadline or close before). */
static void m_hold(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *userdata)
{
	if (n_held == MAX_HELD) {
		ttrpc_call_reply(call, NULL, 0);
		return;
	}
	ttrpc_call_set_cancel(call, on_cancel, NULL);
	held[n_held++] = call;
}

static void drain(int fd)
{
	uint8_t buf[65536];
	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!loop)
		CHECK(loop_new(&loop) == 0);

	struct ttrpc_server *s;
	CHECK(ttrpc_server_new(loop, &s) == 0);
	CHECK(ttrpc_server_add_method(s, "f.S", "Echo", m_echo, NULL) == 0);
	CHECK(ttrpc_server_add_method(s, "f.S", "Hold", m_hold, NULL) == 0);
	CHECK(ttrpc_server_add_method(s, "f.S", "Err", m_error, NULL) == 0);
	CHECK(ttrpc_server_add_method(s, "hypervisor.Hypervisor", "Version", m_echo, NULL) == 0);

	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) == 0);
	CHECK(ttrpc_server_add_connection(s, sv[0], NULL) == 0);

	size_t off = 0;
	int iter = 0;
	while (off < size) {
		ssize_t n = send(sv[1], data + off, size - off, MSG_NOSIGNAL);
		if (n > 0)
			off += (size_t)n;
		else
			CHECK(n < 0 && errno == EAGAIN);
		CHECK(loop_run_once(loop, 0) >= 0);
		drain(sv[1]);
		CHECK(++iter < MAX_ITER);
	}
	shutdown(sv[1], SHUT_WR);
	while (ttrpc_server_n_connections(s) > 0) {
		CHECK(loop_run_once(loop, NSEC_PER_MSEC) >= 0);
		drain(sv[1]);
		CHECK(++iter < MAX_ITER);
	}

	for (size_t i = 0; i < n_held; i++)
		ttrpc_call_reply(held[i], NULL, 0);
	n_held = 0;
	ttrpc_server_free(s);
	close(sv[1]);
	/* Run pending deferred frees of the loop. */
	loop_run_once(loop, 0);
	return 0;
}

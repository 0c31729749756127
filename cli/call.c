/* peerpodctl: one unary ttRPC call with connection handling and error text, shared by the
 * hypervisor and agent commands. */
#include "cli.h"

#include <protobuf-c/protobuf-c.h>
#include <time.h>

#include "ttrpc/ttrpc.h"

char *cli_unix_address(const char *path)
{
	if (strchr(path, '/'))
		return strdup(path);
	return str_printf("./%s", path);
}

int cli_pack(const ProtobufCMessage *m, uint8_t **ret, size_t *ret_len)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	if (n == 0) {
		*ret = NULL;
		*ret_len = 0;
		return 0;
	}
	if (n > TTRPC_MAX_DATA_BYTES)
		return -EMSGSIZE;
	uint8_t *b = malloc(n);
	if (!b)
		return -ENOMEM;
	*ret_len = protobuf_c_message_pack(m, b);
	*ret = b;
	return 0;
}

void cli_call_done(struct cli_call *r)
{
	if (!r)
		return;
	free(r->message);
	free(r->payload);
	*r = (struct cli_call){};
}

static void sleep_ns(int64_t ns)
{
	struct timespec ts = {.tv_sec = ns / NSEC_PER_SEC, .tv_nsec = ns % NSEC_PER_SEC};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static bool retryable_connect_error(int r)
{
	return r == -ENOENT || r == -ECONNREFUSED || r == -EAGAIN;
}

static int connect_with_retry(const char *address, int64_t dial_timeout_ns, int64_t timeout_ns,
			      struct ttrpc_sync_client **ret)
{
	int64_t deadline = dial_timeout_ns > 0 ? now_ns() + dial_timeout_ns : 0;

	for (;;) {
		int r = ttrpc_sync_client_connect(address, NULL, NULL, timeout_ns, ret);
		if (r >= 0 || !retryable_connect_error(r) || deadline == 0)
			return r;
		int64_t left = deadline - now_ns();
		if (left <= 0)
			return r;
		sleep_ns(MIN(left, 100 * NSEC_PER_MSEC));
	}
}

static char *local_message(int r, int64_t timeout_ns, char *lib_message)
{
	if (r == -ETIMEDOUT)
		return str_printf("no answer within %.3gs", (double)timeout_ns / 1e9);
	if (r == -ECONNRESET || r == -EPIPE)
		return str_printf("connection closed by the server%s%s",
				  str_empty(lib_message) ? "" : ": ",
				  str_empty(lib_message) ? "" : lib_message);
	if (!str_empty(lib_message))
		return strdup(lib_message);
	return strdup(strerror(-r));
}

void cli_call_run(struct ttrpc_sync_client **client, const char *address, int64_t dial_timeout_ns,
		  const char *service, const char *method, const ProtobufCMessage *req,
		  const void *raw, size_t raw_len, int64_t timeout_ns, struct cli_call *ret)
{
	_cleanup_free_ uint8_t *packed = NULL;
	size_t packed_len = 0;
	int64_t start = now_ns();
	int r;

	*ret = (struct cli_call){};

	if (req) {
		r = cli_pack(req, &packed, &packed_len);
		if (r < 0) {
			ret->code = cli_code_from_errno(r);
			ret->message = str_printf("cannot encode request: %s", strerror(-r));
			return;
		}
		raw = packed;
		raw_len = packed_len;
	}

	if (!*client) {
		r = connect_with_retry(address, dial_timeout_ns, timeout_ns, client);
		if (r < 0) {
			ret->code = cli_code_from_errno(r);
			ret->connect_failed = true;
			ret->message =
			    str_printf("cannot connect to %s: %s", address, strerror(-r));
			ret->duration_ns = now_ns() - start;
			return;
		}
	}

	_cleanup_free_ char *message = NULL;
	r = ttrpc_sync_client_call(*client, service, method, raw, raw_len, timeout_ns,
				   &ret->payload, &ret->len, &message);
	ret->duration_ns = now_ns() - start;
	if (r == 0)
		return;
	free(ret->payload);
	ret->payload = NULL;
	ret->len = 0;
	if (r > 0) {
		ret->code = r;
		ret->message = TAKE_PTR(message);
		if (!ret->message)
			ret->message = strdup("");
	} else {
		ret->code = cli_code_from_errno(r);
		ret->message = local_message(r, timeout_ns, message);
	}
}

void cli_result_from_call(struct cli_result *r, const char *step, const struct cli_call *call)
{
	*r = (struct cli_result){
	    .step = step,
	    .code = call->code,
	    .message = call->message,
	    .hide_code = call->connect_failed,
	    .duration_ns = call->duration_ns,
	};
}

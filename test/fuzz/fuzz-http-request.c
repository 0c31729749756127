/* Fuzz target for the lib/metrics HTTP request parser: the input is the bytes a client sent;
 * checks the parser's result stays inside the input and within the documented limits, and that
 * a complete parse is stable when more bytes follow. */
#include "metrics/metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *d = (const char *)data;
	struct metrics_http_request req;
	int r = metrics_http_parse_request(d, size, &req);
	if (r == 0) {
		if (req.header_bytes > size || req.header_bytes > METRICS_HTTP_MAX_HEADER_BYTES)
			__builtin_trap();
		if (req.path < d || req.path_len == 0 || req.path + req.path_len > d + size ||
		    req.path[0] != '/' || memchr(req.path, '?', req.path_len))
			__builtin_trap();
		/* Only the head decides: parsing just the head gives the same answer. */
		struct metrics_http_request again;
		if (metrics_http_parse_request(d, req.header_bytes, &again) != 0 ||
		    again.path != req.path || again.path_len != req.path_len ||
		    again.method != req.method)
			__builtin_trap();
	} else if (r != -EAGAIN && r != -EMSGSIZE && r != -EBADMSG && r != -EPROTONOSUPPORT) {
		__builtin_trap();
	}
	if (r == -EAGAIN && size >= METRICS_HTTP_MAX_HEADER_BYTES)
		__builtin_trap();
	return 0;
}

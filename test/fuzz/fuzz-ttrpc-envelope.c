/* Fuzz target for the ttRPC envelope codec: any input is parsed as a Request and as a Response;
 * what parses must re-encode and parse back to the same views, and encoding must be stable. */
#include "ttrpc/ttrpc.h"

#define CHECK(x)                          \
	do {                              \
		if (!(x))                 \
			__builtin_trap(); \
	} while (0)

static bool same(struct ttrpc_bytes a, struct ttrpc_bytes b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

/* A C string of a view, or NULL when it holds a NUL (the encoder takes C strings). */
static char *cstr(struct ttrpc_bytes b)
{
	if (b.len && memchr(b.data, 0, b.len))
		return NULL;
	char *s = malloc(b.len + 1);
	CHECK(s);
	if (b.len)
		memcpy(s, b.data, b.len);
	s[b.len] = 0;
	return s;
}

static void fuzz_request(const uint8_t *data, size_t size)
{
	struct ttrpc_request_view v;
	if (ttrpc_request_parse(data, size, &v) < 0)
		return;

	size_t pos = 0, n = 0;
	struct ttrpc_bytes k, val;
	int r;
	while ((r = ttrpc_request_next_metadata(&v, &pos, &k, &val)) > 0)
		n++;
	CHECK(r == 0 && n == v.n_metadata);

	char *service = cstr(v.service), *method = cstr(v.method);
	if (service && method) {
		struct buf b = {0}, b2 = {0};
		CHECK(ttrpc_request_encode(&b, service, method, v.payload.data, v.payload.len,
					   v.timeout_nano, &v.metadata_raw, NULL, 0) == 0);
		struct ttrpc_request_view w;
		CHECK(ttrpc_request_parse(b.data, b.len, &w) == 0);
		CHECK(same(v.service, w.service));
		CHECK(same(v.method, w.method));
		CHECK(same(v.payload, w.payload));
		CHECK(v.timeout_nano == w.timeout_nano);
		CHECK(v.n_metadata == w.n_metadata);
		CHECK(same(v.metadata_raw, w.metadata_raw));
		CHECK(ttrpc_request_encode(&b2, service, method, w.payload.data, w.payload.len,
					   w.timeout_nano, &w.metadata_raw, NULL, 0) == 0);
		CHECK(b.len == b2.len && memcmp(b.data, b2.data, b.len) == 0);
		buf_done(&b);
		buf_done(&b2);
	}
	free(service);
	free(method);
}

static void fuzz_response(const uint8_t *data, size_t size)
{
	struct ttrpc_response_view v;
	if (ttrpc_response_parse(data, size, &v) < 0)
		return;
	CHECK(v.has_status || (v.code == 0 && v.message.len == 0));

	char *message = cstr(v.message);
	if (message) {
		struct buf b = {0};
		CHECK(ttrpc_response_encode(&b, v.code, message, v.payload.data, v.payload.len) ==
		      0);
		struct ttrpc_response_view w;
		CHECK(ttrpc_response_parse(b.data, b.len, &w) == 0);
		CHECK(w.code == v.code);
		CHECK(w.has_status == (v.code != 0));
		CHECK(same(w.message, v.code != 0 ? v.message : w.message));
		CHECK(v.code != 0 || w.message.len == 0);
		CHECK(same(w.payload, v.payload));
		buf_done(&b);
	}
	free(message);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_request(data, size);
	fuzz_response(data, size);
	return 0;
}

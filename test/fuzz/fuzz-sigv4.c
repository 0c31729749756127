/* Fuzz target for providers/aws/sigv4: arbitrary method, path, query, headers and flags through
 * the canonicalizer and both signing modes; signing twice must give the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aws/sigv4.h"
#include "base/base.h"

#define MAX_INPUT_BYTES (256 * 1024)
#define MAX_FIELDS (3 + 2 * 32)

/* Input layout: byte 0 = flags, then NUL-separated fields: method, path, query, then header
 * name/value pairs. A missing field is NULL. */
static size_t split(const uint8_t *data, size_t size, char *copy, char **fields)
{
	size_t n = 0;
	memcpy(copy, data, size);
	copy[size] = 0;
	char *p = copy, *end = copy + size;
	while (n < MAX_FIELDS && p <= end) {
		fields[n++] = p;
		char *z = memchr(p, 0, (size_t)(end - p) + 1);
		p = z + 1;
	}
	return n;
}

static void check_same(const struct sigv4_result *a, const struct sigv4_result *b)
{
	if (strcmp(a->canonical_request, b->canonical_request) ||
	    strcmp(a->string_to_sign, b->string_to_sign) || strcmp(a->signature, b->signature))
		abort();
	if (!a->authorization != !b->authorization ||
	    (a->authorization && strcmp(a->authorization, b->authorization)))
		abort();
	if (!a->presigned_query != !b->presigned_query ||
	    (a->presigned_query && strcmp(a->presigned_query, b->presigned_query)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > MAX_INPUT_BYTES)
		return 0;
	unsigned flags = data[0];
	char *copy = malloc(size);
	if (!copy)
		return 0;
	char *f[MAX_FIELDS] = {0};
	size_t n = split(data + 1, size - 1, copy, f);
	struct sigv4_header h[32];
	size_t nh = 0;
	for (size_t i = 3; i + 1 < n && nh < 32; i += 2)
		h[nh++] = (struct sigv4_header){f[i], f[i + 1]};

	static const struct sigv4_credentials creds = {
	    .access_key_id = "AKIDFUZZ",
	    .secret_access_key = "fuzz-secret",
	    .session_token = "fuzz/token+=",
	};
	struct sigv4_key_cache cache = {0};
	struct sigv4_signing s = {
	    .credentials = &creds,
	    .date_time = "20240102T030405Z",
	    .region = "eu-west-1",
	    .service = "ec2",
	    .flags = flags & 0x1f,
	    .expires_s = 300,
	    .key_cache = (flags & 0x80) ? &cache : NULL,
	};
	struct sigv4_request req = {
	    .method = f[0],
	    .path = n > 1 ? f[1] : NULL,
	    .query = n > 2 ? f[2] : NULL,
	    .headers = h,
	    .n_headers = nh,
	    .payload = data,
	    .payload_len = size,
	};
	struct sigv4_result a, b;
	for (int mode = 0; mode < 2; mode++) {
		int (*fn)(const struct sigv4_signing *, const struct sigv4_request *,
			  struct sigv4_result *) = mode ? sigv4_sign_query : sigv4_sign_headers;
		int r1 = fn(&s, &req, &a);
		int r2 = fn(&s, &req, &b);
		if (r1 != r2)
			abort();
		if (r1 == 0) {
			check_same(&a, &b);
			sigv4_result_done(&a);
			sigv4_result_done(&b);
		}
	}

	char *out = NULL;
	if (n > 1 && sigv4_canonical_path(f[1], flags, &out) == 0) {
		if (out[0] != '/' && (flags & SIGV4_NORMALIZE_PATH))
			abort();
		free(out);
	}
	if (n > 2 && sigv4_canonical_query(f[2], &out) == 0)
		free(out);
	if (n > 1 && sigv4_trim_value(f[1], &out) == 0) {
		size_t len = strlen(out);
		if (len && (out[0] == ' ' || out[len - 1] == ' ' || strstr(out, "  ")))
			abort();
		free(out);
	}
	sigv4_key_cache_done(&cache);
	free(copy);
	return 0;
}

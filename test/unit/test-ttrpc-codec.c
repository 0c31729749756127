/* Unit tests of the ttRPC frame and envelope codec: the golden frames of WIRE.md 1.10 in both
 * directions, both OK encodings, a cross-check against protoc-c's generated code, and malformed
 * input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hypervisor.pb-c.h"
#include "ttrpc.pb-c.h"
#include "ttrpc/ttrpc.h"

/* A byte string from literal pieces; sizeof - 1 drops the terminating NUL. */
#define BYTES(s) ((const uint8_t *)(s)), (sizeof(s) - 1)

struct golden {
	const uint8_t *data;
	size_t len;
};
#define GOLDEN(s) ((struct golden){BYTES(s)})

static const char version_request[] = "\x00\x00\x00\x29\x00\x00\x00\x01\x01\x00"
				      "\x0a\x15"
				      "hypervisor.Hypervisor"
				      "\x12\x07"
				      "Version"
				      "\x1a\x07\x0a\x05"
				      "0.0.0";
static const char version_ok_go[] = "\x00\x00\x00\x09\x00\x00\x00\x01\x02\x00"
				    "\x12\x07\x0a\x05"
				    "0.0.0";
static const char version_ok_rust[] = "\x00\x00\x00\x0b\x00\x00\x00\x01\x02\x00"
				      "\x0a\x00\x12\x07\x0a\x05"
				      "0.0.0";
static const char empty_ok_go[] = "\x00\x00\x00\x00\x00\x00\x00\x01\x02\x00";
static const char empty_ok_rust[] = "\x00\x00\x00\x02\x00\x00\x00\x01\x02\x00\x0a\x00";
static const char unknown_method[] = "\x00\x00\x00\x19\x00\x00\x00\x01\x02\x00"
				     "\x0a\x17\x08\x0c\x12\x13"
				     "method NoSuchMethod";
static const char oversize_answer[] =
    "\x00\x00\x00\x43\x00\x00\x00\x05\x02\x00"
    "\x0a\x41\x08\x08\x12\x3d"
    "message length 4194305 exceed maximum message size of 4194304";
static const char startvm_request[] = "\x00\x00\x00\x2e\x00\x00\x00\x03\x01\x00"
				      "\x0a\x15"
				      "hypervisor.Hypervisor"
				      "\x12\x07"
				      "StartVM"
				      "\x1a\x05\x0a\x03"
				      "abc"
				      "\x20\x80\xe0\xa5\x96\xbb\x11";
static const char health_request[] = "\x00\x00\x00\x22\x00\x00\x00\x01\x01\x00"
				     "\x0a\x0b"
				     "grpc.Health"
				     "\x12\x05"
				     "Check"
				     "\x20\x80\xd8\x8e\xe1\x6f\x2a\x06\x0a\x01"
				     "k"
				     "\x12\x01"
				     "v";
static const char health_answer[] = "\x00\x00\x00\x04\x00\x00\x00\x01\x02\x00\x12\x02\x08\x01";
static const char createvm_payload[] = "\x0a\x03"
				       "abc"
				       "\x12\x27\x0a\x1e"
				       "io.kubernetes.cri.sandbox-name"
				       "\x12\x05"
				       "nginx"
				       "\x1a\x10"
				       "/var/run/netns/x";

static bool bytes_eq(struct ttrpc_bytes b, const char *s)
{
	return b.len == strlen(s) && memcmp(b.data, s, b.len) == 0;
}

/* Check a whole frame: the header decodes as expected and re-encodes to the same bytes, and the
 * data equals what the encoder produced. */
static void assert_frame(const char *frame, size_t frame_len, uint32_t stream_id, uint8_t type,
			 const struct buf *data)
{
	const uint8_t *f = (const uint8_t *)frame;
	assert_true(frame_len >= TTRPC_HEADER_SIZE);
	struct ttrpc_header h;
	ttrpc_header_decode(f, &h);
	assert_int_equal(h.length, frame_len - TTRPC_HEADER_SIZE);
	assert_int_equal(h.stream_id, stream_id);
	assert_int_equal(h.type, type);
	assert_int_equal(h.flags, 0);
	uint8_t hdr[TTRPC_HEADER_SIZE];
	struct ttrpc_header want = {(uint32_t)data->len, stream_id, type, 0};
	ttrpc_header_encode(&want, hdr);
	assert_memory_equal(hdr, f, TTRPC_HEADER_SIZE);
	assert_int_equal(data->len, frame_len - TTRPC_HEADER_SIZE);
	if (data->len)
		assert_memory_equal(data->data, f + TTRPC_HEADER_SIZE, data->len);
}

static void test_header(void **state)
{
	struct ttrpc_header h = {0x01020304, 0xa0b0c0d0, 3, 0x05};
	uint8_t out[TTRPC_HEADER_SIZE];
	ttrpc_header_encode(&h, out);
	assert_memory_equal(out, "\x01\x02\x03\x04\xa0\xb0\xc0\xd0\x03\x05", TTRPC_HEADER_SIZE);
	struct ttrpc_header back;
	ttrpc_header_decode(out, &back);
	assert_int_equal(back.length, h.length);
	assert_int_equal(back.stream_id, h.stream_id);
	assert_int_equal(back.type, h.type);
	assert_int_equal(back.flags, h.flags);
}

static void test_code_names(void **state)
{
	assert_string_equal(ttrpc_code_name(TTRPC_OK), "OK");
	assert_string_equal(ttrpc_code_name(TTRPC_NOT_FOUND), "NOT_FOUND");
	assert_string_equal(ttrpc_code_name(TTRPC_RESOURCE_EXHAUSTED), "RESOURCE_EXHAUSTED");
	assert_string_equal(ttrpc_code_name(TTRPC_UNIMPLEMENTED), "UNIMPLEMENTED");
	assert_string_equal(ttrpc_code_name(TTRPC_UNAVAILABLE), "UNAVAILABLE");
	assert_string_equal(ttrpc_code_name(16), "UNAUTHENTICATED");
	assert_null(ttrpc_code_name(17));
	assert_null(ttrpc_code_name(-1));
}

static void test_golden_version(void **state)
{
	struct buf b = {0};
	assert_int_equal(ttrpc_request_encode(&b, "hypervisor.Hypervisor", "Version",
					      "\x0a\x05"
					      "0.0.0",
					      7, 0, NULL, NULL, 0),
			 0);
	assert_frame(version_request, sizeof(version_request) - 1, 1, TTRPC_TYPE_REQUEST, &b);

	struct ttrpc_request_view req;
	assert_int_equal(ttrpc_request_parse((const uint8_t *)version_request + TTRPC_HEADER_SIZE,
					     sizeof(version_request) - 1 - TTRPC_HEADER_SIZE, &req),
			 0);
	assert_true(bytes_eq(req.service, "hypervisor.Hypervisor"));
	assert_true(bytes_eq(req.method, "Version"));
	assert_int_equal(req.payload.len, 7);
	assert_memory_equal(req.payload.data,
			    "\x0a\x05"
			    "0.0.0",
			    7);
	assert_int_equal(req.timeout_nano, 0);
	assert_int_equal(req.n_metadata, 0);
	assert_int_equal(req.metadata_raw.len, 0);

	/* Answers: Go form byte-exact from the encoder, both forms parse to OK. */
	b.len = 0;
	assert_int_equal(ttrpc_response_encode(&b, 0, NULL,
					       "\x0a\x05"
					       "0.0.0",
					       7),
			 0);
	assert_frame(version_ok_go, sizeof(version_ok_go) - 1, 1, TTRPC_TYPE_RESPONSE, &b);

	const char *forms[] = {version_ok_go, version_ok_rust};
	size_t lens[] = {sizeof(version_ok_go) - 1, sizeof(version_ok_rust) - 1};
	for (size_t i = 0; i < 2; i++) {
		struct ttrpc_response_view resp;
		assert_int_equal(ttrpc_response_parse((const uint8_t *)forms[i] + TTRPC_HEADER_SIZE,
						      lens[i] - TTRPC_HEADER_SIZE, &resp),
				 0);
		assert_int_equal(resp.has_status, i == 1);
		assert_int_equal(resp.code, 0);
		assert_int_equal(resp.message.len, 0);
		assert_int_equal(resp.payload.len, 7);
		assert_memory_equal(resp.payload.data,
				    "\x0a\x05"
				    "0.0.0",
				    7);
	}
	buf_done(&b);
}

static void test_golden_empty_ok(void **state)
{
	struct buf b = {0};
	assert_int_equal(ttrpc_response_encode(&b, 0, NULL, NULL, 0), 0);
	assert_frame(empty_ok_go, sizeof(empty_ok_go) - 1, 1, TTRPC_TYPE_RESPONSE, &b);

	struct ttrpc_response_view resp;
	assert_int_equal(ttrpc_response_parse(NULL, 0, &resp), 0);
	assert_false(resp.has_status);
	assert_int_equal(resp.code, 0);
	assert_int_equal(resp.payload.len, 0);
	assert_non_null(resp.payload.data);

	assert_int_equal(
	    ttrpc_response_parse((const uint8_t *)empty_ok_rust + TTRPC_HEADER_SIZE, 2, &resp), 0);
	assert_true(resp.has_status);
	assert_int_equal(resp.code, 0);
	assert_int_equal(resp.payload.len, 0);

	/* Status with code 0 and a message is still OK. */
	assert_int_equal(ttrpc_response_parse(BYTES("\x0a\x04\x12\x02hi"), &resp), 0);
	assert_int_equal(resp.code, 0);
	buf_done(&b);
}

static void test_golden_errors(void **state)
{
	struct buf b = {0};
	assert_int_equal(
	    ttrpc_response_encode(&b, TTRPC_UNIMPLEMENTED, "method NoSuchMethod", NULL, 0), 0);
	assert_frame(unknown_method, sizeof(unknown_method) - 1, 1, TTRPC_TYPE_RESPONSE, &b);
	struct ttrpc_response_view resp;
	assert_int_equal(ttrpc_response_parse(b.data, b.len, &resp), 0);
	assert_true(resp.has_status);
	assert_int_equal(resp.code, TTRPC_UNIMPLEMENTED);
	assert_true(bytes_eq(resp.message, "method NoSuchMethod"));
	assert_int_equal(resp.payload.len, 0);

	b.len = 0;
	assert_int_equal(
	    ttrpc_response_encode(&b, TTRPC_RESOURCE_EXHAUSTED,
				  "message length 4194305 exceed maximum message size of 4194304",
				  NULL, 0),
	    0);
	assert_frame(oversize_answer, sizeof(oversize_answer) - 1, 5, TTRPC_TYPE_RESPONSE, &b);
	assert_int_equal(ttrpc_response_parse(b.data, b.len, &resp), 0);
	assert_int_equal(resp.code, TTRPC_RESOURCE_EXHAUSTED);

	/* A non-zero code ignores the payload on the client side, but the codec keeps it. */
	b.len = 0;
	assert_int_equal(ttrpc_response_encode(&b, TTRPC_INTERNAL, "", "\x01", 1), 0);
	assert_memory_equal(b.data, "\x0a\x02\x08\x0d\x12\x01\x01", 7);

	/* Negative codes are sign-extended to ten bytes and come back unchanged. */
	b.len = 0;
	assert_int_equal(ttrpc_response_encode(&b, -2, "x", NULL, 0), 0);
	assert_int_equal(b.len, 2 + 1 + 10 + 3);
	assert_int_equal(ttrpc_response_parse(b.data, b.len, &resp), 0);
	assert_int_equal(resp.code, -2);
	buf_done(&b);
}

static void test_golden_startvm(void **state)
{
	struct buf b = {0};
	assert_int_equal(ttrpc_request_encode(&b, "hypervisor.Hypervisor", "StartVM",
					      "\x0a\x03"
					      "abc",
					      5, 600000000000LL, NULL, NULL, 0),
			 0);
	assert_frame(startvm_request, sizeof(startvm_request) - 1, 3, TTRPC_TYPE_REQUEST, &b);

	struct ttrpc_request_view req;
	assert_int_equal(ttrpc_request_parse(b.data, b.len, &req), 0);
	assert_true(bytes_eq(req.method, "StartVM"));
	assert_int_equal(req.timeout_nano, 600000000000LL);
	assert_true(bytes_eq(req.payload, "\x0a\x03"
					  "abc"));
	buf_done(&b);
}

static void test_golden_health(void **state)
{
	struct buf b = {0};
	struct ttrpc_kv md[] = {{"k", "v"}};
	assert_int_equal(
	    ttrpc_request_encode(&b, "grpc.Health", "Check", NULL, 0, 30000000000LL, NULL, md, 1),
	    0);
	assert_frame(health_request, sizeof(health_request) - 1, 1, TTRPC_TYPE_REQUEST, &b);

	struct ttrpc_request_view req;
	assert_int_equal(ttrpc_request_parse((const uint8_t *)health_request + TTRPC_HEADER_SIZE,
					     sizeof(health_request) - 1 - TTRPC_HEADER_SIZE, &req),
			 0);
	assert_true(bytes_eq(req.service, "grpc.Health"));
	assert_true(bytes_eq(req.method, "Check"));
	assert_int_equal(req.payload.len, 0);
	assert_int_equal(req.timeout_nano, 30000000000LL);
	assert_int_equal(req.n_metadata, 1);
	assert_int_equal(req.metadata_raw.len, 8);
	assert_memory_equal(req.metadata_raw.data, "\x2a\x06\x0a\x01k\x12\x01v", 8);
	size_t pos = 0;
	struct ttrpc_bytes k, v;
	assert_int_equal(ttrpc_request_next_metadata(&req, &pos, &k, &v), 1);
	assert_true(bytes_eq(k, "k"));
	assert_true(bytes_eq(v, "v"));
	assert_int_equal(ttrpc_request_next_metadata(&req, &pos, &k, &v), 0);

	/* A relay re-emits the raw metadata verbatim and gets the same frame. */
	struct buf b2 = {0};
	assert_int_equal(ttrpc_request_encode(&b2, "grpc.Health", "Check", NULL, 0, 30000000000LL,
					      &req.metadata_raw, NULL, 0),
			 0);
	assert_int_equal(b2.len, b.len);
	assert_memory_equal(b2.data, b.data, b.len);

	b.len = 0;
	assert_int_equal(ttrpc_response_encode(&b, 0, NULL, "\x08\x01", 2), 0);
	assert_frame(health_answer, sizeof(health_answer) - 1, 1, TTRPC_TYPE_RESPONSE, &b);
	buf_done(&b);
	buf_done(&b2);
}

static void test_golden_createvm_payload(void **state)
{
	/* The WIRE example against protoc-c's encoding of the hypervisor schema. */
	Hypervisor__CreateVMRequest__AnnotationsEntry e =
	    HYPERVISOR__CREATE_VMREQUEST__ANNOTATIONS_ENTRY__INIT;
	e.key = "io.kubernetes.cri.sandbox-name";
	e.value = "nginx";
	Hypervisor__CreateVMRequest__AnnotationsEntry *ep = &e;
	Hypervisor__CreateVMRequest m = HYPERVISOR__CREATE_VMREQUEST__INIT;
	m.id = "abc";
	m.n_annotations = 1;
	m.annotations = &ep;
	m.networknamespacepath = "/var/run/netns/x";
	uint8_t out[128];
	size_t n = hypervisor__create_vmrequest__get_packed_size(&m);
	assert_int_equal(n, sizeof(createvm_payload) - 1);
	hypervisor__create_vmrequest__pack(&m, out);
	assert_memory_equal(out, createvm_payload, n);
}

/* ---- cross-check against protoc-c ---- */

static uint64_t rng_state = 0x243f6a8885a308d3ULL;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static char *rnd_string(size_t max)
{
	size_t n = rnd() % (max + 1);
	char *s = malloc(n + 1);
	assert_non_null(s);
	for (size_t i = 0; i < n; i++)
		s[i] = (char)('a' + rnd() % 26);
	s[n] = 0;
	return s;
}

static void test_protoc_request(void **state)
{
	for (int iter = 0; iter < 500; iter++) {
		char *service = rnd_string(40), *method = rnd_string(20);
		if (!*service) {
			free(service);
			service = strdup("s");
		}
		size_t plen = rnd() % 300;
		/* Long payloads need two-byte lengths. */
		if (iter % 7 == 0)
			plen += 20000;
		uint8_t *payload = malloc(plen + 1);
		for (size_t i = 0; i < plen; i++)
			payload[i] = (uint8_t)rnd();
		int64_t timeout = 0;
		switch (iter % 4) {
		case 1:
			timeout = (int64_t)(rnd() % 1000000000000ULL);
			break;
		case 2:
			timeout = -(int64_t)(rnd() % 1000);
			break;
		case 3:
			timeout = INT64_MAX - (int64_t)(rnd() % 10);
			break;
		}
		size_t n_md = rnd() % 5;
		struct ttrpc_kv md[5];
		for (size_t i = 0; i < n_md; i++) {
			md[i].key = rnd_string(8);
			md[i].value = rnd_string(30);
		}

		struct buf b = {0};
		assert_int_equal(ttrpc_request_encode(&b, service, method, payload, plen, timeout,
						      NULL, md, n_md),
				 0);

		/* protoc-c decodes what we encode ... */
		Ttrpc__Request *r = ttrpc__request__unpack(NULL, b.len, b.data);
		assert_non_null(r);
		assert_string_equal(r->service, service);
		assert_string_equal(r->method, method);
		assert_int_equal(r->payload.len, plen);
		if (plen)
			assert_memory_equal(r->payload.data, payload, plen);
		assert_int_equal(r->timeout_nano, timeout);
		assert_int_equal(r->n_metadata, n_md);
		for (size_t i = 0; i < n_md; i++) {
			assert_string_equal(r->metadata[i]->key, md[i].key);
			assert_string_equal(r->metadata[i]->value, md[i].value);
		}

		/* ... encodes the same message to the same bytes ... */
		size_t n = ttrpc__request__get_packed_size(r);
		assert_int_equal(n, b.len);
		uint8_t *packed = malloc(n + 1);
		ttrpc__request__pack(r, packed);
		assert_memory_equal(packed, b.data, n);

		/* ... and we decode protoc-c's bytes. */
		struct ttrpc_request_view v;
		assert_int_equal(ttrpc_request_parse(packed, n, &v), 0);
		assert_true(bytes_eq(v.service, service));
		assert_true(bytes_eq(v.method, method));
		assert_int_equal(v.payload.len, plen);
		if (plen)
			assert_memory_equal(v.payload.data, payload, plen);
		assert_int_equal(v.timeout_nano, timeout);
		assert_int_equal(v.n_metadata, n_md);
		size_t pos = 0;
		struct ttrpc_bytes k, val;
		for (size_t i = 0; i < n_md; i++) {
			assert_int_equal(ttrpc_request_next_metadata(&v, &pos, &k, &val), 1);
			assert_true(bytes_eq(k, md[i].key));
			assert_true(bytes_eq(val, md[i].value));
		}
		assert_int_equal(ttrpc_request_next_metadata(&v, &pos, &k, &val), 0);

		ttrpc__request__free_unpacked(r, NULL);
		free(packed);
		buf_done(&b);
		for (size_t i = 0; i < n_md; i++) {
			free((char *)md[i].key);
			free((char *)md[i].value);
		}
		free(payload);
		free(service);
		free(method);
	}
}

static void test_protoc_response(void **state)
{
	for (int iter = 0; iter < 300; iter++) {
		int32_t code = iter % 3 == 0 ? 0 : (int32_t)(rnd() % 17);
		if (iter % 50 == 1)
			code = -5;
		char *msg = rnd_string(60);
		size_t plen = rnd() % 200;
		uint8_t *payload = malloc(plen + 1);
		for (size_t i = 0; i < plen; i++)
			payload[i] = (uint8_t)rnd();

		struct buf b = {0};
		assert_int_equal(ttrpc_response_encode(&b, code, msg, payload, plen), 0);
		Ttrpc__Response *r = ttrpc__response__unpack(NULL, b.len, b.data);
		assert_non_null(r);
		if (code == 0)
			assert_null(r->status);
		else {
			assert_non_null(r->status);
			assert_int_equal(r->status->code, code);
			assert_string_equal(r->status->message, msg);
		}
		assert_int_equal(r->payload.len, plen);
		if (plen)
			assert_memory_equal(r->payload.data, payload, plen);

		size_t n = ttrpc__response__get_packed_size(r);
		assert_int_equal(n, b.len);
		uint8_t *packed = malloc(n + 1);
		ttrpc__response__pack(r, packed);
		assert_memory_equal(packed, b.data, n);
		ttrpc__response__free_unpacked(r, NULL);

		/* protoc-c with a present status (the Rust form when code is 0). */
		Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
		st.code = code;
		st.message = msg;
		Ttrpc__Response resp = TTRPC__RESPONSE__INIT;
		resp.status = &st;
		resp.payload.data = payload;
		resp.payload.len = plen;
		n = ttrpc__response__get_packed_size(&resp);
		free(packed);
		packed = malloc(n + 1);
		ttrpc__response__pack(&resp, packed);
		struct ttrpc_response_view v;
		assert_int_equal(ttrpc_response_parse(packed, n, &v), 0);
		assert_true(v.has_status);
		assert_int_equal(v.code, code);
		assert_true(bytes_eq(v.message, msg));
		assert_int_equal(v.payload.len, plen);
		if (plen)
			assert_memory_equal(v.payload.data, payload, plen);

		free(packed);
		buf_done(&b);
		free(payload);
		free(msg);
	}
}

/* ---- malformed and unusual input ---- */

static int parse_req(const uint8_t *d, size_t n)
{
	struct ttrpc_request_view v;
	return ttrpc_request_parse(d, n, &v);
}

static int parse_resp(const uint8_t *d, size_t n)
{
	struct ttrpc_response_view v;
	return ttrpc_response_parse(d, n, &v);
}

static void test_malformed(void **state)
{
	/* truncated tag, truncated varint value, truncated length */
	assert_int_equal(parse_req(BYTES("\x80")), -EBADMSG);
	assert_int_equal(parse_req(BYTES("\x20\x80\x80")), -EBADMSG);
	assert_int_equal(parse_req(BYTES("\x0a\x05"
					 "abc")),
			 -EBADMSG);
	assert_int_equal(parse_req(BYTES("\x0a\x80")), -EBADMSG);
	/* a length larger than anything addressable */
	assert_int_equal(parse_req(BYTES("\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01")),
			 -EBADMSG);
	/* eleven-byte varint, and a tenth byte with more than the top bit */
	assert_int_equal(parse_req(BYTES("\x20\xff\xff\xff\xff\xff\xff\xff\xff\xff\x81\x00")),
			 -EBADMSG);
	assert_int_equal(parse_req(BYTES("\x20\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02")),
			 -EBADMSG);
	/* ... while the largest valid one parses (timeout -1) */
	struct ttrpc_request_view v;
	assert_int_equal(
	    ttrpc_request_parse(BYTES("\x20\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"), &v), 0);
	assert_int_equal(v.timeout_nano, -1);
	/* groups and invalid wire types, also on unknown fields */
	assert_int_equal(parse_req(BYTES("\x33\x34")), -EBADMSG);
	assert_int_equal(parse_req(BYTES("\x34")), -EBADMSG);
	assert_int_equal(parse_req(BYTES("\x4b\x4c")), -EBADMSG);
	assert_int_equal(parse_req(BYTES("\x4e\x00")), -EBADMSG);
	assert_int_equal(parse_req(BYTES("\x4f\x00")), -EBADMSG);
	/* field number 0 */
	assert_int_equal(parse_req(BYTES("\x02\x00")), -EBADMSG);
	assert_int_equal(parse_req(BYTES("\x00\x00")), -EBADMSG);
	/* wrong wire types for known fields */
	assert_int_equal(parse_req(BYTES("\x08\x01")), -EBADMSG);
	assert_int_equal(parse_req(BYTES("\x22\x00")), -EBADMSG);
	assert_int_equal(parse_req(BYTES("\x28\x01")), -EBADMSG);
	assert_int_equal(parse_req(BYTES("\x1d\x00\x00\x00\x00")), -EBADMSG);
	/* truncated fixed-width unknown fields */
	assert_int_equal(parse_req(BYTES("\x49\x00\x00\x00")), -EBADMSG);
	assert_int_equal(parse_req(BYTES("\x4d\x00\x00")), -EBADMSG);
	/* malformed metadata entries */
	assert_int_equal(parse_req(BYTES("\x2a\x02\x0a\x05")), -EBADMSG);
	assert_int_equal(parse_req(BYTES("\x2a\x02\x08\x01")), -EBADMSG);
	assert_int_equal(parse_req(BYTES("\x2a\x01\x33")), -EBADMSG);
	/* metadata split by a known field */
	assert_int_equal(parse_req(BYTES("\x2a\x00\x0a\x01s\x2a\x00")), -EBADMSG);

	/* responses */
	assert_int_equal(parse_resp(BYTES("\x0a\x02\x08")), -EBADMSG);
	assert_int_equal(parse_resp(BYTES("\x0a\x02\x12\x05")), -EBADMSG);
	assert_int_equal(parse_resp(BYTES("\x0a\x01\x0a")), -EBADMSG);
	assert_int_equal(parse_resp(BYTES("\x08\x00")), -EBADMSG);
	assert_int_equal(parse_resp(BYTES("\x10\x00")), -EBADMSG);
	assert_int_equal(parse_resp(BYTES("\x0a\x02\x10\x00")), -EBADMSG);
	assert_int_equal(parse_resp(BYTES("\x0a\x02\x1b\x1c")), -EBADMSG);
	assert_int_equal(parse_resp(BYTES("\x0a\x02\x1a\x01")), -EBADMSG);
	assert_int_equal(parse_resp(BYTES("\x13\x14")), -EBADMSG);
}

static void test_unknown_fields(void **state)
{
	/* Every skippable wire type, before, between and after known fields and inside metadata
	 * and status. */
	static const char req[] = "\x30\x96\x01"                         /* 6: varint */
				  "\x0a\x01s"                            /* service */
				  "\x39\x01\x02\x03\x04\x05\x06\x07\x08" /* 7: fixed64 */
				  "\x12\x01m"                            /* method */
				  "\x45\x01\x02\x03\x04"                 /* 8: fixed32 */
				  "\x2a\x08\x0a\x01k\x18\x07\x12\x01v"   /* md k=v with 3: varint */
				  "\x52\x02zz"                           /* 10: bytes */
				  "\x2a\x03\x12\x01w"                    /* md ""=w */
				  "\xf8\xff\xff\xff\x0f\x01"             /* field 2^29-1 */
				  "\x1a\x01p";                           /* payload, after md */
	struct ttrpc_request_view v;
	assert_int_equal(ttrpc_request_parse(BYTES(req), &v), 0);
	assert_true(bytes_eq(v.service, "s"));
	assert_true(bytes_eq(v.method, "m"));
	assert_true(bytes_eq(v.payload, "p"));
	assert_int_equal(v.n_metadata, 2);
	/* the span runs from the first to the last entry, the unknown field between included */
	assert_int_equal(v.metadata_raw.len, 10 + 4 + 5);
	size_t pos = 0;
	struct ttrpc_bytes k, val;
	assert_int_equal(ttrpc_request_next_metadata(&v, &pos, &k, &val), 1);
	assert_true(bytes_eq(k, "k"));
	assert_true(bytes_eq(val, "v"));
	assert_int_equal(ttrpc_request_next_metadata(&v, &pos, &k, &val), 1);
	assert_int_equal(k.len, 0);
	assert_true(bytes_eq(val, "w"));
	assert_int_equal(ttrpc_request_next_metadata(&v, &pos, &k, &val), 0);
	assert_int_equal(ttrpc_request_next_metadata(&v, &pos, &k, &val), 0);

	/* field number 2^29 is out of range */
	assert_int_equal(parse_req(BYTES("\x80\x80\x80\x80\x10\x01")), -EBADMSG);

	/* the last occurrence of a field wins; status occurrences merge */
	assert_int_equal(ttrpc_request_parse(BYTES("\x0a\x01"
						   "a\x0a\x01"
						   "b"),
					     &v),
			 0);
	assert_true(bytes_eq(v.service, "b"));
	struct ttrpc_response_view r;
	assert_int_equal(ttrpc_response_parse(BYTES("\x0a\x02\x08\x05\x0a\x03\x12\x01x"
						    "\x0a\x07\x1a\x05\x0a\x01t\x12\x00"
						    "\x18\x01"),
					      &r),
			 0);
	assert_int_equal(r.code, 5);
	assert_true(bytes_eq(r.message, "x"));
	/* int32 truncation of a 64-bit varint */
	assert_int_equal(ttrpc_response_parse(BYTES("\x0a\x06\x08\x85\x80\x80\x80\x10"), &r), 0);
	assert_int_equal(r.code, 5);
}

static void test_encode_limits(void **state)
{
	struct buf b = {0};
	uint8_t *big = calloc(1, TTRPC_MAX_DATA_BYTES + 1);
	assert_non_null(big);
	assert_int_equal(
	    ttrpc_request_encode(&b, "s", "m", big, TTRPC_MAX_DATA_BYTES, 0, NULL, NULL, 0),
	    -EMSGSIZE);
	assert_int_equal(b.len, 0);
	/* The envelope around the payload counts too: exactly at the limit is fine. */
	size_t plen = TTRPC_MAX_DATA_BYTES - (3 + 3 + 1 + 4);
	assert_int_equal(ttrpc_request_encode(&b, "s", "m", big, plen, 0, NULL, NULL, 0), 0);
	assert_int_equal(b.len, TTRPC_MAX_DATA_BYTES);
	b.len = 0;
	assert_int_equal(ttrpc_request_encode(&b, "s", "m", big, plen + 1, 0, NULL, NULL, 0),
			 -EMSGSIZE);
	assert_int_equal(ttrpc_response_encode(&b, 0, NULL, big, TTRPC_MAX_DATA_BYTES), -EMSGSIZE);
	assert_int_equal(ttrpc_response_encode(&b, 0, NULL, big, TTRPC_MAX_DATA_BYTES - 4),
			 -EMSGSIZE);
	assert_int_equal(ttrpc_response_encode(&b, 0, NULL, big, TTRPC_MAX_DATA_BYTES - 5), 0);
	assert_int_equal(b.len, TTRPC_MAX_DATA_BYTES);
	/* Encoding appends. */
	b.len = 3;
	assert_int_equal(ttrpc_response_encode(&b, 0, NULL, "\x01", 1), 0);
	assert_int_equal(b.len, 6);
	assert_memory_equal(b.data + 3, "\x12\x01\x01", 3);
	free(big);
	buf_done(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_header),         cmocka_unit_test(test_code_names),
	    cmocka_unit_test(test_golden_version), cmocka_unit_test(test_golden_empty_ok),
	    cmocka_unit_test(test_golden_errors),  cmocka_unit_test(test_golden_startvm),
	    cmocka_unit_test(test_golden_health),  cmocka_unit_test(test_golden_createvm_payload),
	    cmocka_unit_test(test_protoc_request), cmocka_unit_test(test_protoc_response),
	    cmocka_unit_test(test_malformed),      cmocka_unit_test(test_unknown_fields),
	    cmocka_unit_test(test_encode_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* lib/ttrpc/codec.c: the frame header and the ttRPC envelope messages (WIRE.md 1.1, 1.5, 1.6),
 * parsed in place without allocation and encoded by hand. Every length read from the input is
 * checked against the bytes that remain. */
#include "ttrpc/ttrpc-internal.h"

static const char *const code_names[] = {
    [TTRPC_OK] = "OK",
    [TTRPC_CANCELLED] = "CANCELLED",
    [TTRPC_UNKNOWN] = "UNKNOWN",
    [TTRPC_INVALID_ARGUMENT] = "INVALID_ARGUMENT",
    [TTRPC_DEADLINE_EXCEEDED] = "DEADLINE_EXCEEDED",
    [TTRPC_NOT_FOUND] = "NOT_FOUND",
    [TTRPC_ALREADY_EXISTS] = "ALREADY_EXISTS",
    [TTRPC_PERMISSION_DENIED] = "PERMISSION_DENIED",
    [TTRPC_RESOURCE_EXHAUSTED] = "RESOURCE_EXHAUSTED",
    [TTRPC_FAILED_PRECONDITION] = "FAILED_PRECONDITION",
    [TTRPC_ABORTED] = "ABORTED",
    [TTRPC_OUT_OF_RANGE] = "OUT_OF_RANGE",
    [TTRPC_UNIMPLEMENTED] = "UNIMPLEMENTED",
    [TTRPC_INTERNAL] = "INTERNAL",
    [TTRPC_UNAVAILABLE] = "UNAVAILABLE",
    [15] = "DATA_LOSS",
    [16] = "UNAUTHENTICATED",
};

const char *ttrpc_code_name(int code)
{
	if (code < 0 || (size_t)code >= ELEMENTSOF(code_names))
		return NULL;
	return code_names[code];
}

void ttrpc_header_encode(const struct ttrpc_header *h, uint8_t out[TTRPC_HEADER_SIZE])
{
	out[0] = (uint8_t)(h->length >> 24);
	out[1] = (uint8_t)(h->length >> 16);
	out[2] = (uint8_t)(h->length >> 8);
	out[3] = (uint8_t)h->length;
	out[4] = (uint8_t)(h->stream_id >> 24);
	out[5] = (uint8_t)(h->stream_id >> 16);
	out[6] = (uint8_t)(h->stream_id >> 8);
	out[7] = (uint8_t)h->stream_id;
	out[8] = h->type;
	out[9] = h->flags;
}

void ttrpc_header_decode(const uint8_t in[TTRPC_HEADER_SIZE], struct ttrpc_header *ret)
{
	ret->length = (uint32_t)in[0] << 24 | (uint32_t)in[1] << 16 | (uint32_t)in[2] << 8 | in[3];
	ret->stream_id =
	    (uint32_t)in[4] << 24 | (uint32_t)in[5] << 16 | (uint32_t)in[6] << 8 | in[7];
	ret->type = in[8];
	ret->flags = in[9];
}

/* ---- protobuf reading ---- */

enum {
	WT_VARINT = 0,
	WT_FIXED64 = 1,
	WT_LEN = 2,
	WT_FIXED32 = 5,
};

#define FIELD_NUMBER_MAX ((1u << 29) - 1)

/* Views of absent fields point here so that users may pass them to memcmp and friends. */
static const uint8_t empty_bytes[1];

struct field {
	uint32_t num;
	unsigned wt;
	uint64_t v;           /* WT_VARINT, WT_FIXED64, WT_FIXED32 */
	struct ttrpc_bytes b; /* WT_LEN */
};

static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *ret)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < TTRPC_VARINT_MAX; i++) {
		if (*p >= end)
			return -EBADMSG;
		uint8_t b = *(*p)++;
		/* The tenth byte may only carry the top bit of a uint64. */
		if (i == TTRPC_VARINT_MAX - 1 && b > 1)
			return -EBADMSG;
		v |= (uint64_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			*ret = v;
			return 0;
		}
	}
	return -EBADMSG;
}

/* Read one field (tag and value); groups (wire types 3, 4) and wire types 6, 7 are errors. */
/* A little-endian fixed32 or fixed64 value (n = 4 or 8). */
static int read_fixed(const uint8_t **p, const uint8_t *end, unsigned n, uint64_t *ret)
{
	if (end - *p < (ptrdiff_t)n)
		return -EBADMSG;
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)(*p)[i] << (8 * i);
	*ret = v;
	*p += n;
	return 0;
}

static int read_field(const uint8_t **p, const uint8_t *end, struct field *f)
{
	uint64_t tag, v;
	int r = read_varint(p, end, &tag);
	if (r < 0)
		return r;
	if (tag >> 3 == 0 || tag >> 3 > FIELD_NUMBER_MAX)
		return -EBADMSG;
	f->num = (uint32_t)(tag >> 3);
	f->wt = (unsigned)(tag & 7);
	switch (f->wt) {
	case WT_VARINT:
		return read_varint(p, end, &f->v);
	case WT_FIXED64:
		return read_fixed(p, end, 8, &f->v);
	case WT_FIXED32:
		return read_fixed(p, end, 4, &f->v);
	case WT_LEN:
		r = read_varint(p, end, &v);
		if (r < 0)
			return r;
		if (v > (uint64_t)(end - *p))
			return -EBADMSG;
		f->b.data = v ? *p : empty_bytes;
		f->b.len = (size_t)v;
		*p += v;
		return 0;
	default:
		return -EBADMSG;
	}
}

/* ttrpc.KeyValue */
static int parse_kv(struct ttrpc_bytes in, struct ttrpc_bytes *key, struct ttrpc_bytes *value)
{
	*key = *value = (struct ttrpc_bytes){empty_bytes, 0};
	const uint8_t *p = in.data, *end = in.data + in.len;
	while (p < end) {
		struct field f;
		int r = read_field(&p, end, &f);
		if (r < 0)
			return r;
		if (f.num == 1 || f.num == 2) {
			if (f.wt != WT_LEN)
				return -EBADMSG;
			*(f.num == 1 ? key : value) = f.b;
		}
	}
	return 0;
}

int ttrpc_request_parse(const uint8_t *data, size_t len, struct ttrpc_request_view *ret)
{
	*ret = (struct ttrpc_request_view){
	    .service = {empty_bytes, 0},
	    .method = {empty_bytes, 0},
	    .payload = {empty_bytes, 0},
	    .metadata_raw = {empty_bytes, 0},
	};
	if (len == 0)
		return 0;

	const uint8_t *p = data, *end = data + len;
	const uint8_t *md_start = NULL, *md_end = NULL;
	bool known_after_md = false;
	while (p < end) {
		const uint8_t *start = p;
		struct field f;
		int r = read_field(&p, end, &f);
		if (r < 0)
			return r;
		switch (f.num) {
		case 1:
		case 2:
		case 3:
			if (f.wt != WT_LEN)
				return -EBADMSG;
			*(f.num == 1   ? &ret->service
			  : f.num == 2 ? &ret->method
				       : &ret->payload) = f.b;
			known_after_md = md_start != NULL;
			break;
		case 4:
			if (f.wt != WT_VARINT)
				return -EBADMSG;
			ret->timeout_nano = (int64_t)f.v;
			known_after_md = md_start != NULL;
			break;
		case 5: {
			if (f.wt != WT_LEN)
				return -EBADMSG;
			/* metadata_raw is one span that relays copy verbatim after their own
			 * fields; a known field inside it would then override theirs. */
			if (known_after_md)
				return -EBADMSG;
			struct ttrpc_bytes k, v;
			r = parse_kv(f.b, &k, &v);
			if (r < 0)
				return r;
			if (!md_start)
				md_start = start;
			md_end = p;
			ret->n_metadata++;
			break;
		}
		default:
			break;
		}
	}
	if (md_start)
		ret->metadata_raw = (struct ttrpc_bytes){md_start, (size_t)(md_end - md_start)};
	return 0;
}

int ttrpc_request_next_metadata(const struct ttrpc_request_view *req, size_t *pos,
				struct ttrpc_bytes *ret_key, struct ttrpc_bytes *ret_value)
{
	const uint8_t *base = req->metadata_raw.data;
	size_t len = req->metadata_raw.len;
	if (*pos >= len)
		return 0;
	const uint8_t *p = base + *pos, *end = base + len;
	while (p < end) {
		struct field f;
		int r = read_field(&p, end, &f);
		if (r < 0)
			return r;
		if (f.num != 5)
			continue;
		if (f.wt != WT_LEN)
			return -EBADMSG;
		r = parse_kv(f.b, ret_key, ret_value);
		if (r < 0)
			return r;
		*pos = (size_t)(p - base);
		return 1;
	}
	*pos = len;
	return 0;
}

/* ---- protobuf writing ---- */

static size_t len_field_size(size_t len)
{
	return 1 + ttrpc_varint_size(len) + len;
}

static uint8_t *put_len_field(uint8_t *p, unsigned num, const void *data, size_t len)
{
	*p++ = (uint8_t)(num << 3 | WT_LEN);
	p += ttrpc_varint_put(p, len);
	if (len)
		memcpy(p, data, len);
	return p + len;
}

static size_t str_len(const char *s)
{
	return s ? strlen(s) : 0;
}

int ttrpc_request_encode(struct buf *out, const char *service, const char *method,
			 const void *payload, size_t payload_len, int64_t timeout_nano,
			 const struct ttrpc_bytes *metadata_raw, const struct ttrpc_kv *md,
			 size_t n_md)
{
	size_t service_len = str_len(service), method_len = str_len(method);
	size_t md_raw_len = metadata_raw ? metadata_raw->len : 0;
	if (service_len > TTRPC_MAX_DATA_BYTES || method_len > TTRPC_MAX_DATA_BYTES ||
	    payload_len > TTRPC_MAX_DATA_BYTES || md_raw_len > TTRPC_MAX_DATA_BYTES)
		return -EMSGSIZE;

	/* Sizes first, so that out grows once and nothing is written on failure. The sum stays far
	 * from overflowing because every term is checked against the 4 MiB limit. */
	size_t total = 0;
	if (service_len)
		total += len_field_size(service_len);
	if (method_len)
		total += len_field_size(method_len);
	if (payload_len)
		total += len_field_size(payload_len);
	if (timeout_nano)
		total += 1 + ttrpc_varint_size((uint64_t)timeout_nano);
	total += md_raw_len;
	if (total > TTRPC_MAX_DATA_BYTES)
		return -EMSGSIZE;
	for (size_t i = 0; i < n_md; i++) {
		size_t kl = str_len(md[i].key), vl = str_len(md[i].value);
		if (kl > TTRPC_MAX_DATA_BYTES || vl > TTRPC_MAX_DATA_BYTES)
			return -EMSGSIZE;
		size_t entry = (kl ? len_field_size(kl) : 0) + (vl ? len_field_size(vl) : 0);
		total += len_field_size(entry);
		if (total > TTRPC_MAX_DATA_BYTES)
			return -EMSGSIZE;
	}

	int r = buf_reserve(out, total, 0);
	if (r < 0)
		return r;
	uint8_t *p = out->data + out->len;
	if (service_len)
		p = put_len_field(p, 1, service, service_len);
	if (method_len)
		p = put_len_field(p, 2, method, method_len);
	if (payload_len)
		p = put_len_field(p, 3, payload, payload_len);
	if (timeout_nano) {
		*p++ = 4 << 3 | WT_VARINT;
		p += ttrpc_varint_put(p, (uint64_t)timeout_nano);
	}
	if (md_raw_len) {
		memcpy(p, metadata_raw->data, md_raw_len);
		p += md_raw_len;
	}
	for (size_t i = 0; i < n_md; i++) {
		size_t kl = str_len(md[i].key), vl = str_len(md[i].value);
		size_t entry = (kl ? len_field_size(kl) : 0) + (vl ? len_field_size(vl) : 0);
		*p++ = 5 << 3 | WT_LEN;
		p += ttrpc_varint_put(p, entry);
		if (kl)
			p = put_len_field(p, 1, md[i].key, kl);
		if (vl)
			p = put_len_field(p, 2, md[i].value, vl);
	}
	out->len += total;
	return 0;
}

/* google.rpc.Status; a repeated occurrence merges into the earlier one, as protobuf does for
 * embedded messages. */
static int parse_status(struct ttrpc_bytes in, struct ttrpc_response_view *ret)
{
	const uint8_t *p = in.data, *end = in.data + in.len;
	while (p < end) {
		struct field f;
		int r = read_field(&p, end, &f);
		if (r < 0)
			return r;
		switch (f.num) {
		case 1:
			if (f.wt != WT_VARINT)
				return -EBADMSG;
			/* int32 fields are varints truncated to 32 bits. */
			ret->code = (int32_t)(uint32_t)f.v;
			break;
		case 2:
			if (f.wt != WT_LEN)
				return -EBADMSG;
			ret->message = f.b;
			break;
		case 3:
			if (f.wt != WT_LEN)
				return -EBADMSG;
			break;
		default:
			break;
		}
	}
	return 0;
}

int ttrpc_response_parse(const uint8_t *data, size_t len, struct ttrpc_response_view *ret)
{
	*ret = (struct ttrpc_response_view){
	    .message = {empty_bytes, 0},
	    .payload = {empty_bytes, 0},
	};
	if (len == 0)
		return 0;

	const uint8_t *p = data, *end = data + len;
	while (p < end) {
		struct field f;
		int r = read_field(&p, end, &f);
		if (r < 0)
			return r;
		switch (f.num) {
		case 1:
			if (f.wt != WT_LEN)
				return -EBADMSG;
			ret->has_status = true;
			r = parse_status(f.b, ret);
			if (r < 0)
				return r;
			break;
		case 2:
			if (f.wt != WT_LEN)
				return -EBADMSG;
			ret->payload = f.b;
			break;
		default:
			break;
		}
	}
	return 0;
}

static int response_encode(struct buf *out, int32_t code, const char *message, size_t message_len,
			   const void *payload, size_t payload_len)
{
	if (payload_len > TTRPC_MAX_DATA_BYTES || message_len > TTRPC_MAX_DATA_BYTES)
		return -EMSGSIZE;
	size_t status_len = 0, total = 0;
	if (code != 0) {
		/* Negative int32 values are sign-extended to ten bytes on the wire. */
		status_len = 1 + ttrpc_varint_size((uint64_t)(int64_t)code);
		if (message_len)
			status_len += len_field_size(message_len);
		total += len_field_size(status_len);
	}
	if (payload_len)
		total += len_field_size(payload_len);
	if (total > TTRPC_MAX_DATA_BYTES)
		return -EMSGSIZE;

	int r = buf_reserve(out, total, 0);
	if (r < 0)
		return r;
	uint8_t *p = out->data + out->len;
	if (code != 0) {
		*p++ = 1 << 3 | WT_LEN;
		p += ttrpc_varint_put(p, status_len);
		*p++ = 1 << 3 | WT_VARINT;
		p += ttrpc_varint_put(p, (uint64_t)(int64_t)code);
		if (message_len)
			p = put_len_field(p, 2, message, message_len);
	}
	if (payload_len)
		put_len_field(p, 2, payload, payload_len);
	out->len += total;
	return 0;
}

int ttrpc_response_encode(struct buf *out, int32_t code, const char *message, const void *payload,
			  size_t payload_len)
{
	return response_encode(out, code, message, code ? str_len(message) : 0, payload,
			       payload_len);
}

int ttrpc_response_encode_errorv(struct buf *out, int32_t code, const char *fmt, va_list ap)
{
	char msg[TTRPC_ERROR_MESSAGE_MAX + 1];
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		return -EINVAL;
	return response_encode(out, code, msg, MIN((size_t)n, TTRPC_ERROR_MESSAGE_MAX), NULL, 0);
}

/* lib/ttrpc internals shared by the codec, server and client: protobuf varint helpers and the
 * fixed error texts of WIRE.md 1.3, 1.4 and 1.7. */
#pragma once

#include <inttypes.h>
#include <stdio.h>

#include "ttrpc/ttrpc.h"

/* Longest varint (uint64) in bytes. */
#define TTRPC_VARINT_MAX 10

static inline size_t ttrpc_varint_size(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/* Writes the varint into out (room for TTRPC_VARINT_MAX bytes); returns its size. */
static inline size_t ttrpc_varint_put(uint8_t *out, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		out[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	out[n++] = (uint8_t)v;
	return n;
}

#define TTRPC_MSG_OVERSIZE "message length %" PRIu64 " exceed maximum message size of %u"
#define TTRPC_MSG_EVEN_ID "StreamID must be odd for client initiated streams"
#define TTRPC_MSG_REUSED_ID "StreamID cannot be re-used and must increment"
#define TTRPC_MSG_INACTIVE "StreamID is no longer active"
#define TTRPC_MSG_DEADLINE "context deadline exceeded"

/* Error messages sent by us are capped so that echoing a client's 4 MiB service name cannot
 * produce an oversized Response. */
#define TTRPC_ERROR_MESSAGE_MAX 4096

/* Encode a Response carrying an error status into out (appended); the message is truncated at
 * TTRPC_ERROR_MESSAGE_MAX bytes. */
int ttrpc_response_encode_errorv(struct buf *out, int32_t code, const char *fmt, va_list ap)
    _printf_(3, 0);

/* Attach a non-blocking socket to an SSL object through a BIO that writes with MSG_NOSIGNAL, so
 * that a vanished peer is an error and not a SIGPIPE. */
int ttrpc_ssl_set_socket(struct ssl_st *ssl, int fd);

/* providers/aws/sigv4: AWS Signature Version 4 as a pure module (no clock, no I/O, no logging):
 * canonical request, string to sign, signing key, Authorization header and presigned query. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bounds on untrusted or caller input; anything larger is -E2BIG. */
#define SIGV4_MAX_HEADERS 256
#define SIGV4_MAX_FIELD_BYTES (64U * 1024U)  /* one path, query, header name or value */
#define SIGV4_MAX_CANONICAL_BYTES (1U << 20) /* whole canonical request */
#define SIGV4_MAX_QUERY_PARAMS 1024
#define SIGV4_MAX_METHOD_BYTES 32
#define SIGV4_MAX_SCOPE_PART_BYTES 64 /* region, service */

#define SIGV4_KEY_BYTES 32
#define SIGV4_HEX_BYTES 65       /* 64 lowercase hex digits + NUL */
#define SIGV4_DATE_TIME_BYTES 17 /* "YYYYMMDDTHHMMSSZ" + NUL */
#define SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"

/* Headers keep request order; duplicate names are allowed and joined with ',' in that order. */
struct sigv4_header {
	const char *name;
	const char *value;
};

struct sigv4_request {
	const char *method;
	const char *path;  /* as sent; NULL or "" means "/" */
	const char *query; /* raw query without '?', may be NULL */
	const struct sigv4_header *headers;
	size_t n_headers;
	const void *payload; /* hashed when payload_hash is NULL; NULL with 0 length is "" */
	size_t payload_len;
	const char
	    *payload_hash; /* precomputed hex SHA-256 or SIGV4_UNSIGNED_PAYLOAD; may be NULL */
};

struct sigv4_credentials {
	const char *access_key_id;
	const char *secret_access_key;
	const char *session_token; /* may be NULL */
};

enum sigv4_flags {
	/* Remove "." and ".." segments and empty segments (EC2 and most services; not S3). */
	SIGV4_NORMALIZE_PATH = 1 << 0,
	/* S3 style: the path is percent-decoded before being encoded once. Without this flag the
	 * path as given is encoded again ("double encoding"), which is what every non-S3 service
	 * expects. */
	SIGV4_SINGLE_ENCODE_PATH = 1 << 1,
	/* Header mode: add and sign x-amz-content-sha256 with the payload hash. */
	SIGV4_ADD_CONTENT_SHA256 = 1 << 2,
	/* Leave the session token out of the canonical request (some services want it added only
	 * after signing); the caller still sends it. */
	SIGV4_OMIT_SESSION_TOKEN = 1 << 3,
	/* Use "UNSIGNED-PAYLOAD" as the payload hash when payload_hash is NULL. */
	SIGV4_UNSIGNED_PAYLOAD_HASH = 1 << 4,
};

/* The signing key for one (secret, day, region, service). Deriving it costs four HMACs; callers
 * that sign often keep one of these and pass it in. Wipe with sigv4_key_cache_done(). */
struct sigv4_key_cache {
	bool valid;
	char date[9];
	char region[SIGV4_MAX_SCOPE_PART_BYTES + 1];
	char service[SIGV4_MAX_SCOPE_PART_BYTES + 1];
	uint8_t secret_digest[32]; /* SHA-256 of the secret, so a rotated secret misses */
	uint8_t key[SIGV4_KEY_BYTES];
};
void sigv4_key_cache_done(struct sigv4_key_cache *c);

struct sigv4_signing {
	const struct sigv4_credentials *credentials;
	const char *date_time; /* "YYYYMMDDTHHMMSSZ", UTC; the module never reads the clock */
	const char *region;
	const char *service;
	unsigned flags;                    /* enum sigv4_flags */
	uint32_t expires_s;                /* query signing: X-Amz-Expires, 1..604800 */
	struct sigv4_key_cache *key_cache; /* optional */
};

/* Result of signing. Every string is malloc'd; free with sigv4_result_done(). */
struct sigv4_result {
	char *canonical_request;
	char *string_to_sign;
	char *signed_headers; /* "host;x-amz-date" */
	char signature[SIGV4_HEX_BYTES];
	char payload_hash[SIGV4_HEX_BYTES + 16];
	/* Header mode: the value of the Authorization header. NULL in query mode. */
	char *authorization;
	/* Query mode: the parameters to append to the request's query (after '&' or '?'), in the
	 * order X-Amz-Algorithm, -Credential, -Date, -SignedHeaders, -Expires, [-Security-Token],
	 * -Signature. NULL in header mode. */
	char *presigned_query;
};
void sigv4_result_done(struct sigv4_result *r);

/* Header signing. The caller then sends X-Amz-Date: <date_time>, X-Amz-Security-Token when a
 * token is set, x-amz-content-sha256 with SIGV4_ADD_CONTENT_SHA256, and Authorization. Request
 * headers named authorization, x-amz-date, x-amz-security-token or x-amz-content-sha256 are
 * ignored, as the signer supplies them. */
int sigv4_sign_headers(const struct sigv4_signing *s, const struct sigv4_request *req,
		       struct sigv4_result *ret);
/* Query-string signing (presigned URL). Request query parameters named X-Amz-Signature are
 * ignored. */
int sigv4_sign_query(const struct sigv4_signing *s, const struct sigv4_request *req,
		     struct sigv4_result *ret);

/* ---- building blocks, exposed for tests and for callers with special needs ---- */

/* Percent-encode every byte but A-Z a-z 0-9 - . _ ~ (and '/' when keep_slash), uppercase hex. */
int sigv4_uri_encode(const void *data, size_t len, bool keep_slash, char **ret);
/* Decode %XX sequences; a '%' not followed by two hex digits stays literal. */
int sigv4_uri_decode(const char *s, size_t len, char **ret, size_t *ret_len);
/* The canonical path: optional dot-segment removal and slash collapsing, then encoding. */
int sigv4_canonical_path(const char *path, unsigned flags, char **ret);
/* The canonical query of a raw query string (decode, re-encode, sort by name then value). */
int sigv4_canonical_query(const char *query, char **ret);
/* Trim a header value and collapse each run of whitespace (space, tab, CR, LF) to one space. */
int sigv4_trim_value(const char *value, char **ret);
/* HMAC chain: "AWS4"+secret, date (YYYYMMDD), region, service, "aws4_request". */
int sigv4_derive_key(const char *secret, const char *date8, const char *region, const char *service,
		     uint8_t ret_key[SIGV4_KEY_BYTES]);
/* "AWS4-HMAC-SHA256\n<date_time>\n<scope>\n<hex sha256(canonical_request)>". */
int sigv4_string_to_sign(const char *date_time, const char *region, const char *service,
			 const char *canonical_request, char **ret);
/* Lowercase hex HMAC-SHA256 of the string to sign under the derived key. */
int sigv4_signature(const uint8_t key[SIGV4_KEY_BYTES], const char *string_to_sign,
		    char ret_hex[SIGV4_HEX_BYTES]);

/* coordinator: the key-value store of the manifest history (ATTESTATION.md 9). A vtable so that
 * other backends (etcd) can be added; the file backend keeps one file per key. */
#pragma once

#include "base/base.h"

/* Values larger than this are refused (manifests and initdata are at most 1 MiB each). */
#define STORE_VALUE_MAX_BYTES (2 * 1024 * 1024)
#define STORE_KEY_MAX 256

struct store;

/* Backend operations; keys are already validated. An unimplemented slot is -EOPNOTSUPP. */
struct store_vtable {
	const char *name;
	/* 0 and a malloc'd value (NUL-terminated, not counted); -ENOENT when absent. */
	int (*get)(struct store *s, const char *key, uint8_t **ret, size_t *ret_len);
	int (*set)(struct store *s, const char *key, const void *data, size_t len);
	/* 1 present, 0 absent. */
	int (*has)(struct store *s, const char *key);
	/* Replace the value when it is old (old == NULL: when the key is absent); -ESTALE when the
	 * current value differs. Atomic against every other user of the same store. */
	int (*cas)(struct store *s, const char *key, const void *old, size_t old_len,
		   const void *data, size_t len);
	void (*free)(struct store *s);
};

struct store {
	const struct store_vtable *vt;
};

/* Keys are `[a-z0-9-]+/[a-z0-9-]+`, at most STORE_KEY_MAX bytes. */
bool store_key_valid(const char *key);

/* Wrappers that check keys (-EINVAL) and value sizes (-EFBIG). */
int store_get(struct store *s, const char *key, uint8_t **ret, size_t *ret_len);
int store_set(struct store *s, const char *key, const void *data, size_t len);
int store_has(struct store *s, const char *key);
int store_cas(struct store *s, const char *key, const void *old, size_t old_len, const void *data,
	      size_t len);
void store_free(struct store *s);
DEFINE_CLEANUP(struct store, store_free)

/* File backend in dir (created 0700 when missing): `<dir>/<prefix>/<name>`, written through a
 * temp file, fsync, rename and fsync of the directory. CAS holds a mutex and flock() on
 * `<dir>/.lock`, so it is atomic between threads and between processes. */
int store_open_dir(const char *dir, struct store **ret);

/* etcd v3 backend through etcd's JSON gateway (etcd >= 3.4: POST /v3/kv/range, /v3/kv/put,
 * /v3/kv/txn with base64 keys and values). Keys live under prefix. Every request is bounded by
 * timeout_ns and tried on each endpoint in turn (a replica down is not an outage); CAS is one
 * txn comparing the value (absent: create_revision 0) and putting on success. */
struct store_etcd_options {
	const char *endpoints; /* comma-separated URLs, e.g. "http://127.0.0.1:2379" */
	const char *prefix;    /* NULL: STORE_ETCD_DEFAULT_PREFIX */
	int64_t timeout_ns;    /* per request; 0: STORE_ETCD_DEFAULT_TIMEOUT_NS */
	/* TLS to etcd (https endpoints): CA bundle and client certificate/key files; NULL: none. */
	const char *ca_file;
	const char *cert_file;
	const char *key_file;
};
#define STORE_ETCD_DEFAULT_PREFIX "/peerpod-coordinator/"
#define STORE_ETCD_DEFAULT_TIMEOUT_NS (5 * NSEC_PER_SEC)
/* Opens and checks that an endpoint answers (-EHOSTUNREACH with *ret_msg when none does). */
int store_open_etcd(const struct store_etcd_options *o, struct store **ret, char **ret_msg);

/* Responses are capped: base64 of a STORE_VALUE_MAX_BYTES value plus the JSON around it. etcd
 * itself refuses requests over --max-request-bytes (default 1.5 MiB): run it with at least
 * 4 MiB so that STORE_VALUE_MAX_BYTES values fit (otherwise writes fail with -EFBIG). */
#define STORE_ETCD_RESPONSE_MAX_BYTES (3 * 1024 * 1024 + 64 * 1024)
#define STORE_ETCD_MAX_ENDPOINTS 16

/* Parsers of the gateway's JSON answers (untrusted input; exposed for the fuzz target).
 * Range: 0 with the value of the single kv (malloc'd, NUL-terminated; ret may be NULL to only
 * test presence), -ENOENT when there is none, -EBADMSG when malformed or when key (the full
 * etcd key; NULL: not checked) does not match, -EFBIG over STORE_VALUE_MAX_BYTES. */
int store_etcd_parse_range(const char *body, size_t len, const char *key, uint8_t **ret,
			   size_t *ret_len);
/* Txn: 0 and whether the compare held (an absent "succeeded" is false); -EBADMSG. */
int store_etcd_parse_txn(const char *body, size_t len, bool *ret_succeeded);
/* A non-2xx answer ({"error","code","message"} or etcd >= 3.5 {"code","message"}, or anything
 * else): the negative errno it maps to (-EINVAL for a refused argument, -EFBIG for a request
 * over etcd's size limit, -EACCES for authentication/permission, -EIO otherwise) and, when
 * ret_msg is non-NULL, a printable, bounded message (malloc'd; may stay NULL on OOM). */
int store_etcd_parse_error(long status, const char *body, size_t len, char **ret_msg);

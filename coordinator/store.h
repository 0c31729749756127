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

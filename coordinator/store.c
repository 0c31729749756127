/* coordinator: key-value store wrappers and the file backend (ATTESTATION.md 9). */
#include "coordinator/store.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>

bool store_key_valid(const char *key)
{
	if (!key)
		return false;
	size_t n = strlen(key), slash = 0, nslash = 0;
	if (n == 0 || n > STORE_KEY_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = key[i];
		if (c == '/') {
			slash = i;
			nslash++;
		} else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return false;
	}
	return nslash == 1 && slash > 0 && slash < n - 1;
}

int store_get(struct store *s, const char *key, uint8_t **ret, size_t *ret_len)
{
	if (!store_key_valid(key))
		return -EINVAL;
	return s->vt->get ? s->vt->get(s, key, ret, ret_len) : -EOPNOTSUPP;
}

int store_set(struct store *s, const char *key, const void *data, size_t len)
{
	if (!store_key_valid(key))
		return -EINVAL;
	if (len > STORE_VALUE_MAX_BYTES)
		return -EFBIG;
	return s->vt->set ? s->vt->set(s, key, data, len) : -EOPNOTSUPP;
}

int store_has(struct store *s, const char *key)
{
	if (!store_key_valid(key))
		return -EINVAL;
	return s->vt->has ? s->vt->has(s, key) : -EOPNOTSUPP;
}

int store_cas(struct store *s, const char *key, const void *old, size_t old_len, const void *data,
	      size_t len)
{
	if (!store_key_valid(key))
		return -EINVAL;
	if (len > STORE_VALUE_MAX_BYTES)
		return -EFBIG;
	return s->vt->cas ? s->vt->cas(s, key, old, old_len, data, len) : -EOPNOTSUPP;
}

void store_free(struct store *s)
{
	if (s && s->vt->free)
		s->vt->free(s);
}

/* ---- file backend ---- */

struct dir_store {
	struct store base;
	int dir_fd;
	int lock_fd;
	pthread_mutex_t lock;
};

static struct dir_store *to_dir(struct store *s)
{
	return (struct dir_store *)s;
}

/* Split "prefix/name" into a directory fd (created when create is set) and the name. */
static int open_prefix(struct dir_store *d, const char *key, bool create, const char **ret_name)
{
	const char *slash = strchr(key, '/');
	char prefix[STORE_KEY_MAX + 1];
	size_t n = (size_t)(slash - key);
	memcpy(prefix, key, n);
	prefix[n] = 0;
	*ret_name = slash + 1;
	int fd = openat(d->dir_fd, prefix, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0 || errno != ENOENT || !create)
		return fd >= 0 ? fd : -errno;
	if (mkdirat(d->dir_fd, prefix, 0700) < 0 && errno != EEXIST)
		return -errno;
	if (fsync(d->dir_fd) < 0)
		return -errno;
	fd = openat(d->dir_fd, prefix, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd >= 0 ? fd : -errno;
}

static int dir_get(struct store *s, const char *key, uint8_t **ret, size_t *ret_len)
{
	const char *name;
	_cleanup_close_ int pfd = open_prefix(to_dir(s), key, false, &name);
	if (pfd < 0)
		return pfd;
	_cleanup_close_ int fd = openat(pfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	struct buf b = {};
	for (;;) {
		int r = buf_reserve(&b, 65536, STORE_VALUE_MAX_BYTES + 1);
		if (r < 0) {
			buf_done(&b);
			return r == -EMSGSIZE ? -EFBIG : r;
		}
		size_t room = MIN(b.cap - b.len, (size_t)STORE_VALUE_MAX_BYTES + 1 - b.len);
		ssize_t k = read(fd, b.data + b.len, room);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = -errno;
			buf_done(&b);
			return r;
		}
		if (k == 0)
			break;
		b.len += (size_t)k;
		if (b.len > STORE_VALUE_MAX_BYTES) {
			buf_done(&b);
			return -EFBIG;
		}
	}
	size_t len = b.len;
	if (buf_append(&b, "", 1, 0) < 0) {
		buf_done(&b);
		return -ENOMEM;
	}
	*ret = b.data;
	*ret_len = len;
	return 0;
}

static int write_atomic(int pfd, const char *name, const void *data, size_t len)
{
	uint8_t rnd[8];
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		return -EIO;
	_cleanup_free_ char *hex = hex_encode(rnd, sizeof(rnd));
	_cleanup_free_ char *tmp = hex ? str_printf(".tmp-%s", hex) : NULL;
	if (!tmp)
		return -ENOMEM;
	_cleanup_close_ int fd =
	    openat(pfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	int r = write_all(fd, data, len);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r == 0 && renameat(pfd, tmp, pfd, name) < 0)
		r = -errno;
	if (r < 0) {
		unlinkat(pfd, tmp, 0);
		return r;
	}
	/* Make the rename itself durable. */
	return fsync(pfd) < 0 ? -errno : 0;
}

/* Serialises writers: threads by the mutex, processes and other store instances by flock. */
static int lock_store(struct dir_store *d)
{
	pthread_mutex_lock(&d->lock);
	while (flock(d->lock_fd, LOCK_EX) < 0) {
		if (errno == EINTR)
			continue;
		int r = -errno;
		pthread_mutex_unlock(&d->lock);
		return r;
	}
	return 0;
}

static void unlock_store(struct dir_store *d)
{
	(void)flock(d->lock_fd, LOCK_UN);
	pthread_mutex_unlock(&d->lock);
}

static int dir_set(struct store *s, const char *key, const void *data, size_t len)
{
	struct dir_store *d = to_dir(s);
	const char *name;
	_cleanup_close_ int pfd = open_prefix(d, key, true, &name);
	if (pfd < 0)
		return pfd;
	int r = lock_store(d);
	if (r < 0)
		return r;
	r = write_atomic(pfd, name, data, len);
	unlock_store(d);
	return r;
}

static int dir_has(struct store *s, const char *key)
{
	const char *name;
	_cleanup_close_ int pfd = open_prefix(to_dir(s), key, false, &name);
	if (pfd == -ENOENT)
		return 0;
	if (pfd < 0)
		return pfd;
	struct stat st;
	if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	return 1;
}

static int dir_cas(struct store *s, const char *key, const void *old, size_t old_len,
		   const void *data, size_t len)
{
	struct dir_store *d = to_dir(s);
	const char *name;
	_cleanup_close_ int pfd = open_prefix(d, key, true, &name);
	if (pfd < 0)
		return pfd;
	int r = lock_store(d);
	if (r < 0)
		return r;
	_cleanup_free_ uint8_t *cur = NULL;
	size_t cur_len = 0;
	r = dir_get(s, key, &cur, &cur_len);
	if (r == -ENOENT)
		r = old ? -ESTALE : 0;
	else if (r == 0)
		r = old && cur_len == old_len && memcmp(cur, old, old_len) == 0 ? 0 : -ESTALE;
	if (r == 0)
		r = write_atomic(pfd, name, data, len);
	unlock_store(d);
	return r;
}

static void dir_free(struct store *s)
{
	struct dir_store *d = to_dir(s);
	safe_close(d->dir_fd);
	safe_close(d->lock_fd);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

static const struct store_vtable dir_vtable = {
    .name = "file",
    .get = dir_get,
    .set = dir_set,
    .has = dir_has,
    .cas = dir_cas,
    .free = dir_free,
};

int store_open_dir(const char *dir, struct store **ret)
{
	int r = mkdir_p(dir, 0700);
	if (r < 0)
		return r;
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	_cleanup_close_ int lfd = openat(dfd, ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lfd < 0)
		return -errno;
	struct dir_store *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->base.vt = &dir_vtable;
	d->dir_fd = TAKE_FD(dfd);
	d->lock_fd = TAKE_FD(lfd);
	pthread_mutex_init(&d->lock, NULL);
	*ret = &d->base;
	return 0;
}

/* lib/base: cleanup attributes, strings, safe number parsing, the error object, time and files.
 * Depends on nothing but libc. */
#pragma once

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

/* ---- attributes and small macros ---- */

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _warn_unused_result_ __attribute__((warn_unused_result))
#define _likely_(x) __builtin_expect(!!(x), 1)
#define _unlikely_(x) __builtin_expect(!!(x), 0)

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Take ownership of a pointer or fd out of a cleanup variable. */
#define TAKE_PTR(p)                      \
	({                               \
		__typeof__(p) _p_ = (p); \
		(p) = NULL;              \
		_p_;                     \
	})
#define TAKE_FD(fd)              \
	({                       \
		int _fd_ = (fd); \
		(fd) = -EBADF;   \
		_fd_;            \
	})

/* One cleanup helper per foreign type: DEFINE_CLEANUP(X509, X509_free) gives
 * `_cleanup_(X509_freep) X509 *x = NULL;`. The free function must accept NULL. */
#define DEFINE_CLEANUP(type, fn)           \
	static inline void fn##p(type **p) \
	{                                  \
		if (*p)                    \
			fn(*p);            \
	}

static inline void freep(void *p)
{
	free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

/* free() that returns NULL, for `p = mfree(p);`. */
static inline void *mfree(void *p)
{
	free(p);
	return NULL;
}

static inline void closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}
#define _cleanup_close_ _cleanup_(closep)

/* Close an fd and return -EBADF, for `fd = safe_close(fd);`. */
int safe_close(int fd);

/* Wipe and free a secret string; accepts NULL. */
void free_secret(char *s);
static inline void free_secretp(char **p)
{
	free_secret(*p);
}
#define _cleanup_secret_ _cleanup_(free_secretp)

/* ---- strings ---- */

bool str_empty(const char *s);
bool str_eq(const char *a, const char *b); /* NULL-safe */
bool str_startswith(const char *s, const char *prefix);
bool str_endswith(const char *s, const char *suffix);
/* malloc'd printf; NULL on out of memory. */
char *str_printf(const char *fmt, ...) _printf_(1, 2);
char *str_vprintf(const char *fmt, va_list ap) _printf_(1, 0);
/* strdup that maps NULL to NULL. */
char *str_dup(const char *s);
/* Replace *p with a copy of s (s may be NULL). Returns 0 or -ENOMEM. */
int str_set(char **p, const char *s);
/* Replace *ret_msg (when ret_msg is non-NULL) with a formatted message; returns -err (err given
 * positive or negative), for validators: `return str_set_message(ret_msg, EINVAL, "...")`. */
int str_set_message(char **ret_msg, int err, const char *fmt, ...) _printf_(3, 4);
/* Bounded copy that always NUL-terminates; returns -ENAMETOOLONG on truncation. */
int str_copy(char *dst, size_t dst_size, const char *src);
/* UTF-8 encoding of a Unicode scalar value into 1..4 bytes; returns the length, or -EINVAL for
 * a surrogate or a value above U+10FFFF. */
int utf8_encode(uint32_t cp, uint8_t out[4]);
/* Lower-case hex of a byte string into a malloc'd string. */
char *hex_encode(const void *data, size_t len);
/* The same into out, which holds 2 * len + 1 bytes. */
void hex_encode_into(const void *data, size_t len, char *out);
/* The value of one hex digit (either case), or -1. */
int hex_digit_value(char c);
/* Decode exactly n bytes from the slen characters at s (slen must be 2 * n): -EINVAL otherwise
 * or on a non-hex digit. */
int hex_decode_exact(const char *s, size_t slen, void *out, size_t n);

/* NULL-terminated string vectors. */
void strv_free(char **v);
static inline void strv_freep(char ***p)
{
	strv_free(*p);
}
#define _cleanup_strv_free_ _cleanup_(strv_freep)
size_t strv_length(char *const *v);
/* Split s at each character in seps; empty items are dropped when drop_empty. */
int strv_split(const char *s, const char *seps, bool drop_empty, char ***ret);

/* ---- growable byte buffer with a hard limit ---- */

struct buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};
void buf_done(struct buf *b);
/* Make room for n more bytes; -EMSGSIZE if len+n would exceed max (0 = no limit). */
int buf_reserve(struct buf *b, size_t n, size_t max);
int buf_append(struct buf *b, const void *data, size_t n, size_t max);
/* RFC 3986: A-Z a-z 0-9 - . _ ~ */
bool url_char_unreserved(uint8_t c);
/* Append data percent-encoded: every byte but the unreserved ones (and '/' with keep_slash)
 * becomes %XX in upper-case hex. max as for buf_append. */
int buf_append_percent_encoded(struct buf *b, const void *data, size_t len, bool keep_slash,
			       size_t max);
int buf_printf(struct buf *b, const char *fmt, ...) _printf_(2, 3);
/* Drop the first n bytes. */
void buf_consume(struct buf *b, size_t n);

/* ---- safe number parsing: whole string must be consumed; -EINVAL or -ERANGE ---- */

int parse_i64(const char *s, int64_t *ret);
int parse_u64(const char *s, uint64_t *ret);
int parse_i32(const char *s, int32_t *ret);
int parse_u32(const char *s, uint32_t *ret);
int parse_port(const char *s, uint16_t *ret); /* 1..65535 */

/* A non-blocking TCP listener (SO_REUSEADDR, backlog 128) on an IPv4 or IPv6 literal and port
 * (0: ephemeral); *ret_port is the port bound. -EINVAL for an address that is not a literal. */
int socket_listen_tcp(const char *address, uint16_t port, int *ret_fd, uint16_t *ret_port);
/* Go strconv.ParseBool forms: 1 t T TRUE true True / 0 f F FALSE false False. */
int parse_bool(const char *s, bool *ret);
/* Go time.ParseDuration: "300ms", "1.5h", "2h45m", "-1s", "0". Units ns us µs ms s m h. */
int parse_duration(const char *s, int64_t *ret_ns);

/* ---- time ---- */

#define NSEC_PER_USEC 1000LL
#define NSEC_PER_MSEC 1000000LL
#define NSEC_PER_SEC 1000000000LL
#define USEC_PER_SEC 1000000LL

int64_t now_ns(void);          /* CLOCK_MONOTONIC */
int64_t now_realtime_ns(void); /* CLOCK_REALTIME */

/* ---- errors with detail (cloud, attestation) ---- */

struct pp_error {
	int err;          /* positive errno class of the failure */
	int status;       /* HTTP status or other numeric status, 0 if none */
	char *code;       /* service error code, e.g. "InvalidParameterValue"; may be NULL */
	char *message;    /* human-readable message, never NULL once set */
	char *request_id; /* may be NULL */
};

void pp_error_free(struct pp_error *e);
static inline void pp_error_freep(struct pp_error **p)
{
	pp_error_free(*p);
}
#define _cleanup_pp_error_ _cleanup_(pp_error_freep)

/* If reterr is non-NULL and *reterr is NULL, store a new error with the formatted message.
 * Always returns -err (err given positive or negative). An existing *reterr is kept, so the
 * innermost failure wins. */
int pp_error_set(struct pp_error **reterr, int err, const char *fmt, ...) _printf_(3, 4);
/* Prefix the message of an existing error: "<prefix>: <old>". Returns -e->err or -EINVAL. */
int pp_error_prefix(struct pp_error **reterr, const char *fmt, ...) _printf_(2, 3);
/* Add a cloud's detail to an existing error: the HTTP status (when > 0), and the error code and
 * request id unless the error already has them (the innermost failure wins). No-op without an
 * error. */
void pp_error_add_detail(struct pp_error **reterr, int status, const char *code,
			 const char *request_id);
/* The message or strerror(-r) when there is no detail. */
const char *pp_error_message(const struct pp_error *e, int r);

/* ---- files ---- */

/* Create a directory and missing parents. */
int mkdir_p(const char *path, mode_t mode);
/* Write data to path atomically: temp file in the same directory, fsync, rename, fsync dir. */
int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);
/* Read a whole file, failing with -EFBIG above max_bytes. *ret is NUL-terminated. */
int read_file_bounded(const char *path, size_t max_bytes, char **ret, size_t *ret_len);
/* Remove a file tree; missing is success. */
int rm_rf(const char *path);
/* Write all bytes to a blocking fd, retrying on EINTR and short writes. */
int write_all(int fd, const void *data, size_t len);
/* Read exactly len bytes; -EPIPE on early EOF. */
int read_all(int fd, void *data, size_t len);
/* Set O_NONBLOCK and FD_CLOEXEC. */
int fd_set_nonblock(int fd, bool nonblock);

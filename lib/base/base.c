/* lib/base: small helpers every other module builds on. */
#include "base.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

int safe_close(int fd)
{
	if (fd >= 0) {
		int saved = errno;
		close(fd);
		errno = saved;
	}
	return -EBADF;
}

void free_secret(char *s)
{
	if (!s)
		return;
	/* explicit_bzero is not optimised away. */
	explicit_bzero(s, strlen(s));
	free(s);
}

/* ---- strings ---- */

bool str_empty(const char *s)
{
	return !s || !*s;
}

bool str_eq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

bool str_startswith(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool str_endswith(const char *s, const char *suffix)
{
	size_t l = strlen(s), m = strlen(suffix);
	return l >= m && memcmp(s + l - m, suffix, m) == 0;
}

char *str_vprintf(const char *fmt, va_list ap)
{
	char *s = NULL;
	if (vasprintf(&s, fmt, ap) < 0)
		return NULL;
	return s;
}

char *str_printf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = str_vprintf(fmt, ap);
	va_end(ap);
	return s;
}

char *str_dup(const char *s)
{
	return s ? strdup(s) : NULL;
}

int str_set(char **p, const char *s)
{
	char *n = NULL;
	if (s) {
		n = strdup(s);
		if (!n)
			return -ENOMEM;
	}
	free(*p);
	*p = n;
	return 0;
}

int str_set_message(char **ret_msg, int err, const char *fmt, ...)
{
	if (ret_msg) {
		va_list ap;
		va_start(ap, fmt);
		free(*ret_msg);
		*ret_msg = str_vprintf(fmt, ap);
		va_end(ap);
	}
	return err > 0 ? -err : err;
}

int str_copy(char *dst, size_t dst_size, const char *src)
{
	if (dst_size == 0)
		return -ENAMETOOLONG;
	size_t l = strlen(src);
	if (l >= dst_size) {
		memcpy(dst, src, dst_size - 1);
		dst[dst_size - 1] = 0;
		return -ENAMETOOLONG;
	}
	memcpy(dst, src, l + 1);
	return 0;
}

int utf8_encode(uint32_t cp, uint8_t out[4])
{
	if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return -EINVAL;
	if (cp < 0x80) {
		out[0] = (uint8_t)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (uint8_t)(0xc0 | cp >> 6);
		out[1] = (uint8_t)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (uint8_t)(0xe0 | cp >> 12);
		out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (uint8_t)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (uint8_t)(0xf0 | cp >> 18);
	out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (uint8_t)(0x80 | (cp & 0x3f));
	return 4;
}

void hex_encode_into(const void *data, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	const uint8_t *p = data;
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[len * 2] = 0;
}

char *hex_encode(const void *data, size_t len)
{
	char *s = malloc(len * 2 + 1);
	if (s)
		hex_encode_into(data, len, s);
	return s;
}

int hex_digit_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int hex_decode_exact(const char *s, size_t slen, void *out, size_t n)
{
	uint8_t *o = out;
	if (!s || slen != 2 * n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		int hi = hex_digit_value(s[2 * i]), lo = hex_digit_value(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		o[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

void strv_free(char **v)
{
	if (!v)
		return;
	for (char **i = v; *i; i++)
		free(*i);
	free(v);
}

size_t strv_length(char *const *v)
{
	size_t n = 0;
	while (v && v[n])
		n++;
	return n;
}

int strv_split(const char *s, const char *seps, bool drop_empty, char ***ret)
{
	size_t n = 0, cap = 4;
	char **v = calloc(cap, sizeof(char *));
	if (!v)
		return -ENOMEM;
	const char *p = s;
	for (;;) {
		size_t l = strcspn(p, seps);
		if (l > 0 || !drop_empty) {
			if (n + 2 > cap) {
				char **nv = reallocarray(v, cap * 2, sizeof(char *));
				if (!nv) {
					strv_free(v);
					return -ENOMEM;
				}
				cap *= 2;
				v = nv;
			}
			v[n] = strndup(p, l);
			if (!v[n]) {
				strv_free(v);
				return -ENOMEM;
			}
			v[++n] = NULL;
		}
		if (!p[l])
			break;
		p += l + 1;
	}
	*ret = v;
	return 0;
}

/* ---- buffer ---- */

void buf_done(struct buf *b)
{
	free(b->data);
	*b = (struct buf){0};
}

int buf_reserve(struct buf *b, size_t n, size_t max)
{
	if (n > SIZE_MAX - b->len)
		return -EMSGSIZE;
	size_t need = b->len + n;
	if (max && need > max)
		return -EMSGSIZE;
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	if (max && cap > max)
		cap = max;
	uint8_t *d = realloc(b->data, cap);
	if (!d)
		return -ENOMEM;
	b->data = d;
	b->cap = cap;
	return 0;
}

int buf_append(struct buf *b, const void *data, size_t n, size_t max)
{
	int r = buf_reserve(b, n, max);
	if (r < 0)
		return r;
	if (n)
		memcpy(b->data + b->len, data, n);
	b->len += n;
	return 0;
}

bool url_char_unreserved(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

int buf_append_percent_encoded(struct buf *b, const void *data, size_t len, bool keep_slash,
			       size_t max)
{
	static const char hex[] = "0123456789ABCDEF";
	const uint8_t *p = data;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = p[i];
		char e[3] = {'%', hex[c >> 4], hex[c & 15]};
		bool plain = url_char_unreserved(c) || (keep_slash && c == '/');
		int r = buf_append(b, plain ? (const void *)&p[i] : e, plain ? 1 : 3, max);
		if (r < 0)
			return r;
	}
	return 0;
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	_cleanup_free_ char *s = str_vprintf(fmt, ap);
	va_end(ap);
	if (!s)
		return -ENOMEM;
	return buf_append(b, s, strlen(s), 0);
}

void buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

/* ---- numbers ---- */

int parse_i64(const char *s, int64_t *ret)
{
	if (str_empty(s) || *s == ' ' || *s == '\t' || *s == '+')
		return -EINVAL;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	if (*end || end == s)
		return -EINVAL;
	*ret = v;
	return 0;
}

int parse_u64(const char *s, uint64_t *ret)
{
	if (str_empty(s) || !(*s >= '0' && *s <= '9'))
		return -EINVAL;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	if (*end)
		return -EINVAL;
	*ret = v;
	return 0;
}

int parse_i32(const char *s, int32_t *ret)
{
	int64_t v;
	int r = parse_i64(s, &v);
	if (r < 0)
		return r;
	if (v < INT32_MIN || v > INT32_MAX)
		return -ERANGE;
	*ret = (int32_t)v;
	return 0;
}

int parse_u32(const char *s, uint32_t *ret)
{
	uint64_t v;
	int r = parse_u64(s, &v);
	if (r < 0)
		return r;
	if (v > UINT32_MAX)
		return -ERANGE;
	*ret = (uint32_t)v;
	return 0;
}

int parse_port(const char *s, uint16_t *ret)
{
	uint32_t v;
	int r = parse_u32(s, &v);
	if (r < 0)
		return r;
	if (v == 0 || v > 65535)
		return -ERANGE;
	*ret = (uint16_t)v;
	return 0;
}

int parse_bool(const char *s, bool *ret)
{
	static const char *const t[] = {"1", "t", "T", "TRUE", "true", "True"};
	static const char *const f[] = {"0", "f", "F", "FALSE", "false", "False"};
	if (!s)
		return -EINVAL;
	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		if (strcmp(s, t[i]) == 0) {
			*ret = true;
			return 0;
		}
		if (strcmp(s, f[i]) == 0) {
			*ret = false;
			return 0;
		}
	}
	return -EINVAL;
}

int parse_duration(const char *s, int64_t *ret_ns)
{
	static const struct {
		const char *unit;
		int64_t ns;
	} units[] = {
	    {"ns", 1},
	    {"us", NSEC_PER_USEC},
	    {"\xc2\xb5s", NSEC_PER_USEC}, /* micro sign */
	    {"\xce\xbcs", NSEC_PER_USEC}, /* Greek mu */
	    {"ms", NSEC_PER_MSEC},
	    {"s", NSEC_PER_SEC},
	    {"m", 60 * NSEC_PER_SEC},
	    {"h", 3600 * NSEC_PER_SEC},
	};
	if (str_empty(s))
		return -EINVAL;
	bool neg = false;
	if (*s == '-' || *s == '+') {
		neg = *s == '-';
		s++;
	}
	if (strcmp(s, "0") == 0) {
		*ret_ns = 0;
		return 0;
	}
	if (!*s)
		return -EINVAL;
	long double total = 0;
	while (*s) {
		/* number: digits, optional fraction */
		const char *start = s;
		long double v = 0;
		while (*s >= '0' && *s <= '9')
			v = v * 10 + (*s++ - '0');
		bool digits = s > start;
		if (*s == '.') {
			s++;
			long double scale = 0.1L;
			const char *fs = s;
			while (*s >= '0' && *s <= '9') {
				v += (*s++ - '0') * scale;
				scale /= 10;
			}
			digits = digits || s > fs;
		}
		if (!digits)
			return -EINVAL;
		size_t best = 0;
		int64_t mult = 0;
		for (size_t i = 0; i < ELEMENTSOF(units); i++) {
			size_t l = strlen(units[i].unit);
			if (strncmp(s, units[i].unit, l) == 0 && l > best) {
				best = l;
				mult = units[i].ns;
			}
		}
		if (!best)
			return -EINVAL; /* Go requires a unit */
		s += best;
		total += v * mult;
		if (total > (long double)INT64_MAX)
			return -ERANGE;
	}
	*ret_ns = (int64_t)(neg ? -total : total);
	return 0;
}

/* ---- time ---- */

static int64_t clock_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (int64_t)ts.tv_sec * NSEC_PER_SEC + ts.tv_nsec;
}

int64_t now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

int64_t now_realtime_ns(void)
{
	return clock_ns(CLOCK_REALTIME);
}

/* ---- errors ---- */

void pp_error_free(struct pp_error *e)
{
	if (!e)
		return;
	free(e->code);
	free(e->message);
	free(e->request_id);
	free(e);
}

int pp_error_set(struct pp_error **reterr, int err, const char *fmt, ...)
{
	if (err < 0)
		err = -err;
	if (err == 0)
		err = EIO;
	if (!reterr || *reterr)
		return -err;
	struct pp_error *e = calloc(1, sizeof(*e));
	if (!e)
		return -err;
	va_list ap;
	va_start(ap, fmt);
	e->message = str_vprintf(fmt, ap);
	va_end(ap);
	if (!e->message) {
		free(e);
		return -err;
	}
	e->err = err;
	*reterr = e;
	return -err;
}

int pp_error_prefix(struct pp_error **reterr, const char *fmt, ...)
{
	if (!reterr || !*reterr)
		return -EINVAL;
	struct pp_error *e = *reterr;
	va_list ap;
	va_start(ap, fmt);
	_cleanup_free_ char *p = str_vprintf(fmt, ap);
	va_end(ap);
	if (p) {
		char *m = str_printf("%s: %s", p, e->message);
		if (m) {
			free(e->message);
			e->message = m;
		}
	}
	return -e->err;
}

void pp_error_add_detail(struct pp_error **reterr, int status, const char *code,
			 const char *request_id)
{
	struct pp_error *e = reterr ? *reterr : NULL;
	if (!e)
		return;
	if (status > 0)
		e->status = status;
	if (!e->code && code)
		e->code = strdup(code);
	if (!e->request_id && request_id)
		e->request_id = strdup(request_id);
}

const char *pp_error_message(const struct pp_error *e, int r)
{
	if (e && e->message)
		return e->message;
	return strerror(r < 0 ? -r : r);
}

/* ---- files ---- */

int mkdir_p(const char *path, mode_t mode)
{
	_cleanup_free_ char *p = strdup(path);
	if (!p)
		return -ENOMEM;
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	if (mkdir(p, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int write_all(int fd, const void *data, size_t len)
{
	const uint8_t *p = data;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int read_all(int fd, void *data, size_t len)
{
	uint8_t *p = data;
	while (len > 0) {
		ssize_t n = read(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	_cleanup_free_ char *tmp = str_printf("%s.tmp.%d", path, (int)getpid());
	if (!tmp)
		return -ENOMEM;
	_cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	int r = fchmod(fd, mode) < 0 ? -errno : 0;
	if (r == 0)
		r = write_all(fd, data, len);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		return r;
	}
	/* Make the rename itself durable. */
	_cleanup_free_ char *dir = strdup(path);
	if (!dir)
		return 0;
	char *slash = strrchr(dir, '/');
	if (slash) {
		if (slash == dir)
			slash[1] = 0;
		else
			*slash = 0;
		_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0)
			(void)fsync(dfd);
	}
	return 0;
}

int read_file_bounded(const char *path, size_t max_bytes, char **ret, size_t *ret_len)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* Read at most max_bytes + 1 so a file over the limit is detected without reading it
	 * all, and a file of exactly max_bytes is accepted. */
	struct buf b = {0};
	int r = 0;
	for (;;) {
		size_t want = MIN((size_t)65536, max_bytes + 1 - b.len);
		r = buf_reserve(&b, want + 1, max_bytes + 2);
		if (r < 0)
			break;
		ssize_t n = read(fd, b.data + b.len, want);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		b.len += (size_t)n;
		if (b.len > max_bytes) {
			r = -EFBIG;
			break;
		}
	}
	if (r < 0) {
		buf_done(&b);
		return r;
	}
	if (!b.data && buf_reserve(&b, 1, 0) < 0)
		return -ENOMEM;
	b.data[b.len] = 0;
	if (ret_len)
		*ret_len = b.len;
	*ret = (char *)b.data;
	return 0;
}

int rm_rf(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
	DIR *d = opendir(path);
	if (!d)
		return -errno;
	int r = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		_cleanup_free_ char *sub = str_printf("%s/%s", path, de->d_name);
		if (!sub) {
			r = -ENOMEM;
			break;
		}
		int k = rm_rf(sub);
		if (k < 0 && r == 0)
			r = k;
	}
	closedir(d);
	if (rmdir(path) < 0 && errno != ENOENT && r == 0)
		r = -errno;
	return r;
}

int fd_set_nonblock(int fd, bool nonblock)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -errno;
	int nfl = nonblock ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
	if (nfl != fl && fcntl(fd, F_SETFL, nfl) < 0)
		return -errno;
	int fdf = fcntl(fd, F_GETFD);
	if (fdf >= 0 && !(fdf & FD_CLOEXEC))
		(void)fcntl(fd, F_SETFD, fdf | FD_CLOEXEC);
	return 0;
}

int socket_listen_tcp(const char *address, uint16_t port, int *ret_fd, uint16_t *ret_port)
{
	struct sockaddr_storage ss = {0};
	socklen_t sl;
	struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

	if (inet_pton(AF_INET, address, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons(port);
		sl = sizeof(*in4);
	} else if (inet_pton(AF_INET6, address, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		sl = sizeof(*in6);
	} else
		return -EINVAL;

	_cleanup_close_ int fd =
	    socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 128) < 0)
		return -errno;
	sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return -errno;
	*ret_port = ntohs(ss.ss_family == AF_INET ? in4->sin_port : in6->sin6_port);
	*ret_fd = TAKE_FD(fd);
	return 0;
}

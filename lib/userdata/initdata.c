/* lib/userdata: initdata (WIRE.md 5.4): base64 of gzip of a small TOML document, its strict
 * reader, and its digest. */
#include "userdata/userdata.h"

#include <openssl/evp.h>
#include <zlib.h>

static int set_msg(char **ret_msg, int r, const char *fmt, ...) _printf_(3, 4);
static int set_msg(char **ret_msg, int r, const char *fmt, ...)
{
	if (ret_msg && !*ret_msg) {
		va_list ap;
		va_start(ap, fmt);
		*ret_msg = str_vprintf(fmt, ap);
		va_end(ap);
	}
	return r;
}

/* ---- encoding ---- */

static int gunzip(const uint8_t *in, size_t in_len, size_t max_out, struct buf *out, char **ret_msg)
{
	z_stream z = {0};
	if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
		return -ENOMEM;
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)in_len;
	int r = 0, zr;
	do {
		if ((r = buf_reserve(out, 16384, 0)) < 0)
			break;
		size_t room = MIN(out->cap - out->len, max_out + 1 - out->len);
		z.next_out = out->data + out->len;
		z.avail_out = (uInt)room;
		zr = inflate(&z, Z_NO_FLUSH);
		out->len += room - z.avail_out;
		if (out->len > max_out) {
			r = set_msg(ret_msg, -EFBIG,
				    "initdata is larger than %zu bytes when decompressed", max_out);
			break;
		}
		if (zr == Z_STREAM_END) {
			if (z.avail_in != 0)
				r = set_msg(ret_msg, -EINVAL,
					    "initdata has data after the gzip stream");
			break;
		}
		if (zr != Z_OK || (z.avail_in == 0 && z.avail_out != 0)) {
			r = set_msg(ret_msg, -EINVAL, "initdata is not a valid gzip stream%s%s",
				    z.msg ? ": " : "", z.msg ? z.msg : "");
			break;
		}
	} while (true);
	inflateEnd(&z);
	return r;
}

int initdata_decode(const char *encoded, size_t len, char **ret_toml, size_t *ret_len,
		    char **ret_msg)
{
	if (len > INITDATA_MAX_ENCODED_BYTES)
		return set_msg(ret_msg, -EFBIG, "encoded initdata is larger than %d bytes",
			       INITDATA_MAX_ENCODED_BYTES);
	_cleanup_free_ uint8_t *gz = NULL;
	size_t gz_len;
	int r = userdata_base64_decode(encoded, len, 0, &gz, &gz_len);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return set_msg(ret_msg, -EINVAL, "initdata is not valid base64");
	struct buf out = {0};
	r = gunzip(gz, gz_len, INITDATA_MAX_TOML_BYTES, &out, ret_msg);
	if (r >= 0)
		r = buf_append(&out, "", 1, 0);
	if (r < 0) {
		buf_done(&out);
		return r;
	}
	*ret_len = out.len - 1;
	*ret_toml = (char *)out.data;
	return 0;
}

int initdata_encode(const void *toml, size_t len, char **ret_encoded)
{
	if (len > INITDATA_MAX_TOML_BYTES)
		return -EFBIG;
	z_stream z = {0};
	if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8,
			 Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	/* deflateBound does not count the gzip wrapper's header and trailer. */
	size_t cap = deflateBound(&z, (uLong)len) + 64;
	_cleanup_free_ uint8_t *gz = malloc(cap);
	if (!gz) {
		deflateEnd(&z);
		return -ENOMEM;
	}
	z.next_in = (Bytef *)toml;
	z.avail_in = (uInt)len;
	z.next_out = gz;
	z.avail_out = (uInt)cap;
	int zr = deflate(&z, Z_FINISH);
	size_t gz_len = cap - z.avail_out;
	deflateEnd(&z);
	if (zr != Z_STREAM_END)
		return -EIO;
	return userdata_base64_encode(gz, gz_len, ret_encoded);
}

/* ---- TOML subset ---- */

struct toml {
	const char *p, *end;
	size_t line;
	char **ret_msg;
};

static int tfail(struct toml *t, const char *fmt, ...) _printf_(2, 3);
static int tfail(struct toml *t, const char *fmt, ...)
{
	if (t->ret_msg && !*t->ret_msg) {
		va_list ap;
		va_start(ap, fmt);
		_cleanup_free_ char *m = str_vprintf(fmt, ap);
		va_end(ap);
		*t->ret_msg = str_printf("initdata TOML line %zu: %s", t->line, m ? m : "");
	}
	return -EINVAL;
}

static bool at(struct toml *t, const char *s)
{
	size_t n = strlen(s);
	return (size_t)(t->end - t->p) >= n && memcmp(t->p, s, n) == 0;
}

static void skip_ws(struct toml *t)
{
	while (t->p < t->end && (*t->p == ' ' || *t->p == '\t'))
		t->p++;
}

/* A newline (LF or CRLF) at the cursor: consume it and return true. */
static bool eat_newline(struct toml *t)
{
	if (at(t, "\n")) {
		t->p++;
		t->line++;
		return true;
	}
	if (at(t, "\r\n")) {
		t->p += 2;
		t->line++;
		return true;
	}
	return false;
}

static bool is_control(unsigned char c)
{
	return (c < 0x20 && c != '\t') || c == 0x7f;
}

/* Whitespace, an optional comment, then a newline or the end. */
static int end_of_line(struct toml *t)
{
	skip_ws(t);
	if (at(t, "#")) {
		while (t->p < t->end && *t->p != '\n' && !at(t, "\r\n")) {
			if (is_control((unsigned char)*t->p))
				return tfail(t, "control character in a comment");
			t->p++;
		}
	}
	if (t->p == t->end || eat_newline(t))
		return 0;
	return tfail(t, "unexpected '%c' after a value", *t->p);
}

static int put_utf8(struct buf *b, uint32_t cp)
{
	uint8_t u[4];
	int n = utf8_encode(cp, u);
	if (n < 0)
		return -EBADMSG;
	return buf_append(b, u, (size_t)n, INITDATA_MAX_TOML_BYTES);
}

static int escape(struct toml *t, struct buf *b)
{
	/* The cursor is just after the backslash. */
	if (t->p == t->end)
		return tfail(t, "unterminated escape");
	char c = *t->p++;
	static const char from[] = "btnfr\"\\", to[] = "\b\t\n\f\r\"\\";
	const char *k = c ? strchr(from, c) : NULL;
	if (k)
		return buf_append(b, &to[k - from], 1, INITDATA_MAX_TOML_BYTES);
	if (c != 'u' && c != 'U')
		return tfail(t, "invalid escape \\%c", c);
	size_t n = c == 'u' ? 4 : 8;
	if ((size_t)(t->end - t->p) < n)
		return tfail(t, "short \\%c escape", c);
	uint32_t cp = 0;
	for (size_t i = 0; i < n; i++) {
		char h = t->p[i];
		int v = h >= '0' && h <= '9'   ? h - '0'
			: h >= 'a' && h <= 'f' ? h - 'a' + 10
			: h >= 'A' && h <= 'F' ? h - 'A' + 10
					       : -1;
		if (v < 0)
			return tfail(t, "invalid \\%c escape", c);
		cp = cp << 4 | (uint32_t)v;
	}
	t->p += n;
	if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return tfail(t, "escape is not a Unicode scalar value");
	return put_utf8(b, cp);
}

/* Multi-line strings: ''' (literal) or """ (basic). The cursor is at the opening delimiter. */
static int multiline(struct toml *t, bool basic, struct buf *b)
{
	const char q = basic ? '"' : '\'';
	t->p += 3;
	/* A newline right after the opening delimiter is not part of the string. */
	eat_newline(t);
	for (;;) {
		if (t->p == t->end)
			return tfail(t, "unterminated multi-line string");
		if (*t->p == q) {
			size_t run = 0;
			while (t->p + run < t->end && t->p[run] == q)
				run++;
			if (run >= 3) {
				/* Up to two quotes may end the content right before the delimiter. */
				if (run > 5)
					return tfail(t, "too many quotes closing a string");
				int r = buf_append(b, t->p, run - 3, INITDATA_MAX_TOML_BYTES);
				t->p += run;
				return r;
			}
			int r = buf_append(b, t->p, run, INITDATA_MAX_TOML_BYTES);
			if (r < 0)
				return r;
			t->p += run;
			continue;
		}
		if (basic && *t->p == '\\') {
			/* A backslash at the end of a line trims the newline and following
			 * whitespace. */
			const char *s = t->p + 1;
			while (s < t->end && (*s == ' ' || *s == '\t'))
				s++;
			if (s < t->end &&
			    (*s == '\n' || (*s == '\r' && s + 1 < t->end && s[1] == '\n'))) {
				t->p = s;
				while (t->p < t->end) {
					if (eat_newline(t))
						continue;
					if (*t->p == ' ' || *t->p == '\t')
						t->p++;
					else
						break;
				}
				continue;
			}
			t->p++;
			int r = escape(t, b);
			if (r < 0)
				return r;
			continue;
		}
		if (at(t, "\n") || at(t, "\r\n")) {
			const char *s = t->p;
			eat_newline(t);
			int r = buf_append(b, s, (size_t)(t->p - s), INITDATA_MAX_TOML_BYTES);
			if (r < 0)
				return r;
			continue;
		}
		if (is_control((unsigned char)*t->p))
			return tfail(t, "control character in a string");
		int r = buf_append(b, t->p, 1, INITDATA_MAX_TOML_BYTES);
		if (r < 0)
			return r;
		t->p++;
	}
}

static int single_line(struct toml *t, bool basic, struct buf *b)
{
	const char q = basic ? '"' : '\'';
	t->p++;
	for (;;) {
		if (t->p == t->end || *t->p == '\n' || *t->p == '\r')
			return tfail(t, "unterminated string");
		char c = *t->p;
		if (c == q) {
			t->p++;
			return 0;
		}
		if (basic && c == '\\') {
			t->p++;
			int r = escape(t, b);
			if (r < 0)
				return r;
			continue;
		}
		if (is_control((unsigned char)c))
			return tfail(t, "control character in a string");
		int r = buf_append(b, &c, 1, INITDATA_MAX_TOML_BYTES);
		if (r < 0)
			return r;
		t->p++;
	}
}

/* A string value; *ret is NUL-terminated. */
static int string_value(struct toml *t, bool allow_multiline, char **ret, size_t *ret_len)
{
	struct buf b = {0};
	int r;
	if (allow_multiline && at(t, "\"\"\""))
		r = multiline(t, true, &b);
	else if (allow_multiline && at(t, "'''"))
		r = multiline(t, false, &b);
	else if (at(t, "\""))
		r = single_line(t, true, &b);
	else if (at(t, "'"))
		r = single_line(t, false, &b);
	else
		r = tfail(t, "expected a string value");
	if (r >= 0)
		r = buf_append(&b, "", 1, 0);
	if (r < 0) {
		buf_done(&b);
		return r;
	}
	*ret_len = b.len - 1;
	*ret = (char *)b.data;
	return 0;
}

static bool is_bare(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

static int key(struct toml *t, char **ret)
{
	size_t len;
	int r;
	if (at(t, "\"") || at(t, "'")) {
		if ((r = string_value(t, false, ret, &len)) < 0)
			return r;
		if (strlen(*ret) != len) {
			free(TAKE_PTR(*ret));
			return tfail(t, "a key contains a NUL character");
		}
	} else {
		const char *s = t->p;
		while (t->p < t->end && is_bare(*t->p))
			t->p++;
		if (t->p == s)
			return tfail(t, "expected a key");
		if (!(*ret = strndup(s, (size_t)(t->p - s))))
			return -ENOMEM;
	}
	skip_ws(t);
	if (at(t, ".")) {
		free(TAKE_PTR(*ret));
		return tfail(t, "dotted keys are not supported");
	}
	return 0;
}

void initdata_done(struct initdata *d)
{
	if (!d)
		return;
	free(d->algorithm);
	free(d->version);
	for (size_t i = 0; i < d->n_data; i++) {
		free(d->data[i].name);
		free(d->data[i].value);
	}
	free(d->data);
	*d = (struct initdata){0};
}

static int toml_line(struct toml *t, struct initdata *d, bool *in_data)
{
	int r;
	if (at(t, "[")) {
		if (at(t, "[["))
			return tfail(t, "arrays of tables are not supported");
		t->p++;
		skip_ws(t);
		_cleanup_free_ char *name = NULL;
		if ((r = key(t, &name)) < 0)
			return r;
		if (!at(t, "]"))
			return tfail(t, "expected ']'");
		t->p++;
		if (!str_eq(name, "data"))
			return tfail(t, "unknown table [%.64s]", name);
		if (*in_data)
			return tfail(t, "duplicate table [data]");
		*in_data = true;
		return end_of_line(t);
	}
	_cleanup_free_ char *k = NULL;
	if ((r = key(t, &k)) < 0)
		return r;
	if (!at(t, "="))
		return tfail(t, "expected '=' after key \"%.64s\"", k);
	t->p++;
	skip_ws(t);
	_cleanup_free_ char *v = NULL;
	size_t v_len;
	if ((r = string_value(t, true, &v, &v_len)) < 0)
		return r;
	if (*in_data) {
		for (size_t i = 0; i < d->n_data; i++)
			if (str_eq(d->data[i].name, k))
				return tfail(t, "duplicate key \"%.64s\" in [data]", k);
		struct initdata_entry *n = reallocarray(d->data, d->n_data + 1, sizeof(*d->data));
		if (!n)
			return -ENOMEM;
		d->data = n;
		d->data[d->n_data++] = (struct initdata_entry){
		    .name = TAKE_PTR(k), .value = TAKE_PTR(v), .value_len = v_len};
	} else {
		char **slot = str_eq(k, "algorithm") ? &d->algorithm
			      : str_eq(k, "version") ? &d->version
						     : NULL;
		if (!slot)
			return tfail(t, "unknown key \"%.64s\"", k);
		if (*slot)
			return tfail(t, "duplicate key \"%s\"", k);
		if (strlen(v) != v_len)
			return tfail(t, "\"%s\" contains a NUL character", k);
		*slot = TAKE_PTR(v);
	}
	return end_of_line(t);
}

int initdata_parse_toml(const char *toml, size_t len, struct initdata *ret, char **ret_msg)
{
	*ret = (struct initdata){0};
	if (ret_msg)
		*ret_msg = NULL;
	if (len > INITDATA_MAX_TOML_BYTES)
		return set_msg(ret_msg, -EFBIG, "initdata TOML is larger than %d bytes",
			       INITDATA_MAX_TOML_BYTES);
	struct toml t = {.p = toml, .end = toml + len, .line = 1, .ret_msg = ret_msg};
	struct initdata d = {0};
	bool in_data = false;
	int r = 0;
	while (r >= 0) {
		skip_ws(&t);
		if (t.p == t.end)
			break;
		if (eat_newline(&t))
			continue;
		if (at(&t, "#"))
			r = end_of_line(&t);
		else
			r = toml_line(&t, &d, &in_data);
	}
	if (r >= 0 && !d.algorithm)
		r = tfail(&t, "missing key \"algorithm\"");
	if (r >= 0 && !d.version)
		r = tfail(&t, "missing key \"version\"");
	if (r < 0) {
		initdata_done(&d);
		return r;
	}
	*ret = d;
	return 0;
}

/* ---- digest ---- */

int initdata_digest(const char *algorithm, const void *data, size_t len, char **ret_hex,
		    char **ret_msg)
{
	const EVP_MD *md = str_eq(algorithm, "sha256")   ? EVP_sha256()
			   : str_eq(algorithm, "sha384") ? EVP_sha384()
			   : str_eq(algorithm, "sha512") ? EVP_sha512()
							 : NULL;
	if (!md)
		return set_msg(ret_msg, -ENOTSUP,
			       "Error creating initdata digest, algorithm %s is not supported",
			       algorithm ? algorithm : "");
	uint8_t out[EVP_MAX_MD_SIZE];
	unsigned n = 0;
	if (!EVP_Digest(data, len, out, &n, md, NULL))
		return -EIO;
	char *hex = hex_encode(out, n);
	if (!hex)
		return -ENOMEM;
	*ret_hex = hex;
	return 0;
}

/* ---- for the adaptor ---- */

static int check_toml(const char *toml, size_t len, char **ret_digest, char **ret_msg)
{
	_cleanup_(initdata_donep) struct initdata d = {0};
	int r = initdata_parse_toml(toml, len, &d, ret_msg);
	if (r < 0)
		return r;
	_cleanup_free_ char *hex = NULL;
	if ((r = initdata_digest(d.algorithm, toml, len, &hex, ret_msg)) < 0)
		return r;
	if (ret_digest)
		*ret_digest = TAKE_PTR(hex);
	return 0;
}

int initdata_validate_encoded(const char *encoded, size_t len, char **ret_digest, char **ret_msg)
{
	if (ret_msg)
		*ret_msg = NULL;
	_cleanup_free_ char *toml = NULL;
	size_t toml_len;
	int r = initdata_decode(encoded, len, &toml, &toml_len, ret_msg);
	if (r < 0)
		return r;
	return check_toml(toml, toml_len, ret_digest, ret_msg);
}

int initdata_encode_annotation(const char *value, size_t len, char **ret_encoded, char **ret_msg)
{
	if (ret_msg)
		*ret_msg = NULL;
	/* Plain TOML always has a space, '=' or a quote that base64 cannot contain, so an
	 * already encoded value is recognised without ambiguity. */
	_cleanup_free_ char *toml = NULL;
	size_t toml_len;
	_cleanup_free_ char *ignored = NULL;
	int r = initdata_decode(value, len, &toml, &toml_len, &ignored);
	if (r == -ENOMEM)
		return r;
	if (r >= 0) {
		if ((r = check_toml(toml, toml_len, NULL, ret_msg)) < 0)
			return r;
		char *copy = malloc(len + 1);
		if (!copy)
			return -ENOMEM;
		size_t o = 0;
		for (size_t i = 0; i < len; i++)
			if (value[i] != '\n' && value[i] != '\r')
				copy[o++] = value[i];
		copy[o] = 0;
		*ret_encoded = copy;
		return 0;
	}
	if ((r = check_toml(value, len, NULL, ret_msg)) < 0)
		return r;
	return initdata_encode(value, len, ret_encoded);
}

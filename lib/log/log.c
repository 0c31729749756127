/* lib/log: formats one log line (text or JSON) into a bounded buffer and writes it to stderr with
 * a single write(2), so lines from several threads never interleave mid-line. */
#include "log/log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <strings.h>
#include <time.h>

/* Bounds keep a hostile message from costing more than a fixed amount of stack; the reserve
 * guarantees the fields after the message and the closing brace always fit. */
#define MSG_MAX_BYTES 8192
#define FIELD_MAX_BYTES 256
#define LINE_MAX_BYTES (6 * MSG_MAX_BYTES + 8192)
#define LINE_RESERVE_BYTES (3 * (6 * FIELD_MAX_BYTES + 32) + 6 * 128 + 64)

static _Atomic int max_level = LOG_LEVEL_INFO;
static _Atomic int out_format = LOG_FORMAT_TEXT;
static char program[64];

void log_set_level(enum log_level level)
{
	atomic_store(&max_level, (int)level);
}

enum log_level log_get_level(void)
{
	return (enum log_level)atomic_load(&max_level);
}

void log_set_format(enum log_format format)
{
	atomic_store(&out_format, (int)format);
}

void log_set_program(const char *name)
{
	/* Set once at start-up, before any other thread logs. */
	(void)str_copy(program, sizeof(program), name ? name : "");
}

int log_parse_format(const char *s, enum log_format *ret)
{
	if (!s)
		return -EINVAL;
	if (strcasecmp(s, "text") == 0)
		*ret = LOG_FORMAT_TEXT;
	else if (strcasecmp(s, "json") == 0)
		*ret = LOG_FORMAT_JSON;
	else
		return -EINVAL;
	return 0;
}

int log_parse_level(const char *s, enum log_level *ret)
{
	static const struct {
		const char *name;
		enum log_level level;
	} names[] = {
	    {"error", LOG_LEVEL_ERROR}, {"warning", LOG_LEVEL_WARNING}, {"warn", LOG_LEVEL_WARNING},
	    {"info", LOG_LEVEL_INFO},   {"debug", LOG_LEVEL_DEBUG},
	};
	if (!s)
		return -EINVAL;
	for (size_t i = 0; i < ELEMENTSOF(names); i++)
		if (strcasecmp(s, names[i].name) == 0) {
			*ret = names[i].level;
			return 0;
		}
	return -EINVAL;
}

static const char *level_name(enum log_level level, bool upper)
{
	switch (level) {
	case LOG_LEVEL_ERROR:
		return upper ? "ERROR" : "error";
	case LOG_LEVEL_WARNING:
		return upper ? "WARNING" : "warning";
	case LOG_LEVEL_INFO:
		return upper ? "INFO" : "info";
	case LOG_LEVEL_DEBUG:
		return upper ? "DEBUG" : "debug";
	}
	return upper ? "UNKNOWN" : "unknown";
}

/* Does fmt contain a %m conversion (flags, width or precision allowed before it)? */
static bool format_has_m(const char *fmt)
{
	for (const char *p = fmt; *p; p++) {
		if (*p != '%')
			continue;
		p++;
		if (*p == '%')
			continue;
		while (*p && strchr("#0- +'I123456789.*$hlLqjzt", *p))
			p++;
		if (*p == 'm')
			return true;
		if (!*p)
			break;
	}
	return false;
}

/* ---- bounded line builder ---- */

struct out {
	char *buf;
	size_t len;
	size_t cap;
};

static void out_raw(struct out *o, const char *s, size_t n, size_t limit)
{
	if (limit > o->cap)
		limit = o->cap;
	if (o->len >= limit)
		return;
	n = MIN(n, limit - o->len);
	memcpy(o->buf + o->len, s, n);
	o->len += n;
}

static void out_str(struct out *o, const char *s, size_t limit)
{
	out_raw(o, s, strlen(s), limit);
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if it is not valid. */
static size_t utf8_valid_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	uint32_t cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* JSON string contents; invalid UTF-8 becomes U+FFFD so strict parsers accept every line.
 * Stops at a character boundary rather than emitting half an escape. */
static void out_json_escaped(struct out *o, const char *s, size_t max_in, size_t limit)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strnlen(s, max_in);
	if (limit > o->cap)
		limit = o->cap;
	for (size_t i = 0; i < n;) {
		char esc[8];
		const char *piece = esc;
		size_t plen, consumed = 1;
		unsigned char c = p[i];
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			plen = 2;
		} else if (c == '\n') {
			piece = "\\n";
			plen = 2;
		} else if (c == '\r') {
			piece = "\\r";
			plen = 2;
		} else if (c == '\t') {
			piece = "\\t";
			plen = 2;
		} else if (c < 0x20 || c == 0x7f) {
			plen = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", c);
		} else if (c < 0x80) {
			piece = (const char *)p + i;
			plen = 1;
		} else {
			size_t l = utf8_valid_len(p + i, n - i);
			if (l == 0) {
				piece = "\\ufffd";
				plen = 6;
			} else {
				piece = (const char *)p + i;
				plen = l;
				consumed = l;
			}
		}
		if (o->len + plen > limit)
			return;
		memcpy(o->buf + o->len, piece, plen);
		o->len += plen;
		i += consumed;
	}
}

/* Text lines stay one line each: control characters are shown escaped. */
static void out_text_escaped(struct out *o, const char *s, size_t max_in, size_t limit)
{
	size_t n = strnlen(s, max_in);
	if (limit > o->cap)
		limit = o->cap;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[8];
		size_t plen = 1;
		if (c == '\n') {
			memcpy(esc, "\\n", 2);
			plen = 2;
		} else if (c == '\r') {
			memcpy(esc, "\\r", 2);
			plen = 2;
		} else if ((c < 0x20 && c != '\t') || c == 0x7f) {
			plen = (size_t)snprintf(esc, sizeof(esc), "\\x%02x", c);
		} else {
			esc[0] = (char)c;
		}
		if (o->len + plen > limit)
			return;
		memcpy(o->buf + o->len, esc, plen);
		o->len += plen;
	}
}

static void out_json_field(struct out *o, const char *key, const char *value, size_t max_in,
			   size_t limit)
{
	out_str(o, ",\"", limit);
	out_str(o, key, limit);
	out_str(o, "\":\"", limit);
	out_json_escaped(o, value, max_in, limit);
	out_str(o, "\"", limit);
}

static void format_time(char *buf, size_t size)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, size - n, ".%03dZ", (int)(ts.tv_nsec / NSEC_PER_MSEC));
}

static void build_json(struct out *o, enum log_level level, const char *err_text,
		       const struct log_fields *f, const char *msg)
{
	char ts[64];
	format_time(ts, sizeof(ts));
	size_t body = o->cap - LINE_RESERVE_BYTES;
	out_str(o, "{\"time\":\"", body);
	out_str(o, ts, body);
	out_str(o, "\",\"level\":\"", body);
	out_str(o, level_name(level, false), body);
	out_str(o, "\",\"msg\":\"", body);
	out_json_escaped(o, msg, MSG_MAX_BYTES, body);
	out_str(o, "\"", o->cap);
	if (f && f->sandbox_id)
		out_json_field(o, "sandbox_id", f->sandbox_id, FIELD_MAX_BYTES, o->cap);
	if (f && f->pod)
		out_json_field(o, "pod", f->pod, FIELD_MAX_BYTES, o->cap);
	if (f && f->instance)
		out_json_field(o, "instance", f->instance, FIELD_MAX_BYTES, o->cap);
	if (err_text)
		out_json_field(o, "error", err_text, 128, o->cap);
	out_str(o, "}\n", o->cap);
}

static void build_text(struct out *o, enum log_level level, const char *err_text,
		       const struct log_fields *f, const char *msg)
{
	size_t body = o->cap - 1; /* room for the newline */
	out_str(o, level_name(level, true), body);
	out_str(o, " ", body);
	if (program[0]) {
		out_str(o, program, body);
		out_str(o, ": ", body);
	}
	if (f && (f->sandbox_id || f->pod || f->instance)) {
		static const char *const keys[] = {"sandbox=", "pod=", "instance="};
		const char *values[] = {f->sandbox_id, f->pod, f->instance};
		bool first = true;
		out_str(o, "[", body);
		for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
			if (!values[i])
				continue;
			if (!first)
				out_str(o, " ", body);
			first = false;
			out_str(o, keys[i], body);
			out_text_escaped(o, values[i], FIELD_MAX_BYTES, body);
		}
		out_str(o, "] ", body);
	}
	out_text_escaped(o, msg, MSG_MAX_BYTES, body);
	if (err_text) {
		out_str(o, ": ", body);
		out_str(o, err_text, body);
	}
	out_str(o, "\n", o->cap);
}

int log_emit(enum log_level level, int error, const struct log_fields *fields, const char *fmt, ...)
{
	if ((int)level > atomic_load(&max_level))
		return error;
	int saved_errno = errno;
	int e = error == INT32_MIN ? INT32_MAX : (error < 0 ? -error : error);

	char msg[MSG_MAX_BYTES];
	va_list ap;
	va_start(ap, fmt);
	errno = e; /* glibc expands %m from errno */
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		(void)str_copy(msg, sizeof(msg), "(unformattable log message)");

	char errbuf[128];
	const char *err_text = NULL;
	bool json = atomic_load(&out_format) == LOG_FORMAT_JSON;
	/* In JSON the error is its own field even when %m already put it into the message. */
	if (e != 0 && (json || !format_has_m(fmt)))
		err_text = strerror_r(e, errbuf, sizeof(errbuf));

	char line[LINE_MAX_BYTES];
	struct out o = {.buf = line, .cap = sizeof(line)};
	if (json)
		build_json(&o, level, err_text, fields, msg);
	else
		build_text(&o, level, err_text, fields, msg);

	while (write(STDERR_FILENO, line, o.len) < 0 && errno == EINTR)
		;
	errno = saved_errno;
	return error;
}

int log_validate_format_option(const void *field, char **ret_msg)
{
	const char *s = *(char *const *)field;
	enum log_format f;
	if (s && log_parse_format(s, &f) < 0)
		return str_set_message(ret_msg, EINVAL,
				       "invalid log format \"%s\": want text or json", s);
	return 0;
}

int log_validate_level_option(const void *field, char **ret_msg)
{
	const char *s = *(char *const *)field;
	enum log_level l;
	if (s && log_parse_level(s, &l) < 0)
		return str_set_message(
		    ret_msg, EINVAL, "invalid log level \"%s\": want error, warning, info or debug",
		    s);
	return 0;
}

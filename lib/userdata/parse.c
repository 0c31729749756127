/* lib/userdata: the strict cloud-config reader used in the pod VM (WIRE.md 5.3), and base64. */
#include "userdata/userdata.h"

#include <yaml.h>

struct reader {
	yaml_parser_t parser;
	yaml_event_t event;
	bool have_event;
	char **ret_msg;
};

static int fail(struct reader *rd, const char *fmt, ...) _printf_(2, 3);
static int fail(struct reader *rd, const char *fmt, ...)
{
	if (rd->ret_msg && !*rd->ret_msg) {
		va_list ap;
		va_start(ap, fmt);
		_cleanup_free_ char *m = str_vprintf(fmt, ap);
		va_end(ap);
		if (rd->have_event && m)
			*rd->ret_msg = str_printf("line %zu: %s", rd->event.start_mark.line + 1, m);
		else
			*rd->ret_msg = TAKE_PTR(m);
	}
	return -EINVAL;
}

static const char *event_name(yaml_event_type_t t)
{
	switch (t) {
	case YAML_STREAM_END_EVENT:
		return "end of input";
	case YAML_DOCUMENT_START_EVENT:
		return "a further document";
	case YAML_ALIAS_EVENT:
		return "an alias";
	case YAML_SCALAR_EVENT:
		return "a scalar";
	case YAML_SEQUENCE_START_EVENT:
		return "a sequence";
	case YAML_MAPPING_START_EVENT:
		return "a mapping";
	default:
		return "an unexpected token";
	}
}

/* Fetch the next event, refusing the YAML features this format has no use for. */
static int next(struct reader *rd)
{
	if (rd->have_event) {
		yaml_event_delete(&rd->event);
		rd->have_event = false;
	}
	if (!yaml_parser_parse(&rd->parser, &rd->event)) {
		if (rd->parser.error == YAML_MEMORY_ERROR)
			return -ENOMEM;
		return fail(rd, "line %zu: invalid YAML: %s", rd->parser.problem_mark.line + 1,
			    rd->parser.problem ? rd->parser.problem : "syntax error");
	}
	rd->have_event = true;
	const yaml_event_t *e = &rd->event;
	const yaml_char_t *anchor = NULL, *tag = NULL;
	switch (e->type) {
	case YAML_ALIAS_EVENT:
		return fail(rd, "aliases are not allowed");
	case YAML_SCALAR_EVENT:
		anchor = e->data.scalar.anchor;
		tag = e->data.scalar.tag;
		break;
	case YAML_SEQUENCE_START_EVENT:
		anchor = e->data.sequence_start.anchor;
		tag = e->data.sequence_start.tag;
		break;
	case YAML_MAPPING_START_EVENT:
		anchor = e->data.mapping_start.anchor;
		tag = e->data.mapping_start.tag;
		break;
	case YAML_DOCUMENT_START_EVENT:
		if (e->data.document_start.version_directive ||
		    e->data.document_start.tag_directives.start !=
			e->data.document_start.tag_directives.end)
			return fail(rd, "YAML directives are not allowed");
		break;
	default:
		break;
	}
	if (anchor)
		return fail(rd, "anchors are not allowed");
	if (tag)
		return fail(rd, "tags are not allowed");
	return 0;
}

static int expect(struct reader *rd, yaml_event_type_t type, const char *what)
{
	int r = next(rd);
	if (r < 0)
		return r;
	if (rd->event.type != type)
		return fail(rd, "%s must be %s, not %s", what, event_name(type),
			    event_name(rd->event.type));
	return 0;
}

static bool scalar_is_null(const yaml_event_t *e)
{
	if (e->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	const char *v = (const char *)e->data.scalar.value;
	return e->data.scalar.length == 0 || str_eq(v, "~") || str_eq(v, "null") ||
	       str_eq(v, "Null") || str_eq(v, "NULL");
}

/* Read a mapping key (after MAPPING_START or a value); *ret_key NULL at MAPPING_END. */
static int next_key(struct reader *rd, const char **ret_key)
{
	int r = next(rd);
	if (r < 0)
		return r;
	if (rd->event.type == YAML_MAPPING_END_EVENT) {
		*ret_key = NULL;
		return 0;
	}
	if (rd->event.type != YAML_SCALAR_EVENT)
		return fail(rd, "a mapping key must be a string, not %s",
			    event_name(rd->event.type));
	*ret_key = (const char *)rd->event.data.scalar.value;
	if (strlen(*ret_key) != rd->event.data.scalar.length)
		return fail(rd, "a mapping key contains a NUL byte");
	return 0;
}

static int read_string(struct reader *rd, const char *what, bool null_ok, char **ret,
		       size_t *ret_len, bool *ret_null)
{
	int r = next(rd);
	if (r < 0)
		return r;
	if (rd->event.type != YAML_SCALAR_EVENT)
		return fail(rd, "%s must be a string, not %s", what, event_name(rd->event.type));
	bool is_null = scalar_is_null(&rd->event);
	if (is_null && !null_ok)
		return fail(rd, "%s must be a string, not null", what);
	size_t len = is_null ? 0 : rd->event.data.scalar.length;
	char *s = malloc(len + 1);
	if (!s)
		return -ENOMEM;
	memcpy(s, rd->event.data.scalar.value, len);
	s[len] = 0;
	*ret = s;
	*ret_len = len;
	if (ret_null)
		*ret_null = is_null;
	return 0;
}

static int read_entry(struct reader *rd, struct userdata_entry *ent, size_t index)
{
	bool seen_path = false, seen_content = false;
	int r;
	for (;;) {
		const char *key;
		if ((r = next_key(rd, &key)) < 0)
			return r;
		if (!key)
			break;
		if (str_eq(key, "path")) {
			if (seen_path)
				return fail(rd, "write_files[%zu]: duplicate key \"path\"", index);
			seen_path = true;
			size_t len;
			if ((r = read_string(rd, "path", false, &ent->path, &len, NULL)) < 0)
				return r;
			if (len == 0 || strlen(ent->path) != len)
				return fail(rd, "write_files[%zu]: path is empty or contains NUL",
					    index);
		} else if (str_eq(key, "content")) {
			if (seen_content)
				return fail(rd, "write_files[%zu]: duplicate key \"content\"",
					    index);
			seen_content = true;
			bool is_null;
			if ((r = read_string(rd, "content", true, &ent->content, &ent->content_len,
					     &is_null)) < 0)
				return r;
			ent->has_content = true;
		} else
			return fail(rd, "write_files[%zu]: unknown key \"%.64s\"", index, key);
	}
	if (!seen_path)
		return fail(rd, "write_files[%zu]: missing path", index);
	return 0;
}

static int read_files(struct reader *rd, struct userdata_doc *doc)
{
	int r = expect(rd, YAML_SEQUENCE_START_EVENT, "write_files");
	if (r < 0)
		return r;
	for (;;) {
		if ((r = next(rd)) < 0)
			return r;
		if (rd->event.type == YAML_SEQUENCE_END_EVENT)
			return 0;
		if (rd->event.type != YAML_MAPPING_START_EVENT)
			return fail(rd, "write_files[%zu] must be a mapping, not %s", doc->n_files,
				    event_name(rd->event.type));
		struct userdata_entry *n =
		    reallocarray(doc->files, doc->n_files + 1, sizeof(*doc->files));
		if (!n)
			return -ENOMEM;
		doc->files = n;
		doc->files[doc->n_files] = (struct userdata_entry){0};
		doc->n_files++;
		if ((r = read_entry(rd, &doc->files[doc->n_files - 1], doc->n_files - 1)) < 0)
			return r;
	}
}

static int read_document(struct reader *rd, struct userdata_doc *doc)
{
	int r = expect(rd, YAML_STREAM_START_EVENT, "the input");
	if (r < 0)
		return r;
	if ((r = next(rd)) < 0)
		return r;
	if (rd->event.type == YAML_STREAM_END_EVENT)
		return fail(rd, "empty document");
	if (rd->event.type != YAML_DOCUMENT_START_EVENT)
		return fail(rd, "expected a document");
	if ((r = expect(rd, YAML_MAPPING_START_EVENT, "the document")) < 0)
		return r;
	bool seen = false;
	for (;;) {
		const char *key;
		if ((r = next_key(rd, &key)) < 0)
			return r;
		if (!key)
			break;
		if (!str_eq(key, "write_files"))
			return fail(rd, "unknown key \"%.64s\"", key);
		if (seen)
			return fail(rd, "duplicate key \"write_files\"");
		seen = true;
		if ((r = read_files(rd, doc)) < 0)
			return r;
	}
	if ((r = expect(rd, YAML_DOCUMENT_END_EVENT, "the end of the document")) < 0)
		return r;
	return expect(rd, YAML_STREAM_END_EVENT, "what follows the document");
}

void userdata_doc_done(struct userdata_doc *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n_files; i++) {
		free(d->files[i].path);
		free(d->files[i].content);
	}
	free(d->files);
	*d = (struct userdata_doc){0};
}

int userdata_parse_cloud_config(const char *data, size_t len, struct userdata_doc *ret,
				char **ret_msg)
{
	*ret = (struct userdata_doc){0};
	if (ret_msg)
		*ret_msg = NULL;
	if (len > USERDATA_MAX_BYTES) {
		if (ret_msg)
			*ret_msg = str_printf("user data is %zu bytes, more than the limit of %d",
					      len, USERDATA_MAX_BYTES);
		return -EFBIG;
	}
	struct reader rd = {.ret_msg = ret_msg};
	if (!yaml_parser_initialize(&rd.parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&rd.parser, (const unsigned char *)data, len);
	yaml_parser_set_encoding(&rd.parser, YAML_UTF8_ENCODING);
	struct userdata_doc doc = {0};
	int r = read_document(&rd, &doc);
	if (rd.have_event)
		yaml_event_delete(&rd.event);
	yaml_parser_delete(&rd.parser);
	if (r < 0) {
		userdata_doc_done(&doc);
		if (r == -EINVAL && ret_msg && !*ret_msg)
			*ret_msg = strdup("invalid cloud-config");
		return r;
	}
	*ret = doc;
	return 0;
}

/* ---- base64 ---- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int userdata_base64_decode(const char *s, size_t len, size_t max_bytes, uint8_t **ret,
			   size_t *ret_len)
{
	size_t n_chars = 0;
	for (size_t i = 0; i < len; i++)
		if (s[i] != '\n' && s[i] != '\r')
			n_chars++;
	if (n_chars % 4 != 0)
		return -EINVAL;
	size_t max_out = n_chars / 4 * 3;
	if (max_bytes && max_out > max_bytes + 2)
		return -EFBIG;
	_cleanup_free_ uint8_t *out = malloc(max_out + 1);
	if (!out)
		return -ENOMEM;
	size_t o = 0, seen = 0;
	int quad[4], q = 0, pad = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '\n' || c == '\r')
			continue;
		seen++;
		if (c == '=') {
			/* Padding only in the last two positions of the last quantum. */
			if (seen <= n_chars - 2 || q < 2)
				return -EINVAL;
			pad++;
			quad[q++] = 0;
		} else {
			int v = b64_value(c);
			if (v < 0 || pad > 0)
				return -EINVAL;
			quad[q++] = v;
		}
		if (q == 4) {
			uint32_t bits = (uint32_t)quad[0] << 18 | (uint32_t)quad[1] << 12 |
					(uint32_t)quad[2] << 6 | (uint32_t)quad[3];
			out[o++] = (uint8_t)(bits >> 16);
			if (pad < 2)
				out[o++] = (uint8_t)(bits >> 8);
			if (pad < 1)
				out[o++] = (uint8_t)bits;
			q = 0;
		}
	}
	if (max_bytes && o > max_bytes)
		return -EFBIG;
	out[o] = 0;
	*ret = TAKE_PTR(out);
	*ret_len = o;
	return 0;
}

int userdata_base64_encode(const void *data, size_t len, char **ret)
{
	const uint8_t *d = data;
	if (len > (SIZE_MAX - 1) / 4 * 3 - 3)
		return -EFBIG;
	char *out = malloc((len + 2) / 3 * 4 + 1);
	if (!out)
		return -ENOMEM;
	size_t o = 0;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t bits = (uint32_t)d[i] << 16;
		if (i + 1 < len)
			bits |= (uint32_t)d[i + 1] << 8;
		if (i + 2 < len)
			bits |= d[i + 2];
		out[o++] = B64[(bits >> 18) & 63];
		out[o++] = B64[(bits >> 12) & 63];
		out[o++] = i + 1 < len ? B64[(bits >> 6) & 63] : '=';
		out[o++] = i + 2 < len ? B64[bits & 63] : '=';
	}
	out[o] = 0;
	*ret = out;
	return 0;
}

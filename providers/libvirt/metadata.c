/* providers/libvirt: the <peerpod:instance> metadata element of our domains, written with
 * escaping and read back by a strict parser. The Makefile does not link libxml2, and the format
 * is ours and flat (one element, attributes only), so a small bounded parser is enough; it is
 * fuzzed (test/fuzz/fuzz-libvirt-metadata.c) because anyone with access to libvirtd can edit
 * the element. */
#include "libvirt-internal.h"

static const struct {
	const char *attr;
	size_t offset;
} fields[] = {
    {"sandbox-id", offsetof(struct libvirt_metadata, sandbox_id)},
    {"node", offsetof(struct libvirt_metadata, node_name)},
    {"pod", offsetof(struct libvirt_metadata, pod_name)},
    {"namespace", offsetof(struct libvirt_metadata, pod_namespace)},
    {"mac", offsetof(struct libvirt_metadata, mac)},
    {"root-volume", offsetof(struct libvirt_metadata, root_volume)},
    {"cidata-volume", offsetof(struct libvirt_metadata, cidata_volume)},
};

static char **field(struct libvirt_metadata *m, size_t i)
{
	return (char **)((char *)m + fields[i].offset);
}

void libvirt_metadata_done(struct libvirt_metadata *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < ELEMENTSOF(fields); i++)
		free(*field(m, i));
	*m = (struct libvirt_metadata){0};
}

static int escape_attr(struct buf *b, const char *s)
{
	int r = 0;
	for (; s && *s && r >= 0; s++) {
		unsigned char c = (unsigned char)*s;
		switch (c) {
		case '&':
			r = buf_printf(b, "&amp;");
			break;
		case '<':
			r = buf_printf(b, "&lt;");
			break;
		case '>':
			r = buf_printf(b, "&gt;");
			break;
		case '"':
			r = buf_printf(b, "&quot;");
			break;
		case '\'':
			r = buf_printf(b, "&apos;");
			break;
		default:
			/* attribute value normalisation would turn raw tabs and newlines into
			 * spaces, so they travel as character references */
			if (c < 0x20)
				r = buf_printf(b, "&#%u;", c);
			else
				r = buf_append(b, &c, 1, 0);
		}
	}
	return r;
}

char *libvirt_metadata_format(const struct libvirt_metadata *m)
{
	struct buf b = {0};
	int r = buf_printf(&b, "<instance");
	for (size_t i = 0; i < ELEMENTSOF(fields) && r >= 0; i++) {
		const char *v = *field((struct libvirt_metadata *)m, i);
		if (!v)
			continue;
		r = buf_printf(&b, " %s=\"", fields[i].attr);
		if (r >= 0)
			r = escape_attr(&b, v);
		if (r >= 0)
			r = buf_printf(&b, "\"");
	}
	if (r >= 0)
		r = buf_printf(&b, "/>");
	if (r >= 0)
		r = buf_append(&b, "", 1, 0);
	if (r < 0) {
		buf_done(&b);
		return NULL;
	}
	return (char *)b.data;
}

/* ---- parser ---- */

struct cursor {
	const char *p, *end;
};

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void skip_space(struct cursor *c)
{
	while (c->p < c->end && is_space(*c->p))
		c->p++;
}

static bool is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '.' || c == ':';
}

/* A name of at most 64 characters; returns its length, 0 if none. */
static size_t take_name(struct cursor *c, const char **ret)
{
	const char *s = c->p;
	while (c->p < c->end && is_name_char(*c->p) && c->p - s <= 64)
		c->p++;
	*ret = s;
	if (c->p - s > 64)
		return 0;
	return (size_t)(c->p - s);
}

static bool take(struct cursor *c, const char *lit)
{
	size_t n = strlen(lit);
	if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0)
		return false;
	c->p += n;
	return true;
}

/* The element must be "instance", optionally prefixed "<prefix>:". */
static bool element_name_ok(const char *s, size_t n)
{
	const char *colon = memchr(s, ':', n);
	if (colon) {
		if (colon == s || memchr(colon + 1, ':', n - (size_t)(colon + 1 - s)))
			return false;
		n -= (size_t)(colon + 1 - s);
		s = colon + 1;
	}
	return n == 8 && memcmp(s, "instance", 8) == 0;
}

static int put_utf8(struct buf *b, uint32_t cp)
{
	if (cp == 0)
		return -EBADMSG;
	uint8_t u[4];
	int n = utf8_encode(cp, u);
	if (n < 0)
		return -EBADMSG;
	return buf_append(b, u, (size_t)n, LIBVIRT_METADATA_VALUE_MAX + 1);
}

static int decode_reference(struct cursor *c, struct buf *b)
{
	static const struct {
		const char *name;
		char c;
	} named[] = {{"amp;", '&'}, {"lt;", '<'}, {"gt;", '>'}, {"quot;", '"'}, {"apos;", '\''}};
	for (size_t i = 0; i < ELEMENTSOF(named); i++)
		if (take(c, named[i].name))
			return buf_append(b, &named[i].c, 1, LIBVIRT_METADATA_VALUE_MAX + 1);
	if (!take(c, "#"))
		return -EBADMSG;
	bool hex = take(c, "x");
	uint32_t cp = 0;
	unsigned digits = 0;
	for (; c->p < c->end && *c->p != ';'; c->p++, digits++) {
		char d = *c->p;
		unsigned v;
		if (d >= '0' && d <= '9')
			v = (unsigned)(d - '0');
		else if (hex && d >= 'a' && d <= 'f')
			v = (unsigned)(d - 'a' + 10);
		else if (hex && d >= 'A' && d <= 'F')
			v = (unsigned)(d - 'A' + 10);
		else
			return -EBADMSG;
		if (digits >= 8)
			return -EBADMSG;
		cp = cp * (hex ? 16 : 10) + v;
	}
	if (digits == 0 || !take(c, ";"))
		return -EBADMSG;
	return put_utf8(b, cp);
}

static int take_value(struct cursor *c, char **ret)
{
	if (c->p >= c->end || (*c->p != '"' && *c->p != '\''))
		return -EBADMSG;
	char quote = *c->p++;
	struct buf b = {0};
	int r = 0;
	while (r >= 0) {
		if (c->p >= c->end) {
			r = -EBADMSG;
			break;
		}
		char ch = *c->p;
		if (ch == quote) {
			c->p++;
			break;
		}
		if (ch == '<' ||
		    (ch != '\t' && ch != '\n' && ch != '\r' && (unsigned char)ch < 0x20))
			r = -EBADMSG;
		else if (ch == '&') {
			c->p++;
			r = decode_reference(c, &b);
		} else {
			/* literal whitespace in attributes normalises to a space */
			char out = is_space(ch) ? ' ' : ch;
			r = buf_append(&b, &out, 1, LIBVIRT_METADATA_VALUE_MAX + 1);
			c->p++;
		}
	}
	if (r >= 0)
		r = buf_append(&b, "", 1, LIBVIRT_METADATA_VALUE_MAX + 1);
	if (r < 0) {
		buf_done(&b);
		return r == -ENOMEM ? r : -EBADMSG;
	}
	if (memchr(b.data, 0, b.len - 1)) {
		buf_done(&b);
		return -EBADMSG;
	}
	*ret = (char *)b.data;
	return 0;
}

static int parse(struct cursor *c, struct libvirt_metadata *m)
{
	skip_space(c);
	if (!take(c, "<"))
		return -EBADMSG;
	const char *ename;
	size_t elen = take_name(c, &ename);
	if (!element_name_ok(ename, elen))
		return -EBADMSG;
	for (;;) {
		bool spaced = c->p < c->end && is_space(*c->p);
		skip_space(c);
		if (take(c, "/>"))
			break;
		if (take(c, ">")) {
			/* only an immediate end tag: no children, no text */
			skip_space(c);
			const char *cname;
			if (!take(c, "</"))
				return -EBADMSG;
			size_t clen = take_name(c, &cname);
			if (clen != elen || memcmp(cname, ename, elen) != 0)
				return -EBADMSG;
			skip_space(c);
			if (!take(c, ">"))
				return -EBADMSG;
			break;
		}
		if (!spaced)
			return -EBADMSG;
		const char *aname;
		size_t alen = take_name(c, &aname);
		if (alen == 0)
			return -EBADMSG;
		skip_space(c);
		if (!take(c, "="))
			return -EBADMSG;
		skip_space(c);
		_cleanup_free_ char *value = NULL;
		int r = take_value(c, &value);
		if (r < 0)
			return r;
		if ((alen == 5 && memcmp(aname, "xmlns", 5) == 0) ||
		    (alen > 6 && memcmp(aname, "xmlns:", 6) == 0))
			continue; /* a namespace declaration, if libvirt ever includes one */
		size_t i;
		for (i = 0; i < ELEMENTSOF(fields); i++)
			if (strlen(fields[i].attr) == alen &&
			    memcmp(fields[i].attr, aname, alen) == 0)
				break;
		if (i == ELEMENTSOF(fields) || *field(m, i))
			return -EBADMSG; /* unknown or duplicate */
		*field(m, i) = TAKE_PTR(value);
	}
	skip_space(c);
	return c->p == c->end ? 0 : -EBADMSG;
}

int libvirt_metadata_parse(const char *xml, size_t len, struct libvirt_metadata *ret)
{
	if (!xml || len > LIBVIRT_METADATA_MAX_BYTES)
		return -EBADMSG;
	struct libvirt_metadata m = {0};
	struct cursor c = {xml, xml + len};
	int r = parse(&c, &m);
	if (r < 0) {
		libvirt_metadata_done(&m);
		return r;
	}
	*ret = m;
	return 0;
}

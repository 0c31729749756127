/* adaptor/naming.c: pod names, instance names and sandbox id checks (WIRE.md 2.2, 4.4). */
#include "adaptor.h"

#define INSTANCE_NAME_MAX 63
#define INSTANCE_POD_PART_MAX (INSTANCE_NAME_MAX - 5 - 10) /* "podvm" and "-<sid8>" and "-" */

/* Lower-case, then every code point outside [a-z0-9-] becomes one '-'. A multi-byte UTF-8
 * sequence is one code point, so it becomes a single '-'. */
static char *sanitize(const char *s)
{
	size_t l = strlen(s);
	char *out = malloc(l + 1);
	if (!out)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < l;) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') {
			out[o++] = (char)c;
			i++;
			continue;
		}
		out[o++] = '-';
		i++;
		/* skip UTF-8 continuation bytes of the same code point */
		if (c >= 0xc0)
			while (i < l && ((unsigned char)s[i] & 0xc0) == 0x80)
				i++;
	}
	out[o] = 0;
	return out;
}

char *naming_instance_name(const char *pod_name, const char *sandbox_id)
{
	_cleanup_free_ char *pod = sanitize(pod_name);
	_cleanup_free_ char *sid = sanitize(sandbox_id);
	if (!pod || !sid)
		return NULL;
	if (strlen(sid) > 8)
		sid[8] = 0;
	if (strlen(pod) > INSTANCE_POD_PART_MAX)
		pod[INSTANCE_POD_PART_MAX] = 0;
	return str_printf("podvm-%s-%s", pod, sid);
}

char *naming_pod_name(const char *sandbox_name)
{
	if (!sandbox_name)
		return NULL;
	/* CRI-O: k8s_<pod>_<ns>_<uid>_<n> */
	if (str_startswith(sandbox_name, "k8s_")) {
		const char *p = sandbox_name + 4;
		return strndup(p, strcspn(p, "_"));
	}
	return strdup(sandbox_name);
}

bool naming_sandbox_id_valid(const char *sid)
{
	size_t l = sid ? strlen(sid) : 0;
	if (l == 0 || l > 128 || str_eq(sid, ".") || str_eq(sid, ".."))
		return false;
	for (size_t i = 0; i < l; i++) {
		char c = sid[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

unsigned naming_annotation_uint(const char *value)
{
	uint32_t v;
	if (!value || parse_u32(value, &v) < 0)
		return 0;
	return v;
}

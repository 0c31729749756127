/* agent-standin: the request log tests read back, one JSON object per line. */
#include "standin.h"

#include <fcntl.h>
#include <jansson.h>

int record_open(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	return fd < 0 ? -errno : fd;
}

/* Metadata comes from the client and may not be UTF-8; JSON strings must be. */
static json_t *string_lossy(const char *s)
{
	json_t *j = json_string(s ? s : "");
	if (j)
		return j;
	_cleanup_free_ char *copy = strdup(s);
	if (!copy)
		return NULL;
	for (char *p = copy; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	return json_string(copy);
}

int record_write(int fd, const char *service, const char *method, const uint8_t *payload,
		 size_t len, int64_t timeout_nano, const struct ttrpc_kv *md, size_t n_md)
{
	_cleanup_free_ char *hex = hex_encode(payload, len);
	_cleanup_(json_decrefp) json_t *metadata = json_array();
	if (!hex || !metadata)
		return -ENOMEM;

	for (size_t i = 0; i < n_md; i++) {
		json_t *pair =
		    json_pack("[oo]", string_lossy(md[i].key), string_lossy(md[i].value));
		if (!pair || json_array_append_new(metadata, pair) < 0)
			return -ENOMEM;
	}
	_cleanup_(json_decrefp) json_t *o = json_pack(
	    "{s:s, s:s, s:s, s:I, s:O}", "service", service, "method", method, "payload_hex", hex,
	    "timeout_nano", (json_int_t)timeout_nano, "metadata", metadata);
	if (!o)
		return -ENOMEM;
	_cleanup_free_ char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!line)
		return -ENOMEM;

	size_t n = strlen(line);
	line[n] = '\n';
	/* The NUL is overwritten; the length carries the line. */
	return write_all(fd, line, n + 1);
}

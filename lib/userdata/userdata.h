/* lib/userdata: the cloud-config document the adaptor hands to a pod VM (WIRE.md 5.1). The
 * reader side (process-user-data) comes with the pod VM image. */
#pragma once

#include "base/base.h"

/* In-VM paths the adaptor writes (WIRE.md 5.1, 5.3). */
#define USERDATA_PATH_APF_JSON "/run/peerpod/apf.json"
#define USERDATA_PATH_AUTH_JSON "/run/peerpod/auth.json"
#define USERDATA_PATH_INITDATA "/run/peerpod/initdata"
#define USERDATA_PATH_SCRATCH_MARKER "/run/peerpod/scratch-space.marker"

struct userdata_file {
	const char *path;
	const char *content; /* NULL: an entry without a content line (e.g. the scratch marker) */
};

/* Render "#cloud-config\n\nwrite_files:\n  - path: ...\n    content: |\n      ...". Content is a
 * YAML literal block indented by 6 spaces; a missing final newline is added, since a literal
 * block always ends with one. Content lines must not need YAML escaping inside a literal block:
 * any byte is allowed except NUL and non-printable control characters other than tab, which
 * fail with -EINVAL. Paths must be absolute and plain (no newline, no leading space). */
int userdata_render_cloud_config(const struct userdata_file *files, size_t n_files, char **ret);

/* ---- reader side (process-user-data) ---- */

#define USERDATA_MAX_BYTES (256 * 1024)

struct userdata_entry {
	char *path;
	char *content; /* NUL-terminated; may contain NULs from "\0" escapes, see content_len */
	size_t content_len;
	bool has_content;
};

struct userdata_doc {
	struct userdata_entry *files;
	size_t n_files;
};

void userdata_doc_done(struct userdata_doc *d);
static inline void userdata_doc_donep(struct userdata_doc *d)
{
	userdata_doc_done(d);
}

/* Strictly parse a cloud-config document (WIRE.md 5.3): one YAML document whose root is a
 * mapping with at most the key write_files, a sequence of mappings with the keys path (required,
 * a non-empty string) and content (a string; null means empty). Unknown or duplicate keys, wrong
 * types, anchors, aliases, tags, directives and further documents are refused with -EINVAL and a
 * message in *ret_msg (malloc'd); input over USERDATA_MAX_BYTES gives -EFBIG. The
 * "#cloud-config" first line is a comment and optional. *ret is zeroed first. */
int userdata_parse_cloud_config(const char *data, size_t len, struct userdata_doc *ret,
				char **ret_msg);

/* Standard base64 (padded) decoding that skips CR and LF; -EINVAL on anything else and -EFBIG
 * when the output would exceed max_bytes. *ret is NUL-terminated (not counted). */
int userdata_base64_decode(const char *s, size_t len, size_t max_bytes, uint8_t **ret,
			   size_t *ret_len);
/* Standard base64 with padding and no line breaks. */
int userdata_base64_encode(const void *data, size_t len, char **ret);

/* ---- initdata (WIRE.md 5.4) ---- */

#define INITDATA_MAX_ENCODED_BYTES USERDATA_MAX_BYTES
#define INITDATA_MAX_TOML_BYTES (1024 * 1024)
/* The document used when none is given: 66 bytes, no final newline. */
#define INITDATA_DEFAULT_TOML \
	"algorithm = \"sha256\"\nversion = \"0.1.0\"\n\n[data]\n\"aa.toml\" = '''\n'''"
#define INITDATA_DEFAULT_SHA256 "adb48cc14fea9403d3d51f3b5f5068fd4d80445a14e94f1b3d5dbabaad66478d"

struct initdata_entry {
	char *name;
	char *value;
	size_t value_len;
};

struct initdata {
	char *algorithm;
	char *version;
	struct initdata_entry *data;
	size_t n_data;
};

void initdata_done(struct initdata *d);
static inline void initdata_donep(struct initdata *d)
{
	initdata_done(d);
}

/* base64 -> gunzip. *ret_toml is NUL-terminated; at most INITDATA_MAX_TOML_BYTES (-EFBIG).
 * -EINVAL with *ret_msg on malformed input. */
int initdata_decode(const char *encoded, size_t len, char **ret_toml, size_t *ret_len,
		    char **ret_msg);
/* gzip -> base64 (no line breaks). No validation: see initdata_encode_toml. */
int initdata_encode(const void *toml, size_t len, char **ret_encoded);

/* The strict TOML subset of initdata: top-level algorithm and version (basic or literal strings,
 * both required), then table [data] of "name" = string (basic, literal, multi-line basic or
 * multi-line literal). Comments and blank lines are allowed; anything else is -EINVAL with
 * *ret_msg. */
int initdata_parse_toml(const char *toml, size_t len, struct initdata *ret, char **ret_msg);

/* Lowercase hex digest of data with sha256, sha384 or sha512. Any other algorithm: -ENOTSUP and
 * *ret_msg = "Error creating initdata digest, algorithm <name> is not supported". */
int initdata_digest(const char *algorithm, const void *data, size_t len, char **ret_hex,
		    char **ret_msg);

/* For the adaptor. The cc_init_data annotation as plain TOML: check it parses and that its
 * algorithm is supported, then encode it for user data. An annotation that is already encoded
 * (base64 of gzip) is accepted too and checked the same way; *ret_encoded is then a normalised
 * copy (line breaks removed). */
int initdata_encode_annotation(const char *value, size_t len, char **ret_encoded, char **ret_msg);
/* Check an encoded document (the global INITDATA): decode, parse, digest. *ret_digest (may be
 * NULL) receives the lowercase hex digest. */
int initdata_validate_encoded(const char *encoded, size_t len, char **ret_digest, char **ret_msg);

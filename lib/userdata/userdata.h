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

/* lib/userdata: cloud-config rendering for pod VMs. */
#include "userdata/userdata.h"

static bool content_ok(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if ((*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7f)
			return false;
	return true;
}

static bool path_ok(const char *s)
{
	if (s[0] != '/')
		return false;
	for (const char *p = s; *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '\'' || *p == '"' || *p == '#' || *p == ':')
			return false;
	return true;
}

int userdata_render_cloud_config(const struct userdata_file *files, size_t n_files, char **ret)
{
	struct buf b = {0};
	int r = buf_printf(&b, "#cloud-config\n\nwrite_files:\n");
	for (size_t i = 0; r >= 0 && i < n_files; i++) {
		const struct userdata_file *f = &files[i];
		if (!path_ok(f->path) || (f->content && !content_ok(f->content))) {
			r = -EINVAL;
			break;
		}
		r = buf_printf(&b, "  - path: %s\n", f->path);
		if (r < 0 || !f->content)
			continue;
		r = buf_printf(&b, "    content: |\n");
		const char *line = f->content;
		while (r >= 0 && *line) {
			size_t l = strcspn(line, "\n");
			/* An empty line inside a literal block needs no indentation. */
			if (l == 0)
				r = buf_append(&b, "\n", 1, 0);
			else {
				r = buf_append(&b, "      ", 6, 0);
				if (r >= 0)
					r = buf_append(&b, line, l, 0);
				if (r >= 0)
					r = buf_append(&b, "\n", 1, 0);
			}
			line += l;
			if (*line == '\n')
				line++;
		}
	}
	if (r >= 0)
		r = buf_append(&b, "", 1, 0);
	if (r < 0) {
		buf_done(&b);
		return r;
	}
	*ret = (char *)b.data;
	return 0;
}

/* Fuzz target for the strict cloud-config reader (WIRE.md 5.3): the input is the user data as
 * fetched. A success must give complete entries; a refusal must say why. */
#include "userdata/userdata.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct userdata_doc doc;
	char *msg = NULL;
	int r = userdata_parse_cloud_config((const char *)data, size, &doc, &msg);
	if (r == 0) {
		for (size_t i = 0; i < doc.n_files; i++) {
			const struct userdata_entry *e = &doc.files[i];
			if (!e->path || e->path[0] == 0 || (e->has_content && !e->content))
				__builtin_trap();
			if (e->content && e->content[e->content_len] != 0)
				__builtin_trap();
		}
	} else if ((r == -EINVAL || r == -EFBIG) && !msg)
		__builtin_trap();
	free(msg);
	userdata_doc_done(&doc);
	return 0;
}

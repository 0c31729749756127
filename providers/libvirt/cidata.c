/* providers/libvirt: the cidata ISO 9660 image (WIRE 5.2 row 1) built in memory with libisofs,
 * so nothing touches the node's disk and no external tool (genisoimage) is needed. */
#include <pthread.h>
#include <time.h>
#include <stdint.h>
/* we read the image ourselves: no libburn, so libisofs declares struct burn_source */
#define LIBISOFS_WITHOUT_LIBBURN 1
#include <libisofs/libisofs.h>

#include "libvirt-internal.h"

#define CIDATA_MAX_BYTES (16u << 20)

static pthread_once_t iso_once = PTHREAD_ONCE_INIT;
static int iso_init_result;

static void iso_setup(void)
{
	iso_init_result = iso_init();
	/* libraries never log: keep libisofs' messages off stderr */
	if (iso_init_result >= 0)
		(void)iso_set_msgs_severities((char *)"NEVER", (char *)"NEVER", (char *)"libisofs");
}

static void iso_image_unrefp(IsoImage **p)
{
	if (*p)
		iso_image_unref(*p);
}

static void iso_write_opts_freep(IsoWriteOpts **p)
{
	if (*p)
		iso_write_opts_free(*p);
}

static int add_file(IsoImage *image, const char *name, const char *content)
{
	size_t len = strlen(content);
	/* the stream owns (and frees) a malloc'd copy; malloc(0) may return NULL */
	unsigned char *copy = malloc(len ? len : 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, content, len);
	IsoStream *stream = NULL;
	if (iso_memory_stream_new(copy, len, &stream) < 0) {
		free(copy);
		return -ENOMEM;
	}
	IsoFile *file = NULL;
	int r = iso_image_add_new_file(image, iso_image_get_root(image), name, stream, &file);
	if (r < 0) {
		iso_stream_unref(stream);
		return -EIO;
	}
	iso_node_set_permissions((IsoNode *)file, 0444);
	return 0;
}

int libvirt_cidata_build(const char *user_data, const char *hostname, uint8_t **ret,
			 size_t *ret_len)
{
	pthread_once(&iso_once, iso_setup);
	if (iso_init_result < 0)
		return -EIO;
	if (!user_data || str_empty(hostname))
		return -EINVAL;
	if (strlen(user_data) > CIDATA_MAX_BYTES / 2)
		return -EMSGSIZE;

	_cleanup_free_ char *meta = str_printf("local-hostname: %s", hostname);
	if (!meta)
		return -ENOMEM;
	_cleanup_(iso_image_unrefp) IsoImage *image = NULL;
	if (iso_image_new("cidata", &image) < 0)
		return -ENOMEM;
	int r = add_file(image, "user-data", user_data);
	if (r >= 0)
		r = add_file(image, "meta-data", meta);
	if (r >= 0)
		r = add_file(image, "vendor-data", "");
	if (r < 0)
		return r;

	_cleanup_(iso_write_opts_freep) IsoWriteOpts *opts = NULL;
	if (iso_write_opts_new(&opts, 0) < 0)
		return -ENOMEM;
	/* Rock Ridge keeps the lower-case names Linux mounts show; Joliet for other readers */
	iso_write_opts_set_rockridge(opts, 1);
	iso_write_opts_set_joliet(opts, 1);
	iso_write_opts_set_always_gmt(opts, 1);
	/* keep the volume id lower-case: udev's by-label link must read "cidata" */
	iso_write_opts_set_relaxed_vol_atts(opts, 1);

	struct burn_source *src = NULL;
	if (iso_image_create_burn_source(image, opts, &src) < 0)
		return -EIO;
	off_t size = src->get_size(src);
	struct buf out = {0};
	r = size > 0 && (uint64_t)size <= CIDATA_MAX_BYTES ? buf_reserve(&out, (size_t)size, 0)
							   : -EMSGSIZE;
	while (r >= 0) {
		unsigned char block[2048];
		int n = src->read_xt(src, block, sizeof(block));
		if (n < 0)
			r = -EIO;
		if (n <= 0)
			break;
		r = buf_append(&out, block, (size_t)n, CIDATA_MAX_BYTES);
	}
	if (r < 0 && src->cancel)
		src->cancel(src);
	src->free_data(src);
	free(src);
	if (r < 0) {
		buf_done(&out);
		return r;
	}
	*ret = out.data;
	*ret_len = out.len;
	return 0;
}

/* mkcidata: writes a cloud-init "cidata" ISO 9660 image (Rock Ridge + Joliet) from the files of a
 * directory, with libisofs, so image tests need neither genisoimage nor xorriso. */
#include <errno.h>
#include <stdint.h>
#include <sys/types.h>
/* libisofs declares struct burn_source itself only when told libburn.h is not included. */
#define LIBISOFS_WITHOUT_LIBBURN 1
#include <libisofs/libisofs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int write_image(IsoImage *image, FILE *out)
{
	IsoWriteOpts *opts = NULL;
	struct burn_source *src = NULL;
	unsigned char block[2048];
	int r;

	/* Profile 1: Rock Ridge, so Linux sees the names as given (user-data, meta-data). */
	if ((r = iso_write_opts_new(&opts, 1)) < 0)
		return r;
	iso_write_opts_set_joliet(opts, 1);
	r = iso_image_create_burn_source(image, opts, &src);
	iso_write_opts_free(opts);
	if (r < 0)
		return r;
	for (;;) {
		int n = src->read_xt(src, block, sizeof(block));
		if (n <= 0) {
			r = n;
			break;
		}
		if (fwrite(block, 1, (size_t)n, out) != (size_t)n) {
			r = -EIO;
			break;
		}
	}
	src->free_data(src);
	free(src);
	return r;
}

int main(int argc, char **argv)
{
	IsoImage *image = NULL;
	FILE *out;
	int r;

	if (argc < 3) {
		fprintf(stderr,
			"usage: %s OUT.iso FILE...\n"
			"  writes an ISO 9660 volume labelled cidata holding the FILEs\n",
			argv[0]);
		return 2;
	}
	if ((r = iso_init()) < 0) {
		fprintf(stderr, "mkcidata: libisofs init failed (%d)\n", r);
		return 1;
	}
	if ((r = iso_image_new("cidata", &image)) < 0) {
		fprintf(stderr, "mkcidata: cannot create image (%d)\n", r);
		return 1;
	}
	iso_image_set_volume_id(image, "cidata");
	for (int i = 2; i < argc; i++) {
		/* libisofs resolves paths against its own root: give it absolute ones. */
		char *path = realpath(argv[i], NULL);
		r = path ? iso_tree_add_node(image, iso_image_get_root(image), path, NULL) : -errno;
		free(path);
		if (r < 0) {
			fprintf(stderr, "mkcidata: cannot add %s (%d)\n", argv[i], r);
			return 1;
		}
	}
	out = fopen(argv[1], "wb");
	if (!out) {
		fprintf(stderr, "mkcidata: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	r = write_image(image, out);
	if (fclose(out) != 0 && r >= 0)
		r = -EIO;
	iso_image_unref(image);
	iso_finish();
	if (r < 0) {
		fprintf(stderr, "mkcidata: writing %s failed (%d)\n", argv[1], r);
		remove(argv[1]);
		return 1;
	}
	return 0;
}

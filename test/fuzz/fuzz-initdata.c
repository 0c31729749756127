/* Fuzz target for initdata (WIRE.md 5.4): the first byte picks the layer, the rest is either an
 * encoded document (base64, gzip, TOML) or TOML text. Parsed documents must round-trip through
 * the encoder. */
#include "userdata/userdata.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_toml(const char *toml, size_t len)
{
	struct initdata d;
	char *msg = NULL;
	int r = initdata_parse_toml(toml, len, &d, &msg);
	if (r == 0) {
		if (!d.algorithm || !d.version)
			__builtin_trap();
		for (size_t i = 0; i < d.n_data; i++)
			if (!d.data[i].name || !d.data[i].value ||
			    d.data[i].value[d.data[i].value_len] != 0)
				__builtin_trap();
		char *hex = NULL, *m2 = NULL;
		if (initdata_digest(d.algorithm, toml, len, &hex, &m2) == -ENOTSUP && !m2)
			__builtin_trap();
		free(hex);
		free(m2);
		char *enc = NULL, *back = NULL, *m3 = NULL;
		size_t back_len;
		if (initdata_encode(toml, len, &enc) == 0) {
			if (initdata_decode(enc, strlen(enc), &back, &back_len, &m3) != 0 ||
			    back_len != len || memcmp(back, toml, len) != 0)
				__builtin_trap();
		}
		free(enc);
		free(back);
		free(m3);
	} else if (r == -EINVAL && !msg)
		__builtin_trap();
	free(msg);
	initdata_done(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *s = (const char *)data + 1;
	size_t len = size - 1;
	if (data[0] & 1) {
		char *toml = NULL, *msg = NULL;
		size_t toml_len;
		int r = initdata_decode(s, len, &toml, &toml_len, &msg);
		if (r == 0)
			check_toml(toml, toml_len);
		else if (r == -EINVAL && !msg)
			__builtin_trap();
		free(toml);
		free(msg);
	} else
		check_toml(s, len);
	return 0;
}

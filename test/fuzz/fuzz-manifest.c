/* Fuzz target for lib/manifest: the strict manifest parser (ATTESTATION.md 6). Accepted
 * documents must keep their bytes, have sorted unique policies with a coordinator, and find every
 * policy by its digest; rejections must say why. */
#include "manifest/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct manifest *m = NULL;
	char *msg = NULL;
	int r = manifest_parse(data, size, &m, &msg);
	if (r == 0) {
		if (!m || m->raw_len != size || memcmp(m->raw, data, size) != 0 ||
		    m->n_policies == 0 || m->n_coordinator_digests == 0 || m->snp.n + m->n_tdx == 0)
			__builtin_trap();
		for (size_t i = 0; i < m->n_policies; i++) {
			const struct manifest_policy *p = &m->policies[i];
			if (i > 0 && memcmp(m->policies[i - 1].digest, p->digest, 32) >= 0)
				__builtin_trap();
			if (manifest_policy_find(m, p->digest) != p ||
			    manifest_policy_find_hex(m, p->digest_hex) != p ||
			    manifest_digest_is_coordinator(m, p->digest) != p->coordinator ||
			    (p->n_sans > 0 && !p->sans[p->n_sans - 1]) || p->sans[p->n_sans])
				__builtin_trap();
		}
		char *m2 = NULL;
		if (manifest_check_initdata(m, NULL, 0, NULL, &m2) != -EINVAL || !m2)
			__builtin_trap();
		free(m2);
		if (!manifest_seedshare_owners_equal(m, m))
			__builtin_trap();
	} else if (m || ((r == -EINVAL || r == -EFBIG) && !msg))
		__builtin_trap();
	free(msg);
	manifest_free(m);
	return 0;
}

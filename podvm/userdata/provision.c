/* process-user-data: the provision-files run: fetch with retries, strict parse, write the
 * allow-listed files, then initdata (WIRE.md 5.2 to 5.4). */
#include "userdata-prog.h"

#include <libgen.h>
#include <time.h>

#include "log/log.h"
#include "userdata/userdata.h"

static const char *const allowed_paths[] = {
    "/run/peerpod/aa.toml",  "/run/peerpod/cdh.toml", USERDATA_PATH_APF_JSON,
    USERDATA_PATH_AUTH_JSON, USERDATA_PATH_INITDATA,  USERDATA_PATH_SCRATCH_MARKER,
};

/* initdata data entries that become files under /run/peerpod. */
static const char *const initdata_files[] = {"aa.toml", "cdh.toml", "policy.rego"};

bool pud_path_allowed(const char *path)
{
	for (size_t i = 0; i < ELEMENTSOF(allowed_paths); i++)
		if (str_eq(path, allowed_paths[i]))
			return true;
	return false;
}

char *pud_output_path(const char *root, const char *path)
{
	size_t n = strlen(root);
	while (n > 0 && root[n - 1] == '/')
		n--;
	return str_printf("%.*s%s", (int)n, root, path);
}

static int write_out(const struct pud_config *c, const char *path, const void *data, size_t len)
{
	_cleanup_free_ char *full = pud_output_path(c->output_root, path);
	_cleanup_free_ char *dir = str_dup(full);
	if (!full || !dir)
		return log_error_errno(-ENOMEM, "out of memory");
	int r = mkdir_p(dirname(dir), 0755);
	if (r < 0)
		return log_error_errno(r, "cannot create the directory of %s", full);
	r = write_file_atomic(full, data, len, 0644);
	if (r < 0)
		return log_error_errno(r, "cannot write %s", full);
	log_info("wrote %s (%zu bytes)", path, len);
	return 0;
}

static void sleep_ns(int64_t ns)
{
	struct timespec ts = {.tv_sec = ns / NSEC_PER_SEC, .tv_nsec = ns % NSEC_PER_SEC};
	while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
		;
}

/* Fetch and parse until both succeed or the time is up. 1: no source, nothing to write. */
static int fetch_and_parse(const struct pud_config *c, struct userdata_doc *doc)
{
	int64_t deadline = now_ns() + c->fetch_timeout_ns;
	for (unsigned attempt = 1;; attempt++) {
		enum pud_provider p =
		    c->provider == PUD_PROVIDER_AUTO ? pud_detect_provider(c) : c->provider;
		if (p == PUD_PROVIDER_NONE) {
			log_info("no user data source found (GCP and Alibaba Cloud are not "
				 "supported), skipping user data");
			return 1;
		}
		_cleanup_free_ char *data = NULL, *msg = NULL;
		size_t len = 0;
		int r = pud_fetch_user_data(c, p, &data, &len, &msg);
		if (r >= 0) {
			r = userdata_parse_cloud_config(data, len, doc, &msg);
			if (r >= 0) {
				log_info("user data from %s: %zu bytes, %zu files",
					 pud_provider_to_string(p), len, doc->n_files);
				return 0;
			}
			log_warning("attempt %u: invalid user data from %s: %s", attempt,
				    pud_provider_to_string(p), msg ? msg : strerror(-r));
		} else
			log_warning("attempt %u: cannot fetch user data from %s: %s", attempt,
				    pud_provider_to_string(p), msg ? msg : strerror(-r));
		if (now_ns() + c->retry_interval_ns > deadline) {
			log_error("no valid user data after %u attempts, giving up", attempt);
			return -ETIMEDOUT;
		}
		sleep_ns(c->retry_interval_ns);
	}
}

static int write_user_data(const struct pud_config *c, const struct userdata_doc *doc)
{
	for (size_t i = 0; i < doc->n_files; i++) {
		const struct userdata_entry *e = &doc->files[i];
		if (!pud_path_allowed(e->path)) {
			log_warning("skipping %s: not an allowed path", e->path);
			continue;
		}
		int r = write_out(c, e->path, e->content ? e->content : "", e->content_len);
		if (r < 0)
			return r;
	}
	return 0;
}

static int hex_to_bytes(const char *hex, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return -EINVAL;
		out[i] = (uint8_t)v;
	}
	return 0;
}

static void extend_pcr(const struct pud_config *c, const char *digest_hex)
{
	uint8_t digest[32];
	if (str_empty(c->tpm_device)) {
		log_info("no TPM device configured, not extending PCR %d", PUD_INITDATA_PCR);
		return;
	}
	if (strlen(digest_hex) < 64 || hex_to_bytes(digest_hex, digest, sizeof(digest)) < 0) {
		log_warning("initdata digest is too short for PCR %d", PUD_INITDATA_PCR);
		return;
	}
	_cleanup_free_ char *msg = NULL;
	int r = pud_tpm_pcr_extend(c->tpm_device, PUD_INITDATA_PCR, digest, &msg);
	if (r == -ENOENT)
		log_info("no TPM at %s, not extending PCR %d", c->tpm_device, PUD_INITDATA_PCR);
	else if (r < 0)
		log_warning("cannot extend PCR %d with the initdata digest: %s", PUD_INITDATA_PCR,
			    msg ? msg : strerror(-r));
	else
		log_info("extended PCR %d with the initdata digest", PUD_INITDATA_PCR);
}

int pud_process_initdata(const struct pud_config *c)
{
	_cleanup_free_ char *path = pud_output_path(c->output_root, USERDATA_PATH_INITDATA);
	if (!path)
		return log_error_errno(-ENOMEM, "out of memory");
	_cleanup_free_ char *encoded = NULL;
	size_t encoded_len = 0;
	int r = read_file_bounded(path, INITDATA_MAX_ENCODED_BYTES, &encoded, &encoded_len);
	if (r == -ENOENT) {
		log_info("no initdata given, using the default document");
		if ((r = initdata_encode(INITDATA_DEFAULT_TOML, strlen(INITDATA_DEFAULT_TOML),
					 &encoded)) < 0)
			return log_error_errno(r, "cannot encode the default initdata");
		encoded_len = strlen(encoded);
		if ((r = write_out(c, USERDATA_PATH_INITDATA, encoded, encoded_len)) < 0)
			return r;
	} else if (r < 0)
		return log_error_errno(r, "cannot read %s", path);

	_cleanup_free_ char *toml = NULL, *msg = NULL, *digest = NULL;
	size_t toml_len;
	_cleanup_(initdata_donep) struct initdata d = {0};
	if ((r = initdata_decode(encoded, encoded_len, &toml, &toml_len, &msg)) < 0 ||
	    (r = initdata_parse_toml(toml, toml_len, &d, &msg)) < 0) {
		log_error("invalid initdata: %s", msg ? msg : strerror(-r));
		return r;
	}
	for (size_t i = 0; i < d.n_data; i++) {
		bool wanted = false;
		for (size_t j = 0; j < ELEMENTSOF(initdata_files); j++)
			wanted = wanted || str_eq(d.data[i].name, initdata_files[j]);
		if (!wanted) {
			log_info("ignoring initdata entry \"%s\"", d.data[i].name);
			continue;
		}
		_cleanup_free_ char *p = str_printf(PUD_PATH_RUN_DIR "/%s", d.data[i].name);
		if (!p)
			return log_error_errno(-ENOMEM, "out of memory");
		if ((r = write_out(c, p, d.data[i].value, d.data[i].value_len)) < 0)
			return r;
	}
	if ((r = initdata_digest(d.algorithm, toml, toml_len, &digest, &msg)) < 0) {
		log_error("%s", msg ? msg : strerror(-r));
		return r;
	}
	if ((r = write_out(c, PUD_PATH_INITDATA_DIGEST, digest, strlen(digest))) < 0)
		return r;
	log_info("initdata %s digest %s", d.algorithm, digest);
	extend_pcr(c, digest);
	return 0;
}

int pud_provision_files(const struct pud_config *c)
{
	_cleanup_(userdata_doc_donep) struct userdata_doc doc = {0};
	int r = fetch_and_parse(c, &doc);
	if (r < 0)
		return r;
	if (r == 0 && (r = write_user_data(c, &doc)) < 0)
		return r;
	return pud_process_initdata(c);
}

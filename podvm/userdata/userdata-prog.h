/* process-user-data: the pod VM program that fetches the pod's cloud-config from the cidata ISO
 * or the cloud's metadata service, writes the allowed files, then applies initdata (WIRE.md 5.2,
 * 5.3, 5.4). Internal interface between main.c and the rest of the folder, and for the tests. */
#pragma once

#include "base/base.h"
#include "config/config.h"

#define PUD_DEFAULT_FETCH_TIMEOUT "180"
#define PUD_DEFAULT_RETRY_INTERVAL "5s"
#define PUD_DEFAULT_CIDATA_DIR "/media/cidata"
#define PUD_DEFAULT_OUTPUT_ROOT "/"
#define PUD_DEFAULT_DMI_SYS_VENDOR "/sys/class/dmi/id/sys_vendor"
#define PUD_DEFAULT_TPM_DEVICE "/dev/tpmrm0"
#define PUD_DEFAULT_IMDS_ENDPOINT "http://169.254.169.254"

/* Data entries of initdata that are written out (WIRE.md 5.4). */
#define PUD_PATH_RUN_DIR "/run/peerpod"
#define PUD_PATH_INITDATA_DIGEST "/run/peerpod/initdata.digest"
#define PUD_INITDATA_PCR 8

enum pud_provider {
	PUD_PROVIDER_AUTO,
	PUD_PROVIDER_CIDATA,
	PUD_PROVIDER_AZURE,
	PUD_PROVIDER_AWS,
	PUD_PROVIDER_NONE,
};

/* Flags of `process-user-data provision-files`, as parsed by lib/config. */
struct pud_options {
	char *user_data_fetch_timeout; /* seconds ("180") or a Go duration ("3m") */
	char *t;                       /* short form of the above; wins when given */
	char *provider;
	char *cidata_dir;
	char *output_root;
	char *dmi_sys_vendor_path;
	char *tpm_device;
	char *log_level;
	int64_t retry_interval_ns; /* hidden, for tests */
};
extern const struct config_option pud_option_table[];
extern const size_t pud_n_options;
extern const struct config_option pud_hidden_option_table[];
extern const size_t pud_n_hidden_options;

/* What the provisioning run needs, resolved from the options. Strings are borrowed. */
struct pud_config {
	int64_t fetch_timeout_ns;
	int64_t retry_interval_ns;
	enum pud_provider provider;
	const char *cidata_dir;
	const char *output_root;
	const char *dmi_sys_vendor_path;
	const char *tpm_device;
};

int pud_parse_provider(const char *s, enum pud_provider *ret);
const char *pud_provider_to_string(enum pud_provider p);
/* Seconds as an integer or a Go duration; must be positive. */
int pud_parse_timeout(const char *s, int64_t *ret_ns);
/* Fill a config from parsed options; -EINVAL with *ret_msg on a bad value. */
int pud_config_from_options(const struct pud_options *o, struct pud_config *ret, char **ret_msg);

/* ---- sources (fetch.c) ---- */

/* The source for this attempt: cidata when <cidata_dir>/user-data exists, else Azure when the
 * CPUID hypervisor vendor is "Microsoft Hv", else AWS when the DMI vendor is "Amazon EC2", else
 * none (GCP and Alibaba are not supported). */
enum pud_provider pud_detect_provider(const struct pud_config *c);
bool pud_cpuid_is_hyperv(void);
bool pud_dmi_vendor_is(const char *path, const char *vendor);
/* One fetch from a concrete source. Endpoints: AZURE_IMDS_ENDPOINT and
 * AWS_EC2_METADATA_SERVICE_ENDPOINT (config_getenv), default PUD_DEFAULT_IMDS_ENDPOINT.
 * Returns 0 with the raw cloud-config in *ret, or <0 with *ret_msg. */
int pud_fetch_user_data(const struct pud_config *c, enum pud_provider p, char **ret,
			size_t *ret_len, char **ret_msg);

/* ---- provisioning (provision.c) ---- */

/* The allow-list of WIRE.md 5.3. */
bool pud_path_allowed(const char *path);
/* output_root joined with an absolute in-VM path. */
char *pud_output_path(const char *root, const char *path);
/* The whole `provision-files` run: fetch with retries, write, initdata. Logs as it goes.
 * -ETIMEDOUT when no valid user data arrived in time. */
int pud_provision_files(const struct pud_config *c);
/* The initdata step alone (after user data was written). */
int pud_process_initdata(const struct pud_config *c);

/* ---- TPM (tpm.c) ---- */

#define PUD_TPM_EXTEND_CMD_SIZE 65
/* TPM2_PCR_Extend of the sha256 bank with a password session, as raw command bytes. */
void pud_tpm_pcr_extend_command(uint32_t pcr, const uint8_t digest[32],
				uint8_t out[PUD_TPM_EXTEND_CMD_SIZE]);
/* Send the command over an open TPM fd and check the response code. */
int pud_tpm_pcr_extend_fd(int fd, uint32_t pcr, const uint8_t digest[32], char **ret_msg);
/* Open the device and extend; -ENOENT when there is no TPM. */
int pud_tpm_pcr_extend(const char *device, uint32_t pcr, const uint8_t digest[32], char **ret_msg);

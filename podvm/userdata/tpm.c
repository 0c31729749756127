/* process-user-data: extend a TPM PCR with the initdata digest by writing a TPM2_PCR_Extend
 * command to the kernel's resource manager device, without a TSS library. */
#include "userdata-prog.h"

#include <fcntl.h>
#include <poll.h>

#define TPM_ST_SESSIONS 0x8002
#define TPM_CC_PCR_EXTEND 0x00000182
#define TPM_RS_PW 0x40000009
#define TPM_ALG_SHA256 0x000b
#define TPM_RESPONSE_MAX 4096
#define TPM_TIMEOUT_MS 30000

static uint8_t *put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
	return p + 2;
}

static uint8_t *put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
	return p + 4;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void pud_tpm_pcr_extend_command(uint32_t pcr, const uint8_t digest[32],
				uint8_t out[PUD_TPM_EXTEND_CMD_SIZE])
{
	uint8_t *p = out;
	p = put16(p, TPM_ST_SESSIONS);
	p = put32(p, PUD_TPM_EXTEND_CMD_SIZE);
	p = put32(p, TPM_CC_PCR_EXTEND);
	p = put32(p, pcr);
	/* Authorization area: an empty password session. */
	p = put32(p, 9);
	p = put32(p, TPM_RS_PW);
	p = put16(p, 0); /* nonce */
	*p++ = 0;        /* session attributes */
	p = put16(p, 0); /* hmac */
	/* TPML_DIGEST_VALUES with one sha256 digest. */
	p = put32(p, 1);
	p = put16(p, TPM_ALG_SHA256);
	memcpy(p, digest, 32);
}

int pud_tpm_pcr_extend_fd(int fd, uint32_t pcr, const uint8_t digest[32], char **ret_msg)
{
	uint8_t cmd[PUD_TPM_EXTEND_CMD_SIZE];
	pud_tpm_pcr_extend_command(pcr, digest, cmd);
	int r = write_all(fd, cmd, sizeof(cmd));
	if (r < 0)
		return r;
	struct pollfd p = {.fd = fd, .events = POLLIN};
	r = poll(&p, 1, TPM_TIMEOUT_MS);
	if (r < 0)
		return -errno;
	if (r == 0)
		return -ETIMEDOUT;
	/* The device returns one whole response per read. */
	uint8_t resp[TPM_RESPONSE_MAX];
	ssize_t n = read(fd, resp, sizeof(resp));
	if (n < 0)
		return -errno;
	if (n < 10) {
		if (ret_msg)
			*ret_msg = str_printf("short TPM response (%zd bytes)", n);
		return -EIO;
	}
	uint32_t rc = get32(resp + 6);
	if (rc != 0) {
		if (ret_msg)
			*ret_msg = str_printf("TPM2_PCR_Extend failed with response code 0x%x", rc);
		return -EIO;
	}
	return 0;
}

int pud_tpm_pcr_extend(const char *device, uint32_t pcr, const uint8_t digest[32], char **ret_msg)
{
	_cleanup_close_ int fd = open(device, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return pud_tpm_pcr_extend_fd(fd, pcr, digest, ret_msg);
}

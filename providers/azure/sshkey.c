/* providers/azure: the SSH public key Azure requires on every Linux VM. Without -ssh-key-path
 * we make a key pair and drop the private half at once: the VM is reachable only through the
 * agent protocol forwarder. */
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "azure/azure-internal.h"

#define SSH_KEY_FILE_MAX_BYTES 65536
#define RSA_BITS 2048

DEFINE_CLEANUP(EVP_PKEY, EVP_PKEY_free)
DEFINE_CLEANUP(BIGNUM, BN_free)

static int put_string(struct buf *b, const void *data, size_t len)
{
	uint8_t n[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
			(uint8_t)len};
	int r = buf_append(b, n, 4, 0);
	return r < 0 ? r : buf_append(b, data, len, 0);
}

/* RFC 4251 mpint: big-endian, a leading zero when the top bit is set. */
static int put_mpint(struct buf *b, const BIGNUM *v)
{
	int n = BN_num_bytes(v);
	_cleanup_free_ uint8_t *d = malloc((size_t)n + 1);
	if (!d)
		return -ENOMEM;
	d[0] = 0;
	BN_bn2bin(v, d + 1);
	bool pad = n > 0 && (d[1] & 0x80);
	return put_string(b, pad ? d : d + 1, (size_t)n + (pad ? 1 : 0));
}

int azure_ssh_key_generate(char **ret)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = EVP_RSA_gen(RSA_BITS);
	if (!key)
		return -EIO;
	_cleanup_(BN_freep) BIGNUM *n = NULL;
	_cleanup_(BN_freep) BIGNUM *e = NULL;
	if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
	    EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e) != 1)
		return -EIO;
	struct buf b = {0};
	int r = put_string(&b, "ssh-rsa", 7);
	if (r >= 0)
		r = put_mpint(&b, e);
	if (r >= 0)
		r = put_mpint(&b, n);
	if (r < 0) {
		buf_done(&b);
		return r;
	}
	size_t enc = 4 * ((b.len + 2) / 3);
	char *out = malloc(strlen("ssh-rsa ") + enc + 1);
	if (!out) {
		buf_done(&b);
		return -ENOMEM;
	}
	memcpy(out, "ssh-rsa ", 8);
	int m = EVP_EncodeBlock((unsigned char *)out + 8, b.data, (int)b.len);
	out[8 + m] = 0;
	buf_done(&b);
	*ret = out;
	return 0;
}

int azure_ssh_key_read(const char *path, char **ret, char **ret_msg)
{
	_cleanup_free_ char *data = NULL;
	size_t len = 0;
	int r = read_file_bounded(path, SSH_KEY_FILE_MAX_BYTES, &data, &len);
	if (r < 0)
		return str_set_message(ret_msg, r, "cannot read the SSH public key %s: %s", path,
				       strerror(-r));
	/* the first non-empty, non-comment line */
	char *line = data;
	for (;;) {
		line += strspn(line, " \t\r\n");
		if (*line != '#')
			break;
		line += strcspn(line, "\n");
	}
	size_t n = strcspn(line, "\r\n");
	line[n] = 0;
	while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'))
		line[--n] = 0;
	const char *sp = strchr(line, ' ');
	if (n == 0 || !sp || !(str_startswith(line, "ssh-") || str_startswith(line, "ecdsa-")))
		return str_set_message(
		    ret_msg, EINVAL, "%s does not hold an OpenSSH public key (\"ssh-rsa AAAA...\")",
		    path);
	if (str_startswith(line, "-----"))
		return str_set_message(ret_msg, EINVAL, "%s is a private key", path);
	*ret = strdup(line);
	return *ret ? 0 : -ENOMEM;
}

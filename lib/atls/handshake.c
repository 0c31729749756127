/* lib/atls/handshake.c: an aTLS handshake on a socket with a deadline, for callers that run it
 * outside an event loop (a worker thread of the coordinator, the CLI, the attestation client):
 * evidence gathering and verification block inside the handshake. */
#include <openssl/err.h>
#include <fcntl.h>
#include <poll.h>

#include "atls/atls.h"

static char *failure_message(SSL *ssl, int ssl_error, int saved_errno)
{
	const struct atls_failure *f = atls_ssl_failure(ssl);
	if (f && f->message)
		return str_printf("%s", f->message);
	unsigned long e = ERR_peek_last_error();
	if (e != 0) {
		char buf[256];
		ERR_error_string_n(e, buf, sizeof(buf));
		return str_printf("TLS: %s", buf);
	}
	if (ssl_error == SSL_ERROR_SYSCALL && saved_errno != 0)
		return str_printf("TLS: %s", strerror(saved_errno));
	if (ssl_error == SSL_ERROR_ZERO_RETURN || ssl_error == SSL_ERROR_SYSCALL)
		return str_printf("TLS: connection closed by the peer during the handshake");
	return str_printf("TLS handshake failed (SSL error %d)", ssl_error);
}

int atls_handshake(SSL *ssl, int fd, bool is_server, int64_t deadline_ns, char **ret_msg)
{
	if (!ssl || fd < 0)
		return -EINVAL;
	int flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	if (SSL_set_fd(ssl, fd) != 1) {
		ERR_clear_error();
		return -ENOMEM;
	}
	if (is_server)
		SSL_set_accept_state(ssl);
	else
		SSL_set_connect_state(ssl);

	for (;;) {
		ERR_clear_error();
		errno = 0;
		int r = SSL_do_handshake(ssl);
		if (r == 1)
			return 0;
		int saved_errno = errno;
		int e = SSL_get_error(ssl, r);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
			const struct atls_failure *f = atls_ssl_failure(ssl);
			if (ret_msg)
				*ret_msg = failure_message(ssl, e, saved_errno);
			ERR_clear_error();
			if (f && f->code != ATTEST_OK)
				return -EACCES;
			if (f && f->err < 0)
				return f->err;
			return e == SSL_ERROR_SYSCALL && saved_errno != 0 ? -saved_errno
									  : -ECONNABORTED;
		}
		int64_t left = deadline_ns > 0 ? deadline_ns - now_ns() : -1;
		if (deadline_ns > 0 && left <= 0) {
			if (ret_msg)
				*ret_msg = str_printf("TLS handshake timed out");
			return -ETIMEDOUT;
		}
		struct pollfd p = {.fd = fd, .events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT};
		int ms = left < 0 ? -1 : (int)((left + 999999) / 1000000);
		if (poll(&p, 1, ms) < 0 && errno != EINTR)
			return -errno;
	}
}

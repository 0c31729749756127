/* systemd readiness notification (sd_notify protocol): one datagram to $NOTIFY_SOCKET, without
 * linking libsystemd into the pod VM's forwarder. */
#include "forwarder.h"

#include <stddef.h>
#include <sys/un.h>

int forwarder_sd_notify(const char *address, const char *state)
{
	if (str_empty(address))
		return 0;
	if (address[0] != '/' && address[0] != '@')
		return -EINVAL;

	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n = strlen(address);
	if (n >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, address, n);
	socklen_t salen;
	if (address[0] == '@') {
		/* Abstract namespace: leading NUL, no terminator counted. */
		sa.sun_path[0] = '\0';
		salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	} else
		salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);

	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	size_t len = strlen(state);
	ssize_t k = sendto(fd, state, len, MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
	if (k < 0)
		return -errno;
	if ((size_t)k != len)
		return -EIO;
	return 0;
}

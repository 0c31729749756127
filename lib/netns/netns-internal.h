/* lib/netns internals shared by its .c files: the handle and libnl error mapping. */
#pragma once

#include <netlink/netlink.h>

#include "netns.h"

struct netns {
	struct nl_sock *sk; /* NETLINK_ROUTE, created inside the namespace */
	int fd;             /* the namespace */
};

/* libnl's NLE_* (positive or negative) to -errno. */
int netns_nlerr(int nle);

/* lib/netns: the pod network model, entering namespaces from a throwaway thread, named
 * namespaces (`ip netns add`), and the per-namespace netlink handle. */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <linux/magic.h>
#include <netlink/errno.h>
#include <netlink/route/link.h>

#include "netns-internal.h"

#define THREAD_NETNS "/proc/thread-self/ns/net"

/* ---- the model ---- */

void netns_routes_free(struct netns_route *r, size_t n)
{
	for (size_t i = 0; r && i < n; i++) {
		free(r[i].dst);
		free(r[i].gw);
		free(r[i].dev);
	}
	free(r);
}

void netns_neighbors_free(struct netns_neighbor *nb, size_t n)
{
	for (size_t i = 0; nb && i < n; i++) {
		free(nb[i].ip);
		free(nb[i].hw_addr);
		free(nb[i].dev);
	}
	free(nb);
}

void netns_pod_network_done(struct netns_pod_network *n)
{
	if (!n)
		return;
	free(n->podip);
	free(n->pod_hw_addr);
	free(n->interface);
	free(n->worker_node_ip);
	free(n->tunnel_type);
	netns_routes_free(n->routes, n->n_routes);
	netns_neighbors_free(n->neighbors, n->n_neighbors);
	*n = (struct netns_pod_network){0};
}

const char *netns_route_protocol_to_string(enum netns_route_protocol p)
{
	switch (p) {
	case NETNS_ROUTE_PROTOCOL_KERNEL:
		return "kernel";
	case NETNS_ROUTE_PROTOCOL_BOOT:
		return "boot";
	case NETNS_ROUTE_PROTOCOL_STATIC:
		return "static";
	case NETNS_ROUTE_PROTOCOL_DHCP:
		return "dhcp";
	default:
		return "";
	}
}

const char *netns_route_scope_to_string(enum netns_route_scope s)
{
	switch (s) {
	case NETNS_ROUTE_SCOPE_UNIVERSE:
		return "universe";
	case NETNS_ROUTE_SCOPE_SITE:
		return "site";
	case NETNS_ROUTE_SCOPE_LINK:
		return "link";
	case NETNS_ROUTE_SCOPE_HOST:
		return "host";
	case NETNS_ROUTE_SCOPE_NOWHERE:
		return "nowhere";
	default:
		return "";
	}
}

const char *netns_neighbor_state_to_string(enum netns_neighbor_state s)
{
	switch (s) {
	case NETNS_NEIGHBOR_NONE:
		return "none";
	case NETNS_NEIGHBOR_INCOMPLETE:
		return "incomplete";
	case NETNS_NEIGHBOR_REACHABLE:
		return "reachable";
	case NETNS_NEIGHBOR_STALE:
		return "stale";
	case NETNS_NEIGHBOR_DELAY:
		return "delay";
	case NETNS_NEIGHBOR_PROBE:
		return "probe";
	case NETNS_NEIGHBOR_FAILED:
		return "failed";
	case NETNS_NEIGHBOR_NOARP:
		return "noarp";
	case NETNS_NEIGHBOR_PERMANENT:
		return "permanent";
	default:
		return "";
	}
}

int netns_nlerr(int nle)
{
	if (nle < 0)
		nle = -nle;
	switch (nle) {
	case 0:
		return 0;
	case NLE_NOMEM:
		return -ENOMEM;
	case NLE_EXIST:
		return -EEXIST;
	case NLE_OBJ_NOTFOUND:
		return -ENOENT;
	case NLE_NODEV:
		return -ENODEV;
	case NLE_PERM:
		return -EPERM;
	case NLE_BUSY:
		return -EBUSY;
	case NLE_INVAL:
	case NLE_MISSING_ATTR:
		return -EINVAL;
	case NLE_RANGE:
		return -ERANGE;
	case NLE_NOADDR:
		return -EADDRNOTAVAIL;
	case NLE_AGAIN:
		return -EAGAIN;
	case NLE_OPNOTSUPP:
		return -EOPNOTSUPP;
	case NLE_AF_NOSUPPORT:
		return -EAFNOSUPPORT;
	case NLE_MSGSIZE:
		return -EMSGSIZE;
	case NLE_NOACCESS:
		return -EACCES;
	case NLE_INTR:
		return -EINTR;
	default:
		return -EIO;
	}
}

/* ---- running inside a namespace ---- */

struct run_args {
	int fd; /* -1: stay where the thread started (= the caller's namespace) */
	int (*fn)(void *userdata);
	void *userdata;
	int r;
};

static void *run_thread(void *p)
{
	struct run_args *a = p;
	if (a->fd >= 0 && setns(a->fd, CLONE_NEWNET) < 0)
		a->r = -errno;
	else
		a->r = a->fn(a->userdata);
	return NULL;
}

/* A new thread inherits the creating thread's network namespace, so the caller's own namespace
 * needs no setns. The thread exits afterwards: nothing is left in the wrong namespace. */
static int run_on_thread(int fd, int (*fn)(void *), void *userdata)
{
	struct run_args a = {.fd = fd, .fn = fn, .userdata = userdata, .r = -EIO};
	pthread_t t;
	int r = pthread_create(&t, NULL, run_thread, &a);
	if (r != 0)
		return -r;
	pthread_join(t, NULL);
	return a.r;
}

int netns_run(const char *path, int (*fn)(void *userdata), void *userdata)
{
	_cleanup_close_ int fd = -EBADF;
	if (path) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
	}
	return run_on_thread(fd, fn, userdata);
}

bool netns_is_mounted(const char *path)
{
	struct statfs s;
	return statfs(path, &s) == 0 && s.f_type == NSFS_MAGIC;
}

/* iproute2 makes the directory a shared mount so that namespaces mounted later are seen by
 * other mount namespaces too. */
static int make_dir_shared(const char *dir)
{
	if (mount("", dir, "none", MS_SHARED | MS_REC, NULL) == 0)
		return 0;
	if (errno != EINVAL)
		return -errno;
	if (mount(dir, dir, "none", MS_BIND | MS_REC, NULL) < 0)
		return -errno;
	if (mount("", dir, "none", MS_SHARED | MS_REC, NULL) < 0)
		return -errno;
	return 0;
}

static int lo_up(void)
{
	_cleanup_(netns_freep) struct netns *n = NULL;
	int r = netns_open(NULL, &n);
	if (r < 0)
		return r;
	return netns_link_set_up(n, "lo");
}

static int create_thread_fn(void *userdata)
{
	const char *path = userdata;
	if (unshare(CLONE_NEWNET) < 0)
		return -errno;
	if (mount(THREAD_NETNS, path, "none", MS_BIND, NULL) < 0)
		return -errno;
	return lo_up();
}

int netns_create(const char *path)
{
	if (str_empty(path) || path[0] != '/')
		return -EINVAL;
	_cleanup_free_ char *dir = str_dup(path);
	if (!dir)
		return -ENOMEM;
	char *slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	int r = mkdir_p(dir, 0755);
	if (r < 0)
		return r;
	r = make_dir_shared(dir);
	if (r < 0)
		return r;
	int fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	close(fd);
	r = run_on_thread(-1, create_thread_fn, (void *)path);
	if (r < 0) {
		if (netns_is_mounted(path))
			umount2(path, MNT_DETACH);
		unlink(path);
	}
	return r;
}

int netns_remove(const char *path)
{
	if (netns_is_mounted(path) && umount2(path, MNT_DETACH) < 0)
		return -errno;
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

/* ---- the handle ---- */

static int connect_fn(void *userdata)
{
	struct netns *n = userdata;
	int r = nl_connect(n->sk, NETLINK_ROUTE);
	if (r < 0)
		return netns_nlerr(r);
	n->fd = open(THREAD_NETNS, O_RDONLY | O_CLOEXEC);
	return n->fd < 0 ? -errno : 0;
}

int netns_open(const char *path, struct netns **ret)
{
	struct netns *n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->fd = -EBADF;
	n->sk = nl_socket_alloc();
	if (!n->sk) {
		free(n);
		return -ENOMEM;
	}
	/* The socket belongs to the namespace it was created in, whatever thread uses it later. */
	int r = path ? netns_run(path, connect_fn, n) : connect_fn(n);
	if (r < 0) {
		netns_free(n);
		return r;
	}
	*ret = n;
	return 0;
}

struct netns *netns_free(struct netns *n)
{
	if (!n)
		return NULL;
	if (n->sk)
		nl_socket_free(n->sk);
	safe_close(n->fd);
	free(n);
	return NULL;
}

int netns_get_fd(const struct netns *n)
{
	return n->fd;
}

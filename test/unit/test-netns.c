/* lib/netns primitives inside throwaway network namespaces made by the test itself. Needs root;
 * skips (77) otherwise. Nothing touches the initial namespace. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "netns/netns.h"

extern char **environ;

static char path_a[96], path_b[96];

static int run(const char *arg0, ...)
{
	const char *argv[32];
	size_t n = 0;
	va_list ap;
	va_start(ap, arg0);
	for (const char *a = arg0; a && n < ELEMENTSOF(argv) - 1; a = va_arg(ap, const char *))
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	pid_t pid;
	if (posix_spawnp(&pid, argv[0], NULL, NULL, (char *const *)argv, environ) != 0)
		return -1;
	int status;
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

#define IPN(path, ...) \
	assert_int_equal(run("ip", "-n", strrchr(path, '/') + 1, __VA_ARGS__, NULL), 0)

static void cleanup(void)
{
	netns_remove(path_a);
	netns_remove(path_b);
}

static int group_setup(void **state)
{
	snprintf(path_a, sizeof(path_a), "/run/netns/ppunit%d-a", (int)getpid());
	snprintf(path_b, sizeof(path_b), "/run/netns/ppunit%d-b", (int)getpid());
	atexit(cleanup);
	return netns_create(path_a) < 0 || netns_create(path_b) < 0 ? -1 : 0;
}

static int group_teardown(void **state)
{
	cleanup();
	return 0;
}

static int ino_fn(void *userdata)
{
	struct stat st;
	if (stat("/proc/thread-self/ns/net", &st) < 0)
		return -errno;
	*(ino_t *)userdata = st.st_ino;
	return 7;
}

static void test_run_and_create(void **state)
{
	struct stat self0, target, self1;
	assert_int_equal(stat("/proc/thread-self/ns/net", &self0), 0);
	assert_int_equal(stat(path_a, &target), 0);
	ino_t seen = 0;
	assert_int_equal(netns_run(path_a, ino_fn, &seen), 7);
	assert_int_equal(seen, target.st_ino);
	assert_int_not_equal(seen, self0.st_ino);
	/* The caller never moves. */
	assert_int_equal(stat("/proc/thread-self/ns/net", &self1), 0);
	assert_int_equal(self1.st_ino, self0.st_ino);
	assert_int_equal(netns_run(NULL, ino_fn, &seen), 7);
	assert_int_equal(seen, self0.st_ino);
	assert_int_equal(netns_run("/nonexistent/ns", ino_fn, &seen), -ENOENT);

	assert_true(netns_is_mounted(path_a));
	assert_int_equal(netns_create(path_a), -EEXIST);
	/* lo is up in a created namespace. */
	_cleanup_(netns_freep) struct netns *n = NULL;
	assert_int_equal(netns_open(path_a, &n), 0);
	_cleanup_strv_free_ char **addrs = NULL;
	assert_int_equal(netns_link_ipv4_addrs(n, "lo", &addrs), 0);
	assert_string_equal(addrs[0], "127.0.0.1/8");
	assert_int_equal(netns_link_ipv4_addrs(n, "nope0", &addrs), -ENODEV);

	char tmp[128];
	snprintf(tmp, sizeof(tmp), "%s-tmp", path_a);
	assert_int_equal(netns_create(tmp), 0);
	assert_true(netns_is_mounted(tmp));
	assert_int_equal(netns_remove(tmp), 0);
	assert_false(netns_is_mounted(tmp));
	assert_int_equal(access(tmp, F_OK), -1);
	assert_int_equal(netns_remove(tmp), 0);
}

static void test_links_routes_neighbours(void **state)
{
	_cleanup_(netns_freep) struct netns *n = NULL;
	assert_int_equal(netns_open(path_a, &n), 0);
	IPN(path_a, "link", "add", "dm1", "type", "veth", "peer", "name", "dm1p");
	IPN(path_a, "link", "set", "dm1p", "up");
	IPN(path_a, "link", "add", "dm0", "type", "veth", "peer", "name", "dm0p");
	IPN(path_a, "link", "set", "dm0p", "up");
	assert_int_equal(netns_link_set_mac(n, "dm0", "0a:58:0a:f4:01:07"), 0);
	assert_int_equal(netns_link_set_mtu(n, "dm0", 1400), 0);
	assert_int_equal(netns_link_set_up(n, "dm0"), 0);
	assert_int_equal(netns_link_set_up(n, "dm1"), 0);
	char mac[18];
	uint32_t mtu;
	assert_int_equal(netns_link_info(n, "dm0", mac, &mtu), 0);
	assert_string_equal(mac, "0a:58:0a:f4:01:07");
	assert_int_equal(mtu, 1400);

	_cleanup_free_ char *dev = NULL, *gw = NULL;
	assert_int_equal(netns_default_route(n, &dev, &gw), -ENETUNREACH);
	assert_int_equal(netns_addr_add(n, "dm0", "10.244.9.7/24"), 0);
	assert_int_equal(netns_addr_add(n, "dm1", "10.245.9.7/24"), 0);
	/* Two default routes: the lowest-numbered device of the stem wins. */
	struct netns_route def1 = {.dst = "0.0.0.0/0", .gw = "10.245.9.1", .dev = "dm1"};
	struct netns_route def0 = {.dst = "0.0.0.0/0", .gw = "10.244.9.1", .dev = "dm0"};
	assert_int_equal(netns_route_add(n, &def1, NULL), 0);
	IPN(path_a, "route", "append", "default", "via", "10.244.9.1", "dev", "dm0", "metric",
	    "10");
	assert_int_equal(netns_default_route(n, &dev, &gw), 0);
	assert_string_equal(dev, "dm0");
	assert_string_equal(gw, "10.244.9.1");
	(void)def0;

	/* Routes of dm0: the kernel's subnet route and the default route. */
	struct netns_route *routes = NULL;
	size_t n_routes = 0;
	assert_int_equal(netns_link_routes(n, "dm0", &routes, &n_routes), 0);
	assert_int_equal(n_routes, 2);
	netns_routes_free(routes, n_routes);
	assert_int_equal(netns_route_del_subnet(n, "dm0", "10.244.9.7/24"), 0);
	assert_int_equal(netns_route_del_subnet(n, "dm0", "10.244.9.7/24"), 0); /* absent: ok */
	assert_int_equal(netns_link_routes(n, "dm0", &routes, &n_routes), 0);
	assert_int_equal(n_routes, 1);
	assert_string_equal(routes[0].dst, "0.0.0.0/0");
	netns_routes_free(routes, n_routes);
	/* A route with a gateway on dm0 needs the direct one first. */
	struct netns_route via = {.dst = "10.96.0.0/12", .gw = "10.244.9.1", .dev = "dm0"};
	assert_true(netns_route_add(n, &via, NULL) < 0);
	struct netns_route direct = {.dst = "10.244.9.0/24",
				     .gw = "",
				     .dev = "dm0",
				     .protocol = NETNS_ROUTE_PROTOCOL_KERNEL,
				     .scope = NETNS_ROUTE_SCOPE_LINK};
	assert_int_equal(netns_route_add(n, &direct, NULL), 0);
	assert_int_equal(netns_route_add(n, &via, NULL), 0);
	assert_int_equal(netns_link_routes(n, "dm0", &routes, &n_routes), 0);
	assert_int_equal(n_routes, 3);
	netns_routes_free(routes, n_routes);

	struct netns_neighbor nb = {.ip = "10.244.9.1", .hw_addr = "0a:58:0a:f4:09:01"};
	assert_int_equal(netns_neighbor_add(n, &nb, "dm0"), 0);
	struct netns_neighbor *nbs = NULL;
	size_t n_nbs = 0;
	assert_int_equal(netns_link_neighbors(n, "dm0", &nbs, &n_nbs), 0);
	assert_int_equal(n_nbs, 1);
	assert_string_equal(nbs[0].ip, "10.244.9.1");
	assert_string_equal(nbs[0].hw_addr, "0a:58:0a:f4:09:01");
	assert_int_equal(nbs[0].state, NETNS_NEIGHBOR_PERMANENT);
	netns_neighbors_free(nbs, n_nbs);

	assert_int_equal(netns_link_set_mac(n, "dm0", "not-a-mac"), -EINVAL);
	assert_int_equal(netns_addr_add(n, "dm0", "300.1.1.1/24"), -EINVAL);
	assert_int_equal(netns_link_del(n, "dm1"), 0);
	assert_int_equal(netns_link_del(n, "dm1"), -ENODEV);
}

static void test_vxlan_move_tc(void **state)
{
	_cleanup_(netns_freep) struct netns *a = NULL, *b = NULL;
	assert_int_equal(netns_open(path_a, &a), 0);
	assert_int_equal(netns_open(path_b, &b), 0);
	struct netns_vxlan vx = {
	    .name = "ppvx1", .remote = "192.168.50.2", .id = 555001, .port = 4789};
	assert_int_equal(netns_vxlan_add(a, &vx), 0);
	assert_int_equal(netns_vxlan_add(a, &vx), -EEXIST);
	IPN(path_b, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p");
	IPN(path_b, "link", "set", "eth0p", "up");
	/* Moving and renaming at once, even to a name that exists in the source. */
	IPN(path_a, "link", "add", "vxlan1", "type", "veth", "peer", "name", "vxlan1p");
	IPN(path_a, "link", "set", "vxlan1p", "up");
	assert_int_equal(netns_link_move(a, "ppvx1", b, "vxlan1"), 0);
	int ifindex;
	assert_int_equal(netns_link_index(a, "ppvx1", &ifindex), -ENODEV);
	assert_int_equal(netns_link_index(b, "vxlan1", &ifindex), 0);
	assert_int_equal(netns_link_set_up(b, "vxlan1"), 0);
	assert_int_equal(netns_link_set_up(b, "eth0"), 0);

	bool has = true;
	assert_int_equal(netns_tc_has_ingress(b, "eth0", &has), 0);
	assert_false(has);
	assert_int_equal(netns_tc_redirect_add(b, "eth0", "vxlan1"), 0);
	assert_int_equal(netns_tc_redirect_add(b, "vxlan1", "eth0"), 0);
	assert_true(netns_tc_redirect_add(b, "eth0", "vxlan1") < 0); /* once only */
	assert_int_equal(netns_tc_has_ingress(b, "eth0", &has), 0);
	assert_true(has);
	assert_int_equal(netns_tc_redirect_del(b, "eth0"), 0);
	assert_int_equal(netns_tc_has_ingress(b, "eth0", &has), 0);
	assert_false(has);
	assert_int_equal(netns_tc_redirect_del(b, "eth0"), 0);
	assert_int_equal(netns_tc_redirect_del(b, "gone0"), 0);
	assert_int_equal(netns_link_del(b, "vxlan1"), 0);
	assert_int_equal(netns_tc_redirect_del(b, "vxlan1"), 0);
}

static int count(const char *hay, const char *needle)
{
	int c = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		c++;
	return c;
}

static void test_iptables(void **state)
{
	_cleanup_(netns_freep) struct netns *n = NULL;
	assert_int_equal(netns_open(path_a, &n), 0);
	struct netns_iptables ipt = {.netns_fd = netns_get_fd(n)};
	_cleanup_free_ char *msg = NULL, *out = NULL;
	const char *list_all[] = {"-t", "raw", "-S", NULL};
	assert_int_equal(netns_iptables_add(&ipt, "192.168.50.2", 555001, 4789, &msg), 0);
	assert_int_equal(netns_iptables_add(&ipt, "192.168.50.2", 555001, 4789, &msg), 0);
	assert_int_equal(netns_iptables_add(&ipt, "192.168.50.3/24", 555002, 4789, &msg), 0);
	assert_int_equal(netns_iptables_run(&ipt, list_all, &out, &msg), 0);
	assert_int_equal(count(out, "peerpod [vni:555001]"), 2); /* OUTPUT and PREROUTING */
	assert_int_equal(count(out, "-A OUTPUT -j peerpod-OUTPUT"), 1);
	assert_int_equal(count(out, "-A PREROUTING -j peerpod-PREROUTING"), 1);
	assert_non_null(strstr(out, "-A peerpod-OUTPUT -d 192.168.50.3/32"));
	assert_non_null(strstr(out, "-A peerpod-PREROUTING -s 192.168.50.2/32"));

	assert_int_equal(netns_iptables_del(&ipt, "192.168.50.2", 555001, 4789, &msg), 0);
	free(out);
	out = NULL;
	assert_int_equal(netns_iptables_run(&ipt, list_all, &out, &msg), 0);
	assert_int_equal(count(out, "vni:555001"), 0);
	assert_int_equal(count(out, "vni:555002"), 2);
	assert_int_equal(count(out, "-A OUTPUT -j peerpod-OUTPUT"), 1);
	assert_int_equal(netns_iptables_del(&ipt, "192.168.50.3", 555002, 4789, &msg), 0);
	assert_int_equal(netns_iptables_del(&ipt, "192.168.50.3", 555002, 4789, &msg), 0);
	free(out);
	out = NULL;
	assert_int_equal(netns_iptables_run(&ipt, list_all, &out, &msg), 0);
	assert_null(strstr(out, "peerpod"));

	struct netns_iptables missing = {.binary = "/nonexistent/iptables", .netns_fd = -1};
	assert_int_equal(netns_iptables_add(&missing, "192.168.50.2", 1, 4789, &msg), -ENOENT);
	assert_int_equal(netns_iptables_add(&ipt, "", 1, 4789, &msg), -EINVAL);
}

static void test_model_names(void **state)
{
	assert_string_equal(netns_route_protocol_to_string(NETNS_ROUTE_PROTOCOL_DHCP), "dhcp");
	assert_string_equal(netns_route_protocol_to_string(NETNS_ROUTE_PROTOCOL_UNSPEC), "");
	assert_string_equal(netns_route_scope_to_string(NETNS_ROUTE_SCOPE_UNIVERSE), "universe");
	assert_string_equal(netns_neighbor_state_to_string(NETNS_NEIGHBOR_NOARP), "noarp");
	struct netns_pod_network m = {.podip = str_dup("10.0.0.1/32")};
	netns_pod_network_done(&m);
	assert_null(m.podip);
	netns_pod_network_done(&m);
	netns_pod_network_done(NULL);
}

int main(void)
{
	if (geteuid() != 0) {
		printf("SKIP: test-netns needs root (network namespaces)\n");
		return 77;
	}
	char probe[96];
	snprintf(probe, sizeof(probe), "/run/netns/ppunit%d-probe", (int)getpid());
	if (netns_create(probe) < 0) {
		printf("SKIP: cannot create network namespaces\n");
		return 77;
	}
	netns_remove(probe);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_model_names),
	    cmocka_unit_test(test_run_and_create),
	    cmocka_unit_test(test_links_routes_neighbours),
	    cmocka_unit_test(test_vxlan_move_tc),
	    cmocka_unit_test(test_iptables),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

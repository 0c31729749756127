/* Pod networking end to end (WIRE.md 6) inside throwaway namespaces: a "worker" and a "VM"
 * joined by a veth underlay, a CNI-like pod netns on the worker, the adaptor's inspection and
 * setup, the forwarder's setup in the VM, a TCP connection from the worker through the tunnel
 * to a listener in the VM's pod netns, then teardown. Needs root; skips (77) otherwise. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "adaptor/podnet.h"
#include "podvm/forwarder/forwarder.h"

extern char **environ;

static char ns_worker[64], ns_vm[64], ns_pod[64], ns_vmpod[64];
static char path_worker[96], path_vm[96], path_pod[96], path_vmpod[96];

#define VM_IP "192.168.77.2"
#define POD_GW_MAC "0a:58:0a:f4:01:01"
#define VNI 555003

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
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	pid_t pid;
	int r = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (r != 0)
		return -r;
	int status;
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

#define IP(...) assert_int_equal(run("ip", __VA_ARGS__, NULL), 0)

static void cleanup_namespaces(void)
{
	const char *names[] = {ns_pod, ns_vmpod, ns_worker, ns_vm};
	const char *paths[] = {path_pod, path_vmpod, path_worker, path_vm};
	for (size_t i = 0; i < ELEMENTSOF(names); i++)
		if (names[i][0] && netns_is_mounted(paths[i]))
			run("ip", "netns", "del", names[i], NULL);
}

static int group_setup(void **state)
{
	int id = getpid();
	snprintf(ns_worker, sizeof(ns_worker), "pptest%d-wk", id);
	snprintf(ns_vm, sizeof(ns_vm), "pptest%d-vm", id);
	snprintf(ns_pod, sizeof(ns_pod), "pptest%d-pod", id);
	snprintf(ns_vmpod, sizeof(ns_vmpod), "pptest%d-vmpod", id);
	snprintf(path_worker, sizeof(path_worker), "/run/netns/%s", ns_worker);
	snprintf(path_vm, sizeof(path_vm), "/run/netns/%s", ns_vm);
	snprintf(path_pod, sizeof(path_pod), "/run/netns/%s", ns_pod);
	snprintf(path_vmpod, sizeof(path_vmpod), "/run/netns/%s", ns_vmpod);
	atexit(cleanup_namespaces);
	if (run("ip", "netns", "add", ns_worker, NULL) != 0 ||
	    run("ip", "netns", "add", ns_vm, NULL) != 0 ||
	    run("ip", "netns", "add", ns_pod, NULL) != 0)
		return -1;
	const char *W = ns_worker, *V = ns_vm, *P = ns_pod;
	/* Underlay: worker 192.168.77.1 <-> VM 192.168.77.2, each the other's default route. */
	IP("-n", W, "link", "set", "lo", "up");
	IP("-n", V, "link", "set", "lo", "up");
	IP("-n", P, "link", "set", "lo", "up");
	IP("-n", W, "link", "add", "ul0", "type", "veth", "peer", "name", "ul1", "netns", V);
	IP("-n", W, "addr", "add", "192.168.77.1/24", "dev", "ul0");
	IP("-n", V, "addr", "add", VM_IP "/24", "dev", "ul1");
	IP("-n", W, "link", "set", "ul0", "up");
	IP("-n", V, "link", "set", "ul1", "up");
	IP("-n", W, "route", "add", "default", "via", VM_IP);
	IP("-n", V, "route", "add", "default", "via", "192.168.77.1");
	/* CNI-like pod: eth0 10.244.1.7/24 in the pod netns, its peer the gateway on the worker. */
	IP("-n", W, "link", "add", "vethpod", "address", POD_GW_MAC, "type", "veth", "peer", "name",
	   "eth0", "netns", P);
	IP("-n", W, "addr", "add", "10.244.1.1/24", "dev", "vethpod");
	IP("-n", W, "link", "set", "vethpod", "up");
	IP("-n", P, "addr", "add", "10.244.1.7/24", "dev", "eth0");
	IP("-n", P, "link", "set", "eth0", "up");
	IP("-n", P, "route", "add", "default", "via", "10.244.1.1");
	IP("-n", P, "neigh", "add", "10.244.1.1", "lladdr", POD_GW_MAC, "dev", "eth0", "nud",
	   "permanent");
	return 0;
}

/* ---- the steps, each run inside a namespace ---- */

static struct netns_pod_network model; /* the adaptor's view */
static struct apf_config vm_cfg;       /* what the forwarder parsed */

static int group_teardown(void **state)
{
	cleanup_namespaces();
	netns_pod_network_done(&model);
	apf_config_done(&vm_cfg);
	return 0;
}
static char *const subnets[] = {"10.96.0.0/12", NULL};

static int inspect_fn(void *userdata)
{
	char **msg = userdata;
	struct podnet_params p = {.pod_subnet_cidrs = subnets, .index = 3};
	netns_pod_network_done(&model); /* several tests inspect again */
	return podnet_inspect(path_pod, &p, &model, msg);
}

static int setup_fn(void *userdata)
{
	return podnet_setup(&model, VM_IP, path_pod, NULL, userdata);
}

static int teardown_fn(void *userdata)
{
	return podnet_teardown(&model, VM_IP, path_pod, NULL, userdata);
}

static int vm_setup_fn(void *userdata)
{
	struct forwarder_podnet_options o = {.pod_netns = path_vmpod,
					     .wait_timeout_ns = 10 * NSEC_PER_SEC,
					     .poll_interval_ns = 20 * NSEC_PER_MSEC};
	return forwarder_podnet_setup(&vm_cfg.pod_network, &o, userdata);
}

static int listener_fn(void *userdata)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* The first round trip's connection lingers in TIME-WAIT. */
	int one = 1;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(8080)};
	inet_pton(AF_INET, "10.244.1.7", &a.sin_addr);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 4) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

static int socket_fn(void *userdata)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	return fd < 0 ? -errno : fd;
}

static int iptables_listing(const char *ns_path, const char *chain, char **ret)
{
	_cleanup_close_ int fd = open(ns_path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	struct netns_iptables ipt = {.netns_fd = fd};
	const char *args[] = {"-t", "raw", "-S", chain, NULL};
	return netns_iptables_run(&ipt, args, ret, NULL);
}

static void assert_rules(const char *ns_path, const char *peer)
{
	_cleanup_free_ char *out = NULL, *pre = NULL, *jumps = NULL;
	assert_int_equal(iptables_listing(ns_path, "peerpod-OUTPUT", &out), 0);
	assert_int_equal(iptables_listing(ns_path, "peerpod-PREROUTING", &pre), 0);
	_cleanup_free_ char *d = str_printf("-d %s/32", peer), *s = str_printf("-s %s/32", peer);
	assert_non_null(strstr(out, d));
	assert_non_null(strstr(out, "peerpod [vni:555003]"));
	assert_non_null(strstr(out, "--dport 4789 -j NOTRACK"));
	assert_non_null(strstr(pre, s));
	assert_int_equal(iptables_listing(ns_path, "OUTPUT", &jumps), 0);
	assert_non_null(strstr(jumps, "-A OUTPUT -j peerpod-OUTPUT"));
}

static void assert_no_rules(const char *ns_path)
{
	_cleanup_free_ char *out = NULL, *out2 = NULL, *jumps = NULL, *jumps2 = NULL;
	assert_int_not_equal(iptables_listing(ns_path, "peerpod-OUTPUT", &out), 0);
	assert_int_not_equal(iptables_listing(ns_path, "peerpod-PREROUTING", &out2), 0);
	assert_int_equal(iptables_listing(ns_path, "OUTPUT", &jumps), 0);
	assert_null(strstr(jumps, "peerpod"));
	assert_int_equal(iptables_listing(ns_path, "PREROUTING", &jumps2), 0);
	assert_null(strstr(jumps2, "peerpod"));
}

/* A TCP round trip from the worker (as another pod or the node would reach the pod) to the
 * listener in the VM's pod netns: only possible through the tunnel. */
static void assert_tcp_through_tunnel(void)
{
	int lfd = netns_run(path_vmpod, listener_fn, NULL);
	if (lfd < 0)
		fail_msg("listener in %s: %s", path_vmpod, strerror(-lfd));
	int cfd = netns_run(path_worker, socket_fn, NULL);
	assert_true(cfd >= 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(8080)};
	inet_pton(AF_INET, "10.244.1.7", &a.sin_addr);
	int r = connect(cfd, (struct sockaddr *)&a, sizeof(a));
	assert_true(r == 0 || errno == EINPROGRESS);
	struct pollfd p = {.fd = lfd, .events = POLLIN};
	assert_int_equal(poll(&p, 1, 20000), 1);
	int afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(afd >= 0);
	p = (struct pollfd){.fd = cfd, .events = POLLOUT};
	assert_int_equal(poll(&p, 1, 20000), 1);
	int err = -1;
	socklen_t len = sizeof(err);
	assert_int_equal(getsockopt(cfd, SOL_SOCKET, SO_ERROR, &err, &len), 0);
	assert_int_equal(err, 0);
	assert_int_equal(write(cfd, "ping", 4), 4);
	char buf[8] = {0};
	assert_int_equal(read(afd, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "ping", 4);
	assert_int_equal(write(afd, "pong", 4), 4);
	p = (struct pollfd){.fd = cfd, .events = POLLIN};
	assert_int_equal(poll(&p, 1, 20000), 1);
	assert_int_equal(read(cfd, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "pong", 4);
	close(afd);
	close(cfd);
	close(lfd);
}

static void test_inspect(void **state)
{
	_cleanup_free_ char *msg = NULL;
	int r = netns_run(path_worker, inspect_fn, &msg);
	if (r < 0)
		fail_msg("inspect: %s", msg);
	assert_string_equal(model.podip, "10.244.1.7/24");
	assert_string_equal(model.interface, "eth0");
	assert_string_equal(model.worker_node_ip, "192.168.77.1/24");
	assert_string_equal(model.tunnel_type, "vxlan");
	assert_false(model.dedicated);
	assert_int_equal(model.mtu, 1500);
	assert_int_equal(model.index, 3);
	assert_int_equal(model.vxlan_id, VNI);
	assert_int_equal(model.vxlan_port, 4789);
	assert_int_equal(strlen(model.pod_hw_addr), 17);
	/* The kernel's subnet route, the default route and the POD_SUBNET_CIDRS route. */
	assert_int_equal(model.n_routes, 3);
	bool have_default = false, have_subnet = false, have_cidr = false;
	for (size_t i = 0; i < model.n_routes; i++) {
		const struct netns_route *rt = &model.routes[i];
		assert_string_equal(rt->dev, "eth0");
		if (str_eq(rt->dst, "0.0.0.0/0")) {
			have_default = true;
			assert_string_equal(rt->gw, "10.244.1.1");
		} else if (str_eq(rt->dst, "10.244.1.0/24")) {
			have_subnet = true;
			assert_string_equal(rt->gw, "");
			assert_int_equal(rt->protocol, NETNS_ROUTE_PROTOCOL_KERNEL);
			assert_int_equal(rt->scope, NETNS_ROUTE_SCOPE_LINK);
		} else if (str_eq(rt->dst, "10.96.0.0/12")) {
			have_cidr = true;
			assert_string_equal(rt->gw, "10.244.1.1");
		}
	}
	assert_true(have_default && have_subnet && have_cidr);
	assert_int_equal(model.n_neighbors, 1);
	assert_string_equal(model.neighbors[0].ip, "10.244.1.1");
	assert_string_equal(model.neighbors[0].hw_addr, POD_GW_MAC);
	assert_int_equal(model.neighbors[0].state, NETNS_NEIGHBOR_PERMANENT);

	/* What the adaptor writes is what the forwarder reads. */
	json_t *net = NULL;
	assert_int_equal(podnet_to_json(&model, &net), 0);
	json_t *root = json_pack("{so}", "pod-network", net);
	assert_non_null(root);
	_cleanup_free_ char *text = json_dumps(root, JSON_INDENT(4));
	assert_non_null(text);
	assert_non_null(strstr(text, "\"vxlan-id\": 555003"));
	assert_non_null(strstr(text, "\"scope\": \"link\""));
	_cleanup_free_ char *perr = NULL;
	assert_int_equal(apf_config_parse(text, strlen(text), &vm_cfg, &perr), 0);
	assert_string_equal(vm_cfg.pod_network.podip, model.podip);
	assert_string_equal(vm_cfg.pod_network.pod_hw_addr, model.pod_hw_addr);
	assert_int_equal(vm_cfg.pod_network.n_routes, 3);
	assert_int_equal(vm_cfg.pod_network.neighbors[0].state, NETNS_NEIGHBOR_PERMANENT);
	struct netns_pod_network back;
	assert_int_equal(podnet_from_json(net, &back), 0);
	assert_string_equal(back.interface, "eth0");
	assert_int_equal(back.vxlan_id, VNI);
	assert_int_equal(back.n_routes, 3);
	assert_int_equal(back.routes[0].protocol, model.routes[0].protocol);
	netns_pod_network_done(&back);
	json_decref(root);
}

static void test_inspect_errors(void **state)
{
	/* A second address on eth0 is refused with the text of WIRE.md 6.1. */
	IP("-n", ns_pod, "addr", "add", "10.244.1.8/24", "dev", "eth0");
	_cleanup_free_ char *msg = NULL;
	int r = netns_run(path_worker, inspect_fn, &msg);
	assert_true(r < 0);
	_cleanup_free_ char *want =
	    str_printf("more than one IPv4 addresses found on eth0 of netns %s", path_pod);
	assert_string_equal(msg, want);
	netns_pod_network_done(&model);
	IP("-n", ns_pod, "addr", "del", "10.244.1.8/24", "dev", "eth0");
	free(msg);
	msg = NULL;
	assert_int_equal(netns_run(path_worker, inspect_fn, &msg), 0);
}

static void test_setup_traffic_teardown(void **state)
{
	_cleanup_free_ char *msg = NULL;
	int r = netns_run(path_worker, setup_fn, &msg);
	if (r < 0)
		fail_msg("worker setup: %s", msg);
	r = netns_run(path_vm, vm_setup_fn, &msg);
	if (r < 0)
		fail_msg("VM setup: %s", msg);

	/* Worker: vxlan1 in the pod netns with both redirects, nothing left in the host. */
	_cleanup_(netns_freep) struct netns *pod = NULL, *worker = NULL, *vmpod = NULL;
	assert_int_equal(netns_open(path_pod, &pod), 0);
	assert_int_equal(netns_open(path_worker, &worker), 0);
	assert_int_equal(netns_open(path_vmpod, &vmpod), 0);
	bool has;
	assert_int_equal(netns_tc_has_ingress(pod, "eth0", &has), 0);
	assert_true(has);
	assert_int_equal(netns_tc_has_ingress(pod, PODNET_POD_VXLAN, &has), 0);
	assert_true(has);
	int ifindex;
	assert_int_equal(netns_link_index(worker, "ppvxlan1", &ifindex), -ENODEV);
	assert_rules(path_worker, VM_IP);
	assert_rules(path_vm, "192.168.77.1");

	/* VM: the tunnel is the pod's eth0 with the worker's MAC and address. */
	char mac[18];
	uint32_t mtu;
	assert_int_equal(netns_link_info(vmpod, "eth0", mac, &mtu), 0);
	assert_string_equal(mac, model.pod_hw_addr);
	assert_int_equal(mtu, 1450);
	_cleanup_strv_free_ char **addrs = NULL;
	assert_int_equal(netns_link_ipv4_addrs(vmpod, "eth0", &addrs), 0);
	assert_string_equal(addrs[0], "10.244.1.7/24");
	_cleanup_free_ char *dev = NULL, *gw = NULL;
	assert_int_equal(netns_default_route(vmpod, &dev, &gw), 0);
	assert_string_equal(gw, "10.244.1.1");

	assert_tcp_through_tunnel();

	/* Setting up again replaces, and traffic still flows. */
	r = netns_run(path_worker, setup_fn, &msg);
	if (r < 0)
		fail_msg("worker setup again: %s", msg);
	assert_tcp_through_tunnel();

	r = netns_run(path_worker, teardown_fn, &msg);
	if (r < 0)
		fail_msg("teardown: %s", msg);
	assert_int_equal(netns_tc_has_ingress(pod, "eth0", &has), 0);
	assert_false(has);
	assert_int_equal(netns_link_index(pod, PODNET_POD_VXLAN, &ifindex), -ENODEV);
	for (int i = 1; i <= 5; i++) {
		_cleanup_free_ char *name = str_printf("ppvxlan%d", i);
		assert_int_equal(netns_link_index(worker, name, &ifindex), -ENODEV);
	}
	assert_no_rules(path_worker);
	/* Idempotent: again, and with the pod netns gone. */
	assert_int_equal(netns_run(path_worker, teardown_fn, &msg), 0);
	assert_int_equal(run("ip", "netns", "del", ns_pod, NULL), 0);
	assert_int_equal(netns_run(path_worker, teardown_fn, &msg), 0);
	apf_config_done(&vm_cfg);
	netns_pod_network_done(&model);
}

static int vm_wait_fn(void *userdata)
{
	char **msg = userdata;
	struct netns_pod_network n = {.podip = "10.0.0.2/32",
				      .interface = "eth0",
				      .worker_node_ip = "192.168.1.1/24",
				      .vxlan_id = 7};
	struct forwarder_podnet_options o = {.pod_netns = "/run/netns/pptest-never-made",
					     .wait_timeout_ns = 50 * NSEC_PER_MSEC,
					     .poll_interval_ns = 10 * NSEC_PER_MSEC};
	return forwarder_podnet_setup(&n, &o, msg);
}

static void test_vm_wait_times_out(void **state)
{
	/* A namespace without a default route: the bounded wait ends with -ETIMEDOUT and
	 * nothing else is attempted. */
	char name[64], path[96];
	snprintf(name, sizeof(name), "pptest%d-empty", (int)getpid());
	snprintf(path, sizeof(path), "/run/netns/%s", name);
	assert_int_equal(run("ip", "netns", "add", name, NULL), 0);
	_cleanup_free_ char *msg = NULL;
	int r = netns_run(path, vm_wait_fn, &msg);
	run("ip", "netns", "del", name, NULL);
	assert_int_equal(r, -ETIMEDOUT);
	assert_non_null(strstr(msg, "waiting for the primary interface"));
	assert_false(netns_is_mounted("/run/netns/pptest-never-made"));
}

int main(void)
{
	if (geteuid() != 0) {
		printf("SKIP: test-podnet needs root (network namespaces)\n");
		return 77;
	}
	if (run("ip", "netns", "add", "pptest-probe", NULL) != 0) {
		printf("SKIP: cannot create network namespaces\n");
		return 77;
	}
	run("ip", "netns", "del", "pptest-probe", NULL);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_inspect),
	    cmocka_unit_test(test_inspect_errors),
	    cmocka_unit_test(test_setup_traffic_teardown),
	    cmocka_unit_test(test_vm_wait_times_out),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

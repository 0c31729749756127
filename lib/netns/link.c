/* lib/netns: links, addresses, routes and neighbours through one namespace's netlink socket. */
#include <arpa/inet.h>
#include <ctype.h>
#include <net/if.h>
#include <netlink/cache.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/vxlan.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/route.h>
#include <linux/rtnetlink.h>

#include "netns-internal.h"

DEFINE_CLEANUP(struct rtnl_link, rtnl_link_put)
DEFINE_CLEANUP(struct nl_cache, nl_cache_free)
DEFINE_CLEANUP(struct nl_addr, nl_addr_put)
DEFINE_CLEANUP(struct rtnl_addr, rtnl_addr_put)
DEFINE_CLEANUP(struct rtnl_route, rtnl_route_put)
DEFINE_CLEANUP(struct rtnl_neigh, rtnl_neigh_put)

static int get_link(struct netns *n, const char *name, struct rtnl_link **ret)
{
	if (str_empty(name) || strlen(name) >= IFNAMSIZ)
		return -EINVAL;
	int r = rtnl_link_get_kernel(n->sk, 0, name, ret);
	if (r < 0) {
		r = netns_nlerr(r);
		return r == -ENOENT ? -ENODEV : r;
	}
	return 0;
}

int netns_link_index(struct netns *n, const char *name, int *ret_ifindex)
{
	_cleanup_(rtnl_link_putp) struct rtnl_link *l = NULL;
	int r = get_link(n, name, &l);
	if (r < 0)
		return r;
	*ret_ifindex = rtnl_link_get_ifindex(l);
	return 0;
}

static char *ifname(struct netns *n, int ifindex)
{
	_cleanup_(rtnl_link_putp) struct rtnl_link *l = NULL;
	if (rtnl_link_get_kernel(n->sk, ifindex, NULL, &l) < 0)
		return str_dup("");
	return str_dup(rtnl_link_get_name(l));
}

/* "a.b.c.d" or, with prefix, "a.b.c.d/len"; "" for anything but IPv4. */
static char *addr_string(struct nl_addr *a, bool prefix)
{
	char buf[INET_ADDRSTRLEN];
	if (!a || nl_addr_get_family(a) != AF_INET || nl_addr_get_len(a) != 4) {
		if (a && prefix && nl_addr_get_family(a) == AF_INET && nl_addr_get_len(a) == 0)
			return str_printf("0.0.0.0/%u", nl_addr_get_prefixlen(a));
		return str_dup("");
	}
	if (!inet_ntop(AF_INET, nl_addr_get_binary_addr(a), buf, sizeof(buf)))
		return str_dup("");
	if (prefix)
		return str_printf("%s/%u", buf, nl_addr_get_prefixlen(a));
	return str_dup(buf);
}

static void mac_string(struct nl_addr *a, char ret[18])
{
	ret[0] = '\0';
	if (!a || nl_addr_get_len(a) != 6)
		return;
	const uint8_t *b = nl_addr_get_binary_addr(a);
	snprintf(ret, 18, "%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5]);
}

/* Order "eth0" < "eth1" < "eth10": by name stem, then number. */
static int stem_cmp(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), sa = la, sb = lb;
	while (sa > 0 && isdigit((unsigned char)a[sa - 1]))
		sa--;
	while (sb > 0 && isdigit((unsigned char)b[sb - 1]))
		sb--;
	int c = strncmp(a, b, MIN(sa, sb));
	if (c != 0 || sa != sb)
		return c != 0 ? c : (sa < sb ? -1 : 1);
	if (la - sa != lb - sb)
		return la - sa < lb - sb ? -1 : 1;
	return strcmp(a + sa, b + sb);
}

static bool is_main_ipv4_unicast(struct rtnl_route *rt)
{
	return rtnl_route_get_family(rt) == AF_INET && rtnl_route_get_table(rt) == RT_TABLE_MAIN &&
	       rtnl_route_get_type(rt) == RTN_UNICAST;
}

int netns_default_route(struct netns *n, char **ret_dev, char **ret_gw)
{
	_cleanup_(nl_cache_freep) struct nl_cache *cache = NULL;
	int r = rtnl_route_alloc_cache(n->sk, AF_INET, 0, &cache);
	if (r < 0)
		return netns_nlerr(r);
	_cleanup_free_ char *best = NULL, *best_gw = NULL;
	for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
		struct rtnl_route *rt = (struct rtnl_route *)o;
		struct nl_addr *dst = rtnl_route_get_dst(rt);
		if (!is_main_ipv4_unicast(rt) || (dst && nl_addr_get_prefixlen(dst) != 0))
			continue;
		struct rtnl_nexthop *nh = rtnl_route_nexthop_n(rt, 0);
		if (!nh)
			continue;
		_cleanup_free_ char *dev = ifname(n, rtnl_route_nh_get_ifindex(nh));
		if (!dev)
			return -ENOMEM;
		if (!dev[0] || (best && stem_cmp(dev, best) >= 0))
			continue;
		char *gw = addr_string(rtnl_route_nh_get_gateway(nh), false);
		if (!gw)
			return -ENOMEM;
		free(best);
		free(best_gw);
		best = TAKE_PTR(dev);
		best_gw = gw;
	}
	if (!best)
		return -ENETUNREACH;
	*ret_dev = TAKE_PTR(best);
	if (ret_gw)
		*ret_gw = TAKE_PTR(best_gw);
	return 0;
}

int netns_link_ipv4_addrs(struct netns *n, const char *link, char ***ret)
{
	int ifindex;
	int r = netns_link_index(n, link, &ifindex);
	if (r < 0)
		return r;
	_cleanup_(nl_cache_freep) struct nl_cache *cache = NULL;
	r = rtnl_addr_alloc_cache(n->sk, &cache);
	if (r < 0)
		return netns_nlerr(r);
	_cleanup_strv_free_ char **v = calloc(1, sizeof(char *));
	size_t count = 0;
	if (!v)
		return -ENOMEM;
	for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
		struct rtnl_addr *a = (struct rtnl_addr *)o;
		if (rtnl_addr_get_family(a) != AF_INET || rtnl_addr_get_ifindex(a) != ifindex)
			continue;
		char **nv = realloc(v, (count + 2) * sizeof(char *));
		if (!nv)
			return -ENOMEM;
		v = nv;
		v[count] = addr_string(rtnl_addr_get_local(a), true);
		v[++count] = NULL;
		if (!v[count - 1])
			return -ENOMEM;
	}
	*ret = TAKE_PTR(v);
	return 0;
}

int netns_link_info(struct netns *n, const char *link, char ret_mac[18], uint32_t *ret_mtu)
{
	_cleanup_(rtnl_link_putp) struct rtnl_link *l = NULL;
	int r = get_link(n, link, &l);
	if (r < 0)
		return r;
	if (ret_mac)
		mac_string(rtnl_link_get_addr(l), ret_mac);
	if (ret_mtu)
		*ret_mtu = rtnl_link_get_mtu(l);
	return 0;
}

static bool wanted_protocol(uint8_t p)
{
	return p == RTPROT_STATIC || p == RTPROT_BOOT || p == RTPROT_DHCP || p == RTPROT_KERNEL;
}

int netns_link_routes(struct netns *n, const char *link, struct netns_route **ret, size_t *ret_n)
{
	int ifindex;
	int r = netns_link_index(n, link, &ifindex);
	if (r < 0)
		return r;
	_cleanup_(nl_cache_freep) struct nl_cache *cache = NULL;
	r = rtnl_route_alloc_cache(n->sk, AF_INET, 0, &cache);
	if (r < 0)
		return netns_nlerr(r);
	struct netns_route *v = NULL;
	size_t count = 0;
	r = 0;
	for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
		struct rtnl_route *rt = (struct rtnl_route *)o;
		struct rtnl_nexthop *nh = rtnl_route_nexthop_n(rt, 0);
		if (!is_main_ipv4_unicast(rt) || !wanted_protocol(rtnl_route_get_protocol(rt)) ||
		    !nh || rtnl_route_nh_get_ifindex(nh) != ifindex)
			continue;
		struct netns_route *nv = realloc(v, (count + 1) * sizeof(*v));
		if (!nv) {
			r = -ENOMEM;
			break;
		}
		v = nv;
		struct netns_route *e = &v[count++];
		*e = (struct netns_route){
		    .dst = rtnl_route_get_dst(rt) ? addr_string(rtnl_route_get_dst(rt), true)
						  : str_dup("0.0.0.0/0"),
		    .gw = addr_string(rtnl_route_nh_get_gateway(nh), false),
		    .dev = str_dup(link),
		    .protocol = rtnl_route_get_protocol(rt),
		    .scope = rtnl_route_get_scope(rt),
		};
		if (!e->dst || !e->gw || !e->dev) {
			r = -ENOMEM;
			break;
		}
	}
	if (r < 0) {
		netns_routes_free(v, count);
		return r;
	}
	*ret = v;
	*ret_n = count;
	return 0;
}

int netns_link_neighbors(struct netns *n, const char *link, struct netns_neighbor **ret,
			 size_t *ret_n)
{
	int ifindex;
	int r = netns_link_index(n, link, &ifindex);
	if (r < 0)
		return r;
	_cleanup_(nl_cache_freep) struct nl_cache *cache = NULL;
	r = rtnl_neigh_alloc_cache(n->sk, &cache);
	if (r < 0)
		return netns_nlerr(r);
	struct netns_neighbor *v = NULL;
	size_t count = 0;
	r = 0;
	for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
		struct rtnl_neigh *nb = (struct rtnl_neigh *)o;
		if (rtnl_neigh_get_family(nb) != AF_INET || rtnl_neigh_get_ifindex(nb) != ifindex ||
		    !(rtnl_neigh_get_state(nb) & NUD_PERMANENT))
			continue;
		struct netns_neighbor *nv = realloc(v, (count + 1) * sizeof(*v));
		if (!nv) {
			r = -ENOMEM;
			break;
		}
		v = nv;
		char mac[18];
		mac_string(rtnl_neigh_get_lladdr(nb), mac);
		struct netns_neighbor *e = &v[count++];
		*e = (struct netns_neighbor){
		    .ip = addr_string(rtnl_neigh_get_dst(nb), false),
		    .hw_addr = str_dup(mac),
		    .dev = str_dup(link),
		    .state = NETNS_NEIGHBOR_PERMANENT,
		};
		if (!e->ip || !e->hw_addr || !e->dev) {
			r = -ENOMEM;
			break;
		}
	}
	if (r < 0) {
		netns_neighbors_free(v, count);
		return r;
	}
	*ret = v;
	*ret_n = count;
	return 0;
}

static int parse_addr(const char *s, struct nl_addr **ret)
{
	if (str_empty(s))
		return -EINVAL;
	int r = nl_addr_parse(s, AF_INET, ret);
	if (r < 0)
		return -EINVAL;
	if (nl_addr_get_family(*ret) != AF_INET) {
		nl_addr_put(*ret);
		*ret = NULL;
		return -EINVAL;
	}
	return 0;
}

int netns_vxlan_add(struct netns *n, const struct netns_vxlan *v)
{
	if (str_empty(v->name) || strlen(v->name) >= IFNAMSIZ)
		return -EINVAL;
	_cleanup_(rtnl_link_putp) struct rtnl_link *l = rtnl_link_vxlan_alloc();
	_cleanup_(nl_addr_putp) struct nl_addr *remote = NULL, *local = NULL;
	if (!l)
		return -ENOMEM;
	int r = parse_addr(v->remote, &remote);
	if (r < 0)
		return r;
	rtnl_link_set_name(l, v->name);
	if ((r = rtnl_link_vxlan_set_id(l, v->id)) < 0 ||
	    (r = rtnl_link_vxlan_set_group(l, remote)) < 0 ||
	    (r = rtnl_link_vxlan_set_port(l, v->port)) < 0)
		return netns_nlerr(r);
	if (!str_empty(v->local)) {
		if ((r = parse_addr(v->local, &local)) < 0)
			return r;
		if ((r = rtnl_link_vxlan_set_local(l, local)) < 0)
			return netns_nlerr(r);
	}
	if (!str_empty(v->underlay)) {
		int ifindex;
		if ((r = netns_link_index(n, v->underlay, &ifindex)) < 0)
			return r;
		if ((r = rtnl_link_vxlan_set_link(l, (uint32_t)ifindex)) < 0)
			return netns_nlerr(r);
	}
	r = rtnl_link_add(n->sk, l, NLM_F_CREATE | NLM_F_EXCL);
	return netns_nlerr(r);
}

/* Apply the attributes set in changes to link. */
static int link_change(struct netns *n, const char *link, struct rtnl_link *changes)
{
	_cleanup_(rtnl_link_putp) struct rtnl_link *orig = NULL;
	int r = get_link(n, link, &orig);
	if (r < 0)
		return r;
	return netns_nlerr(rtnl_link_change(n->sk, orig, changes, 0));
}

int netns_link_move(struct netns *n, const char *link, const struct netns *target,
		    const char *new_name)
{
	if (new_name && (str_empty(new_name) || strlen(new_name) >= IFNAMSIZ))
		return -EINVAL;
	_cleanup_(rtnl_link_putp) struct rtnl_link *c = rtnl_link_alloc();
	if (!c)
		return -ENOMEM;
	rtnl_link_set_ns_fd(c, target->fd);
	/* The kernel names the device in the target namespace in the same request, so it never
	 * appears there under a name that could clash. */
	if (new_name)
		rtnl_link_set_name(c, new_name);
	return link_change(n, link, c);
}

int netns_link_set_mac(struct netns *n, const char *link, const char *mac)
{
	_cleanup_(rtnl_link_putp) struct rtnl_link *c = rtnl_link_alloc();
	_cleanup_(nl_addr_putp) struct nl_addr *a = NULL;
	if (!c)
		return -ENOMEM;
	if (str_empty(mac) || nl_addr_parse(mac, AF_LLC, &a) < 0 || nl_addr_get_len(a) != 6)
		return -EINVAL;
	rtnl_link_set_addr(c, a);
	return link_change(n, link, c);
}

int netns_link_set_mtu(struct netns *n, const char *link, uint32_t mtu)
{
	_cleanup_(rtnl_link_putp) struct rtnl_link *c = rtnl_link_alloc();
	if (!c)
		return -ENOMEM;
	rtnl_link_set_mtu(c, mtu);
	return link_change(n, link, c);
}

int netns_link_set_up(struct netns *n, const char *link)
{
	_cleanup_(rtnl_link_putp) struct rtnl_link *c = rtnl_link_alloc();
	if (!c)
		return -ENOMEM;
	rtnl_link_set_flags(c, IFF_UP);
	return link_change(n, link, c);
}

int netns_link_del(struct netns *n, const char *link)
{
	_cleanup_(rtnl_link_putp) struct rtnl_link *l = NULL;
	int r = get_link(n, link, &l);
	if (r < 0)
		return r;
	r = netns_nlerr(rtnl_link_delete(n->sk, l));
	return r == -ENOENT ? -ENODEV : r;
}

int netns_addr_add(struct netns *n, const char *link, const char *prefix)
{
	int ifindex;
	int r = netns_link_index(n, link, &ifindex);
	if (r < 0)
		return r;
	_cleanup_(nl_addr_putp) struct nl_addr *local = NULL;
	if ((r = parse_addr(prefix, &local)) < 0)
		return r;
	_cleanup_(rtnl_addr_putp) struct rtnl_addr *a = rtnl_addr_alloc();
	if (!a)
		return -ENOMEM;
	rtnl_addr_set_ifindex(a, ifindex);
	rtnl_addr_set_family(a, AF_INET);
	if ((r = rtnl_addr_set_local(a, local)) < 0)
		return netns_nlerr(r);
	rtnl_addr_set_prefixlen(a, nl_addr_get_prefixlen(local));
	return netns_nlerr(rtnl_addr_add(n->sk, a, 0));
}

static int route_new(int ifindex, const char *gw, struct rtnl_route **ret)
{
	_cleanup_(rtnl_route_putp) struct rtnl_route *rt = rtnl_route_alloc();
	_cleanup_(nl_addr_putp) struct nl_addr *g = NULL;
	if (!rt)
		return -ENOMEM;
	struct rtnl_nexthop *nh = rtnl_route_nh_alloc();
	if (!nh)
		return -ENOMEM;
	rtnl_route_nh_set_ifindex(nh, ifindex);
	if (!str_empty(gw)) {
		int r = parse_addr(gw, &g);
		if (r < 0) {
			rtnl_route_nh_free(nh);
			return r;
		}
		rtnl_route_nh_set_gateway(nh, g);
	}
	rtnl_route_add_nexthop(rt, nh);
	rtnl_route_set_family(rt, AF_INET);
	rtnl_route_set_table(rt, RT_TABLE_MAIN);
	rtnl_route_set_type(rt, RTN_UNICAST);
	*ret = TAKE_PTR(rt);
	return 0;
}

int netns_route_del_subnet(struct netns *n, const char *link, const char *prefix)
{
	int ifindex;
	int r = netns_link_index(n, link, &ifindex);
	if (r < 0)
		return r;
	_cleanup_(nl_addr_putp) struct nl_addr *dst = NULL;
	if ((r = parse_addr(prefix, &dst)) < 0)
		return r;
	/* The network address: clear the host bits. */
	unsigned plen = nl_addr_get_prefixlen(dst);
	uint8_t *b = nl_addr_get_binary_addr(dst);
	uint32_t a = ntohl(*(uint32_t *)b);
	a &= plen == 0 ? 0 : ~(uint32_t)0 << (32 - plen);
	a = htonl(a);
	memcpy(b, &a, 4);
	_cleanup_(rtnl_route_putp) struct rtnl_route *rt = NULL;
	if ((r = route_new(ifindex, NULL, &rt)) < 0)
		return r;
	rtnl_route_set_dst(rt, dst);
	rtnl_route_set_protocol(rt, RTPROT_KERNEL);
	rtnl_route_set_scope(rt, RT_SCOPE_LINK);
	r = netns_nlerr(rtnl_route_delete(n->sk, rt, 0));
	return r == -ENOENT ? 0 : r;
}

int netns_route_add(struct netns *n, const struct netns_route *rt, const char *dev)
{
	int ifindex;
	int r = netns_link_index(n, dev ? dev : rt->dev, &ifindex);
	if (r < 0)
		return r;
	_cleanup_(nl_addr_putp) struct nl_addr *dst = NULL;
	if ((r = parse_addr(str_empty(rt->dst) ? "0.0.0.0/0" : rt->dst, &dst)) < 0)
		return r;
	_cleanup_(rtnl_route_putp) struct rtnl_route *route = NULL;
	if ((r = route_new(ifindex, rt->gw, &route)) < 0)
		return r;
	rtnl_route_set_dst(route, dst);
	rtnl_route_set_protocol(route, rt->protocol ? rt->protocol : RTPROT_BOOT);
	rtnl_route_set_scope(route, rt->scope);
	return netns_nlerr(rtnl_route_add(n->sk, route, NLM_F_REPLACE));
}

int netns_neighbor_add(struct netns *n, const struct netns_neighbor *nb, const char *dev)
{
	int ifindex;
	int r = netns_link_index(n, dev ? dev : nb->dev, &ifindex);
	if (r < 0)
		return r;
	_cleanup_(nl_addr_putp) struct nl_addr *ip = NULL, *mac = NULL;
	if ((r = parse_addr(nb->ip, &ip)) < 0)
		return r;
	if (str_empty(nb->hw_addr) || nl_addr_parse(nb->hw_addr, AF_LLC, &mac) < 0 ||
	    nl_addr_get_len(mac) != 6)
		return -EINVAL;
	_cleanup_(rtnl_neigh_putp) struct rtnl_neigh *e = rtnl_neigh_alloc();
	if (!e)
		return -ENOMEM;
	rtnl_neigh_set_ifindex(e, ifindex);
	rtnl_neigh_set_family(e, AF_INET);
	if ((r = rtnl_neigh_set_dst(e, ip)) < 0)
		return netns_nlerr(r);
	rtnl_neigh_set_lladdr(e, mac);
	rtnl_neigh_set_state(e, nb->state ? (int)nb->state : NUD_PERMANENT);
	return netns_nlerr(rtnl_neigh_add(n->sk, e, NLM_F_CREATE | NLM_F_REPLACE));
}

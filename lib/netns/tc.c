/* lib/netns: the tc ingress redirect that splices the pod interface and the tunnel together. */
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/tc_act/tc_mirred.h>
#include <netlink/route/act/mirred.h>
#include <netlink/route/action.h>
#include <netlink/route/classifier.h>
#include <netlink/route/cls/u32.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/tc.h>

#include "netns-internal.h"

DEFINE_CLEANUP(struct rtnl_qdisc, rtnl_qdisc_put)
DEFINE_CLEANUP(struct rtnl_cls, rtnl_cls_put)
DEFINE_CLEANUP(struct rtnl_act, rtnl_act_put)
DEFINE_CLEANUP(struct nl_cache, nl_cache_free)

/* ffff:0, spelled out: libnl's TC_HANDLE() shifts a signed int past its range */
#define INGRESS_HANDLE 0xffff0000u

static int ingress_qdisc(int ifindex, struct rtnl_qdisc **ret)
{
	struct rtnl_qdisc *q = rtnl_qdisc_alloc();
	if (!q)
		return -ENOMEM;
	rtnl_tc_set_ifindex(TC_CAST(q), ifindex);
	rtnl_tc_set_parent(TC_CAST(q), TC_H_INGRESS);
	rtnl_tc_set_handle(TC_CAST(q), INGRESS_HANDLE);
	int r = rtnl_tc_set_kind(TC_CAST(q), "ingress");
	if (r < 0) {
		rtnl_qdisc_put(q);
		return netns_nlerr(r);
	}
	*ret = q;
	return 0;
}

int netns_tc_has_ingress(struct netns *n, const char *link, bool *ret)
{
	int ifindex;
	int r = netns_link_index(n, link, &ifindex);
	if (r < 0)
		return r;
	_cleanup_(nl_cache_freep) struct nl_cache *cache = NULL;
	r = rtnl_qdisc_alloc_cache(n->sk, &cache);
	if (r < 0)
		return netns_nlerr(r);
	struct rtnl_qdisc *q = rtnl_qdisc_get_by_parent(cache, ifindex, TC_H_INGRESS);
	*ret = q != NULL;
	rtnl_qdisc_put(q);
	return 0;
}

int netns_tc_redirect_del(struct netns *n, const char *from)
{
	bool has;
	int r = netns_tc_has_ingress(n, from, &has);
	if (r == -ENODEV)
		return 0;
	if (r < 0 || !has)
		return r;
	int ifindex;
	if ((r = netns_link_index(n, from, &ifindex)) < 0)
		return r;
	_cleanup_(rtnl_qdisc_putp) struct rtnl_qdisc *q = NULL;
	if ((r = ingress_qdisc(ifindex, &q)) < 0)
		return r;
	r = netns_nlerr(rtnl_qdisc_delete(n->sk, q));
	return r == -ENOENT ? 0 : r;
}

int netns_tc_redirect_add(struct netns *n, const char *from, const char *to)
{
	int from_index, to_index;
	int r;
	if ((r = netns_link_index(n, from, &from_index)) < 0 ||
	    (r = netns_link_index(n, to, &to_index)) < 0)
		return r;
	_cleanup_(rtnl_qdisc_putp) struct rtnl_qdisc *q = NULL;
	if ((r = ingress_qdisc(from_index, &q)) < 0)
		return r;
	if ((r = netns_nlerr(rtnl_qdisc_add(n->sk, q, NLM_F_CREATE | NLM_F_EXCL))) < 0)
		return r;

	_cleanup_(rtnl_cls_putp) struct rtnl_cls *c = rtnl_cls_alloc();
	_cleanup_(rtnl_act_putp) struct rtnl_act *act = rtnl_act_alloc();
	if (!c || !act)
		return -ENOMEM;
	rtnl_tc_set_ifindex(TC_CAST(c), from_index);
	rtnl_tc_set_parent(TC_CAST(c), INGRESS_HANDLE);
	rtnl_cls_set_protocol(c, ETH_P_ALL);
	rtnl_cls_set_prio(c, 1);
	if ((r = rtnl_tc_set_kind(TC_CAST(c), "u32")) < 0 ||
	    (r = rtnl_tc_set_kind(TC_CAST(act), "mirred")) < 0)
		return netns_nlerr(r);
	/* A key with mask 0 matches every packet; terminal so the action always runs. */
	if ((r = rtnl_u32_set_cls_terminal(c)) < 0 ||
	    (r = rtnl_u32_add_key_uint32(c, 0, 0, 0, 0)) < 0)
		return netns_nlerr(r);
	rtnl_mirred_set_action(act, TCA_EGRESS_REDIR);
	rtnl_mirred_set_policy(act, TC_ACT_STOLEN);
	rtnl_mirred_set_ifindex(act, (uint32_t)to_index);
	if ((r = rtnl_u32_add_action(c, act)) < 0)
		return netns_nlerr(r);
	return netns_nlerr(rtnl_cls_add(n->sk, c, NLM_F_CREATE | NLM_F_EXCL));
}

// SPDX-License-Identifier: GPL-2.0
/*
 * xdpstack's XDP program: redirects to the AF_XDP socket of the receive queue only the frames
 * the stack owns, and passes everything else to the kernel.
 *
 * Not IPv6:
 *  (a) destination MAC + VLAN id in owned_macs;
 *  (b) ARP whose target IPv4 + VLAN id is in owned_ip4 (broadcast requests for our addresses);
 *  (e) IPv4 to the Ethernet broadcast whose destination + VLAN id is in owned_ip4: the stack owns
 *      the broadcast addresses of its subnets and 255.255.255.255 on the VLANs where it has IPv4
 *      addresses (a socket bound to 0.0.0.0 hears them, as on Linux).
 * IPv6 (decided by the IPv6 header alone, whatever the MAC, so that the host keeps its own IPv6
 * traffic on the same device and MAC: its addresses, link-local NDP, RA, MLD):
 *  (c) unicast destination + VLAN id in owned_ip6, sent to a MAC in owned_macs;
 *  (d) ICMPv6 neighbour solicitation / advertisement (RFC 4861 4.3, 4.4) sent to a solicited-node
 *      group in owned_snm (ff02::1:ffXX:XXXX, RFC 4291 2.7.1) or to all-nodes ff02::1 (unsolicited
 *      NA, a DAD defence: RFC 4861 7.2.4, RFC 4862 5.4.4), whose target + VLAN id is in owned_ip6
 *      (a group is shared by every address with the same low 24 bits, the host's included).
 *  Every other IPv6 frame (other multicast, RA, MLD, NDP for other targets) is passed.
 *
 * Early shedding: of the frames redirected, TCP SYNs (SYN set, ACK clear) over IPv4 or IPv6 (also
 * inside IPIP / IPv6-in-IPv6, as a load balancer sends them to a VIP) and
 * ARP frames each pass a policer (rate and burst set by user space, see xdpstack_maps.h); frames
 * over the rate are dropped here (XDP_DROP, counted) before they take a slot of the socket's fill
 * ring, so that a flood of them cannot starve the established traffic that shares the ring.
 *
 * VLAN handling: an 802.1ad outer tag (0x88a8) is skipped; the key is the 802.1Q id (the inner
 * one with QinQ; the outer id when an 802.1ad tag carries no inner tag). 0 = untagged.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <xdp/xdp_helpers.h>
#include "xdpstack_maps.h"

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, XDPSTACK_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XDPSTACK_MAX_OWNED);
	__type(key, struct xs_mac_key);
	__type(value, __u8);
} owned_macs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XDPSTACK_MAX_OWNED);
	__type(key, struct xs_ip4_key);
	__type(value, __u8);
} owned_ip4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XDPSTACK_MAX_OWNED);
	__type(key, struct xs_ip6_key);
	__type(value, __u8);
} owned_ip6 SEC(".maps");

/* Solicited-node groups of the owned IPv6 addresses (refcounted by user space). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XDPSTACK_MAX_OWNED);
	__type(key, struct xs_snm_key);
	__type(value, __u8);
} owned_snm SEC(".maps");

/* Policer settings (XS_POLICE_SYN, XS_POLICE_ARP), written by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct xs_police_cfg);
} xs_police SEC(".maps");

/* Policer state: one bucket per device for all CPUs (a per-CPU bucket would let a flood spread
 * over n CPUs through n times the rate). */
struct xs_police_state {
	struct bpf_spin_lock lock;
	__u64 tat;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct xs_police_state);
} xs_police_state SEC(".maps");

/* Per-CPU counters (XS_CNT_*): redirected, passed, SYNs policed, ARP policed. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XS_CNT_N);
	__type(key, __u32);
	__type(value, __u64);
} xs_counters SEC(".maps");

struct vlan_tag {
	__be16 tci;
	__be16 proto;
};

static __always_inline int count(int idx, int verdict)
{
	__u32 k = idx;
	__u64 *c = bpf_map_lookup_elem(&xs_counters, &k);
	if (c)
		*c += 1;
	return verdict;
}

static __always_inline int redirect(struct xdp_md *ctx)
{
	int v = bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
	return count(v == XDP_REDIRECT ? XS_CNT_REDIRECTED : XS_CNT_PASSED, v);
}

/* 1 when a frame of policer idx exceeds its rate (GCRA; see xdpstack_maps.h), 0 otherwise. */
static __always_inline int over_rate(__u32 idx)
{
	struct xs_police_cfg *c = bpf_map_lookup_elem(&xs_police, &idx);
	if (!c || !c->interval_ns)
		return 0;
	__u64 interval = c->interval_ns, burst = c->burst_ns;
	struct xs_police_state *s = bpf_map_lookup_elem(&xs_police_state, &idx);
	if (!s)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	int over = 0;
	bpf_spin_lock(&s->lock);
	__u64 tat = s->tat > now ? s->tat : now;
	if (tat - now > burst)
		over = 1;
	else
		s->tat = tat + interval;
	bpf_spin_unlock(&s->lock);
	return over;
}

/* Redirects an ARP frame unless the ARP policer sheds it. */
static __always_inline int redirect_arp(struct xdp_md *ctx)
{
	if (over_rate(XS_POLICE_ARP))
		return count(XS_CNT_ARP_POLICED, XDP_DROP);
	return redirect(ctx);
}

/*
 * The IPv4 (v 4) or IPv6 (v 6) header at p: *l4 gets where its payload starts and *nh its protocol
 * (IPv6: the fixed header's next header; extension headers are not walked). -1 when the header is
 * truncated, of another version, or a later fragment (no upper-layer header in it).
 */
static __always_inline int ip_payload(__u8 *p, void *end, int v, __u8 **l4, __u8 *nh)
{
	if (v == 4) {
		if ((void *)(p + 20) > end || (p[0] >> 4) != 4 || (p[0] & 0x0f) < 5)
			return -1;
		if (((p[6] & 0x1f) | p[7]) != 0)
			return -1;
		*nh = p[9];
		*l4 = p + (p[0] & 0x0f) * 4;
		return 0;
	}
	if ((void *)(p + 40) > end || (p[0] >> 4) != 6)
		return -1;
	*nh = p[6];
	*l4 = p + 40;
	return 0;
}

/*
 * 1 when the IPv4 / IPv6 packet at p is a TCP SYN without ACK (a connection request), also inside
 * one level of IP-in-IP encapsulation (IPIP, RFC 2003: protocol 4; IPv6 tunnels, RFC 2473: 41) as
 * a load balancer sends a VIP's traffic: a SYN flood through it is shed as any other.
 */
static __always_inline int is_tcp_syn(__u8 *p, void *end, __u16 proto)
{
	__u8 *tcp;
	__u8 nh;
	int v;
	if (proto == bpf_htons(ETH_P_IP))
		v = 4;
	else if (proto == bpf_htons(ETH_P_IPV6))
		v = 6;
	else
		return 0;
	if (ip_payload(p, end, v, &tcp, &nh) < 0)
		return 0;
	if (nh == IPPROTO_IPIP || nh == IPPROTO_IPV6) {
		if (ip_payload(tcp, end, nh == IPPROTO_IPIP ? 4 : 6, &tcp, &nh) < 0)
			return 0;
	}
	if (nh != IPPROTO_TCP)
		return 0;
	if ((void *)(tcp + 14) > end)
		return 0;
	/* A connection request (RFC 9293 3.5): SYN set, ACK clear (byte 13: CWR ECE URG ACK PSH RST SYN FIN). */
	return (tcp[13] & 0x12) == 0x02;
}

/*
 * Skips one VLAN tag of type tpid at *p, if there is one: *vlan gets its id, *proto the type
 * after it. -1 when the tag is truncated.
 */
static __always_inline int skip_tag(void **p, void *end, __u16 *proto, __u16 *vlan, __u16 tpid)
{
	struct vlan_tag *t = *p;
	if (*proto != bpf_htons(tpid))
		return 0;
	if ((void *)(t + 1) > end)
		return -1;
	*vlan = bpf_ntohs(t->tci) & 0x0fff;
	*proto = t->proto;
	*p = t + 1;
	return 0;
}

/* 1 when the stack owns the destination MAC of the frame on this VLAN. */
static __always_inline int mac_owned(struct ethhdr *eth, __u16 vlan)
{
	struct xs_mac_key mk = {};
	__builtin_memcpy(mk.mac, eth->h_dest, 6);
	mk.vlan = vlan;
	return bpf_map_lookup_elem(&owned_macs, &mk) != 0;
}

/* The verdict for an IPv6 packet at ip6 (rules (c) and (d) above). */
static __always_inline int ipv6_verdict(struct xdp_md *ctx, struct ethhdr *eth, __u8 *ip6, void *end, __u16 vlan)
{
	struct xs_ip6_key k6 = {};
	__u32 w[4];

	if ((void *)(ip6 + 40) > end || (ip6[0] >> 4) != 6)
		return count(XS_CNT_PASSED, XDP_PASS);
	__builtin_memcpy(w, ip6 + 24, 16);
	k6.vlan = vlan;
	if ((w[0] & bpf_htonl(0xff000000)) != bpf_htonl(0xff000000)) {
		/* (c) unicast to an owned address, through an owned MAC (as the IPv4 path). */
		__builtin_memcpy(k6.addr, w, 16);
		if (!bpf_map_lookup_elem(&owned_ip6, &k6) || !mac_owned(eth, vlan))
			return count(XS_CNT_PASSED, XDP_PASS);
		if (is_tcp_syn(ip6, end, bpf_htons(ETH_P_IPV6)) && over_rate(XS_POLICE_SYN))
			return count(XS_CNT_SYN_POLICED, XDP_DROP);
		return redirect(ctx);
	}
	/* (d) link-local scope ff02::/16 only: ff02::1:ffXX:XXXX or ff02::1. */
	if (w[0] != bpf_htonl(0xff020000) || w[1] != 0)
		return count(XS_CNT_PASSED, XDP_PASS);
	if (w[2] == bpf_htonl(1) && (w[3] & bpf_htonl(0xff000000)) == bpf_htonl(0xff000000)) {
		struct xs_snm_key ks = {};
		__builtin_memcpy(ks.tail, &w[3], 4);
		ks.vlan = vlan;
		if (!bpf_map_lookup_elem(&owned_snm, &ks))
			return count(XS_CNT_PASSED, XDP_PASS);
	} else if (w[2] != 0 || w[3] != bpf_htonl(1)) {
		return count(XS_CNT_PASSED, XDP_PASS);
	}
	/* NS / NA right after the fixed header (type, code, checksum, flags, target 16). */
	if ((void *)(ip6 + 40 + 24) > end || ip6[6] != 58 /* ICMPv6 */)
		return count(XS_CNT_PASSED, XDP_PASS);
	__u8 *icmp = ip6 + 40;
	if (icmp[0] != 135 && icmp[0] != 136)
		return count(XS_CNT_PASSED, XDP_PASS);
	__builtin_memcpy(k6.addr, icmp + 8, 16);
	if (bpf_map_lookup_elem(&owned_ip6, &k6))
		return redirect(ctx);
	return count(XS_CNT_PASSED, XDP_PASS);
}

SEC("xdp")
int xdpstack_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u16 proto, vlan = 0;
	void *p;

	if ((void *)(eth + 1) > end)
		return count(XS_CNT_PASSED, XDP_PASS);
	proto = eth->h_proto;
	p = eth + 1;
	if (skip_tag(&p, end, &proto, &vlan, ETH_P_8021AD) < 0 || skip_tag(&p, end, &proto, &vlan, ETH_P_8021Q) < 0)
		return count(XS_CNT_PASSED, XDP_PASS);

	if (proto == bpf_htons(ETH_P_IPV6))
		return ipv6_verdict(ctx, eth, p, end, vlan);

	if (mac_owned(eth, vlan)) {
		if (proto == bpf_htons(ETH_P_ARP))
			return redirect_arp(ctx);
		if (is_tcp_syn(p, end, proto) && over_rate(XS_POLICE_SYN))
			return count(XS_CNT_SYN_POLICED, XDP_DROP);
		return redirect(ctx);
	}

	if (proto == bpf_htons(ETH_P_IP)) {
		/* (e) an IPv4 broadcast the stack owns: destination at offset 16 of the header. */
		__u8 *ip = p;
		if ((void *)(ip + 20) > end || (ip[0] >> 4) != 4)
			return count(XS_CNT_PASSED, XDP_PASS);
		if ((eth->h_dest[0] & eth->h_dest[1] & eth->h_dest[2] & eth->h_dest[3] & eth->h_dest[4] & eth->h_dest[5]) != 0xff)
			return count(XS_CNT_PASSED, XDP_PASS);
		struct xs_ip4_key kb = {};
		__builtin_memcpy(&kb.addr, ip + 16, 4);
		kb.vlan = vlan;
		if (bpf_map_lookup_elem(&owned_ip4, &kb))
			return redirect(ctx);
		return count(XS_CNT_PASSED, XDP_PASS);
	}

	if (proto == bpf_htons(ETH_P_ARP)) {
		/* Ethernet/IPv4 ARP: 8-byte header, SHA(6) SPA(4) THA(6) TPA(4). */
		__u8 *a = p;
		if ((void *)(a + 28) > end)
			return count(XS_CNT_PASSED, XDP_PASS);
		if (a[0] != 0 || a[1] != 1 || a[2] != 0x08 || a[3] != 0 || a[4] != 6 || a[5] != 4)
			return count(XS_CNT_PASSED, XDP_PASS);
		struct xs_ip4_key k4 = {};
		__builtin_memcpy(&k4.addr, a + 24, 4);
		k4.vlan = vlan;
		if (bpf_map_lookup_elem(&owned_ip4, &k4))
			return redirect_arp(ctx);
	}
	return count(XS_CNT_PASSED, XDP_PASS);
}

/* Run config for the libxdp dispatcher: our verdicts XDP_PASS continue the chain. */
struct {
	__uint(priority, 20);
	__uint(XDP_PASS, 1);
} XDP_RUN_CONFIG(xdpstack_xdp);

char _license[] SEC("license") = "GPL";

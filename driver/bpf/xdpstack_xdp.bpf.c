// SPDX-License-Identifier: GPL-2.0
/*
 * xdpstack's XDP program: redirects to the AF_XDP socket of the receive queue only the frames
 * the stack owns, and passes everything else to the kernel.
 *
 *  (a) destination MAC + VLAN id in owned_macs (includes solicited-node multicast MACs the stack
 *      adds for its IPv6 addresses);
 *  (b) ARP whose target IPv4 + VLAN id is in owned_ip4 (broadcast requests for our addresses);
 *  (c) ICMPv6 neighbour solicitation / advertisement whose target + VLAN id is in owned_ip6.
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

/* Per-CPU counters: 0 redirected, 1 passed. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
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
	return count(v == XDP_REDIRECT ? 0 : 1, v);
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
		return count(1, XDP_PASS);
	proto = eth->h_proto;
	p = eth + 1;
	if (proto == bpf_htons(ETH_P_8021AD)) {
		struct vlan_tag *t = p;
		if ((void *)(t + 1) > end)
			return count(1, XDP_PASS);
		vlan = bpf_ntohs(t->tci) & 0x0fff;
		proto = t->proto;
		p = t + 1;
	}
	if (proto == bpf_htons(ETH_P_8021Q)) {
		struct vlan_tag *t = p;
		if ((void *)(t + 1) > end)
			return count(1, XDP_PASS);
		vlan = bpf_ntohs(t->tci) & 0x0fff;
		proto = t->proto;
		p = t + 1;
	}

	struct xs_mac_key mk = {};
	__builtin_memcpy(mk.mac, eth->h_dest, 6);
	mk.vlan = vlan;
	if (bpf_map_lookup_elem(&owned_macs, &mk))
		return redirect(ctx);

	if (proto == bpf_htons(ETH_P_ARP)) {
		/* Ethernet/IPv4 ARP: 8-byte header, SHA(6) SPA(4) THA(6) TPA(4). */
		__u8 *a = p;
		if ((void *)(a + 28) > end)
			return count(1, XDP_PASS);
		if (a[0] != 0 || a[1] != 1 || a[2] != 0x08 || a[3] != 0 || a[4] != 6 || a[5] != 4)
			return count(1, XDP_PASS);
		struct xs_ip4_key k4 = {};
		__builtin_memcpy(&k4.addr, a + 24, 4);
		k4.vlan = vlan;
		if (bpf_map_lookup_elem(&owned_ip4, &k4))
			return redirect(ctx);
		return count(1, XDP_PASS);
	}

	if (proto == bpf_htons(ETH_P_IPV6)) {
		/* IPv6 header (40) + ICMPv6 NS/NA (type, code, csum, flags/reserved, target 16). */
		__u8 *ip6 = p;
		if ((void *)(ip6 + 40 + 24) > end)
			return count(1, XDP_PASS);
		if ((ip6[0] >> 4) != 6 || ip6[6] != 58 /* ICMPv6 */)
			return count(1, XDP_PASS);
		__u8 *icmp = ip6 + 40;
		if (icmp[0] != 135 && icmp[0] != 136)
			return count(1, XDP_PASS);
		struct xs_ip6_key k6 = {};
		__builtin_memcpy(k6.addr, icmp + 8, 16);
		k6.vlan = vlan;
		if (bpf_map_lookup_elem(&owned_ip6, &k6))
			return redirect(ctx);
	}
	return count(1, XDP_PASS);
}

/* Run config for the libxdp dispatcher: our verdicts XDP_PASS continue the chain. */
struct {
	__uint(priority, 20);
	__uint(XDP_PASS, 1);
} XDP_RUN_CONFIG(xdpstack_xdp);

char _license[] SEC("license") = "GPL";

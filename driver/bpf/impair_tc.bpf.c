// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Path impairment for a lab peer (tc clsact on the peer's switch port p<i>; this kernel has no
 * netem). Each attached program (one per direction) owns its own pair of maps:
 *
 *   impair_cfg[0]  probabilities, as thresholds over 2^32: a frame is dropped when
 *                  bpf_get_prandom_u32() < loss, and one random bit of its L4 segment (header or
 *                  payload) is flipped when another draw < corrupt. The lab writes it at `lab up`
 *                  and on `lab impair` (a map update: the running lab keeps its links).
 *   impair_cnt[0]  what the program did: frames seen, dropped, corrupted.
 *
 * Why the switch port and not the peer's eth0: on the peer's egress the kernel's TCP frames are
 * still CHECKSUM_PARTIAL (the checksum is filled in later, after the tc hook), so a bit flipped there
 * would be covered by a freshly computed, valid checksum. On the switch port the checksum is final
 * in both directions, so a flipped bit is what a damaged wire delivers: only the receiver's checksum
 * check can catch it. Corrupted frames also get their checksum state reset (CHECKSUM_NONE), so the
 * receiving kernel verifies them in software.
 *
 * Corruption is limited to IPv4/IPv6 frames carrying TCP, ICMP, ICMPv6 or UDP with a checksum
 * (a UDP/IPv4 checksum of 0 means "none": a flip there could not be caught). Loss applies to every
 * frame, ARP included, as on a real link.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct impair_cfg {
	__u64 loss;    /* drop threshold over 2^32 (0 = never, 2^32 = always) */
	__u64 corrupt; /* bit-flip threshold over 2^32 */
};

struct impair_cnt {
	__u64 frames;
	__u64 dropped;
	__u64 corrupted;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct impair_cfg);
} impair_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct impair_cnt);
} impair_cnt SEC(".maps");

#define IPPROTO_ICMP_ 1
#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define IPPROTO_ICMPV6_ 58

/* Offset and length of the L4 segment of an IP frame whose flip a checksum covers; 0 if none. */
static __always_inline int l4_span(struct __sk_buff *skb, __u32 *off, __u32 *len)
{
	__u32 l3 = 12;
	__u16 type;
	__u8 b[8];

	/* In-band 802.1Q/802.1ad tags (at most two); an out-of-band tag is not in the data. */
	if (bpf_skb_load_bytes(skb, l3, &type, 2) < 0)
		return 0;
	if (type == bpf_htons(ETH_P_8021Q) || type == bpf_htons(ETH_P_8021AD)) {
		l3 += 4;
		if (bpf_skb_load_bytes(skb, l3, &type, 2) < 0)
			return 0;
		if (type == bpf_htons(ETH_P_8021Q) || type == bpf_htons(ETH_P_8021AD)) {
			l3 += 4;
			if (bpf_skb_load_bytes(skb, l3, &type, 2) < 0)
				return 0;
		}
	}
	l3 += 2;
	if (type == bpf_htons(ETH_P_IP)) {
		__u32 ihl, tot, proto;
		__u16 frag, csum;

		if (bpf_skb_load_bytes(skb, l3, b, 8) < 0)
			return 0;
		ihl = (b[0] & 0x0f) * 4;
		tot = ((__u32)b[2] << 8) | b[3];
		frag = (((__u16)b[6] << 8) | b[7]) & 0x1fff;
		if ((b[0] >> 4) != 4 || ihl < 20 || tot <= ihl || frag != 0)
			return 0;
		if (bpf_skb_load_bytes(skb, l3 + 9, b, 1) < 0)
			return 0;
		proto = b[0];
		if (proto == IPPROTO_UDP_) {
			if (bpf_skb_load_bytes(skb, l3 + ihl + 6, &csum, 2) < 0 || csum == 0)
				return 0;
		} else if (proto != IPPROTO_TCP_ && proto != IPPROTO_ICMP_) {
			return 0;
		}
		*off = l3 + ihl;
		*len = tot - ihl;
		return 1;
	}
	if (type == bpf_htons(ETH_P_IPV6)) {
		__u32 plen, nh;

		if (bpf_skb_load_bytes(skb, l3, b, 8) < 0)
			return 0;
		plen = ((__u32)b[4] << 8) | b[5];
		nh = b[6];
		if ((b[0] >> 4) != 6 || plen == 0)
			return 0;
		if (nh != IPPROTO_TCP_ && nh != IPPROTO_UDP_ && nh != IPPROTO_ICMPV6_)
			return 0;
		*off = l3 + 40;
		*len = plen;
		return 1;
	}
	return 0;
}

static __always_inline int impair(struct __sk_buff *skb)
{
	__u32 k = 0;
	struct impair_cfg *cfg = bpf_map_lookup_elem(&impair_cfg, &k);
	struct impair_cnt *cnt = bpf_map_lookup_elem(&impair_cnt, &k);
	__u32 off = 0, len = 0, pos;
	__u8 byte;

	if (!cfg || !cnt)
		return TC_ACT_OK;
	__sync_fetch_and_add(&cnt->frames, 1);
	if (cfg->loss && (__u64)bpf_get_prandom_u32() < cfg->loss) {
		__sync_fetch_and_add(&cnt->dropped, 1);
		return TC_ACT_SHOT;
	}
	if (!cfg->corrupt || (__u64)bpf_get_prandom_u32() >= cfg->corrupt)
		return TC_ACT_OK;
	if (!l4_span(skb, &off, &len) || len == 0 || len > 0xffff)
		return TC_ACT_OK;
	pos = bpf_get_prandom_u32();
	off += (pos >> 3) % len;
	if (bpf_skb_load_bytes(skb, off, &byte, 1) < 0)
		return TC_ACT_OK;
	byte ^= (__u8)(1u << (pos & 7));
	if (bpf_skb_store_bytes(skb, off, &byte, 1, 0) < 0)
		return TC_ACT_OK;
	/* The checksum no longer matches: make the receiving kernel check it (CHECKSUM_NONE). */
	bpf_csum_level(skb, BPF_CSUM_LEVEL_RESET);
	__sync_fetch_and_add(&cnt->corrupted, 1);
	return TC_ACT_OK;
}

/* Frames toward the peer (the peer's "in" direction): egress of its switch port. */
SEC("classifier/egress")
int impair_egress(struct __sk_buff *skb)
{
	return impair(skb);
}

/* Frames from the peer (its "out" direction): ingress of its switch port. */
SEC("classifier/ingress")
int impair_ingress(struct __sk_buff *skb)
{
	return impair(skb);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";

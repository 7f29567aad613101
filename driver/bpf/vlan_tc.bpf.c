// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * 802.1Q access port for a lab peer (tc clsact on the peer's veth).
 *
 *   egress  (classifier/egress):  push an 802.1Q tag with the peer's VLAN id.
 *   ingress (classifier/ingress): keep only frames tagged with the peer's VLAN id (tag out of
 *                                 band in skb->vlan_tci, or in-band 0x8100/0x88a8) and pop the
 *                                 tag; drop every other tagged frame. A peer with VLAN id 0 is
 *                                 untagged: its egress is untouched and its ingress drops frames
 *                                 tagged with a non-zero id.
 *
 * The VLAN id is a read-only global (lab_cfg.vid, in .rodata). The lab loader copies this object
 * once per VLAN id and patches the value next to LAB_CFG_MAGIC before `tc ... bpf da obj F sec S`,
 * so one compiled object serves every VLAN and no map has to be pinned or filled.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define LAB_CFG_MAGIC 0xC0DEF1A6u /* bytes a6 f1 de c0 in the object file (little endian) */

struct lab_cfg {
	__u32 magic;
	__u32 vid;
};

volatile const struct lab_cfg lab_cfg = { .magic = LAB_CFG_MAGIC, .vid = 0 };

static __always_inline int frame_vid(struct __sk_buff *skb, __u32 *vid)
{
	__u16 tpid, tci;

	if (skb->vlan_present) {
		*vid = skb->vlan_tci & 0x0fff;
		return 1;
	}
	if (bpf_skb_load_bytes(skb, 12, &tpid, sizeof(tpid)) < 0)
		return 0;
	if (tpid != bpf_htons(ETH_P_8021Q) && tpid != bpf_htons(ETH_P_8021AD))
		return 0;
	if (bpf_skb_load_bytes(skb, 14, &tci, sizeof(tci)) < 0)
		return -1;
	*vid = bpf_ntohs(tci) & 0x0fff;
	return 1;
}

SEC("classifier/egress")
int vlan_egress(struct __sk_buff *skb)
{
	__u32 want = lab_cfg.vid & 0x0fff;

	if (want == 0)
		return TC_ACT_OK;
	if (bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021Q), want) < 0)
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

SEC("classifier/ingress")
int vlan_ingress(struct __sk_buff *skb)
{
	__u32 want = lab_cfg.vid & 0x0fff;
	__u32 vid = 0;
	int tagged = frame_vid(skb, &vid);

	if (tagged < 0)
		return TC_ACT_SHOT;
	if (tagged == 0)
		return want == 0 ? TC_ACT_OK : TC_ACT_SHOT;
	if (vid != want)
		return TC_ACT_SHOT;
	if (bpf_skb_vlan_pop(skb) < 0)
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";

// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Queue steering for the lab (tc clsact egress on the switch's port toward the stack, `stk`).
 *
 * On veth the receiving device's rx queue is the sender's tx queue, so the stack's queue for a
 * frame is the tx queue the switch picks on `stk`. steer_map maps a peer's source MAC to a queue;
 * frames from a peer in the map go to that queue, the others keep the kernel's flow-hash spreading.
 * The lab changes an entry with a map update, so a flow can be moved while it runs.
 *
 * How the queue is forced without act_skbedit (not built into this kernel): the tx queue is
 * picked after this hook (netdev_core_pick_tx). For a forwarded frame (no socket) on a device
 * without XPS maps and without ndo_select_queue (veth), netdev_pick_tx uses skb_tx_hash, which
 * takes a recorded rx queue as the queue: queue_mapping = rx queue + 1 (skb_record_rx_queue). So
 * the program records queue + 1. The lab validates the queue against the device's tx queues.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#define STEER_MAX_PEERS 1024

struct steer_key {
	unsigned char mac[6];
	unsigned short pad; /* 0 */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, STEER_MAX_PEERS);
	__type(key, struct steer_key);
	__type(value, __u32);
} steer_map SEC(".maps");

/* Frames steered, by queue (the frames left to the kernel's spreading are not counted). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} steer_cnt SEC(".maps");

SEC("classifier/egress")
int steer_egress(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct steer_key k = {};
	__u32 *q;

	if ((void *)(eth + 1) > end)
		return TC_ACT_OK;
	__builtin_memcpy(k.mac, eth->h_source, ETH_ALEN);
	q = bpf_map_lookup_elem(&steer_map, &k);
	if (!q)
		return TC_ACT_OK;
	skb->queue_mapping = *q + 1; /* a recorded rx queue: skb_tx_hash picks *q */
	__u64 *c = bpf_map_lookup_elem(&steer_cnt, q);
	if (c)
		*c += 1;
	return TC_ACT_OK;
}

char _license[] SEC("license") = "GPL";

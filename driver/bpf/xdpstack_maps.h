/* Map keys shared by the XDP program (xdpstack_xdp.bpf.c) and the native addon. */
#ifndef XDPSTACK_MAPS_H
#define XDPSTACK_MAPS_H

#define XDPSTACK_MAX_QUEUES 64
#define XDPSTACK_MAX_OWNED 16384

/* Destination MAC owned by the stack on a VLAN (0 = untagged). */
struct xs_mac_key {
	unsigned char mac[6];
	unsigned short vlan; /* host order, 0..4095 */
};

/*
 * IPv4 address (network order) owned on a VLAN: ARP requests for it are redirected; so are IPv4
 * frames to the Ethernet broadcast whose destination it is (broadcast addresses the stack owns).
 */
struct xs_ip4_key {
	unsigned int addr;
	unsigned int vlan;
};

/* IPv6 unicast address owned on a VLAN: packets to it, and NDP (NS/NA) whose target it is. */
struct xs_ip6_key {
	unsigned char addr[16];
	unsigned int vlan;
};

/*
 * Solicited-node group ff02::1:ffXX:XXXX (RFC 4291 2.7.1) of owned addresses on a VLAN: tail is
 * its last 4 bytes (0xff and the low 24 bits of the address). Refcounted by user space, as
 * addresses with the same low 24 bits share it.
 */
struct xs_snm_key {
	unsigned char tail[4];
	unsigned int vlan;
};

/*
 * Policers of the XDP program (index XS_POLICE_SYN / XS_POLICE_ARP of the xs_police map), each a
 * token bucket in its GCRA form: a frame is let through when the bucket's theoretical arrival time
 * is at most burst_ns ahead of now, and then moves it interval_ns on. interval_ns = 1e9 / rate,
 * burst_ns = (burst - 1) * interval_ns; interval_ns 0 = no policing. Written by user space.
 */
#define XS_POLICE_SYN 0
#define XS_POLICE_ARP 1
struct xs_police_cfg {
	unsigned long long interval_ns;
	unsigned long long burst_ns;
};

/* Indices of the per-CPU counter map xs_counters. */
#define XS_CNT_REDIRECTED 0
#define XS_CNT_PASSED 1
#define XS_CNT_SYN_POLICED 2
#define XS_CNT_ARP_POLICED 3
#define XS_CNT_N 4

#endif

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

/* IPv4 address (network order) owned on a VLAN: ARP requests for it are redirected. */
struct xs_ip4_key {
	unsigned int addr;
	unsigned int vlan;
};

/* IPv6 address owned on a VLAN: NDP (NS/NA) whose target is it are redirected. */
struct xs_ip6_key {
	unsigned char addr[16];
	unsigned int vlan;
};

#endif

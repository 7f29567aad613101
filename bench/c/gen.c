/*
 * AF_XDP traffic generator for xdpstack's packet-rate benchmarks. Runs on a peer's device (in a
 * lab namespace), sends 60-byte frames (64 on the wire with the FCS) at the maximum rate it can,
 * answers ARP requests for its own address, and counts the IPv4 frames that come back to its MAC.
 *
 *   gen IFNAME MODE DST_MAC SRC_IP DST_IP SECONDS WARMUP [RATE] [COUNT] [PORT] [SOURCES] [QUEUES]
 *     MODE     udp (UDP datagram to DST_IP port 7) or icmp (ICMP echo request to DST_IP), 60-byte
 *              frames; udp6 / icmp6: the same over IPv6 (SRC_IP, DST_IP IPv6 addresses; the same
 *              18-byte payload, so 80-byte frames), answering Neighbor Solicitations for SRC_IP
 *              (RFC 4861 7.2.4) instead of ARP; or one of the flood modes, every frame built afresh
 *              with valid checksums:
 *       syn      TCP SYNs (MSS, SACK-permitted, timestamps, window scale) to DST_IP:PORT from
 *                spoofed sources: random addresses in SRC_IP's /16 (host part 256..256+SOURCES-1,
 *                so the lab's real peers at .0.x are never spoofed), random ports, random ISNs
 *       arp      ARP from SOURCES spoofed senders on SRC_IP's /16 (same host parts as syn), each
 *                with its own MAC (Ethernet source = sender MAC): broadcast requests for DST_IP
 *                and unicast replies to DST_MAC, alternating
 *       arp-off  the same from senders off the subnet (100.64.0.0/10)
 *       frag     incomplete IPv4 fragment trains: UDP fragments of 512 bytes to DST_IP with MF set
 *                (offset 0 or a random middle offset, never the last), random IDs, from SRC_IP
 *     or one of the encapsulated modes (a load balancer's traffic for direct server return): the
 *     udp request from the client SRC_IP to a VIP, inside an outer header from the load balancer
 *     to the server; DST_IP is then VIP,OUTER_SRC,OUTER_DST (the load balancer's address and the
 *     server's), and only replies from the VIP to SRC_IP count as returned (they leave the
 *     server routed, straight to the client):
 *       ipip     UDP/IPv4 in IPv4 (RFC 2003, protocol 4): 80-byte frames
 *       ip6ip6   UDP/IPv6 in IPv6 (RFC 2473, next header 41): 120-byte frames; as udp6, the
 *                generator answers Neighbor Solicitations for SRC_IP
 *     In these modes the generator sends one frame per millisecond until the first reply comes
 *     back (the server has resolved SRC_IP), then at full rate.
 *     SECONDS  measurement window; WARMUP seconds of traffic before it (not counted)
 *     RATE     frames per second at most, over all QUEUES (each sends RATE / their count; 0 or
 *              absent: as fast as possible)
 *     COUNT    stop after this many frames (0 or absent: no limit; SECONDS still ends the run)
 *     PORT     destination port of syn (default 7)
 *     SOURCES  number of spoofed senders (default 65000 for syn, 8192 for arp; at most 65000)
 *     QUEUES   queues of IFNAME to send on, comma-separated (default 0): one socket (and UMEM) per
 *              queue, served in turn by this one thread, so the offered load is one core's whatever
 *              the count. On a veth a frame sent on queue q arrives on the other end's rx queue q.
 *
 * Output, one line at exit:
 *   {"tx_pps":N,"rx_pps":N,"tx":N,"rx":N,"seconds":S,"arp_replies":N,"tx_total":N,"rx_total":N,
 *    "arp_rx":N,"elapsed":S,"rx_queues":[N,...]}
 * (tx/rx/…_pps over the window; *_total and arp_rx (ARP frames received) over the whole run;
 * rx_queues: frames counted as returned per queue of QUEUES, over the window).
 *
 * Counted as returned: IPv4 frames to our MAC; in the IPv6 modes, IPv6 UDP datagrams and ICMPv6 echo
 * replies to our MAC ("arp_replies" then counts Neighbor Advertisements sent); in the encapsulated
 * modes, UDP datagrams from the VIP to SRC_IP (not encapsulated) to our MAC.
 *
 * Same libxdp as the native core; copy-mode bind with need_wakeup; libxdp's default XDP program
 * redirects every frame of each queue to that queue's socket.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/if_xdp.h>
#include <xdp/xsk.h>

#define FRAME_SIZE 2048
#define NUM_FRAMES 4096
#define TX_FRAMES 2048 /* frames 0..TX_FRAMES-1 transmit; the rest receive */
#define RING 2048
#define BATCH 64
#define PKT_LEN 60
#define FRAG_PAYLOAD 512
#define MAX_LEN (14 + 20 + FRAG_PAYLOAD)
#define ARP_FRAME (TX_FRAMES - 1)

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int parse_mac(const char *s, unsigned char *m)
{
	unsigned v[6];
	if (sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6) return -1;
	for (int i = 0; i < 6; i++) m[i] = (unsigned char)v[i];
	return 0;
}

static int read_mac(const char *ifname, unsigned char *m)
{
	char path[128], buf[64];
	snprintf(path, sizeof path, "/sys/class/net/%s/address", ifname);
	FILE *f = fopen(path, "r");
	if (!f) return -1;
	int ok = fgets(buf, sizeof buf, f) != NULL;
	fclose(f);
	return ok ? parse_mac(buf, m) : -1;
}

static uint16_t csum(const unsigned char *p, size_t n, uint32_t sum)
{
	for (size_t i = 0; i + 1 < n; i += 2) sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1) sum += (uint32_t)(p[n - 1] << 8);
	while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static void put16(unsigned char *p, uint16_t v) { p[0] = v >> 8; p[1] = v & 0xff; }
static void put32(unsigned char *p, uint32_t v) { put16(p, (uint16_t)(v >> 16)); put16(p + 2, (uint16_t)v); }

enum mode { M_UDP, M_ICMP, M_SYN, M_ARP, M_ARP_OFF, M_FRAG, M_UDP6, M_ICMP6, M_IPIP, M_IP6IP6 };

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}

/* Flood frame builders: write one frame at `b`, return its length. Addresses in host order. */
struct flood {
	enum mode mode;
	unsigned char dmac[6], smac[6];
	uint32_t sip, dip; /* host order */
	uint16_t port;
	uint32_t sources;
	uint64_t n;
};

static uint32_t spoofed(const struct flood *f, uint32_t i)
{
	if (f->mode == M_ARP_OFF) return 0x64400000u + 256 + i; /* 100.64.1.0 upward: off any lab subnet */
	return (f->sip & 0xffff0000u) + 256 + i;
}

static void ipv4(unsigned char *ip, uint16_t total, uint16_t id, uint16_t frag, uint8_t proto, uint32_t sip, uint32_t dip)
{
	ip[0] = 0x45;
	ip[1] = 0;
	put16(ip + 2, total);
	put16(ip + 4, id);
	put16(ip + 6, frag);
	ip[8] = 64;
	ip[9] = proto;
	put16(ip + 10, 0);
	put32(ip + 12, sip);
	put32(ip + 16, dip);
	put16(ip + 10, csum(ip, 20, 0));
}

static unsigned build_flood(unsigned char *b, struct flood *f)
{
	f->n++;
	uint32_t r = rnd();
	if (f->mode == M_SYN) {
		uint32_t src = spoofed(f, r % f->sources);
		memcpy(b, f->dmac, 6);
		memcpy(b + 6, f->smac, 6);
		put16(b + 12, 0x0800);
		unsigned char *ip = b + 14, *t = ip + 20;
		ipv4(ip, 20 + 40, (uint16_t)rnd(), 0x4000, 6, src, f->dip);
		memset(t, 0, 40);
		put16(t, (uint16_t)(1024 + rnd() % 64000));
		put16(t + 2, f->port);
		put32(t + 4, rnd() ^ (rnd() << 16));
		t[12] = 10 << 4; /* data offset: 40 bytes */
		t[13] = 0x02;    /* SYN */
		put16(t + 14, 64240);
		unsigned char *o = t + 20; /* as Linux: MSS, SACK-permitted + timestamps, NOP + window scale */
		o[0] = 2; o[1] = 4; put16(o + 2, 1460);
		o[4] = 4; o[5] = 2; o[6] = 8; o[7] = 10; put32(o + 8, (uint32_t)f->n); put32(o + 12, 0);
		o[16] = 1; o[17] = 3; o[18] = 3; o[19] = 7;
		uint32_t ps = (src >> 16) + (src & 0xffff) + (f->dip >> 16) + (f->dip & 0xffff) + 6 + 40;
		put16(t + 16, csum(t, 40, ps));
		return 14 + 20 + 40;
	}
	if (f->mode == M_ARP || f->mode == M_ARP_OFF) {
		uint32_t i = r % f->sources, spa = spoofed(f, i);
		unsigned char sha[6] = { 0x02, 0xaf, (unsigned char)(i >> 24), (unsigned char)(i >> 16), (unsigned char)(i >> 8), (unsigned char)i };
		int reply = f->n & 1;
		memset(b, 0, PKT_LEN);
		if (reply) memcpy(b, f->dmac, 6);
		else memset(b, 0xff, 6);
		memcpy(b + 6, sha, 6);
		put16(b + 12, 0x0806);
		put16(b + 14, 1);
		put16(b + 16, 0x0800);
		b[18] = 6;
		b[19] = 4;
		put16(b + 20, reply ? 2 : 1);
		memcpy(b + 22, sha, 6);
		put32(b + 28, spa);
		if (reply) memcpy(b + 32, f->dmac, 6);
		put32(b + 38, f->dip);
		return PKT_LEN;
	}
	/* M_FRAG: a first fragment (offset 0) or a middle one, MF always set: never completes. */
	memcpy(b, f->dmac, 6);
	memcpy(b + 6, f->smac, 6);
	put16(b + 12, 0x0800);
	unsigned char *ip = b + 14, *p = ip + 20;
	uint16_t off = (r & 1) ? 0 : (uint16_t)(1 + (r >> 1) % 100) * (FRAG_PAYLOAD / 8);
	ipv4(ip, 20 + FRAG_PAYLOAD, (uint16_t)rnd(), (uint16_t)(0x2000 | off), 17, f->sip, f->dip);
	if (off == 0) {
		/* UDP header of a 4 KiB datagram to port 7 (its checksum cannot be checked before reassembly) */
		put16(p, 40000);
		put16(p + 2, 7);
		put16(p + 4, 4096);
		put16(p + 6, 0);
	}
	return 14 + 20 + FRAG_PAYLOAD;
}

/* Builds the request template: Ethernet + IPv4 + UDP (port 7) or ICMP echo, 60 bytes. */
static void build(unsigned char *b, int icmp, const unsigned char *dmac, const unsigned char *smac, uint32_t sip, uint32_t dip)
{
	memset(b, 0, PKT_LEN);
	memcpy(b, dmac, 6);
	memcpy(b + 6, smac, 6);
	put16(b + 12, 0x0800);
	unsigned char *ip = b + 14;
	int l4len = PKT_LEN - 14 - 20;
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)(20 + l4len));
	put16(ip + 4, 1);
	ip[8] = 64;
	ip[9] = icmp ? 1 : 17;
	memcpy(ip + 12, &sip, 4); /* network order already */
	memcpy(ip + 16, &dip, 4);
	put16(ip + 10, csum(ip, 20, 0));
	unsigned char *l4 = ip + 20;
	for (int i = 8; i < l4len; i++) l4[i] = (unsigned char)('a' + i);
	if (icmp) {
		l4[0] = 8;
		put16(l4 + 4, 0x1234);
		put16(l4 + 6, 1);
		put16(l4 + 2, csum(l4, (size_t)l4len, 0));
	} else {
		put16(l4, 40000);
		put16(l4 + 2, 7);
		put16(l4 + 4, (uint16_t)l4len);
		uint32_t ps = 0;
		ps += (uint32_t)(ip[12] << 8 | ip[13]) + (uint32_t)(ip[14] << 8 | ip[15]);
		ps += (uint32_t)(ip[16] << 8 | ip[17]) + (uint32_t)(ip[18] << 8 | ip[19]);
		ps += 17 + (uint32_t)l4len;
		uint16_t c = csum(l4, (size_t)l4len, ps);
		put16(l4 + 6, c ? c : 0xffff);
	}
}

#define PKT6_LEN (14 + 40 + 8 + 18) /* the IPv4 frames' 18-byte payload over IPv6 */

/* Running 16-bit sum of the IPv6 pseudo-header (RFC 8200 8.1). */
static uint32_t pseudo6(const unsigned char *src, const unsigned char *dst, uint32_t len, uint8_t nh)
{
	uint32_t s = 0;
	for (int i = 0; i < 16; i += 2) s += (uint32_t)(src[i] << 8 | src[i + 1]) + (uint32_t)(dst[i] << 8 | dst[i + 1]);
	return s + (len >> 16) + (len & 0xffff) + nh;
}

static void ipv6(unsigned char *ip, uint16_t plen, uint8_t nh, uint8_t hops, const unsigned char *src, const unsigned char *dst)
{
	memset(ip, 0, 8);
	ip[0] = 0x60;
	put16(ip + 4, plen);
	ip[6] = nh;
	ip[7] = hops;
	memcpy(ip + 8, src, 16);
	memcpy(ip + 24, dst, 16);
}

/* Builds the IPv6 request template: Ethernet + IPv6 + UDP (port 7) or ICMPv6 echo, PKT6_LEN bytes. */
static void build6(unsigned char *b, int icmp, const unsigned char *dmac, const unsigned char *smac,
		   const unsigned char *sip, const unsigned char *dip)
{
	memset(b, 0, PKT6_LEN);
	memcpy(b, dmac, 6);
	memcpy(b + 6, smac, 6);
	put16(b + 12, 0x86dd);
	unsigned char *l4 = b + 54;
	int l4len = PKT6_LEN - 54;
	ipv6(b + 14, (uint16_t)l4len, icmp ? 58 : 17, 64, sip, dip);
	for (int i = 8; i < l4len; i++) l4[i] = (unsigned char)('a' + i);
	if (icmp) {
		l4[0] = 128;
		put16(l4 + 4, 0x1234);
		put16(l4 + 6, 1);
	} else {
		put16(l4, 40000);
		put16(l4 + 2, 7);
		put16(l4 + 4, (uint16_t)l4len);
	}
	uint16_t c = csum(l4, (size_t)l4len, pseudo6(sip, dip, (uint32_t)l4len, icmp ? 58 : 17));
	put16(l4 + (icmp ? 2 : 6), c || icmp ? c : 0xffff);
}

/*
 * Wraps the request template `b` (Ethernet + IP packet of `len` bytes) in an outer IP header from
 * the load balancer `osrc` to the server `odst` (16 bytes each for IPv6, 4 in network order for
 * IPv4), in place: the inner packet moves back by the outer header's length. Returns the new length.
 */
static unsigned encapsulate(unsigned char *b, unsigned len, int v6, const unsigned char *osrc, const unsigned char *odst)
{
	unsigned inner = len - 14, oh = v6 ? 40 : 20;
	memmove(b + 14 + oh, b + 14, inner);
	if (v6) {
		ipv6(b + 14, (uint16_t)inner, 41, 64, osrc, odst);
	} else {
		uint32_t s, d;
		memcpy(&s, osrc, 4);
		memcpy(&d, odst, 4);
		ipv4(b + 14, (uint16_t)(20 + inner), 1, 0, 4, ntohl(s), ntohl(d));
	}
	return len + oh;
}

/*
 * A Neighbor Advertisement (RFC 4861 4.4) answering the solicitation `ns` for our address `me`:
 * Solicited and Override, with our link-layer address; to the solicitation's source. Returns its
 * length, or 0 when `ns` is not a solicitation for `me` from a unicast source.
 */
static unsigned build_na(unsigned char *a, const unsigned char *ns, unsigned len, const unsigned char *smac, const unsigned char *me)
{
	static const unsigned char zero[16];
	if (len < 78 || ns[20] != 58 || ns[21] != 255 || ns[54] != 135 || memcmp(ns + 62, me, 16) != 0) return 0;
	if (memcmp(ns + 22, zero, 16) == 0) return 0; /* DAD probe from :: : the address is ours, nothing to say */
	memcpy(a, ns + 6, 6);
	memcpy(a + 6, smac, 6);
	put16(a + 12, 0x86dd);
	unsigned char *n = a + 54;
	ipv6(a + 14, 32, 58, 255, me, ns + 22);
	memset(n, 0, 32);
	n[0] = 136;
	n[4] = 0x60; /* S, O */
	memcpy(n + 8, me, 16);
	n[24] = 2; /* target link-layer address */
	n[25] = 1;
	memcpy(n + 26, smac, 6);
	put16(n + 2, csum(n, 32, pseudo6(me, ns + 22, 32, 58)));
	return 14 + 40 + 32;
}

/* Sends the reply prepared in the ARP frame (an ARP reply or a Neighbor Advertisement) and kicks TX; 1 when queued. */
static int send_reply(struct xsk_ring_prod *tx, int fd, unsigned len)
{
	unsigned tidx;
	if (xsk_ring_prod__reserve(tx, 1, &tidx) != 1) return 0;
	struct xdp_desc *td = xsk_ring_prod__tx_desc(tx, tidx);
	td->addr = (uint64_t)ARP_FRAME * FRAME_SIZE;
	td->len = len;
	td->options = 0;
	xsk_ring_prod__submit(tx, 1);
	sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0);
	return 1;
}

#define MAX_QUEUES 8

/* One AF_XDP socket on one queue of the device, with a UMEM of its own. */
struct queue {
	unsigned char *area;
	struct xsk_umem *umem;
	struct xsk_socket *xsk;
	struct xsk_ring_prod fill, tx;
	struct xsk_ring_cons comp, rx;
	int fd;
	uint64_t free_stack[TX_FRAMES];
	unsigned nfree;
	int arp_busy;
	unsigned long long tx_total, rx_total;
};

/* Opens the socket of queue `qid`: TX frames hold the template, RX frames go to the fill ring. */
static int open_queue(struct queue *q, const char *ifname, unsigned qid, const unsigned char *tmpl, unsigned pkt_len)
{
	size_t size = (size_t)FRAME_SIZE * NUM_FRAMES;
	q->area = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (q->area == MAP_FAILED) { perror("mmap"); return -1; }
	struct xsk_umem_config ucfg = { .fill_size = RING, .comp_size = RING, .frame_size = FRAME_SIZE };
	int r = xsk_umem__create(&q->umem, q->area, size, &q->fill, &q->comp, &ucfg);
	if (r) { fprintf(stderr, "gen: xsk_umem__create: %s\n", strerror(-r)); return -1; }
	struct xsk_socket_config scfg = { .rx_size = RING, .tx_size = RING, .bind_flags = XDP_USE_NEED_WAKEUP };
	for (int attempt = 0;; attempt++) {
		r = xsk_socket__create(&q->xsk, ifname, qid, q->umem, &q->rx, &q->tx, &scfg);
		if (r != -EBUSY || attempt >= 20) break;
		usleep(50000);
	}
	if (r) { fprintf(stderr, "gen: xsk_socket__create(%s, queue %u): %s\n", ifname, qid, strerror(-r)); return -1; }
	q->fd = xsk_socket__fd(q->xsk);
	q->nfree = 0;
	for (unsigned i = 0; i < ARP_FRAME; i++) {
		memcpy(q->area + (size_t)i * FRAME_SIZE, tmpl, pkt_len);
		q->free_stack[q->nfree++] = (uint64_t)i * FRAME_SIZE;
	}
	unsigned idx = 0;
	unsigned nrx = NUM_FRAMES - TX_FRAMES;
	if (nrx > RING) nrx = RING;
	xsk_ring_prod__reserve(&q->fill, nrx, &idx);
	for (unsigned i = 0; i < nrx; i++) *xsk_ring_prod__fill_addr(&q->fill, idx + i) = (uint64_t)(TX_FRAMES + i) * FRAME_SIZE;
	xsk_ring_prod__submit(&q->fill, nrx);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 8) {
		fprintf(stderr, "usage: %s IFNAME udp|icmp|udp6|icmp6|ipip|ip6ip6|syn|arp|arp-off|frag DST_MAC SRC_IP DST_IP SECONDS WARMUP [RATE] [COUNT] [PORT] [SOURCES] [QUEUES]\n"
			"  (ipip, ip6ip6: DST_IP is VIP,OUTER_SRC,OUTER_DST)\n", argv[0]);
		return 2;
	}
	const char *ifname = argv[1];
	static const char *const MODES[] = { "udp", "icmp", "syn", "arp", "arp-off", "frag", "udp6", "icmp6", "ipip", "ip6ip6" };
	int m = -1;
	for (int i = 0; i < 10; i++) if (!strcmp(argv[2], MODES[i])) m = i;
	if (m < 0) { fprintf(stderr, "gen: unknown mode %s\n", argv[2]); return 2; }
	int icmp = m == M_ICMP || m == M_ICMP6;
	int v6 = m == M_UDP6 || m == M_ICMP6 || m == M_IP6IP6;
	int encap = m == M_IPIP || m == M_IP6IP6;
	unsigned pkt_len = v6 ? PKT6_LEN : PKT_LEN;
	double rate = argc > 8 ? atof(argv[8]) : 0;
	unsigned long long limit = argc > 9 ? strtoull(argv[9], NULL, 0) : 0;
	struct flood fl = { .mode = (enum mode)m, .port = 7, .sources = m == M_SYN ? 65000 : 8192 };
	if (argc > 10) fl.port = (uint16_t)atoi(argv[10]);
	if (argc > 11) fl.sources = (uint32_t)strtoul(argv[11], NULL, 0);
	unsigned qids[MAX_QUEUES];
	int nq = 0;
	for (const char *qs = argc > 12 ? argv[12] : "0"; *qs && nq >= 0;) {
		char *end;
		unsigned long v = strtoul(qs, &end, 10);
		if (end == qs || v > 63 || nq == MAX_QUEUES || (*end && *end != ',')) { nq = -1; break; }
		qids[nq++] = (unsigned)v;
		qs = *end ? end + 1 : end;
	}
	if (fl.sources < 1 || fl.sources > 65000 || rate < 0) { fprintf(stderr, "gen: SOURCES must be 1..65000, RATE >= 0\n"); return 2; }
	rng ^= (uint64_t)getpid() << 32 ^ (uint64_t)time(NULL);
	unsigned char dmac[6], smac[6];
	struct in_addr sip = { 0 }, dip = { 0 };
	struct in6_addr sip6, dip6;
	/* Encapsulated modes: DST_IP is VIP,OUTER_SRC,OUTER_DST; dip/dip6 is the VIP (the inner destination). */
	char dst_text[3][64] = { "", "", "" };
	int ndst = 0;
	for (const char *p = argv[5]; ndst < 3;) {
		const char *c = strchr(p, ',');
		size_t n = c ? (size_t)(c - p) : strlen(p);
		if (n >= sizeof dst_text[0]) break;
		memcpy(dst_text[ndst], p, n);
		dst_text[ndst++][n] = 0;
		if (!c) break;
		p = c + 1;
	}
	unsigned char outer_src[16], outer_dst[16];
	int addrs_ok = ndst == (encap ? 3 : 1);
	if (addrs_ok)
		addrs_ok = v6 ? inet_pton(AF_INET6, argv[4], &sip6) == 1 && inet_pton(AF_INET6, dst_text[0], &dip6) == 1
			      : inet_aton(argv[4], &sip) && inet_aton(dst_text[0], &dip);
	if (addrs_ok && encap)
		addrs_ok = inet_pton(v6 ? AF_INET6 : AF_INET, dst_text[1], outer_src) == 1 &&
			   inet_pton(v6 ? AF_INET6 : AF_INET, dst_text[2], outer_dst) == 1;
	if (parse_mac(argv[3], dmac) || read_mac(ifname, smac) || !addrs_ok) {
		fprintf(stderr, "gen: bad MAC/address argument or unknown device %s\n", ifname);
		return 2;
	}
	double seconds = atof(argv[6]), warmup = atof(argv[7]);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	if (nq < 1) { fprintf(stderr, "gen: QUEUES must list 1..%d queue ids, e.g. 0 or 0,1\n", MAX_QUEUES); return 2; }
	unsigned char tmpl[PKT6_LEN + 40];
	if (v6) build6(tmpl, icmp, dmac, smac, sip6.s6_addr, dip6.s6_addr);
	else build(tmpl, icmp, dmac, smac, sip.s_addr, dip.s_addr);
	if (encap) pkt_len = encapsulate(tmpl, pkt_len, v6, outer_src, outer_dst);
	int flood = m == M_SYN || m == M_ARP || m == M_ARP_OFF || m == M_FRAG;
	memcpy(fl.dmac, dmac, 6);
	memcpy(fl.smac, smac, 6);
	fl.sip = ntohl(sip.s_addr);
	fl.dip = ntohl(dip.s_addr);
	static struct queue qs[MAX_QUEUES];
	for (int k = 0; k < nq; k++)
		if (open_queue(&qs[k], ifname, qids[k], tmpl, pkt_len)) return 1;

	unsigned long long tx_total = 0, rx_total = 0, tx_w = 0, rx_w = 0, arp_replies = 0, arp_rx = 0;
	unsigned long long rxq_w[MAX_QUEUES] = { 0 };
	double t0 = now_s(), tw0 = t0 + warmup, tw1 = tw0 + seconds;
	int in_window = 0;
	double t = t0;
	unsigned iter = 0;
	unsigned idx = 0;
	while (!stop) {
		for (int k = 0; k < nq; k++) {
		struct queue *q = &qs[k];
		unsigned char *area = q->area;
		/* Completions: TX frames back to the free stack. */
		unsigned n = xsk_ring_cons__peek(&q->comp, RING, &idx);
		for (unsigned i = 0; i < n; i++) {
			uint64_t a = *xsk_ring_cons__comp_addr(&q->comp, idx + i) & ~(uint64_t)(FRAME_SIZE - 1);
			if (a == (uint64_t)ARP_FRAME * FRAME_SIZE) q->arp_busy = 0;
			else q->free_stack[q->nfree++] = a;
		}
		if (n) xsk_ring_cons__release(&q->comp, n);

		/* Send one batch (at most RATE frames per second, COUNT in all). */
		unsigned want = q->nfree < BATCH ? q->nfree : BATCH;
		if (rate > 0) {
			/* RATE is shared evenly by the queues: each sends its part. */
			double allowed = (now_s() - t0) * rate / nq - (double)q->tx_total;
			if (allowed < want) want = allowed > 0 ? (unsigned)allowed : 0;
			if (!want && q->nfree == ARP_FRAME) usleep(100); /* paced and nothing in flight: leave the CPU */
		}
		if (encap && rx_total == 0) {
			/* Encapsulated modes: one frame per millisecond until the first reply, so the server
			 * resolves our address (the replies are routed) before the flood, whose frames would
			 * crowd out our ARP reply or Neighbor Advertisement at its socket. */
			double allowed = (now_s() - t0) * 1000 - (double)tx_total;
			if (allowed < want) want = allowed > 0 ? (unsigned)allowed : 0;
		}
		if (limit && tx_total + want > limit) want = (unsigned)(limit - tx_total);
		if (want) {
			unsigned tidx;
			unsigned got = xsk_ring_prod__reserve(&q->tx, want, &tidx);
			for (unsigned i = 0; i < got; i++) {
				struct xdp_desc *d = xsk_ring_prod__tx_desc(&q->tx, tidx + i);
				d->addr = q->free_stack[--q->nfree];
				d->len = flood ? build_flood(area + d->addr, &fl) : pkt_len;
				d->options = 0;
			}
			if (got) {
				xsk_ring_prod__submit(&q->tx, got);
				tx_total += got;
				q->tx_total += got;
			}
		}
		for (int r = 0; r < 4; r++) {
			if (sendto(q->fd, NULL, 0, MSG_DONTWAIT, NULL, 0) >= 0 || errno != EAGAIN) break;
		}

		/* Receive: count IPv4 frames to our MAC, answer ARP requests for our address. */
		unsigned rcvd = xsk_ring_cons__peek(&q->rx, BATCH, &idx);
		if (rcvd) {
			unsigned fidx;
			while (xsk_ring_prod__reserve(&q->fill, rcvd, &fidx) != rcvd) { /* the fill ring has room for all RX frames */ }
			for (unsigned i = 0; i < rcvd; i++) {
				const struct xdp_desc *d = xsk_ring_cons__rx_desc(&q->rx, idx + i);
				unsigned char *p = xsk_umem__get_data(area, d->addr);
				unsigned len = d->len;
				if (len >= 14 && p[12] == 0x08 && p[13] == 0x06) arp_rx++;
				unsigned na_len;
				if (v6) {
					/* IPv6: UDP, or ICMPv6 echo replies, to our MAC; NS for our address answered. */
					int ip6 = len >= 58 && p[12] == 0x86 && p[13] == 0xdd;
					/* Encapsulated mode: a UDP datagram from the VIP to the client (us), not through the tunnel. */
					int ours = encap ? p[20] == 17 && memcmp(p + 22, dip6.s6_addr, 16) == 0 && memcmp(p + 38, sip6.s6_addr, 16) == 0
							 : p[20] == 17 || (p[20] == 58 && p[54] == 129);
					if (ip6 && memcmp(p, smac, 6) == 0 && ours) {
						rx_total++;
						q->rx_total++;
					} else if (ip6 && !q->arp_busy &&
						   (na_len = build_na(area + (size_t)ARP_FRAME * FRAME_SIZE, p, len, smac, sip6.s6_addr)) > 0) {
						if (send_reply(&q->tx, q->fd, na_len)) { q->arp_busy = 1; arp_replies++; }
					}
				} else if (len >= 34 && p[12] == 0x08 && p[13] == 0x00 && memcmp(p, smac, 6) == 0) {
					/* Encapsulated mode: only UDP from the VIP to the client (us) counts. */
					if (!encap || (p[23] == 17 && memcmp(p + 26, &dip.s_addr, 4) == 0 && memcmp(p + 30, &sip.s_addr, 4) == 0)) {
						rx_total++;
						q->rx_total++;
					}
				} else if (len >= 42 && p[12] == 0x08 && p[13] == 0x06 && p[20] == 0 && p[21] == 1 &&
					   memcmp(p + 38, &sip.s_addr, 4) == 0 && !q->arp_busy) {
					unsigned char *a = area + (size_t)ARP_FRAME * FRAME_SIZE;
					memset(a, 0, PKT_LEN);
					memcpy(a, p + 6, 6);
					memcpy(a + 6, smac, 6);
					put16(a + 12, 0x0806);
					memcpy(a + 14, p + 14, 6); /* htype, ptype, hlen, plen */
					put16(a + 20, 2);
					memcpy(a + 22, smac, 6);
					memcpy(a + 28, &sip.s_addr, 4);
					memcpy(a + 32, p + 22, 10); /* target = requester's sha + spa */
					if (send_reply(&q->tx, q->fd, PKT_LEN)) { q->arp_busy = 1; arp_replies++; }
				}
				*xsk_ring_prod__fill_addr(&q->fill, fidx + i) = d->addr & ~(uint64_t)(FRAME_SIZE - 1);
			}
			xsk_ring_cons__release(&q->rx, rcvd);
			xsk_ring_prod__submit(&q->fill, rcvd);
		}
		if (xsk_ring_prod__needs_wakeup(&q->fill)) recvfrom(q->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
		}

		if ((++iter & 15) == 0) {
			t = now_s();
			if (!in_window && t >= tw0) {
				in_window = 1;
				tx_w = tx_total;
				rx_w = rx_total;
				for (int k = 0; k < nq; k++) rxq_w[k] = qs[k].rx_total;
			}
			if (t >= tw1) break;
			if (limit && tx_total >= limit) { /* all sent and completed */
				int idle = 1;
				for (int k = 0; k < nq; k++) if (qs[k].nfree != ARP_FRAME || qs[k].arp_busy) idle = 0;
				if (idle) break;
			}
		}
	}
	double span = t - tw0;
	unsigned long long txn = tx_total - tx_w, rxn = rx_total - rx_w;
	printf("{\"tx_pps\":%.0f,\"rx_pps\":%.0f,\"tx\":%llu,\"rx\":%llu,\"seconds\":%.3f,\"arp_replies\":%llu,"
	       "\"tx_total\":%llu,\"rx_total\":%llu,\"arp_rx\":%llu,\"elapsed\":%.3f,\"rx_queues\":[",
	       span > 0 ? txn / span : 0, span > 0 ? rxn / span : 0, txn, rxn, span, arp_replies,
	       tx_total, rx_total, arp_rx, t - t0);
	for (int k = 0; k < nq; k++) printf("%s%llu", k ? "," : "", qs[k].rx_total - (in_window ? rxq_w[k] : qs[k].rx_total));
	printf("]}\n");
	for (int k = 0; k < nq; k++) {
		xsk_socket__delete(qs[k].xsk);
		xsk_umem__delete(qs[k].umem);
		munmap(qs[k].area, (size_t)FRAME_SIZE * NUM_FRAMES);
	}
	return 0;
}

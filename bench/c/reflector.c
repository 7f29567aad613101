/*
 * AF_XDP frame reflector, the C baseline for xdpstack's packet-rate benchmark: every frame
 * received on (ifname, queue) is sent back with source and destination MACs swapped.
 * Same libxdp as the native core; copy or zero-copy bind with need_wakeup; libxdp's default
 * XDP program redirects everything arriving on the queue.
 *
 *   reflector IFNAME [QUEUE] [SECONDS]     (prints "rx_pps tx_pps" once per second on stdout,
 *                                           and "total rx N tx N" at exit)
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/if_xdp.h>
#include <bpf/libbpf.h>
#include <xdp/libxdp.h>
#include <xdp/xsk.h>

#define FRAME_SIZE 2048
#define NUM_FRAMES 4096
#define RING 2048
#define BATCH 64

static volatile sig_atomic_t stop;
/* Library chatter (e.g. the dispatcher fallback) only with REFLECTOR_VERBOSE set. */
static int quiet_xdp(enum libxdp_print_level l, const char *f, va_list ap) { (void)l; return getenv("REFLECTOR_VERBOSE") ? vfprintf(stderr, f, ap) : 0; }
static int quiet_bpf(enum libbpf_print_level l, const char *f, va_list ap) { (void)l; return getenv("REFLECTOR_VERBOSE") ? vfprintf(stderr, f, ap) : 0; }
static void on_signal(int sig) { (void)sig; stop = 1; }

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s IFNAME [QUEUE] [SECONDS]\n", argv[0]);
		return 2;
	}
	const char *ifname = argv[1];
	unsigned queue = argc > 2 ? (unsigned)atoi(argv[2]) : 0;
	double seconds = argc > 3 ? atof(argv[3]) : 0;
	libxdp_set_print(quiet_xdp);
	libbpf_set_print(quiet_bpf);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	size_t size = (size_t)FRAME_SIZE * NUM_FRAMES;
	void *area = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (area == MAP_FAILED) { perror("mmap"); return 1; }
	struct xsk_ring_prod fill, tx;
	struct xsk_ring_cons comp, rx;
	struct xsk_umem *umem;
	struct xsk_umem_config ucfg = { .fill_size = RING, .comp_size = RING, .frame_size = FRAME_SIZE };
	int r = xsk_umem__create(&umem, area, size, &fill, &comp, &ucfg);
	if (r) { fprintf(stderr, "xsk_umem__create: %s\n", strerror(-r)); return 1; }
	struct xsk_socket *xsk;
	struct xsk_socket_config scfg = { .rx_size = RING, .tx_size = RING, .bind_flags = XDP_USE_NEED_WAKEUP };
	r = xsk_socket__create(&xsk, ifname, queue, umem, &rx, &tx, &scfg);
	if (r) { fprintf(stderr, "xsk_socket__create(%s, %u): %s\n", ifname, queue, strerror(-r)); return 1; }
	int fd = xsk_socket__fd(xsk);

	/* Frames 0..RING-1 start in the fill ring; the rest is a free stack for refills. */
	unsigned long long free_stack[NUM_FRAMES];
	unsigned nfree = 0;
	for (unsigned i = RING; i < NUM_FRAMES; i++) free_stack[nfree++] = (unsigned long long)i * FRAME_SIZE;
	unsigned idx = 0;
	xsk_ring_prod__reserve(&fill, RING, &idx);
	for (unsigned i = 0; i < RING; i++) *xsk_ring_prod__fill_addr(&fill, idx + i) = (unsigned long long)i * FRAME_SIZE;
	xsk_ring_prod__submit(&fill, RING);

	unsigned long long rx_total = 0, tx_total = 0, rx_last = 0, tx_last = 0;
	double t0 = now_s(), tlast = t0;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	while (!stop) {
		/* Completions back to the free stack, then top up the fill ring. */
		unsigned n = xsk_ring_cons__peek(&comp, BATCH * 4, &idx);
		for (unsigned i = 0; i < n; i++) free_stack[nfree++] = *xsk_ring_cons__comp_addr(&comp, idx + i) & ~(unsigned long long)(FRAME_SIZE - 1);
		if (n) xsk_ring_cons__release(&comp, n);
		unsigned want = nfree < BATCH ? nfree : BATCH;
		if (want) {
			unsigned got = xsk_ring_prod__reserve(&fill, want, &idx);
			for (unsigned i = 0; i < got; i++) *xsk_ring_prod__fill_addr(&fill, idx + i) = free_stack[--nfree];
			if (got) xsk_ring_prod__submit(&fill, got);
		}
		if (xsk_ring_prod__needs_wakeup(&fill)) recvfrom(fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);

		unsigned rcvd = xsk_ring_cons__peek(&rx, BATCH, &idx);
		if (!rcvd) {
			if (poll(&pfd, 1, 100) < 0 && errno != EINTR) break;
		} else {
			unsigned ridx = idx, tidx = 0, cidx = 0;
			while (xsk_ring_prod__reserve(&tx, rcvd, &tidx) != rcvd) {
				/* TX ring full: kick and reap until there is room. */
				sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0);
				unsigned c = xsk_ring_cons__peek(&comp, BATCH * 4, &cidx);
				for (unsigned i = 0; i < c; i++) free_stack[nfree++] = *xsk_ring_cons__comp_addr(&comp, cidx + i) & ~(unsigned long long)(FRAME_SIZE - 1);
				if (c) xsk_ring_cons__release(&comp, c);
				if (stop) break;
			}
			if (stop) break;
			for (unsigned i = 0; i < rcvd; i++) {
				const struct xdp_desc *d = xsk_ring_cons__rx_desc(&rx, ridx + i);
				unsigned char *p = xsk_umem__get_data(area, d->addr);
				unsigned char m[6];
				memcpy(m, p, 6);
				memcpy(p, p + 6, 6);
				memcpy(p + 6, m, 6);
				struct xdp_desc *t = xsk_ring_prod__tx_desc(&tx, tidx + i);
				t->addr = d->addr;
				t->len = d->len;
				t->options = 0;
			}
			xsk_ring_cons__release(&rx, rcvd);
			xsk_ring_prod__submit(&tx, rcvd);
			rx_total += rcvd;
			tx_total += rcvd;
			for (int k = 0; k < 4; k++) {
				if (sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0) >= 0 || errno != EAGAIN) break;
			}
		}
		double t = now_s();
		if (t - tlast >= 1.0) {
			printf("%.0f %.0f\n", (rx_total - rx_last) / (t - tlast), (tx_total - tx_last) / (t - tlast));
			fflush(stdout);
			rx_last = rx_total; tx_last = tx_total; tlast = t;
		}
		if (seconds > 0 && t - t0 >= seconds) break;
	}
	printf("total rx %llu tx %llu\n", rx_total, tx_total);
	xsk_socket__delete(xsk);
	xsk_umem__delete(umem);
	munmap(area, size);
	return 0;
}

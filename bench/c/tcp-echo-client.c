/*
 * Kernel TCP load client for the TCP benchmarks (runs in the lab's peer namespace).
 *
 * IP is an IPv4 or an IPv6 address.
 *
 *   tcp-echo-client echo    IP PORT CONNS SECONDS [SIZE] [WARMUP] [RATE]
 *     CONNS connections; each sends SIZE bytes (default 64), waits for the SIZE-byte echo, repeats.
 *     RATE (requests per second in all, 0 or absent: no limit): a connection whose echo came back
 *     sends its next request when a token bucket filled at RATE per second (at most CONNS tokens)
 *     has one, else waits in line (checked every millisecond at least); the first requests, one
 *     per connection, leave at once.
 *   tcp-echo-client connect IP PORT PARALLEL SECONDS [WARMUP]
 *     PARALLEL slots; each connects, sends 1 byte, reads 1 byte, closes, and starts again.
 *
 *   tcp-echo-client hold    IP PORT CONNS SECONDS
 *     opens CONNS connections (at most 256 handshakes at a time), sends 1 byte on each and reads its
 *     echo, prints {"mode":"hold","held":N,"errors":N,"seconds":S} once all are established (or after
 *     SECONDS), then keeps them open until killed; SIGUSR1 resets them all (SO_LINGER 0: one RST
 *     each), prints {"reset":N} and exits. SIGKILL leaves the closing to the kernel (a FIN each).
 *
 * Counts completed requests (echo) or connections (connect) after WARMUP seconds (default 1) for
 * SECONDS seconds, then prints one JSON line: {"mode","ops","seconds","rate","errors"}.
 * With the environment variable TCP_CLIENT_INTERVAL=S (seconds), echo and connect also print
 * {"t":S,"ops":N,"errors":N} every S seconds from the start (cumulative counts, for time series).
 * One thread, epoll, non-blocking sockets, TCP_NODELAY.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXC 20000

struct conn {
	int fd;
	size_t got;     /* bytes of the current echo received */
	int connected;
	int parked;     /* echo complete, waiting for the rate to allow the next request */
};

static struct conn conns[MAXC];
static struct sockaddr_storage dst;
static socklen_t dst_len;
static int ep;
static size_t size = 64;
static char sbuf[65536], rbuf[65536];
static uint64_t ops, errors;
static double rate, t_start, tokens, t_tokens;
static int nconns;
static int parked[MAXC]; /* FIFO of waiting connections: pcount ids from parked[phead], wrapping */
static int phead, pcount;

/* RATE: the next request may leave now (a token bucket of RATE per second, CONNS deep). */
static int may_send(double t)
{
	if (rate <= 0) return 1;
	tokens += (t - t_tokens) * rate;
	t_tokens = t;
	if (tokens > nconns) tokens = nconns;
	return tokens >= 1;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int open_conn(int i)
{
	int fd = socket(dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) { perror("socket"); exit(1); }
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&dst, dst_len) < 0 && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	conns[i].fd = fd;
	conns[i].got = 0;
	conns[i].connected = 0;
	conns[i].parked = 0;
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.u32 = i };
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	return 0;
}

static void reopen(int i)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, conns[i].fd, NULL);
	close(conns[i].fd);
	while (open_conn(i) < 0) errors++;
}

/*
 * The non-blocking connect of conns[i] completed (EPOLLOUT): on success it waits for input and sends
 * its first `len` bytes (returns 0); on failure the slot is reopened and counted (returns -1).
 */
static int connected(int i, size_t len)
{
	struct conn *c = &conns[i];
	int err = 0;
	socklen_t l = sizeof(err);
	getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
	if (err) { errors++; reopen(i); return -1; }
	c->connected = 1;
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = i };
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
	if (send(c->fd, sbuf, len, MSG_NOSIGNAL) < 0) { errors++; reopen(i); return -1; }
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: tcp-echo-client echo IP PORT CONNS SECONDS [SIZE] [WARMUP] [RATE]\n"
			"       tcp-echo-client connect IP PORT PARALLEL SECONDS [WARMUP]\n"
			"       tcp-echo-client hold IP PORT CONNS SECONDS\n");
	exit(2);
}

static volatile sig_atomic_t reset_all;
static void on_usr1(int sig) { (void)sig; reset_all = 1; }

/* hold: CONNS established connections (1 byte echoed on each), kept until killed or reset. */
static int hold(int n, double secs)
{
	struct rlimit rl = { (rlim_t)n + 64, (rlim_t)n + 64 };
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) { perror("setrlimit"); return 1; }
	signal(SIGUSR1, on_usr1);
	int next = 0, inflight = 0, held = 0;
	double t0 = now_s();
	struct epoll_event evs[256];
	while (held < n && now_s() - t0 < secs) {
		while (next < n && inflight < 256) {
			if (open_conn(next) < 0) { errors++; break; }
			next++;
			inflight++;
		}
		int k = epoll_wait(ep, evs, 256, 10);
		for (int j = 0; j < k; j++) {
			int i = evs[j].data.u32;
			struct conn *c = &conns[i];
			if (evs[j].events & (EPOLLERR | EPOLLHUP)) { errors++; reopen(i); c->connected = 0; continue; }
			if ((evs[j].events & EPOLLOUT) && !c->connected && connected(i, 1) < 0) continue;
			if (evs[j].events & EPOLLIN) {
				ssize_t r = recv(c->fd, rbuf, sizeof(rbuf), 0);
				if (r < 0 && errno == EAGAIN) continue;
				if (r <= 0) { errors++; reopen(i); c->connected = 0; continue; }
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				held++;
				inflight--;
			}
		}
	}
	printf("{\"mode\":\"hold\",\"held\":%d,\"errors\":%llu,\"seconds\":%.3f}\n", held, (unsigned long long)errors, now_s() - t0);
	fflush(stdout);
	while (!reset_all) pause();
	struct linger lg = { 1, 0 };
	int reset = 0;
	for (int i = 0; i < next; i++) {
		setsockopt(conns[i].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		if (close(conns[i].fd) == 0) reset++;
	}
	printf("{\"reset\":%d}\n", reset);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 6) usage();
	int echo = !strcmp(argv[1], "echo");
	int holding = !strcmp(argv[1], "hold");
	if (!echo && !holding && strcmp(argv[1], "connect")) usage();
	memset(&dst, 0, sizeof(dst));
	struct sockaddr_in *d4 = (struct sockaddr_in *)&dst;
	struct sockaddr_in6 *d6 = (struct sockaddr_in6 *)&dst;
	if (inet_pton(AF_INET, argv[2], &d4->sin_addr) == 1) {
		d4->sin_family = AF_INET;
		d4->sin_port = htons(atoi(argv[3]));
		dst_len = sizeof(*d4);
	} else if (inet_pton(AF_INET6, argv[2], &d6->sin6_addr) == 1) {
		d6->sin6_family = AF_INET6;
		d6->sin6_port = htons(atoi(argv[3]));
		dst_len = sizeof(*d6);
	} else {
		usage();
	}
	int n = atoi(argv[4]);
	double secs = atof(argv[5]), warm = 1;
	if (echo && argc > 6) size = strtoul(argv[6], NULL, 0);
	if (argc > (echo ? 7 : 6)) warm = atof(argv[echo ? 7 : 6]);
	if (echo && argc > 8) rate = atof(argv[8]);
	if (n < 1 || n > MAXC || size < 1 || size > sizeof(sbuf) || secs <= 0 || rate < 0) usage();
	memset(sbuf, 'x', sizeof(sbuf));

	ep = epoll_create1(EPOLL_CLOEXEC);
	if (holding) return hold(n, secs);
	const char *iv = getenv("TCP_CLIENT_INTERVAL");
	double interval = iv ? atof(iv) : 0, next_report = 0;
	t_start = t_tokens = now_s();
	nconns = n;
	for (int i = 0; i < n; i++)
		if (open_conn(i) < 0) { perror("connect"); return 1; }

	double t0 = t_start, start = t0 + warm, end = start + secs;
	next_report = t0 + interval;
	uint64_t base = 0;
	int counting = 0;
	struct epoll_event evs[256];
	for (;;) {
		double t = now_s();
		if (!counting && t >= start) { counting = 1; base = ops; }
		if (t >= end) break;
		if (interval > 0 && t >= next_report) {
			printf("{\"t\":%.3f,\"ops\":%llu,\"errors\":%llu}\n", t - t0, (unsigned long long)ops, (unsigned long long)errors);
			fflush(stdout);
			next_report += interval;
		}
		/* RATE: parked connections send as the time allows. */
		while (pcount > 0 && may_send(t)) {
			int i = parked[phead];
			phead = (phead + 1) % MAXC;
			pcount--;
			struct conn *c = &conns[i];
			if (!c->parked) continue; /* reopened meanwhile */
			c->parked = 0;
			tokens -= 1;
			if (send(c->fd, sbuf, size, MSG_NOSIGNAL) < 0) { errors++; reopen(i); }
		}
		int k = epoll_wait(ep, evs, 256, pcount > 0 ? 1 : 10);
		for (int j = 0; j < k; j++) {
			int i = evs[j].data.u32;
			struct conn *c = &conns[i];
			if (evs[j].events & (EPOLLERR | EPOLLHUP)) {
				if (!echo || !(evs[j].events & EPOLLIN)) { errors++; reopen(i); continue; }
			}
			if ((evs[j].events & EPOLLOUT) && !c->connected && connected(i, echo ? size : 1) < 0) continue;
			if (evs[j].events & EPOLLIN) {
				ssize_t r = recv(c->fd, rbuf, sizeof(rbuf), 0);
				if (r <= 0) {
					if (r < 0 && errno == EAGAIN) continue;
					errors++;
					reopen(i);
					continue;
				}
				c->got += r;
				if (echo) {
					while (c->got >= size) {
						c->got -= size;
						ops++;
						if (c->got != 0) continue;
						if (rate > 0 && !may_send(now_s()) && pcount < MAXC) {
							c->parked = 1;
							parked[(phead + pcount++) % MAXC] = i;
							break;
						}
						tokens -= 1;
						if (send(c->fd, sbuf, size, MSG_NOSIGNAL) < 0) { errors++; reopen(i); break; }
					}
				} else {
					ops++;
					reopen(i);
				}
			}
		}
	}
	double elapsed = now_s() - start;
	uint64_t done = ops - base;
	printf("{\"mode\":\"%s\",\"ops\":%llu,\"seconds\":%.3f,\"rate\":%.1f,\"errors\":%llu}\n", argv[1],
	       (unsigned long long)done, elapsed, done / elapsed, (unsigned long long)errors);
	return 0;
}

/*
 * Kernel TCP bulk sender for the `tcp-bulk` benchmark (runs in the lab's peer namespace).
 *
 *   tcp-bulk-send IP PORT SECONDS [WARMUP]
 * Connects and writes in 64 KiB writes for WARMUP (default 1) + SECONDS seconds, then shuts down its
 * side and waits for the server to close. The rate counts the bytes written after the warm-up, over
 * the time from the end of the warm-up to the server's close (so every counted byte was delivered):
 * steady state, without the connection's start. Prints one JSON line:
 * {"bytes","warmupBytes","seconds","mbps"} (bytes = all written; MB = 10^6 bytes).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc < 4) { fprintf(stderr, "usage: tcp-bulk-send IP PORT SECONDS [WARMUP]\n"); return 2; }
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])) };
	if (inet_pton(AF_INET, argv[1], &a.sin_addr) != 1) { fprintf(stderr, "bad address\n"); return 2; }
	double secs = atof(argv[3]), warm = argc > 4 ? atof(argv[4]) : 1;
	if (!(secs > 0) || !(warm >= 0)) { fprintf(stderr, "bad SECONDS or WARMUP\n"); return 2; }
	long long sent = 0, warm_bytes = -1;
	static char buf[65536];
	memset(buf, 'b', sizeof(buf));
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) { perror("connect"); return 1; }
	double t0 = now_s(), t_mark = t0 + warm, t_end = t_mark + secs, t;
	for (;;) {
		ssize_t w = send(fd, buf, sizeof(buf), MSG_NOSIGNAL);
		if (w <= 0) { perror("send"); return 1; }
		sent += w;
		t = now_s();
		if (warm_bytes < 0 && t >= t_mark) { warm_bytes = sent; t_mark = t; }
		if (t >= t_end) break;
	}
	shutdown(fd, SHUT_WR);
	while (recv(fd, buf, sizeof(buf), 0) > 0) {}
	double s = now_s() - t_mark;
	printf("{\"bytes\":%lld,\"warmupBytes\":%lld,\"seconds\":%.3f,\"mbps\":%.1f}\n", sent, warm_bytes, s,
	       (sent - warm_bytes) / s / 1e6);
	return 0;
}

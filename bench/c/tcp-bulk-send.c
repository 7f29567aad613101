/*
 * Kernel TCP bulk sender for the `tcp-bulk` benchmark (runs in the lab's peer namespace).
 *
 *   tcp-bulk-send IP PORT MBYTES
 * Connects, writes MBYTES MiB in 64 KiB writes, shuts down its side and waits for the server to
 * close. Prints one JSON line: {"bytes","seconds","mbps"} (seconds from connect to the server's
 * close, MB = 10^6 bytes).
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
	if (argc < 4) { fprintf(stderr, "usage: tcp-bulk-send IP PORT MBYTES\n"); return 2; }
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])) };
	if (inet_pton(AF_INET, argv[1], &a.sin_addr) != 1) { fprintf(stderr, "bad address\n"); return 2; }
	long long total = atoll(argv[3]) * 1024 * 1024, sent = 0;
	static char buf[65536];
	memset(buf, 'b', sizeof(buf));
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	double t0 = now_s();
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) { perror("connect"); return 1; }
	while (sent < total) {
		size_t n = total - sent < (long long)sizeof(buf) ? (size_t)(total - sent) : sizeof(buf);
		ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
		if (w <= 0) { perror("send"); return 1; }
		sent += w;
	}
	shutdown(fd, SHUT_WR);
	while (recv(fd, buf, sizeof(buf), 0) > 0) {}
	double s = now_s() - t0;
	printf("{\"bytes\":%lld,\"seconds\":%.3f,\"mbps\":%.1f}\n", sent, s, sent / s / 1e6);
	return 0;
}

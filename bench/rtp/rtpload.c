/*
 * rtpload: paced RTP-sized load through a media relay, and the receiver that counts it.
 *
 *   rtpload -a 127.0.0.62:41000 -b 127.0.0.62:41001 -f streams.txt -r 50 -s 172 -t 10
 *
 * streams.txt has one line per unidirectional stream: "<side> <relay-ip>:<relay-port>", side
 * "a" or "b": the generator socket it is sent from. Every stream of side a comes from the one
 * socket bound to -a (the address the SDPs of side a named), so the relay latches on it; what
 * the relay forwards arrives at the other side's socket. Each packet carries the stream number
 * (as SSRC), a sequence number and the send time, so the receiver counts per stream and
 * measures one-way latency. Sending is paced in 1 ms ticks with sendmmsg; receiving is a
 * separate thread draining both sockets with recvmmsg every millisecond (latency figures are
 * therefore up to 1 ms high). After -t seconds of sending it drains for
 * 1 s and prints one line of key=value figures.
 *
 * Written for voxide's bench (bench/rtp/README in bench/README.md); loopback addresses only.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define MAX_STREAMS 100000
#define LAT_BUCKETS 64

struct stream {
	struct sockaddr_in relay;
	int side; /* 0 = a, 1 = b */
	uint32_t sent;
};

static struct stream *streams;
static int nstreams;
static int sock[2];
static atomic_int sending_done;
static uint64_t *received; /* per stream, written by the receiver only */
static uint64_t lat_hist[LAT_BUCKETS]; /* bucket k: [2^k, 2^(k+1)) microseconds */
static uint64_t lat_sum_us, lat_count;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int parse_addr(const char *text, struct sockaddr_in *out)
{
	char host[64];
	const char *colon = strrchr(text, ':');
	if (!colon || (size_t)(colon - text) >= sizeof host)
		return -1;
	memcpy(host, text, (size_t)(colon - text));
	host[colon - text] = 0;
	memset(out, 0, sizeof *out);
	out->sin_family = AF_INET;
	out->sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &out->sin_addr) != 1)
		return -1;
	if ((ntohl(out->sin_addr.s_addr) >> 24) != 127) {
		fprintf(stderr, "rtpload: %s is not a loopback address\n", text);
		exit(2);
	}
	return 0;
}

static int bind_socket(const char *address)
{
	struct sockaddr_in sin;
	if (parse_addr(address, &sin) < 0) {
		fprintf(stderr, "rtpload: bad address %s\n", address);
		exit(2);
	}
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	int size = 8 << 20;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
	setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
	if (bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
		perror("rtpload: bind");
		exit(2);
	}
	return fd;
}

/* The receiver stands in for thousands of remote phones. It polls its sockets once per
 * millisecond instead of sleeping in poll(): a thread blocked on a socket would be woken by
 * every packet the relay sends, and on loopback that wake-up (and the preemption it often
 * causes) runs in, and is charged to, the relay's send call, which a relay sending to phones
 * over a real network never pays. */
static void *receiver(void *unused)
{
	(void)unused;
	static uint8_t buffers[BATCH][2048];
	struct mmsghdr headers[BATCH];
	struct iovec iovecs[BATCH];
	uint64_t quiet_since = 0;
	for (;;) {
		struct timespec tick = {0, 1000000};
		nanosleep(&tick, NULL);
		int got_any = 0;
		for (int side = 0; side < 2; side++) {
			for (;;) {
				for (int i = 0; i < BATCH; i++) {
					iovecs[i].iov_base = buffers[i];
					iovecs[i].iov_len = sizeof buffers[i];
					memset(&headers[i].msg_hdr, 0, sizeof headers[i].msg_hdr);
					headers[i].msg_hdr.msg_iov = &iovecs[i];
					headers[i].msg_hdr.msg_iovlen = 1;
				}
				int n = recvmmsg(sock[side], headers, BATCH, MSG_DONTWAIT, NULL);
				if (n <= 0)
					break;
				got_any = 1;
				uint64_t now = now_ns();
				for (int i = 0; i < n; i++) {
					if (headers[i].msg_len < 20)
						continue;
					uint32_t id;
					uint64_t sent_at;
					memcpy(&id, buffers[i] + 8, 4);
					memcpy(&sent_at, buffers[i] + 12, 8);
					id = ntohl(id);
					if ((int)id >= nstreams)
						continue;
					received[id]++;
					uint64_t us = now > sent_at ? (now - sent_at) / 1000 : 0;
					int bucket = 0;
					while (bucket < LAT_BUCKETS - 1 && (us >> (bucket + 1)))
						bucket++;
					lat_hist[bucket]++;
					lat_sum_us += us;
					lat_count++;
				}
				if (n < BATCH)
					break;
			}
		}
		uint64_t now = now_ns();
		if (got_any || !atomic_load(&sending_done)) {
			quiet_since = 0;
		} else {
			if (!quiet_since)
				quiet_since = now;
			if (now - quiet_since > 1000000000u)
				return NULL;
		}
	}
}

static uint64_t percentile_us(double fraction)
{
	uint64_t target = (uint64_t)(fraction * (double)lat_count), seen = 0;
	for (int k = 0; k < LAT_BUCKETS; k++) {
		seen += lat_hist[k];
		if (seen > target)
			return (uint64_t)1 << (k + 1); /* upper edge of the bucket */
	}
	return 0;
}

static double cpu_seconds(void)
{
	struct rusage usage;
	getrusage(RUSAGE_SELF, &usage);
	return (double)usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 +
	       (double)usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
	const char *a = NULL, *b = NULL, *file = NULL;
	int pps = 50, size = 172;
	double seconds = 10;
	int opt;
	while ((opt = getopt(argc, argv, "a:b:f:r:s:t:")) != -1) {
		switch (opt) {
		case 'a': a = optarg; break;
		case 'b': b = optarg; break;
		case 'f': file = optarg; break;
		case 'r': pps = atoi(optarg); break;
		case 's': size = atoi(optarg); break;
		case 't': seconds = atof(optarg); break;
		default: goto usage;
		}
	}
	if (!a || !b || !file || pps <= 0 || size < 20 || size > 1400 || seconds <= 0 || seconds > 600) {
usage:
		fprintf(stderr, "usage: rtpload -a IP:PORT -b IP:PORT -f streams.txt [-r pps] [-s size] [-t secs]\n");
		return 2;
	}
	sock[0] = bind_socket(a);
	sock[1] = bind_socket(b);
	FILE *in = fopen(file, "r");
	if (!in) {
		perror(file);
		return 2;
	}
	streams = calloc(MAX_STREAMS, sizeof *streams);
	received = calloc(MAX_STREAMS, sizeof *received);
	char side[8], relay[64];
	while (nstreams < MAX_STREAMS && fscanf(in, "%7s %63s", side, relay) == 2) {
		if (parse_addr(relay, &streams[nstreams].relay) < 0 || (side[0] != 'a' && side[0] != 'b')) {
			fprintf(stderr, "rtpload: bad stream line %d\n", nstreams + 1);
			return 2;
		}
		streams[nstreams].side = side[0] == 'b';
		nstreams++;
	}
	fclose(in);
	if (!nstreams) {
		fprintf(stderr, "rtpload: no streams\n");
		return 2;
	}

	pthread_t thread;
	pthread_create(&thread, NULL, receiver, NULL);

	/* Stream i sends its k-th packet at start + k/pps + phase(i): phases spread the streams
	 * evenly over one packet interval, as independent phones would be. */
	static uint8_t packets[BATCH][1400];
	struct mmsghdr headers[BATCH];
	struct iovec iovecs[BATCH];
	uint64_t interval = 1000000000u / (uint64_t)pps;
	uint64_t start = now_ns() + 10000000u;
	uint64_t end = start + (uint64_t)(seconds * 1e9);
	uint64_t total_sent = 0, send_errors = 0;
	double cpu_start = cpu_seconds();
	for (;;) {
		uint64_t now = now_ns();
		if (now >= end)
			break;
		if (now < start) {
			usleep(1000);
			continue;
		}
		/* everything due by now */
		for (int s0 = 0; s0 < 2; s0++) {
			int count = 0;
			for (int i = 0; i < nstreams; i++) {
				struct stream *st = &streams[i];
				if (st->side != s0)
					continue;
				uint64_t due = start + (uint64_t)i * interval / (uint64_t)nstreams + st->sent * interval;
				if (due > now || due >= end)
					continue;
				uint8_t *p = packets[count];
				memset(p, 0, (size_t)size);
				p[0] = 0x80;
				p[1] = 0;
				uint16_t seq = htons((uint16_t)st->sent);
				uint32_t id = htonl((uint32_t)i);
				memcpy(p + 2, &seq, 2);
				memcpy(p + 8, &id, 4);
				memcpy(p + 12, &now, 8);
				iovecs[count].iov_base = p;
				iovecs[count].iov_len = (size_t)size;
				memset(&headers[count].msg_hdr, 0, sizeof headers[count].msg_hdr);
				headers[count].msg_hdr.msg_name = &st->relay;
				headers[count].msg_hdr.msg_namelen = sizeof st->relay;
				headers[count].msg_hdr.msg_iov = &iovecs[count];
				headers[count].msg_hdr.msg_iovlen = 1;
				st->sent++;
				count++;
				if (count == BATCH || i == nstreams - 1) {
					int done = 0;
					while (done < count) {
						int n = sendmmsg(sock[s0], headers + done, (unsigned)(count - done), 0);
						if (n <= 0) {
							if (n < 0 && errno == EINTR)
								continue;
							send_errors += (uint64_t)(count - done);
							break;
						}
						done += n;
					}
					total_sent += (uint64_t)done;
					count = 0;
				}
			}
			if (count) {
				int n = sendmmsg(sock[s0], headers, (unsigned)count, 0);
				if (n > 0)
					total_sent += (uint64_t)n;
				if (n < count)
					send_errors += (uint64_t)(count - (n > 0 ? n : 0));
			}
		}
		struct timespec tick = {0, 1000000};
		nanosleep(&tick, NULL);
	}
	double elapsed = (double)(now_ns() - start) / 1e9;
	double generator_cpu = cpu_seconds() - cpu_start;
	atomic_store(&sending_done, 1);
	pthread_join(thread, NULL);
	uint64_t total_received = 0;
	int silent = 0;
	for (int i = 0; i < nstreams; i++) {
		total_received += received[i];
		if (!received[i])
			silent++;
	}
	double offered = (double)nstreams * pps;
	printf("streams=%d offered_pps=%.0f sent=%llu sent_pps=%.0f received=%llu received_pps=%.0f "
	       "loss_percent=%.4f silent_streams=%d send_errors=%llu lat_avg_us=%llu lat_p50_us=%llu "
	       "lat_p99_us=%llu generator_cores=%.3f\n",
	       nstreams, offered, (unsigned long long)total_sent, (double)total_sent / elapsed,
	       (unsigned long long)total_received, (double)total_received / elapsed,
	       total_sent ? 100.0 * (1.0 - (double)total_received / (double)total_sent) : 100.0, silent,
	       (unsigned long long)send_errors,
	       (unsigned long long)(lat_count ? lat_sum_us / lat_count : 0),
	       (unsigned long long)percentile_us(0.5), (unsigned long long)percentile_us(0.99),
	       generator_cpu / elapsed);
	return 0;
}

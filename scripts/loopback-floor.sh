#!/bin/bash
# The machine's floor for a request-answer exchange on loopback TCP: a C server (epoll, one read
# and one write per exchange, nonblocking, TCP_NODELAY) answers a paced client's 100-byte
# messages; prints the server's CPU time per exchange. An end-to-end round of
# scripts/e2e-check.sh is two such exchanges for the broker (a produce and a fetch), so twice
# this is the least broker CPU a round can take here.
#
#     scripts/loopback-floor.sh [RATE] [SECONDS]     # default 20000 exchanges/s for 10 s
set -euo pipefail
RATE=${1:-20000}; SECONDS_=${2:-10}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
command -v cc >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc >/dev/null; }
cat > "$W/floor.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static double cpu(void) {
    struct rusage r; getrusage(RUSAGE_SELF, &r);
    return r.ru_utime.tv_sec + r.ru_stime.tv_sec + (r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}
int main(int argc, char **argv) {
    int rate = atoi(argv[1]); double secs = atof(argv[2]); int one = 1;
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 }; a.sin_addr.s_addr = htonl(0x7f000001);
    socklen_t len = sizeof a;
    if (bind(ls, (void *)&a, sizeof a) || listen(ls, 1) || getsockname(ls, (void *)&a, &len)) { perror("listen"); return 1; }
    alarm((unsigned)secs + 30);  /* bounded, whatever happens */
    if (fork() == 0) {  /* the client: one 100-byte request at a time, paced */
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(c, (void *)&a, sizeof a)) { perror("connect"); exit(1); }
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        char buf[100]; memset(buf, 7, sizeof buf);
        long n = (long)(rate * secs); double t0 = now();
        for (long i = 0; i < n; i++) {
            double due = t0 + i / (double)rate, left;
            while ((left = due - now()) > 0) if (left > 1e-4) { struct timespec ts = { 0, (long)(left * 0.8e9) }; nanosleep(&ts, 0); }
            if (write(c, buf, sizeof buf) != sizeof buf) exit(1);
            for (int got = 0; got < (int)sizeof buf;) { int r = read(c, buf, sizeof buf - got); if (r <= 0) exit(1); got += r; }
        }
        exit(0);
    }
    int s = accept(ls, 0, 0);
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(s, F_SETFL, O_NONBLOCK);
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = s };
    epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
    double c0 = cpu(); long exchanges = 0; char buf[4096];
    for (;;) {
        struct epoll_event evs[8];
        if (epoll_wait(ep, evs, 8, -1) <= 0) continue;
        int r = read(s, buf, sizeof buf);
        if (r == 0) break;
        if (r < 0) continue;
        if (write(s, buf, r) != r) break;
        exchanges++;
    }
    double used = cpu() - c0;
    printf("exchanges=%ld server_cpu_s=%.2f us_per_exchange=%.1f\n", exchanges, used, used / exchanges * 1e6);
    return 0;
}
C
cc -O2 -o "$W/floor" "$W/floor.c"
"$W/floor" "$RATE" "$SECONDS_"

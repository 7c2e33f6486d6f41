// How long N concurrent (pwrite of 4 KiB + fdatasync) on N files of one disk take, against one alone: the
// floor of a replicated c=1 confirm when the replicas share the disk (BENCHMARKS.md, session 16).
//   gcc -O2 -pthread -o /tmp/concurrent-syncs Benchmarks/Probes/concurrent-syncs.c
//   for n in 1 2 3; do /tmp/concurrent-syncs $n .bench-data; done
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int n;
static int fds[8];
static pthread_barrier_t start, done;
static char buf[4096];
static long rounds = 2000;

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e6 + t.tv_nsec / 1e3; }

static void *worker(void *arg) {
    int i = (int)(long)arg;
    for (long r = 0; r < rounds; r++) {
        pthread_barrier_wait(&start);
        if (pwrite(fds[i], buf, sizeof buf, (r % 4096) * 4096) != sizeof buf) abort();
        if (fdatasync(fds[i]) != 0) abort();
        pthread_barrier_wait(&done);
    }
    return NULL;
}

static int cmp(const void *a, const void *b) { double x = *(double *)a, y = *(double *)b; return x < y ? -1 : x > y; }

int main(int argc, char **argv) {
    if (argc != 3 || (n = atoi(argv[1])) < 1 || n > 8) {
        fprintf(stderr, "usage: concurrent-syncs N(1-8) DIRECTORY\n");
        return 2;
    }
    const char *dir = argv[2];
    memset(buf, 'x', sizeof buf);
    for (int i = 0; i < n; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/probe-%d", dir, i);
        fds[i] = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
        // Preallocated and synced, so that each round overwrites allocated blocks (as the log's prepared segments).
        for (int b = 0; b < 4096; b++) pwrite(fds[i], buf, sizeof buf, (off_t)b * 4096);
        fsync(fds[i]);
    }
    pthread_barrier_init(&start, NULL, n + 1);
    pthread_barrier_init(&done, NULL, n + 1);
    pthread_t t[8];
    for (int i = 0; i < n; i++) pthread_create(&t[i], NULL, worker, (void *)(long)i);
    double *lat = malloc(sizeof(double) * rounds);
    for (long r = 0; r < rounds; r++) {
        double t0 = now();
        pthread_barrier_wait(&start);
        pthread_barrier_wait(&done);
        lat[r] = now() - t0;
    }
    for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
    qsort(lat, rounds, sizeof(double), cmp);
    printf("%d concurrent: p50 %.1f us, p90 %.1f us, p99 %.1f us\n", n, lat[rounds / 2], lat[rounds * 9 / 10], lat[rounds * 99 / 100]);
    for (int i = 0; i < n; i++) { char path[512]; snprintf(path, sizeof path, "%s/probe-%d", dir, i); unlink(path); }
    return 0;
}

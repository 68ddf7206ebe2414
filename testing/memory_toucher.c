/*
 * memory_toucher SIZE_MIB DIRTY_PERCENT_PER_S
 *
 * Allocates SIZE_MIB MiB, fills every byte with xorshift64 noise (page images
 * that do not compress, as CRIU's mostly do not), prints "ready SIZE_MIB",
 * then every 100 ms writes one byte into the next pages in turn, so that
 * DIRTY_PERCENT_PER_S percent of the pages are dirtied each second, and
 * prints a counter (1, 2, 3...) once per second. Built static by
 * testing/memory_toucher.ts for the migration benchmark.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: memory_toucher SIZE_MIB DIRTY_PERCENT_PER_S\n");
    return 2;
  }
  long mib = atol(argv[1]);
  double pct = atof(argv[2]);
  if (mib <= 0 || mib > 65536 || pct < 0 || pct > 100) {
    fprintf(stderr, "memory_toucher: SIZE_MIB 1..65536, DIRTY_PERCENT_PER_S 0..100\n");
    return 2;
  }
  size_t bytes = (size_t)mib << 20, pages = bytes / 4096;
  uint64_t *m = malloc(bytes);
  if (!m) {
    fprintf(stderr, "memory_toucher: cannot allocate %ld MiB\n", mib);
    return 1;
  }
  uint64_t x = 88172645463325252ull;
  for (size_t i = 0; i < bytes / 8; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    m[i] = x;
  }
  printf("ready %ld\n", mib);
  fflush(stdout);
  unsigned char *b = (unsigned char *)m;
  size_t next = 0;
  double due = 0;
  for (unsigned long tick = 1;; tick++) {
    struct timespec ts = {0, 100000000};
    nanosleep(&ts, 0);
    for (due += pages * pct / 1000.0; due >= 1; due -= 1) {
      b[next * 4096 + (tick % 4096)]++;
      next = (next + 1) % pages;
    }
    if (tick % 10 == 0) {
      printf("%lu\n", tick / 10);
      fflush(stdout);
    }
  }
}

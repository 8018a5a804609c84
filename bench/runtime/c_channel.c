/*
** c_channel.c -- the floor for the runtime's message cost: two C threads
** passing N messages through a bounded queue (a mutex and two condition
** variables, capacity 64), each message a 64-byte block the producer
** mallocs and the consumer checks and frees (a remote free).  Prints
** messages per second.
**
** Usage: c_channel [messages]   (default 1000000)
*/
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../micro/bench_util.h"

#define CAP 64

static struct {
  pthread_mutex_t lock;
  pthread_cond_t not_empty, not_full;
  void *slot[CAP];
  size_t head, count;
} q = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0, 0};

static long n_messages;

static void *producer(void *arg) {
  long i;
  (void)arg;
  for (i = 0; i < n_messages; i++) {
    long *m = (long *)BENCH_MALLOC(64);
    if (m == NULL) abort();
    m[0] = i;
    memset(m + 1, 0x5a, 64 - sizeof(long));
    pthread_mutex_lock(&q.lock);
    while (q.count == CAP) pthread_cond_wait(&q.not_full, &q.lock);
    q.slot[(q.head + q.count) % CAP] = m;
    q.count++;
    pthread_cond_signal(&q.not_empty);
    pthread_mutex_unlock(&q.lock);
  }
  return NULL;
}

int main(int argc, char **argv) {
  pthread_t t;
  long i, sum = 0;
  struct timespec a, b;
  double s;
  n_messages = argc > 1 ? atol(argv[1]) : 1000000;
  if (n_messages <= 0) {
    fprintf(stderr, "usage: c_channel [messages > 0]\n");
    return 1;
  }
  clock_gettime(CLOCK_MONOTONIC, &a);
  pthread_create(&t, NULL, producer, NULL);
  for (i = 0; i < n_messages; i++) {
    long *m;
    pthread_mutex_lock(&q.lock);
    while (q.count == 0) pthread_cond_wait(&q.not_empty, &q.lock);
    m = (long *)q.slot[q.head];
    q.head = (q.head + 1) % CAP;
    q.count--;
    pthread_cond_signal(&q.not_full);
    pthread_mutex_unlock(&q.lock);
    if (m[0] != i || ((unsigned char *)m)[63] != 0x5a) abort();
    sum += m[0];
    BENCH_FREE(m);
  }
  pthread_join(t, NULL);
  clock_gettime(CLOCK_MONOTONIC, &b);
  s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
  printf("c_channel: %ld messages in %.3f s: %.0f messages/s (check %ld)\n", n_messages, s,
         (double)n_messages / s, sum);
  return 0;
}

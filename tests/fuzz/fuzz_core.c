/*
** fuzz_core.c -- a libFuzzer target for the allocator core.
**
** The input is a program: each operation is an opcode byte followed by its
** operands (a slot, a size, an alignment, a heap), read from the bytes that
** follow; a program that runs out of bytes reads zeros.  The operations
** cover the whole C API: malloc, calloc, realloc (grow, shrink, to 0), free,
** free_sized, aligned allocation at every power-of-two alignment,
** usable_size, owns, explicit heaps (new, allocate in, destroy, delete),
** the 8-byte Lua API (malloc8, realloc8 with the old size), collect, and
** two kinds of thread traffic: a resident second thread that frees blocks
** it receives through a queue (remote frees) and allocates blocks that this
** thread later frees, and short-lived threads that exit with live blocks
** (abandoned segments, adopted later).  Every FZ_CHECK_EVERY operations,
** and at the end, hak_heap_check walks this thread's heaps.
**
** Every block is filled at allocation with a pattern of its id (each
** allocation takes a new one) and checked before it is freed or resized:
** a block handed out twice, overlapping another, or damaged by hakmem's
** own lists shows up as a pattern mismatch, and the target aborts with the
** slot, the id and the offset.  realloc must keep the old pattern in the
** common prefix.  Blocks above 64 KiB carry the pattern in their first and
** last 4 KiB and in 8 bytes of every 64 KiB slice between (filling, and
** faulting in, megabytes for every operation would make the fuzzer slow; a
** mistake in hakmem is a list link or a whole span of slices, which the
** sparse pattern still sees).
**
** Each input starts from nothing and ends with every block freed, every
** heap destroyed or deleted and the second thread idle, so inputs are
** independent and a crash input replays alone.  tests/fuzz/replay.c runs
** this file's LLVMFuzzerTestOneInput on files without libFuzzer.
*/
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hakmem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- limits ------------------------------------------------------------- */

#define FZ_SLOTS 64                   /* live blocks at most */
#define FZ_HEAPS 4                    /* explicit heaps at most */
#define FZ_LIVE_MAX ((size_t)96 << 20) /* bytes of live blocks at most */
#define FZ_DENSE_MAX ((size_t)64 << 10) /* blocks up to this are filled whole */
#define FZ_PAGE 4096                  /* head and tail of a sparse pattern */
#define FZ_STRIDE ((size_t)64 << 10)  /* one word per slice between them */
#define FZ_ALIGN_SHIFT_MAX 26         /* alignments 1 .. 64 MiB */
#define FZ_QUEUE 64                   /* blocks in flight to the second thread */
#define FZ_BORN_MAX 8                 /* blocks a short-lived thread leaves */
#define FZ_CHECK_EVERY 16             /* operations between hak_heap_check calls */

/* ---- the input ------------------------------------------------------------ */

typedef struct fz_reader {
  const uint8_t *p, *end;
} fz_reader;

static unsigned fz_u8(fz_reader *r) { return r->p < r->end ? *r->p++ : 0; }

static unsigned fz_u16(fz_reader *r) {
  unsigned lo = fz_u8(r);
  return lo | fz_u8(r) << 8;
}

/*
** A size from three bytes: the first picks the range (small, medium, large,
** huge, and the edges between them), the other two where in it.
*/
static size_t fz_size(fz_reader *r) {
  unsigned kind = fz_u8(r), v = fz_u16(r);
  switch (kind % 8) {
  case 0: return v % 129;                                    /* 0..128, the exact classes */
  case 1: return v % 1025;                                   /* small */
  case 2: return 1025 + v % (32 * 1024);                     /* medium */
  case 3: return (32 << 10) + (size_t)v * 31;                /* large, to ~2 MiB */
  case 4: return (2 << 20) - 64 + v % 128;                   /* large/huge edge */
  case 5: return (2 << 20) + (size_t)v * 97;                 /* huge, to ~8 MiB */
  case 6: {                                                  /* class edges */
    static const size_t edges[] = {8, 16, 24, 128, 1024, 8 << 10, 32 << 10, 64 << 10};
    return edges[v % 8] + (v >> 3) % 3 - 1;
  }
  default: return (size_t)1 << (v % 24);                     /* powers of two */
  }
}

/* ---- patterns ------------------------------------------------------------- */

static uint64_t fz_mix(uint64_t x) {
  x ^= x >> 31;
  x *= 0x9E3779B97F4A7C15u;
  x ^= x >> 29;
  return x;
}

/* Byte k of block `id`'s pattern, whatever the block's length. */
static inline uint8_t fz_byte(uint64_t id, size_t k) {
  uint64_t w = fz_mix(id * 0x100000001B3u + (k >> 3));
  return (uint8_t)(w >> ((k & 7) * 8));
}

/* The ranges of a block of `len` bytes that carry its pattern. */
typedef bool (*fz_range_fn)(uint8_t *p, size_t from, size_t to, uint64_t id, size_t *bad);

static bool fz_walk(uint8_t *p, size_t len, size_t limit, uint64_t id, fz_range_fn fn, size_t *bad) {
  size_t lo, hi;
  if (len <= FZ_DENSE_MAX) return fn(p, 0, len < limit ? len : limit, id, bad);
  if (!fn(p, 0, FZ_PAGE < limit ? FZ_PAGE : limit, id, bad)) return false;
  for (size_t off = FZ_STRIDE; off + 8 <= len - FZ_PAGE && off < limit; off += FZ_STRIDE) {
    hi = off + 8 < limit ? off + 8 : limit;
    if (!fn(p, off, hi, id, bad)) return false;
  }
  lo = len - FZ_PAGE, hi = len < limit ? len : limit;
  return lo >= hi || fn(p, lo, hi, id, bad);
}

static bool fz_fill_range(uint8_t *p, size_t from, size_t to, uint64_t id, size_t *bad) {
  (void)bad;
  for (size_t k = from; k < to; k++) p[k] = fz_byte(id, k);
  return true;
}

static bool fz_check_range(uint8_t *p, size_t from, size_t to, uint64_t id, size_t *bad) {
  for (size_t k = from; k < to; k++)
    if (p[k] != fz_byte(id, k)) {
      *bad = k;
      return false;
    }
  return true;
}

static void fz_fill(void *p, size_t len, uint64_t id) { fz_walk(p, len, len, id, fz_fill_range, NULL); }

/* The first `limit` bytes of a block of `len` bytes: SIZE_MAX when intact,
** else the offset of the first byte that differs. */
static size_t fz_check(const void *p, size_t len, size_t limit, uint64_t id) {
  size_t bad = SIZE_MAX;
  fz_walk((uint8_t *)p, len, limit, id, fz_check_range, &bad);
  return bad;
}

static void fz_die(const char *what, int slot, uint64_t id, size_t off, size_t len) {
  fprintf(stderr, "fuzz_core: %s: slot %d, block id %llu, offset %zu of %zu\n", what, slot,
          (unsigned long long)id, off, len);
  abort();
}

static void fz_verify(const char *when, int slot, const void *p, size_t len, uint64_t id) {
  size_t bad = fz_check(p, len, len, id);
  if (bad != SIZE_MAX) fz_die(when, slot, id, bad, len);
}

/* ---- blocks ----------------------------------------------------------------- */

enum { FZ_API16, FZ_API8 }; /* malloc & co., or the sized 8-byte API */

typedef struct fz_slot {
  uint8_t *p;     /* NULL: empty */
  size_t len;     /* bytes carrying the pattern (what was asked, or usable) */
  size_t asked;   /* the size last asked (free_sized, realloc8's old size) */
  uint64_t id;
  int heap;       /* explicit heap index, -1: a default heap */
  int api;
} fz_slot;

typedef struct fz_state {
  fz_slot slot[FZ_SLOTS];
  hak_heap_t *heap[FZ_HEAPS];
  size_t live;    /* bytes in live slots */
  uint64_t next_id;
} fz_state;

static fz_state S;
static int fz_trace = -1; /* FUZZ_CORE_TRACE set: every operation to stderr */

#define TRACE(...) \
  do {                                       \
    if (fz_trace) fprintf(stderr, __VA_ARGS__); \
  } while (0)

/* Slot i holds block p, filled already with the pattern of `id`. */
static void fz_track(int i, void *p, size_t len, int heap, int api, uint64_t id) {
  TRACE("  slot %d = %p, %zu B, id %llu, heap %d, api %d\n", i, p, len, (unsigned long long)id, heap, api);
  S.slot[i] = (fz_slot){p, len, len, id, heap, api};
  S.live += len;
}

/* Slot i holds the new block p, which gets a new id and its pattern. */
static void fz_take(int i, void *p, size_t len, int heap, int api) {
  fz_track(i, p, len, heap, api, ++S.next_id);
  fz_fill(p, len, S.next_id);
}

static void fz_drop(int i) {
  TRACE("  slot %d dropped (%p)\n", i, (void *)S.slot[i].p);
  S.live -= S.slot[i].len;
  memset(&S.slot[i], 0, sizeof S.slot[i]);
}

static void fz_free_slot(int i, bool sized) {
  fz_slot *s = &S.slot[i];
  fz_verify("block changed before free", i, s->p, s->len, s->id);
  if (sized || s->api == FZ_API8) hak_free_sized(s->p, s->asked);
  else hak_free(s->p);
  fz_drop(i);
}

/* A size that keeps the live bytes under FZ_LIVE_MAX. */
static size_t fz_budget(size_t want, size_t now) {
  size_t room = FZ_LIVE_MAX - (S.live - now);
  return want <= room ? want : want % 4096;
}

/* ---- the second thread ----------------------------------------------------- */

/*
** It runs for the life of the process and serves one queue: a block to
** free (checked first) or a request to allocate one for the main thread.
** fz_remote_drain waits until it has done everything it was sent, so that
** nothing of an input is left in flight when the next starts (or when a
** heap whose blocks it holds is destroyed).
*/
typedef struct fz_msg {
  uint8_t *p;       /* free this block, or NULL: allocate `len` bytes */
  size_t len;
  uint64_t id;
} fz_msg;

static struct {
  pthread_mutex_t lock;
  pthread_cond_t wake, done;
  fz_msg q[FZ_QUEUE];
  unsigned head, tail;  /* q[tail % FZ_QUEUE] .. q[head % FZ_QUEUE] pending */
  uint8_t *made;        /* the block of the last allocation request */
  bool busy;
} R = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER,
       .done = PTHREAD_COND_INITIALIZER};

static pthread_once_t fz_remote_once = PTHREAD_ONCE_INIT;

static void *fz_remote_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&R.lock);
  for (;;) {
    while (R.head == R.tail) {
      R.busy = false;
      pthread_cond_broadcast(&R.done);
      pthread_cond_wait(&R.wake, &R.lock);
    }
    R.busy = true;
    fz_msg m = R.q[R.tail % FZ_QUEUE];
    R.tail++;
    pthread_mutex_unlock(&R.lock);
    if (m.p) {
      fz_verify("block changed before its remote free", -1, m.p, m.len, m.id);
      hak_free(m.p);
    } else {
      uint8_t *p = hak_malloc(m.len);
      if (p) fz_fill(p, m.len, m.id);
      pthread_mutex_lock(&R.lock);
      R.made = p;
      pthread_mutex_unlock(&R.lock);
    }
    if ((m.id & 15) == 0) hak_collect(false);
    if ((m.id & 15) == 1) hak_heap_check(NULL);
    pthread_mutex_lock(&R.lock);
  }
  return NULL;
}

static void fz_remote_start(void) {
  pthread_t t;
  if (pthread_create(&t, NULL, fz_remote_main, NULL) != 0) {
    fprintf(stderr, "fuzz_core: cannot start the second thread\n");
    abort();
  }
  pthread_detach(t);
}

static void fz_remote_drain(void) {
  pthread_mutex_lock(&R.lock);
  while (R.head != R.tail || R.busy) pthread_cond_wait(&R.done, &R.lock);
  pthread_mutex_unlock(&R.lock);
}

static void fz_remote_send(fz_msg m) {
  pthread_once(&fz_remote_once, fz_remote_start);
  pthread_mutex_lock(&R.lock);
  while (R.head - R.tail == FZ_QUEUE) pthread_cond_wait(&R.done, &R.lock);
  R.q[R.head % FZ_QUEUE] = m;
  R.head++;
  R.busy = true;
  pthread_cond_signal(&R.wake);
  pthread_mutex_unlock(&R.lock);
}

/* Blocks allocated by the second thread, for this one to free (remotely). */
static uint8_t *fz_remote_alloc(size_t len, uint64_t id) {
  fz_remote_send((fz_msg){NULL, len, id});
  fz_remote_drain();
  pthread_mutex_lock(&R.lock);
  uint8_t *p = R.made;
  R.made = NULL;
  pthread_mutex_unlock(&R.lock);
  return p;
}

/* ---- short-lived threads ----------------------------------------------------- */

/* A thread that allocates blocks and exits with them live: its segments
** are abandoned, and this thread frees the blocks into them later. */
typedef struct fz_born {
  size_t len[FZ_BORN_MAX];
  uint64_t id[FZ_BORN_MAX];
  uint8_t *p[FZ_BORN_MAX];
  unsigned n;
} fz_born;

static void *fz_born_main(void *arg) {
  fz_born *b = arg;
  void *scratch[16];
  for (unsigned i = 0; i < 16; i++) scratch[i] = hak_malloc(16 + i * 40); /* freed before exit */
  for (unsigned i = 0; i < b->n; i++) {
    b->p[i] = hak_malloc(b->len[i]);
    if (b->p[i]) fz_fill(b->p[i], b->len[i], b->id[i]);
  }
  for (unsigned i = 0; i < 16; i++) hak_free(scratch[i]);
  return NULL;
}

/* ---- the operations ----------------------------------------------------------- */

static int fz_slot_of(fz_reader *r) { return (int)(fz_u8(r) % FZ_SLOTS); }

/* A free slot for a new block: the chosen one, emptied first. */
static int fz_new_slot(fz_reader *r) {
  int i = fz_slot_of(r);
  if (S.slot[i].p) fz_free_slot(i, false);
  return i;
}

static void fz_check_new(int i, void *p, size_t size, size_t align) {
  if (!p) return;
  if (((uintptr_t)p & (align - 1)) != 0) fz_die("misaligned block", i, S.next_id + 1, (uintptr_t)p & (align - 1), size);
  if (hak_usable_size(p) < size) fz_die("usable size below the size asked", i, S.next_id + 1, hak_usable_size(p), size);
  if (!hak_owns(p)) fz_die("hak_owns denies a new block", i, S.next_id + 1, 0, size);
}

static void op_malloc(fz_reader *r, int api) {
  int i = fz_new_slot(r);
  size_t size = fz_budget(fz_size(r), 0);
  void *p = api == FZ_API8 ? hak_heap_malloc8(NULL, size) : hak_malloc(size);
  fz_check_new(i, p, size, api == FZ_API8 ? 8 : 16);
  if (p) fz_take(i, p, size, -1, api);
}

static void op_calloc(fz_reader *r) {
  int i = fz_new_slot(r);
  unsigned count = fz_u8(r) % 17;
  size_t size = fz_budget(fz_size(r), 0) / (count ? count : 1);
  uint8_t *p = hak_calloc(count, size);
  size_t total = count * size;
  fz_check_new(i, p, total, 16);
  if (!p) return;
  for (size_t k = 0; k < total; k += (total > FZ_DENSE_MAX ? 509 : 1))
    if (p[k]) fz_die("calloc block not zero", i, S.next_id + 1, k, total);
  fz_take(i, p, total, -1, FZ_API16);
}

static void op_aligned(fz_reader *r) {
  int i = fz_new_slot(r);
  size_t align = (size_t)1 << (fz_u8(r) % (FZ_ALIGN_SHIFT_MAX + 1));
  size_t size = fz_budget(fz_size(r), 0);
  int h = (int)(fz_u8(r) % (FZ_HEAPS + 1)) - 1;
  void *p = h >= 0 && S.heap[h] ? hak_heap_aligned_alloc(S.heap[h], align, size)
                                : hak_aligned_alloc(align, size);
  if (h >= 0 && !S.heap[h]) h = -1;
  fz_check_new(i, p, size, align);
  if (p) fz_take(i, p, size, h, FZ_API16);
}

static void op_realloc(fz_reader *r) {
  int i = fz_slot_of(r);
  fz_slot *s = &S.slot[i];
  size_t size = fz_budget(fz_size(r), s->len);
  if (!s->p) return;
  fz_verify("block changed before realloc", i, s->p, s->len, s->id);
  hak_heap_t *h = s->heap >= 0 ? S.heap[s->heap] : NULL;
  void *q;
  if (s->api == FZ_API8) q = hak_heap_realloc8(h, s->p, s->asked, size);
  else q = h ? hak_heap_realloc(h, s->p, size) : hak_realloc(s->p, size);
  if (size == 0) { /* a free; realloc8 may keep nothing either */
    if (q) fz_die("realloc to 0 returned a block", i, s->id, 0, 0);
    fz_drop(i);
    return;
  }
  if (!q) return; /* failed: the block is as it was (checked at its free) */
  /* realloc8 copies only the size asked, realloc the whole block */
  size_t held = s->api == FZ_API8 ? s->asked : s->len;
  size_t keep = size < held ? size : held;
  size_t bad = fz_check(q, s->len, keep, s->id);
  if (bad != SIZE_MAX) fz_die("realloc lost the prefix", i, s->id, bad, keep);
  if (hak_usable_size(q) < size) fz_die("usable size below the realloc size", i, s->id, hak_usable_size(q), size);
  TRACE("  slot %d = %p, %zu B, id %llu, heap %d, api %d (realloc)\n", i, q, size,
        (unsigned long long)s->id, s->heap, s->api);
  S.live += size - s->len;
  s->p = q;
  s->len = s->asked = size;
  fz_fill(q, size, s->id);
}

/* Writes the whole usable size: a usable size that promised too much
** damages a neighbour, whose check then fails. */
static void op_usable(fz_reader *r) {
  int i = fz_slot_of(r);
  fz_slot *s = &S.slot[i];
  if (!s->p) return;
  size_t usable = hak_usable_size(s->p);
  if (usable < s->len) fz_die("usable size shrank", i, s->id, usable, s->len);
  if (usable > FZ_DENSE_MAX || usable - s->len > FZ_LIVE_MAX - S.live) return;
  fz_verify("block changed before usable_size", i, s->p, s->len, s->id);
  S.live += usable - s->len;
  s->len = usable; /* asked stays: free_sized takes what was asked */
  fz_fill(s->p, usable, s->id);
  if (!hak_owns(s->p) || hak_owns(s->p + 1)) fz_die("hak_owns wrong", i, s->id, 0, usable);
}

static void op_heap_new(fz_reader *r) {
  int h = (int)(fz_u8(r) % FZ_HEAPS);
  if (!S.heap[h]) S.heap[h] = hak_heap_new();
}

static void op_heap_alloc(fz_reader *r) {
  int h = (int)(fz_u8(r) % FZ_HEAPS);
  int i = fz_new_slot(r);
  unsigned how = fz_u8(r) % 3;
  size_t size = fz_budget(fz_size(r), 0);
  if (!S.heap[h]) return;
  void *p;
  if (how == 0) p = hak_heap_malloc(S.heap[h], size);
  else if (how == 1) p = hak_heap_malloc8(S.heap[h], size);
  else p = hak_heap_calloc(S.heap[h], 1, size);
  fz_check_new(i, p, size, how == 1 ? 8 : 16);
  if (p) fz_take(i, p, size, h, how == 1 ? FZ_API8 : FZ_API16);
}

/* Destroy: every block of the heap goes with it (checked first).  Delete:
** they live on, in this thread's default heap. */
static void op_heap_end(fz_reader *r, bool destroy) {
  int h = (int)(fz_u8(r) % FZ_HEAPS);
  if (!S.heap[h]) return;
  for (int i = 0; i < FZ_SLOTS; i++) {
    if (!S.slot[i].p || S.slot[i].heap != h) continue;
    fz_verify("block changed before its heap ended", i, S.slot[i].p, S.slot[i].len, S.slot[i].id);
    if (destroy) fz_drop(i);
    else S.slot[i].heap = -1;
  }
  if (destroy) {
    fz_remote_drain(); /* no block of it in flight */
    hak_heap_destroy(S.heap[h]);
  } else {
    hak_heap_delete(S.heap[h]);
  }
  S.heap[h] = NULL;
}

static void op_remote_free(fz_reader *r) {
  int i = fz_slot_of(r);
  fz_slot *s = &S.slot[i];
  if (!s->p) return;
  fz_remote_send((fz_msg){s->p, s->len, s->id});
  fz_drop(i);
}

static void op_remote_alloc(fz_reader *r) {
  int i = fz_new_slot(r);
  size_t size = fz_budget(fz_size(r), 0);
  uint64_t id = ++S.next_id;
  uint8_t *p = fz_remote_alloc(size, id);
  if (!p) return;
  fz_verify("block from the second thread", i, p, size, id);
  fz_track(i, p, size, -1, FZ_API16, id);
}

static void op_thread_exit(fz_reader *r) {
  fz_born b;
  int slots[FZ_BORN_MAX];
  pthread_t t;
  b.n = 1 + fz_u8(r) % FZ_BORN_MAX;
  for (unsigned k = 0; k < b.n; k++) {
    slots[k] = fz_new_slot(r);
    b.len[k] = fz_budget(fz_size(r), 0) % (1 << 20);
    b.id[k] = ++S.next_id;
  }
  if (pthread_create(&t, NULL, fz_born_main, &b) != 0) return;
  pthread_join(t, NULL);
  for (unsigned k = 0; k < b.n; k++) {
    int i = slots[k];
    if (!b.p[k]) continue;
    if (S.slot[i].p) { /* two blocks chose one slot: free the other */
      fz_verify("block of an exited thread", i, b.p[k], b.len[k], b.id[k]);
      hak_free(b.p[k]);
      continue;
    }
    fz_verify("block of an exited thread", i, b.p[k], b.len[k], b.id[k]);
    fz_track(i, b.p[k], b.len[k], -1, FZ_API16, b.id[k]);
  }
}

static void op_collect(fz_reader *r) { hak_collect(fz_u8(r) & 1); }

static void op_free(fz_reader *r, bool sized) {
  int i = fz_slot_of(r);
  if (S.slot[i].p) fz_free_slot(i, sized);
}

/* ---- the program ------------------------------------------------------------------ */

/* Frees what the input left: every block, every heap, the queue. */
static void fz_finish(void) {
  /* first: a block sent to the second thread may be of a heap destroyed
  ** below (it read a 4 MiB block its heap's destroy had just unmapped) */
  fz_remote_drain();
  for (int i = 0; i < FZ_SLOTS; i++)
    if (S.slot[i].p) fz_free_slot(i, false);
  for (int h = 0; h < FZ_HEAPS; h++)
    if (S.heap[h]) hak_heap_destroy(S.heap[h]);
  memset(&S, 0, sizeof S);
}

/* hak_heap_check on this thread's heaps (it aborts on a broken invariant). */
static void fz_check_heaps(void) {
  hak_heap_check(NULL);
  for (int h = 0; h < FZ_HEAPS; h++)
    if (S.heap[h]) hak_heap_check(S.heap[h]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_reader r = {data, data + size};
  unsigned ops = 0;
  memset(&S, 0, sizeof S);
  if (fz_trace < 0) fz_trace = getenv("FUZZ_CORE_TRACE") != NULL;
  while (r.p < r.end) {
    if (++ops % FZ_CHECK_EVERY == 0) fz_check_heaps();
    TRACE("op %u: %u at byte %zu\n", ops, *r.p % 18, (size_t)(r.p - data));
    switch (fz_u8(&r) % 18) {
    case 0: case 1: op_malloc(&r, FZ_API16); break;
    case 2: op_malloc(&r, FZ_API8); break;
    case 3: op_calloc(&r); break;
    case 4: case 5: op_realloc(&r); break;
    case 6: op_free(&r, false); break;
    case 7: op_free(&r, true); break;
    case 8: op_aligned(&r); break;
    case 9: op_usable(&r); break;
    case 10: op_heap_new(&r); break;
    case 11: op_heap_alloc(&r); break;
    case 12: op_heap_end(&r, true); break;
    case 13: op_heap_end(&r, false); break;
    case 14: op_remote_free(&r); break;
    case 15: op_remote_alloc(&r); break;
    case 16: op_thread_exit(&r); break;
    default: op_collect(&r); break;
    }
  }
  fz_check_heaps();
  fz_finish();
  return 0;
}

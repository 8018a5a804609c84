/*
** soak.c -- long runs for tests/soak/run.py, which samples this process's
** RSS every second and judges it against the live data printed here.
**
**   soak threads SECONDS [THREADS]   thread stress
**   soak lua SECONDS                 Lua states with failures injected
**
** Every second a line "live BYTES OPS COMMITTED ABANDONED" goes to stdout:
** the bytes of the blocks (or Lua states) alive at that moment, exactly,
** the operations so far, and hakmem's committed bytes and abandoned
** segments (hak_stats_counters).  At the end "done OPS ERRORS"; the exit status is 1 if any block
** was found changed or any state misbehaved.
**
** threads: generations of THREADS threads, each living 3 s, keep a
** window of blocks of mixed sizes (mostly small, some medium and large,
** rarely huge), replace them at random, and send one in eight to the next
** thread, which frees it (remote frees); a thread that ends leaves its live
** blocks to the next generation (abandoned segments, adopted and freed
** later).  Every block carries a pattern checked before its free.
**
** lua: states under an 8 MiB limit run a script of tables, strings,
** closures, coroutines and finalizers with every N-th allocation failing
** (N cycling over 40..400), must then still run a check chunk, and close
** with an account of zero; eight states stay open at a time, each closed
** eight rounds after it opened, half of them with private heaps.
*/
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "hakl.h"
#include "../helpers.h"

static atomic_size_t live;      /* bytes alive now */
static atomic_ulong ops;        /* operations so far */
static atomic_ulong errors;     /* changed blocks, misbehaving states */

static double soak_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* hakmem's own counters beside: what it holds committed and how many
** segments wait abandoned, to tell its growth from the rest of the process. */
static void soak_report(void) {
  hak_stats_t st;
  hak_stats_counters(&st);
  printf("live %zu %lu %zu %zu\n", atomic_load(&live), atomic_load(&ops), st.committed,
         st.abandoned);
  fflush(stdout);
}

/* ---- threads --------------------------------------------------------------- */

#define WINDOW 3000          /* blocks per thread */
#define GENERATION_S 3.0     /* a thread's life */
#define MAX_THREADS 16

typedef struct blk {
  void *p;
  size_t n;
} blk;

/* A list of blocks under a lock: a thread's inbox, or what a generation
** leaves to the next. */
typedef struct blist {
  pthread_mutex_t lock;
  blk *b;
  size_t count, cap;
} blist;

static blist inbox[MAX_THREADS], leftover;
static int nthreads;
static double deadline, generation_end;

static void blist_push(blist *l, blk b) {
  pthread_mutex_lock(&l->lock);
  if (l->count == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 1024;
    l->b = realloc(l->b, l->cap * sizeof *l->b);
    if (!l->b) abort();
  }
  l->b[l->count++] = b;
  pthread_mutex_unlock(&l->lock);
}

/* Takes at most max blocks out of l into out; returns how many. */
static size_t blist_take(blist *l, blk *out, size_t max) {
  pthread_mutex_lock(&l->lock);
  size_t n = l->count < max ? l->count : max;
  l->count -= n;
  memcpy(out, l->b + l->count, n * sizeof *out);
  pthread_mutex_unlock(&l->lock);
  return n;
}

static size_t soak_size(hkt_rng_t *rng) {
  unsigned r = (unsigned)hkt_rng_range(rng, 0, 9999);
  if (r < 7000) return hkt_rng_range(rng, 8, 256);
  if (r < 9500) return hkt_rng_range(rng, 257, 8192);
  if (r < 9995) return hkt_rng_range(rng, 8193, 64 * 1024);
  return hkt_rng_log(rng, 300 * 1024, 3 * 1024 * 1024);
}

/* Big blocks carry their pattern in the first and last 256 bytes only. */
static void soak_fill(blk b) {
  uint64_t s = hkt_seed(b.p, b.n);
  if (b.n <= 512) {
    hkt_fill(b.p, b.n, s);
  } else {
    hkt_fill(b.p, 256, s);
    hkt_fill((char *)b.p + b.n - 256, 256, s ^ 1);
  }
}

static void soak_free(blk b) {
  uint64_t s = hkt_seed(b.p, b.n);
  bool ok = b.n <= 512 ? hkt_check(b.p, b.n, s) == b.n
                       : hkt_check(b.p, 256, s) == 256 && hkt_check((char *)b.p + b.n - 256, 256, s ^ 1) == 256;
  if (!ok) {
    fprintf(stderr, "soak: block %p of %zu bytes changed\n", b.p, b.n);
    atomic_fetch_add(&errors, 1);
  }
  hak_free(b.p);
  atomic_fetch_sub(&live, b.n);
}

static void drain(int me) {
  blk got[256];
  size_t n;
  while ((n = blist_take(&inbox[me], got, 256)) > 0)
    for (size_t i = 0; i < n; i++) soak_free(got[i]);
}

static void *worker(void *arg) {
  int me = (int)(intptr_t)arg;
  static _Thread_local blk window[WINDOW];
  hkt_rng_t rng;
  hkt_rng_init(&rng, (uint64_t)me * 7919 + (uint64_t)(soak_now() * 1000));
  size_t have = blist_take(&leftover, window, WINDOW); /* the last generation's */
  memset(window + have, 0, (WINDOW - have) * sizeof *window);
  double end = generation_end; /* all together: no inbox fills after its reader left */
  for (unsigned long k = 0;; k++) {
    if ((k & 255) == 0) {
      drain(me);
      if (soak_now() >= end) break;
    }
    blk *b = &window[hkt_rng_range(&rng, 0, WINDOW - 1)];
    if (b->p) {
      if (hkt_rng_range(&rng, 0, 7) == 0) {
        blist_push(&inbox[(me + 1) % nthreads], *b);
      } else {
        soak_free(*b);
      }
    }
    b->n = soak_size(&rng);
    b->p = hak_malloc(b->n);
    if (!b->p) {
      fprintf(stderr, "soak: hak_malloc(%zu) failed\n", b->n);
      atomic_fetch_add(&errors, 1);
      b->n = 0;
      continue;
    }
    atomic_fetch_add(&live, b->n);
    soak_fill(*b);
    atomic_fetch_add_explicit(&ops, 1, memory_order_relaxed);
  }
  drain(me);
  for (size_t i = 0; i < WINDOW; i++) /* left live: the next generation frees them */
    if (window[i].p) blist_push(&leftover, window[i]);
  return NULL;
}

static void *monitor(void *arg) {
  (void)arg;
  while (soak_now() < deadline) {
    struct timespec s = {1, 0};
    nanosleep(&s, NULL);
    soak_report();
  }
  return NULL;
}

static void soak_threads(double seconds) {
  pthread_t mon, t[MAX_THREADS];
  for (int i = 0; i < MAX_THREADS; i++) pthread_mutex_init(&inbox[i].lock, NULL);
  pthread_mutex_init(&leftover.lock, NULL);
  deadline = soak_now() + seconds;
  pthread_create(&mon, NULL, monitor, NULL);
  while (soak_now() < deadline) {
    generation_end = soak_now() + GENERATION_S;
    if (generation_end > deadline) generation_end = deadline;
    for (int i = 0; i < nthreads; i++) pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
    for (int i = 0; i < nthreads; i++) pthread_join(t[i], NULL);
  }
  pthread_join(mon, NULL);
  blk b;
  for (int i = 0; i < nthreads; i++) drain(i);
  while (blist_take(&leftover, &b, 1)) soak_free(b);
}

/* ---- lua ------------------------------------------------------------------- */

#define OPEN_STATES 8

static const char *lua_script =
  "local t = {}\n"
  "for i = 1, 300 do t[i] = {id = i, name = 'n' .. i, s = string.rep('x', i % 50)} end\n"
  "local fs = {}\n"
  "for i = 1, 80 do local u = i; fs[i] = function(x) u = u + x; return u end end\n"
  "local co = coroutine.wrap(function() for i = 1, 60 do coroutine.yield(fs[i % 80 + 1](i)) end end)\n"
  "local sum = 0\n"
  "for i = 1, 60 do sum = sum + co() end\n"
  "for i = 1, 20 do setmetatable({}, {__gc = function() local x = {} end}) end\n"
  "local parts = {}\n"
  "for i = 1, 200 do parts[#parts + 1] = string.format('%d:%s', i, t[i].name) end\n"
  "keep = keep or {}\n"
  "keep[#keep + 1] = table.concat(parts, ',')\n"
  "return sum\n";

typedef struct injector {
  void *ud;
  lua_Alloc f;
  unsigned every;
  unsigned long requests;
} injector;

static void *inject_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  injector *j = ud;
  if (j->every && nsize > 0 && (ptr == NULL || nsize > osize) && ++j->requests % j->every == 0)
    return NULL;
  return j->f(j->ud, ptr, osize, nsize);
}

typedef struct open_state {
  lua_State *L;
  injector j;
} open_state;

static void state_close(open_state *s) {
  hakl_account final;
  hakl_ctx *c = s->j.ud;
  atomic_fetch_sub(&live, c->acct.in_use);
  lua_setallocf(s->L, s->j.f, s->j.ud);
  hakl_close(s->L, &final);
  if (final.in_use != 0) {
    fprintf(stderr, "soak: %zu bytes left in a closed state's account\n", final.in_use);
    atomic_fetch_add(&errors, 1);
  }
  s->L = NULL;
}

static void soak_lua(double seconds) {
  static open_state open[OPEN_STATES];
  double end = soak_now() + seconds, next_report = soak_now() + 1;
  for (unsigned long round = 0; soak_now() < end; round++) {
    open_state *s = &open[round % OPEN_STATES];
    if (s->L) state_close(s);
    hakl_config cfg = {.limit = 8 << 20, .private_heap = round & 1};
    s->L = hakl_newstate(&cfg);
    if (!s->L) {
      atomic_fetch_add(&errors, 1);
      continue;
    }
    luaL_openlibs(s->L);
    s->j.f = lua_getallocf(s->L, &s->j.ud);
    s->j.every = 40 + (unsigned)(round * 37 % 361);
    s->j.requests = 0;
    lua_setallocf(s->L, inject_alloc, &s->j);
    /* several runs in the state; keep[] grows until the limit stops it */
    for (int k = 0; k < 4; k++) {
      int st = luaL_loadstring(s->L, lua_script);
      if (st == LUA_OK) st = lua_pcall(s->L, 0, 1, 0);
      if (st != LUA_OK && st != LUA_ERRRUN && st != LUA_ERRMEM) atomic_fetch_add(&errors, 1);
      if (st == LUA_ERRMEM && strcmp(lua_tostring(s->L, -1), "not enough memory") != 0)
        atomic_fetch_add(&errors, 1);
      lua_settop(s->L, 0);
    }
    s->j.every = 0;
    if (luaL_dostring(s->L, "local t = {} for i = 1, 100 do t[i] = tostring(i) .. '!' end "
                            "collectgarbage() return #t") != LUA_OK ||
        lua_tointeger(s->L, -1) != 100) {
      fprintf(stderr, "soak: a state is unusable after injected failures\n");
      atomic_fetch_add(&errors, 1);
    }
    lua_settop(s->L, 0);
    atomic_fetch_add(&live, ((hakl_ctx *)s->j.ud)->acct.in_use);
    atomic_fetch_add(&ops, 1);
    if (soak_now() >= next_report) {
      soak_report();
      next_report += 1;
    }
  }
  for (int i = 0; i < OPEN_STATES; i++)
    if (open[i].L) state_close(&open[i]);
}

int main(int argc, char **argv) {
  double seconds = argc > 2 ? atof(argv[2]) : 0;
  if (argc < 3 || seconds <= 0 || (strcmp(argv[1], "threads") != 0 && strcmp(argv[1], "lua") != 0)) {
    fprintf(stderr, "usage: soak threads SECONDS [THREADS] | soak lua SECONDS\n");
    return 2;
  }
  if (strcmp(argv[1], "threads") == 0) {
    nthreads = argc > 3 ? atoi(argv[3]) : 4;
    if (nthreads < 1 || nthreads > MAX_THREADS) nthreads = 4;
    soak_threads(seconds);
  } else {
    soak_lua(seconds);
  }
  soak_report();
  printf("done %lu %lu\n", atomic_load(&ops), atomic_load(&errors));
  return atomic_load(&errors) ? 1 : 0;
}

/*
** lua_trace.c -- a synthetic allocation trace shaped like a Lua 5.4 program,
** replayed against the allocator.
**
** The shape comes from ../../../shared/design/lua-allocation-profile.md:
**   - many small objects: table headers (56 B), closures (40/48/56 B),
**     upvalues (40 B), short strings (24 B + length + 1), userdata, a few
**     coroutines (208 B plus a 720 B stack);
**   - table array parts that grow by realloc (16 B per slot, doubling) and
**     hash parts that are replaced by a new block twice the size (Lua's
**     luaH_resize); a rare shrink;
**   - string buffers that grow by realloc (luaL_Buffer's box) and end in a
**     long string;
**   - free(NULL) calls for empty vectors (a third of the calls in some
**     scripts);
**   - frees that come in bursts, in the order of the collector's sweep
**     (newest object first), long after the object died.
** Every free and realloc carries the exact old size, as Lua's do.
**
** A generator (a small model of a mutator plus an incremental collector)
** writes the trace in chunks of CHUNK operations, untimed; the replay of
** each chunk is timed.  The trace depends only on the seed, so every
** allocator replays the same calls and prints the same checksum.
**
** Build: plain, malloc/realloc/free as Lua's own l_alloc calls them
** (free(NULL) included); with -DBENCH_HAKMEM, the sized 8-byte-aligned API
** the Lua glue uses: hak_heap_malloc8, hak_heap_realloc8 with the old size,
** hak_free_sized, and no call at all for freeing NULL.
**
** Usage: lua_trace [--ops=N] [--seed=N]
** Output: one JSON line with the figures.
*/
#include "bench_util.h"

/* Frees are BENCH_FREE_SIZED (bench_util.h); the rest is the glue's API. */
#ifdef BENCH_HAKMEM
#define B_MALLOC(n) hak_heap_malloc8(NULL, (n))
#define B_REALLOC(p, o, n) hak_heap_realloc8(NULL, (p), (o), (n))
#define B_FREE_NULL() ((void)0)
#else
#define B_MALLOC(n) malloc(n)
#define B_REALLOC(p, o, n) ((void)(o), realloc((p), (n)))
#define B_FREE_NULL() free(NULL)
#endif

/* -------------------------------------------------------------------------
** Limits of the model.
** ---------------------------------------------------------------------- */
#define CHUNK 65536u        /* operations replayed between two generations */
#define STEP_MAX_OPS 4096u  /* most operations one generator step can emit */
#define MAX_IDS (1u << 24)  /* live blocks at once (ids are recycled) */
#define MAX_OBJS (1u << 23) /* live collectable objects at once */
#define MAX_GROWING 16      /* tables whose parts are growing at once */
#define SWEEP_EVERY 128     /* allocations between two sweep steps */
#define SWEEP_BATCH 400     /* objects visited per sweep step */
#define GC_MIN_DEBT (256u << 10) /* bytes allocated before the first cycle */

/* Lua 5.4 object sizes on x86-64 (see the profile). */
#define SZ_TABLE 56
#define SZ_UPVAL 40
#define SZ_THREAD 208
#define SZ_THREAD_STACK 720
#define SZ_TSTRING 24
#define SZ_TVALUE 16 /* one array slot */
#define SZ_NODE 24   /* one hash node */
#define SZ_BUFFER0 2048 /* first luaL_Buffer box: twice LUAL_BUFFERSIZE */

/* -------------------------------------------------------------------------
** The trace.
** ---------------------------------------------------------------------- */
enum { OP_MALLOC, OP_REALLOC, OP_FREE, OP_FREE_NULL };

/* One call.  `id` names the block (an index into the replay's pointer
** table); `size` is the size asked (MALLOC, REALLOC) or the block's size
** (FREE); `old` is the block's size before a REALLOC. */
typedef struct op_s {
  uint32_t kind;
  uint32_t id;
  uint32_t size;
  uint32_t old;
} op_t;

/* A collectable object on the model's "allgc" list, oldest first. */
enum { K_PLAIN, K_TABLE, K_THREAD };

typedef struct obj_s {
  uint64_t death; /* allocation clock from which it is garbage */
  uint32_t id;    /* its block; 0 once swept */
  uint32_t kind;  /* K_*: tables and threads own parts */
} obj_t;

/* A table whose array or hash part is still growing towards its target. */
typedef struct growing_s {
  uint32_t id;
  uint32_t arr_target; /* bytes */
  uint32_t hash_target;
} growing_t;

/*
** The generator's state.  Invariants: size[id] > 0 exactly while block id
** is live; arr[t] / hash[t] name the array / hash part of table (or
** thread) t, or 0; every live object appears once in objs[0..n_objs); the
** tables in growing[] are live (they leave it when swept); while
** `sweeping`, objs[sweep_pos..sweep_end) has been swept this cycle and the
** objects from sweep_end on were made during the cycle.
*/
typedef struct gen_s {
  bench_rng_t rng;
  uint64_t now;            /* allocations so far: the model's clock */
  uint32_t *size;          /* per id */
  uint32_t *arr, *hash;    /* per id: parts of a table */
  uint32_t *free_ids;      /* stack of recycled ids */
  uint32_t n_free_ids, next_id;
  obj_t *objs;
  uint32_t n_objs;
  growing_t growing[MAX_GROWING];
  int n_growing;
  int sweeping;
  uint32_t sweep_pos, sweep_end;
  uint64_t live_bytes, peak_live_bytes, debt, threshold;
  op_t *ops; /* the chunk being written */
  uint32_t n_ops;
  unsigned long long n_malloc, n_realloc, n_free, n_free_null;
} gen_t;

static void emit(gen_t *g, uint32_t kind, uint32_t id, uint32_t size,
                 uint32_t old) {
  op_t *op = &g->ops[g->n_ops++];
  op->kind = kind;
  op->id = id;
  op->size = size;
  op->old = old;
}

/* -------------------------------------------------------------------------
** Blocks.
** ---------------------------------------------------------------------- */
static uint32_t block_new(gen_t *g, uint32_t size) {
  uint32_t id;
  if (g->n_free_ids > 0)
    id = g->free_ids[--g->n_free_ids];
  else if (g->next_id < MAX_IDS)
    id = g->next_id++;
  else
    bench_die("lua_trace", "too many live blocks", MAX_IDS, 0);
  g->size[id] = size;
  g->arr[id] = g->hash[id] = 0;
  g->now++;
  g->live_bytes += size;
  g->debt += size;
  if (g->live_bytes > g->peak_live_bytes) g->peak_live_bytes = g->live_bytes;
  g->n_malloc++;
  emit(g, OP_MALLOC, id, size, 0);
  return id;
}

static void block_resize(gen_t *g, uint32_t id, uint32_t size) {
  uint32_t old = g->size[id];
  g->size[id] = size;
  g->live_bytes += size;
  g->live_bytes -= old;
  if (size > old) g->debt += size - old;
  if (g->live_bytes > g->peak_live_bytes) g->peak_live_bytes = g->live_bytes;
  g->n_realloc++;
  emit(g, OP_REALLOC, id, size, old);
}

static void block_free(gen_t *g, uint32_t id) {
  uint32_t size = g->size[id];
  g->size[id] = 0;
  g->live_bytes -= size;
  g->free_ids[g->n_free_ids++] = id;
  g->n_free++;
  emit(g, OP_FREE, id, size, 0);
}

static void free_null(gen_t *g) {
  g->n_free_null++;
  emit(g, OP_FREE_NULL, 0, 0, 0);
}

/* -------------------------------------------------------------------------
** Objects: a header block (plus parts, for tables and threads) with a
** lifetime.  Most die young; some live for a good part of the run.
** ---------------------------------------------------------------------- */
static uint64_t lifetime(gen_t *g) {
  uint32_t c = bench_rng_below(&g->rng, 100);
  if (c < 80) return bench_rng_below(&g->rng, 4096);
  if (c < 97) return bench_rng_below(&g->rng, 1u << 18);
  return bench_rng_below(&g->rng, 1u << 23);
}

static uint32_t object_new(gen_t *g, uint32_t size, uint32_t kind) {
  if (g->n_objs >= MAX_OBJS)
    bench_die("lua_trace", "too many live objects", MAX_OBJS, 0);
  uint32_t id = block_new(g, size);
  obj_t *o = &g->objs[g->n_objs++];
  o->death = g->now + lifetime(g);
  o->id = id;
  o->kind = kind;
  return id;
}

/*
** Frees an object as the sweep does: its parts first, then the header.
** A table frees its array part even when it is empty, with a realloc to 0
** of NULL (luaM_freearray): that is where most free(NULL) calls come from.
*/
static void object_free(gen_t *g, const obj_t *o) {
  uint32_t id = o->id;
  if (o->kind == K_TABLE) {
    for (int i = 0; i < g->n_growing; i++)
      if (g->growing[i].id == id) {
        g->growing[i] = g->growing[--g->n_growing];
        break;
      }
    if (g->arr[id] == 0) free_null(g);
  }
  if (g->arr[id] != 0) block_free(g, g->arr[id]);
  if (g->hash[id] != 0) block_free(g, g->hash[id]);
  block_free(g, id);
}

/* A power-of-two exponent 0..max, each one half as likely as the last. */
static uint32_t geometric(gen_t *g, uint32_t max) {
  uint32_t k = 0;
  while (k < max && (bench_rng_next(&g->rng) & 1)) k++;
  return k;
}

static void new_table(gen_t *g) {
  uint32_t t = object_new(g, SZ_TABLE, K_TABLE);
  uint32_t arr_target = 0, hash_target = 0;
  if (bench_rng_chance(&g->rng, 1, 3))
    arr_target = SZ_TVALUE << geometric(g, 10);
  if (bench_rng_chance(&g->rng, 1, 6))
    hash_target = SZ_NODE << geometric(g, 7);
  if ((arr_target || hash_target) && g->n_growing < MAX_GROWING) {
    growing_t *gr = &g->growing[g->n_growing++];
    gr->id = t;
    gr->arr_target = arr_target;
    gr->hash_target = hash_target;
  }
}

/* 24 B header + length + NUL; lengths mostly short (interned). */
static void new_string(gen_t *g) {
  uint32_t c = bench_rng_below(&g->rng, 100), len;
  if (c < 60) len = 1 + bench_rng_below(&g->rng, 16);
  else if (c < 92) len = 17 + bench_rng_below(&g->rng, 24);
  else len = 41 + bench_rng_below(&g->rng, 200);
  object_new(g, SZ_TSTRING + len + 1, K_PLAIN);
}

static void new_closure(gen_t *g) {
  uint32_t c = bench_rng_below(&g->rng, 10);
  object_new(g, c < 6 ? 40 : c < 9 ? 48 : 56, K_PLAIN);
}

/* Memory that is not a collectable object: CallInfo, small vectors. */
static void new_other(gen_t *g) {
  static const uint32_t sizes[4] = {16, 32, 64, 96};
  object_new(g, sizes[bench_rng_below(&g->rng, 4)], K_PLAIN);
}

static void new_userdata(gen_t *g) {
  object_new(g, 48 + 8 * bench_rng_below(&g->rng, 32), K_PLAIN);
}

static void new_thread(gen_t *g) {
  uint32_t t = object_new(g, SZ_THREAD, K_THREAD);
  g->arr[t] = block_new(g, SZ_THREAD_STACK);
}

/*
** luaL_Buffer past its stack buffer: a box that grows by realloc, doubling,
** then the result string, then the box is closed (freed at once).
*/
static void build_string(gen_t *g) {
  uint32_t len = 1024u << geometric(g, 6);
  len += bench_rng_below(&g->rng, len);
  uint32_t box = block_new(g, SZ_BUFFER0);
  for (uint32_t sz = SZ_BUFFER0 * 2; sz / 2 < len; sz *= 2)
    block_resize(g, box, sz);
  object_new(g, SZ_TSTRING + len + 1, K_PLAIN);
  block_free(g, box);
}

/*
** One growth step of a random growing table: the array part doubles by
** realloc (the first one is a malloc: realloc(NULL) in Lua), the hash part
** is replaced by a new block twice the size.
*/
static void grow_step(gen_t *g) {
  int i = (int)bench_rng_below(&g->rng, (uint32_t)g->n_growing);
  growing_t *gr = &g->growing[i];
  uint32_t t = gr->id;
  uint32_t arr = g->arr[t], hash = g->hash[t];
  if (gr->arr_target != 0 && (arr == 0 || g->size[arr] < gr->arr_target)) {
    if (arr == 0) g->arr[t] = block_new(g, SZ_TVALUE);
    else block_resize(g, arr, g->size[arr] * 2);
  } else if (gr->hash_target != 0 &&
             (hash == 0 || g->size[hash] < gr->hash_target)) {
    g->hash[t] = block_new(g, hash ? g->size[hash] * 2 : SZ_NODE);
    if (hash) block_free(g, hash);
  } else {
    *gr = g->growing[--g->n_growing]; /* grown up */
  }
}

/* -------------------------------------------------------------------------
** The collector: a cycle starts when the bytes allocated since the last
** one reach the live size at its end (Lua's default pause of 200%); its
** sweep then walks the list newest first, SWEEP_BATCH objects every
** SWEEP_EVERY allocations, freeing the dead.  A rare surviving table has
** its array part shrunk by half (a rehash).
** ---------------------------------------------------------------------- */
static void sweep_step(gen_t *g) {
  for (int n = 0; n < SWEEP_BATCH && g->sweep_pos > 0; n++) {
    obj_t *o = &g->objs[--g->sweep_pos];
    if (o->death <= g->now) {
      object_free(g, o);
      o->id = 0;
    } else if (o->kind == K_TABLE && g->arr[o->id] != 0 &&
               g->size[g->arr[o->id]] >= 4 * SZ_TVALUE &&
               bench_rng_chance(&g->rng, 1, 512)) {
      block_resize(g, g->arr[o->id], g->size[g->arr[o->id]] / 2);
    }
  }
  if (g->sweep_pos == 0) { /* cycle over: compact the list */
    uint32_t k = 0;
    for (uint32_t i = 0; i < g->n_objs; i++)
      if (g->objs[i].id != 0) g->objs[k++] = g->objs[i];
    g->n_objs = k;
    g->sweeping = 0;
    g->debt = 0;
    g->threshold = g->live_bytes > GC_MIN_DEBT ? g->live_bytes : GC_MIN_DEBT;
  }
}

/* One mutator action, then whatever the collector owes. */
static void gen_step(gen_t *g) {
  uint32_t c = bench_rng_below(&g->rng, 1000);
  uint64_t before = g->now;
  if (c < 220) new_table(g);
  else if (c < 570) new_string(g);
  else if (c < 720) new_closure(g);
  else if (c < 840) object_new(g, SZ_UPVAL, K_PLAIN);
  else if (c < 960) new_other(g);
  else if (c < 993) new_userdata(g);
  else if (c < 997) new_thread(g);
  else build_string(g);
  if (g->n_growing > 0 && bench_rng_chance(&g->rng, 1, 3)) grow_step(g);

  if (!g->sweeping && g->debt >= g->threshold) {
    g->sweeping = 1;
    g->sweep_end = g->sweep_pos = g->n_objs;
  }
  if (g->sweeping && before / SWEEP_EVERY != g->now / SWEEP_EVERY)
    sweep_step(g);
}

/* -------------------------------------------------------------------------
** The replay: the only code that is timed.  Each block carries its id in
** its first word and its size's low byte in its last byte; both are checked
** at realloc and free, and the ids freed are summed into the checksum.
** ---------------------------------------------------------------------- */
static unsigned long long checksum;

static void replay(void **ptr, const op_t *ops, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    const op_t *op = &ops[i];
    unsigned char *p;
    uint64_t tag;
    switch (op->kind) {
    case OP_MALLOC:
      p = B_MALLOC(op->size);
      if (p == NULL) bench_die("lua_trace", "out of memory", op->size, 0);
      tag = op->id;
      memcpy(p, &tag, sizeof tag);
      p[op->size - 1] = (unsigned char)op->size;
      ptr[op->id] = p;
      break;
    case OP_REALLOC:
      p = ptr[op->id];
      if (p[op->old - 1] != (unsigned char)op->old)
        bench_die("lua_trace", "block corrupted before realloc", op->id, op->old);
      p = B_REALLOC(p, op->old, op->size);
      if (p == NULL) bench_die("lua_trace", "out of memory", op->size, 0);
      memcpy(&tag, p, sizeof tag);
      if (tag != op->id) bench_die("lua_trace", "realloc lost data", tag, op->id);
      p[op->size - 1] = (unsigned char)op->size;
      ptr[op->id] = p;
      break;
    case OP_FREE:
      p = ptr[op->id];
      memcpy(&tag, p, sizeof tag);
      if (tag != op->id || p[op->size - 1] != (unsigned char)op->size)
        bench_die("lua_trace", "block corrupted before free", tag, op->id);
      checksum += tag;
      BENCH_FREE_SIZED(p, op->size);
      break;
    default:
      B_FREE_NULL();
      break;
    }
  }
}

/*
** One timed chunk, in a function of its own that is never inlined: the
** runner's --callgrind mode counts the instructions inside it only.
*/
__attribute__((noinline)) static void bench_measured(void **ptr, const op_t *ops,
                                                     uint32_t n) {
  replay(ptr, ops, n);
}

int main(int argc, char **argv) {
  unsigned long long ops = 10000000, seed = 42;
  const bench_option_t opts[] = {
      {"--ops", "N", &ops}, {"--seed", "N", &seed}, {NULL, NULL, NULL}};
  bench_parse_options(argc, argv, opts);

  gen_t g;
  memset(&g, 0, sizeof g);
  bench_rng_seed(&g.rng, seed);
  g.size = bench_map(MAX_IDS * sizeof(uint32_t));
  g.arr = bench_map(MAX_IDS * sizeof(uint32_t));
  g.hash = bench_map(MAX_IDS * sizeof(uint32_t));
  g.free_ids = bench_map(MAX_IDS * sizeof(uint32_t));
  g.next_id = 1; /* id 0 means "none" */
  g.objs = bench_map(MAX_OBJS * sizeof(obj_t));
  g.ops = bench_map((CHUNK + STEP_MAX_OPS) * sizeof(op_t));
  g.threshold = GC_MIN_DEBT;
  void **ptr = bench_map(MAX_IDS * sizeof(void *));

  unsigned long long done = 0;
  double secs = 0;
  while (done < ops) {
    g.n_ops = 0;
    while (g.n_ops < CHUNK && done + g.n_ops < ops) gen_step(&g);
    double t0 = bench_now();
    bench_measured(ptr, g.ops, g.n_ops);
    secs += bench_now() - t0;
    done += g.n_ops;
  }
  long rss = bench_peak_rss_kb();

  /* Untimed: free what is still live (a lua_close), so a leak or a
  ** corruption at the end is caught too. */
  unsigned long long live_ids = 0;
  g.n_ops = 0;
  for (uint32_t id = 1; id < g.next_id; id++) {
    if (g.size[id] == 0) continue;
    live_ids++;
    emit(&g, OP_FREE, id, g.size[id], 0);
    if (g.n_ops == CHUNK) {
      replay(ptr, g.ops, g.n_ops);
      g.n_ops = 0;
    }
  }
  replay(ptr, g.ops, g.n_ops);

  printf("{\"bench\":\"lua_trace\",\"api\":\"%s\",\"seed\":%llu,"
         "\"ops\":%llu,\"mallocs\":%llu,\"reallocs\":%llu,\"frees\":%llu,"
         "\"free_nulls\":%llu,\"live_at_end\":%llu,\"peak_live_bytes\":%llu,"
         "\"secs\":%.6f,\"ops_per_s\":%.0f,\"peak_rss_kb\":%ld,"
         "\"checksum\":%llu}\n",
         BENCH_API, seed, done, g.n_malloc, g.n_realloc, g.n_free,
         g.n_free_null, live_ids, (unsigned long long)g.peak_live_bytes,
         secs, secs > 0 ? (double)done / secs : 0.0, rss, checksum);
  return 0;
}

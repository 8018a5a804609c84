/*
** hakl.h -- the Lua glue: hakmem as the lua_Alloc of a Lua 5.4 state.
**
** Uses only Lua's official API (lua.h, lauxlib.h) and hakmem.h.
**
** Two ways in:
**   lua_State *L = hakl_newstate(&cfg);  ...  hakl_close(L, NULL);
** or, for a host that builds its own state:
**   hakl_ctx ctx;  hakl_ctx_init(&ctx, NULL, 0);
**   lua_State *L = lua_newstate(hakl_alloc, &ctx);  ...  lua_close(L);
** The `hakmem` Lua module (luaopen_hakmem) is the third: `require "hakmem"`
** inside any Lua 5.4 state.
*/
#ifndef HAKL_H
#define HAKL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "hakmem.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define HAKL_API __attribute__((visibility("default")))
#else
#define HAKL_API
#endif

/* The type tags Lua passes as `osize` when it creates an object: the public
** ones (LUA_TSTRING .. LUA_TTHREAD) plus two internal ones.  0 (LUA_TNIL)
** is everything that is not an object: table parts, stacks, CallInfo,
** buffers, the string table.  */
#define HAKL_TUPVAL 9   /* LUA_TUPVAL in lobject.h (LUA_NUMTYPES) */
#define HAKL_TPROTO 10  /* LUA_TPROTO in lobject.h */
#define HAKL_NTYPES 11  /* tags 0 .. 10 */

/*
** The account of one state.  Sizes are the ones Lua asks for (not the
** allocator's rounded blocks), so `in_use` equals what Lua itself counts
** (collectgarbage("count") * 1024).
**
** Invariants: peak >= in_use; in_use is the sum of the sizes of the blocks
** the state holds, foreign ones included, plus what the host charged to it
** (hakl_charge: the runtime's buffers); foreign <= in_use;
** mark == min(limit ? limit : SIZE_MAX, peak), so that one comparison of
** in_use + n with it clears a new block of both the limit and the peak
** (hakl_account.h, which every update goes through).
** The free of a block does not say what type it had (Lua passes its size
** then), so the per-type figures count what was *allocated* since the
** account started, not what is alive now.
*/
typedef struct hakl_account {
  size_t in_use;      /* bytes the state holds now */
  size_t peak;        /* highest in_use */
  size_t limit;       /* an allocation that would pass it fails; 0 = none */
  size_t mark;        /* min(limit or SIZE_MAX, peak): the slow path starts above */
  size_t foreign;     /* bytes still held by the allocator the module replaced */
  uint64_t nfree;     /* blocks freed */
  uint64_t ngrow;     /* reallocations to a larger size */
  uint64_t nshrink;   /* reallocations to a smaller (or equal) size */
  uint64_t nfail;     /* requests refused (limit or out of memory) */
  uint64_t type_count[HAKL_NTYPES]; /* new blocks per type tag, cumulative (their
                                       sum: hakl_account_nalloc) */
  uint64_t type_bytes[HAKL_NTYPES]; /* their bytes, cumulative */
  uint64_t grow_bytes; /* bytes added by growing reallocations, cumulative */
} hakl_account;

/* New blocks since the account started: the sum of the per-type counts
** (a count of its own would cost the fast path an add). */
static inline uint64_t hakl_account_nalloc(const hakl_account *a) {
  uint64_t n = 0;
  for (int t = 0; t < HAKL_NTYPES; t++) n += a->type_count[t];
  return n;
}

/*
** A state's region (lua_glue/hakl_region.h, where the rules are): its
** blocks up to HAKL_REGION_TOP bytes, bumped through chunks of the core in
** allocation order and reused through a LIFO list per class: every 8 bytes
** up to HAKL_REGION_MAX (the fast path's), every 128 bytes above.
** Invariants: free[c] lists free blocks of exactly hakl_region_size(c)
** bytes (c * 8 up to HAKL_REGION_MAX), linked
** through their first word, all inside the chunks; bump <= end, and
** [bump, end) is the unused rest of the newest chunk (both NULL before
** the first); chunks links every chunk through its first word, its size in
** the second.
** Every byte of the chunks past their headers is in exactly one of: a live
** block, a free block on its list, a span, [bump, end).  recycle_after is
** 0 or the free bytes at the last pass that found little.
** In secure builds the links are stored encoded with key[] and every chunk
** lies in [lo, hi): a link that decodes outside it was overwritten.
*/
#define HAKL_REGION_MAX 1024  /* largest block of the fast path's 8-byte classes */
#define HAKL_REGION_TOP 4096  /* largest block of a region: 128-byte classes above MAX */
#define HAKL_REGION_CLASSES (HAKL_REGION_MAX / 8 + (HAKL_REGION_TOP - HAKL_REGION_MAX) / 128 + 1)
typedef struct hakl_region {
  void *free[HAKL_REGION_CLASSES]; /* first: a list is then the region's address
                                      plus 8 * class (GCC adds an offset of a
                                      member to the class first otherwise) */
  char *bump, *end;
  void *chunks;
  size_t chunk_bytes;   /* the chunks' sizes, summed */
  void *spans;          /* free runs found by the last recycling (hakl_region.c),
                           each at least 512 bytes, in address order: bumped
                           through before a new chunk; link in the first word,
                           bytes in the second */
  size_t recycle_after; /* 0, or the free bytes (chunk_bytes less the live
                           ones) when a pass found little: no recycling until
                           they pass this by an eighth of chunk_bytes */
  uint64_t *map;        /* recycling's map of the chunks (hakl_region.c): NULL,
                           or map_words words, all zero between passes */
  size_t map_words;
  size_t top;        /* largest block: HAKL_REGION_TOP in a private heap's state,
                        else HAKL_REGION_MAX (the thread's pages hold larger ones
                        densely, shared with other states) */
  uintptr_t key[2];  /* secure builds: the links' keys (0 in other builds) */
  uintptr_t lo, hi;  /* secure builds: the chunks' (and strays') address range */
  void *strays;      /* core blocks kept as region blocks by a shrink that found
                        no region memory (hakl_region_stray), through their tails */
} hakl_region;

/*
** The allocator's state: the `ud` of hakl_alloc and hakl_alloc_foreign.
**
** Invariants:
** - heap == NULL: blocks come from the default heap of whichever thread
**   runs the state; else from `heap`, which the running thread owns
**   (hakl_claim).
** - prev_f != NULL only for a state switched by the module: blocks that
**   hak_owns does not know belong to prev_f/prev_ud.
** - region's chunks are blocks of the default heaps of the threads that
**   ran the state, even with a private heap (which then holds only blocks
**   above the region, and costs a small state no segment); they go back
**   when acct.in_use reaches 0 (the last free of lua_close), or in
**   hakl_close (whose lua_close only counts the region's frees:
**   hakl_alloc_closing, or hakl_alloc_dropping when it drops the state).
** - core_on only for a state of hakl_newstate on the shared heaps: core
**   then holds the addresses of the state's blocks above the region (all of
**   them unless core_lost), so that hakl_close can drop them as a private
**   heap drops its own (lua_glue/hakl_core.h).
** - close_jmp != NULL only inside hakl_close of a state it drops: the free
**   of the block holding close_mark then jumps there (hakl_alloc_dropping),
**   and close_lua is the bytes Lua itself holds (in_use less what the host
**   charged).
** - free_when_empty: the context was malloc'd by the module; the free that
**   brings acct.in_use to 0 is the last call of lua_close (the state's
**   own block goes last), and hakl_alloc_foreign then frees the context.
*/
typedef struct hakl_ctx {
  hakl_account acct;
  hakl_region region;  /* blocks up to region.top; larger ones from `heap` */
  hak_heap_t *heap;    /* NULL: the running thread's default heap */
  size_t core_bytes;   /* Lua's bytes in the state's blocks above the region (in
                          acct.in_use too): in_use less this bounds the region's
                          live bytes, which decide its recycling (hakl_region.h) */
  bool own_heap;       /* heap made by hakl_newstate, destroyed by hakl_close */
  bool libc;           /* blocks come from malloc/realloc/free (hakl_alloc_libc) */
  bool newstate;       /* this context made by hakl_newstate, freed by hakl_close */
  bool free_when_empty; /* module only: free(ctx) when the state is gone */
  lua_Alloc prev_f;    /* module only: the allocator before the switch */
  void *prev_ud;
  void *close_mark;    /* hakl_close only: a block freed first by the sweep */
  void *close_jmp;     /* hakl_close only: its jmp_buf */
  size_t close_lua;    /* hakl_close only: Lua's own bytes */
  /* hakl_newstate on the shared heaps (core_on): the state's blocks above
  ** the region, a hash set (lua_glue/hakl_core.h), NULL until the first */
  bool core_on;
  bool core_lost;      /* a block is missing from the set: hakl_close sweeps */
  uintptr_t *core;
  size_t core_mask;
  size_t core_count;
} hakl_ctx;

/* heap: NULL for per-thread heaps; limit: 0 for none. */
HAKL_API void hakl_ctx_init(hakl_ctx *ctx, hak_heap_t *heap, size_t limit);

/* The lua_Alloc (its contract is written above its definition). */
HAKL_API void *hakl_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
/* The same for a state that started on another allocator (ctx->prev_f):
** blocks hakmem does not own are freed or moved through prev_f. */
HAKL_API void *hakl_alloc_foreign(void *ud, void *ptr, size_t osize, size_t nsize);
/* The same account and limit over the C library's malloc, realloc and free
** (for comparing allocators in one host: peers come in by LD_PRELOAD). */
HAKL_API void *hakl_alloc_libc(void *ud, void *ptr, size_t osize, size_t nsize);
/* The allocator hakl_close installs for lua_close on a state whose memory
** it is about to drop whole (a private heap, or the region and the set of
** the blocks above it, lua_glue/hakl_core.h): frees are counted, not done;
** allocations (by finalizers) work as in hakl_alloc; the free of the block
** hakl_close marked ends lua_close (hakl_state.c). */
HAKL_API void *hakl_alloc_dropping(void *ud, void *ptr, size_t osize, size_t nsize);
/* The allocator hakl_close installs for lua_close on a state on a shared
** heap whose set of larger blocks is incomplete (core_lost): a free of a
** region block is counted, not done (the region goes back whole at the
** end); everything else as in hakl_alloc. */
HAKL_API void *hakl_alloc_closing(void *ud, void *ptr, size_t osize, size_t nsize);

/* -------------------------------------------------------------------------
** States.
** ---------------------------------------------------------------------- */
typedef struct hakl_config {
  size_t limit;       /* bytes; 0 = none */
  bool private_heap;  /* the state gets a heap of its own, which moves with
                         it (hakl_claim) and makes hakl_close fast */
  bool libc;          /* allocate with hakl_alloc_libc instead (no private
                         heap then); hakl_close works the same */
} hakl_config;

/* A state with the standard panic and warning handlers (warnings off until
** "@on", as luaL_newstate), allocating through hakl_alloc.  cfg may be NULL
** (no limit, per-thread heaps).  NULL when out of memory. */
HAKL_API lua_State *hakl_newstate(const hakl_config *cfg);

/* lua_newstate(f, ud) with the same handlers, for a host that brings its
** own allocator (hklua's floors).  NULL when out of memory. */
HAKL_API lua_State *hakl_openstate(lua_Alloc f, void *ud);

/* Closes a state made by hakl_newstate.  Finalizers run exactly as in
** lua_close; with a private heap, the blocks are then released with the
** heap instead of one at a time.  `final` (may be NULL) receives the
** account as it stood after the close. */
HAKL_API void hakl_close(lua_State *L, hakl_account *final);

/* The registry field that holds a state's context (a light userdata).  A
** string key, not an address, so that every copy of the glue in a process
** (a host's and a loaded module's) finds it. */
#define HAKL_CTX_KEY "hakmem.ctx"
/* The context of a state that allocates through hakmem (hakl_newstate, or
** switched by the module); NULL for any other state. */
HAKL_API hakl_ctx *hakl_getctx(lua_State *L);
/* Registers ctx as the context of L (hakl_newstate and the module do it;
** a host calling lua_newstate(hakl_alloc, ctx) may).  Allocates. */
HAKL_API void hakl_setctx(lua_State *L, hakl_ctx *ctx);

/* Sets the limit (0 = none) while the state runs; returns the old one.
** A limit below the current use fails the next allocation, not this call. */
HAKL_API size_t hakl_setlimit(hakl_ctx *ctx, size_t limit);

/* Bytes the host holds for the state outside Lua's objects (a buffer
** block): hakl_charge adds n to the account, refusing (false, nothing
** changed) when enforce_limit and n would pass the limit; hakl_uncharge
** takes them out again. */
HAKL_API bool hakl_charge(hakl_ctx *ctx, size_t n, bool enforce_limit);
HAKL_API void hakl_uncharge(hakl_ctx *ctx, size_t n);

/* Moving a state with a private heap between threads: the thread that ran
** it last calls hakl_release, the hand-over is synchronised by the caller,
** the next thread calls hakl_claim before resuming it.  No-ops without a
** private heap (then each thread allocates from its own heap). */
HAKL_API void hakl_release(lua_State *L);
HAKL_API void hakl_claim(lua_State *L);

/* Name of a type tag: "string", "table", ..., "upvalue", "proto", "other". */
HAKL_API const char *hakl_typename(int tag);

/* The `hakmem` Lua module: stats(), limit([bytes]), collect(). */
HAKL_API int luaopen_hakmem(lua_State *L);

#ifdef __cplusplus
}
#endif
#endif /* HAKL_H */

/*
** test_glue.c -- hakl_alloc and the per-state account: sized free and
** realloc across every class boundary, the per-type figures against what a
** script created, the account against Lua's own count, the return to the
** starting value, the module's switch of a state from another allocator,
** and states moving between threads.
*/
#include <criterion/criterion.h>

#include "helpers.h"
#include "luatest.h"
#include "fixture.h"

TestSuite(glue, .init = hkt_fixture_init, .fini = hkt_fixture_fini);

/* ------------------------------------------------------------------------
** hakl_alloc called directly.
** --------------------------------------------------------------------- */

/* Every size up to 1 KiB, then 8 points per doubling (each -1, 0, +1) up to
** 4 MiB: every small, medium, large and huge class boundary is in it. */
static size_t boundary_sizes(size_t *out, size_t max) {
  size_t n = 0, p, k;
  for (p = 1; p <= 1024 && n < max; p++) out[n++] = p;
  for (p = 1024; p <= 4 * HKT_MiB; p *= 2)
    for (k = 0; k < 8; k++) {
      size_t s = p + k * (p / 8);
      if (s > 1024 && n + 3 <= max) {
        out[n++] = s - 1;
        out[n++] = s;
        out[n++] = s + 1;
      }
    }
  return n;
}

Test(glue, sized_free_and_realloc_across_class_boundaries) {
  static size_t sizes[2048];
  size_t n = boundary_sizes(sizes, 2048), i, j, fails = 0;
  hakl_ctx c;
  hakl_ctx_init(&c, NULL, 0);
  for (i = 0; i < n; i++) {
    size_t s = sizes[i];
    size_t targets[5] = {s - 1, s + 1, 2 * s, s / 2, i + 1 < n ? sizes[i + 1] : s + 8};
    for (j = 0; j < 5; j++) {
      size_t t = targets[j], keep = s < t ? s : t;
      uint64_t seed = 1000 * i + j;
      void *p, *q;
      if (t == 0) continue;
      p = hakl_alloc(&c, NULL, 0, s);
      cr_assert_not_null(p, "new block of %zu B", s);
      HKT_EXPECT(fails, hkt_aligned(p, 8), "block of %zu B at %p not 8-aligned", s, p);
      hkt_fill(p, s, seed);
      q = hakl_alloc(&c, p, s, t);
      cr_assert_not_null(q, "realloc %zu -> %zu B", s, t);
      HKT_EXPECT(fails, hkt_check(q, keep, seed) == keep,
                 "realloc %zu -> %zu B lost bytes at offset %zu", s, t, hkt_check(q, keep, seed));
      HKT_EXPECT(fails, c.acct.in_use == t, "in_use %zu after realloc to %zu", c.acct.in_use, t);
      cr_expect_null(hakl_alloc(&c, q, t, 0));
    }
  }
  HKT_EXPECT_NONE(fails, "sized blocks across class boundaries");
  cr_expect_eq(c.acct.in_use, 0, "in_use %zu after freeing everything", c.acct.in_use);
  cr_expect_eq(hakl_account_nalloc(&c.acct), c.acct.nfree);
  cr_expect_eq(c.acct.ngrow + c.acct.nshrink, hakl_account_nalloc(&c.acct), "one realloc per block");
}

Test(glue, null_free_is_free_of_charge) {
  hakl_ctx c;
  hakl_account before;
  hakl_ctx_init(&c, NULL, 0);
  before = c.acct;
  cr_expect_null(hakl_alloc(&c, NULL, 0, 0));
  cr_expect_null(hakl_alloc(&c, NULL, LUA_TTABLE, 0));
  cr_expect(memcmp(&before, &c.acct, sizeof before) == 0, "(NULL, x, 0) changed the account");
}

Test(glue, type_tags_are_counted) {
  hakl_ctx c;
  void *p[HAKL_NTYPES + 1];
  int t;
  hakl_ctx_init(&c, NULL, 0);
  for (t = 0; t <= HAKL_NTYPES; t++) p[t] = hakl_alloc(&c, NULL, (size_t)t, 8 + 8 * (size_t)t);
  for (t = 1; t < HAKL_NTYPES; t++) {
    cr_expect_eq(c.acct.type_count[t], 1, "tag %d", t);
    cr_expect_eq(c.acct.type_bytes[t], 8 + 8 * (uint64_t)t, "tag %d", t);
  }
  /* tag 0 and an out-of-range tag both count as "other" */
  cr_expect_eq(c.acct.type_count[0], 2);
  cr_expect_eq(c.acct.type_bytes[0], 8 + 8 + 8 * (uint64_t)HAKL_NTYPES);
  for (t = 0; t <= HAKL_NTYPES; t++) hakl_alloc(&c, p[t], 8 + 8 * (size_t)t, 0);
  cr_expect_eq(c.acct.in_use, 0);
  cr_expect_str_eq(hakl_typename(LUA_TTABLE), "table");
  cr_expect_str_eq(hakl_typename(HAKL_TUPVAL), "upvalue");
  cr_expect_str_eq(hakl_typename(0), "other");
}

Test(glue, limit_refuses_growth_but_never_a_shrink) {
  hakl_ctx c;
  void *p, *q;
  hakl_ctx_init(&c, NULL, 1000);
  p = hakl_alloc(&c, NULL, 0, 600);
  cr_assert_not_null(p);
  cr_expect_null(hakl_alloc(&c, NULL, 0, 401), "a new block past the limit");
  cr_expect_null(hakl_alloc(&c, p, 600, 1001), "a growth past the limit");
  cr_expect_eq(c.acct.nfail, 2);
  cr_expect_eq(c.acct.in_use, 600);
  hakl_setlimit(&c, 100); /* below the use: growths fail, shrinks work */
  cr_expect_null(hakl_alloc(&c, NULL, 0, 8));
  hkt_fill(p, 600, 7);
  q = hakl_alloc(&c, p, 600, 50);
  cr_assert_not_null(q, "a shrink failed under a limit");
  cr_expect_eq(hkt_check(q, 50, 7), 50);
  cr_expect_eq(c.acct.in_use, 50);
  hakl_alloc(&c, q, 50, 0);
  cr_expect_eq(c.acct.peak, 600);
}

/* The peak and the limit go through one comparison with the mark
** (hakl_account.h): a random mix of new blocks, growths, shrinks and frees,
** with the limit raised, lowered and removed, must give exactly the peak,
** the use and the refusals that a plain model of the rules gives. */
Test(glue, account_peak_and_limit_match_a_model) {
  enum { N = 64 };
  hakl_ctx c;
  void *blk[N] = {0};
  size_t sz[N] = {0}, use = 0, peak = 0, limit = 0;
  uint64_t fails = 0, seed = 12345;
  int i;
  hakl_ctx_init(&c, NULL, 0);
  for (i = 0; i < 20000; i++) {
    size_t k, n;
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    k = (size_t)(seed >> 33) % N;
    n = 1 + (size_t)(seed >> 20) % 3000;
    if (i % 1000 == 0) { /* a new limit now and then: none, above or below the use */
      limit = (i / 1000) % 3 == 0 ? 0 : use + (size_t)(seed >> 40) % 40000;
      if ((i / 1000) % 5 == 4 && use > 1000) limit = use - 1000;
      hakl_setlimit(&c, limit);
    }
    if (blk[k] == NULL) {
      bool ok = limit == 0 || (use <= limit && n <= limit - use);
      blk[k] = hakl_alloc(&c, NULL, 0, n);
      cr_assert_eq(blk[k] != NULL, ok, "new block of %zu at use %zu limit %zu", n, use, limit);
      if (ok) sz[k] = n, use += n;
      else fails++;
    } else if ((seed >> 60) == 0) {
      hakl_alloc(&c, blk[k], sz[k], 0);
      use -= sz[k];
      blk[k] = NULL;
    } else {
      bool ok = n <= sz[k] || limit == 0 || (use <= limit && n - sz[k] <= limit - use);
      void *q = hakl_alloc(&c, blk[k], sz[k], n);
      cr_assert_eq(q != NULL, ok, "resize %zu to %zu at use %zu limit %zu", sz[k], n, use, limit);
      if (ok) use = use - sz[k] + n, sz[k] = n, blk[k] = q;
      else fails++;
    }
    if (use > peak) peak = use;
    cr_assert_eq(c.acct.in_use, use);
    cr_assert_eq(c.acct.peak, peak, "step %d", i);
  }
  cr_expect_eq(c.acct.nfail, fails);
  cr_expect_gt(fails, 0, "the limits refused something");
  for (i = 0; i < N; i++)
    if (blk[i] != NULL) hakl_alloc(&c, blk[i], sz[i], 0);
  cr_expect_eq(c.acct.in_use, 0);
}

/* ------------------------------------------------------------------------
** States and scripts.
** --------------------------------------------------------------------- */

/* Closed with hakl_close: lua_close would leave the context allocated. */
static lua_State *new_state(bool private_heap) {
  hakl_config cfg = {.limit = 0, .private_heap = private_heap};
  lua_State *L = hakl_newstate(&cfg);
  cr_assert_not_null(L);
  luaL_openlibs(L);
  return L;
}

/* Runs the compiled function on top of the stack and returns the account
** difference per tag in delta_count/delta_bytes. */
static void measure(lua_State *L, uint64_t *dcount, uint64_t *dbytes) {
  hakl_ctx *c = hakl_getctx(L);
  hakl_account a = c->acct, b;
  int t;
  cr_assert_eq(lua_pcall(L, 0, 0, 0), LUA_OK, "%s", lua_tostring(L, -1));
  b = c->acct;
  for (t = 0; t < HAKL_NTYPES; t++) {
    dcount[t] = b.type_count[t] - a.type_count[t];
    dbytes[t] = b.type_bytes[t] - a.type_bytes[t];
  }
}

static int make_userdata(lua_State *L) {
  lua_Integer i, n = luaL_checkinteger(L, 1);
  lua_getglobal(L, "keep");
  for (i = 1; i <= n; i++) {
    lua_newuserdatauv(L, 24, 1);
    lua_rawseti(L, -2, i);
  }
  return 0;
}

Test(glue, per_type_counts_match_what_the_script_created) {
  enum { N = 5000 };
  static const struct {
    int tag;
    int per_iter;
    const char *loop;
  } cases[] = {
    {LUA_TTABLE, 1, "for i = 1, 5000 do keep[i] = {} end"},
    {LUA_TFUNCTION, 1, "for i = 1, 5000 do local x = i; keep[i] = function() return x end end"},
    {HAKL_TUPVAL, 1, "for i = 1, 5000 do local x = i; keep[i] = function() return x end end"},
    {LUA_TTHREAD, 1, "for i = 1, 5000 do keep[i] = coroutine.create(print) end"},
    {LUA_TSTRING, 1, "for i = 1, 5000 do keep[i] = tostring(7000000 + i) end"},
    {LUA_TUSERDATA, 1, "make_userdata(5000)"},
  };
  size_t k;
  lua_State *L = new_state(false);
  lua_register(L, "make_userdata", make_userdata);
  for (k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    uint64_t dc[HAKL_NTYPES], db[HAKL_NTYPES];
    /* keep is presized: filling it does not grow it */
    cr_assert_eq(lt_run(L, "keep = {} for i = 1, 5000 do keep[i] = false end", 0), LUA_OK);
    cr_assert_eq(luaL_loadstring(L, cases[k].loop), LUA_OK);
    measure(L, dc, db);
    cr_expect_eq(dc[cases[k].tag], (uint64_t)N * cases[k].per_iter, "%s: %llu %s objects for %d",
                 cases[k].loop, (unsigned long long)dc[cases[k].tag],
                 hakl_typename(cases[k].tag), N);
    cr_expect(db[cases[k].tag] % N == 0 && db[cases[k].tag] / N >= 24,
              "%s: %llu bytes of %s", cases[k].loop, (unsigned long long)db[cases[k].tag],
              hakl_typename(cases[k].tag));
    if (cases[k].tag == LUA_TSTRING) /* TString header (24 B) + 7 chars + NUL */
      cr_expect_eq(db[LUA_TSTRING], (uint64_t)N * 32);
    if (cases[k].tag == LUA_TTABLE) /* a Table is 56 B in 5.4 on 64-bit */
      cr_expect_eq(db[LUA_TTABLE], (uint64_t)N * 56);
  }
  hakl_close(L, NULL);
}

Test(glue, account_equals_luas_own_count) {
  lua_State *L = new_state(false);
  hakl_ctx *c = hakl_getctx(L);
  int i;
  cr_assert_not_null(c);
  cr_expect_eq(c->acct.in_use, lt_lua_bytes(L));
  for (i = 0; i < 20; i++) {
    cr_assert_eq(lt_run(L, "local t = {} for i = 1, 3000 do t[i] = {tostring(i), i} end "
                           "big = string.rep('x', 100000) .. #t "
                           "if math.random() < 0.5 then big = nil end",
                        0),
                 LUA_OK);
    cr_expect_eq(c->acct.in_use, lt_lua_bytes(L), "round %d: account %zu, Lua %zu", i,
                 c->acct.in_use, lt_lua_bytes(L));
    cr_expect_geq(c->acct.peak, c->acct.in_use);
  }
  hakl_close(L, NULL);
}

static const char *churn_script =
  "local function work()\n"
  "  local t, s, fs, cos = {}, {}, {}, {}\n"
  "  for i = 1, 20000 do t[i] = {i, tostring(i) .. 'x'} end\n"
  "  for i = 1, 2000 do s[#s + 1] = string.rep('ab', i % 50) .. i end\n"
  "  local big = table.concat(s)\n"
  "  for i = 1, 2000 do local u = i; fs[i] = function() u = u + 1; return u end end\n"
  "  for i = 1, 500 do cos[i] = coroutine.wrap(function(a) while true do a = coroutine.yield(a * 2) end end); cos[i](i) end\n"
  "  setmetatable({}, {__gc = function() end})\n"
  "  return #big + #t + fs[10]() + cos[3](5)\n"
  "end\n"
  "return work()\n";

Test(glue, account_returns_to_start_after_objects_die) {
  lua_State *L = new_state(false);
  hakl_ctx *c = hakl_getctx(L);
  size_t start, after;
  int round;
  /* The first run leaves lasting things (interned strings, a larger string
  ** table, a grown stack): the steady state is what comes back. */
  cr_assert_eq(luaL_loadstring(L, churn_script), LUA_OK);
  lua_setglobal(L, "churn");
  cr_assert_neq(lt_int(L, "return churn()"), -1);
  lua_gc(L, LUA_GCCOLLECT);
  lua_gc(L, LUA_GCCOLLECT);
  start = c->acct.in_use;
  for (round = 0; round < 3; round++) {
    cr_assert_neq(lt_int(L, "return churn()"), -1);
    cr_expect_gt(c->acct.peak, start + 500000, "the script held memory");
    lua_gc(L, LUA_GCCOLLECT);
    lua_gc(L, LUA_GCCOLLECT);
    after = c->acct.in_use;
    cr_expect_eq(after, start, "round %d: %zu B after, %zu B at the start", round, after, start);
    cr_expect_eq(after, lt_lua_bytes(L));
  }
  hakl_close(L, NULL);
}

Test(glue, close_returns_every_byte) {
  size_t hak0 = lt_hak_in_use();
  int priv;
  for (priv = 0; priv < 2; priv++) {
    hakl_account final;
    lua_State *L = new_state(priv != 0);
    cr_assert_neq(lt_int(L, churn_script), -1);
    cr_expect_gt(hakl_getctx(L)->acct.in_use, 100000u);
    hakl_close(L, &final);
    cr_expect_eq(final.in_use, 0, "private heap %d: %zu B left in the account", priv,
                 final.in_use);
    cr_expect_eq(hakl_account_nalloc(&final), final.nfree, "private heap %d", priv);
    cr_expect_eq(lt_hak_in_use(), hak0, "private heap %d: hakmem holds %zu B, held %zu", priv,
                 lt_hak_in_use(), hak0);
  }
}

Test(glue, standard_handlers) {
  lua_State *L = new_state(false);
  /* warnings start off, as with luaL_newstate; "@on" turns them on */
  cr_expect_eq(lt_run(L, "warn('@on') warn('a', 'b') warn('@off') warn('c')", 0), LUA_OK);
  cr_expect_neq(lua_atpanic(L, NULL), NULL, "no panic handler");
  hakl_close(L, NULL);
}

/* ------------------------------------------------------------------------
** The module in a state that began on another allocator.
** --------------------------------------------------------------------- */

/* Lua's l_alloc with a count of what it holds. */
typedef struct counted {
  size_t live;
  size_t frees;
} counted;

static void *counted_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  counted *k = (counted *)ud;
  if (ptr != NULL) {
    k->live -= osize;
    if (nsize == 0) k->frees++;
  }
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  ptr = realloc(ptr, nsize);
  if (ptr != NULL) k->live += nsize;
  return ptr;
}

Test(glue, module_switches_a_foreign_state) {
  counted k = {0, 0};
  lua_State *L = lua_newstate(counted_alloc, &k);
  hakl_ctx *c;
  size_t before;
  void *ud;
  cr_assert_not_null(L);
  luaL_openlibs(L);
  cr_assert_eq(lt_run(L, "old = {} for i = 1, 3000 do old[i] = {i, 'old' .. i} end", 0), LUA_OK);
  before = k.live;
  cr_expect_eq(before, lt_lua_bytes(L));
  luaL_requiref(L, "hakmem", luaopen_hakmem, 1);
  lua_pop(L, 1);
  cr_expect_eq(lua_getallocf(L, &ud), hakl_alloc_foreign);
  c = hakl_getctx(L);
  cr_assert_not_null(c);
  cr_expect_eq(c->acct.in_use, lt_lua_bytes(L));
  cr_expect_eq(c->acct.foreign, k.live, "foreign %zu, previous allocator holds %zu",
               c->acct.foreign, k.live);
  /* keep using the old blocks: grow their tables, free half, make more */
  cr_expect_eq(lt_int(L, "for i = 1, 3000, 2 do old[i] = nil end "
                         "for i = 2, 3000, 2 do local t = old[i]; for j = 3, 40 do t[j] = j end end "
                         "for i = 3001, 6000 do old[i] = {i} end "
                         "collectgarbage() "
                         "local s = 0 for i = 2, 3000, 2 do s = s + old[i][1] + old[i][40] end "
                         "return s"),
               1500LL * 1501 + 1500 * 40);
  cr_expect_lt(k.live, before, "no foreign block was freed or moved");
  cr_expect_eq(c->acct.foreign, k.live);
  cr_expect_eq(c->acct.in_use, lt_lua_bytes(L));
  cr_expect_eq(lt_int(L, "local s = hakmem.stats() return s.in_use > 0 and s.foreign > 0 "
                         "and s.bytes_by_type.table > 0 and 1 or 0"),
               1);
  lua_close(L); /* frees c too, on the last free */
  cr_expect_eq(k.live, 0, "the previous allocator still holds %zu B", k.live);
}

Test(glue, foreign_blocks_move_with_their_bytes) {
  counted k = {0, 0};
  hakl_ctx c;
  size_t sizes[] = {8, 40, 56, 100, 1000, 5000, 100000};
  size_t i, j;
  hakl_ctx_init(&c, NULL, 0);
  c.prev_f = counted_alloc;
  c.prev_ud = &k;
  for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
    for (j = 0; j < sizeof sizes / sizeof sizes[0]; j++) {
      size_t o = sizes[i], n = sizes[j], keep = o < n ? o : n;
      void *p = counted_alloc(&k, NULL, 0, o), *q;
      c.acct.in_use += o;
      c.acct.foreign += o;
      hkt_fill(p, o, i * 10 + j);
      q = hakl_alloc_foreign(&c, p, o, n);
      cr_assert_not_null(q);
      cr_expect(hak_owns(q), "%zu -> %zu B: block did not move into hakmem", o, n);
      cr_expect_eq(hkt_check(q, keep, i * 10 + j), keep, "%zu -> %zu B", o, n);
      cr_expect_eq(k.live, 0, "%zu -> %zu B: old block not given back", o, n);
      cr_expect_eq(c.acct.foreign, 0);
      cr_expect_eq(c.acct.in_use, n);
      hakl_alloc_foreign(&c, q, n, 0);
      cr_expect_eq(c.acct.in_use, 0);
    }
  /* a foreign free goes to the previous allocator */
  {
    void *p = counted_alloc(&k, NULL, 0, 64);
    k.frees = 0;
    c.acct.in_use += 64;
    c.acct.foreign += 64;
    cr_expect_null(hakl_alloc_foreign(&c, p, 64, 0));
    cr_expect_eq(k.frees, 1);
    cr_expect_eq(k.live, 0);
  }
}

Test(glue, module_in_a_hakmem_state_only_reports) {
  lua_State *L = new_state(false);
  hakl_ctx *c = hakl_getctx(L);
  void *ud;
  luaL_requiref(L, "hakmem", luaopen_hakmem, 1);
  lua_pop(L, 1);
  cr_expect_eq(lua_getallocf(L, &ud), hakl_alloc, "the module switched a hakmem state");
  cr_expect_eq(ud, c);
  cr_expect_eq(lt_int(L, "return hakmem.limit(1000000)"), 0);
  cr_expect_eq(c->acct.limit, 1000000);
  cr_expect_eq(lt_int(L, "return hakmem.limit()"), 1000000);
  cr_expect_eq(lt_int(L, "return hakmem.limit(0)"), 1000000);
  cr_expect_eq(c->acct.limit, 0);
  cr_expect_eq(lt_int(L, "local a = collectgarbage('count') * 1024 local s = hakmem.stats() "
                         "return s.in_use == a and 1 or 0"),
               1);
  cr_expect_geq(lt_int(L, "return hakmem.collect()"), 0);
  cr_expect_eq(lt_int(L, "return hakmem.stats().heap.in_use > 0 and 1 or 0"), 1);
  hakl_close(L, NULL);
}

/* ------------------------------------------------------------------------
** States that move between threads.
** --------------------------------------------------------------------- */

static lua_State *moving;
static long long moved_result;

static void *run_elsewhere(void *arg) {
  (void)arg;
  hakl_claim(moving);
  moved_result = lt_int(moving, "for i = 1, 20000 do t[i] = nil end "
                                "for i = 1, 20000 do u[i] = {i} end "
                                "collectgarbage() local s = 0 "
                                "for i = 1, 20000 do s = s + u[i][1] end return s");
  hakl_release(moving);
  return NULL;
}

static void move_state(bool private_heap) {
  lua_State *L = new_state(private_heap);
  hakl_account final;
  moving = L;
  cr_assert_eq(lt_run(L, "t, u = {}, {} for i = 1, 20000 do t[i] = {tostring(i)} end", 0), LUA_OK);
  hakl_release(L);
  hkt_run_thread(run_elsewhere, NULL);
  cr_expect_eq(moved_result, 20000LL * 20001 / 2);
  hakl_claim(L); /* back home */
  cr_expect_eq(lt_int(L, "u = nil collectgarbage() return #t"), 0);
  cr_expect_eq(hakl_getctx(L)->acct.in_use, lt_lua_bytes(L));
  hakl_close(L, &final);
  cr_expect_eq(final.in_use, 0);
}

Test(glue, state_with_private_heap_moves_between_threads) {
  move_state(true);
}

Test(glue, state_on_thread_heaps_moves_between_threads) {
  move_state(false);
}

/*
** fuzz_lua.c -- a libFuzzer target for the Lua glue.
**
** The input's first bytes choose the state: a memory limit (64 KiB to
** about 4 MiB), a private heap or not, generational GC or not, each
** top-level statement in a pcall of its own or not, and N: every N-th allocation request
** of the running chunk fails (0: none), on top of the limit.  The rest is
** turned into a Lua chunk by a small grammar: locals v0..v7 assigned
** tables, strings, concatenations, string.rep of fuzzed sizes, closures,
** coroutines (wrap, create/resume, yields across pcall), objects with
** __gc finalizers that allocate, table.insert/remove/concat, loops,
** pcall, error and collectgarbage with every option.  The chunk always
** parses; running it may raise ordinary errors (a call of a number, a
** concatenation of a table) and, under the limit and the injected
** failures, "not enough memory".  A count hook stops a chunk after a
** budget of instructions.
**
** What must hold, or the target aborts: nothing crashes; a memory error is
** the string "not enough memory"; the chunk is never a syntax error (that
** would be the grammar's bug); afterwards, with injection off, a full
** collection and a small check chunk work and the glue's account equals
** Lua's own count; after hakl_close the account is zero and hakmem holds
** no more live bytes than before the state.
**
** tests/fuzz/replay.c runs LLVMFuzzerTestOneInput on files without
** libFuzzer; with FUZZ_LUA_SHOW set, each input's chunk and outcome go to
** stderr.
*/
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "hakl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FL_CODE_MAX (24 * 1024)  /* bytes of generated Lua */
#define FL_DEPTH_MAX 3           /* nesting of bodies and expressions */
#define FL_BUDGET 400000         /* instructions a chunk may run */
#define FL_HOOK_STEP 1000        /* instructions between hook calls */

/* ---- the input ------------------------------------------------------------- */

typedef struct fl_reader {
  const uint8_t *p, *end;
} fl_reader;

static unsigned fl_u8(fl_reader *r) { return r->p < r->end ? *r->p++ : 0; }

/* ---- the generated chunk ----------------------------------------------------- */

typedef struct fl_gen {
  fl_reader *r;
  char code[FL_CODE_MAX];
  size_t len;
  bool full;  /* the buffer is nearly full: emit only closings */
} fl_gen;

static void emit(fl_gen *g, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(g->code + g->len, sizeof g->code - g->len, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof g->code - g->len) {
    fprintf(stderr, "fuzz_lua: generated chunk too long\n");
    abort(); /* full is set well before this can happen */
  }
  g->len += (size_t)n;
  if (g->len > sizeof g->code - 2048) g->full = true;
}

static unsigned var(fl_gen *g) { return fl_u8(g->r) % 8; }

/* Small counts for loops, larger ones for string sizes. */
static unsigned small_count(fl_gen *g) { return 1 + fl_u8(g->r) % 40; }

static unsigned rep_count(fl_gen *g) {
  unsigned b = fl_u8(g->r);
  return b < 200 ? b * 7 : 1u << (b % 22); /* up to 2^21 repetitions */
}

static void expr(fl_gen *g, int depth);
static void block(fl_gen *g, int depth);

static void word(fl_gen *g) {
  unsigned n = 1 + fl_u8(g->r) % 8;
  emit(g, "'");
  for (unsigned i = 0; i < n; i++) emit(g, "%c", 'a' + fl_u8(g->r) % 26);
  emit(g, "'");
}

static void expr(fl_gen *g, int depth) {
  unsigned op = fl_u8(g->r) % 17;
  if (depth >= FL_DEPTH_MAX || g->full) op %= 3; /* leaves only */
  switch (op) {
  case 0: emit(g, "%u", fl_u8(g->r)); break;
  case 1: word(g); break;
  case 2: emit(g, "v%u", var(g)); break;
  case 3: expr(g, depth + 1); emit(g, " .. "); expr(g, depth + 1); break;
  case 4: emit(g, "tostring(v%u) .. tostring(", var(g)); expr(g, depth + 1); emit(g, ")"); break;
  case 5: emit(g, "string.rep("); expr(g, depth + 1); emit(g, ", %u)", rep_count(g)); break;
  case 6:
    emit(g, "{");
    expr(g, depth + 1);
    emit(g, ", ");
    expr(g, depth + 1);
    emit(g, ", k%u = ", fl_u8(g->r) % 4);
    expr(g, depth + 1);
    emit(g, "}");
    break;
  case 7: emit(g, "function(x) "); block(g, depth + 1); emit(g, " return x .. v%u end", var(g)); break;
  case 8:
    emit(g, "coroutine.wrap(function(a) for i = 1, %u do ", small_count(g));
    block(g, depth + 1);
    emit(g, " coroutine.yield(i) end return v%u end)", var(g));
    break;
  case 9:
    emit(g, "select(2, coroutine.resume(coroutine.create(function(a) ");
    block(g, depth + 1);
    emit(g, " return a end), ");
    expr(g, depth + 1);
    emit(g, "))");
    break;
  case 10:
    emit(g, "setmetatable({");
    expr(g, depth + 1);
    emit(g, "}, {__gc = function(o) v%u = tostring(o[1]) .. ", var(g));
    word(g);
    emit(g, " end})");
    break;
  case 11: emit(g, "#v%u", var(g)); break;
  case 12: emit(g, "v%u(", var(g)); expr(g, depth + 1); emit(g, ")"); break;
  case 13: emit(g, "table.concat(v%u, ", var(g)); word(g); emit(g, ")"); break;
  case 14: emit(g, "collectgarbage('count')"); break;
  case 15: emit(g, "string.format('%%s:%%d', tostring(v%u), %u)", var(g), fl_u8(g->r)); break;
  default: emit(g, "{}"); break;
  }
}

static const char *const gc_opts[] = {"collect", "step", "incremental", "generational",
                                      "stop", "restart", "count", "isrunning"};

static void stmt(fl_gen *g, int depth) {
  unsigned op = fl_u8(g->r) % 14;
  if (depth >= FL_DEPTH_MAX || g->full) op = op % 4 == 0 ? 1 : 0; /* no more nesting */
  switch (op) {
  case 0: emit(g, "v%u = ", var(g)); expr(g, depth + 1); break;
  case 1: emit(g, "collectgarbage('%s')", gc_opts[fl_u8(g->r) % 8]); break;
  case 2: emit(g, "table.insert(v%u, ", var(g)); expr(g, depth + 1); emit(g, ")"); break;
  case 3: emit(g, "table.remove(v%u)", var(g)); break;
  case 4: emit(g, "v%u[", var(g)); expr(g, depth + 1); emit(g, "] = "); expr(g, depth + 1); break;
  case 5: emit(g, "for i = 1, %u do ", small_count(g)); block(g, depth + 1); emit(g, " end"); break;
  case 6: emit(g, "pcall(function() "); block(g, depth + 1); emit(g, " end)"); break;
  case 7:
    emit(g, "do local t = {} for i = 1, %u do t[#t + 1] = string.rep('a', i %% 64) .. i end v%u = t end",
         small_count(g) * 25, var(g));
    break;
  case 8: emit(g, "error("); expr(g, depth + 1); emit(g, ")"); break;
  case 9: emit(g, "v%u = nil", var(g)); break;
  case 10:
    emit(g, "do local s = '' for i = 1, %u do s = s .. ", small_count(g) * 10);
    expr(g, depth + 1);
    emit(g, " end v%u = s end", var(g));
    break;
  case 11:
    emit(g, "do local co = coroutine.wrap(function() pcall(coroutine.yield, 1) ");
    block(g, depth + 1);
    emit(g, " return 2 end) co() v%u = co() end", var(g));
    break;
  case 12: emit(g, "for _ = 1, %u do v%u = ", small_count(g), var(g)); expr(g, depth + 1); emit(g, " end"); break;
  default: emit(g, "if v%u then ", var(g)); block(g, depth + 1); emit(g, " else "); block(g, depth + 1); emit(g, " end"); break;
  }
  emit(g, "\n");
}

/* One to four statements (nested), or as many as the input has (top). */
static void block(fl_gen *g, int depth) {
  unsigned n = 1 + fl_u8(g->r) % 4;
  for (unsigned i = 0; i < n; i++) stmt(g, depth);
}

/* protect: each top-level statement in a pcall of its own, so that an
** error (and a memory error) ends that statement, not the chunk. */
static void generate(fl_gen *g, bool protect) {
  emit(g, "local v0, v1, v2, v3, v4, v5, v6, v7 = 0, 'a', {}, {1, 2}, 'b', 3, {}, ''\n");
  while (g->r->p < g->r->end && !g->full) {
    if (protect) emit(g, "pcall(function() ");
    stmt(g, 0);
    if (protect) emit(g, "end)\n");
  }
  emit(g, "return v0\n");
}

/* ---- failure injection -------------------------------------------------------- */

/* hakl_alloc with every `every`-th request (a new block or a growth: a
** shrink cannot fail) refused while `on`. */
typedef struct fl_injector {
  void *ud;        /* the state's hakl_ctx */
  lua_Alloc f;     /* hakl_alloc */
  unsigned every;  /* 0: never */
  unsigned long requests;
  bool on;
} fl_injector;

static void *fl_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  fl_injector *j = ud;
  if (j->on && j->every && nsize > 0 && (ptr == NULL || nsize > osize) && ++j->requests % j->every == 0)
    return NULL;
  return j->f(j->ud, ptr, osize, nsize);
}

/* Instructions the chunk may still run, in every coroutine together
** (coroutines inherit the hook). */
static long fl_budget_left;

static void fl_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  if ((fl_budget_left -= FL_HOOK_STEP) < 0) luaL_error(L, "instruction budget spent");
}

/* ---- the run --------------------------------------------------------------------- */

static void fl_die(const char *what, const char *detail, const fl_gen *g) {
  fprintf(stderr, "fuzz_lua: %s%s%s\n--- chunk ---\n%s--- end ---\n", what, detail ? ": " : "",
          detail ? detail : "", g->code);
  abort();
}

static size_t fl_hak_in_use(void) {
  hak_stats_t s;
  hak_stats_get(&s);
  return s.in_use;
}

static const char *check_chunk =
  "local t = {} for i = 1, 100 do t[i] = tostring(i) .. '!' end collectgarbage() return #t";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static fl_gen g; /* 24 KiB: not on the stack */
  fl_reader r = {data, data + size};
  unsigned limit_b = fl_u8(&r), flags = fl_u8(&r), every = fl_u8(&r);
  hakl_config cfg = {.limit = (64 << 10) + (size_t)limit_b * (16 << 10), .private_heap = flags & 1};
  fl_injector j = {.every = every < 128 ? 0 : every - 127}; /* half the inputs inject */
  size_t hak0 = fl_hak_in_use();

  memset(&g, 0, sizeof g);
  g.r = &r;
  generate(&g, flags & 4);

  lua_State *L = hakl_newstate(&cfg);
  if (!L) fl_die("hakl_newstate failed", NULL, &g);
  luaL_openlibs(L);
  if (flags & 2) lua_gc(L, LUA_GCGEN, 0, 0);
  j.f = lua_getallocf(L, &j.ud);
  lua_setallocf(L, fl_alloc, &j);
  fl_budget_left = FL_BUDGET;
  lua_sethook(L, fl_hook, LUA_MASKCOUNT, FL_HOOK_STEP);

  j.on = true;
  int status = luaL_loadbuffer(L, g.code, g.len, "=fuzz");
  if (status == LUA_OK) status = lua_pcall(L, 0, 0, 0);
  j.on = false;
  const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  if (getenv("FUZZ_LUA_SHOW")) /* what an input does: for reading a corpus */
    fprintf(stderr, "--- chunk (limit %zu, every %u) ---\n%s--- status %d: %s\n", cfg.limit, j.every,
            g.code, status, msg ? msg : "");
  if (status == LUA_ERRSYNTAX) fl_die("the grammar made a syntax error", msg, &g);
  if (status == LUA_ERRMEM && (!msg || strcmp(msg, "not enough memory") != 0))
    fl_die("a memory error that is not 'not enough memory'", msg ? msg : "(not a string)", &g);
  if (status != LUA_OK && status != LUA_ERRRUN && status != LUA_ERRMEM && status != LUA_ERRERR)
    fl_die("an unexpected status", lua_typename(L, lua_type(L, -1)), &g);

  /* The state goes on: collect, run the check, the account agrees with Lua. */
  lua_sethook(L, NULL, 0, 0);
  lua_settop(L, 0);
  lua_gc(L, LUA_GCRESTART);
  lua_gc(L, LUA_GCCOLLECT);
  if (luaL_loadstring(L, check_chunk) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK)
    fl_die("the state is unusable after the chunk", lua_tostring(L, -1), &g);
  if (lua_tointeger(L, -1) != 100) fl_die("the check chunk computed a wrong result", NULL, &g);
  lua_settop(L, 0);
  hakl_ctx *c = j.ud;
  size_t lua_bytes = (size_t)lua_gc(L, LUA_GCCOUNT) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB);
  if (c->acct.in_use != lua_bytes) fl_die("the account differs from Lua's count", NULL, &g);
  if (cfg.limit && c->acct.peak > cfg.limit) fl_die("the state went over its limit", NULL, &g);

  lua_setallocf(L, j.f, j.ud); /* hakl_close knows hakl_alloc */
  hakl_account final;
  hakl_close(L, &final);
  if (final.in_use != 0) fl_die("bytes left in the account after hakl_close", NULL, &g);
  if (fl_hak_in_use() != hak0) fl_die("hakmem holds more live bytes after hakl_close", NULL, &g);
  return 0;
}

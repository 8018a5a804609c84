/*
** hklua.c -- a lua5.4-compatible host that runs its state on hakmem: what
** hklua adds to lua.c, whose logic is hklua_lua.c (hklua.h between them).
**
** For scripts it behaves like Debian's lua5.4 (5.4.4): the same options
** (-e -l -i -v -E -W -- -), LUA_INIT, the `arg` table, tracebacks, the
** same stdout and exit status.  Its own options come before the script:
**   --alloc=hakmem|libc   the state's allocator (libc: realloc/free, as
**                         Lua's own l_alloc, so peers can be compared
**                         with LD_PRELOAD in this same binary;
**                         floor-mixed, floor-segregated: the suite's
**                         floors, lua_glue/hakl_floor.h)
**   --mem-limit=SIZE      fail allocations past SIZE (suffix K, M or G)
**   --stats[=json]        the state's memory account at exit, on stderr
**   --gc=incremental|generational   (lua5.4 runs generational)
**   --gc-pauses[=FILE]    every collector pause timed (gcpause.h): the
**                         distribution on stderr, as JSON into FILE
**   --gc-durations        the JSON also lists every step's duration
**   --threads=T           run the script as a task of a runtime with T
**                         worker threads (hakrt.h; require "hakrt")
**   --tasks=N             with --threads: N independent copies of it
**   --task-mem-limit=SIZE, --slice=MS, --private-heaps   (with --threads)
**
** Here: those options (hklua_option, hklua_start), the state on the
** chosen allocator (hklua_newstate), the reports and the timed close
** (hklua_close), and --threads (hklua_run_threads, on hklua_threads.c).
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "gcpause.h"
#include "hakl.h"
#include "hakl_account.h"
#include "hakl_floor.h"
#include "hklua.h"
#include "hklua_threads.h"

static const char *progname = "hklua"; /* lua.c's, from hklua_start */

/* ------------------------------------------------------------------------
** Options.
** --------------------------------------------------------------------- */

enum alloc_kind { ALLOC_HAKMEM, ALLOC_LIBC, ALLOC_FLOOR_MIXED, ALLOC_FLOOR_SEGREGATED };
enum stats_kind { STATS_NONE, STATS_TEXT, STATS_JSON };

/* What the command line asked for.  flags and script as collectargs
** found them: lua.c's HKLUA_HAS_* mask, and the index in argv of the
** script name (argc when there is none). */
typedef struct options {
  int flags;
  int script;
  const char *why;        /* a message for a bad argument; NULL: lua.c's */
  enum alloc_kind alloc;
  size_t mem_limit;       /* 0: none */
  enum stats_kind stats;
  int generational;       /* 1 by default, as lua5.4 */
  bool pauses;
  const char *pauses_file;
  bool durations;         /* --gc-durations */
  long threads;           /* --threads; 0 = the single-state host */
  long tasks;             /* --tasks; 0 = not given */
  size_t task_mem_limit;
  size_t close_min;       /* --close-min */
  bool close_min_given;
  long slice_ms;          /* -1 = not given */
  bool private_heaps;
  bool mem_limit_given;
  hklua_rt_opts rt; /* --queues, --collector, --idle-gc, ... (with --threads) */
} options;

/* The command line, read once by collectargs. */
static options opts;

/* The defaults, set once: by the first option, or at the start. */
static void options_defaults(void) {
  static bool done;
  if (done) return;
  opts.generational = 1; /* as lua5.4 */
  opts.slice_ms = -1;
  hklua_rt_opts_init(&opts.rt);
  done = true;
}

void hklua_usage(void) {
  fprintf(stderr,
          "hklua options (before the script):\n"
          "  --alloc=hakmem|libc    allocator of the state (default hakmem)\n"
          "                         (floor-mixed, floor-segregated: the bench floors)\n"
          "  --mem-limit=SIZE       fail allocations past SIZE bytes (K, M, G)\n"
          "  --stats[=json]         memory account at exit, on stderr\n"
          "  --gc=incremental|generational  collector mode (default generational)\n"
          "  --gc-pauses[=FILE]     time every GC pause; JSON into FILE\n"
          "  --gc-durations         with --gc-pauses=FILE: list every step in the JSON\n"
          "  --threads=T            run the script as a task of a runtime with T workers\n"
          "  --tasks=N              with --threads: run N copies; exit 1 if any failed\n"
          "  --task-mem-limit=SIZE  with --threads: a memory limit per task\n"
          "  --close-min=SIZE       with --threads: states from SIZE up are closed, and\n"
          "                         collected when parked, on the collector; smaller\n"
          "                         ones by their worker, or by the collector once\n"
          "                         parked 50 ms (default: the L2 cache size, else 1M;\n"
          "                         0: all on the collector at once)\n"
          "  --slice=MS             with --threads: time slice of a task (default 10)\n"
          "  --private-heaps        with --threads: a hakmem heap per task\n"
          "%s",
          HKLUA_RT_USAGE);
  fflush(stderr);
}

const char *hklua_why(void) {
  return opts.why;
}

/* "64M" -> 67108864.  A number, then at most one of K, M, G (any case,
** powers of 1024), optionally followed by B or iB.  false when malformed
** or too large. */
static bool parse_size(const char *s, size_t *out) {
  unsigned long long v = 0;
  int shift = 0;
  if (*s < '0' || *s > '9') return false;
  for (; *s >= '0' && *s <= '9'; s++) {
    if (v > (~0ull - 9) / 10) return false;
    v = v * 10 + (unsigned)(*s - '0');
  }
  switch (*s) {
    case 'k': case 'K': shift = 10; s++; break;
    case 'm': case 'M': shift = 20; s++; break;
    case 'g': case 'G': shift = 30; s++; break;
    default: break;
  }
  if (shift != 0 && *s == 'i') s++;
  if (*s == 'b' || *s == 'B') s++;
  if (*s != '\0') return false;
  if (shift != 0 && v > (~0ull >> shift)) return false;
  v <<= shift;
  if (v > (unsigned long long)SIZE_MAX) return false;
  *out = (size_t)v;
  return true;
}

/* A whole decimal number in [lo, hi]. */
static bool parse_long(const char *s, long lo, long hi, long *out) {
  char *end;
  long v;
  if (s == NULL || *s < '0' || *s > '9') return false;
  errno = 0;
  v = strtol(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < lo || v > hi) return false;
  *out = v;
  return true;
}

/* "--name" or "--name=value": value is NULL for the first form. */
static bool long_option(const char *arg, const char *name, const char **value) {
  size_t n = strlen(name);
  if (strncmp(arg + 2, name, n) != 0) return false;
  if (arg[2 + n] == '\0') {
    *value = NULL;
    return true;
  }
  if (arg[2 + n] == '=') {
    *value = arg + 3 + n;
    return true;
  }
  return false;
}

static char why_buf[256];

static bool bad_value(options *o, const char *fmt, const char *what) {
  snprintf(why_buf, sizeof why_buf, fmt, what);
  o->why = why_buf;
  return false;
}

/* One of hklua's own options at argv[i] into *o. */
static bool collect_long(options *o, const char *arg) {
  const char *v;
  if (long_option(arg, "alloc", &v) && v != NULL) {
    if (strcmp(v, "hakmem") == 0) o->alloc = ALLOC_HAKMEM;
    else if (strcmp(v, "libc") == 0) o->alloc = ALLOC_LIBC;
    else if (strcmp(v, "floor-mixed") == 0) o->alloc = ALLOC_FLOOR_MIXED;
    else if (strcmp(v, "floor-segregated") == 0) o->alloc = ALLOC_FLOOR_SEGREGATED;
    else return bad_value(o, "unknown allocator '%s' (hakmem, libc, floor-mixed or "
                          "floor-segregated)", v);
  } else if (long_option(arg, "mem-limit", &v)) {
    if (v == NULL || !parse_size(v, &o->mem_limit))
      return bad_value(o, "bad size in '%s' (a number with K, M or G)", arg);
    o->mem_limit_given = true;
  } else if (long_option(arg, "task-mem-limit", &v)) {
    if (v == NULL || !parse_size(v, &o->task_mem_limit))
      return bad_value(o, "bad size in '%s' (a number with K, M or G)", arg);
  } else if (long_option(arg, "close-min", &v)) {
    if (v == NULL || !parse_size(v, &o->close_min))
      return bad_value(o, "bad size in '%s' (a number with K, M or G)", arg);
    o->close_min_given = true;
  } else if (long_option(arg, "threads", &v)) {
    if (!parse_long(v, 1, 1024, &o->threads))
      return bad_value(o, "bad value in '%s' (a number of threads, 1 to 1024)", arg);
  } else if (long_option(arg, "tasks", &v)) {
    if (!parse_long(v, 1, 1000000, &o->tasks))
      return bad_value(o, "bad value in '%s' (a number of tasks, 1 to 1000000)", arg);
  } else if (long_option(arg, "slice", &v)) {
    if (!parse_long(v, 0, 60000, &o->slice_ms))
      return bad_value(o, "bad value in '%s' (milliseconds, 0 to 60000; 0 = no preemption)", arg);
  } else if (strcmp(arg, "--private-heaps") == 0) {
    o->private_heaps = true;
  } else if (long_option(arg, "stats", &v)) {
    if (v == NULL) o->stats = STATS_TEXT;
    else if (strcmp(v, "json") == 0) o->stats = STATS_JSON;
    else return bad_value(o, "bad value in '%s' (--stats or --stats=json)", arg);
  } else if (long_option(arg, "gc", &v) && v != NULL) {
    if (strcmp(v, "incremental") == 0) o->generational = 0;
    else if (strcmp(v, "generational") == 0) o->generational = 1;
    else return bad_value(o, "unknown GC mode '%s' (incremental or generational)", v);
  } else if (long_option(arg, "gc-pauses", &v)) {
    if (v != NULL && v[0] == '\0') return bad_value(o, "empty file name in '%s'", arg);
    o->pauses = true;
    o->pauses_file = v;
  } else if (strcmp(arg, "--gc-durations") == 0) {
    o->durations = true;
  } else if (hklua_rt_option(&o->rt, arg, why_buf, sizeof why_buf) != 0) {
    if (o->rt.bad) {
      o->why = why_buf;
      return false;
    }
  } else {
    return false;
  }
  return true;
}

bool hklua_option(char **argv, int i) {
  options_defaults();
  return collect_long(&opts, argv[i]);
}

/* ------------------------------------------------------------------------
** The libc allocator is Lua's own l_alloc (luaL_newstate), the fair
** baseline.  When an account is asked for (--stats, --mem-limit), this one
** replaces it: hakl_alloc_libc (malloc/realloc/free and hakl_alloc's
** account), under a name of its own.  The state's registry entry names
** its context, so the hakmem module finds that account and keeps it (its
** limit and figures are the run's) instead of switching the state to
** hakmem as it switches l_alloc: a switch started a fresh account, which
** dropped --mem-limit and left --stats reporting the old one.
** --------------------------------------------------------------------- */

static void *libc_counted_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  return hakl_alloc_libc(ud, ptr, osize, nsize);
}

/* ------------------------------------------------------------------------
** The report at exit: the account (--stats) and the pauses (--gc-pauses).
** --------------------------------------------------------------------- */

/* What the report needs; set once the state exists. */
static struct {
  options *opts;
  hakl_ctx *ctx;           /* the hakmem state's context */
  hakl_ctx libc_ctx;       /* the counted libc allocator's context */
  bool counted;            /* an account exists */
  bool reported;           /* the report was printed */
  FILE *pauses_out;        /* --gc-pauses=FILE, opened before any Lua runs */
  hakl_floor *floor;       /* --alloc=floor-*: the floor */
} host;

static const char *alloc_name(const options *o) {
  static const char *const names[] = {"hakmem", "libc", "floor-mixed", "floor-segregated"};
  return names[o->alloc];
}

static const char *gc_name(const options *o) {
  return o->generational ? "generational" : "incremental";
}

static void print_types_json(FILE *f, const hakl_account *a) {
  static const int tags[] = {LUA_TSTRING, LUA_TTABLE, LUA_TFUNCTION, LUA_TUSERDATA,
                             LUA_TTHREAD, HAKL_TUPVAL, HAKL_TPROTO, 0};
  size_t i;
  fprintf(f, "\"allocated_by_type\":{");
  for (i = 0; i < sizeof tags / sizeof tags[0]; i++)
    fprintf(f, "%s\"%s\":{\"count\":%llu,\"bytes\":%llu}", i ? "," : "",
            hakl_typename(tags[i]), (unsigned long long)a->type_count[tags[i]],
            (unsigned long long)a->type_bytes[tags[i]]);
  fprintf(f, "}");
}

static void print_stats(FILE *f, const options *o, const hakl_account *a) {
  hak_stats_t h;
  bool hak = (o->alloc == ALLOC_HAKMEM);
  int tag;
  if (hak) hak_stats_get(&h);
  if (o->stats == STATS_JSON) {
    fprintf(f, "{\"alloc\":\"%s\",\"in_use\":%zu,\"peak\":%zu,\"limit\":%zu,"
               "\"allocs\":%llu,\"frees\":%llu,\"grows\":%llu,\"shrinks\":%llu,"
               "\"failures\":%llu,\"grow_bytes\":%llu,",
            alloc_name(o), a->in_use, a->peak, a->limit, (unsigned long long)hakl_account_nalloc(a),
            (unsigned long long)a->nfree, (unsigned long long)a->ngrow,
            (unsigned long long)a->nshrink, (unsigned long long)a->nfail,
            (unsigned long long)a->grow_bytes);
    print_types_json(f, a);
    if (hak)
      fprintf(f, ",\"heap\":{\"mapped\":%zu,\"committed\":%zu,\"committed_peak\":%zu,"
                 "\"in_use\":%zu,\"remote_pending\":%zu,\"free_in_pages\":%zu,"
                 "\"kept_for_reuse\":%zu,\"segments\":%zu,\"pages\":%zu,\"purged\":%zu,"
                 "\"mmap_calls\":%zu}",
              h.mapped, h.committed, h.committed_peak, h.in_use, h.remote_pending,
              h.free_in_pages, h.kept_for_reuse, h.segments, h.pages, h.purged, h.mmap_calls);
    fprintf(f, "}\n");
    return;
  }
  fprintf(f, "memory account (%s), at exit:\n", alloc_name(o));
  fprintf(f, "  in use %zu B, peak %zu B, limit ", a->in_use, a->peak);
  if (a->limit) fprintf(f, "%zu B\n", a->limit);
  else fprintf(f, "none\n");
  fprintf(f, "  %llu allocations, %llu frees, %llu grows (%llu B), %llu shrinks, "
             "%llu refused\n",
          (unsigned long long)hakl_account_nalloc(a), (unsigned long long)a->nfree,
          (unsigned long long)a->ngrow, (unsigned long long)a->grow_bytes,
          (unsigned long long)a->nshrink, (unsigned long long)a->nfail);
  fprintf(f, "  allocated since start, by type:\n");
  for (tag = 0; tag < HAKL_NTYPES; tag++)
    if (a->type_count[tag] != 0)
      fprintf(f, "    %-9s %12llu objects %14llu B\n", hakl_typename(tag),
              (unsigned long long)a->type_count[tag], (unsigned long long)a->type_bytes[tag]);
  if (hak)
    fprintf(f, "  hakmem: mapped %zu B, committed %zu B (peak %zu B), in blocks %zu B, "
               "remote pending %zu B, free in pages %zu B, kept for reuse %zu B\n",
            h.mapped, h.committed, h.committed_peak, h.in_use, h.remote_pending, h.free_in_pages,
            h.kept_for_reuse);
}

static const hakl_account *current_account(void) {
  if (!host.counted) return NULL;
  return host.opts->alloc == ALLOC_LIBC ? &host.libc_ctx.acct : &host.ctx->acct;
}

/*
** Every report returns false when some of it could not be written, and the
** exit status is then 1: a run whose figures are lost must not look good.
** The script's own output is left as lua.c leaves it (print ignores errors).
*/

/* Whether stderr took everything written to it since the clearerr. */
static bool stderr_written(void) {
  return fflush(stderr) == 0 && !ferror(stderr);
}

/* The account part: printed before the state closes. */
static bool report_stats(void) {
  const hakl_account *a = current_account();
  if (host.opts->stats == STATS_NONE || a == NULL) return true;
  clearerr(stderr);
  print_stats(stderr, host.opts, a);
  return stderr_written();
}

/* The pause part: after the close, whose time it includes. */
static bool report_pauses(void) {
  hakrt_pauses p;
  const options *o = host.opts;
  FILE *f = host.pauses_out;
  bool ok;
  if (!o->pauses) return true;
  clearerr(stderr);
  if (!hakrt_gcpause_summary(&p))
    fprintf(stderr, "%s: out of memory: some pauses were counted but not kept\n", progname);
  hakrt_gcpause_print(stderr, &p, alloc_name(o), gc_name(o));
  ok = stderr_written();
  if (f != NULL) {
    host.pauses_out = NULL;
    hakrt_gcpause_write_json(f, &p, alloc_name(o), gc_name(o), o->durations);
    if (ferror(f) | (fclose(f) != 0)) { /* both: fclose also flushes */
      fprintf(stderr, "%s: cannot write %s: %s\n", progname, o->pauses_file, strerror(errno));
      ok = false;
    }
  }
  return ok;
}

/*
** os.exit ends the process without returning to main: report from here
** (the close, if os.exit did one, is not timed).  A handler cannot change
** the status exit() was given except by ending the process itself: after
** a failed report it flushes every stream and leaves with _exit(1).
*/
static void report_at_exit(void) {
  bool ok;
  if (host.reported || host.opts == NULL) return;
  host.reported = true;
  ok = report_stats();
  ok = report_pauses() && ok;
  fflush(NULL);
  if (!ok) _exit(EXIT_FAILURE);
}

/* ------------------------------------------------------------------------
** main.
** --------------------------------------------------------------------- */

static lua_State *make_state(options *o) {
  lua_State *L;
  if (o->alloc == ALLOC_HAKMEM) {
    hakl_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.limit = o->mem_limit;
    cfg.private_heap = true; /* one thread, one state: hakl_close drops it whole */
    L = hakl_newstate(&cfg);
    if (L != NULL) {
      host.ctx = hakl_getctx(L);
      host.counted = true;
    }
    return L;
  }
  if (o->alloc != ALLOC_LIBC) { /* a floor (lua_glue/hakl_floor.h): no account */
    bool seg = (o->alloc == ALLOC_FLOOR_SEGREGATED);
    if ((host.floor = hakl_floor_new(seg)) == NULL) return NULL;
    L = hakl_openstate(seg ? hakl_floor_segregated : hakl_floor_mixed, host.floor);
  } else {
    L = luaL_newstate(); /* l_alloc and lauxlib's handlers */
  }
  /*
  ** The same registry entry as a hakmem state's context (false here, so no
  ** context), so that both run on the same Lua heap: the 1 KB it adds to
  ** the registry changed the generational collector's decisions (5623
  ** steps against 5123 on strings_build), which is no allocator's doing.
  */
  if (L != NULL) {
    lua_pushboolean(L, 0);
    lua_setfield(L, LUA_REGISTRYINDEX, HAKL_CTX_KEY);
  }
  if (L != NULL && o->alloc == ALLOC_LIBC && (o->stats != STATS_NONE || o->mem_limit != 0)) {
    /*
    ** The counted allocator also calls realloc/free, so it can take over
    ** the blocks already made; its account starts from Lua's exact count.
    ** Per-type figures miss the few objects made before the switch.
    */
    size_t total = (size_t)lua_gc(L, LUA_GCCOUNT) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB);
    hakl_ctx_init(&host.libc_ctx, NULL, o->mem_limit);
    hakl_account_start(&host.libc_ctx.acct, total, o->mem_limit);
    lua_setallocf(L, libc_counted_alloc, &host.libc_ctx);
    lua_pushlightuserdata(L, &host.libc_ctx); /* replaces the false: no growth */
    lua_setfield(L, LUA_REGISTRYINDEX, HAKL_CTX_KEY);
    host.counted = true;
  }
  return L;
}

static void close_state(lua_State *L, const options *o) {
  hakrt_gcpause_close_begin();
  if (o->alloc == ALLOC_HAKMEM) hakl_close(L, NULL);
  else lua_close(L);
  if (host.floor != NULL) hakl_floor_destroy(host.floor);
  hakrt_gcpause_close_end();
}

/* The options that --threads does not take, and those only it takes. */
static bool threads_conflict(options *o, int argc, char **argv) {
  if (o->alloc >= ALLOC_FLOOR_MIXED && (o->threads != 0 || o->stats != STATS_NONE ||
                                        o->mem_limit_given)) {
    o->why = "a floor allocator keeps no account and no threads: no --stats, --mem-limit "
             "or --threads";
  } else if (o->threads == 0) {
    if (o->tasks != 0 || o->task_mem_limit != 0 || o->slice_ms >= 0 || o->private_heaps ||
        o->close_min_given)
      o->why = "--tasks, --task-mem-limit, --close-min, --slice and --private-heaps need "
               "--threads";
    else if (o->rt.given)
      o->why = "--queues, --collector, --idle-gc, --batch-frees, --spare-states, --soft-limit, "
               "--watchdog and --time-limit need --threads";
  } else if (o->flags & (HKLUA_HAS_E | HKLUA_HAS_I)) {
    o->why = "--threads runs a script file: -e and -i are not supported with it";
  } else if (o->script >= argc || strcmp(argv[o->script], "-") == 0) {
    o->why = "--threads needs a script file (not stdin)";
  } else if (o->pauses) {
    o->why = "--gc-pauses is not supported with --threads";
  } else if (o->mem_limit_given) {
    o->why = "with --threads, the limit is per task: use --task-mem-limit";
  } else {
    int i;
    for (i = 1; i < o->script; i++)
      if (argv[i][0] == '-' && argv[i][1] == 'l') o->why = "-l is not supported with --threads";
  }
  return o->why != NULL;
}

static int run_threads(const options *o, int argc, char **argv) {
  hklua_threads_opts t;
  int status;
  memset(&t, 0, sizeof t);
  t.threads = (int)o->threads;
  t.tasks = o->tasks > 0 ? (int)o->tasks : 1;
  t.task_mem_limit = o->task_mem_limit;
  t.close_min = o->close_min_given ? (long long)o->close_min : -1;
  t.slice_ms = o->slice_ms;
  t.libc = (o->alloc == ALLOC_LIBC);
  t.private_heaps = o->private_heaps;
  t.rt = o->rt;
  t.generational = o->generational != 0;
  t.stats = o->stats == STATS_NONE ? 0 : (o->stats == STATS_TEXT ? 1 : 2);
  clearerr(stderr);
  status = hklua_threads_main(&t, progname, argv[o->script], argc - o->script - 1,
                              (const char *const *)argv + o->script + 1);
  /* --stats went to stderr: lost, it fails the run (see report_stats) */
  if (t.stats != 0 && !stderr_written()) status = EXIT_FAILURE;
  return status;
}

/* ------------------------------------------------------------------------
** What hklua_lua.c calls (hklua.h).
** --------------------------------------------------------------------- */

bool hklua_start(const char *name, int args, int argc, char **argv, int script) {
  options_defaults();
  progname = name;
  opts.flags = args;
  opts.script = script;
  if (opts.durations && opts.pauses_file == NULL)
    opts.why = "--gc-durations needs --gc-pauses=FILE";
  return opts.why == NULL && !threads_conflict(&opts, argc, argv);
}

bool hklua_threaded(void) {
  return opts.threads > 0;
}

int hklua_run_threads(int argc, char **argv) {
  return run_threads(&opts, argc, argv);
}

lua_State *hklua_newstate(void) {
  lua_State *L;
  host.opts = &opts;
  /* Opened now: a file that cannot be written fails before the script runs. */
  if (opts.pauses_file != NULL && (host.pauses_out = fopen(opts.pauses_file, "w")) == NULL) {
    fprintf(stderr, "%s: cannot write %s: %s\n", progname, opts.pauses_file, strerror(errno));
    return NULL;
  }
  if (opts.pauses) hakrt_gcpause_start();
  L = make_state(&opts);
  if (L == NULL) {
    fprintf(stderr, "%s: cannot create state: not enough memory\n", progname);
    return NULL;
  }
  atexit(report_at_exit);
  return L;
}

void hklua_openlibs(lua_State *L) {
  /* require "hakmem" finds this binary's own copy of the module. */
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_hakmem);
  lua_setfield(L, -2, "hakmem");
  lua_pop(L, 1);
}

void hklua_gcmode(lua_State *L) {
  if (opts.generational) lua_gc(L, LUA_GCGEN, 0, 0);
  else lua_gc(L, LUA_GCINC, 0, 0, 0);
}

bool hklua_close(lua_State *L) {
  bool reported;
  host.reported = true;
  reported = report_stats();
  close_state(L, &opts);
  return report_pauses() && reported;
}

/*
** hklua.c -- a lua5.4-compatible host that runs its state on hakmem.
**
** For scripts it behaves like Debian's lua5.4 (5.4.4): the same options
** (-e -l -i -v -E -W -- -), LUA_INIT, the `arg` table, tracebacks, the
** same stdout and exit status.  Its own options come before the script:
**   --alloc=hakmem|libc   the state's allocator (libc: realloc/free, as
**                         Lua's own l_alloc, so peers can be compared
**                         with LD_PRELOAD in this same binary)
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
** main only parses the options, makes the state, runs pmain under
** lua_pcall, reports, and closes the state (timed).
*/
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "gcpause.h"
#include "hakl.h"
#include "hklua_threads.h"

#define HK_PROMPT "> "
#define HK_PROMPT2 ">> "
#define HK_EOFMARK "<eof>"

static const char *progname = "hklua";

/* ------------------------------------------------------------------------
** Options.
** --------------------------------------------------------------------- */

enum { HAS_ERROR = 1, HAS_I = 2, HAS_V = 4, HAS_E = 8, HAS_BIG_E = 16 };
enum alloc_kind { ALLOC_HAKMEM, ALLOC_LIBC };
enum stats_kind { STATS_NONE, STATS_TEXT, STATS_JSON };

/* What the command line asked for.  script: index in argv of the script
** name, argc when there is none; bad: the index of a bad argument. */
typedef struct options {
  int flags;              /* HAS_* */
  int script;
  int bad;
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
  long slice_ms;          /* -1 = not given */
  bool private_heaps;
  bool mem_limit_given;
  hklua_collector_opts col; /* --collector, --idle-gc, ... (with --threads) */
} options;

static void print_usage(const options *o, char **argv) {
  const char *bad = (o->bad > 0) ? argv[o->bad] : NULL;
  if (o->why != NULL)
    fprintf(stderr, "%s: %s\n", progname, o->why);
  else if (bad != NULL && (bad[1] == 'e' || bad[1] == 'l'))
    fprintf(stderr, "%s: '%s' needs argument\n", progname, bad);
  else if (bad != NULL)
    fprintf(stderr, "%s: unrecognized option '%s'\n", progname, bad);
  fprintf(stderr,
          "usage: %s [options] [script [args]]\n"
          "Available options are:\n"
          "  -e stat   execute string 'stat'\n"
          "  -i        enter interactive mode after executing 'script'\n"
          "  -l mod    require library 'mod' into global 'mod'\n"
          "  -l g=mod  require library 'mod' into global 'g'\n"
          "  -v        show version information\n"
          "  -E        ignore environment variables\n"
          "  -W        turn warnings on\n"
          "  --        stop handling options\n"
          "  -         stop handling options and execute stdin\n"
          "hklua options (before the script):\n"
          "  --alloc=hakmem|libc    allocator of the state (default hakmem)\n"
          "  --mem-limit=SIZE       fail allocations past SIZE bytes (K, M, G)\n"
          "  --stats[=json]         memory account at exit, on stderr\n"
          "  --gc=incremental|generational  collector mode (default generational)\n"
          "  --gc-pauses[=FILE]     time every GC pause; JSON into FILE\n"
          "  --gc-durations         with --gc-pauses=FILE: list every step in the JSON\n"
          "  --threads=T            run the script as a task of a runtime with T workers\n"
          "  --tasks=N              with --threads: run N copies; exit 1 if any failed\n"
          "  --task-mem-limit=SIZE  with --threads: a memory limit per task\n"
          "  --slice=MS             with --threads: time slice of a task (default 10)\n"
          "  --private-heaps        with --threads: a hakmem heap per task\n"
          "%s",
          progname, HKLUA_COLLECTOR_USAGE);
  fflush(stderr);
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

static int bad_value(options *o, int i, const char *fmt, const char *what) {
  snprintf(why_buf, sizeof why_buf, fmt, what);
  o->why = why_buf;
  o->bad = i;
  return HAS_ERROR;
}

/* One of hklua's own options at argv[i]; returns 0 or HAS_ERROR. */
static int collect_long(options *o, char **argv, int i) {
  const char *arg = argv[i], *v;
  if (long_option(arg, "alloc", &v) && v != NULL) {
    if (strcmp(v, "hakmem") == 0) o->alloc = ALLOC_HAKMEM;
    else if (strcmp(v, "libc") == 0) o->alloc = ALLOC_LIBC;
    else return bad_value(o, i, "unknown allocator '%s' (hakmem or libc)", v);
  } else if (long_option(arg, "mem-limit", &v)) {
    if (v == NULL || !parse_size(v, &o->mem_limit))
      return bad_value(o, i, "bad size in '%s' (a number with K, M or G)", arg);
    o->mem_limit_given = true;
  } else if (long_option(arg, "task-mem-limit", &v)) {
    if (v == NULL || !parse_size(v, &o->task_mem_limit))
      return bad_value(o, i, "bad size in '%s' (a number with K, M or G)", arg);
  } else if (long_option(arg, "threads", &v)) {
    if (!parse_long(v, 1, 1024, &o->threads))
      return bad_value(o, i, "bad value in '%s' (a number of threads, 1 to 1024)", arg);
  } else if (long_option(arg, "tasks", &v)) {
    if (!parse_long(v, 1, 1000000, &o->tasks))
      return bad_value(o, i, "bad value in '%s' (a number of tasks, 1 to 1000000)", arg);
  } else if (long_option(arg, "slice", &v)) {
    if (!parse_long(v, 0, 60000, &o->slice_ms))
      return bad_value(o, i, "bad value in '%s' (milliseconds, 0 to 60000; 0 = no preemption)", arg);
  } else if (strcmp(arg, "--private-heaps") == 0) {
    o->private_heaps = true;
  } else if (long_option(arg, "stats", &v)) {
    if (v == NULL) o->stats = STATS_TEXT;
    else if (strcmp(v, "json") == 0) o->stats = STATS_JSON;
    else return bad_value(o, i, "bad value in '%s' (--stats or --stats=json)", arg);
  } else if (long_option(arg, "gc", &v) && v != NULL) {
    if (strcmp(v, "incremental") == 0) o->generational = 0;
    else if (strcmp(v, "generational") == 0) o->generational = 1;
    else return bad_value(o, i, "unknown GC mode '%s' (incremental or generational)", v);
  } else if (long_option(arg, "gc-pauses", &v)) {
    if (v != NULL && v[0] == '\0') return bad_value(o, i, "empty file name in '%s'", arg);
    o->pauses = true;
    o->pauses_file = v;
  } else if (strcmp(arg, "--gc-durations") == 0) {
    o->durations = true;
  } else if (hklua_collector_option(&o->col, arg, why_buf, sizeof why_buf) != 0) {
    if (o->col.bad) {
      o->why = why_buf;
      o->bad = i;
      return HAS_ERROR;
    }
  } else {
    o->bad = i;
    return HAS_ERROR;
  }
  return 0;
}

/*
** Walks the options as lua.c does: they end at the first argument that is
** not one, at "--" or at "-".  -e and -l take the next argument unless
** it is glued on; it may not start with '-'.
*/
static int collect_args(int argc, char **argv, options *o) {
  int i;
  o->script = argc;
  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    o->script = i;
    if (a[0] != '-') return o->flags;
    switch (a[1]) {
      case '-':
        if (a[2] == '\0') {
          o->script = i + 1;
          return o->flags;
        }
        if (collect_long(o, argv, i) != 0) return HAS_ERROR;
        break;
      case '\0':
        return o->flags; /* '-': the script is stdin */
      case 'E':
        if (a[2] != '\0') goto bad;
        o->flags |= HAS_BIG_E;
        break;
      case 'W':
        if (a[2] != '\0') goto bad;
        break;
      case 'i':
        o->flags |= HAS_I; /* -i implies -v */
        /* FALLTHROUGH */
      case 'v':
        if (a[2] != '\0') goto bad;
        o->flags |= HAS_V;
        break;
      case 'e':
        o->flags |= HAS_E;
        /* FALLTHROUGH */
      case 'l':
        if (a[2] == '\0') {
          i++;
          if (i >= argc || argv[i][0] == '-') {
            o->bad = i - 1;
            return HAS_ERROR;
          }
        }
        break;
      default:
        goto bad;
    }
  }
  o->script = argc;
  return o->flags;
bad:
  o->bad = i;
  return HAS_ERROR;
}

/* ------------------------------------------------------------------------
** Running chunks, as lua.c does.
** --------------------------------------------------------------------- */

static lua_State *running; /* for the SIGINT handler */

static void set_signal(int sig, void (*handler)(int)) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, NULL);
}

static void stop_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  luaL_error(L, "interrupted!");
}

/* A signal handler may not touch the state: it sets a hook that raises the
** error at the next instruction; a second ^C kills the process. */
static void on_sigint(int sig) {
  set_signal(sig, SIG_DFL);
  lua_sethook(running, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT, 1);
}

static void message(const char *pname, const char *msg) {
  if (pname != NULL) fprintf(stderr, "%s: ", pname);
  fprintf(stderr, "%s\n", msg);
  fflush(stderr);
}

static int report(lua_State *L, int status) {
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    message(progname, msg != NULL ? msg : "(error message not a string)");
    lua_pop(L, 1);
  }
  return status;
}

/* The message handler: a string error gets a traceback; another value its
** __tostring, or a note of its type with a traceback. */
static int msghandler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

static int docall(lua_State *L, int narg, int nres) {
  int status, base = lua_gettop(L) - narg;
  lua_pushcfunction(L, msghandler);
  lua_insert(L, base);
  running = L;
  set_signal(SIGINT, on_sigint);
  status = lua_pcall(L, narg, nres, base);
  set_signal(SIGINT, SIG_DFL);
  lua_remove(L, base);
  return status;
}

static void print_version(void) {
  lua_writestring(LUA_COPYRIGHT, strlen(LUA_COPYRIGHT));
  lua_writeline();
}

/* arg[0] is the script (or the program without one), the script's
** arguments are positive, everything before it negative. */
static void create_arg_table(lua_State *L, char **argv, int argc, int script) {
  int i, base = (script == argc) ? 0 : script;
  lua_createtable(L, argc - base - 1 > 0 ? argc - base - 1 : 0, base + 1);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - base);
  }
  lua_setglobal(L, "arg");
}

static int dochunk(lua_State *L, int status) {
  if (status == LUA_OK) status = docall(L, 0, 0);
  return report(L, status);
}

static int dofile(lua_State *L, const char *name) {
  return dochunk(L, luaL_loadfile(L, name));
}

static int dostring(lua_State *L, const char *s, const char *name) {
  return dochunk(L, luaL_loadbuffer(L, s, strlen(s), name));
}

/* "-l mod" or "-l g=mod": g = require(mod). */
static int dolibrary(lua_State *L, const char *spec) {
  const char *eq = strchr(spec, '=');
  int status;
  lua_getglobal(L, "require");
  lua_pushstring(L, eq != NULL ? eq + 1 : spec);
  status = docall(L, 1, 1);
  if (status == LUA_OK) {
    if (eq != NULL) lua_pushlstring(L, spec, (size_t)(eq - spec));
    else lua_pushstring(L, spec);
    lua_insert(L, -2);
    lua_setglobal(L, lua_tostring(L, -2));
    lua_pop(L, 1);
  }
  return report(L, status);
}

static int push_script_args(lua_State *L) {
  int i, n;
  if (lua_getglobal(L, "arg") != LUA_TTABLE) luaL_error(L, "'arg' is not a table");
  n = (int)luaL_len(L, -1);
  luaL_checkstack(L, n + 3, "too many arguments to script");
  for (i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
  lua_remove(L, -i);
  return n;
}

static int handle_script(lua_State *L, char **argv, int script) {
  const char *fname = argv[script];
  int status;
  if (strcmp(fname, "-") == 0 && strcmp(argv[script - 1], "--") != 0) fname = NULL;
  status = luaL_loadfile(L, fname);
  if (status == LUA_ERRFILE && fname != NULL) {
    /* The script itself is missing: the message, then the usage. */
    options none;
    report(L, status);
    memset(&none, 0, sizeof none);
    print_usage(&none, argv);
    return status;
  }
  if (status == LUA_OK) {
    int n = push_script_args(L);
    status = docall(L, n, LUA_MULTRET);
  }
  return report(L, status);
}

/* -e, -l and -W, in their order on the command line. */
static int run_args(lua_State *L, char **argv, int script) {
  int i;
  for (i = 1; i < script; i++) {
    char opt = argv[i][1];
    if (argv[i][0] != '-') continue;
    if (opt == 'e' || opt == 'l') {
      const char *extra = argv[i] + 2;
      int status;
      if (*extra == '\0') extra = argv[++i];
      status = (opt == 'e') ? dostring(L, extra, "=(command line)") : dolibrary(L, extra);
      if (status != LUA_OK) return 0;
    } else if (opt == 'W') {
      lua_warning(L, "@on", 0);
    }
  }
  return 1;
}

static int handle_luainit(lua_State *L) {
  const char *name = "=LUA_INIT_5_4";
  const char *init = getenv(name + 1);
  if (init == NULL) {
    name = "=LUA_INIT";
    init = getenv(name + 1);
  }
  if (init == NULL) return LUA_OK;
  if (init[0] == '@') return dofile(L, init + 1);
  return dostring(L, init, name);
}

/* ------------------------------------------------------------------------
** The read-eval-print loop, without readline.
** --------------------------------------------------------------------- */

static const char *get_prompt(lua_State *L, int firstline) {
  if (lua_getglobal(L, firstline ? "_PROMPT" : "_PROMPT2") == LUA_TNIL)
    return firstline ? HK_PROMPT : HK_PROMPT2;
  {
    const char *p = luaL_tolstring(L, -1, NULL);
    lua_remove(L, -2);
    return p;
  }
}

/* A syntax error at <eof>: the statement goes on on the next line. */
static int incomplete(lua_State *L, int status) {
  if (status == LUA_ERRSYNTAX) {
    size_t len, mark = sizeof(HK_EOFMARK) - 1;
    const char *msg = lua_tolstring(L, -1, &len);
    if (len >= mark && strcmp(msg + len - mark, HK_EOFMARK) == 0) {
      lua_pop(L, 1);
      return 1;
    }
  }
  return 0;
}

/*
** One line of input, of any length, without its newline; 0 at the end of
** input.  lua.c reads at most LUA_MAXINPUT - 1 (511) characters at once and
** takes the rest for the next line; here the pieces are joined in a Lua
** buffer (on the stack, so an error frees it).  A NUL byte drops the rest
** of its piece, as it drops the rest of lua.c's buffer.
*/
static int push_line(lua_State *L, int firstline) {
  luaL_Buffer b;
  size_t len;
  bool got = false;
  const char *line, *prompt = get_prompt(L, firstline);
  fputs(prompt, stdout);
  fflush(stdout);
  lua_pop(L, 1); /* the prompt */
  luaL_buffinit(L, &b);
  for (;;) {
    char *piece = luaL_prepbuffer(&b);
    if (fgets(piece, LUAL_BUFFERSIZE, stdin) == NULL) break;
    got = true;
    len = strlen(piece);
    luaL_addsize(&b, len);
    if (len > 0 && piece[len - 1] == '\n') {
      luaL_buffsub(&b, 1);
      break;
    }
  }
  luaL_pushresult(&b);
  if (!got) {
    lua_pop(L, 1);
    return 0;
  }
  line = lua_tolstring(L, -1, &len);
  if (firstline && line[0] == '=') { /* 5.2 compatibility kept by 5.4.4 */
    lua_pushfstring(L, "return %s", line + 1);
    lua_remove(L, -2);
  }
  return 1;
}

/* The line at the top as an expression to print, "return <line>". */
static int add_return(lua_State *L) {
  const char *line = lua_tostring(L, -1);
  const char *retline = lua_pushfstring(L, "return %s;", line);
  int status = luaL_loadbuffer(L, retline, strlen(retline), "=stdin");
  if (status == LUA_OK)
    lua_remove(L, -2); /* keep the function, drop "return ..." */
  else
    lua_pop(L, 2);
  return status;
}

static int multiline(lua_State *L) {
  for (;;) {
    size_t len;
    const char *line = lua_tolstring(L, 1, &len);
    int status = luaL_loadbuffer(L, line, len, "=stdin");
    if (!incomplete(L, status) || !push_line(L, 0)) return status;
    lua_pushliteral(L, "\n");
    lua_insert(L, -2);
    lua_concat(L, 3);
  }
}

/* -1 at the end of input; else a status with a function or an error. */
static int load_line(lua_State *L) {
  int status;
  lua_settop(L, 0);
  if (!push_line(L, 1)) return -1;
  if ((status = add_return(L)) != LUA_OK) status = multiline(L);
  lua_remove(L, 1);
  return status;
}

static void print_results(lua_State *L) {
  int n = lua_gettop(L);
  if (n > 0) {
    luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
    lua_getglobal(L, "print");
    lua_insert(L, 1);
    if (lua_pcall(L, n, 0, 0) != LUA_OK)
      message(progname, lua_pushfstring(L, "error calling 'print' (%s)", lua_tostring(L, -1)));
  }
}

static void do_repl(lua_State *L) {
  int status;
  const char *saved = progname;
  progname = NULL; /* no program name on errors typed interactively */
  while ((status = load_line(L)) != -1) {
    if (status == LUA_OK) status = docall(L, 0, LUA_MULTRET);
    if (status == LUA_OK) print_results(L);
    else report(L, status);
  }
  lua_settop(L, 0);
  lua_writeline();
  progname = saved;
}

/* ------------------------------------------------------------------------
** pmain: everything that runs Lua code, in protected mode.
** --------------------------------------------------------------------- */

typedef struct run {
  int argc;
  char **argv;
  options *opts;
} run;

static int pmain(lua_State *L) {
  run *r = (run *)lua_touserdata(L, 1);
  options *o = r->opts;
  luaL_checkversion(L);
  if (o->flags & HAS_V) print_version();
  if (o->flags & HAS_BIG_E) {
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
  }
  luaL_openlibs(L);
  /* require "hakmem" finds this binary's own copy of the module. */
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_hakmem);
  lua_setfield(L, -2, "hakmem");
  lua_pop(L, 1);
  create_arg_table(L, r->argv, r->argc, o->script);
  lua_gc(L, LUA_GCRESTART);
  if (o->generational) lua_gc(L, LUA_GCGEN, 0, 0);
  else lua_gc(L, LUA_GCINC, 0, 0, 0);
  if (!(o->flags & HAS_BIG_E) && handle_luainit(L) != LUA_OK) return 0;
  if (!run_args(L, r->argv, o->script)) return 0;
  if (o->script < r->argc && handle_script(L, r->argv, o->script) != LUA_OK) return 0;
  if (o->flags & HAS_I) {
    do_repl(L);
  } else if (o->script == r->argc && !(o->flags & (HAS_E | HAS_V))) {
    if (isatty(0)) {
      print_version();
      do_repl(L);
    } else {
      dofile(L, NULL); /* lua5.4 ignores the status of stdin here too */
    }
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* ------------------------------------------------------------------------
** The libc allocator is Lua's own l_alloc (luaL_newstate), the fair
** baseline.  When an account is asked for (--stats, --mem-limit), this one
** replaces it: realloc/free too, with the same account as hakl_alloc.
** --------------------------------------------------------------------- */

static void *libc_counted_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  hakl_account *a = (hakl_account *)ud;
  size_t old = (ptr != NULL) ? osize : 0;
  void *p;
  if (nsize == 0) {
    if (ptr != NULL) {
      free(ptr);
      a->in_use -= osize;
      a->nfree++;
    }
    return NULL;
  }
  if (nsize > old && a->limit != 0 &&
      (a->in_use > a->limit || nsize - old > a->limit - a->in_use)) {
    a->nfail++;
    return NULL;
  }
  p = realloc(ptr, nsize);
  if (p == NULL) {
    if (nsize <= old) return ptr; /* a shrink never fails */
    a->nfail++;
    return NULL;
  }
  if (ptr == NULL) {
    size_t tag = osize < HAKL_NTYPES ? osize : 0;
    a->nalloc++;
    a->type_count[tag]++;
    a->type_bytes[tag] += nsize;
  } else if (nsize > old) {
    a->ngrow++;
    a->grow_bytes += nsize - old;
  } else {
    a->nshrink++;
  }
  a->in_use = a->in_use - old + nsize;
  if (a->in_use > a->peak) a->peak = a->in_use;
  return p;
}

/* ------------------------------------------------------------------------
** The report at exit: the account (--stats) and the pauses (--gc-pauses).
** --------------------------------------------------------------------- */

/* What the report needs; set once the state exists. */
static struct {
  options *opts;
  hakl_ctx *ctx;           /* the hakmem state's context */
  hakl_account libc_acct;  /* the counted libc allocator's account */
  bool counted;            /* an account exists */
  bool reported;           /* the report was printed */
  FILE *pauses_out;        /* --gc-pauses=FILE, opened before any Lua runs */
} host;

static const char *alloc_name(const options *o) {
  return o->alloc == ALLOC_HAKMEM ? "hakmem" : "libc";
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
            alloc_name(o), a->in_use, a->peak, a->limit, (unsigned long long)a->nalloc,
            (unsigned long long)a->nfree, (unsigned long long)a->ngrow,
            (unsigned long long)a->nshrink, (unsigned long long)a->nfail,
            (unsigned long long)a->grow_bytes);
    print_types_json(f, a);
    if (hak)
      fprintf(f, ",\"heap\":{\"mapped\":%zu,\"committed\":%zu,\"committed_peak\":%zu,"
                 "\"in_use\":%zu,\"segments\":%zu,\"pages\":%zu,\"purged\":%zu,"
                 "\"mmap_calls\":%zu}",
              h.mapped, h.committed, h.committed_peak, h.in_use, h.segments, h.pages,
              h.purged, h.mmap_calls);
    fprintf(f, "}\n");
    return;
  }
  fprintf(f, "memory account (%s), at exit:\n", alloc_name(o));
  fprintf(f, "  in use %zu B, peak %zu B, limit ", a->in_use, a->peak);
  if (a->limit) fprintf(f, "%zu B\n", a->limit);
  else fprintf(f, "none\n");
  fprintf(f, "  %llu allocations, %llu frees, %llu grows (%llu B), %llu shrinks, "
             "%llu refused\n",
          (unsigned long long)a->nalloc, (unsigned long long)a->nfree,
          (unsigned long long)a->ngrow, (unsigned long long)a->grow_bytes,
          (unsigned long long)a->nshrink, (unsigned long long)a->nfail);
  fprintf(f, "  allocated since start, by type:\n");
  for (tag = 0; tag < HAKL_NTYPES; tag++)
    if (a->type_count[tag] != 0)
      fprintf(f, "    %-9s %12llu objects %14llu B\n", hakl_typename(tag),
              (unsigned long long)a->type_count[tag], (unsigned long long)a->type_bytes[tag]);
  if (hak)
    fprintf(f, "  hakmem: mapped %zu B, committed %zu B (peak %zu B), in blocks %zu B\n",
            h.mapped, h.committed, h.committed_peak, h.in_use);
}

static const hakl_account *current_account(void) {
  if (!host.counted) return NULL;
  return host.opts->alloc == ALLOC_LIBC ? &host.libc_acct : &host.ctx->acct;
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
  L = luaL_newstate(); /* l_alloc and lauxlib's handlers */
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
  if (L != NULL && (o->stats != STATS_NONE || o->mem_limit != 0)) {
    /*
    ** The counted allocator also calls realloc/free, so it can take over
    ** the blocks already made; its account starts from Lua's exact count.
    ** Per-type figures miss the few objects made before the switch.
    */
    size_t total = (size_t)lua_gc(L, LUA_GCCOUNT) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB);
    host.libc_acct.in_use = host.libc_acct.peak = total;
    host.libc_acct.limit = o->mem_limit;
    lua_setallocf(L, libc_counted_alloc, &host.libc_acct);
    host.counted = true;
  }
  return L;
}

static void close_state(lua_State *L, const options *o) {
  hakrt_gcpause_close_begin();
  if (o->alloc == ALLOC_HAKMEM) hakl_close(L, NULL);
  else lua_close(L);
  hakrt_gcpause_close_end();
}

/* The options that --threads does not take, and those only it takes. */
static bool threads_conflict(options *o, int argc, char **argv) {
  if (o->threads == 0) {
    if (o->tasks != 0 || o->task_mem_limit != 0 || o->slice_ms >= 0 || o->private_heaps)
      o->why = "--tasks, --task-mem-limit, --slice and --private-heaps need --threads";
    else if (o->col.given)
      o->why = "--collector, --idle-gc, --batch-frees, --soft-limit, --watchdog and "
               "--time-limit need --threads";
  } else if (o->flags & (HAS_E | HAS_I)) {
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
  t.slice_ms = o->slice_ms;
  t.libc = (o->alloc == ALLOC_LIBC);
  t.private_heaps = o->private_heaps;
  t.col = o->col;
  t.generational = o->generational != 0;
  t.stats = o->stats == STATS_NONE ? 0 : (o->stats == STATS_TEXT ? 1 : 2);
  if (o->flags & HAS_V) print_version();
  clearerr(stderr);
  status = hklua_threads_main(&t, progname, argv[o->script], argc - o->script - 1,
                              (const char *const *)argv + o->script + 1);
  /* --stats went to stderr: lost, it fails the run (see report_stats) */
  if (t.stats != 0 && !stderr_written()) status = EXIT_FAILURE;
  return status;
}

int main(int argc, char **argv) {
  static options opts;
  run r;
  lua_State *L;
  int status, result;
  bool reported;
  if (argv[0] != NULL && argv[0][0] != '\0') progname = argv[0];
  opts.generational = 1;
  opts.slice_ms = -1;
  hklua_collector_opts_init(&opts.col);
  if (argc < 1 || collect_args(argc, argv, &opts) == HAS_ERROR) {
    print_usage(&opts, argv);
    return EXIT_FAILURE;
  }
  if (opts.durations && opts.pauses_file == NULL) {
    opts.why = "--gc-durations needs --gc-pauses=FILE";
    print_usage(&opts, argv);
    return EXIT_FAILURE;
  }
  if (threads_conflict(&opts, argc, argv)) {
    print_usage(&opts, argv);
    return EXIT_FAILURE;
  }
  if (opts.threads > 0) return run_threads(&opts, argc, argv);
  host.opts = &opts;
  /* Opened now: a file that cannot be written fails before the script runs. */
  if (opts.pauses_file != NULL && (host.pauses_out = fopen(opts.pauses_file, "w")) == NULL) {
    fprintf(stderr, "%s: cannot write %s: %s\n", progname, opts.pauses_file, strerror(errno));
    return EXIT_FAILURE;
  }
  if (opts.pauses) hakrt_gcpause_start();
  L = make_state(&opts);
  if (L == NULL) {
    message(argv[0], "cannot create state: not enough memory");
    return EXIT_FAILURE;
  }
  atexit(report_at_exit);
  lua_gc(L, LUA_GCSTOP); /* no collection while the libraries load */
  r.argc = argc;
  r.argv = argv;
  r.opts = &opts;
  lua_pushcfunction(L, pmain);
  lua_pushlightuserdata(L, &r);
  status = lua_pcall(L, 1, 1, 0);
  result = lua_toboolean(L, -1);
  report(L, status);
  host.reported = true;
  reported = report_stats();
  close_state(L, &opts);
  reported = report_pauses() && reported;
  return (reported && result && status == LUA_OK) ? EXIT_SUCCESS : EXIT_FAILURE;
}

/*
** hklua_lua.c -- lua.c, the stand-alone interpreter of Lua 5.4.4, as hklua
** runs it: the same functions under the same names and in the same order,
** so that a fix upstream can be compared with this file line by line.
**
** Every deviation carries a comment starting "hklua:".  The ones that run
** through every function: the configuration macros of luaconf.h that
** Debian's build fixes are written out (POSIX signals and isatty, no
** readline), and the places where hklua adds to lua.c call hklua.c
** through hklua.h (its options, the state's allocator, the reports,
** --threads).  lua.c's lua_assert calls (no-ops outside Lua's own debug
** build) are left out.  Everything here is static but main.
*/
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "hklua.h"

#define LUA_PROGNAME "hklua" /* hklua: lua.c's is "lua" */
#define LUA_INIT_VAR "LUA_INIT"
#define LUA_INITVARVERSION LUA_INIT_VAR LUA_VERSUFFIX

static lua_State *globalL = NULL;

static const char *progname = LUA_PROGNAME;

/* hklua: LUA_USE_POSIX, as Debian builds lua.c: sigaction, not signal. */
static void setsignal(int sig, void (*handler)(int)) {
  struct sigaction sa;
  sa.sa_handler = handler;
  sa.sa_flags = 0;
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, NULL);
}

/* The hook that laction sets: the error at the next instruction. */
static void lstop(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  luaL_error(L, "interrupted!");
}

/* SIGINT: a signal handler may not touch the state, only set a hook; a
** second ^C kills the process. */
static void laction(int i) {
  int flag = LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT;
  setsignal(i, SIG_DFL);
  lua_sethook(globalL, lstop, flag, 1);
}

/* hklua: badoption may be NULL (options that do not go together, a
** script that cannot be opened), and a bad value of an hklua option has
** its own message; hklua's options follow lua.c's. */
static void print_usage(const char *badoption) {
  const char *why = hklua_why();
  if (why != NULL) {
    lua_writestringerror("%s: ", progname);
    lua_writestringerror("%s\n", why);
  } else if (badoption != NULL) {
    lua_writestringerror("%s: ", progname);
    if (badoption[1] == 'e' || badoption[1] == 'l')
      lua_writestringerror("'%s' needs argument\n", badoption);
    else
      lua_writestringerror("unrecognized option '%s'\n", badoption);
  }
  lua_writestringerror(
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
    "  -         stop handling options and execute stdin\n",
    progname);
  hklua_usage();
}

/* A message on stderr, after the program name when there is one. */
static void l_message(const char *pname, const char *msg) {
  if (pname) lua_writestringerror("%s: ", pname);
  lua_writestringerror("%s\n", msg);
}

/* The error at the top of the stack, when status is one. */
static int report(lua_State *L, int status) {
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    l_message(progname, msg);
    lua_pop(L, 1);
  }
  return status;
}

/* A string error gets a traceback; another value its __tostring, or a
** note of its type with a traceback. */
static int msghandler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      return 1;
    else
      msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* lua_pcall with msghandler under the function and ^C caught. */
static int docall(lua_State *L, int narg, int nres) {
  int status;
  int base = lua_gettop(L) - narg;
  lua_pushcfunction(L, msghandler);
  lua_insert(L, base);
  globalL = L;
  setsignal(SIGINT, laction);
  status = lua_pcall(L, narg, nres, base);
  setsignal(SIGINT, SIG_DFL);
  lua_remove(L, base);
  return status;
}

static void print_version(void) {
  lua_writestring(LUA_COPYRIGHT, strlen(LUA_COPYRIGHT));
  lua_writeline();
}

/* arg[0] is the script (the interpreter without one), its arguments are
** positive, everything before it negative. */
static void createargtable(lua_State *L, char **argv, int argc, int script) {
  int i, narg;
  if (script == argc) script = 0;
  narg = argc - (script + 1);
  lua_createtable(L, narg, script + 1);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
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

/* "-l globname[=modname]": globname = require(modname). */
static int dolibrary(lua_State *L, char *globname) {
  int status;
  char *modname = strchr(globname, '=');
  if (modname == NULL) {
    modname = globname;
  } else {
    *modname = '\0';
    modname++;
  }
  lua_getglobal(L, "require");
  lua_pushstring(L, modname);
  status = docall(L, 1, 1);
  if (status == LUA_OK) lua_setglobal(L, globname);
  return report(L, status);
}

/* arg[1] .. arg[#arg] on the stack; their number. */
static int pushargs(lua_State *L) {
  int i, n;
  if (lua_getglobal(L, "arg") != LUA_TTABLE) luaL_error(L, "'arg' is not a table");
  n = (int)luaL_len(L, -1);
  luaL_checkstack(L, n + 3, "too many arguments to script");
  for (i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
  lua_remove(L, -i);
  return n;
}

static int handle_script(lua_State *L, char **argv) {
  int status;
  const char *fname = argv[0];
  if (strcmp(fname, "-") == 0 && strcmp(argv[-1], "--") != 0) fname = NULL; /* stdin */
  status = luaL_loadfile(L, fname);
  if (status == LUA_OK) {
    int n = pushargs(L);
    status = docall(L, n, LUA_MULTRET);
  } else if (status == LUA_ERRFILE && fname != NULL) {
    /* hklua: a script that cannot be opened gets the usage after the message */
    report(L, status);
    print_usage(NULL);
    return status;
  }
  return report(L, status);
}

/* hklua: lua.c's names for hklua.h's values. */
#define has_error HKLUA_HAS_ERROR
#define has_i HKLUA_HAS_I
#define has_v HKLUA_HAS_V
#define has_e HKLUA_HAS_E
#define has_E HKLUA_HAS_BIG_E

/*
** The options end at the first argument that is not one, at "--" or at
** "-".  Returns the has_* mask of those that matter before any Lua code
** runs, or has_error; *first is the script's index (argc without one) or
** the bad argument's.
*/
static int collectargs(char **argv, int *first) {
  int args = 0;
  int i;
  for (i = 1; argv[i] != NULL; i++) {
    *first = i;
    if (argv[i][0] != '-') return args;
    switch (argv[i][1]) {
      case '-':
        if (argv[i][2] != '\0') {
          /* hklua: "--name[=value]" is one of hklua's options (lua.c: an error) */
          if (!hklua_option(argv, i)) return has_error;
          break;
        }
        *first = i + 1;
        return args;
      case '\0':
        return args; /* the script is stdin */
      case 'E':
        if (argv[i][2] != '\0') return has_error;
        args |= has_E;
        break;
      case 'W':
        if (argv[i][2] != '\0') return has_error;
        break;
      case 'i':
        args |= has_i; /* -i implies -v */
        /* FALLTHROUGH */
      case 'v':
        if (argv[i][2] != '\0') return has_error;
        args |= has_v;
        break;
      case 'e':
        args |= has_e;
        /* FALLTHROUGH */
      case 'l': /* both need an argument, glued on or the next one */
        if (argv[i][2] == '\0') {
          i++;
          if (argv[i] == NULL || argv[i][0] == '-') return has_error;
        }
        break;
      default:
        return has_error;
    }
  }
  *first = i;
  return args;
}

/* -e, -l and -W in their order; 0 when some Lua code failed. */
static int runargs(lua_State *L, char **argv, int n) {
  int i;
  for (i = 1; i < n; i++) {
    int option = argv[i][1];
    switch (option) {
      case 'e':
      case 'l': {
        int status;
        char *extra = argv[i] + 2;
        if (*extra == '\0') extra = argv[++i];
        status = (option == 'e') ? dostring(L, extra, "=(command line)") : dolibrary(L, extra);
        if (status != LUA_OK) return 0;
        break;
      }
      case 'W':
        lua_warning(L, "@on", 0);
        break;
    }
  }
  return 1;
}

static int handle_luainit(lua_State *L) {
  const char *name = "=" LUA_INITVARVERSION;
  const char *init = getenv(name + 1);
  if (init == NULL) {
    name = "=" LUA_INIT_VAR;
    init = getenv(name + 1);
  }
  if (init == NULL) return LUA_OK;
  else if (init[0] == '@') return dofile(L, init + 1);
  else return dostring(L, init, name);
}

/* ------------------------------------------------------------------------
** The read-eval-print loop.  hklua: without readline, as lua.c built
** without LUA_USE_READLINE (lua_initreadline, lua_saveline and
** lua_freeline do nothing there and are left out), and isatty for
** lua_stdin_is_tty.
** --------------------------------------------------------------------- */

#define LUA_PROMPT "> "
#define LUA_PROMPT2 ">> "

/* The prompt, left on the stack to keep it alive. */
static const char *get_prompt(lua_State *L, int firstline) {
  if (lua_getglobal(L, firstline ? "_PROMPT" : "_PROMPT2") == LUA_TNIL) {
    return (firstline ? LUA_PROMPT : LUA_PROMPT2);
  } else {
    const char *p = luaL_tolstring(L, -1, NULL);
    lua_remove(L, -2);
    return p;
  }
}

#define EOFMARK "<eof>"
#define marklen (sizeof(EOFMARK) / sizeof(char) - 1)

/* A syntax error at <eof>: the statement goes on on the next line. */
static int incomplete(lua_State *L, int status) {
  if (status == LUA_ERRSYNTAX) {
    size_t lmsg;
    const char *msg = lua_tolstring(L, -1, &lmsg);
    if (lmsg >= marklen && strcmp(msg + lmsg - marklen, EOFMARK) == 0) {
      lua_pop(L, 1);
      return 1;
    }
  }
  return 0;
}

/*
** Shows the prompt, reads a line and pushes it without its newline; 0 at
** the end of input.  hklua: a line of any length.  lua.c reads into a
** buffer of LUA_MAXINPUT (512) bytes, and the rest of a longer line comes
** back as the next one; here the pieces are joined in a Lua buffer.  A
** NUL byte drops the rest of its piece, as it drops the rest of lua.c's
** buffer.  The prompt is popped before the read, which lua.c leaves to
** its caller at the end of input.
*/
static int pushline(lua_State *L, int firstline) {
  luaL_Buffer b;
  size_t l;
  int got = 0;
  const char *line, *prmt = get_prompt(L, firstline);
  fputs(prmt, stdout);
  fflush(stdout);
  lua_pop(L, 1);
  luaL_buffinit(L, &b);
  for (;;) {
    char *piece = luaL_prepbuffer(&b);
    if (fgets(piece, LUAL_BUFFERSIZE, stdin) == NULL) break;
    got = 1;
    l = strlen(piece);
    luaL_addsize(&b, l);
    if (l > 0 && piece[l - 1] == '\n') {
      luaL_buffsub(&b, 1);
      break;
    }
  }
  luaL_pushresult(&b);
  if (!got) {
    lua_pop(L, 1);
    return 0;
  }
  line = lua_tolstring(L, -1, &l);
  if (firstline && line[0] == '=') { /* for compatibility with 5.2, ... */
    lua_pushfstring(L, "return %s", line + 1);
    lua_remove(L, -2);
  }
  return 1;
}

/* The line as "return <line>;": the compiled chunk replaces the line, or
** on failure the line stays. */
static int addreturn(lua_State *L) {
  const char *line = lua_tostring(L, -1);
  const char *retline = lua_pushfstring(L, "return %s;", line);
  int status = luaL_loadbuffer(L, retline, strlen(retline), "=stdin");
  if (status == LUA_OK)
    lua_remove(L, -2);
  else
    lua_pop(L, 2);
  return status;
}

/* More lines until the statement is complete (or cannot be). */
static int multiline(lua_State *L) {
  for (;;) {
    size_t len;
    const char *line = lua_tolstring(L, 1, &len);
    int status = luaL_loadbuffer(L, line, len, "=stdin");
    if (!incomplete(L, status) || !pushline(L, 0)) return status;
    lua_pushliteral(L, "\n");
    lua_insert(L, -2);
    lua_concat(L, 3);
  }
}

/* A line as an expression first, then as a statement: -1 at the end of
** input, else the status with the function (or the error) on the stack. */
static int loadline(lua_State *L) {
  int status;
  lua_settop(L, 0);
  if (!pushline(L, 1)) return -1;
  if ((status = addreturn(L)) != LUA_OK) status = multiline(L);
  lua_remove(L, 1);
  return status;
}

/* Prints the values on the stack with the global print. */
static void l_print(lua_State *L) {
  int n = lua_gettop(L);
  if (n > 0) {
    luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
    lua_getglobal(L, "print");
    lua_insert(L, 1);
    if (lua_pcall(L, n, 0, 0) != LUA_OK)
      l_message(progname, lua_pushfstring(L, "error calling 'print' (%s)", lua_tostring(L, -1)));
  }
}

static void doREPL(lua_State *L) {
  int status;
  const char *oldprogname = progname;
  progname = NULL; /* no program name on errors typed interactively */
  while ((status = loadline(L)) != -1) {
    if (status == LUA_OK) status = docall(L, 0, LUA_MULTRET);
    if (status == LUA_OK) l_print(L);
    else report(L, status);
  }
  lua_settop(L, 0);
  lua_writeline();
  progname = oldprogname;
}

/* ------------------------------------------------------------------------
** pmain and main.
** --------------------------------------------------------------------- */

/* Everything that runs Lua code, in protected mode.  hklua: main has read
** the options (its 3rd and 4th arguments) and refused the bad ones. */
static int pmain(lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = (char **)lua_touserdata(L, 2);
  int args = (int)lua_tointeger(L, 3);
  int script = (int)lua_tointeger(L, 4);
  luaL_checkversion(L);
  if (args & has_v) print_version();
  if (args & has_E) {
    lua_pushboolean(L, 1); /* the libraries ignore the environment */
    lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
  }
  luaL_openlibs(L);
  hklua_openlibs(L); /* hklua: require "hakmem" finds the built-in module */
  createargtable(L, argv, argc, script);
  lua_gc(L, LUA_GCRESTART);
  hklua_gcmode(L); /* hklua: --gc (lua.c: lua_gc(L, LUA_GCGEN, 0, 0)) */
  if (!(args & has_E)) {
    if (handle_luainit(L) != LUA_OK) return 0;
  }
  if (!runargs(L, argv, script)) return 0;
  if (script < argc && handle_script(L, argv + script) != LUA_OK) return 0;
  if (args & has_i) {
    doREPL(L);
  } else if (script == argc && !(args & (has_e | has_v))) {
    if (isatty(0)) {
      print_version();
      doREPL(L);
    } else {
      dofile(L, NULL); /* lua.c ignores the status of stdin here */
    }
  }
  lua_pushboolean(L, 1);
  return 1;
}

/*
** hklua: the options are read before the state exists (lua.c reads them
** in pmain), since they choose its allocator, or --threads and no state
** here at all; argc is checked (lua.c 5.4.4 reads argv[1] even when argc
** is 0); the state comes from hklua_newstate and goes to hklua_close.
*/
int main(int argc, char **argv) {
  int status, result, args, script = 0;
  lua_State *L;
  if (argc < 1) {
    print_usage(NULL);
    return EXIT_FAILURE;
  }
  if (argv[0][0]) progname = argv[0];
  args = collectargs(argv, &script);
  if (args == has_error || !hklua_start(progname, args, argc, argv, script)) {
    print_usage(args == has_error ? argv[script] : NULL);
    return EXIT_FAILURE;
  }
  if (hklua_threaded()) {
    if (args & has_v) print_version();
    return hklua_run_threads(argc, argv);
  }
  L = hklua_newstate();
  if (L == NULL) return EXIT_FAILURE;
  lua_gc(L, LUA_GCSTOP); /* no collection while the libraries load */
  lua_pushcfunction(L, &pmain);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  lua_pushinteger(L, args);
  lua_pushinteger(L, script);
  status = lua_pcall(L, 4, 1, 0);
  result = lua_toboolean(L, -1);
  report(L, status);
  if (!hklua_close(L)) result = 0;
  return (result && status == LUA_OK) ? EXIT_SUCCESS : EXIT_FAILURE;
}

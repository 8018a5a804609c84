/*
** hklua.h -- the two halves of hklua: hklua_lua.c is lua.c of Lua 5.4.4
** (its functions under their names, the deviations marked "hklua:"), and
** hklua.c is what hklua adds: its own options, the state's allocator, the
** reports and --threads.  hklua_lua.c calls these functions of hklua.c at
** the marked places; nothing else crosses.
*/
#ifndef HKLUA_H
#define HKLUA_H

#include <stdbool.h>

#include <lua.h>

/* lua.c's argument indicators, as collectargs returns them. */
enum {
  HKLUA_HAS_ERROR = 1, /* bad option */
  HKLUA_HAS_I = 2,     /* -i */
  HKLUA_HAS_V = 4,     /* -v */
  HKLUA_HAS_E = 8,     /* -e */
  HKLUA_HAS_BIG_E = 16 /* -E */
};

/* collectargs met "--name" or "--name=value" at argv[i]: true when it is
** one of hklua's options with a good value (a bad value leaves why). */
bool hklua_option(char **argv, int i);

/* main, once every option is read: false when they do not go together
** (then hklua_why says why).  progname is lua.c's. */
bool hklua_start(const char *progname, int args, int argc, char **argv, int script);

/* Why the last option was refused; NULL when lua.c's message says it. */
const char *hklua_why(void);

/* Prints the usage lines of hklua's own options on stderr. */
void hklua_usage(void);

/* --threads=T was given: main runs the script on the runtime instead. */
bool hklua_threaded(void);
/* Runs the script with its arguments as tasks; the exit status. */
int hklua_run_threads(int argc, char **argv);

/* The state, on the allocator --alloc chose, with the reports set up;
** NULL when it cannot be made (said on stderr). */
lua_State *hklua_newstate(void);

/* In pmain: after luaL_openlibs (the built-in hakmem module), and where
** lua.c sets the generational collector (--gc). */
void hklua_openlibs(lua_State *L);
void hklua_gcmode(lua_State *L);

/* Closes the state (timed with --gc-pauses) with the reports around the
** close; false when a report could not be written. */
bool hklua_close(lua_State *L);

#endif

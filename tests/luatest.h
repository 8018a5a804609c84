/*
** luatest.h -- small helpers of the Lua glue's Criterion tests (header
** only: each test file includes it; all functions are static).
**
** They use Lua's public API, hakl.h and hakmem.h, and the C library for
** running programs (hklua, lua5.4) and reading their output.
*/
#ifndef HAKMEM_TESTS_LUATEST_H
#define HAKMEM_TESTS_LUATEST_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "hakl.h"
#include "hakmem.h"

#if defined(__GNUC__)
#define LT_UNUSED __attribute__((unused))
#else
#define LT_UNUSED
#endif

extern char **environ;

/* Runs `code` in L; returns the status, leaving the results (or the error)
** on the stack. */
LT_UNUSED static int lt_run(lua_State *L, const char *code, int nres) {
  int status = luaL_loadstring(L, code);
  if (status == LUA_OK) status = lua_pcall(L, 0, nres, 0);
  return status;
}

/* Runs `code` expecting success and one integer result; -1 on error
** (the message then goes to stderr). */
LT_UNUSED static long long lt_int(lua_State *L, const char *code) {
  long long v;
  if (lt_run(L, code, 1) != LUA_OK) {
    fprintf(stderr, "lua error: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
    return -1;
  }
  v = (long long)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

/* Lua's own count of the bytes it holds (collectgarbage("count")), exact. */
LT_UNUSED static size_t lt_lua_bytes(lua_State *L) {
  return (size_t)lua_gc(L, LUA_GCCOUNT) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB);
}

/* Bytes in live hakmem blocks, process-wide. */
LT_UNUSED static size_t lt_hak_in_use(void) {
  hak_stats_t s;
  hak_stats_get(&s);
  return s.in_use;
}

/* ------------------------------------------------------------------------
** Programs: paths from the environment `ninja test` sets up.
** --------------------------------------------------------------------- */

/* HAK_TEST_BUILDDIR / HAK_TEST_SRCDIR, or "." when unset (the tests run in
** the build directory). */
LT_UNUSED static const char *lt_builddir(void) {
  const char *d = getenv("HAK_TEST_BUILDDIR");
  return d != NULL ? d : ".";
}

LT_UNUSED static const char *lt_srcdir(void) {
  const char *d = getenv("HAK_TEST_SRCDIR");
  return d != NULL ? d : "..";
}

/* What a program did: its exit status (-1 when killed; then `signal`),
** stdout and stderr (NUL-terminated, malloc'd). */
typedef struct lt_result {
  int status;
  int signal;
  char *out;
  char *err;
} lt_result;

LT_UNUSED static void lt_result_free(lt_result *r) {
  free(r->out);
  free(r->err);
  memset(r, 0, sizeof *r);
}

LT_UNUSED static char *lt_read_fd(int fd) {
  size_t len = 0, cap = 4096;
  char *buf = (char *)malloc(cap);
  for (;;) {
    ssize_t n;
    if (len + 1 == cap) {
      cap *= 2;
      buf = (char *)realloc(buf, cap);
    }
    n = read(fd, buf + len, cap - len - 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    len += (size_t)n;
  }
  buf[len] = '\0';
  return buf;
}

/*
** Runs argv (argv[0] looked up in PATH) with `input` on stdin (NULL: an
** empty stdin) and `env` as extra "NAME=value" entries (NULL-terminated,
** may be NULL).  stderr is read from a file, so the two pipes never block
** each other.  Returns false when the program could not start.
*/
LT_UNUSED static bool lt_spawn(char *const argv[], const char *input, char *const env[],
                               lt_result *r) {
  int in[2], out[2];
  char errpath[] = "/tmp/hakmem-lt-XXXXXX";
  int errfd = mkstemp(errpath);
  posix_spawn_file_actions_t fa;
  pid_t pid;
  int wstatus, rc, nenv = 0, i;
  char **envp;
  memset(r, 0, sizeof *r);
  if (errfd < 0 || pipe(in) != 0 || pipe(out) != 0) return false;
  unlink(errpath);
  for (i = 0; environ[i] != NULL; i++) nenv++;
  for (i = 0; env != NULL && env[i] != NULL; i++) nenv++;
  envp = (char **)calloc((size_t)nenv + 1, sizeof *envp);
  nenv = 0;
  for (i = 0; env != NULL && env[i] != NULL; i++) envp[nenv++] = env[i];
  for (i = 0; environ[i] != NULL; i++) envp[nenv++] = environ[i];
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, errfd, 2);
  posix_spawn_file_actions_addclose(&fa, in[1]);
  posix_spawn_file_actions_addclose(&fa, out[0]);
  rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  free(envp);
  close(in[0]);
  close(out[1]);
  if (rc != 0) {
    close(in[1]);
    close(out[0]);
    close(errfd);
    return false;
  }
  if (input != NULL) {
    /* Inputs are small (well under a pipe's buffer): write, then read. */
    size_t len = strlen(input), done = 0;
    signal(SIGPIPE, SIG_IGN);
    while (done < len) {
      ssize_t n = write(in[1], input + done, len - done);
      if (n <= 0) break;
      done += (size_t)n;
    }
  }
  close(in[1]);
  r->out = lt_read_fd(out[0]);
  close(out[0]);
  while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  lseek(errfd, 0, SEEK_SET);
  r->err = lt_read_fd(errfd);
  close(errfd);
  if (WIFEXITED(wstatus)) {
    r->status = WEXITSTATUS(wstatus);
  } else {
    r->status = -1;
    r->signal = WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : 0;
  }
  return true;
}

/* "<dir>/<name>" in a static buffer (one at a time per slot). */
LT_UNUSED static const char *lt_path(int slot, const char *dir, const char *name) {
  static char buf[4][4096];
  int n = snprintf(buf[slot & 3], sizeof buf[0], "%s/%s", dir, name);
  if (n < 0 || (size_t)n >= sizeof buf[0]) abort(); /* a path that long is a setup error */
  return buf[slot & 3];
}

#endif /* HAKMEM_TESTS_LUATEST_H */

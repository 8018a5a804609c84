/*
** replay.c -- runs a fuzz target's LLVMFuzzerTestOneInput on saved inputs,
** without libFuzzer: linked with the same target source by the project's
** own compiler, so that `ninja test` replays every regression input and
** seed in every build mode (release, debug, asan, tsan, secure).
**
**   replay_<target> [FILE|DIR]...
**
** With no arguments it replays $HAK_TEST_SRCDIR/tests/fuzz/regress/<target>
** and tests/fuzz/corpus/<target>, <target> being what follows "replay_" in
** its own name.  A crash or an abort of the target is the failure; the
** program names the input first, so the log says which one it was.
*/
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned replayed;

static void replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    exit(1);
  }
  size_t cap = 4096, n = 0, got;
  uint8_t *buf = malloc(cap);
  while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
    n += got;
    if (n == cap) buf = realloc(buf, cap *= 2);
  }
  fclose(f);
  if (!buf) {
    fprintf(stderr, "replay: out of memory reading %s\n", path);
    exit(1);
  }
  fprintf(stderr, "replay: %s (%zu bytes)\n", path, n);
  LLVMFuzzerTestOneInput(buf, n);
  free(buf);
  replayed++;
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A file, or every file of a directory in name order; a missing directory
** is no input (a target may have no regression inputs yet). */
static void replay_path(const char *path, int must_exist) {
  struct stat st;
  if (stat(path, &st) != 0) {
    if (!must_exist) return;
    perror(path);
    exit(1);
  }
  if (!S_ISDIR(st.st_mode)) {
    replay_file(path);
    return;
  }
  DIR *d = opendir(path);
  struct dirent *e;
  char **names = NULL;
  size_t count = 0;
  while (d && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    names = realloc(names, (count + 1) * sizeof *names);
    names[count++] = strdup(e->d_name);
  }
  if (d) closedir(d);
  if (count) qsort(names, count, sizeof *names, by_name);
  for (size_t i = 0; i < count; i++) {
    char full[4096];
    snprintf(full, sizeof full, "%s/%s", path, names[i]);
    replay_file(full);
    free(names[i]);
  }
  free(names);
}

int main(int argc, char **argv) {
  if (argc > 1) {
    for (int i = 1; i < argc; i++) replay_path(argv[i], 1);
  } else {
    const char *self = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    const char *target = strncmp(self, "replay_", 7) == 0 ? self + 7 : NULL;
    const char *srcdir = getenv("HAK_TEST_SRCDIR");
    char dir[4096];
    if (!target || !srcdir) {
      fprintf(stderr, "usage: replay_<target> FILE|DIR... (or no argument, with HAK_TEST_SRCDIR set)\n");
      return 2;
    }
    snprintf(dir, sizeof dir, "%s/tests/fuzz/regress/%s", srcdir, target);
    replay_path(dir, 0);
    snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/%s", srcdir, target);
    replay_path(dir, 1);
  }
  printf("replay: %u inputs ran without a fault\n", replayed);
  return 0;
}

/* names.c -- the host's own definitions of names.h's names. */
#include <stdio.h>

#include "names.h"

/* Visible, as an ordinary host's symbols are (the build hides ours). */
#define HOST __attribute__((visibility("default")))

enum {
#define INDEX(name) name##_index,
  EMBED_FUNCTIONS(INDEX) embed_function_count
};
#define DEFINE_FUNCTION(name) \
  HOST int name(void) { return name##_index; }
EMBED_FUNCTIONS(DEFINE_FUNCTION)

#define MARK 0x5eed1234L
#define DEFINE_VARIABLE(name) HOST long name = MARK;
EMBED_VARIABLES(DEFINE_VARIABLE)

int embed_names_count(void) {
#define ONE(name) +1
  return embed_function_count EMBED_VARIABLES(ONE);
}

int embed_names_check(void) {
  int bad = 0;
#define CHECK_FUNCTION(name)                                          \
  if (name() != name##_index) {                                       \
    fprintf(stderr, "not ok: the host's %s() is not its own\n", #name); \
    bad = 1;                                                          \
  }
  EMBED_FUNCTIONS(CHECK_FUNCTION)
#define CHECK_VARIABLE(name)                                                    \
  if (name != MARK) {                                                           \
    fprintf(stderr, "not ok: the host's %s was overwritten (%#lx)\n", #name, name); \
    bad = 1;                                                                    \
  }
  EMBED_VARIABLES(CHECK_VARIABLE)
  return bad;
}

/* tests/test_keep.c as a plain program (no Criterion): see tests/standalone.h. */
#define HKT_STANDALONE 1
#include "../test_keep.c"

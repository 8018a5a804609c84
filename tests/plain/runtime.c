/* tests/test_runtime.c as a plain program (no Criterion): see tests/standalone.h. */
#define HKT_STANDALONE 1
#include "../test_runtime.c"

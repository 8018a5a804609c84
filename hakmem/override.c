/*
** override.c -- libhakmem-override.so: the C allocation functions, for
** LD_PRELOAD=libhakmem-override.so program.
**
** A pointer hakmem did not hand out can still arrive here: the dynamic
** loader allocates a few blocks with its own minimal malloc before any
** preload is in place, and may free or grow them later.  Such a pointer is
** recognised by the segment map and never written: free leaves it alone,
** realloc copies it into a new hakmem block.
*/
#include <errno.h>
#include <malloc.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#define EXPORT __attribute__((visibility("default")))

/*
** How many of the `want` bytes at p can be read: the foreign block's size
** is unknown, so copy up to `want` but never past the end of its mapping
** (mincore fails on the first unmapped page).
*/
static size_t override_readable(const void *p, size_t want) {
  uintptr_t start = (uintptr_t)p, page = start & ~(uintptr_t)(HAK_OS_PAGE - 1);
  size_t ok = 0;
  unsigned char vec;
  while (ok < want) {
    if (mincore((void *)page, HAK_OS_PAGE, &vec) != 0) break;
    page += HAK_OS_PAGE;
    ok = (size_t)(page - start);
  }
  return ok < want ? ok : want;
}

static void *override_realloc_foreign(void *p, size_t size) {
  void *q = hak_malloc(size);
  if (q) memcpy(q, p, override_readable(p, size));
  return q;
}

EXPORT void *malloc(size_t size) { return hak_malloc(size); }
EXPORT void *calloc(size_t count, size_t size) { return hak_calloc(count, size); }

EXPORT void free(void *p) {
  if (likely(segment_is_mapped(p))) hak_free(p);
}

EXPORT void *realloc(void *p, size_t size) {
  if (p && unlikely(!segment_is_mapped(p))) return size ? override_realloc_foreign(p, size) : NULL;
  return hak_realloc(p, size);
}

EXPORT void *reallocarray(void *p, size_t count, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(count, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  return realloc(p, total);
}

EXPORT void *aligned_alloc(size_t align, size_t size) { return hak_aligned_alloc(align, size); }
EXPORT void *memalign(size_t align, size_t size) { return hak_aligned_alloc(align, size); }
EXPORT void *valloc(size_t size) { return hak_aligned_alloc(HAK_OS_PAGE, size); }

EXPORT void *pvalloc(size_t size) {
  if (size > SIZE_MAX - HAK_OS_PAGE) {
    errno = ENOMEM;
    return NULL;
  }
  return hak_aligned_alloc(HAK_OS_PAGE, os_round_page(size ? size : 1));
}

EXPORT int posix_memalign(void **out, size_t align, size_t size) {
  if (align < sizeof(void *) || (align & (align - 1)) != 0) return EINVAL;
  int saved = errno;
  void *p = hak_aligned_alloc(align, size);
  int err = p ? 0 : errno;
  errno = saved; /* posix_memalign reports through its result only */
  if (!p) return err;
  *out = p;
  return 0;
}

EXPORT size_t malloc_usable_size(void *p) {
  return segment_is_mapped(p) ? hak_usable_size(p) : 0;
}

/* C23's sized frees; glibc has not got them yet, programs built for it may. */
EXPORT void free_sized(void *p, size_t size) {
  (void)size;
  free(p);
}
EXPORT void free_aligned_sized(void *p, size_t align, size_t size) {
  (void)align;
  (void)size;
  free(p);
}

/* The glibc internal names some programs and libraries call directly. */
EXPORT void *__libc_malloc(size_t size) { return malloc(size); }
EXPORT void *__libc_calloc(size_t count, size_t size) { return calloc(count, size); }
EXPORT void *__libc_realloc(void *p, size_t size) { return realloc(p, size); }
EXPORT void __libc_free(void *p) { free(p); }
EXPORT void *__libc_memalign(size_t align, size_t size) { return memalign(align, size); }
EXPORT void *__libc_valloc(size_t size) { return valloc(size); }
EXPORT void *__libc_pvalloc(size_t size) { return pvalloc(size); }
EXPORT void cfree(void *p) { free(p); }

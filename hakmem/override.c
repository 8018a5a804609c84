/*
** override.c -- libhakmem-override.so: the C allocation functions, for
** LD_PRELOAD=libhakmem-override.so program.
**
** malloc and free are hak_malloc and hak_free: the same inline fast paths
** (alloc_fast.h), the same instructions (16 and 23 on x86-64, counted by
** tests/fastpath.py), with no call in between.
**
** Foreign pointers.  The one source of blocks hakmem did not hand out, in a
** correct program, is the dynamic loader: before it binds malloc to this
** library it allocates its startup data (the link maps and search paths of
** the first objects, the first thread's dtv) with a minimal malloc of its
** own, from the end of its data segment and a few anonymous mappings.
** glibc never hands those blocks to the public free or realloc, because its
** own free would abort on them (they have no chunk headers): it marks them
** and leaves them be (the names' dont_free flag, GL(dl_initial_dtv),
** dl_init_all_dirs).  Preloaded into python3, perl, git, gcc, lua5.4, sort,
** ls and bash, an instrumented override saw no foreign free or realloc.
**
** A foreign pointer is recognised by the segment map (one bit per 4 MiB
** unit whose start is a hakmem segment header, and one per unit starting a
** segment-aligned huge block), which reads nothing at the pointer:
** - realloc and malloc_usable_size test it first: the block's size is in
**   no header, so realloc copies what can be read into a new block;
** - free tests it in its slow path, before it writes anything, and at a
**   unit boundary (NULL, a segment-aligned huge block) tests the second
**   map; a foreign pointer there is left alone.
** free's fast path reads the word at p & ~(4 MiB - 1) as for any block, and
** would take a foreign block for one of its own only if that word were this
** thread's id and the page byte after it zero, or fault if nothing were
** mapped there: which is why it is not asked to recognise the loader's
** blocks, which never come.  The debug build tests the map before anything
** else, so that a program freeing what malloc never gave stops with a
** message (free_check) instead.
*/
#include <errno.h>
#include <malloc.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "alloc_fast.h"

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

EXPORT void *malloc(size_t size) { return heap_alloc16(thread_heap, size); }
EXPORT void *calloc(size_t count, size_t size) { return hak_calloc(count, size); }

/* A free that missed the fast path: a foreign pointer is left alone. */
static noinline void override_free_slow(hak_segment_t *seg, hak_page_t *page, void *p) {
  if (likely(segment_is_mapped(p))) free_slow(seg, page, p);
}

/* NULL, a segment-aligned huge block, or a foreign pointer at a unit start. */
static noinline void override_free_boundary(void *p) {
  if (segment_is_aligned_huge(p)) huge_free(segment_of_block(p));
}

EXPORT void free(void *p) {
#if HAK_DEBUG
  if (segment_is_mapped(p)) hak_free(p); /* hak_free checks the block */
#else
  if (unlikely(segment_is_boundary(p))) {
    override_free_boundary(p);
    return;
  }
  free_block_or(p, override_free_slow);
#endif
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

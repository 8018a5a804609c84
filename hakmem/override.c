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
** free's fast path reads the owner word of the header at p & ~(4 MiB - 1)
** (`tid`, SEGMENT_COLOUR bytes in) as for any block, and would take a
** foreign block for one of its own only if that word were this thread's id
** and the page descriptor's flags byte zero, or fault if nothing were
** mapped there: which is why it is not asked to recognise the loader's
** blocks, which never come.  The debug and secure builds test the map
** before anything else (a foreign pointer is left alone there too), then
** hak_free checks the block (free_check, secure_free_check).
*/
#include <errno.h>
#include <limits.h>
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

#if !HAK_DEBUG && !HAK_SECURE
/* A free that missed the fast path: a foreign pointer is left alone. */
static noinline void override_free_slow(hak_segment_t *seg, hak_page_t *page, void *p) {
  if (likely(segment_is_mapped(p))) free_slow(seg, page, p);
}

/* NULL, a segment-aligned huge block, or a foreign pointer at a unit start. */
static noinline void override_free_boundary(void *p) {
  if (segment_is_aligned_huge(p)) huge_free(segment_of_block(p));
}

#endif

EXPORT void free(void *p) {
#if HAK_DEBUG || HAK_SECURE
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

/*
** glibc's memalign, which aligned_alloc is in glibc 2.36: up to 16 bytes
** any alignment is malloc's, one that is not a power of two rounds up to
** the next, and one above the largest power of two fails with EINVAL.
** (hak_aligned_alloc refuses what is not a power of two; programs written
** for glibc pass 24 or 48 and expect a block.)
*/
static void *override_memalign(size_t align, size_t size) {
  if (align > SIZE_MAX / 2 + 1) {
    errno = EINVAL;
    return NULL;
  }
  if (align <= 16) return malloc(size);
  if (align & (align - 1)) align = (size_t)1 << (64 - __builtin_clzll(align));
  return hak_aligned_alloc(align, size);
}

EXPORT void *aligned_alloc(size_t align, size_t size) { return override_memalign(align, size); }
EXPORT void *memalign(size_t align, size_t size) { return override_memalign(align, size); }
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
EXPORT int __posix_memalign(void **out, size_t align, size_t size) {
  return posix_memalign(out, align, size);
}

/* BSD's: a realloc that frees the block when it fails. */
EXPORT void *reallocf(void *p, size_t size) {
  void *q = realloc(p, size);
  if (!q && size) free(p);
  return q;
}

EXPORT size_t malloc_usable_size(void *p) {
  return segment_is_mapped(p) ? hak_usable_size(p) : 0;
}

/*
** C++'s delete and delete[], plain, sized, aligned and nothrow, are free
** itself under their mangled names (aliases: the same 23 instructions).
** free finds a block's size and alignment in its page; the arguments after
** the pointer (size, alignment, the nothrow tag) arrive in registers free
** never reads.  operator new is in override_new.c.
*/
#define OVERRIDE_DELETE(name) EXPORT void name(void *p) __attribute__((alias("free"), copy(free)))
OVERRIDE_DELETE(_ZdlPv);
OVERRIDE_DELETE(_ZdaPv);
OVERRIDE_DELETE(_ZdlPvm);
OVERRIDE_DELETE(_ZdaPvm);
OVERRIDE_DELETE(_ZdlPvRKSt9nothrow_t);
OVERRIDE_DELETE(_ZdaPvRKSt9nothrow_t);
OVERRIDE_DELETE(_ZdlPvSt11align_val_t);
OVERRIDE_DELETE(_ZdaPvSt11align_val_t);
OVERRIDE_DELETE(_ZdlPvmSt11align_val_t);
OVERRIDE_DELETE(_ZdaPvmSt11align_val_t);
OVERRIDE_DELETE(_ZdlPvSt11align_val_tRKSt9nothrow_t);
OVERRIDE_DELETE(_ZdaPvSt11align_val_tRKSt9nothrow_t);

/* ---- glibc's malloc.h: hakmem's figures under glibc's names -------------- */

/* Everything free goes back now; 1 if any memory went back to the OS. */
EXPORT int malloc_trim(size_t pad) {
  (void)pad; /* nothing is kept at a top: there is no top */
  hak_stats_t before, after;
  hak_stats_counters(&before);
  hak_collect(true);
  hak_stats_counters(&after);
  return after.purged > before.purged || after.mapped < before.mapped;
}

/*
** arena: bytes that may be resident (segments and huge blocks); uordblks:
** bytes in live blocks; fordblks: the difference, held but free; hblks:
** huge blocks (their bytes are in arena and uordblks already, so hblkhd is
** 0: programs add it to both); ordblks: live pages.  The rest has no
** meaning here and is 0.
*/
EXPORT struct mallinfo2 mallinfo2(void) {
  hak_stats_t s;
  hak_stats_get(&s);
  struct mallinfo2 m;
  memset(&m, 0, sizeof m);
  m.arena = s.committed;
  m.ordblks = s.pages;
  m.hblks = s.huge_blocks;
  m.uordblks = s.in_use;
  m.fordblks = s.committed > s.in_use ? s.committed - s.in_use : 0;
  return m;
}

/* The old one, in ints: each figure saturates at INT_MAX. */
static int override_int(size_t n) { return n > INT_MAX ? INT_MAX : (int)n; }

EXPORT struct mallinfo mallinfo(void) {
  struct mallinfo2 m2 = mallinfo2();
  struct mallinfo m;
  memset(&m, 0, sizeof m);
  m.arena = override_int(m2.arena);
  m.ordblks = override_int(m2.ordblks);
  m.hblks = override_int(m2.hblks);
  m.uordblks = override_int(m2.uordblks);
  m.fordblks = override_int(m2.fordblks);
  return m;
}

/* glibc prints its arenas to stderr; this prints hakmem's stats there. */
EXPORT void malloc_stats(void) { hak_stats_print(stderr); }

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

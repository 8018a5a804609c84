/*
** override_new.c -- C++'s operator new of libhakmem-override.so: new and
** new[], with their aligned and nothrow forms, so that a C++ program's
** objects go to hakmem with no layer of libstdc++'s in between (its
** operator new calls malloc through the PLT).  The delete operators are
** free itself, under their names (override.c).
**
** Written in C under their mangled names (the Itanium C++ ABI of x86-64
** and the other LP64 targets, where size_t is `m`), so that the override
** links no libstdc++: a C program that preloads it loads nothing more.
** Only C++ code calls these operators, and C++ code has libstdc++ loaded;
** a failed allocation takes from it what C cannot do itself:
** - std::get_new_handler and std::__throw_bad_alloc, weak references
**   (the operator calls the new-handler until it gives up, then throws
**   std::bad_alloc; unwinding crosses these C frames by their unwind
**   tables, -fexceptions);
** - for the nothrow forms with a new-handler installed, libstdc++'s own
**   nothrow operator (dlsym RTLD_NEXT), which wraps the throwing one,
**   ours, in a try/catch and so returns NULL where a handler throws, as
**   the standard asks.  Without a handler a nothrow form returns NULL.
*/
#include <dlfcn.h>
#include <stdbool.h>
#include <stddef.h>

#include "alloc_fast.h"

#define EXPORT __attribute__((visibility("default")))

typedef void (*new_handler_t)(void);
extern new_handler_t _ZSt15get_new_handlerv(void) __attribute__((weak));
extern void _ZSt17__throw_bad_allocv(void) __attribute__((weak, noreturn));

static new_handler_t new_handler(void) {
  return _ZSt15get_new_handlerv ? _ZSt15get_new_handlerv() : NULL;
}

static void *new_try(size_t size, size_t align) {
  return align ? hak_aligned_alloc(align, size) : hak_malloc(size);
}

/* The throwing forms after a failure: the handler's loop, then bad_alloc. */
static noinline void *new_failed(size_t size, size_t align) {
  for (;;) {
    new_handler_t handler = new_handler();
    if (!handler) {
      if (_ZSt17__throw_bad_allocv) _ZSt17__throw_bad_allocv();
      hak_fatal("operator new(%zu): out of memory, and no libstdc++ to throw std::bad_alloc", size);
    }
    handler();
    void *p = new_try(size, align);
    if (p) return p;
  }
}

/*
** The nothrow forms after a failure.  `name` is libstdc++'s nothrow form,
** which catches what our throwing form (and the handler it calls) throws.
*/
static noinline void *new_nothrow_failed(size_t size, size_t align, const char *name) {
  static const char nothrow[1]; /* std::nothrow_t is empty: any address does */
  if (!new_handler()) return NULL;
  void *f = dlsym(RTLD_NEXT, name);
  if (!f) return NULL;
  if (align) return ((void *(*)(size_t, size_t, const void *))f)(size, align, nothrow);
  return ((void *(*)(size_t, const void *))f)(size, nothrow);
}

/* operator new(size_t)'s slow path: alloc_slow, and if it fails, the loop. */
static noinline void *new_slow(hak_heap_t *heap, size_t size, size_t align) {
  void *p = alloc_slow(heap, size, align);
  return p ? p : new_failed(size, 0);
}

static inline void *new_throwing(size_t size, size_t align) {
  if (!align) return heap_alloc16_or(thread_heap, size, new_slow); /* malloc's instructions */
  void *p = hak_aligned_alloc(align, size);
  if (likely(p != NULL)) return p;
  return new_failed(size, align);
}

static inline void *new_nothrow(size_t size, size_t align, const char *name) {
  void *p = new_try(size, align);
  if (likely(p != NULL)) return p;
  return new_nothrow_failed(size, align, name);
}

/* operator new(size_t), new[](size_t), and their aligned forms */
EXPORT void *_Znwm(size_t size) { return new_throwing(size, 0); }
EXPORT void *_Znam(size_t size) { return new_throwing(size, 0); }
EXPORT void *_ZnwmSt11align_val_t(size_t size, size_t align) { return new_throwing(size, align); }
EXPORT void *_ZnamSt11align_val_t(size_t size, size_t align) { return new_throwing(size, align); }

/* (size_t, const std::nothrow_t &), and aligned */
EXPORT void *_ZnwmRKSt9nothrow_t(size_t size, const void *nt) {
  (void)nt;
  return new_nothrow(size, 0, "_ZnwmRKSt9nothrow_t");
}
EXPORT void *_ZnamRKSt9nothrow_t(size_t size, const void *nt) {
  (void)nt;
  return new_nothrow(size, 0, "_ZnamRKSt9nothrow_t");
}
EXPORT void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t size, size_t align, const void *nt) {
  (void)nt;
  return new_nothrow(size, align, "_ZnwmSt11align_val_tRKSt9nothrow_t");
}
EXPORT void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t size, size_t align, const void *nt) {
  (void)nt;
  return new_nothrow(size, align, "_ZnamSt11align_val_tRKSt9nothrow_t");
}

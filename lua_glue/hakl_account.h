/*
** hakl_account.h -- the updates of a state's account (hakl_account in
** hakl.h), inline: hakl_alloc's paths and every other lua_Alloc that keeps
** the same account (hakl_alloc_libc, hklua's counted libc allocator) use
** these, so that the rules are written once.
**
** The common case of a new or grown block costs one add and one compare:
**
**   if (hakl_unlikely(hakl_account_rises(a, n))) ... the slow path ...
**   p = allocate; ...; hakl_account_new(a, tag, n);
**
** hakl_account_rises compares in_use + n with mark = min(cap, peak): below
** it, the block can pass neither the limit nor the peak.  Only above it
** does the slow path test the limit (hakl_account_permits) and, after the
** allocation, move the peak (hakl_account_repeak).
**
** in_use + n cannot wrap: Lua asks for at most MAX_SIZE (< 2^63) bytes at
** a time, and in_use stays far below 2^63 in any address space.
*/
#ifndef HAKL_ACCOUNT_H
#define HAKL_ACCOUNT_H

#include <stdbool.h>
#include <stdint.h>

#include "hakl.h"

#if defined(__GNUC__)
#define hakl_unlikely(x) __builtin_expect(!!(x), 0)
#else
#define hakl_unlikely(x) (x)
#endif

/* The limit as a size: SIZE_MAX without one. */
static inline size_t hakl_account_cap(const hakl_account *a) {
  return a->limit ? a->limit : SIZE_MAX;
}

/* Restores the invariant mark == min(cap, peak) after the limit or the
** peak changed. */
static inline void hakl_account_remark(hakl_account *a) {
  size_t cap = hakl_account_cap(a);
  a->mark = a->peak < cap ? a->peak : cap;
}

/* The fast test: may n more bytes pass the limit or the peak? */
static inline bool hakl_account_rises(const hakl_account *a, size_t n) {
  return a->in_use + n > a->mark;
}

/* The exact limit test of the slow path: do n more bytes stay within the
** limit?  (The use may already be above a limit lowered since.) */
static inline bool hakl_account_permits(const hakl_account *a, size_t n) {
  size_t cap = hakl_account_cap(a);
  return a->in_use <= cap && n <= cap - a->in_use;
}

/* The slow path, after the use went up: a new peak, perhaps. */
static inline void hakl_account_repeak(hakl_account *a) {
  if (a->in_use > a->peak) {
    a->peak = a->in_use;
    hakl_account_remark(a);
  }
}

/* A new block of n bytes made for type tag `tag` (Lua's osize): a tag
** Lua never passes counts as "other", out of line (a compare and a jump
** instead of the compare, clear and move of a conditional move). */
static inline void hakl_account_new_tagged(hakl_account *a, size_t tag, size_t n) {
  a->in_use += n;
  a->type_count[tag]++;
  a->type_bytes[tag] += n;
}
void hakl_account_new_other(hakl_account *a, size_t n);
static inline void hakl_account_new(hakl_account *a, size_t tag, size_t n) {
  if (hakl_unlikely(tag >= HAKL_NTYPES)) {
    hakl_account_new_other(a, n);
    return;
  }
  a->in_use += n;
  a->type_count[tag]++;
  a->type_bytes[tag] += n;
}

/* A block grown by n bytes. */
static inline void hakl_account_grow(hakl_account *a, size_t n) {
  a->in_use += n;
  a->ngrow++;
  a->grow_bytes += n;
}

/* A block shrunk by n bytes (0 included). */
static inline void hakl_account_shrink(hakl_account *a, size_t n) {
  a->in_use -= n;
  a->nshrink++;
}

/* A block of n bytes freed. */
static inline void hakl_account_free(hakl_account *a, size_t n) {
  a->nfree++;
  a->in_use -= n; /* last: the free path's test of in_use == 0 is then the sub's flags */
}

/* A request refused (the limit, or no memory). */
static inline void hakl_account_refuse(hakl_account *a) {
  a->nfail++;
}

/* Starts an account at `in_use` bytes (a state switched to it midway),
** with `limit` (0: none). */
static inline void hakl_account_start(hakl_account *a, size_t in_use, size_t limit) {
  a->in_use = a->peak = in_use;
  a->limit = limit;
  hakl_account_remark(a);
}

#endif /* HAKL_ACCOUNT_H */

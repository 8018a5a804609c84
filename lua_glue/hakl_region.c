/*
** hakl_region.c -- the chunks of a state's region (hakl_region.h).
*/
#include <string.h>

#include "hakl_region.h"

/* Chunks double from the first to the last size: a small state (the
** runtime makes thousands) holds one small chunk, a large heap bumps
** through large ones. */
#define CHUNK_FIRST (16 * 1024)
#define CHUNK_LAST (256 * 1024)
#define CHUNK_HEADER 16 /* link and size */

void *hakl_region_refill(hakl_region *r, hak_heap_t *heap, size_t c) {
  size_t size = r->next_chunk ? r->next_chunk : CHUNK_FIRST;
  size_t rest = (size_t)(r->end - r->bump);
  char *chunk = hak_heap_malloc8(heap, size);
  if (chunk == NULL) return NULL;
  if (rest >= 8) hakl_region_give(r, r->bump, rest >> 3); /* rest < c * 8, a multiple of 8 */
  ((void **)chunk)[0] = r->chunks;
  ((size_t *)chunk)[1] = size;
  r->chunks = chunk;
  r->next_chunk = size < CHUNK_LAST ? 2 * size : CHUNK_LAST;
  r->bump = chunk + CHUNK_HEADER + c * 8;
  r->end = chunk + size;
  return chunk + CHUNK_HEADER;
}

void hakl_region_release(hakl_region *r) {
  void *chunk = r->chunks;
  while (chunk != NULL) {
    void *next = ((void **)chunk)[0];
    hak_free_sized(chunk, ((size_t *)chunk)[1]);
    chunk = next;
  }
  memset(r, 0, sizeof *r);
}

/*
** hakl_floor.h -- the two floors of the Lua suite: minimal lua_Allocs that
** show what placement and instruction count can still win on a workload.
**
** Not an allocator to ship (no account, no limit, no thread safety, no
** memory returned before hakl_floor_destroy): hklua links them for
** `--alloc=floor-mixed` and `--alloc=floor-segregated` so that the suite
** compares them in the same host as hakmem and its peers.  They are not in
** libhakmem_lua.a.
**
** Both have exact 8-byte classes up to HAKL_FLOOR_MAX bytes, a LIFO free
** list per class fed by Lua's sized frees, and the C library's malloc,
** realloc and free above.  Where a class's list is empty:
** - mixed: every class bump-allocates from one arena, in allocation order
**   (what glibc does with its top chunk: objects made together lie
**   together, whatever their sizes);
** - segregated: each class bump-allocates from a region of its own
**   (HAKL_FLOOR_REGION bytes at a time), as a size-class allocator does.
*/
#ifndef HAKL_FLOOR_H
#define HAKL_FLOOR_H

#include <stdbool.h>
#include <stddef.h>

#define HAKL_FLOOR_MAX 1024               /* largest block served from classes */
#define HAKL_FLOOR_REGION (64 * 1024)     /* segregated: a class's region */

typedef struct hakl_floor hakl_floor;

/* A floor; NULL when out of memory.  The `ud` of the lua_Alloc below that
** matches `segregated`. */
hakl_floor *hakl_floor_new(bool segregated);
/* Unmaps everything the floor carved (after lua_close). */
void hakl_floor_destroy(hakl_floor *f);

void *hakl_floor_mixed(void *ud, void *ptr, size_t osize, size_t nsize);
void *hakl_floor_segregated(void *ud, void *ptr, size_t osize, size_t nsize);

#endif /* HAKL_FLOOR_H */

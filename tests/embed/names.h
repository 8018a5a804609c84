/*
** names.h -- names a host may define for itself, as a test of embedding.
**
** Each was a global symbol of libhakmem.a before the static libraries
** became one partial link with their internals made local: a host that
** defined one got "multiple definition" when it linked hakmem statically.
** names.c defines them all (functions returning their index, variables
** holding a mark); the programs in this directory link it with a static
** library, use the library, and check that the host's names still hold
** the host's values.  The list: `nm` of libhakmem.a at commit d630d1a.
*/
#ifndef HAKMEM_TESTS_EMBED_NAMES_H
#define HAKMEM_TESTS_EMBED_NAMES_H

#define EMBED_FUNCTIONS(X)                                                                       \
  X(os_map_aligned) X(os_map_aligned_at) X(os_now_ms) X(os_purge) X(os_remap_aligned)           \
  X(os_round_page) X(os_unmap) X(segment_collect_abandoned) X(segment_commit)                    \
  X(segment_fork_lock) X(segment_free) X(segment_header_size) X(segment_is_aligned_huge)         \
  X(segment_is_mapped) X(segment_large_grow) X(segment_list_push) X(segment_list_remove)         \
  X(segment_page_alloc) X(segment_page_free) X(segment_purge) X(segment_register)                \
  X(segment_set_owner) X(segment_stats_walk) X(segment_unregister) X(page_collect)               \
  X(page_contains_free) X(page_extend) X(page_init) X(page_notify) X(page_push_remote)           \
  X(page_queue_push_back) X(page_queue_push_front) X(page_queue_remove) X(page_set_notify)       \
  X(heap_abandon) X(heap_absorb) X(heap_adopt_segment) X(heap_collect) X(heap_create)            \
  X(heap_drain_notified) X(heap_find_page) X(heap_fork_lock) X(heap_large_alloc)                 \
  X(heap_page_retire) X(heap_page_unfull) X(heap_release_struct) X(heap_set_direct)              \
  X(alloc_slow) X(free_slow) X(huge_alloc) X(huge_destroy_all) X(huge_fork_lock) X(huge_free)    \
  X(huge_move_all) X(huge_realloc) X(huge_set_owner_all) X(class_aligned) X(class_large_size)    \
  X(class_of) X(class_page_slices) X(stats_committed) X(thread_abandon_segment)                  \
  X(thread_abandoned_each) X(thread_abandoned_lock) X(thread_heap_init) X(thread_id_assign)      \
  X(thread_take_abandoned)

#define EMBED_VARIABLES(X) \
  X(stats) X(page_empty) X(heap_empty) X(class_size) X(class_of_slot) X(thread_heap) X(thread_tid)

/* 0 if every host name still holds its value; else prints which do not. */
int embed_names_check(void);
/* How many names names.c defines. */
int embed_names_count(void);

#endif

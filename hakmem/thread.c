/*
** thread.c -- threads: the default heap of each thread, thread ids,
** thread exit, fork.
**
** A thread's heap is made on its first allocation (the fast path sees
** heap_empty until then), or is an exited thread's heap taken whole.  At
** exit, or at hak_thread_done, the heap's empty pages go back to its
** segments and the heap, owned by nobody, waits for the next thread to
** start (heap_leave); when enough heaps wait already, its segments that
** still hold live blocks are abandoned instead (segment.c): they keep
** receiving remote frees (as plain pushes, with no heap to notify), and
** the next heap short of space adopts them (heap.c).
*/
#include "internal.h"

__thread hak_heap_t *thread_heap tls_initial_exec = &heap_empty;
__thread uintptr_t thread_tid tls_initial_exec = THREAD_ID_NONE;

/* The next thread id: 0 and THREAD_ID_NONE are never given out. */
static hak_atomic_t thread_next_id = 2;

uintptr_t thread_id_assign(void) {
  if (thread_tid == THREAD_ID_NONE) thread_tid = atomic_add(&thread_next_id, 1);
  return thread_tid;
}

static pthread_key_t thread_key;
static pthread_once_t thread_once = PTHREAD_ONCE_INIT;

static void thread_exit_cb(void *value) {
  (void)value;
  hak_thread_done();
}

/* A destructor, not atexit: atexit may allocate, and we may be inside malloc. */
__attribute__((destructor)) static void thread_show_stats_at_exit(void) {
  if (hak_option_get(HAK_OPT_SHOW_STATS)) hak_stats_print(stderr);
}

/*
** fork copies only the calling thread: every lock another thread might hold
** is taken before and released after, in both processes.  Order: huge_lock
** before all_lock (huge_realloc nests them), all_lock before idle_lock
** (segment_fork_lock takes both), then the heap pool's.
*/
static void thread_fork_prepare(void) {
  huge_fork_lock(true);
  segment_fork_lock(true);
  heap_fork_lock(true);
}

static void thread_fork_release(void) {
  heap_fork_lock(false);
  segment_fork_lock(false);
  huge_fork_lock(false);
}

/* The child also finishes what a remote freer left half done (page.c). */
static void thread_fork_child(void) {
  segment_fork_child();
  thread_fork_release();
}

static void thread_once_init(void) {
  pthread_key_create(&thread_key, thread_exit_cb);
  pthread_atfork(thread_fork_prepare, thread_fork_release, thread_fork_child);
}

hak_heap_t *thread_heap_init(void) {
  if (thread_heap != &heap_empty) return thread_heap;
  pthread_once(&thread_once, thread_once_init);
  hak_heap_t *heap = heap_take_orphan();
  if (!heap) heap = heap_create(true);
  if (!heap) return NULL;
  thread_heap = heap;
  /* any non-NULL value makes the destructor run at thread exit */
  pthread_setspecific(thread_key, heap);
  atomic_add(&stats.threads, 1);
  return heap;
}

void hak_thread_done(void) {
  hak_heap_t *heap = thread_heap;
  if (heap == &heap_empty) return;
  thread_heap = &heap_empty;
  heap_leave(heap);
  atomic_add(&stats.threads, -1);
}

/*
** test_fork.c -- fork while another thread is inside a remote free.
**
** A remote free into a full page turns the page's notify state WANTED ->
** BUSY, pushes the page on its heap's notified stack, then turns it NONE.
** fork copies only its caller: a freer caught between the two CASes is not
** in the child, and the page stayed BUSY there, so the child's next free
** into it (or its heap's exit) waited for good.  The window is a few
** instructions wide, so the tests open it by hand, as the freer would, on
** the thread that forks; they read hakmem's structures (internal.h) for
** that.  The child must free into the page and pass the invariant checker
** within a few seconds.
*/
#include <criterion/criterion.h>

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "internal.h" /* page_of, segment_of, the notify states, heap->notified */
#include "fixture.h"

TestSuite(fork, .init = hkt_fixture_init, .fini = hkt_fixture_fini);

#define NBLOCKS 4096 /* 48-byte blocks: more than one page holds */

static hak_page_t *page_of_block(void *p) { return page_of(segment_of(p), p); }

/* Allocates until the first block's page has gone to the full queue, which
** leaves it WANTED: the state a remote freer finds. */
static hak_page_t *full_page(void **blocks, size_t *n) {
  hak_page_t *page;
  blocks[0] = hak_malloc(48);
  cr_assert(blocks[0] != NULL);
  page = page_of_block(blocks[0]);
  for (*n = 1; *n < NBLOCKS && !(page->flags & PAGE_IN_FULL); (*n)++) {
    blocks[*n] = hak_malloc(48);
    cr_assert(blocks[*n] != NULL);
  }
  cr_assert(page->flags & PAGE_IN_FULL, "the page never filled");
  cr_assert_eq(atomic_load_relaxed(&page->thread_free) & NOTIFY_MASK, NOTIFY_WANTED);
  return page;
}

/* The child: a free into the page, then the checker; killed if it hangs. */
static int fork_and_free(void *block) {
  int status;
  pid_t pid = fork();
  cr_assert(pid >= 0, "fork");
  if (pid == 0) {
    alarm(5);
    hak_free(block);
    _exit(hak_heap_check(NULL) == 0 ? 0 : 3);
  }
  cr_assert(waitpid(pid, &status, 0) == pid);
  return status;
}

static void run(bool pushed) {
  void **blocks = calloc(NBLOCKS, sizeof *blocks);
  size_t n;
  cr_assert(blocks != NULL);
  hak_page_t *page = full_page(blocks, &n);
  uintptr_t tf = atomic_load_relaxed(&page->thread_free);
  /* the freer's first CAS, and (pushed) its push; not its last CAS */
  atomic_store_relaxed(&page->thread_free, (tf & ~NOTIFY_MASK) | NOTIFY_BUSY);
  if (pushed) { /* page_notify, as the freer does it (nothing else runs) */
    page->notify_next = (hak_page_t *)atomic_load_relaxed(&page->heap->notified);
    atomic_store_relaxed(&page->heap->notified, (uintptr_t)page);
  }
  int status = fork_and_free(blocks[0]);
  /* here the freer finishes: NONE once it pushed, else back as it was */
  atomic_store_relaxed(&page->thread_free, (tf & ~NOTIFY_MASK) | (pushed ? NOTIFY_NONE : NOTIFY_WANTED));
  cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0,
            "the child %s (status %#x): its free waited for a freer it does not have",
            WIFSIGNALED(status) ? "was killed" : "failed", status);
  cr_expect_eq(hak_heap_check(NULL), 0, "the parent's heap");
  for (size_t i = 0; i < n; i++) hak_free(blocks[i]);
  free(blocks);
}

Test(fork, a_freer_before_its_push) { run(false); }

Test(fork, a_freer_after_its_push) { run(true); }

// newdelete.cc -- C++'s operators new and delete under
// LD_PRELOAD=libhakmem-override.so (tests/override/run.py runs it).
//
// Checks that every form (new, new[], aligned, nothrow; delete plain,
// sized, aligned) is the override's own, not libstdc++'s layer over malloc,
// and hands out hakmem blocks with the alignment asked; that a failed new
// calls the new-handler until it gives up and then throws std::bad_alloc;
// that a nothrow new returns nullptr, also when the handler throws; and
// that containers of over-aligned types work.
// Prints "newdelete: ok hakmem=yes" and exits 0, or says what failed.
#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <new>
#include <string>
#include <vector>

static int failures;

#define CHECK(cond, ...)                                    \
  do {                                                      \
    if (!(cond)) {                                          \
      std::fprintf(stderr, "newdelete: %s:%d: ", __FILE__, __LINE__); \
      std::fprintf(stderr, __VA_ARGS__);                    \
      std::fprintf(stderr, "\n");                           \
      failures++;                                           \
    }                                                       \
  } while (0)

static bool (*owns)(const void *);  // hak_owns, from the preload

// The file that defines `name` for this process: the override, not libstdc++.
static std::string definer(const char *name) {
  Dl_info info;
  void *f = dlsym(RTLD_DEFAULT, name);
  if (!f || !dladdr(f, &info) || !info.dli_fname) return "(none)";
  return info.dli_fname;
}

static const char *const OPERATORS[] = {
    "_Znwm", "_Znam", "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t",
    "_ZnwmSt11align_val_t", "_ZnamSt11align_val_t",
    "_ZnwmSt11align_val_tRKSt9nothrow_t", "_ZnamSt11align_val_tRKSt9nothrow_t",
    "_ZdlPv", "_ZdaPv", "_ZdlPvm", "_ZdaPvm", "_ZdlPvRKSt9nothrow_t", "_ZdaPvRKSt9nothrow_t",
    "_ZdlPvSt11align_val_t", "_ZdaPvSt11align_val_t", "_ZdlPvmSt11align_val_t",
    "_ZdaPvmSt11align_val_t", "_ZdlPvSt11align_val_tRKSt9nothrow_t",
    "_ZdaPvSt11align_val_tRKSt9nothrow_t",
};

struct alignas(64) Line { char bytes[64]; };
struct alignas(8192) Page { char bytes[100]; };
struct alignas(1 << 22) Huge { char bytes[10]; };

static const std::size_t NEVER = std::size_t(64) << 40;  // 64 TiB: no machine backs it

// Where each block goes before its delete: a new and delete pair that
// nothing else sees may be elided by the compiler (-fallocation-dce).
static void *volatile sink;

static int handler_calls;
static void handler_gives_up() {
  if (++handler_calls == 3) std::set_new_handler(nullptr);
}
static void handler_throws() {
  handler_calls++;
  throw std::bad_alloc();
}

static void test_definers() {
  for (const char *name : OPERATORS) {
    std::string file = definer(name);
    CHECK(file.find("libhakmem-override.so") != std::string::npos,
          "%s comes from %s, not from the override", name, file.c_str());
  }
}

static void test_blocks() {
  for (std::size_t n : {1, 8, 24, 100, 1000, 5000, 100000, 3 << 20}) {
    char *p = new char[n];
    CHECK(owns(p), "new char[%zu] = %p is not a hakmem block", n, (void *)p);
    std::memset(p, 1, n);
    sink = p;
    delete[] p;
    int *q = new int(7);
    CHECK(owns(q) && *q == 7, "new int is not a hakmem block");
    delete q;
    void *r = ::operator new(n);
    CHECK(owns(r), "operator new(%zu) is not a hakmem block", n);
    ::operator delete(r, n);  // sized
  }
  for (std::size_t align = 1; align <= (std::size_t(1) << 26); align <<= 1) {
    for (std::size_t n : {1, 100, 70000, 5 << 20}) {
      void *p = ::operator new(n, std::align_val_t(align));
      CHECK(owns(p) && (std::uintptr_t)p % align == 0,
            "operator new(%zu, align %zu) = %p", n, align, p);
      ::operator delete(p, n, std::align_val_t(align));
      p = ::operator new[](n, std::align_val_t(align), std::nothrow);
      CHECK(p && owns(p) && (std::uintptr_t)p % align == 0,
            "operator new[](%zu, align %zu, nothrow) = %p", n, align, p);
      ::operator delete[](p, std::align_val_t(align));
    }
  }
  void *p = ::operator new(0);
  void *q = ::operator new(0);
  CHECK(p && q && p != q && owns(p), "operator new(0) gave %p and %p", p, q);
  ::operator delete(p);
  ::operator delete(q, std::nothrow);
}

static void test_containers() {
  std::vector<Page> pages(20);
  for (const Page &pg : pages) CHECK((std::uintptr_t)&pg % 8192 == 0, "a Page at %p", (void *)&pg);
  std::vector<Line> lines;
  for (int i = 0; i < 10000; i++) lines.push_back(Line());
  CHECK((std::uintptr_t)lines.data() % 64 == 0, "the Lines at %p", (void *)lines.data());
  Huge *h = new Huge;  // alignas(4 MiB): must not throw
  CHECK((std::uintptr_t)h % (1 << 22) == 0 && owns(h), "new Huge = %p", (void *)h);
  delete h;
  std::map<int, std::string> m;
  for (int i = 0; i < 20000; i++) m[i * 7919 % 20011] = std::to_string(i);
  long sum = 0;
  for (auto &kv : m) sum += kv.first + (long)kv.second.size();
  CHECK(m.size() == 20000 && sum > 0, "the map holds %zu entries", m.size());
}

// Whether `allocate` (a new that hands its block to `sink`) throws bad_alloc.
template <class F>
static bool throws_bad_alloc(F allocate) {
  try {
    sink = allocate();
  } catch (const std::bad_alloc &) {
    return true;
  }
  ::operator delete(sink);
  return false;
}

static void test_failures() {
  // no handler: bad_alloc
  CHECK(throws_bad_alloc([] { return ::operator new(NEVER); }),
        "operator new(64 TiB) did not throw std::bad_alloc");
  CHECK(throws_bad_alloc([] { return (void *)new char[NEVER]; }),
        "new char[64 TiB] did not throw std::bad_alloc");
  CHECK(throws_bad_alloc([] { return ::operator new(NEVER, std::align_val_t(4096)); }),
        "aligned operator new(64 TiB) did not throw std::bad_alloc");
  CHECK(::operator new(NEVER, std::nothrow) == nullptr, "nothrow new(64 TiB) is not nullptr");
  CHECK(::operator new[](NEVER, std::align_val_t(64), std::nothrow) == nullptr,
        "aligned nothrow new[](64 TiB) is not nullptr");

  // a handler that gives up on its third call: three calls, then bad_alloc
  handler_calls = 0;
  std::set_new_handler(handler_gives_up);
  bool thrown = throws_bad_alloc([] { return ::operator new(NEVER); });
  CHECK(thrown && handler_calls == 3, "new with a handler: thrown %d, %d handler calls (want 3)",
        thrown, handler_calls);
  handler_calls = 0;
  std::set_new_handler(handler_gives_up);
  CHECK(::operator new(NEVER, std::nothrow) == nullptr && handler_calls == 3,
        "nothrow new with a handler: %d handler calls (want 3)", handler_calls);

  // a handler that throws: new lets it through, nothrow new returns nullptr
  handler_calls = 0;
  std::set_new_handler(handler_throws);
  thrown = throws_bad_alloc([] { return ::operator new[](NEVER); });
  CHECK(thrown && handler_calls == 1, "new with a throwing handler: thrown %d, %d calls", thrown,
        handler_calls);
  handler_calls = 0;
  void *p = nullptr;
  try {
    p = ::operator new(NEVER, std::align_val_t(256), std::nothrow);
  } catch (...) {
    CHECK(false, "aligned nothrow new let the handler's exception out");
  }
  CHECK(p == nullptr && handler_calls == 1, "aligned nothrow new with a throwing handler: %p, %d calls",
        p, handler_calls);
  std::set_new_handler(nullptr);

  // and the allocator still works
  char *q = new char[100];
  CHECK(owns(q), "new after the failures");
  delete[] q;
}

int main() {
  *(void **)&owns = dlsym(RTLD_DEFAULT, "hak_owns");
  if (!owns) {
    std::fprintf(stderr, "newdelete: hak_owns not found: run me with LD_PRELOAD=libhakmem-override.so\n");
    return 1;
  }
  test_definers();
  test_blocks();
  test_containers();
  test_failures();
  if (failures) {
    std::fprintf(stderr, "newdelete: %d check(s) failed\n", failures);
    return 1;
  }
  std::printf("newdelete: ok hakmem=yes\n");
  return 0;
}

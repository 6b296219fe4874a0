// allocator_test.cc: every binary allocates through mimalloc (through the sanitizer's allocator in a sanitizer build).
#include <criterion/criterion.h>

#include <cstdlib>
#include <memory>
#include <string_view>

#if defined(__SANITIZE_ADDRESS__)
// meson.build drops mimalloc when b_sanitize is set: ASan must own malloc and operator new.
#include <sanitizer/asan_interface.h>

namespace {
// The block ASan's allocator knows `p` to be in (its exact requested size), or 0 if not its own.
std::size_t asan_heap_block(void* p) {
  void* start = nullptr;
  std::size_t size = 0;
  const char* kind = __asan_locate_address(p, nullptr, 0, &start, &size);
  return kind && std::string_view(kind) == "heap" && start == p ? size : 0;
}
}  // namespace

Test(allocator, malloc_and_new_come_from_the_sanitizer) {
  void* p = std::malloc(100);
  cr_assert_eq(asan_heap_block(p), 100u, "malloc must be served by ASan's allocator");
  std::free(p);
  auto q = std::make_unique<char[]>(4096);
  cr_assert_eq(asan_heap_block(q.get()), 4096u, "operator new must be served by ASan's allocator");
}
#else
#include <mimalloc.h>

Test(allocator, malloc_and_new_come_from_mimalloc) {
  void* p = std::malloc(100);
  cr_assert(mi_is_in_heap_region(p), "malloc must be served by mimalloc");
  std::free(p);
  auto q = std::make_unique<char[]>(4096);
  cr_assert(mi_is_in_heap_region(q.get()), "operator new must be served by mimalloc");
}
#endif

// allocator_test.cc: every binary allocates through mimalloc (through the sanitizer's allocator in a sanitizer build).
#include <criterion/criterion.h>

#include <cstdlib>
#include <memory>

#if defined(__SANITIZE_ADDRESS__)
// meson.build drops mimalloc when b_sanitize is set: ASan must own malloc and operator new.
#include <sanitizer/allocator_interface.h>

Test(allocator, malloc_and_new_come_from_the_sanitizer) {
  void* p = std::malloc(100);
  cr_assert(__sanitizer_get_ownership(p), "malloc must be served by ASan's allocator");
  std::free(p);
  auto q = std::make_unique<char[]>(4096);
  cr_assert(__sanitizer_get_ownership(q.get()), "operator new must be served by ASan's allocator");
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

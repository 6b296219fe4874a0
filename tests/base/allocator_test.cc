// allocator_test.cc: every binary allocates through mimalloc.
#include <criterion/criterion.h>
#include <mimalloc.h>

#include <cstdlib>
#include <memory>

Test(allocator, malloc_and_new_come_from_mimalloc) {
  void* p = std::malloc(100);
  cr_assert(mi_is_in_heap_region(p), "malloc must be served by mimalloc");
  std::free(p);
  auto q = std::make_unique<char[]>(4096);
  cr_assert(mi_is_in_heap_region(q.get()), "operator new must be served by mimalloc");
}

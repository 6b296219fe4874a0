// allocator.cc: makes mimalloc the allocator of every binary that links it.
// Linking libmimalloc.so interposes malloc/free; the new/delete overrides route C++
// allocations there too, and the reference below keeps --as-needed from dropping it.
#include <mimalloc-new-delete.h>
#include <mimalloc.h>

namespace sluice::base {
int allocator_version() { return mi_version(); }
}  // namespace sluice::base

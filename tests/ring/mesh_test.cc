// mesh_test.cc: the producer x consumer mesh loses and reorders nothing between loops.
#include <criterion/criterion.h>

#include "mesh_stress.h"

Test(ring_mesh, concurrent_pairs_lose_and_reorder_nothing, .timeout = 120) {
  cr_assert_eq(mesh_stress::run(3, 100000), 0u);
}

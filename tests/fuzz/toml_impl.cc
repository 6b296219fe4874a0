// toml_impl.cc: toml++'s parser compiled into the fuzz drivers with its internal assertions live (they abort).
// Untrusted input: none itself; it is the parser the config and editor drivers feed.
// Debian's libtomlplusplus is built with NDEBUG, where a failed TOML_ASSERT_ASSUME becomes an
// assumption the optimizer may exploit: undefined behaviour that the fuzzer cannot see. Built here
// from the same 3.3 headers with every assertion turned into an abort, so each input that would
// break one is a finding. The drivers that use it are compiled with TOML_HEADER_ONLY=0 and the
// same TOML_ASSERT (run.sh), so every translation unit agrees on the library's layout.
#ifndef TOML_ASSERT
#error "run.sh defines TOML_ASSERT for the fuzz build"
#endif
#define TOML_IMPLEMENTATION
#include <toml++/toml.h>

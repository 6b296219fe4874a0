// main.cc: the combined test binary's entry point; Criterion's own main drives it.
// Each tests/<module> library registers its tests by linking into this binary.

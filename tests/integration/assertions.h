// assertions.h: Criterion assertions shared by the integration tests.
#pragma once
#include <criterion/criterion.h>

#include <string>

#include "harness.h"

// Starts the daemon or fails the test with its log.
#define START(d)                                                         \
  do {                                                                   \
    bool started_ = (d).start();                                         \
    cr_assert(started_, "sluiced did not start: %s", (d).log().c_str()); \
  } while (0)

// The reply has this three-digit code.
#define EXPECT_CODE(reply, code)                                                   \
  do {                                                                             \
    std::string r_ = (reply);                                                      \
    cr_assert_eq(code_of(r_), (code), "expected %d, got: %s", (code), r_.c_str()); \
  } while (0)

// A command's output contains the text.
#define EXPECT_HAS(result, text)                                                                             \
  do {                                                                                                       \
    const command_result& r_ = (result);                                                                     \
    cr_assert(r_.output.find(text) != std::string::npos, "expected '%s' in:\n%s", std::string(text).c_str(), \
              r_.output.c_str());                                                                            \
  } while (0)

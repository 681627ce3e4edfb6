// What every fuzz target shares: a check that stops the run with a message when a property of
// the code under test does not hold (libFuzzer then saves the input that broke it).
#pragma once

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                            \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                 \
    }                                                                               \
  } while (0)

// True when `part` lies inside the `whole` buffer (views a parser returns must).
template <typename View, typename Span>
bool within(const View& part, const Span& whole) {
  if (part.empty()) return true;
  const char* b = whole.data();
  return part.data() >= b && part.data() + part.size() <= b + whole.size();
}

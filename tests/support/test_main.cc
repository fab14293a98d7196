// The main() of every test program: GoogleTest's, except that a test that needs the golden data
// (label golden) is skipped with one line when the data is absent (see golden_skipped()).
#include <gtest/gtest.h>

#include <cstdio>

#include "support/test_data.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (lipsync::testing::golden_skipped()) {
    // GoogleTest's own skip marker, which CTest reads as "skipped".
    std::printf(
        "[  SKIPPED ] needs the golden data in %s, which is absent: data made by the "
        "original Python code and librosa (README, \"Golden test data\")\n",
        lipsync::testing::golden_root().c_str());
    return 0;
  }
  return RUN_ALL_TESTS();
}

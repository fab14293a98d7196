// The text helpers' "did you mean": edit distance and the nearest word a typo could be.
#include "core/text.h"

#include <gtest/gtest.h>

namespace lipsync::core {
namespace {

TEST(EditDistance, CountsInsertionsDeletionsAndSubstitutions) {
  EXPECT_EQ(edit_distance("", ""), 0u);
  EXPECT_EQ(edit_distance("render", "render"), 0u);
  EXPECT_EQ(edit_distance("rendr", "render"), 1u);    // one left out
  EXPECT_EQ(edit_distance("rennder", "render"), 1u);  // one too many
  EXPECT_EQ(edit_distance("--audo", "--audio"), 1u);
  EXPECT_EQ(edit_distance("sreve", "serve"), 1u);  // two neighbours swapped
  EXPECT_EQ(edit_distance("abcd", "badc"), 2u);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("abc", ""), 3u);
}

TEST(NearestWord, SuggestsWhatATypoMeantAndNothingForAStrangeWord) {
  const std::vector<std::string> commands = {"render", "serve", "client", "live-client", "config"};
  EXPECT_EQ(nearest_word("rendr", commands), "render");
  EXPECT_EQ(nearest_word("sreve", commands), "serve");
  EXPECT_EQ(nearest_word("servee", commands), "serve");
  EXPECT_EQ(nearest_word("live-clinet", commands), "live-client");
  EXPECT_EQ(nearest_word("quantum", commands), "");
  EXPECT_EQ(nearest_word("x", commands), "");
  EXPECT_EQ(nearest_word("rendr", {}), "");
}

}  // namespace
}  // namespace lipsync::core

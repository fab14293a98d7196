#include "core/error.h"

#include <gtest/gtest.h>

#include "core/check.h"

namespace lipsync {
namespace {

TEST(Error, FactoriesSetCodeAndMessage) {
  const Error e = Error::not_found("model 'x': no such model");
  EXPECT_EQ(e.code(), Error::Code::kNotFound);
  EXPECT_EQ(e.message(), "model 'x': no such model");
  EXPECT_STREQ(e.what(), "model 'x': no such model");
  EXPECT_EQ(Error::invalid_input("a").code(), Error::Code::kInvalidInput);
  EXPECT_EQ(Error::resource_exhausted("a").code(), Error::Code::kResourceExhausted);
  EXPECT_EQ(Error::unavailable("a").code(), Error::Code::kUnavailable);
  EXPECT_EQ(Error::internal("a").code(), Error::Code::kInternal);
}

TEST(Error, WithContextPrefixesMessageAndKeepsCode) {
  const Error e = Error::invalid_input("sample 3 is NaN").with_context("'a.wav'");
  EXPECT_EQ(e.code(), Error::Code::kInvalidInput);
  EXPECT_EQ(e.message(), "'a.wav': sample 3 is NaN");
}

TEST(Error, ExitCodesAreDistinctAndNonZero) {
  EXPECT_EQ(exit_code_for(Error::Code::kInvalidInput), 2);
  EXPECT_EQ(exit_code_for(Error::Code::kNotFound), 3);
  EXPECT_EQ(exit_code_for(Error::Code::kResourceExhausted), 4);
  EXPECT_EQ(exit_code_for(Error::Code::kUnavailable), 5);
  EXPECT_EQ(exit_code_for(Error::Code::kConflict), 6);
  EXPECT_EQ(exit_code_for(Error::Code::kInternal), 70);
  EXPECT_EQ(to_string(Error::Code::kResourceExhausted), "resource_exhausted");
}

TEST(Check, FailedCheckIsInternalAndPrintsBothValues) {
  try {
    const int a = 3;
    LIPSYNC_CHECK_EQ(a, 4);
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Error::Code::kInternal);
    EXPECT_NE(e.message().find("a == 4 (3 vs 4)"), std::string::npos) << e.message();
  }
  EXPECT_NO_THROW(LIPSYNC_CHECK_LE(1, 1));
}

}  // namespace
}  // namespace lipsync

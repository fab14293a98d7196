#include "core/file_util.h"

#include <gtest/gtest.h>

#include <vector>

#include "core/error.h"
#include "support/test_data.h"

namespace lipsync::core {
namespace {

TEST(WriteFileAtomically, WritesBytesAndLeavesNoTemporary) {
  testing::TempDir dir;
  const std::vector<float> values{1.0f, -2.5f, 3.25f};
  write_file_atomically(dir / "a.f32", std::as_bytes(std::span(values)));
  EXPECT_EQ(testing::read_f32(dir / "a.f32"), values);
  EXPECT_FALSE(std::filesystem::exists(dir / "a.f32.partial"));
}

TEST(WriteFileAtomically, MissingFolderIsInvalidInputNamingThePath) {
  testing::TempDir dir;
  const std::vector<float> values{1.0f};
  try {
    write_file_atomically(dir / "no" / "such" / "x.f32", std::as_bytes(std::span(values)));
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Error::Code::kInvalidInput);
    EXPECT_NE(e.message().find("x.f32"), std::string::npos) << e.message();
  }
}

}  // namespace
}  // namespace lipsync::core

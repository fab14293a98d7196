// The main() of every test program: GoogleTest's, with two differences.
// - A test that needs the golden data (label golden) is skipped with one line when the data is
//   absent (see golden_skipped()).
// - A test suite whose SetUpTestSuite fails has its tests marked skipped by GoogleTest, and CTest
//   reads "[  SKIPPED ]" as skipped whatever the exit code: a broken fixture would pass unseen.
//   Here those tests are reported as failed instead, and the program fails.
#include <gtest/gtest.h>

#include <cstdio>

#include "support/test_data.h"

namespace {

// GoogleTest's own printer, except for the tests of a suite whose set-up failed.
class SetUpFailuresFail final : public ::testing::TestEventListener {
 public:
  explicit SetUpFailuresFail(::testing::TestEventListener* printer) : printer_(printer) {}
  ~SetUpFailuresFail() override { delete printer_; }

  void OnTestProgramStart(const ::testing::UnitTest& u) override {
    printer_->OnTestProgramStart(u);
  }
  void OnTestIterationStart(const ::testing::UnitTest& u, int i) override {
    printer_->OnTestIterationStart(u, i);
  }
  void OnEnvironmentsSetUpStart(const ::testing::UnitTest& u) override {
    printer_->OnEnvironmentsSetUpStart(u);
  }
  void OnEnvironmentsSetUpEnd(const ::testing::UnitTest& u) override {
    printer_->OnEnvironmentsSetUpEnd(u);
  }
  void OnTestSuiteStart(const ::testing::TestSuite& s) override { printer_->OnTestSuiteStart(s); }
  void OnTestStart(const ::testing::TestInfo& t) override { printer_->OnTestStart(t); }
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    printer_->OnTestPartResult(r);
  }
  void OnTestEnd(const ::testing::TestInfo& t) override {
    const ::testing::TestSuite* suite = ::testing::UnitTest::GetInstance()->current_test_suite();
    if (t.result()->Skipped() && suite != nullptr && suite->ad_hoc_test_result().Failed()) {
      std::printf("[  FAILED  ] %s.%s: not run, its suite's SetUpTestSuite failed (above)\n",
                  t.test_suite_name(), t.name());
      set_up_failed_ = true;
      return;
    }
    printer_->OnTestEnd(t);
  }
  void OnTestSuiteEnd(const ::testing::TestSuite& s) override { printer_->OnTestSuiteEnd(s); }
  void OnEnvironmentsTearDownStart(const ::testing::UnitTest& u) override {
    printer_->OnEnvironmentsTearDownStart(u);
  }
  void OnEnvironmentsTearDownEnd(const ::testing::UnitTest& u) override {
    printer_->OnEnvironmentsTearDownEnd(u);
  }
  void OnTestIterationEnd(const ::testing::UnitTest& u, int i) override {
    // The summary would list those tests as skipped.
    if (set_up_failed_) {
      std::printf("[  FAILED  ] a test suite's SetUpTestSuite failed: its tests did not run\n");
      return;
    }
    printer_->OnTestIterationEnd(u, i);
  }
  void OnTestProgramEnd(const ::testing::UnitTest& u) override { printer_->OnTestProgramEnd(u); }

 private:
  ::testing::TestEventListener* printer_;  // owned
  bool set_up_failed_ = false;
};

}  // namespace

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
  ::testing::TestEventListeners& listeners = ::testing::UnitTest::GetInstance()->listeners();
  listeners.Append(new SetUpFailuresFail(listeners.Release(listeners.default_result_printer())));
  return RUN_ALL_TESTS();
}

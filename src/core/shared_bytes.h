// SharedBytes: bytes shared between threads without a copy, read-only. They either live in the
// object's own vector (an encoded JPEG) or in whatever `owner` keeps alive (the pixels of the
// cv::Mat a raw frame was drawn in): a live session's raw 1280 x 720 frame goes to its viewers
// and calls as it was made, not copied into 2.7 MB of vector first.
// Thread contract: immutable once made; share it through std::shared_ptr<const SharedBytes>.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace lipsync::core {

class SharedBytes {
 public:
  explicit SharedBytes(std::vector<std::uint8_t> bytes)
      : own_(std::move(bytes)), data_(own_.data()), size_(own_.size()) {}
  // `size` bytes at `data`, valid as long as `owner` lives.
  SharedBytes(const std::uint8_t* data, std::size_t size, std::shared_ptr<const void> owner)
      : owner_(std::move(owner)), data_(data), size_(size) {}
  SharedBytes(const SharedBytes&) = delete;
  SharedBytes& operator=(const SharedBytes&) = delete;

  const std::uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }
  const std::uint8_t* begin() const { return data_; }
  const std::uint8_t* end() const { return data_ + size_; }
  std::vector<std::uint8_t> to_vector() const { return {begin(), end()}; }

 private:
  const std::vector<std::uint8_t> own_;
  const std::shared_ptr<const void> owner_;
  const std::uint8_t* const data_;
  const std::size_t size_;
};

}  // namespace lipsync::core

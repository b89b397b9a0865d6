// 64-byte aligned float buffers for packed panels and workspaces.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <new>

namespace convkit::base {

constexpr std::size_t kAlign = 64;

// Grow-only buffer: reserve(n) keeps the old storage when it is large enough (contents are not
// preserved across a growth). Moves, never copies.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(std::size_t floats) { reserve(floats); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  AlignedBuffer(AlignedBuffer&& o) noexcept : data_(o.data_), size_(o.size_) {
    o.data_ = nullptr;
    o.size_ = 0;
  }
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    if (this != &o) {
      std::free(data_);
      data_ = o.data_;
      size_ = o.size_;
      o.data_ = nullptr;
      o.size_ = 0;
    }
    return *this;
  }
  ~AlignedBuffer() { std::free(data_); }

  float* reserve(std::size_t floats) {
    if (floats > size_) {
      std::free(data_);
      data_ = nullptr;
      size_ = 0;
      const std::size_t bytes = (floats * sizeof(float) + kAlign - 1) / kAlign * kAlign;
      data_ = static_cast<float*>(std::aligned_alloc(kAlign, bytes));
      if (!data_) throw std::bad_alloc();
      size_ = floats;
    }
    return data_;
  }
  float* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  float* data_ = nullptr;
  std::size_t size_ = 0;
};

// Rounds a float count up so consecutive sub-buffers stay 64-byte aligned.
constexpr std::size_t align_floats(std::size_t floats) {
  return (floats + kAlign / sizeof(float) - 1) / (kAlign / sizeof(float)) *
         (kAlign / sizeof(float));
}

}  // namespace convkit::base

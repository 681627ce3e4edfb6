// The read side of a buffered libuv stream (a worker's client and backend connections, rend-l2's
// connections): the bytes that have arrived and that no parser has consumed yet.
//
// A request parsed from it may refer to its bytes by views until the request is consumed or has
// copied what it keeps: the unparsed tail moves to the front, or the buffer grows, only in
// next_read(), which libuv's alloc callback calls when it is about to read again.
//
// Memory: an idle connection need not hold a buffer at all. release_if_empty() gives it back
// once everything read has been consumed; the thread keeps a few standard-size buffers aside so
// that busy connections taking and giving back buffers do not call malloc for each read.
#pragma once

#include <uv.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

namespace rend {

class ReadBuffer {
 public:
  // When less than `min_room` is left at the end for the next read, the unparsed tail moves to the
  // front; if that is still not enough, the buffer grows to twice its size, or to `grow_room`
  // beyond what it holds if that is more.
  ReadBuffer(size_t min_room, size_t grow_room) : min_room_(min_room), grow_room_(grow_room) {}
  ReadBuffer(const ReadBuffer&) = delete;
  ReadBuffer& operator=(const ReadBuffer&) = delete;
  ~ReadBuffer() { give_back(); }

  // Room for the next read, at the end of what is buffered (for uv_read_start's alloc callback).
  uv_buf_t next_read() {
    if (start_ == end_) start_ = end_ = 0;
    if (capacity_ - end_ < min_room_) {
      if (start_ > 0) {
        std::memmove(buf_.get(), buf_.get() + start_, end_ - start_);
        end_ -= start_;
        start_ = 0;
      }
      if (capacity_ - end_ < min_room_) grow(std::max(capacity_ * 2, end_ + grow_room_));
    }
    return uv_buf_init(buf_.get() + end_, static_cast<unsigned>(capacity_ - end_));
  }
  // `n` bytes were read into the room next_read() gave.
  void commit(size_t n) { end_ += n; }

  std::span<const char> unparsed() const { return {buf_.get() + start_, end_ - start_}; }
  size_t size() const { return end_ - start_; }
  bool empty() const { return start_ == end_; }
  void consume(size_t n) {
    start_ += n;
    if (start_ == end_) start_ = end_ = 0;
  }
  void clear() { start_ = end_ = 0; }
  // Nothing buffered: gives back a buffer that a burst made larger than `keep` bytes.
  void shrink_if_empty(size_t keep) {
    if (empty() && capacity_ > keep) give_back();
  }
  // Nothing buffered: gives the buffer back (an idle connection holds none).
  void release_if_empty() {
    if (empty()) give_back();
  }
  size_t capacity() const { return capacity_; }

 private:
  // Buffers of the usual first size, kept aside by this thread for the next connection that
  // reads. A few suffice: a loop turn reads one connection at a time.
  struct Spares {
    static constexpr size_t kMax = 8;
    size_t size = 0;
    std::vector<std::unique_ptr<char[]>> buffers;
  };
  static Spares& spares() {
    static thread_local Spares s;
    return s;
  }

  void grow(size_t capacity) {
    std::unique_ptr<char[]> next = take(capacity);
    if (end_ > 0) std::memcpy(next.get(), buf_.get(), end_);  // start_ is 0 here
    park(std::move(buf_), capacity_);
    buf_ = std::move(next);
    capacity_ = capacity;
  }

  void give_back() {
    park(std::move(buf_), capacity_);
    capacity_ = 0;
    start_ = end_ = 0;
  }

  static std::unique_ptr<char[]> take(size_t capacity) {
    Spares& s = spares();
    if (capacity == s.size && !s.buffers.empty()) {
      std::unique_ptr<char[]> b = std::move(s.buffers.back());
      s.buffers.pop_back();
      return b;
    }
    return std::unique_ptr<char[]>(new char[capacity]);  // not zeroed: only what a read wrote is looked at
  }

  static void park(std::unique_ptr<char[]> buffer, size_t capacity) {
    if (buffer == nullptr) return;
    Spares& s = spares();
    if (s.size == 0) s.size = capacity;
    if (capacity == s.size && s.buffers.size() < Spares::kMax) s.buffers.push_back(std::move(buffer));
  }

  size_t min_room_;
  size_t grow_room_;
  std::unique_ptr<char[]> buf_;
  size_t capacity_ = 0;
  size_t start_ = 0;
  size_t end_ = 0;
};

}  // namespace rend

// The read side of a buffered libuv stream (a worker's client and backend connections, rend-l2's
// connections): the bytes that have arrived and that no parser has consumed yet.
//
// A request parsed from it may refer to its bytes by views until the request is consumed or has
// copied what it keeps: the unparsed tail moves to the front, or the buffer grows, only in
// next_read(), which libuv's alloc callback calls when it is about to read again.
#pragma once

#include <uv.h>

#include <algorithm>
#include <cstring>
#include <span>
#include <vector>

namespace rend {

class ReadBuffer {
 public:
  // When less than `min_room` is left at the end for the next read, the unparsed tail moves to the
  // front; if that is still not enough, the buffer grows to twice its size, or to `grow_room`
  // beyond what it holds if that is more.
  ReadBuffer(size_t min_room, size_t grow_room) : min_room_(min_room), grow_room_(grow_room) {}

  // Room for the next read, at the end of what is buffered (for uv_read_start's alloc callback).
  uv_buf_t next_read() {
    if (start_ == end_) start_ = end_ = 0;
    if (buf_.size() - end_ < min_room_) {
      if (start_ > 0) {
        std::memmove(buf_.data(), buf_.data() + start_, end_ - start_);
        end_ -= start_;
        start_ = 0;
      }
      if (buf_.size() - end_ < min_room_) buf_.resize(std::max(buf_.size() * 2, end_ + grow_room_));
    }
    return uv_buf_init(buf_.data() + end_, static_cast<unsigned>(buf_.size() - end_));
  }
  // `n` bytes were read into the room next_read() gave.
  void commit(size_t n) { end_ += n; }

  std::span<const char> unparsed() const { return {buf_.data() + start_, end_ - start_}; }
  size_t size() const { return end_ - start_; }
  bool empty() const { return start_ == end_; }
  void consume(size_t n) {
    start_ += n;
    if (start_ == end_) start_ = end_ = 0;
  }
  void clear() { start_ = end_ = 0; }
  // Nothing buffered: gives back a buffer that a burst made larger than `keep` bytes.
  void shrink_if_empty(size_t keep) {
    if (empty() && buf_.size() > keep) std::vector<char>().swap(buf_);
  }

 private:
  size_t min_room_;
  size_t grow_room_;
  std::vector<char> buf_;
  size_t start_ = 0;
  size_t end_ = 0;
};

}  // namespace rend

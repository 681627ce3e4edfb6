// A client connection's ops in request order, replies leaving from the front.
//
// A FIFO on one vector rather than a std::deque, which allocates about 600 bytes as soon as it is
// constructed: an idle connection (most of a busy server's thousands) holds nothing here, one
// that sent a request or two a few bytes. The front advances by an index; the slots before it are
// dropped when the queue empties or once they are half of it, so a client that always has
// requests in flight does not grow it without bound.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "worker/op.h"

namespace rend::worker {

class ReplyQueue {
 public:
  bool empty() const { return head_ == ops_.size(); }
  size_t size() const { return ops_.size() - head_; }
  Op& front() const { return *ops_[head_]; }
  void push_back(std::shared_ptr<Op> op) { ops_.push_back(std::move(op)); }
  void pop_front() {
    ops_[head_++].reset();
    if (head_ == ops_.size()) {
      ops_.clear();
      head_ = 0;
    } else if (head_ >= 64 && head_ * 2 >= ops_.size()) {
      ops_.erase(ops_.begin(), ops_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }
  void clear() {
    ops_.clear();
    head_ = 0;
  }
  // The ops still queued, front first.
  std::span<const std::shared_ptr<Op>> ops() const { return {ops_.data() + head_, size()}; }

 private:
  std::vector<std::shared_ptr<Op>> ops_;
  size_t head_ = 0;
};

}  // namespace rend::worker

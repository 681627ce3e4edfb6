// The write side of a buffered libuv stream (a worker's client and backend connections, rend-l2's
// connections): what is appended during a loop turn goes out with one write; what the kernel does
// not take at once goes out with one uv_write, and what is appended meanwhile waits for it, so at
// most one write is in flight and unsent() is what the peer has not taken yet.
//
// Memory: once everything buffered has gone to the kernel, the buffer goes back to a few kept
// aside by the thread, so an idle connection holds none, and the next one to reply reuses it.
//
// Lifetime: a write in flight holds only a weak reference to its queue, so the queue (and its
// owner) may go away before the write finishes; reset() drops a write in flight on a stream that
// is gone (a backend's reconnect), whose completion then changes nothing and calls nothing.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace rend {

class WriteQueue {
 public:
  // A write the kernel did not take at once has finished: its libuv status and its bytes.
  using Done = std::function<void(int status, size_t bytes)>;

  // Appended bytes go out with the next flush.
  std::string& buffer() {
    std::string& out = state_->out;
    if (out.capacity() < kSmall) take_spare(out);
    return out;
  }
  bool writing() const { return state_->writing; }
  bool idle() const { return state_->out.empty() && !state_->writing; }
  size_t unsent() const { return state_->out.size() + state_->in_flight; }

  // Forgets what is buffered and a write in flight (the stream it was on is gone).
  void reset() {
    state_->out.clear();
    state_->writing = false;
    state_->in_flight = 0;
    ++state_->generation;
  }

  // Sends what is buffered, unless a write is in flight or nothing is buffered. Returns the bytes
  // the kernel took at once (0 if none), or a negative libuv error. What it did not take goes out
  // with one uv_write, and `done` runs when that has finished, once the queue is ready to flush
  // again.
  int flush(uv_stream_t* stream, Done done) {
    State& s = *state_;
    if (s.writing || s.out.empty()) return 0;
    uv_buf_t buf = uv_buf_init(s.out.data(), static_cast<unsigned>(s.out.size()));
    int n = uv_try_write(stream, &buf, 1);
    if (n == UV_EAGAIN) n = 0;
    if (n < 0) return n;
    if (static_cast<size_t>(n) == s.out.size()) {
      give_back(s.out);
      return n;
    }
    auto* w = new Request{{}, s.out.substr(static_cast<size_t>(n)), state_, s.generation, std::move(done)};
    give_back(s.out);
    s.in_flight = w->data.size();
    s.writing = true;
    w->req.data = w;
    uv_buf_t rest = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
    uv_write(&w->req, stream, &rest, 1, [](uv_write_t* req, int status) {
      std::unique_ptr<Request> w(static_cast<Request*>(req->data));
      const std::shared_ptr<State> queue = w->queue.lock();
      if (queue == nullptr || queue->generation != w->generation) return;  // its stream is gone
      queue->writing = false;
      queue->in_flight = 0;
      if (w->done) w->done(status, w->data.size());
    });
    return n;
  }

 private:
  static constexpr size_t kSmall = 64;            // below this a buffer is not worth keeping
  static constexpr size_t kMaxSpare = 64 * 1024;  // larger buffers (a big value's reply) are freed
  static std::vector<std::string>& spares() {
    static thread_local std::vector<std::string> s;
    return s;
  }
  static void take_spare(std::string& out) {
    auto& s = spares();
    if (s.empty() || !out.empty()) return;
    out.swap(s.back());
    s.pop_back();
  }
  static void give_back(std::string& out) {
    out.clear();
    auto& s = spares();
    if (out.capacity() >= kSmall && out.capacity() <= kMaxSpare && s.size() < 8) {
      s.emplace_back().swap(out);
    } else {
      std::string().swap(out);
    }
  }

  struct State {
    std::string out;
    size_t in_flight = 0;
    bool writing = false;
    uint64_t generation = 0;
  };
  struct Request {
    uv_write_t req;
    std::string data;
    std::weak_ptr<State> queue;
    uint64_t generation;
    Done done;
  };
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

}  // namespace rend

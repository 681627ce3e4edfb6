#include "l2/executor.h"

namespace rend::l2 {

Executor::Executor(uv_loop_t* loop, int threads) : async_(new uv_async_t) {
  uv_async_init(loop, async_, [](uv_async_t* h) { static_cast<Executor*>(h->data)->drain_done(); });
  async_->data = this;
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { worker(); });
}

Executor::~Executor() { shutdown(); }

void Executor::submit(Job* job) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(job);
  }
  wake_.notify_one();
}

void Executor::worker() {
  for (;;) {
    Job* job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left to run
      job = queue_.front();
      queue_.pop_front();
    }
    job->run();
    {
      std::lock_guard<std::mutex> lock(done_mutex_);
      done_.push_back(job);
    }
    // Coalesces: one wake-up of the loop may complete many jobs.
    uv_async_send(async_);
  }
}

void Executor::drain_done() {
  std::vector<Job*> done;
  {
    std::lock_guard<std::mutex> lock(done_mutex_);
    done.swap(done_);
  }
  for (Job* job : done) job->complete();
}

void Executor::shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  drain_done();
  uv_close(reinterpret_cast<uv_handle_t*>(async_), [](uv_handle_t* h) { delete reinterpret_cast<uv_async_t*>(h); });
}

}  // namespace rend::l2

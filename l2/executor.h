// The worker threads that run requests off the event loop, and the way results come back to it.
//
// submit() (loop thread) queues a Job; one of `threads` workers calls job->run(); the finished job
// is queued back and the loop is woken with a uv_async, whose callback calls job->complete() on
// the loop thread. A job is owned by its submitter throughout (the executor only holds pointers);
// it must stay alive until complete() has been called.
//
// shutdown() (loop thread) waits for the workers to finish what is queued, joins them, completes
// the remaining jobs and closes the async handle. No job may be submitted after it.
#pragma once

#include <uv.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

namespace rend::l2 {

class Job {
 public:
  virtual ~Job() = default;
  virtual void run() = 0;       // on a worker thread
  virtual void complete() = 0;  // on the loop thread, after run()
};

class Executor {
 public:
  Executor(uv_loop_t* loop, int threads);
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;
  ~Executor();

  void submit(Job* job);
  void shutdown();

 private:
  void worker();
  void drain_done();

  uv_async_t* async_;  // freed in its close callback
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job*> queue_;
  std::mutex done_mutex_;
  std::vector<Job*> done_;
  std::vector<std::thread> threads_;
  bool stopping_ = false;
  bool shut_down_ = false;
};

}  // namespace rend::l2

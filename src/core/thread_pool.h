// A small fixed pool of worker threads for data-parallel loops (the CPU backend's row loops).
// parallel_for splits [begin, end) into chunks of at least `grain` items; the caller thread works too and
// returns when every chunk is done. Small ranges, one-thread pools and calls made from inside a task run
// inline on the calling thread (nested calls cannot deadlock). The first exception thrown by a task is
// rethrown to the caller once the remaining chunks have been skipped or finished.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace sparvar {

class ThreadPool {
 public:
  using RangeFn = std::function<void(int64_t lo, int64_t hi)>;

  // threads <= 0: std::thread::hardware_concurrency(). threads counts the caller, so a pool of 1 has no workers.
  explicit ThreadPool(int threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  void parallel_for(int64_t begin, int64_t end, int64_t grain, const RangeFn& fn);

 private:
  struct Job;
  void worker_loop();
  static void run_chunks(Job& job);

  std::vector<std::thread> workers_;
  std::mutex submit_mutex_;  // one job at a time when several threads share the pool
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  Job* job_ = nullptr;
  uint64_t generation_ = 0;
  size_t busy_workers_ = 0;
  bool stop_ = false;
};

}  // namespace sparvar

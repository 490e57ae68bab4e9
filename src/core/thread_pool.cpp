#include "core/thread_pool.h"

#include <algorithm>
#include <atomic>

namespace sparvar {

namespace {
// Set while a thread runs chunks of some job: a nested parallel_for then runs inline instead of waiting
// for workers that may all be busy with the outer job.
thread_local bool t_inside_task = false;
}  // namespace

struct ThreadPool::Job {
  const RangeFn* fn = nullptr;
  int64_t begin = 0;
  int64_t end = 0;
  int64_t chunk = 1;
  int64_t chunks = 0;
  std::atomic<int64_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex error_mutex;
  std::exception_ptr error;
};

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  workers_.reserve(static_cast<size_t>(threads - 1));
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::run_chunks(Job& job) {
  const bool was_inside = t_inside_task;
  t_inside_task = true;
  while (!job.failed.load(std::memory_order_relaxed)) {
    const int64_t c = job.next.fetch_add(1);
    if (c >= job.chunks) break;
    const int64_t lo = job.begin + c * job.chunk;
    const int64_t hi = std::min(job.end, lo + job.chunk);
    try {
      (*job.fn)(lo, hi);
    } catch (...) {
      std::lock_guard<std::mutex> lock(job.error_mutex);
      if (!job.error) job.error = std::current_exception();
      job.failed = true;
    }
  }
  t_inside_task = was_inside;
}

void ThreadPool::worker_loop() {
  uint64_t seen = 0;
  for (;;) {
    Job* job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      job = job_;
    }
    run_chunks(*job);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (--busy_workers_ == 0) done_.notify_one();
    }
  }
}

void ThreadPool::parallel_for(int64_t begin, int64_t end, int64_t grain, const RangeFn& fn) {
  if (end <= begin) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t n = end - begin;
  if (workers_.empty() || n <= grain || t_inside_task) {
    fn(begin, end);
    return;
  }
  // A few chunks per thread balance uneven rows without making chunks smaller than grain.
  const int64_t max_chunks = static_cast<int64_t>(threads()) * 4;
  const int64_t wanted = std::min((n + grain - 1) / grain, max_chunks);
  Job job;
  job.fn = &fn;
  job.begin = begin;
  job.end = end;
  job.chunk = (n + wanted - 1) / wanted;
  job.chunks = (n + job.chunk - 1) / job.chunk;

  std::lock_guard<std::mutex> submit(submit_mutex_);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = &job;
    busy_workers_ = workers_.size();
    ++generation_;
  }
  wake_.notify_all();
  run_chunks(job);
  {
    // Workers hold a pointer to job until they report back: wait for all of them, not just the chunks.
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return busy_workers_ == 0; });
    job_ = nullptr;
  }
  if (job.error) std::rethrow_exception(job.error);
}

}  // namespace sparvar

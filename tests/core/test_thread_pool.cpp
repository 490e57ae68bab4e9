#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/thread_pool.h"

using namespace sparvar;

TEST(ThreadPool, CoversEveryIndexExactlyOnce) {
  ThreadPool pool(4);
  EXPECT_EQ(pool.threads(), 4);
  for (int64_t n : {1, 7, 100, 1001, 65536}) {
    for (int64_t grain : {1, 3, 64, 100000}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      pool.parallel_for(5, 5 + n, grain, [&](int64_t lo, int64_t hi) {
        ASSERT_LE(5, lo);
        ASSERT_LT(lo, hi);
        ASSERT_LE(hi, 5 + n);
        for (int64_t i = lo; i < hi; ++i) hits[static_cast<size_t>(i - 5)]++;
      });
      for (auto& h : hits) ASSERT_EQ(h.load(), 1) << "n=" << n << " grain=" << grain;
    }
  }
}

TEST(ThreadPool, EmptyRangeCallsNothing) {
  ThreadPool pool(3);
  int calls = 0;
  pool.parallel_for(4, 4, 1, [&](int64_t, int64_t) { ++calls; });
  pool.parallel_for(9, 2, 1, [&](int64_t, int64_t) { ++calls; });
  EXPECT_EQ(calls, 0);
}

TEST(ThreadPool, SmallRangesAndSingleThreadRunOnCaller) {
  const auto caller = std::this_thread::get_id();
  ThreadPool pool(4);
  int calls = 0;
  pool.parallel_for(0, 10, 10, [&](int64_t lo, int64_t hi) {
    EXPECT_EQ(std::this_thread::get_id(), caller);
    EXPECT_EQ(lo, 0);
    EXPECT_EQ(hi, 10);
    ++calls;
  });
  EXPECT_EQ(calls, 1);
  ThreadPool single(1);
  EXPECT_EQ(single.threads(), 1);
  single.parallel_for(0, 1000, 1, [&](int64_t lo, int64_t hi) {
    EXPECT_EQ(std::this_thread::get_id(), caller);
    EXPECT_EQ(hi - lo, 1000);
    ++calls;
  });
  EXPECT_EQ(calls, 2);
}

TEST(ThreadPool, UsesSeveralThreadsAndChunksRespectGrain) {
  ThreadPool pool(4);
  std::mutex m;
  std::set<std::thread::id> ids;
  std::atomic<int> small_chunks{0};
  pool.parallel_for(0, 4000, 50, [&](int64_t lo, int64_t hi) {
    if (hi - lo < 50 && hi != 4000) small_chunks++;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    std::lock_guard<std::mutex> lock(m);
    ids.insert(std::this_thread::get_id());
  });
  EXPECT_EQ(small_chunks.load(), 0);
  EXPECT_GT(ids.size(), 1u);
}

TEST(ThreadPool, PropagatesTheFirstException) {
  ThreadPool pool(4);
  std::atomic<int> after{0};
  try {
    pool.parallel_for(0, 1000, 1, [&](int64_t lo, int64_t) {
      if (lo == 0) throw std::runtime_error("chunk zero failed");
      after++;
    });
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "chunk zero failed");
  }
  // The pool stays usable after a failure.
  std::atomic<int64_t> sum{0};
  pool.parallel_for(0, 100, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) sum += i;
  });
  EXPECT_EQ(sum.load(), 4950);
  // Inline path propagates too.
  EXPECT_THROW(pool.parallel_for(0, 3, 10, [](int64_t, int64_t) { throw std::logic_error("x"); }), std::logic_error);
}

TEST(ThreadPool, NestedCallsRunInline) {
  ThreadPool pool(4);
  std::atomic<int64_t> total{0};
  pool.parallel_for(0, 16, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i)
      pool.parallel_for(0, 100, 1, [&](int64_t a, int64_t b) { total += b - a; });
  });
  EXPECT_EQ(total.load(), 1600);
}

TEST(ThreadPool, SeveralCallerThreadsShareOnePool) {
  ThreadPool pool(3);
  std::atomic<int64_t> total{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t)
    callers.emplace_back([&] {
      for (int rep = 0; rep < 50; ++rep)
        pool.parallel_for(0, 1000, 10, [&](int64_t lo, int64_t hi) { total += hi - lo; });
    });
  for (auto& c : callers) c.join();
  EXPECT_EQ(total.load(), 4 * 50 * 1000);
}

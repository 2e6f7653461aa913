// WorkPool: a few threads that run the iterations of a loop in parallel.
//
// ParallelFor(n, fn) calls fn(i) once for every i in [0, n) and returns when
// all calls have returned. The calling thread works too, so a pool of
// `helpers` threads runs the loop on helpers + 1 threads; a pool of 0 helpers
// is a plain loop. Iterations are claimed one at a time from a shared
// counter, so uneven iterations (a block that compresses slowly) balance
// themselves. One loop at a time gets the helpers; a caller that starts a
// loop while another runs does all of its iterations itself.
// fn must not throw and must not call ParallelFor on the same pool.
// Thread safety: thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace blockhaus {

class WorkPool {
 public:
  // Its threads are named `name` (core/base/thread_name.h).
  WorkPool(int helpers, std::string name);
  ~WorkPool();
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  void ParallelFor(size_t n, const std::function<void(size_t)>& fn);
  int helpers() const { return static_cast<int>(threads_.size()); }

 private:
  void Help();
  // Runs iterations of the current loop until none is left.
  void Drain();

  std::mutex run_mu_;  // one loop at a time
  std::mutex mu_;
  std::condition_variable wake_;  // helpers: a loop started, or stop
  std::condition_variable idle_;  // caller: every helper left the loop
  const std::function<void(size_t)>* fn_ = nullptr;  // guarded by mu_
  size_t n_ = 0;                                      // guarded by mu_
  uint64_t generation_ = 0;                           // guarded by mu_
  int busy_ = 0;                                      // guarded by mu_
  bool stop_ = false;                                 // guarded by mu_
  std::atomic<size_t> next_{0};
  std::vector<std::thread> threads_;
};

}  // namespace blockhaus

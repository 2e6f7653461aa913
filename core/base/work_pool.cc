#include "core/base/work_pool.h"

#include "core/base/thread_name.h"

namespace blockhaus {

WorkPool::WorkPool(int helpers, std::string name) {
  for (int i = 0; i < helpers; ++i) {
    threads_.emplace_back([this, name] {
      NameThisThread(name);
      Help();
    });
  }
}

WorkPool::~WorkPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void WorkPool::Drain() {
  const std::function<void(size_t)>& fn = *fn_;
  for (size_t i = next_.fetch_add(1, std::memory_order_relaxed); i < n_;
       i = next_.fetch_add(1, std::memory_order_relaxed)) {
    fn(i);
  }
}

void WorkPool::Help() {
  uint64_t seen = 0;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
    if (stop_) return;
    seen = generation_;
    if (fn_ == nullptr) continue;  // that loop already finished
    ++busy_;
    lock.unlock();
    Drain();
    lock.lock();
    if (--busy_ == 0) idle_.notify_all();
  }
}

void WorkPool::ParallelFor(size_t n, const std::function<void(size_t)>& fn) {
  if (threads_.empty() || n < 2) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  // A second loop at once runs on its caller alone: its callers (writers
  // of many blocks) are threads already working in parallel.
  std::unique_lock<std::mutex> one_loop(run_mu_, std::try_to_lock);
  if (!one_loop.owns_lock()) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    fn_ = &fn;
    n_ = n;
    next_.store(0, std::memory_order_relaxed);
    ++generation_;
  }
  wake_.notify_all();
  Drain();
  std::unique_lock<std::mutex> lock(mu_);
  // Helpers that joined late find the counter past n and leave at once; the
  // loop is over when none is inside Drain any more.
  idle_.wait(lock, [&] { return busy_ == 0; });
  fn_ = nullptr;
}

}  // namespace blockhaus

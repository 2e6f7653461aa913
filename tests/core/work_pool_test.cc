#include "core/base/work_pool.h"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/base/thread_name.h"

namespace blockhaus {
namespace {

TEST_CASE("work pool: every iteration runs once, on several threads") {
  for (int helpers : {0, 1, 3}) {
    WorkPool pool(helpers, "bh-test");
    CHECK(pool.helpers() == helpers);
    for (size_t n : {0, 1, 2, 7, 1000}) {
      std::vector<std::atomic<int>> runs(n);
      pool.ParallelFor(n, [&](size_t i) { runs[i].fetch_add(1); });
      for (size_t i = 0; i < n; ++i) CHECK_MESSAGE(runs[i].load() == 1, "i=", i, " n=", n);
    }
  }
  // With a helper, two threads take part: every iteration waits (up to a
  // shared deadline) until a second thread has shown up.
  WorkPool pool(1, "bh-test");
  std::mutex mu;
  std::condition_variable cv;
  std::set<std::thread::id> seen;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  pool.ParallelFor(64, [&](size_t) {
    std::unique_lock<std::mutex> lock(mu);
    seen.insert(std::this_thread::get_id());
    cv.notify_all();
    cv.wait_until(lock, deadline, [&] { return seen.size() >= 2; });
  });
  CHECK(seen.size() == 2);
}

TEST_CASE("work pool: helpers carry the pool's name, cut to what Linux keeps") {
  WorkPool pool(1, "bh-a-name-longer-than-fifteen");
  std::mutex mu;
  std::condition_variable cv;
  std::set<std::string> names;
  std::set<std::thread::id> seen;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  const std::string before = ThisThreadName();
  NameThisThread("bh-caller");
  pool.ParallelFor(64, [&](size_t) {
    std::unique_lock<std::mutex> lock(mu);
    seen.insert(std::this_thread::get_id());
    names.insert(ThisThreadName());
    cv.notify_all();
    cv.wait_until(lock, deadline, [&] { return seen.size() >= 2; });
  });
  NameThisThread(before);
  CHECK(names == std::set<std::string>{"bh-caller", "bh-a-name-longe"});
}

TEST_CASE("work pool: loops from several callers do not mix") {
  WorkPool pool(2, "bh-test");
  std::vector<std::thread> callers;
  std::atomic<int> bad{0};
  for (int c = 0; c < 4; ++c) {
    callers.emplace_back([&, c] {
      for (int round = 0; round < 200; ++round) {
        std::vector<int> out(50, -1);
        pool.ParallelFor(out.size(), [&](size_t i) { out[i] = c * 1000 + round; });
        for (int v : out) {
          if (v != c * 1000 + round) bad.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& t : callers) t.join();
  CHECK(bad.load() == 0);
}

}  // namespace
}  // namespace blockhaus

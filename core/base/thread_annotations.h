// Clang thread-safety annotations (leveldb port/thread_annotations.h). They
// compile to nothing under g++; the clang CI build checks them.
#pragma once

#include <mutex>

#if defined(__clang__)
#define BH_THREAD_ANNOTATION_(x) __attribute__((x))
#else
#define BH_THREAD_ANNOTATION_(x)
#endif

#define BH_GUARDED_BY(x) BH_THREAD_ANNOTATION_(guarded_by(x))
#define BH_PT_GUARDED_BY(x) BH_THREAD_ANNOTATION_(pt_guarded_by(x))
#define BH_REQUIRES(...) BH_THREAD_ANNOTATION_(requires_capability(__VA_ARGS__))
#define BH_EXCLUDES(...) BH_THREAD_ANNOTATION_(locks_excluded(__VA_ARGS__))
#define BH_ACQUIRE(...) BH_THREAD_ANNOTATION_(acquire_capability(__VA_ARGS__))
#define BH_RELEASE(...) BH_THREAD_ANNOTATION_(release_capability(__VA_ARGS__))
#define BH_CAPABILITY(x) BH_THREAD_ANNOTATION_(capability(x))
#define BH_SCOPED_CAPABILITY BH_THREAD_ANNOTATION_(scoped_lockable)
#define BH_NO_THREAD_SAFETY_ANALYSIS BH_THREAD_ANNOTATION_(no_thread_safety_analysis)

namespace blockhaus {

// std::mutex with a capability so that GUARDED_BY can name it.
class BH_CAPABILITY("mutex") Mutex {
 public:
  void Lock() BH_ACQUIRE() { mu_.lock(); }
  void Unlock() BH_RELEASE() { mu_.unlock(); }
  // For std::condition_variable_any and std::unique_lock.
  void lock() BH_ACQUIRE() { mu_.lock(); }
  void unlock() BH_RELEASE() { mu_.unlock(); }

 private:
  std::mutex mu_;
};

class BH_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex* mu) BH_ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() BH_RELEASE() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* mu_;
};

}  // namespace blockhaus

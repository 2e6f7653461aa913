#include "core/base/background_cpu.h"

#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

namespace blockhaus {
namespace {

thread_local bool background = false;

// An unprivileged thread leaves SCHED_IDLE only if RLIMIT_NICE allows its
// nice value; where it would not come back, it never goes.
bool CanComeBack() {
  static const bool can = [] {
    if (::geteuid() == 0) return true;
    rlimit limit{};
    if (::getrlimit(RLIMIT_NICE, &limit) != 0) return false;
    const int nice = ::getpriority(PRIO_PROCESS, 0);
    return limit.rlim_cur == RLIM_INFINITY || static_cast<int>(limit.rlim_cur) >= 20 - nice;
  }();
  return can;
}

}  // namespace

void SetThisThreadBackground(bool want) {
  if (want == background || (want && !CanComeBack())) return;
  sched_param param{};
  param.sched_priority = 0;
  if (::sched_setscheduler(0, want ? SCHED_IDLE : SCHED_OTHER, &param) == 0) background = want;
}

bool ThisThreadIsBackground() { return background; }

}  // namespace blockhaus

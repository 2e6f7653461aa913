// Background CPU: work that may wait for idle CPUs.
//
// A commit's compression (PlaceRaw, D51) is seconds of CPU that nobody
// waits for while it runs in the background; at normal priority on a small
// machine it took the CPUs from the event loop, whose writes at queue depth
// 1 are a ping-pong with the initiator: each hop waited for a time slice
// and 1 MiB writes fell from ~2,000 to ~300 MB/s for the second it took.
// Under SCHED_IDLE a thread runs only where no normal thread wants the CPU
// (it keeps a sliver, weight 3 against 1024, so it never starves outright),
// and any wakeup of a normal thread preempts it. Once somebody waits for
// the work, it goes back to normal.
// Thread safety: each call changes the calling thread only.
#pragma once

namespace blockhaus {

// SCHED_IDLE (true) or SCHED_OTHER (false) for the calling thread; a no-op
// when the thread is already so, and for true where the thread could not
// come back (not root, and RLIMIT_NICE does not allow its nice value).
// Failures are ignored: priority is a preference, the work is done anyway.
void SetThisThreadBackground(bool background);
bool ThisThreadIsBackground();

}  // namespace blockhaus

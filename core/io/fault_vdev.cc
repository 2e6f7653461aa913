// Theory of operation: FaultVdev
//
// Overview
//   FaultVdev wraps another Vdev (the "base") and models a disk with a
//   volatile write-back cache. Writes land in an in-memory overlay; only
//   Sync() pushes them to the base. The base therefore always holds exactly
//   what would survive if power were cut now, which is what crash tests
//   reopen. On top of that it injects one-shot failures (FailNth) and power
//   cuts (PowerCut) that drop or tear the unsynced cache.
//
// Data structures & on-disk format
//   overlay: std::map<sector index, bytes>, sector = 4 KiB (the last sector
//   is shorter when the base size is not a multiple of 4 KiB). An overlay
//   sector always holds the complete sector image: when a write covers only
//   part of a sector that is not yet in the overlay, the rest is first read
//   from the base, so Sync and the garble "keep" choice write whole sectors
//   without losing neighbouring bytes. The map is ordered so that garbling is
//   deterministic for a given seed. No on-disk format of its own.
//
// Invariants
//   * A read returns base bytes overridden by overlay sectors: the view a
//     running system has of its own writes.
//   * The base changes only in Sync() and PowerCut(kGarble).
//   * dead == true => every I/O call returns Unavailable and has no effect.
//   * An armed fault fires at most once, then disarms itself.
//
// Concurrency & lock order
//   One mutex (State::mu) serialises every call, including the base I/O made
//   while holding it. Lock order: FaultVdev::mu, then whatever the base uses.
//   The base must not call back into this object.
//
// Crash consistency
//   Sync() writes every overlay sector to the base, clears the overlay, then
//   calls base->Sync(). PowerCut(kDrop) forgets the overlay. PowerCut(kGarble)
//   draws, per unsynced sector in sector order, one of {keep, drop, random}
//   from std::mt19937_64 seeded by the constructor: keep writes the sector to
//   the base, random writes PRNG bytes there (a torn sector), drop forgets
//   it. This models a drive cache that reorders and tears write-back.
//
// Failure handling
//   FailNth(op, n, e) arms a countdown: the n-th valid call of that op from
//   now fails (calls rejected as dead or out of range are not counted). kEIO
//   -> IOError, kENOSPC -> ResourceExhausted, kShortWrite -> for Write the
//   first half of the buffer enters the overlay and IOError is returned (for
//   Read and Sync it is a plain IOError). A failed Sync leaves the overlay
//   unapplied, so those writes are still lost by a later power cut. WriteV is
//   the base-class loop of Write: each buffer counts as one Write call. Base
//   errors during Sync stop it; sectors already written leave the overlay.
//
// Tunables
//   kSectorSize (4 KiB, the unit of tearing) and the constructor seed.
#include "core/io/fault_vdev.h"

#include <algorithm>
#include <array>
#include <map>
#include <optional>
#include <random>
#include <vector>

#include "core/base/thread_annotations.h"

namespace blockhaus::core {
namespace {

constexpr uint64_t kSectorSize = 4096;
constexpr size_t kNumOps = 3;

struct ArmedFault {
  bool armed = false;
  uint64_t remaining = 0;
  FaultError error = FaultError::kEIO;
};

}  // namespace

struct FaultVdev::State {
  explicit State(uint64_t seed) : rng(seed) {}

  mutable Mutex mu;
  std::map<uint64_t, std::vector<uint8_t>> overlay BH_GUARDED_BY(mu);
  std::mt19937_64 rng BH_GUARDED_BY(mu);
  std::array<ArmedFault, kNumOps> faults BH_GUARDED_BY(mu);
  bool dead BH_GUARDED_BY(mu) = false;
};

namespace {

// Counts one call of `op`; returns the error to inject, if this is the one.
std::optional<FaultError> TickFault(std::array<ArmedFault, kNumOps>& faults, FaultOp op) {
  ArmedFault& f = faults[static_cast<size_t>(op)];
  if (!f.armed || --f.remaining != 0) return std::nullopt;
  f.armed = false;
  return f.error;
}

Status InjectedError(FaultError error, const char* op) {
  switch (error) {
    case FaultError::kEIO:
      return BH_ERROR(kIOError, "fault vdev: injected EIO on {}", op);
    case FaultError::kENOSPC:
      return BH_ERROR(kResourceExhausted, "fault vdev: injected ENOSPC on {}", op);
    case FaultError::kShortWrite:
      return BH_ERROR(kIOError, "fault vdev: injected short transfer on {}", op);
  }
  return BH_ERROR(kInternal, "fault vdev: unknown fault");
}

Status DeadError() { return BH_ERROR(kUnavailable, "fault vdev: power was cut"); }

uint64_t SectorLength(uint64_t sector, uint64_t dev_size) {
  return std::min(kSectorSize, dev_size - sector * kSectorSize);
}

}  // namespace

FaultVdev::FaultVdev(Vdev* base, uint64_t seed)
    : state_(std::make_unique<State>(seed)), base_(base) {
  BH_CHECK(base_ != nullptr);
}

FaultVdev::~FaultVdev() = default;

uint64_t FaultVdev::size() const { return base_->size(); }

Status FaultVdev::Read(uint64_t offset, ByteSpan buf) {
  MutexLock lock(&state_->mu);
  if (state_->dead) return DeadError();
  BH_RETURN_IF_ERROR(CheckRange(offset, buf.size()));
  if (auto fault = TickFault(state_->faults, FaultOp::kRead)) {
    return InjectedError(*fault, "read");
  }
  if (buf.empty()) return Status::Ok();
  BH_RETURN_IF_ERROR(base_->Read(offset, buf));
  const uint64_t end = offset + buf.size();
  auto it = state_->overlay.lower_bound(offset / kSectorSize);
  for (; it != state_->overlay.end() && it->first * kSectorSize < end; ++it) {
    const uint64_t sec_start = it->first * kSectorSize;
    const uint64_t from = std::max(offset, sec_start);
    const uint64_t to = std::min(end, sec_start + it->second.size());
    std::copy(it->second.begin() + static_cast<ptrdiff_t>(from - sec_start),
              it->second.begin() + static_cast<ptrdiff_t>(to - sec_start),
              buf.begin() + static_cast<ptrdiff_t>(from - offset));
  }
  return Status::Ok();
}

// Copies `data` into the overlay at `offset`, filling new sectors from base.
Status FaultVdev::ApplyToOverlay(uint64_t offset, ConstByteSpan data) {
  const uint64_t end = offset + data.size();
  uint64_t pos = offset;
  while (pos < end) {
    const uint64_t sector = pos / kSectorSize;
    const uint64_t sec_start = sector * kSectorSize;
    auto [it, inserted] = state_->overlay.try_emplace(sector);
    std::vector<uint8_t>& bytes = it->second;
    if (inserted) {
      bytes.resize(SectorLength(sector, base_->size()));
      Status s = base_->Read(sec_start, bytes);
      if (!s.ok()) {
        state_->overlay.erase(it);
        return s;
      }
    }
    const uint64_t to = std::min(end, sec_start + bytes.size());
    std::copy(data.begin() + static_cast<ptrdiff_t>(pos - offset),
              data.begin() + static_cast<ptrdiff_t>(to - offset),
              bytes.begin() + static_cast<ptrdiff_t>(pos - sec_start));
    pos = to;
  }
  return Status::Ok();
}

Status FaultVdev::Write(uint64_t offset, ConstByteSpan buf) {
  MutexLock lock(&state_->mu);
  if (state_->dead) return DeadError();
  BH_RETURN_IF_ERROR(CheckRange(offset, buf.size()));
  if (auto fault = TickFault(state_->faults, FaultOp::kWrite)) {
    if (*fault == FaultError::kShortWrite) {
      BH_RETURN_IF_ERROR(ApplyToOverlay(offset, buf.first(buf.size() / 2)));
    }
    return InjectedError(*fault, "write");
  }
  return ApplyToOverlay(offset, buf);
}

uint32_t FaultVdev::direct_alignment() const { return base_->direct_alignment(); }

Status FaultVdev::WriteDirect(uint64_t offset, ConstByteSpan buf) {
  BH_RETURN_IF_ERROR(CheckDirect(offset, buf));
  return Write(offset, buf);
}

Status FaultVdev::Sync() {
  MutexLock lock(&state_->mu);
  if (state_->dead) return DeadError();
  if (auto fault = TickFault(state_->faults, FaultOp::kSync)) {
    return InjectedError(*fault, "sync");
  }
  auto& overlay = state_->overlay;
  while (!overlay.empty()) {
    auto it = overlay.begin();
    BH_RETURN_IF_ERROR(base_->Write(it->first * kSectorSize, it->second));
    overlay.erase(it);
  }
  return base_->Sync();
}

void FaultVdev::FailNth(FaultOp op, uint64_t n, FaultError error) {
  BH_CHECK(n >= 1);
  MutexLock lock(&state_->mu);
  state_->faults[static_cast<size_t>(op)] = ArmedFault{true, n, error};
}

void FaultVdev::ClearFaults() {
  MutexLock lock(&state_->mu);
  state_->faults = {};
}

void FaultVdev::PowerCut(PowerCutMode mode) {
  MutexLock lock(&state_->mu);
  if (mode == PowerCutMode::kGarble) GarbleOverlay();
  state_->overlay.clear();
  state_->dead = true;
}

// Per unsynced sector: 0 keep (reaches the base), 1 drop, 2 random bytes.
void FaultVdev::GarbleOverlay() {
  std::mt19937_64& rng = state_->rng;
  for (auto& [sector, bytes] : state_->overlay) {
    const uint64_t choice = rng() % 3;
    if (choice == 1) continue;
    if (choice == 2) {
      for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
    }
    // A failing base during a simulated power cut changes nothing a test
    // could observe differently: the sector simply did not make it.
    base_->Write(sector * kSectorSize, bytes).IgnoreError();
  }
}

void FaultVdev::Revive() {
  MutexLock lock(&state_->mu);
  state_->dead = false;
}

uint64_t FaultVdev::unsynced_sectors() const {
  MutexLock lock(&state_->mu);
  return state_->overlay.size();
}

}  // namespace blockhaus::core

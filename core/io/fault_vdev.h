// FaultVdev: a Vdev wrapper for crash and fault tests.
//
// Writes are held in an in-memory overlay (per 4 KiB sector) and reach the
// wrapped vdev only on Sync(), so the wrapped vdev always shows exactly what a
// power cut would leave behind. Reads see the overlay first.
//
//   PowerCut(mode): simulate losing power now. kDrop discards every unsynced
//   sector; kGarble keeps some, drops some and fills some with random bytes
//   (a torn, reordered write-back cache), chosen by the seed. After a cut the
//   vdev is dead: every call returns Unavailable until Revive().
//
//   FailNth(op, n, error): the n-th call (1-based, counted from now) of kind
//   op fails with `error`; kShortWrite writes only the first half of the
//   buffer and then fails with IOError (what a full disk does mid-write).
//
// Thread safety: thread-safe (one internal mutex; this is a test seam, not a
// fast path).
#pragma once

#include <cstdint>
#include <memory>

#include "core/io/vdev.h"

namespace blockhaus::core {

enum class FaultOp : uint8_t { kRead, kWrite, kSync };
enum class FaultError : uint8_t { kEIO, kENOSPC, kShortWrite };
enum class PowerCutMode : uint8_t { kDrop, kGarble };

class FaultVdev : public Vdev {
 public:
  // Does not own `base`; it must outlive this object.
  explicit FaultVdev(Vdev* base, uint64_t seed = 1);
  ~FaultVdev() override;

  uint64_t size() const override;
  Status Read(uint64_t offset, ByteSpan buf) override;
  Status Write(uint64_t offset, ConstByteSpan buf) override;
  Status Sync() override;
  // The base's alignment; a direct write is a Write (its faults, its loss
  // at a power cut until synced) that checks it.
  uint32_t direct_alignment() const override;
  Status WriteDirect(uint64_t offset, ConstByteSpan buf) override;

  void FailNth(FaultOp op, uint64_t n, FaultError error);
  void ClearFaults();
  void PowerCut(PowerCutMode mode);
  void Revive();
  // Number of 4 KiB sectors written but not yet synced.
  uint64_t unsynced_sectors() const;

 private:
  struct State;
  // Both REQUIRE state_->mu held.
  Status ApplyToOverlay(uint64_t offset, ConstByteSpan data);
  void GarbleOverlay();

  std::unique_ptr<State> state_;
  Vdev* base_;
};

}  // namespace blockhaus::core

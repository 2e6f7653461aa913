#include "core/io/fault_vdev.h"

#include <vector>

#include <doctest/doctest.h>

namespace blockhaus::core {
namespace {

constexpr uint64_t kSector = 4096;

std::vector<uint8_t> Filled(size_t n, uint8_t byte) { return std::vector<uint8_t>(n, byte); }

std::vector<uint8_t> ReadAll(Vdev& v, uint64_t offset, size_t n) {
  std::vector<uint8_t> buf(n);
  Status s = v.Read(offset, buf);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  return buf;
}

TEST_CASE("FaultVdev: unsynced writes are visible, then lost on a drop cut") {
  auto base = NewMemVdev(64 * kSector);
  FaultVdev f(base.get());
  CHECK(f.size() == base->size());
  REQUIRE(f.Write(kSector * 2 + 100, Filled(kSector, 0xAA)).ok());
  CHECK(f.unsynced_sectors() == 2);  // Straddles sectors 2 and 3.
  CHECK(ReadAll(f, kSector * 2 + 100, kSector) == Filled(kSector, 0xAA));
  CHECK(ReadAll(*base, kSector * 2, 2 * kSector) == Filled(2 * kSector, 0));
  f.PowerCut(PowerCutMode::kDrop);
  CHECK(f.unsynced_sectors() == 0);
  f.Revive();
  CHECK(ReadAll(f, kSector * 2, 2 * kSector) == Filled(2 * kSector, 0));
}

TEST_CASE("FaultVdev: a direct write is a write: checked, failed, lost unless synced") {
  auto base = NewMemVdev(16 * kSector);
  FaultVdev f(base.get());
  CHECK(f.direct_alignment() == base->direct_alignment());
  // The base's alignment holds (MemVdev asks for 4K): Filled's heap
  // buffers are not 4K-aligned, so the aligned ones come from a bigger one.
  std::vector<uint8_t> big(3 * kSector, 7);
  uint8_t* aligned = big.data() + (kSector - reinterpret_cast<uintptr_t>(big.data()) % kSector);
  const ConstByteSpan one(aligned, kSector);
  CHECK(f.WriteDirect(100, one).code() == Code::kInvalidArgument);
  CHECK(f.unsynced_sectors() == 0);
  REQUIRE(f.WriteDirect(kSector, one).ok());
  CHECK(f.unsynced_sectors() == 1);
  CHECK(ReadAll(f, kSector, kSector) == Filled(kSector, 7));
  CHECK(ReadAll(*base, kSector, kSector) == Filled(kSector, 0));
  f.PowerCut(PowerCutMode::kDrop);
  f.Revive();
  CHECK(ReadAll(f, kSector, kSector) == Filled(kSector, 0));
  REQUIRE(f.WriteDirect(kSector, one).ok());
  REQUIRE(f.Sync().ok());
  CHECK(ReadAll(*base, kSector, kSector) == Filled(kSector, 7));
  // A write fault hits direct writes as it hits writes.
  f.FailNth(FaultOp::kWrite, 1, FaultError::kEIO);
  CHECK(f.WriteDirect(2 * kSector, one).code() == Code::kIOError);
  CHECK(f.WriteDirect(2 * kSector, one).ok());
}

TEST_CASE("FaultVdev: synced data survives a cut; later writes do not") {
  auto base = NewMemVdev(16 * kSector);
  FaultVdev f(base.get());
  REQUIRE(f.Write(0, Filled(kSector, 1)).ok());
  REQUIRE(f.Sync().ok());
  CHECK(f.unsynced_sectors() == 0);
  CHECK(ReadAll(*base, 0, kSector) == Filled(kSector, 1));
  REQUIRE(f.Write(0, Filled(kSector, 2)).ok());
  f.PowerCut(PowerCutMode::kDrop);
  f.Revive();
  CHECK(ReadAll(f, 0, kSector) == Filled(kSector, 1));
}

TEST_CASE("FaultVdev: a partial-sector write merges with base content") {
  auto base = NewMemVdev(8 * kSector);
  REQUIRE(base->Write(kSector, Filled(kSector, 0x55)).ok());
  FaultVdev f(base.get());
  REQUIRE(f.Write(kSector + 10, Filled(20, 0x77)).ok());
  std::vector<uint8_t> want = Filled(kSector, 0x55);
  std::fill(want.begin() + 10, want.begin() + 30, 0x77);
  CHECK(ReadAll(f, kSector, kSector) == want);
  REQUIRE(f.Sync().ok());
  CHECK(ReadAll(*base, kSector, kSector) == want);
}

TEST_CASE("FaultVdev: short last sector when size is not sector aligned") {
  auto base = NewMemVdev(kSector + 100);
  FaultVdev f(base.get());
  REQUIRE(f.Write(kSector + 50, Filled(50, 9)).ok());
  REQUIRE(f.Sync().ok());
  CHECK(ReadAll(*base, kSector + 50, 50) == Filled(50, 9));
  CHECK(f.Write(kSector + 50, Filled(51, 9)).code() == Code::kInvalidArgument);
}

// Writes 64 sectors of 0xAB, cuts with kGarble and returns the base image.
std::vector<uint8_t> GarbledImage(uint64_t seed) {
  auto base = NewMemVdev(64 * kSector);
  FaultVdev f(base.get(), seed);
  REQUIRE(f.Write(0, Filled(64 * kSector, 0xAB)).ok());
  f.PowerCut(PowerCutMode::kGarble);
  return ReadAll(*base, 0, 64 * kSector);
}

TEST_CASE("FaultVdev: garble keeps, drops and randomises sectors, per seed") {
  std::vector<uint8_t> image = GarbledImage(42);
  int kept = 0, dropped = 0, random = 0;
  for (uint64_t s = 0; s < 64; ++s) {
    std::vector<uint8_t> sec(image.begin() + s * kSector, image.begin() + (s + 1) * kSector);
    if (sec == Filled(kSector, 0xAB)) {
      ++kept;
    } else if (sec == Filled(kSector, 0)) {
      ++dropped;
    } else {
      ++random;
    }
  }
  CHECK(kept > 0);
  CHECK(dropped > 0);
  CHECK(random > 0);
  CHECK(kept + dropped + random == 64);
  CHECK(GarbledImage(42) == image);  // Same seed, same damage.
  CHECK(GarbledImage(43) != image);
}

Status DoOp(FaultVdev& f, FaultOp op) {
  std::vector<uint8_t> buf(512, 3);
  switch (op) {
    case FaultOp::kRead: return f.Read(0, buf);
    case FaultOp::kWrite: return f.Write(0, buf);
    case FaultOp::kSync: return f.Sync();
  }
  return Status::Ok();
}

TEST_CASE("FaultVdev: FailNth fails exactly the nth call, once") {
  const FaultOp ops[] = {FaultOp::kRead, FaultOp::kWrite, FaultOp::kSync};
  const std::pair<FaultError, Code> errors[] = {
      {FaultError::kEIO, Code::kIOError},
      {FaultError::kENOSPC, Code::kResourceExhausted},
      {FaultError::kShortWrite, Code::kIOError},
  };
  for (FaultOp op : ops) {
    for (auto [error, code] : errors) {
      CAPTURE(static_cast<int>(op));
      CAPTURE(static_cast<int>(error));
      auto base = NewMemVdev(16 * kSector);
      FaultVdev f(base.get());
      f.FailNth(op, 3, error);
      CHECK(DoOp(f, op).ok());
      CHECK(DoOp(f, op).ok());
      CHECK(DoOp(f, op).code() == code);
      CHECK(DoOp(f, op).ok());
    }
  }
}

TEST_CASE("FaultVdev: faults count only their own op; ClearFaults disarms") {
  auto base = NewMemVdev(16 * kSector);
  FaultVdev f(base.get());
  f.FailNth(FaultOp::kWrite, 1, FaultError::kEIO);
  CHECK(DoOp(f, FaultOp::kRead).ok());
  CHECK(DoOp(f, FaultOp::kSync).ok());
  CHECK(DoOp(f, FaultOp::kWrite).code() == Code::kIOError);
  f.FailNth(FaultOp::kRead, 1, FaultError::kEIO);
  f.ClearFaults();
  CHECK(DoOp(f, FaultOp::kRead).ok());
}

TEST_CASE("FaultVdev: short write stores the first half, then fails") {
  auto base = NewMemVdev(16 * kSector);
  FaultVdev f(base.get());
  f.FailNth(FaultOp::kWrite, 1, FaultError::kShortWrite);
  Status s = f.Write(100, Filled(3000, 0xCD));
  CHECK(s.code() == Code::kIOError);
  std::vector<uint8_t> want = Filled(1500, 0xCD);
  want.resize(3000, 0);
  CHECK(ReadAll(f, 100, 3000) == want);
  CHECK(f.unsynced_sectors() == 1);
}

TEST_CASE("FaultVdev: a failed sync does not apply the overlay") {
  auto base = NewMemVdev(16 * kSector);
  FaultVdev f(base.get());
  REQUIRE(f.Write(0, Filled(kSector, 0xEE)).ok());
  f.FailNth(FaultOp::kSync, 1, FaultError::kEIO);
  CHECK(f.Sync().code() == Code::kIOError);
  CHECK(ReadAll(*base, 0, kSector) == Filled(kSector, 0));
  CHECK(f.unsynced_sectors() == 1);
  f.PowerCut(PowerCutMode::kDrop);
  f.Revive();
  CHECK(ReadAll(f, 0, kSector) == Filled(kSector, 0));
}

TEST_CASE("FaultVdev: after a cut everything is Unavailable until Revive") {
  auto base = NewMemVdev(16 * kSector);
  FaultVdev f(base.get());
  f.PowerCut(PowerCutMode::kDrop);
  CHECK(DoOp(f, FaultOp::kRead).code() == Code::kUnavailable);
  CHECK(DoOp(f, FaultOp::kWrite).code() == Code::kUnavailable);
  CHECK(DoOp(f, FaultOp::kSync).code() == Code::kUnavailable);
  std::vector<uint8_t> a(10), b(20);
  std::vector<ConstByteSpan> bufs = {a, b};
  CHECK(f.WriteV(0, bufs).code() == Code::kUnavailable);
  f.Revive();
  CHECK(DoOp(f, FaultOp::kWrite).ok());
  CHECK(DoOp(f, FaultOp::kRead).ok());
  CHECK(DoOp(f, FaultOp::kSync).ok());
  CHECK(ReadAll(*base, 0, 512) == Filled(512, 3));
}

}  // namespace
}  // namespace blockhaus::core

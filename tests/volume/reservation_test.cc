// Reservations (issue 3, DECISIONS D14): thick volumes hold their
// refreservation, thin writes cannot dip into it, a full thick volume can
// still overwrite itself, and a refused write loses nothing acknowledged.

#include <doctest/doctest.h>

#include <random>

#include "tests/test_util.h"
#include "volume/space.h"
#include "volume/volume_manager.h"

namespace blockhaus::volume {
namespace {

using testing::TempDir;

constexpr uint64_t kMiB = 1 << 20;

struct ResRig {
  TempDir tmp;
  std::unique_ptr<core::Pool> pool;
  std::unique_ptr<VolumeManager> vm;

  ResRig() {
    core::PoolCreateOptions o;
    o.name = "tank";
    o.data_size = 64 * kMiB;
    REQUIRE(core::Pool::Create(tmp / "pool", o).ok());
    Reopen();
  }
  void Reopen() {
    vm.reset();
    pool.reset();
    pool = std::move(core::Pool::Open(tmp / "pool")).value();
    VolumeManagerOptions vo;
    vo.start_coalescer = false;
    vm = std::move(VolumeManager::Open(pool.get(), vo)).value();
  }
  Status Create(const std::string& name, uint64_t size, bool thick) {
    VolumeProps p;
    p.volsize = size;
    p.compression = core::Compression{};  // physical == logical
    p.refreservation = thick ? size : 0;
    return vm->CreateVolume(name, p);
  }
  static std::vector<uint8_t> Chunk(uint64_t seed) {
    std::vector<uint8_t> d(kMiB);
    std::mt19937_64 rng(seed);
    for (auto& b : d) b = static_cast<uint8_t>(rng());
    return d;
  }
  // Writes 1 MiB chunks from offset 0 until a write fails or `max` chunks;
  // returns the chunks acknowledged and the failure.
  std::pair<uint64_t, Status> Fill(const std::string& name, uint64_t max, uint64_t seed) {
    auto dev = vm->OpenDevice(name);
    REQUIRE(dev.ok());
    for (uint64_t i = 0; i < max; ++i) {
      Status s = (*dev)->Write(i * kMiB, Chunk(seed + i));
      if (!s.ok()) return {i, s};
    }
    return {max, (*dev)->Flush()};
  }
  void ExpectData(const std::string& name, uint64_t chunks, uint64_t seed) {
    auto dev = vm->OpenDevice(name);
    REQUIRE(dev.ok());
    std::vector<uint8_t> buf(kMiB);
    for (uint64_t i = 0; i < chunks; ++i) {
      REQUIRE((*dev)->Read(i * kMiB, buf).ok());
      REQUIRE_MESSAGE(buf == Chunk(seed + i), name << " chunk " << i << " lost");
    }
  }
  DatasetSpace Space(const std::string& name) {
    REQUIRE(pool->Flush().ok());
    auto s = vm->Space(*vm->Get(name));
    REQUIRE(s.ok());
    return *s;
  }
};

TEST_CASE("reservations: thick volumes hold space, thin writes stop short of it") {
  ResRig rig;
  REQUIRE(rig.Create("a", 24 * kMiB, true).ok());
  DatasetSpace a = rig.Space("a");
  CHECK(a.usedbyrefreservation == 24 * kMiB);
  CHECK(a.used == 24 * kMiB);
  CHECK(a.referenced == 0);

  // Pool::room, what the thin-provisioning check reads for every write, is
  // the capacity and the two figures it replaces, read at once (nothing
  // writes here in between).
  auto expect_room = [&](const std::string& name) {
    auto ds = rig.vm->Get(name);
    REQUIRE(ds.ok());
    const core::Pool::Room room = rig.pool->room(ds->lineage);
    CHECK(room.capacity == rig.pool->stats().capacity);
    CHECK(room.available ==
          rig.pool->unreserved_free() + rig.pool->reservation_room(ds->lineage));
    CHECK(rig.vm->Available(*ds) == room.available);
    return room.available;
  };
  // The thick volume's reservation is all room for it, none for others.
  CHECK(expect_room("a") >= 24 * kMiB);

  // A thick volume that does not fit is refused; nothing is created.
  Status big = rig.Create("b", 48 * kMiB, true);
  CHECK(big.code() == Code::kResourceExhausted);
  CHECK(big.message().find("out of space") != std::string::npos);
  CHECK(!rig.vm->Get("b").ok());

  // A thin volume fills what is not reserved, then gets ResourceExhausted.
  REQUIRE(rig.Create("c", 64 * kMiB, false).ok());
  auto [acked, failure] = rig.Fill("c", 64, 100);
  CHECK(failure.code() == Code::kResourceExhausted);
  CHECK(failure.message().find("out of space") != std::string::npos);
  CHECK(acked >= 30);
  CHECK(acked <= 40);
  REQUIRE(rig.pool->Flush().ok());
  rig.ExpectData("c", acked, 100);

  // The thick volume still fills its whole reservation, and overwrites it
  // all again although the pool is otherwise full.
  CHECK(expect_room("c") < kMiB);
  CHECK(expect_room("a") >= 24 * kMiB);
  auto [filled, fs] = rig.Fill("a", 24, 200);
  CHECK_MESSAGE(fs.ok(), fs.ToString());
  CHECK(filled == 24);
  auto [again, as] = rig.Fill("a", 24, 300);
  CHECK_MESSAGE(as.ok(), as.ToString());
  CHECK(again == 24);
  rig.ExpectData("a", 24, 300);
  a = rig.Space("a");
  CHECK(a.usedbyrefreservation == 0);
  CHECK(a.used == 24 * kMiB);
  CHECK(a.written == 24 * kMiB);

  // A snapshot would make the whole reservation unused again: refused.
  Status snap = rig.vm->Snapshot({"a@s1"});
  CHECK(snap.code() == Code::kResourceExhausted);

  // refreservation: validated, and raising it must fit.
  CHECK(rig.vm->SetProperty("a", "refreservation", "100M").code() == Code::kInvalidArgument);
  REQUIRE(rig.vm->SetProperty("a", "refreservation", "none").ok());
  REQUIRE(rig.vm->Snapshot({"a@s1"}).ok());
  CHECK(rig.vm->SetProperty("a", "refreservation", "24M").code() == Code::kResourceExhausted);
  CHECK(rig.vm->SetProperty("a", "refreservation", "1M").ok() ==
        (rig.pool->unreserved_free() >= kMiB));

  // Nothing acknowledged was lost, across a reopen too.
  rig.Reopen();
  rig.ExpectData("c", acked, 100);
  rig.ExpectData("a", 24, 300);
  auto r = rig.pool->Scrub();
  REQUIRE(r.ok());
  CHECK(r->clean());
}

TEST_CASE("reservations: a thick volume's refreservation follows its volsize") {
  ResRig rig;
  REQUIRE(rig.Create("a", 8 * kMiB, true).ok());
  REQUIRE(rig.vm->SetProperty("a", "volsize", "16M").ok());
  CHECK(rig.vm->Get("a")->props.refreservation == 16 * kMiB);
  CHECK(rig.vm->SetProperty("a", "volsize", "128M").code() == Code::kResourceExhausted);
  CHECK(rig.vm->Get("a")->props.volsize == 16 * kMiB);
}

}  // namespace
}  // namespace blockhaus::volume

// A pool left with a damaged intent log record (behind a sound frame of
// the ring, D54), as a crash and a bad copy would leave it: for the tests of `volctl pool clear` and of the
// daemon serving a pool that does not open.
#pragma once

#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

#include "core/base/endian.h"
#include "core/io/vdev.h"
#include "core/kv/kv_store.h"
#include "core/pool/internal/pool_impl.h"  // the metadata layout, to damage a record
#include "core/pool/pool.h"
#include "core/txg/intent_file.h"
#include "core/txg/intent_format.h"
#include "volume/volume_manager.h"

namespace blockhaus::testing {

// A process writes to `volume` of the pool in `pool_dir` (closed), flushes
// twice (64K of 0xaa at 0, then 64K of 0xbb at 64K: two intent log records
// of 4 blocks each at the default 16K block size) and dies before a
// commit. Then the second record's first payload byte is flipped: it
// decodes, and its checksum fails.
inline void LeaveDamagedIntentLog(const std::string& pool_dir, const std::string& volume) {
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    core::PoolOptions po;
    po.txg_timeout_ms = 600'000;
    auto pool = core::Pool::Open(pool_dir, po);
    if (!pool.ok()) ::_exit(2);
    auto vm = volume::VolumeManager::Open(pool->get());
    if (!vm.ok()) ::_exit(3);
    auto dev = (*vm)->OpenDevice(volume);
    if (!dev.ok()) ::_exit(4);
    std::vector<uint8_t> a(65536, 0xaa), b(65536, 0xbb);
    if (!(*dev)->Write(0, a).ok() || !(*dev)->Flush().ok()) ::_exit(5);
    if (!(*dev)->Write(65536, b).ok() || !(*dev)->Flush().ok()) ::_exit(6);
    if ((*pool)->stats().intent_records != 2) ::_exit(7);
    ::_exit(0);  // no close, no commit: as if killed
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);

  // The frames from the ring's head (where the last open put it).
  core::KvOptions o;
  o.column_families = core::ColumnFamilyNames();
  o.read_only = true;
  auto kv = core::KvStore::Open(pool_dir + "/meta", o);
  REQUIRE(kv.ok());
  auto salt_v = (*kv)->Get(core::kCfDefault, core::kMetaKeyIntentSalt);
  REQUIRE(salt_v.ok());
  REQUIRE(salt_v->has_value());
  const uint64_t salt = DecodeLE64(AsBytes(**salt_v));
  auto head_v = (*kv)->Get(core::kCfDefault, core::kMetaKeyIntentHead);
  REQUIRE(head_v.ok());
  REQUIRE(head_v->has_value());
  REQUIRE((*head_v)->size() == 16);
  const uint64_t head_seq = DecodeLE64(AsBytes(**head_v));
  const uint64_t head_offset = DecodeLE64(AsBytes(**head_v) + 8);
  REQUIRE((*kv)->Close().ok());
  auto ring = core::OpenFileVdev(pool_dir + "/intent", core::FileVdevOptions{});
  REQUIRE(ring.ok());
  std::vector<core::IntentFrame> frames;
  auto end = core::ScanIntentFrames(**ring, salt, head_seq, head_offset, [&](const core::IntentFrame& f) {
    frames.push_back(f);
    return Status::Ok();
  });
  REQUIRE(end.ok());
  REQUIRE(frames.size() == 2);
  // Written back behind a sound frame, as the log would have.
  std::string bad = frames[1].body;
  bad[core::kIntentHeaderSize + core::kIntentEntryOverhead] ^= 0x5a;
  std::string frame;
  core::EncodeIntentFrame(salt, frames[1].seq, frames[1].record_txg, bad, &frame);
  REQUIRE((*ring)->Write(frames[1].offset, ConstByteSpan(AsBytes(frame), frame.size())).ok());
  REQUIRE((*ring)->Sync().ok());
}

}  // namespace blockhaus::testing

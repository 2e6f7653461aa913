// Checks a reopened pool against the crash model.
#pragma once

#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

#include "core/io/vdev.h"
#include "core/pool/pool.h"
#include "tests/crash/crash_model.h"
#include "tests/test_util.h"

namespace blockhaus::testing {

// Which acceptable tag the block's content matches; nullopt when none does.
inline std::optional<uint64_t> IdentifyBlock(const std::vector<uint8_t>& data, uint64_t seed,
                                             const std::set<uint64_t>& acceptable) {
  for (uint64_t tag : acceptable) {
    if (tag == 0) {
      if (std::all_of(data.begin(), data.end(), [](uint8_t b) { return b == 0; })) return tag;
    } else if (data == PatternBlock(kCrashBlockSize, seed, tag)) {
      return tag;
    }
  }
  return std::nullopt;
}

// Verifies every touched block and scrub; returns the state now on disk
// (the start of the next round). `context` names the seed and round.
inline std::map<uint64_t, uint64_t> VerifyAfterCrash(core::Pool& pool, core::LineageId lineage,
                                                     uint64_t seed, const CrashModel& model,
                                                     const std::vector<CrashRecord>& log,
                                                     const std::string& context) {
  std::map<uint64_t, uint64_t> now;
  std::vector<uint8_t> buf(kCrashBlockSize);
  for (uint64_t b : model.Touched(log)) {
    Status s = pool.Read(lineage, b, core::kHeadView, buf);
    REQUIRE_MESSAGE(s.ok(), context << " block " << b << ": " << s.ToString());
    std::set<uint64_t> ok = model.Acceptable(log, b);
    auto tag = IdentifyBlock(buf, seed, ok);
    REQUIRE_MESSAGE(tag.has_value(), context << " block " << b
                                             << " holds data of no acceptable write ("
                                             << ok.size() << " candidates)");
    if (*tag != 0) now[b] = *tag;
  }
  // The persisted space tallies must equal a recount from the block map
  // (scrub checks every lineage the same way; this names the lineage).
  auto space = pool.GetSpace(lineage);
  auto recount = pool.RecountSpace(lineage);
  REQUIRE_MESSAGE((space.ok() && recount.ok()), context << ": space tallies unreadable");
  REQUIRE_MESSAGE(*space == *recount, context << ": space tallies differ from a recount");
  auto report = pool.Scrub();
  REQUIRE_MESSAGE(report.ok(), context << ": scrub failed: " << report.status().ToString());
  for (const std::string& p : report->problems) MESSAGE(context << ": " << p);
  REQUIRE_MESSAGE(report->clean(), context << ": scrub found problems");
  return now;
}

// A pool for crash and fault tests: created in a temporary directory with
// one lineage whose first `seeded` blocks hold PatternBlock(.., 1, b + 1)
// (flushed), closed again, and its data file opened as `base` for a
// FaultVdev to wrap.
struct CrashPoolRig {
  TempDir tmp;
  std::unique_ptr<core::Vdev> base;
  core::LineageId lineage = 0;

  CrashPoolRig(const std::string& name, uint64_t seeded) {
    core::PoolCreateOptions o;
    o.name = name;
    o.data_size = 32 << 20;
    REQUIRE(core::Pool::Create(tmp / "pool", o).ok());
    auto pool = core::Pool::Open(tmp / "pool");
    REQUIRE(pool.ok());
    REQUIRE((*pool)->RunSyncTask(nullptr, [&](core::SyncContext& c) {
      lineage = c.CreateLineage({});
    }).ok());
    for (uint64_t b = 0; b < seeded; ++b) {
      REQUIRE((*pool)->Write(lineage, b, PatternBlock(kCrashBlockSize, 1, b + 1), {}).ok());
    }
    REQUIRE((*pool)->Flush().ok());
    REQUIRE((*pool)->Close().ok());
    auto vdev = core::OpenFileVdev(tmp / "pool/data", core::FileVdevOptions{});
    REQUIRE(vdev.ok());
    base = std::move(vdev).value();
  }
};

}  // namespace blockhaus::testing

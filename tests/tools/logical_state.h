// What a user can observe of a pool, to prove that a refused volctl command
// changed nothing: the `volctl list` rows of every dataset (properties as
// the user sees them), the holds of every snapshot, the pool's allocation
// and a hash of the bytes of every volume and snapshot.
//
// The properties come from the real binary; holds, allocation and contents
// are read in this process through a read-only open of the pool, so one
// state costs one volctl run and one open instead of a volctl run per
// dataset. (Files under the pool change on any read-write open, RocksDB
// writes a new manifest, so the files themselves are no proof.)
#pragma once

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "core/pool/pool.h"
#include "core/pool/pool_dir.h"
#include "tests/tools/run_volctl.h"
#include "volume/volume_manager.h"

namespace blockhaus::testing {

inline std::string PoolLogicalState(const std::string& home, const std::string& pool_name,
                                    const std::string& list_fields) {
  CommandResult list = RunVolctl(home, {"list", "-t", "all", "-H", "-p", "-o", list_fields});
  REQUIRE_MESSAGE(list.exit_code == 0, list.err);
  std::string state = list.out;
  core::PoolOptions ro;
  ro.read_only = true;
  auto pool = core::Pool::Open(core::PoolDir(home, pool_name), ro);
  REQUIRE_MESSAGE(pool.ok(), pool.status().ToString());
  volume::VolumeManagerOptions vo;
  vo.start_coalescer = false;
  auto vm = volume::VolumeManager::Open(pool->get(), vo);
  REQUIRE_MESSAGE(vm.ok(), vm.status().ToString());
  state += "allocated=" + std::to_string((*pool)->stats().allocated) + "\n";
  std::vector<uint8_t> buf;
  for (const volume::Dataset& ds : (*vm)->List()) {
    state += ds.name;
    for (const auto& [tag, when] : ds.holds) state += " hold:" + tag + "@" + std::to_string(when);
    auto dev = (*vm)->OpenDevice(ds.name);
    REQUIRE_MESSAGE(dev.ok(), dev.status().ToString());
    std::string bytes((*dev)->size(), '\0');
    auto span = ByteSpan(reinterpret_cast<uint8_t*>(bytes.data()), bytes.size());
    REQUIRE((*dev)->Read(0, span).ok());
    state += " " + std::to_string(std::hash<std::string>()(bytes)) + "\n";
  }
  vm->reset();
  REQUIRE((*pool)->Close().ok());
  return state;
}

}  // namespace blockhaus::testing

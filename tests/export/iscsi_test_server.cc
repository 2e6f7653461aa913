// A test-only iSCSI server: a RAM-backed fake Target behind the real
// iscsi::Server, for driving with real initiators (libiscsi's iscsi-inq,
// iscsi-ls, iscsi-test-cu). Not part of the product.
//
//   iscsi_test_server [--port N] [--target IQN] [--size BYTES] [--luns N]
//                     [--chap USER SECRET] [--mutual USER SECRET] [--real]
// --real serves scsi::LunMap (the real command set) over MemBlockDevice
// instead of the minimal RamTarget.
// Prints "PORT <n>" once listening; exits when stdin reaches EOF.
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include "core/base/logging.h"
#include "export/iscsi/server.h"
#include "tests/export/iscsi_test_util.h"
#include "tests/export/mem_block_device.h"

using namespace blockhaus;
using namespace blockhaus::iscsi;

int main(int argc, char** argv) {
  uint16_t port = 0;
  std::string target = "iqn.2026-11.test.blockhaus:ram";
  uint64_t size = 64ull << 20;
  int luns = 1;
  std::optional<ChapCredentials> chap;
  bool real = false;
  bool digests = true;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--port") port = static_cast<uint16_t>(std::strtoul(next().c_str(), nullptr, 10));
    if (a == "--target") target = next();
    if (a == "--size") size = std::strtoull(next().c_str(), nullptr, 10);
    if (a == "--luns") luns = static_cast<int>(std::strtol(next().c_str(), nullptr, 10));
    if (a == "--debug") SetLogLevel(LogLevel::kDebug);
    if (a == "--real") real = true;
    if (a == "--no-digests") digests = false;
    if (a == "--chap") {
      chap.emplace();
      chap->user = next();
      chap->secret = next();
    }
    if (a == "--mutual" && chap) {
      chap->mutual_user = next();
      chap->mutual_secret = next();
    }
  }
  std::vector<uint64_t> lun_ids;
  for (int i = 0; i < luns; ++i) lun_ids.push_back(static_cast<uint64_t>(i));
  iscsi::testing::StaticDirectory dir;
  std::shared_ptr<scsi::Target> lun_map;
  if (real) {
    auto map = std::make_shared<scsi::LunMap>();
    for (uint64_t id : lun_ids) {
      scsi::LunOptions lo;
      lo.serial = "BHTEST" + std::to_string(id);
      lo.naa_id = 0x1234500 + id;
      auto unit = scsi::LogicalUnit::Create(
          std::make_unique<blockhaus::testing::MemBlockDevice>(size, 4096), lo, nullptr);
      if (!unit.ok()) {
        std::cerr << unit.status().ToString() << "\n";
        return 1;
      }
      map->MapLun(id, *unit);
    }
    lun_map = map;
  } else {
    lun_map = std::make_shared<iscsi::testing::RamTarget>(size, lun_ids);
  }
  auto t = iscsi::testing::MakeTarget(target, lun_map);
  t->chap = chap;
  t->multi_session = true;  // iscsi-test-cu logs in as two initiators
  dir.Add(t);
  ServerOptions opts;
  opts.listen = {"127.0.0.1:" + std::to_string(port)};
  opts.offers.allow_digests = digests;
  auto server = Server::Start(opts, &dir);
  if (!server.ok()) {
    std::cerr << server.status().ToString() << "\n";
    return 1;
  }
  std::cout << "PORT " << (*server)->ports()[0] << std::endl;
  std::string line;
  while (std::getline(std::cin, line)) {
  }
  (*server)->Stop();
  return 0;
}

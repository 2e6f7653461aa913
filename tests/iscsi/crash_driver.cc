// iscsi_crash_driver: a tagged random-write workload through libiscsi's
// async API, for the kill -9 test of the daemon (TESTING.md B3).
//
//   iscsi_crash_driver URL BLOCKS SEED QUEUE_DEPTH SECONDS LOG
//
// Writes 4 KiB blocks (crash_pattern.h) at random block indexes with up to
// QUEUE_DEPTH commands in flight, FUA on a random 10%, and a SYNCHRONIZE
// CACHE every 50..400 writes. Every event goes to LOG as one line, with a
// CLOCK_MONOTONIC timestamp in microseconds, before the driver acts on it:
//   I <index> <gen> <t>        write issued
//   A <index> <gen> <fua> <t>  write acknowledged GOOD
//   S <t_issue> <t_done>       SYNCHRONIZE CACHE completed GOOD
// Generations are unique across runs: SEED << 32 | counter. The driver
// stops when the connection drops (the daemon was killed) or after
// SECONDS; it never reconnects. Exit 0 either way; 2 on bad usage or a
// failed first login; 3 when a command failed with a SCSI error.
#include <poll.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <string>
#include <vector>

extern "C" {
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>
}

#include "tests/iscsi/crash_pattern.h"

namespace {

using blockhaus::testing::FillCrashBlock;
using blockhaus::testing::kCrashBlock;

uint64_t NowUs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

struct Driver;

struct Op {
  Driver* d;
  bool is_write;
  uint64_t index, gen;
  bool fua;
  uint64_t t_issue;
  std::vector<uint8_t> buf;
};

struct Driver {
  iscsi_context* iscsi = nullptr;
  int lun = 0;
  FILE* log = nullptr;
  int in_flight = 0;
  bool failed = false;     // connection gone
  bool scsi_error = false;
  uint32_t lba_per_block = 8;
};

using ull = unsigned long long;

// Each line is flushed at once: the driver outlives the daemon, so what it
// flushed is what the test reads.
void LogIssue(Driver* d, const Op& op) {
  std::fprintf(d->log, "I %llu %llu %llu\n", ull(op.index), ull(op.gen), ull(op.t_issue));
  std::fflush(d->log);
}

void LogAck(Driver* d, const Op& op) {
  std::fprintf(d->log, "A %llu %llu %d %llu\n", ull(op.index), ull(op.gen), op.fua ? 1 : 0,
               ull(NowUs()));
  std::fflush(d->log);
}

void LogSync(Driver* d, const Op& op) {
  std::fprintf(d->log, "S %llu %llu\n", ull(op.t_issue), ull(NowUs()));
  std::fflush(d->log);
}

void Done(iscsi_context*, int status, void* command_data, void* private_data) {
  auto* op = static_cast<Op*>(private_data);
  Driver* d = op->d;
  auto* task = static_cast<scsi_task*>(command_data);
  d->in_flight--;
  if (d->log == nullptr) {
    // Cancelled while the context is destroyed: nothing to record.
  } else if (status == SCSI_STATUS_GOOD) {
    if (op->is_write) {
      LogAck(d, *op);
    } else {
      LogSync(d, *op);
    }
  } else if (status == SCSI_STATUS_CHECK_CONDITION || status == SCSI_STATUS_BUSY ||
             status == SCSI_STATUS_RESERVATION_CONFLICT) {
    std::fprintf(stderr, "driver: command failed with SCSI status %d\n", status);
    d->scsi_error = true;
  } else {
    d->failed = true;  // cancelled or connection error: the daemon is gone
  }
  if (task) scsi_free_scsi_task(task);
  delete op;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 7) {
    std::fprintf(stderr, "usage: %s URL BLOCKS SEED QUEUE_DEPTH SECONDS LOG\n", argv[0]);
    return 2;
  }
  // The daemon is killed under it: a write to the dead connection must
  // fail with EPIPE (libiscsi then reports the drop), not end the driver.
  ::signal(SIGPIPE, SIG_IGN);
  const uint64_t blocks = std::strtoull(argv[2], nullptr, 10);
  const uint64_t seed = std::strtoull(argv[3], nullptr, 10);
  const int qd = static_cast<int>(std::strtol(argv[4], nullptr, 10));
  const uint64_t seconds = std::strtoull(argv[5], nullptr, 10);
  Driver d;
  d.log = std::fopen(argv[6], "a");
  if (d.log == nullptr || blocks == 0 || qd < 1) return 2;
  d.iscsi = iscsi_create_context("iqn.2026-11.test.blockhaus:crash-driver");
  iscsi_url* url = iscsi_parse_full_url(d.iscsi, argv[1]);
  if (url == nullptr) {
    std::fprintf(stderr, "driver: bad url: %s\n", iscsi_get_error(d.iscsi));
    return 2;
  }
  iscsi_set_noautoreconnect(d.iscsi, 1);
  iscsi_set_targetname(d.iscsi, url->target);
  iscsi_set_session_type(d.iscsi, ISCSI_SESSION_NORMAL);
  iscsi_set_header_digest(d.iscsi, ISCSI_HEADER_DIGEST_NONE_CRC32C);
  d.lun = url->lun;
  if (iscsi_full_connect_sync(d.iscsi, url->portal, url->lun) != 0) {
    std::fprintf(stderr, "driver: login failed: %s\n", iscsi_get_error(d.iscsi));
    return 2;
  }
  iscsi_destroy_url(url);
  std::mt19937_64 rng(seed);
  uint64_t counter = 0;
  uint64_t next_sync = 50 + rng() % 350;
  const uint64_t end = NowUs() + seconds * 1000000;
  while (!d.failed && !d.scsi_error && NowUs() < end) {
    while (d.in_flight < qd) {
      auto* op = new Op{&d, true, rng() % blocks, (seed << 32) | ++counter, rng() % 10 == 0,
                        NowUs(), std::vector<uint8_t>(kCrashBlock)};
      if (--next_sync == 0) {
        next_sync = 50 + rng() % 350;
        op->is_write = false;
        if (!iscsi_synchronizecache16_task(d.iscsi, d.lun, 0, 0, 0, 0, Done, op)) {
          delete op;
          d.failed = true;
          break;
        }
      } else {
        FillCrashBlock(op->buf.data(), op->index, op->gen);
        LogIssue(&d, *op);
        if (!iscsi_write16_task(d.iscsi, d.lun, op->index * d.lba_per_block, op->buf.data(),
                                kCrashBlock, 512, 0, 0, op->fua, 0, 0, Done, op)) {
          delete op;
          d.failed = true;
          break;
        }
      }
      d.in_flight++;
    }
    pollfd pfd{iscsi_get_fd(d.iscsi), static_cast<short>(iscsi_which_events(d.iscsi)), 0};
    if (poll(&pfd, 1, 100) < 0) break;
    if (iscsi_service(d.iscsi, pfd.revents) < 0) d.failed = true;
  }
  std::fclose(d.log);
  // No logout (the daemon is usually gone); destroying the context cancels
  // the ops still in flight, whose callbacks free them.
  d.log = nullptr;
  iscsi_destroy_context(d.iscsi);
  return d.scsi_error ? 3 : 0;
}

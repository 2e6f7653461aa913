// Server: the iSCSI target as the daemon runs it.
//
// The daemon publishes its targets through a TargetDirectory and starts one
// Server over it:
//
//   iscsi::ServerOptions opts;
//   opts.listen = {"127.0.0.1:3260", "[::1]:3260"};    // port 0: pick one
//   BH_ASSIGN_OR_RETURN(auto server, iscsi::Server::Start(opts, &directory));
//   ... server->ports() ... server->Sessions() ... server->CloseSessions(iqn);
//   server->Stop();                                    // or destroy it
//
// Start binds every listen address (failing as a whole: Unavailable when an
// address is in use, InvalidArgument when it does not parse) and starts the
// event loop and I/O threads. Targets come and go in the directory at any
// time; a live session keeps the TargetConfig it logged in with until
// CloseSessions() ends it.
//
// Thread safety: thread-safe. The directory must outlive the server.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/base/status.h"
#include "export/iscsi/target_directory.h"
#include "export/iscsi/text.h"

namespace blockhaus::iscsi {

// Defaults follow TESTING.md §3 D (SR-L*). Fixed once the server starts.
struct ServerOptions {
  // "ip:port" or "[ipv6]:port"; port 0 lets the kernel choose (see ports()).
  std::vector<std::string> listen = {"127.0.0.1:3260"};
  int event_loops = 1;                 // threads owning sockets (1..16)
  int io_threads = 2;                  // threads running scsi::Target::Execute;
                                       // 0 runs it on the event loop (RAM-backed targets)
  int listen_backlog = 256;
  // A read of at most this many bytes is tried on the event loop itself
  // (Target::TryExecute) when its connection has no other command
  // executing: at queue depth 1 that saves two thread hand-offs per
  // command. It runs there only if its data and metadata are in memory, so
  // the loop never waits for a device. 0: every command goes to the I/O
  // threads.
  uint32_t inline_read_bytes = 1u << 20;
  // A read larger than this is tried there only when no more input of its
  // connection is waiting: with further commands queued, I/O threads
  // decompress the large reads side by side while the loop reads and
  // sends (docs/DECISIONS.md D43).
  uint32_t inline_read_queued_bytes = 128u << 10;
  // The same for a write of at most this many bytes (whole blocks, no FUA):
  // it runs on the event loop when the pool takes it without waiting for a
  // commit, space or a fence. The hand-offs it spares cost more than the
  // write itself on small machines (docs/DECISIONS.md D32). 0: never.
  uint32_t inline_write_bytes = 1u << 20;

  // Before an event loop sleeps in epoll_wait, it polls its sockets for up
  // to this long, as long as polling pays off (docs/DECISIONS.md D44): an
  // initiator at queue depth 1 sends its next command tens of microseconds
  // after the answer, and a loop that slept pays a wake-up and often waits
  // for its CPU. A poll that finds nothing stops the polling until a sleep
  // ends sooner than this again, so an idle loop sleeps. 0..1000 us; 0
  // never polls.
  std::chrono::microseconds poll_before_sleep{50};

  std::chrono::milliseconds login_timeout{15000};   // accept -> full feature phase (SR-L1)
  int max_prelogin_connections = 64;   // global (SR-L2)
  int max_prelogin_per_address = 8;    // per source address (SR-L2)
  int max_sessions = 128;              // global (SR-L3)
  int max_sessions_per_initiator = 4;  // per InitiatorName (SR-L3)
  uint32_t cmdsn_window = 64;          // MaxCmdSN - ExpCmdSN + 1, 1..512 (SR-L4)
  std::chrono::milliseconds nop_interval{15000};    // idle time before a NOP-In ping; 0: off
  std::chrono::milliseconds nop_timeout{30000};     // ping unanswered -> drop (SR-L6)
  std::chrono::milliseconds data_out_timeout{15000};  // R2T unanswered -> drop (SR-L7)
  uint64_t max_buffer_bytes = 512ull << 20;  // all commands' data buffers (SR-L9)
  uint32_t max_command_bytes = 16u << 20;    // one command's EDTL
  Offers offers;                       // negotiation offers (SR-L5)
  bool allow_target_reset = false;     // TARGET WARM/COLD RESET (SR-B5)
  std::optional<ChapCredentials> discovery_chap;   // CHAP for discovery sessions
};

struct SessionInfo {
  std::string initiator_name;
  uint64_t isid = 0;
  uint16_t tsih = 0;
  std::string target_name;             // empty for discovery sessions
  bool discovery = false;
  std::string peer_address;            // "127.0.0.1:51234"
  std::string portal;                  // "127.0.0.1:3260"
  std::chrono::system_clock::time_point since;
  uint64_t commands = 0;
  uint64_t bytes_read = 0;             // Data-In payload
  uint64_t bytes_written = 0;          // Data-Out and immediate payload
};

class Server {
 public:
  static Result<std::unique_ptr<Server>> Start(const ServerOptions& options,
                                               TargetDirectory* directory);
  ~Server();

  // Closes the listeners and every connection; waits for running commands.
  // Idempotent.
  void Stop();
  // The bound port of each listen address, in order.
  std::vector<uint16_t> ports() const;
  // Sessions in full feature phase.
  std::vector<SessionInfo> Sessions() const;
  // Ends every session logged in to `target_name` (export removed or
  // changed); returns how many it ended. Their tasks are aborted and
  // Target::NexusLost is called before the session disappears.
  size_t CloseSessions(const std::string& target_name);

  struct Rep;

 private:
  explicit Server(std::unique_ptr<Rep> rep);
  std::unique_ptr<Rep> rep_;
};

}  // namespace blockhaus::iscsi

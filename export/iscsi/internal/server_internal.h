// Private to export/iscsi: the pieces behind Server (server.cc): event
// loops, the I/O pool, the session registry, connections and tasks. See the
// theory-of-operation comments of server.cc and connection.cc.
#pragma once

#include <sys/epoll.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/base/thread_annotations.h"
#include "core/pool/pool.h"
#include "export/iscsi/chap.h"
#include "export/iscsi/discovery.h"
#include "export/iscsi/iscsi_spec.h"
#include "export/iscsi/login.h"
#include "export/iscsi/pdu.h"
#include "export/iscsi/server.h"
#include "export/scsi/scsi_target.h"

namespace blockhaus::iscsi::internal {

using Clock = std::chrono::steady_clock;
class Connection;
class EventLoop;

// Something registered with epoll.
class Pollable {
 public:
  virtual ~Pollable() = default;
  virtual void OnEvents(uint32_t events) = 0;
};

// A write buffer that only grows: reused across commands without zeroing.
class DataBuffer {
 public:
  uint8_t* data() { return bytes_.get(); }
  size_t capacity() const { return capacity_; }
  void Reserve(size_t n) {
    if (n <= capacity_) return;
    bytes_.reset(new uint8_t[n]);
    capacity_ = n;
  }
  void Release() {
    bytes_.reset();
    capacity_ = 0;
  }
  void Swap(DataBuffer& other) {
    bytes_.swap(other.bytes_);
    std::swap(capacity_, other.capacity_);
  }

 private:
  std::unique_ptr<uint8_t[]> bytes_;
  size_t capacity_ = 0;
};

// One SCSI command of a session, from SCSI Command PDU to the last byte of
// its response on the wire. Recycled through Connection::free_tasks_.
struct Task {
  enum class State : uint8_t { kFree, kGathering, kExecuting, kResponding };
  struct R2t {
    uint32_t ttt = 0;
    uint32_t offset = 0;
    uint32_t length = 0;
    uint32_t received = 0;
    uint32_t datasn = 0;
  };

  Task* next = nullptr;        // I/O pool queue and loop completion list
  Connection* conn = nullptr;
  EventLoop* loop = nullptr;   // where the task goes back to
  scsi::Target* target = nullptr;
  const scsi::Nexus* nexus = nullptr;
  State state = State::kFree;
  bool aborted = false;
  bool immediate = false;
  bool read = false;
  bool write = false;
  uint32_t itt = 0;
  uint32_t edtl = 0;
  uint64_t lun_field = 0;      // raw 8-byte LUN, echoed in Data-In/R2T
  scsi::Command cmd;
  scsi::Response response;
  DataBuffer data;             // gathered write data
  uint64_t charged = 0;        // bytes counted against max_buffer_bytes
  // Write gathering (RFC 7143 §10.7, §11.8), in-order (DataPDUInOrder=Yes).
  uint32_t received = 0;
  uint32_t unsolicited_end = 0;
  uint32_t unsolicited_next = 0;
  uint32_t unsolicited_datasn = 0;
  uint32_t next_r2t_offset = 0;
  uint32_t r2tsn = 0;
  std::vector<R2t> r2ts;
  Clock::time_point last_activity;
  // Blocks of the data so far, prepared while the rest arrives (D35);
  // cmd.staged points here for writes. Reset when the task is freed.
  core::StagedWrite staged;
  uint32_t staged_through = 0;  // data bytes offered to StageWrite so far
};

// Runs scsi::Target::Execute off the event loops (it blocks on block I/O).
class IoPool {
 public:
  explicit IoPool(int threads);
  ~IoPool();
  void Submit(Task* task);

 private:
  void Run();
  Mutex mu_;
  std::condition_variable_any cv_;
  Task* head_ BH_GUARDED_BY(mu_) = nullptr;
  Task* tail_ BH_GUARDED_BY(mu_) = nullptr;
  bool stop_ BH_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

// What Server::Sessions() reports, updated by the owning loop.
struct SessionRecord {
  uint16_t tsih = 0;
  uint64_t nexus_id = 0;
  SessionInfo info;              // counters below are the live ones
  EventLoop* loop = nullptr;
  uint64_t conn_id = 0;
  bool active = false;           // in full feature phase (guarded by registry)
  bool closing = false;          // guarded by registry
  std::vector<std::function<void()>> on_gone;  // guarded by registry
  std::atomic<uint64_t> commands{0};       // relaxed: statistics only
  std::atomic<uint64_t> bytes_read{0};
  std::atomic<uint64_t> bytes_written{0};
};

// Every session of the server: TSIH allocation, limits, reinstatement.
class SessionRegistry {
 public:
  struct Bind {
    std::optional<LoginStatus> refused;
    std::shared_ptr<SessionRecord> record;
    std::shared_ptr<SessionRecord> old;   // being reinstated: wait for it
  };
  // Adds a session for a completed login; `on_old_gone` runs (on any
  // thread) once the reinstated session, if any, is fully gone.
  Bind Add(const LoginResult& login, const ServerOptions& options, SessionInfo info,
           EventLoop* loop, uint64_t conn_id, std::function<void()> on_old_gone)
      BH_EXCLUDES(mu_);
  void Activate(const std::shared_ptr<SessionRecord>& record);
  // Removes the record and runs its on_gone callbacks.
  void Remove(const std::shared_ptr<SessionRecord>& record);
  bool Exists(uint16_t tsih) const;
  std::vector<SessionInfo> List() const;
  std::vector<std::shared_ptr<SessionRecord>> ForTarget(const std::string& target) const;
  std::vector<std::shared_ptr<SessionRecord>> All() const;

 private:
  mutable Mutex mu_;
  std::map<uint16_t, std::shared_ptr<SessionRecord>> sessions_ BH_GUARDED_BY(mu_);
  uint16_t next_tsih_ BH_GUARDED_BY(mu_) = 1;
  uint64_t next_nexus_ BH_GUARDED_BY(mu_) = 1;
};

struct Listener : Pollable {
  int fd = -1;
  uint16_t port = 0;
  Server::Rep* server = nullptr;
  void OnEvents(uint32_t events) override;
};

class EventLoop : public Pollable {
 public:
  EventLoop(Server::Rep* server, int index);
  ~EventLoop() override;
  Status Init();
  void Start();
  // Asks the loop to close everything and return; Join waits for it.
  void RequestStop();
  void Join();

  // Runs `fn` on the loop thread (any thread may call). Returns false, and
  // drops `fn` unrun, once the loop has exited: whatever `fn` would have
  // taken over (an accepted socket) is still the caller's to release.
  bool Post(std::function<void()> fn);
  // A task of this loop goes to the I/O pool (loop thread).
  void TaskAway() { ++away_; }
  // A task came back from the I/O pool (called on an I/O thread).
  void Complete(Task* task);
  // Takes ownership of an accepted socket (on the loop thread).
  void Adopt(int fd, std::string peer_ip, std::string peer, std::string portal);
  // Closes the connection if it still exists (on the loop thread).
  void CloseConnection(uint64_t conn_id);
  // A reinstated session is gone: let `conn_id` finish its login.
  void ResumeConnection(uint64_t conn_id);
  // Cross-session LUN reset plumbing (loop thread); both tolerate a
  // connection that is already gone.
  void AbortForPeerReset(uint64_t conn_id, uint64_t lun_field, std::function<void()> done);
  void PeerResetDone(uint64_t conn_id, uint32_t tmf_itt);

  bool Watch(int fd, uint32_t events, Pollable* p);
  void Modify(int fd, uint32_t events, Pollable* p);
  void Unwatch(int fd);
  Server::Rep* server() { return server_; }

  void OnEvents(uint32_t events) override;  // the wake eventfd

 private:
  void Loop();
  // epoll_wait for at most a tick, polling first while that pays off
  // (ServerOptions::poll_before_sleep, D44).
  int Wait(epoll_event* events, int max);
  void DrainMailbox();
  // The loop's last act: refuse further Posts and run what is left.
  void CloseMailbox();
  void Sweep(Clock::time_point now);

  Server::Rep* server_;
  int index_;
  int epfd_ = -1;
  int wakefd_ = -1;
  std::thread thread_;
  bool stopping_ = false;        // loop thread only
  bool polling_ = true;          // loop thread only: the last poll or short sleep found events
  int away_ = 0;                 // loop thread only: tasks on I/O threads
  Mutex mu_;
  std::vector<std::function<void()>> mailbox_ BH_GUARDED_BY(mu_);
  Task* completed_ BH_GUARDED_BY(mu_) = nullptr;
  bool stop_requested_ BH_GUARDED_BY(mu_) = false;
  bool mailbox_closed_ BH_GUARDED_BY(mu_) = false;   // Loop() has returned
  std::unordered_map<uint64_t, std::unique_ptr<Connection>> conns_;
};

}  // namespace blockhaus::iscsi::internal

namespace blockhaus::iscsi {

struct Server::Rep {
  ServerOptions options;
  TargetDirectory* directory = nullptr;
  ChapLimiter limiter;
  internal::SessionRegistry registry;
  std::unique_ptr<internal::IoPool> pool;  // null: Execute on the loop
  std::vector<std::unique_ptr<internal::EventLoop>> loops;
  std::vector<std::unique_ptr<internal::Listener>> listeners;
  std::atomic<uint64_t> next_conn_id{1};   // relaxed: unique ids only
  std::atomic<uint64_t> next_nexus_id{1};
  std::atomic<uint64_t> buffer_bytes{0};   // relaxed: a soft cap
  std::atomic<size_t> next_loop{0};
  Mutex prelogin_mu;
  int prelogin_total BH_GUARDED_BY(prelogin_mu) = 0;
  std::map<std::string, int> prelogin_by_address BH_GUARDED_BY(prelogin_mu);
  bool stopped = false;

  bool AdmitPrelogin(const std::string& address);
  void LeavePrelogin(const std::string& address);
};

}  // namespace blockhaus::iscsi

// Theory of operation: the iSCSI server (threads, sockets, sessions)
//
// Overview
//   Server::Start binds the portals and starts `event_loops` event loop
//   threads and `io_threads` I/O threads. There is no thread per
//   connection (DESIGN.md §5):
//
//     listener (loop 0) --accept--> EventLoop k (round robin) owns the socket
//     EventLoop: epoll; reads PDUs, logs in, gathers write data, sends
//                responses; every Connection is confined to its loop
//     IoPool:    runs scsi::Target::Execute (it blocks on block I/O), then
//                hands the Task back to its loop (mutex'd list + eventfd)
//
//   With io_threads = 0 the loop calls Execute itself: no hop at all, right
//   for RAM-backed targets and tests, wrong for disk-backed ones.
//   Before a loop sleeps in epoll_wait it polls for up to
//   poll_before_sleep while that keeps finding events and none of its
//   tasks is on an I/O thread (D44): a queue-depth-1 initiator's next
//   command then finds it awake.
//
// Data structures & on-disk format
//   Server::Rep (server_internal.h) holds the options, the TargetDirectory,
//   the SessionRegistry (TSIH -> SessionRecord, for Sessions(),
//   CloseSessions(), limits and reinstatement), the ChapLimiter and the
//   pre-login admission counters. Nothing is persisted.
//
// Invariants
//   * A Connection and its Tasks' protocol state are touched only by the
//     loop thread owning it; I/O threads touch a Task's cmd/response only
//     between Submit and Complete.
//   * A loop exits only when every connection has finished teardown (no
//     task left on an I/O thread); the I/O pool is stopped after the loops,
//     so every submitted task completes.
//   * Pre-login connections are capped globally and per source address
//     (SR-L2) and each is closed at login_timeout (SR-L1).
//   * Every accepted socket is closed exactly once: by its Connection, by
//     Adopt on a stopping loop, or by the listener when the chosen loop has
//     already exited (its mailbox is closed and Post refuses). Loops exit
//     independently during Stop, so loop 0 can still accept for a loop
//     that is gone.
//
// Concurrency & lock order
//   Locks are leaves, never nested: EventLoop::mu_ (mailbox and completion
//   list), IoPool::mu_, SessionRegistry::mu_, Rep::prelogin_mu,
//   ChapLimiter::mu_. SessionRegistry callbacks (on_gone) run after its
//   mutex is released and only Post() to a loop.
//   Cross-thread hops per SCSI command: two with the pool (loop -> I/O
//   thread -> loop), zero with io_threads = 0. Completions are batched: the
//   eventfd is written only when the completion list goes non-empty, so a
//   busy loop drains many completions per wake-up (DESIGN.md §5: a
//   cross-core wake-up costs more than the work).
//
// Crash consistency
//   Not applicable; sessions do not survive the process (initiators log in
//   again, RFC 7143 §6.3.5 reinstatement).
//
// Failure handling
//   Start fails as a whole (Unavailable: bind/listen; InvalidArgument: bad
//   address or options) and leaves nothing running. At run time a socket
//   error ends one connection; accept errors (EMFILE) are logged and the
//   listener retries on the next event.
//
// Tunables
//   ServerOptions (server.h), each with its default and unit.

#include "export/iscsi/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "core/base/logging.h"
#include "core/base/sync_point.h"
#include "core/base/thread_name.h"
#include "export/iscsi/internal/connection.h"
#include "export/iscsi/internal/server_internal.h"

namespace blockhaus::iscsi {
namespace internal {
namespace {

constexpr auto kTick = std::chrono::milliseconds(100);

// "a.b.c.d:port" / "[v6]:port" -> sockaddr.
bool ParseListen(const std::string& text, sockaddr_storage* out, socklen_t* len) {
  std::string host;
  std::string port;
  if (!text.empty() && text[0] == '[') {
    const size_t close = text.find("]:");
    if (close == std::string::npos) return false;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string::npos) return false;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  std::optional<uint64_t> p = ParseNumber(port);
  if (!p || *p > 65535 || port.rfind("0x", 0) == 0) return false;
  std::memset(out, 0, sizeof(*out));
  auto* v4 = reinterpret_cast<sockaddr_in*>(out);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(out);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(*p));
    *len = sizeof(sockaddr_in);
    return true;
  }
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(*p));
    *len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

// Address text (IPv4-mapped IPv6 shown as IPv4) and port of a sockaddr.
std::string AddressText(const sockaddr_storage& ss, uint16_t* port) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &v4->sin_addr, buf, sizeof(buf));
    *port = ntohs(v4->sin_port);
    return buf;
  }
  const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&ss);
  *port = ntohs(v6->sin6_port);
  if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) {
    inet_ntop(AF_INET, &v6->sin6_addr.s6_addr[12], buf, sizeof(buf));
    return buf;
  }
  inet_ntop(AF_INET6, &v6->sin6_addr, buf, sizeof(buf));
  return buf;
}

}  // namespace

// --- IoPool ---

IoPool::IoPool(int threads) {
  for (int i = 0; i < threads; ++i) {
    threads_.emplace_back([this, i] {
      NameThisThread("bh-io-" + std::to_string(i));
      Run();
    });
  }
}

IoPool::~IoPool() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void IoPool::Submit(Task* task) {
  task->next = nullptr;
  {
    MutexLock lock(&mu_);
    if (tail_ != nullptr) {
      tail_->next = task;
    } else {
      head_ = task;
    }
    tail_ = task;
  }
  cv_.notify_one();
}

void IoPool::Run() {
  while (true) {
    Task* task = nullptr;
    {
      MutexLock lock(&mu_);
      while (!stop_ && head_ == nullptr) cv_.wait(mu_);
      if (head_ == nullptr) return;  // stop_ and drained
      task = head_;
      head_ = task->next;
      if (head_ == nullptr) tail_ = nullptr;
    }
    task->target->Execute(*task->nexus, task->cmd, &task->response);
    task->loop->Complete(task);
  }
}

// --- SessionRegistry ---

SessionRegistry::Bind SessionRegistry::Add(const LoginResult& login, const ServerOptions& options,
                                           SessionInfo info, EventLoop* loop, uint64_t conn_id,
                                           std::function<void()> on_old_gone) {
  Bind bind;
  MutexLock lock(&mu_);
  int total = 0;
  int same_initiator = 0;
  for (auto& [tsih, r] : sessions_) {
    if (r->closing) continue;
    const bool same_nexus = r->info.initiator_name == info.initiator_name &&
                            r->info.isid == info.isid && r->info.target_name == info.target_name &&
                            r->info.discovery == info.discovery;
    if (same_nexus) {
      bind.old = r;  // reinstatement (RFC 7143 §6.3.5); not counted
      continue;
    }
    ++total;
    if (r->info.initiator_name == info.initiator_name) ++same_initiator;
    if (login.target && !login.target->multi_session && r->info.target_name == info.target_name &&
        r->info.initiator_name != info.initiator_name) {
      bind.refused = LoginStatus::kServiceUnavailable;  // another initiator holds it
    }
  }
  if (total >= options.max_sessions) bind.refused = LoginStatus::kOutOfResources;
  if (same_initiator >= options.max_sessions_per_initiator) {
    bind.refused = LoginStatus::kTooManyConnections;
  }
  if (sessions_.size() >= 65535) bind.refused = LoginStatus::kOutOfResources;
  if (bind.refused) {
    bind.old.reset();
    return bind;
  }
  while (next_tsih_ == 0 || sessions_.count(next_tsih_) != 0) ++next_tsih_;
  auto record = std::make_shared<SessionRecord>();
  record->tsih = next_tsih_++;
  record->nexus_id = next_nexus_++;
  info.tsih = record->tsih;
  record->info = std::move(info);
  record->loop = loop;
  record->conn_id = conn_id;
  sessions_[record->tsih] = record;
  if (bind.old) {
    bind.old->closing = true;
    bind.old->on_gone.push_back(std::move(on_old_gone));
  }
  bind.record = std::move(record);
  return bind;
}

void SessionRegistry::Activate(const std::shared_ptr<SessionRecord>& record) {
  MutexLock lock(&mu_);
  record->active = true;
}

void SessionRegistry::Remove(const std::shared_ptr<SessionRecord>& record) {
  std::vector<std::function<void()>> callbacks;
  {
    MutexLock lock(&mu_);
    auto it = sessions_.find(record->tsih);
    if (it != sessions_.end() && it->second == record) sessions_.erase(it);
    callbacks.swap(record->on_gone);
  }
  for (auto& cb : callbacks) cb();
}

bool SessionRegistry::Exists(uint16_t tsih) const {
  MutexLock lock(&mu_);
  return sessions_.count(tsih) != 0;
}

std::vector<SessionInfo> SessionRegistry::List() const {
  MutexLock lock(&mu_);
  std::vector<SessionInfo> out;
  for (const auto& [tsih, r] : sessions_) {
    if (!r->active || r->closing) continue;
    SessionInfo info = r->info;
    info.commands = r->commands.load(std::memory_order_relaxed);
    info.bytes_read = r->bytes_read.load(std::memory_order_relaxed);
    info.bytes_written = r->bytes_written.load(std::memory_order_relaxed);
    out.push_back(std::move(info));
  }
  return out;
}

std::vector<std::shared_ptr<SessionRecord>> SessionRegistry::ForTarget(
    const std::string& target) const {
  MutexLock lock(&mu_);
  std::vector<std::shared_ptr<SessionRecord>> out;
  for (const auto& [tsih, r] : sessions_) {
    if (!r->info.discovery && r->info.target_name == target) out.push_back(r);
  }
  return out;
}

std::vector<std::shared_ptr<SessionRecord>> SessionRegistry::All() const {
  MutexLock lock(&mu_);
  std::vector<std::shared_ptr<SessionRecord>> out;
  for (const auto& [tsih, r] : sessions_) out.push_back(r);
  return out;
}

// --- Listener ---

void Listener::OnEvents(uint32_t) {
  for (int i = 0; i < 64; ++i) {
    sockaddr_storage peer{};
    socklen_t len = sizeof(peer);
    const int conn_fd = ::accept4(fd, reinterpret_cast<sockaddr*>(&peer), &len,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (conn_fd < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        BH_LOG(kWarning, "iscsi: accept: {}", std::strerror(errno));
      }
      return;
    }
    sockaddr_storage local{};
    socklen_t local_len = sizeof(local);
    ::getsockname(conn_fd, reinterpret_cast<sockaddr*>(&local), &local_len);
    uint16_t peer_port = 0;
    uint16_t local_port = 0;
    std::string peer_ip = AddressText(peer, &peer_port);
    std::string local_ip = AddressText(local, &local_port);
    if (!server->AdmitPrelogin(peer_ip)) {
      ::close(conn_fd);  // SR-L2: too many connections not yet logged in
      continue;
    }
    const int one = 1;
    ::setsockopt(conn_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    const size_t k = server->next_loop.fetch_add(1, std::memory_order_relaxed) % server->loops.size();
    EventLoop* loop = server->loops[k].get();
    std::string peer_text = FormatPortal(peer_ip, peer_port);
    std::string portal = FormatPortal(local_ip, local_port);
    BH_SYNC_POINT("iscsi::Listener::Accepted");
    const bool posted = loop->Post([loop, conn_fd, peer_ip, peer_text, portal]() mutable {
      loop->Adopt(conn_fd, std::move(peer_ip), std::move(peer_text), std::move(portal));
    });
    if (!posted) {
      // Server::Stop is under way and that loop has already exited (it had
      // no connections left); nobody would ever adopt the socket.
      server->LeavePrelogin(peer_ip);
      ::close(conn_fd);
    }
  }
}

// --- EventLoop ---

EventLoop::EventLoop(Server::Rep* server, int index) : server_(server), index_(index) {}

EventLoop::~EventLoop() {
  if (epfd_ >= 0) ::close(epfd_);
  if (wakefd_ >= 0) ::close(wakefd_);
}

Status EventLoop::Init() {
  epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
  wakefd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epfd_ < 0 || wakefd_ < 0) return BH_ERROR(kUnavailable, "epoll/eventfd: {}", std::strerror(errno));
  if (!Watch(wakefd_, EPOLLIN, this)) return BH_ERROR(kUnavailable, "epoll_ctl: {}", std::strerror(errno));
  return Status::Ok();
}

void EventLoop::Start() {
  thread_ = std::thread([this] {
    NameThisThread("bh-loop-" + std::to_string(index_));
    Loop();
  });
}

void EventLoop::RequestStop() {
  {
    MutexLock lock(&mu_);
    stop_requested_ = true;
  }
  const uint64_t one = 1;
  (void)!::write(wakefd_, &one, sizeof(one));
}

void EventLoop::Join() {
  if (thread_.joinable()) thread_.join();
}

bool EventLoop::Watch(int fd, uint32_t events, Pollable* p) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = p;
  return ::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0;
}

void EventLoop::Modify(int fd, uint32_t events, Pollable* p) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = p;
  ::epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev);
}

void EventLoop::Unwatch(int fd) { ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr); }

bool EventLoop::Post(std::function<void()> fn) {
  {
    MutexLock lock(&mu_);
    if (mailbox_closed_) return false;
    mailbox_.push_back(std::move(fn));
  }
  const uint64_t one = 1;
  (void)!::write(wakefd_, &one, sizeof(one));
  return true;
}

void EventLoop::CloseMailbox() {
  std::vector<std::function<void()>> mail;
  {
    MutexLock lock(&mu_);
    mailbox_closed_ = true;
    mail.swap(mailbox_);
  }
  // Posted between the last drain and now. stopping_ is set, so an Adopt
  // closes its socket; the rest find no connection.
  for (auto& fn : mail) fn();
}

void EventLoop::Complete(Task* task) {
  bool wake = false;
  {
    MutexLock lock(&mu_);
    wake = completed_ == nullptr;  // batch: one wake-up per non-empty list
    task->next = completed_;
    completed_ = task;
  }
  if (wake) {
    const uint64_t one = 1;
    (void)!::write(wakefd_, &one, sizeof(one));
  }
}

void EventLoop::OnEvents(uint32_t) {
  uint64_t n = 0;
  (void)!::read(wakefd_, &n, sizeof(n));
}

void EventLoop::Adopt(int fd, std::string peer_ip, std::string peer, std::string portal) {
  const uint64_t id = server_->next_conn_id.fetch_add(1, std::memory_order_relaxed);
  if (stopping_) {
    server_->LeavePrelogin(peer_ip);
    ::close(fd);
    return;
  }
  auto conn = std::make_unique<Connection>(this, id, fd, std::move(peer_ip), std::move(peer),
                                           std::move(portal));
  if (!Watch(fd, EPOLLIN, conn.get())) {
    conn->Close("epoll_ctl failed");
  }
  conns_[id] = std::move(conn);
}

void EventLoop::CloseConnection(uint64_t conn_id) {
  auto it = conns_.find(conn_id);
  if (it != conns_.end()) it->second->Close("closed by the server");
}

void EventLoop::ResumeConnection(uint64_t conn_id) {
  auto it = conns_.find(conn_id);
  if (it != conns_.end()) it->second->ResumeLogin();
}

void EventLoop::AbortForPeerReset(uint64_t conn_id, uint64_t lun_field,
                                  std::function<void()> done) {
  auto it = conns_.find(conn_id);
  if (it == conns_.end()) {
    done();
    return;
  }
  it->second->AbortForPeerReset(lun_field, std::move(done));
}

void EventLoop::PeerResetDone(uint64_t conn_id, uint32_t tmf_itt) {
  auto it = conns_.find(conn_id);
  if (it != conns_.end()) it->second->PeerResetDone(tmf_itt);
}

void EventLoop::DrainMailbox() {
  std::vector<std::function<void()>> mail;
  Task* done = nullptr;
  bool stop = false;
  {
    MutexLock lock(&mu_);
    mail.swap(mailbox_);
    done = completed_;
    completed_ = nullptr;
    stop = stop_requested_;
  }
  // The list is LIFO; reverse it so commands complete in arrival order.
  Task* fifo = nullptr;
  while (done != nullptr) {
    Task* next = done->next;
    done->next = fifo;
    fifo = done;
    done = next;
  }
  while (fifo != nullptr) {
    Task* next = fifo->next;
    --away_;
    fifo->conn->OnTaskDone(fifo);
    fifo = next;
  }
  for (auto& fn : mail) fn();
  if (stop && !stopping_) {
    stopping_ = true;
    if (index_ == 0) {
      for (auto& l : server_->listeners) {
        Unwatch(l->fd);
        ::close(l->fd);
        l->fd = -1;
      }
    }
    for (auto& [id, conn] : conns_) conn->Close("server stopping");
  }
}

void EventLoop::Sweep(Clock::time_point now) {
  for (auto& [id, conn] : conns_) conn->Tick(now);
}

int EventLoop::Wait(epoll_event* events, int max) {
  const std::chrono::microseconds poll = server_->options.poll_before_sleep;
  // Not while a task is on an I/O thread: on a small machine the poll
  // would take the CPU that thread needs.
  if (poll.count() > 0 && polling_ && away_ == 0) {
    const Clock::time_point until = Clock::now() + poll;
    do {
      const int n = ::epoll_wait(epfd_, events, max, 0);
      if (n != 0) return n;
      // A thread woken onto this CPU (the initiator, the sync thread)
      // runs now rather than after the poll.
      sched_yield();
    } while (Clock::now() < until);
    polling_ = false;  // nothing came in time: sleep until events come quickly again
  }
  const Clock::time_point slept = Clock::now();
  const int n = ::epoll_wait(epfd_, events, max, static_cast<int>(kTick.count()));
  if (poll.count() > 0 && n > 0 && Clock::now() - slept < poll) polling_ = true;
  return n;
}

void EventLoop::Loop() {
  epoll_event events[64];
  Clock::time_point last_sweep = Clock::now();
  while (true) {
    const int n = Wait(events, 64);
    for (int i = 0; i < n; ++i) static_cast<Pollable*>(events[i].data.ptr)->OnEvents(events[i].events);
    DrainMailbox();
    const Clock::time_point now = Clock::now();
    if (now - last_sweep >= kTick) {
      Sweep(now);
      last_sweep = now;
    }
    std::erase_if(conns_, [](const auto& kv) { return kv.second->Finished(); });
    if (stopping_ && conns_.empty()) {
      CloseMailbox();
      BH_SYNC_POINT("iscsi::EventLoop::Exited");
      return;
    }
  }
}

}  // namespace internal

// --- Server::Rep ---

bool Server::Rep::AdmitPrelogin(const std::string& address) {
  MutexLock lock(&prelogin_mu);
  int& mine = prelogin_by_address[address];
  if (prelogin_total >= options.max_prelogin_connections || mine >= options.max_prelogin_per_address) {
    if (mine == 0) prelogin_by_address.erase(address);
    return false;
  }
  ++prelogin_total;
  ++mine;
  return true;
}

void Server::Rep::LeavePrelogin(const std::string& address) {
  MutexLock lock(&prelogin_mu);
  --prelogin_total;
  auto it = prelogin_by_address.find(address);
  if (it != prelogin_by_address.end() && --it->second <= 0) prelogin_by_address.erase(it);
}

// --- Server ---

Server::Server(std::unique_ptr<Rep> rep) : rep_(std::move(rep)) {}

Server::~Server() { Stop(); }

Result<std::unique_ptr<Server>> Server::Start(const ServerOptions& options,
                                              TargetDirectory* directory) {
  if (directory == nullptr) return BH_ERROR(kInvalidArgument, "no target directory");
  if (options.listen.empty()) return BH_ERROR(kInvalidArgument, "no listen address");
  if (options.event_loops < 1 || options.event_loops > 16 || options.io_threads < 0 ||
      options.io_threads > 64 || options.cmdsn_window < 1 || options.cmdsn_window > 512 ||
      options.poll_before_sleep.count() < 0 || options.poll_before_sleep.count() > 1000) {
    return BH_ERROR(kInvalidArgument, "server options out of range");
  }
  auto rep = std::make_unique<Rep>();
  rep->options = options;
  rep->directory = directory;
  for (const std::string& text : options.listen) {
    sockaddr_storage addr;
    socklen_t len = 0;
    if (!internal::ParseListen(text, &addr, &len)) {
      return BH_ERROR(kInvalidArgument, "bad listen address '{}'", LogEscape(text));
    }
    const int fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return BH_ERROR(kUnavailable, "socket: {}", std::strerror(errno));
    auto listener = std::make_unique<internal::Listener>();
    listener->fd = fd;
    listener->server = rep.get();
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (addr.ss_family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::listen(fd, options.listen_backlog) != 0) {
      const int err = errno;
      ::close(fd);
      for (auto& l : rep->listeners) ::close(l->fd);
      return BH_ERROR(kUnavailable, "listen on {}: {}", LogEscape(text), std::strerror(err));
    }
    sockaddr_storage bound{};
    socklen_t bound_len = sizeof(bound);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_len);
    internal::AddressText(bound, &listener->port);
    rep->listeners.push_back(std::move(listener));
  }
  for (int i = 0; i < options.event_loops; ++i) {
    rep->loops.push_back(std::make_unique<internal::EventLoop>(rep.get(), i));
    Status s = rep->loops.back()->Init();
    if (!s.ok()) {
      for (auto& l : rep->listeners) ::close(l->fd);
      return s;
    }
  }
  for (auto& l : rep->listeners) {
    if (!rep->loops[0]->Watch(l->fd, EPOLLIN, l.get())) {
      for (auto& x : rep->listeners) ::close(x->fd);
      return BH_ERROR(kUnavailable, "epoll_ctl on listener: {}", std::strerror(errno));
    }
  }
  if (options.io_threads > 0) rep->pool = std::make_unique<internal::IoPool>(options.io_threads);
  for (auto& loop : rep->loops) loop->Start();
  return std::unique_ptr<Server>(new Server(std::move(rep)));
}

void Server::Stop() {
  if (rep_ == nullptr || rep_->stopped) return;
  rep_->stopped = true;
  for (auto& loop : rep_->loops) loop->RequestStop();
  for (auto& loop : rep_->loops) loop->Join();
  rep_->pool.reset();  // after the loops: every submitted task has completed
}

std::vector<uint16_t> Server::ports() const {
  std::vector<uint16_t> out;
  for (const auto& l : rep_->listeners) out.push_back(l->port);
  return out;
}

std::vector<SessionInfo> Server::Sessions() const { return rep_->registry.List(); }

size_t Server::CloseSessions(const std::string& target_name) {
  auto records = rep_->registry.ForTarget(target_name);
  for (const auto& r : records) {
    internal::EventLoop* loop = r->loop;
    const uint64_t id = r->conn_id;
    loop->Post([loop, id] { loop->CloseConnection(id); });
  }
  return records.size();
}

}  // namespace blockhaus::iscsi

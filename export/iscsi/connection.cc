// Theory of operation: iSCSI connections and sessions (RFC 7143 §4-§7, §10, §11)
//
// Overview
//   A Connection is one TCP connection from accept to close, and, because
//   MaxConnections is 1 and ErrorRecoveryLevel 0, also the session it
//   carries. It logs in (LoginMachine), binds the session in the
//   SessionRegistry (reinstating an older one with the same ISID and
//   InitiatorName), then runs the full feature phase: SCSI commands with
//   immediate, unsolicited and solicited (R2T) write data, Data-In and
//   SCSI Response, NOP-Out/NOP-In, task management, Text (SendTargets) and
//   Logout.
//
// Data structures & on-disk format
//   Task: one SCSI command. Tasks are recycled through free_tasks_ with
//   their write buffer, their Response vectors, their R2T vector and their
//   write stage (emptied when freed), so a steady stream of same-size I/O
//   allocates nothing. active_ holds tasks
//   between receipt and the queueing of their status (ITT lookup is a
//   linear scan: at most cmdsn_window entries). Data-In PDUs borrow the
//   task's response.data_in; the last PDU of a task carries the task as its
//   writer cookie and the task is recycled when that PDU has been written.
//   Nothing is persisted.
//
// Invariants
//   * Only the owning loop thread touches a Connection; an I/O thread
//     touches only its Task's cmd/response and then hands the Task back
//     through EventLoop::Complete.
//   * inflight_ counts tasks on I/O threads; the Connection is destroyed,
//     and Target::NexusLost called, only when it is 0, so no command of a
//     closed or reinstated session runs after the session is gone.
//   * The CmdSN window bounds resources: non-immediate commands are
//     accepted only with CmdSN == ExpCmdSN, and MaxCmdSN = ExpCmdSN - 1 +
//     (window - window_used_), which never decreases.
//   * A write is executed only when all EDTL bytes arrived, in order
//     (DataPDUInOrder=Yes); a Data-Out outside what was solicited is a
//     protocol error and its bytes never reach the Target.
//   * An aborted task sends nothing more (no R2T, Data-In or status); the
//     TMF response waits until every task it aborted has left its I/O
//     thread, so no aborted write lands after the TMF response.
//
// Concurrency & lock order
//   Loop-confined. Calls out, without holding any lock: Target::Execute
//   (I/O thread), Target::TryExecute (loop thread: a small read or write,
//   when nothing else of the connection executes, that runs only if it
//   needs no wait; ServerOptions::inline_read_bytes, inline_write_bytes;
//   a large read only when no further input waits, D43),
//   Target::StageWrite (loop thread: the data of a write alone on its
//   connection that is in so far, compressed while the rest arrives, D35,
//   or copied into the pool's raw dirty area, D52),
//   Target::ResetLun/NexusLost (loop thread, after the
//   affected tasks are off the I/O threads), SessionRegistry (its own
//   leaf mutex), ChapLimiter (leaf mutex). A LUN reset reaches other
//   sessions only by EventLoop::Post to their loops, which answer with a
//   Post back (PeerResetDone); no connection is touched off its loop.
//
// Crash consistency
//   Not applicable: a connection has no durable state. Write durability is
//   the Target's business (SYNCHRONIZE CACHE / FUA).
//
// Failure handling
//   ERL 0 throughout: a header digest error, an over-long segment or a data
//   digest error (after a Reject) closes the connection, which ends the
//   session. A Data-Out outside what was solicited (offset, DataSN, TTT)
//   ends its command with ABORTED COMMAND / DATA PHASE ERROR and the
//   session goes on (libiscsi iSCSIDataSnInvalid). Malformed or unsupported PDUs
//   that leave the stream in sync get a Reject with the RFC 7143 §11.17.1
//   reason and the connection goes on. Out-of-window commands are dropped
//   silently (RFC 7143 §4.2.2.1).
//
// Tunables
//   ServerOptions: cmdsn_window, nop_interval, nop_timeout,
//   data_out_timeout, login_timeout, max_command_bytes, max_buffer_bytes,
//   allow_target_reset, offers.

#include "export/iscsi/internal/connection.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "core/base/logging.h"
#include "export/scsi/sense.h"

namespace blockhaus::iscsi::internal {
namespace {

constexpr size_t kInputBuffer = 64 * 1024;
// Most bytes one readiness event reads (fairness between connections).
constexpr size_t kReadBudget = 1024 * 1024;
// Routed data left below this goes through inbuf_ with what follows it (one
// read instead of two).
constexpr size_t kDirectReadMin = 4096;
constexpr size_t kMaxQueuedOutput = 8u << 20;  // stop reading above this

// SAM-5 LUN field -> flat LUN number (peripheral and flat addressing).
uint64_t DecodeLun(uint64_t field) {
  const uint8_t method = static_cast<uint8_t>(field >> 62);
  const uint64_t first = field >> 48;
  if (method == 0 && ((first >> 8) & 0x3f) == 0) return first & 0xff;   // peripheral
  if (method == 1) return first & 0x3fff;                                // flat
  return ~0ull;                                                          // unsupported: no such LUN
}

// Serial number arithmetic (RFC 1982), as CmdSN comparisons need.
bool SnLess(uint32_t a, uint32_t b) { return a != b && static_cast<int32_t>(a - b) < 0; }

}  // namespace

Connection::Connection(EventLoop* loop, uint64_t id, int fd, std::string peer_ip,
                       std::string peer, std::string portal)
    : loop_(loop),
      server_(loop->server()),
      id_(id),
      fd_(fd),
      peer_ip_(std::move(peer_ip)),
      peer_(std::move(peer)),
      portal_(std::move(portal)),
      created_(Clock::now()),
      last_rx_(created_) {
  inbuf_.resize(kInputBuffer);
  reader_.SetDataRoute([this](const Pdu& header) { return RouteData(header); });
  LoginEnv env;
  env.directory = server_->directory;
  env.peer_address = peer_ip_;
  env.limiter = &server_->limiter;
  env.discovery_chap = server_->options.discovery_chap;
  env.offers = server_->options.offers;
  env.cmdsn_window = server_->options.cmdsn_window;
  SessionRegistry* registry = &server_->registry;
  env.session_exists = [registry](uint16_t tsih) { return registry->Exists(tsih); };
  login_ = std::make_unique<LoginMachine>(std::move(env));
}

Connection::~Connection() {
  if (fd_ >= 0) ::close(fd_);
}

void Connection::Transition(State to) {
  bool ok = false;
  switch (state_) {
    case State::kLogin: ok = to == State::kWaitReinstate || to == State::kFullFeature || to == State::kClosing; break;
    case State::kWaitReinstate: ok = to == State::kFullFeature || to == State::kClosing; break;
    case State::kFullFeature: ok = to == State::kLogout || to == State::kClosing; break;
    case State::kLogout: ok = to == State::kClosing; break;
    case State::kClosing: ok = to == State::kClosed; break;
    case State::kClosed: ok = false; break;
  }
  BH_CHECK(ok);
  state_ = to;
}

// --- I/O ---

void Connection::OnEvents(uint32_t events) {
  if (state_ == State::kClosing || state_ == State::kClosed) return;
  if (events & (EPOLLERR | EPOLLHUP)) {
    Close("socket error or hangup");
    return;
  }
  if (events & EPOLLOUT) FlushOut();
  if ((events & EPOLLIN) && state_ != State::kClosing) ReadSome();
}

// Reads until the socket is drained or kReadBudget bytes came in (so one
// busy connection cannot starve the others on its loop). Routed data
// segments (bulk write data) are read straight into their command's buffer;
// everything else goes through inbuf_ and the reader.
void Connection::ReadSome() {
  // Input is ignored after a fatal answer. Bytes already read are always
  // fed: only the next read waits while output is backed up.
  auto accepting = [this] {
    return (state_ == State::kLogin || state_ == State::kFullFeature ||
            state_ == State::kLogout || state_ == State::kWaitReinstate) &&
           !close_after_flush_ && !delayed_response_;
  };
  for (size_t budget = kReadBudget; budget > 0 && accepting() && !reading_paused_;) {
    ByteSpan direct = reader_.DirectTarget();
    const bool into_task = direct.size() >= kDirectReadMin;
    ByteSpan dst = into_task ? direct : ByteSpan(inbuf_.data(), inbuf_.size());
    dst = dst.subspan(0, std::min(dst.size(), budget));
    const ssize_t n = ::read(fd_, dst.data(), dst.size());
    if (n == 0) {
      Close("peer closed");
      return;
    }
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) Close("read error");
      break;
    }
    budget -= static_cast<size_t>(n);
    last_rx_ = Clock::now();
    ping_ttt_ = kReservedTag;  // anything from the peer proves it alive
    if (into_task) {
      if (!OnReadEvent(reader_.Filled(static_cast<size_t>(n)))) return;
      const ByteSpan rest = reader_.DirectTarget();
      if (static_cast<size_t>(n) < dst.size() && !rest.empty()) {
        // The rest of this data segment is still on its way: prepare what is in.
        if (routed_task_ != nullptr) {
          StageArrived(routed_task_, static_cast<uint32_t>(rest.data() - routed_task_->data.data()));
        } else if (routing_immediate_) {
          StageImmediate(static_cast<uint32_t>(rest.data() - pending_data_.data()));
        }
      }
    } else {
      ConstByteSpan in(inbuf_.data(), static_cast<size_t>(n));
      while (!in.empty() && accepting()) {
        size_t used = 0;
        const ReadEvent ev = reader_.Feed(in, &used);
        in = in.subspan(used);
        unfed_ = in.size();
        const bool go_on = OnReadEvent(ev);
        unfed_ = 0;
        if (!go_on) return;
      }
    }
    if (static_cast<size_t>(n) < dst.size()) break;  // drained for now
  }
  FlushOut();
}

bool Connection::MoreInputWaiting() const {
  if (unfed_ > 0) return true;
  int queued = 0;
  return ::ioctl(fd_, FIONREAD, &queued) == 0 && queued > 0;
}

bool Connection::OnReadEvent(ReadEvent ev) {
  if (ev != ReadEvent::kNeedMore) {  // the PDU is complete
    routed_task_ = nullptr;
    routing_immediate_ = false;
  }
  switch (ev) {
    case ReadEvent::kNeedMore: return true;
    case ReadEvent::kPdu:
      if (state_ == State::kLogin) {
        HandleLoginPdu(reader_.pdu());
      } else if (state_ == State::kFullFeature) {
        HandlePdu(reader_.pdu());
        pending_staged_.Reset();  // its task took it, or its command was refused
      } else if (state_ == State::kWaitReinstate) {
        Close("PDU while waiting for session reinstatement");
      }
      return true;
    case ReadEvent::kTooLong:
      RejectAndClose(RejectReason::kProtocolError, "data segment above MaxRecvDataSegmentLength");
      return false;
    case ReadEvent::kHeaderDigestError: Close("header digest error"); return false;
    case ReadEvent::kDataDigestError:
      RejectAndClose(RejectReason::kDataDigestError, "data digest error during login");
      return false;
  }
  return true;
}

void Connection::RejectAndClose(RejectReason reason, const char* why_in_login) {
  if (state_ == State::kFullFeature) {
    Reject(reader_.pdu().bhs, reason, /*then_close=*/true);
    FlushOut();
  } else {
    Close(why_in_login);
  }
}

ByteSpan Connection::RouteData(const Pdu& header) {
  if (state_ != State::kFullFeature || session_.type == SessionType::kDiscovery) return {};
  const uint32_t len = BhsDataSegmentLength(header.bhs);
  const uint8_t opcode = header.bhs[0] & 0x3f;
  if (opcode == static_cast<uint8_t>(Opcode::kDataOut)) {
    const DataOutBhs d = DecodeDataOut(header.bhs);
    const DataOutMatch m = MatchDataOut(d);
    if (m.task == nullptr || !m.in_order) return {};  // HandleDataOut answers it
    routed_task_ = m.task;
    routed_offset_ = d.buffer_offset;
    return ByteSpan(m.task->data.data() + d.buffer_offset, len);
  }
  if (opcode == static_cast<uint8_t>(Opcode::kScsiCommand)) {
    // Whether the command may carry this data is HandleScsiCommand's to
    // judge; here only that the buffer can hold it.
    const ScsiCommandBhs c = DecodeScsiCommand(header.bhs);
    if (!c.write || c.edtl < len || c.edtl > server_->options.max_command_bytes) return {};
    pending_data_.Reserve(c.edtl);
    pending_staged_.Reset();  // blocks of an earlier command in the same buffer
    pending_cmd_.nexus_id = nexus_.id;
    pending_cmd_.lun = DecodeLun(c.lun);
    pending_cmd_.cdb = c.cdb;
    pending_cmd_.expected_length = c.edtl;
    pending_cmd_.staged = &pending_staged_;
    routing_immediate_ = true;
    return ByteSpan(pending_data_.data(), len);
  }
  return {};
}

void Connection::FlushOut() {
  if (fd_ < 0) return;
  const WriteResult r = writer_.Flush(fd_, &released_);
  ReleaseCookies();
  if (r == WriteResult::kError) {
    Close("write error");
    return;
  }
  if (writer_.empty() && close_after_flush_) {
    Close("closing after final response");
    return;
  }
  UpdateInterest();
}

void Connection::UpdateInterest() {
  if (fd_ < 0) return;
  const bool want_write = !writer_.empty();
  const bool pause = writer_.queued_bytes() > kMaxQueuedOutput;
  if (want_write == want_write_ && pause == reading_paused_) return;
  want_write_ = want_write;
  reading_paused_ = pause;
  uint32_t events = (pause ? 0u : uint32_t{EPOLLIN}) | (want_write ? uint32_t{EPOLLOUT} : 0u);
  loop_->Modify(fd_, events, this);
}

void Connection::ReleaseCookies() {
  for (void* cookie : released_) FreeTask(static_cast<Task*>(cookie));
  released_.clear();
}

// --- login ---

void Connection::HandleLoginPdu(const Pdu& pdu) {
  Pdu response;
  const LoginStep step = login_->Process(pdu, &response);
  switch (step.kind) {
    case LoginStepKind::kRespond:
      writer_.QueueOwned(response.bhs, std::move(response.data));
      return;
    case LoginStepKind::kComplete:
      final_login_response_ = std::move(response);
      CompleteLogin();
      return;
    case LoginStepKind::kFail:
      if (step.delay.count() > 0) {
        delayed_response_ = std::move(response);
        delayed_until_ = Clock::now() + step.delay;
        return;
      }
      writer_.QueueOwned(response.bhs, std::move(response.data));
      close_after_flush_ = true;
      return;
    case LoginStepKind::kDrop: Close("login protocol"); return;
  }
}

void Connection::CompleteLogin() {
  session_ = login_->result();
  SessionInfo info;
  info.initiator_name = session_.initiator_name;
  info.isid = session_.isid;
  info.target_name = session_.target ? session_.target->name : "";
  info.discovery = session_.type == SessionType::kDiscovery;
  info.peer_address = peer_;
  info.portal = portal_;
  info.since = std::chrono::system_clock::now();
  EventLoop* loop = loop_;
  const uint64_t id = id_;
  SessionRegistry::Bind bind = server_->registry.Add(
      session_, server_->options, std::move(info), loop_, id_,
      [loop, id] { loop->Post([loop, id] { loop->ResumeConnection(id); }); });
  if (bind.refused) {
    LoginResponseBhs r = DecodeLoginResponse(final_login_response_.bhs);
    r.transit = false;
    r.nsg = 0;
    r.status = static_cast<uint16_t>(*bind.refused);
    r.data_segment_length = 0;
    EncodeLoginResponse(r, &final_login_response_.bhs);
    writer_.QueueOwned(final_login_response_.bhs, {});
    close_after_flush_ = true;
    return;
  }
  record_ = bind.record;
  if (bind.old) {
    // RFC 7143 §6.3.5: the old session goes (tasks terminated, nexus lost)
    // before this login completes; its loop calls us back when it is gone.
    Transition(State::kWaitReinstate);
    EventLoop* old_loop = bind.old->loop;
    const uint64_t old_conn = bind.old->conn_id;
    old_loop->Post([old_loop, old_conn] { old_loop->CloseConnection(old_conn); });
    return;
  }
  EnterFullFeature();
}

void Connection::ResumeLogin() {
  if (state_ != State::kWaitReinstate) return;
  EnterFullFeature();
}

void Connection::EnterFullFeature() {
  Transition(State::kFullFeature);
  server_->LeavePrelogin(peer_ip_);
  prelogin_counted_ = false;
  const SessionParams& p = session_.params;
  statsn_ = session_.statsn + 1;
  expcmdsn_ = session_.cmdsn;
  nexus_.id = record_->nexus_id;
  nexus_.initiator_name = session_.initiator_name;
  char isid[16];
  std::snprintf(isid, sizeof(isid), "%012llx", static_cast<unsigned long long>(session_.isid));
  nexus_.initiator_port = session_.initiator_name + ",i,0x" + isid;
  nexus_.target_name = session_.target ? session_.target->name : "";
  nexus_live_ = session_.target != nullptr;
  LoginResponseBhs r = DecodeLoginResponse(final_login_response_.bhs);
  r.tsih = record_->tsih;
  EncodeLoginResponse(r, &final_login_response_.bhs);
  writer_.QueueOwned(final_login_response_.bhs, std::move(final_login_response_.data));
  // New limits apply from the next PDU in each direction (RFC 7143 §13.12).
  reader_.SetLimits({p.target_max_recv_data_segment, p.header_digest, p.data_digest});
  writer_.SetDigests(p.header_digest, p.data_digest);
  login_.reset();
  server_->registry.Activate(record_);
  BH_LOG(kInfo, "iscsi: session tsih={} initiator={} target={} from {}", record_->tsih,
         LogEscape(session_.initiator_name), LogEscape(nexus_.target_name), peer_);
  FlushOut();
}

// --- sequence numbers ---

uint32_t Connection::MaxCmdSn() const {
  const uint32_t window = server_->options.cmdsn_window;
  const uint32_t free_slots = window > window_used_ ? window - window_used_ : 0;
  return expcmdsn_ - 1 + free_slots;
}

SequenceNumbers Connection::NextSn(bool advance_statsn) {
  SequenceNumbers sn{statsn_, expcmdsn_, MaxCmdSn()};
  if (advance_statsn) ++statsn_;
  return sn;
}

uint32_t Connection::NewTtt() {
  if (++next_ttt_ == kReservedTag) next_ttt_ = 1;
  return next_ttt_;
}

// True when the command may proceed. Non-immediate commands must carry
// ExpCmdSN (one connection: anything else is out of order or out of the
// window, and is dropped silently, RFC 7143 §4.2.2.1).
bool Connection::CheckCmdSn(bool immediate, uint32_t cmdsn) {
  if (immediate) return true;
  if (cmdsn != expcmdsn_) return false;
  ++expcmdsn_;
  return true;
}

void Connection::Reject(const Bhs& bhs, RejectReason reason, bool then_close) {
  RejectBhs r;
  r.reason = static_cast<uint8_t>(reason);
  r.sn = NextSn(true);
  r.datasn = 0;
  Bhs out;
  EncodeReject(r, &out);
  writer_.QueueOwned(out, std::vector<uint8_t>(bhs.begin(), bhs.end()));
  if (then_close) close_after_flush_ = true;
}

// --- full feature phase dispatch ---

void Connection::HandlePdu(const Pdu& pdu) {
  const uint8_t op = BhsOpcode(pdu.bhs);
  if (pending_logout_) return;  // RFC 7143 §11.14: nothing new after Logout
  switch (op) {
    case static_cast<uint8_t>(Opcode::kScsiCommand): HandleScsiCommand(pdu); return;
    case static_cast<uint8_t>(Opcode::kDataOut): HandleDataOut(pdu); return;
    case static_cast<uint8_t>(Opcode::kNopOut): HandleNopOut(pdu); return;
    case static_cast<uint8_t>(Opcode::kTaskMgmtRequest): HandleTaskMgmt(pdu); return;
    case static_cast<uint8_t>(Opcode::kTextRequest): HandleText(pdu); return;
    case static_cast<uint8_t>(Opcode::kLogoutRequest): HandleLogout(pdu); return;
    case static_cast<uint8_t>(Opcode::kSnackRequest):
      Reject(pdu.bhs, RejectReason::kCommandNotSupported);  // ERL 0: no SNACK
      return;
    case static_cast<uint8_t>(Opcode::kLoginRequest):
      Reject(pdu.bhs, RejectReason::kProtocolError);
      return;
    default:
      // Target opcodes from an initiator are a protocol error; opcodes
      // nobody defined are "command not supported".
      Reject(pdu.bhs, op >= 0x20 && op <= 0x3f && !IsInitiatorOpcode(op) &&
                              (op <= 0x26 || op == 0x31 || op == 0x32 || op == 0x3f)
                          ? RejectReason::kProtocolError
                          : RejectReason::kCommandNotSupported);
      return;
  }
}

// --- tasks ---

Task* Connection::NewTask() {
  if (free_tasks_.empty()) {
    all_tasks_.push_back(std::make_unique<Task>());
    free_tasks_.push_back(all_tasks_.back().get());
  }
  Task* t = free_tasks_.back();
  free_tasks_.pop_back();
  t->conn = this;
  t->state = Task::State::kGathering;
  t->aborted = false;
  t->received = t->unsolicited_end = t->unsolicited_next = t->unsolicited_datasn = 0;
  t->next_r2t_offset = t->r2tsn = t->staged_through = 0;
  t->r2ts.clear();
  t->response.status = scsi::kStatusGood;
  t->response.sense.clear();
  t->response.data_in.clear();
  t->response.transfer_length = 0;
  t->last_activity = Clock::now();
  return t;
}

void Connection::FreeTask(Task* task) {
  if (task == routed_task_) {
    reader_.DropRoute();  // the rest of its Data-Out must not land in a freed buffer
    routed_task_ = nullptr;
  }
  if (task->charged > 0) {
    server_->buffer_bytes.fetch_sub(task->charged, std::memory_order_relaxed);
    task->charged = 0;
  }
  task->staged.Reset();
  // Keep buffers for reuse, but not huge ones (bounded idle memory).
  if (task->data.capacity() > server_->options.offers.max_burst_length) task->data.Release();
  task->state = Task::State::kFree;
  free_tasks_.push_back(task);
}

Task* Connection::FindTask(uint32_t itt) {
  for (Task* t : active_) {
    if (t->itt == itt) return t;
  }
  return nullptr;
}

void Connection::Unlink(Task* task) {
  auto it = std::find(active_.begin(), active_.end(), task);
  if (it == active_.end()) return;
  active_.erase(it);
  if (!task->immediate && window_used_ > 0) --window_used_;
}

void Connection::HandleScsiCommand(const Pdu& pdu) {
  const ScsiCommandBhs c = DecodeScsiCommand(pdu.bhs);
  if (!CheckCmdSn(c.immediate, c.cmdsn)) return;
  if (!c.immediate && std::find(aborted_cmdsns_.begin(), aborted_cmdsns_.end(), c.cmdsn) !=
                          aborted_cmdsns_.end()) {
    // Aborted before it arrived (RFC 7143 §11.5.1): consume its CmdSN, run
    // nothing, answer nothing; its unsolicited data is discarded as well.
    std::replace(aborted_cmdsns_.begin(), aborted_cmdsns_.end(), uint64_t{c.cmdsn}, kNoCmdSn);
    return;
  }
  const SessionParams& p = session_.params;
  if (session_.type == SessionType::kDiscovery) {
    Reject(pdu.bhs, RejectReason::kProtocolError);  // no SCSI in discovery sessions
    return;
  }
  if (FindTask(c.itt) != nullptr) {
    Reject(pdu.bhs, RejectReason::kTaskInProgress);
    return;
  }
  const uint32_t immediate = c.data_segment_length;
  if (immediate > 0 && (!c.write || !p.immediate_data || immediate > p.first_burst_length ||
                        immediate > c.edtl)) {
    Reject(pdu.bhs, RejectReason::kProtocolError);  // D3: immediate data not allowed here
    return;
  }
  if (c.total_ahs_length > 0) {
    Reject(pdu.bhs, RejectReason::kCommandNotSupported);  // extended CDBs, bidi lengths
    return;
  }
  Task* t = NewTask();
  t->immediate = c.immediate;
  t->itt = c.itt;
  t->edtl = c.edtl;
  t->read = c.read;
  t->write = c.write;
  t->lun_field = c.lun;
  t->cmd.nexus_id = nexus_.id;
  t->cmd.lun = DecodeLun(c.lun);
  t->cmd.cdb = c.cdb;
  t->cmd.cdb_length = 16;
  t->cmd.attr = static_cast<scsi::TaskAttr>(c.attr <= 4 ? c.attr : 1);
  t->cmd.expected_length = c.edtl;
  t->cmd.data_out = {};
  t->cmd.staged = c.write ? &t->staged : nullptr;
  active_.push_back(t);
  if (!c.immediate) ++window_used_;
  if (record_) record_->commands.fetch_add(1, std::memory_order_relaxed);

  if (c.read && c.write) {
    CompleteWithStatus(t, scsi::kStatusCheckCondition,
                       scsi::FixedSense(scsi::SenseKey::kIllegalRequest, 0x24, 0x00));
    return;
  }
  if (!c.write || c.edtl == 0) {
    Dispatch(t);
    return;
  }
  if (c.edtl > server_->options.max_command_bytes) {
    CompleteWithStatus(t, scsi::kStatusCheckCondition,
                       scsi::FixedSense(scsi::SenseKey::kIllegalRequest, 0x24, 0x00));
    return;
  }
  const uint64_t used = server_->buffer_bytes.fetch_add(c.edtl, std::memory_order_relaxed);
  t->charged = c.edtl;
  if (used + c.edtl > server_->options.max_buffer_bytes) {
    CompleteWithStatus(t, scsi::kStatusTaskSetFull, {});  // SR-L9: retry later
    return;
  }
  if (immediate > 0 && reader_.data_routed()) {
    t->data.Swap(pending_data_);  // RouteData reserved edtl bytes there
    t->staged.Swap(pending_staged_);
  }
  t->data.Reserve(c.edtl);
  if (immediate > 0 && !reader_.data_routed()) {
    std::memcpy(t->data.data(), pdu.data.data(), immediate);
  }
  t->received = immediate;
  t->unsolicited_next = immediate;
  t->unsolicited_end = (!p.initial_r2t && !c.final) ? std::min(p.first_burst_length, c.edtl)
                                                    : immediate;
  t->unsolicited_end = std::max(t->unsolicited_end, immediate);
  t->next_r2t_offset = t->unsolicited_end;
  if (record_) record_->bytes_written.fetch_add(immediate, std::memory_order_relaxed);
  if (t->received == t->edtl) {
    Dispatch(t);
    return;
  }
  SendR2ts(t);
  if (t->unsolicited_end == immediate) StageArrived(t, 0);  // else more is on its way at once
}

// Solicits the rest of a write: up to MaxOutstandingR2T R2Ts of at most
// MaxBurstLength each (RFC 7143 §10.8).
void Connection::SendR2ts(Task* t) {
  const SessionParams& p = session_.params;
  while (t->r2ts.size() < p.max_outstanding_r2t && t->next_r2t_offset < t->edtl) {
    Task::R2t r;
    r.ttt = NewTtt();
    r.offset = t->next_r2t_offset;
    r.length = std::min(p.max_burst_length, t->edtl - r.offset);
    t->next_r2t_offset += r.length;
    t->r2ts.push_back(r);
    R2tBhs b;
    b.lun = t->lun_field;
    b.itt = t->itt;
    b.ttt = r.ttt;
    b.sn = NextSn(false);
    b.r2tsn = t->r2tsn++;
    b.buffer_offset = r.offset;
    b.desired_length = r.length;
    Bhs out;
    EncodeR2t(b, &out);
    writer_.Queue(out, {});
  }
}

Connection::DataOutMatch Connection::MatchDataOut(const DataOutBhs& d) {
  DataOutMatch m;
  Task* t = FindTask(d.itt);
  if (t == nullptr || t->state != Task::State::kGathering) return m;
  m.task = t;
  uint32_t end = 0;
  if (__builtin_add_overflow(d.buffer_offset, d.data_segment_length, &end) || end > t->edtl) {
    return m;
  }
  if (d.ttt == kReservedTag) {
    m.in_order = d.buffer_offset == t->unsolicited_next && end <= t->unsolicited_end &&
                 d.datasn == t->unsolicited_datasn;
    return m;
  }
  for (Task::R2t& r : t->r2ts) {
    if (r.ttt == d.ttt) m.r2t = &r;
  }
  m.in_order = m.r2t != nullptr && d.buffer_offset == m.r2t->offset + m.r2t->received &&
               end <= m.r2t->offset + m.r2t->length && d.datasn == m.r2t->datasn;
  return m;
}

void Connection::HandleDataOut(const Pdu& pdu) {
  const DataOutBhs d = DecodeDataOut(pdu.bhs);
  const DataOutMatch m = MatchDataOut(d);
  Task* t = m.task;
  if (t == nullptr) {
    // Unsolicited data for a command we dropped (out of window, refused)
    // or failed is discarded; otherwise it names a transfer that does not
    // exist (D3).
    const bool dead = std::find(dead_itts_.begin(), dead_itts_.end(), d.itt) != dead_itts_.end();
    if (d.ttt != kReservedTag && !dead) Reject(pdu.bhs, RejectReason::kInvalidPduField);
    return;
  }
  const uint32_t len = d.data_segment_length;
  const uint32_t end = d.buffer_offset + len;  // no overflow when in order
  Task::R2t* r2t = m.r2t;
  if (!m.in_order) {
    // ERL 0: no recovery within the command. The command ends with
    // ABORTED COMMAND / DATA PHASE ERROR and none of its data reaches the
    // Target; the connection goes on (libiscsi iSCSIDataSnInvalid). Its
    // remaining Data-Out PDUs are discarded quietly.
    dead_itts_[dead_next_++ % dead_itts_.size()] = t->itt;
    CompleteWithStatus(t, scsi::kStatusCheckCondition,
                       scsi::FixedSense(scsi::SenseKey::kAbortedCommand, 0x4b, 0x00));
    return;
  }
  // Routed data is in place already (RouteData made the same match).
  if (len > 0 && !reader_.data_routed()) {
    std::memcpy(t->data.data() + d.buffer_offset, pdu.data.data(), len);
  }
  t->received += len;
  t->last_activity = Clock::now();
  if (record_) record_->bytes_written.fetch_add(len, std::memory_order_relaxed);
  bool burst_done = false;
  if (r2t == nullptr) {
    t->unsolicited_next = end;
    ++t->unsolicited_datasn;
    burst_done = end == t->unsolicited_end;
  } else {
    r2t->received += len;
    ++r2t->datasn;
    if (r2t->received == r2t->length) {
      t->r2ts.erase(t->r2ts.begin() + (r2t - t->r2ts.data()));
      SendR2ts(t);
      burst_done = true;
    }
  }
  if (t->received == t->edtl) {
    Dispatch(t);
  } else if (burst_done) {
    StageArrived(t, 0);
  }
}

// A write alone on its connection is most likely run by this loop once its
// data is in (Dispatch, TryExecute). Its data comes in bursts, and a burst
// in pieces as the socket delivers them; between two the loop waits for
// the initiator. Compressing the blocks that are in during those waits (or
// copying them into the raw dirty area, D52) leaves only the last piece's
// blocks to prepare, then placing and mapping.
// Only data before the first byte still missing counts: unsolicited data
// arrives in order after the immediate data, and R2Ts are sent in order,
// so everything before the lowest outstanding R2T's next byte is in, and
// so is the Data-Out being read up to `reading_end` if it starts there.
void Connection::StageArrived(Task* t, uint32_t reading_end) {
  const ServerOptions& o = server_->options;
  if (server_->pool == nullptr || !t->write || t->edtl > o.inline_write_bytes ||
      inflight_ != 0 || active_.size() != 1) {
    return;
  }
  uint32_t prefix = t->unsolicited_next;
  if (prefix == t->unsolicited_end) {
    prefix = t->next_r2t_offset;
    for (const Task::R2t& r : t->r2ts) prefix = std::min(prefix, r.offset + r.received);
  }
  if (t == routed_task_ && routed_offset_ == prefix) prefix = std::max(prefix, reading_end);
  if (prefix <= t->staged_through) return;
  t->staged_through = prefix;
  FlushOut();  // the R2T first, so the initiator sends while this loop works
  if (state_ != State::kFullFeature) return;
  t->cmd.data_out = ConstByteSpan(t->data.data(), prefix);
  session_.target->luns->StageWrite(nexus_, t->cmd);
  t->cmd.data_out = {};
}

// The same for the immediate data of a command still being read: its task
// does not exist yet, so the stage is the connection's until
// HandleScsiCommand swaps it into the task with the data.
void Connection::StageImmediate(uint32_t reading_end) {
  const ServerOptions& o = server_->options;
  if (server_->pool == nullptr || !active_.empty() || inflight_ != 0 ||
      pending_cmd_.expected_length > o.inline_write_bytes) {
    return;
  }
  pending_cmd_.data_out = ConstByteSpan(pending_data_.data(), reading_end);
  session_.target->luns->StageWrite(nexus_, pending_cmd_);
  pending_cmd_.data_out = {};
}

void Connection::Dispatch(Task* t) {
  t->state = Task::State::kExecuting;
  t->cmd.data_out = t->write ? ConstByteSpan(t->data.data(), t->received) : ConstByteSpan();
  if (server_->pool == nullptr) {
    session_.target->luns->Execute(nexus_, t->cmd, &t->response);
    FinishTask(t);
    return;
  }
  // A small read whose data is in memory, or a write the pool takes at
  // once, alone on its connection: run it here and spare two thread
  // hand-offs. Anything that would wait for a device or a commit goes to
  // the I/O threads as usual.
  const ServerOptions& o = server_->options;
  const bool small = t->read != t->write &&
                     t->edtl <= (t->read ? o.inline_read_bytes : o.inline_write_bytes);
  // A large read only when no further command waits (D43); the socket is
  // asked only for a read that could otherwise run here.
  const bool large_read = t->read && t->edtl > o.inline_read_queued_bytes;
  if (small && inflight_ == 0 && !(large_read && MoreInputWaiting()) &&
      session_.target->luns->TryExecute(nexus_, t->cmd, &t->response)) {
    FinishTask(t);
    return;
  }
  ++inflight_;
  t->loop = loop_;
  t->target = session_.target->luns.get();
  t->nexus = &nexus_;
  loop_->TaskAway();
  server_->pool->Submit(t);
}

void Connection::OnTaskDone(Task* t) {
  BH_CHECK(inflight_ > 0);
  --inflight_;
  if (state_ == State::kClosing) {
    Unlink(t);
    FreeTask(t);
    MaybeFinishClose();
    return;
  }
  FinishTask(t);
  CheckPendingTmfs();
  CheckPeerResets();
  if (pending_logout_ && inflight_ == 0) HandleLogout(Pdu{});
  FlushOut();
}

// Queues Data-In and status for a finished command (RFC 7143 §10.4, §11.4.5).
void Connection::FinishTask(Task* t) {
  if (t->aborted) {
    Unlink(t);
    FreeTask(t);
    return;
  }
  const scsi::Response& r = t->response;
  const uint32_t edtl = t->edtl;
  uint32_t sent = 0;
  if (t->read) sent = static_cast<uint32_t>(std::min<size_t>(r.data_in.size(), edtl));
  bool overflow = false;
  bool underflow = false;
  uint32_t residual = 0;
  if (r.transfer_length > edtl) {
    overflow = true;
    residual = r.transfer_length - edtl;
  } else if (t->read && sent < edtl) {
    underflow = true;
    residual = edtl - sent;
  } else if (!t->read && r.transfer_length < edtl) {
    underflow = true;
    residual = edtl - r.transfer_length;
  }
  Unlink(t);
  t->state = Task::State::kResponding;
  if (record_) record_->bytes_read.fetch_add(sent, std::memory_order_relaxed);
  const bool good = r.status == scsi::kStatusGood && r.sense.empty();
  if (sent > 0 && good) {
    // Phase collapse: status rides on the last Data-In (RFC 7143 §11.7.4).
    SendDataIn(t, sent, true, overflow, underflow, residual);
    return;
  }
  uint32_t pdus = 0;
  if (sent > 0) {
    pdus = SendDataIn(t, sent, false, false, false, 0);
  }
  SendScsiResponse(t, r.status, r.sense, pdus, overflow, underflow, residual);
}

uint32_t Connection::SendDataIn(Task* t, uint32_t length, bool collapse, bool overflow,
                                bool underflow, uint32_t residual) {
  const SessionParams& p = session_.params;
  const uint32_t chunk = std::min(p.initiator_max_recv_data_segment, p.max_burst_length);
  uint32_t datasn = 0;
  for (uint32_t offset = 0; offset < length; ++datasn) {
    const uint32_t n = std::min(chunk, length - offset);
    const bool last = offset + n == length;
    DataInBhs d;
    // F ends each MaxBurstLength sequence and the transfer (RFC 7143 §11.7.1).
    d.final = last || (offset + n) % p.max_burst_length == 0;
    d.lun = t->lun_field;
    d.itt = t->itt;
    d.datasn = datasn;
    d.buffer_offset = offset;
    const bool status = last && collapse;
    d.has_status = status;
    if (status) {
      d.status = t->response.status;
      d.overflow = overflow;
      d.underflow = underflow;
      d.residual = residual;
    }
    d.sn = NextSn(status);
    Bhs out;
    EncodeDataIn(d, &out);
    writer_.Queue(out, {t->response.data_in.data() + offset, n}, status ? t : nullptr);
    offset += n;
  }
  return datasn;
}

void Connection::SendScsiResponse(Task* t, uint8_t status, const std::vector<uint8_t>& sense,
                                  uint32_t data_in_pdus, bool overflow, bool underflow,
                                  uint32_t residual) {
  ScsiResponseBhs r;
  r.response = 0;  // command completed at target
  r.status = status;
  r.itt = t->itt;
  r.sn = NextSn(true);
  r.expdatasn = data_in_pdus;
  r.overflow = overflow;
  r.underflow = underflow;
  r.residual = residual;
  Bhs out;
  EncodeScsiResponse(r, &out);
  if (sense.empty()) {
    writer_.Queue(out, {}, t);
    return;
  }
  // Sense data goes behind a 2-byte length (RFC 7143 §11.4.7.2).
  std::vector<uint8_t> data(2 + sense.size());
  data[0] = static_cast<uint8_t>(sense.size() >> 8);
  data[1] = static_cast<uint8_t>(sense.size());
  std::copy(sense.begin(), sense.end(), data.begin() + 2);
  writer_.QueueOwned(out, std::move(data), t);
}

// Answers a command the transport refuses itself (nothing transferred).
void Connection::CompleteWithStatus(Task* t, uint8_t status, const std::vector<uint8_t>& sense) {
  Unlink(t);
  t->state = Task::State::kResponding;
  SendScsiResponse(t, status, sense, 0, false, t->edtl > 0, t->edtl);
}

void Connection::HandleNopOut(const Pdu& pdu) {
  const NopOutBhs n = DecodeNopOut(pdu.bhs);
  if (n.itt == kReservedTag) return;  // answer to our ping, or a one-way NOP
  if (!CheckCmdSn(n.immediate, n.cmdsn)) return;
  NopInBhs r;
  r.lun = n.lun;
  r.itt = n.itt;
  r.ttt = kReservedTag;
  r.sn = NextSn(true);
  Bhs out;
  EncodeNopIn(r, &out);
  writer_.QueueOwned(out, pdu.data);  // ping data back (bounded by MRDSL)
}

// Marks matching tasks aborted: ones still gathering data are dropped at
// once, ones on an I/O thread are collected into *running.
void Connection::AbortTasks(bool all_luns, uint64_t lun, Task* only, std::vector<Task*>* running) {
  std::vector<Task*> victims;
  for (Task* t : active_) {
    if (only != nullptr ? t == only : (all_luns || t->lun_field == lun)) victims.push_back(t);
  }
  for (Task* t : victims) {
    if (t->state == Task::State::kGathering) {
      Unlink(t);
      FreeTask(t);
    } else if (t->state == Task::State::kExecuting) {
      t->aborted = true;
      if (running != nullptr) running->push_back(t);
    }
  }
}

void Connection::HandleTaskMgmt(const Pdu& pdu) {
  const TaskMgmtRequestBhs m = DecodeTaskMgmtRequest(pdu.bhs);
  if (!CheckCmdSn(m.immediate, m.cmdsn)) return;
  if (session_.type == SessionType::kDiscovery) {
    Reject(pdu.bhs, RejectReason::kProtocolError);
    return;
  }
  pending_tmfs_.push_back({m.itt, m.function, 0, m.lun, {}, 0});
  PendingTmf& p = pending_tmfs_.back();
  const uint64_t lun = DecodeLun(m.lun);
  switch (m.function) {
    case static_cast<uint8_t>(TmfFunction::kAbortTask): {
      Task* t = FindTask(m.rtt);
      if (t != nullptr) {
        AbortTasks(false, 0, t, &p.waiting);
        p.response = static_cast<uint8_t>(TmfResponse::kComplete);
      } else {
        // RFC 7143 §11.5.1: a RefCmdSN in the window not yet received is
        // "complete" (the command will be ignored); otherwise unknown.
        const bool unseen = !SnLess(m.refcmdsn, expcmdsn_) && !SnLess(MaxCmdSn(), m.refcmdsn);
        p.response = static_cast<uint8_t>(unseen ? TmfResponse::kComplete
                                                 : TmfResponse::kTaskDoesNotExist);
        if (unseen) aborted_cmdsns_[aborted_next_++ % aborted_cmdsns_.size()] = m.refcmdsn;
      }
      break;
    }
    case static_cast<uint8_t>(TmfFunction::kAbortTaskSet):
    case static_cast<uint8_t>(TmfFunction::kClearTaskSet):
      AbortTasks(false, m.lun, nullptr, &p.waiting);
      p.response = static_cast<uint8_t>(TmfResponse::kComplete);
      break;
    case static_cast<uint8_t>(TmfFunction::kLogicalUnitReset):
      if (!session_.target->luns->HasLun(lun)) {
        p.response = static_cast<uint8_t>(TmfResponse::kLunDoesNotExist);
        break;
      }
      AbortTasks(false, m.lun, nullptr, &p.waiting);
      p.response = static_cast<uint8_t>(TmfResponse::kComplete);
      // SAM-5: a LUN reset ends every task on the unit, other sessions'
      // too. Their loops abort them and report back; ResetLun runs after.
      for (const auto& r : server_->registry.ForTarget(nexus_.target_name)) {
        if (r == record_) continue;
        ++p.peers;
        EventLoop* home = loop_;
        const uint64_t me = id_;
        const uint32_t itt = m.itt;
        EventLoop* peer = r->loop;
        const uint64_t peer_conn = r->conn_id;
        const uint64_t lun_field = m.lun;
        peer->Post([peer, peer_conn, lun_field, home, me, itt] {
          peer->AbortForPeerReset(peer_conn, lun_field, [home, me, itt] {
            home->Post([home, me, itt] { home->PeerResetDone(me, itt); });
          });
        });
      }
      break;
    case static_cast<uint8_t>(TmfFunction::kTargetWarmReset):
    case static_cast<uint8_t>(TmfFunction::kTargetColdReset):
      if (!server_->options.allow_target_reset) {
        p.response = static_cast<uint8_t>(TmfResponse::kAuthorizationFailed);  // SR-B5
        break;
      }
      AbortTasks(true, 0, nullptr, &p.waiting);
      p.response = static_cast<uint8_t>(TmfResponse::kComplete);
      p.lun = ~0ull;  // every LUN, once the tasks are gone
      break;
    case static_cast<uint8_t>(TmfFunction::kTaskReassign):
      p.response = static_cast<uint8_t>(TmfResponse::kReassignNotSupported);
      break;
    default: p.response = static_cast<uint8_t>(TmfResponse::kNotSupported); break;
  }
  CheckPendingTmfs();
}

// Sends every TMF response whose aborted tasks have all left the I/O pool.
void Connection::CheckPendingTmfs() {
  for (size_t i = 0; i < pending_tmfs_.size();) {
    PendingTmf& p = pending_tmfs_[i];
    std::erase_if(p.waiting, [this](Task* t) {
      return std::find(active_.begin(), active_.end(), t) == active_.end();
    });
    if (!p.waiting.empty() || p.peers > 0) {
      ++i;
      continue;
    }
    if (p.function == static_cast<uint8_t>(TmfFunction::kLogicalUnitReset) && p.response == 0) {
      session_.target->luns->ResetLun(nexus_, DecodeLun(p.lun));
    }
    if (p.lun == ~0ull && p.response == 0) {
      // TARGET WARM/COLD RESET = LOGICAL UNIT RESET of every LUN (seam
      // contract, scsi_target.h); only LunMap can list its LUNs.
      if (auto* map = dynamic_cast<scsi::LunMap*>(session_.target->luns.get())) {
        for (uint64_t lun : map->Luns()) map->ResetLun(nexus_, lun);
      }
    }
    TaskMgmtResponseBhs r;
    r.response = p.response;
    r.itt = p.itt;
    r.sn = NextSn(true);
    Bhs out;
    EncodeTaskMgmtResponse(r, &out);
    writer_.Queue(out, {});
    if (p.function == static_cast<uint8_t>(TmfFunction::kTargetColdReset) && p.response == 0) {
      close_after_flush_ = true;  // a cold reset ends the session
    }
    pending_tmfs_.erase(pending_tmfs_.begin() + static_cast<ptrdiff_t>(i));
  }
}

void Connection::AbortForPeerReset(uint64_t lun_field, std::function<void()> done) {
  if (state_ == State::kClosing || state_ == State::kClosed) {
    done();  // teardown already keeps its tasks from completing
    return;
  }
  PeerReset r;
  r.done = std::move(done);
  AbortTasks(false, lun_field, nullptr, &r.waiting);
  peer_resets_.push_back(std::move(r));
  CheckPeerResets();
}

void Connection::CheckPeerResets() {
  for (size_t i = 0; i < peer_resets_.size();) {
    PeerReset& r = peer_resets_[i];
    std::erase_if(r.waiting, [this](Task* t) {
      return std::find(active_.begin(), active_.end(), t) == active_.end();
    });
    if (!r.waiting.empty()) {
      ++i;
      continue;
    }
    std::function<void()> done = std::move(r.done);
    peer_resets_.erase(peer_resets_.begin() + static_cast<ptrdiff_t>(i));
    done();
  }
}

void Connection::PeerResetDone(uint32_t tmf_itt) {
  for (PendingTmf& p : pending_tmfs_) {
    if (p.itt == tmf_itt && p.peers > 0) {
      --p.peers;
      break;
    }
  }
  CheckPendingTmfs();
  FlushOut();
}

void Connection::HandleText(const Pdu& pdu) {
  const TextRequestBhs q = DecodeTextRequest(pdu.bhs);
  if (!CheckCmdSn(q.immediate, q.cmdsn)) return;
  if (q.ttt != kReservedTag && text_in_.empty()) {
    // The initiator asks for the next piece of a long reply.
    if (q.ttt == text_ttt_ && text_out_.active()) {
      SendTextPiece(q.itt, q.lun);
    } else {
      Reject(pdu.bhs, RejectReason::kInvalidPduField);
    }
    return;
  }
  if (!text_in_.Append(pdu.data)) {
    text_in_.Clear();
    Reject(pdu.bhs, RejectReason::kLongOperationReject);
    return;
  }
  if (q.cont) {
    text_out_.Reset({}, 512);
    TextResponseBhs r;
    r.final = false;
    r.lun = q.lun;
    r.itt = q.itt;
    r.ttt = text_ttt_ = NewTtt();
    r.sn = NextSn(true);
    Bhs out;
    EncodeTextResponse(r, &out);
    writer_.Queue(out, {});
    return;
  }
  std::vector<KeyValue> keys;
  const TextError err = ParseKeyValues(text_in_.text(), &keys);
  text_in_.Clear();
  if (err != TextError::kOk) {
    Reject(pdu.bhs, RejectReason::kProtocolError);
    return;
  }
  std::vector<uint8_t> reply;
  for (const KeyValue& kv : keys) {
    if (kv.key == "SendTargets") {
      std::vector<uint8_t> t = BuildSendTargets(
          *server_->directory, kv.value, session_.type == SessionType::kDiscovery,
          nexus_.target_name, session_.initiator_name, peer_ip_, portal_);
      reply.insert(reply.end(), t.begin(), t.end());
    } else {
      AppendKeyValue(kv.key, "NotUnderstood", &reply);
    }
  }
  text_out_.Reset(std::move(reply), session_.params.initiator_max_recv_data_segment);
  SendTextPiece(q.itt, q.lun);
}

void Connection::SendTextPiece(uint32_t itt, uint64_t lun) {
  bool more = false;
  std::vector<uint8_t> piece = text_out_.Next(&more);
  TextResponseBhs r;
  r.final = !more;
  r.cont = more;
  r.lun = lun;
  r.itt = itt;
  r.ttt = more ? (text_ttt_ = NewTtt()) : kReservedTag;
  r.sn = NextSn(true);
  Bhs out;
  EncodeTextResponse(r, &out);
  writer_.QueueOwned(out, std::move(piece));
}

void Connection::HandleLogout(const Pdu& pdu) {
  if (!pending_logout_) {
    const LogoutRequestBhs l = DecodeLogoutRequest(pdu.bhs);
    if (!CheckCmdSn(l.immediate, l.cmdsn)) return;
    LogoutResponse code = LogoutResponse::kSuccess;
    if (l.reason == static_cast<uint8_t>(LogoutReason::kCloseConnection) && l.cid != session_.cid) {
      code = LogoutResponse::kCidNotFound;
    } else if (l.reason == static_cast<uint8_t>(LogoutReason::kRemoveForRecovery)) {
      code = LogoutResponse::kRecoveryNotSupported;  // ERL 0
    } else if (l.reason > 2) {
      Reject(pdu.bhs, RejectReason::kInvalidPduField);
      return;
    }
    if (code != LogoutResponse::kSuccess) {
      LogoutResponseBhs r;
      r.response = static_cast<uint8_t>(code);
      r.itt = l.itt;
      r.sn = NextSn(true);
      Bhs out;
      EncodeLogoutResponse(r, &out);
      writer_.Queue(out, {});
      return;
    }
    pending_logout_ = l;
    AbortTasks(true, 0, nullptr, nullptr);  // the session ends: its tasks end with it
  }
  if (inflight_ > 0) return;  // answered from OnTaskDone
  LogoutResponseBhs r;
  r.response = static_cast<uint8_t>(LogoutResponse::kSuccess);
  r.itt = pending_logout_->itt;
  r.sn = NextSn(true);
  r.time2wait = static_cast<uint16_t>(session_.params.default_time2wait);
  r.time2retain = 0;
  Bhs out;
  EncodeLogoutResponse(r, &out);
  writer_.Queue(out, {});
  Transition(State::kLogout);
  close_after_flush_ = true;
}

// --- timers and teardown ---

void Connection::Tick(Clock::time_point now) {
  const ServerOptions& o = server_->options;
  if (state_ == State::kLogin || state_ == State::kWaitReinstate) {
    if (delayed_response_ && now >= delayed_until_) {
      writer_.QueueOwned(delayed_response_->bhs, std::move(delayed_response_->data));
      delayed_response_.reset();
      close_after_flush_ = true;
      FlushOut();
      return;
    }
    if (now - created_ > o.login_timeout) Close("login timeout");
    return;
  }
  if (state_ != State::kFullFeature) return;
  for (Task* t : active_) {
    if (t->state == Task::State::kGathering && now - t->last_activity > o.data_out_timeout) {
      Close("Data-Out timeout");
      return;
    }
  }
  if (o.nop_interval.count() <= 0) return;
  if (ping_ttt_ != kReservedTag) {
    if (now - ping_sent_ > o.nop_timeout) Close("NOP-In ping unanswered");
    return;
  }
  if (now - last_rx_ < o.nop_interval) return;
  NopInBhs r;
  r.ttt = ping_ttt_ = NewTtt();
  r.itt = kReservedTag;
  r.sn = NextSn(false);  // unsolicited NOP-In does not advance StatSN
  ping_sent_ = now;
  Bhs out;
  EncodeNopIn(r, &out);
  writer_.Queue(out, {});
  FlushOut();
}

void Connection::Close(const char* why) {
  if (state_ == State::kClosing || state_ == State::kClosed) return;
  BH_LOG(kDebug, "iscsi: closing connection from {}: {}", peer_, why);
  Transition(State::kClosing);
  if (fd_ >= 0) {
    loop_->Unwatch(fd_);
    ::close(fd_);
    fd_ = -1;
  }
  writer_.Clear(&released_);
  ReleaseCookies();
  std::vector<Task*> victims = active_;
  for (Task* t : victims) {
    if (t->state == Task::State::kGathering) {
      Unlink(t);
      FreeTask(t);
    } else {
      t->aborted = true;
    }
  }
  pending_tmfs_.clear();
  pending_logout_.reset();
  if (prelogin_counted_) {
    server_->LeavePrelogin(peer_ip_);
    prelogin_counted_ = false;
  }
  MaybeFinishClose();
}

// The last step of teardown, once nothing of the session runs anywhere.
void Connection::MaybeFinishClose() {
  if (state_ != State::kClosing || inflight_ > 0) return;
  for (PeerReset& r : peer_resets_) r.done();  // our tasks are all gone now
  peer_resets_.clear();
  if (nexus_live_) {
    session_.target->luns->NexusLost(nexus_.id);
    nexus_live_ = false;
  }
  if (record_) {
    server_->registry.Remove(record_);
    record_.reset();
  }
  Transition(State::kClosed);
}

}  // namespace blockhaus::iscsi::internal

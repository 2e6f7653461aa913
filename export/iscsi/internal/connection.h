// Private to export/iscsi: one iSCSI connection (and, with MaxConnections
// = 1, its session). Confined to the event loop thread that owns it; see
// connection.cc.
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "export/iscsi/internal/server_internal.h"

namespace blockhaus::iscsi::internal {

class Connection : public Pollable {
 public:
  Connection(EventLoop* loop, uint64_t id, int fd, std::string peer_ip, std::string peer,
             std::string portal);
  ~Connection() override;

  void OnEvents(uint32_t events) override;
  // Periodic deadlines (login timeout, NOP-In, Data-Out timeout, delayed
  // login failure).
  void Tick(Clock::time_point now);
  // Starts teardown: aborts tasks, closes the socket. Finished() turns true
  // once no task runs on an I/O thread and the nexus is released.
  void Close(const char* why);
  bool Finished() const { return state_ == State::kClosed; }
  // An I/O thread finished `task` (on the loop thread, from EventLoop).
  void OnTaskDone(Task* task);
  // A reinstated session is gone: finish this login (loop thread).
  void ResumeLogin();
  // LOGICAL UNIT RESET from another session of the same target: aborts
  // this session's tasks on `lun_field` (silently: TAS=0, the initiator
  // learns from the unit attention) and runs `done` once none of them is
  // on an I/O thread (loop thread).
  void AbortForPeerReset(uint64_t lun_field, std::function<void()> done);
  // A peer session finished its part of our LUN reset `tmf_itt`.
  void PeerResetDone(uint32_t tmf_itt);
  uint64_t id() const { return id_; }

 private:
  enum class State : uint8_t { kLogin, kWaitReinstate, kFullFeature, kLogout, kClosing, kClosed };
  void Transition(State to);

  // I/O
  void ReadSome();
  // Acts on one event of the reader; false when reading must stop.
  bool OnReadEvent(ReadEvent ev);
  // A PDU the stream cannot go on from: rejected, then the connection
  // closes (full feature phase), or closed at once (login).
  void RejectAndClose(RejectReason reason, const char* why_in_login);
  // PduReader::DataRoute: a Data-Out's data straight into its command's
  // buffer, a SCSI Command's immediate data into pending_data_.
  ByteSpan RouteData(const Pdu& header);
  void FlushOut();
  // Whether more of the peer's bytes wait to be parsed: read but not fed
  // yet, or still in the socket.
  bool MoreInputWaiting() const;
  void UpdateInterest();
  void ReleaseCookies();
  // Login
  void HandleLoginPdu(const Pdu& pdu);
  void CompleteLogin();
  void EnterFullFeature();
  // Full feature phase
  void HandlePdu(const Pdu& pdu);
  bool CheckCmdSn(bool immediate, uint32_t cmdsn);
  void HandleScsiCommand(const Pdu& pdu);
  void HandleDataOut(const Pdu& pdu);
  // The task and R2T a Data-Out continues, if it continues one in order.
  struct DataOutMatch {
    Task* task = nullptr;  // null: no gathering task has that ITT
    Task::R2t* r2t = nullptr;  // null for unsolicited data
    bool in_order = false;  // offset, length and DataSN are the expected ones
  };
  DataOutMatch MatchDataOut(const DataOutBhs& d);
  void HandleNopOut(const Pdu& pdu);
  void HandleTaskMgmt(const Pdu& pdu);
  void HandleText(const Pdu& pdu);
  void HandleLogout(const Pdu& pdu);
  void SendTextPiece(uint32_t itt, uint64_t lun);
  void Reject(const Bhs& bhs, RejectReason reason, bool then_close = false);
  // Tasks
  Task* NewTask();
  void FreeTask(Task* task);
  Task* FindTask(uint32_t itt);
  void Unlink(Task* task);
  void Dispatch(Task* task);
  void SendR2ts(Task* task);
  // Has the target prepare a write's data so far while the initiator sends
  // the rest (D35); `reading_end` is where the Data-Out being read into the
  // task's buffer has got to (0: none). May close the connection (it
  // flushes output first).
  void StageArrived(Task* task, uint32_t reading_end);
  // The same for the immediate data of a command still being read.
  void StageImmediate(uint32_t reading_end);
  void FinishTask(Task* task);
  // Queues Data-In PDUs for `length` bytes; returns how many.
  uint32_t SendDataIn(Task* task, uint32_t length, bool collapse, bool overflow, bool underflow,
                      uint32_t residual);
  void SendScsiResponse(Task* task, uint8_t status, const std::vector<uint8_t>& sense,
                        uint32_t data_in_pdus, bool overflow, bool underflow, uint32_t residual);
  void CompleteWithStatus(Task* task, uint8_t status, const std::vector<uint8_t>& sense);
  void AbortTasks(bool all_luns, uint64_t lun, Task* only, std::vector<Task*>* running);
  void CheckPendingTmfs();
  void MaybeFinishClose();
  SequenceNumbers NextSn(bool advance_statsn);
  uint32_t MaxCmdSn() const;
  uint32_t NewTtt();

  struct PendingTmf {
    uint32_t itt = 0;
    uint8_t function = 0;
    uint8_t response = 0;
    uint64_t lun = 0;
    std::vector<Task*> waiting;
    int peers = 0;             // other sessions still aborting (LUN reset)
  };
  struct PeerReset {
    std::vector<Task*> waiting;
    std::function<void()> done;
  };
  void CheckPeerResets();

  EventLoop* loop_;
  Server::Rep* server_;
  uint64_t id_;
  int fd_;
  std::string peer_ip_;
  std::string peer_;       // ip:port
  std::string portal_;     // local ip:port
  State state_ = State::kLogin;
  bool prelogin_counted_ = true;
  Clock::time_point created_;
  Clock::time_point last_rx_;

  PduReader reader_;
  PduWriter writer_;
  std::vector<uint8_t> inbuf_;
  size_t unfed_ = 0;  // bytes of inbuf_ after the PDU being handled
  // Immediate data of the SCSI Command being read (routed here, then
  // swapped into its task), and the task whose buffer the Data-Out being
  // read is routed into (FreeTask drops the route).
  DataBuffer pending_data_;
  // The command whose immediate data is being routed there, and its blocks
  // prepared as they come in (D35), swapped into its task with the data.
  scsi::Command pending_cmd_;
  core::StagedWrite pending_staged_;
  bool routing_immediate_ = false;
  Task* routed_task_ = nullptr;
  uint32_t routed_offset_ = 0;  // where that Data-Out's data starts in the task
  std::vector<void*> released_;
  bool want_write_ = false;
  bool reading_paused_ = false;
  bool close_after_flush_ = false;

  // Login
  std::unique_ptr<LoginMachine> login_;
  std::optional<Pdu> delayed_response_;
  Clock::time_point delayed_until_;
  Pdu final_login_response_;

  // Session (MaxConnections = 1)
  LoginResult session_;
  std::shared_ptr<SessionRecord> record_;
  scsi::Nexus nexus_;
  bool nexus_live_ = false;
  uint32_t statsn_ = 0;
  uint32_t expcmdsn_ = 0;
  uint32_t window_used_ = 0;   // non-immediate tasks not yet answered
  uint32_t next_ttt_ = 1;
  uint32_t inflight_ = 0;      // tasks on I/O threads
  std::vector<Task*> active_;  // tasks by ITT (gathering or executing)
  std::vector<std::unique_ptr<Task>> all_tasks_;
  std::vector<Task*> free_tasks_;
  std::vector<PendingTmf> pending_tmfs_;
  std::vector<PeerReset> peer_resets_;
  std::optional<LogoutRequestBhs> pending_logout_;
  std::array<uint32_t, 8> dead_itts_{kReservedTag, kReservedTag, kReservedTag, kReservedTag,
                                     kReservedTag, kReservedTag, kReservedTag, kReservedTag};
  size_t dead_next_ = 0;       // ring of recently failed writes' ITTs
  // CmdSNs that ABORT TASK named before the command arrived.
  static constexpr uint64_t kNoCmdSn = ~0ull;
  std::array<uint64_t, 8> aborted_cmdsns_{kNoCmdSn, kNoCmdSn, kNoCmdSn, kNoCmdSn,
                                          kNoCmdSn, kNoCmdSn, kNoCmdSn, kNoCmdSn};
  size_t aborted_next_ = 0;
  TextAccumulator text_in_;
  TextReplySplitter text_out_;
  uint32_t text_ttt_ = kReservedTag;
  // NOP-In keepalive
  uint32_t ping_ttt_ = kReservedTag;
  Clock::time_point ping_sent_;
};

}  // namespace blockhaus::iscsi::internal

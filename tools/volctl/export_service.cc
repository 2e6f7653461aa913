// ExportService: stored exports -> scsi::LogicalUnits -> iSCSI targets.
//
// Theory of operation
//
// Overview. Each export record (export_records.h) becomes one LogicalUnit
// over a BlockDevice of its volume or snapshot, mapped at its LUN number in
// the LunMap of its target. A target's TargetConfig (ACL, CHAP, session
// policy) is published in a TargetDirectory that the iSCSI server reads at
// login; LunMaps are shared between the published config and this service,
// so LUNs come and go under live sessions (which then see REPORTED LUNS
// DATA HAS CHANGED), while ACL and CHAP changes apply to new logins.
//
// Data structures. units_: (pool, dataset id) -> the record and its unit.
// targets_: target name -> its LunMap. The directory holds immutable
// TargetConfig snapshots, replaced whole on every change.
//
// Identity. A LUN's serial number and NAA designator derive from the
// dataset guid, which survives restarts, renames and rollbacks, so
// multipath and hypervisors keep recognising the disk.
//
// Concurrency & lock order. mu_ guards units_ and targets_; it is taken by
// control-plane calls only (one command at a time) and never while the
// iSCSI server calls into a unit. Directory has its own mutex (leaf).
//
// Crash consistency. Nothing here is durable: records are in the pool,
// reservations with APTPL are saved through PoolPersistentStore in a sync
// task before PERSISTENT RESERVE OUT returns.
//
// Failure handling. A record that cannot be served (its dataset vanished,
// a device does not open) is logged and skipped; the others are served.
#include "tools/volctl/export_service.h"

#include <chrono>
#include <map>
#include <mutex>

#include "core/base/logging.h"
#include "export/iscsi/server.h"
#include "export/iscsi/target_directory.h"
#include "export/scsi/scsi_target.h"
#include "tools/volctl/export_records.h"

namespace blockhaus::tools {
namespace {

// PERSISTENT RESERVE state with APTPL=1, kept in the pool.
class PoolPersistentStore : public scsi::PersistentStore {
 public:
  PoolPersistentStore(core::Pool* pool, uint64_t dataset_id)
      : pool_(pool), key_(fmt::format("pr/{:016x}", dataset_id)) {}

  Status Save(ConstByteSpan state) override {
    std::string value(reinterpret_cast<const char*>(state.data()), state.size());
    return pool_
        ->RunSyncTask([](core::SyncContext&) { return Status::Ok(); },
                      [&](core::SyncContext& ctx) {
                        if (value.empty()) {
                          ctx.DeleteClientKey(key_);
                        } else {
                          ctx.PutClientKey(key_, value);
                        }
                      })
        .status();
  }

  Result<std::vector<uint8_t>> Load() override {
    BH_ASSIGN_OR_RETURN(auto value, pool_->GetClientKey(key_));
    if (!value) return std::vector<uint8_t>{};
    return std::vector<uint8_t>(value->begin(), value->end());
  }

 private:
  core::Pool* pool_;
  std::string key_;
};

class Directory : public iscsi::TargetDirectory {
 public:
  std::shared_ptr<const iscsi::TargetConfig> Find(const std::string& name) const override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = targets_.find(name);
    return it == targets_.end() ? nullptr : it->second;
  }
  std::vector<std::shared_ptr<const iscsi::TargetConfig>> List() const override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::shared_ptr<const iscsi::TargetConfig>> out;
    for (const auto& [name, config] : targets_) out.push_back(config);
    return out;
  }
  void Publish(std::shared_ptr<const iscsi::TargetConfig> config) {
    std::lock_guard<std::mutex> lock(mu_);
    targets_[config->name] = std::move(config);
  }
  void Remove(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    targets_.erase(name);
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<const iscsi::TargetConfig>> targets_;
};

iscsi::AllowRule ToRule(const std::string& text) {
  iscsi::AllowRule r;
  if (text == "any") {
    r.kind = iscsi::AllowRule::Kind::kAny;
  } else if (text.rfind("iqn.", 0) == 0 || text.rfind("eui.", 0) == 0 ||
             text.rfind("naa.", 0) == 0) {
    r.kind = iscsi::AllowRule::Kind::kInitiator;
    r.initiator = text;
  } else {
    r.kind = iscsi::AllowRule::Kind::kNetwork;
    r.network = text;
  }
  return r;
}

struct UnitEntry {
  ExportRecord record;
  std::unique_ptr<PoolPersistentStore> store;
  std::shared_ptr<scsi::LogicalUnit> unit;
};

using UnitKey = std::pair<std::string, uint64_t>;  // (pool, dataset id)

class ExportServiceImpl : public ExportService {
 public:
  Status Init(const ExportServiceOptions& options) {
    iscsi::ServerOptions so;
    so.listen = options.listen;
    so.login_timeout = options.login_timeout;
    listen_ = options.listen;
    BH_ASSIGN_OR_RETURN(server_, iscsi::Server::Start(so, &directory_));
    return Status::Ok();
  }

  ~ExportServiceImpl() override {
    if (server_) server_->Stop();
  }

  Status LoadPool(const std::string& pool, core::Pool* p, volume::VolumeManager* vm) override {
    BH_ASSIGN_OR_RETURN(std::vector<ExportRecord> records, LoadExports(p));
    std::lock_guard<std::mutex> lock(mu_);
    std::map<uint64_t, ExportRecord> wanted;
    for (ExportRecord& r : records) wanted[r.dataset_id] = std::move(r);
    // Drop what is no longer exported (or changed place).
    for (auto it = units_.begin(); it != units_.end();) {
      auto w = wanted.find(it->first.second);
      bool same = w != wanted.end() && w->second.target == it->second.record.target &&
                  w->second.lun == it->second.record.lun;
      if (it->first.first == pool && !same) {
        UnmapLocked(it->second.record);
        it = units_.erase(it);
      } else {
        ++it;
      }
    }
    std::vector<volume::Dataset> datasets = vm->List();
    for (auto& [id, record] : wanted) {
      UnitKey key{pool, id};
      if (units_.count(key)) {
        units_[key].record = record;  // settings only; the unit stays
        continue;
      }
      const volume::Dataset* ds = nullptr;
      for (const auto& d : datasets) {
        if (d.id == id) ds = &d;
      }
      if (ds == nullptr) {
        BH_LOG(kWarning, "export {} LUN {}: dataset {} of pool {} is gone; not served",
               record.target, record.lun, id, pool);
        continue;
      }
      Status s = AddUnitLocked(pool, p, vm, *ds, record);
      if (!s.ok()) {
        BH_LOG(kError, "cannot serve {}/{} as {} LUN {}: {}", pool, ds->name, record.target,
               record.lun, s.ToString());
      }
    }
    RepublishLocked();
    return Status::Ok();
  }

  void DropPool(const std::string& pool) override {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = units_.begin(); it != units_.end();) {
      if (it->first.first == pool) {
        UnmapLocked(it->second.record);
        it = units_.erase(it);
      } else {
        ++it;
      }
    }
    RepublishLocked();
  }

  void VolumeChanged(const std::string& pool, volume::VolumeManager* vm,
                     const std::string& volume, bool size_changed) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto ds = vm->Get(volume);
    if (!ds.ok()) return;
    auto it = units_.find(UnitKey{pool, ds->id});
    if (it == units_.end()) return;
    auto dev = vm->OpenDevice(volume);
    if (!dev.ok()) {
      BH_LOG(kError, "cannot reopen {}/{} after a change: {}", pool, volume,
             dev.status().ToString());
      return;
    }
    // 2Ah/09h CAPACITY DATA HAS CHANGED after a resize; after a rollback
    // the medium itself changed: 28h/00h.
    if (size_changed) {
      it->second.unit->ReplaceDevice(std::move(dev).value(), 0x2a, 0x09);
    } else {
      it->second.unit->ReplaceDevice(std::move(dev).value(), 0x28, 0x00);
    }
  }

  std::vector<SessionRow> Sessions() override {
    std::vector<SessionRow> rows;
    for (const iscsi::SessionInfo& s : server_->Sessions()) {
      if (s.discovery) continue;
      SessionRow r;
      r.initiator = s.initiator_name;
      r.isid = fmt::format("{:012x}", s.isid);
      r.address = s.peer_address;
      r.target = s.target_name;
      r.since = static_cast<uint64_t>(std::chrono::system_clock::to_time_t(s.since));
      r.commands = s.commands;
      r.bytes_read = s.bytes_read;
      r.bytes_written = s.bytes_written;
      {
        std::lock_guard<std::mutex> lock(mu_);
        auto t = targets_.find(s.target_name);
        if (t != targets_.end()) r.luns = t->second->Luns();
      }
      rows.push_back(std::move(r));
    }
    return rows;
  }

  // The listen addresses with the ports actually bound (port 0 resolved).
  std::vector<std::string> Portals() const override {
    std::vector<std::string> out;
    std::vector<uint16_t> ports = server_->ports();
    for (size_t i = 0; i < listen_.size() && i < ports.size(); ++i) {
      out.push_back(listen_[i].substr(0, listen_[i].rfind(':') + 1) + std::to_string(ports[i]));
    }
    return out;
  }

 private:
  Status AddUnitLocked(const std::string& pool, core::Pool* p, volume::VolumeManager* vm,
                       const volume::Dataset& ds, const ExportRecord& record) {
    BH_ASSIGN_OR_RETURN(auto dev, vm->OpenDevice(ds.name));
    scsi::LunOptions o;
    o.logical_block_size = record.sector_size;
    o.vendor = "BLKHAUS";              // T10 vendor id: 8 bytes at most
    o.product = "BLOCKHAUS VOLUME";    // 16 bytes
    o.read_only = record.read_only || ds.is_snapshot();
    o.serial = fmt::format("{:016x}", ds.guid);
    o.naa_id = ds.guid;
    o.soft_threshold_percent = static_cast<uint8_t>(record.soft_threshold);
    UnitEntry e;
    e.record = record;
    e.store = std::make_unique<PoolPersistentStore>(p, ds.id);
    BH_ASSIGN_OR_RETURN(e.unit, scsi::LogicalUnit::Create(std::move(dev), o, e.store.get()));
    auto& luns = targets_[record.target];
    if (!luns) luns = std::make_shared<scsi::LunMap>();
    luns->MapLun(record.lun, e.unit);
    units_[UnitKey{pool, ds.id}] = std::move(e);
    BH_LOG(kInfo, "serving {}/{} as {} LUN {}", pool, ds.name, record.target, record.lun);
    return Status::Ok();
  }

  void UnmapLocked(const ExportRecord& record) {
    auto t = targets_.find(record.target);
    if (t != targets_.end()) t->second->UnmapLun(record.lun);
  }

  // Publishes one config per target that has LUNs; targets left without
  // LUNs disappear and their sessions are closed.
  void RepublishLocked() {
    for (auto it = targets_.begin(); it != targets_.end();) {
      const ExportRecord* first = nullptr;
      for (const auto& [key, e] : units_) {
        if (e.record.target == it->first) first = &e.record;
      }
      if (first == nullptr) {
        directory_.Remove(it->first);
        server_->CloseSessions(it->first);
        it = targets_.erase(it);
        continue;
      }
      auto config = std::make_shared<iscsi::TargetConfig>();
      config->name = it->first;
      for (const std::string& a : first->allow) config->allow.push_back(ToRule(a));
      if (!first->chap_user.empty()) {
        config->chap = iscsi::ChapCredentials{first->chap_user, first->chap_secret,
                                              first->mutual_user, first->mutual_secret};
      }
      config->multi_session = first->multi_session;
      config->luns = it->second;
      directory_.Publish(std::move(config));
      ++it;
    }
  }

  Directory directory_;
  std::vector<std::string> listen_;
  std::unique_ptr<iscsi::Server> server_;
  std::mutex mu_;
  std::map<UnitKey, UnitEntry> units_;                             // guarded by mu_
  std::map<std::string, std::shared_ptr<scsi::LunMap>> targets_;  // guarded by mu_
};

}  // namespace

Result<std::unique_ptr<ExportService>> ExportService::Start(const ExportServiceOptions& options) {
  auto s = std::make_unique<ExportServiceImpl>();
  BH_RETURN_IF_ERROR(s->Init(options));
  return std::unique_ptr<ExportService>(std::move(s));
}

}  // namespace blockhaus::tools

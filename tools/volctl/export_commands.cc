// volctl export|unexport|exports|sessions
//
// Export records live in the pool (export_records.h). Without a daemon
// these commands only edit the records; `volctl serve` serves them when it
// starts. With a daemon they run inside it and it applies the change live.
#include <cstdio>
#include <ctime>
#include <set>

#include <nlohmann/json.hpp>

#include "core/pool/pool_dir.h"
#include "tools/volctl/commands.h"
#include "tools/volctl/export_records.h"
#include "tools/volctl/output.h"
#include "tools/volctl/pool_access.h"
#include "volume/volume_manager.h"

namespace blockhaus::tools {
namespace {

struct ExportArgs {
  std::string name;
  std::string target;
  int64_t lun = -1;
  std::vector<std::string> allow;
  std::string chap_user, chap_secret_file;
  std::string mutual_user, mutual_secret_file;
  bool read_only = false;
  bool multi_session = false;
  uint32_t sector_size = 512;
  uint32_t soft_threshold = kDefaultSoftThreshold;
};

Result<std::pair<std::string, std::string>> SplitFull(const std::string& full) {
  size_t slash = full.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == full.size()) {
    return BH_ERROR(kInvalidArgument, "'{}' is not POOL/VOLUME[@SNAPSHOT]", full);
  }
  return std::make_pair(full.substr(0, slash), full.substr(slash + 1));
}

Result<std::string> ReadSecret(const std::string& path, const char* what) {
  Result<std::string> text = core::ReadSmallFile(path, 4096);
  if (!text.ok()) return text.status().Annotate(fmt::format("cannot read {} {}", what, path));
  std::string s = *text;
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  if (s.size() < kMinChapSecret) {
    return BH_ERROR(kInvalidArgument,
                    "{} in {} is {} bytes; CHAP secrets need at least {} (RFC 7143 §9.2.1: "
                    "shorter secrets are open to offline guessing)",
                    what, path, s.size(), kMinChapSecret);
  }
  if (s.size() > kMaxChapSecret) {
    return BH_ERROR(kInvalidArgument, "{} in {} is longer than {} bytes", what, path,
                    kMaxChapSecret);
  }
  for (char c : s) {
    if (c == '\0') return BH_ERROR(kInvalidArgument, "{} in {} contains a NUL byte", what, path);
  }
  return s;
}

Status ValidateChapUser(const std::string& user, const char* flag) {
  if (user.empty() || user.size() > 255) {
    return BH_ERROR(kInvalidArgument, "{} must be 1..255 bytes", flag);
  }
  for (char c : user) {
    if (c == '=' || c == '\0' || static_cast<unsigned char>(c) < 0x20) {
      return BH_ERROR(kInvalidArgument, "{} '{}' may not contain '=' or control characters",
                      flag, user);
    }
  }
  return Status::Ok();
}

// Everything about the new record that needs no pool.
Status BuildCredentials(const ExportArgs& a, ExportRecord* r) {
  if (a.chap_user.empty() != a.chap_secret_file.empty()) {
    return BH_ERROR(kInvalidArgument, "--chap-user and --chap-secret-file go together");
  }
  if (a.mutual_user.empty() != a.mutual_secret_file.empty()) {
    return BH_ERROR(kInvalidArgument,
                    "--mutual-chap-user and --mutual-chap-secret-file go together");
  }
  if (!a.mutual_user.empty() && a.chap_user.empty()) {
    return BH_ERROR(kInvalidArgument, "mutual CHAP needs CHAP: give --chap-user too");
  }
  if (!a.chap_user.empty()) {
    BH_RETURN_IF_ERROR(ValidateChapUser(a.chap_user, "--chap-user"));
    BH_ASSIGN_OR_RETURN(r->chap_secret, ReadSecret(a.chap_secret_file, "the CHAP secret"));
    r->chap_user = a.chap_user;
  }
  if (!a.mutual_user.empty()) {
    BH_RETURN_IF_ERROR(ValidateChapUser(a.mutual_user, "--mutual-chap-user"));
    BH_ASSIGN_OR_RETURN(r->mutual_secret,
                        ReadSecret(a.mutual_secret_file, "the mutual CHAP secret"));
    if (r->mutual_secret == r->chap_secret) {
      return BH_ERROR(kInvalidArgument,
                      "the mutual CHAP secret equals the initiator's secret; RFC 7143 §9.2.1 "
                      "forbids one secret in both directions");
    }
    r->mutual_user = a.mutual_user;
  }
  return Status::Ok();
}

Status CheckAgainstExisting(const std::vector<ExportRecord>& existing, const ExportRecord& r,
                            const std::string& shown) {
  for (const ExportRecord& e : existing) {
    if (e.dataset_id == r.dataset_id) {
      return BH_ERROR(kAlreadyExists, "{} is already exported as {} LUN {}", shown, e.target,
                      e.lun);
    }
  }
  for (const ExportRecord& e : existing) {
    if (e.target != r.target) continue;
    if (e.lun == r.lun) {
      return BH_ERROR(kAlreadyExists, "target {} already has a LUN {}; pick another --lun",
                      r.target, r.lun);
    }
    if (!e.SameTargetSettings(r)) {
      return BH_ERROR(kInvalidArgument,
                      "target {} already serves other LUNs with different --allow, CHAP or "
                      "--multi-session settings; give the same ones or another --target",
                      r.target);
    }
  }
  return Status::Ok();
}

uint64_t NextFreeLun(const std::vector<ExportRecord>& existing, const std::string& target) {
  std::set<uint64_t> used;
  for (const ExportRecord& e : existing) {
    if (e.target == target) used.insert(e.lun);
  }
  uint64_t lun = 0;
  while (used.count(lun)) ++lun;
  return lun;
}

Status StoreRecord(core::Pool* pool, const ExportRecord& r) {
  std::string key = ExportKey(r.dataset_id), value = EncodeExport(r);
  return pool->RunSyncTask([](core::SyncContext&) { return Status::Ok(); },
                           [&](core::SyncContext& ctx) { ctx.PutClientKey(key, value); })
      .status();
}

int RunExport(const ExportArgs& a) {
  auto parts = SplitFull(a.name);
  if (!parts.ok()) return ReportError(parts.status());
  ExportRecord r;
  r.target = a.target.empty() ? DefaultTargetName(parts->first, parts->second) : a.target;
  if (Status s = ValidateIscsiName(r.target); !s.ok()) {
    return ReportError(a.target.empty() ? s.Annotate("the default target name does not work "
                                                     "for this name; give --target")
                                        : s);
  }
  if (a.lun > static_cast<int64_t>(kMaxLun)) {
    return ReportError(BH_ERROR(kInvalidArgument, "--lun {} is over the limit of {}", a.lun,
                                kMaxLun));
  }
  std::set<std::string> seen;
  for (const std::string& rule : a.allow) {
    if (Status s = ValidateAllowRule(rule); !s.ok()) return ReportError(s);
    if (!seen.insert(rule).second) {
      return ReportError(BH_ERROR(kInvalidArgument, "--allow {} given twice", rule));
    }
    r.allow.push_back(rule);
  }
  if (Status s = BuildCredentials(a, &r); !s.ok()) return ReportError(s);
  r.read_only = a.read_only;
  r.multi_session = a.multi_session;
  r.sector_size = a.sector_size;
  r.soft_threshold = a.soft_threshold;

  auto ref = AcquirePool(parts->first);
  if (!ref.ok()) return ReportError(ref.status());
  Result<volume::Dataset> ds = (*ref)->vm->Get(parts->second);
  if (!ds.ok()) return ReportError(ds.status());
  r.dataset_id = ds->id;
  r.dataset_guid = ds->guid;
  if (ds->is_snapshot()) r.read_only = true;  // a snapshot exports read-only
  if (ds->props.volblocksize % r.sector_size != 0) {
    return ReportError(BH_ERROR(kInvalidArgument, "--sector-size {} does not divide volblocksize {}",
                                r.sector_size, ds->props.volblocksize));
  }
  auto existing = LoadExports((*ref)->pool);
  if (!existing.ok()) return ReportError(existing.status());
  r.lun = a.lun >= 0 ? static_cast<uint64_t>(a.lun) : NextFreeLun(*existing, r.target);
  if (Status s = CheckAgainstExisting(*existing, r, a.name); !s.ok()) return ReportError(s);
  if (Status s = StoreRecord((*ref)->pool, r); !s.ok()) return ReportError(s);
  if (LiveEvents* live = (*ref)->live) {
    if (Status s = live->ExportsChanged((*ref)->name); !s.ok()) {
      return ReportError(s.Annotate("stored, but the daemon could not serve it"));
    }
  }
  if (r.allow.empty()) {
    std::fprintf(stderr, "volctl: warning: no --allow given: nobody may log in to %s until "
                         "an export of it names an initiator, a network or 'any'\n",
                 r.target.c_str());
  } else if (r.chap_user.empty()) {
    std::fprintf(stderr, "volctl: warning: %s has no CHAP: anyone matching --allow can log in\n",
                 r.target.c_str());
  }
  std::printf("%s LUN %llu -> %s%s\n", r.target.c_str(), static_cast<unsigned long long>(r.lun),
              a.name.c_str(), r.read_only ? " (read-only)" : "");
  return 0;
}

int RunUnexport(const std::string& full) {
  auto parts = SplitFull(full);
  if (!parts.ok()) return ReportError(parts.status());
  auto ref = AcquirePool(parts->first);
  if (!ref.ok()) return ReportError(ref.status());
  Result<volume::Dataset> ds = (*ref)->vm->Get(parts->second);
  if (!ds.ok()) return ReportError(ds.status());
  std::string key = ExportKey(ds->id);
  auto have = (*ref)->pool->GetClientKey(key);
  if (!have.ok()) return ReportError(have.status());
  if (!have->has_value()) {
    return ReportError(BH_ERROR(kNotFound, "{} is not exported", full));
  }
  Status s = (*ref)->pool->RunSyncTask([](core::SyncContext&) { return Status::Ok(); },
                                       [&](core::SyncContext& ctx) { ctx.DeleteClientKey(key); })
                 .status();
  if (!s.ok()) return ReportError(s);
  if (LiveEvents* live = (*ref)->live) {
    if (Status st = live->ExportsChanged((*ref)->name); !st.ok()) return ReportError(st);
  }
  return 0;
}

std::string AuthName(const ExportRecord& r) {
  if (!r.mutual_user.empty()) return "mutual-chap";
  return r.chap_user.empty() ? "none" : "chap";
}

std::string AllowText(const ExportRecord& r) {
  if (r.allow.empty()) return "nobody";
  std::string out;
  for (const auto& a : r.allow) out += (out.empty() ? "" : ",") + a;
  return out;
}

int RunExports(const OutputFlags& flags) {
  Result<std::vector<std::string>> pools = core::ListPoolNames(core::DefaultHome());
  if (!pools.ok()) return ReportError(pools.status());
  Table table({"TARGET", "LUN", "VOLUME", "ALLOW", "AUTH", "MODE", "STATE"});
  nlohmann::json rows = nlohmann::json::array();
  for (const std::string& pool : *pools) {
    auto ref = AcquirePool(pool, Access::kReadOnly);
    if (!ref.ok()) return ReportError(ref.status());
    auto exports = LoadExports((*ref)->pool);
    if (!exports.ok()) return ReportError(exports.status());
    std::vector<volume::Dataset> all = (*ref)->vm->List();
    for (const ExportRecord& e : *exports) {
      std::string volume = "?";
      for (const auto& d : all) {
        if (d.id == e.dataset_id) volume = pool + "/" + d.name;
      }
      std::string state = (*ref)->live ? "serving" : "stored (no daemon)";
      table.AddRow({e.target, std::to_string(e.lun), volume, AllowText(e), AuthName(e),
                    e.read_only ? "ro" : "rw", state});
      rows.push_back({{"target", e.target},     {"lun", e.lun},
                      {"volume", volume},       {"allow", e.allow},
                      {"auth", AuthName(e)},    {"chap_user", e.chap_user},
                      {"mutual_chap_user", e.mutual_user}, {"read_only", e.read_only},
                      {"multi_session", e.multi_session}, {"sector_size", e.sector_size},
                      {"soft_threshold", e.soft_threshold}, {"state", state}});
    }
  }
  std::fputs(flags.json ? (nlohmann::json{{"exports", rows}}.dump(2) + "\n").c_str()
                        : table.Render(flags).c_str(),
             stdout);
  return 0;
}

int RunSessions(const OutputFlags& flags) {
  std::vector<SessionRow> sessions;
  if (LiveEvents* live = CurrentLiveEvents()) sessions = live->Sessions();
  Table table({"INITIATOR", "ISID", "ADDRESS", "TARGET", "LUNS", "SINCE", "COMMANDS", "READ",
               "WRITTEN"});
  nlohmann::json rows = nlohmann::json::array();
  for (const SessionRow& s : sessions) {
    std::string luns;
    for (uint64_t l : s.luns) luns += (luns.empty() ? "" : ",") + std::to_string(l);
    std::time_t t = static_cast<std::time_t>(s.since);
    char since[32];
    std::strftime(since, sizeof(since), "%Y-%m-%d %H:%M:%S", std::localtime(&t));
    table.AddRow({s.initiator, s.isid, s.address, s.target, luns, since,
                  std::to_string(s.commands), Bytes(s.bytes_read, flags),
                  Bytes(s.bytes_written, flags)});
    rows.push_back({{"initiator", s.initiator}, {"isid", s.isid}, {"address", s.address},
                    {"target", s.target},       {"luns", s.luns}, {"since", s.since},
                    {"commands", s.commands},   {"bytes_read", s.bytes_read},
                    {"bytes_written", s.bytes_written}});
  }
  if (!RunningInDaemon() && !flags.json && !flags.scripted) {
    std::fputs("no daemon is running (volctl serve): no sessions\n", stderr);
  }
  std::fputs(flags.json ? (nlohmann::json{{"sessions", rows}}.dump(2) + "\n").c_str()
                        : table.Render(flags).c_str(),
             stdout);
  return 0;
}

}  // namespace

void AddExportCommands(CLI::App& app, Action* action) {
  auto ea = std::make_shared<ExportArgs>();
  CLI::App* exp = app.add_subcommand("export", "export a volume or snapshot as an iSCSI LUN");
  exp->add_option("name", ea->name, "POOL/VOLUME[@SNAPSHOT]")->required();
  exp->add_option("--target", ea->target, "target IQN (default iqn.2026-11.io.blockhaus:POOL.VOLUME)");
  exp->add_option("--lun", ea->lun, "LUN number (default: the lowest free)")->check(CLI::NonNegativeNumber);
  exp->add_option("--allow", ea->allow, "initiator IQN, address[/prefix] or 'any' (repeatable)");
  exp->add_option("--chap-user", ea->chap_user, "CHAP user the initiator logs in as");
  exp->add_option("--chap-secret-file", ea->chap_secret_file, "file holding the CHAP secret");
  exp->add_option("--mutual-chap-user", ea->mutual_user, "the target's CHAP user (mutual CHAP)");
  exp->add_option("--mutual-chap-secret-file", ea->mutual_secret_file,
                  "file holding the target's CHAP secret");
  exp->add_flag("--read-only", ea->read_only, "refuse writes");
  exp->add_flag("--multi-session", ea->multi_session, "admit several initiators at once");
  exp->add_option("--sector-size", ea->sector_size, "logical block size")
      ->check(CLI::IsMember({512, 4096}));
  exp->add_option("--soft-threshold", ea->soft_threshold,
                  "percent of the pool in use at which initiators get a thin-provisioning "
                  "warning (UNIT ATTENTION 38h/07h); 0 = off (default 80)")
      ->check(CLI::Range(0, 99));
  exp->callback([=] { *action = [=] { return RunExport(*ea); }; });

  auto un = std::make_shared<std::string>();
  CLI::App* unexp = app.add_subcommand("unexport", "stop exporting a volume or snapshot");
  unexp->add_option("name", *un, "POOL/VOLUME[@SNAPSHOT]")->required();
  unexp->callback([=] { *action = [=] { return RunUnexport(*un); }; });

  auto ef = std::make_shared<OutputFlags>();
  CLI::App* exps = app.add_subcommand("exports", "list exports (never secrets)");
  exps->add_flag("-H", ef->scripted, "scripted: no header, tab-separated");
  exps->add_flag("-p", ef->parsable, "exact numbers");
  exps->add_flag("-j,--json", ef->json, "JSON output");
  exps->callback([=] { *action = [=] { return RunExports(*ef); }; });

  auto sf = std::make_shared<OutputFlags>();
  CLI::App* sess = app.add_subcommand("sessions", "list iSCSI sessions of the running daemon");
  sess->add_flag("-H", sf->scripted, "scripted: no header, tab-separated");
  sess->add_flag("-p", sf->parsable, "exact numbers");
  sess->add_flag("-j,--json", sf->json, "JSON output");
  sess->callback([=] { *action = [=] { return RunSessions(*sf); }; });
}

}  // namespace blockhaus::tools

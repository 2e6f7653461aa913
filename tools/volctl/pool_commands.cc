// volctl pool create|list|status|scrub|destroy
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "core/base/units.h"
#include "core/pool/pool.h"
#include "core/pool/pool_dir.h"
#include "tools/volctl/commands.h"
#include "tools/volctl/export_records.h"
#include "tools/volctl/output.h"
#include "tools/volctl/pool_access.h"
#include "volume/volume_manager.h"

namespace blockhaus::tools {
namespace {

using core::Pool;

struct CreateArgs {
  std::string name;
  std::string size;
  std::string data;
  uint32_t ashift = 12;
};

int RunCreate(const CreateArgs& a) {
  if (Status s = core::ValidatePoolName(a.name); !s.ok()) return ReportError(s);
  core::PoolCreateOptions o;
  o.name = a.name;
  o.data_path = a.data;
  o.ashift = a.ashift;
  // The intent log's first lap then overwrites, as every later one does
  // (a synced write with no file system metadata to commit, D54).
  o.intent_log_prefill = true;
  if (!a.size.empty()) {
    Result<uint64_t> size = ParseSize(a.size);
    if (!size.ok()) return ReportError(size.status().Annotate("invalid --size"));
    if (*size == 0) return ReportError(BH_ERROR(kInvalidArgument, "invalid --size: must be > 0"));
    o.data_size = *size;
  } else if (a.data.empty()) {
    return ReportError(BH_ERROR(kInvalidArgument, "a pool on a new data file needs --size"));
  }
  std::string dir = core::PoolDir(core::DefaultHome(), a.name);
  if (std::filesystem::exists(dir + "/label")) {
    return ReportError(BH_ERROR(kAlreadyExists, "pool '{}' already exists", a.name));
  }
  Status s = Pool::Create(dir, o);
  if (!s.ok()) return ReportError(s.Annotate(fmt::format("cannot create pool '{}'", a.name)));
  if (LiveEvents* live = CurrentLiveEvents()) {
    if (Status st = live->PoolCreated(a.name); !st.ok()) return ReportError(st);
  }
  return 0;
}

nlohmann::json StatsJson(const core::PoolLabel& l, const core::PoolStats& s) {
  return {{"name", l.name},          {"guid", fmt::format("{:016x}", l.guid)},
          {"health", "ONLINE"},      {"size", s.capacity},
          {"allocated", s.allocated}, {"free", s.free},
          {"deferred_free", s.deferred}, {"slop", s.slop},
          {"txg", s.synced_txg},     {"data", l.data_path},
          {"ashift", l.ashift},      {"slab_size", l.slab_size},
          {"dirty", s.dirty},        {"txgs_committed", s.txgs_committed},
          {"last_commit_us", s.last_commit_us},
          {"intent_records", s.intent_records},
          {"intent_bytes", s.intent_bytes},
          {"intent_replayed_blocks", s.intent_replayed_blocks},
          {"intent_discarded_records", s.intent_discarded_records},
          {"intent_discarded_blocks", s.intent_discarded_blocks},
          {"raw_dirty_capacity", s.raw_dirty_capacity},
          {"raw_dirty_bytes", s.raw_dirty_bytes},
          {"raw_dirty_peak", s.raw_dirty_peak},
          {"raw_blocks_committed", s.raw_blocks_committed},
          {"raw_dirty_full", s.raw_dirty_full},
          {"raw_copied_ahead", s.raw_copied_ahead},
          {"direct_bytes", s.direct_bytes}};
}

std::string CapPercent(const core::PoolStats& s) {
  if (s.capacity == 0) return "0%";
  return fmt::format("{}%", (s.allocated * 100 + s.capacity - 1) / s.capacity);
}

int RunList(const OutputFlags& flags) {
  Result<std::vector<std::string>> names = core::ListPoolNames(core::DefaultHome());
  if (!names.ok()) return ReportError(names.status());
  Table table({"NAME", "SIZE", "ALLOC", "FREE", "FREEING", "CAP", "HEALTH"});
  nlohmann::json pools = nlohmann::json::array();
  for (const std::string& name : *names) {
    Result<std::unique_ptr<PoolRef>> pool = AcquirePool(name, Access::kReadOnly);
    if (!pool.ok()) {
      std::string health = pool.status().code() == Code::kUnavailable ? "INUSE" : "FAULTED";
      table.AddRow({name, "-", "-", "-", "-", "-", health});
      pools.push_back({{"name", name}, {"health", health},
                       {"error", pool.status().message()}});
      continue;
    }
    core::PoolStats s = (*pool)->pool->stats();
    uint64_t freeing = (*pool)->pool->pending_frees().bytes.phys;
    table.AddRow({name, Bytes(s.capacity, flags), Bytes(s.allocated, flags),
                  Bytes(s.free, flags), Bytes(freeing, flags), CapPercent(s), "ONLINE"});
    nlohmann::json j = StatsJson((*pool)->pool->label(), s);
    j["freeing"] = freeing;
    pools.push_back(j);
  }
  std::fputs(flags.json ? (nlohmann::json{{"pools", pools}}.dump(2) + "\n").c_str()
                        : table.Render(flags).c_str(), stdout);
  return 0;
}

int RunStatus(const std::string& name, bool json, bool parsable) {
  Result<std::unique_ptr<PoolRef>> pool = AcquirePool(name, Access::kReadOnly);
  if (!pool.ok()) return ReportError(pool.status());
  const core::PoolLabel& l = (*pool)->pool->label();
  core::PoolStats s = (*pool)->pool->stats();
  volume::CoalescerStatus frees = (*pool)->vm->coalescer();
  // Exact, from the space tallies: what the pending destroys still free.
  core::PendingFrees pending = (*pool)->pool->pending_frees();
  if (json) {
    nlohmann::json j = StatsJson(l, s);
    j["free_jobs_pending"] = frees.jobs_pending;
    j["free_jobs_progress_bytes"] = frees.pending_bytes_freed;
    j["freeing"] = pending.bytes.phys;
    std::fputs((j.dump(2) + "\n").c_str(), stdout);
    return 0;
  }
  OutputFlags f;
  f.parsable = parsable;
  std::printf("  pool: %s\n  guid: %016llx\n state: ONLINE\n  data: %s\n", l.name.c_str(),
              static_cast<unsigned long long>(l.guid), l.data_path.c_str());
  std::printf("  size: %s  allocated: %s  free: %s  (%s)\n", Bytes(s.capacity, f).c_str(),
              Bytes(s.allocated, f).c_str(), Bytes(s.free, f).c_str(), CapPercent(s).c_str());
  std::printf("sector: %u bytes  slab: %s  txg: %llu\n", 1u << l.ashift,
              Bytes(l.slab_size, f).c_str(), static_cast<unsigned long long>(s.synced_txg));
  // Since the pool was opened: by the daemon when one serves it, else by
  // this command (read-only, so all zero).
  std::printf("  txgs: %llu committed since open (last took %llu ms), %s not yet committed\n",
              static_cast<unsigned long long>(s.txgs_committed),
              static_cast<unsigned long long>(s.last_commit_us / 1000),
              Bytes(s.dirty, f).c_str());
  std::printf("intent: %llu flushes logged (%s), %llu blocks replayed at open\n",
              static_cast<unsigned long long>(s.intent_records), Bytes(s.intent_bytes, f).c_str(),
              static_cast<unsigned long long>(s.intent_replayed_blocks));
  if (s.raw_dirty_capacity > 0) {  // D49; a read-only open has none
    std::printf("   raw: %s of %s waiting uncompressed (peak %s), %llu blocks compressed by "
                "commits, %llu writes found it full, %s copied while arriving, %s of "
                "streams written past the page cache\n",
                Bytes(s.raw_dirty_bytes, f).c_str(), Bytes(s.raw_dirty_capacity, f).c_str(),
                Bytes(s.raw_dirty_peak, f).c_str(),
                static_cast<unsigned long long>(s.raw_blocks_committed),
                static_cast<unsigned long long>(s.raw_dirty_full),
                Bytes(s.raw_copied_ahead, f).c_str(), Bytes(s.direct_bytes, f).c_str());
  }
  if (frees.jobs_pending > 0 || pending.bytes.phys > 0) {
    uint64_t done = frees.pending_bytes_freed, all = done + pending.bytes.phys;
    std::printf(" frees: %llu destroys still freeing: %s to free, %s freed so far (%llu%%)\n",
                static_cast<unsigned long long>(frees.jobs_pending),
                Bytes(pending.bytes.phys, f).c_str(), Bytes(done, f).c_str(),
                static_cast<unsigned long long>(all == 0 ? 100 : done * 100 / all));
  } else {
    std::printf(" frees: none pending\n");
  }
  return 0;
}

int RunScrub(const std::string& name, bool json) {
  // Scrub verifies and repairs nothing: it never writes.
  Result<std::unique_ptr<PoolRef>> pool = AcquirePool(name, Access::kReadOnly);
  if (!pool.ok()) return ReportError(pool.status());
  Result<core::ScrubReport> r = (*pool)->pool->Scrub();
  if (!r.ok()) return ReportError(r.status().Annotate("scrub failed"));
  if (json) {
    nlohmann::json j = {{"blocks", r->blocks_checked}, {"bytes", r->bytes_checked},
                        {"checksum_errors", r->checksum_errors},
                        {"decode_errors", r->decode_errors}, {"leaked_bytes", r->leaked_bytes},
                        {"double_allocated", r->double_allocated},
                        {"space_mismatches", r->space_mismatches},
                        {"clean", r->clean()}, {"problems", r->problems}};
    std::fputs((j.dump(2) + "\n").c_str(), stdout);
  } else {
    std::printf("scrub of %s: %llu blocks, %s verified, %llu checksum errors, "
                "%llu bytes leaked, %llu double allocations, %llu space tallies off\n",
                name.c_str(),
                static_cast<unsigned long long>(r->blocks_checked),
                FormatSize(r->bytes_checked).c_str(),
                static_cast<unsigned long long>(r->checksum_errors),
                static_cast<unsigned long long>(r->leaked_bytes),
                static_cast<unsigned long long>(r->double_allocated),
              static_cast<unsigned long long>(r->space_mismatches));
    for (const std::string& p : r->problems) std::printf("  %s\n", p.c_str());
  }
  return r->clean() ? 0 : 1;
}

// What `pool clear` found, from the counters of the open it made.
void PrintCleared(const std::string& name, const core::PoolStats& s) {
  if (s.intent_discarded_records > 0) {
    std::printf("pool %s: dropped %llu intent log %s from the first damaged one on (%llu "
                "blocks decoded): the writes they had made durable are lost; replayed %llu "
                "blocks before them\n",
                name.c_str(), static_cast<unsigned long long>(s.intent_discarded_records),
                s.intent_discarded_records == 1 ? "record" : "records",
                static_cast<unsigned long long>(s.intent_discarded_blocks),
                static_cast<unsigned long long>(s.intent_replayed_blocks));
  } else if (s.intent_replayed_blocks > 0) {
    std::printf("pool %s: replayed %llu blocks from the intent log\n", name.c_str(),
                static_cast<unsigned long long>(s.intent_replayed_blocks));
  } else {
    std::printf("pool %s: opens cleanly, nothing to clear\n", name.c_str());
  }
}

// ZFS's `zpool clear [-F]`: a read-write open, which replays the intent
// log; with -F (recovery), a damaged intent log record and the records
// after it are dropped instead of stopping the open. In the daemon, a
// FAULTED pool is opened again and served.
int RunClear(const std::string& name, bool recover) {
  if (Status s = core::ValidatePoolName(name); !s.ok()) return ReportError(s);
  if (LiveEvents* live = CurrentLiveEvents()) {
    // Its errors name the pool already (the daemon's open annotates them).
    Result<std::optional<core::PoolStats>> r = live->ClearPool(name, recover);
    if (!r.ok()) return ReportError(r.status());
    if (!r->has_value()) {
      std::printf("pool %s: open and served, nothing to clear\n", name.c_str());
    } else {
      PrintCleared(name, **r);
    }
    return 0;
  }
  const std::string dir = core::PoolDir(core::DefaultHome(), name);
  if (!std::filesystem::exists(dir + "/label")) {
    return ReportError(BH_ERROR(kNotFound, "pool '{}' does not exist", name));
  }
  core::PoolOptions options;
  options.discard_damaged_intent_log = recover;
  Result<std::unique_ptr<Pool>> pool = Pool::Open(dir, options);
  if (!pool.ok()) {
    return ReportError(pool.status().Annotate(fmt::format("cannot open pool '{}'", name)));
  }
  const core::PoolStats s = (*pool)->stats();
  if (Status c = (*pool)->Close(); !c.ok()) return ReportError(c);
  PrintCleared(name, s);
  return 0;
}

// Removes the pool's files (core::DestroyPoolFiles) and says what it left.
int RemovePoolFiles(const std::string& dir) {
  std::vector<std::string> notes;
  Status s = core::DestroyPoolFiles(dir, &notes);
  for (const std::string& note : notes) std::fprintf(stderr, "volctl: %s\n", note.c_str());
  return s.ok() ? 0 : ReportError(s);
}

// ZFS's `zpool destroy [-f]`. A pool that does not open (FAULTED: a damaged
// label, metadata store or intent log, a missing data file) goes only with
// -f, unread: its exports go with it, and nothing in it is checked first.
int RunDestroy(const std::string& name, bool force) {
  if (Status s = core::ValidatePoolName(name); !s.ok()) return ReportError(s);
  const std::string dir = core::PoolDir(core::DefaultHome(), name);
  Result<std::unique_ptr<PoolRef>> pool = AcquirePool(name);
  if (!pool.ok()) {
    // Absent, or open in another process: nothing to force.
    const Code code = pool.status().code();
    if (code == Code::kNotFound || code == Code::kUnavailable) {
      return ReportError(pool.status());
    }
    if (!force) {
      return ReportError(BH_ERROR(kFailedPrecondition, "{}; `volctl pool destroy -f {}` "
                                  "destroys it without opening it (with its volumes, "
                                  "snapshots and exports)",
                                  pool.status().message(), name));
    }
    if (int rc = RemovePoolFiles(dir); rc != 0) return rc;
    // The daemon forgets it after the files are gone: a failure above
    // leaves it listed as it was.
    if (LiveEvents* live = CurrentLiveEvents()) {
      if (Status s = live->ReleasePool(name); !s.ok()) return ReportError(s);
    }
    return 0;
  }
  if (Status s = CheckPoolHasNoExports(**pool); !s.ok()) return ReportError(s);
  if (LiveEvents* live = (*pool)->live) {
    pool->reset();
    if (Status s = live->ReleasePool(name); !s.ok()) return ReportError(s);
  } else {
    (*pool)->owned_vm.reset();
    Status s = (*pool)->owned_pool->Close();
    (*pool)->owned_pool.reset();
    if (!s.ok()) return ReportError(s);
  }
  return RemovePoolFiles(dir);
}

}  // namespace

void AddPoolCommands(CLI::App& app, Action* action) {
  CLI::App* pool = app.add_subcommand("pool", "create, inspect and destroy pools");
  RequireKnownSubcommand(pool, action);

  auto create_args = std::make_shared<CreateArgs>();
  CLI::App* create = pool->add_subcommand("create", "create a pool");
  create->add_option("name", create_args->name, "pool name")->required();
  create->add_option("--size", create_args->size, "size of a new data file (e.g. 10G)");
  create->add_option("--data", create_args->data, "data file or block device");
  create->add_option("--ashift", create_args->ashift, "sector size as a power of two")
      ->check(CLI::Range(9, 16));
  create->callback([=] { *action = [=] { return RunCreate(*create_args); }; });

  auto flags = std::make_shared<OutputFlags>();
  CLI::App* list = pool->add_subcommand("list", "list pools");
  list->add_flag("-H", flags->scripted, "scripted: no header, tab-separated");
  list->add_flag("-p", flags->parsable, "exact numbers");
  list->add_flag("-j,--json", flags->json, "JSON output");
  list->callback([=] { *action = [=] { return RunList(*flags); }; });

  auto name = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  CLI::App* status = pool->add_subcommand("status", "show a pool's state and space");
  status->add_option("name", *name, "pool name")->required();
  status->add_flag("-j,--json", *json, "JSON output");
  auto exact = std::make_shared<bool>(false);
  status->add_flag("-p", *exact, "exact numbers");
  status->callback([=] { *action = [=] { return RunStatus(*name, *json, *exact); }; });

  CLI::App* scrub = pool->add_subcommand("scrub", "verify every block and the allocator");
  scrub->add_option("name", *name, "pool name")->required();
  scrub->add_flag("-j,--json", *json, "JSON output");
  scrub->callback([=] { *action = [=] { return RunScrub(*name, *json); }; });

  auto recover = std::make_shared<bool>(false);
  CLI::App* clear =
      pool->add_subcommand("clear", "open a pool read-write, replaying its intent log");
  clear->add_option("name", *name, "pool name")->required();
  clear->add_flag("-F", *recover,
                  "recovery: drop a damaged intent log record and those after it (their "
                  "writes are lost) instead of failing");
  clear->callback([=] { *action = [=] { return RunClear(*name, *recover); }; });

  CLI::App* destroy = pool->add_subcommand("destroy", "destroy a pool and its data");
  destroy->add_option("name", *name, "pool name")->required();
  auto force = std::make_shared<bool>(false);
  destroy->add_flag("-f", *force,
                    "also a pool that does not open (FAULTED), without opening it");
  destroy->callback([=] { *action = [=] { return RunDestroy(*name, *force); }; });
}

}  // namespace blockhaus::tools

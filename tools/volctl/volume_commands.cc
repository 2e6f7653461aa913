// volctl create|destroy|snapshot|rollback|clone|list|get|set|write|read
//
// Each command acquires the pool named by its first argument (session.h),
// runs one VolumeManager operation and releases the pool.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
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
#include "tools/volctl/session.h"
#include "volume/volume_manager.h"

namespace blockhaus::tools {
namespace {

using volume::Dataset;
using volume::VolumeManager;

std::string TypeName(const Dataset& d) { return d.is_snapshot() ? "snapshot" : "volume"; }

std::string CreationText(uint64_t t) {
  std::time_t tt = static_cast<std::time_t>(t);
  char buf[64];
  std::strftime(buf, sizeof(buf), "%a %b %e %H:%M %Y", std::localtime(&tt));
  return buf;
}

// The value of a space property (volume/space.h), nullopt for other names.
std::optional<std::string> SpaceValue(const Dataset& d, const std::string& prop,
                                      const VolumeManager& vm, const OutputFlags& f) {
  static const std::vector<std::string> kNames = {
      "used", "referenced", "written", "logicalused", "logicalreferenced", "compressratio",
      "usedbysnapshots", "usedbydataset", "usedbyrefreservation", "usedbychildren"};
  if (prop == "available" || prop == "avail") {
    return d.is_snapshot() ? "-" : Bytes(vm.Available(d), f);
  }
  if (std::find(kNames.begin(), kNames.end(), prop) == kNames.end()) return std::nullopt;
  Result<volume::DatasetSpace> r = vm.Space(d);
  if (!r.ok()) return "-";
  const volume::DatasetSpace& s = *r;
  if (prop == "compressratio") return volume::CompressRatioText(s.compress_ratio_x100, f.parsable);
  if (prop == "used") return Bytes(s.used, f);
  if (prop == "referenced") return Bytes(s.referenced, f);
  if (prop == "written") return Bytes(s.written, f);
  if (prop == "logicalused") return Bytes(s.logicalused, f);
  if (prop == "logicalreferenced") return Bytes(s.logicalreferenced, f);
  if (d.is_snapshot()) return "-";  // the usedby* breakdown is a volume's
  if (prop == "usedbysnapshots") return Bytes(s.usedbysnapshots, f);
  if (prop == "usedbydataset") return Bytes(s.usedbydataset, f);
  if (prop == "usedbyrefreservation") return Bytes(s.usedbyrefreservation, f);
  return Bytes(s.usedbychildren, f);
}

// The value of one property for list/get; nullopt when unknown.
std::optional<std::string> PropValue(const Dataset& d, const std::string& prop,
                                     const VolumeManager& vm, const std::string& pool,
                                     const OutputFlags& f) {
  const volume::VolumeProps& p = d.props;
  if (prop == "name") return pool + "/" + d.name;
  if (prop == "type") return TypeName(d);
  if (prop == "volsize") return Bytes(p.volsize, f);
  if (prop == "volblocksize") return Bytes(p.volblocksize, f);
  if (prop == "compression") return core::CompressionName(p.compression);
  if (prop == "checksum") return core::ChecksumTypeName(p.checksum);
  if (prop == "refreservation") return p.refreservation ? Bytes(p.refreservation, f) : "none";
  if (prop == "readonly") return p.readonly || d.is_snapshot() ? "on" : "off";
  if (prop == "creation") return f.parsable ? std::to_string(d.creation) : CreationText(d.creation);
  if (prop == "guid") return std::to_string(d.guid);
  if (prop == "createtxg") return std::to_string(d.txg);
  if (prop == "origin") {
    if (d.origin_id == 0) return "-";
    for (const Dataset& o : vm.List()) {
      if (o.id == d.origin_id) return pool + "/" + o.name;
    }
    return "-";
  }
  if (auto space = SpaceValue(d, prop, vm, f)) return *space;
  if (prop == "userrefs") return d.is_snapshot() ? std::to_string(d.holds.size()) : "-";
  if (prop == "clones") {
    std::string out;
    if (!d.is_snapshot()) return "-";
    for (const Dataset& c : vm.List()) {
      if (!c.is_snapshot() && c.origin_id == d.id) out += (out.empty() ? "" : ",") + pool + "/" + c.name;
    }
    return out.empty() ? "-" : out;
  }
  auto user = p.user.find(prop);
  if (user != p.user.end()) return user->second;
  if (prop.find(':') != std::string::npos) return "-";
  return std::nullopt;
}

const std::vector<std::string> kAllProps = {
    "type", "creation", "used", "available", "referenced", "compressratio", "volsize", "volblocksize",
    "compression", "checksum", "refreservation", "readonly", "origin", "guid", "createtxg",
    "written", "logicalused", "logicalreferenced", "usedbysnapshots", "usedbydataset",
    "usedbyrefreservation", "usedbychildren"};
// Added to `get all` for snapshots only (zfs shows them for snapshots).
const std::vector<std::string> kSnapshotProps = {"clones", "userrefs"};

std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    if (comma > start) out.push_back(s.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

Status ParseAssignment(const std::string& text, std::string* key, std::string* value) {
  size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    return BH_ERROR(kInvalidArgument, "'{}' is not PROPERTY=VALUE", text);
  }
  *key = text.substr(0, eq);
  *value = text.substr(eq + 1);
  return Status::Ok();
}

// ---- create ----

struct CreateArgs {
  bool sparse = false;
  std::string size, block_size, name;
  std::vector<std::string> props;
};

Result<volume::VolumeProps> BuildProps(const CreateArgs& a) {
  volume::VolumeProps p;
  if (!a.block_size.empty()) BH_RETURN_IF_ERROR(volume::ApplyProperty(&p, "volblocksize", a.block_size, true));
  for (const auto& text : a.props) {
    std::string k, v;
    BH_RETURN_IF_ERROR(ParseAssignment(text, &k, &v));
    if (k == "volsize") return BH_ERROR(kInvalidArgument, "use -V to set volsize");
    BH_RETURN_IF_ERROR(volume::ApplyProperty(&p, k, v, true));
  }
  BH_RETURN_IF_ERROR(volume::ApplyProperty(&p, "volsize", a.size, true));
  if (!a.sparse && p.refreservation == 0) p.refreservation = p.volsize;
  return p;
}

int RunCreate(const CreateArgs& a) {
  std::string name;
  auto parts = SplitPool(a.name);
  if (!parts.ok()) return ReportError(parts.status());
  if (Status s = volume::ValidateVolumeName(parts->second); !s.ok()) return ReportError(s);
  Result<volume::VolumeProps> props = BuildProps(a);
  if (!props.ok()) return ReportError(props.status());
  auto s = OpenFor(a.name, &name);
  if (!s.ok()) return ReportError(s.status());
  return Finish(**s, (*s)->vm->CreateVolume(name, *props));
}

// ---- list / get ----

struct ListArgs {
  std::string types = "volume";
  std::string fields = "name,type,volsize,volblocksize,compression,origin";
  std::vector<std::string> names;
  bool recursive = false;
  OutputFlags flags;
};

// Refuses a property list/get cannot show, before anything is opened, so
// that `list -o bogus` fails even when nothing would be listed.
Status CheckPropertyName(const std::string& prop) {
  if (volume::IsUserProperty(prop)) return volume::ValidateUserPropertyName(prop);
  if (prop == "name" || prop == "createtxg" ||
      std::find(kAllProps.begin(), kAllProps.end(), prop) != kAllProps.end() ||
      std::find(kSnapshotProps.begin(), kSnapshotProps.end(), prop) != kSnapshotProps.end()) {
    return Status::Ok();
  }
  return BH_ERROR(kInvalidArgument, "unknown property '{}'", prop);
}

Status CheckPropertyList(const std::vector<std::string>& props) {
  if (props.empty()) return BH_ERROR(kInvalidArgument, "no property named");
  for (const std::string& p : props) BH_RETURN_IF_ERROR(CheckPropertyName(p));
  return Status::Ok();
}

bool TypeWanted(const std::string& types, const Dataset& d) {
  for (const std::string& t : SplitComma(types)) {
    if (t == "all" || t == TypeName(d)) return true;
  }
  return false;
}

Status CheckTypes(const std::string& types) {
  for (const std::string& t : SplitComma(types)) {
    if (t != "all" && t != "volume" && t != "snapshot") {
      return BH_ERROR(kInvalidArgument, "bad type '{}': use volume, snapshot or all", t);
    }
  }
  return Status::Ok();
}

// Datasets of the pools named (or of every pool), with their pool name. A
// volume named explicitly comes with its snapshots when `with_snapshots`
// (zfs list -r, or -t snapshot alone).
Result<std::vector<std::pair<std::string, Dataset>>> Collect(const std::vector<std::string>& names,
                                                             bool with_snapshots,
                                                             std::vector<std::unique_ptr<Session>>* keep) {
  std::vector<std::pair<std::string, Dataset>> out;
  if (names.empty()) {
    BH_ASSIGN_OR_RETURN(auto pools, core::ListPoolNames(core::DefaultHome()));
    for (const auto& p : pools) {
      BH_ASSIGN_OR_RETURN(auto s, OpenSession(p, Access::kReadOnly));
      for (const Dataset& d : s->vm->List()) out.emplace_back(p, d);
      keep->push_back(std::move(s));
    }
    return out;
  }
  for (const std::string& full : names) {
    std::string pool = full.substr(0, full.find('/'));
    BH_ASSIGN_OR_RETURN(auto s, OpenSession(pool, Access::kReadOnly));
    if (full.find('/') == std::string::npos) {
      for (const Dataset& d : s->vm->List()) out.emplace_back(pool, d);
    } else {
      std::string name = full.substr(full.find('/') + 1);
      BH_ASSIGN_OR_RETURN(Dataset d, s->vm->Get(name));
      out.emplace_back(pool, d);
      for (const Dataset& o : s->vm->List()) {
        if (with_snapshots && !d.is_snapshot() && o.is_snapshot() && o.volume_id == d.id) {
          out.emplace_back(pool, o);
        }
      }
    }
    keep->push_back(std::move(s));
  }
  return out;
}

int RunList(const ListArgs& a) {
  if (Status s = CheckTypes(a.types); !s.ok()) return ReportError(s);
  std::vector<std::string> fields = SplitComma(a.fields);
  if (Status s = CheckPropertyList(fields); !s.ok()) return ReportError(s);
  // As zfs list: -r shows a named volume's children (its snapshots), and so
  // does -t snapshot alone.
  bool with_snapshots = a.recursive || a.types == "snapshot";
  std::vector<std::unique_ptr<Session>> sessions;
  auto all = Collect(a.names, with_snapshots, &sessions);
  if (!all.ok()) return ReportError(all.status());
  std::vector<std::string> header;
  for (const auto& f : fields) {
    std::string up = f;
    for (char& c : up) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    header.push_back(up);
  }
  Table table(header);
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& [pool, d] : *all) {
    if (!TypeWanted(a.types, d)) continue;
    const VolumeManager& vm = *sessions.front()->vm;
    std::vector<std::string> row;
    nlohmann::json j;
    for (const auto& f : fields) {
      const VolumeManager* owner = &vm;
      for (const auto& s : sessions) {
        if (s->name == pool) owner = s->vm;
      }
      auto v = PropValue(d, f, *owner, pool, a.flags);
      if (!v) return ReportError(BH_ERROR(kInvalidArgument, "unknown property '{}'", f));
      row.push_back(*v);
      j[f] = *v;
    }
    table.AddRow(row);
    rows.push_back(j);
  }
  std::fputs(a.flags.json ? (nlohmann::json{{"datasets", rows}}.dump(2) + "\n").c_str()
                          : table.Render(a.flags).c_str(), stdout);
  return 0;
}

struct GetArgs {
  std::string props;
  std::vector<std::string> names;
  OutputFlags flags;
};

int RunGet(const GetArgs& a) {
  if (a.props != "all") {
    if (Status s = CheckPropertyList(SplitComma(a.props)); !s.ok()) return ReportError(s);
  }
  std::vector<std::unique_ptr<Session>> sessions;
  std::vector<std::pair<std::string, Dataset>> all;
  for (const std::string& full : a.names) {
    std::string name;
    auto s = OpenFor(full, &name, Access::kReadOnly);
    if (!s.ok()) return ReportError(s.status());
    auto d = (*s)->vm->Get(name);
    if (!d.ok()) return ReportError(d.status());
    all.emplace_back((*s)->name, *d);
    sessions.push_back(std::move(s).value());
  }
  Table table({"NAME", "PROPERTY", "VALUE", "SOURCE"});
  nlohmann::json rows = nlohmann::json::array();
  for (size_t i = 0; i < all.size(); ++i) {
    const auto& [pool, d] = all[i];
    std::vector<std::string> props = a.props == "all" ? kAllProps : SplitComma(a.props);
    if (a.props == "all" && d.is_snapshot()) {
      props.insert(props.end(), kSnapshotProps.begin(), kSnapshotProps.end());
    }
    if (a.props == "all") {
      for (const auto& [k, v] : d.props.user) props.push_back(k);
    }
    for (const std::string& p : props) {
      auto v = PropValue(d, p, *sessions[i]->vm, pool, a.flags);
      if (!v) return ReportError(BH_ERROR(kInvalidArgument, "unknown property '{}'", p));
      std::string source = volume::PropertySource(d, p);
      table.AddRow({pool + "/" + d.name, p, *v, source});
      rows.push_back({{"name", pool + "/" + d.name}, {"property", p}, {"value", *v},
                      {"source", source}});
    }
  }
  std::fputs(a.flags.json ? (nlohmann::json{{"properties", rows}}.dump(2) + "\n").c_str()
                          : table.Render(a.flags).c_str(), stdout);
  return 0;
}

// ---- write / read ----

int RunWrite(const std::string& target, const std::string& file, uint64_t offset) {
  std::string name;
  auto s = OpenFor(target, &name);
  if (!s.ok()) return ReportError(s.status());
  auto dev = (*s)->vm->OpenDevice(name);
  if (!dev.ok()) return ReportError(dev.status());
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ReportError(BH_ERROR(kNotFound, "cannot open {}", file));
  struct stat st;
  uint64_t end = 0;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
      (__builtin_add_overflow(offset, static_cast<uint64_t>(st.st_size), &end) ||
       end > (*dev)->size())) {
    ::close(fd);
    // Refuse before writing anything: a partial import is worse than none.
    return ReportError(BH_ERROR(kInvalidArgument,
                                "{} ({} bytes at offset {}) goes beyond the volume's {} bytes",
                                file, st.st_size, offset, (*dev)->size()));
  }
  std::vector<uint8_t> buf(1 << 20);
  Status status;
  uint64_t pos = offset;
  while (status.ok()) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) status = BH_ERROR(kIOError, "reading {} failed", file);
    if (n <= 0) break;
    status = (*dev)->Write(pos, ConstByteSpan(buf.data(), static_cast<size_t>(n)));
    pos += static_cast<uint64_t>(n);
  }
  ::close(fd);
  if (status.ok()) status = (*dev)->Flush();
  return Finish(**s, status);
}

int RunRead(const std::string& source, const std::string& file, uint64_t offset,
            std::optional<uint64_t> length) {
  std::string name;
  auto s = OpenFor(source, &name, Access::kReadOnly);
  if (!s.ok()) return ReportError(s.status());
  auto dev = (*s)->vm->OpenDevice(name);
  if (!dev.ok()) return ReportError(dev.status());
  if (offset > (*dev)->size()) return ReportError(BH_ERROR(kInvalidArgument, "offset beyond the volume"));
  uint64_t len = length.value_or((*dev)->size() - offset);
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ReportError(BH_ERROR(kIOError, "cannot create {}", file));
  std::vector<uint8_t> buf(1 << 20);
  Status status;
  for (uint64_t done = 0; done < len && status.ok();) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), len - done));
    status = (*dev)->Read(offset + done, ByteSpan(buf.data(), n));
    if (status.ok() && ::write(fd, buf.data(), n) != static_cast<ssize_t>(n)) {
      status = BH_ERROR(kIOError, "writing {} failed", file);
    }
    done += n;
  }
  ::close(fd);
  return status.ok() ? 0 : ReportError(status);
}

// ---- destroy ----

struct DestroyArgs {
  bool r = false, R = false, dry_run = false, verbose = false, parsable = false;
  std::string name;
};

// zfs destroy -nvp: "would destroy NAME" lines, then "would reclaim BYTES";
// with -p tab-separated "destroy NAME BYTES" and "reclaim BYTES".
void PrintPlan(const std::string& pool, const std::vector<volume::DestroyItem>& plan,
               const DestroyArgs& a) {
  OutputFlags f;
  f.parsable = a.parsable;
  uint64_t total = 0;
  const char* verb = a.dry_run ? "would" : "will";
  for (const auto& item : plan) {
    total += item.bytes;
    if (a.parsable) {
      std::printf("destroy\t%s/%s\t%llu\n", pool.c_str(), item.name.c_str(),
                  static_cast<unsigned long long>(item.bytes));
    } else if (a.verbose) {
      std::printf("%s destroy %s/%s (frees %s)\n", verb, pool.c_str(), item.name.c_str(),
                  Bytes(item.bytes, f).c_str());
    }
  }
  if (a.parsable) {
    std::printf("reclaim\t%llu\n", static_cast<unsigned long long>(total));
  } else if (a.verbose) {
    std::printf("%s reclaim %s\n", verb, Bytes(total, f).c_str());
  }
}

int RunDestroy(const DestroyArgs& a) {
  std::string name;
  auto s = OpenFor(a.name, &name, a.dry_run ? Access::kReadOnly : Access::kReadWrite);
  if (!s.ok()) return ReportError(s.status());
  bool recursive = a.r || a.R;
  if (a.dry_run || a.verbose || a.parsable) {
    // Flush so the plan sees everything written so far.
    if (Result<uint64_t> f = (*s)->pool->Flush(); !f.ok()) return ReportError(f.status());
    auto plan = (*s)->vm->PlanDestroy(name, recursive, a.R);
    if (!plan.ok()) return ReportError(plan.status());
    PrintPlan((*s)->name, *plan, a);
    if (a.dry_run) return 0;
  }
  if (Status st = CheckNotExported(**s, name, recursive, a.R); !st.ok()) return ReportError(st);
  return Finish(**s, (*s)->vm->Destroy(name, recursive, a.R));
}

}  // namespace

void AddVolumeCommands(CLI::App& app, Action* action) {
  auto ca = std::make_shared<CreateArgs>();
  CLI::App* create = app.add_subcommand("create", "create a volume");
  create->add_flag("-s", ca->sparse, "thin: reserve no space");
  create->add_option("-V", ca->size, "volume size (e.g. 50G)")->required();
  create->add_option("-b", ca->block_size, "volblocksize, 4K..128K (default 16K)");
  create->add_option("-o", ca->props, "PROPERTY=VALUE");
  create->add_option("name", ca->name, "POOL/VOLUME")->required();
  create->callback([=] { *action = [=] { return RunCreate(*ca); }; });

  auto da = std::make_shared<DestroyArgs>();
  CLI::App* destroy = app.add_subcommand("destroy", "destroy a volume or snapshot");
  destroy->add_flag("-r", da->r, "also its snapshots");
  destroy->add_flag("-R", da->R, "also snapshots and clones, recursively");
  destroy->add_flag("-n", da->dry_run, "dry run: change nothing (with -v or -p: show what)");
  destroy->add_flag("-v", da->verbose, "print each object destroyed and the bytes it frees");
  destroy->add_flag("-p", da->parsable, "parsable output, exact bytes");
  destroy->add_option("name", da->name, "POOL/VOLUME[@SNAPSHOT]")->required();
  destroy->callback([=] { *action = [=] { return RunDestroy(*da); }; });

  auto snaps = std::make_shared<std::vector<std::string>>();
  CLI::App* snapshot = app.add_subcommand("snapshot", "snapshot volumes (atomically)");
  snapshot->add_option("names", *snaps, "POOL/VOLUME@SNAPSHOT...")->required();
  snapshot->callback([=] {
    *action = [=] {
      std::string pool, name;
      std::vector<std::string> names;
      for (const auto& full : *snaps) {
        auto parts = SplitPool(full);
        if (!parts.ok()) return ReportError(parts.status());
        if (!pool.empty() && parts->first != pool) {
          return ReportError(BH_ERROR(kInvalidArgument, "snapshots in one call must share a pool"));
        }
        pool = parts->first;
        names.push_back(parts->second);
      }
      auto s = OpenSession(pool);
      if (!s.ok()) return ReportError(s.status());
      return Finish(**s, (*s)->vm->Snapshot(names));
    };
  });

  struct RollbackArgs { bool r = false; std::string name; };
  auto ra = std::make_shared<RollbackArgs>();
  CLI::App* rollback = app.add_subcommand("rollback", "roll a volume back to a snapshot");
  rollback->add_flag("-r", ra->r, "destroy newer snapshots");
  rollback->add_option("name", ra->name, "POOL/VOLUME@SNAPSHOT")->required();
  rollback->callback([=] {
    *action = [=] {
      std::string name;
      auto s = OpenFor(ra->name, &name);
      if (!s.ok()) return ReportError(s.status());
      Status st = (*s)->vm->Rollback(name, ra->r);
      if (st.ok()) NotifyVolumeChanged(**s, volume::SplitSnapshotName(name).first, false);
      return Finish(**s, st);
    };
  });

  struct CloneArgs { std::vector<std::string> props; std::string snap, name; };
  auto cl = std::make_shared<CloneArgs>();
  CLI::App* clone = app.add_subcommand("clone", "clone a snapshot into a new volume");
  clone->add_option("-o", cl->props, "PROPERTY=VALUE");
  clone->add_option("snapshot", cl->snap, "POOL/VOLUME@SNAPSHOT")->required();
  clone->add_option("name", cl->name, "POOL/NEWVOLUME")->required();
  clone->callback([=] {
    *action = [=] {
      std::string snap, name;
      auto s = OpenFor(cl->snap, &snap);
      if (!s.ok()) return ReportError(s.status());
      auto target = SplitPool(cl->name);
      if (!target.ok()) return ReportError(target.status());
      if (target->first != (*s)->name) {
        return ReportError(BH_ERROR(kInvalidArgument, "a clone must be in its origin's pool"));
      }
      std::map<std::string, std::string> props;
      for (const auto& text : cl->props) {
        std::string k, v;
        if (Status st = ParseAssignment(text, &k, &v); !st.ok()) return ReportError(st);
        props[k] = v;
      }
      return Finish(**s, (*s)->vm->Clone(snap, target->second, props));
    };
  });

  auto la = std::make_shared<ListArgs>();
  CLI::App* list = app.add_subcommand("list", "list volumes and snapshots");
  list->add_option("-t", la->types, "volume, snapshot or all (comma separated)");
  list->add_option("-o", la->fields, "properties to show (comma separated)");
  list->add_flag("-H", la->flags.scripted, "scripted: no header, tab-separated");
  list->add_flag("-p", la->flags.parsable, "exact numbers");
  list->add_flag("-j,--json", la->flags.json, "JSON output");
  list->add_flag("-r", la->recursive, "with the snapshots of each volume named");
  list->add_option("names", la->names, "POOL, POOL/VOLUME or POOL/VOLUME@SNAP");
  list->callback([=] { *action = [=] { return RunList(*la); }; });

  auto ga = std::make_shared<GetArgs>();
  CLI::App* get = app.add_subcommand("get", "show properties");
  get->add_flag("-H", ga->flags.scripted, "scripted: no header, tab-separated");
  get->add_flag("-p", ga->flags.parsable, "exact numbers");
  get->add_flag("-j,--json", ga->flags.json, "JSON output");
  get->add_option("props", ga->props, "PROPERTY[,PROPERTY...] or all")->required();
  get->add_option("names", ga->names, "POOL/VOLUME[@SNAPSHOT]...")->required();
  get->callback([=] { *action = [=] { return RunGet(*ga); }; });

  struct SetArgs { bool force = false; std::string assignment, name; };
  auto sa = std::make_shared<SetArgs>();
  CLI::App* set = app.add_subcommand("set", "set a property");
  set->add_flag("-f", sa->force, "volsize: shrink even past written data (discards it)");
  set->add_option("assignment", sa->assignment, "PROPERTY=VALUE")->required();
  set->add_option("name", sa->name, "POOL/VOLUME[@SNAPSHOT]")->required();
  set->callback([=] {
    *action = [=] {
      std::string k, v, name;
      if (Status st = ParseAssignment(sa->assignment, &k, &v); !st.ok()) return ReportError(st);
      if (sa->force && k != "volsize") {
        return ReportError(BH_ERROR(kInvalidArgument, "-f applies to volsize only"));
      }
      auto s = OpenFor(sa->name, &name);
      if (!s.ok()) return ReportError(s.status());
      Status st;
      if (k == "volsize") {
        auto d = (*s)->vm->Get(name);
        if (!d.ok()) return ReportError(d.status());
        volume::VolumeProps p = d->props;
        st = volume::ApplyProperty(&p, k, v, false);
        if (st.ok()) st = (*s)->vm->Resize(name, p.volsize, sa->force);
      } else {
        st = (*s)->vm->SetProperty(name, k, v);
      }
      if (st.ok() && (k == "volsize" || k == "readonly")) NotifyVolumeChanged(**s, name, k == "volsize");
      return Finish(**s, st);
    };
  });

  struct IoArgs { std::string target, file, offset = "0", length; };
  auto wa = std::make_shared<IoArgs>();
  CLI::App* write = app.add_subcommand("write", "write a file (raw image) into a volume");
  write->add_option("volume", wa->target, "POOL/VOLUME")->required();
  write->add_option("file", wa->file, "source file")->required();
  write->add_option("--offset", wa->offset, "byte offset in the volume");
  write->callback([=] {
    *action = [=] {
      auto off = ParseSize(wa->offset);
      if (!off.ok()) return ReportError(off.status().Annotate("bad --offset"));
      return RunWrite(wa->target, wa->file, *off);
    };
  });
  auto rd = std::make_shared<IoArgs>();
  CLI::App* read = app.add_subcommand("read", "read a volume or snapshot into a file");
  read->add_option("source", rd->target, "POOL/VOLUME[@SNAPSHOT]")->required();
  read->add_option("file", rd->file, "destination file")->required();
  read->add_option("--offset", rd->offset, "byte offset in the volume");
  read->add_option("--length", rd->length, "bytes to read (default: to the end)");
  read->callback([=] {
    *action = [=] {
      auto off = ParseSize(rd->offset);
      if (!off.ok()) return ReportError(off.status().Annotate("bad --offset"));
      std::optional<uint64_t> len;
      if (!rd->length.empty()) {
        auto l = ParseSize(rd->length);
        if (!l.ok()) return ReportError(l.status().Annotate("bad --length"));
        len = *l;
      }
      return RunRead(rd->target, rd->file, *off, len);
    };
  });
}

}  // namespace blockhaus::tools

// volctl rename|promote|hold|release|holds|inherit|diff
//
// Each command opens the pool of its first argument, runs one
// VolumeManager operation and closes the pool (session.h).
#include <ctime>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "tools/volctl/commands.h"
#include "tools/volctl/output.h"
#include "tools/volctl/session.h"

namespace blockhaus::tools {
namespace {

// Opens the pool of `first` and checks that `second` names the same pool.
Result<std::unique_ptr<Session>> OpenForPair(const std::string& first, const std::string& second,
                                             std::string* a, std::string* b,
                                             const char* what,
                                             Access access = Access::kReadWrite) {
  BH_ASSIGN_OR_RETURN(auto pa, SplitPool(first));
  BH_ASSIGN_OR_RETURN(auto pb, SplitPool(second));
  if (pa.first != pb.first) {
    return BH_ERROR(kInvalidArgument, "cannot {} across pools ('{}' and '{}')", what, pa.first,
                    pb.first);
  }
  *a = pa.second;
  *b = pb.second;
  return OpenSession(pa.first, access);
}

std::string TimeText(uint64_t t) {
  std::time_t tt = static_cast<std::time_t>(t);
  char buf[64];
  std::strftime(buf, sizeof(buf), "%a %b %e %H:%M %Y", std::localtime(&tt));
  return buf;
}

struct HoldsArgs {
  std::vector<std::string> names;
  OutputFlags flags;
};

int RunHolds(const HoldsArgs& a) {
  Table table({"NAME", "TAG", "TIMESTAMP"});
  nlohmann::json rows = nlohmann::json::array();
  for (const std::string& full : a.names) {
    std::string name;
    auto s = OpenFor(full, &name, Access::kReadOnly);
    if (!s.ok()) return ReportError(s.status());
    if (Status st = volume::ValidateSnapshotName(name); !st.ok()) return ReportError(st);
    auto d = (*s)->vm->Get(name);
    if (!d.ok()) return ReportError(d.status());
    for (const auto& [tag, when] : d->holds) {
      std::string ts = a.flags.parsable ? std::to_string(when) : TimeText(when);
      table.AddRow({full, tag, ts});
      rows.push_back({{"name", full}, {"tag", tag}, {"timestamp", when}});
    }
  }
  std::fputs(a.flags.json ? (nlohmann::json{{"holds", rows}}.dump(2) + "\n").c_str()
                          : table.Render(a.flags).c_str(), stdout);
  return 0;
}

struct DiffArgs {
  std::string from, to;
  OutputFlags flags;
};

int RunDiff(const DiffArgs& a) {
  std::string from, to;
  auto s = OpenForPair(a.from, a.to, &from, &to, "diff", Access::kReadOnly);
  if (!s.ok()) return ReportError(s.status());
  auto ranges = (*s)->vm->Diff(from, to);
  if (!ranges.ok()) return ReportError(ranges.status());
  Table table({"OFFSET", "LENGTH"});
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& r : *ranges) {
    table.AddRow({Bytes(r.offset, a.flags), Bytes(r.length, a.flags)});
    rows.push_back({{"offset", r.offset}, {"length", r.length}});
  }
  std::fputs(a.flags.json ? (nlohmann::json{{"from", a.from}, {"to", a.to}, {"ranges", rows}}
                                 .dump(2) + "\n").c_str()
                          : table.Render(a.flags).c_str(), stdout);
  return 0;
}

// Adds `volctl NAME TAG SNAPSHOT` for hold and release.
void AddTagCommand(CLI::App& app, Action* action, const char* name, const char* help,
                   Status (volume::VolumeManager::*op)(const std::string&, const std::string&)) {
  struct TagArgs { std::string tag, snap; };
  auto ta = std::make_shared<TagArgs>();
  CLI::App* cmd = app.add_subcommand(name, help);
  cmd->add_option("tag", ta->tag, "TAG")->required();
  cmd->add_option("snapshot", ta->snap, "POOL/VOLUME@SNAPSHOT")->required();
  cmd->callback([=] {
    *action = [=] {
      std::string snap;
      auto s = OpenFor(ta->snap, &snap);
      if (!s.ok()) return ReportError(s.status());
      return Finish(**s, ((*s)->vm->*op)(ta->tag, snap));
    };
  });
}

}  // namespace

void AddDatasetCommands(CLI::App& app, Action* action) {
  struct RenameArgs { std::string from, to; };
  auto rn = std::make_shared<RenameArgs>();
  CLI::App* rename = app.add_subcommand("rename", "rename a volume (with its snapshots) or a snapshot");
  rename->add_option("from", rn->from, "POOL/VOLUME or POOL/VOLUME@SNAPSHOT")->required();
  rename->add_option("to", rn->to, "POOL/NEWVOLUME or POOL/VOLUME@NEWSNAPSHOT")->required();
  rename->callback([=] {
    *action = [=] {
      std::string from, to;
      auto s = OpenForPair(rn->from, rn->to, &from, &to, "rename");
      if (!s.ok()) return ReportError(s.status());
      return Finish(**s, (*s)->vm->Rename(from, to));
    };
  });

  auto pr = std::make_shared<std::string>();
  CLI::App* promote = app.add_subcommand("promote", "make a clone own its origin's history");
  promote->add_option("clone", *pr, "POOL/CLONE")->required();
  promote->callback([=] {
    *action = [=] {
      std::string name;
      auto s = OpenFor(*pr, &name);
      if (!s.ok()) return ReportError(s.status());
      return Finish(**s, (*s)->vm->Promote(name));
    };
  });

  AddTagCommand(app, action, "hold", "hold a snapshot (it cannot be destroyed)",
                &volume::VolumeManager::Hold);
  AddTagCommand(app, action, "release", "release a hold on a snapshot",
                &volume::VolumeManager::Release);

  auto ha = std::make_shared<HoldsArgs>();
  CLI::App* holds = app.add_subcommand("holds", "list the holds of snapshots");
  holds->add_flag("-H", ha->flags.scripted, "scripted: no header, tab-separated");
  holds->add_flag("-p", ha->flags.parsable, "exact numbers (timestamps in seconds)");
  holds->add_flag("-j,--json", ha->flags.json, "JSON output");
  holds->add_option("snapshots", ha->names, "POOL/VOLUME@SNAPSHOT...")->required();
  holds->callback([=] { *action = [=] { return RunHolds(*ha); }; });

  struct InheritArgs { std::string prop, name; };
  auto ia = std::make_shared<InheritArgs>();
  CLI::App* inherit = app.add_subcommand("inherit", "return a property to its default");
  inherit->add_option("property", ia->prop, "PROPERTY")->required();
  inherit->add_option("name", ia->name, "POOL/VOLUME[@SNAPSHOT]")->required();
  inherit->callback([=] {
    *action = [=] {
      std::string name;
      auto s = OpenFor(ia->name, &name);
      if (!s.ok()) return ReportError(s.status());
      return Finish(**s, (*s)->vm->InheritProperty(name, ia->prop));
    };
  });

  auto df = std::make_shared<DiffArgs>();
  CLI::App* diff = app.add_subcommand("diff", "changed byte ranges between two views");
  diff->add_flag("-H", df->flags.scripted, "scripted: no header, tab-separated");
  diff->add_flag("-p", df->flags.parsable, "exact numbers");
  diff->add_flag("-j,--json", df->flags.json, "JSON output");
  diff->add_option("from", df->from, "POOL/VOLUME@SNAPSHOT")->required();
  diff->add_option("to", df->to, "POOL/VOLUME@LATER, POOL/VOLUME or POOL/CLONE")->required();
  diff->callback([=] { *action = [=] { return RunDiff(*df); }; });
}

}  // namespace blockhaus::tools

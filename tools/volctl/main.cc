// volctl: manage Blockhaus pools, volumes and exports, and run the daemon.
//
// Every command but `serve` first asks a running daemon to run it (see
// control.h); with no daemon it runs here.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "tools/volctl/commands.h"
#include "tools/volctl/control.h"

namespace blockhaus::tools {

void RequireKnownSubcommand(CLI::App* group, Action* action) {
  group->require_subcommand(0, 1);
  group->allow_extras();
  group->final_callback([group, action] {
    if (!group->get_subcommands().empty()) return;
    std::string choices;
    for (const CLI::App* sub : group->get_subcommands({})) {
      choices += (choices.empty() ? "" : ", ") + sub->get_name();
    }
    std::vector<std::string> extra = group->remaining();
    std::string what = extra.empty() ? "missing " + group->get_name() + " subcommand"
                                     : "unknown " + group->get_name() + " subcommand '" +
                                           extra.front() + "'";
    *action = [what, choices] {
      std::fprintf(stderr, "volctl: %s (choose from %s)\n", what.c_str(), choices.c_str());
      return 2;
    };
  });
}

int RunCommandLine(const std::vector<std::string>& args) {
  CLI::App app{"volctl: Blockhaus pools, volumes and iSCSI exports", "volctl"};
  app.require_subcommand(1);
  Action action;
  AddPoolCommands(app, &action);
  AddVolumeCommands(app, &action);
  AddDatasetCommands(app, &action);
  AddExportCommands(app, &action);
  AddServeCommand(app, &action);
  // CLI11 wants argv in reverse order when given a vector.
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;  // usage errors exit 2, as zfs does
  }
  return action ? action() : 2;
}

}  // namespace blockhaus::tools

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args.front() != "serve") {
    if (auto code = blockhaus::tools::ForwardToDaemon(argc, argv)) return *code;
    // For scripts that must not touch a pool behind a dead daemon's back.
    if (const char* only = std::getenv("VOLCTL_REQUIRE_DAEMON"); only && *only == '1') {
      std::fprintf(stderr, "volctl: no daemon answers on %s (VOLCTL_REQUIRE_DAEMON=1)\n",
                   blockhaus::tools::ControlSocketPath().c_str());
      return 1;
    }
  }
  return blockhaus::tools::RunCommandLine(args);
}

// volctl: manage Blockhaus pools (and, later, volumes and exports).
#include <cstdio>

#include <CLI/CLI.hpp>

#include "tools/volctl/commands.h"

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

}  // namespace blockhaus::tools

int main(int argc, char** argv) {
  CLI::App app{"volctl: Blockhaus pools, volumes and iSCSI exports", "volctl"};
  app.require_subcommand(1);
  blockhaus::tools::Action action;
  blockhaus::tools::AddPoolCommands(app, &action);
  blockhaus::tools::AddVolumeCommands(app, &action);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;  // usage errors exit 2, as zfs does
  }
  return action ? action() : 2;
}

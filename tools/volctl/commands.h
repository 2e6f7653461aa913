// Subcommand registration. Each Add*Commands adds its subcommands to the
// parser and stores the action to run in *action when one is chosen.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace blockhaus::tools {

using Action = std::function<int()>;

void AddPoolCommands(CLI::App& app, Action* action);
void AddVolumeCommands(CLI::App& app, Action* action);
void AddDatasetCommands(CLI::App& app, Action* action);
void AddExportCommands(CLI::App& app, Action* action);
void AddServeCommand(CLI::App& app, Action* action);

// Parses and runs one command line (without the program name); returns the
// exit code. The daemon runs forwarded commands through it.
int RunCommandLine(const std::vector<std::string>& args);

// Makes `group` insist on one of its subcommands, and name the choices when
// it gets something else ("unknown pool subcommand 'x' (choose from ...)").
void RequireKnownSubcommand(CLI::App* group, Action* action);

}  // namespace blockhaus::tools

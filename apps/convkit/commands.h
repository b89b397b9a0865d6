// Sub-commands of the `convkit` tool. Each lives in its own cmd_*.cpp and registers itself with a
// static CommandRegistrar, so adding a command never touches main.cpp:
//
//   static const CommandRegistrar reg(/*order=*/10, [](CLI::App& app) {
//     auto* cmd = app.add_subcommand("demo", "Replay the notebook");
//     ...; cmd->callback([=] { ...; });
//   });
//
// Callbacks report bad input by throwing convkit::Error (or CLI::ValidationError); main prints the
// message on stderr and exits with status 2. Commands write files only after all computation
// succeeded, and only atomically (convkit::save_npy does), so no partial output is ever left
// behind.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>

namespace convkit::cli {

using CommandSetup = std::function<void(CLI::App& app)>;

struct CommandRegistrar {
  CommandRegistrar(int order, CommandSetup setup);
};

}  // namespace convkit::cli

// convkit — the command-line tool. See `convkit --help`.
#include <convkit/convkit.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <iostream>
#include <utility>
#include <vector>

#include "commands.h"

namespace convkit::cli {

static std::vector<std::pair<int, CommandSetup>>& registry() {
  static std::vector<std::pair<int, CommandSetup>> commands;
  return commands;
}

CommandRegistrar::CommandRegistrar(int order, CommandSetup setup) {
  registry().emplace_back(order, std::move(setup));
}

}  // namespace convkit::cli

int main(int argc, char** argv) {
  CLI::App app{
      "convkit: 2-D convolution from 'Convolutions for Images' (D2L 7.2) as a C++ library and "
      "tool.\n"
      "Run `convkit demo` to replay the notebook; `convkit COMMAND --help` for each command.",
      "convkit"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "convkit 0.1.0");
  auto& commands = convkit::cli::registry();
  std::stable_sort(commands.begin(), commands.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [order, setup] : commands) setup(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "convkit: " << e.what() << "\n";
    std::cerr << "Run with --help for the valid options.\n";
    return 2;
  } catch (const convkit::Error& e) {
    std::cerr << "convkit: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "convkit: " << e.what() << "\n";
    return 2;
  }
  return 0;
}

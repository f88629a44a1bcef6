#include <cstdio>

#include "cli/commands.h"

namespace pensieve::cli {

void RegisterVersion(CLI::App& app) {
  auto* cmd = app.add_subcommand("version", "Print the version");
  cmd->callback([] { std::printf("pensieve 0.1.0\n"); });
}

}  // namespace pensieve::cli

#pragma once
// Each `pensieve` subcommand lives in its own cmd_*.cpp and registers itself here.
// Contract: Register* adds a subcommand to `app` and sets its callback; the callback returns normally on
// success and throws pensieve::Error (printed as "error: ..." with exit code 1) on bad input.
#include <CLI/CLI.hpp>

namespace pensieve::cli {

void RegisterVersion(CLI::App& app);
void RegisterInfo(CLI::App& app);
void RegisterQuantize(CLI::App& app);
void RegisterRandomModel(CLI::App& app);
void RegisterGenerate(CLI::App& app);
void RegisterBench(CLI::App& app);
void RegisterBenchKernels(CLI::App& app);
void RegisterTemplate(CLI::App& app);
void RegisterTokenize(CLI::App& app);
void RegisterDetokenize(CLI::App& app);
void RegisterServe(CLI::App& app);

}  // namespace pensieve::cli

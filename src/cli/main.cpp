// pensieve: one binary, subcommands registered by the cmd_*.cpp files.
#include <cstdio>
#include <exception>

#include "cli/commands.h"
#include "util/error.h"

int main(int argc, char** argv) {
  CLI::App app{"pensieve: a local LLM inference server"};
  app.require_subcommand(1);
  pensieve::cli::RegisterVersion(app);
  pensieve::cli::RegisterInfo(app);
  pensieve::cli::RegisterQuantize(app);
  pensieve::cli::RegisterRandomModel(app);
  pensieve::cli::RegisterGenerate(app);
  pensieve::cli::RegisterBench(app);
  pensieve::cli::RegisterBenchKernels(app);
  pensieve::cli::RegisterTemplate(app);
  pensieve::cli::RegisterTokenize(app);
  pensieve::cli::RegisterDetokenize(app);
  pensieve::cli::RegisterServe(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const pensieve::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    // Input errors are pensieve::Errors with a message naming the input; anything else is our defect, but
    // still one line and exit status 1, never an abort.
    std::fprintf(stderr, "error: internal: %s\n", e.what());
    return 1;
  }
  return 0;
}

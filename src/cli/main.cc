// The `distopt` command: parses argv once with CLI11 (help for every
// subcommand, --version, typed and range-checked options, unknown arguments
// rejected), runs the chosen subcommand, and turns a failed Status into a
// message on stderr and a non-zero exit code.
#include <malloc.h>

#include <cstdio>
#include <string>

#include "cli/commands.h"

#ifndef DISTOPT_VERSION
#define DISTOPT_VERSION "unknown"
#endif

int main(int argc, char** argv) {
  // Every step receives and frees one buffer per model slice (MBs each).
  // glibc would serve them with fresh mmaps: page faults and zeroing of every
  // page, every step. Keep them on the heap and the freed memory mapped.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  CLI::App app{"distopt: a parameter server for data-parallel training", "distopt"};
  app.set_version_flag("--version", std::string("distopt ") + DISTOPT_VERSION);
  app.require_subcommand(1);
  distopt::Action action;
  distopt::AddTrainCommand(app, &action);
  distopt::AddRunCommand(app, &action);
  distopt::AddEvalCommand(app, &action);
  distopt::AddKeygenCommand(app, &action);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (!action) return 0;
  distopt::Status s = action();
  if (!s.ok()) {
    std::string cmd = app.get_subcommands().empty() ? "" : app.get_subcommands()[0]->get_name();
    std::fprintf(stderr, "distopt %s: %s\n", cmd.c_str(), s.ToString().c_str());
    return 1;
  }
  return 0;
}

// The nsfork command line: parse against the verb's own option table, then run that verb.
//
// Exit codes of `run` follow `docker run` / `env` (base/exit_codes.h): the container's status
// (its exit code, or 128+N when killed by signal N); 125 when nsfork itself failed or was used
// wrongly; 126 when the command cannot be executed; 127 when it was not found.
#include "cli/options.hpp"
#include "cli/verbs.hpp"

#include <cstdio>
#include <string>
#include <vector>

namespace {

// Calls the verb function for the options parsed.
struct Dispatch {
    int operator()(const nsfork::cli::RunOptions& o) const { return nsfork::cli::run(o); }
    int operator()(const nsfork::cli::ServeOptions& o) const { return nsfork::cli::serve(o); }
    int operator()(const nsfork::cli::ListOptions& o) const { return nsfork::cli::list(o); }
    int operator()(const nsfork::cli::StatusOptions& o) const { return nsfork::cli::status(o); }
    int operator()(const nsfork::cli::WaitOptions& o) const { return nsfork::cli::wait(o); }
    int operator()(const nsfork::cli::KillOptions& o) const { return nsfork::cli::kill(o); }
    int operator()(const nsfork::cli::DestroyOptions& o) const { return nsfork::cli::destroy(o); }
};

} // namespace

int main(int argc, char** argv) {
    auto line = nsfork::cli::parse_command_line(std::vector<std::string>(argv, argv + argc));
    std::fputs(line.out.c_str(), stdout);
    std::fputs(line.err.c_str(), stderr);
    if (!line.verb) return line.exit_code;
    std::fflush(stdout);
    return std::visit(Dispatch{}, *line.verb);
}

// nsfork-oci: an OCI runtime with runc's command line over the node's nsfork server
// (ENGINES.md). Parse, run the verb; an error is one line, as runc's: on stderr and in --log,
// exit status 1.
#include "oci/commands.hpp"
#include "oci/front_link.hpp"
#include "oci/log.hpp"
#include "oci/options.hpp"
#include "oci/warm.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

using namespace nsfork::oci;

// Calls the verb function for the options parsed.
struct Dispatch {
    const Context& ctx;
    nsfork::Result<int> operator()(const CreateOptions& o) const { return create(ctx, o); }
    nsfork::Result<int> operator()(const RunOptions& o) const { return run(ctx, o); }
    nsfork::Result<int> operator()(const StartOptions& o) const { return start(ctx, o); }
    nsfork::Result<int> operator()(const StateOptions& o) const { return state(ctx, o); }
    nsfork::Result<int> operator()(const KillOptions& o) const { return kill(ctx, o); }
    nsfork::Result<int> operator()(const DeleteOptions& o) const { return remove(ctx, o); }
    nsfork::Result<int> operator()(const ExecOptions& o) const { return exec(ctx, o); }
    nsfork::Result<int> operator()(const PsOptions& o) const { return ps(ctx, o); }
    nsfork::Result<int> operator()(const PauseOptions& o) const { return pause(ctx, o); }
    nsfork::Result<int> operator()(const ResumeOptions& o) const { return resume(ctx, o); }
    nsfork::Result<int> operator()(const FeaturesOptions& o) const { return features(ctx, o); }
};

// What a warm runtime serves (warm.hpp): the verbs an engine calls on every container, for the
// server it was started for, without descriptors to preserve (a request carries stdio alone).
bool warm_serves(const CommandLine& line) {
    if (!line.verb || !line.err.empty() || line.global.server_socket != warm::served_socket()) return false;
    if (const auto* create = std::get_if<CreateOptions>(&*line.verb)) return create->preserve_fds == 0;
    if (const auto* run = std::get_if<RunOptions>(&*line.verb)) return run->create.preserve_fds == 0;
    return std::holds_alternative<StartOptions>(*line.verb) || std::holds_alternative<StateOptions>(*line.verb) ||
           std::holds_alternative<KillOptions>(*line.verb) || std::holds_alternative<DeleteOptions>(*line.verb);
}

// Parses and runs one command line; its exit code. A warm runtime (warm.hpp) serves only what
// it may: anything else goes back to its front, for the full program to run.
int run_command(const std::vector<std::string>& argv) {
    CommandLine line = parse_command_line(argv, std::getenv("NSFORK_SOCKET"));
    if (nsfork::oci::front::link() && !warm_serves(line)) return warm::kFallback;
    const Log log(line.global);
    std::fputs(line.out.c_str(), stdout);
    if (!line.err.empty()) {
        log.error(line.err.substr(0, line.err.find_last_not_of('\n') + 1));
        return line.exit_code;
    }
    if (!line.verb) return line.exit_code;
    const Context ctx{line.global, log};
    auto result = std::visit(Dispatch{ctx}, *line.verb);
    const auto* front = nsfork::oci::front::link();
    if (front && front->fallback_wanted()) return warm::kFallback;
    if (front) log.debug("served by warm runtime " + std::to_string(::getpid()) + " for front " + std::to_string(front->front_pid()));
    if (!result) {
        log.error(result.error().message);
        return 1;
    }
    return *result;
}

} // namespace

int main(int argc, char** argv) {
    if (argc == 3 && std::strcmp(argv[1], warm::kKeeperFlag) == 0) return warm::keep(argv[2], run_command);
    return run_command(std::vector<std::string>(argv, argv + argc));
}

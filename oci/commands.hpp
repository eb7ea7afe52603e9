// nsfork-oci's verbs: thin functions over the state (state.hpp), the container's process
// (setup.hpp), its cgroups (resources.hpp) and the node's server (nsfork/client.hpp). Each
// returns the exit code, or the error main() prints as runc does and exits 1 with.
#pragma once

#include "nsfork/error.hpp"
#include "oci/log.hpp"
#include "oci/options.hpp"

namespace nsfork::oci {

// What every verb gets: the global flags and the log.
struct Context {
    const GlobalOptions& global;
    const Log& log;
};

Result<int> create(const Context& ctx, const CreateOptions& o);
Result<int> start(const Context& ctx, const StartOptions& o);
Result<int> run(const Context& ctx, const RunOptions& o);
Result<int> remove(const Context& ctx, const DeleteOptions& o); // `delete`
Result<int> state(const Context& ctx, const StateOptions& o);
Result<int> kill(const Context& ctx, const KillOptions& o);
Result<int> exec(const Context& ctx, const ExecOptions& o);
Result<int> ps(const Context& ctx, const PsOptions& o);
Result<int> pause(const Context& ctx, const PauseOptions& o);
Result<int> resume(const Context& ctx, const ResumeOptions& o);
Result<int> features(const Context& ctx, const FeaturesOptions& o);

} // namespace nsfork::oci

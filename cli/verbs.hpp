// The verbs of the nsfork command line: each takes its parsed options (cli/options.hpp), calls
// the client library or the server, and returns the process's exit code.
#pragma once

#include "nsfork/error.hpp"
#include "cli/options.hpp"

#include <string>

namespace nsfork::cli {

int run(const RunOptions& o); // cli/run.cpp
int serve(const ServeOptions& o);
int list(const ListOptions& o);
int status(const StatusOptions& o);
int wait(const WaitOptions& o);
int kill(const KillOptions& o);
int destroy(const DestroyOptions& o);

// One line "nsfork: MESSAGE" on stderr; returns `code`.
int fail(int code, const std::string& message);
// The same for a library error: 126/127 when the command could not be executed, else 125.
int fail(const Error& e);

} // namespace nsfork::cli

#include "harness.hpp"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace nsfork::test {

std::string bin(const std::string& name) { return std::string(NSFORK_BIN_DIR) + "/" + name; }

void require_root() {
    if (::geteuid() == 0) return;
    const char* ci = std::getenv("CI");
    if (ci && std::string(ci) == "true") FAIL("this test needs root, and CI=true does not allow skipping it");
    std::fprintf(stderr, "SKIPPED: this test needs root (pid and mount namespaces need CAP_SYS_ADMIN)\n");
    std::fflush(stderr);
    std::_Exit(77);
}

namespace {

// The value of `r`, or the test fails with its error.
template <class T>
T required(Result<T> r) {
    if (!r) FAIL(r.error().message);
    return std::move(*r);
}

} // namespace

TempDir::TempDir() : dir_(required(testing::TempDir::create("test"))) {}

TempDir::~TempDir() = default;

ServerProcess::ServerProcess(std::vector<std::string> extra_args, std::vector<std::string> wrapper) {
    std::vector<std::string> args;
    // ctest runs the suite twice: with the warm pool (the default) and without it.
    if (const char* pool = std::getenv("NSFORK_TEST_WARM_POOL")) args.insert(args.end(), {"--warm-pool", pool});
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    serve_.emplace(required(testing::ServeProcess::start(bin("nsfork"), args, std::move(wrapper))));
}

ServerProcess::~ServerProcess() = default;

Client ServerProcess::connect() const { return required(serve_->connect()); }

Pipe::Pipe() {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    read.reset(fds[0]);
    write.reset(fds[1]);
}

RunResult run(Client& client, std::vector<std::string> argv, std::vector<std::string> env) {
    if (env.empty()) env = {kPath};
    Pipe out;
    LaunchOptions o;
    o.argv = std::move(argv);
    o.env = std::move(env);
    o.stdio = {-1, out.write.get(), out.write.get()};
    auto ct = client.launch(o);
    REQUIRE(ct);
    out.write.reset();
    RunResult r;
    r.out = read_all(out.read.get());
    auto status = client.wait(ct->id());
    REQUIRE(status);
    r.status = *status;
    auto gone = client.destroy(ct->id());
    REQUIRE(gone);
    r.info = *gone;
    return r;
}

ProcessResult run_process(const std::vector<std::string>& argv) { return required(testing::run_process(argv)); }

testing::RawConnection raw_connection(const std::string& socket) { return required(testing::RawConnection::connect(socket)); }

LaunchOptions command(std::string id, std::vector<std::string> argv) {
    LaunchOptions o;
    o.id = std::move(id);
    o.argv = std::move(argv);
    o.env = {kPath};
    return o;
}

Container launch_with(Client& client, const std::string& id, std::vector<std::string> argv) {
    return required(client.launch(command(id, std::move(argv))));
}

} // namespace nsfork::test

// A minimal agent on the blocking client: connects to a running `nsfork serve`, launches
// `sh -c 'exit 7'` in a container of its own on our stdio, waits for it, checks its exit status
// and destroys it, saying what happened.
//
//   agent SOCKET    exit status 0 when every step went as expected, 1 otherwise
#include <nsfork/client.hpp>

#include <cstdio>

namespace {

int fail(const char* step, const nsfork::Error& error) {
    std::fprintf(stderr, "agent: %s failed: %s\n", step, error.message.c_str());
    return 1;
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: agent SOCKET\n");
        return 2;
    }
    // [readme:sync]
    auto client = nsfork::Client::connect(argv[1]);
    if (!client) return fail("connect", client.error());

    nsfork::LaunchOptions options;
    options.argv = {"sh", "-c", "exit 7"};
    options.env = {"PATH=/usr/bin:/bin"};
    options.stdio = {0, 1, 2};                        // the container's stdin, stdout, stderr
    auto container = client->launch(options);         // returns once the command was exec'd
    if (!container) return fail("launch", container.error());
    std::printf("launched %s: pid %d (pid 1 of its own pid namespace)\n",
                container->id().c_str(), static_cast<int>(container->pid()));

    auto status = client->wait(container->id());      // blocks until it ended
    if (!status) return fail("wait", status.error());
    std::printf("%s exited with %d\n", container->id().c_str(), status->shell_code());

    auto gone = client->destroy(container->id());     // returns once every process is gone
    if (!gone) return fail("destroy", gone.error());
    // [/readme]
    if (status->code != 7 || status->signal != 0) {
        std::fprintf(stderr, "agent: expected exit status 7, got %d\n", status->shell_code());
        return 1;
    }
    std::printf("destroyed %s\n", gone->id.c_str());
    return 0;
}

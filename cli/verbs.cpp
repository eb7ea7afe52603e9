#include "cli/verbs.hpp"

#include "base/exit_codes.h"
#include "base/userns.hpp"
#include "cli/json.hpp"
#include "nsfork/client.hpp"
#include "server/activation.hpp"
#include "server/server.hpp"

#include <fmt/format.h>

namespace nsfork::cli {

int fail(int code, const std::string& message) {
    fmt::print(stderr, "nsfork: {}\n", message);
    return code;
}

int fail(const Error& e) {
    int code = NSFORK_EXIT_FAILED;
    if (e.code == Errc::exec_failed)
        code = (e.sys_errno == ENOENT || e.sys_errno == ENOTDIR) ? NSFORK_EXIT_NOT_FOUND : NSFORK_EXIT_CANNOT_EXECUTE;
    return fail(code, e.message);
}

int serve(const ServeOptions& o) {
    // Socket activation first: the passed fds become close-on-exec and LISTEN_* leave our
    // environment before anything could inherit them.
    auto activated = take_activated_socket();
    if (!activated) return fail(activated.error());
    // Rootless: a user namespace of our own first (a no-op for root), before any thread exists.
    if (auto ok = enter_user_namespace(o.map_current_user ? UserMapping::current_user : UserMapping::root); !ok)
        return fail(ok.error());
    ServerOptions so;
    so.socket_path = o.socket;
    if (*activated) {
        // Given both, --socket only checks which socket the service manager passed: the
        // server never binds a second one.
        ActivatedSocket& s = **activated;
        if (!o.socket.empty())
            if (std::string why = socket_disagreement(o.socket, s.path); !why.empty()) return fail(NSFORK_EXIT_FAILED, why);
        so.socket_path = s.path;
        so.listen_fd = s.fd.release();
    } else if (o.socket.empty()) {
        return fail(NSFORK_EXIT_FAILED, "serve: --socket PATH is required (LISTEN_FDS is set, but LISTEN_PID does not "
                                        "name this process: no socket was passed to it)");
    }
    so.log_level = o.log_level;
    if (o.isolation) {
        auto iso = parse_isolation(*o.isolation);
        if (!iso) return fail(iso.error());
        so.isolation = *iso;
    }
    so.disallow_sharing_agent_pidns = o.disallow_sharing;
    so.cgroup_root = o.cgroup_root;
    if (o.warm_pool) so.warm_pool = *o.warm_pool;
    so.warm_runtimes = !o.no_warm_runtimes;
    if (o.max_request_bytes) so.max_request_bytes = *o.max_request_bytes;
    return run_server(so);
}

int status(const StatusOptions& o) {
    auto client = Client::connect(o.socket);
    if (!client) return fail(client.error());
    auto s = client->status();
    if (!s) return fail(s.error());
    if (o.json) fmt::print("{}\n", to_json(*s));
    else
        fmt::print("server pid {}\nwarm pool: {} of {} ready, {} warming, {} served, {} discarded\n", s->pid,
                   s->pool_ready, s->pool_size, s->pool_warming, s->pool_served, s->pool_discarded);
    return 0;
}

int list(const ListOptions& o) {
    auto client = Client::connect(o.socket);
    if (!client) return fail(client.error());
    auto containers = client->list();
    if (!containers) return fail(containers.error());
    if (o.json) {
        fmt::print("{}\n", to_json(*containers));
        return 0;
    }
    // HELD: a hold container (its PID is its holder's, its main process the runtime's).
    fmt::print("{:<32} {:>8} {:>12} {:<10} {:<6} {:<4} {}\n", "ID", "PID", "PIDNS", "STATE", "STATUS", "HELD",
               "CGROUP");
    for (const ContainerInfo& c : *containers)
        fmt::print("{:<32} {:>8} {:>12} {:<10} {:<6} {:<4} {}\n", c.id, c.pid, c.pidns, to_string(c.state),
                   c.exit ? std::to_string(c.exit->shell_code()) : "-", c.held ? "yes" : "-",
                   c.cgroup.empty() ? "-" : c.cgroup);
    return 0;
}

int wait(const WaitOptions& o) {
    auto client = Client::connect(o.socket);
    if (!client) return fail(client.error());
    auto s = client->wait(o.id);
    if (!s) return fail(s.error());
    return s->shell_code();
}

int kill(const KillOptions& o) {
    auto client = Client::connect(o.socket);
    if (!client) return fail(client.error());
    if (auto ok = client->kill(o.id, o.signal, o.all); !ok) return fail(ok.error());
    return 0;
}

int destroy(const DestroyOptions& o) {
    auto client = Client::connect(o.socket);
    if (!client) return fail(client.error());
    auto gone = client->destroy(o.id);
    if (!gone) return fail(gone.error());
    if (o.json) fmt::print("{}\n", to_json(*gone));
    return 0;
}

} // namespace nsfork::cli

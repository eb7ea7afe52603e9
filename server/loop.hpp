// The Server: one io_context, its connections, the registry; its request handlers (server.cpp),
// containers' life (lifecycle.cpp) and start (embedding.cpp). Included by those only (Asio).
#pragma once

#include <utility> // before Asio: Boost 1.74 + GCC 12 in C++20 needs std::exchange declared

#include "protocol/nsfork_generated.h"
#include "protocol/status_table.hpp"
#include "server/connection.hpp"
#include "server/container.hpp"
#include "server/device_programs.hpp"
#include "server/launch.hpp"
#include "server/listener.hpp"
#include "server/pool.hpp"
#include "server/preflight.hpp"
#include "server/server.hpp"
#include "server/spare_namespaces.hpp"
#include "server/statistics.hpp"

#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <unistd.h>

#include <map>
#include <memory>
#include <optional>
#include <string>

namespace nsfork {

class Server final : public ConnectionOwner {
public:
    explicit Server(const ServerOptions& options) : opts_(options), signals_(io_) {}

    // Checks the host, sets up and starts listening; on failure, tells `initial` why (seq 0).
    Result<void> start(UniqueFd initial);
    int run() {
        io_.run();
        return 0;
    }

    void handle(Connection& conn, Datagram& datagram) override;
    void connection_closed(std::uint64_t id) override;

private:
    using Record = std::shared_ptr<ContainerRecord>;
    void add_connection(UniqueFd fd);

    void on_hello(Connection& c, std::uint32_t seq, bool with_table, bool with_status);
    void fill_status(ServerStatus& status) const;
    void on_launch(Connection& c, std::uint32_t seq, const wire::Launch& req, std::vector<UniqueFd>& fds,
                   LaunchStatistics::Handler& timer);
    void on_wait(Connection& c, std::uint32_t seq, const wire::Wait& req);
    void on_kill(Connection& c, std::uint32_t seq, const wire::Kill& req);
    Result<void> signal_all(ContainerRecord& c, int sig);
    void inits_of(const ContainerRecord& c, std::vector<pid_t>& out) const;
    void on_destroy(Connection& c, std::uint32_t seq, const wire::Destroy& req);
    void on_list(Connection& c, std::uint32_t seq);
    void on_attach(Connection& c, std::uint32_t seq, const wire::Attach& req);
    void on_adopt(Connection& c, std::uint32_t seq, const wire::Adopt& req, std::vector<UniqueFd>& fds);
    Result<UniqueFd> adoptable(const ContainerRecord& c, int pidfd) const;
    void watch_main(const Record& c);
    Record pidns_owner(ino_t pidns) const;

    Result<Target> target(const wire::Launch& req, int join_fd, bool hold);
    std::string auto_id();
    std::string next_cgroup_name();
    Result<Cgroup> new_leaf(const std::string& parent);
    void spare_leaves_soon();
    void spare_namespaces_soon(std::chrono::nanoseconds delay = kNamespaceIdle);
    void publish(const ContainerRecord& c);
    void watch_report(const Record& c);
    void watch_exit(const Record& c);
    void watch_emptied(const Record& c);
    bool still_populated(const Record& c);
    void finish_launch(ContainerRecord& c, Result<void> outcome, std::uint64_t start = LaunchStatistics::now_ns());
    void on_exit(const Record& c, ExitStatus status);
    void kill_one(ContainerRecord& c);
    void destroy(ContainerRecord& c);
    void settle_up(const std::string& id);
    void forget_one(ContainerRecord& c);

    void reply(const Waiter& w, const flatbuffers::FlatBufferBuilder& fbb, std::span<const int> fds = {});
    void reply_error(const Waiter& w, const Error& e);

    void shutdown(const char* why);
    void maybe_stop();

    // nsfork-oci's warm runtimes (oci/warm.hpp): their keeper, our child, started with the server
    // and killed with it (embedding.cpp).
    void start_warm_runtimes();
    void stop_warm_runtimes();
    std::optional<boost::asio::posix::stream_descriptor> keeper_; // its pidfd

    // One thread, and nothing posts from another: no locking in the scheduler or the reactor.
    boost::asio::io_context io_{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE};
    ServerOptions opts_;
    HostFacts host_;
    CgroupRoot cgroups_;
    ServerFacts facts_; // for placement; its views point into host_, cgroups_ and opts_
    std::optional<StatusTableWriter> table_;
    std::optional<WarmPool> pool_;
    std::optional<Listener> listener_;
    boost::asio::signal_set signals_;
    std::map<std::uint64_t, std::shared_ptr<Connection>> conns_;
    Registry registry_;
    Registry::Kill kill_ = [this](ContainerRecord& c) { kill_one(c); };
    Registry::OnForget forget_ = [this](ContainerRecord& c) { forget_one(c); };
    LaunchStatistics statistics_;
    flatbuffers::FlatBufferBuilder hello_fbb_{256};
    std::uint64_t next_conn_ = 1;
    std::uint64_t next_auto_id_ = 1;
    const pid_t own_pid_ = ::getpid(); // the server is its own process from construction on
    const std::string auto_id_prefix_ = "nsfork-" + std::to_string(own_pid_) + "-";
    std::uint64_t next_cgroup_ = 1;
    // Empty leaves made ahead, below the root, for cold launches: a mkdir off their path. Made
    // when the server is quiet, as the warm pool refills; never reused (a leaf's statistics
    // must start at zero with its container).
    static constexpr std::size_t kSpareLeaves = 2;
    std::vector<Cgroup> spare_leaves_;
    SpareNamespaces spare_namespaces_; // for hold launches, made when the server is idle
    static constexpr std::chrono::milliseconds kNamespaceIdle{2};
    boost::asio::steady_timer namespaces_timer_{io_};
    bool namespaces_armed_ = false;
    std::uint64_t last_activity_ns_ = 0; // the last request, or container's end (LaunchStatistics::now_ns)
    // Hold containers whose runtime is setting up their process (launched, not adopted): while
    // there are any, neither the pool refills nor namespaces are made, which would compete with
    // that set-up (an engine's create) for the CPUs and the kernel's locks.
    // A runtime still at it after kSetUpGrace (stopped, or very slow) no longer holds them back.
    std::size_t holds_setting_up_ = 0;
    static constexpr std::chrono::milliseconds kSetUpGrace{200};
    boost::asio::steady_timer set_up_timer_{io_};
    void set_up(ContainerRecord& c);
    std::optional<DevicePrograms> device_programs_; // hold launches' device programs, loaded
    boost::asio::steady_timer spare_timer_{io_};
    bool spare_armed_ = false;
    std::size_t live_ = 0; // containers not yet reaped
    bool stopping_ = false;
    std::size_t launches_in_flight_ = 0; // answered Launch requests pending their exec report
};

} // namespace nsfork

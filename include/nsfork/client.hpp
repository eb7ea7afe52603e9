// The client library agents link (nsfork::client): a blocking client of one nsfork server.
// nsfork/async_client.hpp is its asynchronous counterpart on Boost.Asio.
//
// One Client is one connection; it is not thread-safe (give each thread its own, or lock).
#pragma once

#include "nsfork/export.hpp"
#include "nsfork/error.hpp"
#include "nsfork/exit_status.hpp"
#include "nsfork/fd.hpp"
#include "nsfork/status_table.hpp"
#include "nsfork/types.hpp"

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace flatbuffers {
class FlatBufferBuilder;
}

namespace nsfork {

struct LaunchOptions {
    std::string id;                       // empty: the server picks one
    std::vector<std::string> argv;        // the command, argv[0] looked up in env's PATH
    std::vector<std::string> env;         // exactly the command's environment
    std::string cwd;                      // empty: "/"
    std::array<int, 3> stdio{-1, -1, -1}; // fds for the container's 0, 1, 2 (-1: /dev/null)
    std::string parent;                   // nest inside this container
    bool share_pid_namespace = false;     // share the parent's (top-level: the server's) pidns
    int join_pidns_fd = -1;               // join this pid namespace fd, or a pidfd's namespace
    bool tie_to_connection = false;       // destroyed when this client's connection closes
    std::uint32_t pid_max = 0;            // bound its processes: its own pid namespace's pid_max
    // The command's process (see LaunchSpec in launcher/spawn.hpp).
    bool tty = false;                     // a pseudo-terminal of its own: Container::terminal()
                                          // is its master (stdio are then the terminal's)
    std::uint16_t tty_rows = 0;           // with tty: its window size before the command starts
    std::uint16_t tty_cols = 0;           // (0: unset; follow changes with TIOCSWINSZ on the master)
    bool kill_group = false;              // signals to the container reach the command's group
    std::uint64_t signal_mask = 0;        // the command's blocked signals (bit N-1: signal N)
    std::uint64_t ignored_signals = 0;    // signals the command starts ignoring (bit N-1)
    std::optional<uid_t> uid;             // the command's user and group ...
    std::optional<gid_t> gid;
    std::optional<std::vector<gid_t>> groups; // ... and supplementary groups
    std::vector<int> extra_fds;           // the command's fds 3, 4, ... (--preserve-fds), at
                                          // most 11 (kMaxExtraFds, PROTOCOL.md)
    // A runtime-born container (the OCI front-end): namespaces and cgroup leaf with a holding
    // pid 1 that runs no command (argv empty, no command settings, no stdio). The Container's
    // pidfd is the holder's, its cgroup() the leaf. Tied to this connection until adopt().
    bool hold = false;
    std::string cgroup_name;              // its leaf's path below the server's container tree
                                          // ("": the server names it)
    // One request for the whole run: the server destroys the container once its init ended
    // and says so unasked; Client::ended() has its last description (no Wait, no Destroy).
    bool destroy_on_exit = false;
    // A hold launch's work the server takes off the client's path:
    std::vector<std::uint8_t> device_program; // a cgroup device program (struct bpf_insn[]),
                                          // loaded by the server (once for the same bytes):
                                          // Container::device_program(), for the client to attach
    std::uint32_t new_namespaces = 0;     // CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS the process
                                          // wants new: Container::namespaces() has those the
                                          // server had made ahead (the client makes the rest)
};

// What a hold launch's reply carries besides the holder and its leaf (LaunchOptions::
// device_program, new_namespaces).
struct HoldExtras {
    UniqueFd device_program;              // -1: none asked for, or a server before the field
    std::vector<UniqueFd> namespaces;     // fresh namespaces, net, ipc, uts in that order
};

// A launched container: its description and a pidfd of its init, owned by the caller.
// The pidfd can be polled (readable at exit) and signalled, not waited: status comes from wait().
// A tty launch also hands over its pseudo-terminal's master, which the server does not keep.
class Container {
public:
    Container(ContainerInfo info, UniqueFd pidfd, UniqueFd terminal = {}, UniqueFd cgroup = {},
              std::uint32_t end_seq = 0, HoldExtras extras = {})
        : info_(std::move(info)), pidfd_(std::move(pidfd)), terminal_(std::move(terminal)),
          cgroup_(std::move(cgroup)), end_seq_(end_seq), extras_(std::move(extras)) {}

    const std::string& id() const { return info_.id; }
    int pidfd() const { return pidfd_.get(); }
    pid_t pid() const { return info_.pid; }
    std::uint64_t pidns_inode() const { return info_.pidns; }
    const ContainerInfo& info() const { return info_; }
    UniqueFd release_pidfd() { return std::move(pidfd_); }
    // The master of the container's terminal (LaunchOptions::tty; -1 otherwise): what is written
    // to it is the command's input, what it reads is the command's output; its window size
    // (TIOCSWINSZ) is the command's. Once every holder closed it, the command gets SIGHUP.
    int terminal() const { return terminal_.get(); }
    UniqueFd release_terminal() { return std::move(terminal_); }
    // A hold container's cgroup v2 leaf, a directory fd (-1 without one): its process is born
    // into it (clone3 CLONE_INTO_CGROUP).
    int cgroup() const { return cgroup_.get(); }
    UniqueFd release_cgroup() { return std::move(cgroup_); }
    // Whether the server destroys it at its end and will say so (LaunchOptions::destroy_on_exit,
    // from a server that knows it): the Launch's seq, answered again then; 0 if not.
    std::uint32_t end_seq() const { return end_seq_; }
    // A hold container's device program, loaded (-1 if none came), and the namespaces made
    // ahead for its process (LaunchOptions::device_program, new_namespaces).
    int device_program() const { return extras_.device_program.get(); }
    const std::vector<UniqueFd>& namespaces() const { return extras_.namespaces; }

private:
    ContainerInfo info_;
    UniqueFd pidfd_;
    UniqueFd terminal_;
    UniqueFd cgroup_;
    std::uint32_t end_seq_ = 0;
    HoldExtras extras_;
};

class NSFORK_API Client {
public:
    // Connects to the server listening at `socket_path`.
    static Result<Client> connect(const std::string& socket_path);
    // Wraps an already connected SOCK_SEQPACKET socket (e.g. from start_server_before_threads).
    explicit Client(UniqueFd socket);
    Client(Client&& other) noexcept;
    Client& operator=(Client&& other) noexcept;
    // Closes the connection; a server this client owns (see own_server) is then reaped.
    ~Client();

    // Makes this client the owner of an embedded server process (its pidfd): the destructor
    // closes the connection, upon which that server kills its containers and exits, and reaps it.
    void own_server(UniqueFd server_pidfd) { server_pidfd_ = std::move(server_pidfd); }

    // Launches a container; returns once its command was exec'd.
    Result<Container> launch(const LaunchOptions& options);
    // Blocks until the container ended; the same answer every time after that.
    Result<ExitStatus> wait(const std::string& id);
    // Sends `signal` to the container's init (which forwards it to the command, or to the
    // command's process group with LaunchOptions::kill_group); for an adopted hold container, to
    // its main process (its holder would drop it). With `all`, to every process of
    // the container and of those nested in it instead (runc kill --all), but their inits, which
    // would forward it again and end with their commands anyway.
    Result<void> kill(const std::string& id, int signal, bool all = false);
    // Kills every process of the container, waits until they are gone and forgets it.
    // Returns its final description (exit status included).
    Result<ContainerInfo> destroy(const std::string& id);
    // Blocks until the container ended and is gone; its last description, exit status in it.
    // Launched with LaunchOptions::destroy_on_exit, that is the server's second answer to the
    // Launch (Container::end_seq()): no request is sent, and a caller with its own event loop may
    // poll native_handle() for it first. Otherwise: wait(), then destroy().
    Result<ContainerInfo> ended(const Container& c);
    Result<std::vector<ContainerInfo>> list();
    // Round trip with no work (it asks for no status): negotiates the protocol version (this
    // client speaks kMinProtocolVersion..kProtocolVersion, 1..2), and the server's pid. Maps the
    // server's status table the first time.
    Result<pid_t> hello();
    // The server's pid and its warm pool's state (a Hello).
    Result<ServerStatus> status();
    // A container's pidfd and description again — after reconnecting, say: containers outlive
    // the connection that launched them (unless tied to it).
    Result<Container> attach(const std::string& id);
    // Hands the server the main process of a hold container (a pidfd of the process the client
    // forked into it): the container now ends when that process does, and no longer with this
    // connection. Refused unless the process is in the container (its pid namespace or its
    // cgroup leaf), alive and not yet adopted. The process stays the caller's to reap; the
    // container's exit status (wait) is its holder's, SIGKILL once the main process ended.
    Result<void> adopt(const std::string& id, int pidfd);
    // The server's status table, read-only; mapped on first use (one Hello round trip).
    Result<const StatusTableReader*> status_table();
    // The container's state and exit status from the status table: plain memory reads once the
    // table is mapped. nullopt once its slot no longer holds it (destroyed).
    std::optional<StatusSnapshot> peek(const ContainerInfo& info);

    // For callers with their own event loop: send a Wait now, poll native_handle() for
    // readability, then collect the answer with receive_wait(seq) (which blocks until it came).
    Result<std::uint32_t> send_wait(const std::string& id);
    Result<ExitStatus> receive_wait(std::uint32_t seq);
    // The same split for launch(), so that a caller can do its own work while the server makes
    // the container (receive_launch takes the options the Launch was sent with).
    Result<std::uint32_t> send_launch(const LaunchOptions& options);
    Result<Container> receive_launch(std::uint32_t seq, const LaunchOptions& options);

    int native_handle() const { return sock_.get(); }
    // The protocol version of the connection: 1 (what a connection that never said Hello speaks)
    // until hello() negotiated another.
    std::uint32_t protocol_version() const { return version_; }

private:
    struct Reply;
    Result<void> send(const flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq, std::span<const int> fds);
    Result<Reply> receive(std::uint32_t seq);
    flatbuffers::FlatBufferBuilder& builder();
    Result<ServerStatus> say_hello(bool status);
    template <class Read>
    auto call(const flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq, std::span<const int> fds, Read read);

    void close_and_reap_server();

    UniqueFd sock_;
    UniqueFd server_pidfd_;
    std::optional<StatusTableReader> table_;
    std::uint32_t next_seq_ = 1;
    std::uint32_t version_ = 1;
    std::map<std::uint32_t, std::shared_ptr<Reply>> early_; // replies that came before asked for
    std::unique_ptr<flatbuffers::FlatBufferBuilder> fbb_;    // builder(): reused by every request
};

namespace detail {
// Connects a SOCK_SEQPACKET socket to the server listening at `path` (Client::connect's, and
// AsyncClient::connect's).
NSFORK_API Result<UniqueFd> connect_socket(const std::string& path);
} // namespace detail

} // namespace nsfork

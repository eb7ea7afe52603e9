// The replies a server sends, each written as a finished ReplyMessage into a caller's builder.
// The other half of messages.hpp (which maps single tables both ways): only the server writes
// these (each finished with finish_reply: its identifier), the client reads them back with
// open_reply and read_info / read_error.
#pragma once

#include "protocol/messages.hpp"
#include "nsfork/types.hpp"

#include <flatbuffers/flatbuffers.h>

#include <cstdint>
#include <span>

namespace nsfork {

// HelloReply: the `version` negotiated, pid, warm pool and launch statistics of `status`
// (without `full`, the pid alone: a Hello that asked for no status); with `table`, declares one
// fd, the status table, which the caller sends with it.
void write_hello_reply(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq, const ServerStatus& status,
                       std::uint32_t version = kProtocolVersion, bool table = true, bool full = true);
// LaunchReply for a container that exec'd (or, held, whose holder is ready); declares its pidfd,
// then with `terminal` its pty's master, with `cgroup` its cgroup leaf, with `device_program` a
// hold launch's loaded program, then `namespaces` namespaces made ahead: the fds the caller
// sends with it, in that order. `destroy_on_exit`: a DestroyReply on `seq` will follow.
void write_launch_reply(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq, const ContainerInfo& info,
                        bool terminal = false, bool cgroup = false, bool destroy_on_exit = false,
                        bool device_program = false, std::size_t namespaces = 0);
// AttachReply; declares one fd, the container's pidfd, sent with it.
void write_attach_reply(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq, const ContainerInfo& info);
// WaitReply for a container that ended.
void write_wait_reply(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq, const ContainerInfo& info);
// DestroyReply for a container that is gone.
void write_destroy_reply(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq, const ContainerInfo& info);
// AdoptReply: the server watches the hold container's main process.
void write_adopt_reply(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq);
// KillReply: the signal was sent.
void write_kill_reply(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq);
// ListReply of `containers`, in the order given.
void write_list_reply(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq,
                      std::span<const ContainerInfo* const> containers);

} // namespace nsfork

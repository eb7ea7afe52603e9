#include "status_table.hpp"

#include <boost/interprocess/file_mapping.hpp>
#include <boost/interprocess/mapped_region.hpp>
#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <utility>

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

namespace nsfork {

namespace ipc = boost::interprocess;

namespace {

constexpr std::uint32_t kMagic = 0x6e73666bu; // "nsfk"
constexpr std::uint32_t kVersion = 1;

// A shared (not private) futex: the word lives in a memfd mapped by several processes.
long futex(std::atomic<std::uint32_t>* word, int op, std::uint32_t value, const timespec* timeout) {
    return ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), op, value, timeout, nullptr, 0);
}

std::size_t table_bytes(std::uint32_t capacity) {
    return sizeof(StatusHeader) + std::size_t(capacity) * sizeof(StatusEntry);
}

ipc::mapped_region map_fd(int fd, ipc::mode_t mode, std::size_t size) {
    ipc::file_mapping file(("/proc/self/fd/" + std::to_string(fd)).c_str(), mode);
    return ipc::mapped_region(file, mode, 0, size);
}

} // namespace

struct StatusTableWriter::Impl {
    UniqueFd fd;
    ipc::mapped_region region;
    std::uint32_t capacity = 0;
    std::vector<std::uint32_t> free_slots; // LIFO; slots never used yet come from `next`
    std::uint32_t next = 0;
    bool wake_pending = false; // a change counted, its sleepers not woken yet
    StatusHeader* header() { return static_cast<StatusHeader*>(region.get_address()); }
    StatusEntry* entry(std::uint32_t slot) { return reinterpret_cast<StatusEntry*>(header() + 1) + slot; }
};

StatusTableWriter::StatusTableWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StatusTableWriter::StatusTableWriter(StatusTableWriter&&) noexcept = default;
StatusTableWriter::~StatusTableWriter() = default;

Result<StatusTableWriter> StatusTableWriter::create(std::uint32_t capacity) {
    auto impl = std::make_unique<Impl>();
    impl->capacity = capacity;
    impl->fd.reset(::memfd_create("nsfork-status", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (!impl->fd) return sys_error(Errc::internal, "memfd_create failed", errno);
    // Sparse: only the pages of entries in use are ever touched.
    if (::ftruncate(impl->fd.get(), static_cast<off_t>(table_bytes(capacity))) < 0)
        return sys_error(Errc::internal, "cannot size the status table", errno);
    try {
        impl->region = map_fd(impl->fd.get(), ipc::read_write, table_bytes(capacity));
    } catch (const ipc::interprocess_exception& e) {
        return Error{Errc::internal, std::string("cannot map the status table: ") + e.what()};
    }
    // Our writable mapping exists now; from here on nobody can make another.
    if (::fcntl(impl->fd.get(), F_ADD_SEALS, F_SEAL_FUTURE_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
        return sys_error(Errc::internal, "cannot seal the status table", errno);
    StatusHeader* h = impl->header();
    h->capacity.store(capacity, std::memory_order_relaxed);
    h->entry_size.store(sizeof(StatusEntry), std::memory_order_relaxed);
    h->version.store(kVersion, std::memory_order_relaxed);
    h->magic.store(kMagic, std::memory_order_release);
    return StatusTableWriter(std::move(impl));
}

int StatusTableWriter::fd() const { return impl_->fd.get(); }

std::optional<std::uint32_t> StatusTableWriter::acquire() {
    if (!impl_->free_slots.empty()) {
        const std::uint32_t slot = impl_->free_slots.back();
        impl_->free_slots.pop_back();
        return slot;
    }
    if (impl_->next < impl_->capacity) return impl_->next++;
    return std::nullopt;
}

void StatusTableWriter::publish(std::uint32_t slot, const ContainerInfo& info, Wake wake) {
    StatusEntry* e = impl_->entry(slot);
    constexpr auto relaxed = std::memory_order_relaxed;
    const std::uint32_t seq = e->seq.load(relaxed);
    e->seq.store(seq + 1, relaxed);
    std::atomic_thread_fence(std::memory_order_release); // odd seq visible before any field
    if (e->state.load(relaxed) == 0) e->generation.store(e->generation.load(relaxed) + 1, relaxed);
    e->state.store(static_cast<std::uint32_t>(info.state) + 1, relaxed);
    e->has_exit.store(info.exit ? 1 : 0, relaxed);
    e->exit_code.store(info.exit ? info.exit->code : 0, relaxed);
    e->exit_signal.store(info.exit ? info.exit->signal : 0, relaxed);
    e->pid.store(info.pid, relaxed);
    e->pidns.store(info.pidns, relaxed);
    std::uint64_t words[17] = {};
    std::memcpy(words, info.id.data(), std::min(info.id.size(), sizeof words - 1));
    for (int i = 0; i < 17; ++i) e->id_words[i].store(words[i], relaxed);
    e->seq.store(seq + 2, std::memory_order_release);
    bump_events(wake);
}

void StatusTableWriter::release(std::uint32_t slot) {
    StatusEntry* e = impl_->entry(slot);
    const std::uint32_t seq = e->seq.load(std::memory_order_relaxed);
    e->seq.store(seq + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    e->state.store(0, std::memory_order_relaxed);
    e->seq.store(seq + 2, std::memory_order_release);
    impl_->free_slots.push_back(slot);
    bump_events(Wake::now);
}

void StatusTableWriter::bump_events(Wake wake) {
    impl_->header()->events.fetch_add(1, std::memory_order_release);
    impl_->wake_pending = true;
    if (wake == Wake::now) wake_readers();
}

void StatusTableWriter::wake_readers() {
    if (!std::exchange(impl_->wake_pending, false)) return;
    futex(&impl_->header()->events, FUTEX_WAKE, INT32_MAX, nullptr);
}

struct StatusTableReader::Impl {
    ipc::mapped_region region;
    std::uint32_t capacity = 0;
    const StatusHeader* header() const { return static_cast<const StatusHeader*>(region.get_address()); }
    const StatusEntry* entry(std::uint32_t slot) const {
        return reinterpret_cast<const StatusEntry*>(header() + 1) + slot;
    }
};

StatusTableReader::StatusTableReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StatusTableReader::StatusTableReader(StatusTableReader&&) noexcept = default;
StatusTableReader::~StatusTableReader() = default;

Result<StatusTableReader> StatusTableReader::map(int fd) {
    struct stat st;
    if (::fstat(fd, &st) < 0) return sys_error(Errc::protocol, "fstat of the status table failed", errno);
    if (static_cast<std::size_t>(st.st_size) < sizeof(StatusHeader))
        return Error{Errc::protocol, "the status table is smaller than its header"};
    auto impl = std::make_unique<Impl>();
    try {
        impl->region = map_fd(fd, ipc::read_only, static_cast<std::size_t>(st.st_size));
    } catch (const ipc::interprocess_exception& e) {
        return Error{Errc::protocol, std::string("cannot map the status table: ") + e.what()};
    }
    const StatusHeader* h = impl->header();
    if (h->magic.load(std::memory_order_acquire) != kMagic || h->version.load() != kVersion ||
        h->entry_size.load() != sizeof(StatusEntry))
        return Error{Errc::protocol, "the status table has an unknown layout"};
    impl->capacity = h->capacity.load();
    if (table_bytes(impl->capacity) > static_cast<std::size_t>(st.st_size))
        return Error{Errc::protocol, "the status table is smaller than its capacity says"};
    return StatusTableReader(std::move(impl));
}

std::uint32_t StatusTableReader::capacity() const { return impl_->capacity; }

std::optional<StatusSnapshot> StatusTableReader::read(std::uint32_t slot) const {
    if (slot >= impl_->capacity) return std::nullopt;
    const StatusEntry* e = impl_->entry(slot);
    constexpr auto relaxed = std::memory_order_relaxed;
    for (;;) {
        const std::uint32_t before = e->seq.load(std::memory_order_acquire);
        if (before & 1) continue; // being written: the writer is one thread and never blocks
        const std::uint32_t state = e->state.load(relaxed);
        StatusSnapshot s;
        if (e->has_exit.load(relaxed)) s.exit = ExitStatus{e->exit_code.load(relaxed), e->exit_signal.load(relaxed)};
        s.pid = e->pid.load(relaxed);
        s.pidns = e->pidns.load(relaxed);
        s.generation = e->generation.load(relaxed);
        std::uint64_t words[17];
        for (int i = 0; i < 17; ++i) words[i] = e->id_words[i].load(relaxed);
        std::atomic_thread_fence(std::memory_order_acquire); // fields read before seq re-read
        if (e->seq.load(relaxed) != before) continue;
        if (state == 0 || state > static_cast<std::uint32_t>(State::destroyed) + 1) return std::nullopt;
        s.state = static_cast<State>(state - 1);
        words[16] &= ~(std::uint64_t(0xff) << 56); // always NUL-terminated
        s.id = reinterpret_cast<const char*>(words);
        return s;
    }
}

std::uint32_t StatusTableReader::events() const {
    return impl_->header()->events.load(std::memory_order_acquire);
}

void StatusTableReader::wait_event(std::uint32_t seen, int timeout_ms) const {
    const timespec timeout{timeout_ms / 1000, (timeout_ms % 1000) * 1000000L};
    futex(const_cast<std::atomic<std::uint32_t>*>(&impl_->header()->events), FUTEX_WAIT, seen,
          timeout_ms < 0 ? nullptr : &timeout);
}

} // namespace nsfork

#include "body.hpp"

#include <boost/interprocess/file_mapping.hpp>
#include <boost/interprocess/mapped_region.hpp>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace nsfork {

namespace ipc = boost::interprocess;

struct MappedBody::Region {
    ipc::mapped_region region;
};

Result<UniqueFd> make_sealed_body(std::span<const std::uint8_t> bytes) {
    UniqueFd fd(::memfd_create("nsfork-body", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (!fd) return sys_error(Errc::internal, "memfd_create failed", errno);
    std::size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::write(fd.get(), bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return sys_error(Errc::internal, "cannot write the message body", errno);
        done += static_cast<std::size_t>(n);
    }
    if (::fcntl(fd.get(), F_ADD_SEALS, kBodySeals) < 0)
        return sys_error(Errc::internal, "cannot seal the message body", errno);
    return fd;
}

MappedBody::MappedBody(std::unique_ptr<Region> region) : region_(std::move(region)) {}
MappedBody::MappedBody(MappedBody&&) noexcept = default;
MappedBody& MappedBody::operator=(MappedBody&&) noexcept = default;
MappedBody::~MappedBody() = default;

std::span<const std::uint8_t> MappedBody::bytes() const {
    return {static_cast<const std::uint8_t*>(region_->region.get_address()), region_->region.get_size()};
}

Result<MappedBody> MappedBody::map(int fd, std::uint64_t size, std::uint64_t cap) {
    if (size == 0) return Error{Errc::bad_request, "message body of size 0"};
    if (size > cap)
        return Error{Errc::bad_request,
                     "message body of " + std::to_string(size) + " bytes exceeds the limit of " +
                         std::to_string(cap) + " bytes"};
    const int seals = ::fcntl(fd, F_GET_SEALS);
    if (seals < 0) return Error{Errc::bad_request, "message body fd is not a sealable memfd"};
    if ((seals & kBodySeals) != kBodySeals)
        return Error{Errc::bad_request,
                     "message body memfd is not sealed (it needs F_SEAL_WRITE, F_SEAL_SHRINK, "
                     "F_SEAL_GROW and F_SEAL_SEAL)"};
    struct stat st;
    if (::fstat(fd, &st) < 0) return sys_error(Errc::internal, "fstat of the message body failed", errno);
    if (static_cast<std::uint64_t>(st.st_size) < size)
        return Error{Errc::bad_request, "message body is truncated: " + std::to_string(size) +
                                            " bytes declared, the memfd holds " + std::to_string(st.st_size)};
    try {
        ipc::file_mapping file(("/proc/self/fd/" + std::to_string(fd)).c_str(), ipc::read_only);
        auto region = std::make_unique<Region>(Region{ipc::mapped_region(file, ipc::read_only, 0, size)});
        return MappedBody(std::move(region));
    } catch (const ipc::interprocess_exception& e) {
        return Error{Errc::internal, std::string("cannot map the message body: ") + e.what()};
    }
}

} // namespace nsfork

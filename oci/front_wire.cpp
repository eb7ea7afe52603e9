// The plan's decoding, in the front (musl, no exceptions) and in the unit tests.
#include "oci/front_wire.hpp"

#include <cstring>

namespace nsfork::oci::front {

namespace {

struct Decoder {
    char* base;
    std::size_t size;
    const int* fds;
    std::size_t fd_count;
    bool ok = true;

    // A pointer field holding offset + 1 of `bytes` bytes (aligned for T) in the buffer.
    template <typename T>
    T* at(T* encoded, std::size_t count) {
        const auto offset = reinterpret_cast<std::uintptr_t>(encoded);
        if (offset == 0) return nullptr;
        if (offset - 1 > size || count > (size - (offset - 1)) / sizeof(T) || (offset - 1) % alignof(T) != 0) {
            ok = false;
            return nullptr;
        }
        return reinterpret_cast<T*>(base + offset - 1);
    }
    const char* string(const char* encoded) {
        const char* s = at(encoded, 0);
        if (s && !::memchr(s, '\0', size - static_cast<std::size_t>(s - base))) ok = false;
        return ok ? s : nullptr;
    }
    // A null-terminated array of strings; `pairs`: key, value-or-null pairs ended by a null key.
    char** strings(const void* encoded, bool pairs) {
        char** array = at(static_cast<char**>(const_cast<void*>(encoded)), 1);
        if (!array) return nullptr;
        const std::size_t room = (size - static_cast<std::size_t>(reinterpret_cast<char*>(array) - base)) / sizeof *array;
        for (std::size_t i = 0;; ++i) {
            if (i >= room) {
                ok = false;
                return nullptr;
            }
            const bool value = pairs && i % 2 == 1;
            if (!array[i] && !value) return array;
            array[i] = const_cast<char*>(string(array[i]));
            if (!ok) return nullptr;
        }
    }
    int fd(int index) {
        if (index < 0) return -1;
        if (static_cast<std::size_t>(index) >= fd_count) {
            ok = false;
            return -1;
        }
        return fds[index];
    }
};

} // namespace

bool decode_plan(char* bytes, std::size_t size, const int* fds, std::size_t fd_count, child::Plan** out) noexcept {
    if (size < sizeof(child::Plan) || reinterpret_cast<std::uintptr_t>(bytes) % alignof(child::Plan) != 0) return false;
    Decoder d{bytes, size, fds, fd_count};
    auto* plan = reinterpret_cast<child::Plan*>(bytes);
    plan->steps = d.at(plan->steps, plan->count);
    if (!d.ok || (plan->count && !plan->steps)) return false;
    for (std::size_t i = 0; i < plan->count && d.ok; ++i) {
        child::Step& s = plan->steps[i];
        s.fd = d.fd(s.fd);
        s.path = d.string(s.path);
        s.text = d.string(s.text);
        s.text2 = d.string(s.text2);
        s.options = d.strings(s.options, true);
    }
    plan->report = d.fd(plan->report);
    plan->parent_pidfd = -1;
    for (int& fd : plan->stdio) fd = d.fd(fd);
    plan->preserved = d.at(plan->preserved, plan->preserved_count);
    for (std::size_t i = 0; d.ok && plan->preserved && i < plan->preserved_count; ++i) plan->preserved[i] = d.fd(plan->preserved[i]);
    plan->groups = d.at(plan->groups, plan->group_count);
    plan->candidates = d.strings(plan->candidates, false);
    plan->argv = d.strings(plan->argv, false);
    plan->envp = d.strings(plan->envp, false);
    plan->filter.filter = d.at(plan->filter.filter, plan->filter.len);
    if (!d.ok) return false;
    *out = plan;
    return true;
}

} // namespace nsfork::oci::front

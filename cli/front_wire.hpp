// The few messages of the wire protocol (protocol/PROTOCOL.md, protocol/nsfork.fbs) that the
// musl front (cli/front.cpp) sends and reads for `nsfork run --socket S -- CMD`: a Launch with
// stdio, environment, working directory and inherited signals, a Wait, a Destroy, and their
// replies. The front has no libstdc++ and so no FlatBuffers library: this writes the binary
// format directly (front to back: every offset points forward, as the format requires, and
// every scalar is aligned to its size from an 8-aligned buffer), and reads it with a bounds
// check on every access. Header-only, no allocation, no STL: the unit tests
// (cli/front_wire_test.cpp) check both directions against the generated C++ code.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <string.h>

namespace nsfork::front_wire {

// Union type values of RequestMessage.request and ReplyMessage.reply (nsfork.fbs).
enum : uint8_t { kLaunch = 2, kWait = 3, kDestroy = 5 };
enum : uint8_t { kLaunchReply = 2, kWaitReply = 3, kDestroyReply = 5, kError = 7 };
enum : uint8_t { kRolePidfd = 3 }; // FdRole

// Builds one message into a caller's 8-aligned buffer; ok() false once anything did not fit.
class Writer {
public:
    Writer(uint8_t* buf, size_t cap) : buf_(buf), cap_(cap) {}
    bool ok() const { return ok_; }
    size_t size() const { return len_; }

    // A RequestMessage{seq, request} whose request, of union type `type`, is the table
    // start_table() is called for next: its position is patched in by request_at().
    void start_request(uint32_t seq, uint8_t type) {
        put_u32(0); // the root offset, patched below
        put_bytes("NSFQ", 4);
        const uint16_t offsets[3] = {4, 12, 8}; // seq, request's type, request
        const size_t vtable = put_vtable(3, 16, offsets);
        root_ = align_to(4);
        put_u32(0); // the table's soffset, patched below
        put_u32(seq);
        request_slot_ = put_u32(0);
        put_u32(type); // the type byte, then padding
        patch_u32(0, static_cast<uint32_t>(root_));
        patch_i32(root_, static_cast<int32_t>(root_ - vtable));
    }

    // Launch{argv, env, cwd, fds: [Stdin, Stdout, Stderr], signal_mask, ignored_signals,
    // destroy_on_exit}.
    void launch(char* const* argv, char* const* env, const char* cwd, uint64_t signal_mask, uint64_t ignored,
                bool destroy_on_exit) {
        // Fields 1..4 (argv, env, cwd, fds), 11, 12 (signal_mask, ignored_signals) and 18
        // (destroy_on_exit) of 19.
        const uint16_t offsets[19] = {0, 4, 8, 12, 16, 0, 0, 0, 0, 0, 0, 24, 32, 0, 0, 0, 0, 0, 40};
        const size_t vtable = put_vtable(19, 44, offsets);
        start_table(vtable, 8);
        const size_t argv_slot = put_u32(0), env_slot = put_u32(0), cwd_slot = put_u32(0), fds_slot = put_u32(0);
        put_u32(0); // padding to 8
        put_u64(signal_mask);
        put_u64(ignored);
        put_u32(destroy_on_exit ? 1 : 0); // the bool, then padding
        string_vector(argv_slot, argv);
        string_vector(env_slot, env);
        string(cwd_slot, cwd);
        point(fds_slot, align_to(4));
        put_u32(3);
        put_bytes("\0\1\2", 3); // Stdin, Stdout, Stderr
    }

    // Wait{id} or Destroy{id}.
    void by_id(const char* id) {
        const uint16_t offsets[1] = {4};
        const size_t vtable = put_vtable(1, 8, offsets);
        start_table(vtable, 4);
        string(put_u32(0), id);
    }

private:
    size_t put_bytes(const void* p, size_t n) {
        const size_t at = len_;
        if (!ok_ || n > cap_ - len_) {
            ok_ = false;
            return at;
        }
        memcpy(buf_ + len_, p, n);
        len_ += n;
        return at;
    }
    size_t put_u16(uint16_t v) { return put_bytes(&v, 2); }
    size_t put_u32(uint32_t v) { return put_bytes(&v, 4); }
    size_t put_u64(uint64_t v) { return put_bytes(&v, 8); }
    size_t align_to(size_t a) {
        static const uint8_t zeros[8] = {};
        put_bytes(zeros, (a - len_ % a) % a);
        return len_;
    }
    void patch_u32(size_t at, uint32_t v) {
        if (ok_) memcpy(buf_ + at, &v, 4);
    }
    void patch_i32(size_t at, int32_t v) {
        if (ok_) memcpy(buf_ + at, &v, 4);
    }
    // The uoffset at `slot` made to point at `target` (always after it).
    void point(size_t slot, size_t target) { patch_u32(slot, static_cast<uint32_t>(target - slot)); }

    // A vtable of `n` fields for a table of `table_size` bytes (its soffset included).
    size_t put_vtable(size_t n, uint16_t table_size, const uint16_t* offsets) {
        const size_t at = align_to(2);
        put_u16(static_cast<uint16_t>(4 + 2 * n));
        put_u16(table_size);
        for (size_t i = 0; i < n; ++i) put_u16(offsets[i]);
        return at;
    }
    // The table after `vtable`, its first field aligned to `align`; the request's, if pending.
    size_t start_table(size_t vtable, size_t align) {
        const size_t at = align_to(align);
        put_u32(0);
        patch_i32(at, static_cast<int32_t>(at - vtable));
        if (request_slot_) {
            point(request_slot_, at);
            request_slot_ = 0;
        }
        return at;
    }
    void string(size_t slot, const char* s) {
        point(slot, align_to(4));
        const size_t n = strlen(s);
        put_u32(static_cast<uint32_t>(n));
        put_bytes(s, n + 1);
    }
    void string_vector(size_t slot, char* const* strings) {
        size_t n = 0;
        while (strings[n]) ++n;
        point(slot, align_to(4));
        put_u32(static_cast<uint32_t>(n));
        const size_t first = len_;
        for (size_t i = 0; i < n; ++i) put_u32(0);
        for (size_t i = 0; i < n; ++i) string(first + 4 * i, strings[i]);
    }

    uint8_t* buf_;
    size_t cap_, len_ = 0;
    bool ok_ = true;
    size_t root_ = 0, request_slot_ = 0;
};

// A received ReplyMessage, read with every access checked against its size.
class Reply {
public:
    Reply(const uint8_t* buf, size_t len) : buf_(buf), len_(len) {
        uint32_t root;
        if (len < 8 || memcmp(buf + 4, "NSFR", 4) != 0 || !u32(0, &root)) return;
        root_ = root;
        uint32_t seq = 0;
        uint8_t type = 0;
        if (!scalar(root_, 0, &seq) || !scalar(root_, 1, &type) || !table(root_, 2, &body_)) return;
        seq_ = seq;
        type_ = type;
    }
    uint32_t seq() const { return seq_; }
    uint8_t type() const { return type_; } // 0: not a reply this reads

    // LaunchReply: the container's id (into `id`, NUL-terminated), whether the first fd is its
    // Pidfd, and whether a DestroyReply will follow (destroy_on_exit).
    bool launched(char* id, size_t size, bool* pidfd_first, bool* destroy_on_exit) const {
        size_t info, roles;
        uint32_t n;
        uint8_t first, destroys = 0;
        if (type_ != kLaunchReply || !table(body_, 0, &info) || !string(info, 0, id, size)) return false;
        *pidfd_first = vector(body_, 1, &roles, &n) && n >= 1 && u8(roles, &first) && first == kRolePidfd;
        *destroy_on_exit = scalar(body_, 2, &destroys) && destroys != 0;
        return true;
    }
    // WaitReply or DestroyReply: the exit status (code, signal), when it has one.
    bool exited(int32_t* code, int32_t* signal) const {
        size_t info, status;
        if ((type_ != kWaitReply && type_ != kDestroyReply) || !table(body_, 0, &info) || !field(info, 5, 8, &status))
            return false;
        return i32(status, code) && i32(status + 4, signal);
    }
    // Error: its message (truncated to `size`).
    bool error(char* message, size_t size) const { return type_ == kError && string(body_, 1, message, size); }

private:
    bool in(size_t at, size_t n) const { return at <= len_ && n <= len_ - at; }
    bool u8(size_t at, uint8_t* v) const { return in(at, 1) && (memcpy(v, buf_ + at, 1), true); }
    bool u16(size_t at, uint16_t* v) const { return in(at, 2) && (memcpy(v, buf_ + at, 2), true); }
    bool u32(size_t at, uint32_t* v) const { return in(at, 4) && (memcpy(v, buf_ + at, 4), true); }
    bool i32(size_t at, int32_t* v) const { return in(at, 4) && (memcpy(v, buf_ + at, 4), true); }

    // Where field `id` of the table at `table` is, if present and `size` bytes fit.
    bool field(size_t table, unsigned id, size_t size, size_t* at) const {
        int32_t back;
        uint16_t vsize, offset;
        if (!i32(table, &back)) return false;
        const int64_t vtable = static_cast<int64_t>(table) - back;
        if (vtable < 0 || !u16(static_cast<size_t>(vtable), &vsize) || 4 + 2 * id + 2 > vsize ||
            !u16(static_cast<size_t>(vtable) + 4 + 2 * id, &offset) || offset == 0)
            return false;
        *at = table + offset;
        return in(*at, size);
    }
    template <class T>
    bool scalar(size_t table, unsigned id, T* v) const {
        size_t at;
        return field(table, id, sizeof(T), &at) && (memcpy(v, buf_ + at, sizeof(T)), true);
    }
    // Follows the uoffset in field `id` to what it points at.
    bool follow(size_t table, unsigned id, size_t* target) const {
        size_t at;
        uint32_t off;
        if (!field(table, id, 4, &at) || !u32(at, &off)) return false;
        *target = at + off;
        return in(*target, 4);
    }
    bool table(size_t t, unsigned id, size_t* out) const { return follow(t, id, out); }
    bool vector(size_t t, unsigned id, size_t* elements, uint32_t* n) const {
        size_t at;
        if (!follow(t, id, &at) || !u32(at, n) || !in(at + 4, *n)) return false;
        *elements = at + 4;
        return true;
    }
    bool string(size_t t, unsigned id, char* out, size_t size) const {
        size_t chars;
        uint32_t n;
        if (size == 0 || !vector(t, id, &chars, &n)) return false;
        const size_t copied = n < size - 1 ? n : size - 1;
        memcpy(out, buf_ + chars, copied);
        out[copied] = '\0';
        return true;
    }

    const uint8_t* buf_;
    size_t len_;
    size_t root_ = 0, body_ = 0;
    uint32_t seq_ = 0;
    uint8_t type_ = 0;
};

} // namespace nsfork::front_wire

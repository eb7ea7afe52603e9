// Errors as values: every library boundary returns Result<T> — a T, or an Error that names the
// thing and the cause.
#pragma once

#include "nsfork/export.hpp"

#include <cstdint>
#include <string>
#include <utility>
#include <variant>

namespace nsfork {

// Error categories. The values travel on the wire (protocol/nsfork.fbs mirrors them): append only.
enum class Errc : std::uint16_t {
    bad_request = 1,       // malformed or inconsistent request
    invalid_id = 2,        // container id not acceptable
    duplicate_id = 3,      // id already in use
    unknown_container = 4, // no container with that id
    launch_failed = 5,     // setup of the container failed before the command ran
    exec_failed = 6,       // the command could not be executed (errno says why)
    not_permitted = 7,     // peer or operation refused by policy
    unavailable = 8,       // the server lacks something the request needs
    internal = 9,          // a bug or an unexpected kernel answer
    disconnected = 10,     // the server is gone (client side only)
    protocol = 11,         // the peer broke the wire protocol
    invalid_state = 12,    // the container is not in a state that allows the request
};

struct Error {
    Errc code = Errc::internal;
    std::string message;
    int sys_errno = 0; // the errno behind it, where there is one
};

// Either a value or an Error. Deliberately small: what std::expected will give us in C++23.
template <class T>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
    Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}

    bool ok() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return ok(); }
    T& value() & { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    const T& value() const& { return std::get<0>(v_); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T&& operator*() && { return std::move(*this).value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    const Error& error() const& { return std::get<1>(v_); }
    Error&& error() && { return std::get<1>(std::move(v_)); }

private:
    std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error error) : error_(std::move(error)), ok_(false) {}

    bool ok() const noexcept { return ok_; }
    explicit operator bool() const noexcept { return ok_; }
    const Error& error() const& { return error_; }
    Error&& error() && { return std::move(error_); }

private:
    Error error_;
    bool ok_ = true;
};

// An Error for a failed system call: "<what>: <strerror(err)>".
NSFORK_API Error sys_error(Errc code, std::string what, int err);

} // namespace nsfork

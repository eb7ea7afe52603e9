// Waiting for a condition the test cannot be told about: polled, with a bound.
#pragma once

#include <chrono>
#include <thread>

namespace nsfork::testing {

// Polls `done` every `every` for up to `limit`; returns its last answer (true as soon as it is).
template <class Done>
bool eventually(Done&& done, std::chrono::milliseconds limit = std::chrono::seconds(10),
                std::chrono::milliseconds every = std::chrono::milliseconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return done();
        std::this_thread::sleep_for(every);
    }
    return true;
}

} // namespace nsfork::testing

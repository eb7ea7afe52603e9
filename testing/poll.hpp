// Waiting for a condition the test cannot be told about: polled, with a bound.
#pragma once

#include <chrono>
#include <thread>
#include <utility>

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

// The value of `take()` once it stopped changing: `same` for `quiet` in a row, sampled every
// `every`; after `limit`, the last one seen (a server refilling its pool never settles for long).
template <class Take, class Same>
auto settled(Take&& take, Same&& same, std::chrono::milliseconds quiet = std::chrono::milliseconds(200),
             std::chrono::milliseconds limit = std::chrono::seconds(5),
             std::chrono::milliseconds every = std::chrono::milliseconds(20)) {
    auto last = take();
    const auto rounds = limit / every, needed = quiet / every;
    for (std::chrono::milliseconds::rep i = 0, stable = 0; i < rounds && stable < needed; ++i) {
        std::this_thread::sleep_for(every);
        auto now = take();
        stable = same(now, last) ? stable + 1 : 0;
        last = std::move(now);
    }
    return last;
}

} // namespace nsfork::testing

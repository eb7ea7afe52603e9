// Interleaved runs: the compared variants take turns (A B C, B C A, C A B, ...) so that machine
// drift and any order effect land on every variant alike.
#pragma once

#include "nsfork/error.hpp"

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace nsfork::bench {

// One of the compared things: a name and one measured run (a sample in the figure's unit).
struct Variant {
    std::string name;
    std::function<Result<double>()> run;
};

struct Alternated {
    std::vector<std::vector<double>> samples; // per variant, in the order given
    std::vector<std::optional<Error>> errors; // per variant: why it stopped, if it failed
};

// Runs `warmup` unrecorded rounds, then `rounds` recorded ones, each round every variant once,
// the starting variant rotating. A variant that fails is dropped (its error kept) and the
// others go on: one broken baseline does not cost the rest of the run.
Alternated alternate(int rounds, const std::vector<Variant>& variants, int warmup = 1);

} // namespace nsfork::bench

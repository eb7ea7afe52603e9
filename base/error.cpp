#include "nsfork/error.hpp"

#include <cstring>

namespace nsfork {

Error sys_error(Errc code, std::string what, int err) {
    what += ": ";
    what += std::strerror(err);
    return Error{code, std::move(what), err};
}

} // namespace nsfork

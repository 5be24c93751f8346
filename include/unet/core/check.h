// Error handling at boundaries.
//
// Two kinds of failure:
//  - UsageError: the user asked for something impossible (a flag value, a model shape). main()
//    prints its one-line message and exits with code 2.
//  - std::runtime_error (files, libraries, numerics): one line, exit code 1.
// UNET_CHECK is for invariants inside the library; it throws std::logic_error with file:line,
// which is a bug in unet_train, never in the user's input.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace unet {

class UsageError : public std::runtime_error {
   public:
    using std::runtime_error::runtime_error;
};

// Thrown when the loss becomes NaN or Inf; the message names the step.
class DivergenceError : public std::runtime_error {
   public:
    using std::runtime_error::runtime_error;
};

[[noreturn]] void fail_invariant(const char* file, int line, const std::string& what);

}  // namespace unet

#define UNET_CHECK(cond, msg)                                              \
    do {                                                                   \
        if (!(cond)) {                                                     \
            std::ostringstream unet_check_os_;                             \
            unet_check_os_ << msg;                                         \
            ::unet::fail_invariant(__FILE__, __LINE__,                     \
                                   std::string(#cond) + ": " + unet_check_os_.str()); \
        }                                                                  \
    } while (0)

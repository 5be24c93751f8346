// An error in a file that every rank reads alike (the checkpoint a run resumes from or predicts
// with): under mpirun each rank meets it at once, and each would print the same line. Like a
// UsageError, run_program lets rank 0 alone report it (exit 1, not 2: the file is damaged, not the
// command); another rank reports it only if it is still running after a grace (its own copy of the
// file, on a node of its own, was the damaged one).
#pragma once

#include <stdexcept>

namespace unet {

class SharedInputError : public std::runtime_error {
   public:
    using std::runtime_error::runtime_error;
};

}  // namespace unet

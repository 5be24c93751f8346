// The memory estimate printed before training: what one worker rank holds at its peak, part by
// part, so that a user can size a job before it runs, and the run's last line (peak RSS) can be
// held against it (BENCHMARKS.md, "Memory estimate").
//
//   peak = process + network + scratchpad + parameters + optimizer + data
//          + max(whole-volume validation, checkpoint write)
//
// network: the training step's buffers for the rank's batch (validation, pictures and the
// whole-volume windows run on the same buffers: forward_padded, WindowOptions::batch); data: every
// loader's batches, the full sample they are cut from and the readers' chunk caches; the last two
// never overlap (validation ends before the epoch's checkpoint is written).
#pragma once

#include <cstdint>
#include <string>

namespace unet {

struct MemoryEstimateParts {
    int64_t batch = 0;                               // the rank's batch (the network's)
    int64_t network = 0, scratchpad = 0, parameters = 0, optimizer = 0;
    int64_t data = 0, whole_volume = 0, checkpoint = 0;
    int64_t process = 0;                             // libraries, MPI, threads: kProcessBytes
    int64_t total() const;
    std::string describe() const;  // "memory estimate per worker: ... = N MiB"
};

// Resident memory of the process before any of the parts above (the libraries, Open MPI, the
// OpenMP and loader threads), measured: about 30 MiB alone, about 60 MiB under mpirun.
int64_t process_base_bytes(bool under_mpi);

}  // namespace unet

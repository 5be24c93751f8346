// SIGTERM, SIGINT and SIGUSR1 (Slurm's scancel, Ctrl-C, and the one signal Open MPI's mpirun
// forwards to every rank without killing them afterwards) do not kill a training process: they are noted,
// and the trainer (at its next step) or the tuning coordinator (at its next message) stops cleanly
// after a checkpoint. One flag per process, set by the handler, never cleared.
#pragma once

namespace unet {

void catch_stop_signals();  // installs the handler for SIGTERM, SIGINT and SIGUSR1 (idempotent)
int stop_signal();          // the last signal caught, 0 if none

}  // namespace unet

// The run directory's two guards, taken by run_training before the first line of training.log:
//  - a run does not start into a directory that holds another run's checkpoints (a finished or an
//    interrupted one) unless the user says what to do with them: --resume continues it,
//    --overwrite replaces it. Without them a second run silently replaced a better
//    checkpoint_best.h5 with a worse one.
//  - two live runs never share a directory: rank 0 holds <logdir>/run.lock ("pid host start")
//    while it runs and removes it at the end, also after a failure. A lock whose process is gone
//    (same host, pid not alive: a killed run) is taken over; a lock of another host is honoured
//    (its process cannot be asked), and the message says which file to remove if that run is over.
//    A --resume waits up to 30 s for a live owner to end first: the launcher restarts a job as soon
//    as mpirun returns, while the old rank 0 may still be on its way out.
#pragma once

#include <memory>
#include <string>

#include "unet/parallel/comm.h"
#include "unet/train/train_options.h"

namespace unet {

class RunDirectoryLock {
   public:
    explicit RunDirectoryLock(std::string path) : path_(std::move(path)) {}
    ~RunDirectoryLock();  // removes the lock file
    RunDirectoryLock(const RunDirectoryLock&) = delete;
    RunDirectoryLock& operator=(const RunDirectoryLock&) = delete;

   private:
    std::string path_;
};

// Collective over `comm`: every rank throws the same UsageError (naming --logdir) when the run may
// not start; otherwise rank 0 gets the lock (created with the directory) and the others null.
std::unique_ptr<RunDirectoryLock> claim_run_directory(const TrainOptions& o, Comm& comm);

// This machine's host name (what run.lock and training.log's hosts line record; "localhost" if unknown).
std::string this_host();

}  // namespace unet

// The communicator the trainer sees: MPI_COMM_WORLD, or a group split from it (a tuning trial's
// ranks). One process (no mpirun, or -np 1) is a world of one and every collective is a no-op.
// Results of sums depend only on the rank count, not on timing (Open MPI picks a fixed algorithm
// per size), so runs are repeatable. The gradient exchanges (ps_exchange.h, allreduce_exchange.h)
// speak MPI on the same communicator through mpi_comm().
//
// MPI is initialised on first use of Comm::world() only when launched as one of several ranks (by
// mpirun: OMPI_COMM_WORLD_SIZE > 1; by srun --mpi=pmix: PMIX_RANK and SLURM_STEP_NUM_TASKS > 1),
// so single-process runs never touch MPI.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace unet {

class Comm {
   public:
    static Comm& world();
    // The ranks that pass the same `color` form a new communicator, ordered by world rank (a
    // tuning group). Collective over this communicator. A world of one returns a world of one.
    std::unique_ptr<Comm> split(int color);
    ~Comm();
    Comm(const Comm&) = delete;
    Comm& operator=(const Comm&) = delete;
    int rank() const { return rank_; }
    int size() const { return size_; }
    bool is_root() const { return rank_ == 0; }

    void sum(double* data, int64_t n);  // in place, over all ranks
    void sum(float* data, int64_t n);
    int max(int value);
    // True when every rank passed the same value (e.g. a hash of its resolved configuration).
    bool all_equal(uint64_t value);
    void broadcast(int root, float* data, int64_t n);
    void broadcast(int root, int64_t* data, int64_t n);
    // The root's text on every rank (a name the root chose, such as a run directory).
    std::string broadcast_text(int root, const std::string& text);
    // Point-to-point floats (a first worker's batch-norm statistics or picture for rank 0).
    void send(int dest, int tag, const float* data, int64_t n);
    void receive(int source, int tag, float* data, int64_t n);
    void barrier();
    // Point-to-point text messages (the tuner's coordinator and group leaders; a few per epoch).
    void send_text(int dest, int tag, const std::string& text);
    // Takes one waiting message from `source` (-1: any) with `tag` (-1: any); false at once if none.
    bool poll_text(int source, int tag, std::string& text, int* from = nullptr, int* got_tag = nullptr);
    // Waits for one, sleeping between probes so that a waiting rank leaves its core to the others.
    std::string receive_text(int source, int tag, int* from = nullptr, int* got_tag = nullptr);
    // The MPI_Comm* behind this communicator, for code in src/parallel that speaks MPI itself
    // (null in a world of one).
    void* mpi_comm() const { return comm_; }
    // Ends every rank of the job (one clear line from the caller first).
    [[noreturn]] void abort(int code);
    void finalize();

   private:
    struct Private {};
    Comm();
    explicit Comm(Private) {}
    void* comm_ = nullptr;  // MPI_Comm* (kept out of this header: mpi.h stays in comm.cpp)
    int rank_ = 0, size_ = 1;
    bool mpi_ = false;
};

}  // namespace unet

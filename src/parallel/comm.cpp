#include "unet/parallel/comm.h"


#include <algorithm>
#include <unistd.h>

#include <cstdlib>
#include <vector>
#include <stdexcept>
#include <string>

#include "mpi_call.h"

namespace unet {


// Whether this process is one of several ranks: started by Open MPI's mpirun, or directly by
// Slurm's srun --mpi=pmix (which sets no OMPI_* variables; without this check every task of an
// srun step would train alone as a single process).
static bool launched_as_one_of_several_ranks() {
    auto count = [](const char* name) {
        const char* v = std::getenv(name);
        return v ? std::atoi(v) : 0;
    };
    if (count("OMPI_COMM_WORLD_SIZE") > 1) return true;
    return std::getenv("PMIX_RANK") && count("SLURM_STEP_NUM_TASKS") > 1;
}

Comm::Comm() {
    if (!launched_as_one_of_several_ranks()) return;
    // Open MPI 4.1's non-blocking all-reduce (libnbc, our gradient buckets) takes a binomial tree
    // for in-place buffers whatever their size: rank 0's link then carries ceil(log2 p) times the
    // gradients each way (2x at 3 ranks, 9x at 512), a ring 2 (p - 1) / p. Measured on shaped
    // links (BENCHMARKS.md, issue 14), the 3-rank all-reduce waited about twice the 2-rank one. A
    // ring unless the user chose (`mpirun --mca coll_libnbc_iallreduce_algorithm N` sets this).
    setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "1", 0);
    int provided = 0;
    check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    // Errors come back as codes (and become exceptions) instead of killing the job silently.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    check_mpi(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
    check_mpi(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
    comm_ = new MPI_Comm(MPI_COMM_WORLD);
    mpi_ = true;
}

Comm::~Comm() {
    if (!comm_) return;
    int finalized = 0;
    MPI_Finalized(&finalized);
    MPI_Comm c = native_comm(comm_);
    if (!finalized && c != MPI_COMM_WORLD) MPI_Comm_free(&c);
    delete static_cast<MPI_Comm*>(comm_);
}

std::unique_ptr<Comm> Comm::split(int color) {
    std::unique_ptr<Comm> out(new Comm(Private{}));
    if (!mpi_) return out;
    MPI_Comm* c = new MPI_Comm;
    check_mpi(MPI_Comm_split(native_comm(comm_), color, rank_, c), "MPI_Comm_split");
    MPI_Comm_set_errhandler(*c, MPI_ERRORS_RETURN);
    out->comm_ = c;
    out->mpi_ = true;
    check_mpi(MPI_Comm_rank(*c, &out->rank_), "MPI_Comm_rank");
    check_mpi(MPI_Comm_size(*c, &out->size_), "MPI_Comm_size");
    return out;
}

Comm& Comm::world() {
    static Comm c;
    return c;
}

// Large buffers go in pieces: MPI counts are int. f(offset, count) per piece.
template <class F>
static void in_pieces(int64_t n, F f) {
    const int64_t piece = int64_t(1) << 28;
    for (int64_t off = 0; off < n; off += piece) f(off, int(std::min(piece, n - off)));
}

template <class T>
static void allreduce_sum(MPI_Comm comm, T* data, int64_t n, MPI_Datatype type) {
    in_pieces(n, [&](int64_t off, int count) {
        check_mpi(MPI_Allreduce(MPI_IN_PLACE, data + off, count, type, MPI_SUM, comm), "MPI_Allreduce");
    });
}

void Comm::sum(double* data, int64_t n) {
    if (mpi_) allreduce_sum(native_comm(comm_), data, n, MPI_DOUBLE);
}
void Comm::sum(float* data, int64_t n) {
    if (mpi_) allreduce_sum(native_comm(comm_), data, n, MPI_FLOAT);
}
void Comm::broadcast(int root, float* data, int64_t n) {
    if (!mpi_) return;
    in_pieces(n, [&](int64_t off, int count) {
        check_mpi(MPI_Bcast(data + off, count, MPI_FLOAT, root, native_comm(comm_)), "MPI_Bcast");
    });
}

void Comm::broadcast(int root, int64_t* data, int64_t n) {
    if (!mpi_) return;
    in_pieces(n, [&](int64_t off, int count) {
        check_mpi(MPI_Bcast(data + off, count, MPI_INT64_T, root, native_comm(comm_)), "MPI_Bcast");
    });
}

std::string Comm::broadcast_text(int root, const std::string& text) {
    if (!mpi_) return text;
    int64_t size = int64_t(text.size());
    broadcast(root, &size, 1);
    std::string out = rank_ == root ? text : std::string(size_t(size), '\0');
    check_mpi(MPI_Bcast(out.data(), int(size), MPI_CHAR, root, native_comm(comm_)), "MPI_Bcast");
    return out;
}

void Comm::send(int dest, int tag, const float* data, int64_t n) {
    if (!mpi_) throw std::logic_error("send: a world of one has no one to send to");
    in_pieces(n, [&](int64_t off, int count) {
        check_mpi(MPI_Send(data + off, count, MPI_FLOAT, dest, tag, native_comm(comm_)), "MPI_Send");
    });
}

void Comm::receive(int source, int tag, float* data, int64_t n) {
    if (!mpi_) throw std::logic_error("receive: a world of one has no one to hear from");
    in_pieces(n, [&](int64_t off, int count) {
        check_mpi(MPI_Recv(data + off, count, MPI_FLOAT, source, tag, native_comm(comm_), MPI_STATUS_IGNORE), "MPI_Recv");
    });
}

void Comm::send_text(int dest, int tag, const std::string& text) {
    if (!mpi_) throw std::logic_error("send_text: a world of one has no one to send to");
    check_mpi(MPI_Send(text.data(), int(text.size()), MPI_CHAR, dest, tag, native_comm(comm_)), "MPI_Send");
}

bool Comm::poll_text(int source, int tag, std::string& text, int* from, int* got_tag) {
    if (!mpi_) return false;
    int ready = 0;
    MPI_Status st;
    check_mpi(MPI_Iprobe(source < 0 ? MPI_ANY_SOURCE : source, tag < 0 ? MPI_ANY_TAG : tag, native_comm(comm_), &ready, &st),
          "MPI_Iprobe");
    if (!ready) return false;
    int n = 0;
    MPI_Get_count(&st, MPI_CHAR, &n);
    text.assign(size_t(n), '\0');
    check_mpi(MPI_Recv(&text[0], n, MPI_CHAR, st.MPI_SOURCE, st.MPI_TAG, native_comm(comm_), MPI_STATUS_IGNORE), "MPI_Recv");
    if (from) *from = st.MPI_SOURCE;
    if (got_tag) *got_tag = st.MPI_TAG;
    return true;
}

std::string Comm::receive_text(int source, int tag, int* from, int* got_tag) {
    std::string text;
    while (!poll_text(source, tag, text, from, got_tag)) {
        if (!mpi_) throw std::logic_error("receive_text: a world of one has no one to hear from");
        usleep(500);
    }
    return text;
}

bool Comm::all_equal(uint64_t value) {
    if (!mpi_) return true;
    uint64_t lo = value, hi = value;
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_UINT64_T, MPI_MIN, native_comm(comm_)), "MPI_Allreduce");
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_UINT64_T, MPI_MAX, native_comm(comm_)), "MPI_Allreduce");
    return lo == hi;
}

int Comm::max(int value) {
    if (mpi_) check_mpi(MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_INT, MPI_MAX, native_comm(comm_)), "MPI_Allreduce");
    return value;
}
void Comm::barrier() {
    if (mpi_) check_mpi(MPI_Barrier(native_comm(comm_)), "MPI_Barrier");
}
void Comm::abort(int code) {
    if (mpi_) MPI_Abort(MPI_COMM_WORLD, code);
    std::exit(code);
}
void Comm::finalize() {
    if (mpi_) {
        MPI_Finalize();
        mpi_ = false;
    }
}

}  // namespace unet

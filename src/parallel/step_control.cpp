#include "unet/parallel/step_control.h"

#include <unistd.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "mpi_call.h"

namespace unet {

namespace {

constexpr int kControlTag = 17;
constexpr int kArriveTag = 18;

// The message on the wire: the step, then the sums, then the two flags (all as doubles).
constexpr int kWire = 1 + StepControl::kSums + 2;
using Wire = std::array<double, kWire>;

Wire pack(int64_t step, const StepControl& m) {
    Wire w{};
    w[0] = double(step);
    std::copy(m.sums.begin(), m.sums.end(), w.begin() + 1);
    w[kWire - 2] = m.stop;
    w[kWire - 1] = m.checkpoint;
    return w;
}

StepControl unpack(const Wire& w) {
    StepControl m;
    std::copy(w.begin() + 1, w.begin() + 1 + StepControl::kSums, m.sums.begin());
    m.stop = int(w[kWire - 2]);
    m.checkpoint = int(w[kWire - 1]);
    return m;
}

// Waits for `req` (one message from each rank 1..size-1); throws naming the silent ones. The
// clock starts at the call or, when `from_first_worker`, at the first worker's message (the
// root's own arrival, if it is a worker: first_worker 0).
void wait_all(std::vector<MPI_Request>& req, const std::string& what, bool from_first_worker, double timeout_s,
              int first_worker) {
    const int others = int(req.size());
    std::vector<int> done(req.size(), 0);
    double start = !from_first_worker || first_worker == 0 ? MPI_Wtime() : -1;
    for (int left = others; left > 0;) {
        for (int r = 1; r <= others; ++r) {
            if (done[size_t(r - 1)]) continue;
            check_mpi(MPI_Test(&req[size_t(r - 1)], &done[size_t(r - 1)], MPI_STATUS_IGNORE), "MPI_Test");
            if (!done[size_t(r - 1)]) continue;
            --left;
            if (start < 0 && r >= first_worker) start = MPI_Wtime();
        }
        if (!left) break;
        if (timeout_s > 0 && start >= 0 && MPI_Wtime() - start > timeout_s) {
            std::string missing;
            bool servers_missing = false;
            for (int r = 1; r <= others; ++r) {
                if (done[size_t(r - 1)]) continue;
                missing += (missing.empty() ? "" : ", ") + std::to_string(r);
                servers_missing = servers_missing || r < first_worker;
            }
            throw std::runtime_error(std::string(servers_missing ? "rank " : "worker rank ") + missing +
                                     " sent nothing for " + what + " within --step_timeout " +
                                     std::to_string(int(timeout_s)) +
                                     (from_first_worker ? " s of the first worker" : " s") +
                                     "; stopping the job (the last checkpoint is intact)");
        }
        usleep(200);  // a core is precious on small machines; 0.2 ms is far below a step
    }
}

}  // namespace

void StepControl::merge(const StepControl& o) {
    for (int i = 0; i < kSums; ++i) sums[size_t(i)] += o.sums[size_t(i)];
    stop = std::max(stop, o.stop);
    checkpoint = std::max(checkpoint, o.checkpoint);
}

ControlChannel::ControlChannel(Comm& comm, double timeout_s, int first_worker)
    : comm_(comm), timeout_s_(timeout_s), first_worker_(first_worker) {}

void ControlChannel::exchange(int64_t step, StepControl& msg) {
    if (!comm_.mpi_comm() || comm_.size() == 1) return;
    const MPI_Comm comm = native_comm(comm_.mpi_comm());
    Wire mine = pack(step, msg);
    if (!comm_.is_root()) {
        check_mpi(MPI_Send(mine.data(), kWire, MPI_DOUBLE, 0, kControlTag, comm), "MPI_Send");
    } else {
        const int others = comm_.size() - 1;
        std::vector<Wire> got(static_cast<size_t>(others));
        std::vector<MPI_Request> req(static_cast<size_t>(others));
        for (int r = 1; r <= others; ++r)
            check_mpi(MPI_Irecv(got[size_t(r - 1)].data(), kWire, MPI_DOUBLE, r, kControlTag, comm, &req[size_t(r - 1)]),
                      "MPI_Irecv");
        wait_all(req, "step " + std::to_string(step), false, timeout_s_, first_worker_);
        StepControl total = msg;
        for (int r = 1; r <= others; ++r) {
            if (int64_t(got[size_t(r - 1)][0]) != step)
                throw std::runtime_error("rank " + std::to_string(r) + " is at step " +
                                         std::to_string(int64_t(got[size_t(r - 1)][0])) + ", rank 0 at " +
                                         std::to_string(step));
            total.merge(unpack(got[size_t(r - 1)]));
        }
        mine = pack(step, total);
    }
    check_mpi(MPI_Bcast(mine.data(), kWire, MPI_DOUBLE, 0, comm), "MPI_Bcast");
    msg = unpack(mine);
}

void ControlChannel::arrive(const std::string& what) {
    if (!comm_.mpi_comm() || comm_.size() == 1) return;
    const MPI_Comm comm = native_comm(comm_.mpi_comm());
    int here = 1;
    if (!comm_.is_root()) {
        check_mpi(MPI_Send(&here, 1, MPI_INT, 0, kArriveTag, comm), "MPI_Send");
        return;
    }
    std::vector<int> got(size_t(comm_.size() - 1));
    std::vector<MPI_Request> req(got.size());
    for (int r = 1; r < comm_.size(); ++r)
        check_mpi(MPI_Irecv(&got[size_t(r - 1)], 1, MPI_INT, r, kArriveTag, comm, &req[size_t(r - 1)]), "MPI_Irecv");
    wait_all(req, what, true, timeout_s_, first_worker_);
}

}  // namespace unet

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
        const double start = MPI_Wtime();
        for (int all = 0;;) {
            check_mpi(MPI_Testall(others, req.data(), &all, MPI_STATUSES_IGNORE), "MPI_Testall");
            if (all) break;
            if (timeout_s_ > 0 && MPI_Wtime() - start > timeout_s_) {
                std::string missing;
                bool servers_missing = false;
                for (int r = 1; r <= others; ++r) {
                    int done = 0;  // Testall leaves every request as it was when not all are done
                    if (req[size_t(r - 1)] != MPI_REQUEST_NULL)
                        check_mpi(MPI_Test(&req[size_t(r - 1)], &done, MPI_STATUS_IGNORE), "MPI_Test");
                    if (req[size_t(r - 1)] == MPI_REQUEST_NULL || done) continue;
                    missing += (missing.empty() ? "" : ", ") + std::to_string(r);
                    servers_missing = servers_missing || r < first_worker_;
                }
                throw std::runtime_error(std::string(servers_missing ? "rank " : "worker rank ") + missing +
                                         " sent nothing for step " + std::to_string(step) + " within --step_timeout " +
                                         std::to_string(int(timeout_s_)) +
                                         " s; stopping the job (the last checkpoint is intact)");
            }
            usleep(200);  // a core is precious on small machines; 0.2 ms is far below a step
        }
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

}  // namespace unet

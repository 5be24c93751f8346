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
constexpr int kHeartbeatTag = 19;

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

// The one line for ranks that sent nothing for `what` (servers are "rank", workers "worker rank").
std::runtime_error silent_ranks(const std::vector<int>& silent, int first_worker, const std::string& what,
                                double timeout_s, const std::string& note) {
    std::string list;
    bool servers = false;
    for (int r : silent) {
        list += (list.empty() ? "" : ", ") + std::to_string(r);
        servers = servers || r < first_worker;
    }
    return std::runtime_error(std::string(servers ? "rank " : "worker rank ") + list + " sent nothing for " + what +
                              " within --step_timeout " + std::to_string(int(timeout_s)) + " s" + note +
                              "; stopping the job (the last checkpoint is intact)");
}

// Waits for `req` (one message from each rank 1..size-1); throws naming the ranks silent for
// timeout_s since the call.
void wait_all(std::vector<MPI_Request>& req, const std::string& what, double timeout_s, int first_worker) {
    const int others = int(req.size());
    std::vector<int> done(req.size(), 0);
    const double start = MPI_Wtime();
    for (int left = others; left > 0;) {
        for (int r = 1; r <= others; ++r) {
            if (done[size_t(r - 1)]) continue;
            check_mpi(MPI_Test(&req[size_t(r - 1)], &done[size_t(r - 1)], MPI_STATUS_IGNORE), "MPI_Test");
            if (!done[size_t(r - 1)]) continue;
            --left;
        }
        if (!left) break;
        if (timeout_s > 0 && MPI_Wtime() - start > timeout_s) {
            std::vector<int> missing;
            for (int r = 1; r <= others; ++r)
                if (!done[size_t(r - 1)]) missing.push_back(r);
            throw silent_ranks(missing, first_worker, what, timeout_s, "");
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
        wait_all(req, "step " + std::to_string(step), timeout_s_, first_worker_);
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

void ControlChannel::heartbeat() {
    if (!comm_.mpi_comm() || comm_.size() == 1 || comm_.is_root() || timeout_s_ <= 0) return;
    const double now = MPI_Wtime();
    if (last_heartbeat_ >= 0 && now - last_heartbeat_ < timeout_s_ / 4) return;
    last_heartbeat_ = now;
    const int n = ++heartbeats_sent_;
    check_mpi(MPI_Send(&n, 1, MPI_INT, 0, kHeartbeatTag, native_comm(comm_.mpi_comm())), "MPI_Send");
}

void ControlChannel::arrive(const std::string& what) {
    if (!comm_.mpi_comm() || comm_.size() == 1) return;
    const MPI_Comm comm = native_comm(comm_.mpi_comm());
    if (!comm_.is_root()) {
        // The count lets the root take exactly this validation's heartbeats off the wire.
        int sent = heartbeats_sent_;
        heartbeats_sent_ = 0;
        last_heartbeat_ = -1;
        check_mpi(MPI_Send(&sent, 1, MPI_INT, 0, kArriveTag, comm), "MPI_Send");
        return;
    }
    const int others = comm_.size() - 1;
    std::vector<int> announced(size_t(others), -1), heard(size_t(others), 0), done(size_t(others), 0);
    std::vector<MPI_Request> req(static_cast<size_t>(others));
    for (int r = 1; r <= others; ++r)
        check_mpi(MPI_Irecv(&announced[size_t(r - 1)], 1, MPI_INT, r, kArriveTag, comm, &req[size_t(r - 1)]),
                  "MPI_Irecv");
    // Silence is counted from here: the root gets here after its own validation (if it has one),
    // when the heartbeats sent meanwhile are waiting and are taken at once.
    std::vector<double> last(size_t(others), MPI_Wtime());
    const auto take_heartbeat = [&](int r) {
        int n = 0;
        check_mpi(MPI_Recv(&n, 1, MPI_INT, r, kHeartbeatTag, comm, MPI_STATUS_IGNORE), "MPI_Recv");
        ++heard[size_t(r - 1)];
        last[size_t(r - 1)] = MPI_Wtime();
    };
    for (int left = others; left > 0;) {
        for (int r = 1; r <= others; ++r) {
            if (done[size_t(r - 1)]) continue;
            for (int waiting = 1; waiting;) {
                check_mpi(MPI_Iprobe(r, kHeartbeatTag, comm, &waiting, MPI_STATUS_IGNORE), "MPI_Iprobe");
                if (waiting) take_heartbeat(r);
            }
            int arrived = 0;
            check_mpi(MPI_Test(&req[size_t(r - 1)], &arrived, MPI_STATUS_IGNORE), "MPI_Test");
            if (!arrived) continue;
            // Sent before the arrival: on the wire already, none is left behind for the next time.
            while (heard[size_t(r - 1)] < announced[size_t(r - 1)]) take_heartbeat(r);
            done[size_t(r - 1)] = 1;
            --left;
        }
        if (!left) break;
        if (timeout_s_ > 0) {
            const double now = MPI_Wtime();
            std::vector<int> silent;
            for (int r = 1; r <= others; ++r)
                if (!done[size_t(r - 1)] && now - last[size_t(r - 1)] > timeout_s_) silent.push_back(r);
            if (!silent.empty()) throw silent_ranks(silent, first_worker_, what, timeout_s_, " (no heartbeat either)");
        }
        usleep(200);
    }
}

}  // namespace unet

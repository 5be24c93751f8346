#include "unet/train/rank_role.h"

#include <algorithm>
#include <functional>
#include <string>

#include "unet/core/check.h"
#include "unet/train/flags.h"

namespace unet {

RunSetup plan_ranks(const TrainOptions& opts, Comm& comm) {
    RunSetup s;
    s.o = opts;
    const TrainOptions& o = s.o;
    if (comm.size() > 1 && o.sync == "ps") {
        if (o.num_ps >= comm.size())
            throw UsageError("--num_ps: " + std::to_string(o.num_ps) + " server ranks leave no worker among " +
                             std::to_string(comm.size()) + " ranks (start more ranks or lower --num_ps)");
        s.servers = o.num_ps;
    }
    s.workers = comm.size() - s.servers;
    s.worker = comm.rank() - s.servers;
    s.exchange.kind = comm.size() < 2        ? ExchangeConfig::Kind::local
                      : s.servers > 0        ? ExchangeConfig::Kind::parameter_server
                                             : ExchangeConfig::Kind::allreduce;
    s.exchange.servers = s.servers;
    s.exchange.bucket_floats = int64_t(o.bucket_mb * 1024 * 1024 / sizeof(float));
    s.exchange.timeout_s = o.step_timeout;
    return s;
}

RunSetup plan_run(const TrainOptions& opts, Comm& comm) {
    RunSetup s = plan_ranks(opts, comm);
    const TrainOptions& o = s.o;
    if (o.batch_size < s.workers)
        throw UsageError("--batch_size: the global batch (" + std::to_string(o.batch_size) +
                         ") must be at least the number of workers (" + std::to_string(s.workers) + ")");
    // Every rank must train the same thing: compare a hash of the resolved configuration.
    if (!comm.all_equal(std::hash<std::string>{}(settings_text(o, kConfig | kAgreement))))
        throw UsageError("the ranks were started with different settings (compare their command lines; every rank "
                         "needs the same flags, --logdir and --data)");
    return s;
}

void agree_on_data(RunSetup& s, Comm& comm) {
    // in_channels, spatial rank, up to 3 sizes, training samples, validation samples, steps,
    // whole-volume validation's period
    int64_t v[9] = {s.o.model.in_channels, int64_t(s.o.input_size.size()), 0, 0, 0,
                    s.train_samples, s.val_samples, s.steps_per_epoch, s.whole_every};
    std::copy_n(s.o.input_size.begin(), std::min<size_t>(3, s.o.input_size.size()), v + 2);
    comm.broadcast(s.first_worker(), v, 9);
    s.o.model.in_channels = v[0];
    s.o.input_size.assign(v + 2, v + 2 + std::min<int64_t>(3, v[1]));
    s.train_samples = v[5], s.val_samples = v[6], s.steps_per_epoch = v[7];
    s.whole_every = int(v[8]);
    s.whole_window.roi = s.o.input_size;  // the training patch (the servers' banner shows it too)
}

std::unique_ptr<RankRole> make_rank_role(const RunSetup& s, Comm& comm, ControlChannel& control) {
    return s.worker < 0 ? make_server_role(s, comm, control) : make_worker_role(s, comm, control);
}

}  // namespace unet

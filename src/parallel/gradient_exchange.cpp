#include "unet/parallel/gradient_exchange.h"

#include <chrono>

#include "unet/core/check.h"
#include "unet/parallel/allreduce_exchange.h"
#include "unet/parallel/ps_exchange.h"

namespace unet {

ExchangeTimes LocalExchange::wait(int64_t, float lr) {
    const auto t0 = std::chrono::steady_clock::now();
    opt_.step(params_, grads_, lr);
    ExchangeTimes t;
    t.update_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return t;
}

std::unique_ptr<GradientExchange> make_gradient_exchange(Comm& comm, const ExchangeConfig& c, Optimizer& opt,
                                                         float* params, float* grads, int64_t size) {
    switch (c.kind) {
        case ExchangeConfig::Kind::local: return std::make_unique<LocalExchange>(opt, params, grads);
        case ExchangeConfig::Kind::allreduce:
            return std::make_unique<AllreduceExchange>(comm, opt, params, grads, size, c.bucket_floats, c.timeout_s);
        case ExchangeConfig::Kind::parameter_server:
            return std::make_unique<PsWorkerExchange>(comm, c.servers, params, grads, size, c.bucket_floats);
    }
    UNET_CHECK(false, "unknown exchange kind");
    return nullptr;
}

}  // namespace unet

#include "unet/nn/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "unet/core/check.h"

namespace unet {

float LrSchedule::at(int64_t step) const {
    double lr = learningrate;
    if (!const_learningrate) lr *= std::pow(double(lr_fraction), double(step) / double(decay_steps));
    if (warmup_steps > 0) lr *= std::min(1.0, double(step + 1) / double(warmup_steps));
    if (scale_by_workers) lr *= num_workers;
    return float(lr);
}

void LrSchedule::validate() const {
    if (!(learningrate > 0)) throw UsageError("--learningrate: expected a positive value");
    if (decay_steps < 1) throw UsageError("--decay_steps: expected at least 1, got " + std::to_string(decay_steps));
    if (!(lr_fraction > 0 && lr_fraction <= 1)) throw UsageError("--lr_fraction: expected a value in (0, 1]");
    if (warmup_steps < 0) throw UsageError("--warmup_steps: expected 0 or more");
}

}  // namespace unet

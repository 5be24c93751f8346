// Learning-rate schedule, evaluated at the optimizer step about to be taken (0-based).
//   lr(step) = base * warmup(step) * decay(step) * scale
//   decay    Intel's continuous exponential decay lr_fraction^(step / decay_steps)
//            (TensorFlow exponential_decay, staircase=False); 1 with const_learningrate
//   warmup   min(1, (step + 1) / warmup_steps) for warmup_steps > 0
//   scale    num_workers with scale_by_workers (the linear scaling rule), else 1
// Intel's defaults: learningrate 0.0005, decay_steps 150, lr_fraction 0.25.
#pragma once

#include <cstdint>

namespace unet {

struct LrSchedule {
    float learningrate = 0.0005f;
    bool const_learningrate = false;
    int64_t decay_steps = 150;
    float lr_fraction = 0.25f;
    int64_t warmup_steps = 0;
    bool scale_by_workers = false;
    int num_workers = 1;

    float at(int64_t step) const;
    void validate() const;  // throws UsageError naming the flag
};

}  // namespace unet

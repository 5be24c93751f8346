// unet_train: trains a 2D or 3D UNet (single process for now; rank 0 as parameter server and
// ranks 1..N-1 as workers arrive with the distributed trainer). Errors end in one line:
// usage errors exit 2, everything else 1.
#include <omp.h>
#include <xmmintrin.h>

#include <cstdio>
#include <exception>
#include <iostream>

#include "unet/cli/program.h"
#include "unet/cli/train_options.h"
#include "unet/core/check.h"
#include "unet/train/trainer.h"

int main(int argc, char** argv) {
    return unet::run_program("unet_train", [&] {
        unet::TrainOptions opts;
        if (!unet::parse_train_options(argc, argv, opts)) return 0;
        if (opts.num_threads > 0) omp_set_num_threads(opts.num_threads);
        // Flush denormals to zero on every compute thread: tiny activations and gradients late in
        // training otherwise run through microcode assists, many times slower.
        _mm_setcsr(_mm_getcsr() | 0x8040);
#pragma omp parallel
        _mm_setcsr(_mm_getcsr() | 0x8040);
        if (opts.benchmark) {
            const unet::BenchmarkResult r = unet::run_benchmark(opts);
            std::cout << r.json(opts) << std::endl;
            return 0;
        }
        unet::run_local_training(opts);
        return 0;
    });
}

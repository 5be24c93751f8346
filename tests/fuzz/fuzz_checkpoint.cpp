// libFuzzer harness: the checkpoint reader (read_checkpoint), then what unet_predict and --resume do
// with it: its settings parsed (options_of), a model of them built and the parameters, buffers,
// optimizer state and counters restored into it (restore_state).
#include <cstdint>
#include <cstdio>
#include <exception>

#include "fuzz_child.h"
#include "fuzz_input.h"
#include "unet/io/checkpoint.h"
#include "unet/nn/optimizer.h"
#include "unet/nn/unet.h"
#include "unet/train/training_state.h"

namespace {

// A first-wave input's child read ends within fuzz::kChildCpuMilliseconds of CPU (see fuzz_child.h).
[[maybe_unused]] const bool children_bounded = fuzz::bound_forked_children();

// A model this small builds in well under a millisecond; a mutated setting may ask a large valid
// one, which is only slow.
bool small_model(const unet::UNetConfig& m) {
    return m.base_filters > 0 && m.base_filters <= 64 && m.depth >= 0 && m.depth <= 4 &&
           (m.base_filters << m.depth) <= 64 && m.in_channels <= 16 && m.out_channels <= 8;
}

void exercise(const std::string& path) {
    const unet::Checkpoint c = unet::read_checkpoint(path);
    const unet::TrainOptions o = unet::options_of(c, path);
    if (!small_model(o.model)) return;
    unet::UNet model(o.model);
    unet::Optimizer opt(o.optimizer, model.store().size());
    unet::restore_state(c, path, model.store(), opt);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string path = fuzz::as_file(data, size, "checkpoint.h5");
    try {
        exercise(path);
    } catch (const std::exception&) {
    }
    // Removed, so that the next input is a new file: HDF5 recognises a file it still holds open
    // (an id a bug left open) by its inode, and would hand back the old one.
    std::remove(path.c_str());
    return 0;
}

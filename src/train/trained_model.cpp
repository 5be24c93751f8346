#include "unet/train/trained_model.h"

#include <unistd.h>

#include "unet/core/check.h"
#include "unet/core/shared_input_error.h"
#include "unet/data/hdf5_dataset.h"
#include "unet/nn/optimizer.h"
#include "unet/train/training_state.h"

namespace unet {

Dims TrainedModel::training_window() const {
    return options.patch.empty() ? options.input_size : options.patch;
}

TrainedModel load_trained_model(const std::string& checkpoint) {
    if (access(checkpoint.c_str(), R_OK) != 0) throw UsageError("--checkpoint: " + checkpoint + ": no such readable file");
    TrainedModel t;
    t.path = checkpoint;
    try {
        const Checkpoint c = read_checkpoint(checkpoint);
        t.options = options_of(c, checkpoint);
        t.model = std::make_unique<UNet>(t.options.model);
        Optimizer opt(t.options.optimizer, t.model->store().size());
        restore_state(c, checkpoint, t.model->store(), opt);
        if (c.strings.count("data")) t.options.data = c.strings.at("data");
        if (c.strings.count("patch")) t.options.patch = parse_size_list("--patch", c.strings.at("patch"));
        if (c.strings.count("preprocessing")) {
            t.preprocessing = InputPreprocessing::from_text(c.strings.at("preprocessing"), checkpoint);
            t.has_preprocessing = true;
        }
    } catch (const WrongCheckpoint& e) {  // not a checkpoint of ours: typed wrong (exit 2)
        throw UsageError(std::string("--checkpoint: ") + e.what());
    } catch (const UsageError&) {
        throw;
    } catch (const std::runtime_error& e) {
        // Anything else (a damaged file) is found while reading: exit 1, naming the file; every
        // rank of unet_predict under mpirun reads it alike, and rank 0 alone says it.
        throw SharedInputError(e.what());
    }
    // Checkpoints written before the record existed: the dataset file, when it is at hand.
    if (!t.has_preprocessing && !t.options.data.empty() && access(t.options.data.c_str(), R_OK) == 0) {
        t.preprocessing = preprocessing_of(DatasetReader(t.options.data));
        t.has_preprocessing = true;
    }
    return t;
}

}  // namespace unet

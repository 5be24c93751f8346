// A trained model read back from a unet_train checkpoint for inference (unet_predict,
// unet_visualize): the network with its parameters and batch-norm statistics, the options it was
// trained with, the training window and the input preprocessing.
#pragma once

#include <memory>
#include <string>

#include "unet/train/train_options.h"
#include "unet/infer/case_prediction.h"
#include "unet/nn/unet.h"

namespace unet {

struct TrainedModel {
    std::string path;
    TrainOptions options;
    std::unique_ptr<UNet> model;
    // The preprocessing of the data it was trained on: the checkpoint's record of it, or (older
    // checkpoints) that of the dataset file it names, when that file is at hand. has_preprocessing
    // false: none known (trained on generated data, or an old checkpoint whose dataset is elsewhere).
    InputPreprocessing preprocessing;
    bool has_preprocessing = false;
    // The window it was trained on: --patch, else --input_size.
    Dims training_window() const;
};

// Throws UsageError naming --checkpoint when the file is missing or not a checkpoint of ours (or
// of another model), std::runtime_error naming the file when it is damaged.
TrainedModel load_trained_model(const std::string& checkpoint);

}  // namespace unet

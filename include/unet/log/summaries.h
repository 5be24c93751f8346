// Builders for the TensorBoard summary values unet_train writes, each in the form TensorBoard's
// plugins read: scalars as simple_value, PNG images, histograms, text (plugin "text": a string
// tensor, rendered as Markdown) and the HParams plugin's data (plugin "hparams": an empty float
// tensor whose metadata carries the HParamsPluginData, under the tags "_hparams_/...").
#pragma once

#include <string>
#include <variant>
#include <vector>

#include "proto/hparams.pb.h"
#include "proto/summary.pb.h"
#include "unet/log/histogram.h"
#include "unet/log/image_writers.h"

namespace unet {

tb::Summary::Value scalar_summary(const std::string& tag, double value);
// PNG-encoded with libpng; throws std::runtime_error for an empty image.
tb::Summary::Value image_summary(const std::string& tag, const RgbImage& image);
tb::Summary::Value histogram_summary(const std::string& tag, const Histogram& histogram);
tb::Summary::Value text_summary(const std::string& tag, const std::string& markdown);

// One hyperparameter: a number, a string or a bool (the HParams table's column types).
struct HParam {
    std::string name;
    std::variant<double, std::string, bool> value;
};

// The session of one run: its hyperparameters when it starts, its status when it ends. The run
// directory holding these is the session; its metrics are scalars in its sub-runs (train/,
// validation/), which TensorBoard's HParams tab shows beside the hyperparameters.
tb::Summary::Value hparams_session_start(const std::vector<HParam>& hparams, double start_time_secs,
                                         const std::string& group_name = "");
tb::Summary::Value hparams_session_end(tb::hparams::Status status, double end_time_secs);

// An optional experiment for the top of a log directory (e.g. a tuning run): the table's columns.
// Without one TensorBoard infers the columns from the sessions. A numeric hparam with
// `interval` set gets [min, max]; strings and bools with `choices` get a discrete domain.
struct HParamColumn {
    std::string name;
    tb::hparams::DataType type = tb::hparams::DATA_TYPE_FLOAT64;
    std::vector<std::variant<double, std::string, bool>> choices;  // discrete domain (optional)
    bool has_interval = false;
    double min = 0, max = 0;
};
struct MetricColumn {
    std::string tag, group;  // scalar `tag` in the sub-run `group` ("train", "validation")
    tb::hparams::DatasetType dataset = tb::hparams::DATASET_UNKNOWN;
};
tb::Summary::Value hparams_experiment(const std::vector<HParamColumn>& hparams, const std::vector<MetricColumn>& metrics,
                                      double time_created_secs);

// Tags the HParams plugin looks for.
extern const char* const kHParamsExperimentTag;
extern const char* const kHParamsSessionStartTag;
extern const char* const kHParamsSessionEndTag;

}  // namespace unet

// `--config file.json`: DistMIS's JSON configuration read as unet_train settings. Its keys map
// onto our flags: num_replicas and batch_size_per_replica (the global batch becomes their
// product; under --tune a trial gets num_replicas workers, plus a parameter server with --sync ps),
// num_epochs -> epochs, debug -> a progress line every step. Any other key must be one of our
// flag names. Returns "key = value" lines for the INI parser; throws UsageError.
#pragma once

#include <string>

namespace unet {

std::string json_config_to_settings(const std::string& json_text, const std::string& file);
bool is_json_config(const std::string& path);  // by the .json suffix

}  // namespace unet

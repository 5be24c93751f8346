#include "unet/train/json_config.h"

#include <map>
#include <nlohmann/json.hpp>

#include "unet/core/check.h"

namespace unet {

bool is_json_config(const std::string& path) {
    return path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0;
}

std::string json_config_to_settings(const std::string& json_text, const std::string& file) {
    static const std::map<std::string, std::string> renamed = {{"num_epochs", "epochs"}};
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(json_text);
    } catch (const nlohmann::json::exception& e) {
        throw UsageError("--config: " + file + " is not valid JSON (" + e.what() + ")");
    }
    if (!j.is_object()) throw UsageError("--config: " + file + ": expected a JSON object of settings");
    std::string out;
    for (auto it = j.begin(); it != j.end(); ++it) {
        const auto r = renamed.find(it.key());
        const std::string key = r == renamed.end() ? it.key() : r->second;
        const nlohmann::json& v = it.value();
        std::string text;
        if (v.is_string()) text = v.get<std::string>();
        else if (v.is_boolean()) text = v.get<bool>() ? "true" : "false";
        else if (v.is_number_integer()) text = std::to_string(v.get<long long>());
        else if (v.is_number()) text = v.dump();
        else if (v.is_array()) {  // [128, 128] -> "128,128" (sizes)
            for (const auto& e : v) text += (text.empty() ? "" : ",") + (e.is_string() ? e.get<std::string>() : e.dump());
        } else
            throw UsageError("--config: " + file + ": " + it.key() + " has a value we cannot use (" + v.dump() + ")");
        out += key + " = " + text + "\n";
    }
    return out;
}

}  // namespace unet

#include "unet/data/msd_index.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "unet/data/nifti.h"

namespace unet {

namespace fs = std::filesystem;

namespace {

// MSD tarballs carry macOS resource forks ("._BRATS_001.nii.gz") next to the real files.
bool hidden_name(const std::string& rel) {
    const std::string base = fs::path(rel).filename().string();
    return base.empty() || base[0] == '.' || base[0] == '_';
}

std::string resolve(const fs::path& dir, const std::string& rel) {
    const fs::path p(rel);
    return (p.is_absolute() ? p : (dir / p)).lexically_normal().string();
}

}  // namespace

MsdIndex read_msd_index(const std::string& dir) {
    const fs::path root(dir);
    const fs::path json_path = root / "dataset.json";
    const std::string jp = json_path.string();
    std::error_code ec;
    if (!fs::is_directory(root, ec)) throw std::runtime_error("MSD dataset " + dir + ": not a directory");
    if (!fs::is_regular_file(json_path, ec)) throw std::runtime_error("MSD dataset " + jp + ": file not found");
    std::ifstream in(json_path);
    if (!in) throw std::runtime_error("MSD dataset " + jp + ": cannot open for reading");
    std::stringstream text;
    text << in.rdbuf();

    nlohmann::json j;
    try {
        j = nlohmann::json::parse(text.str());
    } catch (const nlohmann::json::parse_error& e) {
        // e.what() is "[json.exception.parse_error.101] parse error at line 3, column 5: ..."
        std::string what = e.what();
        const auto pos = what.find("] ");
        if (pos != std::string::npos) what = what.substr(pos + 2);
        throw std::runtime_error("MSD dataset " + jp + ": not valid JSON: " + what);
    }
    if (!j.is_object()) throw std::runtime_error("MSD dataset " + jp + ": expected a JSON object at the top level");

    MsdIndex index;
    if (j.contains("name") && j["name"].is_string()) index.name = j["name"].get<std::string>();
    if (j.contains("modality") && (j["modality"].is_object() || j["modality"].is_array()))
        index.modalities = int(j["modality"].size());
    index.labels_json = j.contains("labels") ? j["labels"].dump() : "{}";

    if (!j.contains("training") || !j["training"].is_array())
        throw std::runtime_error("MSD dataset " + jp + ": no \"training\" list");
    const auto& training = j["training"];
    for (size_t i = 0; i < training.size(); ++i) {
        const auto& e = training[i];
        const std::string where = "MSD dataset " + jp + ": training[" + std::to_string(i) + "]";
        if (!e.is_object() || !e.contains("image") || !e["image"].is_string() || !e.contains("label") ||
            !e["label"].is_string())
            throw std::runtime_error(where + ": expected {\"image\": \"...\", \"label\": \"...\"}");
        const std::string image_rel = e["image"].get<std::string>();
        const std::string label_rel = e["label"].get<std::string>();
        if (hidden_name(image_rel) || hidden_name(label_rel)) continue;
        MsdCase c;
        c.id = nifti_case_id(image_rel);
        c.image = resolve(root, image_rel);
        c.label = resolve(root, label_rel);
        if (!fs::is_regular_file(c.image, ec))
            throw std::runtime_error(where + " (" + c.id + "): image file " + c.image + " does not exist");
        if (!fs::is_regular_file(c.label, ec))
            throw std::runtime_error(where + " (" + c.id + "): label file " + c.label + " does not exist");
        index.cases.push_back(std::move(c));
    }
    return index;
}

}  // namespace unet

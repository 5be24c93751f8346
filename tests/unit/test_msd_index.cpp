// The MSD dataset.json index: fields, path resolution, skipped macOS resource forks ('._x'), and
// one clear error for each way the index can be wrong.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "unet/data/msd_index.h"

using namespace unet;
namespace fs = std::filesystem;

namespace {

class MsdDir {
   public:
    MsdDir() {
        root_ = fs::temp_directory_path() / ("unet_test_msd_" + std::to_string(::getpid()) + "_" + std::to_string(n_++));
        fs::remove_all(root_);
        fs::create_directories(root_ / "imagesTr");
        fs::create_directories(root_ / "labelsTr");
    }
    ~MsdDir() {
        std::error_code ec;
        fs::remove_all(root_, ec);
    }
    std::string dir() const { return root_.string(); }
    void touch(const std::string& rel) { std::ofstream(root_ / rel) << "x"; }
    void write_json(const std::string& text) { std::ofstream(root_ / "dataset.json") << text; }
    // A BrainTumour-like index over cases `ids` (files created), plus the resource-fork entries
    // the MSD tarball's dataset.json does not list but a careless one could.
    void standard(const std::vector<std::string>& ids, bool with_forks = true) {
        nlohmann::json training = nlohmann::json::array();
        for (const auto& id : ids) {
            touch("imagesTr/" + id + ".nii.gz");
            touch("labelsTr/" + id + ".nii.gz");
            training.push_back({{"image", "./imagesTr/" + id + ".nii.gz"}, {"label", "./labelsTr/" + id + ".nii.gz"}});
        }
        if (with_forks) {
            touch("imagesTr/._BRATS_009.nii.gz");  // present but skipped
            training.push_back({{"image", "./imagesTr/._BRATS_009.nii.gz"}, {"label", "./labelsTr/._BRATS_009.nii.gz"}});
            training.push_back({{"image", "./imagesTr/_hidden.nii.gz"}, {"label", "./labelsTr/_hidden.nii.gz"}});
            training.push_back({{"image", "./imagesTr/.DS_Store"}, {"label", "./labelsTr/.DS_Store"}});
        }
        nlohmann::json j = {{"name", "BrainTumour"},
                            {"modality", {{"0", "FLAIR"}, {"1", "T1w"}, {"2", "t1gd"}, {"3", "T2w"}}},
                            {"labels", {{"0", "background"}, {"1", "edema"}, {"2", "non-enhancing tumor"}, {"3", "enhancing tumour"}}},
                            {"numTraining", ids.size()},
                            {"training", training},
                            {"test", {"./imagesTs/BRATS_999.nii.gz"}}};
        write_json(j.dump(2));
    }

   private:
    static inline int n_ = 0;
    fs::path root_;
};

std::string error_of(const std::string& dir) {
    try {
        read_msd_index(dir);
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    return "";
}

void expect_error(const std::string& dir, const std::vector<std::string>& want) {
    const std::string msg = error_of(dir);
    ASSERT_FALSE(msg.empty()) << "no error";
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    for (const auto& w : want) EXPECT_NE(msg.find(w), std::string::npos) << "'" << msg << "' lacks '" << w << "'";
}

}  // namespace

TEST(MsdIndex, ReadsFieldsAndCasesInOrder) {
    MsdDir d;
    d.standard({"BRATS_001", "BRATS_002", "BRATS_010"});
    const MsdIndex idx = read_msd_index(d.dir());
    EXPECT_EQ(idx.name, "BrainTumour");
    EXPECT_EQ(idx.modalities, 4);
    const auto labels = nlohmann::json::parse(idx.labels_json);
    EXPECT_EQ(labels.size(), 4u);
    EXPECT_EQ(labels["3"], "enhancing tumour");
    ASSERT_EQ(idx.cases.size(), 3u);
    EXPECT_EQ(idx.cases[0].id, "BRATS_001");
    EXPECT_EQ(idx.cases[2].id, "BRATS_010");
    // "./imagesTr/x" resolves against the dataset directory, without the "./".
    EXPECT_EQ(idx.cases[1].image, (fs::path(d.dir()) / "imagesTr" / "BRATS_002.nii.gz").string());
    EXPECT_EQ(idx.cases[1].label, (fs::path(d.dir()) / "labelsTr" / "BRATS_002.nii.gz").string());
    for (const auto& c : idx.cases) {
        EXPECT_TRUE(fs::exists(c.image)) << c.image;
        EXPECT_EQ(c.image.find("/./"), std::string::npos) << c.image;
    }
}

TEST(MsdIndex, SkipsResourceForksAndHiddenNames) {
    MsdDir d;
    d.standard({"BRATS_001"}, true);
    const MsdIndex idx = read_msd_index(d.dir());
    ASSERT_EQ(idx.cases.size(), 1u);
    EXPECT_EQ(idx.cases[0].id, "BRATS_001");
}

TEST(MsdIndex, TrailingSlashAndNiiWithoutGz) {
    MsdDir d;
    d.touch("imagesTr/a.nii");
    d.touch("labelsTr/a.nii");
    d.write_json(R"({"name": "X", "training": [{"image": "imagesTr/a.nii", "label": "./labelsTr/a.nii"}]})");
    const MsdIndex idx = read_msd_index(d.dir() + "/");
    ASSERT_EQ(idx.cases.size(), 1u);
    EXPECT_EQ(idx.cases[0].id, "a");
    EXPECT_EQ(idx.modalities, 0);  // no "modality"
    EXPECT_EQ(idx.labels_json, "{}");
    EXPECT_TRUE(fs::exists(idx.cases[0].label));
}

TEST(MsdIndexErrors, MissingDirectoryAndDatasetJson) {
    MsdDir d;
    expect_error(d.dir(), {"dataset.json", "not found"});
    expect_error(d.dir() + "/nope", {"nope", "not a directory"});
}

TEST(MsdIndexErrors, InvalidJson) {
    MsdDir d;
    d.write_json("{\"name\": \"BrainTumour\",\n \"training\": [ {\"image\": }\n");
    expect_error(d.dir(), {"dataset.json", "not valid JSON", "line 2"});
    d.write_json("");
    expect_error(d.dir(), {"dataset.json", "not valid JSON"});
    d.write_json("[1, 2]");
    expect_error(d.dir(), {"dataset.json", "JSON object"});
}

TEST(MsdIndexErrors, MissingOrMalformedTraining) {
    MsdDir d;
    d.write_json(R"({"name": "BrainTumour", "numTraining": 0})");
    expect_error(d.dir(), {"dataset.json", "\"training\""});
    d.write_json(R"({"name": "BrainTumour", "training": {"image": "x"}})");
    expect_error(d.dir(), {"dataset.json", "\"training\""});
    d.write_json(R"({"training": [{"image": "./imagesTr/a.nii.gz"}]})");
    expect_error(d.dir(), {"dataset.json", "training[0]", "label"});
    d.write_json(R"({"training": ["./imagesTr/a.nii.gz"]})");
    expect_error(d.dir(), {"training[0]"});
}

TEST(MsdIndexErrors, ListedCaseWithoutImageOrLabelFile) {
    MsdDir d;
    d.standard({"BRATS_001", "BRATS_002"});
    fs::remove(fs::path(d.dir()) / "imagesTr" / "BRATS_002.nii.gz");
    expect_error(d.dir(), {"training[1]", "BRATS_002", "image file", "imagesTr/BRATS_002.nii.gz", "does not exist"});
    d.standard({"BRATS_001", "BRATS_002"});
    fs::remove(fs::path(d.dir()) / "labelsTr" / "BRATS_001.nii.gz");
    expect_error(d.dir(), {"training[0]", "label file", "labelsTr/BRATS_001.nii.gz"});
}

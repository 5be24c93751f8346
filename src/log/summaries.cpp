#include "unet/log/summaries.h"

namespace unet {

const char* const kHParamsExperimentTag = "_hparams_/experiment";
const char* const kHParamsSessionStartTag = "_hparams_/session_start_info";
const char* const kHParamsSessionEndTag = "_hparams_/session_end_info";

namespace {

void set_plugin(tb::Summary::Value& v, const std::string& plugin, const std::string& content) {
    tb::SummaryMetadata* m = v.mutable_metadata();
    m->mutable_plugin_data()->set_plugin_name(plugin);
    m->mutable_plugin_data()->set_content(content);
    m->set_data_class(tb::DATA_CLASS_TENSOR);
}

google::protobuf::Value to_value(const std::variant<double, std::string, bool>& x) {
    google::protobuf::Value v;
    if (const double* d = std::get_if<double>(&x)) v.set_number_value(*d);
    else if (const std::string* s = std::get_if<std::string>(&x)) v.set_string_value(*s);
    else v.set_bool_value(std::get<bool>(x));
    return v;
}

// HParams data travels in the metadata; the value itself is an empty float vector.
tb::Summary::Value hparams_value(const char* tag, const tb::hparams::HParamsPluginData& data) {
    tb::Summary::Value v;
    v.set_tag(tag);
    std::string content;
    data.SerializeToString(&content);
    set_plugin(v, "hparams", content);
    tb::TensorProto* t = v.mutable_tensor();
    t->set_dtype(tb::DT_FLOAT);
    t->mutable_tensor_shape()->add_dim()->set_size(0);
    return v;
}

}  // namespace

tb::Summary::Value scalar_summary(const std::string& tag, double value) {
    tb::Summary::Value v;
    v.set_tag(tag);
    v.set_simple_value(float(value));
    return v;
}

tb::Summary::Value image_summary(const std::string& tag, const RgbImage& image) {
    tb::Summary::Value v;
    v.set_tag(tag);
    tb::Summary::Image* img = v.mutable_image();
    img->set_height(image.height);
    img->set_width(image.width);
    img->set_colorspace(3);
    const std::vector<uint8_t> png = encode_png(image);
    img->set_encoded_image_string(png.data(), png.size());
    return v;
}

tb::Summary::Value histogram_summary(const std::string& tag, const Histogram& histogram) {
    tb::Summary::Value v;
    v.set_tag(tag);
    *v.mutable_histo() = histogram.to_proto();
    return v;
}

tb::Summary::Value text_summary(const std::string& tag, const std::string& markdown) {
    tb::Summary::Value v;
    v.set_tag(tag);
    set_plugin(v, "text", "");  // TextPluginData{version 0} serializes to nothing
    tb::TensorProto* t = v.mutable_tensor();
    t->set_dtype(tb::DT_STRING);
    t->add_string_val(markdown);  // no dims: a scalar string
    return v;
}

tb::Summary::Value hparams_session_start(const std::vector<HParam>& hparams, double start_time_secs,
                                         const std::string& group_name) {
    tb::hparams::HParamsPluginData data;
    tb::hparams::SessionStartInfo* start = data.mutable_session_start_info();
    for (const HParam& h : hparams) (*start->mutable_hparams())[h.name] = to_value(h.value);
    start->set_start_time_secs(start_time_secs);
    start->set_group_name(group_name);
    return hparams_value(kHParamsSessionStartTag, data);
}

tb::Summary::Value hparams_session_end(tb::hparams::Status status, double end_time_secs) {
    tb::hparams::HParamsPluginData data;
    data.mutable_session_end_info()->set_status(status);
    data.mutable_session_end_info()->set_end_time_secs(end_time_secs);
    return hparams_value(kHParamsSessionEndTag, data);
}

tb::Summary::Value hparams_experiment(const std::vector<HParamColumn>& hparams, const std::vector<MetricColumn>& metrics,
                                      double time_created_secs) {
    tb::hparams::HParamsPluginData data;
    tb::hparams::Experiment* e = data.mutable_experiment();
    e->set_time_created_secs(time_created_secs);
    for (const HParamColumn& h : hparams) {
        tb::hparams::HParamInfo* info = e->add_hparam_infos();
        info->set_name(h.name);
        info->set_type(h.type);
        if (h.has_interval) {
            info->mutable_domain_interval()->set_min_value(h.min);
            info->mutable_domain_interval()->set_max_value(h.max);
        } else if (!h.choices.empty()) {
            for (const auto& c : h.choices) *info->mutable_domain_discrete()->add_values() = to_value(c);
        }
    }
    for (const MetricColumn& m : metrics) {
        tb::hparams::MetricInfo* info = e->add_metric_infos();
        info->mutable_name()->set_group(m.group);
        info->mutable_name()->set_tag(m.tag);
        info->set_dataset_type(m.dataset);
    }
    return hparams_value(kHParamsExperimentTag, data);
}

}  // namespace unet

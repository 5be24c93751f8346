// Several TrainingHooks as one: each hears every event in the order added; the run goes on after
// an epoch only if every hook says so (all are asked, so each sees every epoch it takes part in).
// The tuner chains its trial reporter with TensorBoard writers this way: chain.add(&tb).
#pragma once

#include <vector>

#include "unet/train/training_hooks.h"

namespace unet {

class HookChain : public TrainingHooks {
   public:
    void add(TrainingHooks* h) {
        if (h) hooks_.push_back(h);
    }
    void on_start(const TrainOptions& o, const Batch& sample) override {
        for (TrainingHooks* h : hooks_) h->on_start(o, sample);
    }
    void on_step(const StepReport& r) override {
        for (TrainingHooks* h : hooks_) h->on_step(r);
    }
    void on_model(int64_t step, const float* sample_prediction) override {
        for (TrainingHooks* h : hooks_) h->on_model(step, sample_prediction);
    }
    bool on_epoch(const EpochReport& r, const ParamStore& model) override {
        bool go_on = true;
        for (TrainingHooks* h : hooks_) go_on = h->on_epoch(r, model) && go_on;
        return go_on;
    }
    void on_end(const RunSummary& s) override {
        for (TrainingHooks* h : hooks_) h->on_end(s);
    }

   private:
    std::vector<TrainingHooks*> hooks_;
};

}  // namespace unet

#include "unet/tune/ledger.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "unet/core/text.h"
#include <unistd.h>

namespace unet {

using nlohmann::json;

double TrialRecord::best_dice() const { return dice.empty() ? 0.0 : *std::max_element(dice.begin(), dice.end()); }


namespace {

std::string csv_field(const std::string& s) {
    if (s.find_first_of(",\"\n") == std::string::npos) return s;
    std::string out = "\"";
    for (char c : s) out += c == '"' ? std::string("\"\"") : c == '\n' ? std::string(" ") : std::string(1, c);
    return out + "\"";
}

// Hyperparameter names in the order of the first trial that has them (every trial has the same
// ones, except tpe's trials not drawn yet, which have none).
std::vector<std::string> param_names(const Ledger& l) {
    std::vector<std::string> names;
    for (const TrialRecord& t : l.trials) {
        if (t.params.empty()) continue;
        for (const auto& kv : t.params) names.push_back(kv.first);
        break;
    }
    return names;
}

std::string trials_csv(const Ledger& l) {
    std::ostringstream os;
    os << "trial,status,epochs,best_dice,last_dice,seconds,group,failures,reason";
    const std::vector<std::string> names = param_names(l);
    for (const std::string& n : names) os << "," << n;
    os << "\n";
    for (const TrialRecord& t : l.trials) {
        os << t.id << "," << t.status << "," << t.epochs() << "," << fixed_text(t.best_dice(), 4) << ","
           << fixed_text(t.dice.empty() ? 0.0 : t.dice.back(), 4) << "," << fixed_text(t.seconds, 1) << "," << t.group << ","
           << t.failures << "," << csv_field(t.reason);
        for (const auto& kv : t.params) os << "," << csv_field(kv.second);
        if (t.params.empty()) os << std::string(names.size(), ',');  // not drawn yet (tpe)
        os << "\n";
    }
    return os.str();
}

}  // namespace

void Ledger::save() const {
    json j;
    j["fingerprint"] = fingerprint;
    j["elapsed_s"] = elapsed;
    j["trials"] = json::array();
    for (const TrialRecord& t : trials) {
        json p = json::array();
        for (const auto& kv : t.params) p.push_back({kv.first, kv.second});
        j["trials"].push_back({{"id", t.id},
                               {"params", p},
                               {"status", t.status},
                               {"failures", t.failures},
                               {"reason", t.reason},
                               {"dice", t.dice},
                               {"seconds", t.seconds},
                               {"best_at", t.best_at},
                               {"group", t.group},
                               {"host", t.host}});
        if (!t.schedule.empty() || !t.lineage.empty() || t.replace) {
            json& r = j["trials"].back();
            r["schedule"] = json::array();
            for (const TrialParams& s : t.schedule) {
                json q = json::array();
                for (const auto& kv : s) q.push_back({kv.first, kv.second});
                r["schedule"].push_back(q);
            }
            r["lineage"] = json::array();
            for (const auto& rd : t.lineage) r["lineage"].push_back({{"round", rd.first}, {"from", rd.second}});
            r["replace"] = t.replace;
        }
    }
    if (pbt_round > 0 || exploits > 0) j["pbt"] = {{"round", pbt_round}, {"exploits", exploits}, {"exploit_s", exploit_seconds}};
    write_file_atomically(dir + "/state.json", j.dump(1) + "\n");
    write_file_atomically(dir + "/trials.csv", trials_csv(*this));
}

bool Ledger::exists(const std::string& dir) { return access((dir + "/state.json").c_str(), F_OK) == 0; }

Ledger Ledger::load(const std::string& dir) {
    std::ifstream in(dir + "/state.json");
    if (!in) throw std::runtime_error("cannot read " + dir + "/state.json");
    Ledger l;
    l.dir = dir;
    try {
        const json j = json::parse(in);
        l.fingerprint = j.at("fingerprint").get<std::string>();
        l.elapsed = j.at("elapsed_s").get<double>();
        if (j.contains("pbt")) {
            l.pbt_round = j.at("pbt").at("round").get<int>();
            l.exploits = j.at("pbt").at("exploits").get<int>();
            l.exploit_seconds = j.at("pbt").at("exploit_s").get<double>();
        }
        for (const json& t : j.at("trials")) {
            TrialRecord r;
            r.id = t.at("id").get<int>();
            for (const json& kv : t.at("params")) r.params.emplace_back(kv.at(0).get<std::string>(), kv.at(1).get<std::string>());
            r.status = t.at("status").get<std::string>();
            r.failures = t.at("failures").get<int>();
            r.reason = t.at("reason").get<std::string>();
            r.dice = t.at("dice").get<std::vector<double>>();
            r.seconds = t.at("seconds").get<double>();
            r.best_at = t.at("best_at").get<double>();
            r.group = t.at("group").get<int>();
            if (t.contains("host")) r.host = t.at("host").get<std::string>();
            if (t.contains("schedule"))
                for (const json& s : t.at("schedule")) {
                    TrialParams q;
                    for (const json& kv : s) q.emplace_back(kv.at(0).get<std::string>(), kv.at(1).get<std::string>());
                    r.schedule.push_back(std::move(q));
                }
            if (t.contains("lineage"))
                for (const json& rd : t.at("lineage")) r.lineage.emplace_back(rd.at("round").get<int>(), rd.at("from").get<int>());
            if (t.contains("replace")) r.replace = t.at("replace").get<bool>();
            l.trials.push_back(std::move(r));
        }
    } catch (const json::exception& e) {
        throw std::runtime_error(dir + "/state.json: " + e.what());
    }
    return l;
}

std::vector<const TrialRecord*> rank_trials(const Ledger& l) {
    std::vector<const TrialRecord*> out;
    for (const TrialRecord& t : l.trials)
        if (t.status != "failed" && t.epochs() > 0) out.push_back(&t);
    std::stable_sort(out.begin(), out.end(),
                     [](const TrialRecord* a, const TrialRecord* b) { return a->best_dice() > b->best_dice(); });
    return out;
}

std::string schedule_text(const TrialRecord& t, int interval) {
    std::ostringstream os;
    for (size_t r = 0; r < t.schedule.size(); ++r) {
        os << "- round " << r << " (epochs " << r * size_t(interval) + 1 << "-" << (r + 1) * size_t(interval) << "): "
           << params_label(t.schedule[r]);
        for (const auto& rd : t.lineage)
            if (rd.first + 1 == int(r)) os << " (copied member " << rd.second << "'s checkpoint after round " << rd.first << ")";
        os << "\n";
    }
    return os.str();
}

std::string write_ranking(const Ledger& l, int pbt_interval) {
    const std::vector<const TrialRecord*> ranked = rank_trials(l);
    const std::vector<std::string> names = param_names(l);
    std::ostringstream csv, md;
    csv << "rank,trial,best_dice,epochs,status,seconds";
    md << "| rank | trial | best Dice | epochs | status | seconds |";
    for (const std::string& n : names) csv << "," << n, md << " " << n << " |";
    csv << "\n";
    md << "\n|---|---|---|---|---|---|";
    for (size_t i = 0; i < names.size(); ++i) md << "---|";
    md << "\n";
    for (size_t r = 0; r < ranked.size(); ++r) {
        const TrialRecord& t = *ranked[r];
        csv << r + 1 << "," << t.id << "," << fixed_text(t.best_dice(), 4) << "," << t.epochs() << "," << t.status << ","
            << fixed_text(t.seconds, 1);
        md << "| " << r + 1 << " | " << t.id << " | " << fixed_text(t.best_dice(), 4) << " | " << t.epochs() << " | " << t.status
           << " | " << fixed_text(t.seconds, 1) << " |";
        for (const auto& kv : t.params) csv << "," << csv_field(kv.second), md << " " << kv.second << " |";
        csv << "\n";
        md << "\n";
    }
    if (pbt_interval > 0 && !ranked.empty())
        md << "\nschedule of the best member, trial " << ranked.front()->id << ":\n" << schedule_text(*ranked.front(), pbt_interval);
    int failed = 0;
    for (const TrialRecord& t : l.trials) failed += t.status == "failed";
    if (failed) {
        md << "\nfailed:\n";
        for (const TrialRecord& t : l.trials)
            if (t.status == "failed") md << "- trial " << t.id << " (" << params_label(t.params) << "): " << t.reason << "\n";
    }
    write_file_atomically(l.dir + "/ranking.csv", csv.str());
    write_file_atomically(l.dir + "/ranking.md", md.str());
    return md.str();
}

}  // namespace unet

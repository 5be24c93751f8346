// The tuner's record on disk, in <logdir>/tune/: state.json (everything a resumed search needs)
// and trials.csv (the same, one row per trial, for people and spreadsheets). Both are replaced
// atomically (write a temporary file, then rename), so a crash leaves the previous version.
#pragma once


#include <string>
#include <vector>

#include "unet/io/atomic_file.h"  // write_file_atomically, for the ledger's files
#include "unet/tune/search_space.h"

namespace unet {

struct TrialRecord {
    int id = 0;
    TrialParams params;
    std::string status = "pending";  // pending | running | completed | stopped | failed
    int failures = 0;                // failed attempts so far (a crash of the job counts as one)
    std::string reason;              // why the last attempt failed
    std::vector<double> dice;        // validation Dice after each epoch
    double seconds = 0;              // wall time over all attempts
    double best_at = 0;              // search clock (s) when the best Dice was reported
    int group = -1;                  // group that ran it last
    std::string host;                // that group's leader's host ("" in ledgers of before)
    // pbt: schedule[r] = the hyperparameters of round r (params is the current round's); lineage:
    // (round, member) for each exploit, the member whose checkpoint it copied at the end of round.
    std::vector<TrialParams> schedule;
    std::vector<std::pair<int, int>> lineage;
    bool replace = false;  // pbt: its round failed; it copies a top member at the round's end
    double best_dice() const;
    int epochs() const { return int(dice.size()); }
    bool finished() const { return status == "completed" || status == "stopped" || status == "failed"; }
};

struct Ledger {
    std::string dir;          // <logdir>/tune
    std::string fingerprint;  // search space, search kind, seed: a resumed search must match
    double elapsed = 0;       // search clock over all runs of the job (s)
    double exploit_seconds = 0;  // pbt: time spent copying checkpoints (exploit steps)
    int exploits = 0;            // pbt: checkpoints copied
    int pbt_round = 0;           // pbt: the round the population trains now
    std::vector<TrialRecord> trials;

    void save() const;                         // state.json and trials.csv
    static Ledger load(const std::string& dir);  // throws std::runtime_error
    static bool exists(const std::string& dir);
};

// pbt: "round r (epochs a-b): params [copied member d's checkpoint]" lines of a member's schedule.
std::string schedule_text(const TrialRecord& t, int interval);

// Trials that ran at least one epoch and did not fail, best validation Dice first (ties: lower
// id). Written as ranking.csv and ranking.md in the ledger's directory; returns the Markdown.
std::vector<const TrialRecord*> rank_trials(const Ledger& l);
std::string write_ranking(const Ledger& l, int pbt_interval = 0);  // pbt: the best member's schedule too

}  // namespace unet

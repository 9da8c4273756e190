#include "rollout_server/engine.h"

#include <algorithm>
#include <iostream>
#include <set>
#include <utility>

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "common/model/generator.h"
#include "common/model/model.h"
#include "common/kv_cache/kv_cache.h"
#include "common/util/status_macros.h"
#include "common/util/torch_status.h"
#include "rollout_server/validation.h"
#include "rollout_server/weights.h"

namespace swarr {

struct RolloutEngine::Group {
  uint64_t handle = 0;
  v1::PromptGroup proto;
  GroupSource source = GroupSource::kDirect;
  std::shared_ptr<const CompletionDecoder> decoder;
  GroupCallbacks callbacks;
  absl::Time received;
  std::deque<int> todo;  // sample indices not started (or to restart)
  bool started = false;
  // latest_loads_ when the group arrived: a "latest" load completed after it tells the group's
  // learner incarnation is gone (see AdmitLocked).
  int64_t latest_loads_at_arrival = 0;
  int attempts = 0;  // failed batches it was part of
  int finished = 0;
  std::vector<SampleResult> results;
};

struct RolloutEngine::Install {
  DecodedWeights weights;        // tensors moved out when a new model is built
  std::unique_ptr<Model> model;  // set when the architecture changes (or the first load)
  bool applied = false;
  absl::Status status;
};

namespace {

std::string VersionString(const v1::WeightVersion& v) {
  return absl::StrCat(v.version(), " (", v.learner_incarnation().empty() ? "-" : v.learner_incarnation(), ")");
}

bool SameVersion(const v1::WeightVersion& a, const v1::WeightVersion& b) {
  return a.version() == b.version() && a.learner_incarnation() == b.learner_incarnation();
}

double SecondsSince(absl::Time t) { return absl::ToDoubleSeconds(absl::Now() - t); }

}  // namespace

absl::StatusOr<std::unique_ptr<RolloutEngine>> RolloutEngine::Create(const EngineOptions& options,
                                                                     RolloutMetrics* metrics) {
  if (options.max_sequences < 1) {
    return absl::InvalidArgumentError(absl::StrCat("max_sequences must be >= 1, got ", options.max_sequences));
  }
  if (options.max_tokens < 0) {
    return absl::InvalidArgumentError(absl::StrCat("max_tokens must be >= 0, got ", options.max_tokens));
  }
  if (metrics == nullptr) return absl::InvalidArgumentError("the engine needs its metrics");
  std::unique_ptr<RolloutEngine> e(new RolloutEngine(options, metrics));
  SWARR_ASSIGN_OR_RETURN(auto decoder, CompletionDecoder::Create(""));
  e->default_decoder_ = std::move(decoder);
  e->engine_thread_ = std::thread([p = e.get()] { p->EngineLoop(); });
  e->loader_thread_ = std::thread([p = e.get()] { p->LoaderLoop(); });
  return e;
}

RolloutEngine::RolloutEngine(const EngineOptions& options, RolloutMetrics* metrics)
    : options_(options), metrics_(metrics), max_sequences_(options.max_sequences), max_tokens_(options.max_tokens) {}

RolloutEngine::~RolloutEngine() { Stop(); }

absl::Status RolloutEngine::CheckDevice(const std::string& device) {
  auto dev = CatchTorch("device", [&] { return c10::Device(device); });
  if (!dev.ok()) return absl::InvalidArgumentError(absl::StrCat("bad device '", device, "'"));
  if (dev->is_cuda() && !at::hasCUDA()) {
    return absl::InvalidArgumentError(
        absl::StrCat("device '", device, "': this LibTorch has no CUDA support or sees no GPU"));
  }
  if (!dev->is_cuda() && !dev->is_cpu()) {
    return absl::InvalidArgumentError(absl::StrCat("device '", device, "': only cpu and cuda are supported"));
  }
  return absl::OkStatus();
}

void RolloutEngine::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    engine_cv_.SignalAll();
    loader_cv_.SignalAll();
  }
  if (engine_thread_.joinable()) engine_thread_.join();
  if (loader_thread_.joinable()) loader_thread_.join();
}

void RolloutEngine::SetFetcher(FetchWeightsFn fetch) {
  absl::MutexLock lock(&mu_);
  fetch_ = std::move(fetch);
}

void RolloutEngine::SetDeviceFetcher(FetchDeviceWeightsFn fetch) {
  absl::MutexLock lock(&mu_);
  device_fetch_ = std::move(fetch);
}

void RolloutEngine::SetWorkerId(const std::string& worker_id) {
  absl::MutexLock lock(&mu_);
  worker_id_ = worker_id;
}

void RolloutEngine::SetLimits(int64_t max_sequences, int64_t max_tokens) {
  absl::MutexLock lock(&mu_);
  if (max_sequences >= 1 && max_sequences != max_sequences_) {
    max_sequences_ = max_sequences;
    if (generator_ != nullptr) regenerate_generator_ = true;
  }
  if (max_tokens >= 0) max_tokens_ = max_tokens;
  wake_ = true;
  engine_cv_.Signal();
}

int64_t RolloutEngine::max_sequences() const {
  absl::MutexLock lock(&mu_);
  return max_sequences_;
}

int64_t RolloutEngine::max_tokens() const {
  absl::MutexLock lock(&mu_);
  return max_tokens_;
}

absl::Status RolloutEngine::Validate(const v1::PromptGroup& group) const {
  absl::MutexLock lock(&mu_);
  if (!config_.has_value()) return absl::UnavailableError("no weights loaded yet");
  SWARR_RETURN_IF_ERROR(ValidatePromptGroup(group, config_->vocab_size, max_tokens_));
  const int64_t positions = config_->max_position_embeddings;
  if (positions > 0 && TokensPerSample(group) > positions) {
    return absl::InvalidArgumentError(absl::StrCat("group '", group.group_id(), "': too many tokens: prompt (",
                                                   group.prompt_ids_size(), ") + max_new_tokens (",
                                                   group.max_new_tokens(), ") exceeds the model's ", positions,
                                                   " positions"));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> RolloutEngine::Submit(v1::PromptGroup group, GroupSource source,
                                               std::shared_ptr<const CompletionDecoder> decoder,
                                               GroupCallbacks callbacks) {
  SWARR_RETURN_IF_ERROR(ValidatePromptGroup(group, /*vocab_size=*/0, /*max_tokens=*/0));
  auto g = std::make_shared<Group>();
  g->proto = std::move(group);
  g->source = source;
  g->decoder = decoder != nullptr ? std::move(decoder) : default_decoder_;
  g->callbacks = std::move(callbacks);
  g->received = absl::Now();
  for (int i = 0; i < g->proto.num_samples(); ++i) g->todo.push_back(i);
  g->results.resize(static_cast<size_t>(g->proto.num_samples()));
  absl::MutexLock lock(&mu_);
  if (stop_) return absl::FailedPreconditionError("the engine is stopped");
  g->handle = next_handle_++;
  g->latest_loads_at_arrival = latest_loads_;
  groups_[g->handle] = g;
  pending_.push_back(g->handle);
  wake_ = true;
  engine_cv_.Signal();
  return g->handle;
}

void RolloutEngine::Cancel(uint64_t handle) {
  absl::MutexLock lock(&mu_);
  if (groups_.count(handle) == 0) return;
  cancels_.push_back({handle, absl::CancelledError("cancelled")});
  wake_ = true;
  engine_cv_.Signal();
}

std::vector<v1::PromptGroup> RolloutEngine::TakeUnstarted(GroupSource source) {
  std::vector<v1::PromptGroup> out;
  absl::MutexLock lock(&mu_);
  std::deque<uint64_t> keep;
  for (uint64_t h : pending_) {
    auto it = groups_.find(h);
    if (it == groups_.end()) continue;
    Group& g = *it->second;
    if (g.source == source && !g.started) {
      out.push_back(std::move(g.proto));
      groups_.erase(it);
    } else {
      keep.push_back(h);
    }
  }
  pending_ = std::move(keep);
  wake_ = true;  // the engine thread publishes the new counts
  engine_cv_.Signal();
  return out;
}

void RolloutEngine::FailUnstarted(GroupSource source, const absl::Status& why) {
  absl::MutexLock lock(&mu_);
  for (uint64_t h : pending_) {
    auto it = groups_.find(h);
    if (it != groups_.end() && it->second->source == source && !it->second->started) cancels_.push_back({h, why});
  }
  wake_ = true;
  engine_cv_.Signal();
}

void RolloutEngine::AbortAll(const absl::Status& why) {
  absl::MutexLock lock(&mu_);
  if (stop_) return;
  const int64_t target = aborts_done_ + 1;
  abort_ = why;
  wake_ = true;
  engine_cv_.Signal();
  auto done = [this, target]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return aborts_done_ >= target || stop_; };
  mu_.Await(absl::Condition(&done));
}

int64_t RolloutEngine::NumGroups(GroupSource source) const {
  absl::MutexLock lock(&mu_);
  int64_t n = 0;
  for (const auto& [h, g] : groups_) n += g->source == source ? 1 : 0;
  return n;
}

void RolloutEngine::RequestLoad(const v1::GetWeightsRequest& request,
                                std::function<void(absl::StatusOr<LoadResult>)> done) {
  {
    absl::MutexLock lock(&mu_);
    if (!stop_) {
      loads_.push_back(LoadJob{request, std::move(done), /*automatic=*/false});
      loader_cv_.Signal();
      return;
    }
  }
  if (done) done(absl::CancelledError("the engine is stopped"));
}

EngineStats RolloutEngine::Stats() const {
  absl::MutexLock lock(&mu_);
  EngineStats s = stats_;
  // Counted here, not on the engine thread: groups submitted to a stuck engine count too. So do
  // groups whose weights are fetched and staged: they wait on the engine loop's swap, not on the
  // network, and a loop stuck before the swap is stuck with work to do.
  const bool staged = install_ != nullptr && !install_->applied;
  s.runnable_sequences = static_cast<int64_t>(inflight_.size());
  for (uint64_t h : pending_) {
    auto it = groups_.find(h);
    if (it != groups_.end() && (staged || !WaitsForWeightsLocked(*it->second))) {
      s.runnable_sequences += static_cast<int64_t>(it->second->todo.size());
    }
  }
  s.queued_sequences = 0;
  for (uint64_t h : pending_) {
    auto it = groups_.find(h);
    if (it != groups_.end()) s.queued_sequences += static_cast<int64_t>(it->second->todo.size());
  }
  return s;
}

void RolloutEngine::SetStepObserverForTest(
    std::function<void(int64_t step, const std::vector<std::string>& running)> observer) {
  absl::MutexLock lock(&mu_);
  step_observer_ = std::move(observer);
}

int RolloutEngine::PendingInstallsForTest() const {
  absl::MutexLock lock(&mu_);
  return install_ != nullptr && !install_->applied ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
// Engine thread.

bool RolloutEngine::HasWorkLocked() const {
  return stop_ || wake_ || (generator_ != nullptr && !generator_->idle());
}

bool RolloutEngine::WaitsForWeightsLocked(const Group& g) const {
  if (!config_.has_value()) return true;  // no weights yet
  const bool other_incarnation = !g.proto.learner_incarnation().empty() &&
                                 g.proto.learner_incarnation() != loaded_.learner_incarnation();
  return other_incarnation ? latest_loads_ <= g.latest_loads_at_arrival
                           : g.proto.min_policy_version() > loaded_.version();
}

void RolloutEngine::PublishStatsLocked() {
  stats_.has_weights = config_.has_value();
  stats_.loaded = loaded_;
  stats_.active_sequences = static_cast<int64_t>(inflight_.size());
  stats_.kv_cache_bytes = generator_ != nullptr ? generator_->cache().AllocatedBytes() : 0;
  const int64_t tokens = generated_before_ + (generator_ != nullptr ? generator_->num_generated_tokens() : 0);
  if (tokens > stats_.tokens_generated) {
    metrics_->tokens_generated.Increment(static_cast<double>(tokens - stats_.tokens_generated));
  }
  stats_.tokens_generated = tokens;
  int64_t queued = 0;
  for (uint64_t h : pending_) {
    auto it = groups_.find(h);
    if (it != groups_.end()) queued += static_cast<int64_t>(it->second->todo.size());
  }
  stats_.decode_steps = step_;
  metrics_->active_sequences.Set(static_cast<double>(stats_.active_sequences));
  metrics_->queued_sequences.Set(static_cast<double>(queued));
  metrics_->kv_cache_bytes.Set(static_cast<double>(stats_.kv_cache_bytes));
}

void RolloutEngine::EndGroupLocked(uint64_t handle, absl::Status status, std::vector<std::function<void()>>* calls) {
  auto it = groups_.find(handle);
  if (it == groups_.end()) return;
  std::shared_ptr<Group> g = it->second;
  groups_.erase(it);
  pending_.erase(std::remove(pending_.begin(), pending_.end(), handle), pending_.end());
  for (auto in = inflight_.begin(); in != inflight_.end();) {
    if (in->second.group == handle) {
      if (generator_ != nullptr) generator_->Cancel(in->first);
      tokens_in_flight_ -= in->second.tokens;
      in = inflight_.erase(in);
    } else {
      ++in;
    }
  }
  if (g->callbacks.on_done) {
    std::vector<SampleResult> results;
    if (status.ok()) results = std::move(g->results);
    calls->push_back([cb = std::move(g->callbacks.on_done), status, r = std::move(results)]() mutable {
      cb(status, std::move(r));
    });
  }
}

void RolloutEngine::MaybeAutoLoadLocked() {
  if (wanted_version_ < 0 || auto_load_queued_ || absl::Now() < next_auto_load_) return;
  v1::GetWeightsRequest req;
  req.set_latest(true);
  loads_.push_back(LoadJob{req, nullptr, /*automatic=*/true});
  auto_load_queued_ = true;
  loader_cv_.Signal();
}

void RolloutEngine::AdmitLocked(std::vector<std::function<void()>>* calls) {
  wanted_version_ = -1;
  if (generator_ == nullptr) {
    if (!pending_.empty()) wanted_version_ = 0;  // any version: nothing is loaded
    for (uint64_t h : pending_) {
      wanted_version_ = std::max<int64_t>(wanted_version_, groups_.at(h)->proto.min_policy_version());
    }
    MaybeAutoLoadLocked();
    return;
  }
  const bool rebuild_pending = install_ != nullptr && !install_->applied && install_->model != nullptr;
  if (rebuild_pending || regenerate_generator_) return;  // let the batch drain first
  const std::vector<uint64_t> order(pending_.begin(), pending_.end());
  for (uint64_t h : order) {
    auto it = groups_.find(h);
    if (it == groups_.end()) continue;
    std::shared_ptr<Group> g = it->second;
    // Version numbers compare only within one learner incarnation (a restarted learner numbers
    // anew). Same incarnation: wait for min_policy_version. Another one: load the learner's
    // newest first; if even the newest is not of the group's incarnation, that incarnation is
    // gone (the learner restarted after the group was dispatched) and the newest weights are
    // the right ones: generate.
    if (WaitsForWeightsLocked(*g)) {
      wanted_version_ = std::max<int64_t>({wanted_version_, g->proto.min_policy_version(), 0});
      continue;
    }
    if (!g->started) {
      // The vocabulary is known only now (and may have changed with the weights).
      absl::Status valid = ValidatePromptGroup(g->proto, config_->vocab_size, /*max_tokens=*/0);
      if (!valid.ok()) {
        EndGroupLocked(h, valid, calls);
        continue;
      }
    }
    const int64_t tokens = TokensPerSample(g->proto);
    bool full = false;
    while (!g->todo.empty()) {
      const bool fits = static_cast<int64_t>(inflight_.size()) < max_sequences_ &&
                        (max_tokens_ <= 0 || inflight_.empty() || tokens_in_flight_ + tokens <= max_tokens_);
      if (!fits) {
        full = true;
        break;
      }
      const int sample = g->todo.front();
      GenerationRequest req;
      req.prompt.assign(g->proto.prompt_ids().begin(), g->proto.prompt_ids().end());
      req.max_new_tokens = g->proto.max_new_tokens();
      req.sampling = SamplingForSample(g->proto, sample);
      if (g->proto.sampling().stop_token_ids_size() > 0) {
        req.stop_token_ids.assign(g->proto.sampling().stop_token_ids().begin(),
                                  g->proto.sampling().stop_token_ids().end());
      } else {
        req.stop_token_ids = config_->eos_token_ids;
      }
      absl::StatusOr<int64_t> id = generator_->Submit(std::move(req));
      if (!id.ok()) {
        EndGroupLocked(h, absl::InvalidArgumentError(absl::StrCat("group '", g->proto.group_id(), "': ",
                                                                  id.status().message())),
                       calls);
        break;
      }
      g->todo.pop_front();
      g->started = true;
      inflight_[*id] = Inflight{h, sample, tokens, absl::Now()};
      tokens_in_flight_ += tokens;
    }
    if (full) break;  // groups are served in arrival order
  }
  pending_.erase(std::remove_if(pending_.begin(), pending_.end(),
                                [this](uint64_t h) {
                                  auto it = groups_.find(h);
                                  return it == groups_.end() || it->second->todo.empty();
                                }),
                 pending_.end());
  MaybeAutoLoadLocked();
}

void RolloutEngine::EngineLoop() {
  struct Done {
    std::shared_ptr<Group> group;
    Inflight where;
    GenerationResult result;
  };
  mu_.Lock();
  while (true) {
    while (!HasWorkLocked()) {
      // Groups waiting for a newer version: look again soon (the automatic load backs off).
      engine_cv_.WaitWithTimeout(&mu_, wanted_version_ >= 0 ? absl::Milliseconds(50) : absl::Seconds(1));
      if (wanted_version_ >= 0) MaybeAutoLoadLocked();
    }
    if (stop_) break;
    wake_ = false;
    std::vector<std::function<void()>> calls;

    // Cancels and aborts.
    for (auto& [h, why] : cancels_) EndGroupLocked(h, why, &calls);
    cancels_.clear();
    if (abort_.has_value()) {
      std::vector<uint64_t> all;
      for (const auto& [h, g] : groups_) all.push_back(h);
      for (uint64_t h : all) EndGroupLocked(h, *abort_, &calls);
      abort_.reset();
      ++aborts_done_;
    }

    // Weights, between decode steps.
    if (install_ != nullptr && !install_->applied && (install_->model == nullptr || inflight_.empty())) {
      Install* inst = install_.get();
      const bool rebuild = inst->model != nullptr;
      mu_.Unlock();
      absl::Status st;
      if (!rebuild) {
        st = model_->CopyWeightsFrom(inst->weights.tensors);
      } else {
        st = CatchTorch("building the generator", [&]() -> absl::Status {
          if (generator_ != nullptr) generated_before_ += generator_->num_generated_tokens();
          generator_.reset();
          model_ = std::move(inst->model);
          GeneratorOptions go;
          go.max_batch = max_sequences();
          go.prefill_chunk = options_.prefill_chunk;
          generator_ = std::make_unique<Generator>(*model_, go);
          return absl::OkStatus();
        });
      }
      mu_.Lock();
      if (st.ok()) {
        config_ = inst->weights.config;
        loaded_ = inst->weights.version;
        tags_.push_back(loaded_);
        generator_->SetTokenTag(static_cast<int64_t>(tags_.size()) - 1);
        regenerate_generator_ = false;
        metrics_->weight_version.Set(static_cast<double>(loaded_.version()));
      } else if (rebuild) {
        generator_.reset();  // the engine could not be rebuilt: no weights (the next load builds one)
        model_.reset();
        config_.reset();
      }
      inst->status = st;
      inst->applied = true;
      inst->weights.tensors.clear();
      loader_cv_.SignalAll();
    }
    if (regenerate_generator_ && inflight_.empty() && generator_ != nullptr) {
      generated_before_ += generator_->num_generated_tokens();
      GeneratorOptions go;
      go.max_batch = max_sequences_;
      go.prefill_chunk = options_.prefill_chunk;
      const int64_t tag = generator_->token_tag();
      generator_ = std::make_unique<Generator>(*model_, go);
      generator_->SetTokenTag(tag);
      regenerate_generator_ = false;
    }

    AdmitLocked(&calls);
    PublishStatsLocked();
    const bool step = generator_ != nullptr && !generator_->idle();
    std::vector<std::string> running;
    auto observer = step_observer_;
    if (step && observer) {
      for (const auto& [id, in] : inflight_) {
        running.push_back(absl::StrCat(groups_.at(in.group)->proto.group_id(), "/", in.sample));
      }
    }
    mu_.Unlock();
    for (auto& c : calls) c();
    calls.clear();
    if (!step) {
      mu_.Lock();
      continue;
    }

    auto finished = generator_->Step();
    ++step_;
    mu_.Lock();
    if (!finished.ok()) {
      // The generator dropped its running sequences: put every sample of this batch back at
      // the front of its group (same seed, so the same completion if the weights are equal).
      std::cerr << "rollout: generation step failed: " << finished.status() << "\n";
      std::set<uint64_t> affected;
      std::vector<std::pair<int64_t, Inflight>> batch(inflight_.begin(), inflight_.end());
      for (auto it = batch.rbegin(); it != batch.rend(); ++it) {
        generator_->Cancel(it->first);  // still queued inside the generator
        groups_.at(it->second.group)->todo.push_front(it->second.sample);
        affected.insert(it->second.group);
      }
      inflight_.clear();
      tokens_in_flight_ = 0;
      for (uint64_t h : affected) {
        Group& g = *groups_.at(h);
        if (++g.attempts >= options_.max_group_attempts) {
          EndGroupLocked(h, absl::InternalError(absl::StrCat("group '", g.proto.group_id(), "': generation failed ",
                                                             g.attempts, " times: ", finished.status().message())),
                         &calls);
        } else if (std::find(pending_.begin(), pending_.end(), h) == pending_.end()) {
          pending_.push_back(h);
        }
      }
      std::sort(pending_.begin(), pending_.end());  // handles grow in arrival order
      wake_ = true;
      mu_.Unlock();
      for (auto& c : calls) c();
      mu_.Lock();
      continue;
    }
    std::vector<Done> done;
    for (auto& [id, result] : *finished) {
      auto it = inflight_.find(id);
      if (it == inflight_.end()) continue;  // cancelled meanwhile
      done.push_back(Done{groups_.at(it->second.group), it->second, std::move(result)});
      tokens_in_flight_ -= it->second.tokens;
      inflight_.erase(it);
    }
    const std::vector<v1::WeightVersion> tags = tags_;
    const std::string worker_id = worker_id_;
    PublishStatsLocked();
    mu_.Unlock();

    // Score outside the lock.
    std::vector<SampleResult> scored;
    for (Done& d : done) {
      const Group& g = *d.group;
      const absl::Time t_done = absl::Now();
      const GenerationResult& r = d.result;
      std::vector<int64_t> completion(r.tokens.begin() + r.prompt_length, r.tokens.end());
      const std::string text = g.decoder->Decode(completion);
      const double reward = ComputeReward(g.proto.reward(), text, g.proto.answer());
      SampleResult s;
      s.completion_text = text;
      v1::Trajectory& t = s.trajectory;
      t.set_id(absl::StrCat(g.proto.group_id(), "/", d.where.sample));
      t.set_group_id(g.proto.group_id());
      t.set_group_size(g.proto.num_samples());
      t.set_stage(g.proto.stage());
      *t.mutable_prompt_ids() = g.proto.prompt_ids();
      for (int64_t id : completion) t.add_completion_ids(static_cast<int32_t>(id));
      for (float lp : r.logprobs) t.add_behaviour_logprobs(lp);
      int64_t oldest = INT64_MAX;
      for (int64_t tag : r.token_tags) {
        const int64_t v = tags.at(static_cast<size_t>(tag)).version();
        t.add_token_versions(v);
        oldest = std::min(oldest, v);
      }
      t.set_policy_version(r.token_tags.empty() ? 0 : oldest);
      // The incarnation of the first token's weights (a sequence spanning a learner restart
      // names the old one, which the learner rejects: the group is generated again).
      if (!r.token_tags.empty()) t.set_learner_incarnation(tags.at(r.token_tags[0]).learner_incarnation());
      t.set_reward(reward);
      t.set_stopped(r.stopped);
      t.set_worker_id(worker_id);
      v1::TrajectoryTimings* tm = t.mutable_timings();
      tm->set_queue_seconds(absl::ToDoubleSeconds(d.where.started - g.received));
      tm->set_generate_seconds(absl::ToDoubleSeconds(t_done - d.where.started));
      tm->set_reward_seconds(SecondsSince(t_done));
      tm->set_finished_unix_seconds(absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()));
      metrics_->trajectory_latency.Observe(SecondsSince(g.received));
      scored.push_back(std::move(s));
    }

    mu_.Lock();
    if (!done.empty()) wake_ = true;  // freed slots and tokens: admit more
    for (size_t i = 0; i < done.size(); ++i) {
      Group& g = *done[i].group;
      if (groups_.count(g.handle) == 0) continue;  // ended meanwhile
      if (g.callbacks.on_sample) {
        calls.push_back([cb = g.callbacks.on_sample, s = scored[i]] { cb(s); });
      }
      g.results[static_cast<size_t>(done[i].where.sample)] = std::move(scored[i]);
      if (++g.finished == g.proto.num_samples()) EndGroupLocked(g.handle, absl::OkStatus(), &calls);
    }
    mu_.Unlock();
    for (auto& c : calls) c();
    if (observer) observer(step_, running);
    mu_.Lock();
  }
  // Stopping: every group ends, a pending install is refused.
  std::vector<std::function<void()>> calls;
  std::vector<uint64_t> all;
  for (const auto& [h, g] : groups_) all.push_back(h);
  for (uint64_t h : all) EndGroupLocked(h, absl::CancelledError("the rollout engine stopped"), &calls);
  if (install_ != nullptr && !install_->applied) {
    install_->applied = true;
    install_->status = absl::CancelledError("the rollout engine stopped");
  }
  loader_cv_.SignalAll();
  mu_.Unlock();
  for (auto& c : calls) c();
}

// ---------------------------------------------------------------------------------------------
// Loader thread.

absl::StatusOr<LoadResult> RolloutEngine::RunLoad(const LoadJob& job) {
  const absl::Time start = absl::Now();
  FetchWeightsFn fetch;
  FetchDeviceWeightsFn device_fetch;
  {
    absl::MutexLock lock(&mu_);
    fetch = fetch_;
    device_fetch = device_fetch_;
    if (!job.request.latest() && config_.has_value() && loaded_.version() == job.request.version() &&
        (job.request.learner_incarnation().empty() ||
         job.request.learner_incarnation() == loaded_.learner_incarnation())) {
      return LoadResult{loaded_, 0, 0};
    }
  }
  // Same host first (CUDA IPC: a device-to-device copy), the network otherwise.
  absl::StatusOr<DecodedWeights> decoded = absl::UnavailableError("not fetched");
  bool via_ipc = false;
  if (device_fetch) {
    absl::StatusOr<std::shared_ptr<DecodedWeights>> d = device_fetch(job.request);
    if (d.ok() && *d != nullptr) {
      decoded = std::move(**d);
      via_ipc = true;
    } else {
      const std::string why = d.ok() ? std::string("no weights") : d.status().ToString();
      if (why != device_fetch_last_error_) {
        std::cerr << "rollout: same-host weight handoff unavailable (" << why << "); loading over GetWeights\n";
        device_fetch_last_error_ = why;
      }
    }
  }
  int64_t bytes = 0;
  if (via_ipc) {
    bytes = decoded->bytes;
    metrics_->weight_sync_bytes.Increment(static_cast<double>(bytes));
    absl::MutexLock lock(&mu_);
    if (config_.has_value() && SameVersion(decoded->version, loaded_)) {
      return LoadResult{loaded_, SecondsSince(start), bytes, true};
    }
  } else {
    if (!fetch) return absl::UnavailableError("the learner's address is not known yet (not registered)");
    absl::StatusOr<WeightsBlob> blob = fetch(job.request);
    if (!blob.ok()) return blob.status();
    bytes = static_cast<int64_t>(blob->data.size());
    metrics_->weight_sync_bytes.Increment(static_cast<double>(bytes));
    {
      absl::MutexLock lock(&mu_);
      if (config_.has_value() && SameVersion(blob->version, loaded_)) return LoadResult{loaded_, SecondsSince(start), bytes};
    }
    decoded = CatchTorch("decoding weights", [&] { return DecodeWeights(*blob); });
    blob = absl::UnknownError("released");  // free the transfer before building tensors on the device
    if (!decoded.ok()) return decoded.status();
  }
  auto install = std::make_unique<Install>();
  bool in_place;
  {
    absl::MutexLock lock(&mu_);
    in_place = config_.has_value() && SameArchitecture(*config_, decoded->config);
  }
  if (!in_place) {
    ModelOptions mo;
    mo.device = options_.device;
    mo.dtype = options_.dtype;
    auto model = Model::FromTensors(decoded->config, std::move(decoded->tensors), mo);
    if (!model.ok()) return model.status();
    install->model = *std::move(model);
  }
  install->weights = *std::move(decoded);
  const v1::WeightVersion version = install->weights.version;
  absl::MutexLock lock(&mu_);
  if (stop_) return absl::CancelledError("the rollout engine stopped");
  install_ = std::move(install);
  wake_ = true;
  engine_cv_.Signal();
  auto applied = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return install_->applied; };
  mu_.Await(absl::Condition(&applied));
  const absl::Status st = install_->status;
  install_.reset();
  if (!st.ok()) return st;
  const double seconds = SecondsSince(start);
  metrics_->weight_sync_seconds.Observe(seconds);
  return LoadResult{version, seconds, bytes, via_ipc};
}

void RolloutEngine::LoaderLoop() {
  mu_.Lock();
  while (true) {
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || !loads_.empty(); };
    mu_.Await(absl::Condition(&ready));
    if (stop_) break;
    LoadJob job = std::move(loads_.front());
    loads_.pop_front();
    v1::WeightVersion before = loaded_;
    mu_.Unlock();
    absl::StatusOr<LoadResult> result = RunLoad(job);
    if (!result.ok()) {
      std::cerr << "rollout: weight load failed (" << (job.request.latest() ? std::string("latest")
                                                                             : absl::StrCat("version ", job.request.version()))
                << "), keeping version " << VersionString(before) << ": " << result.status() << "\n";
    } else if (!SameVersion(before, result->loaded)) {
      std::cerr << "rollout: loaded weight version " << VersionString(result->loaded) << " in "
                << result->seconds << " s (" << result->bytes << " bytes" << (result->ipc ? ", CUDA IPC" : "") << ")\n";
    }
    mu_.Lock();
    if (job.automatic) {
      auto_load_queued_ = false;
      if (result.ok()) ++latest_loads_;
      const bool enough = result.ok() && config_.has_value() && loaded_.version() >= wanted_version_;
      if (enough) {
        auto_load_backoff_ = 0;
        next_auto_load_ = absl::InfinitePast();
      } else {
        auto_load_backoff_ = auto_load_backoff_ <= 0
                                 ? options_.load_retry_initial_seconds
                                 : std::min(options_.load_retry_max_seconds, auto_load_backoff_ * 2);
        next_auto_load_ = absl::Now() + absl::Seconds(auto_load_backoff_);
      }
    }
    wake_ = true;
    engine_cv_.Signal();
    if (job.done) {
      mu_.Unlock();
      job.done(std::move(result));
      mu_.Lock();
    }
  }
  std::deque<LoadJob> left = std::move(loads_);
  loads_.clear();
  mu_.Unlock();
  for (LoadJob& job : left) {
    if (job.done) job.done(absl::CancelledError("the rollout engine stopped"));
  }
}

}  // namespace swarr

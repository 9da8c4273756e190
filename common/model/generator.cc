#include "common/model/generator.h"

#include <algorithm>
#include <map>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "absl/strings/str_cat.h"
#include "common/kv_cache/kv_cache.h"
#include "common/model/device_decoder.h"
#include "common/model/model.h"
#include "common/util/status_macros.h"
#include "common/util/torch_status.h"

namespace swarr {

Generator::Generator(const Model& model, const GeneratorOptions& options) : model_(model), options_(options) {
  KvCacheOptions kv;
  kv.max_seqs = std::max<int64_t>(1, options.max_batch);
  kv.full_initial_capacity = options.full_initial_capacity;
  kv.dtype = model.dtype();
  kv.device = model.device();
  cache_ = std::make_unique<KvCache>(model.config(), kv);
  if (options.device_decode && model.device().is_cuda() && DeviceDecoder::Available()) {
    DeviceDecoderOptions d;
    d.cuda_graphs = options.cuda_graphs;
    d.flash_decode = options.flash_decode;
    auto decoder = DeviceDecoder::Create(model, cache_.get(), d);
    if (decoder.ok()) device_ = std::move(*decoder);  // else: unsupported shape, eager path
  }
}

Generator::~Generator() = default;

absl::StatusOr<int64_t> Generator::Submit(GenerationRequest request) {
  if (request.prompt.empty()) return absl::InvalidArgumentError("prompt is empty");
  const int64_t vocab = model_.config().vocab_size;
  for (size_t i = 0; i < request.prompt.size(); ++i) {
    const int64_t id = request.prompt[i];
    if (id < 0 || id >= vocab) {
      return absl::InvalidArgumentError(absl::StrCat("prompt token ", i, " has id ", id,
                                                     ", outside the vocabulary [0, ", vocab, ")"));
    }
  }
  if (request.max_new_tokens < 0) {
    return absl::InvalidArgumentError(absl::StrCat("max_new_tokens must be >= 0, got ", request.max_new_tokens));
  }
  SWARR_RETURN_IF_ERROR(ValidateSamplingParams(request.sampling));
  Sequence seq;
  seq.id = next_id_++;
  seq.rng.seed(request.sampling.seed);
  seq.result.tokens = request.prompt;
  seq.result.prompt_length = static_cast<int64_t>(request.prompt.size());
  seq.request = std::move(request);
  queue_.push_back(std::move(seq));
  return queue_.back().id;
}

bool Generator::SampleInto(Sequence* seq, const float* logits) {
  return Append(seq, SampleToken(logits, model_.config().vocab_size, seq->request.sampling, &seq->rng));
}

bool Generator::Append(Sequence* seq, const SampledToken& tok) {
  seq->result.tokens.push_back(tok.id);
  seq->result.logprobs.push_back(tok.logprob);
  seq->result.token_tags.push_back(token_tag_);
  ++generated_tokens_;
  const auto& stops = seq->request.stop_token_ids;
  if (std::find(stops.begin(), stops.end(), tok.id) != stops.end()) {
    seq->result.stopped = true;
    return true;
  }
  return static_cast<int64_t>(seq->result.logprobs.size()) >= seq->request.max_new_tokens;
}

bool Generator::Cancel(int64_t id) {
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    if (it->id == id) {
      queue_.erase(it);
      return true;
    }
  }
  for (auto it = running_.begin(); it != running_.end(); ++it) {
    if (it->id == id) {
      cache_->Release(it->slot);
      running_.erase(it);
      return true;
    }
  }
  return false;
}

absl::Status Generator::Admit(std::vector<std::pair<int64_t, GenerationResult>>* finished) {
  if (device_) return AdmitOnDevice(finished);
  while (!queue_.empty() && cache_->num_free() > 0) {
    Sequence seq = std::move(queue_.front());
    queue_.pop_front();
    if (seq.request.max_new_tokens == 0) {
      finished->push_back({seq.id, std::move(seq.result)});
      continue;
    }
    SWARR_ASSIGN_OR_RETURN(seq.slot, cache_->Allocate());
    // Running from here on, so that a failure below frees its slot with the others.
    running_.push_back(std::move(seq));
    Sequence& s = running_.back();
    const auto& prompt = s.request.prompt;
    const int64_t n = static_cast<int64_t>(prompt.size());
    const int64_t chunk = std::max<int64_t>(1, options_.prefill_chunk);
    at::Tensor logits;
    for (int64_t b = 0; b < n; b += chunk) {
      const int64_t e = std::min(n, b + chunk);
      at::Tensor ids = at::tensor(std::vector<int64_t>(prompt.begin() + b, prompt.begin() + e), at::kLong).view({1, e - b});
      logits = model_.ForwardCached(ids, {s.slot}, cache_.get());
    }
    at::Tensor host = logits.to(at::kCPU).contiguous();
    if (SampleInto(&s, host.data_ptr<float>())) {
      cache_->Release(s.slot);
      finished->push_back({s.id, std::move(s.result)});
      running_.pop_back();
    }
  }
  return absl::OkStatus();
}

absl::Status Generator::Decode(std::vector<std::pair<int64_t, GenerationResult>>* finished) {
  if (running_.empty()) return absl::OkStatus();
  if (device_) return DecodeOnDevice(finished);
  std::vector<int> slots;
  std::vector<int64_t> last;
  for (const Sequence& s : running_) {
    slots.push_back(s.slot);
    last.push_back(s.result.tokens.back());
  }
  at::Tensor ids = at::tensor(last, at::kLong).view({static_cast<int64_t>(last.size()), 1});
  at::Tensor logits = model_.ForwardCached(ids, slots, cache_.get()).to(at::kCPU).contiguous();
  const int64_t vocab = model_.config().vocab_size;
  std::vector<Sequence> still;
  for (size_t b = 0; b < running_.size(); ++b) {
    Sequence& s = running_[b];
    if (SampleInto(&s, logits.data_ptr<float>() + b * vocab)) {
      cache_->Release(s.slot);
      finished->push_back({s.id, std::move(s.result)});
    } else {
      still.push_back(std::move(s));
    }
  }
  running_ = std::move(still);
  return absl::OkStatus();
}

absl::Status Generator::AdmitOnDevice(std::vector<std::pair<int64_t, GenerationResult>>* finished) {
  // Take queued requests while slots and this step's prompt-token budget last (the first
  // one always), then prefill those of equal prompt length together.
  std::vector<size_t> admitted;  // indices into running_
  int64_t budget = std::max<int64_t>(1, options_.prefill_tokens_per_step);
  while (!queue_.empty() && cache_->num_free() > 0) {
    const int64_t n = static_cast<int64_t>(queue_.front().request.prompt.size());
    if (!admitted.empty() && n > budget) break;
    Sequence seq = std::move(queue_.front());
    queue_.pop_front();
    if (seq.request.max_new_tokens == 0) {
      finished->push_back({seq.id, std::move(seq.result)});
      continue;
    }
    SWARR_ASSIGN_OR_RETURN(seq.slot, cache_->Allocate());
    running_.push_back(std::move(seq));
    admitted.push_back(running_.size() - 1);
    budget -= n;
  }
  if (admitted.empty()) return absl::OkStatus();
  std::map<int64_t, std::vector<size_t>> by_length;
  for (size_t i : admitted) by_length[static_cast<int64_t>(running_[i].request.prompt.size())].push_back(i);
  std::vector<bool> done(running_.size(), false);
  const int64_t chunk = std::max<int64_t>(1, options_.prefill_chunk);
  for (const auto& [n, members] : by_length) {
    std::vector<int> slots;
    std::vector<int64_t> flat;
    for (size_t i : members) slots.push_back(running_[i].slot);
    at::Tensor logits;
    for (int64_t b = 0; b < n; b += chunk) {
      const int64_t e = std::min(n, b + chunk);
      flat.clear();
      for (size_t i : members) {
        const auto& prompt = running_[i].request.prompt;
        flat.insert(flat.end(), prompt.begin() + b, prompt.begin() + e);
      }
      at::Tensor ids = at::tensor(flat, at::kLong).view({static_cast<int64_t>(members.size()), e - b});
      logits = model_.ForwardCached(ids, slots, cache_.get());
    }
    std::vector<DecodeRowInput> rows;
    for (size_t i : members) {
      DecodeRowInput r;
      r.row = running_[i].slot;
      r.sampling = &running_[i].request.sampling;
      r.draw = 0;
      rows.push_back(r);
    }
    std::vector<SampledToken> tokens;
    SWARR_RETURN_IF_ERROR(device_->Sample(logits, rows, &tokens));
    for (size_t j = 0; j < members.size(); ++j) {
      Sequence& s = running_[members[j]];
      if (Append(&s, tokens[j])) done[members[j]] = true;
    }
  }
  std::vector<Sequence> still;
  for (size_t i = 0; i < running_.size(); ++i) {
    if (i < done.size() && done[i]) {
      cache_->Release(running_[i].slot);
      finished->push_back({running_[i].id, std::move(running_[i].result)});
    } else {
      still.push_back(std::move(running_[i]));
    }
  }
  running_ = std::move(still);
  return absl::OkStatus();
}

absl::Status Generator::DecodeOnDevice(std::vector<std::pair<int64_t, GenerationResult>>* finished) {
  std::vector<DecodeRowInput> rows;
  std::vector<int> slots;
  rows.reserve(running_.size());
  for (Sequence& s : running_) {
    DecodeRowInput r;
    r.row = s.slot;
    r.token = s.result.tokens.back();
    r.sampling = &s.request.sampling;
    r.draw = static_cast<int64_t>(s.result.logprobs.size());
    rows.push_back(r);
    slots.push_back(s.slot);
  }
  std::vector<SampledToken> tokens;
  SWARR_RETURN_IF_ERROR(device_->Step(rows, &tokens));
  cache_->Advance(slots, 1);
  std::vector<Sequence> still;
  for (size_t b = 0; b < running_.size(); ++b) {
    Sequence& s = running_[b];
    if (Append(&s, tokens[b])) {
      cache_->Release(s.slot);
      finished->push_back({s.id, std::move(s.result)});
    } else {
      still.push_back(std::move(s));
    }
  }
  running_ = std::move(still);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::pair<int64_t, GenerationResult>>> Generator::Step() {
  std::vector<std::pair<int64_t, GenerationResult>> finished;
  absl::Status st = CatchTorch("generation step", [&]() -> absl::Status {
    at::NoGradGuard no_grad;
    SWARR_RETURN_IF_ERROR(Admit(&finished));
    if (fail_next_step_) {
      fail_next_step_ = false;
      TORCH_CHECK(false, "injected failure (FailNextStepForTest)");
    }
    return Decode(&finished);
  });
  if (!st.ok()) {
    // A failed forward pass leaves the running sequences' caches half written: drop them
    // (their slots are freed) so the generator stays usable; the caller resubmits them.
    for (Sequence& s : running_) cache_->Release(s.slot);
    running_.clear();
    return st;
  }
  return finished;
}

absl::StatusOr<std::vector<GenerationResult>> Generator::Generate(std::vector<GenerationRequest> requests) {
  if (!idle()) {
    return absl::FailedPreconditionError("Generate() needs an idle generator: drive earlier requests with Step()");
  }
  std::map<int64_t, size_t> index;
  for (size_t i = 0; i < requests.size(); ++i) {
    SWARR_ASSIGN_OR_RETURN(int64_t id, Submit(std::move(requests[i])));
    index[id] = i;
  }
  std::vector<GenerationResult> out(requests.size());
  size_t done = 0;
  while (done < requests.size()) {
    SWARR_ASSIGN_OR_RETURN(auto finished, Step());
    for (auto& [id, result] : finished) {
      out[index.at(id)] = std::move(result);
      ++done;
    }
  }
  return out;
}

}  // namespace swarr

#include "learner/sft_trainer.h"

#include <ATen/ATen.h>

#include "common/testing/numeric.h"
#include "common/testing/test_models.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace swarr {
namespace {

using ::testing::HasSubstr;

// Twelve "prompt -> response" pairs: the response is the prompt's digits reversed plus EOS.
std::vector<SftExample> ToyData() {
  std::vector<SftExample> data;
  for (int i = 0; i < 12; ++i) {
    SftExample e;
    e.prompt = {3 + i % 10, 3 + (i * 7) % 10, 3 + (i * 3) % 10, 20};
    e.response = {e.prompt[2], e.prompt[1], e.prompt[0], 2};
    data.push_back(e);
  }
  return data;
}

SftOptions Options() {
  SftOptions o;
  o.micro_batch_tokens = 24;  // 3 rows of 8 tokens
  o.grad_accum_steps = 2;
  o.schedule.lr = 1e-2;
  o.schedule.warmup_steps = 5;
  o.schedule.total_steps = 150;
  o.schedule.kind = "cosine";
  o.schedule.min_lr_ratio = 0.1;
  o.adam.grad_clip = 1.0;
  o.seed = 3;
  return o;
}

TEST(SftTrainerTest, DrivesLossOfATinyDataSetDown) {
  auto model = Model::RandomInit(TinyConfig({0, 4}), 1);  // one full, one sliding layer
  ASSERT_TRUE(model.ok());
  auto trainer = SftTrainer::Create(model->get(), ToyData(), Options());
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  double first = 0, last = 0;
  for (int s = 0; s < 150; ++s) {
    auto m = (*trainer)->Step();
    ASSERT_TRUE(m.ok()) << m.status();
    if (s == 0) first = m->loss;
    last = m->loss;
    EXPECT_EQ(m->examples, 6);      // 2 micro-batches x 3 rows
    EXPECT_EQ(m->tokens, 6 * 4);    // response tokens only: the prompt is masked
    EXPECT_EQ(m->padded_tokens, 6 * 8);
  }
  EXPECT_GT(first, 3.0);  // about log(64) at initialisation
  EXPECT_LT(last, 0.05);
  EXPECT_EQ((*trainer)->state().step, 150);
  EXPECT_EQ((*trainer)->state().data_position, 900);
}

TEST(SftTrainerTest, ResumeFromCheckpointIsExact) {
  const int straight_steps = 10, k = 4;
  std::vector<double> straight, resumed;
  {
    auto model = Model::RandomInit(TinyConfig({4}), 2);
    auto t = SftTrainer::Create(model->get(), ToyData(), Options());
    for (int s = 0; s < straight_steps; ++s) straight.push_back((*t)->Step()->loss);
  }
  char tmpl[] = "/tmp/swarr_sft_XXXXXX";
  const std::string dir = std::string(mkdtemp(tmpl)) + "/checkpoints";
  {
    auto model = Model::RandomInit(TinyConfig({4}), 2);
    auto t = SftTrainer::Create(model->get(), ToyData(), Options());
    for (int s = 0; s < k; ++s) resumed.push_back((*t)->Step()->loss);
    ASSERT_TRUE(SaveCheckpoint(dir, **model, (*t)->optimizer(), (*t)->state(), 1).ok());
  }
  {
    auto latest = LatestCheckpoint(dir);
    auto model = Model::Load(*latest);
    ASSERT_TRUE(model.ok()) << model.status();
    auto t = SftTrainer::Create(model->get(), ToyData(), Options());
    ASSERT_TRUE((*t)->Restore(*latest).ok());
    for (int s = k; s < straight_steps; ++s) resumed.push_back((*t)->Step()->loss);
  }
  for (int s = 0; s < straight_steps; ++s) EXPECT_EQ(resumed[s], straight[s]) << "step " << s;
}

TEST(SftTrainerTest, BadExamplesAreNamed) {
  auto model = Model::RandomInit(TinyConfig({4}), 1);
  auto data = ToyData();
  data[5].response.push_back(64);
  auto t = SftTrainer::Create(model->get(), data, Options());
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("SFT example 5: response token 4 has id 64"));
  data = ToyData();
  data[2].response.clear();
  EXPECT_THAT(std::string(SftTrainer::Create(model->get(), data, Options()).status().message()),
              HasSubstr("SFT example 2"));
  SftOptions o = Options();
  o.max_seq_len = 6;
  EXPECT_THAT(std::string(SftTrainer::Create(model->get(), ToyData(), o).status().message()),
              HasSubstr("longer than max_seq_len 6"));
  EXPECT_FALSE(SftTrainer::Create(model->get(), {}, Options()).ok());
}

// Packed micro-batches (sequences end to end, chunked log-probs, checkpointed layers): the
// same examples per micro-batch as padded when every row has the same length, and the same
// loss and update.
TEST(SftTrainerTest, PackedEqualsPadded) {
  std::vector<std::unique_ptr<Model>> models;
  std::vector<SftStepMetrics> metrics;
  for (bool packed : {false, true}) {
    auto model = Model::RandomInit(TinyConfig({0, 4}), 1);
    ASSERT_TRUE(model.ok());
    SftOptions o = Options();
    o.scoring.packed = packed;
    o.scoring.chunk_tokens = packed ? 5 : 0;
    o.scoring.checkpoint_layers = packed;
    // First AdamW step = p -= g (lr = eps = 1e6, no clipping): the update shows the gradient.
    o.schedule.lr = 1e6;
    o.schedule.warmup_steps = 0;
    o.schedule.kind = "constant";
    o.adam.eps = 1e6;
    o.adam.grad_clip = 0;
    auto trainer = SftTrainer::Create(model->get(), ToyData(), o);
    ASSERT_TRUE(trainer.ok()) << trainer.status();
    auto m = (*trainer)->Step();
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->examples, 6);  // rows of 8 tokens: 3 per 24-token micro-batch either way
    EXPECT_EQ(m->padded_tokens, 6 * 8);
    metrics.push_back(*m);
    models.push_back(std::move(*model));
  }
  auto fresh = Model::RandomInit(TinyConfig({0, 4}), 1);
  const int64_t k = 2 * ForwardReductionLength(TinyConfig({0, 4}), 8) + 24;
  EXPECT_NEAR(metrics[1].loss, metrics[0].loss, testing_numeric::Float32Tolerance(k) * metrics[0].loss);
  for (size_t i = 0; i < (*fresh)->named_parameters().size(); ++i) {
    const auto& [name, p0] = (*fresh)->named_parameters()[i];
    const at::Tensor padded = models[0]->named_parameters()[i].second.to(at::kDouble) - p0.to(at::kDouble);
    const at::Tensor packed = models[1]->named_parameters()[i].second.to(at::kDouble) - p0.to(at::kDouble);
    const double norm = padded.norm().item<double>();
    if (norm == 0) continue;
    const double tol = testing_numeric::Float32Tolerance(k) +
                       2 * testing_numeric::kFloat32Eps * p0.norm().item<double>() / norm;
    EXPECT_TRUE(testing_numeric::RelErrWithin(packed, padded, tol)) << name;
  }
}

}  // namespace
}  // namespace swarr

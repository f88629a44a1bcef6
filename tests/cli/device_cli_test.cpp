// `--device` and the GPU lines of `pensieve info`, as a user meets them: on a machine without a usable GPU
// (CI), `--device cuda` is refused with one line saying why, never a crash or a silent CPU run; with one (the
// GPU machine), it runs there and says so.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "backend/device.h"
#include "formats/temp_dir.h"
#include "run_cli.h"
#include "test_paths.h"

namespace pensieve {
namespace {

using ::testing::HasSubstr;
using test::RunCli;

int Lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

TEST(DeviceCli, CudaRunsThereOrIsRefusedInOneLine) {
  const backend::GpuReport gpu = backend::ReportGpu();
  const auto r = RunCli("generate --model demo --prompt 'What is 1 + 2?' --max-tokens 4 --device cuda");
  if (!gpu.usable) {
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_EQ(Lines(r.out), 1) << r.out;
    EXPECT_THAT(r.out, HasSubstr("error: --device cuda: ")) << r.out;
  } else {
    EXPECT_EQ(r.code, 0) << r.out;
    EXPECT_THAT(r.out, HasSubstr("cuda (")) << r.out;  // the summary line names the backend
  }
}

TEST(DeviceCli, UnknownDeviceAndBadMemoryCapAreRefused) {
  auto r = RunCli("generate --model demo --prompt hi --device tpu");
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.out, HasSubstr("--device: expected cpu, cuda or auto, got 'tpu'"));
  r = RunCli("generate --model demo --prompt hi --gpu-memory -1");
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.out, HasSubstr("--gpu-memory must be >= 0"));
}

TEST(DeviceCli, CpuAndAutoRunTheDemo) {
  for (const char* device : {"cpu", "auto"}) {
    const auto r = RunCli(std::string("generate --model demo --prompt 'What is 12 + 30?' --max-tokens 4 --device ") + device);
    EXPECT_EQ(r.code, 0) << device << ": " << r.out;
    EXPECT_THAT(r.out, HasSubstr("generated")) << r.out;
  }
}

TEST(DeviceCli, InfoReportsTheGpu) {
  const std::string demo = test::FixturesDir() + "/../../models/demo";
  auto r = RunCli("info " + demo);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("gpu:"));
  r = RunCli("info " + demo + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  const backend::GpuReport gpu = backend::ReportGpu();
  EXPECT_EQ(j["gpu"]["usable"], gpu.usable);
  EXPECT_EQ(j["gpu"]["description"], gpu.description);
  if (gpu.usable) {
    EXPECT_GT(j["gpu"]["needed_bytes"].get<int64_t>(), 11 << 20);  // at least the weights
    EXPECT_TRUE(j["gpu"]["fits"].get<bool>());
  }
}

TEST(DeviceCli, BenchKernelsRunsOnTheCpu) {
  const auto r = RunCli("bench-kernels --device cpu --shape tiny --dtype mlx4 --iters 1");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("whole decode step"));
  EXPECT_THAT(r.out, HasSubstr("tok/s"));
}

// The throughput mode prints llama-batched-bench's table: a row per batch size, N_KV = B (PP + TG).
TEST(DeviceCli, BenchParallelPrintsARowPerBatchSize) {
  test::TempDir dir;
  ASSERT_EQ(RunCli("random-model --shape tiny " + dir.path() + "/m --layers 1").code, 0);
  const auto r = RunCli("bench --model " + dir.path() + "/m --device cpu -p 8 -n 2 --parallel 1,3");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("|    PP |     TG |    B |   N_KV |"));
  EXPECT_THAT(r.out, HasSubstr("|     8 |      2 |    1 |     10 |"));
  EXPECT_THAT(r.out, HasSubstr("|     8 |      2 |    3 |     30 |"));
  const auto bad = RunCli("bench --model " + dir.path() + "/m --device cpu --parallel 0");
  EXPECT_NE(bad.code, 0);
  EXPECT_THAT(bad.out, HasSubstr("--parallel sizes must be in [1, 4096]"));
}

}  // namespace
}  // namespace pensieve

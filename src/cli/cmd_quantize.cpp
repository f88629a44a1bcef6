// pensieve quantize IN_DIR OUT_DIR --bits 4 --group-size 64: an MLX-format quantized copy of a model.
#include <chrono>
#include <cstdio>

#include "cli/commands.h"
#include "formats/quantize_model.h"

namespace pensieve::cli {

void RegisterQuantize(CLI::App& app) {
  struct Options {
    std::string in, out;
    int bits = 4, group_size = 64;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("quantize", "Quantize a safetensors model to MLX affine format (as mlx-lm writes it)");
  cmd->add_option("in_dir", opt->in, "Input model directory (float weights)")->required();
  cmd->add_option("out_dir", opt->out, "Output directory")->required();
  cmd->add_option("--bits", opt->bits, "Bits per weight: 2, 3, 4, 5, 6 or 8")->capture_default_str();
  cmd->add_option("--group-size", opt->group_size, "Weights per scale/bias group: 32, 64 or 128")->capture_default_str();
  cmd->callback([opt] {
    auto t0 = std::chrono::steady_clock::now();
    QuantizeStats s = QuantizeModelDir(opt->in, opt->out, QuantSpec{opt->bits, opt->group_size});
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("quantized %d tensors to %d-bit (group %d), copied %d; %.1f MiB -> %.1f MiB in %.1f s\n",
                s.quantized_tensors, opt->bits, opt->group_size, s.copied_tensors, s.bytes_in / 1048576.0,
                s.bytes_out / 1048576.0, secs);
    for (const auto& f : s.files) std::printf("  %s/%s\n", opt->out.c_str(), f.c_str());
  });
}

}  // namespace pensieve::cli

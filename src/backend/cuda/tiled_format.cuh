#pragma once
// The tiled 4-bit weight layout (written at load by LaunchRelayout, gemv_tiled.cu) and how a lane turns its
// bytes into tensor-core operands; shared by the decode kernel (gemv_tiled.cu) and the many-row kernel
// (gemm_tiled.cu).
//
// A matrix is cut into tiles of 16 rows x 64 columns, 512 bytes each; a row tile's tiles follow one another
// along the columns. Lane l = g * 4 + t of a warp finds in its 16 bytes of a tile exactly the A operands of four
// m16n8k16 MMAs (one 32-bit word per MMA, columns 16 mm .. 16 mm + 15). Scales and biases are stored per (row
// tile, group) as eight words, word g holding rows g (low half) and g + 8 (high half).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace pensieve::backend::cuda {

constexpr int kTileRows = 16, kTileCols = 64;

// The four A registers of one MMA from its 32-bit word: nibble p (p = 0..3) and p + 4 as the bf16 number 128 + q
// (OR-ing the code under the exponent of 128 is exact: bf16 has 7 mantissa bits). Register 0: row g, columns 2t
// and 2t + 1; 1: row g + 8, same columns; 2 and 3: the same rows, columns 2t + 8 and 2t + 9.
__device__ __forceinline__ void Operands(uint32_t word, uint32_t (&a)[4]) {
  a[0] = (word & 0x000F000Fu) | 0x43004300u;
  a[1] = ((word >> 4) & 0x000F000Fu) | 0x43004300u;
  a[2] = ((word >> 8) & 0x000F000Fu) | 0x43004300u;
  a[3] = ((word >> 12) & 0x000F000Fu) | 0x43004300u;
}

// A 16-bit scale or bias as f32 (f16 a compile-time constant at every call).
__device__ __forceinline__ float Half16(uint32_t bits, bool f16) {
  return f16 ? __half2float(__ushort_as_half(static_cast<unsigned short>(bits))) : __uint_as_float(bits << 16);
}

}  // namespace pensieve::backend::cuda

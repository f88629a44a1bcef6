#pragma once
// Which SIMD targets the CPU kernels are compiled for (include before any Highway header).
// Highway 1.0.3 would also build SSSE3 and SSE4; we skip them: every x86-64 CPU of the last decade has AVX2,
// and each extra target costs a full compile of every kernel on our 2-core CI. What remains: AVX3 (AVX-512,
// the development VMs), AVX2 (most laptops and desktops), NEON/SVE on ARM, and the portable baseline.
// AVX3_DL (VNNI) is not requested (HWY_WANT_AVX3_DL unset): the float kernels gain nothing from it.
#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS (HWY_SSSE3 | HWY_SSE4)
#endif

#pragma once
// Whether this test binary (and the binaries of the same build) run under AddressSanitizer. Its quarantine keeps
// freed memory resident, so resident-memory (RSS) bounds are not meaningful there and are checked only in
// ordinary builds.
namespace pensieve::test {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kUnderAsan = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kUnderAsan = true;
#else
inline constexpr bool kUnderAsan = false;
#endif
#else
inline constexpr bool kUnderAsan = false;
#endif

}  // namespace pensieve::test

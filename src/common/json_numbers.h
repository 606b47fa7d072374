#pragma once

// RapidJSON 1.1's full-precision number parser (kParseFullPrecisionFlag,
// which Osprey parses with so that inputs reach models bit-exact) reads a
// number whose digits run far past the smallest double (0.000...0001 with
// hundreds of zeros, 1.2345678901234567e-330, 0.000...0 itself) out of its
// tables' bounds: a wrong value, or a crash (a fuzzer's find; a client's
// request could take a server down). SafeJsonNumbers gives the text with
// each such number written as the double it denotes, in a form RapidJSON
// reads right; every other byte as it was.

#include <optional>
#include <string>
#include <string_view>

namespace osprey {

// ParseSafely below is how callers use it.
//
// nullopt when no number needs it (the common case: one pass, no copy).
// A number needs it when it has more than 250 digits or its first
// significant digit lies below 10^-300 or above 10^307; it becomes 0.0
// (-0.0) when it is below every double, 1e999 (which the parser refuses as
// too big) when it is above, else the double's shortest form ("1e-321").
// Bytes inside strings are not numbers; a number JSON does not allow is
// left as it is, for the parser to refuse.
std::optional<std::string> SafeJsonNumbers(std::string_view json);

// doc.Parse<kFlags>(json) (a RapidJSON document; this header does not
// include RapidJSON) with its numbers made safe first. Returns `doc`.
template <unsigned kFlags, typename Document>
Document& ParseSafely(Document& doc, std::string_view json) {
  const std::optional<std::string> safe = SafeJsonNumbers(json);
  if (safe.has_value()) json = *safe;
  doc.template Parse<kFlags>(json.data(), json.size());
  return doc;
}

}  // namespace osprey

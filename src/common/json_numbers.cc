#include "common/json_numbers.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <system_error>

namespace osprey {
namespace {

constexpr size_t kMaxDigits = 250;
// The parser reads a first significant digit at 10^-300 right, not far below.
constexpr int64_t kMinFirstDigit = -300;

bool Digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

std::optional<std::string> SafeJsonNumbers(std::string_view s) {
  std::optional<std::string> out;
  size_t copied = 0;  // bytes of `s` already in `out`
  bool in_string = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
      continue;
    }
    if (c != '-' && !Digit(c)) continue;
    // A number: -? int (. frac)? ([eE] [+-]? exp)?
    const size_t start = i;
    size_t j = i + (c == '-' ? 1 : 0);
    const size_t int_begin = j;
    while (j < s.size() && Digit(s[j])) ++j;
    const size_t int_end = j;
    size_t frac_begin = j, frac_end = j;
    if (j < s.size() && s[j] == '.') {
      frac_begin = ++j;
      while (j < s.size() && Digit(s[j])) ++j;
      frac_end = j;
    }
    int64_t exponent = 0;
    if (j < s.size() && (s[j] == 'e' || s[j] == 'E')) {
      ++j;
      bool negative = false;
      if (j < s.size() && (s[j] == '+' || s[j] == '-')) negative = s[j++] == '-';
      for (; j < s.size() && Digit(s[j]); ++j)
        exponent = std::min<int64_t>(exponent * 10 + (s[j] - '0'), 1'000'000'000);
      if (negative) exponent = -exponent;
    }
    i = j - 1;  // the loop's ++i moves past the number
    const size_t digits = (int_end - int_begin) + (frac_end - frac_begin);
    // Where the first significant digit is, as a power of ten (with the
    // exponent): past -kMaxDigits is what the parser cannot read.
    int64_t first = 0;
    const size_t int_lead = std::find_if(s.begin() + static_cast<std::ptrdiff_t>(int_begin),
                                         s.begin() + static_cast<std::ptrdiff_t>(int_end),
                                         [](char d) { return d != '0'; }) -
                            s.begin();
    if (int_lead < int_end) {
      first = static_cast<int64_t>(int_end - int_lead) - 1 + exponent;
    } else {
      const size_t frac_lead = std::find_if(s.begin() + static_cast<std::ptrdiff_t>(frac_begin),
                                            s.begin() + static_cast<std::ptrdiff_t>(frac_end),
                                            [](char d) { return d != '0'; }) -
                               s.begin();
      first = -static_cast<int64_t>(frac_lead - frac_begin) - 1 + exponent;
    }
    if (digits <= kMaxDigits && first >= kMinFirstDigit) continue;
    if (int_end == int_begin) continue;  // not a number JSON allows: the parser says so
    double value = 0;
    const std::string_view token = s.substr(start, j - start);
    const auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), value);
    if (end != token.data() + token.size()) continue;  // malformed: left to the parser
    std::string written;
    if (ec == std::errc::result_out_of_range) {
      if (first > 0) continue;  // beyond the largest double: the parser refuses it
      value = 0;
    }
    if (value == 0) {
      written = c == '-' ? "-0.0" : "0.0";
    } else {
      char buf[64];
      const auto r = std::to_chars(buf, buf + sizeof(buf), value);
      written.assign(buf, r.ptr);
      if (written.find_first_of(".e") == std::string::npos) written += ".0";
    }
    if (!out.has_value()) {
      out.emplace();
      out->reserve(s.size());
    }
    out->append(s.substr(copied, start - copied));
    out->append(written);
    copied = j;
  }
  if (out.has_value()) out->append(s.substr(copied));
  return out;
}

}  // namespace osprey

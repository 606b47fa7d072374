#include "common/json_numbers.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <system_error>

namespace osprey {
namespace {

constexpr size_t kMaxDigits = 250;
// The parser reads a first significant digit at 10^-300 right, not far
// below; nor past the largest double (5e308 came back as -8.7e-309).
constexpr int64_t kMinFirstDigit = -300;
constexpr int64_t kMaxFirstDigit = 307;

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
    if (digits <= kMaxDigits && first >= kMinFirstDigit && first <= kMaxFirstDigit) continue;
    // Only what JSON allows is rewritten (a leading zero before digits, a
    // point or exponent without digits: left for the parser to refuse).
    const bool frac_ok = frac_begin == int_end || frac_end > frac_begin;
    const bool exp_ok = j == frac_end || Digit(s[j - 1]);
    if (int_end == int_begin || (s[int_begin] == '0' && int_end - int_begin > 1) || !frac_ok ||
        !exp_ok)
      continue;
    double value = 0;
    const std::string_view token = s.substr(start, j - start);
    const auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), value);
    if (end != token.data() + token.size()) continue;  // malformed: left to the parser
    std::string written;
    if (ec == std::errc::result_out_of_range && first > 0) {
      // Beyond the largest double: a form the parser refuses (too big).
      written = c == '-' ? "-1e999" : "1e999";
    } else if (ec == std::errc::result_out_of_range || value == 0) {
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

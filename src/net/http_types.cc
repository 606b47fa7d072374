#include "net/http_types.h"

#include <algorithm>

namespace osprey {

std::string_view FindHeader(const HeaderSource& headers, std::string_view name) {
  std::string_view found;
  if (headers.visit == nullptr) return found;
  headers.visit(headers.context, [&](std::string_view n, std::string_view v) {
    if (found.empty() && n.size() == name.size() &&
        std::equal(n.begin(), n.end(), name.begin(), [](char a, char b) {
          auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
          return lower(a) == lower(b);
        }))
      found = v;
  });
  return found;
}

}  // namespace osprey

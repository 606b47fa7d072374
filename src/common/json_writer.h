#pragma once

// Appends JSON to a std::string: fast, allocation-light, no DOM. The caller is
// responsible for well-formed nesting; commas are inserted automatically.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace osprey {

class JsonWriter {
 public:
  explicit JsonWriter(std::string* out) : out_(out) {}

  JsonWriter& BeginObject();
  JsonWriter& EndObject();
  JsonWriter& BeginArray();
  JsonWriter& EndArray();
  JsonWriter& Key(std::string_view key);
  JsonWriter& String(std::string_view value);
  JsonWriter& Bool(bool value);
  JsonWriter& Null();
  JsonWriter& Int(int64_t value);
  JsonWriter& Uint(uint64_t value);
  // Shortest round-trip form; NaN and infinities, which JSON lacks, as null.
  JsonWriter& Double(double value);
  JsonWriter& Float(float value);
  // Already-serialised JSON value.
  JsonWriter& Raw(std::string_view json);

 private:
  void Separate();

  std::string* out_;
  // One entry per open container: true once it holds an element.
  std::vector<bool> has_element_;
  bool after_key_ = false;
};

// Appends `text` as a quoted, escaped JSON string.
void AppendJsonString(std::string_view text, std::string* out);

// {"error": message}
std::string JsonError(std::string_view message);

}  // namespace osprey

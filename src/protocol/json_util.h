#pragma once

// RapidJSON helpers shared by the JSON codecs. Internal to src/protocol: other
// layers never see JSON values.

#include <string_view>

#include "rapidjson/document.h"
#include "tensor/tensor.h"

namespace osprey {

// Parses `json` (not necessarily NUL-terminated). NaN and Infinity literals are
// accepted (Python's json writes them for missing values); numbers keep full
// precision. InvalidArgument names the offset and the parser's complaint.
absl::Status ParseJson(std::string_view json, rapidjson::Document* doc);

// Decodes a parameters object (string -> string | number | bool). `what` names
// the object in error messages.
absl::Status DecodeParameters(const rapidjson::Value& value, std::string_view what,
                              Parameters* out);

}  // namespace osprey

#pragma once

// Reference data of the drift and outlier detectors: a matrix of rows x
// features read from a NumPy .npy file (float32/float64, signed or unsigned
// integers, bool; little-endian; C or Fortran order; 1-D is one feature) or
// a .csv file (comma-separated numbers, an optional header line of names).
// Parquet is not read (Osprey carries no Parquet reader); a .parquet file is
// refused with that reason.
//
// Pure parsing: the caller reads the file (or gets it through storage).
// Thread safety: reentrant.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace osprey::monitor {

struct Matrix {
  size_t rows = 0;
  size_t cols = 0;
  std::vector<double> values;  // row-major, rows * cols
};

// The bytes of a .npy file. InvalidArgument naming what is wrong (magic,
// header, dtype, shape, size).
absl::StatusOr<Matrix> ParseNpy(std::string_view bytes);
// The text of a .csv file: every data line has the same number of numeric
// fields; a first line that is not all numbers is a header and skipped.
absl::StatusOr<Matrix> ParseCsv(std::string_view text);
// By the file name's extension (.npy, .csv; .parquet refused).
absl::StatusOr<Matrix> ParseReference(std::string_view file_name, std::string_view bytes);

}  // namespace osprey::monitor

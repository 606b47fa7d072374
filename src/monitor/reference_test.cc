#include "monitor/reference.h"

#include <cstring>
#include <string>

#include "gtest/gtest.h"

namespace osprey::monitor {
namespace {

// A .npy file as numpy.save writes it (format 1.0, header padded to 64).
std::string Npy(std::string_view descr, std::string_view shape, std::string_view data,
                bool fortran = false) {
  std::string header = "{'descr': '" + std::string(descr) +
                       "', 'fortran_order': " + (fortran ? "True" : "False") +
                       ", 'shape': " + std::string(shape) + ", }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  return out + header + std::string(data);
}

template <typename T>
std::string Bytes(std::initializer_list<T> values) {
  std::string out(values.size() * sizeof(T), '\0');
  size_t i = 0;
  for (T v : values) std::memcpy(&out[sizeof(T) * i++], &v, sizeof(T));
  return out;
}

TEST(ParseNpy, Table) {
  struct Case {
    const char* name;
    std::string bytes;
    size_t rows, cols;
    std::vector<double> values;
  };
  const Case cases[] = {
      {"f8 2-D", Npy("<f8", "(2, 3)", Bytes<double>({1, 2, 3, 4, 5, 6})), 2, 3, {1, 2, 3, 4, 5, 6}},
      {"f4 2-D", Npy("<f4", "(3, 1)", Bytes<float>({0.5f, 1.5f, 2.5f})), 3, 1, {0.5, 1.5, 2.5}},
      {"i8 1-D is one feature", Npy("<i8", "(3,)", Bytes<int64_t>({7, -1, 3})), 3, 1, {7, -1, 3}},
      {"Fortran order",
       Npy("<f8", "(2, 2)", Bytes<double>({1, 3, 2, 4}), true),
       2,
       2,
       {1, 2, 3, 4}},
      {"bool", Npy("|b1", "(2, 1)", std::string("\x01\x00", 2)), 2, 1, {1, 0}},
  };
  for (const Case& c : cases) {
    auto m = ParseNpy(c.bytes);
    ASSERT_TRUE(m.ok()) << c.name << ": " << m.status();
    EXPECT_EQ(m->rows, c.rows) << c.name;
    EXPECT_EQ(m->cols, c.cols) << c.name;
    EXPECT_EQ(m->values, c.values) << c.name;
  }
}

TEST(ParseNpy, ErrorsNameTheProblem) {
  struct Case {
    std::string bytes;
    const char* message;
  };
  const Case cases[] = {
      {"not numpy", "not a .npy file"},
      {Npy(">f8", "(1, 1)", Bytes<double>({1})), "big-endian"},
      {Npy("<c16", "(1, 1)", std::string(16, '\0')), "unsupported dtype"},
      {Npy("<f8", "(2, 2, 2)", Bytes<double>({1, 2, 3, 4, 5, 6, 7, 8})), "expected rows"},
      {Npy("<f8", "(4, 2)", Bytes<double>({1, 2})), "needs 64 bytes"},
  };
  for (const Case& c : cases) {
    auto m = ParseNpy(c.bytes);
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.status().message().find(c.message), std::string_view::npos) << m.status();
  }
}

TEST(ParseCsv, HeaderAndRows) {
  auto m = ParseCsv("a,b\n1,2\n3.5, 4\n\n");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->rows, 2u);
  EXPECT_EQ(m->values, (std::vector<double>{1, 2, 3.5, 4}));
  EXPECT_FALSE(ParseCsv("1,2\n3\n").ok());
  EXPECT_FALSE(ParseCsv("1,2\nx,3\n").ok());
  EXPECT_FALSE(ParseCsv("a,b\n").ok());
}

TEST(ParseReference, ByExtension) {
  EXPECT_TRUE(ParseReference("ref.CSV", "1\n2\n").ok());
  auto parquet = ParseReference("ref.parquet", "PAR1");
  ASSERT_FALSE(parquet.ok());
  EXPECT_NE(parquet.status().message().find("Parquet"), std::string_view::npos);
  EXPECT_FALSE(ParseReference("ref.json", "[]").ok());
}

}  // namespace
}  // namespace osprey::monitor

#pragma once

// SHA-256 and HMAC-SHA256 through OpenSSL, as the SigV4 signer and the
// content-addressed cache use them.

#include <openssl/evp.h>

#include <memory>
#include <string>
#include <string_view>

namespace osprey::storage {

// Lower-case hex of `bytes`.
std::string HexEncode(std::string_view bytes);

// Raw 32-byte digest and its hex form.
std::string Sha256(std::string_view data);
std::string Sha256Hex(std::string_view data);

// Raw 32-byte HMAC-SHA256 of `data` under `key`.
std::string HmacSha256(std::string_view key, std::string_view data);

// Incremental SHA-256 (large files, directory trees). Not thread-safe.
class Sha256Hasher {
 public:
  Sha256Hasher();
  void Update(std::string_view data);
  // Hex digest; the hasher may not be updated afterwards.
  std::string FinishHex();

 private:
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx_;
};

}  // namespace osprey::storage

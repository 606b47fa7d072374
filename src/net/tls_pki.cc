#include "net/tls_pki.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "common/files.h"
#include "common/strings.h"

namespace osprey::tls {
namespace {

namespace fs = std::filesystem;

template <typename T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using Key = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using Cert = std::unique_ptr<X509, Deleter<X509, X509_free>>;
void FreeBio(BIO* b) { BIO_free(b); }
using Bio = std::unique_ptr<BIO, Deleter<BIO, FreeBio>>;

constexpr long kDay = 24 * 3600;
constexpr long kCaDays = 3650;
constexpr long kServerDays = 825;
constexpr long kRenewDays = 30;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return in ? ss.str() : "";
}

Key NewKey() { return Key(EVP_EC_gen("P-256")); }

std::string KeyPem(EVP_PKEY* key) {
  Bio bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, n);
}

std::string CertPem(X509* cert) {
  Bio bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, n);
}

Cert ParseCert(const std::string& pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return Cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

Key ParseKey(const std::string& pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return Key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

// Valid now and for at least `days` more.
bool Fresh(X509* cert, long days) {
  time_t later = time(nullptr) + days * kDay;
  return X509_cmp_time(X509_get0_notBefore(cert), nullptr) < 0 &&
         X509_cmp_time(X509_get0_notAfter(cert), &later) > 0;
}

bool AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return false;
  bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

bool IsIp(const std::string& host) {
  return !host.empty() && (host.find(':') != std::string::npos ||
                           host.find_first_not_of("0123456789.") == std::string::npos);
}

std::string SubjectAltNames(const std::vector<std::string>& hosts) {
  std::string out;
  for (const auto& h : hosts) StrAppend(&out, out.empty() ? "" : ",", IsIp(h) ? "IP:" : "DNS:", h);
  return out;
}

// A certificate for `key` named `common_name`, signed by `issuer_key`
// (itself when `issuer` is null: a self-signed CA).
absl::StatusOr<Cert> MakeCert(EVP_PKEY* key, const std::string& common_name, X509* issuer,
                              EVP_PKEY* issuer_key, long days, const std::string& alt_names) {
  Cert cert(X509_new());
  if (!cert) return absl::InternalError("X509_new failed");
  X509_set_version(cert.get(), 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof(serial));
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof(serial), nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), days * kDay);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("Osprey"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  X509* signer = issuer != nullptr ? issuer : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(signer));
  bool ok = true;
  if (issuer == nullptr) {
    ok = ok && AddExtension(cert.get(), signer, NID_basic_constraints, "critical,CA:TRUE");
    ok = ok && AddExtension(cert.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign");
    ok = ok && AddExtension(cert.get(), signer, NID_subject_key_identifier, "hash");
  } else {
    ok = ok && AddExtension(cert.get(), signer, NID_basic_constraints, "critical,CA:FALSE");
    ok = ok && AddExtension(cert.get(), signer, NID_key_usage, "critical,digitalSignature");
    ok = ok && AddExtension(cert.get(), signer, NID_ext_key_usage, "serverAuth");
    ok = ok && AddExtension(cert.get(), signer, NID_subject_alt_name, alt_names);
    ok = ok && AddExtension(cert.get(), signer, NID_authority_key_identifier, "keyid:always");
  }
  if (!ok) return absl::InternalError("cannot add the certificate's extensions");
  if (X509_sign(cert.get(), issuer_key, EVP_sha256()) == 0)
    return absl::InternalError("cannot sign the certificate");
  return cert;
}

// Whether `cert` names every host among its subjectAltNames.
bool NamesAll(X509* cert, const std::vector<std::string>& hosts) {
  for (const auto& h : hosts) {
    int r = IsIp(h) ? X509_check_ip_asc(cert, h.c_str(), 0)
                    : X509_check_host(cert, h.c_str(), h.size(), 0, nullptr);
    if (r != 1) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<PkiFiles> EnsureServerPki(const std::string& dir,
                                         const std::vector<std::string>& hosts) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(StrCat("cannot create ", dir, ": ", ec.message()));
  ::chmod(dir.c_str(), 0700);
  PkiFiles files{dir + "/ca.crt", dir + "/server.crt", dir + "/server.key"};
  const std::string ca_key_file = dir + "/ca.key";

  Cert ca = ParseCert(ReadFile(files.ca_certificate));
  Key ca_key = ParseKey(ReadFile(ca_key_file));
  bool new_ca = false;
  if (!ca || !ca_key || !Fresh(ca.get(), kRenewDays) ||
      X509_check_private_key(ca.get(), ca_key.get()) != 1) {
    ca_key = NewKey();
    if (!ca_key) return absl::InternalError("cannot make a P-256 key");
    OSPREY_ASSIGN_OR_RETURN(
        ca, MakeCert(ca_key.get(), "osprey-ca", nullptr, ca_key.get(), kCaDays, ""));
    OSPREY_RETURN_IF_ERROR(WriteFileAtomically(ca_key_file, KeyPem(ca_key.get()), true));
    OSPREY_RETURN_IF_ERROR(WriteFileAtomically(files.ca_certificate, CertPem(ca.get()), false));
    new_ca = true;
  }
  Cert server = ParseCert(ReadFile(files.server_certificate));
  Key server_key = ParseKey(ReadFile(files.server_key));
  const bool keep = !new_ca && server && server_key && Fresh(server.get(), kRenewDays) &&
                    X509_check_private_key(server.get(), server_key.get()) == 1 &&
                    X509_verify(server.get(), ca_key.get()) == 1 && NamesAll(server.get(), hosts);
  if (!keep) {
    server_key = NewKey();
    if (!server_key) return absl::InternalError("cannot make a P-256 key");
    OSPREY_ASSIGN_OR_RETURN(server, MakeCert(server_key.get(), "osprey-api", ca.get(), ca_key.get(),
                                             kServerDays, SubjectAltNames(hosts)));
    OSPREY_RETURN_IF_ERROR(WriteFileAtomically(files.server_key, KeyPem(server_key.get()), true));
    OSPREY_RETURN_IF_ERROR(
        WriteFileAtomically(files.server_certificate, CertPem(server.get()), false));
  }
  return files;
}

}  // namespace osprey::tls

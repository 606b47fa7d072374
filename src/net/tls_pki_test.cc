#include "net/tls_pki.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace osprey::tls {
namespace {

namespace fs = std::filesystem;

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

X509* Parse(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  return cert;
}

// The server certificate verifies against the CA for each host.
bool Verifies(const PkiFiles& f, const std::string& host, bool ip) {
  X509* ca = Parse(Read(f.ca_certificate));
  X509* leaf = Parse(Read(f.server_certificate));
  X509_STORE* store = X509_STORE_new();
  X509_STORE_add_cert(store, ca);
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, leaf, nullptr);
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx);
  if (ip)
    X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
  else
    X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
  bool ok = X509_verify_cert(ctx) == 1;
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  X509_free(leaf);
  X509_free(ca);
  return ok;
}

TEST(TlsPki, MakesAVerifiableServerCertificateAndKeepsIt) {
  std::string dir = testing::TempDir() + "/pki-" + std::to_string(::getpid());
  fs::remove_all(dir);
  auto files = EnsureServerPki(dir, {"127.0.0.1", "localhost"});
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_TRUE(Verifies(*files, "127.0.0.1", true));
  EXPECT_TRUE(Verifies(*files, "localhost", false));
  EXPECT_FALSE(Verifies(*files, "example.com", false));
  struct stat st;
  ASSERT_EQ(::stat(files->server_key.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((dir + "/ca.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  // A second start keeps what is there (clients keep trusting it).
  const std::string ca = Read(files->ca_certificate), leaf = Read(files->server_certificate);
  ASSERT_TRUE(EnsureServerPki(dir, {"127.0.0.1", "localhost"}).ok());
  EXPECT_EQ(Read(files->ca_certificate), ca);
  EXPECT_EQ(Read(files->server_certificate), leaf);

  // A host the certificate lacks: a new server certificate, the same CA.
  ASSERT_TRUE(EnsureServerPki(dir, {"127.0.0.1", "osprey.local"}).ok());
  EXPECT_EQ(Read(files->ca_certificate), ca);
  EXPECT_NE(Read(files->server_certificate), leaf);
  EXPECT_TRUE(Verifies(*files, "osprey.local", false));

  // A damaged key: made anew.
  std::ofstream(files->server_key) << "not a key";
  ASSERT_TRUE(EnsureServerPki(dir, {"127.0.0.1"}).ok());
  EXPECT_TRUE(Verifies(*files, "127.0.0.1", true));
  EXPECT_NE(Read(files->server_key), "not a key");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace osprey::tls

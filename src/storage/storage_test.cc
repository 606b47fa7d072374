// Fetch and Pull end to end against an HTTP server scripted by each test:
// caching (a second fetch touches no network), retries, stalls, archives,
// S3 listings with continuation, GCS listings, and the local schemes.

#include "storage/storage.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "storage/testing/archives.h"

namespace osprey::storage {
namespace {
namespace fs = std::filesystem;
using testing::Dir;
using testing::File;

struct Request {
  std::string method;
  std::string target;                          // path and query, as sent
  std::map<std::string, std::string> headers;  // names lower-cased
  int number = 0;                              // 1 for the first request
};

struct Reply {
  int status = 200;
  std::string body;
  std::string content_type = "application/octet-stream";
  // Send this many body bytes, then nothing until the client hangs up.
  size_t stall_after = std::string::npos;
};

// A real HTTP/1.1 server on 127.0.0.1, one connection at a time, each closed
// after its answer; `handler` scripts the answers.
class ScriptedHttpServer {
 public:
  using Handler = std::function<Reply(const Request&)>;

  explicit ScriptedHttpServer(Handler handler) : handler_(std::move(handler)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    socklen_t len = sizeof(addr);
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    ::listen(listen_fd_, 16);
    thread_ = std::thread([this] { Serve(); });
  }
  ~ScriptedHttpServer() { Stop(); }

  // After Stop(), nothing listens on the port: a connection is refused.
  void Stop() {
    if (stopping_.exchange(true)) return;
    ::shutdown(listen_fd_, SHUT_RDWR);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (conn_fd_ >= 0) ::shutdown(conn_fd_, SHUT_RDWR);
    }
    thread_.join();
    ::close(listen_fd_);
  }

  std::string Url(std::string_view path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
  }
  std::string HostPort() const { return "127.0.0.1:" + std::to_string(port_); }
  int requests() const { return requests_.load(); }
  std::vector<Request> log() const {
    std::lock_guard<std::mutex> lock(mu_);
    return log_;
  }

 private:
  void Serve() {
    while (!stopping_) {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      {
        std::lock_guard<std::mutex> lock(mu_);
        conn_fd_ = fd;
      }
      if (!stopping_) Handle(fd);
      {
        std::lock_guard<std::mutex> lock(mu_);
        conn_fd_ = -1;
      }
      ::close(fd);
    }
  }

  void Handle(int fd) {
    std::string in;
    char buf[4096];
    while (in.find("\r\n\r\n") == std::string::npos) {
      ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) return;
      in.append(buf, static_cast<size_t>(n));
    }
    Request request;
    std::istringstream lines(in.substr(0, in.find("\r\n\r\n")));
    std::string line;
    std::getline(lines, line);
    std::istringstream first(line);
    first >> request.method >> request.target;
    while (std::getline(lines, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = line.substr(0, colon);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      size_t v = line.find_first_not_of(' ', colon + 1);
      request.headers[name] = v == std::string::npos ? "" : line.substr(v);
    }
    request.number = requests_.fetch_add(1) + 1;
    {
      std::lock_guard<std::mutex> lock(mu_);
      log_.push_back(request);
    }
    Reply reply = handler_(request);
    std::string head = "HTTP/1.1 " + std::to_string(reply.status) + " Scripted\r\n" +
                       "Content-Type: " + reply.content_type + "\r\n" +
                       "Content-Length: " + std::to_string(reply.body.size()) + "\r\n" +
                       "Connection: close\r\n\r\n";
    size_t body_bytes = std::min(reply.stall_after, reply.body.size());
    std::string out = head + reply.body.substr(0, body_bytes);
    ::send(fd, out.data(), out.size(), MSG_NOSIGNAL);
    if (reply.stall_after != std::string::npos) {
      // Stalled: wait for the client to give up (or Stop()).
      while (::recv(fd, buf, sizeof(buf), 0) > 0) {
      }
    }
  }

  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> requests_{0};
  mutable std::mutex mu_;
  int conn_fd_ = -1;          // guarded by mu_
  std::vector<Request> log_;  // guarded by mu_
  std::thread thread_;
};

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string TarGz(const fs::path& scratch, const std::vector<testing::ArchiveEntry>& entries) {
  fs::path file = scratch / "built.tar.gz";
  std::string error;
  EXPECT_TRUE(testing::WriteArchive(file, testing::ArchiveFormat::kTarGz, entries, &error))
      << error;
  std::string bytes = ReadFile(file);
  fs::remove(file);
  return bytes;
}

class FetchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("osprey_storage_test_" + std::to_string(getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
    options_.cache_dir = (root_ / "cache").string();
    options_.retries = 2;
    options_.retry_backoff = std::chrono::milliseconds(1);
    options_.connect_timeout = std::chrono::seconds(5);
    options_.getenv = [this](std::string_view name) -> std::optional<std::string> {
      auto it = env_.find(std::string(name));
      if (it == env_.end()) return std::nullopt;
      return it->second;
    };
    options_.on_progress = [this](const Progress& p) {
      std::lock_guard<std::mutex> lock(progress_mu_);
      phases_.push_back(p.phase);
      last_progress_ = p;
    };
  }
  void TearDown() override {
    // Cache files are read-only; their directories are not, so this removes them.
    fs::remove_all(root_);
  }

  std::vector<std::string> phases() {
    std::lock_guard<std::mutex> lock(progress_mu_);
    return phases_;
  }

  fs::path root_;
  Options options_;
  std::map<std::string, std::string> env_;
  std::mutex progress_mu_;
  std::vector<std::string> phases_;
  Progress last_progress_;
};

TEST_F(FetchTest, SecondFetchIsServedFromCacheWithoutNetwork) {
  ScriptedHttpServer server([](const Request&) { return Reply{200, "xgboost weights"}; });
  std::string uri = server.Url("/models/model.bst");
  auto first = Fetch(uri, options_);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(ReadFile(fs::path(*first) / "model.bst"), "xgboost weights");
  EXPECT_EQ(server.requests(), 1);
  EXPECT_EQ(phases().front(), "downloading");
  EXPECT_EQ(phases().back(), "done");
  EXPECT_EQ(last_progress_.bytes_done, 15u);
  EXPECT_EQ(last_progress_.files_done, 1);
  EXPECT_TRUE(fs::path(*first).parent_path().filename() == "sha256");

  server.Stop();  // from now on, nothing answers on that port
  auto again = Fetch(uri, options_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *first);
  EXPECT_EQ(phases().back(), "cached");

  // A fresh Options over the same directory: a restarted process.
  Options restarted;
  restarted.cache_dir = options_.cache_dir;
  auto after_restart = Fetch(uri, restarted);
  ASSERT_TRUE(after_restart.ok()) << after_restart.status();
  EXPECT_EQ(*after_restart, *first);

  // Another URI on the dead server is a connection error, after the retries.
  auto dead = Fetch(server.Url("/other.bst"), options_);
  ASSERT_FALSE(dead.ok());
  EXPECT_EQ(dead.status().code(), absl::StatusCode::kUnavailable) << dead.status();
  EXPECT_NE(std::string(dead.status().message()).find("/other.bst"), std::string::npos);
}

TEST_F(FetchTest, ConcurrentFetchesDownloadOnce) {
  ScriptedHttpServer server([](const Request&) { return Reply{200, std::string(1 << 20, 'w')}; });
  std::string uri = server.Url("/big.bin");
  options_.on_progress = nullptr;
  std::vector<std::thread> threads;
  std::vector<absl::StatusOr<std::string>> results(4, absl::UnknownError("not run"));
  for (int i = 0; i < 4; ++i) threads.emplace_back([&, i] { results[i] = Fetch(uri, options_); });
  for (auto& t : threads) t.join();
  for (const auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(*r, *results[0]);
  }
  EXPECT_EQ(server.requests(), 1);
}

TEST_F(FetchTest, TarGzIsUnpacked) {
  std::string tgz =
      TarGz(root_, {Dir("1/"), File("1/model.pt", "torch"), File("config.pbtxt", "name: \"m\"")});
  ScriptedHttpServer server([&](const Request&) { return Reply{200, tgz}; });
  auto dir = Fetch(server.Url("/m.tar.gz?token=abc"), options_);
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_EQ(ReadFile(fs::path(*dir) / "1/model.pt"), "torch");
  EXPECT_EQ(ReadFile(fs::path(*dir) / "config.pbtxt"), "name: \"m\"");
  EXPECT_FALSE(fs::exists(fs::path(*dir) / "m.tar.gz"));
  auto p = phases();
  EXPECT_NE(std::find(p.begin(), p.end(), "unpacking"), p.end());
}

TEST_F(FetchTest, EscapingArchiveIsRefusedAndNotCached) {
  std::string tgz = TarGz(root_, {File("model.bst", "ok"), File("../../escaped.txt", "pwned")});
  ScriptedHttpServer server([&](const Request&) { return Reply{200, tgz}; });
  auto dir = Fetch(server.Url("/evil.tar.gz"), options_);
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(dir.status().code(), absl::StatusCode::kInvalidArgument) << dir.status();
  EXPECT_NE(std::string(dir.status().message()).find("'../../escaped.txt'"), std::string::npos)
      << dir.status();
  EXPECT_FALSE(fs::exists(root_ / "escaped.txt"));
  EXPECT_FALSE(fs::exists(root_ / "cache" / "escaped.txt"));
  EXPECT_TRUE(fs::is_empty(root_ / "cache" / "tmp"));
  EXPECT_FALSE(fs::exists(root_ / "cache" / "uris"));
}

TEST_F(FetchTest, NotFoundIsNamedAndNotRetried) {
  ScriptedHttpServer server([](const Request&) { return Reply{404, "no such thing"}; });
  std::string uri = server.Url("/missing.bst");
  auto dir = Fetch(uri, options_);
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(dir.status().code(), absl::StatusCode::kNotFound);
  std::string message(dir.status().message());
  EXPECT_NE(message.find(uri), std::string::npos) << message;
  EXPECT_NE(message.find("404"), std::string::npos) << message;
  EXPECT_EQ(server.requests(), 1);
}

TEST_F(FetchTest, ServerErrorIsRetried) {
  ScriptedHttpServer server([](const Request& r) {
    return r.number == 1 ? Reply{503, "busy"} : Reply{200, "finally"};
  });
  auto dir = Fetch(server.Url("/model.bst"), options_);
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_EQ(ReadFile(fs::path(*dir) / "model.bst"), "finally");
  EXPECT_EQ(server.requests(), 2);
}

TEST_F(FetchTest, StalledTransferIsCutAndRetried) {
  ScriptedHttpServer server([](const Request&) {
    Reply r{200, std::string(1000, 'x')};
    r.stall_after = 10;
    return r;
  });
  options_.stall_timeout = std::chrono::seconds(1);
  options_.retries = 1;
  auto dir = Fetch(server.Url("/slow.bin"), options_);
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(dir.status().code(), absl::StatusCode::kDeadlineExceeded) << dir.status();
  EXPECT_NE(std::string(dir.status().message()).find("stalled"), std::string::npos) << dir.status();
  EXPECT_EQ(server.requests(), 2);
}

// An S3 server's answers, as ListObjectsV2 and GetObject give them.
std::string ListResult(const std::vector<std::string>& keys, const std::string& next_token) {
  std::string xml =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>bucket</Name>";
  for (const auto& key : keys)
    xml += "<Contents><Key>" + key + "</Key><Size>" + std::to_string(key.size()) +
           "</Size></Contents>";
  xml += next_token.empty() ? "<IsTruncated>false</IsTruncated>"
                            : "<IsTruncated>true</IsTruncated><NextContinuationToken>" +
                                  next_token + "</NextContinuationToken>";
  return xml + "</ListBucketResult>";
}

TEST_F(FetchTest, S3PrefixWithContinuationAndSignature) {
  ScriptedHttpServer server([](const Request& r) {
    if (r.target.starts_with("/bucket?")) {
      if (r.target.find("continuation-token=page%2B2") == std::string::npos)
        return Reply{
            200,
            ListResult(std::vector<std::string>{"models/iris/", "models/iris/a.txt"}, "page+2"),
            "application/xml"};
      return Reply{
          200,
          ListResult(std::vector<std::string>{"models/iris/sub/b.txt", "models/iris2/other.txt"},
                     ""),
          "application/xml"};
    }
    // GetObject: the key's own name as its content.
    return Reply{200, r.target.substr(std::string("/bucket/").size())};
  });
  env_ = {{"AWS_ENDPOINT_URL", server.Url("")},
          {"AWS_ACCESS_KEY_ID", "AKTEST"},
          {"AWS_SECRET_ACCESS_KEY", "secret"},
          {"AWS_DEFAULT_REGION", "eu-central-1"}};
  auto dir = Fetch("s3://bucket/models/iris", options_);
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_EQ(ReadFile(fs::path(*dir) / "a.txt"), "models/iris/a.txt");
  EXPECT_EQ(ReadFile(fs::path(*dir) / "sub/b.txt"), "models/iris/sub/b.txt");
  EXPECT_FALSE(fs::exists(fs::path(*dir) / "other.txt"));
  EXPECT_EQ(last_progress_.files_done, 2);
  EXPECT_EQ(last_progress_.files_total, 2);

  std::vector<Request> log = server.log();
  ASSERT_EQ(log.size(), 4u);
  EXPECT_EQ(log[0].target, "/bucket?list-type=2&prefix=models%2Firis");
  for (Request r : log) {
    EXPECT_EQ(r.headers["host"], server.HostPort());
    EXPECT_TRUE(r.headers["authorization"].starts_with("AWS4-HMAC-SHA256 Credential=AKTEST/"))
        << r.headers["authorization"];
    EXPECT_NE(r.headers["authorization"].find("/eu-central-1/s3/aws4_request"), std::string::npos);
    EXPECT_EQ(r.headers["x-amz-content-sha256"],
              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_FALSE(r.headers["x-amz-date"].empty());
  }
}

TEST_F(FetchTest, S3ErrorsCarryTheirCode) {
  ScriptedHttpServer server([](const Request&) {
    return Reply{403,
                 "<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>The "
                 "request signature we calculated does not match the signature you "
                 "provided.</Message></Error>",
                 "application/xml"};
  });
  env_ = {{"S3_ENDPOINT", server.HostPort()},
          {"S3_USE_HTTPS", "0"},
          {"AWS_ACCESS_KEY_ID", "AK"},
          {"AWS_SECRET_ACCESS_KEY", "wrong"}};
  auto dir = Fetch("s3://bucket/models/iris", options_);
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(dir.status().code(), absl::StatusCode::kUnauthenticated) << dir.status();
  std::string message(dir.status().message());
  EXPECT_NE(message.find("s3://bucket/models/iris"), std::string::npos) << message;
  EXPECT_NE(message.find("SignatureDoesNotMatch"), std::string::npos) << message;
  EXPECT_EQ(server.requests(), 1);  // bad credentials: no point asking for the object
}

TEST_F(FetchTest, S3ObjectReadableWhereListingIsDenied) {
  ScriptedHttpServer server([](const Request& r) {
    if (r.target.starts_with("/bucket?"))
      return Reply{403, "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>",
                   "application/xml"};
    return Reply{200, "the object"};
  });
  env_ = {{"S3_ENDPOINT", server.HostPort()}, {"S3_USE_HTTPS", "0"}};
  auto dir = Fetch("s3://bucket/models/model.bst", options_);
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_EQ(ReadFile(fs::path(*dir) / "model.bst"), "the object");
  EXPECT_EQ(server.requests(), 2);
}

TEST_F(FetchTest, S3SingleArchiveObjectAndMissingKey) {
  std::string tgz = TarGz(root_, {File("model.bst", "booster")});
  ScriptedHttpServer server([&](const Request& r) {
    if (r.target.starts_with("/bucket?")) {
      bool archive = r.target.find("prefix=m.tar.gz") != std::string::npos;
      return Reply{
          200,
          ListResult(archive ? std::vector<std::string>{"m.tar.gz"} : std::vector<std::string>{},
                     ""),
          "application/xml"};
    }
    return Reply{200, tgz};
  });
  env_ = {{"S3_ENDPOINT", server.HostPort()}, {"S3_USE_HTTPS", "0"}};  // anonymous
  auto dir = Fetch("s3://bucket/m.tar.gz", options_);
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_EQ(ReadFile(fs::path(*dir) / "model.bst"), "booster");
  EXPECT_EQ(server.log()[0].headers.count("authorization"), 0u);

  auto missing = Fetch("s3://bucket/no/such/key", options_);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(std::string(missing.status().message()).find("s3://bucket/no/such/key"),
            std::string::npos)
      << missing.status();
}

TEST_F(FetchTest, GcsListingThroughEmulatorHost) {
  ScriptedHttpServer server([](const Request& r) {
    if (r.target.starts_with("/storage/v1/b/pub/o?prefix=models%2Fsk"))
      return Reply{200,
                   R"({"kind":"storage#objects","items":[)"
                   R"({"name":"models/sk/model.joblib","size":"6"},)"
                   R"({"name":"models/sk/extra/x.txt","size":"1"}]})",
                   "application/json"};
    if (r.target == "/pub/models/sk/model.joblib") return Reply{200, "joblib"};
    if (r.target == "/pub/models/sk/extra/x.txt") return Reply{200, "x"};
    return Reply{404, ""};
  });
  env_ = {{"STORAGE_EMULATOR_HOST", server.HostPort()}};
  auto dir = Fetch("gs://pub/models/sk", options_);
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_EQ(ReadFile(fs::path(*dir) / "model.joblib"), "joblib");
  EXPECT_EQ(ReadFile(fs::path(*dir) / "extra/x.txt"), "x");
}

TEST_F(FetchTest, LocalSchemes) {
  fs::create_directories(root_ / "pvcs/claim/models/iris");
  std::ofstream(root_ / "pvcs/claim/models/iris/model.bst") << "bst";

  auto bare = Fetch((root_ / "pvcs").string(), options_);
  ASSERT_TRUE(bare.ok()) << bare.status();
  EXPECT_EQ(*bare, (root_ / "pvcs").string());
  auto file = Fetch("file://" + (root_ / "pvcs/claim").string(), options_);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(*file, (root_ / "pvcs/claim").string());
  EXPECT_EQ(Fetch("file://" + (root_ / "nope").string(), options_).status().code(),
            absl::StatusCode::kNotFound);

  EXPECT_EQ(Fetch("pvc://claim/models/iris", options_).status().code(),
            absl::StatusCode::kFailedPrecondition);
  options_.pvc_root = (root_ / "pvcs").string();
  auto pvc = Fetch("pvc://claim/models/iris", options_);
  ASSERT_TRUE(pvc.ok()) << pvc.status();
  EXPECT_EQ(*pvc, (root_ / "pvcs/claim/models/iris").string());
  EXPECT_EQ(Fetch("pvc://claim/models/missing", options_).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(Fetch("pvc://claim/../../etc", options_).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(phases().empty());  // local paths: nothing to report

  Options no_cache;
  EXPECT_EQ(Fetch("http://127.0.0.1:1/x", no_cache).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// A local URI naming one file: the model directory holds it alone (a link,
// no copy: the user's file is left writable and reads as it is now).
TEST_F(FetchTest, ALocalSingleFileBecomesAModelDirectory) {
  fs::create_directories(root_ / "models");
  std::ofstream(root_ / "models/model.joblib") << "v1";
  std::ofstream(root_ / "models/other.txt") << "not the model";
  auto dir = Fetch("file://" + (root_ / "models/model.joblib").string(), options_);
  ASSERT_TRUE(dir.ok()) << dir.status();
  ASSERT_TRUE(fs::is_directory(*dir));
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(*dir)) names.push_back(e.path().filename());
  EXPECT_EQ(names, std::vector<std::string>{"model.joblib"});
  EXPECT_EQ(ReadFile(fs::path(*dir) / "model.joblib"), "v1");
  EXPECT_NE(fs::status(root_ / "models/model.joblib").permissions() & fs::perms::owner_write,
            fs::perms::none);
  auto again = Fetch((root_ / "models/model.joblib").string(), options_);  // a bare path
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *dir);
  std::ofstream(root_ / "models/model.joblib") << "version two";
  EXPECT_EQ(ReadFile(fs::path(*dir) / "model.joblib"), "version two");

  Options no_cache;
  EXPECT_EQ(Fetch((root_ / "models/model.joblib").string(), no_cache).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Pull copies the file itself into the directory it is given.
  fs::path dest = root_ / "pulled";
  ASSERT_TRUE(Pull((root_ / "models/model.joblib").string(), dest.string(), options_).ok());
  EXPECT_EQ(ReadFile(dest / "model.joblib"), "version two");
  EXPECT_FALSE(fs::is_symlink(dest / "model.joblib"));

  // A link to a blob without a name of its own (DVC, git-annex): the model
  // directory holds it under the URI's name.
  std::ofstream(root_ / "models/3f9ac0de") << "blob";
  fs::create_symlink(root_ / "models/3f9ac0de", root_ / "models/linked.joblib");
  auto linked = Fetch((root_ / "models/linked.joblib").string(), options_);
  ASSERT_TRUE(linked.ok()) << linked.status();
  EXPECT_EQ(ReadFile(fs::path(*linked) / "linked.joblib"), "blob");
  EXPECT_FALSE(fs::exists(fs::path(*linked) / "3f9ac0de"));
}

TEST_F(FetchTest, PullHardLinksCacheEntriesAndCopiesLocalTrees) {
  ScriptedHttpServer server([](const Request&) { return Reply{200, "weights"}; });
  fs::path dest = root_ / "dest";
  ASSERT_TRUE(Pull(server.Url("/model.bst"), dest.string(), options_).ok());
  EXPECT_EQ(ReadFile(dest / "model.bst"), "weights");
  auto cached = Fetch(server.Url("/model.bst"), options_);
  ASSERT_TRUE(cached.ok());
  struct stat a {
  }, b{};
  ASSERT_EQ(::stat((dest / "model.bst").c_str(), &a), 0);
  ASSERT_EQ(::stat((fs::path(*cached) / "model.bst").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(b.st_mode & 0222, 0u) << "cache files are read-only";
  // Pulling again into the same directory replaces what is there.
  ASSERT_TRUE(Pull(server.Url("/model.bst"), dest.string(), options_).ok());

  fs::create_directories(root_ / "local/sub");
  std::ofstream(root_ / "local/sub/f.txt") << "local";
  fs::path copy = root_ / "copy";
  ASSERT_TRUE(Pull((root_ / "local").string(), copy.string(), options_).ok());
  EXPECT_EQ(ReadFile(copy / "sub/f.txt"), "local");
  ASSERT_EQ(::stat((copy / "sub/f.txt").c_str(), &a), 0);
  ASSERT_EQ(::stat((root_ / "local/sub/f.txt").c_str(), &b), 0);
  EXPECT_NE(a.st_ino, b.st_ino);
  EXPECT_EQ(Pull((root_ / "local").string(), (root_ / "local/inner").string(), options_).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(StorageMainTest, UsageAndErrors) {
  EXPECT_EQ(StorageMain({"--help"}), 0);
  EXPECT_EQ(StorageMain({}), 2);
  EXPECT_EQ(StorageMain({"pull", "only-a-uri"}), 2);
  EXPECT_EQ(StorageMain({"pull", "a", "b", "--bogus", "1"}), 2);
  EXPECT_EQ(StorageMain({"pull", "a", "b", "--retries", "-1"}), 2);
  EXPECT_EQ(StorageMain({"pull", "ftp://x/y", "/tmp/osprey-storage-test-unused"}), 1);
}

}  // namespace
}  // namespace osprey::storage

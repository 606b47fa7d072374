#include "storage/storage.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <system_error>

#include "common/flags.h"
#include "common/strings.h"
#include "storage/cache.h"
#include "storage/gcs.h"
#include "storage/http.h"
#include "storage/object_store.h"
#include "storage/s3.h"
#include "storage/unpack.h"
#include "storage/uri.h"

namespace osprey::storage {
namespace fs = std::filesystem;

namespace {

constexpr auto kProgressInterval = std::chrono::milliseconds(200);

std::optional<std::string> ProcessEnv(std::string_view name) {
  const char* v = std::getenv(std::string(name).c_str());
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// The same error, its message prefixed with the URI unless it names it already.
absl::Status Annotate(const absl::Status& status, std::string_view uri) {
  std::string_view message = StatusMessage(status);
  if (message.find(uri) != std::string_view::npos) return status;
  return absl::Status(status.code(), StrCat(uri, ": ", message));
}

// Progress callbacks: phase changes always, byte counts at most every
// kProgressInterval.
class Reporter {
 public:
  Reporter(const Options& options, std::string uri) : callback_(options.on_progress) {
    progress_.uri = std::move(uri);
  }
  Progress& progress() { return progress_; }
  void Phase(std::string_view phase) {
    progress_.phase = std::string(phase);
    Emit(/*force=*/true);
  }
  // Throttled, except when a file was completed.
  void Update() { Emit(/*force=*/progress_.files_done != last_files_done_); }

 private:
  void Emit(bool force) {
    if (!callback_) return;
    auto now = std::chrono::steady_clock::now();
    if (!force && now - last_ < kProgressInterval) return;
    last_ = now;
    last_files_done_ = progress_.files_done;
    callback_(progress_);
  }

  std::function<void(const Progress&)> callback_;
  Progress progress_;
  std::chrono::steady_clock::time_point last_{};
  int last_files_done_ = 0;
};

absl::Status MakeDirs(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(StrCat("cannot create ", dir.string(), ": ", ec.message()));
  return absl::OkStatus();
}

// A downloaded single file `file` (named `name`) becomes the model: unpacked
// into `content` when an archive, else moved there.
absl::Status PlaceSingleFile(const fs::path& file, const std::string& name, const fs::path& content,
                             Reporter& reporter) {
  std::error_code ec;
  if (IsArchiveName(name)) {
    reporter.Phase("unpacking");
    OSPREY_RETURN_IF_ERROR(UnpackArchive(file, content));
    fs::remove(file, ec);
    return absl::OkStatus();
  }
  fs::rename(file, content / name, ec);
  if (ec) return absl::InternalError(StrCat("cannot move ", file.string(), ": ", ec.message()));
  return absl::OkStatus();
}

absl::Status DownloadHttp(const ModelUri& uri, HttpClient& http, const fs::path& work,
                          const fs::path& content, Reporter& reporter) {
  std::string name = UrlFileName(uri.location);
  OSPREY_RETURN_IF_ERROR(MakeDirs(work / "download"));
  fs::path file = work / "download" / name;
  Progress& p = reporter.progress();
  p.files_total = 1;
  reporter.Phase("downloading");
  OSPREY_ASSIGN_OR_RETURN(HttpResponse response, http.Download({uri.location, nullptr}, file,
                                                               [&](uint64_t done, uint64_t total) {
                                                                 p.bytes_done = done;
                                                                 p.bytes_total = total;
                                                                 reporter.Update();
                                                               }));
  if (response.status < 200 || response.status >= 300)
    return HttpStatusError(uri.location, response.status, "");
  p.files_done = 1;
  reporter.Update();
  return PlaceSingleFile(file, name, content, reporter);
}

// Fetches the object `path` names, or every object under "path/".
absl::Status DownloadObjects(ObjectStore& store, const std::string& path, const fs::path& work,
                             const fs::path& content, Reporter& reporter) {
  std::optional<ObjectInfo> single;
  std::vector<std::pair<ObjectInfo, fs::path>> files;
  const bool names_dir = path.empty() || path.ends_with('/');
  absl::StatusOr<std::vector<ObjectInfo>> listed = store.List(path);
  absl::Status list_error;
  if (!listed.ok()) {
    // Listing refused: the URI may still name an object we may read.
    if (!absl::IsPermissionDenied(listed.status()) || names_dir) return listed.status();
    list_error = listed.status();
    single = ObjectInfo{path, 0};
  } else {
    const std::string dir_prefix = names_dir ? path : StrCat(path, "/");
    for (ObjectInfo& object : *listed) {
      if (!names_dir && object.key == path) {
        single = object;
        continue;
      }
      if (!object.key.starts_with(dir_prefix)) continue;  // "path2/...", a sibling
      std::string_view rel = std::string_view(object.key).substr(dir_prefix.size());
      if (rel.empty() || rel.ends_with('/')) continue;  // a "directory" marker
      absl::StatusOr<fs::path> safe = SafeRelativePath(rel);
      if (!safe.ok())
        return absl::InvalidArgumentError(
            StrCat(store.Name(object.key), ": refusing object: ", StatusMessage(safe.status())));
      files.emplace_back(std::move(object), *std::move(safe));
    }
    if (!single && files.empty())
      return absl::NotFoundError(StrCat(store.Name(path), ": no such object, and no object under ",
                                        store.Name(dir_prefix)));
  }

  Progress& p = reporter.progress();
  if (single) {
    std::string name = single->key.substr(single->key.rfind('/') + 1);
    if (name.empty() || name == "." || name == "..") name = "model";
    OSPREY_RETURN_IF_ERROR(MakeDirs(work / "download"));
    fs::path file = work / "download" / name;
    p.files_total = 1;
    p.bytes_total = single->size;
    reporter.Phase("downloading");
    absl::Status got = store.Get(single->key, file, [&](uint64_t done, uint64_t total) {
      p.bytes_done = done;
      if (total != 0) p.bytes_total = total;
      reporter.Update();
    });
    if (!got.ok() && !list_error.ok() && !absl::IsPermissionDenied(got))
      return absl::Status(got.code(),
                          StrCat(StatusMessage(got), " (and ", StatusMessage(list_error), ")"));
    OSPREY_RETURN_IF_ERROR(got);
    p.files_done = 1;
    reporter.Update();
    return PlaceSingleFile(file, name, content, reporter);
  }

  p.files_total = static_cast<int>(files.size());
  for (const auto& [object, rel] : files) p.bytes_total += object.size;
  reporter.Phase("downloading");
  uint64_t finished = 0;
  for (const auto& [object, rel] : files) {
    fs::path target = content / rel;
    OSPREY_RETURN_IF_ERROR(MakeDirs(target.parent_path()));
    OSPREY_RETURN_IF_ERROR(store.Get(object.key, target, [&](uint64_t done, uint64_t) {
      p.bytes_done = finished + done;
      reporter.Update();
    }));
    std::error_code ec;
    uint64_t size = fs::file_size(target, ec);
    finished += ec ? object.size : size;
    p.bytes_done = finished;
    ++p.files_done;
    reporter.Update();
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ResolveLocal(const ModelUri& uri, const Options& options) {
  std::error_code ec;
  if (uri.scheme == Scheme::kFile) {
    if (!fs::exists(uri.location, ec))
      return absl::NotFoundError(StrCat(uri.uri, ": no such file or directory"));
    return uri.location;
  }
  // pvc://claim/path
  if (options.pvc_root.empty())
    return absl::FailedPreconditionError(
        StrCat(uri.uri, ": pvc:// needs the directory claims are mounted under (--pvc-root)"));
  std::string rel = uri.path.empty() ? uri.location : StrCat(uri.location, "/", uri.path);
  absl::StatusOr<fs::path> safe = SafeRelativePath(rel);
  if (!safe.ok())
    return absl::InvalidArgumentError(StrCat(uri.uri, ": ", StatusMessage(safe.status())));
  fs::path local = fs::path(options.pvc_root) / *safe;
  if (!fs::exists(local, ec))
    return absl::NotFoundError(StrCat(uri.uri, ": ", local.string(), " does not exist"));
  return local.string();
}

absl::Status CopyEntry(const fs::path& from, const fs::path& to, bool hard_link) {
  std::error_code ec;
  fs::file_status st = fs::symlink_status(from, ec);
  if (ec) return absl::InternalError(StrCat("cannot stat ", from.string(), ": ", ec.message()));
  if (fs::is_directory(st)) {
    fs::create_directories(to, ec);
    if (ec) return absl::InternalError(StrCat("cannot create ", to.string(), ": ", ec.message()));
    return absl::OkStatus();
  }
  if (fs::exists(fs::symlink_status(to, ec))) fs::remove(to, ec);
  if (fs::is_symlink(st)) {
    fs::copy_symlink(from, to, ec);
  } else {
    if (hard_link) fs::create_hard_link(from, to, ec);
    if (!hard_link || ec) {
      ec.clear();
      fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
    }
  }
  if (ec)
    return absl::InternalError(
        StrCat("cannot copy ", from.string(), " to ", to.string(), ": ", ec.message()));
  return absl::OkStatus();
}

}  // namespace

// A local URI that names one file: as the storage initializer copies such a
// file into an empty model directory, the model directory is a cache entry
// holding a link to it, so it reads as the file reads now, as a local
// directory does (an archive: unpacked there, again when it changes).
absl::StatusOr<std::string> LocalFileEntry(const ModelUri& uri, const fs::path& file,
                                           const Options& options) {
  if (options.cache_dir.empty())
    return absl::InvalidArgumentError(
        StrCat(uri.uri,
               ": names a single file, which needs a cache directory to become a "
               "model directory"));
  std::error_code ec;
  const fs::path path = fs::canonical(file, ec);
  if (ec) return absl::NotFoundError(StrCat(uri.uri, ": ", ec.message()));
  // The name is the URI's (a link to a content-addressed blob, as DVC and
  // git-annex keep files, has none of its own); the key both.
  const std::string name = file.filename().string();
  // An archive is unpacked once per version of it; a link follows the file.
  std::string key = StrCat("local file\n", path.string(), "\n", name);
  if (IsArchiveName(name))
    StrAppend(&key, "\n", fs::file_size(path, ec), "\n",
              fs::last_write_time(path, ec).time_since_epoch().count());
  ModelCache cache{fs::path(options.cache_dir)};
  Reporter reporter(options, uri.uri);
  absl::StatusOr<std::unique_ptr<KeyLock>> lock = KeyLock::Acquire(cache.root(), key);
  if (!lock.ok()) return Annotate(lock.status(), uri.uri);
  if (std::optional<fs::path> hit = cache.Lookup(key)) {
    reporter.Phase("cached");
    return hit->string();
  }
  absl::StatusOr<fs::path> work = cache.NewTempDir();
  if (!work.ok()) return Annotate(work.status(), uri.uri);
  const fs::path content = *work / "content";
  absl::Status status = MakeDirs(content);
  if (status.ok() && IsArchiveName(name)) {
    reporter.Phase("unpacking");
    status = UnpackArchive(path, content);
  } else if (status.ok()) {
    fs::create_symlink(path, content / name, ec);
    if (ec) status = absl::InternalError(StrCat("cannot link ", path.string(), ": ", ec.message()));
  }
  absl::StatusOr<fs::path> entry = status.ok() ? cache.Commit(key, content) : status;
  fs::remove_all(*work, ec);
  if (!entry.ok()) return Annotate(entry.status(), uri.uri);
  reporter.Phase("done");
  return entry->string();
}

absl::StatusOr<std::string> Fetch(std::string_view uri_text, const Options& options) {
  OSPREY_ASSIGN_OR_RETURN(ModelUri uri, ParseModelUri(Trim(uri_text)));
  if (!IsRemote(uri.scheme)) {
    OSPREY_ASSIGN_OR_RETURN(std::string local, ResolveLocal(uri, options));
    std::error_code ec;
    if (fs::is_regular_file(local, ec)) return LocalFileEntry(uri, local, options);
    return local;
  }
  if (options.cache_dir.empty())
    return absl::InvalidArgumentError(StrCat(uri.uri, ": downloading needs a cache directory"));
  EnvLookup getenv = options.getenv ? options.getenv : EnvLookup(ProcessEnv);

  HttpOptions http_options;
  http_options.connect_timeout = options.connect_timeout;
  http_options.stall_timeout = options.stall_timeout;
  http_options.retries = std::max(0, options.retries);
  http_options.retry_backoff = options.retry_backoff;
  std::unique_ptr<HttpClient> http;
  std::unique_ptr<ObjectStore> store;
  if (uri.scheme == Scheme::kS3) {
    absl::StatusOr<S3Config> config = S3ConfigFromEnv(getenv);
    if (!config.ok()) return Annotate(config.status(), uri.uri);
    http_options.verify_tls = config->verify_tls;
    http_options.ca_bundle = config->ca_bundle;
    http_options.follow_redirects = false;  // a redirect would not carry the signature
    http = std::make_unique<HttpClient>(http_options);
    store = NewS3Bucket(*std::move(config), uri.location, http.get());
  } else if (uri.scheme == Scheme::kGcs) {
    http = std::make_unique<HttpClient>(http_options);
    store = NewGcsBucket(GcsBaseUrl(getenv), uri.location, http.get());
  } else {
    http = std::make_unique<HttpClient>(http_options);
  }
  // The cache key: the URI, and for buckets the server it was fetched from.
  const std::string key = store != nullptr ? StrCat(uri.uri, "\n", store->Origin()) : uri.uri;

  ModelCache cache{fs::path(options.cache_dir)};
  Reporter reporter(options, uri.uri);
  absl::StatusOr<std::unique_ptr<KeyLock>> lock = KeyLock::Acquire(cache.root(), key);
  if (!lock.ok()) return Annotate(lock.status(), uri.uri);
  if (std::optional<fs::path> hit = cache.Lookup(key)) {
    reporter.Phase("cached");
    return hit->string();
  }

  absl::StatusOr<fs::path> work = cache.NewTempDir();
  if (!work.ok()) return Annotate(work.status(), uri.uri);
  fs::path content = *work / "content";
  absl::Status status = MakeDirs(content);
  if (status.ok())
    status = store != nullptr ? DownloadObjects(*store, uri.path, *work, content, reporter)
                              : DownloadHttp(uri, *http, *work, content, reporter);
  absl::StatusOr<fs::path> entry = status.ok() ? cache.Commit(key, content) : status;
  std::error_code ec;
  fs::remove_all(*work, ec);
  if (!entry.ok()) return Annotate(entry.status(), uri.uri);
  reporter.Phase("done");
  return entry->string();
}

absl::Status Pull(std::string_view uri, const std::string& dest_dir, const Options& options) {
  // A local file is copied as it is (an archive unpacked through the cache).
  OSPREY_ASSIGN_OR_RETURN(ModelUri parsed, ParseModelUri(Trim(uri)));
  std::string source;
  if (!IsRemote(parsed.scheme)) {
    OSPREY_ASSIGN_OR_RETURN(source, ResolveLocal(parsed, options));
    if (IsArchiveName(fs::path(source).filename().string())) {
      OSPREY_ASSIGN_OR_RETURN(source, Fetch(uri, options));
    }
  } else {
    OSPREY_ASSIGN_OR_RETURN(source, Fetch(uri, options));
  }
  fs::path src(source);
  fs::path dest(dest_dir);
  std::error_code ec;
  OSPREY_RETURN_IF_ERROR(MakeDirs(dest));
  if (fs::equivalent(src, dest, ec)) return absl::OkStatus();
  const bool hard_link = !options.cache_dir.empty() && ModelCache(options.cache_dir).Holds(src);
  if (!fs::is_directory(src, ec)) return CopyEntry(src, dest / src.filename(), hard_link);

  fs::path src_canon = fs::weakly_canonical(src, ec);
  fs::path dest_canon = fs::weakly_canonical(dest, ec);
  auto [s, d] =
      std::mismatch(src_canon.begin(), src_canon.end(), dest_canon.begin(), dest_canon.end());
  if (s == src_canon.end())
    return absl::InvalidArgumentError(
        StrCat("cannot pull ", uri, " into ", dest_dir, ": it lies inside the model directory"));
  for (auto it = fs::recursive_directory_iterator(src, ec); !ec && it != fs::end(it);
       it.increment(ec))
    OSPREY_RETURN_IF_ERROR(
        CopyEntry(it->path(), dest / it->path().lexically_relative(src), hard_link));
  if (ec) return absl::InternalError(StrCat("cannot walk ", src.string(), ": ", ec.message()));
  return absl::OkStatus();
}

namespace {

constexpr char kUsage[] =
    "usage: osprey storage pull URI DIR [flags]\n"
    "\n"
    "Downloads the model at URI into DIR (created), as KServe's storage initializer does,\n"
    "through a local cache: a second pull of the same URI does not download again.\n"
    "Prints DIR on success.\n"
    "\n"
    "URI: file:///path or a bare path, pvc://CLAIM/PATH, http(s)://HOST/FILE,\n"
    "     s3://BUCKET/KEY-OR-PREFIX, gs://BUCKET/OBJECT-OR-PREFIX.\n"
    "     A single .tar, .tgz, .tar.gz or .zip is unpacked.\n"
    "\n"
    "flags:\n"
    "  --cache-dir D          cache directory (default $OSPREY_CACHE_DIR, else\n"
    "                         ${XDG_CACHE_HOME:-$HOME/.cache}/osprey/models)\n"
    "  --pvc-root R           directory PVC claims are mounted under (pvc://CLAIM/PATH ->\n"
    "                         R/CLAIM/PATH)\n"
    "  --retries N            retries of a failed transfer (default 3)\n"
    "  --stall-timeout-s S    cut and retry a transfer that moves no byte for S seconds\n"
    "                         (default 30)\n"
    "  --connect-timeout-s S  connect timeout (default 10)\n"
    "\n"
    "environment: AWS_ENDPOINT_URL or S3_ENDPOINT, S3_USE_HTTPS, S3_VERIFY_SSL,\n"
    "  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_DEFAULT_REGION,\n"
    "  AWS_CA_BUNDLE, STORAGE_EMULATOR_HOST (gs:// against an emulator)\n";

std::string DefaultCacheDir() {
  auto env = [](const char* name) -> std::string {
    const char* v = std::getenv(name);
    return v != nullptr ? v : "";
  };
  if (std::string dir = env("OSPREY_CACHE_DIR"); !dir.empty()) return dir;
  fs::path base;
  if (std::string xdg = env("XDG_CACHE_HOME"); !xdg.empty())
    base = xdg;
  else if (std::string home = env("HOME"); !home.empty())
    base = fs::path(home) / ".cache";
  else
    base = fs::temp_directory_path() / StrCat("osprey-cache-", static_cast<int64_t>(getuid()));
  return (base / "osprey" / "models").string();
}

std::string HumanBytes(uint64_t n) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int unit = 0;
  while (v >= 1024 && unit < 4) {
    v /= 1024;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), unit == 0 ? "%.0f %s" : "%.1f %s", v, kUnits[unit]);
  return buf;
}

// Progress lines for a terminal or a log: phase changes, and downloads at most
// once a second.
std::function<void(const Progress&)> PrintProgress() {
  auto last = std::make_shared<std::chrono::steady_clock::time_point>();
  auto last_phase = std::make_shared<std::string>();
  return [last, last_phase](const Progress& p) {
    auto now = std::chrono::steady_clock::now();
    bool final_bytes = p.files_total > 0 && p.files_done == p.files_total;
    if (p.phase == *last_phase && !final_bytes && now - *last < std::chrono::seconds(1)) return;
    *last = now;
    *last_phase = p.phase;
    std::string line = StrCat("osprey storage: ", p.uri, ": ", p.phase);
    if (p.phase == "downloading" || (p.phase == "done" && p.files_done > 0)) {
      if (p.files_total > 0) StrAppend(&line, " ", p.files_done, "/", p.files_total, " files,");
      StrAppend(&line, " ", HumanBytes(p.bytes_done));
      if (p.bytes_total > 0) StrAppend(&line, " of ", HumanBytes(p.bytes_total));
    }
    std::fprintf(stderr, "%s\n", line.c_str());
  };
}

bool ParseInt(std::string_view s, int min, int* out) {
  int v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || v < min) return false;
  *out = v;
  return true;
}

int UsageError(std::string_view message) {
  std::fprintf(stderr, "osprey storage: %.*s\n\n%s", static_cast<int>(message.size()),
               message.data(), kUsage);
  return 2;
}

}  // namespace

int StorageMain(const std::vector<std::string_view>& args) {
  if (args.empty()) return UsageError("missing command");
  if (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (args[0] != "pull") return UsageError(StrCat("unknown command '", args[0], "'"));

  for (std::string_view a : args)
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
  // Their help is kUsage.
  static const std::vector<FlagSpec> kFlags = {{"cache-dir", false, ""},
                                               {"pvc-root", false, ""},
                                               {"retries", false, ""},
                                               {"stall-timeout-s", false, ""},
                                               {"connect-timeout-s", false, ""}};
  std::vector<std::string> positional;
  auto parsed =
      ParseFlags(std::vector<std::string_view>(args.begin() + 1, args.end()), kFlags, &positional);
  if (!parsed.ok()) return UsageError(StatusMessage(parsed.status()));
  const std::map<std::string, std::string>& flags = *parsed;
  if (positional.size() != 2) return UsageError("pull takes a URI and a directory");

  Options options;
  auto flag = [&](std::string_view name) -> const std::string* {
    auto it = flags.find(std::string(name));
    return it == flags.end() ? nullptr : &it->second;
  };
  options.cache_dir = flag("cache-dir") != nullptr ? *flag("cache-dir") : DefaultCacheDir();
  if (flag("pvc-root") != nullptr) options.pvc_root = *flag("pvc-root");
  int n = 0;
  if (const std::string* v = flag("retries")) {
    if (!ParseInt(*v, 0, &n)) return UsageError(StrCat("--retries: '", *v, "' is not a count"));
    options.retries = n;
  }
  if (const std::string* v = flag("stall-timeout-s")) {
    if (!ParseInt(*v, 1, &n))
      return UsageError(StrCat("--stall-timeout-s: '", *v, "' is not a positive number"));
    options.stall_timeout = std::chrono::seconds(n);
  }
  if (const std::string* v = flag("connect-timeout-s")) {
    if (!ParseInt(*v, 1, &n))
      return UsageError(StrCat("--connect-timeout-s: '", *v, "' is not a positive number"));
    options.connect_timeout = std::chrono::seconds(n);
  }
  options.on_progress = PrintProgress();

  absl::Status status = Pull(positional[0], positional[1], options);
  if (!status.ok()) {
    std::string_view message = StatusMessage(status);
    std::fprintf(stderr, "osprey storage: %.*s\n", static_cast<int>(message.size()),
                 message.data());
    return 1;
  }
  std::printf("%s\n", positional[1].c_str());
  return 0;
}

}  // namespace osprey::storage

#include "controlplane/local/store.h"

#include <sqlite3.h>

namespace osprey::controlplane {
namespace {

absl::Status SqlError(sqlite3* db, std::string_view what) {
  return absl::InternalError(StrCat("store: ", what, ": ", sqlite3_errmsg(db)));
}

// A prepared statement freed on scope exit.
struct Statement {
  sqlite3_stmt* stmt = nullptr;
  ~Statement() { sqlite3_finalize(stmt); }
};

// Smallest string greater than every string starting with `prefix`.
std::string PrefixEnd(std::string prefix) {
  while (!prefix.empty() && static_cast<unsigned char>(prefix.back()) == 0xff) prefix.pop_back();
  if (!prefix.empty()) prefix.back() = static_cast<char>(prefix.back() + 1);
  return prefix;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string message = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return absl::UnavailableError(StrCat("cannot open store ", path, ": ", message));
  }
  std::unique_ptr<Store> store(new Store(db));
  sqlite3_busy_timeout(db, 5000);
  OSPREY_RETURN_IF_ERROR(store->Exec("PRAGMA journal_mode=WAL"));
  OSPREY_RETURN_IF_ERROR(store->Exec("PRAGMA synchronous=NORMAL"));
  OSPREY_RETURN_IF_ERROR(
      store->Exec("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)"));
  return store;
}

Store::~Store() { sqlite3_close(db_); }

absl::Status Store::Exec(const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    absl::Status s = absl::InternalError(StrCat("store: ", sql, ": ", error ? error : "?"));
    sqlite3_free(error);
    return s;
  }
  return absl::OkStatus();
}

absl::Status Store::Put(const std::string& key, const std::string& value) {
  std::lock_guard<std::mutex> lock(mu_);
  Statement st;
  if (sqlite3_prepare_v2(db_, "INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", -1, &st.stmt,
                         nullptr) != SQLITE_OK)
    return SqlError(db_, "prepare put");
  sqlite3_bind_text(st.stmt, 1, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
  sqlite3_bind_text(st.stmt, 2, value.data(), static_cast<int>(value.size()), SQLITE_STATIC);
  if (sqlite3_step(st.stmt) != SQLITE_DONE) return SqlError(db_, StrCat("put ", key));
  return absl::OkStatus();
}

absl::StatusOr<std::string> Store::Get(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  Statement st;
  if (sqlite3_prepare_v2(db_, "SELECT value FROM kv WHERE key = ?", -1, &st.stmt, nullptr) !=
      SQLITE_OK)
    return SqlError(db_, "prepare get");
  sqlite3_bind_text(st.stmt, 1, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
  int rc = sqlite3_step(st.stmt);
  if (rc == SQLITE_DONE) return absl::NotFoundError(StrCat(key, " not found"));
  if (rc != SQLITE_ROW) return SqlError(db_, StrCat("get ", key));
  const char* text = reinterpret_cast<const char*>(sqlite3_column_text(st.stmt, 0));
  return std::string(text ? text : "", sqlite3_column_bytes(st.stmt, 0));
}

absl::Status Store::Delete(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  Statement st;
  if (sqlite3_prepare_v2(db_, "DELETE FROM kv WHERE key = ?", -1, &st.stmt, nullptr) != SQLITE_OK)
    return SqlError(db_, "prepare delete");
  sqlite3_bind_text(st.stmt, 1, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
  if (sqlite3_step(st.stmt) != SQLITE_DONE) return SqlError(db_, StrCat("delete ", key));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> Store::List(
    const std::string& prefix) {
  std::lock_guard<std::mutex> lock(mu_);
  Statement st;
  std::string end = PrefixEnd(prefix);
  const char* sql = end.empty()
                        ? "SELECT key, value FROM kv WHERE key >= ? ORDER BY key"
                        : "SELECT key, value FROM kv WHERE key >= ? AND key < ? ORDER BY key";
  if (sqlite3_prepare_v2(db_, sql, -1, &st.stmt, nullptr) != SQLITE_OK)
    return SqlError(db_, "prepare list");
  sqlite3_bind_text(st.stmt, 1, prefix.data(), static_cast<int>(prefix.size()), SQLITE_STATIC);
  if (!end.empty())
    sqlite3_bind_text(st.stmt, 2, end.data(), static_cast<int>(end.size()), SQLITE_STATIC);
  std::vector<std::pair<std::string, std::string>> out;
  int rc;
  while ((rc = sqlite3_step(st.stmt)) == SQLITE_ROW) {
    auto column = [&](int i) {
      const char* text = reinterpret_cast<const char*>(sqlite3_column_text(st.stmt, i));
      return std::string(text ? text : "", sqlite3_column_bytes(st.stmt, i));
    };
    out.emplace_back(column(0), column(1));
  }
  if (rc != SQLITE_DONE) return SqlError(db_, StrCat("list ", prefix));
  return out;
}

absl::Status Store::DeletePrefix(const std::string& prefix) {
  auto entries = List(prefix);
  if (!entries.ok()) return entries.status();
  for (const auto& [key, value] : *entries) OSPREY_RETURN_IF_ERROR(Delete(key));
  return absl::OkStatus();
}

}  // namespace osprey::controlplane

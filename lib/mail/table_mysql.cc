// mysql:/path/file.cf - lookups answered by a MariaDB or MySQL server, configured
// by a Postfix mysql_table(5) file ("name = value" lines, # comments, continuation
// lines that begin with white space).
//
// Attributes:
//   hosts            unix:/path/sock, /path/sock, inet:host[:port], host[:port]
//                    ([::1]:port for IPv6). Default localhost, which the client
//                    library takes to mean its default UNIX socket, as Postfix does;
//                    "inet:" forces TCP. UNIX sockets are tried before TCP hosts, each
//                    group in random order (Postfix's rule); a host that failed is
//                    skipped for retry_interval (default 60s).
//   user, password, dbname
//   query            SQL with %% %s %u %d %S %U %D %1..%9 (mysql_table(5)); every
//                    inserted value is escaped by mysql_real_escape_string on the
//                    live connection. When query is absent the pre-2.2 attributes
//                    table, select_field, where_field, additional_conditions build it.
//   result_format    default %s; applied to every non-NULL, non-empty column of every
//                    row; results are joined with ", " (Postfix joins with a bare ",";
//                    both read as the same list).
//   domain           list of domains, /file/names of such lists, or type:table; only
//                    user@domain keys with a listed domain are looked up.
//   expansion_limit  most result values a lookup may return (0: no limit); above it
//                    the lookup fails temporarily.
//   connect_timeout (5s), read_timeout (30s), write_timeout (30s),
//   retry_interval (60s), idle_interval (60s: a connection idle longer is reopened; 0: never),
//   option_file, option_group (default client), require_result_set (yes),
//   tls_cert_file, tls_key_file, tls_CAfile, tls_CApath, tls_ciphers, tls_verify_cert.
//
// Outcomes: a key the templates cannot use (no domain for %d, no local part for %u,
// too few labels for %N) is not found without a query. No host reachable, a failed
// query, or too many results is a temporary failure. A connection the server closed
// (CR_SERVER_GONE_ERROR, CR_SERVER_LOST) is reopened once and the query retried.
// The connection speaks utf8mb4 so that UTF-8 keys (SMTPUTF8) compare as text.
#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "mail/config.h"
#include "mail/table.h"
#include "mail/table_types.h"
#include "util/error.h"
#include "util/file.h"
#include "util/log.h"
#include "util/logical_lines.h"
#include "util/strings.h"

namespace postern {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::string_view kResultSeparator = ", ";

struct MysqlCloser {
  void operator()(MYSQL* m) const noexcept { mysql_close(m); }
};
using MysqlHandle = std::unique_ptr<MYSQL, MysqlCloser>;

struct ResultFreer {
  void operator()(MYSQL_RES* r) const noexcept { mysql_free_result(r); }
};
using MysqlResult = std::unique_ptr<MYSQL_RES, ResultFreer>;

// mysql_library_init is not thread-safe; every table shares this one call.
bool library_ready() {
  static std::once_flag once;
  static bool ok = false;
  std::call_once(once, [] { ok = mysql_library_init(0, nullptr, nullptr) == 0; });
  return ok;
}

// ---- the .cf file --------------------------------------------------------------

struct Attribute {
  std::string value;
  int line = 0;
};

struct CfFile {
  std::string path;
  std::vector<std::pair<std::string, Attribute>> attributes;  // in file order, last one wins

  const Attribute* find(std::string_view name) const {
    for (auto it = attributes.rbegin(); it != attributes.rend(); ++it)
      if (it->first == name) return &it->second;
    return nullptr;
  }
  std::string get(std::string_view name, std::string_view fallback = {}) const {
    const Attribute* a = find(name);
    return a ? a->value : std::string(fallback);
  }
  int line_of(std::string_view name) const {
    const Attribute* a = find(name);
    return a ? a->line : 0;
  }
};

constexpr std::string_view kKnownAttributes[] = {
    "hosts", "user", "password", "dbname", "query", "result_format", "domain",
    "expansion_limit", "connect_timeout", "read_timeout", "write_timeout", "retry_interval",
    "idle_interval", "option_file", "option_group", "require_result_set",
    "tls_cert_file", "tls_key_file", "tls_CAfile", "tls_CApath", "tls_ciphers", "tls_verify_cert",
    "table", "select_field", "where_field", "additional_conditions"};

CfFile read_cf(const std::string& path) {
  std::string text;
  try {
    text = read_file(path);
  } catch (const SystemError& e) {
    throw ConfigError(path, 0, std::string("cannot read: ") + std::strerror(e.error()));
  }
  CfFile cf{path, {}};
  for_each_logical_line(text, path, [&](std::string_view line, int number) {
    auto [name, value] = split_assignment(line, path, number, "attribute");
    if (cf.find(name))
      log_warn("%s:%d: %s is set more than once; the last setting is used", path.c_str(), number, name.c_str());
    cf.attributes.push_back({name, Attribute{value, number}});
  });

  for (const auto& [name, attr] : cf.attributes) {
    bool known = std::find(std::begin(kKnownAttributes), std::end(kKnownAttributes), name) !=
                 std::end(kKnownAttributes);
    if (!known)
      log_warn("%s:%d: unknown mysql table attribute \"%s\" is ignored", path.c_str(), attr.line,
               name.c_str());
  }
  return cf;
}

int64_t seconds_attribute(const CfFile& cf, std::string_view name, int64_t fallback) {
  const Attribute* a = cf.find(name);
  if (!a) return fallback;
  auto v = parse_time(a->value, 's');
  if (!v || *v > 24 * 3600)
    throw ConfigError(
        cf.path, a->line,
        "invalid " + std::string(name) + " \"" + a->value + "\" (expected a time such as 10s or 2m)");
  return *v;
}

bool bool_attribute(const CfFile& cf, std::string_view name, bool fallback) {
  const Attribute* a = cf.find(name);
  if (!a) return fallback;
  auto v = parse_bool(a->value);
  if (!v)
    throw ConfigError(cf.path, a->line,
                      "invalid " + std::string(name) + " \"" + a->value + "\" (expected yes or no)");
  return *v;
}

// ---- %-templates ---------------------------------------------------------------

// What the query and result templates need from a lookup key or a result value.
enum Need : unsigned { kKeyUser = 1, kKeyDomain = 2, kValueUser = 4, kValueDomain = 8 };

struct Needs {
  unsigned flags = 0;
  int labels = 0;  // highest %1..%9
};

void check_template(const CfFile& cf, std::string_view attr, std::string_view text, bool is_query,
                    Needs& needs) {
  int line = cf.line_of(attr);
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') continue;
    if (++i == text.size()) throw ConfigError(cf.path, line, "'%' at the end of " + std::string(attr));
    char c = text[i];
    switch (c) {
      case '%':
      case 's':
      case 'S': break;
      case 'u': needs.flags |= is_query ? kKeyUser : kValueUser; break;
      case 'd': needs.flags |= is_query ? kKeyDomain : kValueDomain; break;
      case 'U': needs.flags |= kKeyUser; break;
      case 'D': needs.flags |= kKeyDomain; break;
      default:
        if (c >= '1' && c <= '9') {
          needs.flags |= kKeyDomain;
          needs.labels = std::max(needs.labels, c - '0');
          break;
        }
        throw ConfigError(cf.path, line,
                          "invalid %-escape \"%" + std::string(1, c) + "\" in " + std::string(attr) +
                              " (expected %%, %s, %u, %d, %S, %U, %D or %1-%9)");
    }
  }
}

// A key or value split at its last '@', as Postfix does.
struct Address {
  std::string_view whole;
  std::string_view local;
  std::string_view domain;
  bool has_at = false;
};

Address split_address(std::string_view s) {
  Address a{s, s, {}, false};
  if (size_t at = s.rfind('@'); at != std::string_view::npos) {
    a.local = s.substr(0, at);
    a.domain = s.substr(at + 1);
    a.has_at = true;
  }
  return a;
}

// Appends text to out, escaped for SQL when a connection is given. False when the
// client library refuses (it cannot in practice, but the API says it may).
bool append_quoted(MYSQL* conn, std::string_view text, std::string& out) {
  if (!conn) {
    out += text;
    return true;
  }
  size_t at = out.size();
  out.resize(at + text.size() * 2 + 1);
  unsigned long n = mysql_real_escape_string(conn, out.data() + at, text.data(), text.size());
  if (n == static_cast<unsigned long>(-1)) return false;
  out.resize(at + n);
  return true;
}

// Expands a query (value is the key) or a result (value is a result column) template.
// labels are the key's domain labels, most significant last. Callers have checked
// that everything the template uses exists.
std::optional<std::string> expand(std::string_view format, const Address& value, const Address& key,
                                  const std::vector<std::string_view>& labels, MYSQL* conn) {
  std::string out;
  bool ok = true;
  for (size_t i = 0; i < format.size() && ok; ++i) {
    if (format[i] != '%') {
      out += format[i];
      continue;
    }
    char c = format[++i];
    switch (c) {
      case '%': out += '%'; break;
      case 's': ok = append_quoted(conn, value.whole, out); break;
      case 'S': ok = append_quoted(conn, key.whole, out); break;
      case 'u': ok = append_quoted(conn, value.local, out); break;
      case 'U': ok = append_quoted(conn, key.local, out); break;
      case 'd': ok = append_quoted(conn, value.domain, out); break;
      case 'D': ok = append_quoted(conn, key.domain, out); break;
      default: ok = append_quoted(conn, labels[labels.size() - static_cast<size_t>(c - '0')], out); break;
    }
  }
  if (!ok) return std::nullopt;
  return out;
}

// ---- hosts ---------------------------------------------------------------------

struct Host {
  enum class Kind { kUnix, kTcp, kLibraryDefault } kind = Kind::kLibraryDefault;
  std::string label;  // as written, for logs
  std::string name;   // host name or socket path
  unsigned port = 0;
  bool failed = false;
  Clock::time_point failed_at;
  std::string error;
};

Host parse_host(const CfFile& cf, const std::string& word) {
  Host h;
  h.label = word;
  int line = cf.line_of("hosts");
  std::string_view rest = word;
  bool inet = false;
  if (rest.substr(0, 5) == "unix:") {
    h.kind = Host::Kind::kUnix;
    h.name = std::string(rest.substr(5));
    if (h.name.empty()) throw ConfigError(cf.path, line, "empty socket path in host \"" + word + "\"");
    return h;
  }
  if (rest.substr(0, 1) == "/") {
    h.kind = Host::Kind::kUnix;
    h.name = word;
    return h;
  }
  if (rest.substr(0, 5) == "inet:") {
    rest.remove_prefix(5);
    inet = true;
  }
  std::string_view port;
  if (!rest.empty() && rest[0] == '[') {
    size_t close = rest.find(']');
    if (close == std::string_view::npos)
      throw ConfigError(cf.path, line, "missing ']' in host \"" + word + "\"");
    h.name = std::string(rest.substr(1, close - 1));
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') throw ConfigError(cf.path, line, "bad host \"" + word + "\"");
      port = after.substr(1);
    }
  } else if (size_t colon = rest.find(':'); colon != std::string_view::npos) {
    h.name = std::string(rest.substr(0, colon));
    port = rest.substr(colon + 1);
  } else {
    h.name = std::string(rest);
  }
  if (h.name.empty()) throw ConfigError(cf.path, line, "empty host name in \"" + word + "\"");
  if (!port.empty() || word.back() == ':') {
    auto p = parse_int(port);
    if (!p || *p < 1 || *p > 65535) throw ConfigError(cf.path, line, "bad port in host \"" + word + "\"");
    h.port = static_cast<unsigned>(*p);
  }
  h.kind = inet ? Host::Kind::kTcp : Host::Kind::kLibraryDefault;
  return h;
}

// ---- the table -----------------------------------------------------------------

struct DomainRule {
  bool negate = false;
  std::string domain;            // a literal domain, or
  std::unique_ptr<Table> table;  // a table the domain is looked up in
};

struct Settings {
  std::vector<Host> hosts;
  std::string user, password, dbname;
  std::string query, result_format;
  Needs needs;
  std::vector<DomainRule> domains;
  int64_t expansion_limit = 0;
  unsigned connect_timeout = 5, read_timeout = 30, write_timeout = 30;
  Clock::duration retry_interval = std::chrono::seconds(60);
  Clock::duration idle_interval = std::chrono::seconds(60);
  std::string option_file, option_group;
  bool require_result_set = true;
  std::string tls_cert_file, tls_key_file, tls_ca_file, tls_ca_path, tls_ciphers;
  bool tls_verify_cert = false;
};

void add_domain_rules(const CfFile& cf, std::string_view list, const TableOptions& options,
                      std::vector<DomainRule>& rules, int depth) {
  int line = cf.line_of("domain");
  for (std::string& word : split_list(list)) {
    DomainRule rule;
    std::string_view w = word;
    if (!w.empty() && w[0] == '!') {
      rule.negate = true;
      w.remove_prefix(1);
    }
    if (w.empty()) throw ConfigError(cf.path, line, "empty entry in domain list");
    if (w[0] == '/') {
      if (depth > 0 || rule.negate)
        throw ConfigError(cf.path, line,
                          "domain list file \"" + std::string(w) + "\" cannot be nested or negated");
      std::string text;
      try {
        text = read_file(std::string(w));
      } catch (const SystemError& e) {
        throw ConfigError(cf.path, line,
                          "cannot read domain list \"" + std::string(w) + "\": " + std::strerror(e.error()));
      }
      std::string cleaned;
      for (std::string_view l : split(text, "\n")) {
        l = trim(l);
        if (!l.empty() && l[0] != '#') (cleaned += l) += ' ';
      }
      add_domain_rules(cf, cleaned, options, rules, depth + 1);
      continue;
    }
    if (w.find(':') != std::string_view::npos) {
      try {
        rule.table = open_table(w, options);
      } catch (const ConfigError& e) {
        throw ConfigError(cf.path, line, std::string("domain table: ") + e.what());
      }
    } else {
      rule.domain = lowercase(w);
    }
    rules.push_back(std::move(rule));
  }
}

Settings parse_settings(const CfFile& cf, const TableOptions& options) {
  Settings s;
  std::vector<std::string> hosts = split_list(cf.get("hosts", "localhost"));
  if (hosts.empty()) throw ConfigError(cf.path, cf.line_of("hosts"), "hosts is empty");
  for (const std::string& h : hosts) s.hosts.push_back(parse_host(cf, h));

  s.user = cf.get("user");
  s.password = cf.get("password");
  s.dbname = cf.get("dbname");

  if (cf.find("query")) {
    s.query = cf.get("query");
    if (s.query.empty()) throw ConfigError(cf.path, cf.line_of("query"), "query is empty");
  } else if (cf.find("table") || cf.find("select_field") || cf.find("where_field")) {
    for (std::string_view a : {"table", "select_field", "where_field"})
      if (cf.get(a).empty())
        throw ConfigError(cf.path, 0,
                          "missing " + std::string(a) + " (needed to build a query when query is not set)");
    // The pre-2.2 form; its fields were never escaped, so '%' in them is literal.
    auto literal = [](std::string v) {
      std::string out;
      for (char c : v) (c == '%') ? (out += "%%") : (out += c);
      return out;
    };
    s.query = "SELECT " + literal(cf.get("select_field")) + " FROM " + literal(cf.get("table")) + " WHERE " +
              literal(cf.get("where_field")) + " = '%s'";
    if (std::string extra = cf.get("additional_conditions"); !extra.empty()) s.query += " " + literal(extra);
  } else {
    throw ConfigError(cf.path, 0, "missing query");
  }
  check_template(cf, "query", s.query, true, s.needs);

  s.result_format = cf.get("result_format", "%s");
  if (s.result_format.empty())
    throw ConfigError(cf.path, cf.line_of("result_format"), "result_format is empty");
  check_template(cf, "result_format", s.result_format, false, s.needs);

  if (const Attribute* d = cf.find("domain"); d && !d->value.empty())
    add_domain_rules(cf, d->value, options, s.domains, 0);

  if (const Attribute* a = cf.find("expansion_limit")) {
    auto v = parse_int(a->value);
    if (!v || *v < 0) throw ConfigError(cf.path, a->line, "invalid expansion_limit \"" + a->value + "\"");
    s.expansion_limit = *v;
  }
  s.connect_timeout = static_cast<unsigned>(seconds_attribute(cf, "connect_timeout", 5));
  s.read_timeout = static_cast<unsigned>(seconds_attribute(cf, "read_timeout", 30));
  s.write_timeout = static_cast<unsigned>(seconds_attribute(cf, "write_timeout", 30));
  s.retry_interval = std::chrono::seconds(seconds_attribute(cf, "retry_interval", 60));
  s.idle_interval = std::chrono::seconds(seconds_attribute(cf, "idle_interval", 60));
  s.option_file = cf.get("option_file");
  s.option_group = cf.get("option_group", "client");
  s.require_result_set = bool_attribute(cf, "require_result_set", true);
  s.tls_cert_file = cf.get("tls_cert_file");
  s.tls_key_file = cf.get("tls_key_file");
  s.tls_ca_file = cf.get("tls_CAfile");
  s.tls_ca_path = cf.get("tls_CApath");
  s.tls_ciphers = cf.get("tls_ciphers");
  s.tls_verify_cert = bool_attribute(cf, "tls_verify_cert", false);
  return s;
}

const char* or_null(const std::string& s) { return s.empty() ? nullptr : s.c_str(); }

class MysqlTable final : public Table {
 public:
  MysqlTable(std::string path, const TableOptions& options, Settings settings)
      : Table("mysql:" + path, options), s_(std::move(settings)), random_(std::random_device{}()) {}

 protected:
  LookupResult do_lookup(const std::string& key) override;

 private:
  enum class DomainMatch { kYes, kNo, kTempFail };
  DomainMatch domain_listed(std::string_view domain, std::string& why);
  LookupResult query(const Address& key, const std::vector<std::string_view>& labels);
  LookupResult collect(MYSQL_RES* res, const Address& key, const std::vector<std::string_view>& labels);
  bool connect_any(std::string& why);
  MysqlHandle connect_host(const Host& host, std::string& error) const;
  void close_connection() {
    conn_.reset();
    active_ = nullptr;
  }

  Settings s_;
  std::mt19937 random_;
  MysqlHandle conn_;
  Host* active_ = nullptr;
  Clock::time_point last_used_;
};

LookupResult MysqlTable::do_lookup(const std::string& key) {
  if (key.empty()) return LookupResult::not_found();
  Address k = split_address(key);

  // The domain list: only user@domain keys with a listed domain reach the server.
  if (!s_.domains.empty()) {
    if (!k.has_at || k.local.empty()) return LookupResult::not_found();
    std::string why;
    switch (domain_listed(k.domain, why)) {
      case DomainMatch::kNo: return LookupResult::not_found();
      case DomainMatch::kTempFail: return LookupResult::temp_fail(spec() + ": domain list: " + why);
      case DomainMatch::kYes: break;
    }
  }

  // A key that lacks what the templates use is not looked up (mysql_table(5)).
  if ((s_.needs.flags & kKeyDomain) && (!k.has_at || k.domain.empty())) return LookupResult::not_found();
  if ((s_.needs.flags & kKeyUser) && k.has_at && k.local.empty()) return LookupResult::not_found();
  std::vector<std::string_view> labels;
  if (s_.needs.labels > 0) {
    std::string_view d = k.domain;
    for (size_t start = 0;;) {
      size_t dot = d.find('.', start);
      labels.push_back(d.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
      if (dot == std::string_view::npos) break;
      start = dot + 1;
    }
    if (labels.size() < static_cast<size_t>(s_.needs.labels)) return LookupResult::not_found();
    for (int i = 1; i <= s_.needs.labels; ++i)
      if (labels[labels.size() - static_cast<size_t>(i)].empty()) return LookupResult::not_found();
  }
  return query(k, labels);
}

MysqlTable::DomainMatch MysqlTable::domain_listed(std::string_view domain, std::string& why) {
  std::string folded = lowercase(domain);
  for (DomainRule& rule : s_.domains) {
    bool hit;
    if (rule.table) {
      LookupResult r = rule.table->lookup(domain);
      if (r.is_temp_fail()) {
        why = r.error;
        return DomainMatch::kTempFail;
      }
      hit = r.is_found();
    } else {
      hit = rule.domain == folded;
    }
    if (hit) return rule.negate ? DomainMatch::kNo : DomainMatch::kYes;
  }
  return DomainMatch::kNo;
}

LookupResult MysqlTable::query(const Address& key, const std::vector<std::string_view>& labels) {
  if (!library_ready())
    return LookupResult::temp_fail(spec() + ": cannot initialize the MariaDB client library");
  for (int attempt = 0;; ++attempt) {
    // A connection idle for long may have been dropped silently by a firewall;
    // a query on it would wait for read_timeout, so start afresh.
    if (conn_ && s_.idle_interval.count() > 0 && Clock::now() - last_used_ > s_.idle_interval)
      close_connection();
    if (!conn_) {
      std::string why;
      if (!connect_any(why)) return LookupResult::temp_fail(spec() + ": cannot connect to any host: " + why);
    }
    MYSQL* m = conn_.get();
    std::optional<std::string> sql = expand(s_.query, key, key, labels, m);
    if (!sql) return LookupResult::temp_fail(spec() + ": cannot escape the lookup key");

    MysqlResult res;
    Clock::time_point started = Clock::now();
    bool ok = mysql_real_query(m, sql->data(), sql->size()) == 0;
    if (ok) {
      res.reset(mysql_store_result(m));
      ok = res || mysql_field_count(m) == 0;
    }
    // A stored procedure (CALL) answers with its rows and then a status; anything
    // after the first result set must be read before the connection is usable again.
    bool extra_sets = false;
    while (ok && mysql_more_results(m)) {
      int next = mysql_next_result(m);
      if (next > 0) ok = false;
      if (next != 0) break;
      if (MysqlResult extra{mysql_store_result(m)})
        extra_sets = true;
      else if (mysql_field_count(m) != 0)
        ok = false;
    }
    last_used_ = Clock::now();
    if (ok) {
      if (extra_sets) {
        log_warn("%s: query returned more than one result set", spec().c_str());
        return LookupResult::temp_fail(spec() + ": query returned more than one result set");
      }
      if (!res) {
        if (!s_.require_result_set) return LookupResult::not_found();
        log_warn("%s: query returned no result set", spec().c_str());
        return LookupResult::temp_fail(spec() + ": query returned no result set");
      }
      return collect(res.get(), key, labels);
    }

    unsigned err = mysql_errno(m);
    std::string text = mysql_error(m);
    res.reset();
    bool lost = err == CR_SERVER_GONE_ERROR || err == CR_SERVER_LOST || err == CR_SERVER_LOST_EXTENDED ||
                err == ER_CONNECTION_KILLED;
    std::string host = active_ ? active_->label : "?";
    // A client-side error leaves the connection in an unknown state; a server-side
    // one (bad SQL, missing table) does not.
    if (lost || (err >= CR_MIN_ERROR && err <= CR_MAX_ERROR)) close_connection();
    // Retry once when the server closed the connection (it restarted, or dropped an
    // idle connection), not when the query ran into read_timeout: it would again.
    bool timed_out = s_.read_timeout > 0 && Clock::now() - started >= std::chrono::seconds(s_.read_timeout);
    if (lost && attempt == 0 && !timed_out) {
      log_warn("%s: connection to %s lost (%s); reconnecting", spec().c_str(), host.c_str(), text.c_str());
      continue;
    }
    log_warn("%s: query failed on %s: %s", spec().c_str(), host.c_str(), text.c_str());
    return LookupResult::temp_fail(spec() + ": query failed: " + text);
  }
}

LookupResult MysqlTable::collect(MYSQL_RES* res, const Address& key,
                                 const std::vector<std::string_view>& labels) {
  std::string out;
  int64_t count = 0;
  unsigned fields = mysql_num_fields(res);
  while (MYSQL_ROW row = mysql_fetch_row(res)) {
    unsigned long* lengths = mysql_fetch_lengths(res);
    for (unsigned j = 0; j < fields; ++j) {
      if (!row[j]) continue;  // NULL: nothing to say
      std::string_view v(row[j], lengths[j]);
      if (v.empty()) {
        log_warn("%s: empty lookup result for \"%.*s\" is ignored", spec().c_str(),
                 static_cast<int>(key.whole.size()), key.whole.data());
        continue;
      }
      Address value = split_address(v);
      if ((s_.needs.flags & kValueDomain) && (!value.has_at || value.domain.empty())) continue;
      if ((s_.needs.flags & kValueUser) && value.has_at && value.local.empty()) continue;
      std::optional<std::string> expanded = expand(s_.result_format, value, key, labels, nullptr);
      if (s_.expansion_limit > 0 && ++count > s_.expansion_limit) {
        log_warn("%s: expansion limit %lld exceeded for key \"%.*s\"", spec().c_str(),
                 static_cast<long long>(s_.expansion_limit), static_cast<int>(key.whole.size()),
                 key.whole.data());
        return LookupResult::temp_fail(spec() + ": expansion limit exceeded");
      }
      if (!out.empty() && !expanded->empty()) out += kResultSeparator;
      out += *expanded;
    }
  }
  if (out.empty()) return LookupResult::not_found();
  return LookupResult::found(std::move(out));
}

bool MysqlTable::connect_any(std::string& why) {
  Clock::time_point now = Clock::now();
  std::vector<Host*> sockets, others;
  for (Host& h : s_.hosts) {
    if (h.failed && now - h.failed_at < s_.retry_interval) continue;
    (h.kind == Host::Kind::kUnix ? sockets : others).push_back(&h);
  }
  std::shuffle(sockets.begin(), sockets.end(), random_);
  std::shuffle(others.begin(), others.end(), random_);
  sockets.insert(sockets.end(), others.begin(), others.end());

  if (sockets.empty()) {
    // Every host failed a moment ago: do not make each lookup wait for dead hosts.
    const Host* latest = &s_.hosts.front();
    for (const Host& h : s_.hosts)
      if (h.failed_at > latest->failed_at) latest = &h;
    auto wait = std::chrono::duration_cast<std::chrono::seconds>(latest->failed_at + s_.retry_interval - now);
    why = latest->error +
          format(" (no host is retried for another %llds)", static_cast<long long>(wait.count()) + 1);
    return false;
  }
  for (Host* h : sockets) {
    std::string error;
    if (MysqlHandle m = connect_host(*h, error)) {
      h->failed = false;
      conn_ = std::move(m);
      active_ = h;
      last_used_ = Clock::now();
      if (log_verbose()) log_debug("%s: connected to %s", spec().c_str(), h->label.c_str());
      return true;
    }
    h->failed = true;
    h->failed_at = Clock::now();
    h->error = error;
    log_warn("%s: cannot connect to %s: %s", spec().c_str(), h->label.c_str(), error.c_str());
    why = error;
  }
  return false;
}

MysqlHandle MysqlTable::connect_host(const Host& h, std::string& error) const {
  MysqlHandle m(mysql_init(nullptr));
  if (!m) {
    error = "out of memory";
    return {};
  }
  unsigned timeout = s_.connect_timeout;
  mysql_options(m.get(), MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
  timeout = s_.read_timeout;
  mysql_options(m.get(), MYSQL_OPT_READ_TIMEOUT, &timeout);
  timeout = s_.write_timeout;
  mysql_options(m.get(), MYSQL_OPT_WRITE_TIMEOUT, &timeout);
  my_bool no = 0;
  mysql_options(m.get(), MYSQL_OPT_RECONNECT, &no);  // we reconnect ourselves, knowing the state
  mysql_options(m.get(), MYSQL_SET_CHARSET_NAME, "utf8mb4");
  if (!s_.option_file.empty()) mysql_options(m.get(), MYSQL_READ_DEFAULT_FILE, s_.option_file.c_str());
  if (!s_.option_group.empty()) mysql_options(m.get(), MYSQL_READ_DEFAULT_GROUP, s_.option_group.c_str());
  if (h.kind != Host::Kind::kLibraryDefault) {
    unsigned protocol = h.kind == Host::Kind::kUnix ? MYSQL_PROTOCOL_SOCKET : MYSQL_PROTOCOL_TCP;
    mysql_options(m.get(), MYSQL_OPT_PROTOCOL, &protocol);
  }
  if (!s_.tls_cert_file.empty() || !s_.tls_key_file.empty() || !s_.tls_ca_file.empty() ||
      !s_.tls_ca_path.empty() || !s_.tls_ciphers.empty()) {
    mysql_ssl_set(m.get(), or_null(s_.tls_key_file), or_null(s_.tls_cert_file), or_null(s_.tls_ca_file),
                  or_null(s_.tls_ca_path), or_null(s_.tls_ciphers));
  }
  my_bool verify = s_.tls_verify_cert ? 1 : 0;
  mysql_options(m.get(), MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify);

  bool unix_socket = h.kind == Host::Kind::kUnix;
  if (!mysql_real_connect(m.get(), unix_socket ? "localhost" : h.name.c_str(), or_null(s_.user),
                          or_null(s_.password), or_null(s_.dbname), unix_socket ? 0 : h.port,
                          unix_socket ? h.name.c_str() : nullptr, CLIENT_MULTI_RESULTS)) {
    error = mysql_error(m.get());
    return {};
  }
  return m;
}

}  // namespace

std::unique_ptr<Table> open_mysql_table(std::string_view name, const TableOptions& options) {
  std::string path(name);
  if (path.empty()) throw ConfigError("mysql:", 0, "missing configuration file name");
  CfFile cf = read_cf(path);
  Settings settings = parse_settings(cf, options);
  if (!settings.password.empty()) {
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && (st.st_mode & S_IROTH))
      log_warn("%s: the file holds a database password and is readable by every user", path.c_str());
  }
  return std::make_unique<MysqlTable>(std::move(path), options, std::move(settings));
}

}  // namespace postern

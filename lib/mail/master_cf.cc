// Reading and checking master.cf.
#include "mail/master_cf.h"

#include <netdb.h>

#include <cctype>
#include <set>

#include "mail/params.h"
#include "util/error.h"
#include "util/file.h"
#include "util/logical_lines.h"
#include "util/strings.h"

namespace postern {
namespace {

// Splits a logical line into words; "{ ... }" (after -o) stays one word.
std::vector<std::string> words_of(const std::string& path, int line, std::string_view text) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i >= text.size()) break;
    size_t start = i;
    if (text[i] == '{') {
      int depth = 0;
      for (; i < text.size(); ++i) {
        if (text[i] == '{') ++depth;
        else if (text[i] == '}' && --depth == 0) break;
      }
      if (i >= text.size()) throw ConfigError(path, line, "missing '}'");
      ++i;
    } else {
      while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    }
    out.emplace_back(text.substr(start, i - start));
  }
  return out;
}

bool yes_no_field(const std::string& path, int line, const std::string& column, const std::string& word,
                  bool default_value) {
  if (word == "-") return default_value;
  if (word == "y") return true;
  if (word == "n") return false;
  throw ConfigError(path, line, "column '" + column + "' must be y, n or -, not \"" + word + "\"");
}

ServiceType type_of(const std::string& path, int line, const std::string& word) {
  if (word == "inet") return ServiceType::kInet;
  if (word == "unix") return ServiceType::kUnix;
  if (word == "unix-dgram") return ServiceType::kUnixDgram;
  if (word == "fifo") return ServiceType::kFifo;
  if (word == "pass") return ServiceType::kPass;
  throw ConfigError(path, line, "unknown service type \"" + word + "\" (expected inet, unix, unix-dgram, fifo or pass)");
}

void check_inet_name(const std::string& path, int line, const std::string& name) {
  // [host:]port, where host may be [IPv6] and port a number or a name in services(5).
  std::string port = name;
  if (!name.empty() && name[0] == '[') {
    size_t close = name.find("]:");
    if (close == std::string::npos) throw ConfigError(path, line, "bad inet service \"" + name + "\": expected [address]:port");
    port = name.substr(close + 2);
  } else if (size_t colon = name.rfind(':'); colon != std::string::npos) {
    port = name.substr(colon + 1);
  }
  if (auto n = parse_int(port)) {
    if (*n < 1 || *n > 65535) throw ConfigError(path, line, "bad port in inet service \"" + name + "\"");
    return;
  }
  if (port.empty() || !::getservbyname(port.c_str(), "tcp"))
    throw ConfigError(path, line, "unknown port \"" + port + "\" in inet service \"" + name + "\"");
}

ServiceOverride parse_override(const std::string& path, int line, std::string_view word, const Config& config) {
  std::string_view body = trim(word);
  if (!body.empty() && body.front() == '{') body = trim(body.substr(1, body.size() - 2));
  size_t eq = body.find('=');
  if (eq == std::string_view::npos)
    throw ConfigError(path, line, "-o needs name=value, not \"" + std::string(word) + "\"");
  std::string name(trim(body.substr(0, eq)));
  if (name.empty()) throw ConfigError(path, line, "-o with an empty parameter name");
  if (!find_param(name) && !config.is_set(name))
    throw ConfigError(path, line, "-o " + name + ": unknown parameter (not a Postern parameter, nor set in main.cf)");
  return {name, std::string(trim(body.substr(eq + 1)))};
}

}  // namespace

std::string_view service_type_name(ServiceType type) {
  switch (type) {
    case ServiceType::kInet: return "inet";
    case ServiceType::kUnix: return "unix";
    case ServiceType::kUnixDgram: return "unix-dgram";
    case ServiceType::kFifo: return "fifo";
    case ServiceType::kPass: return "pass";
  }
  return "unix";
}

std::string MasterService::id() const { return name + "/" + std::string(service_type_name(type)); }

std::vector<MasterService> parse_master_cf(const std::string& path, const std::string& text, const Config& config) {
  struct Logical {
    std::string text;
    int line;
  };
  std::vector<Logical> lines;
  for_each_logical_line(text, path, [&](std::string_view line, int number) { lines.push_back({std::string(line), number}); });

  std::vector<MasterService> services;
  std::set<std::string> seen;
  for (const Logical& l : lines) {
    std::vector<std::string> w = words_of(path, l.line, l.text);
    if (w.size() < 8)
      throw ConfigError(path, l.line, "expected 8 columns (service type private unpriv chroot wakeup maxproc command), found " +
                                          std::to_string(w.size()));
    MasterService s;
    s.file = path;
    s.line = l.line;
    s.name = w[0];
    s.type = type_of(path, l.line, w[1]);
    s.private_service = yes_no_field(path, l.line, "private", w[2], s.type != ServiceType::kInet);
    s.unprivileged = yes_no_field(path, l.line, "unpriv", w[3], true);
    s.chroot = yes_no_field(path, l.line, "chroot", w[4], false);
    if (s.type == ServiceType::kInet) {
      if (s.private_service) throw ConfigError(path, l.line, "an inet service cannot be private");
      check_inet_name(path, l.line, s.name);
    } else if (s.name.find('/') != std::string::npos || s.name == "." || s.name == "..") {
      throw ConfigError(path, l.line, "bad service name \"" + s.name + "\": no '/' allowed");
    }
    if (w[5] != "-") {
      std::string wake = w[5];
      if (!wake.empty() && wake.back() == '?') {
        s.wakeup_only_if_used = true;
        wake.pop_back();
      }
      auto n = parse_int(wake);
      if (!n || *n < 0 || *n > 86400 * 365)
        throw ConfigError(path, l.line, "column 'wakeup' must be a number of seconds or -, not \"" + w[5] + "\"");
      s.wakeup_seconds = static_cast<int>(*n);
    }
    if (w[6] != "-") {
      auto n = parse_int(w[6]);
      if (!n || *n < 0 || *n > 100000)
        throw ConfigError(path, l.line, "column 'maxproc' must be a number or -, not \"" + w[6] + "\"");
      s.max_processes = static_cast<int>(*n);
    }
    s.command = w[7];
    if (s.command.find('/') != std::string::npos)
      throw ConfigError(path, l.line, "command \"" + s.command + "\" must be a program name in daemon_directory");
    for (size_t i = 8; i < w.size(); ++i) {
      if (w[i] == "-o") {
        if (i + 1 >= w.size()) throw ConfigError(path, l.line, "-o at the end of the line needs name=value");
        s.overrides.push_back(parse_override(path, l.line, w[++i], config));
      } else if (w[i].rfind("-o", 0) == 0 && w[i].size() > 2 && w[i].find('=') != std::string::npos) {
        s.overrides.push_back(parse_override(path, l.line, std::string_view(w[i]).substr(2), config));
      } else {
        s.args.push_back(w[i]);
      }
    }
    if (!seen.insert(s.id()).second) throw ConfigError(path, l.line, "duplicate service " + s.id());
    services.push_back(std::move(s));
  }
  return services;
}

std::vector<MasterService> load_master_cf(const Config& config) {
  std::string path = config.master_cf_path();
  std::string text;
  try {
    text = read_file(path);
  } catch (const SystemError& e) {
    throw ConfigError(path, 0, std::string("cannot read: ") + e.code().message());
  }
  return parse_master_cf(path, text, config);
}

Config service_config(const Config& base, const MasterService& service) {
  Config config = base;
  for (const ServiceOverride& o : service.overrides) config.set(o.name, o.value, service.file, service.line);
  return config;
}

}  // namespace postern

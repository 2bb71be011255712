// master.cf: the services master runs, in Postfix's eight-column format:
//   service type private unpriv chroot wakeup maxproc command [args]
// with continuation lines that begin with white space, # comments, "-" for a
// column's default, and "-o name=value" (or "-o { name = value }") overrides that
// apply to that service only.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "mail/config.h"

namespace postern {

enum class ServiceType { kInet, kUnix, kUnixDgram, kFifo, kPass };

struct ServiceOverride {
  std::string name;
  std::string value;  // unexpanded
};

struct MasterService {
  std::string name;  // "smtp", "127.0.0.1:2525", "cleanup"
  ServiceType type = ServiceType::kUnix;
  bool private_service = true;
  bool unprivileged = true;
  bool chroot = false;
  int wakeup_seconds = 0;           // 0: never woken
  bool wakeup_only_if_used = false;  // "60?"
  std::optional<int> max_processes;  // nothing: default_process_limit; 0: no limit
  std::string command;               // the program, looked up in daemon_directory
  std::vector<std::string> args;     // arguments other than -o
  std::vector<ServiceOverride> overrides;
  std::string file;
  int line = 0;

  std::string id() const;  // "smtp/inet"
};

std::string_view service_type_name(ServiceType type);

// Reads and checks config.master_cf_path(); throws ConfigError("file:line: what").
// A missing file is an error: without master.cf there is no mail system.
std::vector<MasterService> load_master_cf(const Config& config);
// Parses master.cf text (for tests and postconf -M on another file).
std::vector<MasterService> parse_master_cf(const std::string& path, const std::string& text, const Config& config);

// The configuration a service runs with: main.cf plus the service's -o overrides.
Config service_config(const Config& base, const MasterService& service);

}  // namespace postern

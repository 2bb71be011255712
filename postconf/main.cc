// postconf: shows and edits Postern's configuration, as Postfix's postconf(1).
//   postconf [-c dir] [-n|-d] [-h] [-x] [name ...]   show parameters
//   postconf [-c dir] -e name=value ...              edit main.cf (atomically)
//   postconf [-c dir] -X name ...                    remove parameters from main.cf
//   postconf [-c dir] -M [service[/type] ...]        show master.cf services
//   postconf -D [name ...]                           describe parameters: default and purpose
//   postconf -m                                      list the lookup table types
// An edit that would leave main.cf invalid is refused and changes nothing.
#include <sysexits.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>

#include "mail/config.h"
#include "mail/main_cf_edit.h"
#include "mail/master_cf.h"
#include "mail/params.h"
#include "mail/table.h"
#include "util/cli.h"
#include "util/error.h"
#include "util/log.h"
#include "util/strings.h"

using namespace postern;

namespace {

struct Options {
  std::string config_dir;
  bool non_default = false;  // -n
  bool defaults = false;     // -d
  bool values_only = false;  // -h
  bool expand = false;       // -x
  bool edit = false;         // -e
  bool remove = false;       // -X
  bool master = false;       // -M
  bool describe = false;     // -D
  bool table_types = false;  // -m
  std::vector<std::string> names;
};

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: postconf [-c dir] [-n|-d] [-h] [-x] [name ...]\n"
               "       postconf [-c dir] -e name=value ...\n"
               "       postconf [-c dir] -X name ...\n"
               "       postconf [-c dir] -M [service[/type] ...]\n"
               "       postconf -D [name ...]\n"
               "       postconf -m\n");
  std::exit(EX_USAGE);
}

Options parse_options(int argc, char** argv) {
  Options o;
  int c;
  while ((c = getopt(argc, argv, "c:ndhxeXMDmv")) != -1) {
    switch (c) {
      case 'c': o.config_dir = optarg; break;
      case 'n': o.non_default = true; break;
      case 'd': o.defaults = true; break;
      case 'h': o.values_only = true; break;
      case 'x': o.expand = true; break;
      case 'e': o.edit = true; break;
      case 'X': o.remove = true; break;
      case 'M': o.master = true; break;
      case 'D': o.describe = true; break;
      case 'm': o.table_types = true; break;
      case 'v': log_set_verbose(log_verbose() + 1); break;
      default: usage();
    }
  }
  for (int i = optind; i < argc; ++i) o.names.emplace_back(argv[i]);
  if (o.non_default && o.defaults) usage();
  if ((o.edit || o.remove) && (o.names.empty() || o.master || o.defaults || o.non_default)) usage();
  if (o.edit && o.remove) usage();
  return o;
}

void print_param(const Options& o, const std::string& name, const std::string& value) {
  if (o.values_only) std::printf("%s\n", value.c_str());
  else std::printf("%s = %s\n", name.c_str(), value.c_str());
}

int show_params(const Options& o, const Config& config) {
  auto value = [&](const std::string& name) -> std::optional<std::string> {
    if (o.defaults) {
      const ParamSpec* spec = find_param(name);
      if (!spec) return std::nullopt;
      std::string v = default_value(*spec, config);
      return o.expand ? config.expand(v) : v;
    }
    if (!config.raw(name)) return std::nullopt;
    return o.expand ? config.str(name) : *config.raw(name);
  };
  if (!o.names.empty()) {
    int status = 0;
    for (const std::string& name : o.names) {
      auto v = value(name);
      if (!v) {
        log_warn("%s: unknown parameter", name.c_str());
        status = 1;
        continue;
      }
      print_param(o, name, *v);
    }
    return status;
  }
  if (o.non_default) {
    for (const auto& [name, entry] : config.entries())
      if (name != "config_directory" || entry.line > 0) print_param(o, name, *value(name));
    return 0;
  }
  // Every known parameter, plus those only main.cf defines, in name order.
  std::vector<std::string> names;
  for (const ParamSpec& spec : all_params()) names.emplace_back(spec.name);
  if (!o.defaults)
    for (const auto& [name, entry] : config.entries())
      if (!find_param(name)) names.push_back(name);
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) print_param(o, name, *value(name));
  return 0;
}

const char* type_word(ParamType type) {
  switch (type) {
    case ParamType::kInt: return "number";
    case ParamType::kBool: return "yes/no";
    case ParamType::kTime: return "time";
    case ParamType::kSize: return "bytes";
    case ParamType::kString: break;
  }
  return "text";
}

// Every parameter (or those named) as "name (type, default: value)" and what it does.
int describe(const Options& o, const Config& config) {
  int status = 0;
  auto one = [&](const ParamSpec& p) {
    std::string def = p.compute_default ? "this host's (" + default_value(p, config) + ")" : std::string(p.default_value);
    std::printf("%s (%s, default: %s)\n    %s\n", std::string(p.name).c_str(), type_word(p.type),
                def.empty() ? "empty" : def.c_str(), std::string(p.doc).c_str());
  };
  if (o.names.empty())
    for (const ParamSpec& p : all_params()) one(p);
  for (const std::string& name : o.names) {
    if (const ParamSpec* p = find_param(name)) one(*p);
    else {
      log_warn("%s: unknown parameter", name.c_str());
      status = 1;
    }
  }
  return status;
}

int show_master(const Options& o, const Config& config) {
  std::vector<MasterService> services = load_master_cf(config);
  int status = 0;
  std::vector<bool> shown(services.size(), o.names.empty());
  for (const std::string& want : o.names) {
    bool any = false;
    for (size_t i = 0; i < services.size(); ++i)
      if (services[i].name == want || services[i].id() == want) shown[i] = any = true;
    if (!any) {
      log_warn("%s: no such service in %s", want.c_str(), config.master_cf_path().c_str());
      status = 1;
    }
  }
  auto yn = [](bool b) { return b ? "y" : "n"; };
  for (size_t i = 0; i < services.size(); ++i) {
    if (!shown[i]) continue;
    const MasterService& s = services[i];
    std::string wake = s.wakeup_seconds ? std::to_string(s.wakeup_seconds) + (s.wakeup_only_if_used ? "?" : "") : "-";
    std::string maxproc = s.max_processes ? std::to_string(*s.max_processes) : "-";
    std::string line = format("%-10s %-5s %-7s %-7s %-7s %-7s %-7s %s", s.name.c_str(),
                              std::string(service_type_name(s.type)).c_str(), yn(s.private_service),
                              yn(s.unprivileged), yn(s.chroot), wake.c_str(), maxproc.c_str(), s.command.c_str());
    for (const std::string& a : s.args) line += " " + a;
    for (const ServiceOverride& ov : s.overrides)
      line += ov.value.find_first_of(" \t") == std::string::npos ? " -o " + ov.name + "=" + ov.value
                                                                : " -o { " + ov.name + " = " + ov.value + " }";
    std::printf("%s\n", line.c_str());
  }
  return status;
}

int edit(const Options& o, const Config& config) {
  std::vector<MainCfEdit> edits;
  for (const std::string& arg : o.names) {
    if (o.remove) {
      edits.push_back({arg, std::nullopt});
      continue;
    }
    size_t eq = arg.find('=');
    if (eq == std::string::npos || eq == 0) throw UsageError("-e needs name=value, not \"" + arg + "\"");
    edits.push_back({std::string(trim(std::string_view(arg).substr(0, eq))),
                     std::string(trim(std::string_view(arg).substr(eq + 1)))});
  }
  edit_main_cf(config.dir(), edits);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  log_init("postconf", LogSink::kCommandLine);
  Options o = parse_options(argc, argv);
  if (o.table_types) {
    for (std::string_view type : table_type_names()) std::printf("%.*s\n", static_cast<int>(type.size()), type.data());
    return 0;
  }
  return run_command_line([&] {
    Config config = o.defaults || o.describe ? Config::defaults(Config::choose_dir(o.config_dir))
                               : Config::load(Config::choose_dir(o.config_dir));
    if (o.edit || o.remove) return edit(o, config);
    if (o.describe) return describe(o, config);
    if (!o.defaults) {
      for (const std::string& problem : config.check()) log_warn("%s", problem.c_str());
      for (const Config::Entry* e : config.unused())
        log_warn("%s:%d: unused parameter: %s=%s", e->file.c_str(), e->line, e->name.c_str(), e->value.c_str());
    }
    return o.master ? show_master(o, config) : show_params(o, config);
  });
}

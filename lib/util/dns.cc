// Blocking DNS lookups over glibc's resolver (see dns.h).
#include "util/dns.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <netdb.h>
#include <resolv.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include "util/error.h"
#include "util/strings.h"

namespace postern {

namespace {

constexpr int kMaxCnameLinks = 8;

struct Record {
  std::string owner;  // lower case, no trailing dot
  int type = 0;
  std::string value;  // the text form of the data
  int preference = 0; // MX
};

std::string canonical_name(std::string_view name) {
  std::string result = lowercase(name);
  if (!result.empty() && result.back() == '.') result.pop_back();
  return result;
}

int wire_type(DnsType type) {
  switch (type) {
    case DnsType::kA: return ns_t_a;
    case DnsType::kAaaa: return ns_t_aaaa;
    case DnsType::kMx: return ns_t_mx;
    case DnsType::kTxt: return ns_t_txt;
    case DnsType::kPtr: return ns_t_ptr;
  }
  return ns_t_a;
}

const char* type_name(int type) {
  switch (type) {
    case ns_t_a: return "A";
    case ns_t_aaaa: return "AAAA";
    case ns_t_mx: return "MX";
    case ns_t_txt: return "TXT";
    case ns_t_ptr: return "PTR";
  }
  return "?";
}

// A domain name inside the message at data; false when it is malformed.
bool read_name(const ns_msg& msg, const unsigned char* data, std::string& out) {
  char buf[NS_MAXDNAME];
  if (ns_name_uncompress(ns_msg_base(msg), ns_msg_end(msg), data, buf, sizeof buf) < 0) return false;
  out = canonical_name(buf);
  return true;
}

// The answer section as records; false when the message is malformed.
bool parse_answers(const unsigned char* answer, int length, std::vector<Record>& records) {
  ns_msg msg;
  if (ns_initparse(answer, length, &msg) < 0) return false;
  for (int i = 0; i < ns_msg_count(msg, ns_s_an); ++i) {
    ns_rr rr;
    if (ns_parserr(&msg, ns_s_an, i, &rr) < 0) return false;
    if (ns_rr_class(rr) != ns_c_in) continue;
    Record record;
    record.owner = canonical_name(ns_rr_name(rr));
    record.type = ns_rr_type(rr);
    const unsigned char* data = ns_rr_rdata(rr);
    size_t size = ns_rr_rdlen(rr);
    char text[INET6_ADDRSTRLEN];
    switch (record.type) {
      case ns_t_a:
        if (size != 4 || !inet_ntop(AF_INET, data, text, sizeof text)) return false;
        record.value = text;
        break;
      case ns_t_aaaa:
        if (size != 16 || !inet_ntop(AF_INET6, data, text, sizeof text)) return false;
        record.value = text;
        break;
      case ns_t_mx:
        if (size < 3) return false;
        record.preference = ns_get16(data);
        if (!read_name(msg, data + 2, record.value)) return false;
        break;
      case ns_t_cname:
      case ns_t_ptr:
        if (!read_name(msg, data, record.value)) return false;
        break;
      case ns_t_txt:
        // One or more character-strings, each with a length octet; joined as one text.
        for (size_t at = 0; at < size;) {
          size_t piece = data[at];
          if (at + 1 + piece > size) return false;
          record.value.append(reinterpret_cast<const char*>(data + at + 1), piece);
          at += 1 + piece;
        }
        break;
      default:
        continue;
    }
    records.push_back(std::move(record));
  }
  return true;
}

// Options from a resolv.conf-style file, applied to a res_state that res_ninit filled.
void apply_conf_file(const std::string& path, res_state state) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path, 0, std::string("cannot open: ") + std::strerror(errno));
  std::vector<in_addr> servers;
  int port = NS_DEFAULTPORT;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    std::vector<std::string> words = split(line, kBlanks);
    if (words.empty() || words[0][0] == '#' || words[0][0] == ';') continue;
    if (words[0] == "nameserver" && words.size() == 2) {
      in_addr address;
      if (inet_pton(AF_INET, words[1].c_str(), &address) != 1)
        throw ConfigError(path, number, "nameserver must be an IPv4 address: " + words[1]);
      if (servers.size() < MAXNS) servers.push_back(address);
    } else if (words[0] == "port" && words.size() == 2) {
      auto value = parse_int(words[1]);
      if (!value || *value < 1 || *value > 65535) throw ConfigError(path, number, "bad port: " + words[1]);
      port = static_cast<int>(*value);
    } else if (words[0] == "options") {
      for (size_t i = 1; i < words.size(); ++i) {
        size_t colon = words[i].find(':');
        std::string name = words[i].substr(0, colon);
        int64_t value = colon == std::string::npos ? 0 : parse_int(words[i].substr(colon + 1)).value_or(0);
        if ((name == "timeout" || name == "attempts") && value >= 1 && value <= 30) {
          (name == "timeout" ? state->retrans : state->retry) = static_cast<int>(value);
        } else {
          throw ConfigError(path, number, "unknown or bad option: " + words[i]);
        }
      }
    } else if (words[0] != "search" && words[0] != "domain") {
      throw ConfigError(path, number, "expected nameserver IP, port N or options: " + std::string(trim(line)));
    }
  }
  if (servers.empty()) return;
  state->nscount = static_cast<int>(servers.size());
  for (size_t i = 0; i < servers.size(); ++i) {
    sockaddr_in& sin = state->nsaddr_list[i];
    std::memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(static_cast<uint16_t>(port));
    sin.sin_addr = servers[i];
  }
}

}  // namespace

struct Resolver::State {
  struct __res_state res;
  // One query: fills records, or says why it could not.
  DnsStatus query(const std::string& name, int type, std::vector<Record>& records, std::string& error);
  // The records of the wanted type for name, following CNAMEs within an answer and,
  // when the server gave only the alias, by asking again for its target.
  DnsStatus resolve(std::string_view domain, int type, std::vector<Record>& found, std::string& error);
};

DnsStatus Resolver::State::query(const std::string& name, int type, std::vector<Record>& records,
                                 std::string& error) {
  if (name.empty() || name.size() > 253) {
    error = "malformed domain name";
    return DnsStatus::kNotFound;
  }
  unsigned char answer[NS_MAXMSG];
  int length = res_nquery(&res, name.c_str(), ns_c_in, type, answer, sizeof answer);
  if (length < 0) {
    switch (res.res_h_errno) {
      case HOST_NOT_FOUND:
        error = "Host not found";
        return DnsStatus::kNotFound;
      case NO_DATA:
        error = std::string("no ") + type_name(type) + " record";
        return DnsStatus::kNotFound;
      case TRY_AGAIN:
        error = "Host not found, try again";
        return DnsStatus::kTempFail;
      default:
        error = "server failure or no answer";
        return DnsStatus::kTempFail;
    }
  }
  if (!parse_answers(answer, length, records)) {
    error = "malformed DNS reply";
    return DnsStatus::kTempFail;
  }
  return DnsStatus::kFound;
}

DnsStatus Resolver::State::resolve(std::string_view domain, int type, std::vector<Record>& found,
                                   std::string& error) {
  std::string name = canonical_name(domain);
  int links = 0;
  for (;;) {
    std::vector<Record> records;
    DnsStatus status = query(name, type, records, error);
    if (status != DnsStatus::kFound) return status;
    bool followed = true;
    while (followed) {
      followed = false;
      for (const Record& r : records) {
        if (r.type == ns_t_cname && r.owner == name && type != ns_t_cname) {
          if (++links > kMaxCnameLinks) {
            error = "CNAME chain too long";
            return DnsStatus::kTempFail;
          }
          name = r.value;
          followed = true;
          break;
        }
      }
    }
    for (Record& r : records)
      if (r.type == type && r.owner == name) found.push_back(std::move(r));
    if (!found.empty()) return DnsStatus::kFound;
    bool alias_only = std::any_of(records.begin(), records.end(),
                                  [](const Record& r) { return r.type == ns_t_cname; }) &&
                      links > 0;
    if (!alias_only) {
      error = std::string("no ") + type_name(type) + " record";
      return DnsStatus::kNotFound;
    }
    // The server gave the alias without its target's records: ask for the target.
  }
}

Resolver::Resolver(const ResolverOptions& options) : state_(std::make_unique<State>()) {
  std::memset(&state_->res, 0, sizeof state_->res);
  if (res_ninit(&state_->res) != 0) throw SystemError(errno, "res_ninit");
  state_->res.retrans = options.timeout_seconds;
  state_->res.retry = options.attempts;
  try {
    if (!options.conf_file.empty()) apply_conf_file(options.conf_file, &state_->res);
  } catch (...) {
    res_nclose(&state_->res);
    throw;
  }
}

Resolver::~Resolver() { res_nclose(&state_->res); }

DnsResult<std::string> Resolver::lookup(std::string_view name, DnsType type) {
  DnsResult<std::string> result;
  std::vector<Record> records;
  result.status = state_->resolve(name, wire_type(type), records, result.error);
  for (Record& r : records) result.records.push_back(std::move(r.value));
  return result;
}

DnsResult<MxHost> Resolver::lookup_mx(std::string_view domain) {
  DnsResult<MxHost> result;
  std::vector<Record> records;
  result.status = state_->resolve(domain, ns_t_mx, records, result.error);
  for (Record& r : records) result.records.push_back({r.preference, std::move(r.value)});
  std::stable_sort(result.records.begin(), result.records.end(),
                   [](const MxHost& a, const MxHost& b) { return a.preference < b.preference; });
  return result;
}

DnsResult<std::string> Resolver::lookup_ptr(std::string_view address) {
  std::string labels = reverse_address_labels(address);
  if (labels.empty()) {
    DnsResult<std::string> result;
    result.error = "not an IP address";
    return result;
  }
  bool v6 = address.find(':') != std::string_view::npos;
  return lookup(labels + (v6 ? ".ip6.arpa" : ".in-addr.arpa"), DnsType::kPtr);
}

std::string reverse_address_labels(std::string_view address) {
  std::string text(address);
  unsigned char bytes[16];
  if (inet_pton(AF_INET, text.c_str(), bytes) == 1) {
    return format("%u.%u.%u.%u", bytes[3], bytes[2], bytes[1], bytes[0]);
  }
  if (inet_pton(AF_INET6, text.c_str(), bytes) == 1) {
    static const char kHex[] = "0123456789abcdef";
    std::string labels;
    for (int i = 15; i >= 0; --i) {
      if (!labels.empty()) labels += '.';
      labels += kHex[bytes[i] & 0xf];
      labels += '.';
      labels += kHex[bytes[i] >> 4];
    }
    return labels;
  }
  return {};
}

}  // namespace postern

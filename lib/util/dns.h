// Blocking DNS lookups (A, AAAA, MX, TXT, PTR) with glibc's res_nquery, for
// smtpd's restrictions (unknown domains, reverse names, DNS block lists) and the
// smtp client's MX lookup. Every lookup ends found, not found (NXDOMAIN or no
// record of that type) or failed temporarily (timeout, SERVFAIL, a refusal), as
// values; callers turn a temporary failure into a 4xx reply or a deferral.
//
// A Resolver reads the system's /etc/resolv.conf, or a resolv.conf-style file of
// its own (Postern's dns_resolver_conf parameter) that may give "nameserver IP"
// lines (IPv4), "port N" (for every nameserver; tests run a server on a high port)
// and "options timeout:N attempts:N". CNAME chains are followed (at most 8 links).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace postern {

enum class DnsType { kA, kAaaa, kMx, kTxt, kPtr };
enum class DnsStatus { kFound, kNotFound, kTempFail };

struct MxHost {
  int preference = 0;
  std::string host;  // lower case, no trailing dot; "" for a null MX (RFC 7505 ".")
  bool operator==(const MxHost&) const = default;
};

template <typename T>
struct DnsResult {
  DnsStatus status = DnsStatus::kNotFound;
  std::vector<T> records;  // when found: never empty
  std::string error;       // when not found or failed: why, for logs and reply texts
  bool found() const { return status == DnsStatus::kFound; }
  bool temp_fail() const { return status == DnsStatus::kTempFail; }
};

struct ResolverOptions {
  std::string conf_file;  // empty: the system's /etc/resolv.conf
  int timeout_seconds = 5;  // per attempt, unless conf_file says otherwise
  int attempts = 2;
};

class Resolver {
 public:
  // Throws ConfigError ("file:line: what") for a conf_file that cannot be read or is wrong.
  explicit Resolver(const ResolverOptions& options = {});
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // A and AAAA give addresses as text, TXT the strings of each record joined,
  // PTR names; names are lower case without the trailing dot.
  DnsResult<std::string> lookup(std::string_view name, DnsType type);
  // MX hosts sorted by preference (equal preferences keep the server's order).
  DnsResult<MxHost> lookup_mx(std::string_view domain);
  // The PTR names of an IPv4 or IPv6 address (not found for text that is no address).
  DnsResult<std::string> lookup_ptr(std::string_view address);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// "1.2.3.4" -> "4.3.2.1", "2001:db8::1" -> the 32 reversed nibbles; "" for text that is no address.
std::string reverse_address_labels(std::string_view address);

}  // namespace postern

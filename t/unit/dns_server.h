// A real DNS server for unit tests: runs t/integration/dns_server.py (UDP on
// 127.0.0.1, answers from a JSON zone) as a child process and writes a
// resolv.conf-style file that points a Resolver (dns_resolver_conf) at it.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <stdexcept>
#include <string>

#include "temp_dir.h"
#include "util/fd.h"

namespace postern::test {

class DnsServer {
 public:
  // zone_json as dns_server.py documents it.
  explicit DnsServer(const std::string& zone_json) {
    std::string zone = dir_.write("zone.json", zone_json);
    // The unit-test binary is BUILD/t/unit-tests; the script is in the source tree above BUILD.
    auto top = std::filesystem::read_symlink("/proc/self/exe").parent_path().parent_path().parent_path();
    std::string script = (top / "t/integration/dns_server.py").string();
    int in[2], out[2];
    if (::pipe(in) != 0 || ::pipe(out) != 0) throw std::runtime_error("pipe");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::close(in[0]), ::close(in[1]), ::close(out[0]), ::close(out[1]);
      ::execlp("python3", "python3", script.c_str(), zone.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    stdin_.reset(in[1]);
    UniqueFd from_child(out[0]);
    std::string port;
    char c;
    while (::read(from_child.get(), &c, 1) == 1 && c != '\n') port += c;
    if (port.empty()) throw std::runtime_error("dns_server.py did not start: " + script);
    conf_ = dir_.write("resolv.conf", "nameserver 127.0.0.1\nport " + port + "\noptions timeout:1 attempts:1\n");
  }
  ~DnsServer() {
    stdin_.reset();  // the server exits when its standard input closes
    int status;
    ::waitpid(pid_, &status, 0);
  }
  DnsServer(const DnsServer&) = delete;
  DnsServer& operator=(const DnsServer&) = delete;

  // The file to give as ResolverOptions::conf_file or dns_resolver_conf.
  const std::string& conf() const { return conf_; }

 private:
  TempDir dir_;
  pid_t pid_ = -1;
  UniqueFd stdin_;
  std::string conf_;
};

}  // namespace postern::test

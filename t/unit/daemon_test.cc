// Unit tests for the child side of the master <-> child contract: argument parsing
// and run_single_server run in a forked child exactly as master starts a daemon
// (fd 3 status channel, fd 4 listener, -n/-t/-s/-c arguments).
#include <catch2/catch.hpp>

#include "temp_dir.h"

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "mail/daemon.h"
#include "util/error.h"
#include "util/file.h"
#include "util/socket.h"

using namespace postern;
using postern::test::TempDir;
using namespace std::chrono_literals;

namespace {

DaemonArgs parse(std::vector<std::string> words) {
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  return parse_daemon_args(static_cast<int>(argv.size()), argv.data());
}

// Starts this test binary again as the echo daemon (see main.cc) with fd 3 =
// status, fd 4 = listener and master's arguments. Every client gets "hello from
// PID as SERVICE\n". A daemon that does not retire in 20 s is killed by SIGALRM,
// so a broken limit fails the test rather than hanging it.
pid_t start_daemon(const TempDir& dir, int status_fd, int listen_fd) {
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  ::alarm(20);
  int status_high = ::fcntl(status_fd, F_DUPFD, 20), listen_high = ::fcntl(listen_fd, F_DUPFD, 20);
  ::dup2(status_high, kStatusFd);
  ::dup2(listen_high, kFirstListenFd);
  std::vector<std::string> words = {"echod", "-n", "echo", "-t", "unix", "-s", "1", "-c", dir.path};
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  ::setenv("POSTERN_UNIT_TEST_DAEMON", "1", 1);
  ::execv("/proc/self/exe", argv.data());
  ::_exit(127);
}

int wait_exit(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string ask(const std::string& socket_path) {
  auto conn = connect_unix(socket_path, 5000ms);
  REQUIRE(conn.ok());
  return read_fd(conn->get());
}

}  // namespace

int echo_daemon_main(int argc, char** argv) {
  return run_single_server(argc, argv, [](UniqueFd client, const DaemonContext& c) {
    std::string reply = "hello from " + std::to_string(::getpid()) + " as " + c.args.service + "\n";
    write_all(client.get(), reply);
  });
}

TEST_CASE("daemon arguments as master passes them", "[daemon]") {
  DaemonArgs a = parse({"smtpd", "-n", "submission", "-t", "inet", "-s", "2", "-c", "/etc/x", "-o", "max_use=5",
                        "-o", "syslog_name=postern/submission", "-v", "extra", "-z"});
  CHECK(a.service == "submission");
  CHECK(a.type == "inet");
  CHECK(a.listen_count == 2);
  CHECK(a.config_dir == "/etc/x");
  CHECK(a.verbose == 1);
  REQUIRE(a.overrides.size() == 2);
  CHECK(a.overrides[1] == std::pair<std::string, std::string>{"syslog_name", "postern/submission"});
  CHECK(a.args == std::vector<std::string>{"extra", "-z"});
  CHECK_THROWS_WITH(parse({"smtpd", "-t", "inet"}), Catch::Contains("missing -n service"));
  CHECK_THROWS_WITH(parse({"smtpd", "-n", "x"}), Catch::Contains("missing -t type"));
  CHECK_THROWS_WITH(parse({"smtpd", "-n", "x", "-t", "unix", "-s", "many"}), Catch::Contains("-s needs"));
  CHECK_THROWS_WITH(parse({"smtpd", "-n", "x", "-t", "unix", "-o", "novalue"}), Catch::Contains("expected name=value"));
  CHECK_THROWS_WITH(parse({"smtpd", "-n"}), Catch::Contains("needs a value"));
}

TEST_CASE("run_single_server serves max_use clients, reports busy/idle, then exits 0", "[daemon]") {
  TempDir dir;
  dir.write("main.cf", "max_use = 2\nmax_idle = 30s\nmaillog_file = " + dir.path + "/log\n");
  std::string sock = dir.path + "/echo";
  auto listener = listen_unix(sock, 0600);
  REQUIRE(listener.ok());
  set_nonblocking(listener->get());
  auto [status_read, status_write] = make_socketpair();
  pid_t child = start_daemon(dir, status_write.get(), listener->get());
  status_write.reset();

  std::string expect = "hello from " + std::to_string(child) + " as echo\n";
  CHECK(ask(sock) == expect);
  CHECK(ask(sock) == expect);
  std::vector<std::string> seen;
  for (int i = 0; i < 4; ++i) {
    auto status = read_message<DaemonStatus>(status_read.get(), 5000ms);
    REQUIRE(status.ok());
    CHECK(status->pid == child);
    seen.push_back(status->status);
  }
  CHECK(seen == std::vector<std::string>{"busy", "idle", "busy", "idle"});
  CHECK(wait_exit(child) == 0);  // retired after max_use clients
}

TEST_CASE("run_single_server retires after max_idle without a client", "[daemon]") {
  TempDir dir;
  dir.write("main.cf", "max_idle = 1s\nmaillog_file = " + dir.path + "/log\n");
  auto listener = listen_unix(dir.path + "/echo", 0600);
  REQUIRE(listener.ok());
  auto [status_read, status_write] = make_socketpair();
  auto start = std::chrono::steady_clock::now();
  pid_t child = start_daemon(dir, status_write.get(), listener->get());
  status_write.reset();
  CHECK(wait_exit(child) == 0);
  auto took = std::chrono::steady_clock::now() - start;
  CHECK(took >= 900ms);
  CHECK(took < 10s);
  CHECK_FALSE(read_message<DaemonStatus>(status_read.get(), 100ms).ok());  // never busy
}

TEST_CASE("a daemon with a bad configuration refuses to start", "[daemon]") {
  TempDir dir;
  dir.write("main.cf", "max_use = lots\nmaillog_file = " + dir.path + "/log\n");
  auto listener = listen_unix(dir.path + "/echo", 0600);
  REQUIRE(listener.ok());
  auto [status_read, status_write] = make_socketpair();
  pid_t child = start_daemon(dir, status_write.get(), listener->get());
  status_write.reset();
  CHECK(wait_exit(child) == 1);
  CHECK_THAT(read_file(dir.path + "/log"), Catch::Contains("fatal: " + dir.path + "/main.cf:1: invalid value for max_use"));
}

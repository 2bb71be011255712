// Unit tests for delivery to a command: the process (input, environment, time
// limit, process group), and what its exit means.
#include <catch2/catch.hpp>

#include "temp_dir.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>

#include "mail/pipe_command.h"
#include "util/error.h"
#include "util/file.h"

using namespace postern;
using postern::test::TempDir;

namespace {

CommandRun shell(std::string command, std::string_view input = "", std::vector<std::string> env = {}) {
  CommandRun run;
  run.command = std::move(command);
  run.environment = std::move(env);
  run.uid = ::geteuid();
  run.gid = ::getegid();
  run.input = input;
  run.time_limit = std::chrono::seconds(10);
  return run;
}

}  // namespace

TEST_CASE("a command gets its input and only the environment given", "[local_command]") {
  TempDir dir;
  std::string out = dir.path + "/out";
  CommandOutcome o = run_command(shell("cat > " + out + "; env | sort >> " + out, "line 1\nline 2\n", {"A=1"}));
  REQUIRE(o.end == CommandOutcome::End::kExited);
  CHECK(o.status == 0);
  std::string text = read_file(out);
  CHECK(text.starts_with("line 1\nline 2\nA=1\n"));
  CHECK(text.find("HOME=") == std::string::npos);
}

TEST_CASE("a command that does not read its input is judged by its exit status", "[local_command]") {
  std::string big(1 << 20, 'x');
  CommandOutcome o = run_command(shell("exit 0", big));
  CHECK(o.end == CommandOutcome::End::kExited);
  CHECK(o.status == 0);
}

TEST_CASE("output is collected up to the limit", "[local_command]") {
  CommandRun run = shell("echo first line; echo second >&2; head -c 100000 /dev/zero | tr '\\0' y; exit 3");
  run.output_limit = 64;
  CommandOutcome o = run_command(run);
  CHECK(o.end == CommandOutcome::End::kExited);
  CHECK(o.status == 3);
  CHECK(o.output.size() == 64);
  CHECK(o.output.starts_with("first line\nsecond\n"));
}

TEST_CASE("the time limit kills the whole process group", "[local_command]") {
  TempDir dir;
  std::string pidfile = dir.path + "/pid";
  CommandRun run = shell("sleep 30 & echo $! > " + pidfile + "; wait");
  run.time_limit = std::chrono::seconds(1);
  auto start = std::chrono::steady_clock::now();
  CommandOutcome o = run_command(run);
  CHECK(o.end == CommandOutcome::End::kTimedOut);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
  pid_t background = std::stoi(read_file(pidfile));
  ::usleep(100000);
  // The sleep in the background went too: gone, or a zombie its new parent has not reaped yet.
  std::string stat;
  try {
    stat = read_file("/proc/" + std::to_string(background) + "/stat");
  } catch (const SystemError&) {
  }
  CHECK((stat.empty() || stat.find(") Z ") != std::string::npos));
}

TEST_CASE("the environment local documents, with export_environment", "[local_command]") {
  CommandContext c;
  c.home = "/home/u";
  c.logname = "u";
  c.shell = "/bin/bash";
  c.sender = "s@example.org";
  c.recipient = "u+x@example.com";
  c.local = "u+x";
  c.domain = "example.com";
  c.extension = "x";
  c.original_recipient = "list@example.com";
  auto env = command_environment(c, {"TZ", "LANG", "MAIL_CONFIG", "FIXED=1"}, {{"TZ", "UTC"}, {"PATH", "/bin"}});
  CHECK(env == std::vector<std::string>{"TZ=UTC", "FIXED=1", "HOME=/home/u", "LOGNAME=u", "USER=u",
                                        "SHELL=/bin/bash", "SENDER=s@example.org", "RECIPIENT=u+x@example.com",
                                        "LOCAL=u+x", "DOMAIN=example.com", "EXTENSION=x",
                                        "ORIGINAL_RECIPIENT=list@example.com"});
  c.extension.clear();
  auto without = command_environment(c, {}, {});
  CHECK(std::find(without.begin(), without.end(), "EXTENSION=") == without.end());
}

TEST_CASE("exit statuses map to delivered, deferred and bounced as in Postfix", "[local_command]") {
  auto status = [](CommandOutcome::End end, int code, std::string output = "") {
    CommandOutcome o;
    o.end = end;
    o.status = code;
    o.output = std::move(output);
    return command_delivery_status("/usr/bin/prog -x", o);
  };
  using End = CommandOutcome::End;
  CHECK(status(End::kExited, 0).ok());
  auto tempfail = status(End::kExited, 75);
  CHECK(tempfail.temporary());
  CHECK(tempfail.dsn == "4.3.0");
  auto nouser = status(End::kExited, 67, "no such user\nreally\n");
  CHECK(nouser.permanent());
  CHECK(nouser.dsn == "5.1.1");
  CHECK(nouser.text == "Command died with status 67: \"/usr/bin/prog -x\". Command output: no such user really");
  auto other = status(End::kExited, 1);
  CHECK(other.permanent());
  CHECK(other.dsn == "5.3.0");
  CHECK(other.text == "Command died with status 1: \"/usr/bin/prog -x\"");
  CHECK(status(End::kSignaled, 9).temporary());
  auto timeout = status(End::kTimedOut, 0);
  CHECK(timeout.temporary());
  CHECK(timeout.text.starts_with("Command time limit exceeded"));
  CHECK(status(End::kNotStarted, 0).temporary());
  CHECK(status(End::kExited, 1, std::string(5000, 'z')).text.size() < 600);
}

TEST_CASE("a command that closes its output first still gets all of its input", "[local_command]") {
  TempDir dir;
  std::string out = dir.path + "/out";
  std::string input(300000, 'm');
  input += "\nend\n";
  CommandOutcome o = run_command(shell("exec >/dev/null 2>&1; sleep 0.2; cat > " + out, input));
  CHECK(o.end == CommandOutcome::End::kExited);
  CHECK(o.status == 0);
  CHECK(read_file(out) == input);
}

// Delivery to a command: the process, its environment and what its end means.
// See pipe_command.h.
#include "mail/pipe_command.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/error.h"
#include "util/fd.h"
#include "util/strings.h"

namespace postern {
namespace {

using Clock = std::chrono::steady_clock;

struct Pipe {
  UniqueFd read, write;
};

Pipe make_pipe() {
  int fds[2];
  check_sys(::pipe2(fds, O_CLOEXEC), "pipe2");
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// In the child, between fork and exec: only async-signal-safe calls.
[[noreturn]] void exec_child(const CommandRun& run, int in, int out, char* const argv[], char* const envp[]) {
  ::setsid();  // a process group of its own, for the kill after the time limit
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::signal(SIGPIPE, SIG_DFL);
  if (::geteuid() == 0) {
    if (::setgroups(1, &run.gid) < 0 || ::setresgid(run.gid, run.gid, run.gid) < 0 ||
        ::setresuid(run.uid, run.uid, run.uid) < 0)
      ::_exit(71);  // EX_OSERR: deferred
  }
  if (::chdir(run.directory.c_str()) < 0 && ::chdir("/") < 0) ::_exit(71);
  if (::dup2(in, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(out, 2) < 0) ::_exit(71);
  ::close_range(3, ~0U, 0);  // nothing of local's (queue file, client socket) reaches the command
  ::execve("/bin/sh", argv, envp);
  static const char kMessage[] = "cannot execute /bin/sh\n";
  (void)!::write(2, kMessage, sizeof kMessage - 1);
  ::_exit(71);
}

// Keeps the first limit bytes of what the command writes and drains the rest.
bool read_output(int fd, std::string& kept, size_t limit) {
  char buf[4096];
  ssize_t n = retry_eintr([&] { return ::read(fd, buf, sizeof buf); });
  if (n <= 0) return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  if (kept.size() < limit) kept.append(buf, std::min(size_t(n), limit - kept.size()));
  return true;
}

// Waits for the child until the deadline; kills its process group after it.
CommandOutcome reap(pid_t pid, Clock::time_point deadline, CommandOutcome outcome) {
  int status = 0;
  for (;;) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) {
      outcome.end = CommandOutcome::End::kNotStarted;
      outcome.error = std::string("waitpid: ") + std::strerror(errno);
      return outcome;
    }
    if (Clock::now() >= deadline) {
      ::kill(-pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      outcome.end = CommandOutcome::End::kTimedOut;
      return outcome;
    }
    ::usleep(10000);
  }
  if (outcome.end == CommandOutcome::End::kTimedOut) return outcome;
  if (WIFSIGNALED(status)) {
    outcome.end = CommandOutcome::End::kSignaled;
    outcome.status = WTERMSIG(status);
  } else {
    outcome.end = CommandOutcome::End::kExited;
    outcome.status = WEXITSTATUS(status);
  }
  return outcome;
}

// Ignores SIGPIPE while we write to a command that may have stopped reading.
class IgnoreSigpipe {
 public:
  IgnoreSigpipe() {
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    ::sigaction(SIGPIPE, &ignore, &saved_);
  }
  ~IgnoreSigpipe() { ::sigaction(SIGPIPE, &saved_, nullptr); }
  IgnoreSigpipe(const IgnoreSigpipe&) = delete;
  IgnoreSigpipe& operator=(const IgnoreSigpipe&) = delete;

 private:
  struct sigaction saved_ {};
};

// Output made fit for one log line: control characters become spaces, runs of
// blanks one space, at most 500 bytes.
std::string one_line(std::string_view output) {
  std::string out;
  for (char c : output) {
    char d = static_cast<unsigned char>(c) < ' ' || c == 0x7f ? ' ' : c;
    if (d == ' ' && (out.empty() || out.back() == ' ')) continue;
    out += d;
    if (out.size() >= 500) break;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

struct SysExit {
  int status;
  const char* dsn;
};

// sysexits(3) codes as Postfix reports them (EX_USAGE 64 ... EX_CONFIG 78).
constexpr SysExit kSysExits[] = {
    {64, "5.3.0"}, {65, "5.6.0"}, {66, "5.3.0"}, {67, "5.1.1"}, {68, "5.1.2"},
    {69, "5.3.0"}, {70, "5.3.0"}, {71, "4.3.0"}, {72, "5.3.0"}, {73, "5.2.0"},
    {74, "5.3.0"}, {75, "4.3.0"}, {76, "5.5.0"}, {77, "5.7.0"}, {78, "5.3.5"},
};

MailboxResult delivery_result(DeliveryStatus status, std::string dsn, std::string text) {
  MailboxResult r;
  r.status = status;
  r.dsn = std::move(dsn);
  r.text = std::move(text);
  return r;
}

}  // namespace

CommandOutcome run_command(const CommandRun& run) {
  CommandOutcome outcome;
  Pipe in = make_pipe();
  Pipe out = make_pipe();
  std::string shell_name = "sh", dash_c = "-c", command = run.command;
  char* argv[] = {shell_name.data(), dash_c.data(), command.data(), nullptr};
  std::vector<std::string> env = run.environment;
  std::vector<char*> envp;
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  IgnoreSigpipe ignore_sigpipe;
  Clock::time_point deadline = Clock::now() + run.time_limit;
  pid_t pid = ::fork();
  if (pid < 0) {
    outcome.error = std::string("fork: ") + std::strerror(errno);
    return outcome;
  }
  if (pid == 0) exec_child(run, in.read.get(), out.write.get(), argv, envp.data());
  in.read.reset();
  out.write.reset();
  ::fcntl(in.write.get(), F_SETFL, O_NONBLOCK);
  ::fcntl(out.read.get(), F_SETFL, O_NONBLOCK);

  std::string_view pending = run.input;
  if (pending.empty()) in.write.reset();
  // Until the command has closed its output and taken all of its input (or
  // stopped reading it): a command may close its output first.
  bool reading = true;
  while (reading || in.write.valid()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) break;
    struct pollfd fds[2];
    int nfds = 0;
    if (reading) fds[nfds++] = {out.read.get(), POLLIN, 0};
    if (in.write.valid()) fds[nfds++] = {in.write.get(), POLLOUT, 0};
    int n = ::poll(fds, nfds, int(std::min<long long>(left, 1000)));
    if (n < 0 && errno != EINTR) break;
    if (n <= 0) continue;
    for (int i = 0; i < nfds; ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == out.read.get()) {
        reading = read_output(out.read.get(), outcome.output, run.output_limit);
        continue;
      }
      ssize_t w = ::write(in.write.get(), pending.data(), std::min<size_t>(pending.size(), 65536));
      if (w > 0) pending.remove_prefix(size_t(w));
      // Done, or the command stopped reading (EPIPE): its exit status decides.
      if (pending.empty() || (w < 0 && errno != EAGAIN && errno != EINTR)) in.write.reset();
    }
  }
  if (reading || in.write.valid()) {  // the time limit passed first
    in.write.reset();
    ::kill(-pid, SIGKILL);
    outcome.end = CommandOutcome::End::kTimedOut;
  }
  return reap(pid, deadline, std::move(outcome));
}

std::vector<std::string> command_environment(const CommandContext& context, const std::vector<std::string>& exported,
                                             const std::map<std::string, std::string>& inherited) {
  std::vector<std::string> env;
  for (const std::string& e : exported) {
    if (e.find('=') != std::string::npos) {
      env.push_back(e);
    } else if (auto it = inherited.find(e); it != inherited.end()) {
      env.push_back(e + "=" + it->second);
    }
  }
  env.push_back("HOME=" + context.home);
  env.push_back("LOGNAME=" + context.logname);
  env.push_back("USER=" + context.logname);
  env.push_back("SHELL=" + context.shell);
  env.push_back("SENDER=" + context.sender);
  env.push_back("RECIPIENT=" + context.recipient);
  env.push_back("LOCAL=" + context.local);
  env.push_back("DOMAIN=" + context.domain);
  if (!context.extension.empty()) env.push_back("EXTENSION=" + context.extension);
  env.push_back("ORIGINAL_RECIPIENT=" + context.original_recipient);
  return env;
}

MailboxResult command_delivery_status(const std::string& command, const CommandOutcome& outcome) {
  std::string quoted = "\"" + one_line(command) + "\"";
  std::string output = one_line(outcome.output);
  std::string with_output = output.empty() ? "" : ". Command output: " + output;
  switch (outcome.end) {
    case CommandOutcome::End::kNotStarted:
      return delivery_result(DeliveryStatus::kTemporary, "4.3.0",
                             "cannot run command " + quoted + ": " + outcome.error);
    case CommandOutcome::End::kTimedOut:
      return delivery_result(DeliveryStatus::kTemporary, "4.3.0",
                             "Command time limit exceeded: " + quoted + with_output);
    case CommandOutcome::End::kSignaled:
      return delivery_result(DeliveryStatus::kTemporary, "4.3.0",
                             format("Command died with signal %d: ", outcome.status) + quoted + with_output);
    case CommandOutcome::End::kExited: break;
  }
  if (outcome.status == 0) return delivery_result(DeliveryStatus::kDelivered, "2.0.0", "delivered to command: " + command);
  std::string dsn = "5.3.0";
  for (const SysExit& e : kSysExits)
    if (e.status == outcome.status) dsn = e.dsn;
  DeliveryStatus status = dsn[0] == '4' ? DeliveryStatus::kTemporary : DeliveryStatus::kPermanent;
  return delivery_result(status, dsn, format("Command died with status %d: ", outcome.status) + quoted + with_output);
}

}  // namespace postern

// sendmail: the Sendmail-compatible way to submit mail, as Postfix's sendmail(1).
//   sendmail [-c dir | -C file] [-t] [-i] [-f sender] [-F full_name] [option...] [recipient...]
//   sendmail -bp            (mailq)
//   sendmail -bi | -I       (newaliases)
//   sendmail -bs            (SMTP on standard input and output)
//   sendmail -q | -qRsite | -qIqueue_id
// Reads a message from standard input and puts it, with its envelope, into the
// maildrop queue as one complete queue file (owner-execute bit and END record,
// fsynced, renamed to its queue ID, the folder fsynced) before it exits 0; the
// pickup service moves it on from there; sendmail wakes it by connecting to
// public/pickup. Until it runs, mailq shows the message in maildrop. On every
// failure nothing is left in maildrop.
//
// Input: up to the end of input, or up to a line with a single "." unless -i
// (or -oi) is given. Every line end (LF or CRLF) is stored as LF, and a last line
// without one gets it (Postfix's sendmail_fix_line_endings = always). Lines at the
// very start that begin with "From " (mbox separators) are dropped. Other bytes,
// NUL included, are stored as they come; cleanup judges the content.
//
// Envelope: the recipients are the arguments, each read as an RFC 5322 address
// list ("a@x, Name <b@y>"), as Sendmail does. With -t the addresses of the To:,
// Cc: and Bcc: headers (of Resent-To:, Resent-Cc: and Resent-Bcc: when there are
// any) are added after them, as Postfix does, and Bcc: and Resent-Bcc: are removed
// from the message. A recipient given twice is stored once. The sender is -f (or
// the obsolete -r); "" or "<>" is the null sender. Without -f it is the login
// name of the real user ID, qualified with @$myorigin. Addresses are checked for
// syntax and kept as given otherwise: one without a domain stays so, and cleanup
// qualifies it with @$myorigin, as Postfix's append_at_myorigin. -F sets the
// sender's full name (else $NAME, else the user's GECOS name), kept in the
// full_name attribute for cleanup to use in a From: header it adds.
//
// Options as Postfix documents them: -B 8BITMIME|7BIT (body_type), -N
// never|success,failure,delay (DSN NOTIFY), -R full|hdrs (DSN RET), -V envid
// (DSN ENVID), -G (a gateway submission: rewrite_context remote), -oi as -i,
// -oA path (the alias database for -bi); -bm is the default mode; -v more logging;
// -XV (VERP) is ignored with a warning; -bh, -bH and -q with a time exit 0; -A,
// -L, -O, -U, -e, -h, -m, -p, -x and other -o options are accepted and ignored.
// -c dir and -C file (a main.cf or its directory) choose the configuration;
// a program run by sendmail gets the same. -bp runs postqueue -p, -bi runs
// postalias over alias_database, -q runs postqueue -f (-qR postqueue -s,
// -qI postqueue -i), -bd and -bl run "postern start", all from command_directory.
// -bs speaks SMTP on standard input and output (HELO/EHLO, MAIL, RCPT, DATA, RSET,
// NOOP, VRFY, QUIT; MAIL FROM sets the sender as -f does) and queues each message
// as above.  -bv (address verification) is not supported yet: sendmail says so
// and exits 69 (EX_UNAVAILABLE); -n exits 64 as in Postfix.
//
// Exit status (sysexits.h): 0 when the message is queued; 64 (EX_USAGE) for a bad
// command line, a malformed argument address, or no recipient at all ("No
// recipient addresses found in message header" with -t); 65 (EX_DATAERR) for a
// message over message_size_limit, a header whose addresses cannot be parsed,
// or an input that cannot be read; 67 (EX_NOUSER) when the user has no login name;
// 75 (EX_TEMPFAIL) when the queue file cannot be written (maildrop missing or not
// writable, disk full): try again later.
//
// Privilege: none.  maildrop is mode 1730, group setgid_group: sendmail writes
// there itself only when it may (root, mail_owner); for everyone else it builds
// the queue file in a private temporary file ($TMPDIR, else /tmp) and runs
// $command_directory/postdrop, the set-gid helper, with it on standard input;
// postdrop's exit status is then sendmail's.  Installed set-uid root it drops
// that at once; should it be installed set-gid it gives the group up when -c,
// -C or POSTERN_CONFIG_DIR names the configuration (other than for root) and
// before it runs any other program.  Addresses never pass through a shell.
#include <grp.h>
#include <pwd.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "mail/config.h"
#include "mail/queue_file.h"
#include "mail/smtp_command.h"
#include "mail/submission.h"
#include "util/cli.h"
#include "util/file.h"
#include "util/log.h"
#include "util/socket.h"
#include "util/strings.h"

namespace postern {
namespace {

enum class Mode { kEnqueue, kMailq, kNewaliases, kFlush, kDaemon, kStandalone, kVerify, kIgnore };

struct CommandLine {
  std::string config_dir;
  bool config_chosen = false;  // by -c, -C or the environment
  Mode mode = Mode::kEnqueue;
  bool extract = false;        // -t
  bool dot_ends_input = true;  // without -i
  std::optional<std::string> sender;
  std::optional<std::string> full_name;
  std::string body_type;
  std::string envid;
  DsnRet ret = DsnRet::kUnspecified;
  uint8_t notify = 0;
  std::string rewrite_context = "local";
  std::optional<std::string> alias_maps;  // -oA
  std::string flush_site;                 // -qR
  std::string flush_id;                   // -qI
  bool queue_time = false;                // -q with a time: a daemon option, nothing to do
  int verbose = 0;
  std::vector<std::string> recipients;
};

void usage() {
  std::fprintf(stderr,
               "usage: sendmail [-c dir | -C file] [-t] [-i] [-f sender] [-F full_name] [option...] [recipient...]\n"
               "       sendmail -bp | -bi | -q\n");
}

uint8_t notify_mask(std::string_view text) {
  uint8_t mask = 0;
  for (const std::string& word : split(text, ",")) {
    std::string w = lowercase(trim(word));
    if (w == "never") mask |= kNotifyNever;
    else if (w == "success") mask |= kNotifySuccess;
    else if (w == "failure") mask |= kNotifyFailure;
    else if (w == "delay") mask |= kNotifyDelay;
    else return 0;
  }
  if ((mask & kNotifyNever) && mask != kNotifyNever) return 0;
  return mask;
}

CommandLine parse(int argc, char** argv) {
  CommandLine cl;
  std::string name = argc > 0 ? basename_of(argv[0]) : "sendmail";
  if (name == "mailq") cl.mode = Mode::kMailq;
  if (name == "newaliases") cl.mode = Mode::kNewaliases;
  opterr = 0;
  // '+': the first argument that is not an option starts the recipients.
  static const char kOptions[] = "+A:B:C:F:GIL:N:O:R:UV:X:b:c:e:f:h:imno:p:r:q:tvx";
  while (optind < argc) {
    std::string_view arg = argv[optind];
    if (arg == "-q") {  // -q takes an optional argument, which getopt cannot express
      cl.mode = Mode::kFlush;
      ++optind;
      continue;
    }
    int c = getopt(argc, argv, kOptions);
    if (c == -1) break;
    switch (c) {
      case 'B':
        if (std::strcmp(optarg, "8BITMIME") == 0 || std::strcmp(optarg, "7BIT") == 0) cl.body_type = optarg;
        else log_fatal_status(EX_USAGE, "-B option needs 8BITMIME or 7BIT");
        break;
      case 'C': {
        std::string path = optarg;
        cl.config_dir = basename_of(path) == "main.cf" ? dirname_of(path) : path;
        cl.config_chosen = true;
        break;
      }
      case 'c':
        cl.config_dir = optarg;
        cl.config_chosen = true;
        break;
      case 'F':
        if (std::strlen(optarg) > 1000) log_fatal_status(EX_USAGE, "-F full name too long");
        cl.full_name = optarg;
        break;
      case 'G': cl.rewrite_context = "remote"; break;
      case 'I': cl.mode = Mode::kNewaliases; break;
      case 'N':
        cl.notify = notify_mask(optarg);
        if (cl.notify == 0) log_warn("bad -N option value -- ignored");
        break;
      case 'R':
        if (iequals(optarg, "full")) cl.ret = DsnRet::kFull;
        else if (iequals(optarg, "hdrs")) cl.ret = DsnRet::kHeaders;
        else log_warn("bad -R option value -- ignored");
        break;
      case 'V': {
        std::string_view v = optarg;
        bool printable = !v.empty();
        for (char ch : v) printable = printable && ch > ' ' && ch < 127;
        if (v.size() > 100) log_warn("too long -V option value -- ignored");
        else if (!printable) log_warn("bad syntax in -V option value -- ignored");
        else cl.envid = v;
        break;
      }
      case 'X':
        if (optarg[0] != 'V') log_fatal_status(EX_USAGE, "unsupported: -X%c", optarg[0]);
        log_warn("-XV (VERP) is not supported -- ignored");
        break;
      case 'b':
        switch (optarg[0]) {
          case 'd':
          case 'l': cl.mode = Mode::kDaemon; break;
          case 'h':
          case 'H': cl.mode = Mode::kIgnore; break;
          case 'i': cl.mode = Mode::kNewaliases; break;
          case 'm': cl.mode = Mode::kEnqueue; break;
          case 'p': cl.mode = Mode::kMailq; break;
          case 's': cl.mode = Mode::kStandalone; break;
          case 'v': cl.mode = Mode::kVerify; break;
          default: log_fatal_status(EX_USAGE, "unsupported: -b%c", optarg[0]);
        }
        break;
      case 'f':
      case 'r': cl.sender = optarg; break;
      case 'i': cl.dot_ends_input = false; break;
      case 'n': log_fatal_status(EX_USAGE, "-n option not supported");
      case 'o':
        if (optarg[0] == 'i') {
          cl.dot_ends_input = false;
        } else if (optarg[0] == 'A') {
          if (optarg[1] == '\0') log_fatal_status(EX_USAGE, "-oA requires pathname");
          cl.alias_maps = optarg + 1;
        } else {
          log_debug("-o%c option ignored", optarg[0]);
        }
        break;
      case 'q':
        if (std::isdigit(static_cast<unsigned char>(optarg[0]))) {
          cl.queue_time = true;
        } else if (optarg[0] == 'R') {
          cl.flush_site = optarg + 1;
          if (cl.flush_site.empty()) log_fatal_status(EX_USAGE, "specify: -qRsitename");
        } else if (optarg[0] == 'I') {
          cl.flush_id = optarg + 1;
          if (cl.flush_id.empty()) log_fatal_status(EX_USAGE, "specify: -qIqueueid");
        } else {
          log_fatal_status(EX_USAGE, "-q%c is not implemented", optarg[0]);
        }
        break;
      case 't': cl.extract = true; break;
      case 'v': log_set_verbose(++cl.verbose); break;
      case '?':
        throw UsageError(std::strchr(kOptions, optopt) ? format("option -%c needs an argument", optopt)
                                                        : format("unknown option -%c", optopt));
      default: log_debug("-%c option ignored", c); break;
    }
  }
  for (int i = optind; i < argc; ++i) cl.recipients.push_back(argv[i]);
  if (cl.config_dir.empty()) {
    const char* env = std::getenv("POSTERN_CONFIG_DIR");
    cl.config_chosen = env && *env;
  }
  if (cl.extract && cl.mode != Mode::kEnqueue) log_fatal_status(EX_USAGE, "-t can be used only in delivery mode");
  if ((!cl.flush_site.empty() || !cl.flush_id.empty()) && cl.mode != Mode::kEnqueue)
    log_fatal_status(EX_USAGE, "-qR and -qI can be used only in delivery mode");
  return cl;
}

// Gives up the set-gid group for good (before running another program, or when
// the user chose the configuration).
void drop_setgid() {
  gid_t gid = getgid();
  if (getegid() != gid && setresgid(gid, gid, gid) < 0)
    log_fatal_status(EX_OSERR, "setresgid: %s", std::strerror(errno));
}

// Replaces this process with a program of command_directory, as Postfix's
// mail_run_replace: no shell, the arguments as they are.
[[noreturn]] void run_replace(const Config& config, const std::vector<std::string>& args) {
  std::string path = config.str("command_directory") + "/" + args[0];
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  drop_setgid();
  std::fflush(nullptr);
  ::execv(path.c_str(), argv.data());
  log_fatal_status(EX_UNAVAILABLE, "unable to execute %s: %s", path.c_str(), std::strerror(errno));
}

// A refusal to queue the message: its exit status and what to say.  Thrown, not
// exited on, so that the queue file writer's destructor removes the file first.
struct Refusal {
  int status;
  std::string message;
};

// The path of the file being written, for the signal handler; empty when none.
char g_temp_path[4096];

extern "C" void on_signal(int) {
  if (g_temp_path[0] != '\0') ::unlink(g_temp_path);
  ::_exit(EX_TEMPFAIL);
}

constexpr int kCleanupSignals[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM};

// Blocks the signals above for the commit, so that a signal cannot remove a file
// that is being renamed into the queue; unblocks them when it goes.
class SignalBlock {
 public:
  SignalBlock() {
    sigemptyset(&set_);
    for (int s : kCleanupSignals) sigaddset(&set_, s);
    sigprocmask(SIG_BLOCK, &set_, nullptr);
  }
  ~SignalBlock() { sigprocmask(SIG_UNBLOCK, &set_, nullptr); }
  SignalBlock(const SignalBlock&) = delete;
  SignalBlock& operator=(const SignalBlock&) = delete;

 private:
  sigset_t set_;
};

struct Envelope {
  std::string sender;
  std::string full_name;
  std::vector<std::string> recipients;  // from the arguments, internal form, without repeats
};

std::string parse_sender(std::string_view text) {
  std::string_view t = trim(text);
  if (t.empty() || t == "<>") return "";
  Result<std::vector<std::string>> list = parse_address_list(t);
  if (!list) log_fatal_status(EX_USAGE, "-f option specified malformed sender: %s", list.error().c_str());
  if (list->empty()) return "";
  if (list->size() > 1) log_fatal_status(EX_USAGE, "-f option specified more than one sender: %s", std::string(t).c_str());
  Result<std::string> a = submission_address(list->front());
  if (!a) log_fatal_status(EX_USAGE, "-f option specified malformed sender: %s", a.error().c_str());
  return *a;
}

// The GECOS name, as Postfix's fullname(): up to the first comma, '&' standing
// for the login name with its first letter capitalised.
std::string gecos_name(const struct passwd* pw) {
  if (!pw->pw_gecos) return "";
  std::string gecos = pw->pw_gecos;
  gecos = gecos.substr(0, gecos.find(','));
  std::string out;
  for (char c : gecos) {
    if (c != '&') {
      out += c;
      continue;
    }
    std::string login = pw->pw_name;
    if (!login.empty()) login[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(login[0])));
    out += login;
  }
  return out.size() > 1000 ? "" : out;
}

Envelope make_envelope(const CommandLine& cl, const Config& config) {
  Envelope env;
  struct passwd* pw = getpwuid(getuid());
  if (cl.sender) {
    env.sender = parse_sender(*cl.sender);
  } else {
    if (!pw) log_fatal_status(EX_NOUSER, "no login name found for user ID %lu", static_cast<unsigned long>(getuid()));
    std::string origin = config.str("myorigin");
    env.sender = origin.empty() ? pw->pw_name : std::string(pw->pw_name) + "@" + origin;
  }
  if (cl.full_name) {
    env.full_name = *cl.full_name;
  } else if (const char* name = std::getenv("NAME"); name && *name && std::strlen(name) <= 1000) {
    env.full_name = name;
  } else if (pw) {
    env.full_name = gecos_name(pw);
  }
  std::set<std::string> seen;
  for (const std::string& arg : cl.recipients) {
    Result<std::vector<std::string>> list = parse_address_list(arg);
    if (!list) log_fatal_status(EX_USAGE, "bad recipient address: %s", list.error().c_str());
    if (list->empty()) log_fatal_status(EX_USAGE, "bad recipient address: \"%s\" holds no address", arg.c_str());
    for (const std::string& external : *list) {
      Result<std::string> a = submission_address(external);
      if (!a) log_fatal_status(EX_USAGE, "bad recipient address: %s", a.error().c_str());
      if (seen.insert(*a).second) env.recipients.push_back(*a);
    }
  }
  return env;
}

// Where the queue file goes: straight into maildrop when this process may write
// there (root, mail_owner), else to a private temporary file that postdrop, the
// set-gid helper, checks and copies into maildrop.
struct DropTarget {
  std::string maildrop;
  bool direct = true;
};

// Runs postdrop with the finished queue file as its standard input; when it fails
// (it has said why) its exit status becomes sendmail's.
void run_postdrop(const Config& config, UniqueFd file) {
  std::string path = config.str("command_directory") + "/postdrop";
  std::string dir = config.dir();
  pid_t pid = check_sys(::fork(), "fork");
  if (pid == 0) {
    if (::dup2(file.get(), STDIN_FILENO) < 0) ::_exit(EX_OSERR);
    ::execl(path.c_str(), "postdrop", "-c", dir.c_str(), static_cast<char*>(nullptr));
    std::fprintf(stderr, "sendmail: fatal: unable to execute %s: %s\n", path.c_str(), std::strerror(errno));
    ::_exit(EX_UNAVAILABLE);
  }
  int status = 0;
  check_sys(retry_eintr([&] { return ::waitpid(pid, &status, 0); }), "waitpid");
  // Thrown, so that the writer's destructor removes the temporary file.
  if (!WIFEXITED(status)) throw Refusal{EX_TEMPFAIL, "postdrop was killed"};
  if (WEXITSTATUS(status) != 0)
    throw Refusal{WEXITSTATUS(status), format("postdrop failed with status %d", WEXITSTATUS(status))};
}

// Writes the queue file and returns its queue ID (empty when postdrop queued it).
// Throws Refusal, or SystemError when the system fails; either way the file is gone.
// The lines of one message, without line ends; nothing at its end.  max_line bounds
// a line without LF (a longer one is a failure).
using LineSource = std::function<Result<std::optional<std::string>>(size_t max_line)>;

std::string submit(const CommandLine& cl, const Config& config, const Envelope& env, const DropTarget& target,
                   uint64_t size_limit, const LineSource& source) {
  const char* tmpdir = std::getenv("TMPDIR");
  // 0644: pickup, running as mail_owner, must be able to read what a user wrote.
  QueueFileWriter writer(target.direct ? target.maildrop : tmpdir && *tmpdir ? tmpdir : "/tmp",
                         target.direct ? 0644 : 0600);
  if (writer.temp_path().size() < sizeof g_temp_path)
    std::memcpy(g_temp_path, writer.temp_path().c_str(), writer.temp_path().size() + 1);
  writer.set_sender(env.sender);
  if (!cl.envid.empty()) writer.set_envid(cl.envid);
  writer.set_ret(cl.ret);
  writer.add_attribute("rewrite_context", cl.rewrite_context);
  if (!env.full_name.empty()) writer.add_attribute("full_name", env.full_name);
  if (!cl.body_type.empty()) writer.add_attribute(attr::kBodyType, cl.body_type);
  std::set<std::string> seen(env.recipients.begin(), env.recipients.end());
  for (const std::string& r : env.recipients) writer.add_recipient(r, {}, cl.notify);

  const std::string too_big =
      format("message file too big (message_size_limit = %llu bytes)", static_cast<unsigned long long>(size_limit));
  uint64_t size = 0;
  auto next = [&]() -> std::optional<std::string> {
    Result<std::optional<std::string>> line = source(size_limit > 0 ? size_limit : UINT32_MAX);
    if (!line) throw Refusal{EX_DATAERR, line.error() == "line too long" ? too_big : line.error()};
    if (*line) {
      size += (*line)->size() + 1;
      if (size_limit > 0 && size > size_limit) throw Refusal{EX_DATAERR, too_big};
    }
    return std::move(*line);
  };
  auto put = [&](std::string_view text) {
    writer.write_content(text);
    writer.write_content("\n");
  };

  // The header is held until it ends: -t takes recipients from it and removes Bcc:.
  std::vector<HeaderField> header;
  std::optional<std::string> line;
  while ((line = next())) {
    if (is_header_start(*line)) {
      header.push_back(HeaderField{{*line}});
    } else if (!header.empty() && !line->empty() && (line->front() == ' ' || line->front() == '\t')) {
      header.back().lines.push_back(*line);
    } else {
      break;  // the empty line, or a first body line where the header ended without one
    }
  }
  std::vector<std::string> extracted;
  if (cl.extract) {
    Result<std::vector<std::string>> found = header_recipients(header);
    if (!found) throw Refusal{EX_DATAERR, "unable to extract recipients: " + found.error()};
    for (std::string& r : *found)
      if (seen.insert(r).second) extracted.push_back(std::move(r));
  }
  for (const HeaderField& field : header) {
    if (cl.extract && is_bcc_field(field.name())) continue;
    for (const std::string& l : field.lines) put(l);
  }
  if (line) put(*line);
  while ((line = next())) put(*line);

  // Recipients from the header follow the content, where cleanup puts those it extracts.
  for (const std::string& r : extracted) writer.add_recipient(r, {}, cl.notify);
  if (env.recipients.empty() && extracted.empty())
    throw Refusal{EX_USAGE, "No recipient addresses found in message header"};

  if (!target.direct) {
    run_postdrop(config, writer.finish_unnamed());
    return {};
  }
  SignalBlock block;
  writer.commit();
  // Queued: from here a signal must neither remove it nor report a failure.
  g_temp_path[0] = '\0';
  for (int s : kCleanupSignals) ::signal(s, SIG_IGN);
  return writer.queue_id();
}

// Queues one message read from source, and wakes pickup.  Returns the queue ID
// (empty when postdrop queued it).  Throws Refusal, SystemError, std::length_error.
std::string queue_message(const CommandLine& cl, const Config& config, const Envelope& env, const LineSource& source) {
  std::string spool = config.str("queue_directory");
  if (spool.empty()) throw ConfigError(config.main_cf_path(), 0, "queue_directory is empty");
  int64_t limit = config.bytes("message_size_limit");
  // postdrop only when maildrop is there but closed to us; a missing maildrop
  // is reported as the failure to write it (exit 75), whoever we are.
  bool writable = ::access((spool + "/maildrop").c_str(), W_OK | X_OK) == 0 || errno != EACCES;
  DropTarget target{spool + "/maildrop", writable};
  std::string id = submit(cl, config, env, target, limit > 0 ? static_cast<uint64_t>(limit) : 0, source);
  if (target.direct) {
    // Wake pickup (a connect is the trigger); if it is not running, master's wakeup will start it.
    (void)connect_unix(spool + "/public/pickup", std::chrono::milliseconds(100));
    log_debug("%s: queued in maildrop, from=<%s>", id.c_str(), env.sender.c_str());
  }
  return id;
}

int enqueue(const CommandLine& cl, const Config& config) {
  if (cl.recipients.empty() && !cl.extract)
    log_fatal_status(EX_USAGE, "Recipient addresses must be specified on the command line or via the -t option");
  Envelope env = make_envelope(cl, config);
  std::string who = format("%s(%lu)", env.sender.c_str(), static_cast<unsigned long>(getuid()));
  for (int s : kCleanupSignals) ::signal(s, on_signal);
  try {
    MessageReader in(STDIN_FILENO, cl.dot_ends_input);
    queue_message(cl, config, env, [&](size_t max_line) { return in.next_line(max_line); });
    return 0;
  } catch (const Refusal& r) {
    log_fatal_status(r.status, "%s: %s", who.c_str(), r.message.c_str());
  } catch (const SystemError& e) {
    log_fatal_status(EX_TEMPFAIL, "%s: error writing queue file: %s", who.c_str(), e.what());
  } catch (const std::length_error& e) {
    log_fatal_status(EX_DATAERR, "%s: %s", who.c_str(), e.what());
  }
}

// The address of "<address> [parameters]" in MAIL FROM / RCPT TO, in the form the
// queue file keeps ("" for <>); parameters are ignored.
Result<std::string> smtp_path(std::string_view text) {
  text = trim(text);
  size_t close = text.find('>');
  if (text.empty() || text[0] != '<' || close == std::string_view::npos) return fail("expected <address>");
  std::string_view inner = text.substr(1, close - 1);
  if (inner.empty()) return std::string();
  return submission_address(inner);
}

// sendmail -bs: an SMTP dialogue on standard input and output, as a program that
// submits mail through a pipe expects.  Each message is queued as sendmail
// queues one (maildrop, postdrop for ordinary users), so the submitting user is
// known; MAIL FROM sets the envelope sender as -f does.  Commands: HELO, EHLO,
// MAIL, RCPT, DATA, RSET, NOOP, VRFY (252), QUIT; lines end in CRLF or LF.  Ends
// with 0 at QUIT or the end of input.
int standalone_smtp(const CommandLine& cl, const Config& config) {
  auto say = [](const std::string& reply) {
    std::fputs(reply.c_str(), stdout);
    std::fflush(stdout);
  };
  std::string host = config.str("myhostname");
  say(smtp_reply(220, "", host + " ESMTP " + config.str("mail_name")));
  MessageReader in(STDIN_FILENO, false);
  Envelope defaults = make_envelope(cl, config);
  std::optional<Envelope> env;
  bool greeted = false;
  for (int s : kCleanupSignals) ::signal(s, on_signal);
  for (;;) {
    Result<std::optional<std::string>> line = in.next_line(4096);
    if (!line) {
      say(smtp_reply(500, "5.5.0", "Error: line too long"));
      continue;
    }
    if (!*line) return 0;
    std::string text = **line;
    if (!text.empty() && text.back() == '\r') text.pop_back();
    SmtpCommand cmd = parse_smtp_command(text);
    std::string_view rest;
    if (cmd.verb == "HELO" || cmd.verb == "EHLO") {
      greeted = true;
      env.reset();
      if (cmd.verb == "HELO") say(smtp_reply(250, "", host));
      else say(smtp_reply(250, "", std::vector<std::string>{host, "8BITMIME", "ENHANCEDSTATUSCODES"}));
    } else if (cmd.verb == "MAIL") {
      if (!greeted) say(smtp_reply(503, "5.5.1", "Error: send HELO/EHLO first"));
      else if (env) say(smtp_reply(503, "5.5.1", "Error: nested MAIL command"));
      else if (!strip_path_keyword(cmd.args, "FROM:", rest)) say(smtp_reply(501, "5.5.4", "Syntax: MAIL FROM:<address>"));
      else {
        Result<std::string> sender = smtp_path(rest);
        if (!sender) {
          say(smtp_reply(501, "5.1.7", "Bad sender address syntax"));
        } else {
          env = defaults;
          env->sender = *sender;
          env->recipients.clear();
          say(smtp_reply(250, "2.1.0", "Ok"));
        }
      }
    } else if (cmd.verb == "RCPT") {
      std::string_view path;
      if (!env) say(smtp_reply(503, "5.5.1", "Error: need MAIL command"));
      else if (!strip_path_keyword(cmd.args, "TO:", rest)) say(smtp_reply(501, "5.5.4", "Syntax: RCPT TO:<address>"));
      else if (Result<std::string> rcpt = smtp_path(rest); !rcpt || rcpt->empty())
        say(smtp_reply(501, "5.1.3", "Bad recipient address syntax"));
      else {
        env->recipients.push_back(*rcpt);
        say(smtp_reply(250, "2.1.5", "Ok"));
      }
    } else if (cmd.verb == "DATA") {
      if (!env) {
        say(smtp_reply(503, "5.5.1", "Error: need MAIL command"));
        continue;
      }
      if (env->recipients.empty()) {
        say(smtp_reply(554, "5.5.1", "Error: no valid recipients"));
        continue;
      }
      say(smtp_reply(354, "", "End data with <CR><LF>.<CR><LF>"));
      bool ended = false;        // the "." line was read
      bool input_ended = false;  // the input ended before it
      LineSource data = [&](size_t max_line) -> Result<std::optional<std::string>> {
        Result<std::optional<std::string>> l = in.next_line(max_line);
        if (l && !*l) {  // the end of input before ".": the message is not complete
          input_ended = true;
          return fail("unexpected end of input in DATA");
        }
        if (!l) return l;  // too long
        std::string& t = **l;
        if (!t.empty() && t.back() == '\r') t.pop_back();
        if (t == ".") {
          ended = true;
          return std::optional<std::string>();
        }
        if (!t.empty() && t[0] == '.') t.erase(0, 1);
        return l;
      };
      std::string reply;
      try {
        std::string id = queue_message(cl, config, *env, data);
        reply = smtp_reply(250, "2.0.0", id.empty() ? "Ok: queued" : "Ok: queued as " + id);
      } catch (const Refusal& r) {
        reply = smtp_reply(r.status == EX_TEMPFAIL ? 451 : 554, r.status == EX_TEMPFAIL ? "4.3.0" : "5.3.4",
                           "Error: " + r.message);
      } catch (const SystemError& e) {
        reply = smtp_reply(451, "4.3.0", std::string("Error: queue file write error: ") + e.what());
      } catch (const std::length_error& e) {
        reply = smtp_reply(552, "5.3.4", std::string("Error: ") + e.what());
      }
      // A refused message may have stopped short of its end: skip to the "." line.
      while (!ended && !input_ended) (void)data(4096);
      env.reset();
      if (input_ended) return 0;  // a message cut short is not queued (submit refused it)
      say(reply);
    } else if (cmd.verb == "RSET") {
      env.reset();
      say(smtp_reply(250, "2.0.0", "Ok"));
    } else if (cmd.verb == "NOOP") {
      say(smtp_reply(250, "2.0.0", "Ok"));
    } else if (cmd.verb == "VRFY") {
      say(smtp_reply(252, "2.0.0", "Send mail to find out"));
    } else if (cmd.verb == "QUIT") {
      say(smtp_reply(221, "2.0.0", "Bye"));
      return 0;
    } else {
      say(smtp_reply(502, "5.5.2", "Error: command not recognized"));
    }
  }
}

int run(const CommandLine& cl) {
  Config config = Config::load(Config::choose_dir(cl.config_dir));
  std::vector<std::string> args;
  auto with_common = [&](std::string program) {
    args = {std::move(program), "-c", config.dir()};
    for (int i = 0; i < cl.verbose; ++i) args.push_back("-v");
  };
  bool has_recipients = !cl.recipients.empty();
  switch (cl.mode) {
    case Mode::kEnqueue:
      if (cl.queue_time) return 0;
      if (!cl.flush_site.empty() || !cl.flush_id.empty()) {
        if (has_recipients) throw UsageError("flushing a site or a message takes no recipient");
        with_common("postqueue");
        args.push_back(cl.flush_site.empty() ? "-i" : "-s");
        args.push_back(cl.flush_site.empty() ? cl.flush_id : cl.flush_site);
        run_replace(config, args);
      }
      return enqueue(cl, config);
    case Mode::kMailq:
      if (has_recipients) throw UsageError("display queue mode requires no recipient");
      with_common("postqueue");
      args.push_back("-p");
      run_replace(config, args);
    case Mode::kFlush:
      if (has_recipients) throw UsageError("flush queue mode requires no recipient");
      with_common("postqueue");
      args.push_back("-f");
      run_replace(config, args);
    case Mode::kNewaliases: {
      if (has_recipients) throw UsageError("alias initialization mode requires no recipient");
      std::vector<std::string> maps = split_list(cl.alias_maps ? *cl.alias_maps : config.str("alias_database"));
      if (maps.empty()) return 0;
      with_common("postalias");
      args.insert(args.end(), maps.begin(), maps.end());
      run_replace(config, args);
    }
    case Mode::kDaemon:
      if (has_recipients) throw UsageError("daemon mode requires no recipient");
      with_common("postern");
      args.push_back("start");
      run_replace(config, args);
    case Mode::kStandalone:
      if (has_recipients) throw UsageError("stand-alone SMTP mode requires no recipient");
      return standalone_smtp(cl, config);
    case Mode::kVerify:
      log_fatal_status(EX_UNAVAILABLE, "-bv (address verification) is not supported yet");
    case Mode::kIgnore: return 0;
  }
  return EX_SOFTWARE;
}

// Standard descriptors that are closed would be taken by the first files opened
// (the queue file as standard output); Postfix's sendmail guards the same way.
void open_standard_fds() {
  for (int fd = 0; fd < 3; ++fd) {
    struct stat st;
    if (::fstat(fd, &st) < 0 && ::open("/dev/null", O_RDWR) != fd) std::_Exit(EX_OSERR);
  }
}

}  // namespace
}  // namespace postern

int main(int argc, char** argv) {
  using namespace postern;
  open_standard_fds();
  ::umask(022);
  log_init("sendmail", LogSink::kCommandLine);
  if (geteuid() == 0 && getuid() != 0) {
    log_warn("sendmail must not be installed set-uid root; dropping the privilege");
    uid_t uid = getuid();
    if (setresuid(uid, uid, uid) < 0) log_fatal_status(EX_OSERR, "setresuid: %s", std::strerror(errno));
  }
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGXFSZ, SIG_IGN);  // a file size limit makes write() fail (EX_TEMPFAIL) rather than kill us
  return run_command_line([&] { return parse(argc, argv); }, usage,
                          [](const CommandLine& cl) {
                            if (cl.config_chosen && getuid() != 0) drop_setgid();
                            return run(cl);
                          });
}

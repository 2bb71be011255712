// postcat: shows the contents of queue files, as Postfix's postcat(1).
//   postcat [-c dir] [-e] [-h] [-b] file...
//   postcat [-c dir] [-e] [-h] [-b] -q queue_id...
// Prints each queue file named on the command line, or with -q the message of
// each queue ID, looked up in incoming, active, deferred, hold, maildrop and
// corrupt. By default it shows everything, in Postfix's form:
//   *** ENVELOPE RECORDS queue/ID ***   message_size, arrival_time, sender, DSN
//                                       envelope_id and ret, named_attribute: name=value,
//                                       and per recipient "recipient: address" or
//                                       "done_recipient: address" once delivered,
//                                       with original_recipient and notify when given
//   *** MESSAGE CONTENTS queue/ID ***   the message as stored
//   *** HEADER EXTRACTED queue/ID ***   recipients cleanup took from the header
//   *** MESSAGE FILE END queue/ID ***
// -e, -h and -b select the envelope, the header and the body; with any of them
// only those parts are shown, and the "***" lines only when -e is among them.
// A file that is incomplete, damaged or not a queue file is reported with its name
// and postcat exits non-zero after showing the others.
#include <sysexits.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "mail/queue_file.h"
#include "mail/queue_tools.h"
#include "util/cli.h"
#include "util/file.h"
#include "util/log.h"
#include "util/strings.h"

namespace postern {
namespace {

struct CommandLine {
  std::string config_dir;
  bool by_id = false;
  bool envelope = false, header = false, body = false;
  std::vector<std::string> names;
};

void usage() { std::fprintf(stderr, "usage: postcat [-c dir] [-e] [-h] [-b] [-q] file|queue_id...\n"); }

CommandLine parse(int argc, char** argv) {
  CommandLine cl;
  opterr = 0;
  int c;
  while ((c = getopt(argc, argv, "bc:ehqv")) != -1) {
    switch (c) {
      case 'b': cl.body = true; break;
      case 'c': cl.config_dir = optarg; break;
      case 'e': cl.envelope = true; break;
      case 'h': cl.header = true; break;
      case 'q': cl.by_id = true; break;
      case 'v': log_set_verbose(log_verbose() + 1); break;
      default:
        throw UsageError(optopt == 'c' ? "option -c needs an argument" : format("unknown option -%c", optopt));
    }
  }
  if (!cl.envelope && !cl.header && !cl.body) cl.envelope = cl.header = cl.body = true;
  for (int i = optind; i < argc; ++i) cl.names.emplace_back(argv[i]);
  if (cl.names.empty()) throw UsageError(cl.by_id ? "no queue ID given" : "no file given");
  if (cl.by_id)
    for (const std::string& id : cl.names) checked_queue_id(id);
  return cl;
}

void put(std::string_view text) { std::fwrite(text.data(), 1, text.size(), stdout); }

void show_recipient(const QueueRecipient& r) {
  std::printf("%s: %s\n", r.done ? "done_recipient" : "recipient", r.address.c_str());
  if (!r.orcpt.empty()) std::printf("original_recipient: %s\n", r.orcpt.c_str());
  if (r.notify) {
    std::vector<std::string> words;
    if (r.notify & kNotifyNever) words.push_back("NEVER");
    if (r.notify & kNotifySuccess) words.push_back("SUCCESS");
    if (r.notify & kNotifyFailure) words.push_back("FAILURE");
    if (r.notify & kNotifyDelay) words.push_back("DELAY");
    std::printf("notify: %s\n", join(words, ",").c_str());
  }
}

void show(const QueueFile& qf, const std::string& label, const CommandLine& cl) {
  const QueueEnvelope& env = qf.envelope();
  if (cl.envelope) {
    std::printf("*** ENVELOPE RECORDS %s ***\n", label.c_str());
    std::printf("message_size: %llu\n", static_cast<unsigned long long>(env.content_size));
    std::printf("arrival_time: %s\n", long_time(env.arrival_seconds).c_str());
    std::printf("sender: %s\n", env.sender.c_str());
    if (!env.envid.empty()) std::printf("envelope_id: %s\n", env.envid.c_str());
    if (env.ret != DsnRet::kUnspecified) std::printf("ret: %s\n", env.ret == DsnRet::kFull ? "FULL" : "HDRS");
    for (const auto& [name, value] : env.attributes)
      std::printf("named_attribute: %s=%s\n", name.c_str(), value.c_str());
    for (const QueueRecipient& r : env.recipients)
      if (r.offset < env.content_offset) show_recipient(r);
  }
  if (cl.header || cl.body) {
    if (cl.envelope) std::printf("*** MESSAGE CONTENTS %s ***\n", label.c_str());
    if (cl.header && cl.body) {
      put(qf.content());
    } else if (cl.header) {
      std::string header = qf.header();
      if (header == "\n") header.clear();
      else if (header.ends_with("\n\n")) header.pop_back();  // the empty line belongs to neither part
      put(header);
    } else {
      put(qf.body());
    }
  }
  if (cl.envelope) {
    std::printf("*** HEADER EXTRACTED %s ***\n", label.c_str());
    for (const QueueRecipient& r : env.recipients)
      if (r.offset > env.content_offset) show_recipient(r);
    std::printf("*** MESSAGE FILE END %s ***\n", label.c_str());
  }
}

int run(const CommandLine& cl) {
  std::vector<QueueName> search = {QueueName::kIncoming, QueueName::kActive, QueueName::kDeferred,
                                   QueueName::kHold,     QueueName::kMaildrop, QueueName::kCorrupt};
  std::string spool = cl.by_id ? spool_of(cl.config_dir) : std::string();
  int status = 0;
  for (const std::string& name : cl.names) {
    std::string path = name, label = name;
    if (cl.by_id) {
      std::optional<MessageLocation> where = find_message(spool, name, search);
      if (!where) {
        log_error("%s: no such message in any queue", name.c_str());
        status = EX_NOINPUT;
        continue;
      }
      path = where->path;
      label = std::string(queue_folder(where->queue)) + "/" + name;
    }
    QueueFileStatus why;
    Result<QueueFile> qf = QueueFile::open(path, 0, &why);
    if (!qf) {
      log_error("%s (%s)", qf.error().c_str(), status_name(why));
      status = why == QueueFileStatus::kMissing ? EX_NOINPUT : why == QueueFileStatus::kIoError ? EX_IOERR
                                                                                                 : EX_DATAERR;
      continue;
    }
    show(*qf, label, cl);
    std::fflush(stdout);
  }
  return status;
}

}  // namespace
}  // namespace postern

int main(int argc, char** argv) {
  using namespace postern;
  log_init("postcat", LogSink::kCommandLine);
  return run_command_line([&] { return parse(argc, argv); }, usage, run);
}

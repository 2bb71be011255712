// Expansion of one recipient into deliveries, and the deliveries themselves;
// see agent.h and the manual page in main.cc.
#include "agent.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <optional>

#include "mail/address_keys.h"
#include "mail/cleanup_client.h"
#include "mail/pipe_command.h"
#include "util/error.h"
#include "util/fd.h"
#include "util/file.h"
#include "util/log.h"
#include "util/strings.h"

extern char** environ;

namespace postern {
namespace {

constexpr int kMaxDepth = 10;
constexpr Timeout kCleanupTimeout = std::chrono::seconds(300);

// alias_maps, opened once per process: hash: tables follow a rebuild by themselves,
// so one delivery request after another needs no reopening. A table that cannot
// be opened throws (the request is deferred) and is tried again next time.
TableList* process_aliases(const Config& config) {
  static std::optional<TableList> aliases;
  static bool opened = false;
  if (!opened) {
    std::string maps = config.str("alias_maps");
    if (!maps.empty()) aliases.emplace(maps);
    opened = true;
  }
  return aliases ? &*aliases : nullptr;
}

// allow_mail_to_commands / allow_mail_to_files: a list of alias, forward, include.
std::set<std::string> target_sources(const Config& config, const char* name) {
  std::set<std::string> out;
  for (const auto& w : config.list(name)) {
    std::string word = lowercase(w);
    if (word != "alias" && word != "forward" && word != "include") {
      const Config::Entry* e = config.entry(name);
      throw ConfigError(e ? e->file : config.main_cf_path(), e ? e->line : 0,
                        std::string(name) + ": unknown value \"" + w + "\" (alias, forward, include)");
    }
    out.insert(word);
  }
  return out;
}

// The file a table reads, whose owner gives alias deliveries their rights; empty
// for tables that are not files (mysql:, inline:, static:).
std::string table_file(const std::string& spec) {
  size_t colon = spec.find(':');
  if (colon == std::string::npos) return "";
  std::string type = lowercase(spec.substr(0, colon));
  std::string name = spec.substr(colon + 1);
  if (type == "hash" || type == "btree") return name + ".db";
  if (type == "texthash" || type == "regexp") return name;
  return "";
}

std::map<std::string, std::string> process_environment() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view entry(*e);
    size_t eq = entry.find('=');
    if (eq != std::string_view::npos) env.emplace(entry.substr(0, eq), entry.substr(eq + 1));
  }
  return env;
}

// A file of targets (.forward, :include:), read with the caller's effective IDs.
struct TargetFile {
  int err = 0;  // of open, fstat or read
  struct stat st {};
  std::string text;
};

TargetFile read_target_file(const std::string& path) {
  TargetFile f;
  UniqueFd fd(retry_eintr([&] { return ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC); }));
  if (!fd.valid() || ::fstat(fd.get(), &f.st) < 0) {
    f.err = errno;
    return f;
  }
  if (!S_ISREG(f.st.st_mode)) {
    f.err = EINVAL;
    return f;
  }
  try {
    f.text = read_fd(fd.get());
  } catch (const SystemError& e) {
    f.err = e.error();
  }
  return f;
}

}  // namespace

Agent::Agent(const Config& config, const DeliveryRequest& request, const QueueFile& file)
    : request_(request), aliases_(process_aliases(config)) {
  for (const auto& d : config.list("mydestination")) mydestination_.insert(lowercase(d));
  delimiters_ = config.str("recipient_delimiter");
  myorigin_ = config.str("myorigin");
  home_mailbox_ = config.str("home_mailbox");
  mailbox_command_ = config.str("mailbox_command");
  spool_dir_ = config.str("mail_spool_directory");
  forward_path_ = config.str("forward_path");
  queue_directory_ = config.str("queue_directory");
  default_privs_ = config.str("default_privs");
  allow_commands_ = target_sources(config, "allow_mail_to_commands");
  allow_files_ = target_sources(config, "allow_mail_to_files");
  export_environment_ = config.list("export_environment");
  owner_request_special_ = config.boolean("owner_request_special");
  command_time_limit_ = config.seconds("command_time_limit");
  int64_t limit = config.bytes("mailbox_size_limit");
  size_limit_ = limit > 0 ? uint64_t(limit) : 0;
  message_ = file.content();
}

Outcome Agent::deliver(const DeliveryRecipient& rcpt) {
  original_ = rcpt.address;
  seen_aliases_.clear();
  Level top;
  top.address = rcpt.address;
  top.sender = request_.sender;
  std::string local, domain;
  if (!split_local(rcpt.address, local, domain))
    return defer("4.3.5", "mail for " + domain + " is not local: the queue manager routed it here by mistake");
  return resolve(rcpt.address, top);
}

// Splits "local@domain"; false when the domain is not ours.
bool Agent::split_local(const std::string& address, std::string& local, std::string& domain) const {
  auto at = address.rfind('@');
  local = at == std::string::npos ? address : address.substr(0, at);
  domain = at == std::string::npos ? "" : lowercase(address.substr(at + 1));
  return domain.empty() || mydestination_.count(domain) > 0;
}

// The local part without its extension: the user name.
std::string Agent::user_part(const std::string& local) const {
  if (delimiters_.empty()) return local;
  auto pos = local.find_first_of(delimiters_);
  return pos != std::string::npos && pos > 0 ? local.substr(0, pos) : local;
}

Outcome Agent::resolve(const std::string& address, const Level& level) {
  std::string local, domain;
  if (!split_local(address, local, domain)) return forward(address, level);
  // An address without a domain is qualified as Postfix does, with $myorigin.
  std::string qualified = local + "@" + (domain.empty() ? myorigin_ : domain);
  if (has_delivered_to(message_, qualified))
    return logged(qualified, bounce("5.4.6", "mail forwarding loop for " + qualified));
  if (level.depth > kMaxDepth) return logged(qualified, bounce("5.4.6", "alias expansion too deep for " + address));
  std::string key = lowercase(local);
  // An alias inside its own expansion means the user of that name.
  if (aliases_ && !seen_aliases_.count(key)) {
    seen_aliases_.insert(key);
    bool found = false;
    Outcome o = expand_alias(key, qualified, level, found);
    seen_aliases_.erase(key);
    if (found) return o;
  }
  return to_user(local, domain, level, true);
}

// Looks key up as Postfix does (with, then without the extension), every table
// for one key before the next key, so the table that answers is known: its
// file's owner gives the rights of the commands and files it names.
Outcome Agent::expand_alias(const std::string& key, const std::string& qualified, const Level& level, bool& found) {
  found = false;
  std::optional<size_t> table;
  std::string name, value;  // the alias that matched (without the extension, maybe) and its targets
  for (const std::string& k : address_keys(key, {delimiters_, true, false})) {
    for (size_t i = 0; i < aliases_->tables().size() && !table; ++i) {
      LookupResult r = aliases_->tables()[i]->lookup(k);
      if (r.is_temp_fail()) {
        found = true;
        return logged(qualified, defer("4.3.0", "alias lookup of " + key + " failed: " + r.error));
      }
      if (r.is_found()) {
        table = i;
        name = k;
        value = r.value;
      }
    }
    if (table) break;
  }
  if (!table) return {};
  found = true;
  auto targets = parse_targets(value, false);
  if (!targets) return logged(qualified, defer("4.3.5", "alias " + name + ": " + targets.error()));
  if (targets->empty()) return logged(qualified, bounce("5.1.1", "alias " + name + " has no targets"));
  Level next;
  next.address = qualified;
  next.sender = level.sender;
  next.source = Source::kAlias;
  next.depth = level.depth + 1;
  if (owner_request_special_ && !name.starts_with("owner-")) {
    LookupResult owner = aliases_->lookup("owner-" + name);
    if (owner.is_temp_fail())
      return logged(qualified, defer("4.3.0", "alias lookup of owner-" + name + " failed: " + owner.error));
    if (owner.is_found()) next.sender = "owner-" + name + "@" + myorigin_;
  }
  AccountLookup rights = alias_rights(*table);
  if (!rights.account) return logged(qualified, defer("4.3.5", rights.error));
  next.rights = *rights.account;
  Outcome all;
  for (const LocalTarget& t : *targets) all = worse(all, dispatch(t, next));
  return all;
}

Outcome Agent::dispatch(const LocalTarget& target, const Level& level) {
  switch (target.kind) {
    case TargetKind::kAddress: return resolve(target.value, level);
    case TargetKind::kMailbox: {
      std::string local, domain;
      split_local(target.value, local, domain);
      return to_user(local, domain, level, false);
    }
    case TargetKind::kCommand:
      if (!allowed(allow_commands_, level.source))
        return logged(level.address, bounce("5.7.1", "mail to command is restricted"));
      return to_command(target.value, level);
    case TargetKind::kFile:
      if (!allowed(allow_files_, level.source))
        return logged(level.address, bounce("5.7.1", "mail to file is restricted"));
      return to_file(target.value, level);
    case TargetKind::kInclude: return expand_include(target.value, level);
  }
  return defer("4.3.0", "unknown target");
}

bool Agent::allowed(const std::set<std::string>& where, Source source) const {
  switch (source) {
    case Source::kAlias: return where.count("alias") > 0;
    case Source::kForward: return where.count("forward") > 0;
    case Source::kInclude: return where.count("include") > 0;
    case Source::kRecipient: return false;
  }
  return false;
}

Outcome Agent::to_user(const std::string& local, const std::string& domain, const Level& level, bool use_forward) {
  std::string qualified = local + "@" + (domain.empty() ? myorigin_ : domain);
  std::string user = lowercase(user_part(local));
  AccountLookup found = account_by_name(user);
  if (!found.error.empty()) return logged(qualified, defer("4.3.0", found.error));
  if (!found.account) return logged(qualified, bounce("5.1.1", "user unknown"));
  const Account& account = *found.account;
  if (::geteuid() != 0 && account.uid != ::geteuid())
    return logged(qualified, defer("4.3.0", "cannot deliver as another user (" + account.name +
                                                "): local does not run as root"));
  if (use_forward) {
    bool forwarded = false;
    Outcome o = expand_forward(account, local, qualified, level, forwarded);
    if (forwarded) return o;
  }
  return to_mailbox(account, qualified, level);
}

// The first usable file of forward_path, read as the user: owned by the user or
// root, not writable by group or others (anything else is ignored and logged).
Outcome Agent::expand_forward(const Account& account, const std::string& local, const std::string& qualified,
                              const Level& level, bool& found) {
  found = false;
  std::string user = user_part(local);
  std::string extension = user.size() < local.size() ? local.substr(user.size() + 1) : "";
  std::map<std::string, std::string> attributes = {
      {"home", account.home},
      {"user", account.name},
      {"shell", account.shell},
      {"local", local},
      {"domain", qualified.substr(qualified.rfind('@') + 1)},
      {"recipient", qualified},
      {"extension", extension},
      {"recipient_delimiter", extension.empty() ? "" : local.substr(user.size(), 1)},
  };
  for (const std::string& path : forward_files(forward_path_, attributes)) {
    TargetFile file;
    {
      EffectiveIds as_user(account);
      file = read_target_file(path);
    }
    if (file.err == ENOENT) continue;
    if (file.err != 0) {
      log_warn("%s: cannot read %s: %s; ignored", request_.queue_id.c_str(), path.c_str(), std::strerror(file.err));
      continue;
    }
    if (file.st.st_uid != account.uid && file.st.st_uid != 0) {
      log_warn("%s: %s is owned by uid %ld, not by %s or root; ignored", request_.queue_id.c_str(), path.c_str(),
               long(file.st.st_uid), account.name.c_str());
      continue;
    }
    if (file.st.st_mode & (S_IWGRP | S_IWOTH)) {
      log_warn("%s: %s is writable by group or others; ignored", request_.queue_id.c_str(), path.c_str());
      continue;
    }
    auto targets = parse_targets(file.text, true);
    if (!targets) {
      found = true;
      return logged(qualified, defer("4.3.5", path + ": " + targets.error()));
    }
    if (targets->empty()) continue;  // an empty .forward is no forwarding
    found = true;
    Level next;
    next.address = qualified;
    next.sender = level.sender;
    next.source = Source::kForward;
    AccountLookup rights = user_rights(account);
    if (!rights.account) return logged(qualified, defer("4.3.5", rights.error));
    next.rights = *rights.account;
    next.depth = level.depth + 1;
    Outcome all;
    for (const LocalTarget& t : *targets) {
      std::string t_local, t_domain;
      bool self = t.kind == TargetKind::kAddress && split_local(t.value, t_local, t_domain) &&
                  lowercase(user_part(t_local)) == account.name;
      all = worse(all, self ? to_mailbox(account, qualified, level) : dispatch(t, next));
    }
    return all;
  }
  return {};
}

// The targets of an :include: file, read with the rights of the level that named
// it, delivered with the rights of the file's owner (default_privs for root).
Outcome Agent::expand_include(const std::string& path, const Level& level) {
  if (level.depth > kMaxDepth)
    return logged(level.address, bounce("5.4.6", "alias expansion too deep at :include:" + path));
  TargetFile file;
  {
    EffectiveIds as_owner(level.rights);
    file = read_target_file(path);
  }
  if (file.err == ENOENT || file.err == EACCES || file.err == EINVAL)
    return logged(level.address, bounce("5.3.0", "cannot open include file " + path + ": " +
                                                     (file.err == EINVAL ? "not a regular file"
                                                                         : std::strerror(file.err))));
  if (file.err != 0)
    return logged(level.address, defer("4.3.0", "cannot read include file " + path + ": " + std::strerror(file.err)));
  if (file.st.st_mode & (S_IWGRP | S_IWOTH))
    return logged(level.address, defer("4.3.5", "include file " + path + " is writable by group or others"));
  AccountLookup owner = file.st.st_uid == 0 ? default_rights() : account_by_uid(file.st.st_uid);
  if (!owner.account)
    return logged(level.address,
                  defer("4.3.5", owner.error.empty() ? format("include file %s: owner uid %ld unknown", path.c_str(),
                                                              long(file.st.st_uid))
                                                     : owner.error));
  auto targets = parse_targets(file.text, true);
  if (!targets) return logged(level.address, defer("4.3.5", path + ": " + targets.error()));
  Level next = level;
  next.source = Source::kInclude;
  next.rights = *owner.account;
  next.depth = level.depth + 1;
  Outcome all;
  for (const LocalTarget& t : *targets) all = worse(all, dispatch(t, next));
  return all;
}

AccountLookup Agent::default_rights() {
  AccountLookup found = account_by_name(default_privs_);
  if (!found.account && found.error.empty()) found.error = "default_privs user " + default_privs_ + " is unknown";
  return found;
}

AccountLookup Agent::user_rights(const Account& account) {
  return account.uid == 0 ? default_rights() : AccountLookup{account, {}};
}

AccountLookup Agent::alias_rights(size_t table) {
  std::string file = table_file(aliases_->tables()[table]->spec());
  struct stat st;
  if (file.empty() || ::stat(file.c_str(), &st) < 0 || st.st_uid == 0) return default_rights();
  AccountLookup owner = account_by_uid(st.st_uid);
  if (!owner.account && owner.error.empty()) return default_rights();  // a uid without a name
  return owner;
}

std::string Agent::prefix_headers(const std::string& address, const std::string& sender) const {
  return "Delivered-To: " + address + "\nReturn-Path: <" + sender + ">\n";
}

Outcome Agent::to_mailbox(const Account& account, const std::string& qualified, const Level& level) {
  std::string key = "mailbox " + account.name;
  if (delivered_.count(key)) return {};
  if (!mailbox_command_.empty()) {  // the user's rights; root's mail runs as default_privs
    Level box = level;
    box.address = qualified;
    AccountLookup rights = user_rights(account);
    if (!rights.account) return logged(qualified, defer("4.3.5", rights.error));
    box.rights = *rights.account;
    return to_command(mailbox_command_, box);
  }
  DeliveryContent content{level.sender, prefix_headers(qualified, level.sender), message_};
  bool maildir = !home_mailbox_.empty() && home_mailbox_.back() == '/';
  bool in_spool = home_mailbox_.empty();
  std::string target = in_spool ? spool_dir_ + "/" + account.name : account.home + "/" + home_mailbox_;
  // A spool mailbox is made (or checked) as root for the user: in a spool the
  // user cannot write to (Debian's /var/mail, root:mail 2775) the user could not
  // create it, and in any spool a link or another owner's file is refused before
  // the user's delivery opens anything.  The delivery keeps the spool's group
  // when the spool is writable only by it, for the dot-lock.
  std::function<MailboxResult()> prepare;
  std::vector<gid_t> extra_groups;
  struct stat spool;
  if (in_spool && ::geteuid() == 0 && account.uid != 0) {
    prepare = [&] { return prepare_spool_mailbox(target, account.uid, account.gid); };
    if (::stat(spool_dir_.c_str(), &spool) == 0 && !(spool.st_mode & S_IWOTH) && (spool.st_mode & S_IWGRP))
      extra_groups.push_back(spool.st_gid);
  }
  Outcome o = maildir ? in_process_as(account, [&]() -> MailboxResult {
    MaildirOptions options;
    options.size_limit = size_limit_;
    options.queue_id = request_.queue_id;
    options.recipient = original_ + "\n" + qualified;
    return deliver_to_maildir(target, content, options);
  })
                      : in_child_as(account, extra_groups, prepare, [&]() -> MailboxResult {
    MboxOptions options;
    options.size_limit = size_limit_;
    return deliver_to_mbox(target, content, options);
  });
  if (o.status == kDeliveryOk) {
    o.needs_sync = !maildir;
    delivered_.insert(key);
  }
  return logged(qualified, o);
}

Outcome Agent::to_file(const std::string& path, const Level& level) {
  std::string key = "file " + path;
  if (delivered_.count(key)) return {};
  DeliveryContent content{level.sender, prefix_headers(level.address, level.sender), message_};
  Outcome o = in_child_as(level.rights, {}, nullptr, [&]() -> MailboxResult {
    if (path.back() == '/') return deliver_to_maildir(path, content);
    return deliver_to_mbox(path, content);
  });
  if (o.status == kDeliveryOk) {
    o.needs_sync = true;
    o.text = "delivered to file: " + path;
    delivered_.insert(key);
  }
  return logged(level.address, o);
}

Outcome Agent::to_command(const std::string& command, const Level& level) {
  std::string key = format("command %ld %s", long(level.rights.uid), command.c_str());
  if (delivered_.count(key)) return {};
  static const std::map<std::string, std::string> inherited = process_environment();
  std::string local, domain;
  split_local(level.address, local, domain);
  std::string user = user_part(local);
  CommandContext context;
  context.home = level.rights.home;
  context.logname = level.rights.name;
  context.shell = level.rights.shell;
  context.sender = level.sender;
  context.recipient = level.address;
  context.local = local;
  context.domain = domain;
  context.extension = user.size() < local.size() ? local.substr(user.size() + 1) : "";
  context.original_recipient = original_;
  std::string input = mbox_from_line(level.sender, ::time(nullptr)) + prefix_headers(level.address, level.sender) +
                      message_;
  CommandRun run;
  run.command = command;
  run.environment = command_environment(context, export_environment_, inherited);
  run.uid = level.rights.uid;
  run.gid = level.rights.gid;
  run.directory = level.rights.home.empty() ? "/" : level.rights.home;
  run.input = input;
  run.time_limit = std::chrono::seconds(command_time_limit_);
  Outcome o = outcome_of(command_delivery_status(command, run_command(run)));
  if (o.status == kDeliveryOk) {
    o.needs_sync = true;
    delivered_.insert(key);
  }
  return logged(level.address, o);
}

// A remote target: the message goes back to cleanup as a new queue file for that
// address, with Delivered-To: for this level (so that it is recognised should it
// come back), the level's sender and the original arrival time.
Outcome Agent::forward(const std::string& address, const Level& level) {
  std::string key = "forward " + lowercase(address) + " from " + level.sender;
  if (delivered_.count(key)) return {};
  auto client = CleanupClient::connect(queue_directory_, kCleanupTimeout);
  if (!client) return logged(address, defer("4.3.0", "cannot forward: cleanup: " + client.error()));
  CleanupBegin begin;
  begin.origin = "local";
  begin.sender = level.sender;
  begin.rewrite_context = "local";
  begin.arrival_seconds = request_.arrival_seconds;
  CleanupRecipient rcpt;
  rcpt.address = address;
  Result<void> sent = client->begin(begin);
  if (sent) sent = client->add_recipient(rcpt);
  if (sent) sent = client->write_content("Delivered-To: " + level.address + "\n");
  if (sent) sent = client->write_content(message_);
  if (!sent) return logged(address, defer("4.3.0", "cannot forward: cleanup: " + sent.error()));
  auto reply = client->finish();
  if (!reply) return logged(address, defer("4.3.0", "cannot forward: cleanup: " + reply.error()));
  if (reply->status != "ok") {
    Outcome o = reply->status == "perm" ? bounce("5.3.0", reply->reason) : defer("4.3.0", reply->reason);
    return logged(address, o);
  }
  Outcome o;
  o.text = "forwarded as " + reply->queue_id;
  o.needs_sync = true;  // a repeat would queue a second copy
  delivered_.insert(key);
  return logged(address, o);
}

Outcome Agent::logged(const std::string& address, Outcome o) {
  log_info("%s: to=<%s>, orig_to=<%s>, relay=local, status=%s (%s %s)", request_.queue_id.c_str(), address.c_str(),
           original_.c_str(),
           o.status == kDeliveryOk ? "sent" : o.status == kDeliveryBounce ? "bounced" : "deferred", o.dsn.c_str(),
           o.text.c_str());
  return o;
}

}  // namespace postern

// local's work for one delivery request: each recipient is expanded through
// alias_maps, :include: files and ~/.forward, and every target it ends in is
// delivered (a mailbox, a file, a command) with the rights Postfix gives it.
// See main.cc for the rules an administrator sees.
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "delivery.h"
#include "mail/config.h"
#include "mail/delivery_protocol.h"
#include "mail/local_targets.h"
#include "mail/queue_file.h"
#include "mail/table.h"

namespace postern {

class Agent {
 public:
  // Throws when the configuration is unusable (an alias table that cannot be opened).
  Agent(const Config& config, const DeliveryRequest& request, const QueueFile& file);

  Outcome deliver(const DeliveryRecipient& rcpt);

 private:
  // Where a target came from: what allow_mail_to_commands/files speak of.
  enum class Source { kRecipient, kAlias, kForward, kInclude };

  // One level of an expansion: what the targets found there are delivered as.
  struct Level {
    std::string address;  // the recipient at this level, qualified: Delivered-To, RECIPIENT
    std::string sender;   // the envelope sender (owner-ALIAS after such an alias)
    Source source = Source::kRecipient;
    Account rights;       // for files and commands
    int depth = 0;
  };

  bool split_local(const std::string& address, std::string& local, std::string& domain) const;
  std::string user_part(const std::string& local) const;
  Outcome resolve(const std::string& address, const Level& level);
  Outcome expand_alias(const std::string& key, const std::string& qualified, const Level& level, bool& found);
  Outcome dispatch(const LocalTarget& target, const Level& level);
  Outcome to_user(const std::string& local, const std::string& domain, const Level& level, bool use_forward);
  Outcome expand_forward(const Account& account, const std::string& local, const std::string& qualified,
                         const Level& level, bool& found);
  Outcome expand_include(const std::string& path, const Level& level);
  Outcome to_mailbox(const Account& account, const std::string& qualified, const Level& level);
  Outcome to_file(const std::string& path, const Level& level);
  Outcome to_command(const std::string& command, const Level& level);
  Outcome forward(const std::string& address, const Level& level);
  Outcome logged(const std::string& address, Outcome o);

  AccountLookup alias_rights(size_t table);
  // The user's own, or default_privs for root: the rights of root's commands and files.
  AccountLookup user_rights(const Account& account);
  AccountLookup default_rights();
  bool allowed(const std::set<std::string>& where, Source source) const;
  std::string prefix_headers(const std::string& address, const std::string& sender) const;

  const DeliveryRequest& request_;
  TableList* aliases_;
  std::set<std::string> mydestination_;
  std::string delimiters_;
  std::string myorigin_;
  std::string home_mailbox_;
  std::string mailbox_command_;
  std::string spool_dir_;
  std::string forward_path_;
  std::string queue_directory_;
  std::string default_privs_;
  std::set<std::string> allow_commands_, allow_files_;
  std::vector<std::string> export_environment_;
  bool owner_request_special_ = true;
  int64_t command_time_limit_ = 1000;
  uint64_t size_limit_ = 0;
  std::string message_;

  // What this request has delivered (a mailbox, file, command or forwarding): a
  // target that two recipients or two aliases lead to gets one copy, as with
  // Postfix's duplicate filter.
  std::set<std::string> delivered_;

  // Per recipient.
  std::string original_;
  std::set<std::string> seen_aliases_;  // the aliases being expanded, outermost first
};

}  // namespace postern

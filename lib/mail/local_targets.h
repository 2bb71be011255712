// What local(8) reads before it delivers: the targets of an alias value, a
// ~/.forward file or an :include: file (aliases(5) syntax), and the forward_path
// search list with its per-recipient $name expansions, and the Delivered-To:
// loop test.
//
// A target list is separated by commas, white space and (in files) newlines; a
// line of a file that begins with '#' is a comment.  "double quotes" keep a
// target whole, with \" and \\ inside; an unquoted "|command" runs to the next
// comma so that "|/usr/bin/procmail -a x" works as Sendmail and Postfix users
// write it.  Each target is one of:
//   |command        delivered by /bin/sh -c command
//   /file, /dir/    appended to an mbox file; a trailing '/' means a Maildir
//   :include:/path  the targets listed in that file (an absolute path)
//   \user           the user's own mailbox: no alias, no .forward
//   anything else   an address, looked up again (or forwarded when remote)
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace postern {

enum class TargetKind { kAddress, kMailbox, kCommand, kFile, kInclude };

struct LocalTarget {
  TargetKind kind = TargetKind::kAddress;
  std::string value;  // the address, user, command (without '|'), file or include path
};

// The pieces of a list, unquoted; a quote that is never closed is an error.
Result<std::vector<std::string>> split_targets(std::string_view text, bool comment_lines);

// One piece classified; an empty command or file name, or an :include: path that
// is not absolute, is an error that names the piece.
Result<LocalTarget> classify_target(std::string_view piece);

// split_targets and classify_target together: the first bad piece fails it all.
Result<std::vector<LocalTarget>> parse_targets(std::string_view text, bool comment_lines);

// Expands one forward_path element with the recipient's attributes (home, user,
// local, domain, extension, recipient, recipient_delimiter, shell): $name and
// ${name}, ${name?text} (text when name is not empty) and ${name:text} (text when
// it is empty).  A plain reference to an attribute that is empty or unknown
// makes the element useless, as in Postfix: the result is then empty.
std::string expand_forward_element(std::string_view element, const std::map<std::string, std::string>& attributes);

// The forward_path value (a comma or white-space separated list) expanded: the
// files to try in order, without the skipped elements.
std::vector<std::string> forward_files(std::string_view forward_path,
                                       const std::map<std::string, std::string>& attributes);

// Whether the message header (up to the first empty line) has a
// "Delivered-To: address" line, compared without regard to case: mail that
// comes back to an address it was delivered to is a forwarding loop.
bool has_delivered_to(std::string_view message, std::string_view address);

}  // namespace postern

// Local submission (sendmail(1)): what turns a command line and standard input
// into a message with an envelope, kept apart from the program so that other
// submission paths (a future postdrop, cleanup's header extraction) can share it.
//
//   - RFC 5322 address lists, as they appear in To:/Cc:/Bcc: and, for
//     compatibility with Sendmail, in recipient arguments ("a@x, B <b@y>").
//   - The message input: lines of standard input with line ends made LF, leading
//     "From " lines dropped, and the archaic "." terminator.
//   - Header fields: recognising them, unfolding, and which carry recipients.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace postern {

// The addr-specs of an RFC 5322 address list, in external form ("\"a b\"@x"),
// in order.  Display names, comments and group names are dropped; an empty
// group ("undisclosed-recipients:;") gives nothing; a source route inside < >
// is dropped.  Unbalanced quotes, comments or brackets and a mailbox that is
// more than one addr-spec ("a b@x") are failures.  Only the syntax of the list
// is checked here; each address still goes through submission_address().
Result<std::vector<std::string>> parse_address_list(std::string_view text);

// An address as the queue file keeps it: the internal form of parse_mailbox()
// (local part unquoted, domain lower case), "local@domain", or "local" alone for
// an address without a domain, which cleanup qualifies later with @$myorigin
// (append_at_myorigin in Postfix).  UTF-8 is allowed.
Result<std::string> submission_address(std::string_view external);

// Reads a message from a file descriptor one line at a time, as Postfix's
// sendmail does with sendmail_fix_line_endings = always: every line end (LF,
// CRLF, any run of CRs before LF) becomes LF, and a last line without one gets
// it.  Lines at the very start that begin with "From " (after any '>') are the
// mbox separators of other mailers and are dropped.  When dot_ends_input, a line
// that is "." alone ends the message and the rest of the input is not read (sendmail
// without -i).  Other bytes, NUL included, are kept as they are.
class MessageReader {
 public:
  MessageReader(int fd, bool dot_ends_input) : fd_(fd), dot_ends_input_(dot_ends_input) {}
  // The next line without its line end, or nothing at the end of the message.
  // max_line bounds the memory a line without LF may take: a longer one is a
  // failure, which the caller reports as a message too large.  Throws
  // SystemError when read() fails.
  Result<std::optional<std::string>> next_line(size_t max_line);

 private:
  bool fill();  // false at end of input
  int fd_;
  bool dot_ends_input_;
  bool at_start_ = true;
  bool eof_ = false;
  bool done_ = false;
  std::string buffer_;
  size_t pos_ = 0;
};

// True when line starts a header field: a name of printable ASCII other than ':'
// (white space before the colon allowed, as in RFC 822), then ':'.
bool is_header_start(std::string_view line);
// The field name of a header line ("To" for "To: x"), white space trimmed.
std::string_view header_name(std::string_view line);

// One header field: its lines (the first and any continuation lines, without line ends).
struct HeaderField {
  std::vector<std::string> lines;
  std::string_view name() const { return header_name(lines.front()); }
  // The value after the colon, continuation lines joined (unfolded).
  std::string value() const;
};

// The recipients of a message's header for sendmail -t: the addresses of To:,
// Cc: and Bcc:, or, when the header has any Resent-To:, Resent-Cc: or Resent-Bcc:,
// of those alone (the message is being resent; RFC 5322 §3.6.6).  Fails on the
// first list that cannot be parsed, naming the field.
Result<std::vector<std::string>> header_recipients(const std::vector<HeaderField>& header);
// Bcc: and Resent-Bcc:, the fields sendmail -t removes so that the other recipients
// do not see them.
bool is_bcc_field(std::string_view name);

}  // namespace postern

// The message text of SMTP DATA and BDAT as it arrives, turned into the queue's
// form (lines ending in LF), apart from the daemon so that every byte sequence can
// be tested alone.
//
// DATA (RFC 5321 §4.1.1.4, §4.5.2): a line that begins with '.' loses that dot;
// the data ends with a line that is exactly "." ended by CRLF whose previous line
// also ended with CRLF (or that comes first).  Nothing else ends it: LF.LF,
// CRLF.LF, LF.CRLF, CR.CRLF, CRLF.CR are message content, so a client (or a
// relay in front of it) cannot smuggle a second message with commands after a
// fake end (the CVE-2023-51764 class).  A bare LF (one without CR before it)
// ends a line in the content; with BareNewline::kReject it stops the data with
// an error instead, as Postfix 3.9's smtpd_forbid_bare_newline = reject.  A bare
// CR is kept as content.  Lines of any length pass in pieces; none is buffered
// whole.
//
// BDAT (RFC 3030) carries exact byte counts and no dot-stuffing; CRLF becomes LF
// (also when a chunk ends between the CR and the LF) and everything else is kept.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace postern {

enum class BareNewline { kAccept, kReject };

class DataDecoder {
 public:
  using Output = std::function<void(std::string_view)>;
  DataDecoder(BareNewline bare_newline, Output out);

  // Consumes input up to and including the end of the data; returns how many
  // bytes it took (the rest belongs to the next command).  Stops early after an error.
  size_t feed(std::string_view input);
  bool done() const { return done_; }
  bool bare_newline_seen() const { return bare_newline_seen_; }
  // With kReject, set at the first bare LF; nothing after it was passed on.
  bool rejected() const { return rejected_; }

 private:
  void emit_line_start(std::string_view text);
  void flush_partial();

  BareNewline policy_;
  Output out_;
  std::string line_;        // the unfinished line (its start not yet passed on unless mid_line_)
  bool mid_line_ = false;   // part of this line was passed on already
  bool prev_crlf_ = true;   // the last line ended with CRLF (the DATA command itself did)
  bool done_ = false;
  bool rejected_ = false;
  bool bare_newline_seen_ = false;
};

// BDAT chunks: CRLF to LF across chunk boundaries.
class ChunkDecoder {
 public:
  using Output = std::function<void(std::string_view)>;
  explicit ChunkDecoder(Output out) : out_(std::move(out)) {}
  void feed(std::string_view input);
  void finish();  // the last chunk was read: a held CR is content

 private:
  Output out_;
  bool held_cr_ = false;
};

}  // namespace postern

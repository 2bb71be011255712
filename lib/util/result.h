// Result<T>: a value or the reason it could not be had, for failures that are
// expected (a malformed request, a peer that went away, a bad address) and so are
// returned rather than thrown.  The caller decides what the failure means: a 4xx,
// a 5xx, a deferral or a log line.  Asking an error for its value is a bug and
// aborts the process.
//
//   Result<Address> parse(...);           return fail("missing '>'");
//   Result<void> send(...);               return {};   // success
#pragma once

#include <string>
#include <utility>
#include <variant>

#include "util/log.h"

namespace postern {

// The error half of a Result; a distinct type so that Result<std::string> is unambiguous.
struct Failure {
  std::string message;
};

inline Failure fail(std::string message) { return Failure{std::move(message)}; }

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}
  Result(Failure failure) : state_(std::in_place_index<1>, std::move(failure)) {}

  bool ok() const noexcept { return state_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { return std::get<0>(checked()); }
  const T& value() const& { return std::get<0>(checked()); }
  T&& value() && { return std::get<0>(std::move(checked())); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  // The reason; empty when the result holds a value.
  const std::string& error() const noexcept {
    static const std::string kNone;
    return ok() ? kNone : std::get<1>(state_).message;
  }
  // Passes the failure on to a Result of another type.
  Failure failure() const { return Failure{error()}; }

 private:
  std::variant<T, Failure>& checked() {
    if (!ok()) log_panic("value() of a failed result: %s", error().c_str());
    return state_;
  }
  const std::variant<T, Failure>& checked() const {
    if (!ok()) log_panic("value() of a failed result: %s", error().c_str());
    return state_;
  }

  std::variant<T, Failure> state_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Failure failure) : failed_(true), message_(std::move(failure.message)) {}

  bool ok() const noexcept { return !failed_; }
  explicit operator bool() const noexcept { return ok(); }
  const std::string& error() const noexcept { return message_; }
  Failure failure() const { return Failure{message_}; }

 private:
  bool failed_ = false;
  std::string message_;
};

}  // namespace postern

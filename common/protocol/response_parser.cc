#include "common/protocol/response_parser.h"

#include <charconv>
#include <cstring>

#include "common/protocol/request.h"

namespace rend::proto {
namespace {

// Whole-token unsigned decimal: digits only (memcached never sends a sign or spaces in a number).
template <typename T>
bool parse_number(std::string_view token, T& out) {
  if (token.empty()) return false;
  const char* end = token.data() + token.size();
  auto [ptr, ec] = std::from_chars(token.data(), end, out);
  return ec == std::errc() && ptr == end;
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// Splits off the next single-space separated token. Empty tokens (double spaces) are malformed.
bool next_token(std::string_view& rest, std::string_view& token) {
  if (rest.empty()) return false;
  const size_t space = rest.find(' ');
  token = rest.substr(0, space);
  rest = space == std::string_view::npos ? std::string_view() : rest.substr(space + 1);
  return !token.empty();
}

bool valid_key(std::string_view key) {
  if (key.empty() || key.size() > kMaxKeyLength) return false;
  for (char c : key) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return false;
  }
  return true;
}

// "<keyword>" alone, or "<keyword> <message>"; `message` is what follows the space.
bool keyword_with_message(std::string_view line, std::string_view keyword, std::string_view& message) {
  if (line.size() < keyword.size() || line.substr(0, keyword.size()) != keyword) return false;
  if (line.size() == keyword.size()) {
    message = {};
    return true;
  }
  if (line[keyword.size()] != ' ') return false;
  message = line.substr(keyword.size() + 1);
  return true;
}

bool can_start_reply(char c) {
  switch (c) {
    case 'V':  // VALUE, VERSION
    case 'E':  // END, EXISTS, ERROR
    case 'S':  // STORED, STAT, SERVER_ERROR
    case 'N':  // NOT_STORED, NOT_FOUND
    case 'D':  // DELETED
    case 'T':  // TOUCHED
    case 'O':  // OK
    case 'C':  // CLIENT_ERROR
      return true;
    default: return c >= '0' && c <= '9';
  }
}

ResponseParse parse_value(std::string_view line, std::span<const char> input, size_t line_end, size_t max_value,
                          TextReply& out, size_t& consumed) {
  std::string_view rest = line.substr(6);  // after "VALUE "
  std::string_view key, flags, bytes, cas;
  if (!next_token(rest, key) || !next_token(rest, flags) || !next_token(rest, bytes)) {
    return ResponseParse::kBad;
  }
  const bool has_cas = !rest.empty();
  if (has_cas && (!next_token(rest, cas) || !rest.empty())) return ResponseParse::kBad;
  TextReply r;
  r.kind = TextReplyKind::kValue;
  size_t length = 0;
  if (!valid_key(key) || !parse_number(flags, r.flags) || !parse_number(bytes, length) || length > max_value ||
      (has_cas && !parse_number(cas, r.cas))) {
    return ResponseParse::kBad;
  }
  const size_t data_at = line_end + 2;
  if (input.size() - data_at < length + 2) return ResponseParse::kNeedMore;
  if (input[data_at + length] != '\r' || input[data_at + length + 1] != '\n') return ResponseParse::kBad;
  r.key = key;
  r.has_cas = has_cas;
  r.data = std::string_view(input.data() + data_at, length);
  out = r;
  consumed = data_at + length + 2;
  return ResponseParse::kOk;
}

}  // namespace

std::string_view text_reply_name(TextReplyKind kind) {
  switch (kind) {
    case TextReplyKind::kValue: return "VALUE";
    case TextReplyKind::kEnd: return "END";
    case TextReplyKind::kStored: return "STORED";
    case TextReplyKind::kNotStored: return "NOT_STORED";
    case TextReplyKind::kExists: return "EXISTS";
    case TextReplyKind::kNotFound: return "NOT_FOUND";
    case TextReplyKind::kDeleted: return "DELETED";
    case TextReplyKind::kTouched: return "TOUCHED";
    case TextReplyKind::kOk: return "OK";
    case TextReplyKind::kNumber: return "<number>";
    case TextReplyKind::kVersion: return "VERSION";
    case TextReplyKind::kStat: return "STAT";
    case TextReplyKind::kError: return "ERROR";
    case TextReplyKind::kClientError: return "CLIENT_ERROR";
    case TextReplyKind::kServerError: return "SERVER_ERROR";
  }
  return "?";
}

ResponseParse parse_text_response(std::span<const char> input, size_t max_value, TextReply& out, size_t& consumed) {
  if (input.empty()) return ResponseParse::kNeedMore;
  if (!can_start_reply(input[0])) return ResponseParse::kBad;
  const size_t scan = input.size() < kMaxReplyLine ? input.size() : kMaxReplyLine;
  const void* nl = std::memchr(input.data(), '\n', scan);
  if (nl == nullptr) return scan == kMaxReplyLine ? ResponseParse::kBad : ResponseParse::kNeedMore;
  const size_t newline = static_cast<size_t>(static_cast<const char*>(nl) - input.data());
  if (newline == 0 || input[newline - 1] != '\r') return ResponseParse::kBad;
  const size_t line_end = newline - 1;
  const std::string_view line(input.data(), line_end);

  if (line.size() > 6 && line.substr(0, 6) == "VALUE ") {
    return parse_value(line, input, line_end, max_value, out, consumed);
  }

  TextReply r;
  std::string_view message;
  if (line == "END") {
    r.kind = TextReplyKind::kEnd;
  } else if (line == "STORED") {
    r.kind = TextReplyKind::kStored;
  } else if (line == "NOT_STORED") {
    r.kind = TextReplyKind::kNotStored;
  } else if (line == "EXISTS") {
    r.kind = TextReplyKind::kExists;
  } else if (line == "NOT_FOUND") {
    r.kind = TextReplyKind::kNotFound;
  } else if (line == "DELETED") {
    r.kind = TextReplyKind::kDeleted;
  } else if (line == "TOUCHED") {
    r.kind = TextReplyKind::kTouched;
  } else if (line == "OK") {
    r.kind = TextReplyKind::kOk;
  } else if (line == "ERROR") {
    r.kind = TextReplyKind::kError;
  } else if (all_digits(line)) {
    if (!parse_number(line, r.number)) return ResponseParse::kBad;  // more than 64 bits
    r.kind = TextReplyKind::kNumber;
  } else if (keyword_with_message(line, "VERSION", message)) {
    r.kind = TextReplyKind::kVersion;
    r.message = message;
  } else if (keyword_with_message(line, "CLIENT_ERROR", message)) {
    r.kind = TextReplyKind::kClientError;
    r.message = message;
  } else if (keyword_with_message(line, "SERVER_ERROR", message)) {
    r.kind = TextReplyKind::kServerError;
    r.message = message;
  } else if (line.size() > 5 && line.substr(0, 5) == "STAT ") {
    r.kind = TextReplyKind::kStat;
    r.message = line.substr(5);
  } else {
    return ResponseParse::kBad;
  }
  out = r;
  consumed = newline + 1;
  return ResponseParse::kOk;
}

}  // namespace rend::proto

namespace rend::proto {

ResponseParse parse_meta_response(std::span<const char> input, size_t max_value, MetaResponse& out, size_t& consumed) {
  const std::string_view in(input.data(), input.size());
  const size_t crlf = in.find("\r\n");
  if (crlf == std::string_view::npos) return in.size() > kMaxReplyLine ? ResponseParse::kBad : ResponseParse::kNeedMore;
  const std::string_view line = in.substr(0, crlf);
  out = MetaResponse{};
  std::string_view message;
  if (keyword_with_message(line, "ERROR", message) || keyword_with_message(line, "CLIENT_ERROR", message) ||
      keyword_with_message(line, "SERVER_ERROR", message)) {
    out.is_error = true;
    out.code = line.substr(0, line.find(' '));
    out.bytes = in.substr(0, crlf + 2);
    consumed = crlf + 2;
    return ResponseParse::kOk;
  }
  if (line.size() < 2 || (line.size() > 2 && line[2] != ' ')) return ResponseParse::kBad;
  out.code = line.substr(0, 2);
  std::string_view rest = line.size() > 3 ? line.substr(3) : std::string_view();
  size_t total = crlf + 2;
  if (out.code == "VA") {
    std::string_view size_token;
    if (!next_token(rest, size_token)) return ResponseParse::kBad;
    size_t size = 0;
    if (!parse_number(size_token, size) || size > max_value) return ResponseParse::kBad;
    if (in.size() < total + size + 2) return ResponseParse::kNeedMore;
    if (in.substr(total + size, 2) != "\r\n") return ResponseParse::kBad;
    out.data = in.substr(total, size);
    total += size + 2;
  } else if (out.code != "HD" && out.code != "EN" && out.code != "NF" && out.code != "NS" && out.code != "EX" &&
             out.code != "MN" && out.code != "ME") {
    return ResponseParse::kBad;
  }
  out.flags = rest;
  out.bytes = in.substr(0, total);
  consumed = total;
  return ResponseParse::kOk;
}

}  // namespace rend::proto

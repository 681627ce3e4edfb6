#include "common/protocol/text_parser.h"

#include "common/protocol/item_size.h"
#include "common/protocol/meta_command.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <string>

namespace rend::proto {
namespace {

constexpr size_t kMaxTokens = 24;  // as memcached's MAX_TOKENS: enough to reject any bad count

struct Tokens {
  std::array<std::string_view, kMaxTokens> t;
  size_t n = 0;
  bool last(std::string_view s) const { return n > 0 && t[n - 1] == s; }
};

Tokens tokenize(std::string_view line) {
  Tokens out;
  size_t i = 0;
  while (i < line.size() && out.n < kMaxTokens) {
    while (i < line.size() && line[i] == ' ') ++i;
    size_t j = i;
    while (j < line.size() && line[j] != ' ') ++j;
    if (j > i) out.t[out.n++] = line.substr(i, j - i);
    i = j;
  }
  return out;
}

// memcached converts numbers with strtol/strtoul/strtoull on the NUL-terminated token and
// accepts the result when the number ends the token or is followed by whitespace (util.c's
// safe_strto*). Calling the same libc functions is the only way to match every corner (leading
// whitespace, a sign, 64-bit results truncated into 32-bit fields).
struct CToken {
  char small[64];
  std::string large;
  const char* c_str = nullptr;
  explicit CToken(std::string_view t) {
    if (t.size() < sizeof small) {
      std::memcpy(small, t.data(), t.size());
      small[t.size()] = '\0';
      c_str = small;
    } else {
      large.assign(t);
      c_str = large.c_str();
    }
  }
};

bool number_ends_well(const char* str, const char* end) {
  return std::isspace(static_cast<unsigned char>(*end)) || (*end == '\0' && end != str);
}

ParseResult make_error(size_t consumed, std::string_view text, bool quiet = false) {
  ParseResult r;
  r.status = ParseStatus::kRequest;
  r.consumed = consumed;
  r.request.command = Command::kError;
  r.request.error_text = text;
  r.request.quiet = quiet;
  return r;
}

ParseResult make_request(size_t consumed, Command command) {
  ParseResult r;
  r.status = ParseStatus::kRequest;
  r.consumed = consumed;
  r.request.command = command;
  return r;
}

bool keys_valid(std::string_view keys) {
  bool ok = true;
  for_each_key(keys, [&](std::string_view k) { ok = ok && k.size() <= kMaxKeyLength; });
  return ok;
}

// The rest of the line after token `index` (keys of a multi-get, spaces kept).
std::string_view rest_after(std::string_view line, const Tokens& tok, size_t index) {
  const char* end_of_token = tok.t[index].data() + tok.t[index].size();
  return line.substr(static_cast<size_t>(end_of_token - line.data()));
}

uint32_t wire_exptime(int32_t exptime) { return exptime < 0 ? kExpireImmediately : static_cast<uint32_t>(exptime); }

constexpr std::string_view kBadFormat = "CLIENT_ERROR bad command line format";

ParseResult parse_storage(std::span<const char> input, std::string_view line, size_t line_end, const Tokens& tok,
                          Command command, size_t max_item_size) {
  const bool is_cas = command == Command::kCas;
  const size_t want = is_cas ? 6 : 5;
  if (tok.n != want && tok.n != want + 1) return make_error(line_end, "ERROR");
  const bool noreply = tok.last("noreply");
  uint32_t flags = 0;
  int32_t exptime = 0;
  int32_t length = 0;
  uint64_t cas = 0;
  if (tok.t[1].size() > kMaxKeyLength) return make_error(line_end, kBadFormat, noreply);
  if (!parse_u32_truncating(tok.t[2], flags) || !parse_i32(tok.t[3], exptime) || !parse_i32(tok.t[4], length) ||
      (is_cas && !parse_u64(tok.t[5], cas)) || length < 0 || length > INT_MAX - 2) {
    return make_error(line_end, kBadFormat, noreply);
  }
  const size_t vlen = static_cast<size_t>(length);
  if (!fits_memcached_item(tok.t[1].size(), flags, vlen, max_item_size)) {
    ParseResult r = make_request(line_end, Command::kTooLarge);
    r.swallow = vlen + 2;
    r.request.original = command;
    r.request.key = tok.t[1];
    r.request.quiet = noreply;
    r.request.error_text = "SERVER_ERROR object too large for cache";
    return r;
  }
  if (input.size() < line_end + vlen + 2) return ParseResult{};
  const char* data = input.data() + line_end;
  if (data[vlen] != '\r' || data[vlen + 1] != '\n') {
    return make_error(line_end + vlen + 2, "CLIENT_ERROR bad data chunk", noreply);
  }
  (void)line;
  ParseResult r = make_request(line_end + vlen + 2, command);
  r.request.key = tok.t[1];
  r.request.flags = flags;
  r.request.exptime = wire_exptime(exptime);
  r.request.value = std::string_view(data, vlen);
  r.request.cas = cas;
  r.request.quiet = noreply;
  return r;
}

// The flag tokens of a meta line after token `index` (empty when there are none).
std::string_view meta_flags_after(std::string_view line, const Tokens& tok, size_t index) {
  return tok.n > index + 1 ? rest_after(line, tok, index) : std::string_view{};
}

// ms: the data block follows; memcached swallows it after an error found once the length is known.
ParseResult parse_meta_set(std::span<const char> input, std::string_view line, size_t line_end, const Tokens& tok,
                           size_t max_item_size) {
  if (tok.n < 2) return make_error(line_end, "ERROR");
  if (tok.t[1].size() > kMaxKeyLength || tok.n == 2) return make_error(line_end, kBadFormat);
  if (tok.n + 1 > kMetaMaxTokens) return make_error(line_end, "CLIENT_ERROR options flags too long");
  int32_t length = 0;
  if (!parse_i32(tok.t[2], length) || length < 0 || length > INT_MAX - 2) return make_error(line_end, kBadFormat);
  const size_t vlen = static_cast<size_t>(length);
  const std::string_view flags = meta_flags_after(line, tok, 2);
  MetaOptions options;
  std::string_view error;
  if (!parse_meta_options(Command::kMetaSet, tok.t[1], flags, options, error)) {
    ParseResult r = make_error(line_end, error);
    r.swallow = vlen + 2;
    return r;
  }
  const size_t key_length = options.base64 ? meta_key(tok.t[1], true).value_or(std::string()).size() : tok.t[1].size();
  if (!fits_memcached_item(key_length, options.client_flags, vlen, max_item_size)) {
    ParseResult r = make_request(line_end, Command::kTooLarge);
    r.swallow = vlen + 2;
    r.request.original = Command::kMetaSet;
    r.request.key = tok.t[1];
    r.request.meta_flags = flags;
    r.request.error_text = "SERVER_ERROR object too large for cache";
    return r;
  }
  if (input.size() < line_end + vlen + 2) return ParseResult{};
  const char* data = input.data() + line_end;
  if (data[vlen] != '\r' || data[vlen + 1] != '\n')
    return make_error(line_end + vlen + 2, "CLIENT_ERROR bad data chunk");
  ParseResult r = make_request(line_end + vlen + 2, Command::kMetaSet);
  r.request.key = tok.t[1];
  r.request.meta_flags = flags;
  r.request.value = std::string_view(data, vlen);
  r.request.quiet = options.quiet;
  return r;
}

// mg, md, ma, me, mn: everything is on the line.
ParseResult parse_meta(std::span<const char> input, std::string_view line, size_t line_end, const Tokens& tok,
                       size_t max_item_size) {
  Command command = Command::kUnknown;
  switch (tok.t[0][1]) {
    case 'g': command = Command::kMetaGet; break;
    case 's': return parse_meta_set(input, line, line_end, tok, max_item_size);
    case 'd': command = Command::kMetaDelete; break;
    case 'a': command = Command::kMetaArithmetic; break;
    case 'e': command = Command::kMetaDebug; break;
    case 'n': return make_request(line_end, Command::kMetaNoop);
    default: return make_error(line_end, "ERROR");
  }
  if (command == Command::kMetaDebug) {
    // memcached's me looks only for a lone "b" after the key, and has its own single error.
    if (tok.n < 2 || tok.t[1].size() > kMaxKeyLength) return make_error(line_end, kBadFormat);
    const bool base64 = tok.n >= 3 && tok.t[2] == "b";
    if (base64 && !base64_decode(tok.t[1])) return make_error(line_end, kBadFormat);
    ParseResult r = make_request(line_end, command);
    r.request.key = tok.t[1];
    r.request.meta_flags = base64 ? tok.t[2] : std::string_view{};
    return r;
  }
  if (tok.n < 2) return make_error(line_end, "ERROR");
  if (tok.t[1].size() > kMaxKeyLength) return make_error(line_end, kBadFormat);
  if (tok.n + 1 > kMetaMaxTokens) {
    return make_error(line_end, command == Command::kMetaGet ? "CLIENT_ERROR options flags are too long"
                                                             : "CLIENT_ERROR options flags too long");
  }
  const std::string_view flags = meta_flags_after(line, tok, 1);
  MetaOptions options;
  std::string_view error;
  if (!parse_meta_options(command, tok.t[1], flags, options, error)) return make_error(line_end, error);
  ParseResult r = make_request(line_end, command);
  r.request.key = tok.t[1];
  r.request.meta_flags = flags;
  r.request.quiet = options.quiet;
  return r;
}

// memcached hangs up, silently, on a line it does not know whose last token starts with "HTTP/":
// a browser's request sent to a cache port by a cross-protocol attack. It only gets that far for
// a command whose first letter starts none of its own commands (and that is not one it serves
// by full name), and it looks at most at its 23rd token (tokenize_command's limit).
bool looks_like_http(const Tokens& tok) {
  const std::string_view cmd = tok.t[0];
  if (cmd.size() < 2) return false;                    // "no valid command is shorter than two bytes": ERROR
  if (cmd[0] == 'm' && cmd.size() == 2) return false;  // the meta commands' namespace
  if (std::string_view("gsacidt").find(cmd[0]) != std::string_view::npos) return false;
  static constexpr std::string_view kServedByName[] = {"replace",   "prepend", "bget",        "flush_all",
                                                       "version",   "quit",    "lru_crawler", "watch",
                                                       "verbosity", "lru",     "extstore",    "refresh_certs"};
  for (std::string_view name : kServedByName) {
    if (cmd == name) return false;
  }
  const std::string_view last = tok.t[std::min(tok.n, kMaxTokens - 1) - 1];
  return last.starts_with("HTTP/");
}

ParseResult parse_line(std::span<const char> input, std::string_view line, size_t line_end, size_t max_item_size) {
  const Tokens tok = tokenize(line);
  if (tok.n == 0) return make_error(line_end, "ERROR");
  const std::string_view cmd = tok.t[0];

  if (cmd.size() == 2 && cmd[0] == 'm') return parse_meta(input, line, line_end, tok, max_item_size);
  // "bget" is memcached's ancient alias of get, still served.
  if (cmd == "get" || cmd == "gets" || cmd == "bget") {
    if (tok.n < 2) return make_error(line_end, "ERROR");
    const std::string_view keys = rest_after(line, tok, 0);
    if (!keys_valid(keys)) return make_error(line_end, kBadFormat);
    ParseResult r = make_request(line_end, cmd == "gets" ? Command::kGets : Command::kGet);
    r.request.keys = keys;
    return r;
  }
  if (cmd == "gat" || cmd == "gats") {
    if (tok.n < 2) return make_error(line_end, "ERROR");
    int32_t exptime = 0;
    if (!parse_i32(tok.t[1], exptime)) return make_error(line_end, "CLIENT_ERROR invalid exptime argument");
    const std::string_view keys = rest_after(line, tok, 1);
    if (!keys_valid(keys)) return make_error(line_end, kBadFormat);
    ParseResult r = make_request(line_end, cmd == "gat" ? Command::kGat : Command::kGats);
    r.request.keys = keys;
    r.request.exptime = wire_exptime(exptime);
    return r;
  }
  if (cmd == "set") return parse_storage(input, line, line_end, tok, Command::kSet, max_item_size);
  if (cmd == "add") return parse_storage(input, line, line_end, tok, Command::kAdd, max_item_size);
  if (cmd == "replace") return parse_storage(input, line, line_end, tok, Command::kReplace, max_item_size);
  if (cmd == "append") return parse_storage(input, line, line_end, tok, Command::kAppend, max_item_size);
  if (cmd == "prepend") return parse_storage(input, line, line_end, tok, Command::kPrepend, max_item_size);
  if (cmd == "cas") return parse_storage(input, line, line_end, tok, Command::kCas, max_item_size);

  if (cmd == "delete") {
    if (tok.n < 2 || tok.n > 4) return make_error(line_end, "ERROR");
    const bool noreply = tok.last("noreply");
    if (tok.n > 2) {
      const bool hold_is_zero = tok.t[2] == "0";
      const bool valid = (tok.n == 3 && (hold_is_zero || noreply)) || (tok.n == 4 && hold_is_zero && noreply);
      if (!valid) {
        return make_error(line_end, "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]", noreply);
      }
    }
    if (tok.t[1].size() > kMaxKeyLength) return make_error(line_end, kBadFormat, noreply);
    ParseResult r = make_request(line_end, Command::kDelete);
    r.request.key = tok.t[1];
    r.request.quiet = noreply;
    return r;
  }
  if (cmd == "incr" || cmd == "decr") {
    if (tok.n != 3 && tok.n != 4) return make_error(line_end, "ERROR");
    const bool noreply = tok.last("noreply");
    if (tok.t[1].size() > kMaxKeyLength) return make_error(line_end, kBadFormat, noreply);
    uint64_t delta = 0;
    if (!parse_u64(tok.t[2], delta)) {
      return make_error(line_end, "CLIENT_ERROR invalid numeric delta argument", noreply);
    }
    ParseResult r = make_request(line_end, cmd == "incr" ? Command::kIncr : Command::kDecr);
    r.request.key = tok.t[1];
    r.request.delta = delta;
    r.request.create_exptime = 0xffffffffu;
    r.request.quiet = noreply;
    return r;
  }
  if (cmd == "touch") {
    if (tok.n != 3 && tok.n != 4) return make_error(line_end, "ERROR");
    const bool noreply = tok.last("noreply");
    if (tok.t[1].size() > kMaxKeyLength) return make_error(line_end, kBadFormat, noreply);
    int32_t exptime = 0;
    if (!parse_i32(tok.t[2], exptime)) {
      return make_error(line_end, "CLIENT_ERROR invalid exptime argument", noreply);
    }
    ParseResult r = make_request(line_end, Command::kTouch);
    r.request.key = tok.t[1];
    r.request.exptime = wire_exptime(exptime);
    r.request.quiet = noreply;
    return r;
  }
  if (cmd == "flush_all") {
    if (tok.n > 3) return make_error(line_end, "ERROR");
    const bool noreply = tok.last("noreply");
    ParseResult r = make_request(line_end, Command::kFlushAll);
    r.request.quiet = noreply;
    if (tok.n == 3 || (tok.n == 2 && !noreply)) {
      int32_t delay = 0;
      if (!parse_i32(tok.t[1], delay)) {
        return make_error(line_end, "CLIENT_ERROR invalid exptime argument", noreply);
      }
      if (delay > 0) {
        r.request.has_exptime = true;
        r.request.exptime = static_cast<uint32_t>(delay);
      }
    }
    return r;
  }
  if (cmd == "version") return make_request(line_end, Command::kVersion);
  // memcached's reply when started without -A (the default); rend never lets a client stop L1.
  if (cmd == "shutdown") return make_error(line_end, "ERROR: shutdown not enabled");
  if (cmd == "quit") {
    ParseResult r = make_request(line_end, Command::kQuit);
    r.request.close_after = true;
    return r;
  }
  if (cmd == "verbosity") {
    if (tok.n != 2 && tok.n != 3) return make_error(line_end, "ERROR");
    const bool noreply = tok.last("noreply");
    uint32_t level = 0;
    if (!parse_u32_truncating(tok.t[1], level)) return make_error(line_end, kBadFormat, noreply);
    ParseResult r = make_request(line_end, Command::kVerbosity);
    r.request.quiet = noreply;
    return r;
  }
  if (cmd == "stats") {
    ParseResult r = make_request(line_end, Command::kStats);
    if (tok.n >= 2) {
      // memcached looks only at the subcommand token ("stats reset now" resets); detail and
      // cachedump take arguments.
      const bool with_args = tok.t[1] == "detail" || tok.t[1] == "cachedump";
      if (tok.t[1] == "detail" && (tok.n < 3 || (tok.t[2] != "on" && tok.t[2] != "off" && tok.t[2] != "dump"))) {
        return make_error(line_end, "CLIENT_ERROR usage: stats detail on|off|dump");
      }
      r.request.stats_group = with_args ? rest_after(line, tok, 0).substr(1) : tok.t[1];
    }
    return r;
  }
  if (looks_like_http(tok)) {
    ParseResult r;
    r.status = ParseStatus::kClose;
    return r;
  }
  return make_error(line_end, "ERROR");
}

bool starts_large_get(std::span<const char> input) {
  size_t i = 0;
  while (i < input.size() && i <= 100 && input[i] == ' ') ++i;
  const std::string_view rest(input.data() + i, input.size() - i);
  return rest.starts_with("get ") || rest.starts_with("gets ");
}

}  // namespace

bool parse_u32_truncating(std::string_view token, uint32_t& out) {
  const CToken t(token);
  errno = 0;
  char* end = nullptr;
  const unsigned long v = std::strtoul(t.c_str, &end, 10);
  if (errno == ERANGE || t.c_str == end || !number_ends_well(t.c_str, end)) return false;
  if (static_cast<long>(v) < 0 && std::strchr(t.c_str, '-') != nullptr) return false;
  out = static_cast<uint32_t>(v);
  return true;
}

bool parse_i32(std::string_view token, int32_t& out) {
  const CToken t(token);
  errno = 0;
  char* end = nullptr;
  const long v = std::strtol(t.c_str, &end, 10);
  if (errno == ERANGE || t.c_str == end || !number_ends_well(t.c_str, end)) return false;
  out = static_cast<int32_t>(v);  // memcached stores the long into an int32_t, truncating
  return true;
}

bool parse_u64(std::string_view token, uint64_t& out) {
  const CToken t(token);
  errno = 0;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(t.c_str, &end, 10);
  if (errno == ERANGE || t.c_str == end || !number_ends_well(t.c_str, end)) return false;
  if (static_cast<long long>(v) < 0 && std::strchr(t.c_str, '-') != nullptr) return false;
  out = v;
  return true;
}

ParseResult parse_text(std::span<const char> input, size_t max_item_size) {
  if (input.empty()) return ParseResult{};
  const char* begin = input.data();
  const void* nl = std::memchr(begin, '\n', input.size());
  if (nl == nullptr) {
    if (input.size() <= kMaxTextLine) return ParseResult{};
    // memcached keeps reading only what can be a large multi-get; anything else is garbage.
    if (starts_large_get(input) && input.size() <= kMaxTextGetLine) return ParseResult{};
    ParseResult r;
    r.status = ParseStatus::kClose;
    return r;
  }
  const size_t newline = static_cast<size_t>(static_cast<const char*>(nl) - begin);
  // The same bound when the whole line arrived at once: whether a line is served must not depend
  // on how it was cut into reads, and a complete line may otherwise fill the whole input buffer
  // (far more keys than kMaxTextGetLine allows a get).
  if (newline > kMaxTextGetLine || (newline >= kMaxTextCommandLine && !starts_large_get(input))) {
    ParseResult r;
    r.status = ParseStatus::kClose;
    return r;
  }
  size_t line_length = newline;
  if (line_length > 0 && begin[line_length - 1] == '\r') --line_length;
  // memcached tokenizes the line as a C string: a NUL ends the command (the data block of a
  // storage command still starts after the newline).
  if (const void* nul = std::memchr(begin, '\0', line_length)) {
    line_length = static_cast<size_t>(static_cast<const char*>(nul) - begin);
  }
  ParseResult r = parse_line(input, std::string_view(begin, line_length), newline + 1, max_item_size);
  r.request.protocol = Protocol::kText;
  return r;
}

}  // namespace rend::proto

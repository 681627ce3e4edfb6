"""Differential conformance: rend must answer every byte sequence exactly like memcached 1.6.18.

A fresh memcached is started on its own ("direct") and a rend (two workers, two L1 connections
each, as by default) in front of another fresh memcached. Every case of the corpus is sent, on a new connection, to both; everything that
comes back until a short silence (or a close) is compared byte for byte after normalizing only what
differs by design:
  - the version string ("VERSION ..." line, binary Version response body);
  - CAS unique values ("VALUE k f n <cas>" lines, the cas field of binary response headers).

Both sides get the same cases in the same order with the same keys (a per-case key prefix), so
both memcacheds go through the same states. Design exceptions that are not compared: plain
`stats`, binary GetE/GetEQ, `stats <group>` reports that depend on the server's own settings.

A case is a list of steps, each sent then read until silence. A step is a function
(prefix, reply_so_far) -> bytes: T(b"...") builds one from text where b"@" stands for the case's
key prefix, B(fn) from a binary builder fn(prefix), and a plain lambda can use what that side has
answered so far (e.g. a real CAS value). A case that differs gets one longer read on both sides
before it is reported, so a slow machine does not make a difference out of a late reply.
"""
import re
import struct
import threading

from rendtest import ProcessTest, Client

SILENCE = 0.35  # seconds of silence that end a reply

# ---- case building ------------------------------------------------------------------------------


def T(*parts):
    """A text step: b'@' in the bytes stands for the case's key prefix."""
    data = b"".join(parts)
    return lambda p, _prev: data.replace(b"@", p)


def key_of_len(p, n, fill=b"k"):
    return (p + fill * n)[:n]


# Binary request builders (all take the prefix-expanded key).
def bhdr(opcode, keylen=0, extlen=0, bodylen=0, opaque=0, cas=0, magic=0x80, datatype=0, vbucket=0):
    return struct.pack(">BBHBBHIIQ", magic, opcode, keylen, extlen, datatype, vbucket, bodylen, opaque, cas)


def breq(opcode, key=b"", value=b"", extras=b"", opaque=0, cas=0):
    return bhdr(opcode, len(key), len(extras), len(extras) + len(key) + len(value), opaque, cas) + extras + key + value


def bset(key, value, flags=0, exp=0, cas=0, op=0x01, opaque=0):
    return breq(op, key, value, struct.pack(">II", flags, exp), opaque, cas)


def bget(key, op=0x00, opaque=0):
    return breq(op, key, opaque=opaque)


def barith(key, delta, initial=0, exp=0xFFFFFFFF, op=0x05, opaque=0, cas=0):
    return breq(op, key, extras=struct.pack(">QQI", delta, initial, exp), opaque=opaque, cas=cas)


def btouch(key, exp, op=0x1C, opaque=0):
    return breq(op, key, extras=struct.pack(">I", exp), opaque=opaque)


def bnoop(opaque=0):
    return breq(0x0A, opaque=opaque)


def B(fn):
    """A binary step built from the prefix: fn(p) -> bytes."""
    return lambda p, _prev: fn(p)


# ---- normalization ------------------------------------------------------------------------------

VALUE_CAS = re.compile(rb"^(VALUE \S+ \d+ \d+) \d+\r\n", re.M)
VERSION_LINE = re.compile(rb"^VERSION [^\r\n]*\r\n", re.M)


def normalize_text(data):
    data = VALUE_CAS.sub(rb"\1 <cas>\r\n", data)
    return VERSION_LINE.sub(b"VERSION <version>\r\n", data)


def normalize_binary(data):
    closed = data.endswith(b"<CLOSED>")
    if closed:
        data = data[:-len(b"<CLOSED>")]
    out = b""
    i = 0
    while i + 24 <= len(data) and data[i] == 0x81:
        magic, opcode, keylen, extlen, dtype, status, bodylen, opaque, _cas = struct.unpack(
            ">BBHBBHIIQ", data[i:i + 24])
        if i + 24 + bodylen > len(data):
            break
        body = data[i + 24:i + 24 + bodylen]
        i += 24 + bodylen
        if opcode == 0x0B and status == 0:
            body = b"<version>"
            bodylen = len(body)
        out += struct.pack(">BBHBBHIIQ", magic, opcode, keylen, extlen, dtype, status, bodylen, opaque, 0) + body
    out += data[i:]
    return out + (b"<CLOSED>" if closed else b"")


def short(data, limit=600):
    if len(data) <= limit:
        return repr(data)
    return repr(data[:limit]) + f"... ({len(data)} bytes)"


# ---- running ------------------------------------------------------------------------------------


class Side:
    """One connection to one server, fed step by step."""

    def __init__(self, port):
        self.client = Client(port, timeout=5.0)
        self.reply = b""
        self.closed = False
        self.error = None

    def step(self, data, wait=SILENCE):
        if self.closed:
            return
        try:
            if data:
                self.client.send(data)
        except OSError:
            pass  # the server closed while we were sending; what it answered before still counts
        try:
            got = self.client.read_available(wait)
        except OSError as e:
            got = b"<CLOSED>"
            self.error = e
        self.reply += got
        if got.endswith(b"<CLOSED>"):
            self.closed = True

    def close(self):
        self.client.close()


def _in_parallel(sides, datas, wait):
    threads = [threading.Thread(target=s.step, args=(d, wait)) for s, d in zip(sides, datas)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        if t.is_alive():
            raise AssertionError("a step did not finish within 60 s")


def run_case(direct_port, rend_port, prefix, steps, same=lambda a, b: a == b):
    sides = [Side(direct_port), Side(rend_port)]
    try:
        for step in steps:
            _in_parallel(sides, [step(prefix, s.reply) for s in sides], SILENCE)
        if not same(sides[0].reply, sides[1].reply):
            # Before calling it a difference, give a slow side (a loaded machine) more time.
            _in_parallel(sides, [b"", b""], 4 * SILENCE)
        return sides[0].reply, sides[1].reply
    finally:
        for s in sides:
            s.close()


def cas_from(prev):
    m = re.search(rb"VALUE \S+ \d+ \d+ (\d+)\r\n", prev)
    return m.group(1) if m else b"0"


def bin_cas_from(prev):
    """The cas of the last binary response in prev."""
    i, cas = 0, 0
    while i + 24 <= len(prev) and prev[i] == 0x81:
        bodylen, = struct.unpack(">I", prev[i + 8:i + 12])
        cas, = struct.unpack(">Q", prev[i + 16:i + 24])
        i += 24 + bodylen
    return cas


# ---- the corpus ---------------------------------------------------------------------------------

BIG = 2 * 1024 * 1024


def text_cases():
    c = []

    def add(name, *steps):
        c.append((name, list(steps)))

    # Storage commands, plain.
    add("set_get", T(b"set @a 5 0 3\r\nabc\r\nget @a\r\n"))
    add("set_noreply", T(b"set @a 1 0 1 noreply\r\nx\r\nget @a\r\n"))
    add("set_empty_value", T(b"set @a 0 0 0\r\n\r\nget @a\r\n"))
    add("set_value_with_crlf_and_nul", T(b"set @a 0 0 6\r\na\r\n\x00b\r\r\nget @a\r\n"))
    add("set_overwrite", T(b"set @a 0 0 1\r\nx\r\nset @a 3 0 2\r\nyy\r\nget @a\r\n"))
    add("set_extra_token_not_noreply", T(b"set @a 0 0 1 extra\r\nx\r\nget @a\r\n"))
    add("gets_hit", T(b"set @a 0 0 1\r\nx\r\ngets @a\r\n"))
    add("gets_miss", T(b"gets @nope\r\n"))
    add("add_new_then_exists", T(b"add @a 0 0 1\r\nx\r\nadd @a 0 0 1\r\ny\r\nget @a\r\n"))
    add("add_exists_noreply", T(b"set @a 0 0 1\r\nx\r\nadd @a 0 0 1 noreply\r\ny\r\nget @a\r\n"))
    add("replace_miss_then_hit", T(b"replace @a 0 0 1\r\nx\r\nset @a 0 0 1\r\nx\r\nreplace @a 9 0 1\r\ny\r\nget @a\r\n"))
    add("replace_miss_noreply", T(b"replace @a 0 0 1 noreply\r\nx\r\nget @a\r\n"))
    add("append_prepend_hit", T(b"set @a 7 0 1\r\nx\r\nappend @a 9 0 2\r\nyz\r\nprepend @a 9 0 1\r\nw\r\nget @a\r\n"))
    add("append_miss", T(b"append @a 0 0 1\r\nx\r\nget @a\r\n"))
    add("prepend_miss", T(b"prepend @a 0 0 1\r\nx\r\nget @a\r\n"))
    add("append_prepend_miss_noreply", T(b"append @a 0 0 1 noreply\r\nx\r\nprepend @a 0 0 1 noreply\r\nx\r\nget @a\r\n"))
    add("append_bad_numbers", T(b"set @a 0 0 1\r\nx\r\nappend @a x 0 1\r\ny\r\nget @a\r\n"))

    # cas.
    add("cas_not_found", T(b"cas @a 0 0 1 123\r\nx\r\nget @a\r\n"))
    add("cas_exists", T(b"set @a 0 0 1\r\nx\r\ncas @a 0 0 1 999999999\r\ny\r\nget @a\r\n"))
    add("cas_success",
        T(b"set @a 0 0 1\r\nx\r\ngets @a\r\n"),
        lambda p, prev: b"cas %sa 4 0 1 %s\r\ny\r\ngets %sa\r\n" % (p, cas_from(prev), p))
    add("cas_success_noreply",
        T(b"set @a 0 0 1\r\nx\r\ngets @a\r\n"),
        lambda p, prev: b"cas %sa 4 0 1 %s noreply\r\ny\r\nget %sa\r\n" % (p, cas_from(prev), p))
    add("cas_zero_on_existing", T(b"set @a 0 0 1\r\nx\r\ncas @a 0 0 1 0\r\ny\r\nget @a\r\n"))
    add("cas_zero_on_missing", T(b"cas @a 0 0 1 0\r\ny\r\nget @a\r\n"))
    add("cas_bad_unique", T(b"set @a 0 0 1\r\nx\r\ncas @a 0 0 1 abc\r\ny\r\nget @a\r\n"))
    add("cas_negative_unique", T(b"cas @a 0 0 1 -1\r\ny\r\n"))
    add("cas_missing_unique", T(b"cas @a 0 0 1\r\ny\r\n"))
    add("cas_noreply_exists", T(b"set @a 0 0 1\r\nx\r\ncas @a 0 0 1 99999 noreply\r\ny\r\nget @a\r\n"))

    # Argument counts.
    add("set_too_few_args", T(b"set @a 0 0\r\n"))
    add("set_key_only", T(b"set @a\r\n"))
    add("set_alone", T(b"set\r\n"))
    add("set_too_many_args", T(b"set @a 0 0 1 noreply extra\r\nx\r\n"))
    add("add_too_few_args", T(b"add @a 0 0\r\n"))
    add("replace_alone", T(b"replace\r\n"))
    add("append_too_few", T(b"append @a 0\r\n"))
    add("prepend_too_many", T(b"prepend @a 0 0 1 2 3\r\nx\r\n"))
    add("cas_too_many", T(b"cas @a 0 0 1 1 noreply x\r\ny\r\n"))
    add("set_25_tokens", T(b"set @a" + b" 1" * 23 + b"\r\n"))

    # Numbers.
    add("flags_negative", T(b"set @a -1 0 1\r\nx\r\nget @a\r\n"))
    add("flags_max_u32", T(b"set @a 4294967295 0 1\r\nx\r\nget @a\r\n"))
    add("flags_2pow32", T(b"set @a 4294967296 0 1\r\nx\r\nget @a\r\n"))
    add("flags_2pow32_plus_5", T(b"set @a 4294967301 0 1\r\nx\r\nget @a\r\n"))
    add("flags_huge", T(b"set @a 99999999999999999999 0 1\r\nx\r\nget @a\r\n"))
    add("flags_plus", T(b"set @a +5 0 1\r\nx\r\nget @a\r\n"))
    add("flags_hex", T(b"set @a 0x10 0 1\r\nx\r\nget @a\r\n"))
    add("flags_leading_zeros", T(b"set @a 007 0 1\r\nx\r\nget @a\r\n"))
    add("flags_tab_after", T(b"set @a 5\t 0 1\r\nx\r\nget @a\r\n"))
    add("flags_tab_before", T(b"set @a \t5 0 1\r\nx\r\nget @a\r\n"))
    add("flags_tab_junk", T(b"set @a 5\tjunk 0 1\r\nx\r\nget @a\r\n"))
    add("flags_tab_only", T(b"set @a \t 0 1\r\nx\r\nget @a\r\n"))
    add("exptime_negative", T(b"set @a 0 -1 1\r\nx\r\nget @a\r\n"))
    add("exptime_2pow32", T(b"set @a 0 4294967296 1\r\nx\r\nget @a\r\n"))
    add("exptime_2pow31", T(b"set @a 0 2147483648 1\r\nx\r\nget @a\r\n"))
    add("exptime_huge", T(b"set @a 0 99999999999999999999 1\r\nx\r\nget @a\r\n"))
    add("exptime_absolute_past", T(b"set @a 0 2592001 1\r\nx\r\nget @a\r\n"))
    add("exptime_plus", T(b"set @a 0 +100 1\r\nx\r\nget @a\r\n"))
    add("length_negative", T(b"set @a 0 0 -1\r\nx\r\nget @a\r\n"))
    add("length_2pow32_plus_1", T(b"set @a 0 0 4294967297\r\nx\r\nget @a\r\n"))
    add("length_int_max", T(b"set @a 0 0 2147483647\r\nx\r\nget @a\r\n"))
    add("length_plus", T(b"set @a 0 0 +1\r\nx\r\nget @a\r\n"))
    add("length_text", T(b"set @a 0 0 one\r\nx\r\nget @a\r\n"))
    add("length_tab_only", T(b"set @a 0 0 \t\r\n\r\nget @a\r\n"))

    # Data chunks.
    add("bad_data_chunk", T(b"set @a 0 0 1\r\nxyz\r\nget @a\r\n"))
    add("bad_data_chunk_noreply", T(b"set @a 0 0 1 noreply\r\nxyz\r\nget @a\r\n"))
    add("data_chunk_lf_only", T(b"set @a 0 0 1\r\nx\nget @a\r\n"))
    add("data_longer_than_length", T(b"set @a 0 0 2\r\nabcdef\r\nget @a\r\n"))
    add("data_arrives_later", T(b"set @a 0 0 5\r\nab"), T(b"cde\r\nget @a\r\n"))

    # Keys.
    add("key_250_all_commands", lambda p, _: (
        b"set %s 0 0 1\r\n1\r\nget %s\r\nincr %s 1\r\ntouch %s 0\r\nappend %s 0 0 1\r\nz\r\n"
        b"gets %s\r\ndelete %s\r\n" % ((key_of_len(p, 250),) * 7)))
    add("key_251_set", lambda p, _: b"set %s 0 0 1\r\nx\r\n" % key_of_len(p, 251))
    add("key_251_set_noreply", lambda p, _: b"set %s 0 0 1 noreply\r\nx\r\n" % key_of_len(p, 251))
    add("key_251_get", lambda p, _: b"get %s\r\n" % key_of_len(p, 251))
    add("key_251_gets", lambda p, _: b"gets %s\r\n" % key_of_len(p, 251))
    add("key_251_gat", lambda p, _: b"gat 0 %s\r\n" % key_of_len(p, 251))
    add("key_251_delete", lambda p, _: b"delete %s\r\n" % key_of_len(p, 251))
    add("key_251_incr_decr", lambda p, _: b"incr %s 1\r\ndecr %s 1\r\n" % ((key_of_len(p, 251),) * 2))
    add("key_251_touch", lambda p, _: b"touch %s 0\r\n" % key_of_len(p, 251))
    add("key_251_cas_add_append", lambda p, _: (
        b"cas %s 0 0 1 1\r\nx\r\nadd %s 0 0 1\r\nx\r\nappend %s 0 0 1\r\nx\r\n" % ((key_of_len(p, 251),) * 3)))
    add("key_251_in_multiget_after_hit", lambda p, _: (
        b"set %sa 0 0 1\r\nx\r\n" % p), lambda p, _: b"get %sa %s %sa\r\n" % (p, key_of_len(p, 251), p))
    add("key_3000_set_line_over_2048", lambda p, _: b"set %s 0 0 1\r\nx\r\nget %sa\r\n" % (key_of_len(p, 3000), p))
    add("key_with_tab", T(b"set @a\tb 0 0 1\r\nx\r\nget @a\tb\r\nget @a\r\n"))
    add("key_with_control_chars", T(b"set @a\x01\x7f 0 0 1\r\nx\r\nget @a\x01\x7f\r\n"))

    # Reads.
    add("get_miss", T(b"get @nope\r\n"))
    add("get_no_key", T(b"get\r\n"))
    add("get_trailing_space", T(b"set @a 0 0 1\r\nx\r\nget @a \r\n"))
    add("get_no_key_trailing_space", T(b"get \r\n"))
    add("get_multi_duplicates", T(b"set @a 1 0 1\r\nx\r\nset @b 2 0 2\r\nyy\r\nget @a @b @a @zz @b @a\r\n"))
    add("get_multi_extra_spaces", T(b"set @a 0 0 1\r\nx\r\nget   @a    @b  @a  \r\n"))
    add("gets_multi", T(b"set @a 0 0 1\r\nx\r\nset @b 0 0 1\r\ny\r\ngets @a @b @c\r\n"))

    def get_100(p, _prev):
        keys = [b"%sk%d" % (p, i) for i in range(100)]
        sets = b"".join(b"set %s %d 0 %d\r\n%s\r\n" % (k, i, len(k), k) for i, k in enumerate(keys) if i % 3)
        return sets + b"get " + b" ".join(keys) + b"\r\n"
    add("get_100_keys", get_100)

    def get_400(p, _prev):
        keys = [b"%slongish_key_%d" % (p, i) for i in range(400)]
        sets = b"".join(b"set %s 0 0 1\r\nv\r\n" % k for k in keys[::7])
        return sets + b"gets " + b" ".join(keys) + b"\r\n"
    add("gets_400_keys_line_over_2048", get_400)
    add("get_line_over_2048_arrives_in_parts",
        lambda p, _: b"set %sa 0 0 1\r\nx\r\nget" % p + b" %sa" % p * 500,
        T(b" @b\r\n"))

    # gat / gats / touch.
    add("gat_hit", T(b"set @a 3 0 1\r\nx\r\ngat 100 @a\r\n"))
    add("gat_miss", T(b"gat 100 @a\r\n"))
    add("gats_hit", T(b"set @a 3 0 1\r\nx\r\ngats 100 @a\r\n"))
    add("gat_multi", T(b"set @a 3 0 1\r\nx\r\nset @b 4 0 1\r\ny\r\ngat 100 @a @zz @b @a\r\n"))
    add("gats_multi", T(b"set @a 3 0 1\r\nx\r\ngats 0 @a @b @a\r\n"))
    add("gat_negative_exptime_expires", T(b"set @a 0 0 1\r\nx\r\ngat -1 @a\r\nget @a\r\n"))
    add("gat_bad_exptime", T(b"gat abc @a\r\n"))
    add("gat_no_key", T(b"gat 10\r\n"))
    add("gat_alone", T(b"gat\r\n"))
    add("gats_alone", T(b"gats\r\n"))
    add("touch_hit_miss", T(b"set @a 0 0 1\r\nx\r\ntouch @a 100\r\ntouch @b 100\r\nget @a\r\n"))
    add("touch_noreply", T(b"set @a 0 0 1\r\nx\r\ntouch @a 100 noreply\r\ntouch @b 0 noreply\r\nget @a\r\n"))
    add("touch_negative_expires", T(b"set @a 0 0 1\r\nx\r\ntouch @a -1\r\nget @a\r\n"))
    add("touch_bad_exptime", T(b"touch @a abc\r\ntouch @a abc noreply\r\n"))
    add("touch_arg_counts", T(b"touch @a\r\ntouch\r\ntouch @a 1 noreply extra\r\n"))

    # incr / decr.
    add("incr_decr_hit", T(b"set @n 0 0 2\r\n10\r\nincr @n 5\r\ndecr @n 3\r\nget @n\r\n"))
    add("incr_decr_miss", T(b"incr @n 1\r\ndecr @n 1\r\n"))
    add("incr_non_numeric", T(b"set @n 0 0 3\r\nabc\r\nincr @n 1\r\ndecr @n 1\r\n"))
    add("incr_empty_value", T(b"set @n 0 0 0\r\n\r\nincr @n 1\r\n"))
    add("incr_value_over_u64", T(b"set @n 0 0 20\r\n18446744073709551616\r\nincr @n 1\r\n"))
    add("incr_value_leading_spaces", T(b"set @n 0 0 3\r\n  5\r\nincr @n 1\r\nget @n\r\n"))
    add("incr_wraps", T(b"set @n 0 0 20\r\n18446744073709551615\r\nincr @n 2\r\nget @n\r\n"))
    add("incr_huge_delta", T(b"set @n 0 0 1\r\n1\r\nincr @n 18446744073709551615\r\n"))
    add("decr_below_zero", T(b"set @n 0 0 1\r\n5\r\ndecr @n 100\r\nget @n\r\n"))
    add("decr_shrinks_length", T(b"set @n 0 0 3\r\n100\r\ndecr @n 1\r\nget @n\r\nincr @n 1\r\nget @n\r\n"))
    add("incr_grows_length", T(b"set @n 0 0 2\r\n99\r\nincr @n 1\r\nget @n\r\n"))
    add("incr_noreply", T(b"set @n 0 0 1\r\n1\r\nincr @n 5 noreply\r\ndecr @n 1 noreply\r\nincr @zz 1 noreply\r\nget @n\r\n"))
    add("incr_bad_delta", T(b"set @n 0 0 1\r\n1\r\nincr @n abc\r\nincr @n -1\r\nincr @n 18446744073709551616\r\n"))
    add("incr_delta_plus_and_tab", T(b"set @n 0 0 1\r\n1\r\nincr @n +2\r\nincr @n 3\t\r\nincr @n \t\r\n"))
    add("incr_delta_tab_then_minus", T(b"set @n 0 0 1\r\n1\r\nincr @n 18446744073709551615\t-\r\n"))
    add("incr_bad_delta_noreply", T(b"incr @n abc noreply\r\nincr @n noreply\r\n"))
    add("incr_arg_counts", T(b"incr @n\r\nincr\r\ndecr @n 1 2 3\r\n"))
    add("incr_keeps_flags", T(b"set @n 42 0 1\r\n1\r\nincr @n 1\r\nget @n\r\n"))

    # delete.
    add("delete_hit_miss", T(b"set @a 0 0 1\r\nx\r\ndelete @a\r\ndelete @a\r\nget @a\r\n"))
    add("delete_noreply", T(b"set @a 0 0 1\r\nx\r\ndelete @a noreply\r\ndelete @a noreply\r\nget @a\r\n"))
    add("delete_hold_zero", T(b"set @a 0 0 1\r\nx\r\ndelete @a 0\r\ndelete @a 0 noreply\r\n"))
    add("delete_hold_nonzero", T(b"set @a 0 0 1\r\nx\r\ndelete @a 1\r\ndelete @a x noreply\r\nget @a\r\n"))
    add("delete_arg_counts", T(b"delete\r\ndelete @a 0 noreply extra\r\ndelete @a 1 2\r\n"))

    # flush_all.
    add("flush_all_plain", T(b"set @a 0 0 1\r\nx\r\nflush_all\r\nget @a\r\n"))
    add("flush_all_zero", T(b"set @a 0 0 1\r\nx\r\nflush_all 0\r\nget @a\r\n"))
    add("flush_all_noreply", T(b"set @a 0 0 1\r\nx\r\nflush_all noreply\r\nget @a\r\n"))
    add("flush_all_zero_noreply", T(b"set @a 0 0 1\r\nx\r\nflush_all 0 noreply\r\nget @a\r\n"))
    add("flush_all_negative", T(b"set @a 0 0 1\r\nx\r\nflush_all -1\r\nget @a\r\n"))
    add("flush_all_bad", T(b"flush_all abc\r\nflush_all abc noreply\r\nflush_all noreply 0\r\n"))
    add("flush_all_too_many", T(b"flush_all 1 2 3\r\n"))
    add("flush_all_delayed", T(b"set @a 0 0 1\r\nx\r\nflush_all 100\r\nget @a\r\nflush_all\r\nget @a\r\n"))

    # verbosity / version / stats.
    add("verbosity_ok", T(b"verbosity 1\r\nverbosity 0\r\n"))
    add("verbosity_noreply", T(b"verbosity 0 noreply\r\nverbosity noreply\r\n"))
    add("verbosity_bad", T(b"verbosity\r\nverbosity abc\r\nverbosity 1 2 3\r\nverbosity -1\r\nverbosity 0\r\n"))
    add("version", T(b"version\r\nversion extra tokens\r\n"))
    add("stats_reset", T(b"stats reset\r\n"))
    add("stats_unknown_group", T(b"stats bogus_group\r\n"))
    add("stats_reset_extra_token", T(b"stats reset extra\r\n"))
    add("stats_sizes", T(b"stats sizes\r\n"))
    add("stats_sizes_extra_token", T(b"stats sizes extra\r\n"))
    add("stats_detail_bad", T(b"stats detail\r\n"))

    # quit.
    add("quit", T(b"quit\r\n"))
    add("quit_with_args", T(b"quit now\r\n"))
    add("quit_mid_pipeline", T(b"set @a 0 0 1\r\nx\r\nget @a\r\nquit\r\nget @a\r\n"))
    add("quit_after_noreply", T(b"set @a 0 0 1 noreply\r\nx\r\nquit\r\n"))

    # Junk lines.
    add("empty_line", T(b"\r\n"))
    add("lf_only_line", T(b"\n"))
    add("spaces_line", T(b"    \r\n"))
    add("cr_only_line", T(b"\r\r\n"))
    add("unknown_command", T(b"foo bar\r\n"))
    add("one_letter_command", T(b"g\r\n"))
    add("uppercase_get", T(b"set @a 0 0 1\r\nx\r\nGET @a\r\n"))
    add("uppercase_set", T(b"SET @a 0 0 1\r\nx\r\nget @a\r\n"))
    add("mixed_case_commands", T(b"Get @a\r\nDelete @a\r\nFLUSH_ALL\r\nVersion\r\n"))
    add("tab_after_command", T(b"set\t@a 0 0 1\r\nx\r\nget\t@a\r\n"))
    add("leading_spaces", T(b"  set @a 0 0 1\r\nx\r\n   get @a\r\n"))
    add("nul_in_line", T(b"set @a 0 0 1\r\nx\r\nget @a\x00 @a\r\nset @b\x00x 0 0 1\r\ny\r\nget @b\r\n"))
    add("binary_byte_in_text_connection", T(b"get @a\r\n\x80\x0a\x00\x00\r\nget @a\r\n"))
    add("line_1500_no_newline", lambda p, _: b"x" * 1500)
    add("line_2049_no_newline", lambda p, _: b"x" * 2049)
    add("line_3000_no_newline", lambda p, _: b"x" * 3000)
    add("line_3000_no_newline_after_set_and_get", lambda p, _: b"set %sa 0 0 1\r\nx\r\nget %sa\r\n" % (p, p) + b"y" * 3000)
    add("line_3000_no_newline_after_good", lambda p, _: b"get %sa\r\n" % p + b"y" * 3000)
    add("get_line_3000_no_newline_then_newline", lambda p, _: b"get " + b"%sk " % p * 500, T(b"\r\n"))
    add("spaces_120_then_get_3000", lambda p, _: b" " * 120 + b"get " + b"k " * 1500, T(b"\r\n"))

    # Pipelines.
    add("pipelined_mix", T(b"set @a 0 0 1\r\nx\r\nget @a\r\nappend @a 0 0 1\r\ny\r\nincr @a 1\r\n"
                           b"delete @a\r\nadd @a 0 0 1\r\n5\r\nincr @a 10\r\ngets @a\r\ntouch @a 10\r\nfoo\r\n"
                           b"set @b 0 0 1 noreply\r\nb\r\nget @a @b\r\nversion\r\n"))
    add("pipelined_errors_between", T(b"get @a\r\nbogus\r\nset @a 0 0 z\r\nx\r\nget @a\r\ndelete @a 5\r\nget @a\r\n"))
    add("pipelined_hit_then_bad_key", lambda p, _: (
        b"set %sa 0 0 1\r\nx\r\nget %sa\r\nget %s\r\nget %sa\r\n" % (p, p, key_of_len(p, 251), p)))
    add("pipelined_200_sets_and_gets", lambda p, _: b"".join(
        b"set %sk%d 0 0 %d\r\n%d\r\nget %sk%d\r\n" % (p, i, len(str(i)), i, p, i) for i in range(200)))

    # Values over the size limit.
    add("too_large_set_then_more", lambda p, _: (
        b"set %sa 0 0 1\r\nx\r\nset %sa 0 0 %d\r\n" % (p, p, BIG) + b"v" * BIG + b"\r\nget %sa\r\nset %sb 0 0 1\r\ny\r\nget %sb\r\n" % (p, p, p)))
    add("too_large_set_noreply_then_more", lambda p, _: (
        b"set %sa 0 0 1\r\nx\r\nset %sa 0 0 %d noreply\r\n" % (p, p, BIG) + b"v" * BIG + b"\r\nget %sa\r\n" % p))
    add("too_large_add_keeps_old", lambda p, _: (
        b"set %sa 0 0 1\r\nx\r\nadd %sa 0 0 %d\r\n" % (p, p, BIG) + b"v" * BIG + b"\r\nget %sa\r\n" % p))
    add("too_large_replace_and_append", lambda p, _: (
        b"set %sa 0 0 1\r\nx\r\nreplace %sa 0 0 %d\r\n" % (p, p, BIG) + b"v" * BIG +
        b"\r\nappend %sa 0 0 %d\r\n" % (p, BIG) + b"w" * BIG + b"\r\nget %sa\r\n" % p))
    add("too_large_cas", lambda p, _: (
        b"set %sa 0 0 1\r\nx\r\ncas %sa 0 0 %d 1\r\n" % (p, p, BIG) + b"v" * BIG + b"\r\nget %sa\r\n" % p))
    add("exactly_1mib_value", lambda p, _: (
        b"set %sa 0 0 1\r\nx\r\nset %sa 0 0 %d\r\n" % (p, p, 1 << 20) + b"v" * (1 << 20) + b"\r\nget %sa\r\n" % p))
    add("just_under_1mib_value", lambda p, _: (
        b"set %sa 0 0 %d\r\n" % (p, (1 << 20) - 1024) + b"v" * ((1 << 20) - 1024) + b"\r\nget %sb\r\n" % p))
    add("too_large_bad_chunk_end", lambda p, _: (
        b"set %sa 0 0 %d\r\n" % (p, BIG) + b"v" * BIG + b"XXget %sa\r\n" % p))
    add("too_large_arrives_in_parts", lambda p, _: b"set %sa 0 0 %d\r\n" % (p, BIG) + b"v" * 1000,
        lambda p, _: b"v" * (BIG - 1000) + b"\r\nget %sa\r\n" % p)

    # HTTP requests: memcached hangs up, silently, on an unknown command whose last token (of at
    # most 23) starts with "HTTP/"; a command it knows by its first letter or name gets its usual
    # answer.
    add("http_get", T(b"GET / HTTP/1.0\r\n\r\n"))
    add("http_put_with_headers", T(b"PUT /a/b HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\n\r\nx"))
    add("http_delete_no_path", T(b"DELETE HTTP/1.1\r\n"))
    add("http_post_then_more", T(b"POST /@a HTTP/1.1\r\nset @a 0 0 1\r\nx\r\nget @a\r\n"))
    add("http_version_alone", T(b"HTTP/1.0\r\n"))
    add("http_prefix_only", T(b"xx HTTP/\r\n"))
    add("http_lowercase_is_no_http", T(b"xx http/1.0\r\nversion\r\n"))
    add("http_in_the_middle_is_no_http", T(b"FOO HTTP/1.0 /\r\nversion\r\n"))
    add("http_23rd_token", T(b"FOO" + b" a" * 21 + b" HTTP/1.0 b c\r\n"))
    add("http_past_23rd_token", T(b"FOO" + b" a" * 30 + b" HTTP/1.0\r\nversion\r\n"))
    add("http_get_lowercase_is_a_get", T(b"set @/ 0 0 1\r\nx\r\nget @/ HTTP/1.0\r\n"))
    add("http_known_first_letters", T(b"gx / HTTP/1.0\r\nslabs / HTTP/1.0\r\nax HTTP/1.0\r\ncx HTTP/1.0\r\n"
                                      b"ix HTTP/1.0\r\ndx HTTP/1.0\r\ntx HTTP/1.0\r\nmx / HTTP/1.0\r\n"
                                      b"G HTTP/1.0\r\nversion\r\n"))
    add("http_known_commands", T(b"version HTTP/1.0\r\nverbosity HTTP/1.0\r\nflush_all HTTP/1.0\r\n"
                                 b"lru HTTP/1.0\r\nlru_crawler HTTP/1.0\r\nversion\r\n"))
    add("http_three_letter_m", T(b"mgg / HTTP/1.0\r\n"))
    add("http_after_a_set", T(b"set @a 0 0 1\r\nx\r\n"), T(b"GET /@a HTTP/1.1\r\n"))
    add("bget_is_get", T(b"set @a 5 0 1\r\nx\r\nbget @a @b @a\r\nbget\r\n"))

    # The same key more than once in one read, with TTLs that expire it: memcached reads the keys
    # in order, so a touch that expires an item hides it from the next key of the same line.
    for cmd in (b"get", b"gets", b"gat 0", b"gats 0", b"gat -1", b"gats -1", b"gat 2592001", b"gats 2592001",
                b"gat 1000000000", b"gat 100", b"gats 4294967296"):
        name = b"dup_keys_" + cmd.replace(b" ", b"_").replace(b"-", b"neg")
        add(name.decode(), T(b"set @a 3 100 1\r\nx\r\nset @b 4 0 2\r\nyy\r\n" + cmd + b" @a @a @b @zz @a @b\r\n"
                             b"get @a @b\r\n"))
    add("dup_keys_gat_neg_after_ttl_set", T(b"set @a 0 -1 1\r\nx\r\ngat 100 @a @a\r\nset @a 0 0 1\r\nx\r\n"
                                           b"gat -1 @a\r\ngat 100 @a\r\n"))
    add("dup_keys_touch_neg_then_gat", T(b"set @a 0 0 1\r\nx\r\ntouch @a -1\r\ngat 0 @a @a\r\n"))
    add("dup_keys_across_pipelined_gats", T(b"set @a 0 0 1\r\nx\r\ngat -1 @a\r\ngat -1 @a\r\ngets @a\r\n"))

    # Pipelined flush_all among writes and reads: it orders against everything before and after it
    # on the connection, whichever backend connections their keys use.
    add("flush_between_writes", T(b"set @a 0 0 1\r\nx\r\nflush_all\r\nset @a 0 0 1\r\ny\r\nget @a\r\n"
                                  b"set @b 0 0 1\r\nz\r\nflush_all noreply\r\nget @b\r\nset @b 0 0 1\r\nw\r\n"
                                  b"flush_all 0\r\nverbosity 1\r\nget @a @b\r\nversion\r\n"))
    add("flush_then_many_writes", lambda p, _: b"flush_all\r\n" + b"".join(
        b"set %sk%d 0 0 1\r\n%d\r\n" % (p, i, i % 10) for i in range(64)) + b"get " + b" ".join(
        b"%sk%d" % (p, i) for i in range(64)) + b"\r\n")
    add("many_writes_then_flush", lambda p, _: b"".join(
        b"set %sk%d 0 0 1\r\n%d\r\n" % (p, i, i % 10) for i in range(64)) + b"flush_all\r\nget " + b" ".join(
        b"%sk%d" % (p, i) for i in range(64)) + b"\r\n")
    add("flush_repeated_with_writes", lambda p, _: b"".join(
        b"flush_all noreply\r\nset %sk%d 0 0 1 noreply\r\nx\r\nget %sk%d\r\n" % (p, i, p, i) for i in range(40)))
    add("flush_delayed_among_writes", T(b"set @a 0 0 1\r\nx\r\nflush_all 100\r\nset @b 0 0 1\r\ny\r\n"
                                        b"get @a @b\r\nflush_all 0\r\nget @a @b\r\n"))

    # Long pipelines sent without reading any reply in between.
    add("pipeline_20000_noreply_sets", lambda p, _: b"".join(
        b"set %sk%d 0 0 100 noreply\r\n%s\r\n" % (p, i, b"%100d" % i) for i in range(20000)) + b"get " + b" ".join(
        b"%sk%d" % (p, i) for i in range(0, 20000, 997)) + b"\r\n")
    add("pipeline_5000_gets_of_one_key", lambda p, _: b"set %sa 0 0 1\r\nx\r\n" % p + b"get %sa\r\n" % p * 5000)

    # Lines at and past every length limit.
    def line_of(total, p, head=b"set ", tail=b" 0 0 1\r\n"):
        """A command line of exactly `total` bytes, \\r\\n included, whose key fills the rest."""
        return head + key_of_len(p, total - len(head) - len(tail)) + tail
    add("set_line_16384_bytes", lambda p, _: line_of(16384, p) + b"x\r\nversion\r\n")
    add("set_line_16385_bytes", lambda p, _: line_of(16385, p) + b"x\r\nversion\r\n")
    add("add_key_5000", lambda p, _: line_of(5012, p, b"add ") + b"x\r\nversion\r\n")
    add("cas_key_20000", lambda p, _: line_of(20016, p, b"cas ", b" 0 0 1 1\r\n") + b"x\r\n")
    add("prepend_key_20000_noreply", lambda p, _: line_of(20020, p, b"prepend ", b" 0 0 1 noreply\r\n") + b"x\r\n")
    add("delete_line_16385_bytes", lambda p, _: line_of(16385, p, b"delete ", b"\r\n") + b"version\r\n")
    add("incr_key_3000", lambda p, _: line_of(3010, p, b"incr ", b" 1\r\n") + b"version\r\n")
    add("touch_key_3000", lambda p, _: line_of(3010, p, b"touch ", b" 1\r\n") + b"version\r\n")
    add("unknown_line_16384_bytes", lambda p, _: b"x" * 16382 + b"\r\nversion\r\n")
    add("unknown_line_16385_bytes", lambda p, _: b"x" * 16383 + b"\r\nversion\r\n")
    add("get_line_20000_bytes", lambda p, _: b"set %sa 0 0 1\r\nx\r\n" % p + b"get" + b" %sa" % p * (20000 // (len(p) + 2)) +
        b"\r\n")
    add("gat_line_20000_bytes", lambda p, _: b"gat 0" + b" %sa" % p * (20000 // (len(p) + 2)) + b"\r\nversion\r\n")
    add("line_2048_no_newline_then_rest", lambda p, _: line_of(2050, p)[:-2], T(b"\r\nx\r\nversion\r\n"))
    add("line_2049_no_newline_then_rest", lambda p, _: line_of(2051, p)[:-2], T(b"\r\nx\r\nversion\r\n"))
    add("key_250_get_gat_touch_delete", lambda p, _: (
        b"set %s 0 0 1\r\nx\r\nget %s\r\ngat 0 %s\r\ntouch %s 0\r\ndelete %s\r\nversion\r\n" % ((key_of_len(p, 250),) * 5)))
    # memcached drops the replies it has queued when a get-family key is too long (a bug rend
    # does not copy), so that gat comes first.
    add("key_251_gat_then_noreply_commands", lambda p, _: (
        b"gat 0 %s\r\ntouch %s 0 noreply\r\ndelete %s noreply\r\nincr %s 1 noreply\r\nversion\r\n"
        % ((key_of_len(p, 251),) * 4)))
    return c


def binary_cases():
    c = []

    def add(name, *steps):
        c.append((name, list(steps)))

    # get family.
    add("bin_get_miss", B(lambda p: bget(p + b"a", opaque=7)))
    add("bin_get_hit", B(lambda p: bset(p + b"a", b"hello", flags=0xDEADBEEF) + bget(p + b"a", opaque=9)))
    add("bin_getk_hit_miss", B(lambda p: bset(p + b"a", b"v") + bget(p + b"a", 0x0C, 1) + bget(p + b"b", 0x0C, 2)))
    add("bin_getq_batch", B(lambda p: bset(p + b"a", b"v", 1) + bget(p + b"a", 0x09, 1) + bget(p + b"b", 0x09, 2) +
                             bget(p + b"a", 0x09, 3) + bnoop(4)))
    add("bin_getkq_batch", B(lambda p: bset(p + b"a", b"v", 1) + bset(p + b"c", b"w", 2) + bget(p + b"a", 0x0D, 1) +
                              bget(p + b"b", 0x0D, 2) + bget(p + b"c", 0x0D, 3) + bnoop(4)))
    add("bin_getq_all_miss", B(lambda p: b"".join(bget(p + b"k%d" % i, 0x09, i) for i in range(50)) + bnoop(99)))
    add("bin_get_key_250", B(lambda p: bset(key_of_len(p, 250), b"v") + bget(key_of_len(p, 250), 0x0C)))

    # Storage.
    add("bin_set_add_replace", B(lambda p: bset(p + b"a", b"1") + bset(p + b"a", b"2", op=0x02) +
                                  bset(p + b"b", b"3", op=0x03) + bset(p + b"a", b"4", op=0x03) + bget(p + b"a")))
    add("bin_add_new", B(lambda p: bset(p + b"a", b"1", op=0x02) + bget(p + b"a")))
    add("bin_quiet_storage", B(lambda p: bset(p + b"a", b"1", op=0x11, opaque=1) + bset(p + b"a", b"2", op=0x12, opaque=2) +
                                bset(p + b"b", b"3", op=0x13, opaque=3) + bset(p + b"a", b"4", op=0x13, opaque=4) +
                                bnoop(5) + bget(p + b"a")))
    add("bin_set_with_cas",
        B(lambda p: bset(p + b"a", b"1") + bset(p + b"a", b"2", cas=123456789) + bset(p + b"b", b"2", cas=5)),
        lambda p, prev: bset(p + b"a", b"3", cas=bin_cas_from(prev[:24])) + bget(p + b"a"))
    add("bin_set_zero_length_value", B(lambda p: bset(p + b"a", b"") + bget(p + b"a")))
    add("bin_set_extras_flags_exptime", B(lambda p: bset(p + b"a", b"x", flags=42, exp=100) + bget(p + b"a", 0x0C)))
    add("bin_set_negative_like_exptime", B(lambda p: bset(p + b"a", b"x", exp=0xFFFFFFFF) + bget(p + b"a")))
    add("bin_append_prepend", B(lambda p: bset(p + b"a", b"m", flags=3) + breq(0x0E, p + b"a", b"z") +
                                 breq(0x0F, p + b"a", b"a") + bget(p + b"a")))
    add("bin_append_prepend_miss", B(lambda p: breq(0x0E, p + b"a", b"z") + breq(0x0F, p + b"a", b"a")))
    add("bin_appendq_prependq", B(lambda p: bset(p + b"a", b"m") + breq(0x19, p + b"a", b"z", opaque=1) +
                                   breq(0x1A, p + b"b", b"a", opaque=2) + bnoop(3) + bget(p + b"a")))
    add("bin_append_with_cas_mismatch", B(lambda p: bset(p + b"a", b"m") + breq(0x0E, p + b"a", b"z", cas=77)))

    # delete.
    add("bin_delete_hit_miss", B(lambda p: bset(p + b"a", b"1") + breq(0x04, p + b"a") + breq(0x04, p + b"a")))
    add("bin_deleteq", B(lambda p: bset(p + b"a", b"1") + breq(0x14, p + b"a", opaque=1) +
                          breq(0x14, p + b"a", opaque=2) + bnoop(3)))
    add("bin_delete_with_cas_mismatch", B(lambda p: bset(p + b"a", b"1") + breq(0x04, p + b"a", cas=5) + bget(p + b"a")))

    # incr / decr.
    add("bin_incr_decr_hit", B(lambda p: bset(p + b"n", b"10") + barith(p + b"n", 5) + barith(p + b"n", 3, op=0x06) +
                                bget(p + b"n")))
    add("bin_incr_miss_no_create", B(lambda p: barith(p + b"n", 1) + barith(p + b"n", 1, op=0x06)))
    add("bin_incr_miss_creates", B(lambda p: barith(p + b"n", 1, initial=42, exp=0) + barith(p + b"n", 1, initial=42, exp=0) +
                                    bget(p + b"n")))
    add("bin_decr_miss_creates_with_exptime", B(lambda p: barith(p + b"n", 1, initial=7, exp=100, op=0x06) + bget(p + b"n")))
    add("bin_incr_non_numeric", B(lambda p: bset(p + b"n", b"abc") + barith(p + b"n", 1) + barith(p + b"n", 1, op=0x06)))
    add("bin_incr_wraps_decr_floors", B(lambda p: bset(p + b"n", b"18446744073709551615") + barith(p + b"n", 2) +
                                         barith(p + b"n", 100, op=0x06)))
    add("bin_incrq_decrq", B(lambda p: bset(p + b"n", b"1") + barith(p + b"n", 1, op=0x15, opaque=1) +
                              barith(p + b"n", 1, op=0x16, opaque=2) + barith(p + b"m", 1, op=0x15, opaque=3) +
                              barith(p + b"q", 1, initial=5, exp=0, op=0x15, opaque=4) + bnoop(5) + bget(p + b"n")))
    add("bin_incr_with_cas_mismatch", B(lambda p: bset(p + b"n", b"1") + barith(p + b"n", 1, cas=99)))

    # touch / gat.
    add("bin_touch_hit_miss", B(lambda p: bset(p + b"a", b"v", 5) + btouch(p + b"a", 100) + btouch(p + b"b", 100)))
    add("bin_gat_hit_miss", B(lambda p: bset(p + b"a", b"v", 5) + btouch(p + b"a", 100, 0x1D) + btouch(p + b"b", 100, 0x1D)))
    add("bin_gatk_hit_miss", B(lambda p: bset(p + b"a", b"v", 5) + btouch(p + b"a", 100, 0x23) + btouch(p + b"b", 100, 0x23)))
    add("bin_gatq_gatkq_batch", B(lambda p: bset(p + b"a", b"v", 5) + btouch(p + b"a", 100, 0x1E, 1) +
                                   btouch(p + b"b", 100, 0x1E, 2) + btouch(p + b"a", 100, 0x24, 3) +
                                   btouch(p + b"b", 100, 0x24, 4) + bnoop(5)))
    add("bin_touch_expire_now", B(lambda p: bset(p + b"a", b"v") + btouch(p + b"a", 0xFFFFFFFF) + bget(p + b"a")))

    # Others.
    add("bin_noop", B(lambda p: bnoop(0xABCDEF01)))
    add("bin_version", B(lambda p: breq(0x0B, opaque=3)))
    # memcached 1.6.18 has no binary verbosity: "Unknown command", and the body length is swallowed
    # after the extras were read (hence the 4 bytes of padding before the noop).
    add("bin_verbosity", B(lambda p: breq(0x1B, extras=struct.pack(">I", 1), opaque=4) + b"PADD" + bnoop(5)))
    add("bin_flush", B(lambda p: bset(p + b"a", b"v") + breq(0x08, opaque=1) + bget(p + b"a")))
    add("bin_flush_with_zero_delay", B(lambda p: bset(p + b"a", b"v") + breq(0x08, extras=struct.pack(">I", 0)) + bget(p + b"a")))
    add("bin_flushq", B(lambda p: bset(p + b"a", b"v") + breq(0x18, opaque=1) + bnoop(2) + bget(p + b"a")))
    add("bin_flush_delayed_then_now", B(lambda p: bset(p + b"a", b"v") + breq(0x08, extras=struct.pack(">I", 100)) +
                                         bget(p + b"a") + breq(0x08) + bget(p + b"a")))
    add("bin_stat_reset", B(lambda p: breq(0x10, b"reset", opaque=6)))
    add("bin_stat_unknown_group", B(lambda p: breq(0x10, b"bogus_group", opaque=6)))
    add("bin_quit", B(lambda p: breq(0x07, opaque=8)))
    add("bin_quitq", B(lambda p: breq(0x17, opaque=8)))
    add("bin_quit_mid_pipeline", B(lambda p: bset(p + b"a", b"v") + bget(p + b"a") + breq(0x07) + bget(p + b"a")))
    add("bin_quitq_mid_pipeline", B(lambda p: bset(p + b"a", b"v") + bget(p + b"a") + breq(0x17) + bget(p + b"a")))
    add("bin_request_in_pieces", B(lambda p: bset(p + b"a", b"hello")[:10]),
        B(lambda p: bset(p + b"a", b"hello")[10:30]), B(lambda p: bset(p + b"a", b"hello")[30:] + bget(p + b"a")))
    add("bin_many_pipelined", B(lambda p: b"".join(bset(p + b"k%d" % i, b"%d" % i, opaque=i) + bget(p + b"k%d" % i, opaque=i)
                                                   for i in range(100))))

    # Malformed packets.
    add("bin_bad_magic_after_valid", B(lambda p: bnoop(1) + bhdr(0x0A, magic=0x81) + bnoop(2)))
    add("bin_get_then_bad_magic", B(lambda p: bset(p + b"a", b"v") + bget(p + b"a", opaque=1) + bhdr(0x0A, magic=0x00)))
    add("bin_get_then_keylen_251", B(lambda p: bset(p + b"a", b"v") + bget(p + b"a", opaque=1) + bget(key_of_len(p, 251))))
    add("bin_getq_hit_then_invalid", B(lambda p: bset(p + b"a", b"v") + bget(p + b"a", 0x09, 1) + breq(0x00) + bnoop(2)))
    add("bin_text_after_binary", B(lambda p: bnoop(1) + b"get foo\r\n" + b"x" * 20))
    add("bin_keylen_251_get", B(lambda p: bget(key_of_len(p, 251)) + bnoop(1)))
    add("bin_keylen_251_set", B(lambda p: bset(key_of_len(p, 251), b"v") + bnoop(1)))
    add("bin_keylen_251_unknown_opcode", B(lambda p: breq(0x55, key_of_len(p, 251)) + bnoop(1)))
    add("bin_get_with_extras", B(lambda p: breq(0x00, p + b"a", extras=b"\0\0\0\0") + bnoop(1)))
    add("bin_get_without_key", B(lambda p: breq(0x00) + bnoop(1)))
    add("bin_get_with_value", B(lambda p: breq(0x00, p + b"a", b"value") + bnoop(1)))
    add("bin_set_extlen_4", B(lambda p: breq(0x01, p + b"a", b"v", extras=b"\0\0\0\0") + bnoop(1)))
    add("bin_set_no_key", B(lambda p: breq(0x01, b"", b"v", extras=b"\0" * 8) + bnoop(1)))
    add("bin_incr_extlen_8", B(lambda p: breq(0x05, p + b"n", extras=b"\0" * 8) + bnoop(1)))
    add("bin_incr_with_value", B(lambda p: breq(0x05, p + b"n", b"zz", extras=b"\0" * 20) + bnoop(1)))
    add("bin_delete_with_extras", B(lambda p: breq(0x04, p + b"a", extras=b"\0\0\0\0") + bnoop(1)))
    add("bin_append_with_extras", B(lambda p: breq(0x0E, p + b"a", b"v", extras=b"\0" * 8) + bnoop(1)))
    add("bin_noop_with_body", B(lambda p: breq(0x0A, b"", b"xy") + bnoop(1)))
    add("bin_version_with_key", B(lambda p: breq(0x0B, b"k") + bnoop(1)))
    add("bin_quit_with_body", B(lambda p: breq(0x07, b"", b"x") + bnoop(1)))
    add("bin_flush_extlen_8", B(lambda p: breq(0x08, extras=b"\0" * 8) + bnoop(1)))
    add("bin_flush_with_key", B(lambda p: breq(0x08, b"k") + bnoop(1)))
    add("bin_verbosity_no_extras", B(lambda p: breq(0x1B) + bnoop(1)))
    add("bin_stat_with_value", B(lambda p: breq(0x10, b"reset", bnoop(7)) + bnoop(1)))
    add("bin_stat_with_extras", B(lambda p: breq(0x10, extras=b"\0\0\0\0") + bnoop(1)))
    add("bin_touch_no_extras", B(lambda p: breq(0x1C, p + b"a") + bnoop(1)))
    add("bin_touch_with_value", B(lambda p: bset(p + b"a", b"v") + breq(0x1C, p + b"a", bnoop(7), extras=b"\0\0\0\x64") +
                                   bnoop(1)))
    add("bin_gat_with_value", B(lambda p: bset(p + b"a", b"v") + breq(0x1D, p + b"a", bnoop(7), extras=b"\0\0\0\x64") +
                                 bnoop(1)))
    add("bin_keylen_over_bodylen", B(lambda p: bhdr(0x00, keylen=5, bodylen=2) + b"ab" + bnoop(1)))
    add("bin_keylen_plus_extlen_over_bodylen", B(lambda p: bhdr(0x01, keylen=2, extlen=8, bodylen=9) + b"\0" * 9 + bnoop(1)))
    add("bin_unknown_opcode_with_value", B(lambda p: breq(0x55, b"", b"some body") + bnoop(1)))
    add("bin_unknown_opcode_empty", B(lambda p: breq(0x55) + bnoop(1)))
    # memcached reads the key, then swallows the whole body length: 3 bytes more than the body.
    add("bin_unknown_opcode_with_key", B(lambda p: breq(0x55, b"key", b"val") + b"PAD" + bnoop(1)))
    add("bin_unknown_opcode_with_extras", B(lambda p: breq(0x55, b"", b"", extras=b"12345") + b"12345" + bnoop(1)))
    add("bin_unknown_opcode_0xff", B(lambda p: breq(0xFF, b"", b"x" * 30) + bnoop(1)))
    add("bin_sasl_list_mechs", B(lambda p: breq(0x20) + bnoop(1)))
    add("bin_get_bodylen_huge", B(lambda p: bhdr(0x00, keylen=1, bodylen=0xFFFFFFFF) + b"a" + bnoop(1)))
    add("bin_header_only_then_rest", B(lambda p: bset(p + b"a", b"v")[:24]), B(lambda p: bset(p + b"a", b"v")[24:] + bnoop(1)))
    add("bin_datatype_and_vbucket_set", B(lambda p: bhdr(0x0A, datatype=1, vbucket=7, opaque=3)))

    # Too large.
    add("bin_set_too_large", B(lambda p: bset(p + b"a", b"x") + bset(p + b"a", b"v" * BIG, opaque=2) + bget(p + b"a") +
                                bnoop(3)))
    add("bin_setq_too_large", B(lambda p: bset(p + b"a", b"x") + bset(p + b"a", b"v" * BIG, op=0x11, opaque=2) +
                                 bget(p + b"a") + bnoop(3)))
    add("bin_add_too_large_keeps_old", B(lambda p: bset(p + b"a", b"x") + bset(p + b"a", b"v" * BIG, op=0x02) +
                                          bget(p + b"a")))
    add("bin_append_too_large", B(lambda p: bset(p + b"a", b"x") + breq(0x0E, p + b"a", b"v" * BIG) + bget(p + b"a")))
    add("bin_set_exactly_1mib", B(lambda p: bset(p + b"a", b"x") + bset(p + b"a", b"v" * (1 << 20)) + bget(p + b"a", 0x0D) +
                                   bnoop()))
    add("bin_set_bodylen_2pow31_plus", B(lambda p: bhdr(0x01, keylen=2, extlen=8, bodylen=0x80000010, opaque=1) +
                                          b"\0" * 8 + p[:2] + b"\0" * 32 + bnoop(2)))
    add("bin_set_bodylen_ffffffff", B(lambda p: bhdr(0x01, keylen=2, extlen=8, bodylen=0xFFFFFFFF, opaque=1) +
                                       b"\0" * 8 + p[:2] + bnoop(2)))

    # The same key touched twice in a row with an expiry that ends it (past absolute times; the
    # binary protocol has no negative TTL), and quiet variants in one batch.
    for exp in (0, 2592001, 1000000000, 100):
        add("bin_dup_gat_exp_%d" % exp, B(lambda p, exp=exp: bset(p + b"a", b"v", 5) + btouch(p + b"a", exp, 0x1D, 1) +
                                          btouch(p + b"a", exp, 0x23, 2) + bget(p + b"a", 0x0C, 3)))
        add("bin_dup_gatq_exp_%d" % exp, B(lambda p, exp=exp: bset(p + b"a", b"v", 5) + btouch(p + b"a", exp, 0x1E, 1) +
                                           btouch(p + b"a", exp, 0x24, 2) + btouch(p + b"a", exp, 0x1E, 3) + bnoop(4)))
    add("bin_touch_past_then_gat", B(lambda p: bset(p + b"a", b"v") + btouch(p + b"a", 2592001) +
                                      btouch(p + b"a", 0, 0x1D, 2) + bget(p + b"a", 0x09, 3) + bnoop(4)))

    # flush among pipelined writes and reads, on keys spread over every backend connection.
    add("bin_flush_between_writes", B(lambda p: b"".join(bset(p + b"k%d" % i, b"%d" % i, opaque=i) for i in range(32)) +
                                       breq(0x08, opaque=100) +
                                       b"".join(bset(p + b"j%d" % i, b"%d" % i, opaque=i) for i in range(32)) +
                                       b"".join(bget(p + b"k%d" % i, 0x0D, i) for i in range(32)) +
                                       b"".join(bget(p + b"j%d" % i, 0x0D, i) for i in range(32)) + bnoop(101)))
    add("bin_flushq_between_writes", B(lambda p: b"".join(breq(0x18, opaque=i) + bset(p + b"k%d" % i, b"v", op=0x11) +
                                                          bget(p + b"k%d" % i, 0x0D, i) for i in range(32)) + bnoop(99)))
    add("bin_pipeline_20000_setq", B(lambda p: b"".join(bset(p + b"k%d" % i, b"%100d" % i, op=0x11, opaque=i)
                                                        for i in range(20000)) +
                                      b"".join(bget(p + b"k%d" % i, 0x0D, i) for i in range(0, 20000, 997)) + bnoop(1)))
    return c


def other_text_cases():
    """Text commands memcached 1.6.18 serves beyond the classic set (meta commands, admin)."""
    c = []

    def add(name, *steps):
        c.append((name, list(steps)))

    add("shutdown_disabled", T(b"shutdown\r\n"))
    return c


# Where rend knowingly answers differently, with the reason. memcached drops the replies it had
# queued when it closes a binary connection on a bad magic byte; rend sends the replies of every
# request it executed before the unframeable bytes, then closes. (memcached does the same for a
# text line too long to frame only when the requests before it were answered in an earlier read,
# e.g. before an mn; in the same read it drops their replies too: docs/compatibility.md.) Both
# close; rend's extra bytes are well-formed replies.
DEVIATIONS = {
    "bin_get_then_bad_magic": "replies to the requests before the bad magic are sent",
    "bin_set_bodylen_2pow31_plus": "the 'Too large.' reply before the bad magic is sent",
}


def only_replies_then_close(data):
    """True if `data` is complete binary responses followed by a close."""
    if not data.endswith(b"<CLOSED>"):
        return False
    data = data[:-len(b"<CLOSED>")]
    i = 0
    while i + 24 <= len(data) and data[i] == 0x81:
        i += 24 + struct.unpack(">I", data[i + 8:i + 12])[0]
    return i == len(data)


class ConformanceTest(ProcessTest):
    def setUp(self):
        super().setUp()
        self.direct = self.start_memcached()
        # The default shape: two workers, each with the default two connections to L1, so the
        # cases meet what splitting one client's requests over connections can reorder.
        self.rend = self.start_rend(workers=2)
        self.pids = self.rend.worker_pids()

    def run_corpus(self, label, cases, normalize=None):
        """`normalize`: what both sides' bytes go through before comparing (by default the text or
        binary normalization, by the case's first byte)."""
        failures = []
        for i, (name, steps) in enumerate(cases):
            prefix = b"%s%03d_" % (label.encode(), i)
            binary = steps[0](prefix, b"")[:1] == b"\x80"
            norm = normalize or (normalize_binary if binary else normalize_text)
            direct, rend = run_case(self.direct.port, self.rend.port, prefix, steps,
                                    same=lambda a, b: norm(a) == norm(b))
            nd, nr = norm(direct), norm(rend)
            if name in DEVIATIONS and direct == b"<CLOSED>" and only_replies_then_close(rend):
                continue
            if nd != nr:
                failures.append(f"[{name}]\n  memcached: {short(nd)}\n  rend:      {short(nr)}")
        print(f"\n{label}: {len(cases)} cases, {len(cases) - len(failures)} identical, {len(failures)} differ")
        for f in failures:
            print(f)
        self.assertEqual(self.rend.worker_pids(), self.pids, "a worker restarted during the corpus")
        if failures:
            self.fail(f"{len(failures)} of {len(cases)} {label} cases differ from memcached:\n" + "\n".join(failures))

    def test_text_protocol(self):
        self.run_corpus("t", text_cases())

    def test_binary_protocol(self):
        self.run_corpus("b", binary_cases())

    def test_other_memcached_text_commands(self):
        self.run_corpus("m", other_text_cases())


if __name__ == "__main__":
    import unittest
    unittest.main()

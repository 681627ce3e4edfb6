"""Differential corpus for memcached's meta protocol (mg, ms, md, ma, me, mn), as memcached 1.6.18
answers it. Same shape as test_conformance's corpus: (name, steps), each step a function
(prefix, reply_so_far) -> bytes. What memcached answers to each: docs/meta-protocol.md.

Step builders:
  T(b"...")   b"@" stands for the case's key prefix (from test_conformance).
  M(b"...")   like T, and also b"#" = base64(prefix + b"\\x00bin") and b"$" = base64(prefix + b"\\xffmiss"),
              two valid base64 keys of the case (binary keys for the b flag).
  TC(b"...")  like T, and {c} = the last CAS this side has seen in a meta reply (c<n> token),
              {c+1} / {c-1} that value plus / minus one, {c0} the first CAS seen in the case.

Determinism rules the cases follow (two memcacheds started at different times must agree):
  - every TTL that a t flag or me reports ends in 5 (or is 0/-1), see normalize_meta;
  - no t flag on items whose expiry lies in the past (t would print uptime-dependent garbage);
  - no mg/get of a key followed by ma of the same key in one step: memcached then copies the item
    instead of updating it in place (the mg's response still holds a reference), and whether it
    does depends on how the requests were batched (it loses a T flag, shrinks padding, clears X);
  - no sleeps.
"""
import base64
import re

from test_conformance import T, key_of_len

BIG = 2000000  # over memcached's default 1 MiB item limit

# ---- step builders ------------------------------------------------------------------------------


def _expand(data, p):
    data = data.replace(b"#", base64.b64encode(p + b"\x00bin"))
    data = data.replace(b"$", base64.b64encode(p + b"\xffmiss"))
    return data.replace(b"@", p)


def M(*parts):
    """A text step with @ (prefix), # and $ (base64 keys of the case)."""
    data = b"".join(parts)
    return lambda p, _prev: _expand(data, p)


_META_LINE = re.compile(rb"^(?:HD|VA \d+|EN|NF|NS|EX)(?: [^\r\n]*)?\r?$", re.M)
_CAS_TOKEN = re.compile(rb" c(\d+)(?= |\r|$)")


def meta_cases_seen(prev):
    """Every CAS value (c<n> token) in meta reply lines of `prev`, in order."""
    out = []
    for line in _META_LINE.finditer(prev):
        out += [int(x) for x in _CAS_TOKEN.findall(line.group(0))]
    return out


def TC(*parts):
    """A step that uses a CAS this side received earlier in the case."""
    data = b"".join(parts)

    def step(p, prev):
        seen = [c for c in meta_cases_seen(prev) if c] or [0]
        c = seen[-1]
        d = data.replace(b"{c}", b"%d" % c).replace(b"{c+1}", b"%d" % (c + 1))
        d = d.replace(b"{c-1}", b"%d" % (c - 1)).replace(b"{c0}", b"%d" % seen[0])
        return _expand(d, p)
    return step


# ---- normalization ------------------------------------------------------------------------------

_STATUS = (b"HD", b"EN", b"NF", b"NS", b"EX")


def _blur_seconds(tok, flag):
    """t35/t34 -> t3~ ; t-1 stays; l0/l1 -> l~ (drops the last digit: +-1 s never crosses a 5)."""
    num = tok[len(flag):]
    if num == b"-1" or not num.isdigit():
        return tok
    return flag + num[:-1] + b"~"


def _norm_flags(tokens):
    out = []
    for tok in tokens:
        if tok[:1] == b"c" and tok[1:].isdigit() and tok != b"c0":
            tok = b"c<cas>"
        elif tok[:1] in (b"t", b"l"):
            tok = _blur_seconds(tok, tok[:1])
        out.append(tok)
    return out


def _norm_me(line):
    body = line.rstrip(b"\r\n")
    parts = body.split(b" ")
    out = []
    for tok in parts:
        if tok.startswith(b"cas=") and tok[4:].isdigit():
            tok = b"cas=<cas>"
        elif tok.startswith(b"la=") and tok[3:].isdigit():
            tok = b"la=<la>"
        elif tok.startswith(b"exp="):
            v = tok[4:]
            if v != b"-1" and v.lstrip(b"-").isdigit():
                tok = b"exp=" + v[:-1] + b"~"
        out.append(tok)
    return b" ".join(out) + line[len(body):]


def normalize_meta(data):
    """Normalize what legitimately differs between two memcacheds for a meta exchange.

    - CAS: ` c<n>` flag tokens of HD/VA/EN/NF/NS/EX lines -> ` c<cas>` (c0, the "no CAS" answer
      of a failed ms, stays exact); ME's `cas=<n>` -> `cas=<cas>`; classic `VALUE k f n <cas>`.
    - Seconds: `t<n>` (TTL remaining) and `l<n>` (since last access) lose their last digit
      (t35 -> t3~); t-1 stays exact. ME's `exp=<n>` the same (exp=-1 exact), `la=<n>` -> `la=<la>`.
      A second boundary between two requests of a case shifts these by 1, so the corpus uses TTLs
      ending in 5: 35 and 34 both read t3~, while t35 vs t36 or t40 still differ.
    - VERSION line as in test_conformance.
    Data blocks (after VA <n> and VALUE lines) are copied untouched.
    """
    closed = data.endswith(b"<CLOSED>")
    if closed:
        data = data[:-len(b"<CLOSED>")]
    out = []
    i = 0
    n = len(data)
    while i < n:
        j = data.find(b"\n", i)
        if j < 0:
            out.append(data[i:])
            break
        line = data[i:j + 1]
        i = j + 1
        body = line.rstrip(b"\r\n")
        end = line[len(body):]
        toks = body.split(b" ")
        if toks[0] == b"VA" and len(toks) >= 2 and toks[1].isdigit():
            out.append(b" ".join(toks[:2] + _norm_flags(toks[2:])) + end)
            size = int(toks[1]) + 2
            out.append(data[i:i + size])
            i += size
        elif toks[0] in _STATUS:
            out.append(b" ".join(toks[:1] + _norm_flags(toks[1:])) + end)
        elif toks[0] == b"ME":
            out.append(_norm_me(line))
        elif toks[0] == b"VALUE" and len(toks) >= 4 and toks[3].isdigit():
            if len(toks) == 5:
                toks[4] = b"<cas>"
            out.append(b" ".join(toks) + end)
            size = int(toks[3]) + 2
            out.append(data[i:i + size])
            i += size
        elif toks[0] == b"VERSION":
            out.append(b"VERSION <version>" + end)
        else:
            out.append(line)
    return b"".join(out) + (b"<CLOSED>" if closed else b"")


# ---- the corpus ---------------------------------------------------------------------------------


def meta_cases():
    c = []

    def add(name, *steps):
        c.append((name, list(steps)))

    SET_A = b"set @a 5 0 3\r\nabc\r\n"

    # mg without flags: HD on a hit, EN on a miss; no flags at all.
    add("mg_no_flags_hit_miss", T(SET_A + b"mg @a\r\nmg @b\r\nmn\r\n"))

    # Each mg flag alone, on a hit and on a miss (a miss echoes only O and k).
    for f in (b"c", b"f", b"h", b"k", b"l", b"O", b"Oop", b"q", b"s", b"t", b"u", b"v"):
        add("mg_flag_%s_hit_miss" % f.decode(), T(SET_A + b"mg @a " + f + b"\r\nmg @b " + f + b"\r\nmn\r\n"))
    add("mg_flag_b_hit_miss", M(b"ms # 3 b\r\nabc\r\nmg # b\r\nmg $ b\r\nmg # b v\r\nmn\r\n"))

    # Order of returned flags: request order; W/X/Z always last; k with b gives "k<b64> b".
    add("mg_flags_in_request_order", T(SET_A + b"mg @a s v f t c k O9 h l\r\nmg @a v k s\r\nmg @a t s c f\r\n"
                                       b"mg @a O1 k\r\nmg @a k O1\r\nmn\r\n"))
    add("mg_miss_echoes_O_and_k_in_order", T(b"mg @a O1 k v s t c f h l\r\nmg @a k O1 s\r\nmg @a O k\r\nmn\r\n"))
    add("mg_b_k_order", M(b"ms # 3 b\r\nabc\r\nmg # b v k\r\nmg # k b v\r\nmg # k v b O1\r\nmg $ b k O2\r\n"
                          b"mg $ O2 k b\r\nmn\r\n"))
    add("mg_h_and_l_and_u", T(b"set @a 0 0 1\r\nx\r\nmg @a h l\r\nmg @a h\r\nmg @a u h\r\n"
                              b"set @b 0 0 1\r\nx\r\nmg @b u h\r\nmg @b h\r\nmg @b v u\r\nmg @b h\r\nmn\r\n"))
    add("mg_empty_value_s_v", T(b"set @a 0 0 0\r\n\r\nmg @a s v f\r\nmn\r\n"))
    add("mg_all_17_flags", T(SET_A + b"mg @a v k s f t c h l u O1 P L T0 N0 R0 F1 C1\r\nmn\r\n"))
    add("mg_ignored_ms_flags", T(SET_A + b"mg @a P L v\r\nmg @a Pfoo Lbar v\r\nmg @a C5 v\r\nmg @a F5 v\r\n"
                                 b"mg @a I v\r\nmg @a MS v\r\nmg @a J5 v\r\nmg @a D5 v\r\nmn\r\n"))

    # q: mg suppresses only EN (HD and VA are still sent); errors are always sent.
    add("mg_q_hit_miss", T(SET_A + b"mg @a q\r\nmg @a q v\r\nmg @a k q\r\nmg @b q\r\nmg @b q v k\r\n"
                           b"mg @b k O1 q\r\nmn\r\n"))
    add("mg_q_errors_still_sent", T(b"mg @a q y\r\nmg @a q q\r\nmg @a q O" + b"x" * 33 + b"\r\nmn\r\n"))

    # base64 keys: decoding rules of memcached's decoder (non-alphabet bytes are skipped, the count
    # must be a multiple of 4, a padded block ends the key).
    add("mg_b_invalid_keys", T(b"mg ==== b\r\nmg A b\r\nmg AA b k\r\nmg AA== b k\r\nmg Zm9 b\r\nmg Zm9vY b\r\n"
                               b"mg Zm9vYg= b k\r\nmn\r\n"))
    add("mg_b_skips_non_alphabet", T(b"ms QUJD 1 b\r\nx\r\nmg QU!JD b v k\r\nmg QUJD== b v k\r\n"
                                     b"mg QUJD_ b v\r\nmd QUJD b\r\nmn\r\n"))
    add("mg_b_key_with_non_alphabet", T(b"mg a_b-c b\r\nmg ab_cd b k\r\nmg ab.cd== b k\r\nmn\r\n"))
    add("b_key_seen_without_b", M(b"ms # 3 b\r\nabc\r\nmg # v k\r\nme #\r\nme # b\r\nmn\r\n"))
    add("binary_key_plain_fetch", T(b"ms Zm9vYmFy 3 b\r\nabc\r\nmg foobar v k\r\nme foobar\r\nmd foobar\r\n"
                                    b"mg Zm9vYmFy b\r\nmn\r\n"))
    add("ms_b_k_c_O_order", M(b"ms # 3 b k c O5\r\nxyz\r\nms # 3 O1 c k b\r\nabc\r\nmn\r\n"))

    # Key lengths: 250 is fine, 251 is an error; the 250 limit applies to the base64 token itself.
    add("mg_key_250_251", lambda p, _: b"mg %s v\r\nmg %s v\r\nmn\r\n" % (key_of_len(p, 250), key_of_len(p, 251)))
    add("ms_key_250_251", lambda p, _: (b"ms %s 1\r\nx\r\nmg %s s\r\nms %s 3\r\nabc\r\nmn\r\n" %
                                        (key_of_len(p, 250), key_of_len(p, 250), key_of_len(p, 251))))
    add("md_ma_me_key_251", lambda p, _: b"md %s\r\nma %s\r\nme %s\r\nmn\r\n" % ((key_of_len(p, 251),) * 3))
    add("mg_b_token_over_250", lambda p, _: (b"mg %s b v\r\nmn\r\n" % base64.b64encode((p * 60)[:189])))
    add("ms_b_token_248", lambda p, _: (b"ms %s 1 b\r\nx\r\nmg %s b k v\r\nmn\r\n" %
                                        ((base64.b64encode((p * 60)[:186]),) * 2)))
    add("mg_key_3000", lambda p, _: b"mg %s v\r\nmn\r\n" % key_of_len(p, 3000))

    # Flag syntax errors (mg's messages).
    add("mg_unknown_flags", T(SET_A + b"mg @a y\r\nmg @a v Y\r\nmg @a 1\r\nmg @a -v\r\nmg @a E v\r\nmg @a x\r\n"
                              b"mg @b y\r\nmg @a ~\r\nmn\r\n"))
    add("mg_duplicate_flags", T(SET_A + b"mg @a v v\r\nmg @b v v\r\nmg @a N5 N6\r\nmg @a O1 O2\r\nmn\r\n"))
    add("mg_flag_byte_over_126", T(SET_A + b"mg @a v \xc3\xa9\r\nmg @a \x7f\r\nmn\r\n"))
    add("mg_17_vs_18_flags", T(SET_A + b"mg @a v k s f t c h l u O P L q T0 N0 R0 I\r\n"
                               b"mg @a v k s f t c h l u O P L q T0 N0 R0 I F\r\n"
                               b"mg @a v k s f t c h l u O P L q T N R I F C J D w x y z a A\r\nmn\r\n"))
    # The 32-byte opaque limit counts the O itself: O + 31 bytes is the longest.
    add("mg_opaque_31_32", T(SET_A + b"mg @a O" + b"a" * 31 + b" v\r\nmg @a O" + b"a" * 32 + b" v\r\n"
                             b"mg @b O" + b"a" * 31 + b"\r\nmg @b O" + b"a" * 32 + b"\r\nmn\r\n"))
    add("mg_NRT_bad_tokens", T(SET_A + b"mg @a N\r\nmg @a Nabc\r\nmg @a R\r\nmg @a Rx\r\nmg @a T\r\n"
                               b"mg @a Tx\r\nmg @a T5x\r\nmg @a T 5\r\nmg @b N\r\nmg @b v\r\nmn\r\n"))
    add("mg_bad_numeric_tokens", T(SET_A + b"mg @a Cabc\r\nmg @a Fabc\r\nmg @a Jx\r\nmg @a Dx\r\nmg @a M\r\n"
                                   b"mg @a MXX\r\nmn\r\n"))
    add("mg_error_precedence", T(b"mg @a Cx Jx\r\nmg @a Jx Cx\r\nmg @a Jx Fx\r\nmg @a Fx Jx\r\nmg @a Cx y\r\n"
                                 b"mg @a y Cx\r\nmg @a Cx v v\r\nmg @a Fx\r\nmg @a Fx b\r\nmg @a MXX Cx\r\nmn\r\n"))

    # T (touch) and t: flags act in request order (t before T shows the old TTL).
    add("mg_T_then_t", T(SET_A + b"mg @a T35 t v\r\nmg @a t v\r\nmg @a t v T95\r\nmg @a t\r\nmn\r\n"))
    add("mg_T_hit_miss", T(SET_A + b"mg @a T35\r\nmg @a t\r\nmg @b T35\r\nmg @b T35 q\r\nmn\r\n"))
    add("mg_T0_T_negative", T(SET_A + b"mg @a T0 v t\r\nmg @a v t\r\nmg @a T-1 v\r\nmg @a v\r\nmn\r\n"))
    add("mg_T_after_t_negative", T(SET_A + b"mg @a v t T-1\r\nmg @a v\r\nmn\r\n"))

    # Stampede control: N (vivify on miss), R (recache win), W/X/Z.
    add("mg_N_vivify_sequence", T(b"mg @a N35 v\r\nmg @a N35 v\r\nmg @a N35 v\r\nmg @a v\r\nmg @a N35 v t\r\nmn\r\n"))
    add("mg_N_with_flags", T(b"mg @a N35 v t c s f k O1\r\nmg @a v t c s f k O1 N35\r\nmg @a N35 h l s f k\r\n"
                             b"mg @a h l\r\nmn\r\n"))
    add("mg_N_without_v", T(b"mg @a N35 t\r\nmg @a t\r\nmg @a s f\r\nme @a\r\nmn\r\n"))
    add("mg_N_q", T(b"mg @a N35 q\r\nmg @a N35 q\r\nmg @a q v\r\nmg @a q\r\nmn\r\n"))
    add("mg_N_then_ms_clears_W_Z", T(b"mg @a N35 v\r\nms @a 3 T65\r\nabc\r\nmg @a v\r\nmg @a v t\r\nmn\r\n"))
    add("mg_N0_never_expires", T(b"mg @a N0 v t\r\nmg @a v t\r\nmn\r\n"))
    add("mg_N_negative_expires", T(b"mg @a N-1 v\r\nmg @a v\r\nmn\r\n"))
    add("mg_N_T_order", T(b"mg @a N35 T65 t v\r\nmg @a t\r\nmg @b T65 N35 t v\r\nmg @b t\r\n"
                          b"mg @c t N35 T65 v\r\nmg @c t\r\nmn\r\n"))
    add("mg_N_T_negative", T(b"mg @a N35 T-1 v\r\nmg @a v\r\nmn\r\n"))
    add("mg_N_on_hit_no_W", T(SET_A + b"mg @a N35 v\r\nmg @a N35 v\r\nmn\r\n"))
    add("mg_N_R_miss", T(b"mg @a N35 R35 v\r\nmg @a N35 R35 v\r\nmn\r\n"))
    add("mg_N_R_hit_low_ttl", T(b"set @a 0 15 3\r\nabc\r\nmg @a N35 R35 v\r\nmg @a N35 R35 v\r\nmn\r\n"))
    add("mg_R_low_ttl_wins_once", T(b"set @a 0 15 3\r\nabc\r\nmg @a R35 v\r\nmg @a R35 v\r\nmg @a v\r\n"
                                    b"mg @a R35 v\r\nmn\r\n"))
    add("mg_R_no_ttl", T(b"set @a 0 0 3\r\nabc\r\nmg @a R35 v\r\nmg @a R35 v\r\nmn\r\n"))
    add("mg_R_high_ttl", T(b"set @a 0 105 3\r\nabc\r\nmg @a R35 v\r\nmg @a R35 v\r\nmn\r\n"))
    add("mg_R_T_order", T(b"set @a 0 15 3\r\nabc\r\nmg @a R35 t v\r\nmg @a R35 T105 t v\r\nmg @a R35 v\r\n"
                          b"set @b 0 15 3\r\nabc\r\nmg @b T105 R35 v\r\nmg @b R35 v\r\nmn\r\n"))
    add("mg_R_win_reset_by_set", T(b"set @a 0 15 3\r\nabc\r\nmg @a R35 v\r\nset @a 0 15 3\r\nxyz\r\n"
                                   b"mg @a R35 v\r\nmn\r\n"))
    add("mg_R_miss", T(b"mg @a R35 v\r\nmg @a R35\r\nmn\r\n"))

    # md I: stale (X), the first fetch wins (X W), later ones see Z X; ms clears it.
    add("md_I_then_mg_twice", T(SET_A + b"md @a I\r\nmg @a v c\r\nmg @a v c\r\nmg @a v\r\nmn\r\n"))
    add("md_I_T_then_ms_clears", T(SET_A + b"md @a I T35\r\nmg @a v t\r\nmg @a v t\r\nms @a 3\r\nxyz\r\n"
                                   b"mg @a v t\r\nmn\r\n"))
    add("md_I_twice_then_again", T(SET_A + b"md @a I\r\nmd @a I\r\nmg @a v\r\nmg @a v\r\nmd @a I\r\nmg @a v\r\nmn\r\n"))
    add("md_I_all_flags_order", T(SET_A + b"md @a I\r\nmg @a s v t f c k O1 h l\r\nmn\r\n"))
    add("md_I_mg_q", T(SET_A + b"md @a I\r\nmg @a q\r\nmg @a q\r\nmn\r\n"))
    add("md_I_then_R", T(b"set @a 0 15 3\r\nabc\r\nmd @a I\r\nmg @a R35 v\r\nmg @a R35 v\r\nmn\r\n"))
    add("md_I_T_variants", T(b"set @a 0 0 1\r\nx\r\nmd @a I T35\r\nmg @a t v\r\nmd @a I T0\r\nmg @a t v\r\n"
                             b"md @a T35 I\r\nmg @a t v\r\nmn\r\n"))
    add("md_I_T_negative", T(b"set @a 0 0 1\r\nx\r\nmd @a I T-1\r\nmg @a v\r\nmn\r\n"))
    add("md_I_on_vivified", T(b"mg @a N35 v\r\nmg @a N35 q\r\nmd @a I q\r\nmg @a v\r\nmn\r\n"))
    add("md_I_stale_then_modes", T(b"set @a 0 0 1\r\nx\r\nmd @a I\r\nms @a 1 MA\r\ny\r\nmg @a v\r\n"
                                   b"set @b 0 0 1\r\nx\r\nmd @b I\r\nms @b 1 ME\r\ny\r\nmg @b v\r\n"
                                   b"set @c 0 0 1\r\nx\r\nmd @c I\r\nms @c 1 MR\r\ny\r\nmg @c v\r\nmn\r\n"))
    add("md_I_then_ms_I_plain", T(b"ms @a 3\r\nabc\r\nmd @a I\r\nms @a 3 I\r\nxyz\r\nmg @a v\r\nmn\r\n"))
    add("md_I_then_ma", T(b"set @a 0 0 2\r\n10\r\nmd @a I\r\nma @a v\r\n"), T(b"mg @a v\r\nmg @a v\r\nmn\r\n"))

    # ms: each flag.
    add("ms_plain", T(b"ms @a 3\r\nabc\r\nmg @a v f t s\r\nmn\r\n"))
    add("ms_flag_c", T(b"ms @a 3 c\r\nabc\r\n"), TC(b"mg @a c\r\nmn\r\n"))
    add("ms_flag_k_O", T(b"ms @a 3 k\r\nabc\r\nms @a 3 O123\r\nabc\r\nms @a 3 O\r\nabc\r\nms @a 3 k c O1\r\nabc\r\nmn\r\n"))
    add("ms_flag_F", T(b"ms @a 3 F77\r\nabc\r\nmg @a v f\r\nms @a 3 F4294967295\r\nabc\r\nmg @a f\r\n"
                       b"ms @a 3 F4294967296\r\nabc\r\nmg @a f\r\nms @a 3 F-1\r\nabc\r\nmg @a f\r\n"
                       b"ms @a 3 Fx\r\nabc\r\nmn\r\n"))
    add("ms_flag_T", T(b"ms @a 3 T65\r\nabc\r\nmg @a v t\r\nms @a 3 T-1\r\nabc\r\nmg @a v\r\n"
                       b"ms @a 3 T0\r\nabc\r\nmg @a t\r\nms @a 3 Tx\r\nabc\r\nmn\r\n"))
    add("ms_flag_q", T(b"ms @a 3 q\r\nabc\r\nmg @a v\r\nms @a 3 k c O1 q\r\nabc\r\nmn\r\n"))
    add("ms_flag_I_alone", T(b"ms @a 3 I\r\nabc\r\nmg @a v\r\nmn\r\n"))
    add("ms_ignored_flags", T(b"ms @a 1 T0 F1 k c O1 P L I s t f v h l u N0\r\nx\r\nms @a 3 N35\r\nabc\r\n"
                              b"mg @a t\r\nms @a 3 R35 J5 D5\r\nabc\r\nmn\r\n"))
    add("ms_value_with_crlf_and_nul", T(b"ms @a 6\r\na\r\n\x00b\r\r\nmg @a v s\r\nmn\r\n"))
    add("ms_datalen_forms", T(b"ms @a +3\r\nabc\r\nmg @a v\r\nms @b 03\r\nabc\r\nmg @b v\r\n"
                              b"ms @c 4294967299\r\nabc\r\nmg @c v\r\nms @d 0\r\n\r\nmg @d v s\r\nmn\r\n"))

    # ms modes.
    add("ms_mode_E", T(b"ms @a 3 ME\r\nabc\r\nms @a 3 ME\r\nxyz\r\nmg @a v\r\nmn\r\n"))
    add("ms_mode_A_P", T(b"ms @a 3 MA\r\nabc\r\nms @a 3\r\nabc\r\nms @a 3 MA\r\nxyz\r\nms @a 3 MP\r\n123\r\n"
                         b"mg @a v\r\nms @b 3 MP\r\nabc\r\nmn\r\n"))
    add("ms_mode_R_S", T(b"ms @a 3 MR\r\nabc\r\nms @a 3\r\nabc\r\nms @a 3 MR\r\nxyz\r\nmg @a v\r\n"
                         b"ms @b 3 MS\r\nabc\r\nmg @b v\r\nmn\r\n"))
    add("ms_mode_lowercase", T(b"ms @a 3 Me\r\nabc\r\nms @a 3 Ma\r\nabc\r\nms @a 3 Mp\r\nabc\r\nms @a 3 Mr\r\nabc\r\n"
                               b"ms @a 3 Ms\r\nabc\r\nmg @a v\r\nmn\r\n"))
    add("ms_mode_invalid", T(b"ms @a 3 MX\r\nabc\r\nms @a 3 M\r\nabc\r\nms @a 3 MSS\r\nabc\r\nms @a 3 MI\r\nabc\r\n"
                             b"ms @a 3 M+\r\nabc\r\nmg @a v\r\nmn\r\n"))
    add("ms_mode_q", T(b"ms @a 3 ME q\r\nabc\r\nms @a 3 ME q\r\nabc\r\nms @b 3 MR q\r\nabc\r\nms @b 3 MA q\r\nabc\r\n"
                       b"ms @b 3 MP q\r\nabc\r\nmn\r\n"))
    add("ms_mode_fail_c0", T(b"ms @a 3 ME c k O9\r\nabc\r\nms @a 3 ME c k O9\r\nabc\r\nms @b 3 MA c\r\nabc\r\n"
                             b"ms @b 3 MR c\r\nabc\r\nmn\r\n"))
    add("ms_mode_A_keeps_flags_ttl", T(b"ms @a 3 MA F5 T65\r\nabc\r\nset @a 1 0 1\r\nx\r\nms @a 3 MA F5 T65\r\nabc\r\n"
                                       b"mg @a v f t\r\nmn\r\n"))

    # ms CAS: C match/mismatch/missing, with I (stale when lower), with modes.
    add("ms_C_match_then_mismatch", T(b"ms @a 3 c\r\nabc\r\n"),
        TC(b"ms @a 3 C{c} c\r\nxyz\r\nmg @a v c\r\n"), TC(b"ms @a 3 C{c-1} c\r\nxyz\r\nms @a 3 C{c-1} q\r\nxyz\r\n"
                                                           b"ms @a 3 C0\r\nxyz\r\nmn\r\n"))
    add("ms_C_missing", T(b"ms @a 3 C0\r\nabc\r\nms @a 3 C123\r\nabc\r\nms @a 3 C123 q c k\r\nabc\r\nmg @a v\r\nmn\r\n"))
    add("ms_C_I_lower_marks_stale", T(b"ms @a 3 c\r\nabc\r\nms @a 3 c\r\nabc\r\n"),
        TC(b"ms @a 3 I C{c0} c\r\nold\r\nmg @a v c\r\nmg @a v c\r\nmn\r\n"))
    add("ms_C_I_higher_is_EX", T(b"ms @a 3 c\r\nabc\r\n"), TC(b"ms @a 3 I C{c+1} c\r\nnew\r\nmg @a v\r\nmn\r\n"))
    add("ms_C_I_equal", T(b"ms @a 3 c\r\nabc\r\n"), TC(b"ms @a 3 I C{c} c\r\nnew\r\nmg @a v\r\nmn\r\n"))
    add("ms_C_I_lower_q", T(b"ms @a 3 c\r\nabc\r\nms @a 3 c\r\nabc\r\n"),
        TC(b"ms @a 3 I q C{c0}\r\nold\r\nmg @a q v\r\nmn\r\n"))
    add("ms_C_I_missing", T(b"ms @a 3 I C5\r\nold\r\nmn\r\n"))
    add("ms_C_with_modes", T(b"ms @a 3 c\r\nabc\r\n"),
        TC(b"ms @a 1 MA C{c+1} c\r\nX\r\nms @a 1 MA C{c} c\r\nY\r\nmg @a v\r\n"),
        TC(b"ms @a 1 ME C{c} c\r\nZ\r\nms @a 1 MP C{c}\r\nZ\r\nms @a 1 MR C{c}\r\nQ\r\nmg @a v\r\nmn\r\n"))
    add("ms_C_modes_missing", T(b"ms @a 1 MA C5\r\nZ\r\nms @b 1 MR C5\r\nZ\r\nms @c 1 ME C5\r\nZ\r\nmg @c v\r\nmn\r\n"))

    # ms malformed lines: what is swallowed and what is answered.
    add("ms_no_datalen", T(b"ms @a\r\nabc\r\nmn\r\n"))
    add("ms_bad_datalen", T(b"ms @a abc\r\nabc\r\nms @a -1\r\nabc\r\nms @a 3x\r\nabc\r\nms @a S3 T0\r\nabc\r\nmn\r\n"))
    add("ms_datalen_int_limits", T(b"ms @a 2147483647\r\nabc\r\nms @a 2147483646\r\nabc\r\nmn\r\n"))
    add("ms_bad_chunk_longer", T(b"ms @a 3\r\nabcdef\r\nmg @a v\r\nmn\r\n"))
    add("ms_bad_chunk_shorter", T(b"ms @a 5\r\nabc\r\nmg @a v\r\nmn\r\n"))
    add("ms_bad_chunk_eats_command", T(b"ms @a 3\r\nabcXYmn\r\nmn\r\n"))
    add("ms_bad_chunk_q", T(b"ms @a 3 q\r\nabcdef\r\nmn\r\n"))
    add("ms_bad_chunk_lf_only", T(b"ms @a 3\r\nabc\nmn\r\nmn\r\n"))
    add("ms_bad_chunk_keeps_old", T(b"ms @a 1\r\nA\r\nms @a 3\r\nabcdef\r\nmg @a v\r\nmn\r\n"))
    add("ms_invalid_flag_swallows", T(b"ms @a 3 y\r\nabc\r\nms @a 3 v v\r\nabc\r\nms @a 3 E5\r\nabc\r\n"
                                      b"ms @a 3 S3\r\nabc\r\nms @a 3 x\r\nabc\r\nms @a 3 T0 q y\r\nabc\r\nmg @a v\r\nmn\r\n"))
    add("ms_invalid_flag_swallows_datalen", T(b"ms @a 3 y\r\nabcdefgh\r\nmn\r\n"))
    add("ms_invalid_flag_swallow_spans_steps", T(b"ms @a 10 y\r\nabc\r\n"), T(b"defgh\r\nmn\r\n"))
    add("ms_invalid_flag_swallow_eats_lf", T(b"ms @a 10 y\r\nabc\r\nmn\r\nmn\r\n"))
    add("ms_bad_tokens_swallow", T(b"ms @a 3 Cabc\r\nabc\r\nms @a 3 Nabc\r\nabc\r\nms @a 3 Jx\r\nabc\r\n"
                                   b"ms @a 3 Fx\r\nabc\r\nms @a 3 Tx\r\nabc\r\nmg @a v\r\nmn\r\n"))
    add("ms_error_precedence", T(b"ms @a 3 Cx y\r\nabc\r\nms @a 3 Fx Cx\r\nabc\r\nms @a 3 Cx MX\r\nabc\r\n"
                                 b"ms @a 3 MX Cx\r\nabc\r\nms @a 3 MX O" + b"a" * 33 + b"\r\nabc\r\n"
                                 b"ms @a 3 O" + b"a" * 33 + b" MX\r\nabc\r\nmn\r\n"))
    add("ms_b_errors_swallow", T(b"ms ABCDE 3 b\r\nabc\r\nms ABCDE 3 b y\r\nabc\r\nms ABCDE 3 y b\r\nabc\r\n"
                                 b"ms ABCDE 3 b Cx\r\nabc\r\nmn\r\n"))
    add("ms_opaque_32_swallows", T(b"ms @a 1 O" + b"a" * 32 + b"\r\nx\r\nmg @a v\r\n"
                                   b"ms @a 1 O" + b"a" * 31 + b" k\r\nx\r\nmd @a O" + b"a" * 32 + b"\r\n"
                                   b"md @a O" + b"a" * 31 + b"\r\nmn\r\n"))
    add("ms_16_vs_17_flags", T(b"ms @a 1 T0 F1 k c O1 P L I s t f v h l u N0\r\nx\r\n"
                               b"ms @a 1 T0 F1 k c O1 P L I s t f v h l u N0 R0\r\nx\r\nmn\r\n"))
    add("ms_partial_data_then_rest", T(b"ms @a 3\r\nab"), T(b"c\r\nmg @a v\r\nmn\r\n"))
    add("ms_partial_after_error", T(b"ms @a 3 y\r\nab"), T(b"c\r\nmn\r\n"))

    # ms over the item size limit: SERVER_ERROR after the whole value is swallowed, the old item
    # is gone; a value just under 1 MiB is fine.
    add("ms_too_large", lambda p, _: b"ms %sa %d\r\n" % (p, BIG) + b"x" * BIG + b"\r\nmn\r\n")
    add("ms_too_large_deletes_old", lambda p, _: (b"ms %sa 1\r\nA\r\nms %sa %d\r\n" % (p, p, BIG) + b"x" * BIG +
                                                  b"\r\nmg %sa v\r\nmn\r\n" % p))
    add("ms_too_large_q", lambda p, _: b"ms %sa %d q\r\n" % (p, BIG) + b"x" * BIG + b"\r\nmn\r\n")
    add("ms_too_large_append_deletes_old", lambda p, _: (b"ms %sa 1\r\nA\r\nms %sa %d MA\r\n" % (p, p, BIG) +
                                                         b"x" * BIG + b"\r\nmg %sa v\r\nmn\r\n" % p))
    add("ms_too_large_invalid_flag", lambda p, _: b"ms %sa %d y\r\n" % (p, BIG) + b"x" * BIG + b"\r\nmn\r\n")
    add("ms_too_large_in_parts", lambda p, _: b"ms %sa %d\r\n" % (p, BIG) + b"x" * 1000,
        lambda p, _: b"x" * (BIG - 1000) + b"\r\nmn\r\n")
    add("ms_just_under_1mib", lambda p, _: b"ms %sa 1048000\r\n" % p + b"x" * 1048000 + b"\r\nmg %sa s\r\nmn\r\n" % p)

    # md.
    add("md_hit_miss", T(b"set @a 0 0 1\r\nx\r\nmd @a\r\nmd @a\r\nmg @a v\r\nmn\r\n"))
    add("md_q", T(b"set @a 0 0 1\r\nx\r\nmd @a q\r\nmd @a q\r\nmn\r\n"))
    add("md_C_mismatch_missing", T(b"set @a 0 0 1\r\nx\r\nmd @a C1\r\nmd @a C1 q\r\nmd @b C1\r\nmd @b C1 q\r\n"
                                   b"md @a C1 k O5\r\nmg @a v\r\nmn\r\n"))
    add("md_C_match", T(b"ms @a 1 c\r\nx\r\n"), TC(b"md @a C{c} I\r\nmg @a c v\r\n"),
        TC(b"md @a C{c0}\r\nmd @a C{c}\r\nmg @a\r\nmn\r\n"))
    add("md_k_O_order", T(b"set @a 0 0 1\r\nx\r\nmd @a k O5\r\nmd @a O5 k\r\nmd @a k O5 q\r\nmn\r\n"))
    add("md_I_q_miss", T(b"set @a 0 0 1\r\nx\r\nmd @a I q\r\nmd @b I\r\nmd @b I q\r\nmg @a v\r\nmn\r\n"))
    add("md_errors", T(b"set @a 0 0 1\r\nx\r\nmd @a x\r\nmd @a E5\r\nmd @a y\r\nmd @a v v\r\nmd @a Cx\r\n"
                       b"md @a O" + b"a" * 33 + b"\r\nmd @a Tx I\r\nmd @a M\r\nmg @a v\r\nmn\r\n"))
    add("md_ignored_flags", T(b"set @a 0 0 1\r\nx\r\nmd @a v s t f c h l u N5 R5 F5 J5 D5 MX P L\r\n"
                              b"set @b 0 0 1\r\nx\r\nmd @b c\r\nmn\r\n"))
    add("md_T_without_I", T(b"set @a 0 0 1\r\nx\r\nmd @a T35\r\nmg @a v\r\nmd @a T35\r\nmn\r\n"))
    add("md_b", M(b"ms # 1 b\r\nx\r\nmd # b k\r\nmd # b k\r\nmd ABCDE b\r\nmd YWJ b\r\nmn\r\n"))
    add("md_then_vivify", T(b"set @a 0 0 1\r\nx\r\nmd @a\r\nmg @a N35 v\r\nmd @a I\r\nmg @a v\r\nmn\r\n"))

    # ma.
    add("ma_miss", T(b"ma @a\r\nma @a q\r\nma @a v\r\nma @a k O1 v t c\r\nma @a J13 v\r\nmn\r\n"))
    add("ma_hit_default_incr", T(b"set @a 0 0 2\r\n10\r\nma @a\r\nmg @a v\r\n"), T(b"ma @a v\r\nma @a\r\nmn\r\n"))
    add("ma_vivify_J", T(b"ma @a N0 J13 v\r\nma @a N0 J13 v\r\n"), T(b"mg @a v t f\r\nmn\r\n"))
    add("ma_vivify_without_v", T(b"ma @a N0 J13\r\nmg @a v\r\nmn\r\n"))
    add("ma_vivify_ttl", T(b"ma @a N35 v t\r\nma @a v t\r\nmn\r\n"))
    add("ma_vivify_ignores_delta_and_mode", T(b"ma @a N35 J5 D3 v\r\nma @b N0 J5 MD D3 v\r\nmn\r\n"))
    add("ma_vivify_J_max", T(b"ma @a N0 J18446744073709551615 v\r\nma @a v\r\nma @b N0 J18446744073709551616 v\r\nmn\r\n"))
    add("ma_modes", T(b"set @a 0 0 2\r\n10\r\nma @a D5 v\r\nma @a MD D3 v\r\nma @a MD D100 v\r\nma @a M+ v\r\n"
                      b"ma @a M- v\r\nma @a MI v\r\nma @a Mi v\r\nma @a Md v\r\nmn\r\n"))
    add("ma_bad_tokens", T(b"set @a 0 0 2\r\n10\r\nma @a MX\r\nma @a M\r\nma @a MII\r\nma @a Dx\r\nma @a D-1\r\n"
                           b"ma @a D\r\nma @a Nx\r\nma @a Jx N0\r\nma @a Cx\r\nma @a Tx\r\nmn\r\n"))
    add("ma_invalid_flags", T(b"set @a 0 0 1\r\n1\r\nma @a x\r\nma @a y\r\nma @a v v\r\nma @a E1\r\n"
                              b"ma @a O" + b"a" * 33 + b"\r\nma @b O" + b"a" * 33 + b"\r\nma @a s f h l u I P L\r\nmn\r\n"))
    add("ma_q", T(b"set @a 0 0 2\r\n10\r\nma @a q\r\nma @a q v\r\nma @b q\r\nma @b q k O1\r\nmn\r\n"),
        T(b"mg @a v\r\nmn\r\n"))
    add("ma_q_vivify_not_suppressed", T(b"ma @a q N0 v J7 k O1\r\nma @a q N0 v J7 k O1\r\nma @b q N0\r\nma @b q\r\n"
                                        b"mn\r\n"), T(b"mg @a v\r\nmg @b v\r\nmn\r\n"))
    add("ma_non_numeric", T(b"set @a 0 0 3\r\nabc\r\nma @a\r\nma @a q\r\nma @a N0\r\nms @b 3\r\nabc\r\nma @b v\r\nmn\r\n"))
    add("ma_value_forms", T(b"set @a 0 0 20\r\n18446744073709551616\r\nma @a v\r\nset @b 0 0 2\r\n-1\r\nma @b v\r\n"
                            b"set @c 0 0 3\r\n 12\r\nma @c v\r\nset @d 0 0 3\r\n12 \r\nma @d v\r\n"
                            b"set @e 0 0 3\r\n12a\r\nma @e v\r\nset @f 0 0 0\r\n\r\nma @f v\r\nmn\r\n"))
    add("ma_overflow_wraps", T(b"set @a 0 0 20\r\n18446744073709551615\r\nma @a v\r\nma @a v D5\r\n"
                               b"set @b 0 0 2\r\n10\r\nma @b v D18446744073709551615\r\nma @b v D18446744073709551616\r\nmn\r\n"))
    add("ma_decr_shrinks_pads", T(b"set @a 0 0 3\r\n100\r\nma @a MD D1 v\r\n"), T(b"mg @a v s\r\nmn\r\n"))
    add("ma_decr_floor", T(b"set @a 0 0 2\r\n10\r\nma @a MD D100 v\r\n"), T(b"mg @a v s\r\nmn\r\n"))
    add("ma_incr_grows_keeps_flags", T(b"set @a 5 0 2\r\n99\r\nma @a v\r\n"), T(b"mg @a v s f\r\nmn\r\n"))
    add("ma_T_t", T(b"set @a 0 0 2\r\n10\r\nma @a T95 t v\r\n"), T(b"mg @a t\r\n"), T(b"ma @a t T65\r\n"),
        T(b"mg @a t\r\nmn\r\n"))
    add("ma_T_on_ttl_item", T(b"ms @a 2 T35\r\n10\r\nma @a v t\r\nma @a T95 t\r\n"), T(b"mg @a t\r\nmn\r\n"))
    add("ma_N_T_t_order", T(b"ma @a t N35 v\r\nma @b N35 T65 t v\r\nma @c T65 N35 t v\r\n"),
        T(b"mg @b t\r\nmg @c t\r\nmn\r\n"))
    add("ma_N_on_hit_keeps_ttl", T(b"set @a 0 0 2\r\n10\r\nma @a N35 t v\r\nmn\r\n"))
    add("ma_C_mismatch_missing", T(b"set @a 0 0 2\r\n10\r\nma @a C1 v\r\nma @a C1 q\r\nma @b C1\r\nma @b C1 N0 v\r\nmn\r\n"))
    add("ma_C_match", T(b"ms @a 2 c\r\n10\r\n"), TC(b"ma @a C{c} c v\r\n"), TC(b"ma @a C{c0} c v\r\nmn\r\n"))
    add("ma_flags_order", T(b"set @a 0 0 1\r\n1\r\nma @a O1 k c t v\r\nma @a v t c k O1\r\nma @a k\r\nmn\r\n"))
    add("ma_b", M(b"ma # b k v N0\r\nma # b k v\r\nme # b\r\nma $ b k\r\nma ABCDE b\r\nma YWJ b\r\nmn\r\n"))
    add("ma_on_stale", T(b"set @a 0 0 1\r\n1\r\nmd @a I\r\nma @a v\r\n"), T(b"mg @a v\r\nmn\r\n"))

    # me (meta debug).
    add("me_hit_miss", T(b"set @a 5 0 3\r\nabc\r\nme @a\r\nme @b\r\nme @a x\r\nme @a foo bar\r\nme @a bx\r\nmn\r\n"))
    add("me_with_ttl_and_fetch", T(b"set @a 5 35 3\r\nabc\r\nme @a\r\nmg @a v\r\nme @a\r\nmn\r\n"))
    add("me_fetch_and_u", T(b"set @a 0 0 1\r\nx\r\nme @a\r\nmg @a u v\r\nme @a\r\nmg @a v\r\nme @a\r\nmn\r\n"))
    add("me_b", M(b"ms # 3 b\r\nabc\r\nme # b\r\nme $ b\r\nme # b b\r\nme YWJ b\r\nme ABCDE b\r\nmn\r\n"))
    add("me_no_key", T(b"me\r\nme \r\nmn\r\n"))
    add("me_q_is_ignored", T(b"set @a 0 0 1\r\nx\r\nme @a q\r\nme @b q\r\nmn\r\n"))
    add("me_vivified", T(b"mg @a N35 v\r\nme @a\r\nmn\r\n"))

    # mn and command-level errors.
    add("mn_plain_and_extra_tokens", T(b"mn\r\nmn extra tokens\r\nmn q\r\nmn\r\n"))
    add("meta_commands_without_key", T(b"mg\r\nms\r\nmd\r\nma\r\nme\r\nmn\r\n"))
    add("meta_commands_key_space_only", T(b"mg \r\nms \r\nmd \r\nma \r\nme \r\nmn \r\n"))
    add("meta_unknown_and_case", T(b"MG @a\r\nMN\r\nmgx @a\r\nmnx\r\nm\r\nmz @a\r\nmx\r\nMn\r\nmN\r\nmn\r\n"))
    add("meta_nul_in_line", T(b"set @a 0 0 1\r\nx\r\nmg @a\x00 v\r\nmg @a v\x00\r\nmg @a \x00v\r\nmn\x00\r\nmn\r\n"))
    add("meta_whitespace", T(b"set @a 0 0 1\r\nx\r\nmg  @a  v  \r\nmg @a v \r\n  mg @a v\r\nmg\t@a v\r\n"
                             b"mg @a\tv\r\nmn\r\n"))
    add("meta_lf_and_cr", T(b"set @a 0 0 1\r\nx\r\nmg @a v\nmn\nmg @a v\r\r\nmn\r\n"))
    add("meta_line_in_parts", T(b"set @a 0 0 1\r\nx\r\nmg @a"), T(b" v k"), T(b"\r\nmn"), T(b"\r\n"))
    add("meta_connection_survives_errors", T(b"mg @a y\r\nms @a\r\nma @a MX\r\nmd @a v v\r\nme\r\nmg\r\n"
                                             b"ms @a 1\r\nx\r\nmg @a v\r\n"))
    add("meta_and_classic_mixed", T(b"mg @a v\r\nms @a 1 F3\r\nx\r\nmg @a v f\r\nget @a\r\nincr @a 1\r\n"
                                    b"set @b 7 0 2\r\n10\r\nma @b v\r\n"), T(b"gets @b\r\nmg @b v f\r\ndelete @b\r\nmd @b\r\nmn\r\n"))
    add("meta_mg_c_matches_gets", T(b"set @a 0 0 1\r\nx\r\n"), T(b"gets @a\r\nmg @a c\r\nme @a\r\nmn\r\n"))

    # Pipelines with q and mn.
    add("pipeline_mg_q_mixed", T(b"ms @b 1 q\r\nB\r\nms @d 1 q\r\nD\r\nmg @a q v k\r\nmg @b q v k\r\nmg @c q v k\r\n"
                                 b"mg @d q v k\r\nmg @e q v k O5\r\nmn\r\n"))
    add("pipeline_all_q_mutations", T(b"ms @a 1 q\r\nA\r\nms @a 1 q ME\r\nB\r\nmd @b q\r\nmd @a q\r\nma @c q\r\n"
                                      b"ma @c q N0 J1\r\nma @c q\r\nma @c q v\r\nmg @c q v\r\nmg @a q\r\nmn\r\n"))
    add("pipeline_q_errors_interleaved", T(b"mg @a q\r\nmg @a q y\r\nms @a 1 q\r\nx\r\nmg @a q v\r\nms @a 1 q Fx\r\nx\r\n"
                                           b"md @a q C1\r\nmd @a q\r\nmd @a q\r\nmn\r\n"))

    def many(p, _prev):
        out = b""
        for i in range(50):
            if i % 3 == 0:
                out += b"ms %sk%d %d q T0 F%d\r\n%d\r\n" % (p, i, len(str(i)), i, i)
        for i in range(50):
            out += b"mg %sk%d q v f k O%d\r\n" % (p, i, i)
        return out + b"mn\r\n"
    add("pipeline_50_mg_q", many)

    def many_mn(p, _prev):
        return b"".join(b"ms %sk%d 1 q\r\n%d\r\nmn\r\nmg %sk%d v q\r\nmg %sz%d v q\r\nmn\r\n" % (p, i, i % 10, p, i, p, i)
                        for i in range(40))
    add("pipeline_many_mn", many_mn)
    add("pipeline_stampede", T(b"mg @a N35 q v O1\r\nmg @a N35 q v O2\r\nmg @a N35 q v O3\r\nms @a 1 q\r\nv\r\n"
                               b"mg @a N35 q v O4\r\nmd @a I q\r\nmg @a q v O5\r\nmg @a q v O6\r\nmn\r\n"))

    # Found by a randomized differential run against memcached 1.6.18.
    # A key holding a CR (not an LF) is a key like any other.
    add("meta_key_with_cr", T(b"mg @a\r\r\nmd @a\r\r\nma @a\r\r\nms @b\r 1\r\nx\r\nmg @b\r v k\r\nmd @b\r q\r\n"
                              b"mg @b\r v\r\nmn\r\n"))
    # A long opaque: mg and ma run, then answer the error; ms and md do not run.
    long_o = b" O" + b"a" * 32
    add("opaque_too_long_mg_runs", T(b"ms @a 3\r\nabc\r\nmg @a T35" + long_o + b"\r\nmg @a t v\r\n"
                                     b"mg @a" + long_o + b" T95\r\nmg @a t\r\n"
                                     b"mg @b N35" + long_o + b"\r\nmg @b v t\r\nmg @b v N35\r\nmn\r\n"))
    add("opaque_too_long_ma_runs", T(b"ms @a 2\r\n10\r\nma @a" + long_o + b"\r\n"), T(b"mg @a v\r\n"),
        T(b"ma @b N0 J5" + long_o + b"\r\n"), T(b"mg @b v\r\nms @c 2\r\n-1\r\n"),
        T(b"ma @c" + long_o + b"\r\nma @a C999" + long_o + b"\r\nma @d" + long_o + b"\r\n"),
        T(b"mg @a v\r\nmn\r\n"))
    add("opaque_too_long_ms_md_refused", T(b"ms @a 1" + long_o + b"\r\nx\r\nmg @a v\r\nms @b 1\r\ny\r\n"
                                           b"md @b" + long_o + b"\r\nmd @b I" + long_o + b"\r\nmg @b v\r\nmn\r\n"))
    # An item mg N creates through a base64 key: k answers the key decoded, without b.
    add("mg_N_base64_key_is_not_binary", M(b"mg # b k N35 v\r\nmg # b k v\r\nmg # b k s\r\nmn\r\n"))
    # ma: an empty value is non-numeric before the CAS is compared, any other value after.
    add("ma_empty_value_before_cas", T(b"mg @a N35\r\n"), T(b"ma @a C1\r\nms @b 0\r\n\r\n"),
        T(b"ma @b C1\r\nms @c 1\r\nx\r\n"), T(b"ma @c C1\r\nma @c\r\nmn\r\n"))
    # ms I with C0: no CAS is older than 0, so EX as without I.
    add("ms_invalidate_cas_zero", T(b"ms @a 1\r\nx\r\nms @a 1 I C0\r\ny\r\nmg @a v\r\nms @a 1 MR I C0\r\nz\r\n"
                                    b"ms @a 1 MA I C0\r\nz\r\nmg @a v\r\nms @b 1 I C0\r\ny\r\nmn\r\n"))
    # ma or incr whose number grows: a new item, flags and TTL kept, marks and this ma's T gone.
    add("ma_growth_new_item", T(b"ms @a 2 T35 F7\r\n99\r\n"), T(b"ma @a T95 v t\r\n"), T(b"mg @a t f v\r\n"),
        T(b"ms @b 2\r\n99\r\nmd @b I\r\n"), T(b"ma @b v\r\n"), T(b"mg @b v\r\nmg @b v\r\nms @c 2\r\n98\r\n"),
        T(b"ma @c T95 v t\r\n"), T(b"mg @c t v\r\nms @d 2\r\n99\r\nmd @d I\r\n"), T(b"incr @d 1\r\n"),
        T(b"mg @d v\r\nmn\r\n"))
    add("ma_growth_base64_key", M(b"ms # 2 b\r\n99\r\n"), M(b"ma # b k v\r\n"), M(b"mg # b k v\r\nmn\r\n"))
    # A classic cas with unique 0 does not read the item (no fetched mark).
    add("cas_zero_does_not_fetch", T(b"set @a 0 0 1\r\nx\r\ncas @a 0 0 1 0\r\ny\r\n"), T(b"mg @a h v\r\nmg @a h\r\nmn\r\n"))

    # memcached's item limit counts its header, the key and the flags: the largest value it takes
    # under this key, one byte more, and the same with flags, with ms, set and cas (unique 0 too).
    def size_edge(p, _prev):
        key = p + b"a"
        room = 1048576 - 59 - len(key)
        out = b""
        for n, flags in ((room, 0), (room + 1, 0), (room - 4, 1), (room - 3, 1)):
            data = b"x" * n
            out += b"ms %s %d F%d\r\n%s\r\nmg %s s f\r\n" % (key, n, flags, data, key)
            out += b"set %s %d 0 %d\r\n%s\r\nmg %s s\r\n" % (key, flags, n, data, key)
        out += b"cas %s 0 0 %d 0\r\n%s\r\n" % (key, room + 1, b"x" * (room + 1))
        out += b"ms %s %d\r\n%sXYmn\r\n" % (key, room + 1, b"x" * (room + 1))
        return out + b"mn\r\n"
    add("item_size_limit_edges", size_edge)
    return c


if __name__ == "__main__":
    print(len(meta_cases()), "cases")

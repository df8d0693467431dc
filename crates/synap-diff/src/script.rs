//! Random command sequences, one family at a time. Keys come from a small set per family (so that
//! commands meet the same keys often), now and then from another family's (so that WRONGTYPE paths run
//! too). Nothing generated depends on the clock or on a random choice of the server, except what the
//! comparison normalizes (see [`Norm`]).

use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};

/// How a reply is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Norm {
    /// Byte for byte.
    Exact,
    /// Element order is not promised (SMEMBERS, KEYS, SINTER): sorted before comparing.
    Unordered,
    /// Field-value pairs whose order is not promised (HGETALL): sorted as pairs.
    Pairs,
    /// A random pick (SRANDMEMBER, RANDOMKEY): only nil-or-not and the item count are compared.
    Shape,
    /// A remaining time: positive values compare equal.
    Ttl,
    /// A SCAN page with a COUNT large enough for one page: the cursor, and the keys unordered.
    ScanAll { pairs: bool },
    /// XINFO GROUPS: `entries-read` and `lag` are left out (a deliberate difference: Synap reports the
    /// offsets it keeps where Redis may answer nil, see docs/resp.md).
    XInfoGroups,
}

/// One command line and how its reply is compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub args: Vec<String>,
    pub norm: Norm,
}

impl Cmd {
    fn new(args: Vec<String>, norm: Norm) -> Cmd {
        Cmd { args, norm }
    }
}

impl Cmd {
    /// A command line as [`Cmd`]'s Display writes it (words, `"quoted"` where empty or spaced), with the
    /// comparison its command needs: for replaying a sequence a run printed.
    pub fn parse_line(line: &str) -> Option<Cmd> {
        let mut args = Vec::new();
        let mut rest = line.trim();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('"') {
                let end = r.find('"')?;
                args.push(r[..end].to_string());
                rest = r[end + 1..].trim_start();
            } else {
                let end = rest.find(' ').unwrap_or(rest.len());
                args.push(rest[..end].to_string());
                rest = rest[end..].trim_start();
            }
        }
        let name = args.first()?.to_ascii_uppercase();
        let norm = match name.as_str() {
            "SMEMBERS" | "SINTER" | "SUNION" | "SDIFF" | "KEYS" | "HKEYS" | "HVALS" | "SPOP" => Norm::Unordered,
            "HGETALL" => Norm::Pairs,
            "SRANDMEMBER" | "HRANDFIELD" | "ZRANDMEMBER" | "RANDOMKEY" => Norm::Shape,
            "TTL" | "PTTL" | "EXPIRETIME" | "PEXPIRETIME" => Norm::Ttl,
            "SCAN" | "SSCAN" => Norm::ScanAll { pairs: false },
            "HSCAN" | "ZSCAN" => Norm::ScanAll { pairs: true },
            "PUBSUB" if args.get(1).is_some_and(|s| s.eq_ignore_ascii_case("channels")) => Norm::Unordered,
            "SORT" | "SORT_RO"
                if args.iter().any(|a| a.eq_ignore_ascii_case("alpha"))
                    && args.windows(2).any(|w| w[0].eq_ignore_ascii_case("by") && w[1].contains('*')) =>
            {
                Norm::Unordered
            }
            _ => Norm::Exact,
        };
        Some(Cmd { args, norm })
    }
}

impl std::fmt::Display for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let quoted: Vec<String> = self
            .args
            .iter()
            .map(|a| if a.is_empty() || a.contains(' ') { format!("{a:?}") } else { a.clone() })
            .collect();
        write!(f, "{}", quoted.join(" "))
    }
}

/// The families a run can draw from.
pub const FAMILIES: &[&str] = &[
    "strings",
    "bits",
    "hyperloglog",
    "keys",
    "sort",
    "geo",
    "hashes",
    "lists",
    "sets",
    "zsets",
    "streams",
    "transactions",
    "pubsub",
    "scripting",
    "databases",
];

/// Scripts of the scripting family: (body, number of keys). They read and write the other families'
/// keys, convert every kind of reply, and raise errors of every kind.
const SCRIPTS: &[(&str, usize)] = &[
    ("return redis.call('incr', KEYS[1])", 1),
    ("return redis.pcall('incr', KEYS[1])", 1),
    (
        "local v = redis.call('get', KEYS[1]) if v then return redis.call('append', KEYS[1], ARGV[1]) end return false",
        1,
    ),
    ("return redis.call('set', KEYS[1], ARGV[1])", 1),
    ("return {redis.call('rpush', KEYS[1], ARGV[1], ARGV[2]), redis.call('lrange', KEYS[1], 0, -1)}", 1),
    ("return redis.call('hset', KEYS[1], ARGV[1], ARGV[2])", 1),
    ("return redis.call('hgetall', KEYS[1])", 1),
    ("return redis.call('zadd', KEYS[1], ARGV[1], ARGV[2])", 1),
    ("return redis.call('zrange', KEYS[1], 0, -1, 'withscores')", 1),
    ("return redis.call('zincrby', KEYS[1], ARGV[1], ARGV[2])", 1),
    ("return {redis.call('exists', KEYS[1], KEYS[2]), redis.call('type', KEYS[1])}", 2),
    ("return redis.call('type', KEYS[1])", 1),
    ("local n = 0 for i = 1, 5 do n = n + redis.call('incrby', KEYS[1], i) end return n", 1),
    ("redis.call('set', KEYS[1], 'x') return redis.call('lpush', KEYS[1], 'y')", 1),
    ("return redis.call('smembers', KEYS[1])", 1),
    ("return redis.call('sadd', KEYS[1], ARGV[1], ARGV[2])", 1),
    ("return redis.call('del', KEYS[1], KEYS[2])", 2),
    ("return redis.call('rename', KEYS[1], KEYS[2])", 2),
    ("return redis.call('nosuchcommand')", 0),
    ("return redis.call('get')", 0),
    ("return {1, 2.9, -3.5, 'x', {ok = 'FINE'}, {err = 'ERR inner'}, false, true, nil, 5}", 0),
    ("return redis.error_reply('MY error')", 0),
    ("return redis.status_reply('SOMETHING')", 0),
    ("error('boom')", 0),
    ("return undefined_name", 0),
    ("x = 1", 0),
    ("return tonumber(ARGV[1]) * 2", 0),
    ("return redis.sha1hex(ARGV[1])", 0),
    ("return #KEYS + #ARGV", 2),
    ("return bit.bxor(tonumber(ARGV[1]) or 0, 255)", 0),
    ("return redis.call('xadd', KEYS[1], '5-1', 'f', 'v')", 1),
    ("return redis.call('ping')", 0),
    ("return {redis.call('mget', KEYS[1], KEYS[2])}", 2),
    ("return redis.call('expire', KEYS[1], 100)", 1),
    ("return redis.call('blpop', KEYS[1], 0)", 1),
    ("return 1 +", 0),
    ("return cjson.encode({KEYS[1], ARGV[1], {n = tonumber(ARGV[2]) or 0.5, f = false}})", 1),
    ("return cjson.encode(redis.call('hgetall', KEYS[1]))", 1),
    ("local t = cjson.decode('[' .. (tonumber(ARGV[1]) or 0) .. ', {\"k\": null}]') return {t[1], type(t[2].k)}", 0),
    ("return cjson.encode({[1] = 1, [30] = 2})", 0),
    ("return cmsgpack.pack(KEYS[1], tonumber(ARGV[1]) or ARGV[1], {1, 2.5, {x = ARGV[2]}}, true, -70000, 2^40)", 1),
    ("return {cmsgpack.unpack(cmsgpack.pack({ARGV[1], {k = ARGV[2]}}, tonumber(ARGV[1]) or 0.1))}", 0),
    ("return {cmsgpack.unpack_limit(cmsgpack.pack(1, ARGV[1], 3), 2, 1)}", 0),
    ("return cmsgpack.unpack(ARGV[1])", 0),
    ("return struct.pack('>i4 s !4 h', tonumber(ARGV[1]) or 0, ARGV[2] or '', tonumber(ARGV[1]) or -1)", 0),
    ("return {struct.unpack('<h b c0', (ARGV[1] or '') .. '\\0\\2\\1xyz', tonumber(ARGV[2]) or 1)}", 0),
    ("return struct.size(ARGV[1] or 'i')", 0),
    // A script's SELECT lasts until it ends: the caller's database is the same after.
    (
        "redis.call('select', 2) redis.call('set', KEYS[1], ARGV[1]) return {redis.call('dbsize'), redis.call('get', KEYS[1])}",
        1,
    ),
    ("return redis.call('select', ARGV[1])", 0),
];

/// Function libraries of the scripting family (loaded, replaced and deleted as it runs), good and bad.
const LIBRARIES: &[&str] = &[
    "#!lua name=counters\nredis.register_function('bump', function(keys, args) return redis.call('incrby', keys[1], args[1] or 1) end)\nredis.register_function{function_name='peek', callback=function(keys) return redis.call('get', keys[1]) end, flags={'no-writes'}}",
    "#!lua name=counters\nredis.register_function('bump', function(keys, args) return redis.pcall('append', keys[1], 'x') end)",
    "#!lua name=lists\nlocal function size(k) return redis.call('llen', k) end\nredis.register_function('push_size', function(keys, args) redis.call('rpush', keys[1], args[1] or 'v') return size(keys[1]) end)",
    "#!lua name=errors\nredis.register_function('fail', function(keys, args) return redis.call('nosuch') end)\nredis.register_function{function_name='globals', callback=function() return KEYS end, flags={'no-writes'}}",
    "#!lua name=clash\nredis.register_function('bump', function() return 1 end)",
    "#!lua name=bad\nredis.call('set', 'x', 'y')",
    "#!lua name=bad\nreturn 1",
    "#!lua name=bad\n +",
    "#!lua name=bad-name\nredis.register_function('f', function() end)",
    "return 1",
];
const FUNCTIONS: &[&str] = &["bump", "peek", "push_size", "fail", "globals", "nosuch"];

fn sha1_hex(body: &str) -> String {
    use sha1::Digest;
    sha1::Sha1::digest(body.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The channels each server's subscriber connection listens on (SUBSCRIBE) and its pattern (PSUBSCRIBE).
pub const SUB_CHANNELS: &[&str] = &["ch:1", "ch:2"];
pub const SUB_PATTERN: &str = "ch:*";

pub struct Gen {
    rng: StdRng,
    families: Vec<&'static str>,
    /// The next explicit stream id's milliseconds part (ids are explicit, so both servers agree).
    stream_ms: u64,
}

const MEMBERS: &[&str] = &["a", "b", "c", "d", "e", "f", "1", "2", "10", "-3", "x y", ""];
const INTS: &[&str] = &["0", "1", "2", "3", "-1", "-2", "5", "10", "-10", "100"];
const BAD_INTS: &[&str] = &["abc", "1.5", "", "9223372036854775807", "-9223372036854775808", "1e3", " 1", "+1"];
const FLOATS: &[&str] = &["1.5", "-0.25", "3e2", "0.1", "10", "-7", "1e-5", "5.0e3", "123456789.123456789"];
const SCORES: &[&str] = &["0", "1", "2", "3", "-1", "1.5", "2.5", "-inf", "+inf", "1e2", "0.1"];
const RANGES: &[&str] = &["-inf", "+inf", "0", "1", "(1", "2", "(2.5", "3", "-1", "(0", "nan", "x"];
const LEX: &[&str] = &["-", "+", "[a", "(a", "[c", "(d", "[f", "[", "a", "(1"];

impl Gen {
    pub fn new(seed: u64, families: &[&'static str]) -> Gen {
        Gen { rng: StdRng::seed_from_u64(seed), families: families.to_vec(), stream_ms: 1 }
    }

    fn pick<'s>(&mut self, from: &[&'s str]) -> &'s str {
        from.choose(&mut self.rng).copied().expect("non-empty")
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    fn int(&mut self) -> String {
        if self.chance(0.05) { self.pick(BAD_INTS) } else { self.pick(INTS) }.to_string()
    }

    fn small(&mut self, lo: i64, hi: i64) -> String {
        self.rng.random_range(lo..=hi).to_string()
    }

    /// A key of `family` (`s:a`), now and then another family's.
    fn key(&mut self, family: &str) -> String {
        let family = if self.chance(0.06) { self.pick(&["str", "h", "l", "set", "z", "x", "hll"]) } else { family };
        format!("{family}:{}", self.pick(&["a", "b", "c", "d"]))
    }

    fn keys(&mut self, family: &str, max: usize) -> Vec<String> {
        let n = self.rng.random_range(1..=max);
        (0..n).map(|_| self.key(family)).collect()
    }

    fn member(&mut self) -> String {
        self.pick(MEMBERS).to_string()
    }

    /// The next step: one command, or a transaction (several).
    pub fn step(&mut self) -> Vec<Cmd> {
        let family = *self.families.choose(&mut self.rng).expect("at least one family");
        self.family(family)
    }

    fn family(&mut self, family: &str) -> Vec<Cmd> {
        match family {
            "strings" => vec![self.string()],
            "bits" => vec![self.bits()],
            "keys" => vec![self.keys_cmd()],
            "hashes" => vec![self.hash()],
            "lists" => vec![self.list()],
            "sets" => vec![self.set()],
            "zsets" => vec![self.zset()],
            "streams" => vec![self.stream()],
            "transactions" => self.transaction(),
            "pubsub" => vec![self.pubsub()],
            "scripting" => vec![self.scripting()],
            "hyperloglog" => vec![self.hyperloglog()],
            "sort" => vec![self.sort()],
            "geo" => vec![self.geo()],
            "databases" => self.databases(),
            other => panic!("unknown family {other}"),
        }
    }

    fn string(&mut self) -> Cmd {
        let k = self.key("str");
        let v = if self.chance(0.5) { self.int() } else { self.member() };
        let mut a: Vec<String> = match self.rng.random_range(0..22) {
            0 | 1 => {
                let mut a = vec!["SET".into(), k, v];
                match self.rng.random_range(0..8) {
                    0 => a.extend(["EX".into(), "1000".into()]),
                    1 => a.extend(["PX".into(), "1000000".into()]),
                    // SET ... EXAT in the past leaves the key to Redis's expiry (DBSIZE counts it until
                    // then; Synap removes it at once: docs/resp.md), so only future times here.
                    2 => a.extend(["EXAT".into(), "4000000000".into()]),
                    3 => a.push("KEEPTTL".into()),
                    4 => a.extend(["EX".into(), self.pick(&["0", "-1", "abc"]).into()]),
                    _ => {}
                }
                if self.chance(0.3) {
                    a.push(self.pick(&["NX", "XX"]).into());
                }
                if self.chance(0.2) {
                    a.push("GET".into());
                }
                return Cmd::new(a, Norm::Exact);
            }
            2 => vec!["GET".into(), k],
            3 => vec!["SETNX".into(), k, v],
            4 => vec!["GETSET".into(), k, v],
            5 => vec!["GETDEL".into(), k],
            6 => {
                let mut a = vec!["GETEX".into(), k];
                match self.rng.random_range(0..4) {
                    0 => a.push("PERSIST".into()),
                    1 => a.extend(["EX".into(), "1000".into()]),
                    2 => a.extend(["EXAT".into(), "1".into()]),
                    _ => {}
                }
                a
            }
            7 => {
                let mut a = vec!["MGET".to_string()];
                a.extend(self.keys("str", 3));
                a
            }
            8 => {
                let mut a = vec![self.pick(&["MSET", "MSETNX"]).to_string()];
                for _ in 0..self.rng.random_range(1..=3) {
                    a.push(self.key("str"));
                    a.push(self.int());
                }
                a
            }
            9 => vec![self.pick(&["INCR", "DECR"]).into(), k],
            10 => vec![self.pick(&["INCRBY", "DECRBY"]).into(), k, self.int()],
            11 => {
                let by = if self.chance(0.9) { self.pick(FLOATS) } else { self.pick(&["abc", "inf", "nan"]) };
                vec!["INCRBYFLOAT".into(), k, by.into()]
            }
            12 => vec!["APPEND".into(), k, v],
            13 => vec!["STRLEN".into(), k],
            14 | 15 => {
                let off = if self.chance(0.9) { self.small(0, 12) } else { self.pick(&["-1", "abc"]).into() };
                vec!["SETRANGE".into(), k, off, v]
            }
            16 | 17 => {
                let name = self.pick(&["GETRANGE", "SUBSTR"]);
                vec![name.into(), k, self.small(-8, 8), self.small(-8, 8)]
            }
            18 => vec![self.pick(&["SETEX", "PSETEX"]).into(), k, self.pick(&["1000000", "0", "-5"]).into(), v],
            19 => {
                let mut a = vec!["LCS".into(), k, self.key("str")];
                match self.rng.random_range(0..4) {
                    0 => a.push("LEN".into()),
                    1 => a.push("IDX".into()),
                    2 => a.extend(["IDX".into(), "MINMATCHLEN".into(), self.small(0, 2), "WITHMATCHLEN".into()]),
                    _ => {}
                }
                a
            }
            _ => vec!["SET".into(), k, self.pick(&["hello world", "foobar", "abcdef"]).into()],
        };
        if a.is_empty() {
            a.push("PING".into());
        }
        Cmd::new(a, Norm::Exact)
    }

    fn bits(&mut self) -> Cmd {
        let k = self.key("str");
        let unit = |g: &mut Gen, a: &mut Vec<String>| {
            if g.chance(0.4) {
                a.push(g.pick(&["BYTE", "BIT"]).into());
            }
        };
        let a = match self.rng.random_range(0..11) {
            8..=10 => self.bitfield(k),
            0 | 1 => vec!["SETBIT".into(), k, self.small(0, 40), self.pick(&["0", "1", "1", "2"]).into()],
            2 => vec!["GETBIT".into(), k, self.small(0, 48)],
            3 => {
                let mut a = vec!["BITCOUNT".into(), k];
                if self.chance(0.6) {
                    a.extend([self.small(-6, 6), self.small(-6, 6)]);
                    unit(self, &mut a);
                }
                a
            }
            4 => {
                let mut a = vec!["BITPOS".into(), k, self.pick(&["0", "1"]).into()];
                if self.chance(0.6) {
                    a.push(self.small(-6, 6));
                    if self.chance(0.6) {
                        a.push(self.small(-6, 6));
                        unit(self, &mut a);
                    }
                }
                a
            }
            5 => {
                let op = self.pick(&["AND", "OR", "XOR", "NOT", "and"]);
                let mut a = vec!["BITOP".into(), op.into(), self.key("str")];
                let n = if op == "NOT" && self.chance(0.9) { 1 } else { self.rng.random_range(1..=3) };
                for _ in 0..n {
                    a.push(self.key("str"));
                }
                a
            }
            _ => vec!["SET".into(), k, self.pick(&["foobar", "\u{7f}", "a", "", "ab"]).into()],
        };
        Cmd::new(a, Norm::Exact)
    }

    /// HyperLogLog: values grow from sparse to dense (batches of elements), are merged, counted through
    /// their cache, read back byte for byte, and now and then damaged.
    fn hyperloglog(&mut self) -> Cmd {
        let k = self.key("hll");
        let a: Vec<String> = match self.rng.random_range(0..16) {
            0..=3 => {
                let mut a = vec!["PFADD".into(), k];
                for _ in 0..self.rng.random_range(0..=4) {
                    let e = if self.chance(0.5) { self.member() } else { self.small(0, 3000) };
                    a.push(e);
                }
                a
            }
            4 => {
                let mut a = vec!["PFADD".into(), k];
                let base = self.rng.random_range(0..100_000);
                for i in 0..self.rng.random_range(50..=400) {
                    a.push(format!("e{}", base + i));
                }
                a
            }
            5 | 6 => vec!["PFCOUNT".into(), k],
            7 => {
                let mut a = vec!["PFCOUNT".into()];
                a.extend(self.keys("hll", 3));
                a
            }
            8 | 9 => {
                let mut a = vec!["PFMERGE".into(), k];
                a.extend(self.keys("hll", 3));
                a
            }
            10 | 11 => vec!["GET".into(), k],
            12 => vec!["PFDEBUG".into(), self.pick(&["ENCODING", "DECODE", "TODENSE", "encoding", "nosuch"]).into(), k],
            13 => vec!["DEL".into(), k],
            14 => vec!["EXPIRE".into(), k, "1000".into()],
            // Damage: the code stops adding up (a byte that starts a two-byte opcode is never written
            // last: Redis then reads its string terminator as the second byte, see docs/resp.md).
            _ => match self.rng.random_range(0..4) {
                0 => vec!["SET".into(), k, self.pick(&["HYLL", "x", "HYLL\x01"]).into()],
                1 => vec!["APPEND".into(), k, "\u{80}".into()],
                2 => vec!["SETRANGE".into(), k, self.small(16, 20), self.pick(&["\u{80}", "\x00", "\x05"]).into()],
                _ => vec!["SETRANGE".into(), k, "4".into(), self.pick(&["\x00", "\x02"]).into()],
            },
        };
        Cmd::new(a, Norm::Exact)
    }

    /// BITFIELD / BITFIELD_RO: fields of every width at plain and `#` offsets, values at and past each
    /// width's limits, each overflow rule.
    fn bitfield(&mut self, k: String) -> Vec<String> {
        let ro = self.chance(0.2);
        let mut a = vec![if ro { "BITFIELD_RO" } else { "BITFIELD" }.to_string(), k];
        for _ in 0..self.rng.random_range(0..=4) {
            let ty = if self.chance(0.03) {
                self.pick(&["u64", "i65", "x8", "i0", "", "u"]).to_string()
            } else {
                let signed = self.chance(0.5);
                let bits = *[1u32, 2, 3, 4, 5, 7, 8, 9, 15, 16, 31, 32, 33, 63, 64]
                    .choose(&mut self.rng)
                    .expect("non-empty")
                    .min(if signed { &64 } else { &63 });
                format!("{}{bits}", if signed { "i" } else { "u" })
            };
            let offset = match self.rng.random_range(0..10) {
                0 => format!("#{}", self.small(0, 5)),
                1 => self.pick(&["-1", "x", "#-1", "4294967296"]).to_string(),
                _ => self.small(0, 70),
            };
            let value = match self.rng.random_range(0..6) {
                0 => self.pick(&["9223372036854775807", "-9223372036854775808", "abc", "255", "-129"]).to_string(),
                _ => self.small(-300, 300),
            };
            match self.rng.random_range(0..(if ro { 5 } else { 4 })) {
                0 => a.extend(["OVERFLOW".into(), self.pick(&["WRAP", "SAT", "FAIL", "fail", "bogus"]).into()]),
                1 => a.extend(["SET".into(), ty, offset, value]),
                2 => a.extend(["INCRBY".into(), ty, offset, value]),
                _ => a.extend(["GET".into(), ty, offset]),
            }
        }
        if self.chance(0.03) {
            a.push(self.pick(&["GET", "SET", "junk"]).into());
        }
        a
    }

    /// A point: cities, edges of the valid range, and random places.
    fn geo_point(&mut self) -> [String; 2] {
        const PLACES: &[[&str; 2]] = &[
            ["13.361389", "38.115556"],
            ["15.087269", "37.502669"],
            ["2.3522", "48.8566"],
            ["-0.1276", "51.5072"],
            ["-74.006", "40.7128"],
            ["139.6917", "35.6895"],
            ["180", "85.05112878"],
            ["-180", "-85.05112878"],
            ["0", "0"],
            ["13.361389", "38.115556"],
        ];
        if self.chance(0.5) {
            let p = PLACES.choose(&mut self.rng).expect("non-empty");
            return [p[0].into(), p[1].into()];
        }
        if self.chance(0.03) {
            return [self.pick(&["181", "0", "x", "-180.5"]).into(), self.pick(&["86", "0", "y", "-85.06"]).into()];
        }
        if self.chance(0.5) {
            // Near Europe, where the other points are.
            let lon = self.rng.random_range(-10.0..30.0f64);
            let lat = self.rng.random_range(30.0..60.0f64);
            return [format!("{lon:.6}"), format!("{lat:.6}")];
        }
        let lon = self.rng.random_range(-180.0..180.0f64);
        let lat = self.rng.random_range(-85.0..85.0f64);
        [format!("{lon:.6}"), format!("{lat:.6}")]
    }

    fn geo_member(&mut self) -> String {
        format!("m{}", self.rng.random_range(0..8))
    }

    /// Geo: points added (NX XX CH), read back, measured, and searched every way, stored or not.
    fn geo(&mut self) -> Cmd {
        let k = self.key("geo");
        let unit = |g: &mut Gen| {
            if g.chance(0.03) { "parsec" } else { g.pick(&["km", "km", "km", "mi", "m", "ft", "KM"]) }.to_string()
        };
        let radius = |g: &mut Gen| {
            if g.chance(0.03) {
                g.pick(&["-1", "x"]).to_string()
            } else {
                g.pick(&["0", "1", "100", "500", "1000", "2000", "3000", "5000", "8000", "12000", "20000"]).to_string()
            }
        };
        let a: Vec<String> = match self.rng.random_range(0..18) {
            0..=4 => {
                let mut a = vec!["GEOADD".into(), k];
                for opt in ["NX", "XX", "CH"] {
                    if self.chance(0.1) {
                        a.push(opt.into());
                    }
                }
                for _ in 0..self.rng.random_range(1..=3) {
                    a.extend(self.geo_point());
                    a.push(self.geo_member());
                }
                a
            }
            5 => {
                let mut a = vec!["GEOPOS".into(), k];
                a.extend((0..self.rng.random_range(1..=3)).map(|_| self.geo_member()));
                a
            }
            6 => {
                let mut a = vec!["GEODIST".into(), k, self.geo_member(), self.geo_member()];
                if self.chance(0.5) {
                    a.push(unit(self));
                }
                a
            }
            7 => {
                let mut a = vec!["GEOHASH".into(), k];
                a.extend((0..self.rng.random_range(1..=3)).map(|_| self.geo_member()));
                a
            }
            8 => vec!["ZRANGE".into(), k, "0".into(), "-1".into(), "WITHSCORES".into()],
            9 => vec!["ZADD".into(), k, self.pick(&["1.5", "-1", "0", "4503599627370496"]).into(), self.geo_member()],
            _ => {
                let kind = self.pick(&[
                    "GEOSEARCH",
                    "GEOSEARCHSTORE",
                    "GEORADIUS",
                    "GEORADIUS_RO",
                    "GEORADIUSBYMEMBER",
                    "GEORADIUSBYMEMBER_RO",
                ]);
                let mut a = vec![kind.to_string()];
                if kind == "GEOSEARCHSTORE" {
                    a.push(self.key("geo"));
                }
                a.push(k);
                let mut opts: Vec<Vec<String>> = Vec::new();
                if kind.starts_with("GEOSEARCH") {
                    let from = if self.chance(0.5) {
                        vec!["FROMMEMBER".into(), self.geo_member()]
                    } else {
                        let [lon, lat] = self.geo_point();
                        vec!["FROMLONLAT".into(), lon, lat]
                    };
                    let by = if self.chance(0.5) {
                        vec!["BYRADIUS".into(), radius(self), unit(self)]
                    } else {
                        vec!["BYBOX".into(), radius(self), radius(self), unit(self)]
                    };
                    if self.chance(0.97) {
                        opts.push(from);
                    }
                    if self.chance(0.97) {
                        opts.push(by);
                    }
                } else if kind.starts_with("GEORADIUSBYMEMBER") {
                    a.push(self.geo_member());
                    a.extend([radius(self), unit(self)]);
                } else {
                    a.extend(self.geo_point());
                    a.extend([radius(self), unit(self)]);
                }
                let store =
                    kind == "GEOSEARCHSTORE" || (matches!(kind, "GEORADIUS" | "GEORADIUSBYMEMBER") && self.chance(0.3));
                if !store || self.chance(0.05) {
                    for w in ["WITHDIST", "WITHHASH", "WITHCOORD"] {
                        if self.chance(0.3) {
                            opts.push(vec![w.into()]);
                        }
                    }
                }
                if self.chance(0.5) {
                    opts.push(vec![self.pick(&["ASC", "DESC"]).into()]);
                }
                if self.chance(0.3) {
                    let n = if self.chance(0.05) { self.pick(&["0", "-1"]) } else { self.pick(&["1", "2", "3", "5"]) };
                    let mut c = vec!["COUNT".into(), n.into()];
                    if self.chance(0.3) {
                        c.push("ANY".into());
                    }
                    opts.push(c);
                }
                if store {
                    if kind == "GEOSEARCHSTORE" {
                        if self.chance(0.5) {
                            opts.push(vec!["STOREDIST".into()]);
                        }
                    } else {
                        opts.push(vec![self.pick(&["STORE", "STOREDIST"]).into(), self.key("geo")]);
                    }
                }
                opts.shuffle(&mut self.rng);
                a.extend(opts.into_iter().flatten());
                a
            }
        };
        Cmd::new(a, Norm::Exact)
    }

    /// SORT over the list, set and sorted-set families' keys, by and getting the other families' keys
    /// (elements `a`..`d` name `str:a`.. and `h:a`..). Orders Redis leaves open are not asked for: a
    /// set's own order (BY without `*`, unless stored) and ties of ALPHA BY outside lists.
    fn sort(&mut self) -> Cmd {
        let family = self.pick(&["l", "set", "z"]);
        let k = self.key(family);
        let mut a = vec![if self.chance(0.2) { "SORT_RO" } else { "SORT" }.to_string(), k];
        let mut store = a[0] == "SORT" && self.chance(0.3);
        let mut opts: Vec<Vec<String>> = Vec::new();
        let alpha = self.chance(0.4);
        if alpha {
            opts.push(vec!["ALPHA".into()]);
        }
        let mut alpha_by = false;
        if self.chance(0.4) {
            // A key's type is not known here (any name may hold a set, RENAME moves them): BY without
            // `*` takes a set's own order, which Redis leaves open unless the result is stored.
            let by = if !store {
                self.pick(&["str:*", "h:*->a", "*"])
            } else {
                self.pick(&["str:*", "h:*->a", "nosort", "#", "str:*->x", "*"])
            };
            alpha_by = alpha && by.contains('*');
            opts.push(vec!["BY".into(), by.into()]);
        }
        // ALPHA BY leaves ties (missing values) in the source's order, a set's own order included: its
        // replies are compared as multisets, and it takes no LIMIT and no STORE.
        if alpha_by {
            store = false;
        } else if self.chance(0.3) {
            opts.push(vec!["LIMIT".into(), self.small(-1, 4), self.small(-1, 4)]);
        }
        for _ in 0..self.rng.random_range(0..=2) {
            opts.push(vec!["GET".into(), self.pick(&["#", "str:*", "h:*->b", "nosuch", "l:*"]).into()]);
        }
        if self.chance(0.4) {
            opts.push(vec![self.pick(&["ASC", "DESC", "desc"]).into()]);
        }
        if store {
            opts.push(vec!["STORE".into(), self.key("l")]);
        }
        opts.shuffle(&mut self.rng);
        a.extend(opts.into_iter().flatten());
        // A word short of its arguments, last (anywhere else it would take the next option's words).
        if self.chance(0.03) {
            a.push(self.pick(&["LIMIT", "BY", "STORE", "junk"]).into());
        }
        Cmd::new(a, if alpha_by { Norm::Unordered } else { Norm::Exact })
    }

    fn any_key(&mut self) -> String {
        let family = self.pick(&["str", "h", "l", "set", "z", "x"]);
        self.key(family)
    }

    fn keys_cmd(&mut self) -> Cmd {
        let k = self.any_key();
        let (a, norm): (Vec<String>, Norm) = match self.rng.random_range(0..20) {
            0 => (vec![self.pick(&["DEL", "UNLINK"]).into(), k, self.any_key()], Norm::Exact),
            1 => (vec!["EXISTS".into(), k.clone(), k, self.any_key()], Norm::Exact),
            2 | 3 => (vec!["TYPE".into(), k], Norm::Exact),
            4 => (vec![self.pick(&["RENAME", "RENAMENX"]).into(), k, self.any_key()], Norm::Exact),
            5 | 6 => {
                let mut a = vec![
                    self.pick(&["EXPIRE", "PEXPIRE"]).into(),
                    k,
                    self.pick(&["1000", "2000000", "0", "-1"]).into(),
                ];
                if self.chance(0.4) {
                    a.push(self.pick(&["NX", "XX", "GT", "LT", "FOO"]).into());
                }
                (a, Norm::Exact)
            }
            7 => (
                vec![self.pick(&["EXPIREAT", "PEXPIREAT"]).into(), k, self.pick(&["1", "4000000000000"]).into()],
                Norm::Exact,
            ),
            8 => (vec![self.pick(&["TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME"]).into(), k], Norm::Ttl),
            9 => (vec!["PERSIST".into(), k], Norm::Exact),
            10 => (vec!["KEYS".into(), self.pick(&["*", "str:*", "?:a", "[hl]:*", "z:[a-b]"]).into()], Norm::Unordered),
            11 => (vec!["DBSIZE".into()], Norm::Exact),
            12 | 13 => {
                let mut a = vec!["COPY".into(), k, self.any_key()];
                if self.chance(0.4) {
                    a.push("REPLACE".into());
                }
                (a, Norm::Exact)
            }
            14 => (vec!["TOUCH".into(), k, self.any_key()], Norm::Exact),
            15 => (vec!["RANDOMKEY".into()], Norm::Shape),
            16 => {
                let mut a = vec!["SCAN".into(), "0".into(), "COUNT".into(), "1000".into()];
                if self.chance(0.5) {
                    a.extend(["TYPE".into(), self.pick(&["string", "hash", "list", "set", "zset", "stream"]).into()]);
                }
                if self.chance(0.3) {
                    a.extend(["MATCH".into(), self.pick(&["*:a", "h*"]).into()]);
                }
                (a, Norm::ScanAll { pairs: false })
            }
            17 => {
                // Any family's write, so that the key commands meet every type.
                let family = self.pick(&["strings", "hashes", "lists", "sets", "zsets", "streams"]);
                return self.family(family).remove(0);
            }
            _ => (vec!["EXISTS".into(), k], Norm::Exact),
        };
        Cmd::new(a, norm)
    }

    fn hash(&mut self) -> Cmd {
        let k = self.key("h");
        let f = self.member();
        let (a, norm): (Vec<String>, Norm) = match self.rng.random_range(0..18) {
            0..=3 => {
                let mut a = vec![self.pick(&["HSET", "HSET", "HMSET"]).to_string(), k];
                for _ in 0..self.rng.random_range(1..=3) {
                    a.push(self.member());
                    a.push(self.int());
                }
                (a, Norm::Exact)
            }
            4 => (vec!["HSETNX".into(), k, f, self.int()], Norm::Exact),
            5 => (vec!["HGET".into(), k, f], Norm::Exact),
            6 => (vec!["HMGET".into(), k, f, self.member()], Norm::Exact),
            7 => (vec!["HDEL".into(), k, f, self.member()], Norm::Exact),
            8 => (vec!["HLEN".into(), k], Norm::Exact),
            9 => (vec!["HEXISTS".into(), k, f], Norm::Exact),
            10 => (vec![self.pick(&["HKEYS", "HVALS"]).into(), k], Norm::Unordered),
            11 => (vec!["HGETALL".into(), k], Norm::Pairs),
            12 => (vec!["HINCRBY".into(), k, f, self.int()], Norm::Exact),
            13 => (vec!["HINCRBYFLOAT".into(), k, f, self.pick(FLOATS).into()], Norm::Exact),
            14 => (vec!["HSTRLEN".into(), k, f], Norm::Exact),
            15 => {
                let mut a = vec!["HRANDFIELD".into(), k];
                if self.chance(0.7) {
                    a.push(self.small(-4, 4));
                    if self.chance(0.5) {
                        a.push("WITHVALUES".into());
                    }
                }
                (a, Norm::Shape)
            }
            _ => (vec!["HSCAN".into(), k, "0".into(), "COUNT".into(), "1000".into()], Norm::ScanAll { pairs: true }),
        };
        Cmd::new(a, norm)
    }

    fn list(&mut self) -> Cmd {
        let k = self.key("l");
        let side = |g: &mut Gen| g.pick(&["LEFT", "RIGHT"]).to_string();
        let a: Vec<String> = match self.rng.random_range(0..24) {
            0..=3 => {
                let mut a = vec![self.pick(&["LPUSH", "RPUSH", "LPUSHX", "RPUSHX"]).to_string(), k];
                for _ in 0..self.rng.random_range(1..=3) {
                    a.push(self.member());
                }
                a
            }
            4 | 5 => {
                let mut a = vec![self.pick(&["LPOP", "RPOP"]).to_string(), k];
                if self.chance(0.4) {
                    a.push(self.small(-1, 4));
                }
                a
            }
            6 => vec!["LLEN".into(), k],
            7 | 8 => vec!["LRANGE".into(), k, self.small(-5, 5), self.small(-5, 5)],
            9 => vec!["LINDEX".into(), k, self.small(-5, 5)],
            10 => vec!["LSET".into(), k, self.small(-4, 4), self.member()],
            11 => vec![
                "LINSERT".into(),
                k,
                self.pick(&["BEFORE", "AFTER", "MIDDLE"]).into(),
                self.member(),
                self.member(),
            ],
            12 => vec!["LREM".into(), k, self.small(-2, 2), self.member()],
            13 => vec!["LTRIM".into(), k, self.small(-4, 4), self.small(-4, 4)],
            14 => {
                let mut a = vec!["LPOS".into(), k, self.member()];
                if self.chance(0.5) {
                    a.extend(["RANK".into(), self.pick(&["1", "-1", "2", "0"]).into()]);
                }
                if self.chance(0.5) {
                    a.extend(["COUNT".into(), self.small(0, 3)]);
                }
                if self.chance(0.3) {
                    a.extend(["MAXLEN".into(), self.small(0, 3)]);
                }
                a
            }
            15 | 16 => vec!["LMOVE".into(), k, self.key("l"), side(self), side(self)],
            17 => vec!["RPOPLPUSH".into(), k, self.key("l")],
            18 => vec![self.pick(&["BLPOP", "BRPOP"]).into(), k, self.key("l"), "0.01".into()],
            19 => vec!["BLMOVE".into(), k, self.key("l"), side(self), side(self), "0.01".into()],
            20 | 21 => {
                let keys = self.keys("l", 2);
                let blocking = self.chance(0.3);
                let mut a = vec![if blocking { "BLMPOP" } else { "LMPOP" }.to_string()];
                if blocking {
                    a.push("0.01".into());
                }
                a.push(keys.len().to_string());
                a.extend(keys);
                a.push(side(self));
                if self.chance(0.5) {
                    a.extend(["COUNT".into(), self.small(0, 3)]);
                }
                a
            }
            _ => vec!["RPUSH".into(), k, self.member(), self.member(), self.member(), self.member()],
        };
        Cmd::new(a, Norm::Exact)
    }

    fn set(&mut self) -> Cmd {
        let k = self.key("set");
        let (a, norm): (Vec<String>, Norm) = match self.rng.random_range(0..18) {
            0..=3 => {
                let mut a = vec!["SADD".to_string(), k];
                for _ in 0..self.rng.random_range(1..=4) {
                    a.push(self.member());
                }
                (a, Norm::Exact)
            }
            4 => (vec!["SREM".into(), k, self.member(), self.member()], Norm::Exact),
            5 => (vec!["SISMEMBER".into(), k, self.member()], Norm::Exact),
            6 => (vec!["SMISMEMBER".into(), k, self.member(), self.member()], Norm::Exact),
            7 => (vec!["SMEMBERS".into(), k], Norm::Unordered),
            8 => (vec!["SCARD".into(), k], Norm::Exact),
            9 | 10 => {
                let mut a = vec![self.pick(&["SINTER", "SUNION", "SDIFF"]).to_string()];
                a.extend(self.keys("set", 3));
                (a, Norm::Unordered)
            }
            11 => {
                let mut a = vec![self.pick(&["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"]).to_string(), self.key("set")];
                a.extend(self.keys("set", 3));
                (a, Norm::Exact)
            }
            12 => (vec!["SMOVE".into(), k, self.key("set"), self.member()], Norm::Exact),
            13 => {
                let keys = self.keys("set", 3);
                let mut a = vec!["SINTERCARD".into(), keys.len().to_string()];
                a.extend(keys);
                if self.chance(0.4) {
                    a.extend(["LIMIT".into(), self.small(0, 3)]);
                }
                (a, Norm::Exact)
            }
            14 => {
                let mut a = vec!["SRANDMEMBER".into(), k];
                if self.chance(0.7) {
                    a.push(self.small(-4, 4));
                }
                (a, Norm::Shape)
            }
            // SPOP with a count above the size pops everything: no random choice.
            15 => (vec!["SPOP".into(), k, "100".into()], Norm::Unordered),
            _ => (vec!["SSCAN".into(), k, "0".into(), "COUNT".into(), "1000".into()], Norm::ScanAll { pairs: false }),
        };
        Cmd::new(a, norm)
    }

    fn zset(&mut self) -> Cmd {
        // Lex ranges are specified only when all scores are equal: they run on `zl:` keys, whose members
        // all have score 0.
        if self.chance(0.2) {
            return self.zset_lex();
        }
        let k = self.key("z");
        let ws = |g: &mut Gen, a: &mut Vec<String>| {
            if g.chance(0.5) {
                a.push("WITHSCORES".into());
            }
        };
        let limit = |g: &mut Gen, a: &mut Vec<String>| {
            if g.chance(0.3) {
                a.extend(["LIMIT".into(), g.small(-1, 2), g.small(-1, 3)]);
            }
        };
        let (a, norm): (Vec<String>, Norm) = match self.rng.random_range(0..34) {
            0..=4 => {
                let mut a = vec!["ZADD".to_string(), k];
                for opt in ["NX", "XX", "GT", "LT", "CH", "INCR"] {
                    if self.chance(0.08) {
                        a.push(opt.into());
                    }
                }
                for _ in 0..self.rng.random_range(1..=3) {
                    a.push(self.pick(SCORES).into());
                    a.push(self.member());
                }
                (a, Norm::Exact)
            }
            5 => (vec!["ZREM".into(), k, self.member(), self.member()], Norm::Exact),
            6 => (vec!["ZSCORE".into(), k, self.member()], Norm::Exact),
            7 => (vec!["ZMSCORE".into(), k, self.member(), self.member()], Norm::Exact),
            8 => (vec!["ZINCRBY".into(), k, self.pick(FLOATS).into(), self.member()], Norm::Exact),
            9 => (vec!["ZCARD".into(), k], Norm::Exact),
            10 => (vec!["ZCOUNT".into(), k, self.pick(RANGES).into(), self.pick(RANGES).into()], Norm::Exact),
            11 => (vec![self.pick(&["ZRANK", "ZREVRANK"]).into(), k, self.member()], Norm::Exact),
            12..=14 => {
                let mut a = vec!["ZRANGE".to_string(), k];
                match self.rng.random_range(0..3) {
                    0 => a.extend([self.small(-4, 4), self.small(-4, 4)]),
                    1 => {
                        a.extend([self.pick(RANGES).into(), self.pick(RANGES).into(), "BYSCORE".into()]);
                    }
                    _ => a.extend([self.small(-4, 4), self.small(-4, 4)]),
                }
                if self.chance(0.3) {
                    a.push("REV".into());
                }
                limit(self, &mut a);
                ws(self, &mut a);
                (a, Norm::Exact)
            }
            15 => {
                let mut a = vec!["ZREVRANGE".to_string(), k, self.small(-4, 4), self.small(-4, 4)];
                ws(self, &mut a);
                (a, Norm::Exact)
            }
            16 => {
                let name = self.pick(&["ZRANGEBYSCORE", "ZREVRANGEBYSCORE"]);
                let mut a = vec![name.to_string(), k, self.pick(RANGES).into(), self.pick(RANGES).into()];
                ws(self, &mut a);
                limit(self, &mut a);
                (a, Norm::Exact)
            }
            17 | 18 => (vec!["ZSCORE".into(), k, self.member()], Norm::Exact),
            19 => {
                let mut a = vec!["ZRANGESTORE".to_string(), self.key("z"), k, self.small(-3, 3), self.small(-3, 3)];
                if self.chance(0.3) {
                    a.push("REV".into());
                }
                (a, Norm::Exact)
            }
            20 | 21 => {
                let mut a = vec![self.pick(&["ZPOPMIN", "ZPOPMAX"]).to_string(), k];
                if self.chance(0.5) {
                    a.push(self.small(-1, 3));
                }
                (a, Norm::Exact)
            }
            22 => (vec!["ZREMRANGEBYSCORE".into(), k, self.pick(RANGES).into(), self.pick(RANGES).into()], Norm::Exact),
            23 => (vec!["ZREMRANGEBYRANK".into(), k, self.small(-3, 3), self.small(-3, 3)], Norm::Exact),
            24 => (vec!["ZCARD".into(), k], Norm::Exact),
            25 | 26 => {
                let name = self.pick(&["ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE", "ZUNION", "ZINTER", "ZDIFF"]);
                let keys = self.keys("z", 3);
                let mut a = vec![name.to_string()];
                if name.ends_with("STORE") {
                    a.push(self.key("z"));
                }
                a.push(keys.len().to_string());
                a.extend(keys.iter().cloned());
                if !name.starts_with("ZDIFF") {
                    if self.chance(0.3) {
                        a.push("WEIGHTS".into());
                        for _ in &keys {
                            a.push(self.pick(&["1", "2", "0", "-1", "0.5"]).into());
                        }
                    }
                    if self.chance(0.3) {
                        a.extend(["AGGREGATE".into(), self.pick(&["SUM", "MIN", "MAX"]).into()]);
                    }
                }
                if !name.ends_with("STORE") {
                    ws(self, &mut a);
                }
                (a, Norm::Exact)
            }
            27 => {
                let keys = self.keys("z", 3);
                let mut a = vec!["ZINTERCARD".into(), keys.len().to_string()];
                a.extend(keys);
                if self.chance(0.4) {
                    a.extend(["LIMIT".into(), self.small(0, 3)]);
                }
                (a, Norm::Exact)
            }
            28 => {
                let mut a = vec!["ZRANDMEMBER".into(), k];
                if self.chance(0.7) {
                    a.push(self.small(-4, 4));
                    if self.chance(0.5) {
                        a.push("WITHSCORES".into());
                    }
                }
                (a, Norm::Shape)
            }
            29 | 30 => {
                let keys = self.keys("z", 2);
                let blocking = self.chance(0.3);
                let mut a = vec![if blocking { "BZMPOP" } else { "ZMPOP" }.to_string()];
                if blocking {
                    a.push("0.01".into());
                }
                a.push(keys.len().to_string());
                a.extend(keys);
                a.push(self.pick(&["MIN", "MAX"]).into());
                if self.chance(0.5) {
                    a.extend(["COUNT".into(), self.small(0, 3)]);
                }
                (a, Norm::Exact)
            }
            31 => (vec![self.pick(&["BZPOPMIN", "BZPOPMAX"]).into(), k, self.key("z"), "0.01".into()], Norm::Exact),
            _ => (vec!["ZSCAN".into(), k, "0".into(), "COUNT".into(), "1000".into()], Norm::ScanAll { pairs: true }),
        };
        Cmd::new(a, norm)
    }

    /// Sorted-set commands on members of equal score: lex ranges.
    fn zset_lex(&mut self) -> Cmd {
        let k = format!("zl:{}", self.pick(&["a", "b"]));
        let (lo, hi) = (self.pick(LEX).to_string(), self.pick(LEX).to_string());
        let mut a: Vec<String> = match self.rng.random_range(0..8) {
            0..=2 => {
                let mut a = vec!["ZADD".to_string(), k];
                for _ in 0..self.rng.random_range(1..=3) {
                    a.extend(["0".into(), self.member()]);
                }
                a
            }
            3 => vec![self.pick(&["ZRANGEBYLEX", "ZREVRANGEBYLEX"]).into(), k, lo, hi],
            4 => vec!["ZRANGE".into(), k, lo, hi, "BYLEX".into()],
            5 => vec!["ZLEXCOUNT".into(), k, lo, hi],
            6 => vec!["ZREMRANGEBYLEX".into(), k, lo, hi],
            _ => vec!["ZRANGE".into(), k, "0".into(), "-1".into()],
        };
        if matches!(a[0].as_str(), "ZRANGEBYLEX" | "ZREVRANGEBYLEX" | "ZRANGE") && a.len() > 4 && self.chance(0.3) {
            if a[0] == "ZRANGE" && self.chance(0.5) {
                a.push("REV".into());
            }
            a.extend(["LIMIT".into(), self.small(-1, 2), self.small(-1, 3)]);
        }
        Cmd::new(a, Norm::Exact)
    }

    fn stream(&mut self) -> Cmd {
        let k = self.key("x");
        let g = self.pick(&["g1", "g2"]).to_string();
        let c = self.pick(&["c1", "c2"]).to_string();
        let id = |g: &mut Gen| format!("{}-{}", g.rng.random_range(0..g.stream_ms + 1), g.rng.random_range(0..2));
        let a: Vec<String> = match self.rng.random_range(0..20) {
            0..=4 => {
                self.stream_ms += 1;
                let mut a = vec!["XADD".to_string(), k];
                if self.chance(0.2) {
                    a.extend(["MAXLEN".into(), self.small(0, 5)]);
                }
                a.push(format!("{}-0", self.stream_ms));
                a.extend([self.member(), self.int()]);
                a
            }
            5 => vec!["XLEN".into(), k],
            6 | 7 => {
                let mut a = vec![self.pick(&["XRANGE", "XREVRANGE"]).to_string(), k];
                let (lo, hi) = (self.pick(&["-", "0", "(1-0"]).to_string(), self.pick(&["+", "5", "(9-0"]).to_string());
                if a[0] == "XRANGE" {
                    a.extend([lo, hi]);
                } else {
                    a.extend([hi, lo]);
                }
                if self.chance(0.3) {
                    a.extend(["COUNT".into(), self.small(0, 3)]);
                }
                a
            }
            8 => vec!["XDEL".into(), k, id(self)],
            9 => vec!["XTRIM".into(), k, "MAXLEN".into(), self.small(0, 5)],
            10 => {
                let mut a = vec!["XGROUP".into(), "CREATE".into(), k, g, self.pick(&["0", "$"]).into()];
                if self.chance(0.4) {
                    a.push("MKSTREAM".into());
                }
                a
            }
            11 => vec!["XGROUP".into(), "DESTROY".into(), k, g],
            12 => vec!["XGROUP".into(), self.pick(&["CREATECONSUMER", "DELCONSUMER"]).into(), k, g, c],
            13 | 14 => {
                let mut a = vec!["XREADGROUP".into(), "GROUP".into(), g, c];
                if self.chance(0.6) {
                    a.extend(["COUNT".into(), self.small(1, 3)]);
                }
                a.extend(["STREAMS".into(), k, self.pick(&[">", ">", "0"]).into()]);
                a
            }
            15 => vec!["XACK".into(), k, g, id(self), id(self)],
            16 => vec!["XPENDING".into(), k, g],
            17 => vec!["XREAD".into(), "COUNT".into(), self.small(1, 3), "STREAMS".into(), k, id(self)],
            18 => vec!["XGROUP".into(), "SETID".into(), k, g, self.pick(&["0", "$"]).into()],
            _ => vec!["XAUTOCLAIM".into(), k, g, c, "0".into(), "0-0".into(), "COUNT".into(), self.small(1, 3)],
        };
        Cmd::new(a, Norm::Exact)
    }

    /// A step in another database than 0: SELECT 1 to 3, commands of the key families and of databases
    /// (MOVE, SWAPDB, COPY ... DB, FLUSHDB, SELECT), now and then inside MULTI, and back to database 0.
    /// Streams stay in database 0 (a Synap difference: docs/resp.md), so this never touches one: the
    /// other databases hold none, and SWAPDB here swaps only databases 1 to 3.
    fn databases(&mut self) -> Vec<Cmd> {
        let exact = |a: Vec<&str>| Cmd::new(a.into_iter().map(String::from).collect(), Norm::Exact);
        let db = self.pick(&["1", "2", "3"]);
        let mut out = vec![exact(vec!["SELECT", db])];
        let multi = self.chance(0.2);
        if multi {
            out.push(exact(vec!["MULTI"]));
        }
        for _ in 0..self.rng.random_range(1..=4) {
            let cmd = match self.rng.random_range(0..14) {
                0 => {
                    let to = self.pick(&["0", "1", "2", "3", "3", "16", "-1", "abc"]);
                    Cmd::new(vec!["MOVE".into(), self.any_key(), to.into()], Norm::Exact)
                }
                1 => {
                    let a = self.pick(&["1", "2", "3", "3", "x", "16"]);
                    let b = self.pick(&["1", "2", "3", "y", "-1"]);
                    exact(vec!["SWAPDB", a, b])
                }
                2 => {
                    let mut a = vec!["COPY".to_string(), self.any_key(), self.any_key()];
                    if self.chance(0.8) {
                        a.extend(["DB".into(), self.pick(&["0", "1", "2", "3", "16", "x"]).into()]);
                    }
                    if self.chance(0.4) {
                        a.push("REPLACE".into());
                    }
                    Cmd::new(a, Norm::Exact)
                }
                3 => exact(vec!["SELECT", self.pick(&["1", "2", "3", "16", "-1", "abc", "99999999999"])]),
                4 => exact(vec![self.pick(&["DBSIZE", "DBSIZE", "FLUSHDB"])]),
                5 if !multi => Cmd::new(vec!["KEYS".into(), "*".into()], Norm::Unordered),
                _ => {
                    let family = self.pick(&["strings", "hashes", "lists", "sets", "zsets", "keys"]);
                    let cmd = self.family(family).remove(0);
                    // Blocking commands inside MULTI do not block; keep the step simple. No stream
                    // commands outside database 0.
                    if multi && cmd.norm != Norm::Exact || cmd.args[0].starts_with('X') {
                        continue;
                    }
                    cmd
                }
            };
            out.push(cmd);
        }
        if multi {
            out.push(exact(vec!["EXEC"]));
        }
        out.push(exact(vec!["SELECT", "0"]));
        out
    }

    fn transaction(&mut self) -> Vec<Cmd> {
        let mut out = Vec::new();
        if self.chance(0.2) {
            let k = self.any_key();
            out.push(Cmd::new(vec!["WATCH".into(), k.clone()], Norm::Exact));
            if self.chance(0.5) {
                out.push(Cmd::new(vec!["DEL".into(), k], Norm::Exact));
            }
        }
        out.push(Cmd::new(vec!["MULTI".into()], Norm::Exact));
        for _ in 0..self.rng.random_range(0..=4) {
            let cmd = match self.rng.random_range(0..20) {
                0 => Cmd::new(vec!["NOSUCHCOMMAND".into(), "x".into()], Norm::Exact),
                1 => Cmd::new(vec!["GET".into()], Norm::Exact),
                2 => Cmd::new(vec!["SET".into(), "str:a".into(), "1".into(), "NX".into(), "XX".into()], Norm::Exact),
                3 => Cmd::new(vec!["MULTI".into()], Norm::Exact),
                _ => {
                    let family = self.pick(&["strings", "hashes", "lists", "sets", "zsets", "keys"]);
                    let cmd = self.family(family).remove(0);
                    // Blocking commands inside MULTI do not block; keep the step simple.
                    if cmd.norm != Norm::Exact { continue } else { cmd }
                }
            };
            out.push(cmd);
        }
        out.push(Cmd::new(vec![if self.chance(0.85) { "EXEC" } else { "DISCARD" }.into()], Norm::Exact));
        out
    }

    fn scripting(&mut self) -> Cmd {
        if self.chance(0.25) {
            return self.function();
        }
        let (body, nkeys) = *SCRIPTS.choose(&mut self.rng).expect("scripts");
        let name = match self.rng.random_range(0..10) {
            0..=4 => "EVAL",
            5..=7 => "EVALSHA",
            8 => "EVAL_RO",
            _ => {
                return match self.rng.random_range(0..4) {
                    0 => Cmd::new(vec!["SCRIPT".into(), "LOAD".into(), body.into()], Norm::Exact),
                    1 => {
                        Cmd::new(vec!["SCRIPT".into(), "EXISTS".into(), sha1_hex(body), sha1_hex("nope")], Norm::Exact)
                    }
                    2 => Cmd::new(vec!["SCRIPT".into(), "FLUSH".into()], Norm::Exact),
                    _ => Cmd::new(vec!["EVAL".into(), body.into(), self.pick(&["-1", "9", "x"]).into()], Norm::Exact),
                };
            }
        };
        let family = self.pick(&["str", "h", "l", "set", "z"]);
        let mut a = vec![name.to_string(), if name.starts_with("EVALSHA") { sha1_hex(body) } else { body.to_string() }];
        a.push(nkeys.to_string());
        for _ in 0..nkeys {
            a.push(self.key(family));
        }
        for _ in 0..2 {
            a.push(if self.chance(0.5) { self.int() } else { self.member() });
        }
        // Set members and hash fields come back in no promised order.
        let norm = if body.contains("'smembers'") {
            Norm::Unordered
        } else if body.contains("'hgetall'") {
            Norm::Pairs
        } else {
            Norm::Exact
        };
        Cmd::new(a, norm)
    }

    /// Functions: libraries loaded (REPLACE or not), called (FCALL, FCALL_RO), deleted, flushed.
    fn function(&mut self) -> Cmd {
        let a: Vec<String> = match self.rng.random_range(0..10) {
            0..=2 => {
                let mut a = vec!["FUNCTION".to_string(), "LOAD".into()];
                if self.chance(0.6) {
                    a.push("REPLACE".into());
                }
                a.push(self.pick(LIBRARIES).into());
                a
            }
            3 => vec!["FUNCTION".into(), "DELETE".into(), self.pick(&["counters", "lists", "errors", "nosuch"]).into()],
            4 if self.chance(0.2) => vec!["FUNCTION".into(), "FLUSH".into()],
            _ => {
                let name = if self.chance(0.2) { "FCALL_RO" } else { "FCALL" };
                let family = self.pick(&["str", "l"]);
                let mut a = vec![name.to_string(), self.pick(FUNCTIONS).into(), "1".into(), self.key(family)];
                if self.chance(0.5) {
                    a.push(self.int());
                }
                a
            }
        };
        Cmd::new(a, Norm::Exact)
    }

    fn pubsub(&mut self) -> Cmd {
        let (a, norm): (Vec<String>, Norm) = match self.rng.random_range(0..5) {
            0 | 1 => (
                vec!["PUBLISH".into(), self.pick(&["ch:1", "ch:2", "ch:3", "other"]).into(), self.member()],
                Norm::Exact,
            ),
            2 => (vec!["PUBSUB".into(), "CHANNELS".into(), self.pick(&["*", "ch:*", "x*"]).into()], Norm::Unordered),
            3 => (vec!["PUBSUB".into(), "NUMSUB".into(), "ch:1".into(), "ch:3".into()], Norm::Exact),
            _ => (vec!["PUBSUB".into(), "NUMPAT".into()], Norm::Exact),
        };
        Cmd::new(a, norm)
    }
}

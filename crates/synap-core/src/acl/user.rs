//! One user: its rules in Redis's ACL syntax, parsed into what a check reads (a bit per command-table
//! row, key patterns with read/write permissions, channel patterns), and described back the way Redis
//! 7.0 describes them (`ACL LIST`, `ACL GETUSER`). The description is also how a user is recorded:
//! replaying it gives the same user.

use std::sync::LazyLock;

use bytes::Bytes;

use crate::command::table::{self, COMMANDS};
use crate::glob::glob_match;

/// Redis's ACL categories, in the order Redis lists (and describes) them, then Synap's.
pub const CATEGORIES: &[&str] = &[
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
    "queue",
];

const READ: u8 = 1;
const WRITE: u8 = 2;

/// What the check needs of each command-table row.
struct RowInfo {
    /// Bit `i` set: the row is in `CATEGORIES[i]`.
    cats: u32,
    /// The row has subcommand rows (`config`, `client`, ...): categories never reach it, only its name.
    container: bool,
}

static ROWS: LazyLock<Vec<RowInfo>> = LazyLock::new(|| {
    COMMANDS
        .iter()
        .map(|s| {
            let cats = s
                .categories()
                .iter()
                .filter_map(|c| CATEGORIES.iter().position(|k| Some(*k) == c.strip_prefix('@')))
                .fold(0u32, |acc, i| acc | (1 << i));
            let container = table::subcommands(s.name).next().is_some();
            RowInfo { cats, container }
        })
        .collect()
});

/// Rows that write yet read the value they change, so that a key needs read permission too (Redis's
/// ACCESS key flag on a write command).
const WRITES_THAT_READ: &[&str] = &[
    "getset",
    "getdel",
    "getex",
    "incr",
    "incrby",
    "decr",
    "decrby",
    "incrbyfloat",
    "hincrby",
    "hincrbyfloat",
    "zincrby",
    "lpop",
    "rpop",
    "blpop",
    "brpop",
    "lmove",
    "blmove",
    "rpoplpush",
    "brpoplpush",
    "lmpop",
    "blmpop",
    "spop",
    "smove",
    "zpopmin",
    "zpopmax",
    "bzpopmin",
    "bzpopmax",
    "zmpop",
    "bzmpop",
    "xreadgroup",
    "xclaim",
    "xautoclaim",
    "qconsume",
];

/// The positions, among a write command's keys, of the keys it reads to make its result (Redis's key
/// specs give them the ACCESS flag without INSERT/UPDATE): sources of a copy, a rename, a set operation
/// or a merge stored elsewhere, SORT's and GEORADIUS's key before STORE.
fn source_keys(name: &str, n: usize) -> std::ops::Range<usize> {
    match name {
        "copy" | "rename" | "renamenx" | "smove" | "lmove" | "blmove" | "rpoplpush" | "brpoplpush" => 0..1,
        "sunionstore" | "sinterstore" | "sdiffstore" | "zrangestore" | "geosearchstore" | "pfmerge" | "bitop" => 1..n,
        "sort" | "georadius" | "georadiusbymember" => 0..1,
        _ => 0..0,
    }
}

/// Why a check refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// The command (its full name, `config|set` for a subcommand).
    Command(&'static str),
    Key(Bytes),
    Channel(Bytes),
}

impl Denial {
    /// The NOPERM error line.
    pub fn error_line(&self) -> String {
        match self {
            Denial::Command(name) => format!("NOPERM this user has no permissions to run the '{name}' command"),
            Denial::Key(_) => "NOPERM this user has no permissions to access one of the keys used as arguments".into(),
            Denial::Channel(_) => {
                "NOPERM this user has no permissions to access one of the channels used as arguments".into()
            }
        }
    }

    /// ACL DRYRUN's answer.
    pub fn dry_run(&self) -> String {
        match self {
            Denial::Command(name) => format!("This user has no permissions to run the '{name}' command"),
            Denial::Key(k) => {
                format!("This user has no permissions to access the '{}' key", String::from_utf8_lossy(k))
            }
            Denial::Channel(c) => {
                format!("This user has no permissions to access the '{}' channel", String::from_utf8_lossy(c))
            }
        }
    }

    /// ACL LOG's reason and object.
    pub fn reason_object(&self) -> (&'static str, String) {
        match self {
            Denial::Command(name) => ("command", name.to_string()),
            Denial::Key(k) => ("key", String::from_utf8_lossy(k).into_owned()),
            Denial::Channel(c) => ("channel", String::from_utf8_lossy(c).into_owned()),
        }
    }
}

/// One user.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub name: Bytes,
    pub enabled: bool,
    pub nopass: bool,
    /// `Some(true)`: sanitize-payload, `Some(false)`: skip-sanitize-payload.
    pub sanitize: Option<bool>,
    /// Password hashes: argon2id PHC strings (`>password`) or SHA-256 hex digests (`#digest`, as Redis).
    pub passwords: Vec<String>,
    bits: Vec<u64>,
    /// `+@all` (or `allcommands`) is the base: commands added later are allowed too.
    allcommands: bool,
    /// The command and category rules applied since the base, as Redis 7.2 keeps them: a rule given
    /// again moves to the end, a container's rule replaces its subcommands' rules.
    rules: Vec<String>,
    keys: Vec<(Bytes, u8)>,
    channels: Vec<Bytes>,
    unrestricted: bool,
}

fn words() -> usize {
    COMMANDS.len().div_ceil(64)
}

impl User {
    /// A new user as ACL SETUSER creates it: off, no password, no keys, no channels, no commands.
    pub fn new(name: Bytes) -> User {
        User {
            name,
            enabled: false,
            nopass: false,
            sanitize: None,
            passwords: Vec::new(),
            bits: vec![0; words()],
            allcommands: false,
            rules: Vec::new(),
            keys: Vec::new(),
            channels: Vec::new(),
            unrestricted: false,
        }
    }

    /// The `default` user of a server without ACL configuration: on, no password, everything allowed.
    pub fn default_user() -> User {
        let mut u = User::new(Bytes::from_static(b"default"));
        for op in ["on", "nopass", "~*", "&*", "+@all"] {
            u.apply(op.as_bytes(), &mut |_| unreachable_hash()).expect("the default rules parse");
        }
        u
    }

    /// Everything is allowed: the check is skipped.
    pub fn unrestricted(&self) -> bool {
        self.unrestricted
    }

    fn allkeys(&self) -> bool {
        self.keys.iter().any(|(p, perm)| &p[..] == b"*" && *perm == READ | WRITE)
    }

    fn allchannels(&self) -> bool {
        self.channels.iter().any(|p| &p[..] == b"*")
    }

    fn bit(&self, i: usize) -> bool {
        self.bits[i / 64] & (1 << (i % 64)) != 0
    }

    fn set_bit(&mut self, i: usize, on: bool) {
        if on {
            self.bits[i / 64] |= 1 << (i % 64);
        } else {
            self.bits[i / 64] &= !(1 << (i % 64));
        }
    }

    /// A row and, for a container, its subcommands.
    fn set_command(&mut self, i: usize, on: bool) {
        self.set_bit(i, on);
        if ROWS[i].container {
            let name = COMMANDS[i].name;
            for (j, s) in COMMANDS.iter().enumerate() {
                if s.name.strip_prefix(name).is_some_and(|r| r.starts_with('|')) {
                    self.set_bit(j, on);
                }
            }
        }
    }

    fn set_category(&mut self, cat: usize, on: bool) {
        for (i, r) in ROWS.iter().enumerate() {
            if !r.container && r.cats & (1 << cat) != 0 {
                self.set_bit(i, on);
            }
        }
    }

    fn refresh(&mut self) {
        self.unrestricted = self.allcommands
            && self.bits.iter().enumerate().all(|(w, b)| {
                let n = (COMMANDS.len() - w * 64).min(64);
                let mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
                b & mask == mask
            })
            && self.allkeys()
            && self.allchannels();
    }

    /// Applies one rule. `hash` turns a clear password into its stored hash. On error the user may be
    /// half changed: apply rules to a copy.
    pub fn apply(&mut self, op: &[u8], hash: &mut dyn FnMut(&[u8]) -> String) -> Result<(), String> {
        let r = self.apply_inner(op, hash);
        self.refresh();
        r
    }

    fn apply_inner(&mut self, op: &[u8], hash: &mut dyn FnMut(&[u8]) -> String) -> Result<(), String> {
        let lower = op.to_ascii_lowercase();
        match &lower[..] {
            b"on" => self.enabled = true,
            b"off" => self.enabled = false,
            b"nopass" => {
                self.nopass = true;
                self.passwords.clear();
            }
            b"resetpass" => {
                self.nopass = false;
                self.passwords.clear();
            }
            b"sanitize-payload" => self.sanitize = Some(true),
            b"skip-sanitize-payload" => self.sanitize = Some(false),
            b"allkeys" => self.keys = vec![(Bytes::from_static(b"*"), READ | WRITE)],
            b"resetkeys" => self.keys.clear(),
            b"allchannels" => self.channels = vec![Bytes::from_static(b"*")],
            b"resetchannels" => self.channels.clear(),
            b"allcommands" | b"+@all" => {
                self.bits.iter_mut().for_each(|b| *b = u64::MAX);
                self.allcommands = true;
                self.rules.clear();
            }
            b"nocommands" | b"-@all" => {
                self.bits.iter_mut().for_each(|b| *b = 0);
                self.allcommands = false;
                self.rules.clear();
            }
            b"reset" => {
                for op in ["resetpass", "resetkeys", "resetchannels", "off", "-@all"] {
                    self.apply_inner(op.as_bytes(), hash)?;
                }
                self.sanitize = Some(true);
            }
            _ => return self.apply_pattern_or_command(op, hash),
        }
        Ok(())
    }

    fn apply_pattern_or_command(&mut self, op: &[u8], hash: &mut dyn FnMut(&[u8]) -> String) -> Result<(), String> {
        match op.first() {
            Some(b'>') => {
                if self.passwords.len() >= MAX_PASSWORDS {
                    return Err(format!("a user has at most {MAX_PASSWORDS} passwords"));
                }
                let h = hash(&op[1..]);
                if !self.passwords.iter().any(|p| verify_password(p, &op[1..])) {
                    self.passwords.push(h);
                }
                self.nopass = false;
            }
            Some(b'<') => {
                let before = self.passwords.len();
                self.passwords.retain(|p| !verify_password(p, &op[1..]));
                if self.passwords.len() == before {
                    return Err("no such password".into());
                }
            }
            Some(b'#') => {
                let h = std::str::from_utf8(&op[1..]).map_err(|_| HASH_ERROR.to_string())?;
                if !valid_hash(h) {
                    return Err(HASH_ERROR.into());
                }
                if !self.passwords.iter().any(|p| p == h) {
                    if self.passwords.len() >= MAX_PASSWORDS {
                        return Err(format!("a user has at most {MAX_PASSWORDS} passwords"));
                    }
                    self.passwords.push(h.to_string());
                }
                self.nopass = false;
            }
            Some(b'!') => {
                let h = std::str::from_utf8(&op[1..]).map_err(|_| HASH_ERROR.to_string())?;
                if !valid_hash(h) {
                    return Err(HASH_ERROR.into());
                }
                let before = self.passwords.len();
                self.passwords.retain(|p| p != h);
                if self.passwords.len() == before {
                    return Err("no such password".into());
                }
            }
            Some(b'~') => self.add_key(&op[1..], READ | WRITE)?,
            Some(b'%') => {
                let tilde = op.iter().position(|&c| c == b'~').ok_or("Syntax error")?;
                let mut perm = 0;
                for c in &op[1..tilde] {
                    perm |= match c.to_ascii_uppercase() {
                        b'R' => READ,
                        b'W' => WRITE,
                        _ => return Err("Syntax error".into()),
                    };
                }
                if perm == 0 {
                    return Err("Syntax error".into());
                }
                self.add_key(&op[tilde + 1..], perm)?;
            }
            Some(b'&') => {
                check_pattern(&op[1..])?;
                if self.channels.len() >= MAX_PATTERNS {
                    return Err(format!("a user has at most {MAX_PATTERNS} channel patterns"));
                }
                if self.allchannels() {
                    return Err("Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels".into());
                }
                let p = Bytes::copy_from_slice(&op[1..]);
                if &p[..] == b"*" {
                    self.channels = vec![p];
                } else if !self.channels.contains(&p) {
                    self.channels.push(p);
                }
            }
            Some(b'(') => return Err("Selectors are not supported".into()),
            Some(&sign @ (b'+' | b'-')) => {
                let on = sign == b'+';
                let name = &op[1..];
                let lower = String::from_utf8_lossy(name).to_ascii_lowercase();
                if let Some(cat) = lower.strip_prefix('@') {
                    let i = CATEGORIES.iter().position(|c| *c == cat).ok_or(UNKNOWN)?;
                    self.set_category(i, on);
                } else {
                    let i = COMMANDS
                        .iter()
                        .position(|s| s.name == lower && (s.parse.is_some() || s.is_subcommand()))
                        .ok_or(UNKNOWN)?;
                    self.set_command(i, on);
                }
                self.rules.retain(|r| {
                    let r = &r[1..];
                    r != lower && !r.strip_prefix(lower.as_str()).is_some_and(|rest| rest.starts_with('|'))
                });
                self.rules.push(format!("{}{lower}", sign as char));
            }
            _ => return Err("Syntax error".into()),
        }
        Ok(())
    }

    fn add_key(&mut self, pattern: &[u8], perm: u8) -> Result<(), String> {
        check_pattern(pattern)?;
        if self.keys.len() >= MAX_PATTERNS {
            return Err(format!("a user has at most {MAX_PATTERNS} key patterns"));
        }
        if self.allkeys() {
            return Err("Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns".into());
        }
        let p = Bytes::copy_from_slice(pattern);
        if &p[..] == b"*" && perm == READ | WRITE {
            self.keys = vec![(p, perm)];
            return Ok(());
        }
        match self.keys.iter_mut().find(|(k, _)| *k == p) {
            Some((_, old)) => *old |= perm,
            None => self.keys.push((p, perm)),
        }
        Ok(())
    }

    /// Whether the user may run a command line (`args[0]` is the name) whose table row is `index`.
    pub fn check(&self, index: usize, args: &[Bytes]) -> Result<(), Denial> {
        // AUTH and HELLO are always allowed (a user can always change who it is).
        if self.unrestricted || matches!(COMMANDS[index].name, "auth" | "hello") {
            return Ok(());
        }
        let mut row = index;
        if ROWS[index].container
            && let Some(sub) = args.get(1)
        {
            let name = format!("{}|{}", COMMANDS[index].name, String::from_utf8_lossy(sub).to_ascii_lowercase());
            if let Some(i) = COMMANDS.iter().position(|s| s.name == name) {
                row = i;
            }
        }
        if !self.bit(row) {
            return Err(Denial::Command(COMMANDS[row].name));
        }
        let spec = &COMMANDS[index];
        if !self.allkeys()
            && let Ok(keys) = table::command_keys(args)
        {
            let reads_too = WRITES_THAT_READ.contains(&spec.name);
            let sources = source_keys(spec.name, keys.len());
            for (i, (key, write)) in keys.into_iter().enumerate() {
                let source = sources.contains(&i);
                let need = match (write, source) {
                    // A source of a write (COPY, RENAME, SUNIONSTORE, ...) is read, and moved or
                    // deleted by some of them.
                    (true, true)
                        if matches!(
                            spec.name,
                            "rename" | "renamenx" | "smove" | "lmove" | "blmove" | "rpoplpush" | "brpoplpush"
                        ) =>
                    {
                        READ | WRITE
                    }
                    (_, true) => READ,
                    (true, false) => WRITE | if reads_too { READ } else { 0 },
                    (false, false) => READ,
                };
                if !self.key_allowed(&key, need) {
                    return Err(Denial::Key(key));
                }
            }
            // SORT's BY and GET read keys named by patterns: only a user with every key may use them
            // (`BY nosort` and `GET #` read none). Redis refuses them when the command runs; here the
            // check does, so ACL DRYRUN says so too.
            if matches!(spec.name, "sort" | "sort_ro")
                && let Some(w) = args.windows(2).skip(2).find(|w| {
                    (w[0].eq_ignore_ascii_case(b"by") && !w[1].eq_ignore_ascii_case(b"nosort"))
                        || (w[0].eq_ignore_ascii_case(b"get") && &w[1][..] != b"#")
                })
            {
                return Err(Denial::Key(w[1].clone()));
            }
        }
        if !self.allchannels() {
            match spec.name {
                "publish" | "spublish" => {
                    if let Some(c) = args.get(1)
                        && !self.channel_allowed(c)
                    {
                        return Err(Denial::Channel(c.clone()));
                    }
                }
                "subscribe" | "ssubscribe" => {
                    if let Some(c) = args[1..].iter().find(|c| !self.channel_allowed(c)) {
                        return Err(Denial::Channel(c.clone()));
                    }
                }
                "psubscribe" => {
                    if let Some(c) = args[1..].iter().find(|c| !self.channel_listed(c)) {
                        return Err(Denial::Channel(c.clone()));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether the user may run the command of row `index` at all (no arguments checked): HTTP routes
    /// check this, then keys and channels one by one.
    pub fn may_run(&self, name: &str) -> Result<(), Denial> {
        if self.unrestricted {
            return Ok(());
        }
        match COMMANDS.iter().position(|s| s.name == name) {
            Some(i) if self.bit(i) => Ok(()),
            Some(i) => Err(Denial::Command(COMMANDS[i].name)),
            None => Err(Denial::Command("unknown")),
        }
    }

    /// Whether the user may read (`write` false) or write a key.
    fn key_allowed(&self, key: &[u8], need: u8) -> bool {
        self.keys.iter().any(|(p, perm)| perm & need == need && glob_match(p, key))
    }

    /// Whether command `name` may read (`write` false) or change a key (a change that also reads the
    /// value needs both).
    pub fn may_access_key(&self, name: &str, key: &[u8], write: bool) -> bool {
        let need = if write { WRITE | if WRITES_THAT_READ.contains(&name) { READ } else { 0 } } else { READ };
        self.unrestricted || self.key_allowed(key, need)
    }

    /// Whether a channel pattern is one of the user's, as written (PSUBSCRIBE's rule).
    pub fn channel_listed(&self, pattern: &[u8]) -> bool {
        self.unrestricted || self.allchannels() || self.channels.iter().any(|p| &p[..] == pattern)
    }

    pub fn channel_allowed(&self, channel: &[u8]) -> bool {
        self.unrestricted || self.channels.iter().any(|p| glob_match(p, channel))
    }

    /// ACL GETUSER's flags.
    pub fn flags(&self) -> Vec<&'static str> {
        let mut f = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            f.push("nopass");
        }
        match self.sanitize {
            Some(true) => f.push("sanitize-payload"),
            Some(false) => f.push("skip-sanitize-payload"),
            None => {}
        }
        f
    }

    /// The key patterns, as ACL GETUSER shows them.
    pub fn describe_keys(&self) -> String {
        let parts: Vec<String> = self
            .keys
            .iter()
            .map(|(p, perm)| {
                let p = String::from_utf8_lossy(p);
                match *perm {
                    READ => format!("%R~{p}"),
                    WRITE => format!("%W~{p}"),
                    _ => format!("~{p}"),
                }
            })
            .collect();
        parts.join(" ")
    }

    /// The channel patterns, as ACL GETUSER shows them.
    pub fn describe_channels(&self) -> String {
        let parts: Vec<String> = self.channels.iter().map(|p| format!("&{}", String::from_utf8_lossy(p))).collect();
        parts.join(" ")
    }

    /// The command rules: `+@all` or `-@all`, then the rules applied since, in order.
    pub fn describe_commands(&self) -> String {
        let mut out = String::from(if self.allcommands { "+@all" } else { "-@all" });
        for r in &self.rules {
            out.push(' ');
            out.push_str(r);
        }
        out
    }

    /// The rules that rebuild the user (ACL LIST's line after `user <name>`); how a user is recorded.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.flags().iter().map(|f| f.to_string()).collect();
        parts.extend(self.passwords.iter().map(|p| format!("#{p}")));
        let keys = self.describe_keys();
        if !keys.is_empty() {
            parts.push(keys);
        }
        if !self.allchannels() {
            parts.push("resetchannels".into());
        }
        let channels = self.describe_channels();
        if !channels.is_empty() {
            parts.push(channels);
        }
        parts.push(self.describe_commands());
        parts.join(" ")
    }

    /// A user from its recorded description (no clear passwords in it).
    pub fn from_description(name: Bytes, rules: &[u8]) -> Result<User, String> {
        let mut u = User::new(name);
        for op in rules.split(|c| *c == b' ').filter(|w| !w.is_empty()) {
            u.apply(op, &mut |_| String::new()).map_err(|e| format!("{e} ({})", String::from_utf8_lossy(op)))?;
            if op.first() == Some(&b'>') {
                return Err("a recorded user holds a clear password".into());
            }
        }
        Ok(u)
    }
}

/// Most passwords, and key or channel patterns, one user holds.
const MAX_PASSWORDS: usize = 64;
const MAX_PATTERNS: usize = 1024;

/// A pattern is recorded in a space-separated description: no white space, UTF-8 only.
fn check_pattern(p: &[u8]) -> Result<(), String> {
    if p.iter().any(|c| c.is_ascii_whitespace() || *c == 0) || std::str::from_utf8(p).is_err() {
        return Err("Syntax error".into());
    }
    Ok(())
}

const HASH_ERROR: &str =
    "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters";
const UNKNOWN: &str = "Unknown command or category name in ACL";

fn unreachable_hash() -> String {
    String::new()
}

/// A stored password hash Synap takes: a SHA-256 hex digest (Redis's `#` form) or an argon2id PHC string.
fn valid_hash(h: &str) -> bool {
    (h.len() == 64 && h.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)))
        || (h.starts_with("$argon2id$")
            && argon2::PasswordHash::new(h).is_ok_and(|p| {
                // Parameters a login can afford: at most 64 MiB, 10 passes, 4 lanes.
                argon2::Params::try_from(&p).is_ok_and(|a| a.m_cost() <= 65_536 && a.t_cost() <= 10 && a.p_cost() <= 4)
            }))
}

/// The argon2id hash of a password, as a PHC string (random salt; OWASP's parameters, the crate's
/// defaults: 19 MiB, 2 passes, 1 lane). Takes tens of milliseconds: never on an async worker.
pub fn hash_password(password: &[u8]) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let Ok(salt) = SaltString::encode_b64(&rand::random::<[u8; 16]>()) else { return String::new() };
    argon2::Argon2::default().hash_password(password, &salt).map(|h| h.to_string()).unwrap_or_default()
}

/// Whether `password` matches a stored hash (constant time for SHA-256; argon2's own check otherwise).
pub fn verify_password(stored: &str, password: &[u8]) -> bool {
    use argon2::password_hash::PasswordVerifier;
    if stored.len() == 64 && !stored.starts_with('$') {
        let digest = sha256_hex(password);
        return digest.bytes().zip(stored.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    }
    match argon2::PasswordHash::new(stored) {
        Ok(h) => argon2::Argon2::default().verify_password(password, &h).is_ok(),
        Err(_) => false,
    }
}

/// SHA-256 as lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(data);
    let mut s = String::with_capacity(64);
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

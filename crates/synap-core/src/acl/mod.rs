//! Users and their permissions: one model for every front end (RESP's AUTH and ACL commands, HTTP's
//! Basic auth and API keys). Users are data: every change is a [`Mutation`] (`AclSetUser`, `AclDelUser`)
//! that goes through the log, so users survive restarts and reach replicas as keys do. Passwords are
//! stored as argon2id hashes (or the SHA-256 digests Redis's `#` rule gives); nothing secret is kept in
//! clear, in memory or on disk.

mod user;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

pub use user::{CATEGORIES, Denial, User, hash_password, sha256_hex, verify_password};

use crate::mutation::Mutation;

/// ACL LOG keeps this many entries (Redis's `acllog-max-len` default).
pub const LOG_MAX: usize = 128;
/// Successful logins remembered (by a keyed digest of name and password) so that a client reconnecting
/// does not pay the password hash again.
const VERIFIED_MAX: usize = 4096;
/// Failed logins a client address may make in a burst, and how fast that allowance comes back.
const LOGIN_BURST: f64 = 32.0;
const LOGIN_REFILL_PER_SEC: f64 = 10.0;
/// Client addresses the login limiter tracks at most (the fullest entries are kept).
const LIMITER_MAX: usize = 16384;

/// What a login for a missing user is checked against (the same cost as a real one).
static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| hash_password(b"synap-dummy"));

/// Most API keys kept (expired ones count until removed).
pub const MAX_API_KEYS: usize = 10_000;

/// An API key as stored: the SHA-256 digest of the token (tokens are random 256-bit values: a plain
/// digest is as strong as a slow hash here), never the token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub user: String,
    pub digest: String,
    pub created_ms: u64,
    /// 0: never expires.
    pub expires_ms: u64,
    #[serde(default)]
    pub label: String,
}

/// One change of users or keys, as [`crate::Engine::acl_change`] logs it.
#[derive(Debug, Clone, PartialEq)]
pub enum AclRecord {
    SetUser(Bytes, String),
    DelUser(Bytes),
    PutKey(ApiKey),
    DelKey(String),
}

/// The limiter's key: an IPv4 address, or an IPv6 address's /64.
fn limiter_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut o = v6.octets();
                o[8..].fill(0);
                IpAddr::V6(o.into())
            }
        },
        v4 => v4,
    }
}

/// One ACL LOG entry.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub count: u64,
    pub reason: &'static str,
    pub context: &'static str,
    pub object: String,
    pub username: String,
    pub updated: Instant,
    pub client_info: String,
}

/// The users, the ACL log and the login limiter.
pub struct Acl {
    users: RwLock<BTreeMap<Bytes, Arc<User>>>,
    /// Bumped on every change: a connection re-reads its user when it moved.
    version: AtomicU64,
    log: Mutex<VecDeque<LogEntry>>,
    verified: Mutex<HashMap<[u8; 32], String>>,
    secret: [u8; 32],
    limiter: Mutex<HashMap<IpAddr, (f64, Instant)>>,
    /// The hash of this node's `requirepass`: the `default` user's one password, whatever the records
    /// say (each node's own configuration, as in Redis).
    pinned: Mutex<Option<String>>,
    /// API keys by id, and their ids by digest.
    keys: RwLock<(BTreeMap<String, ApiKey>, HashMap<String, String>)>,
    /// A full copy is loading: its first user record replaces every user and key.
    replace_pending: AtomicBool,
}

impl Default for Acl {
    fn default() -> Self {
        Acl::new()
    }
}

impl Acl {
    pub fn new() -> Acl {
        let acl = Acl {
            users: RwLock::new(BTreeMap::new()),
            version: AtomicU64::new(1),
            log: Mutex::new(VecDeque::new()),
            verified: Mutex::new(HashMap::new()),
            secret: rand::random(),
            limiter: Mutex::new(HashMap::new()),
            pinned: Mutex::new(None),
            keys: RwLock::new((BTreeMap::new(), HashMap::new())),
            replace_pending: AtomicBool::new(false),
        };
        acl.reset();
        acl
    }

    /// Back to the `default` user alone, as a fresh server has it.
    pub fn reset(&self) {
        self.reset_to(User::default_user());
    }

    /// Before a full copy from a primary: the next user record (the copy's first) replaces every user and
    /// API key. Until then the users stay as they were, as they would while the replica lags; a copy
    /// always carries the `default` user, and its users come first.
    pub fn replace_on_next_user(&self) {
        self.replace_pending.store(true, Ordering::Release);
    }

    fn reset_to(&self, default: User) {
        let mut users = self.users.write();
        users.clear();
        self.insert(&mut users, default);
        let mut keys = self.keys.write();
        keys.0.clear();
        keys.1.clear();
        self.changed();
    }

    /// The API keys, by id.
    pub fn api_keys(&self) -> Vec<ApiKey> {
        self.keys.read().0.values().cloned().collect()
    }

    pub fn api_key(&self, id: &str) -> Option<ApiKey> {
        self.keys.read().0.get(id).cloned()
    }

    /// The user a token stands for: its key exists, has not expired at `now_ms`, and its user exists and
    /// is on.
    pub fn user_for_token(&self, token: &[u8], now_ms: u64) -> Option<(Arc<User>, String)> {
        let digest = sha256_hex(token);
        let key = {
            let keys = self.keys.read();
            let id = keys.1.get(&digest)?;
            keys.0.get(id)?.clone()
        };
        if key.expires_ms != 0 && key.expires_ms <= now_ms {
            return None;
        }
        let user = self.user(key.user.as_bytes()).filter(|u| u.enabled)?;
        Some((user, key.id))
    }

    fn insert(&self, users: &mut BTreeMap<Bytes, Arc<User>>, u: User) {
        users.insert(u.name.clone(), Arc::new(u));
    }

    /// `requirepass`: on this node, the `default` user's one password from now on (`None`: as
    /// recorded). Kept apart from the records: never logged, never replicated, as Redis's setting is
    /// each node's own.
    pub fn pin_default_password(&self, hash: Option<String>) {
        *self.pinned.lock() = hash;
        self.changed();
    }

    /// The `requirepass` hash, if this node has one.
    pub fn pinned_password(&self) -> Option<String> {
        self.pinned.lock().clone()
    }

    fn changed(&self) {
        self.version.fetch_add(1, Ordering::AcqRel);
        self.verified.lock().clear();
    }

    /// Moves whenever a user changes.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    pub fn user(&self, name: &[u8]) -> Option<Arc<User>> {
        self.users.read().get(name).cloned()
    }

    /// Every user, by name.
    pub fn users(&self) -> Vec<Arc<User>> {
        self.users.read().values().cloned().collect()
    }

    /// Whether a new connection must authenticate (the `default` user has a password or is off).
    pub fn auth_required(&self) -> bool {
        self.pinned.lock().is_some() || self.user(b"default").is_none_or(|d| !(d.enabled && d.nopass))
    }

    /// Applies an ACL record (recovery, replicas, and the primary after logging it).
    pub fn apply(&self, m: &Mutation<'_>) {
        match m {
            Mutation::AclSetUser { name, rules } => {
                let mut users = self.users.write();
                if self.replace_pending.swap(false, Ordering::AcqRel) {
                    users.clear();
                    let mut keys = self.keys.write();
                    keys.0.clear();
                    keys.1.clear();
                }
                match User::from_description(Bytes::copy_from_slice(name), rules) {
                    Ok(u) => self.insert(&mut users, u),
                    Err(e) => tracing::warn!("an ACL user record did not apply: {e}"),
                }
                self.changed();
            }
            Mutation::ApiKeyPut { id, data } => {
                match serde_json::from_slice::<ApiKey>(data) {
                    Ok(k) if k.id.as_bytes() == *id => {
                        let mut keys = self.keys.write();
                        if let Some(old) = keys.0.insert(k.id.clone(), k.clone()) {
                            keys.1.remove(&old.digest);
                        }
                        keys.1.insert(k.digest.clone(), k.id.clone());
                    }
                    _ => tracing::warn!("an API key record did not apply"),
                }
                self.changed();
            }
            Mutation::ApiKeyDel { id } => {
                let id = String::from_utf8_lossy(id).into_owned();
                let mut keys = self.keys.write();
                if let Some(old) = keys.0.remove(&id) {
                    keys.1.remove(&old.digest);
                }
                drop(keys);
                self.changed();
            }
            Mutation::AclDelUser { name } => {
                if &name[..] == b"default" {
                    self.insert(&mut self.users.write(), User::default_user());
                } else {
                    self.users.write().remove(*name);
                }
                self.changed();
            }
            _ => {}
        }
    }

    /// Checks a user's password; `None` when the user is missing, off, or the password is wrong. Costs a
    /// password hash (a missing user too, so that timing does not tell which users exist) unless the
    /// same name and password succeeded recently: run it on a blocking thread.
    pub fn authenticate(&self, name: &[u8], password: &[u8]) -> Option<Arc<User>> {
        if let Some(u) = self.verified_recently(name, password) {
            return Some(u);
        }
        let user = self.user(name).filter(|u| u.enabled);
        let pinned = if name == b"default" { self.pinned.lock().clone() } else { None };
        let Some(user) = user else {
            verify_password(&DUMMY_HASH, password);
            return None;
        };
        let hash = match &pinned {
            Some(h) => verify_password(h, password).then(|| h.clone())?,
            None if user.nopass => return Some(user),
            None => user.passwords.iter().find(|h| verify_password(h, password))?.clone(),
        };
        let key = self.verified_key(name, password);
        let mut verified = self.verified.lock();
        if verified.len() >= VERIFIED_MAX {
            verified.clear();
        }
        verified.insert(key, hash);
        Some(user)
    }

    /// [`Acl::authenticate`] without hashing: the user, when the same name and password succeeded
    /// recently (or the user needs no password).
    pub fn verified_recently(&self, name: &[u8], password: &[u8]) -> Option<Arc<User>> {
        let user = self.user(name).filter(|u| u.enabled)?;
        let pinned = if name == b"default" { self.pinned.lock().clone() } else { None };
        if pinned.is_none() && user.nopass {
            return Some(user);
        }
        let key = self.verified_key(name, password);
        let hash = self.verified.lock().get(&key).cloned()?;
        let still = match &pinned {
            Some(p) => *p == hash,
            None => user.passwords.contains(&hash),
        };
        still.then_some(user)
    }

    fn verified_key(&self, name: &[u8], password: &[u8]) -> [u8; 32] {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(self.secret);
        h.update((name.len() as u64).to_le_bytes());
        h.update(name);
        h.update(password);
        h.finalize().into()
    }

    /// Takes one login attempt from `ip`'s allowance before the password is checked (so that attempts
    /// in flight count); `false`: none left. A success gives it back ([`Acl::login_succeeded`]).
    /// IPv6 addresses count by their /64.
    pub fn login_attempt(&self, ip: IpAddr) -> bool {
        let ip = limiter_key(ip);
        let mut l = self.limiter.lock();
        if l.len() >= LIMITER_MAX && !l.contains_key(&ip) {
            // Forget the addresses whose allowance came back whole; failing that, those with the most
            // left (an address being limited is kept).
            l.retain(|_, (t, at)| *t + at.elapsed().as_secs_f64() * LOGIN_REFILL_PER_SEC < LOGIN_BURST);
            if l.len() >= LIMITER_MAX {
                let mut by_tokens: Vec<(IpAddr, f64)> = l.iter().map(|(k, (t, _))| (*k, *t)).collect();
                by_tokens.sort_by(|a, b| b.1.total_cmp(&a.1));
                for (k, _) in by_tokens.into_iter().take(LIMITER_MAX / 2) {
                    l.remove(&k);
                }
            }
        }
        let e = l.entry(ip).or_insert((LOGIN_BURST, Instant::now()));
        e.0 = (e.0 + e.1.elapsed().as_secs_f64() * LOGIN_REFILL_PER_SEC).min(LOGIN_BURST);
        e.1 = Instant::now();
        if e.0 < 1.0 {
            return false;
        }
        e.0 -= 1.0;
        true
    }

    /// A login from `ip` succeeded: its attempt is given back.
    pub fn login_succeeded(&self, ip: IpAddr) {
        if let Some(e) = self.limiter.lock().get_mut(&limiter_key(ip)) {
            e.0 = (e.0 + 1.0).min(LOGIN_BURST);
        }
    }

    /// Adds an ACL LOG entry, or counts it on an equal one from the last 60 seconds.
    pub fn log(
        &self,
        reason: &'static str,
        context: &'static str,
        object: String,
        username: String,
        client_info: String,
    ) {
        let mut log = self.log.lock();
        if let Some(pos) = log.iter().position(|e| {
            e.reason == reason
                && e.context == context
                && e.object == object
                && e.username == username
                && e.updated.elapsed().as_secs() < 60
        }) {
            let mut e = log.remove(pos).expect("position is in range");
            e.count += 1;
            e.updated = Instant::now();
            e.client_info = client_info;
            log.push_front(e);
            return;
        }
        log.push_front(LogEntry { count: 1, reason, context, object, username, updated: Instant::now(), client_info });
        log.truncate(LOG_MAX);
    }

    /// The newest `count` entries.
    pub fn log_entries(&self, count: usize) -> Vec<LogEntry> {
        self.log.lock().iter().take(count).cloned().collect()
    }

    pub fn log_reset(&self) {
        self.log.lock().clear();
    }
}

#[cfg(test)]
mod tests;

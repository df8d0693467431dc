//! AUTH, HELLO ... AUTH and the ACL commands on RESP. The checks themselves are the engine's
//! (`synap_core::acl`); here a connection keeps its user, answers the commands and runs the costly ones
//! (password hashing, the ACL file) on a blocking thread once the batch before them is answered.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use synap_core::acl::{self, Acl, AclRecord, CATEGORIES, Denial, User};
use synap_core::command::table;
use synap_core::{CommandError, ExecCtx, Reply};
use synap_resp::Protocol;
use tokio::sync::Semaphore;

use super::connection::Conn;

/// Password hashes computed at once (each takes tens of milliseconds and 19 MiB): a flood of AUTH
/// waits here instead of filling the blocking pool.
static HASHING: Semaphore = Semaphore::const_new(4);

/// A place among the password hashes computed at once (HTTP's Basic auth takes one too).
pub async fn hashing_permit() -> Option<tokio::sync::SemaphorePermit<'static>> {
    HASHING.acquire().await.ok()
}

/// Work a command leaves for after its batch.
pub(super) enum Deferred {
    /// AUTH, or HELLO with AUTH (`hello`: the protocol and name it asks for).
    Auth {
        user: Bytes,
        /// The client gave a user name (AUTH's two-argument form, or HELLO).
        named: bool,
        password: Bytes,
        hello: Option<(Option<i64>, Option<Bytes>)>,
    },
    Acl {
        sub: &'static str,
        args: Vec<Bytes>,
    },
    /// CONFIG SET requirepass.
    RequirePass(Bytes),
}

/// The ACL subcommands that change users or touch the ACL file.
pub(super) fn is_deferred(sub: &str) -> bool {
    matches!(sub, "acl|setuser" | "acl|deluser" | "acl|save" | "acl|load")
}

fn bulk(s: impl Into<Bytes>) -> Reply {
    Reply::Bulk(s.into())
}

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

impl Conn {
    /// The user changed (or went): take its new rules, or close the connection of a deleted user.
    pub(super) fn refresh_user(&mut self) {
        let acl = self.shared.service.engine.acl();
        self.acl_version = acl.version();
        match acl.user(&self.user.name) {
            Some(u) => self.user = u,
            None => self.quit = true,
        }
    }

    /// Records a refusal in ACL LOG.
    pub(super) fn acl_denied(&self, d: &Denial, context: &'static str) {
        let (reason, object) = d.reason_object();
        let user = String::from_utf8_lossy(&self.user.name).into_owned();
        let info = super::admin::client_line(&self.entry);
        self.shared.service.engine.acl().log(reason, context, object, user, info);
    }

    fn set_user(&mut self, user: Arc<User>) {
        *self.entry.user.lock() = user.name.clone();
        self.user = user;
        self.authenticated = true;
        self.acl_version = self.shared.service.engine.acl().version();
    }

    /// The ACL subcommands answered at once.
    pub(super) fn acl_now(&mut self, sub: &'static str, args: Vec<Bytes>, out: &mut Vec<u8>) {
        let acl = self.shared.service.engine.acl();
        let reply = match acl_read(acl, sub, &args, &self.user) {
            Ok(r) => r,
            Err(msg) => return synap_resp::error_line(out, &msg),
        };
        synap_resp::encode(out, &reply, self.proto);
    }

    /// Runs deferred work: its reply, or an error line.
    pub(super) async fn run_deferred(&mut self, d: Deferred) -> Result<Reply, String> {
        let svc = self.shared.service.clone();
        match d {
            Deferred::Auth { user, password, named, hello } => {
                let ip = self.entry.addr.ip();
                let acl = || svc.engine.acl();
                if !named && !acl().auth_required() {
                    return Err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?".into());
                }
                // A client that logged in with the same password recently costs no hash.
                let found = match acl().verified_recently(&user, &password) {
                    Some(u) => Some(u),
                    None => {
                        if !acl().login_attempt(ip) {
                            return Err(
                                "ERR too many failed authentication attempts from this address; try again later".into(),
                            );
                        }
                        let Ok(_permit) = HASHING.acquire().await else {
                            return Err("ERR server shutting down".into());
                        };
                        let (engine, name, pw) = (svc.engine.clone(), user.clone(), password);
                        let found = tokio::task::spawn_blocking(move || engine.acl().authenticate(&name, &pw))
                            .await
                            .map_err(|e| format!("ERR {e}"))?;
                        if found.is_some() {
                            acl().login_succeeded(ip);
                        }
                        found
                    }
                };
                let Some(found) = found else {
                    svc.stats.auth_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let info = super::admin::client_line(&self.entry);
                    acl().log("auth", "toplevel", "AUTH".into(), String::from_utf8_lossy(&user).into_owned(), info);
                    return Err(WRONGPASS.into());
                };
                self.set_user(found);
                match hello {
                    None => Ok(Reply::Ok),
                    Some((proto, setname)) => Ok(self.hello_reply(proto, setname)),
                }
            }
            Deferred::RequirePass(pass) => {
                // This node's own setting, as Redis's: not a record.
                let Ok(_permit) = HASHING.acquire().await else { return Err("ERR server shutting down".into()) };
                let hash = if pass.is_empty() {
                    None
                } else {
                    Some(
                        tokio::task::spawn_blocking(move || acl::hash_password(&pass))
                            .await
                            .map_err(|e| format!("ERR {e}"))?,
                    )
                };
                svc.engine.acl().pin_default_password(hash);
                Ok(Reply::Ok)
            }
            Deferred::Acl { sub, args } => self.acl_change(sub, args).await,
        }
    }

    async fn acl_change(&mut self, sub: &'static str, args: Vec<Bytes>) -> Result<Reply, String> {
        let svc = self.shared.service.clone();
        let Ok(permit) = HASHING.acquire().await else { return Err("ERR server shutting down".into()) };
        let aclfile = svc.config.auth.aclfile.clone();
        let engine = svc.engine.clone();
        let (reply, lsn, deleted) = tokio::task::spawn_blocking(move || -> Result<_, String> {
            let mut ctx = ExecCtx::default();
            let mut deleted = Vec::new();
            let reply = match sub {
                "acl|setuser" => {
                    let name = args[0].clone();
                    if name.iter().any(|c| c.is_ascii_whitespace() || *c == 0) || std::str::from_utf8(&name).is_err() {
                        return Err("ERR Usernames can't contain spaces or null characters".into());
                    }
                    // Passwords hashed (and `<password` matched) before the change takes the gate.
                    let ops = prehash(&engine, &name, &args[1..])?;
                    engine
                        .acl_change(&mut ctx, |acl| {
                            let mut u = acl.user(&name).map(|u| (*u).clone()).unwrap_or_else(|| User::new(name.clone()));
                            for (op, shown) in &ops {
                                u.apply(op, &mut |_| String::new()).map_err(|e| {
                                    CommandError::Raw(format!("ERR Error in ACL SETUSER modifier '{shown}': {e}"))
                                })?;
                            }
                            Ok((vec![AclRecord::SetUser(name.clone(), u.describe())], ()))
                        })
                        .map_err(|e| e.to_string())?;
                    Reply::Ok
                }
                "acl|deluser" => {
                    let n = engine
                        .acl_change(&mut ctx, |acl| {
                            if args.iter().any(|a| &a[..] == b"default") {
                                return Err(CommandError::Raw("ERR The 'default' user cannot be removed".into()));
                            }
                            let mut records = Vec::new();
                            for a in &args {
                                if acl.user(a).is_some() && !records.contains(&AclRecord::DelUser(a.clone())) {
                                    records.push(AclRecord::DelUser(a.clone()));
                                }
                            }
                            let n = records.len();
                            records.extend(keys_of(acl, &args));
                            Ok((records, n))
                        })
                        .map_err(|e| e.to_string())?;
                    deleted = args.clone();
                    Reply::Int(n as i64)
                }
                "acl|save" => {
                    let path = aclfile.ok_or(NO_ACLFILE)?;
                    let mut text = String::new();
                    for u in engine.acl().users() {
                        text.push_str(&format!("user {} {}\n", String::from_utf8_lossy(&u.name), u.describe()));
                    }
                    write_file(&path, text.as_bytes()).map_err(|e| format!("ERR There was an error trying to save the ACLs. Please check the server logs for more information ({e})"))?;
                    Reply::Ok
                }
                "acl|load" => {
                    let path = aclfile.ok_or(NO_ACLFILE)?;
                    let text = std::fs::read(&path).map_err(|e| format!("ERR Error loading ACLs, opening file '{}': {e}", path.display()))?;
                    let users = parse_acl_file(&text)?;
                    engine
                        .acl_change(&mut ctx, |acl| {
                            let mut records = Vec::new();
                            let mut gone = Vec::new();
                            for u in acl.users() {
                                if !users.iter().any(|n| n.name == u.name) {
                                    records.push(AclRecord::DelUser(u.name.clone()));
                                    gone.push(u.name.clone());
                                }
                            }
                            records.extend(keys_of(acl, &gone));
                            records.extend(users.iter().map(|u| AclRecord::SetUser(u.name.clone(), u.describe())));
                            Ok((records, ()))
                        })
                        .map_err(|e| e.to_string())?;
                    Reply::Ok
                }
                _ => return Err(format!("ERR unknown subcommand '{sub}'")),
            };
            Ok((reply, ctx.lsn, deleted))
        })
        .await
        .map_err(|e| format!("ERR {e}"))??;
        drop(permit);
        // Connections of deleted users close, as Redis's do.
        if !deleted.is_empty() {
            for c in self.shared.clients.lock().values() {
                if deleted.contains(&*c.user.lock()) {
                    c.killed.store(true, Ordering::Release);
                    c.kill.notify_waiters();
                }
            }
        }
        if lsn > 0 {
            svc.wait_durable(lsn).await.map_err(|e| e.to_string())?;
        }
        Ok(reply)
    }

    /// HELLO's reply, after it switched protocol and name.
    pub(super) fn hello_reply(&mut self, proto: Option<i64>, setname: Option<Bytes>) -> Reply {
        if let Some(p) = proto {
            self.proto = if p == 3 { Protocol::Resp3 } else { Protocol::Resp2 };
            self.entry.resp.store(p as u8, Ordering::Relaxed);
        }
        if let Some(name) = setname {
            *self.entry.name.lock() = Some(name);
        }
        Reply::Map(vec![
            (bulk("server"), bulk("redis")),
            (bulk("version"), bulk(super::admin::COMPAT_REDIS_VERSION)),
            (bulk("proto"), Reply::Int(if self.proto == Protocol::Resp3 { 3 } else { 2 })),
            (bulk("id"), Reply::Int(self.entry.id as i64)),
            (bulk("mode"), bulk("standalone")),
            (bulk("role"), bulk("master")),
            (bulk("modules"), Reply::Array(vec![])),
        ])
    }
}

const NO_ACLFILE: &str = "ERR This Synap instance is not configured to use an ACL file. Set auth.aclfile in the configuration; users are kept in the data directory either way.";

/// The API keys of users being deleted go with them.
fn keys_of(acl: &Acl, users: &[Bytes]) -> Vec<AclRecord> {
    acl.api_keys()
        .into_iter()
        .filter(|k| users.iter().any(|u| u[..] == *k.user.as_bytes()))
        .map(|k| AclRecord::DelKey(k.id))
        .collect()
}

/// ACL SETUSER's rules with `>password` turned into `#<argon2id hash>` and `<password` into `!<hash>`
/// for each stored hash it matches (hashing takes a while: done before the change holds the gate); each
/// with its text as an error shows it.
fn prehash(engine: &synap_core::Engine, name: &[u8], ops: &[Bytes]) -> Result<Vec<(Bytes, String)>, String> {
    let current = engine.acl().user(name);
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        let shown = shown_rule(op);
        match op.first() {
            Some(b'>') => out.push((Bytes::from(format!("#{}", acl::hash_password(&op[1..]))), shown)),
            Some(b'<') => {
                let matched: Vec<&String> = current
                    .as_ref()
                    .map(|u| u.passwords.iter().filter(|h| acl::verify_password(h, &op[1..])).collect())
                    .unwrap_or_default();
                if matched.is_empty() {
                    return Err(format!("ERR Error in ACL SETUSER modifier '{shown}': no such password"));
                }
                out.extend(matched.into_iter().map(|h| (Bytes::from(format!("!{h}")), shown.clone())));
            }
            _ => out.push((op.clone(), shown)),
        }
    }
    Ok(out)
}

/// A rule as an error shows it (a password never).
fn shown_rule(op: &[u8]) -> String {
    match op.first() {
        Some(b'>' | b'<') => format!("{}(redacted)", op[0] as char),
        _ => String::from_utf8_lossy(op).into_owned(),
    }
}

/// Writes a file whole: a temporary file, synced, renamed over the old one, the directory synced.
fn write_file(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// An ACL file: `user <name> <rules...>` lines (blank lines and `#` comments skipped). All or nothing.
fn parse_acl_file(text: &[u8]) -> Result<Vec<User>, String> {
    let mut users: Vec<User> = Vec::new();
    for (i, line) in text.split(|c| *c == b'\n').enumerate() {
        let line = line.trim_ascii();
        if line.is_empty() || line[0] == b'#' {
            continue;
        }
        let words: Vec<&[u8]> = line.split(|c| *c == b' ').filter(|w| !w.is_empty()).collect();
        if words.len() < 2 || words[0] != b"user" {
            return Err(format!("ERR /{}:{}: line should start with user keyword", "aclfile", i + 1));
        }
        let name = Bytes::copy_from_slice(words[1]);
        if users.iter().any(|u| u.name == name) {
            return Err(format!("ERR /aclfile:{}: duplicate user '{}' found", i + 1, String::from_utf8_lossy(&name)));
        }
        let mut u = User::new(name);
        for op in &words[2..] {
            u.apply(op, &mut |p| acl::hash_password(p))
                .map_err(|e| format!("ERR /aclfile:{}: {e}. Use ACL SETUSER to fix it", i + 1))?;
        }
        users.push(u);
    }
    Ok(users)
}

/// The ACL subcommands that only read.
fn acl_read(acl: &Acl, sub: &str, args: &[Bytes], me: &User) -> Result<Reply, String> {
    Ok(match sub {
        "acl|whoami" => bulk(me.name.clone()),
        "acl|users" => Reply::Array(acl.users().iter().map(|u| bulk(u.name.clone())).collect()),
        "acl|list" => Reply::Array(
            acl.users()
                .iter()
                .map(|u| bulk(format!("user {} {}", String::from_utf8_lossy(&u.name), u.describe())))
                .collect(),
        ),
        "acl|getuser" => match acl.user(&args[0]) {
            None => Reply::Nil,
            Some(u) => Reply::Map(vec![
                (bulk("flags"), Reply::Set(u.flags().into_iter().map(bulk).collect())),
                (bulk("passwords"), Reply::Array(u.passwords.iter().map(|p| bulk(p.clone())).collect())),
                (bulk("commands"), bulk(u.describe_commands())),
                (bulk("keys"), bulk(u.describe_keys())),
                (bulk("channels"), bulk(u.describe_channels())),
                (bulk("selectors"), Reply::Array(vec![])),
            ]),
        },
        "acl|cat" => match args.first() {
            None => Reply::Array(CATEGORIES.iter().map(|c| bulk(*c)).collect()),
            Some(cat) => {
                let cat = String::from_utf8_lossy(cat).to_ascii_lowercase();
                if !CATEGORIES.contains(&cat.as_str()) {
                    return Err(format!("ERR Unknown category '{cat}'"));
                }
                let tag = format!("@{cat}");
                let names = table::COMMANDS
                    .iter()
                    .filter(|s| (s.parse.is_some() || s.is_subcommand()) && table::subcommands(s.name).next().is_none())
                    .filter(|s| s.categories().contains(&tag.as_str()))
                    .map(|s| bulk(s.name));
                Reply::Array(names.collect())
            }
        },
        "acl|log" => match args.first() {
            Some(a) if a.eq_ignore_ascii_case(b"reset") => {
                acl.log_reset();
                Reply::Ok
            }
            a => {
                let count = match a {
                    None => 10,
                    Some(a) => std::str::from_utf8(a)
                        .ok()
                        .and_then(|s| s.parse::<i64>().ok())
                        .filter(|n| *n >= 0)
                        .ok_or("ERR value is out of range, must be positive")? as usize,
                };
                Reply::Array(
                    acl.log_entries(count)
                        .into_iter()
                        .map(|e| {
                            Reply::Map(vec![
                                (bulk("count"), Reply::Int(e.count as i64)),
                                (bulk("reason"), bulk(e.reason)),
                                (bulk("context"), bulk(e.context)),
                                (bulk("object"), bulk(e.object)),
                                (bulk("username"), bulk(e.username)),
                                (bulk("age-seconds"), Reply::Double(e.updated.elapsed().as_secs_f64())),
                                (bulk("client-info"), bulk(e.client_info)),
                            ])
                        })
                        .collect(),
                )
            }
        },
        "acl|genpass" => {
            let bits = match args.first() {
                None => 256,
                Some(a) => std::str::from_utf8(a).ok().and_then(|s| s.parse::<i64>().ok()).filter(|n| (1..=4096).contains(n)).ok_or(
                    "ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096",
                )?,
            };
            let chars = (bits as usize).div_ceil(4);
            let bytes: Vec<u8> = (0..chars.div_ceil(2)).map(|_| rand::random::<u8>()).collect();
            let mut hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            hex.truncate(chars);
            bulk(hex)
        }
        "acl|dryrun" => {
            let user = acl
                .user(&args[0])
                .ok_or_else(|| format!("ERR User '{}' not found", String::from_utf8_lossy(&args[0])))?;
            let line = &args[1..];
            let row = table::row(&line[0])
                .ok_or_else(|| format!("ERR Command '{}' not found", String::from_utf8_lossy(&line[0])))?;
            if !row.spec.arity_ok(line.len()) {
                return Err(format!("ERR wrong number of arguments for '{}' command", row.spec.name));
            }
            match user.check(row.index, line) {
                Ok(()) => Reply::Ok,
                Err(d) => bulk(d.dry_run()),
            }
        }
        "acl|help" => Reply::Array(
            [
                "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "CAT [<category>]",
                "    List all commands that belong to <category>, or all command categories",
                "    when no category is specified.",
                "DELUSER <username> [<username> ...]",
                "    Delete a list of users.",
                "DRYRUN <username> <command> [<arg> ...]",
                "    Returns whether the user can execute the given command without executing the command.",
                "GETUSER <username>",
                "    Get the user's details.",
                "GENPASS [<bits>]",
                "    Generate a secure 256-bit user password. The optional `bits` argument can",
                "    be used to specify a different size.",
                "LIST",
                "    Show users details in config file format.",
                "LOAD",
                "    Reload users from the ACL file.",
                "LOG [<count> | RESET]",
                "    Show the ACL log entries.",
                "SAVE",
                "    Save the current config to the ACL file.",
                "SETUSER <username> <attribute> [<attribute> ...]",
                "    Create or modify a user with the specified attributes.",
                "USERS",
                "    List all the registered usernames.",
                "WHOAMI",
                "    Return the current connection username.",
                "HELP",
                "    Print this help.",
            ]
            .into_iter()
            .map(Reply::Status)
            .collect(),
        ),
        other => return Err(format!("ERR unknown subcommand '{other}'")),
    })
}

//! Geo commands: points on a sorted set whose scores are 52-bit geohashes, as Redis keeps them. GEOADD
//! is ZADD with the coordinates encoded; the searches keep their options as given, read once the source
//! key is looked up (Redis reports a wrong type before a bad option, and looks members up while it
//! reads the options).

use bytes::Bytes;

use super::Command;
use super::args::{Args, is, parse_f64};
use super::zset::{ZAddFlags, ZSetCmd};
use crate::error::{CommandError, Result};

/// Which search command, for its option set and error texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeoSearchKind {
    Radius { readonly: bool },
    ByMember { readonly: bool },
    Search,
    SearchStore,
}

impl GeoSearchKind {
    pub fn name(self) -> &'static str {
        match self {
            GeoSearchKind::Radius { readonly: false } => "georadius",
            GeoSearchKind::Radius { readonly: true } => "georadius_ro",
            GeoSearchKind::ByMember { readonly: false } => "georadiusbymember",
            GeoSearchKind::ByMember { readonly: true } => "georadiusbymember_ro",
            GeoSearchKind::Search => "geosearch",
            GeoSearchKind::SearchStore => "geosearchstore",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum GeoCmd {
    Pos {
        key: Bytes,
        members: Vec<Bytes>,
    },
    Dist {
        key: Bytes,
        a: Bytes,
        b: Bytes,
        unit: Option<Bytes>,
    },
    Hash {
        key: Bytes,
        members: Vec<Bytes>,
    },
    /// `args` follow the source key (GEOSEARCHSTORE: `dest` comes first); `stores` are the keys a
    /// STORE/STOREDIST of GEORADIUS may name (locked with the source; the options decide which).
    Search {
        kind: GeoSearchKind,
        key: Bytes,
        dest: Option<Bytes>,
        args: Vec<Bytes>,
        stores: Vec<Bytes>,
    },
}

impl GeoCmd {
    pub fn name(&self) -> &'static str {
        match self {
            GeoCmd::Pos { .. } => "geopos",
            GeoCmd::Dist { .. } => "geodist",
            GeoCmd::Hash { .. } => "geohash",
            GeoCmd::Search { kind, .. } => kind.name(),
        }
    }
}

fn geo(c: GeoCmd) -> Result<Command> {
    Ok(Command::ZSet(ZSetCmd::Geo(c)))
}

/// The longitude and latitude Redis accepts (the latitude range of its Web Mercator square).
pub const LONG_MIN: f64 = -180.0;
pub const LONG_MAX: f64 = 180.0;
pub const LAT_MIN: f64 = -85.051_128_78;
pub const LAT_MAX: f64 = 85.051_128_78;

/// A longitude/latitude pair, with Redis's errors.
pub fn lon_lat(lon: &[u8], lat: &[u8]) -> Result<(f64, f64)> {
    let lon = parse_f64(lon).ok_or(CommandError::NotFloat)?;
    let lat = parse_f64(lat).ok_or(CommandError::NotFloat)?;
    if !(LONG_MIN..=LONG_MAX).contains(&lon) || !(LAT_MIN..=LAT_MAX).contains(&lat) {
        return Err(CommandError::Invalid(format!("invalid longitude,latitude pair {lon:.6},{lat:.6}")));
    }
    Ok((lon, lat))
}

/// GEOADD key [NX|XX] [CH] lon lat member ...: a ZADD of the members at their geohash scores.
pub(super) fn geoadd(a: &mut Args<'_>) -> Result<Command> {
    let key = a.next_bytes()?;
    let mut flags = ZAddFlags::default();
    loop {
        if a.eat("nx") {
            flags.nx = true;
        } else if a.eat("xx") {
            flags.xx = true;
        } else if a.eat("ch") {
            flags.ch = true;
        } else {
            break;
        }
    }
    let rest = a.rest();
    if rest.is_empty() || !rest.len().is_multiple_of(3) || (flags.nx && flags.xx) {
        return Err(CommandError::Syntax);
    }
    let pairs = rest
        .chunks(3)
        .map(|t| {
            let (lon, lat) = lon_lat(&t[0], &t[1])?;
            Ok((crate::kv::geohash_score(lon, lat) as f64, t[2].clone()))
        })
        .collect::<Result<_>>()?;
    Ok(Command::ZSet(ZSetCmd::Add { key, flags, pairs }))
}

pub(super) fn geopos(a: &mut Args<'_>) -> Result<Command> {
    geo(GeoCmd::Pos { key: a.next_bytes()?, members: a.rest() })
}

pub(super) fn geohash(a: &mut Args<'_>) -> Result<Command> {
    geo(GeoCmd::Hash { key: a.next_bytes()?, members: a.rest() })
}

pub(super) fn geodist(a: &mut Args<'_>) -> Result<Command> {
    let (key, x, y) = (a.next_bytes()?, a.next_bytes()?, a.next_bytes()?);
    let unit = if a.is_empty() { None } else { Some(a.next_bytes()?) };
    if !a.is_empty() {
        return Err(CommandError::Syntax);
    }
    geo(GeoCmd::Dist { key, a: x, b: y, unit })
}

fn search(kind: GeoSearchKind, a: &mut Args<'_>) -> Result<Command> {
    let dest = if kind == GeoSearchKind::SearchStore { Some(a.next_bytes()?) } else { None };
    let key = a.next_bytes()?;
    let args = a.rest();
    let stores = match kind {
        GeoSearchKind::Radius { readonly: false } | GeoSearchKind::ByMember { readonly: false } => {
            args.windows(2).filter(|w| is(&w[0], "store") || is(&w[0], "storedist")).map(|w| w[1].clone()).collect()
        }
        _ => Vec::new(),
    };
    geo(GeoCmd::Search { kind, key, dest, args, stores })
}

pub(super) fn georadius(a: &mut Args<'_>) -> Result<Command> {
    search(GeoSearchKind::Radius { readonly: false }, a)
}

pub(super) fn georadius_ro(a: &mut Args<'_>) -> Result<Command> {
    search(GeoSearchKind::Radius { readonly: true }, a)
}

pub(super) fn georadiusbymember(a: &mut Args<'_>) -> Result<Command> {
    search(GeoSearchKind::ByMember { readonly: false }, a)
}

pub(super) fn georadiusbymember_ro(a: &mut Args<'_>) -> Result<Command> {
    search(GeoSearchKind::ByMember { readonly: true }, a)
}

pub(super) fn geosearch(a: &mut Args<'_>) -> Result<Command> {
    search(GeoSearchKind::Search, a)
}

pub(super) fn geosearchstore(a: &mut Args<'_>) -> Result<Command> {
    search(GeoSearchKind::SearchStore, a)
}

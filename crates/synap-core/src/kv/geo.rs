//! Geo: GEOPOS, GEODIST, GEOHASH and the searches (GEORADIUS, GEORADIUSBYMEMBER, GEOSEARCH,
//! GEOSEARCHSTORE) over sorted sets of 52-bit geohash scores, computed as Redis 7.0 computes them:
//! the same interleaving, cell decoding, haversine distance (Earth radius 6372797.560856 m), the same
//! 9 cells searched for an area (so results come in the same order when no sort is asked for), and the
//! same number formats (`%.17Lf` trimmed for coordinates, `%.4f` for distances).

use bytes::Bytes;

use super::Keyspace;
use super::access::{mutation, restore};
use super::value::{Coll, Kind, ZSetV};
use crate::command::Reply;
use crate::command::args::{is, parse_f64, parse_i64};
use crate::command::geo::{GeoCmd, GeoSearchKind, LAT_MAX, LAT_MIN, LONG_MAX, LONG_MIN, lon_lat};
use crate::error::{CommandError, Result};
use crate::mutation::Mutation;
use crate::notify::Class;

const STEP_MAX: u32 = 26;
const EARTH_RADIUS: f64 = 6_372_797.560_856;
const MERCATOR_MAX: f64 = 20_037_726.37;
const D_R: f64 = std::f64::consts::PI / 180.0;
const R_D: f64 = 180.0 / std::f64::consts::PI;

#[derive(Debug, Clone, Copy)]
struct Range {
    min: f64,
    max: f64,
}

const LONG_RANGE: Range = Range { min: LONG_MIN, max: LONG_MAX };
const LAT_RANGE: Range = Range { min: LAT_MIN, max: LAT_MAX };

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cell {
    bits: u64,
    step: u32,
}

impl Cell {
    const ZERO: Cell = Cell { bits: 0, step: 0 };
}

#[derive(Debug, Clone, Copy)]
struct Area {
    lon: Range,
    lat: Range,
}

/// Spreads the bits of `x` (latitude) to the even positions and of `y` (longitude) to the odd ones.
fn interleave(x: u32, y: u32) -> u64 {
    let spread = |v: u32| (0..32).fold(0u64, |acc, i| acc | (((v as u64 >> i) & 1) << (2 * i)));
    spread(x) | (spread(y) << 1)
}

/// The inverse: latitude in the low 32 bits, longitude in the high 32.
fn deinterleave(v: u64) -> u64 {
    let gather = |v: u64| (0..32).fold(0u64, |acc, i| acc | (((v >> (2 * i)) & 1) << i));
    gather(v) | (gather(v >> 1) << 32)
}

fn encode(lon_r: Range, lat_r: Range, lon: f64, lat: f64, step: u32) -> Option<Cell> {
    if step == 0 || step > 32 || !(LONG_MIN..=LONG_MAX).contains(&lon) || !(LAT_MIN..=LAT_MAX).contains(&lat) {
        return None;
    }
    if lat < lat_r.min || lat > lat_r.max || lon < lon_r.min || lon > lon_r.max {
        return None;
    }
    let lat_off = (lat - lat_r.min) / (lat_r.max - lat_r.min) * (1u64 << step) as f64;
    let lon_off = (lon - lon_r.min) / (lon_r.max - lon_r.min) * (1u64 << step) as f64;
    Some(Cell { bits: interleave(lat_off as u32, lon_off as u32), step })
}

/// The score GEOADD stores for a point (already checked to be in range).
pub(crate) fn geohash_score(lon: f64, lat: f64) -> u64 {
    encode(LONG_RANGE, LAT_RANGE, lon, lat, STEP_MAX).map_or(0, |c| c.bits)
}

fn decode(cell: Cell) -> Option<Area> {
    if cell.bits == 0 && cell.step == 0 {
        return None;
    }
    let sep = deinterleave(cell.bits);
    let (ilat, ilon) = (sep as u32 as f64, (sep >> 32) as u32 as f64);
    let div = (1u64 << cell.step) as f64;
    let lat_scale = LAT_RANGE.max - LAT_RANGE.min;
    let lon_scale = LONG_RANGE.max - LONG_RANGE.min;
    Some(Area {
        lat: Range {
            min: LAT_RANGE.min + (ilat * 1.0 / div) * lat_scale,
            max: LAT_RANGE.min + ((ilat + 1.0) * 1.0 / div) * lat_scale,
        },
        lon: Range {
            min: LONG_RANGE.min + (ilon * 1.0 / div) * lon_scale,
            max: LONG_RANGE.min + ((ilon + 1.0) * 1.0 / div) * lon_scale,
        },
    })
}

/// C's `(uint64_t)` of a double as x86-64 compilers emit it (scores that are not geohashes decode to
/// something, as in Redis).
fn c_u64(x: f64) -> u64 {
    const TWO63: f64 = 9_223_372_036_854_775_808.0;
    let cvtt = |x: f64| if x.is_nan() || !(-TWO63..TWO63).contains(&x) { i64::MIN } else { x as i64 };
    if x < TWO63 { cvtt(x) as u64 } else { (cvtt(x - TWO63) as u64) ^ (1 << 63) }
}

/// A score's point: the center of its cell, clamped to the valid range.
fn point(score: f64) -> Option<(f64, f64)> {
    let a = decode(Cell { bits: c_u64(score), step: STEP_MAX })?;
    let lon = ((a.lon.min + a.lon.max) / 2.0).clamp(LONG_MIN, LONG_MAX);
    let lat = ((a.lat.min + a.lat.max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    Some((lon, lat))
}

fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS * (lat2 * D_R - lat1 * D_R).abs()
}

/// Haversine distance in meters.
fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let (lon1r, lon2r) = (lon1 * D_R, lon2 * D_R);
    let v = ((lon2r - lon1r) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let (lat1r, lat2r) = (lat1 * D_R, lat2 * D_R);
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS * a.sqrt().asin()
}

/// `%.17Lf` of a double with trailing zeros removed (Redis's "human" long double).
fn human(x: f64) -> Bytes {
    let mut s = format!("{x:.17}");
    if s.contains('.') {
        let t = s.trim_end_matches('0').trim_end_matches('.').len();
        s.truncate(t);
    }
    if s == "-0" {
        s = "0".into();
    }
    Bytes::from(s)
}

/// `%.4f`, as Redis 7.0 prints distances.
fn dist_text(d: f64) -> Bytes {
    Bytes::from(format!("{d:.4}"))
}

fn unit(arg: &[u8]) -> Result<f64> {
    Ok(if is(arg, "m") {
        1.0
    } else if is(arg, "km") {
        1000.0
    } else if is(arg, "ft") {
        0.3048
    } else if is(arg, "mi") {
        1609.34
    } else {
        return Err(CommandError::Invalid("unsupported unit provided. please use M, KM, FT, MI".into()));
    })
}

fn number(arg: &[u8], what: &str) -> Result<f64> {
    parse_f64(arg).ok_or_else(|| CommandError::Invalid(format!("need numeric {what}")))
}

#[derive(Debug, Clone, Copy)]
enum Shape {
    Radius(f64),
    Box { width: f64, height: f64 },
}

#[derive(Debug, Clone, Copy)]
struct Query {
    center: (f64, f64),
    shape: Shape,
    /// Meters per unit.
    conversion: f64,
}

struct Found {
    member: Bytes,
    score: f64,
    lon: f64,
    lat: f64,
    dist: f64,
}

impl Query {
    /// The point's distance when it is inside the shape.
    fn within(&self, score: f64) -> Option<(f64, f64, f64)> {
        let (lon, lat) = point(score)?;
        let (cx, cy) = self.center;
        match self.shape {
            Shape::Radius(r) => {
                let d = distance(cx, cy, lon, lat);
                (d <= r * self.conversion).then_some((lon, lat, d))
            }
            Shape::Box { width, height } => {
                if lat_distance(lat, cy) > height * self.conversion / 2.0 {
                    return None;
                }
                if distance(lon, lat, cx, lat) > width * self.conversion / 2.0 {
                    return None;
                }
                Some((lon, lat, distance(cx, cy, lon, lat)))
            }
        }
    }

    /// The bounding box: (min lon, min lat, max lon, max lat).
    fn bounds(&self) -> (f64, f64, f64, f64) {
        let (lon, lat) = self.center;
        let (h, w) = match self.shape {
            Shape::Radius(r) => (r, r),
            Shape::Box { width, height } => (height / 2.0, width / 2.0),
        };
        let (height, width) = (self.conversion * h, self.conversion * w);
        let lat_delta = height / EARTH_RADIUS * R_D;
        let top = width / EARTH_RADIUS / ((lat + lat_delta) * D_R).cos() * R_D;
        let bottom = width / EARTH_RADIUS / ((lat - lat_delta) * D_R).cos() * R_D;
        let delta = if lat < 0.0 { bottom } else { top };
        (lon - delta, lat - lat_delta, lon + delta, lat + lat_delta)
    }

    /// The cells to search, in Redis's order: the center's, then north, south, east, west, north-east,
    /// north-west, south-east, south-west (those that cannot hold a match are zero).
    fn cells(&self) -> [Cell; 9] {
        let (min_lon, min_lat, max_lon, max_lat) = self.bounds();
        let radius = match self.shape {
            Shape::Radius(r) => r,
            Shape::Box { width, height } => ((width / 2.0) * (width / 2.0) + (height / 2.0) * (height / 2.0)).sqrt(),
        } * self.conversion;
        let (lon, lat) = self.center;
        let mut steps = estimate_steps(radius, lat);
        let at = |steps: u32| {
            let cell = encode(LONG_RANGE, LAT_RANGE, lon, lat, steps).unwrap_or(Cell { bits: 0, step: steps });
            (cell, neighbors(cell), decode(cell))
        };
        let (mut cell, mut n, mut area) = at(steps);
        let edge = |n: &[Cell; 8]| {
            let [north, south, east, west, ..] = n.map(decode);
            north.is_some_and(|a| a.lat.max < max_lat)
                || south.is_some_and(|a| a.lat.min > min_lat)
                || east.is_some_and(|a| a.lon.max < max_lon)
                || west.is_some_and(|a| a.lon.min > min_lon)
        };
        if steps > 1 && edge(&n) {
            steps -= 1;
            (cell, n, area) = at(steps);
        }
        // [north, south, east, west, north_east, north_west, south_east, south_west]
        if let Some(a) = area.filter(|_| steps >= 2) {
            let mut zero = |i: &[usize]| i.iter().for_each(|&i| n[i] = Cell::ZERO);
            if a.lat.min < min_lat {
                zero(&[1, 7, 6]);
            }
            if a.lat.max > max_lat {
                zero(&[0, 4, 5]);
            }
            if a.lon.min < min_lon {
                zero(&[3, 7, 5]);
            }
            if a.lon.max > max_lon {
                zero(&[2, 6, 4]);
            }
        }
        [cell, n[0], n[1], n[2], n[3], n[4], n[5], n[6], n[7]]
    }
}

fn estimate_steps(mut range: f64, lat: f64) -> u32 {
    if range == 0.0 {
        return 26;
    }
    let mut step: i32 = 1;
    while range < MERCATOR_MAX {
        range *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u32
}

fn move_x(c: Cell, d: i8) -> Cell {
    let x = c.bits & 0xaaaa_aaaa_aaaa_aaaa;
    let y = c.bits & 0x5555_5555_5555_5555;
    let zz = 0x5555_5555_5555_5555u64 >> (64 - c.step * 2);
    let x = if d > 0 { x.wrapping_add(zz + 1) } else { (x | zz).wrapping_sub(zz + 1) };
    Cell { bits: (x & (0xaaaa_aaaa_aaaa_aaaau64 >> (64 - c.step * 2))) | y, step: c.step }
}

fn move_y(c: Cell, d: i8) -> Cell {
    let x = c.bits & 0xaaaa_aaaa_aaaa_aaaa;
    let y = c.bits & 0x5555_5555_5555_5555;
    let zz = 0xaaaa_aaaa_aaaa_aaaau64 >> (64 - c.step * 2);
    let y = if d > 0 { y.wrapping_add(zz + 1) } else { (y | zz).wrapping_sub(zz + 1) };
    Cell { bits: x | (y & (0x5555_5555_5555_5555u64 >> (64 - c.step * 2))), step: c.step }
}

/// [north, south, east, west, north_east, north_west, south_east, south_west]
fn neighbors(c: Cell) -> [Cell; 8] {
    [
        move_y(c, 1),
        move_y(c, -1),
        move_x(c, 1),
        move_x(c, -1),
        move_y(move_x(c, 1), 1),
        move_y(move_x(c, -1), 1),
        move_y(move_x(c, 1), -1),
        move_y(move_x(c, -1), -1),
    ]
}

/// The members of `z` inside the query's shape, cell by cell (`limit`: stop once that many are found),
/// refused past `max_bytes` of members (the reply budget).
fn search(z: &ZSetV, q: &Query, limit: usize, max_bytes: usize) -> Result<Vec<Found>> {
    let mut bytes = 0usize;
    let cells = q.cells();
    let mut found = Vec::new();
    let mut last: Option<usize> = None;
    for (i, cell) in cells.iter().enumerate() {
        if *cell == Cell::ZERO {
            continue;
        }
        // Redis skips a cell equal to the one searched just before it (large radii), never the first.
        if let Some(l) = last.filter(|&l| l > 0)
            && cells[l] == *cell
        {
            continue;
        }
        if !found.is_empty() && limit > 0 && found.len() >= limit {
            break;
        }
        let shift = 52 - cell.step * 2;
        let (min, max) = ((cell.bits << shift) as f64, ((cell.bits + 1) << shift) as f64);
        let (lo, hi) = (z.count_score(min, false), z.count_score(max, false));
        for (score, member) in z.range(lo, hi) {
            if let Some((lon, lat, dist)) = q.within(score) {
                bytes += member.len() + 96;
                if max_bytes > 0 && bytes > max_bytes {
                    return Err(CommandError::ReplyTooLarge { bytes, limit: max_bytes });
                }
                found.push(Found { member: Bytes::copy_from_slice(member), score, lon, lat, dist });
                if limit > 0 && found.len() >= limit {
                    break;
                }
            }
        }
        last = Some(i);
    }
    Ok(found)
}

fn zset(c: &Option<Box<Coll>>) -> Result<&ZSetV> {
    match c.as_deref() {
        Some(Coll::ZSet(z)) => Ok(z),
        _ => Err(CommandError::WrongType),
    }
}

/// The options of a search, read as Redis reads them.
struct Options {
    query: Option<Query>,
    with_dist: bool,
    with_hash: bool,
    with_coord: bool,
    /// Ascending (`Some(true)`), descending, or in the order found.
    sort: Option<bool>,
    count: usize,
    any: bool,
    store: Option<Bytes>,
    store_dist: bool,
}

fn member_point(z: Option<&ZSetV>, m: &[u8]) -> Result<Option<(f64, f64)>> {
    let Some(z) = z else { return Ok(None) };
    z.score(m)
        .and_then(point)
        .map(Some)
        .ok_or_else(|| CommandError::Invalid("could not decode requested zset member".into()))
}

fn distance_arg(r: &[u8], u: &[u8]) -> Result<(f64, f64)> {
    let r = number(r, "radius")?;
    if r < 0.0 {
        return Err(CommandError::Invalid("radius cannot be negative".into()));
    }
    Ok((r, unit(u)?))
}

fn parse_options(kind: GeoSearchKind, z: Option<&ZSetV>, dest: Option<&Bytes>, args: &[Bytes]) -> Result<Options> {
    let mut o = Options {
        query: None,
        with_dist: false,
        with_hash: false,
        with_coord: false,
        sort: None,
        count: 0,
        any: false,
        store: dest.cloned(),
        store_dist: false,
    };
    let search = matches!(kind, GeoSearchKind::Search | GeoSearchKind::SearchStore);
    let nostore = matches!(kind, GeoSearchKind::Radius { readonly: true } | GeoSearchKind::ByMember { readonly: true });
    let arg = |i: usize| args.get(i).ok_or(CommandError::Syntax);
    // The fixed arguments of GEORADIUS (lon lat radius unit) and GEORADIUSBYMEMBER (member radius unit).
    let mut i = match kind {
        GeoSearchKind::Radius { .. } => {
            let center = lon_lat(arg(0)?, arg(1)?)?;
            let (r, conversion) = distance_arg(arg(2)?, arg(3)?)?;
            o.query = Some(Query { center, shape: Shape::Radius(r), conversion });
            4
        }
        GeoSearchKind::ByMember { .. } => {
            if let Some(center) = member_point(z, arg(0)?)? {
                let (r, conversion) = distance_arg(arg(1)?, arg(2)?)?;
                o.query = Some(Query { center, shape: Shape::Radius(r), conversion });
            }
            3
        }
        _ => 0,
    };
    let (mut center, mut shape, mut conversion) = (None, None, 0.0);
    let (mut from_member, mut from_loc) = (false, false);
    while i < args.len() {
        let a = &args[i];
        let left = args.len() - i - 1;
        if is(a, "withdist") {
            o.with_dist = true;
        } else if is(a, "withhash") {
            o.with_hash = true;
        } else if is(a, "withcoord") {
            o.with_coord = true;
        } else if is(a, "any") {
            o.any = true;
        } else if is(a, "asc") {
            o.sort = Some(true);
        } else if is(a, "desc") {
            o.sort = Some(false);
        } else if is(a, "count") && left >= 1 {
            let n = parse_i64(&args[i + 1]).ok_or(CommandError::NotInteger)?;
            if n <= 0 {
                return Err(CommandError::Invalid("COUNT must be > 0".into()));
            }
            o.count = n as usize;
            i += 1;
        } else if (is(a, "store") || is(a, "storedist")) && left >= 1 && !nostore && !search {
            o.store = Some(args[i + 1].clone());
            o.store_dist = is(a, "storedist");
            i += 1;
        } else if is(a, "storedist") && kind == GeoSearchKind::SearchStore {
            o.store_dist = true;
        } else if is(a, "frommember") && left >= 1 && search && !from_loc {
            if z.is_some() {
                center = member_point(z, &args[i + 1])?;
            }
            from_member = true;
            i += 1;
        } else if is(a, "fromlonlat") && left >= 2 && search && !from_member {
            center = Some(lon_lat(&args[i + 1], &args[i + 2])?);
            from_loc = true;
            i += 2;
        } else if is(a, "byradius") && left >= 2 && search && !matches!(shape, Some(Shape::Box { .. })) {
            let (r, c) = distance_arg(&args[i + 1], &args[i + 2])?;
            (shape, conversion) = (Some(Shape::Radius(r)), c);
            i += 2;
        } else if is(a, "bybox") && left >= 3 && search && !matches!(shape, Some(Shape::Radius(_))) {
            let width = number(&args[i + 1], "width")?;
            let height = number(&args[i + 2], "height")?;
            if width < 0.0 || height < 0.0 {
                return Err(CommandError::Invalid("height or width cannot be negative".into()));
            }
            (shape, conversion) = (Some(Shape::Box { width, height }), unit(&args[i + 3])?);
            i += 3;
        } else {
            return Err(CommandError::Syntax);
        }
        i += 1;
    }
    if o.store.is_some() && (o.with_dist || o.with_hash || o.with_coord) {
        let what = if kind == GeoSearchKind::SearchStore { "GEOSEARCHSTORE" } else { "STORE option in GEORADIUS" };
        return Err(CommandError::Invalid(format!(
            "{what} is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
        )));
    }
    let name = kind.name().to_uppercase();
    if search && !(from_member || from_loc) {
        return Err(CommandError::Invalid(format!(
            "exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}"
        )));
    }
    if search && shape.is_none() {
        return Err(CommandError::Invalid(format!("exactly one of BYRADIUS and BYBOX can be specified for {name}")));
    }
    if o.any && o.count == 0 {
        return Err(CommandError::Invalid("the ANY argument requires COUNT argument".into()));
    }
    if search && let (Some(center), Some(shape)) = (center, shape) {
        o.query = Some(Query { center, shape, conversion });
    }
    Ok(o)
}

impl Keyspace {
    pub(super) fn geo_cmd(&self, cmd: GeoCmd, lsn: &mut u64, now: u64) -> Result<Reply> {
        match cmd {
            GeoCmd::Pos { key, members } => self.geo_read(&key, now, |z| {
                Ok(Reply::Array(
                    members
                        .iter()
                        .map(|m| match z.and_then(|z| z.score(m)).and_then(point) {
                            Some((lon, lat)) => {
                                Reply::Array(vec![Reply::DoubleText(human(lon)), Reply::DoubleText(human(lat))])
                            }
                            None => Reply::NullArray,
                        })
                        .collect(),
                ))
            }),
            GeoCmd::Hash { key, members } => self.geo_read(&key, now, |z| {
                Ok(Reply::Array(
                    members
                        .iter()
                        .map(|m| {
                            z.and_then(|z| z.score(m))
                                .and_then(point)
                                .map_or(Reply::Nil, |p| Reply::Bulk(geohash_text(p)))
                        })
                        .collect(),
                ))
            }),
            GeoCmd::Dist { key, a, b, unit: u } => {
                let to_meter = u.as_deref().map(unit).transpose()?.unwrap_or(1.0);
                self.geo_read(&key, now, |z| {
                    let Some(z) = z else { return Ok(Reply::Nil) };
                    match (z.score(&a).and_then(point), z.score(&b).and_then(point)) {
                        (Some((x1, y1)), Some((x2, y2))) => {
                            Ok(Reply::Bulk(dist_text(distance(x1, y1, x2, y2) / to_meter)))
                        }
                        _ => Ok(Reply::Nil),
                    }
                })
            }
            GeoCmd::Search { kind, key, dest, args, stores } => {
                self.geo_search(kind, &key, dest.as_ref(), &args, &stores, lsn, now)
            }
        }
    }

    /// `f` of the sorted set at `key` (`None`: missing; WRONGTYPE for another type).
    fn geo_read(&self, key: &[u8], now: u64, f: impl FnOnce(Option<&ZSetV>) -> Result<Reply>) -> Result<Reply> {
        let h = self.hash(key);
        let mut shard = self.lock(h);
        match self.find_live(&mut shard, h, key, now) {
            None => f(None),
            Some(p) => f(Some(zset(&shard.entry(p).coll)?)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn geo_search(
        &self,
        kind: GeoSearchKind,
        key: &[u8],
        dest: Option<&Bytes>,
        args: &[Bytes],
        stores: &[Bytes],
        lsn: &mut u64,
        now: u64,
    ) -> Result<Reply> {
        let h = self.hash(key);
        let others: Vec<&Bytes> = dest.into_iter().chain(stores).collect();
        for k in &others {
            self.check_key(k)?;
        }
        let mut locked = self.lock_many([h].into_iter().chain(others.iter().map(|k| self.hash(k))));
        for k in &others {
            let hk = self.hash(k);
            self.find_live(locked.get(self.shard_of(hk)), hk, k, now);
        }
        let (opts, found) = {
            let shard = locked.get(self.shard_of(h));
            let z = match self.find_live(shard, h, key, now) {
                None => None,
                Some(p) => Some(zset(&shard.entry(p).coll)?),
            };
            let opts = parse_options(kind, z, dest, args)?;
            let found = match (z, &opts.query) {
                (Some(z), Some(q)) => {
                    let sort = if opts.count > 0 && opts.sort.is_none() && !opts.any { Some(true) } else { opts.sort };
                    let limit = if opts.any { opts.count } else { 0 };
                    let mut found = search(z, q, limit, self.config.max_reply_bytes)?;
                    if let Some(asc) = sort {
                        let cmp = |a: &Found, b: &Found| {
                            let c = a.dist.partial_cmp(&b.dist).unwrap_or(std::cmp::Ordering::Equal);
                            if asc { c } else { c.reverse() }
                        };
                        // As Redis: a stable sort of everything, or a partial quicksort of the first COUNT.
                        if opts.count > 0 && opts.count < found.len() {
                            crate::pqsort::pqsort(&mut found, 0, opts.count - 1, &cmp);
                        } else {
                            found.sort_by(&cmp);
                        }
                    }
                    if opts.count > 0 {
                        found.truncate(opts.count);
                    }
                    Some(found)
                }
                _ => None,
            };
            (opts, found)
        };
        let conversion = opts.query.map_or(1.0, |q| q.conversion);
        let Some(store) = &opts.store else {
            let found = found.unwrap_or_default();
            let extra = opts.with_dist || opts.with_hash || opts.with_coord;
            return Ok(Reply::Array(
                found
                    .into_iter()
                    .map(|f| {
                        if !extra {
                            return Reply::Bulk(f.member);
                        }
                        let mut item = vec![Reply::Bulk(f.member)];
                        if opts.with_dist {
                            item.push(Reply::Bulk(dist_text(f.dist / conversion)));
                        }
                        if opts.with_hash {
                            item.push(Reply::Int(f.score as i64));
                        }
                        if opts.with_coord {
                            item.push(Reply::Array(vec![
                                Reply::DoubleText(human(f.lon)),
                                Reply::DoubleText(human(f.lat)),
                            ]));
                        }
                        Reply::Array(item)
                    })
                    .collect(),
            ));
        };
        let found = found.unwrap_or_default();
        let n = found.len();
        let hs = self.hash(store);
        if n == 0 {
            let shard = locked.get(self.shard_of(hs));
            if self.find_live(shard, hs, store, now).is_some() {
                let l =
                    self.commit(&mut locked, &[Mutation::Del { key: store }], now, &[(Class::Generic, "del", store)]);
                *lsn = (*lsn).max(l);
            }
            return Ok(Reply::Int(0));
        }
        let mut out = Coll::empty(Kind::ZSet);
        if let Coll::ZSet(zs) = &mut out {
            for f in &found {
                zs.set(&f.member, if opts.store_dist { f.dist / conversion } else { f.score });
            }
        }
        let op = restore(Kind::ZSet, &out)?;
        let event = if matches!(kind, GeoSearchKind::SearchStore) { "geosearchstore" } else { "georadiusstore" };
        let l = self.commit(&mut locked, &[mutation(store, &op)], now, &[(Class::ZSet, event, store)]);
        *lsn = (*lsn).max(l);
        Ok(Reply::Int(n as i64))
    }
}

/// The standard 11-character geohash of a point (latitude over -90..90, the last character `0`).
fn geohash_text((lon, lat): (f64, f64)) -> Bytes {
    const ALPHABET: &[u8] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let cell = encode(LONG_RANGE, Range { min: -90.0, max: 90.0 }, lon, lat, STEP_MAX).unwrap_or(Cell::ZERO);
    let text: Vec<u8> = (0..11)
        .map(|i| if i == 10 { ALPHABET[0] } else { ALPHABET[((cell.bits >> (52 - (i + 1) * 5)) & 0x1f) as usize] })
        .collect();
    Bytes::from(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaving_round_trips() {
        for (x, y) in [(0u32, 0u32), (1, 0), (0, 1), (0x3ff_ffff, 0x155_5555), (12345, 67890)] {
            let v = interleave(x, y);
            assert_eq!(deinterleave(v), x as u64 | (y as u64) << 32);
        }
    }

    #[test]
    fn scores_and_positions_match_redis() {
        // GEOADD Sicily 13.361389 38.115556 "Palermo" 15.087269 37.502669 "Catania" on redis-server 7.0:
        // scores 3479099956230698 and 3479447370796909; GEOPOS and GEODIST as Redis answers them.
        assert_eq!(geohash_score(13.361389, 38.115556), 3479099956230698);
        assert_eq!(geohash_score(15.087269, 37.502669), 3479447370796909);
        let (lon, lat) = point(3479099956230698.0).unwrap();
        assert_eq!(&human(lon)[..], b"13.36138933897018433");
        assert_eq!(&human(lat)[..], b"38.11555639549629859");
        let (lon2, lat2) = point(3479447370796909.0).unwrap();
        assert_eq!(&dist_text(distance(lon, lat, lon2, lat2))[..], b"166274.1516");
        assert_eq!(&geohash_text((lon, lat))[..], b"sqc8b49rny0");
    }
}

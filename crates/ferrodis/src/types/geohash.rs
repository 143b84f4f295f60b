//! Redis's geohash arithmetic (geohash.c, geohash_helper.c): 52-bit interleaved scores, the
//! nine-box search areas and the haversine distance, step for step as Redis computes them so
//! that scores, distances and the order of unsorted search results match.

pub const STEP_MAX: u8 = 26;
pub const LAT_MIN: f64 = -85.05112878;
pub const LAT_MAX: f64 = 85.05112878;
pub const LONG_MIN: f64 = -180.0;
pub const LONG_MAX: f64 = 180.0;
const EARTH_RADIUS_IN_METERS: f64 = 6372797.560856;
const MERCATOR_MAX: f64 = 20037726.37;
const D_R: f64 = std::f64::consts::PI / 180.0;

#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Range {
    pub min: f64,
    pub max: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Bits {
    pub bits: u64,
    pub step: u8,
}

impl Bits {
    fn is_zero(&self) -> bool {
        self.bits == 0 && self.step == 0
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Area {
    pub lon: Range,
    pub lat: Range,
}

const WGS_LONG: Range = Range { min: LONG_MIN, max: LONG_MAX };
const WGS_LAT: Range = Range { min: LAT_MIN, max: LAT_MAX };

fn deg_rad(a: f64) -> f64 {
    a * D_R
}
fn rad_deg(a: f64) -> f64 {
    a / D_R
}

fn interleave64(xlo: u32, ylo: u32) -> u64 {
    const B: [u64; 5] = [0x5555555555555555, 0x3333333333333333, 0x0F0F0F0F0F0F0F0F, 0x00FF00FF00FF00FF, 0x0000FFFF0000FFFF];
    const S: [u32; 5] = [1, 2, 4, 8, 16];
    let (mut x, mut y) = (xlo as u64, ylo as u64);
    for i in (0..5).rev() {
        x = (x | (x << S[i])) & B[i];
        y = (y | (y << S[i])) & B[i];
    }
    x | (y << 1)
}

fn deinterleave64(v: u64) -> u64 {
    const B: [u64; 6] =
        [0x5555555555555555, 0x3333333333333333, 0x0F0F0F0F0F0F0F0F, 0x00FF00FF00FF00FF, 0x0000FFFF0000FFFF, 0x00000000FFFFFFFF];
    const S: [u32; 6] = [0, 1, 2, 4, 8, 16];
    let (mut x, mut y) = (v, v >> 1);
    for i in 0..6 {
        x = (x | (x >> S[i])) & B[i];
        y = (y | (y >> S[i])) & B[i];
    }
    x | (y << 32)
}

/// Redis's geohashEncode; None outside the WGS84 limits or the given ranges.
pub fn encode(lon_r: Range, lat_r: Range, lon: f64, lat: f64, step: u8) -> Option<Bits> {
    if !(LONG_MIN..=LONG_MAX).contains(&lon) || !(LAT_MIN..=LAT_MAX).contains(&lat) {
        return None;
    }
    if lat < lat_r.min || lat > lat_r.max || lon < lon_r.min || lon > lon_r.max {
        return None;
    }
    let scale = (1u64 << step) as f64;
    let lat_off = (lat - lat_r.min) / (lat_r.max - lat_r.min) * scale;
    let lon_off = (lon - lon_r.min) / (lon_r.max - lon_r.min) * scale;
    Some(Bits { bits: interleave64(lat_off as u32, lon_off as u32), step })
}

pub fn encode_wgs84(lon: f64, lat: f64, step: u8) -> Option<Bits> {
    encode(WGS_LONG, WGS_LAT, lon, lat, step)
}

/// The score of a position (its 26-step hash aligned to 52 bits).
pub fn score_of(lon: f64, lat: f64) -> Option<f64> {
    encode_wgs84(lon, lat, STEP_MAX).map(|b| align52(b) as f64)
}

pub fn align52(b: Bits) -> u64 {
    b.bits << (52 - b.step as u32 * 2)
}

pub fn decode(lon_r: Range, lat_r: Range, h: Bits) -> Area {
    let sep = deinterleave64(h.bits);
    let ilat = sep as u32 as f64;
    let ilon = (sep >> 32) as u32 as f64;
    let div = (1u64 << h.step) as f64;
    let (lat_scale, lon_scale) = (lat_r.max - lat_r.min, lon_r.max - lon_r.min);
    Area {
        lat: Range { min: lat_r.min + (ilat / div) * lat_scale, max: lat_r.min + ((ilat + 1.0) / div) * lat_scale },
        lon: Range { min: lon_r.min + (ilon / div) * lon_scale, max: lon_r.min + ((ilon + 1.0) / div) * lon_scale },
    }
}

/// The position a score stands for (the centre of its cell, clamped to the limits).
pub fn decode_score(score: f64) -> [f64; 2] {
    let a = decode(WGS_LONG, WGS_LAT, Bits { bits: score as u64, step: STEP_MAX });
    let lon = ((a.lon.min + a.lon.max) / 2.0).clamp(LONG_MIN, LONG_MAX);
    let lat = ((a.lat.min + a.lat.max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    [lon, lat]
}

/// GEOHASH's 11-character standard geohash (re-encoded with latitude -90..90).
pub fn geohash_string(score: f64) -> String {
    const ALPHA: &[u8] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let [lon, lat] = decode_score(score);
    let bits = encode(Range { min: -180.0, max: 180.0 }, Range { min: -90.0, max: 90.0 }, lon, lat, STEP_MAX).map_or(0, |b| b.bits);
    (0..11)
        .map(|i| {
            let idx = if i == 10 { 0 } else { (bits >> (52 - (i + 1) * 5)) & 0x1f };
            ALPHA[idx as usize] as char
        })
        .collect()
}

/// Moves a hash one cell along one axis (Redis's geohash_move_x/y): `moving` is the mask of
/// that axis's interleaved bits (odd bits: longitude, even bits: latitude).
fn move_axis(h: &mut Bits, d: i8, moving: u64) {
    if d == 0 {
        return;
    }
    let shift = 64 - h.step as u32 * 2;
    let keep = h.bits & !moving;
    let mut m = h.bits & moving;
    let zz = !moving >> shift;
    if d > 0 {
        m = m.wrapping_add(zz + 1);
    } else {
        m |= zz;
        m = m.wrapping_sub(zz + 1);
    }
    m &= moving >> shift;
    h.bits = m | keep;
}

fn moved(h: Bits, dx: i8, dy: i8) -> Bits {
    let mut n = h;
    move_axis(&mut n, dx, 0xaaaaaaaaaaaaaaaa);
    move_axis(&mut n, dy, 0x5555555555555555);
    n
}

pub fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS_IN_METERS * (deg_rad(lat2) - deg_rad(lat1)).abs()
}

/// Haversine distance in meters.
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let (lon1r, lon2r) = (deg_rad(lon1), deg_rad(lon2));
    let v = ((lon2r - lon1r) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let (lat1r, lat2r) = (deg_rad(lat1), deg_rad(lat2));
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_IN_METERS * a.sqrt().asin()
}

/// A search shape: a circle (radius) or a box (width, height), in meters times `conversion`.
#[derive(Clone, Copy, Debug)]
pub enum Shape {
    Radius(f64),
    Box(f64, f64),
}

#[derive(Clone, Copy, Debug)]
pub struct Search {
    pub center: [f64; 2],
    pub shape: Shape,
    /// Meters per unit.
    pub conversion: f64,
}

impl Search {
    /// The distance of a point from the centre (in meters) when it lies within the shape.
    pub fn contains(&self, lon: f64, lat: f64) -> Option<f64> {
        let [x1, y1] = self.center;
        match self.shape {
            Shape::Radius(r) => {
                let d = distance(x1, y1, lon, lat);
                (d <= r * self.conversion).then_some(d)
            }
            Shape::Box(w, h) => {
                let (w, h) = (w * self.conversion, h * self.conversion);
                if lat_distance(lat, y1) > h / 2.0 {
                    return None;
                }
                if distance(lon, lat, x1, lat) > w / 2.0 {
                    return None;
                }
                Some(distance(x1, y1, lon, lat))
            }
        }
    }

    fn bounding_box(&self) -> [f64; 4] {
        let [lon, lat] = self.center;
        let (h, w) = match self.shape {
            Shape::Radius(r) => (r, r),
            Shape::Box(w, h) => (h / 2.0, w / 2.0),
        };
        let (height, width) = (self.conversion * h, self.conversion * w);
        let lat_delta = rad_deg(height / EARTH_RADIUS_IN_METERS);
        let long_delta_top = rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(lat + lat_delta).cos());
        let long_delta_bottom = rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(lat - lat_delta).cos());
        let south = lat < 0.0;
        [
            if south { lon - long_delta_bottom } else { lon - long_delta_top },
            lat - lat_delta,
            if south { lon + long_delta_bottom } else { lon + long_delta_top },
            lat + lat_delta,
        ]
    }

    /// The score ranges [min, max) of the boxes to scan, in Redis's order (the centre box, then
    /// N, S, E, W, NE, NW, SE, SW), skipping useless and repeated boxes.
    pub fn score_ranges(&self) -> Vec<(f64, f64)> {
        let [min_lon, min_lat, max_lon, max_lat] = self.bounding_box();
        let [lon, lat] = self.center;
        let radius = match self.shape {
            Shape::Radius(r) => r,
            Shape::Box(w, h) => ((w / 2.0) * (w / 2.0) + (h / 2.0) * (h / 2.0)).sqrt(),
        } * self.conversion;
        let mut steps = estimate_steps(radius, lat);
        let neighbours = |h: Bits| {
            [
                moved(h, 0, 1),
                moved(h, 0, -1),
                moved(h, 1, 0),
                moved(h, -1, 0),
                moved(h, 1, 1),
                moved(h, -1, 1),
                moved(h, 1, -1),
                moved(h, -1, -1),
            ]
        };
        let mut hash = encode_wgs84(lon, lat, steps).unwrap_or_default();
        let mut n = neighbours(hash);
        let mut area = decode(WGS_LONG, WGS_LAT, hash);
        let [north, south, east, west] = [0, 1, 2, 3].map(|i| decode(WGS_LONG, WGS_LAT, n[i]));
        let decrease = north.lat.max < max_lat || south.lat.min > min_lat || east.lon.max < max_lon || west.lon.min > min_lon;
        if steps > 1 && decrease {
            steps -= 1;
            hash = encode_wgs84(lon, lat, steps).unwrap_or_default();
            n = neighbours(hash);
            area = decode(WGS_LONG, WGS_LAT, hash);
        }
        // n: 0 N, 1 S, 2 E, 3 W, 4 NE, 5 NW, 6 SE, 7 SW.
        if steps >= 2 {
            let zero = Bits::default();
            if area.lat.min < min_lat {
                n[1] = zero;
                n[7] = zero;
                n[6] = zero;
            }
            if area.lat.max > max_lat {
                n[0] = zero;
                n[4] = zero;
                n[5] = zero;
            }
            if area.lon.min < min_lon {
                n[3] = zero;
                n[7] = zero;
                n[5] = zero;
            }
            if area.lon.max > max_lon {
                n[2] = zero;
                n[6] = zero;
                n[4] = zero;
            }
        }
        let boxes = [hash, n[0], n[1], n[2], n[3], n[4], n[5], n[6], n[7]];
        let mut out = Vec::with_capacity(9);
        let mut last: Option<Bits> = None;
        for b in boxes {
            if b.is_zero() || last == Some(b) {
                continue;
            }
            let min = align52(b);
            let max = align52(Bits { bits: b.bits + 1, step: b.step });
            out.push((min as f64, max as f64));
            last = Some(b);
        }
        out
    }
}

fn estimate_steps(mut range: f64, lat: f64) -> u8 {
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
    step.clamp(1, 26) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleave_round_trips() {
        for (a, b) in [(0u32, 0u32), (1, 0), (0, 1), (12345, 67890), (u32::MAX, 7)] {
            let v = deinterleave64(interleave64(a, b));
            assert_eq!((v as u32, (v >> 32) as u32), (a, b));
        }
    }

    #[test]
    fn palermo_matches_redis() {
        // GEOADD Sicily 13.361389 38.115556 "Palermo" stores 3479099956230698 in Redis.
        assert_eq!(score_of(13.361389, 38.115556), Some(3479099956230698.0));
        assert_eq!(geohash_string(3479099956230698.0), "sqc8b49rny0");
        let (a, b) = (decode_score(3479099956230698.0), decode_score(score_of(15.087269, 37.502669).unwrap()));
        let d = distance(a[0], a[1], b[0], b[1]);
        assert_eq!(format!("{:.4}", d), "166274.1516");
    }
}

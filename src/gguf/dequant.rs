//! Dequantisation kernels, one per supported ggml type, following ggml's reference
//! `dequantize_row_*` functions block for block (same arithmetic order, so results are
//! bit-identical to ggml/gguf-py).
//!
//! Callers guarantee `src.len() == dst.len() / block_size * block_bytes`; the kernels walk
//! both slices with `chunks_exact`, so a mismatch can only shorten the output, never overrun.

use super::GgmlType;

/// Elements in a k-quant super-block.
const QK_K: usize = 256;

/// Fills `dst` from `src`; returns false when `ty` has no kernel here.
pub(super) fn dequantize(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> bool {
    match ty {
        GgmlType::F32 => f32_le(src, dst),
        GgmlType::F16 => f16_le(src, dst),
        GgmlType::BF16 => bf16_le(src, dst),
        GgmlType::Q8_0 => q8_0(src, dst),
        GgmlType::Q4_0 => q4_0(src, dst),
        GgmlType::Q4_1 => q4_1(src, dst),
        GgmlType::Q4_K => q4_k(src, dst),
        GgmlType::Q6_K => q6_k(src, dst),
        _ => return false,
    }
    true
}

/// IEEE half to single precision, exact for every input (subnormals, infinities, NaN).
fn f16_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits & 0x8000) << 16;
    let exp = u32::from((bits >> 10) & 0x1f);
    let man = u32::from(bits & 0x3ff);
    match exp {
        0 => {
            // Zero or subnormal: man * 2^-24, exactly representable in f32.
            let magnitude = man as f32 * (1.0 / 16_777_216.0);
            if sign == 0 { magnitude } else { -magnitude }
        }
        0x1f => f32::from_bits(sign | 0x7f80_0000 | (man << 13)),
        _ => f32::from_bits(sign | ((exp + 112) << 23) | (man << 13)),
    }
}

fn half(bytes: &[u8], at: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([bytes[at], bytes[at + 1]]))
}

fn f32_le(src: &[u8], dst: &mut [f32]) {
    for (d, s) in dst.iter_mut().zip(src.chunks_exact(4)) {
        *d = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
    }
}

fn f16_le(src: &[u8], dst: &mut [f32]) {
    for (d, s) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *d = f16_to_f32(u16::from_le_bytes([s[0], s[1]]));
    }
}

/// bfloat16 is the top half of an f32.
fn bf16_le(src: &[u8], dst: &mut [f32]) {
    for (d, s) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *d = f32::from_bits(u32::from(u16::from_le_bytes([s[0], s[1]])) << 16);
    }
}

/// `block_q8_0 { f16 d; i8 qs[32]; }`: y = qs * d.
fn q8_0(src: &[u8], dst: &mut [f32]) {
    for (y, block) in dst.chunks_exact_mut(32).zip(src.chunks_exact(34)) {
        let d = half(block, 0);
        for (out, &q) in y.iter_mut().zip(&block[2..34]) {
            *out = f32::from(q as i8) * d;
        }
    }
}

/// `block_q4_0 { f16 d; u8 qs[16]; }`: low nibbles are elements 0..16, high nibbles 16..32,
/// each stored with an offset of 8.
fn q4_0(src: &[u8], dst: &mut [f32]) {
    for (y, block) in dst.chunks_exact_mut(32).zip(src.chunks_exact(18)) {
        let d = half(block, 0);
        let (lo, hi) = y.split_at_mut(16);
        for ((l, h), &q) in lo.iter_mut().zip(hi.iter_mut()).zip(&block[2..18]) {
            *l = f32::from(i16::from(q & 0x0f) - 8) * d;
            *h = f32::from(i16::from(q >> 4) - 8) * d;
        }
    }
}

/// `block_q4_1 { f16 d; f16 m; u8 qs[16]; }`: y = q * d + m, nibbles as in Q4_0.
fn q4_1(src: &[u8], dst: &mut [f32]) {
    for (y, block) in dst.chunks_exact_mut(32).zip(src.chunks_exact(20)) {
        let d = half(block, 0);
        let m = half(block, 2);
        let (lo, hi) = y.split_at_mut(16);
        for ((l, h), &q) in lo.iter_mut().zip(hi.iter_mut()).zip(&block[4..20]) {
            *l = f32::from(q & 0x0f) * d + m;
            *h = f32::from(q >> 4) * d + m;
        }
    }
}

/// ggml's `get_scale_min_k4`: the 6-bit scale and min of sub-block `j` (0..8) packed in 12 bytes.
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// `block_q4_K { f16 d; f16 dmin; u8 scales[12]; u8 qs[128]; }` (144 bytes, 256 values):
/// 4 chunks of 64, each = 32 low nibbles then 32 high nibbles with their own scale/min.
fn q4_k(src: &[u8], dst: &mut [f32]) {
    for (y, block) in dst.chunks_exact_mut(QK_K).zip(src.chunks_exact(144)) {
        let d = half(block, 0);
        let min = half(block, 2);
        let scales = &block[4..16];
        let qs = &block[16..144];
        for (chunk, (y64, q32)) in y.chunks_exact_mut(64).zip(qs.chunks_exact(32)).enumerate() {
            let (sc1, m1) = scale_min_k4(2 * chunk, scales);
            let (sc2, m2) = scale_min_k4(2 * chunk + 1, scales);
            let (d1, m1) = (d * f32::from(sc1), min * f32::from(m1));
            let (d2, m2) = (d * f32::from(sc2), min * f32::from(m2));
            let (lo, hi) = y64.split_at_mut(32);
            for ((l, h), &q) in lo.iter_mut().zip(hi.iter_mut()).zip(q32) {
                *l = d1 * f32::from(q & 0x0f) - m1;
                *h = d2 * f32::from(q >> 4) - m2;
            }
        }
    }
}

/// `block_q6_K { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d; }` (210 bytes, 256 values):
/// two halves of 128; in each, element l + 32k takes 4 low bits from `ql` and 2 high bits
/// from `qh`, minus 32, times `d * scales[..]`.
fn q6_k(src: &[u8], dst: &mut [f32]) {
    for (y, block) in dst.chunks_exact_mut(QK_K).zip(src.chunks_exact(210)) {
        let d = half(block, 208);
        for n in 0..2 {
            let ql = &block[64 * n..64 * n + 64];
            let qh = &block[128 + 32 * n..128 + 32 * n + 32];
            let sc = &block[192 + 8 * n..192 + 8 * n + 8];
            let y = &mut y[128 * n..128 * n + 128];
            for l in 0..32 {
                let is = l / 16;
                let h = qh[l];
                let q1 = i16::from((ql[l] & 0x0f) | ((h & 3) << 4)) - 32;
                let q2 = i16::from((ql[l + 32] & 0x0f) | (((h >> 2) & 3) << 4)) - 32;
                let q3 = i16::from((ql[l] >> 4) | (((h >> 4) & 3) << 4)) - 32;
                let q4 = i16::from((ql[l + 32] >> 4) | (((h >> 6) & 3) << 4)) - 32;
                y[l] = d * f32::from(sc[is] as i8) * f32::from(q1);
                y[l + 32] = d * f32::from(sc[is + 2] as i8) * f32::from(q2);
                y[l + 64] = d * f32::from(sc[is + 4] as i8) * f32::from(q3);
                y[l + 96] = d * f32::from(sc[is + 6] as i8) * f32::from(q4);
            }
        }
    }
}

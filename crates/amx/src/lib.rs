//! Matrix products on Intel AMX (the tile unit of Xeon 4th generation and later): bf16 inputs,
//! f32 accumulation, the way PyTorch's CPU autocast runs `nn.Linear`. A weight is packed once,
//! at load, into the tile layout; each call rounds its input rows to bf16 and multiplies 32x32
//! blocks of the output in four accumulator tiles. The embedder's linear layers and LoRA
//! training's frozen base weights use it; on CPUs without AMX, or with [`Precision::F32`], their
//! f32 kernels run instead.
//!
//! Tiles: tmm0-3 accumulate a 32x32 f32 block (2x2 tiles of 16x16), tmm4-5 hold 32 rows of
//! input (16 rows x 32 bf16 each), tmm6-7 hold 32 columns of weights in the pair-interleaved
//! layout `tdpbf16ps` reads (16 rows of k pairs x 16 columns x 2).

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
use rayon::prelude::*;
use std::sync::OnceLock;

/// Rows and columns of the output block one pass of the kernel computes.
const BLOCK: usize = 32;

/// Input rows (in bf16) kept hot while every column block of the weight passes over them:
/// about a quarter of a Sapphire Rapids core's 2 MB L2, so the weight streams once per group
/// instead of once per 32 rows (the LM head's weight is 56 MB in bf16).
const GROUP_BYTES: usize = 512 << 10;

/// The number format of the matrix products that can run on AMX.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// bf16 inputs with f32 accumulation where the CPU multiplies bf16 tiles (Intel AMX), as
    /// PyTorch's CPU autocast does; f32 elsewhere.
    #[default]
    Auto,
    /// f32 throughout, on every CPU.
    F32,
}

impl Precision {
    /// Whether products asked for at this precision run on AMX tiles in this process.
    pub fn uses_amx(self) -> bool {
        self == Precision::Auto && available()
    }
}

/// Whether this process can run AMX bf16 tiles: the CPU has them and Linux granted the
/// tile state (it hands the 8 KB of tile registers out only on request).
pub fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(detect)
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn detect() -> bool {
    use std::arch::x86_64::__cpuid_count;
    #[allow(unused_unsafe)]
    let (max_leaf, edx) = unsafe { (__cpuid_count(0, 0).eax, __cpuid_count(7, 0).edx) };
    // CPUID leaf 7, EDX: bit 22 AMX-BF16, bit 24 AMX-TILE.
    if max_leaf < 7 || edx & (1 << 22) == 0 || edx & (1 << 24) == 0 {
        return false;
    }
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: a plain system call with integer arguments; it fails (non-zero) on kernels
    // older than 5.16 or where the tile state is not enabled, and then AMX is not used.
    unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        ) == 0
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn detect() -> bool {
    false
}

/// f32 to bf16, rounding to nearest even (NaN stays NaN: its payload's top bits survive).
pub fn bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) as u16
}

/// A `[k, n]` weight matrix in bf16, in tile order: for each block of 16 columns, its
/// `k / 32` tiles one after another (so a column block's tiles are read in sequence).
#[derive(Debug, Clone)]
pub struct PackedBf16 {
    k: usize,
    n: usize,
    tiles: Vec<u16>,
}

impl PackedBf16 {
    /// `w` is `[k, n]` row-major. `None` when a side is not a multiple of 32.
    pub fn new(w: &[f32], k: usize, n: usize) -> Option<PackedBf16> {
        assert_eq!(w.len(), k * n, "PackedBf16: weight is not [k, n]");
        Self::pack(k, n, |row, col| w[row * n + col])
    }

    /// The transpose of `w`, an `nn.Linear` weight `[n, k]` (outputs by inputs), so that
    /// [`linear`] computes `x · wᵀ`. `None` when a side is not a multiple of 32.
    pub fn from_linear(w: &[f32], n: usize, k: usize) -> Option<PackedBf16> {
        assert_eq!(w.len(), k * n, "PackedBf16: weight is not [n, k]");
        Self::pack(k, n, |row, col| w[col * k + row])
    }

    /// Rows of the product's right side (the input features).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns of the product (the output features).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Element (row, col) of the `[k, n]` matrix comes from `at(row, col)`.
    fn pack(k: usize, n: usize, at: impl Fn(usize, usize) -> f32) -> Option<PackedBf16> {
        if k == 0 || n == 0 || !k.is_multiple_of(BLOCK) || !n.is_multiple_of(BLOCK) {
            return None;
        }
        let k_tiles = k / BLOCK;
        let mut tiles = vec![0u16; k * n];
        for nb in 0..n / 16 {
            for kb in 0..k_tiles {
                let tile = &mut tiles[(nb * k_tiles + kb) * 512..][..512];
                for r in 0..16 {
                    for j in 0..16 {
                        for p in 0..2 {
                            tile[r * 32 + j * 2 + p] =
                                bf16(at(kb * BLOCK + 2 * r + p, nb * 16 + j));
                        }
                    }
                }
            }
        }
        Some(PackedBf16 { k, n, tiles })
    }
}

/// `out[rows, n] = x[rows, k] · w (+ bias[n])`; `out` is overwritten. Only call it when
/// [`available`] said yes.
pub fn linear(
    x: &[f32],
    rows: usize,
    w: &PackedBf16,
    bias: Option<&[f32]>,
    out: &mut [f32],
    threads: usize,
) {
    let (k, n) = (w.k, w.n);
    assert_eq!(x.len(), rows * k, "amx::linear: input is not [rows, k]");
    assert_eq!(out.len(), rows * n, "amx::linear: output is not [rows, n]");
    if let Some(b) = bias {
        assert_eq!(b.len(), n, "amx::linear: bias is not [n]");
    }
    assert!(
        available(),
        "amx::linear called on a CPU or kernel without AMX"
    );
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        if threads > 1 && rows > BLOCK {
            // Each task takes whole 32-row blocks; every thread configures its own tiles.
            let per = rows.div_ceil(threads).div_ceil(BLOCK) * BLOCK;
            x.par_chunks(per * k)
                .zip(out.par_chunks_mut(per * n))
                .for_each(|(x, out)| tiles::linear(x, x.len() / k, w, bias, out));
        } else {
            tiles::linear(x, rows, w, bias, out);
        }
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    let _ = threads;
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod tiles {
    use super::{BLOCK, GROUP_BYTES, PackedBf16, bf16};
    use std::arch::asm;
    use std::cell::RefCell;

    /// The `ldtilecfg` operand: palette 1, eight tiles of 16 rows x 64 bytes.
    #[repr(C, align(64))]
    struct TileConfig {
        palette: u8,
        start_row: u8,
        reserved: [u8; 14],
        colsb: [u16; 16],
        rows: [u8; 16],
    }

    /// Per-thread buffers, kept between calls.
    #[derive(Default)]
    struct Scratch {
        /// The input in bf16, padded with zero rows to a multiple of 32.
        a: Vec<u16>,
        /// The bias repeated on 16 rows, to load as accumulator tiles.
        bias: Vec<f32>,
        /// A 32x32 block for the last rows when they do not fill one.
        tail: Vec<f32>,
    }

    thread_local! {
        static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
    }

    pub(super) fn linear(
        x: &[f32],
        rows: usize,
        w: &PackedBf16,
        bias: Option<&[f32]>,
        out: &mut [f32],
    ) {
        let (k, n) = (w.k, w.n);
        if rows == 0 {
            return;
        }
        SCRATCH.with_borrow_mut(|s| {
            let padded = rows.div_ceil(BLOCK) * BLOCK;
            // The input in bf16, in tile order like the weight: for each 16 rows, their k/32
            // tiles of 16 x 32 one after another, so every tile load reads 1 KB in sequence
            // (row-major, a tile's 16 rows lie k*2 bytes apart: measured slower).
            let k_tiles = k / BLOCK;
            s.a.resize(padded * k, 0);
            for (i, row) in x.chunks_exact(k).enumerate() {
                let base = (i / 16) * k_tiles * 512 + (i % 16) * 32;
                for (kb, part) in row.chunks_exact(32).enumerate() {
                    let dst = &mut s.a[base + kb * 512..][..32];
                    for (d, &v) in dst.iter_mut().zip(part) {
                        *d = bf16(v);
                    }
                }
            }
            // The padding rows multiply into output rows nobody reads; zeros keep them tame.
            s.a[rows.div_ceil(16) * 16 * k..].fill(0);
            if !rows.is_multiple_of(16) {
                let rb = rows / 16;
                for kb in 0..k_tiles {
                    s.a[(rb * k_tiles + kb) * 512 + (rows % 16) * 32..][..(16 - rows % 16) * 32]
                        .fill(0);
                }
            }
            s.bias.clear();
            if let Some(b) = bias {
                for _ in 0..16 {
                    s.bias.extend_from_slice(b);
                }
            }
            s.tail.resize(BLOCK * BLOCK, 0.0);
            let config = TileConfig {
                palette: 1,
                start_row: 0,
                reserved: [0; 14],
                colsb: [64, 64, 64, 64, 64, 64, 64, 64, 0, 0, 0, 0, 0, 0, 0, 0],
                rows: [16, 16, 16, 16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0],
            };
            let c_stride = n * 4;
            // SAFETY: `available()` was checked by the caller, so the CPU has AMX and this
            // process may use the tile state. Every tile load reads 16 rows of 64 bytes at
            // the given stride: input tiles inside `s.a` (padded to whole 32-row blocks, 512
            // elements per tile), weight tiles inside `w.tiles` (k*n elements, 512 per tile),
            // bias tiles inside
            // `s.bias` (16 rows of n). Stores write 16 rows of 16 f32 either inside `out`
            // (only for blocks whose 32 rows all exist) or inside `s.tail` (32x32).
            unsafe {
                asm!("ldtilecfg [{}]", in(reg) &config as *const TileConfig, options(nostack));
                let group = (GROUP_BYTES / (k * 2) / BLOCK).max(1) * BLOCK;
                for g0 in (0..rows).step_by(group) {
                    for nb in (0..n).step_by(BLOCK) {
                        for mb in (g0..rows.min(g0 + group)).step_by(BLOCK) {
                            let a0 = s.a.as_ptr().add((mb / 16) * k_tiles * 512);
                            let a1 = s.a.as_ptr().add((mb / 16 + 1) * k_tiles * 512);
                            let full = mb + BLOCK <= rows;
                            if bias.is_some() {
                                let b = s.bias.as_ptr().add(nb);
                                asm!(
                                    "tileloadd tmm0, [{b0} + {st}*1]",
                                    "tileloadd tmm1, [{b1} + {st}*1]",
                                    "tileloadd tmm2, [{b0} + {st}*1]",
                                    "tileloadd tmm3, [{b1} + {st}*1]",
                                    b0 = in(reg) b, b1 = in(reg) b.add(16), st = in(reg) c_stride,
                                    options(nostack, readonly),
                                );
                            } else {
                                asm!(
                                    "tilezero tmm0",
                                    "tilezero tmm1",
                                    "tilezero tmm2",
                                    "tilezero tmm3",
                                    options(nostack, nomem),
                                );
                            }
                            let b0 = w.tiles.as_ptr().add((nb / 16) * k_tiles * 512);
                            let b1 = w.tiles.as_ptr().add((nb / 16 + 1) * k_tiles * 512);
                            // Each product issued as soon as its two tiles are in, so the
                            // loads of the second input row and weight column overlap the
                            // first products (tiles are not renamed: a load waits for the
                            // products that read its register). 4% more per core than four
                            // loads then four products, measured on 1024 x 576 x 576.
                            asm!(
                                "2:",
                                "tileloadd tmm4, [{a0} + {stride}*1]",
                                "tileloadd tmm6, [{b0} + {stride}*1]",
                                "tdpbf16ps tmm0, tmm4, tmm6",
                                "tileloadd tmm7, [{b1} + {stride}*1]",
                                "tdpbf16ps tmm1, tmm4, tmm7",
                                "tileloadd tmm5, [{a1} + {stride}*1]",
                                "tdpbf16ps tmm2, tmm5, tmm6",
                                "tdpbf16ps tmm3, tmm5, tmm7",
                                "add {a0}, 1024",
                                "add {a1}, 1024",
                                "add {b0}, 1024",
                                "add {b1}, 1024",
                                "dec {count}",
                                "jnz 2b",
                                a0 = inout(reg) a0 => _,
                                a1 = inout(reg) a1 => _,
                                b0 = inout(reg) b0 => _,
                                b1 = inout(reg) b1 => _,
                                count = inout(reg) k_tiles => _,
                                stride = in(reg) 64usize,
                                options(nostack, readonly),
                            );
                            let (c, stride, row) = if full {
                                (out.as_mut_ptr().add(mb * n + nb), c_stride, 16 * n)
                            } else {
                                (s.tail.as_mut_ptr(), BLOCK * 4, 16 * BLOCK)
                            };
                            asm!(
                                "tilestored [{c00} + {st}*1], tmm0",
                                "tilestored [{c01} + {st}*1], tmm1",
                                "tilestored [{c10} + {st}*1], tmm2",
                                "tilestored [{c11} + {st}*1], tmm3",
                                c00 = in(reg) c,
                                c01 = in(reg) c.add(16),
                                c10 = in(reg) c.add(row),
                                c11 = in(reg) c.add(row + 16),
                                st = in(reg) stride,
                                options(nostack),
                            );
                            if !full {
                                for r in 0..rows - mb {
                                    out[(mb + r) * n + nb..][..BLOCK]
                                        .copy_from_slice(&s.tail[r * BLOCK..][..BLOCK]);
                                }
                            }
                        }
                    }
                }
                // Hands the tile state back, so context switches stop saving it.
                asm!("tilerelease", options(nostack, nomem));
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(len: usize, seed: &mut u64) -> Vec<f32> {
        (0..len)
            .map(|_| {
                *seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (*seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect()
    }

    /// `x · w + bias` in f64, rounded to f32.
    fn reference(x: &[f32], rows: usize, w: &[f32], n: usize, bias: Option<&[f32]>) -> Vec<f32> {
        let k = w.len() / n;
        let mut out = vec![0.0; rows * n];
        for i in 0..rows {
            for j in 0..n {
                let dot: f64 = (0..k)
                    .map(|p| x[i * k + p] as f64 * w[p * n + j] as f64)
                    .sum();
                out[i * n + j] = (dot + bias.map_or(0.0, |b| b[j] as f64)) as f32;
            }
        }
        out
    }

    #[test]
    fn rounds_to_nearest_even() {
        assert_eq!(bf16(1.0), 0x3F80);
        assert_eq!(bf16(f32::from_bits(0x3F80_8000)), 0x3F80); // a tie, to even
        assert_eq!(bf16(f32::from_bits(0x3F81_8000)), 0x3F82); // a tie, to even
        assert_eq!(bf16(f32::from_bits(0x3F80_8001)), 0x3F81);
        assert!(f32::from_bits((bf16(f32::NAN) as u32) << 16).is_nan());
    }

    #[test]
    fn only_whole_blocks_are_packed() {
        assert!(PackedBf16::new(&[0.0; 32 * 48], 32, 48).is_none());
        assert!(PackedBf16::new(&[0.0; 48 * 32], 48, 32).is_none());
        assert!(PackedBf16::new(&[0.0; 64 * 32], 64, 32).is_some());
    }

    /// Against the f32 kernel on the same bf16-rounded inputs: the products are exact in
    /// f32, so only the order of the additions differs.
    #[test]
    fn amx_products_equal_f32_products_of_the_rounded_inputs() {
        if !available() {
            eprintln!("no AMX on this CPU: amx::linear is never called here");
            return;
        }
        let mut seed = 7;
        let round = |v: &[f32]| -> Vec<f32> {
            v.iter()
                .map(|&x| f32::from_bits((bf16(x) as u32) << 16))
                .collect()
        };
        for (rows, k, n, threads) in [
            (1, 32, 32, 1),
            (17, 64, 96, 1),
            (33, 384, 1152, 1),
            (100, 1536, 384, 2),
            (64, 384, 64, 2),
            // Several row groups (160 rows each at k = 1536), the last one partial.
            (401, 1536, 64, 1),
            (401, 1536, 96, 2),
        ] {
            let x = random(rows * k, &mut seed);
            let w = random(k * n, &mut seed);
            let bias = random(n, &mut seed);
            let packed = PackedBf16::new(&w, k, n).unwrap();
            for with_bias in [false, true] {
                let b = with_bias.then_some(bias.as_slice());
                let want = reference(&round(&x), rows, &round(&w), n, b);
                let mut got = vec![f32::NAN; rows * n];
                linear(&x, rows, &packed, b, &mut got, threads);
                for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - e).abs() <= 1e-4 * (1.0 + e.abs()),
                        "rows {rows} k {k} n {n} bias {with_bias}: [{i}] {g} vs {e}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_linear_weight_is_packed_as_its_transpose() {
        let (n, k) = (64, 96);
        let mut seed = 3;
        let w = random(n * k, &mut seed); // [n, k]
        let t: Vec<f32> = (0..k * n).map(|i| w[(i % n) * k + i / n]).collect(); // [k, n]
        let a = PackedBf16::from_linear(&w, n, k).unwrap();
        let b = PackedBf16::new(&t, k, n).unwrap();
        assert_eq!((a.k(), a.n()), (k, n));
        assert_eq!(a.tiles, b.tiles);
    }
}

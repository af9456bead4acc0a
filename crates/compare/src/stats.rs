//! The statistics behind "is the difference real?": percentile-bootstrap confidence intervals
//! of a mean and of a paired difference, and McNemar's test on paired right/wrong outcomes.
//!
//! Every resample draws from `ragtune_core::rng::SplitMix64` with a fixed seed, so a report is
//! identical from run to run. Two calls with the same seed over the same number of questions
//! draw the same resampled question sets, so the intervals of different metrics (and of
//! different variants) are computed over the same resamples.

use ragtune_core::rng::SplitMix64;
use serde::{Deserialize, Serialize};

pub use ragtune_core::stats::percentile;

/// Resamples per bootstrap interval unless the options say otherwise.
pub const DEFAULT_RESAMPLES: usize = 2000;
/// The fixed seed of the bootstrap unless the options say otherwise.
pub const DEFAULT_SEED: u64 = 20_240_611;
/// Below this many discordant pairs McNemar's test is exact (binomial); from it on, the
/// chi-squared approximation with continuity correction.
pub const MCNEMAR_EXACT_BELOW: u64 = 25;

/// A point estimate with a confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The estimate on the full sample (the mean, or the mean difference).
    pub estimate: f64,
    pub lo: f64,
    pub hi: f64,
}

impl Interval {
    /// Does the interval exclude zero (a difference that the bootstrap calls real)?
    pub fn excludes_zero(&self) -> bool {
        self.lo > 0.0 || self.hi < 0.0
    }
}

/// The arithmetic mean; None for no values.
pub fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// Percentile-bootstrap interval of the mean: `resamples` samples of `values.len()` drawn with
/// replacement, the mean of each, and the `(1 - confidence) / 2` and `(1 + confidence) / 2`
/// quantiles of those means (linear interpolation). None for no values.
pub fn bootstrap_mean_ci(
    values: &[f64],
    resamples: usize,
    confidence: f64,
    seed: u64,
) -> Option<Interval> {
    let estimate = mean(values)?;
    let n = values.len();
    let mut rng = SplitMix64::new(seed);
    let mut means = Vec::with_capacity(resamples.max(1));
    for _ in 0..resamples.max(1) {
        let mut sum = 0.0;
        for _ in 0..n {
            sum += values[rng.below(n as u64) as usize];
        }
        means.push(sum / n as f64);
    }
    let tail = (1.0 - confidence.clamp(0.0, 1.0)) / 2.0 * 100.0;
    Some(Interval {
        estimate,
        lo: percentile(&means, tail),
        hi: percentile(&means, 100.0 - tail),
    })
}

/// Paired-bootstrap interval of `mean(a) - mean(b)` over the same questions: each resample
/// draws question indices and takes both variants' values of those questions, so the
/// per-question correlation between the variants narrows the interval. None when the slices
/// are empty or of different lengths.
pub fn paired_bootstrap_diff_ci(
    a: &[f64],
    b: &[f64],
    resamples: usize,
    confidence: f64,
    seed: u64,
) -> Option<Interval> {
    if a.len() != b.len() {
        return None;
    }
    let diffs: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    bootstrap_mean_ci(&diffs, resamples, confidence, seed)
}

/// How a McNemar p-value was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum McNemarMethod {
    /// Exact two-sided binomial test of b successes in b + c trials at 1/2
    /// (`scipy.stats.binomtest(min(b, c), b + c, 0.5)`), used when b + c < 25.
    ExactBinomial,
    /// Chi-squared with one degree of freedom on `(|b - c| - 1)^2 / (b + c)` (Edwards'
    /// continuity correction), used when b + c >= 25.
    ChiSquaredCorrected,
}

/// McNemar's test of two variants' right/wrong outcomes on the same questions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct McNemar {
    /// Questions the first variant got right and the second wrong.
    pub b: u64,
    /// Questions the first variant got wrong and the second right.
    pub c: u64,
    /// Two-sided p-value of "both are right equally often" (1 when b + c = 0).
    pub p_value: f64,
    pub method: McNemarMethod,
}

/// McNemar's test on paired outcomes; None when the slices have different lengths.
pub fn mcnemar(first: &[bool], second: &[bool]) -> Option<McNemar> {
    if first.len() != second.len() {
        return None;
    }
    let b = first
        .iter()
        .zip(second)
        .filter(|(x, y)| **x && !**y)
        .count() as u64;
    let c = first
        .iter()
        .zip(second)
        .filter(|(x, y)| !**x && **y)
        .count() as u64;
    Some(mcnemar_counts(b, c))
}

/// McNemar's test from the discordant counts.
pub fn mcnemar_counts(b: u64, c: u64) -> McNemar {
    let n = b + c;
    if n < MCNEMAR_EXACT_BELOW {
        return McNemar {
            b,
            c,
            p_value: exact_binomial_two_sided(b.min(c), n),
            method: McNemarMethod::ExactBinomial,
        };
    }
    let d = (b as f64 - c as f64).abs() - 1.0;
    let statistic = d.max(0.0).powi(2) / n as f64;
    McNemar {
        b,
        c,
        p_value: chi2_sf_1df(statistic),
        method: McNemarMethod::ChiSquaredCorrected,
    }
}

/// `min(1, 2 P(X <= k))` for X ~ Binomial(n, 1/2), n < 64; exact in f64 for n < 25 (the
/// binomial coefficients are summed as integers).
fn exact_binomial_two_sided(k: u64, n: u64) -> f64 {
    if n == 0 {
        return 1.0;
    }
    let mut coefficient: u128 = 1;
    let mut total: u128 = 0;
    for i in 0..=k {
        if i > 0 {
            coefficient = coefficient * u128::from(n - i + 1) / u128::from(i);
        }
        total += coefficient;
    }
    (2.0 * total as f64 / 2f64.powi(n as i32)).min(1.0)
}

/// Survival function of chi-squared with one degree of freedom: `erfc(sqrt(x / 2))`.
fn chi2_sf_1df(x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    erfc((x / 2.0).sqrt())
}

/// The complementary error function, with fractional error below 1.2e-7 everywhere
/// (Chebyshev fit, Numerical Recipes in C, 2nd ed., section 6.2, `erfcc`).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-300)
    }

    /// Reference p-values from scipy 1.17.1:
    /// ```python
    /// from scipy.stats import binomtest, chi2
    /// binomtest(min(b, c), b + c, 0.5).pvalue             # b + c < 25
    /// chi2.sf((abs(b - c) - 1) ** 2 / (b + c), 1)          # b + c >= 25
    /// ```
    #[test]
    fn mcnemar_matches_scipy() {
        let exact = [
            (0, 0, 1.0),
            (1, 0, 1.0),
            (3, 9, 0.14599609375),
            (5, 5, 1.0),
            (2, 10, 0.03857421875),
            (0, 12, 0.00048828125),
            (11, 13, 0.8388197422027588),
        ];
        for (b, c, p) in exact {
            let m = mcnemar_counts(b, c);
            assert_eq!(m.method, McNemarMethod::ExactBinomial, "({b}, {c})");
            assert!(
                close(m.p_value, p, 1e-12),
                "({b}, {c}): {} vs {p}",
                m.p_value
            );
            // Symmetric in b and c.
            assert_eq!(mcnemar_counts(c, b).p_value, m.p_value);
        }
        let chi = [
            (10, 15, 0.4237107971667936),
            (20, 30, 0.20309178757716426),
            (40, 20, 0.014171388254012323),
            (13, 12, 1.0),
            (100, 60, 0.002047732153668759),
            (5, 45, 3.479224859723167e-08),
        ];
        for (b, c, p) in chi {
            let m = mcnemar_counts(b, c);
            assert_eq!(m.method, McNemarMethod::ChiSquaredCorrected, "({b}, {c})");
            assert!(
                close(m.p_value, p, 2e-7),
                "({b}, {c}): {} vs {p}",
                m.p_value
            );
        }
    }

    #[test]
    fn mcnemar_counts_discordant_pairs() {
        let a = [true, true, false, false, true, false];
        let b = [true, false, true, true, false, false];
        let m = mcnemar(&a, &b).unwrap();
        assert_eq!((m.b, m.c), (2, 2));
        assert_eq!(m.p_value, 1.0);
        assert!(mcnemar(&a, &b[..3]).is_none());
    }

    #[test]
    fn bootstrap_of_a_constant_is_the_constant() {
        let ci = bootstrap_mean_ci(&[0.25; 40], 500, 0.95, 1).unwrap();
        assert_eq!((ci.estimate, ci.lo, ci.hi), (0.25, 0.25, 0.25));
        assert!(bootstrap_mean_ci(&[], 500, 0.95, 1).is_none());
    }

    #[test]
    fn bootstrap_width_matches_the_normal_approximation() {
        // 400 coin flips at 0.5: standard error 0.025, so a 95% interval of about +-0.049.
        let values: Vec<f64> = (0..400).map(|i| f64::from(i % 2 == 0)).collect();
        let ci = bootstrap_mean_ci(&values, 2000, 0.95, DEFAULT_SEED).unwrap();
        assert_eq!(ci.estimate, 0.5);
        let half = (ci.hi - ci.lo) / 2.0;
        assert!((half - 0.049).abs() < 0.005, "{ci:?}");
        assert!(ci.lo < 0.5 && ci.hi > 0.5);
        // Seeded: the same interval again, another with another seed.
        assert_eq!(
            bootstrap_mean_ci(&values, 2000, 0.95, DEFAULT_SEED),
            Some(ci)
        );
        assert_ne!(bootstrap_mean_ci(&values, 2000, 0.95, 7), Some(ci));
        // A 50% interval is narrower.
        let narrow = bootstrap_mean_ci(&values, 2000, 0.5, DEFAULT_SEED).unwrap();
        assert!(narrow.hi - narrow.lo < (ci.hi - ci.lo) / 2.0);
    }

    #[test]
    fn paired_difference_uses_the_pairing() {
        // b is a plus noise that is identical on every question: the paired difference is
        // exactly the shift, while unpaired intervals of a and b overlap widely.
        let a: Vec<f64> = (0..200).map(|i| f64::from(i % 3 == 0)).collect();
        let b: Vec<f64> = a.iter().map(|x| x + 0.1).collect();
        let d = paired_bootstrap_diff_ci(&b, &a, 1000, 0.95, 3).unwrap();
        assert!(close(d.estimate, 0.1, 1e-9) && close(d.lo, 0.1, 1e-9) && close(d.hi, 0.1, 1e-9));
        let ia = bootstrap_mean_ci(&a, 1000, 0.95, 3).unwrap();
        assert!(ia.hi - ia.lo > 0.1);
        assert!(paired_bootstrap_diff_ci(&a, &a, 1000, 0.95, 3).unwrap().hi == 0.0);
        assert!(paired_bootstrap_diff_ci(&a, &b[..10], 1000, 0.95, 3).is_none());
        // One variant right on 30 more of 100 questions: the interval excludes zero.
        let x: Vec<f64> = (0..100).map(|i| f64::from(i < 60)).collect();
        let y: Vec<f64> = (0..100).map(|i| f64::from(i < 30)).collect();
        let d = paired_bootstrap_diff_ci(&x, &y, 2000, 0.95, 5).unwrap();
        assert!(close(d.estimate, 0.3, 1e-12));
        assert!(d.excludes_zero() && d.lo > 0.2 && d.hi < 0.4, "{d:?}");
    }

    #[test]
    fn erfc_reference_values() {
        // math.erfc in Python.
        for (x, v) in [
            (0.0, 1.0),
            (0.5, 0.4795001221869535),
            (1.0, 0.15729920705028513),
            (3.0, 2.209049699858544e-05),
            (-1.0, 1.8427007929497148),
        ] {
            assert!(close(erfc(x), v, 1.2e-7), "erfc({x}) = {} vs {v}", erfc(x));
        }
    }
}

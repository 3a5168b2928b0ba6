//! Gunther's Universal Scalability Law, fitted to measured throughput X at N clients:
//! X(N) = λN / (1 + σ(N−1) + κN(N−1)).
//!
//! The model is linear in its inverse: N/X = 1/λ + (σ/λ)(N−1) + (κ/λ)N(N−1), so the fit is a
//! weighted linear least squares on (1, N−1, N(N−1)) — exact on exact points, no starting
//! guess, no iteration. Weights 1/(N/X)² make it minimise the relative error of X. σ and κ are
//! physical only when ≥ 0: a negative one is pinned at 0 and the rest refitted. What does not
//! belong here: where the points come from (the sweep in cmd/report.rs).

/// A fitted curve.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Usl {
    /// Contention (serial fraction).
    pub sigma: f64,
    /// Coherency (crosstalk) cost.
    pub kappa: f64,
    /// Throughput of one client alone (the ideal slope).
    pub lambda: f64,
    /// The N of peak throughput, √((1−σ)/κ); none when κ = 0 (throughput never falls).
    pub n_peak: Option<f64>,
    /// The model's throughput at `n_peak`.
    pub x_peak: Option<f64>,
    /// Root mean square of the relative residuals of X.
    pub rel_rmse: f64,
    /// Coefficient of determination in X.
    pub r2: f64,
    /// Standard errors of σ, κ, λ (none with fewer points than 4: no degrees of freedom).
    pub stderr: Option<[f64; 3]>,
}

impl Usl {
    /// The model's throughput at `n`.
    pub fn x(&self, n: f64) -> f64 {
        self.lambda * n / (1.0 + self.sigma * (n - 1.0) + self.kappa * n * (n - 1.0))
    }
}

/// Fit the law to (N, X) points. Needs 3 distinct N ≥ 1 and X > 0.
pub fn fit(points: &[(f64, f64)]) -> Result<Usl, String> {
    if points
        .iter()
        .any(|&(n, x)| !(n >= 1.0 && x > 0.0 && n.is_finite() && x.is_finite()))
    {
        return Err("every point needs N ≥ 1 and throughput > 0".into());
    }
    let mut ns: Vec<f64> = points.iter().map(|p| p.0).collect();
    ns.sort_by(f64::total_cmp);
    ns.dedup();
    if ns.len() < 3 {
        return Err(format!(
            "{} distinct client counts: the fit of σ, κ and λ needs 3 or more",
            ns.len()
        ));
    }
    // Which of (σ, κ) are free: both, then pin whichever came out negative.
    let mut free = [true, true];
    let coef = loop {
        let c = solve(points, free).ok_or("the points do not determine the curve")?;
        if c[1] < 0.0 && free[0] {
            free[0] = false;
        } else if c[2] < 0.0 && free[1] {
            free[1] = false;
        } else {
            break c;
        }
    };
    let (a, b, c) = (coef[0], coef[1].max(0.0), coef[2].max(0.0));
    if a <= 0.0 {
        return Err("the fit gave a negative single-client throughput".into());
    }
    let (lambda, sigma, kappa) = (1.0 / a, b / a, c / a);
    let n_peak = (kappa > 0.0 && sigma < 1.0).then(|| ((1.0 - sigma) / kappa).sqrt());
    let mut u = Usl {
        sigma,
        kappa,
        lambda,
        n_peak,
        x_peak: None,
        rel_rmse: 0.0,
        r2: 0.0,
        stderr: None,
    };
    u.x_peak = n_peak.map(|n| u.x(n));
    let mean = points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64;
    let (mut ss_res, mut ss_tot, mut rel) = (0.0, 0.0, 0.0);
    for &(n, x) in points {
        let e = x - u.x(n);
        ss_res += e * e;
        ss_tot += (x - mean) * (x - mean);
        rel += (e / x) * (e / x);
    }
    u.rel_rmse = (rel / points.len() as f64).sqrt();
    u.r2 = if ss_tot > 0.0 {
        1.0 - ss_res / ss_tot
    } else {
        1.0
    };
    u.stderr = stderr(points, coef, free);
    Ok(u)
}

fn regressors(n: f64, free: [bool; 2]) -> [f64; 3] {
    [
        1.0,
        if free[0] { n - 1.0 } else { 0.0 },
        if free[1] { n * (n - 1.0) } else { 0.0 },
    ]
}

/// The normal equations of the weighted fit, (AᵀWA, AᵀWy); a pinned coefficient's row and
/// column are the identity's (it solves to 0).
fn normal(points: &[(f64, f64)], free: [bool; 2]) -> ([[f64; 3]; 3], [f64; 3]) {
    let mut m = [[0.0; 3]; 3];
    let mut v = [0.0; 3];
    for &(n, x) in points {
        let y = n / x;
        let w = 1.0 / (y * y);
        let r = regressors(n, free);
        for i in 0..3 {
            v[i] += w * r[i] * y;
            for j in 0..3 {
                m[i][j] += w * r[i] * r[j];
            }
        }
    }
    for (k, f) in free.iter().enumerate() {
        if !f {
            m[k + 1][k + 1] = 1.0;
        }
    }
    (m, v)
}

fn solve(points: &[(f64, f64)], free: [bool; 2]) -> Option<[f64; 3]> {
    let (m, v) = normal(points, free);
    gauss(m, v)
}

/// Solve a 3×3 system by Gaussian elimination with partial pivoting.
fn gauss(mut m: [[f64; 3]; 3], mut v: [f64; 3]) -> Option<[f64; 3]> {
    for col in 0..3 {
        let p = (col..3).max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))?;
        if m[p][col].abs() < 1e-300 {
            return None;
        }
        m.swap(col, p);
        v.swap(col, p);
        for r in col + 1..3 {
            let f = m[r][col] / m[col][col];
            let pivot = m[col];
            for (c, x) in m[r].iter_mut().enumerate().skip(col) {
                *x -= f * pivot[c];
            }
            v[r] -= f * v[col];
        }
    }
    let mut x = [0.0; 3];
    for r in (0..3).rev() {
        let s: f64 = (r + 1..3).map(|c| m[r][c] * x[c]).sum();
        x[r] = (v[r] - s) / m[r][r];
    }
    Some(x)
}

/// Standard errors of (σ, κ, λ) by the delta method from the coefficients' covariance.
fn stderr(points: &[(f64, f64)], coef: [f64; 3], free: [bool; 2]) -> Option<[f64; 3]> {
    let k = 1 + free.iter().filter(|f| **f).count();
    let dof = points.len().checked_sub(k).filter(|d| *d > 0)?;
    let mut ss = 0.0;
    for &(n, x) in points {
        let y = n / x;
        let r = regressors(n, free);
        let e = y - (coef[0] * r[0] + coef[1] * r[1] + coef[2] * r[2]);
        ss += e * e / (y * y);
    }
    let s2 = ss / dof as f64;
    let (m, _) = normal(points, free);
    let mut inv = [[0.0; 3]; 3];
    for c in 0..3 {
        let mut e = [0.0; 3];
        e[c] = 1.0;
        let col = gauss(m, e)?;
        for r in 0..3 {
            inv[r][c] = col[r] * s2;
        }
    }
    let (a, b, c) = (coef[0], coef[1], coef[2]);
    let var = |g: [f64; 3]| -> f64 {
        let mut s = 0.0;
        for i in 0..3 {
            for j in 0..3 {
                s += g[i] * inv[i][j] * g[j];
            }
        }
        s.max(0.0).sqrt()
    };
    Some([
        if free[0] {
            var([-b / (a * a), 1.0 / a, 0.0])
        } else {
            0.0
        },
        if free[1] {
            var([-c / (a * a), 0.0, 1.0 / a])
        } else {
            0.0
        },
        var([-1.0 / (a * a), 0.0, 0.0]),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(s: f64, k: f64, l: f64, n: f64) -> f64 {
        l * n / (1.0 + s * (n - 1.0) + k * n * (n - 1.0))
    }

    #[test]
    fn the_fit_recovers_known_sigma_kappa_lambda_from_generated_points() {
        for (s, k, l) in [
            (0.05, 0.002, 1000.0),
            (0.2, 0.0, 250.0),
            (0.01, 0.0001, 5e4),
        ] {
            let pts: Vec<(f64, f64)> = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
                .iter()
                .map(|&n| (n, model(s, k, l, n)))
                .collect();
            let u = fit(&pts).unwrap();
            assert!((u.sigma - s).abs() < 1e-9, "{u:?}");
            assert!((u.kappa - k).abs() < 1e-9, "{u:?}");
            assert!((u.lambda - l).abs() / l < 1e-9, "{u:?}");
            assert!(u.rel_rmse < 1e-9 && u.r2 > 0.999_999);
            match (u.n_peak, k > 0.0) {
                (Some(n), true) => assert!((n / ((1.0 - s) / k).sqrt() - 1.0).abs() < 1e-4),
                // κ = 0: no peak, or one beyond any fleet (rounding leaves κ ≈ 1e-17).
                (n, false) => assert!(n.is_none_or(|n| n > 1e4), "{u:?}"),
                (None, true) => panic!("no peak: {u:?}"),
            }
        }
    }

    #[test]
    fn noisy_points_give_nearby_parameters_and_their_errors() {
        let noise = [1.02, 0.97, 1.01, 0.99, 1.03, 0.98, 1.0, 1.01];
        let pts: Vec<(f64, f64)> = [1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0]
            .iter()
            .zip(noise)
            .map(|(&n, e)| (n, model(0.03, 0.001, 800.0, n) * e))
            .collect();
        let u = fit(&pts).unwrap();
        assert!((u.lambda - 800.0).abs() < 40.0, "{u:?}");
        assert!(
            (u.sigma - 0.03).abs() < 0.03 && (u.kappa - 0.001).abs() < 0.002,
            "{u:?}"
        );
        assert!(u.stderr.is_some() && u.rel_rmse < 0.05);
    }

    #[test]
    fn a_negative_coefficient_is_pinned_at_zero_and_too_few_points_are_refused() {
        // Superlinear points (caches warming) would need σ < 0.
        let pts = [(1.0, 100.0), (2.0, 205.0), (4.0, 415.0), (8.0, 830.0)];
        let u = fit(&pts).unwrap();
        assert!(u.sigma >= 0.0 && u.kappa >= 0.0, "{u:?}");
        assert!(fit(&[(1.0, 1.0), (2.0, 1.9)])
            .unwrap_err()
            .contains("3 or more"));
        assert!(fit(&[(1.0, 1.0), (2.0, 0.0), (3.0, 1.0)]).is_err());
    }
}

//! Cardinality estimation from a register histogram: Otmar Ertl's improved raw estimator (see
//! the parent module for why this one).

/// Ertl's improved raw estimator over a register histogram: `histogram[k]` registers hold `k`,
/// for k in 0..=q+1, out of `m` registers.
pub(super) fn ertl_estimate(histogram: &[u32], m: f64) -> f64 {
    let q = histogram.len() - 2;
    let mut z = m * tau((m - f64::from(histogram[q + 1])) / m);
    for k in (1..=q).rev() {
        z = 0.5 * (z + f64::from(histogram[k]));
    }
    z += m * sigma(f64::from(histogram[0]) / m);
    if z.is_infinite() {
        return 0.0;
    }
    // α∞ = 1 / (2 ln 2)
    let alpha_inf = 0.5 / std::f64::consts::LN_2;
    alpha_inf * m * m / z
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let previous = z;
        z += x * y;
        y += y;
        if previous == z {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let previous = z;
        y *= 0.5;
        let d = 1.0 - x;
        z -= d * d * y;
        if previous == z {
            return z / 3.0;
        }
    }
}

//! The zero-terminal-SNR DDPM discretisation and the dynamic guidance schedule, computed the
//! way sgm computes them (float64 betas and cumulative product, then float32 tables), so the
//! same step indices and noise levels come out as in the official code.

/// Number of training timesteps.
pub const NUM_TIMESTEPS: usize = 1000;
const LINEAR_START: f64 = 0.00085;
const LINEAR_END: f64 = 0.0120;

/// `torch.linspace` in float64: the first half counts up from `start`, the second half down
/// from `end` (PyTorch's symmetric algorithm).
fn torch_linspace(start: f64, end: f64, steps: usize) -> Vec<f64> {
    let step = (end - start) / (steps as f64 - 1.0);
    let half = steps / 2;
    (0..steps)
        .map(|i| {
            if i < half {
                start + step * i as f64
            } else {
                end - step * (steps - 1 - i) as f64
            }
        })
        .collect()
}

/// ᾱ_t for t = 0..999 (float64), `make_beta_schedule("linear")` then `cumprod(1-β)`.
pub fn alphas_cumprod() -> Vec<f64> {
    let betas: Vec<f64> = torch_linspace(LINEAR_START.sqrt(), LINEAR_END.sqrt(), NUM_TIMESTEPS)
        .into_iter()
        .map(|b| b * b)
        .collect();
    let mut acc = 1.0f64;
    betas
        .iter()
        .map(|b| {
            acc *= 1.0 - b;
            acc
        })
        .collect()
}

/// `np.linspace(999, 0, n, endpoint=False).astype(int)[::-1]`: ascending DDPM indices.
pub fn sampling_timesteps(n: usize) -> Vec<i64> {
    assert!(n >= 1 && n <= NUM_TIMESTEPS, "steps must be in 1..=1000");
    if n == NUM_TIMESTEPS {
        return (0..NUM_TIMESTEPS as i64).collect();
    }
    let start = (NUM_TIMESTEPS - 1) as f64;
    let step = (0.0 - start) / n as f64;
    let mut t: Vec<i64> = (0..n).map(|i| (i as f64 * step + start) as i64).collect();
    t.reverse();
    t
}

/// `ZeroSNRDDPMDiscretization.get_sigmas(n)`: sqrt(ᾱ) at the selected steps, rescaled so the
/// last is exactly 0, returned flipped (noisiest first: s = 0, ..., s ≈ 0.99), float32.
/// The rescale uses the first and last of the *selected* subset.
pub fn zero_snr_sqrt_alphas(n: usize) -> Vec<f32> {
    let ac = alphas_cumprod();
    let idx = sampling_timesteps(n);
    let mut s: Vec<f32> = idx.iter().map(|&t| (ac[t as usize] as f32).sqrt()).collect();
    let s0 = s[0];
    let st = s[s.len() - 1];
    let k = s0 / (s0 - st);
    for v in s.iter_mut() {
        *v -= st;
        *v *= k;
    }
    s.reverse();
    s
}

/// The denoiser's 1000-entry table indexed by DDPM step (`table[t]`, `table[999] = 0`), used
/// to quantise the noise level (`possibly_quantize_sigma`).
#[derive(Debug, Clone)]
pub struct SigmaTable {
    table: Vec<f32>,
}

impl Default for SigmaTable {
    fn default() -> Self {
        Self::new()
    }
}

impl SigmaTable {
    pub fn new() -> Self {
        let mut table = zero_snr_sqrt_alphas(NUM_TIMESTEPS);
        table.reverse();
        Self { table }
    }

    pub fn get(&self, t: usize) -> f32 {
        self.table[t]
    }

    /// Nearest table entry (first on ties, like `argmin`).
    pub fn quantize(&self, s: f32) -> f32 {
        let mut best = 0usize;
        let mut best_d = f32::INFINITY;
        for (i, &v) in self.table.iter().enumerate() {
            let d = (s - v).abs();
            if d < best_d {
                best_d = d;
                best = i;
            }
        }
        self.table[best]
    }
}

/// The sampler's grid: `s` ascending from 0 with a final 1.0 appended, and the DDPM index used
/// at each step (999 first).
#[derive(Debug, Clone)]
pub struct SamplingGrid {
    pub s: Vec<f32>,
    pub timesteps: Vec<i64>,
}

impl SamplingGrid {
    pub fn new(steps: usize) -> Self {
        let mut s = zero_snr_sqrt_alphas(steps);
        s.push(1.0);
        let mut timesteps = sampling_timesteps(steps);
        timesteps.reverse();
        Self { s, timesteps }
    }

    pub fn steps(&self) -> usize {
        self.timesteps.len()
    }
}

/// CogVideoX's `DynamicCFG` weight. `t` is the DDPM index (999…), not the step number — the
/// official quirk (`step_index = num_steps - timestep`), kept in float64 as Python computes it.
pub fn dynamic_cfg_weight(scale: f64, exp: f64, num_steps: usize, t: i64) -> f64 {
    let n = num_steps as f64;
    let x = (num_steps as i64 - t) as f64 / n;
    1.0 + scale * (1.0 - (std::f64::consts::PI * x.powf(exp)).cos()) / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifty_step_grid_matches_the_official_indices() {
        let t = sampling_timesteps(50);
        assert_eq!(t.len(), 50);
        assert_eq!(t[0], 19);
        assert_eq!(t[1], 39);
        assert_eq!(t[48], 979);
        assert_eq!(t[49], 999);
    }

    #[test]
    fn zero_terminal_snr_and_spec_values() {
        let g = SamplingGrid::new(50);
        assert_eq!(g.s[0], 0.0, "first step is pure noise");
        assert_eq!(*g.s.last().unwrap(), 1.0);
        assert!((g.s[49] - 0.991082).abs() < 2e-6, "s(19) on 50 steps = {}", g.s[49]);
        let table = SigmaTable::new();
        assert_eq!(table.get(999), 0.0);
        assert!((table.get(19) - 0.990460).abs() < 2e-6, "s(19) on 1000 = {}", table.get(19));
        assert!(g.s.windows(2).all(|w| w[0] < w[1]), "ascending");
    }

    #[test]
    fn dynamic_cfg_reproduces_the_quirky_official_weights() {
        let g = SamplingGrid::new(50);
        let w: Vec<f64> = g
            .timesteps
            .iter()
            .map(|&t| dynamic_cfg_weight(6.0, 5.0, 50, t))
            .collect();
        let expect = [2.29, 2.54, 6.97, 6.42];
        for (a, b) in w.iter().zip(expect) {
            assert!((a - b).abs() < 0.01, "{w:?}");
        }
        assert!((w[49] - 1.12).abs() < 0.01, "last {}", w[49]);
        assert!(w.iter().all(|&x| (1.0..=7.0).contains(&x)));
    }

    #[test]
    fn quantize_snaps_to_the_nearest_table_entry() {
        let table = SigmaTable::new();
        let g = SamplingGrid::new(50);
        // High noise levels land on index t-1 per the spec (t <= 219).
        let q = table.quantize(g.s[49]);
        assert_eq!(q, table.get(18));
        assert_eq!(table.quantize(0.0), 0.0);
    }
}

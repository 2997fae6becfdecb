//! `dataset_statistics.json` as written by OpenVLA / CogACT / this project's trainer:
//! `{KEY: {"action": {"q01": [..], "q99": [..], "mask": [..], "mean", "std", "min", "max"}}}`.
//! Unnormalisation: `a = mask ? 0.5·(â+1)·(q99−q01) + q01 : â`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionStats {
    pub q01: Vec<f32>,
    pub q99: Vec<f32>,
    /// Which dimensions are normalised (OpenVLA: the six arm dims, not the gripper).
    #[serde(default)]
    pub mask: Option<Vec<bool>>,
}

#[derive(Deserialize)]
struct Entry {
    action: ActionStats,
}

impl ActionStats {
    /// Read `path` and pick `key` (any key when the file has only one).
    pub fn load(path: &Path, key: Option<&str>) -> anyhow::Result<Self> {
        let raw = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read action statistics {}", path.display()))?;
        let all: BTreeMap<String, Entry> = serde_json::from_str(&raw).with_context(|| {
            format!("{} is not a dataset_statistics.json ({{key: {{\"action\": {{q01, q99, mask}}}}}})", path.display())
        })?;
        let keys: Vec<&String> = all.keys().collect();
        let stats = match key {
            Some(k) => all.get(k).map(|e| e.action.clone()).ok_or_else(|| {
                anyhow::anyhow!("no unnorm key {k:?} in {}; available: {keys:?}", path.display())
            })?,
            None if all.len() == 1 => all.values().next().unwrap().action.clone(),
            None => anyhow::bail!("{} has several keys {keys:?}; pass --unnorm-key", path.display()),
        };
        stats.validate()?;
        Ok(stats)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        let n = self.q01.len();
        anyhow::ensure!(n > 0 && self.q99.len() == n, "action statistics: q01 and q99 must have the same non-zero length");
        if let Some(m) = &self.mask {
            anyhow::ensure!(m.len() == n, "action statistics: mask has {} entries, q01 {n}", m.len());
        }
        Ok(())
    }

    /// Map one normalised action to its raw units. `clip` first clamps the normalised
    /// dimensions to [-1, 1] (CogACT does).
    pub fn unnormalize(&self, a: &[f32], clip: bool) -> anyhow::Result<Vec<f32>> {
        anyhow::ensure!(
            a.len() == self.q01.len(),
            "action has {} dimensions, the statistics {}",
            a.len(),
            self.q01.len()
        );
        Ok(a.iter()
            .enumerate()
            .map(|(i, &v)| {
                let normed = self.mask.as_ref().map(|m| m[i]).unwrap_or(true);
                if normed {
                    let v = if clip { v.clamp(-1.0, 1.0) } else { v };
                    0.5 * (v + 1.0) * (self.q99[i] - self.q01[i]) + self.q01[i]
                } else {
                    v
                }
            })
            .collect())
    }

    /// The inverse map (used by tests and by trainers writing normalised targets).
    pub fn normalize(&self, a: &[f32]) -> Vec<f32> {
        a.iter()
            .enumerate()
            .map(|(i, &v)| {
                let normed = self.mask.as_ref().map(|m| m[i]).unwrap_or(true);
                let span = self.q99[i] - self.q01[i];
                if normed && span != 0.0 { 2.0 * (v - self.q01[i]) / span - 1.0 } else { v }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats() -> ActionStats {
        ActionStats {
            q01: vec![-0.1, -0.2, 0.0, 0.0],
            q99: vec![0.1, 0.2, 1.0, 1.0],
            mask: Some(vec![true, true, true, false]),
        }
    }

    #[test]
    fn unnormalize_follows_the_openvla_formula_and_inverts() {
        let s = stats();
        let raw = s.unnormalize(&[-1.0, 1.0, 0.0, 0.7], false).unwrap();
        assert_eq!(raw, vec![-0.1, 0.2, 0.5, 0.7]);
        let back = s.normalize(&raw);
        for (a, b) in back.iter().zip([-1.0, 1.0, 0.0, 0.7]) {
            assert!((a - b).abs() < 1e-6);
        }
        let clipped = s.unnormalize(&[3.0, -3.0, 0.0, 0.0], true).unwrap();
        assert_eq!(&clipped[..2], &[0.1, -0.2]);
        assert!(s.unnormalize(&[0.0; 3], false).is_err());
    }

    #[test]
    fn load_picks_the_key_and_names_the_alternatives() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("dataset_statistics.json");
        std::fs::write(&p, r#"{"bridge_orig": {"action": {"q01": [0,0], "q99": [1,2], "mask": [true,false]}}, "other": {"action": {"q01": [0], "q99": [1]}}}"#).unwrap();
        let s = ActionStats::load(&p, Some("bridge_orig")).unwrap();
        assert_eq!(s.q99, vec![1.0, 2.0]);
        let e = ActionStats::load(&p, Some("nope")).unwrap_err().to_string();
        assert!(e.contains("bridge_orig") && e.contains("other"), "{e}");
        assert!(ActionStats::load(&p, None).unwrap_err().to_string().contains("--unnorm-key"));
    }
}

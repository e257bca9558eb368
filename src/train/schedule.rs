//! Learning-rate schedules: linear warm-up, then cosine, linear or constant decay — the
//! formulas of transformers' `get_{cosine,linear,constant}_schedule_with_warmup`, so a run
//! here and a run there see the same rate at every step (the first step's rate is 0 when
//! there is warm-up, as there).

use std::f64::consts::PI;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    Cosine,
    Linear,
    Constant,
}

impl Schedule {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cosine => "cosine",
            Self::Linear => "linear",
            Self::Constant => "constant",
        }
    }
}

impl FromStr for Schedule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cosine" => Ok(Self::Cosine),
            "linear" => Ok(Self::Linear),
            "constant" => Ok(Self::Constant),
            other => Err(format!(
                "unknown schedule `{other}`: expected cosine, linear or constant"
            )),
        }
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

crate::serde_by_name!(Schedule);

/// The rate at each optimiser step of a run of `total` steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrSchedule {
    pub kind: Schedule,
    pub peak: f64,
    pub warmup: usize,
    pub total: usize,
}

impl LrSchedule {
    /// `warmup_ratio` of `total` steps, rounded up (as transformers' `get_warmup_steps`).
    pub fn new(kind: Schedule, peak: f64, warmup_ratio: f64, total: usize) -> Self {
        let warmup = (total as f64 * warmup_ratio).ceil() as usize;
        Self {
            kind,
            peak,
            warmup,
            total,
        }
    }

    /// The rate for the step numbered `step` from 0.
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.peak * step as f64 / self.warmup.max(1) as f64;
        }
        let decay_steps = self.total.saturating_sub(self.warmup).max(1) as f64;
        let progress = (step - self.warmup) as f64 / decay_steps;
        let factor = match self.kind {
            Schedule::Cosine => 0.5 * (1.0 + (PI * progress).cos()),
            Schedule::Linear => (self.total.saturating_sub(step)) as f64 / decay_steps,
            Schedule::Constant => 1.0,
        };
        self.peak * factor.max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_linearly_then_follows_a_half_cosine() {
        let s = LrSchedule::new(Schedule::Cosine, 1e-3, 0.1, 100);
        assert_eq!(s.warmup, 10);
        assert_eq!(s.lr(0), 0.0);
        assert!((s.lr(5) - 5e-4).abs() < 1e-15);
        assert!((s.lr(10) - 1e-3).abs() < 1e-15);
        assert!((s.lr(55) - 5e-4).abs() < 1e-12, "half-way down");
        assert!(s.lr(99) > 0.0 && s.lr(99) < 1e-5);
        assert_eq!(s.lr(100), 0.0);
    }

    #[test]
    fn warmup_rounds_up_as_transformers() {
        // 3% of 50 steps = 1.5 → 2 warm-up steps.
        assert_eq!(LrSchedule::new(Schedule::Cosine, 1.0, 0.03, 50).warmup, 2);
        assert_eq!(LrSchedule::new(Schedule::Cosine, 1.0, 0.0, 50).warmup, 0);
    }

    #[test]
    fn linear_and_constant() {
        let lin = LrSchedule::new(Schedule::Linear, 2.0, 0.0, 4);
        let rates: Vec<f64> = (0..5).map(|s| lin.lr(s)).collect();
        assert_eq!(rates, [2.0, 1.5, 1.0, 0.5, 0.0]);
        let c = LrSchedule::new(Schedule::Constant, 2.0, 0.5, 4);
        assert_eq!([c.lr(0), c.lr(1), c.lr(2), c.lr(3)], [0.0, 1.0, 2.0, 2.0]);
    }
}

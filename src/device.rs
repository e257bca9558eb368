//! Where tensors live: the one place a device name becomes a `tch::Device`, so that
//! `--device cuda` is the only change a GPU user makes.

use std::fmt;
use std::str::FromStr;

/// A compute device as researchers name it on the command line and in scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    Cpu,
    /// `cuda` is the first GPU; `cuda:N` picks one.
    Cuda(usize),
}

/// A device name that is neither `cpu`, `cuda` nor `cuda:N`.
#[derive(Debug, thiserror::Error)]
#[error("unknown device `{0}`: expected `cpu`, `cuda` or `cuda:N`")]
pub struct UnknownDevice(pub String);

impl FromStr for DeviceSpec {
    type Err = UnknownDevice;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| UnknownDevice(s.to_string())),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => write!(f, "cpu"),
            Self::Cuda(0) => write!(f, "cuda"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

crate::serde_by_name!(DeviceSpec);

/// Asking for a GPU that this build or machine cannot reach.
#[derive(Debug, thiserror::Error)]
#[error(
    "device `{0}` requested but CUDA is not available (this build sees {1} GPU(s)); \
     a GPU build needs `make setup TORCH=cuda`"
)]
pub struct CudaUnavailable(pub DeviceSpec, pub i64);

impl DeviceSpec {
    /// The tch device, checking that a requested GPU exists.
    pub fn to_tch(self) -> Result<tch::Device, CudaUnavailable> {
        match self {
            Self::Cpu => Ok(tch::Device::Cpu),
            Self::Cuda(n) => {
                let count = tch::Cuda::device_count();
                if (n as i64) < count {
                    Ok(tch::Device::Cuda(n))
                } else {
                    Err(CudaUnavailable(self, count))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_device_names() {
        for (name, spec) in [
            ("cpu", DeviceSpec::Cpu),
            ("cuda", DeviceSpec::Cuda(0)),
            ("cuda:1", DeviceSpec::Cuda(1)),
        ] {
            assert_eq!(name.parse::<DeviceSpec>().unwrap(), spec);
            assert_eq!(spec.to_string(), name);
        }
        assert!("tpu".parse::<DeviceSpec>().is_err());
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
    }

    #[test]
    fn cpu_is_always_available() {
        assert_eq!(DeviceSpec::Cpu.to_tch().unwrap(), tch::Device::Cpu);
    }
}

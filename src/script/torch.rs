//! Torch natives: which libtorch this is, threads, seeds, devices.

use rhai::plugin::*;

use super::engine::Domain;

pub const DOMAIN: Domain = Domain {
    name: "torch",
    module: || exported_module!(torch_api),
    extra: |_| {},
};

/// The tensor backend: libtorch version, thread count, global seed and device checks.
#[export_module]
pub mod torch_api {
    use rhai::Map;

    use crate::device::DeviceSpec;

    /// What the runtime computes with: `#{libtorch, variant, threads, cuda_devices}`.
    ///
    /// ```rhai
    /// let t = torch_info();
    /// print(`libtorch ${t.libtorch} (${t.variant}), ${t.threads} threads`);
    /// ```
    pub fn torch_info() -> Map {
        let mut m = Map::new();
        m.insert("libtorch".into(), crate::LIBTORCH_VERSION.into());
        m.insert("variant".into(), crate::LIBTORCH_VARIANT.into());
        m.insert("threads".into(), (tch::get_num_threads() as i64).into());
        m.insert("cuda_devices".into(), tch::Cuda::device_count().into());
        m
    }

    /// Use `n` intra-op threads (on a busy 2-core machine, 1 is often faster than 2).
    ///
    /// ```rhai
    /// set_threads(1);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn set_threads(n: i64) -> Result<(), Box<EvalAltResult>> {
        crate::threads::set_threads(n).map_err(|e| format!("set_threads: {e}").into())
    }

    /// Seed torch's global generator (weights initialised in scripts, dropout).
    ///
    /// ```rhai
    /// manual_seed(0);
    /// ```
    pub fn manual_seed(seed: i64) {
        tch::manual_seed(seed);
    }

    /// Whether `device` (`"cpu"`, `"cuda"`, `"cuda:N"`) can be used by this build on this
    /// machine; an unknown name is an error.
    ///
    /// ```rhai
    /// let dev = if device_available("cuda") { "cuda" } else { "cpu" };
    /// ```
    #[rhai_fn(return_raw)]
    pub fn device_available(device: &str) -> Result<bool, Box<EvalAltResult>> {
        let spec: DeviceSpec = device
            .parse()
            .map_err(|e: crate::device::UnknownDevice| e.to_string())?;
        Ok(spec.to_tch().is_ok())
    }
}

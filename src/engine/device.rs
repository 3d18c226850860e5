//! `--device auto|cpu|cuda[:N]|metal` and the CPU thread count.

use anyhow::{bail, Result};
use candle_core::Device;

/// What the user asked for, before the hardware is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    #[default]
    Auto,
    Cpu,
    Cuda(usize),
    Metal,
}

impl std::str::FromStr for DeviceSpec {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Self::Auto,
            "cpu" => Self::Cpu,
            "cuda" | "gpu" => Self::Cuda(0),
            "metal" => Self::Metal,
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Self::Cuda(n),
                _ => bail!("unknown device {s:?}: use auto, cpu, cuda, cuda:N or metal"),
            },
        })
    }
}

impl DeviceSpec {
    /// Open the device. `auto` takes a GPU when this build has one and it answers, else the CPU.
    pub fn open(self) -> Result<Device> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Auto => {
                if candle_core::utils::cuda_is_available() {
                    if let Ok(d) = Device::new_cuda(0) {
                        return Ok(d);
                    }
                }
                if candle_core::utils::metal_is_available() {
                    if let Ok(d) = Device::new_metal(0) {
                        return Ok(d);
                    }
                }
                Ok(Device::Cpu)
            }
            Self::Cuda(n) => {
                if !candle_core::utils::cuda_is_available() {
                    bail!(
                        "this polysum was built without CUDA: rebuild with `cargo build --release --features cuda`, \
                    or use --device cpu"
                    );
                }
                Ok(Device::new_cuda(n)?)
            }
            Self::Metal => {
                if !candle_core::utils::metal_is_available() {
                    bail!("this polysum was built without Metal: rebuild with `--features metal`, or use --device cpu");
                }
                Ok(Device::new_metal(0)?)
            }
        }
    }
}

/// Size the CPU thread pools candle runs on. Call before any model work; only the first call counts.
pub fn set_cpu_threads(threads: Option<usize>) {
    if let Some(n) = threads.filter(|n| *n > 0) {
        // candle sizes its gemm threading from this variable, and its quantized kernels use rayon's pool.
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
        let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_names() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("cuda:1".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(1));
        assert_eq!("CUDA".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert!("tpu".parse::<DeviceSpec>().is_err());
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
    }

    #[test]
    fn auto_opens_something_and_cpu_is_cpu() {
        assert!(DeviceSpec::Auto.open().is_ok());
        assert!(DeviceSpec::Cpu.open().unwrap().is_cpu());
    }
}

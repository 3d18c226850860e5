//! Reading a GGUF file: typed metadata lookups and tensors, re-quantized where the CPU lacks fast kernels.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use std::borrow::Cow;

use candle_core::quantized::{gguf_file, GgmlDType, QStorage, QTensor};
use candle_core::{DType, Device, Tensor};

pub(crate) struct Gguf {
    pub(crate) path: PathBuf,
    pub(crate) content: gguf_file::Content,
    reader: Mutex<BufReader<File>>,
    device: Device,
    requantize: bool,
}

impl Gguf {
    pub(crate) fn open(path: &Path, device: &Device, requantize: bool) -> Result<Self> {
        let mut file = File::open(path).with_context(|| format!("cannot open model file {}", path.display()))?;
        let mut magic = [0u8; 4];
        if file.read_exact(&mut magic).is_err() || &magic != b"GGUF" {
            bail!(
                "{} is not a GGUF model file (it does not start with the GGUF magic); check the path, or re-download \
                it with `polysum models pull`",
                path.display()
            );
        }
        let mut reader = BufReader::new(File::open(path)?);
        let content = gguf_file::Content::read(&mut reader)
            .with_context(|| format!("{} is a damaged GGUF file (its header cannot be read)", path.display()))?;
        Ok(Self { path: path.to_path_buf(), content, reader: Mutex::new(reader), device: device.clone(), requantize })
    }

    pub(crate) fn device(&self) -> &Device {
        &self.device
    }

    pub(crate) fn arch(&self) -> Result<String> {
        Ok(self.str("general.architecture")?.to_string())
    }

    fn value(&self, key: &str) -> Result<&gguf_file::Value> {
        self.content
            .metadata
            .get(key)
            .with_context(|| format!("{}: metadata key {key} is missing", self.path.display()))
    }

    pub(crate) fn str(&self, key: &str) -> Result<&str> {
        Ok(self.value(key)?.to_string()?.as_str())
    }

    pub(crate) fn u32(&self, key: &str) -> Result<u32> {
        let v = self.value(key)?;
        // Writers differ in the integer width they use for counts.
        Ok(v.to_u32().or_else(|_| v.to_u64().map(|x| x as u32)).or_else(|_| v.to_i32().map(|x| x as u32))?)
    }

    pub(crate) fn f32(&self, key: &str) -> Result<f32> {
        let v = self.value(key)?;
        Ok(v.to_f32().or_else(|_| v.to_f64().map(|x| x as f32))?)
    }

    pub(crate) fn u32_or(&self, key: &str, default: u32) -> u32 {
        self.u32(key).unwrap_or(default)
    }

    pub(crate) fn f32_opt(&self, key: &str) -> Option<f32> {
        self.f32(key).ok()
    }

    pub(crate) fn has_tensor(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    /// A weight as stored, except Q4_1/Q5_0/Q5_1 which become Q8_0 when re-quantizing: candle has only
    /// scalar CPU kernels for those three. Q5_0 stays as stored where `gemv` has its SIMD kernel (AVX2);
    /// elsewhere it converts exactly; Q4_1/Q5_1 carry an offset that Q8_0
    /// cannot hold, so they are rounded to Q8_0's finer grid (an error far below their own).
    pub(crate) fn qtensor(&self, name: &str) -> Result<QTensor> {
        let t = {
            let mut reader = self.reader.lock().expect("reader lock");
            self.content
                .tensor(&mut *reader, name, &self.device)
                .with_context(|| format!("{}: cannot read tensor {name}", self.path.display()))?
        };
        if self.requantize
            && matches!(t.dtype(), GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1)
            && !super::gemv::keeps_compact(t.dtype())
        {
            let cols = t.shape().dims().last().copied().unwrap_or(0);
            if cols % GgmlDType::Q8_0.block_size() == 0 {
                if t.dtype() == GgmlDType::Q5_0 {
                    let bytes = q5_0_to_q8_0(&t.data()?);
                    let storage = QStorage::from_data(Cow::Owned(bytes), &self.device, GgmlDType::Q8_0)?;
                    return Ok(QTensor::new(storage, t.shape().clone())?);
                }
                return Ok(QTensor::quantize(&t.dequantize(&self.device)?, GgmlDType::Q8_0)?);
            }
        }
        Ok(t)
    }

    /// A small weight (norms, biases) as f32.
    pub(crate) fn f32_tensor(&self, name: &str) -> Result<Tensor> {
        Ok(self.qtensor(name)?.dequantize(&self.device)?.to_dtype(DType::F32)?)
    }

    pub(crate) fn opt_f32_tensor(&self, name: &str) -> Result<Option<Tensor>> {
        if self.has_tensor(name) {
            Ok(Some(self.f32_tensor(name)?))
        } else {
            Ok(None)
        }
    }
}

/// Q5_0 blocks hold 32 values d·(q − 16) with 0 ≤ q < 32, so Q8_0 (an f16 scale and 32 int8) holds them
/// exactly with the same scale. Block layouts as in ggml: Q5_0 = d, qh (u32), qs[16]; Q8_0 = d, qs[32].
fn q5_0_to_q8_0(data: &[u8]) -> Vec<u8> {
    const Q5_0_BLOCK: usize = 22;
    const Q8_0_BLOCK: usize = 34;
    let mut out = Vec::with_capacity(data.len() / Q5_0_BLOCK * Q8_0_BLOCK);
    for b in data.chunks_exact(Q5_0_BLOCK) {
        out.extend_from_slice(&b[0..2]);
        let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
        let qs = &b[6..Q5_0_BLOCK];
        let mut q = [0u8; 32];
        for j in 0..16 {
            let lo = (qs[j] & 0x0F) | ((((qh >> j) & 1) as u8) << 4);
            let hi = (qs[j] >> 4) | ((((qh >> (j + 16)) & 1) as u8) << 4);
            q[j] = (lo as i8 - 16) as u8;
            q[j + 16] = (hi as i8 - 16) as u8;
        }
        out.extend_from_slice(&q);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q5_0_converts_to_q8_0_exactly() {
        let device = Device::Cpu;
        let values: Vec<f32> = (0..256).map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0).collect();
        let src = Tensor::from_vec(values, (2, 128), &device).unwrap();
        let q5 = QTensor::quantize(&src, GgmlDType::Q5_0).unwrap();
        let q8 = QTensor::new(
            QStorage::from_data(Cow::Owned(q5_0_to_q8_0(&q5.data().unwrap())), &device, GgmlDType::Q8_0).unwrap(),
            q5.shape().clone(),
        )
        .unwrap();
        let a: Vec<f32> = q5.dequantize(&device).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f32> = q8.dequantize(&device).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(a, b);
    }
}

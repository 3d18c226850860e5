//! Reading a GGUF file: typed metadata lookups and tensors, re-quantized where the CPU lacks fast kernels.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use std::borrow::Cow;

use candle_core::quantized::k_quants::{BlockQ4K, BlockQ5K, BlockQ5_0, BlockQ6K, BlockQ8_0, GgmlType};
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
            let read = match self.read_in_place(&mut reader, name) {
                Ok(Some(t)) => Ok(t),
                Ok(None) => self.content.tensor(&mut *reader, name, &self.device).map_err(anyhow::Error::from),
                Err(e) => Err(e),
            };
            read.with_context(|| format!("{}: cannot read tensor {name}", self.path.display()))?
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

    /// A weight of a common type read from the file straight into the blocks it is kept in, on the CPU;
    /// `None` for other types and devices (candle's reader takes those). candle reads a tensor into a buffer
    /// and then copies it into its blocks, so each weight briefly took twice its size, and the largest one
    /// (the output projection) set the process's peak memory.
    fn read_in_place(&self, reader: &mut BufReader<File>, name: &str) -> Result<Option<QTensor>> {
        let Some(info) = self.content.tensor_infos.get(name) else { return Ok(None) };
        if !self.device.is_cpu() {
            return Ok(None);
        }
        let start = self.content.tensor_data_offset.saturating_add(info.offset);
        match info.ggml_dtype {
            GgmlDType::Q4K => read_blocks::<BlockQ4K>(reader, start, &info.shape),
            GgmlDType::Q5K => read_blocks::<BlockQ5K>(reader, start, &info.shape),
            GgmlDType::Q6K => read_blocks::<BlockQ6K>(reader, start, &info.shape),
            GgmlDType::Q8_0 => read_blocks::<BlockQ8_0>(reader, start, &info.shape),
            GgmlDType::Q5_0 => read_blocks::<BlockQ5_0>(reader, start, &info.shape),
            _ => Ok(None),
        }
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

/// The `shape` tensor of `T` blocks starting at byte `start` of the file, read into its final memory;
/// `None` when the shape is not whole blocks (candle's reader then says why). candle asserts at compile time
/// that each block type's size is the format's.
fn read_blocks<T: GgmlType + Send + Sync + 'static>(
    reader: &mut BufReader<File>,
    start: u64,
    shape: &candle_core::Shape,
) -> Result<Option<QTensor>> {
    let elems = shape.elem_count();
    if !elems.is_multiple_of(T::BLCK_SIZE) {
        return Ok(None);
    }
    let count = elems / T::BLCK_SIZE;
    let Some(len) = count.checked_mul(std::mem::size_of::<T>()) else {
        bail!("a tensor of {elems} values is larger than memory can hold");
    };
    let file_len = reader.seek(SeekFrom::End(0))?;
    if start.saturating_add(len as u64) > file_len {
        bail!("the tensor needs {len} bytes at offset {start}, past the end of the file ({file_len} bytes)");
    }
    let mut blocks = vec![T::zeros(); count];
    // SAFETY: candle's GGUF block types are `#[repr(C)]` structs of integers and f16s without padding
    // (their sizes, asserted by candle, are the format's block sizes), so every byte pattern is a valid
    // block and the vector's memory may be filled as bytes; the slice covers exactly the `count`
    // initialized blocks and is dropped before `blocks` is used again.
    let bytes = unsafe { std::slice::from_raw_parts_mut(blocks.as_mut_ptr() as *mut u8, len) };
    reader.seek(SeekFrom::Start(start))?;
    reader.read_exact(bytes)?;
    Ok(Some(QTensor::new(QStorage::Cpu(Box::new(blocks)), shape.clone())?))
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

    #[test]
    fn weights_read_in_place_equal_candles_reading_and_a_cut_file_is_an_error() {
        let device = Device::Cpu;
        let values: Vec<f32> = (0..2 * 512).map(|i| ((i * 53 % 211) as f32 - 100.0) / 13.0).collect();
        let src = Tensor::from_vec(values, (2, 512), &device).unwrap();
        // F32 goes through candle's reader; the last one, read in place, is the one the cut file loses.
        let types = [GgmlDType::F32, GgmlDType::Q4K, GgmlDType::Q5K, GgmlDType::Q6K, GgmlDType::Q8_0, GgmlDType::Q5_0];
        let tensors: Vec<(String, QTensor)> =
            types.iter().map(|&t| (format!("w.{t:?}"), QTensor::quantize(&src, t).unwrap())).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        let arch = gguf_file::Value::String("test".to_string());
        let mut f = std::fs::File::create(&path).unwrap();
        let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        gguf_file::write(&mut f, &[("general.architecture", &arch)], &refs).unwrap();
        drop(f);
        // Not re-quantized, so each tensor comes back as stored.
        let g = Gguf::open(&path, &device, false).unwrap();
        for (name, original) in &tensors {
            let mut reader = BufReader::new(File::open(&path).unwrap());
            let candle = g.content.tensor(&mut reader, name, &device).unwrap();
            let ours = g.qtensor(name).unwrap();
            assert_eq!((ours.dtype(), ours.shape()), (original.dtype(), original.shape()), "{name}");
            assert_eq!(ours.data().unwrap(), candle.data().unwrap(), "{name}");
        }
        // The file cut inside the last tensor: a clear error, not a short tensor.
        let len = std::fs::metadata(&path).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 100).unwrap();
        let err = g.qtensor(&tensors.last().unwrap().0).unwrap_err();
        assert!(format!("{err:#}").contains("past the end of the file"), "{err:#}");
    }
}

//! The x86 instruction-set levels the quantized kernels (`gemm`, `gemv`) are written for, found at run time.
//!
//! The release binary is built for x86-64-v3 (AVX2, FMA, F16C); the wider levels are chosen here, per CPU,
//! when the program runs. A [`Level`] can only be obtained from [`available`] (or [`best`], [`get`]), which
//! check the CPU first: holding one is the proof that the kernels' `#[target_feature]` functions may run,
//! so the safe functions that take a `Level` are sound whatever the caller passes.

/// The instruction sets with kernels, narrowest first. No CPU has AVX-512BW without VNNI and AVX-VNNI
/// together, so this order is also the order of preference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Isa {
    /// AVX2 + FMA + F16C (x86-64-v3): `maddubs` then `madd`.
    Avx2,
    /// The same registers with VEX-encoded `vpdpbusd`/`vpdpwssd` (Alder Lake and later, Zen 5).
    AvxVnni,
    /// AVX-512 F/BW/VL without VNNI (Skylake-SP): 512-bit `maddubs`.
    Avx512,
    /// AVX-512 with VNNI (Ice Lake and later, Zen 4 and later): 512-bit `vpdpbusd`.
    Avx512Vnni,
}

impl Isa {
    /// Every level, narrowest first (tests walk this and report the ones the CPU lacks as skipped).
    pub(crate) const ALL: [Isa; 4] = [Isa::Avx2, Isa::AvxVnni, Isa::Avx512, Isa::Avx512Vnni];

    #[cfg(target_arch = "x86_64")]
    fn detect(self) -> bool {
        let base =
            is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c");
        let avx512 = || {
            is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vl")
        };
        base && match self {
            Isa::Avx2 => true,
            Isa::AvxVnni => is_x86_feature_detected!("avxvnni"),
            Isa::Avx512 => avx512(),
            Isa::Avx512Vnni => avx512() && is_x86_feature_detected!("avx512vnni"),
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn detect(self) -> bool {
        false
    }
}

/// A SIMD level this CPU has: proof, for the kernels' `unsafe` code, that its instructions may run.
/// Its field is private, so no code outside this module can make one for a CPU that lacks the level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Level(Isa);

impl Level {
    pub(crate) fn isa(self) -> Isa {
        self.0
    }
}

/// Every level this CPU can run, narrowest first; empty off x86-64 and on CPUs without AVX2.
pub(crate) fn available() -> &'static [Level] {
    static LEVELS: std::sync::OnceLock<Vec<Level>> = std::sync::OnceLock::new();
    LEVELS.get_or_init(|| Isa::ALL.into_iter().filter(|isa| isa.detect()).map(Level).collect())
}

/// The widest level this CPU has (what the kernels use), or `None` without AVX2.
pub(crate) fn best() -> Option<Level> {
    available().last().copied()
}

/// `isa` when this CPU has it (tests select each level with this).
#[cfg(test)]
pub(crate) fn get(isa: Isa) -> Option<Level> {
    available().iter().copied().find(|l| l.0 == isa)
}

/// Every level for a test: the ones this CPU has, after printing the ones it lacks as skipped, so that a
/// level the test machine cannot run is reported, not silently counted as passed.
#[cfg(test)]
pub(crate) fn levels_for_test(test: &str) -> Vec<Level> {
    for isa in Isa::ALL {
        if get(isa).is_none() {
            eprintln!("{test}: {isa:?} skipped: this CPU does not have it");
        }
    }
    available().to_vec()
}

//! One GEMM as the device layer takes it: its shape and epilogue (`Shape`, the key of cuBLASLt's
//! plans and of GEMM tuning) and its device operands (`Operands`), checked against each other
//! before any library call.

use super::device::{DType, DevSlice};
use anyhow::{bail, Result};

/// What a GEMM does to its fp32 result before the one rounding to the storage type.
#[derive(Clone, Copy, Debug, Default, Hash, PartialEq, Eq)]
pub enum Epilogue {
    /// y = x · wᵀ.
    #[default]
    None,
    /// y = relu(x · wᵀ + bias), the bias (storage type, one per output column) added and the ReLU
    /// applied in fp32 (cuBLASLt's RELU_BIAS): HF's nn.Linear (one addmm, one rounding) then ReLU.
    ReluBias,
}

impl Epilogue {
    /// What the epilogue adds to a GEMM's name ("" for none): the kernel timer's and the selftest's.
    pub fn suffix(self) -> &'static str {
        match self {
            Epilogue::None => "",
            Epilogue::ReluBias => "+bias+relu",
        }
    }
}

/// One GEMM shape: y[rows × n] = x[rows × k] · w[n × k]ᵀ, row-major, then its epilogue.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct Shape {
    pub dt: DType,
    pub rows: usize,
    pub n: usize,
    pub k: usize,
    pub ep: Epilogue,
}

/// The device operands of one GEMM: `bias` (n elements) for an epilogue that adds one, else None.
#[derive(Clone, Copy)]
pub struct Operands<'a> {
    pub x: DevSlice<'a, u16>,
    pub w: DevSlice<'a, u16>,
    pub y: DevSlice<'a, u16>,
    pub bias: Option<DevSlice<'a, u16>>,
}

impl<'a> Operands<'a> {
    /// Operands of a GEMM without a bias.
    pub fn plain(x: DevSlice<'a, u16>, w: DevSlice<'a, u16>, y: DevSlice<'a, u16>) -> Self {
        Operands {
            x,
            w,
            y,
            bias: None,
        }
    }

    /// Every operand starts on a 256-byte boundary: cuBLASLt's heuristic assumes it (its default
    /// alignment preference), and no preference covers the bias.
    pub fn aligned(&self) -> bool {
        let b = self.bias.map_or(0, |b| b.addr());
        (self.x.addr() | self.w.addr() | self.y.addr() | b).is_multiple_of(256)
    }
}

impl Shape {
    /// A GEMM without an epilogue.
    pub fn plain(dt: DType, rows: usize, n: usize, k: usize) -> Shape {
        Shape {
            dt,
            rows,
            n,
            k,
            ep: Epilogue::None,
        }
    }

    /// The kernel timer's name: one per projection (the weight's n × k), whatever the row count.
    pub fn label(&self) -> String {
        match self.ep {
            Epilogue::None => format!("gemm {}x{}", self.n, self.k),
            ep => format!("gemm {}x{} {}", self.n, self.k, ep.suffix()),
        }
    }

    /// The operands hold the shape: x rows·k, w n·k, y rows·n elements (16-bit storage), and the
    /// bias n elements where the epilogue adds one (and only there).
    pub fn check(&self, o: &Operands<'_>) -> Result<()> {
        let (rows, n, k) = (self.rows, self.n, self.k);
        for (what, have, need) in [
            ("x", o.x.len(), rows * k),
            ("w", o.w.len(), n * k),
            ("y", o.y.len(), rows * n),
            ("bias", o.bias.map_or(n, |b| b.len()), n),
        ] {
            if have < need {
                bail!("GEMM {rows}x{n}x{k}: operand {what} holds {have} elements, {need} needed");
            }
        }
        match (self.ep, o.bias.is_some()) {
            (Epilogue::None, false) | (Epilogue::ReluBias, true) => Ok(()),
            (ep, has) => bail!(
                "GEMM {rows}x{n}x{k}: epilogue {ep:?} {} a bias",
                if has { "given" } else { "without" }
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Epilogue, Operands, Shape};
    use crate::engine::device::{fake_buf_at, DType, DevBuf};

    /// A bias is given exactly when the epilogue adds one, with at least n elements; the kernel
    /// timer names the fused GEMM apart from the plain one of the same weight.
    #[test]
    fn the_bias_goes_with_the_epilogue() {
        let (rows, n, k) = (3, 8, 4);
        let (x, w, y) = (
            fake_buf_at(0x7f00_0000_0000, rows * k * 2),
            fake_buf_at(0x7f10_0000_0000, n * k * 2),
            fake_buf_at(0x7f20_0000_0000, rows * n * 2),
        );
        let (bias, short) = (
            fake_buf_at(0x7f30_0000_0000, n * 2),
            fake_buf_at(0x7f40_0000_0000, (n - 1) * 2),
        );
        let plain = Shape::plain(DType::Bf16, rows, n, k);
        let fused = Shape {
            ep: Epilogue::ReluBias,
            ..plain
        };
        let o = Operands::plain(x.view(), w.view(), y.view());
        fn with<'a>(o: Operands<'a>, b: &'a DevBuf) -> Operands<'a> {
            Operands {
                bias: Some(b.view()),
                ..o
            }
        }
        assert!(plain.check(&o).is_ok());
        assert!(fused.check(&with(o, &bias)).is_ok());
        let e = format!("{:#}", plain.check(&with(o, &bias)).unwrap_err());
        assert!(e.contains("given a bias"), "{e}");
        let e = format!("{:#}", fused.check(&o).unwrap_err());
        assert!(e.contains("without a bias"), "{e}");
        let e = format!("{:#}", fused.check(&with(o, &short)).unwrap_err());
        assert!(e.contains("operand bias holds 7 elements, 8 needed"), "{e}");
        assert_eq!(plain.label(), "gemm 8x4");
        assert_eq!(fused.label(), "gemm 8x4 +bias+relu");
        assert!(with(o, &bias).aligned());
        let odd = fake_buf_at(0x7f30_0000_0010, n * 2);
        assert!(!with(o, &odd).aligned());
    }
}

//! TMA tensor maps of the KV cache for Hopper's attention kernels (prefill attention_ws.cu at hd 64,
//! 80 and 128, attention_ws256.cu at hd 256; decode attention_tcd.cu at hd 64, 128 and 256), on sm_90a.
//!
//! Their copies take whole pages (32 keys × 64 columns a box, ⌈hd / 64⌉ boxes per page of K or V)
//! with the copy engine into a 128-byte-swizzled layout (wgmma's; the decode kernel reads it with ldmatrix), so the copy engine
//! must be told where the cache is and how it is laid out. K and V are each described as a 2-D tensor of rows of `hd` 16-bit values
//! from a base address (the whole KV allocation in the engine, one buffer each in the selftest);
//! the kernel finds a layer's first row from its K/V pointer. The maps go into the kernels'
//! global `attention_kv_maps` before the launches that read them. At hd 80 a row is 160 bytes and
//! the box at column 64 ends past it: the copy engine fills columns 80..127 with zeros (outside the
//! map's bounds), which is the padding attention_ws computes hd 80 with (`attn_shapes::ws_hd`).

use super::device::{DevBuf, Device};
use anyhow::{bail, Result};
use cudarc::driver::sys as drv_sys;
use std::ffi::c_void;

/// Box of one copy: 64 columns (128 bytes, the swizzle's width) × 32 rows (one page).
const BOX: [u32; 2] = [64, 32];

/// Whether the prefill attention kernel for `hd` reads the KV cache through the tensor maps; the
/// decode kernel reads them at the same head dims (`attn_shapes::tcd_tma`).
pub fn needs_maps(dev: &Device, sx: &str, hd: usize) -> Result<bool> {
    Ok(dev.const_i32(&format!("attention_tc_tma_{sx}_{hd}"))? == 1)
}

/// Encode the map of `buf` as [rows][hd] 16-bit values (the type matters only for out-of-bounds
/// fill, which is zero bits here).
fn encode(buf: &DevBuf, hd: usize) -> Result<[u64; 16]> {
    let row = (hd * 2) as u64;
    let addr = buf.view::<u16>().addr();
    let rows = map_rows(addr, buf.bytes(), hd)?;
    let dims = [hd as u64, rows];
    let strides = [row];
    let elem = [1u32, 1];
    let mut m = drv_sys::CUtensorMap { opaque: [0; 16] };
    // SAFETY: the arrays have the rank's (2) entries (strides rank − 1); buf is a live allocation.
    let r = unsafe {
        drv_sys::cuTensorMapEncodeTiled(
            &mut m,
            drv_sys::CUtensorMapDataType::CU_TENSOR_MAP_DATA_TYPE_UINT16,
            2,
            addr as *mut c_void,
            dims.as_ptr(),
            strides.as_ptr(),
            BOX.as_ptr(),
            elem.as_ptr(),
            drv_sys::CUtensorMapInterleave::CU_TENSOR_MAP_INTERLEAVE_NONE,
            drv_sys::CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_128B,
            drv_sys::CUtensorMapL2promotion::CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
            drv_sys::CUtensorMapFloatOOBfill::CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
        )
    };
    if r != drv_sys::CUresult::CUDA_SUCCESS {
        bail!(
            "cuTensorMapEncodeTiled for the KV cache ({rows} rows of hd {hd} at {addr:#x}): {r:?}"
        );
    }
    Ok(m.opaque)
}

/// Rows of `hd` 16-bit values in `bytes` bytes at `addr`, if the copy engine can map them: the row
/// stride (the map's only one) and the address must be multiples of 16 bytes.
fn map_rows(addr: u64, bytes: usize, hd: usize) -> Result<u64> {
    let row = (hd * 2) as u64;
    if hd == 0
        || !row.is_multiple_of(16)
        || !(bytes as u64).is_multiple_of(row)
        || !addr.is_multiple_of(16)
    {
        bail!("KV tensor map: hd {hd} (a multiple of 8 expected), {bytes} bytes at {addr:#x} (whole rows of {row} bytes, 16-byte aligned expected)");
    }
    let rows = bytes as u64 / row;
    // The kernel addresses rows with 32-bit signed coordinates.
    if rows >= 1 << 31 {
        bail!("KV tensor map: {rows} rows of {row} bytes, more than the 2^31 a TMA coordinate reaches");
    }
    Ok(rows)
}

/// Point the kernels' `attention_kv_maps` at K in `k` and V in `v` (stream ordered: launches
/// queued before it still read the previous maps). Every K/V pointer a later launch passes must
/// lie in these buffers, a whole number of rows from their start.
pub fn set_maps(dev: &Device, k: &DevBuf, v: &DevBuf, hd: usize) -> Result<()> {
    // struct KvMaps (attention_ws.cu): the two 128-byte maps, then the two bases.
    let mut bytes = Vec::with_capacity(2 * 128 + 2 * 8);
    for w in encode(k, hd)?
        .iter()
        .chain(encode(v, hd)?.iter())
        .chain([k.view::<u16>().addr(), v.view::<u16>().addr()].iter())
    {
        bytes.extend_from_slice(&w.to_le_bytes());
    }
    dev.write_global("attention_kv_maps", &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The checks before the driver call: no GPU needed (made-up addresses).
    #[test]
    fn rejects_shapes_the_kernel_cannot_copy() {
        assert_eq!(map_rows(0x10000, 256 * 32, 128).unwrap(), 32);
        assert_eq!(map_rows(0x10000, 512 * 32, 256).unwrap(), 32); // hd 256: 4 boxes a page
        assert_eq!(map_rows(0x10000, 160 * 32, 80).unwrap(), 32); // 160-byte rows, 2 boxes a page
        assert!(map_rows(0x10000, 256 * 32, 80).is_err()); // not whole rows of 160 bytes
        let e = map_rows(0x10000, 40 * 32, 20).unwrap_err().to_string();
        assert!(e.contains("hd 20"), "{e}");
        let e = map_rows(0x10000, 256 * 32 + 2, 128)
            .unwrap_err()
            .to_string();
        assert!(e.contains("whole rows of 256 bytes"), "{e}");
        assert!(map_rows(0x10008, 256 * 32, 128).is_err());
    }
}

//! Where one iteration's kernels find their inputs inside the engine's allocations: the regions
//! of the metadata buffer and a layer's part of the KV cache, as bounds-checked kernel pointers.

use super::attn_item::AttnItem;
use super::device::{DevBuf, DevPtr};
use super::forward::MetaLayout;
use super::launches::Half;
use anyhow::Result;

/// The regions of the metadata buffer (`MetaLayout`, offsets in ints) as kernel pointers.
pub(super) struct MetaPtrs {
    pub(super) src: DevPtr<i32>,
    pub(super) pos: DevPtr<i32>,
    pub(super) slot: DevPtr<i32>,
    pub(super) pitems: DevPtr<AttnItem>,
    pub(super) ditems: DevPtr<AttnItem>,
    pub(super) comb: DevPtr<i32>,
    pub(super) srows: DevPtr<i32>,
    pub(super) sdst: DevPtr<i32>,
    pub(super) sslot: DevPtr<i32>,
}

impl MetaPtrs {
    pub(super) fn new(meta: &DevBuf, l: &MetaLayout) -> Result<MetaPtrs> {
        let ints = |o: usize| meta.dptr_at::<i32>(o);
        // The item regions start at an int offset, not a whole number of items into the buffer.
        let items = |o: usize| meta.dptr_at_byte::<AttnItem>(o * std::mem::size_of::<i32>());
        Ok(MetaPtrs {
            src: ints(l.src)?,
            pos: ints(l.pos)?,
            slot: ints(l.slot)?,
            pitems: items(l.pitems)?,
            ditems: items(l.ditems)?,
            comb: ints(l.comb)?,
            srows: ints(l.srows)?,
            sdst: ints(l.sdst)?,
            sslot: ints(l.sslot)?,
        })
    }
}

/// Layer l's K and V caches: the KV allocation holds K0, V0, K1, V1, … of `kv_elems` each.
pub(super) fn kv_caches(
    kv: &DevBuf,
    l: usize,
    kv_elems: usize,
) -> Result<(DevPtr<Half>, DevPtr<Half>)> {
    let k = kv.dptr_at::<Half>(2 * l * kv_elems)?;
    let v = kv.dptr_at::<Half>((2 * l + 1) * kv_elems)?;
    Ok((k, v))
}

#[cfg(test)]
mod tests {
    use super::super::device::fake_buf;
    use super::super::scheduler::PAGE_SIZE;
    use super::*;

    // The pointers are the buffer's start plus the byte offsets the kernels expect: each metadata
    // region 4 bytes per int of its MetaLayout offset, as `Model::forward` uploads them.
    #[test]
    fn metadata_pointers_are_the_layouts_int_offsets() {
        let l = MetaLayout::new(96, 5);
        let meta = fake_buf(l.total * 4);
        let base = meta.dptr::<i32>().addr();
        let m = MetaPtrs::new(&meta, &l).unwrap();
        let at = |o: usize| base + (o * 4) as u64;
        for (p, o) in [
            (m.src, l.src),
            (m.pos, l.pos),
            (m.slot, l.slot),
            (m.comb, l.comb),
            (m.srows, l.srows),
            (m.sdst, l.sdst),
            (m.sslot, l.sslot),
        ] {
            assert_eq!(p.addr(), at(o));
        }
        assert_eq!(m.pitems.addr(), at(l.pitems));
        assert_eq!(m.ditems.addr(), at(l.ditems));
        // A buffer that ends where the last region starts leaves it no room.
        let short = fake_buf(l.sslot * 4);
        let e = format!("{:#}", MetaPtrs::new(&short, &l).err().unwrap());
        assert!(e.contains("run past its end"), "{e}");
    }

    // One layer's K then V cache of 2-byte elements, layer after layer, as `Engine::new` sizes
    // the allocation (2 · layers · kv_heads · PAGE_SIZE · hd · 2 bytes a page); past the last
    // layer is an error, not a pointer into the next allocation.
    #[test]
    fn kv_caches_are_a_layers_k_then_v_in_the_allocation() {
        let (pages, layers, kv_heads, hd) = (7, 3, 2, 64);
        let kv = fake_buf(pages * 2 * layers * kv_heads * PAGE_SIZE * hd * 2);
        let base = kv.dptr::<Half>().addr();
        let elems = pages * kv_heads * PAGE_SIZE * hd;
        let page_bytes = (elems * 2) as u64;
        for l in 0..layers {
            let (k, v) = kv_caches(&kv, l, elems).unwrap();
            assert_eq!(k.addr(), base + (2 * l) as u64 * page_bytes);
            assert_eq!(v.addr(), k.addr() + page_bytes);
        }
        assert!(kv_caches(&kv, layers, elems).is_err());
    }
}

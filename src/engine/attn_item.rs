//! The attention work item, the one structure the host writes for the kernels to read: one
//! block's tile of consecutive query tokens of one sequence and its key range (attention.cu's
//! header says how the kernels use each field). The kernels declare the same struct
//! (`struct AttnItem` in kernels/attention.cu) and index an array of them by block; both sides
//! check its size, and the test below checks that the fields come in the same order.

/// One attention work item, laid out as kernels/attention.cu's `AttnItem` (six `int`s, no padding).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttnItem {
    /// First query token (row of the iteration's token arrays).
    pub q_tok: i32,
    /// Query tokens in the item.
    pub q_cnt: i32,
    /// Sequence slot (row of the block table).
    pub slot: i32,
    /// First key position, a multiple of the 32-token page.
    pub key_begin: i32,
    /// One past the last key position (cut at the last query's position by the kernels).
    pub key_end: i32,
    /// Split index of a decode query over its context (partials for attn_combine), or -1.
    pub part: i32,
}

const _: () = assert!(
    std::mem::size_of::<AttnItem>() == AttnItem::INTS * 4 && std::mem::align_of::<AttnItem>() == 4,
    "AttnItem must be six packed i32, as the kernels read it"
);

impl AttnItem {
    /// `i32`s per item in the metadata buffer.
    pub const INTS: usize = 6;

    /// The fields in the kernels' order.
    pub fn ints(&self) -> [i32; Self::INTS] {
        [
            self.q_tok,
            self.q_cnt,
            self.slot,
            self.key_begin,
            self.key_end,
            self.part,
        ]
    }

    /// Items as the `i32`s the metadata buffer holds, field by field (no reinterpretation).
    pub fn flatten(items: &[AttnItem]) -> Vec<i32> {
        items.iter().flat_map(|i| i.ints()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::AttnItem;

    /// The kernels' struct has the host's fields, in the host's order.
    #[test]
    fn kernel_struct_matches_the_host_layout() {
        let src = include_str!("kernels/attention.cu");
        let body = src
            .split("struct AttnItem {")
            .nth(1)
            .and_then(|s| s.split("};").next())
            .expect("struct AttnItem in attention.cu");
        let fields: Vec<&str> = body
            .trim()
            .trim_start_matches("int ")
            .trim_end_matches(';')
            .split(',')
            .map(str::trim)
            .collect();
        assert_eq!(
            fields,
            ["q_tok", "q_cnt", "slot", "key_begin", "key_end", "part"]
        );
        assert!(src.contains("static_assert(sizeof(AttnItem) == 24"));
    }

    /// Flattening keeps each item's fields in order, items one after the other.
    #[test]
    fn flatten_writes_fields_in_kernel_order() {
        let a = AttnItem {
            q_tok: 1,
            q_cnt: 2,
            slot: 3,
            key_begin: 32,
            key_end: 40,
            part: -1,
        };
        let b = AttnItem { part: 7, ..a };
        assert_eq!(
            AttnItem::flatten(&[a, b]),
            [1, 2, 3, 32, 40, -1, 1, 2, 3, 32, 40, 7]
        );
    }
}

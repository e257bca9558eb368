//! ggml's tensor types: the table of ids and block geometry that sizes every tensor of a
//! file, whether or not `dequant.rs` has a kernel for its type.

use std::fmt;

/// ggml tensor types, with the block geometry needed to size any of them even when this
/// reader cannot dequantise it.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    Q8_K,
    IQ2_XXS,
    IQ2_XS,
    IQ3_XXS,
    IQ1_S,
    IQ4_NL,
    IQ3_S,
    IQ2_S,
    IQ4_XS,
    I8,
    I16,
    I32,
    I64,
    F64,
    IQ1_M,
    BF16,
    TQ1_0,
    TQ2_0,
    MXFP4,
}

/// `(ggml id, type, elements per block, bytes per block)`, from ggml's `type_traits`, in the
/// declaration order of [`GgmlType`] so a variant indexes its own row.
const GGML_TYPES: [(u32, GgmlType, usize, usize); 32] = [
    (0, GgmlType::F32, 1, 4),
    (1, GgmlType::F16, 1, 2),
    (2, GgmlType::Q4_0, 32, 18),
    (3, GgmlType::Q4_1, 32, 20),
    (6, GgmlType::Q5_0, 32, 22),
    (7, GgmlType::Q5_1, 32, 24),
    (8, GgmlType::Q8_0, 32, 34),
    (9, GgmlType::Q8_1, 32, 40),
    (10, GgmlType::Q2_K, 256, 84),
    (11, GgmlType::Q3_K, 256, 110),
    (12, GgmlType::Q4_K, 256, 144),
    (13, GgmlType::Q5_K, 256, 176),
    (14, GgmlType::Q6_K, 256, 210),
    (15, GgmlType::Q8_K, 256, 292),
    (16, GgmlType::IQ2_XXS, 256, 66),
    (17, GgmlType::IQ2_XS, 256, 74),
    (18, GgmlType::IQ3_XXS, 256, 98),
    (19, GgmlType::IQ1_S, 256, 50),
    (20, GgmlType::IQ4_NL, 32, 18),
    (21, GgmlType::IQ3_S, 256, 110),
    (22, GgmlType::IQ2_S, 256, 82),
    (23, GgmlType::IQ4_XS, 256, 136),
    (24, GgmlType::I8, 1, 1),
    (25, GgmlType::I16, 1, 2),
    (26, GgmlType::I32, 1, 4),
    (27, GgmlType::I64, 1, 8),
    (28, GgmlType::F64, 1, 8),
    (29, GgmlType::IQ1_M, 256, 56),
    (30, GgmlType::BF16, 1, 2),
    (34, GgmlType::TQ1_0, 256, 54),
    (35, GgmlType::TQ2_0, 256, 66),
    (39, GgmlType::MXFP4, 32, 17),
];

impl GgmlType {
    pub(super) fn from_id(id: u32) -> Option<Self> {
        GGML_TYPES
            .iter()
            .find(|entry| entry.0 == id)
            .map(|entry| entry.1)
    }

    /// The table row of this type; `GGML_TYPES` lists the variants in declaration order.
    fn traits(self) -> (u32, GgmlType, usize, usize) {
        GGML_TYPES[self as usize]
    }

    /// ggml's numeric id for the type, as stored in the tensor table.
    pub fn id(self) -> u32 {
        self.traits().0
    }

    /// Elements per quantisation block (1 for plain float/int types).
    pub fn block_size(self) -> usize {
        self.traits().2
    }

    /// Bytes per quantisation block.
    pub fn block_bytes(self) -> usize {
        self.traits().3
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::{GGML_TYPES, GgmlType};

    #[test]
    fn ggml_type_table_matches_declaration_order() {
        for (index, &(id, ty, ..)) in GGML_TYPES.iter().enumerate() {
            assert_eq!(ty as usize, index, "{ty}");
            assert_eq!(GgmlType::from_id(id), Some(ty));
            assert_eq!(ty.id(), id);
        }
        assert_eq!(
            (GgmlType::Q4_1.block_size(), GgmlType::Q4_1.block_bytes()),
            (32, 20)
        );
        assert_eq!(
            (GgmlType::Q6_K.block_size(), GgmlType::Q6_K.block_bytes()),
            (256, 210)
        );
    }
}

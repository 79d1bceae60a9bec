//! Attribute numbers from `linux/netfilter/nf_tables.h`, grouped by the
//! attribute family they belong to. Used by the decoder, which reads the
//! kernel's bytes itself (see `nla.rs` for why).

/// `NFT_MSG_*` message types (low byte of `nlmsg_type`).
pub mod msg {
    pub const NEWTABLE: u8 = 0;
    pub const NEWCHAIN: u8 = 3;
    pub const NEWRULE: u8 = 6;
    pub const NEWSET: u8 = 9;
    pub const NEWSETELEM: u8 = 12;
    pub const DELSETELEM: u8 = 14;
    pub const NEWGEN: u8 = 15;
}

/// `enum nft_table_attributes`
pub mod table {
    pub const NAME: u16 = 1;
    pub const USERDATA: u16 = 6;
}

/// `enum nft_chain_attributes` and `enum nft_hook_attributes`
pub mod chain {
    pub const TABLE: u16 = 1;
    pub const NAME: u16 = 3;
    pub const HOOK: u16 = 4;
    pub const POLICY: u16 = 5;
    pub const HOOK_HOOKNUM: u16 = 1;
    pub const HOOK_PRIORITY: u16 = 2;
}

/// `enum nft_rule_attributes`
pub mod rule {
    pub const TABLE: u16 = 1;
    pub const CHAIN: u16 = 2;
    pub const HANDLE: u16 = 3;
    pub const EXPRESSIONS: u16 = 4;
    pub const USERDATA: u16 = 7;
}

/// `enum nft_set_attributes`
pub mod set {
    pub const TABLE: u16 = 1;
    pub const NAME: u16 = 2;
    pub const FLAGS: u16 = 3;
    pub const KEY_TYPE: u16 = 4;
    pub const DATA_TYPE: u16 = 6;
    pub const DESC: u16 = 9;
    pub const USERDATA: u16 = 13;
    /// `NFTA_SET_DESC_SIZE`, inside `NFTA_SET_DESC`.
    pub const DESC_SIZE: u16 = 1;
    /// `NFT_SET_INTERVAL`
    pub const F_INTERVAL: u32 = 0x4;
    /// `NFT_SET_MAP`: each element carries data (here, a verdict).
    pub const F_MAP: u32 = 0x8;
    /// `NFT_SET_EVAL`: the packet path adds elements (nft's `dynamic`).
    pub const F_EVAL: u32 = 0x20;
}

/// `enum nft_set_elem_list_attributes` and `enum nft_set_elem_attributes`
pub mod elem {
    pub const LIST_TABLE: u16 = 1;
    pub const LIST_SET: u16 = 2;
    pub const LIST_ELEMENTS: u16 = 3;
    pub const KEY: u16 = 1;
    pub const DATA: u16 = 2;
    pub const FLAGS: u16 = 3;
    /// `NFT_SET_ELEM_INTERVAL_END`
    pub const F_INTERVAL_END: u32 = 0x1;
}

/// `enum nft_list_attributes`, `enum nft_expr_attributes`,
/// `enum nft_data_attributes`, `enum nft_verdict_attributes`
pub mod list {
    pub const EXPR_NAME: u16 = 1;
    pub const EXPR_DATA: u16 = 2;
    pub const DATA_VALUE: u16 = 1;
    pub const DATA_VERDICT: u16 = 2;
    pub const VERDICT_CODE: u16 = 1;
    pub const VERDICT_CHAIN: u16 = 2;
}

/// `enum nft_gen_attributes`
pub mod gen {
    pub const ID: u16 = 1;
}

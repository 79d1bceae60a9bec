//! Typed nftables expressions: the subset trafficjam builds and reads back.
//!
//! Each variant mirrors one kernel expression type (`NFTA_EXPR_NAME`) with
//! its attributes. Anything the kernel returns that trafficjam does not
//! build is kept as [`Expr::Unknown`] so that a comparison with the desired
//! rules fails instead of silently matching.

use std::fmt;

/// An nftables data register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Register {
    /// `NFT_REG_VERDICT` (0).
    Verdict,
    /// One of the 16-byte registers `NFT_REG_1`..`NFT_REG_4`, or a
    /// 4-byte register `NFT_REG32_00`.. (kept as the raw number).
    Reg(u32),
}

impl Register {
    /// `NFT_REG_1`, where nft loads the first operand of a match.
    pub const R1: Register = Register::Reg(1);

    /// The register nft uses for the part of a key that starts `offset`
    /// bytes into the register file: a 16-byte register (`NFT_REG_1`..)
    /// where the offset allows one, else a 4-byte one (`NFT_REG32_00` = 8).
    pub fn at_offset(offset: usize) -> Register {
        let n = if offset % 16 == 0 {
            1 + offset / 16
        } else {
            8 + offset / 4
        };
        Register::Reg(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Where the register starts in the register file, in bytes (`None`
    /// for the verdict register and numbers the kernel does not have).
    pub fn offset(self) -> Option<usize> {
        match self {
            Register::Reg(n @ 1..=4) => Some((n as usize - 1) * 16),
            Register::Reg(n @ 8..=23) => Some((n as usize - 8) * 4),
            _ => None,
        }
    }

    /// The raw register number sent to the kernel.
    pub fn number(self) -> u32 {
        match self {
            Register::Verdict => 0,
            Register::Reg(n) => n,
        }
    }

    /// The register for a raw number.
    pub fn from_number(n: u32) -> Register {
        if n == 0 {
            Register::Verdict
        } else {
            Register::Reg(n)
        }
    }
}

/// Where a payload expression reads from (`enum nft_payload_bases`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadBase {
    /// `NFT_PAYLOAD_LL_HEADER`
    Link,
    /// `NFT_PAYLOAD_NETWORK_HEADER`
    Network,
    /// `NFT_PAYLOAD_TRANSPORT_HEADER`
    Transport,
}

impl PayloadBase {
    /// The raw base number.
    pub fn number(self) -> u32 {
        match self {
            PayloadBase::Link => 0,
            PayloadBase::Network => 1,
            PayloadBase::Transport => 2,
        }
    }

    /// The base for a raw number.
    pub fn from_number(n: u32) -> Option<PayloadBase> {
        Some(match n {
            0 => PayloadBase::Link,
            1 => PayloadBase::Network,
            2 => PayloadBase::Transport,
            _ => return None,
        })
    }
}

/// Comparison operator of a `cmp` expression (`enum nft_cmp_ops`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `NFT_CMP_EQ`
    Eq,
    /// `NFT_CMP_NEQ`
    Neq,
    /// `NFT_CMP_LT`
    Lt,
    /// `NFT_CMP_LTE`
    Lte,
    /// `NFT_CMP_GT`
    Gt,
    /// `NFT_CMP_GTE`
    Gte,
}

impl CmpOp {
    /// The raw operator number.
    pub fn number(self) -> u32 {
        match self {
            CmpOp::Eq => 0,
            CmpOp::Neq => 1,
            CmpOp::Lt => 2,
            CmpOp::Lte => 3,
            CmpOp::Gt => 4,
            CmpOp::Gte => 5,
        }
    }

    /// The operator for a raw number.
    pub fn from_number(n: u32) -> Option<CmpOp> {
        Some(match n {
            0 => CmpOp::Eq,
            1 => CmpOp::Neq,
            2 => CmpOp::Lt,
            3 => CmpOp::Lte,
            4 => CmpOp::Gt,
            5 => CmpOp::Gte,
            _ => return None,
        })
    }
}

/// Keys of the `meta` expression trafficjam uses (`enum nft_meta_keys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetaKey {
    /// `NFT_META_PROTOCOL`: the ethertype.
    Protocol,
    /// `NFT_META_L4PROTO`: the transport protocol number.
    L4Proto,
    /// `NFT_META_IIFNAME`
    IifName,
    /// `NFT_META_OIFNAME`
    OifName,
    /// `NFT_META_NFPROTO`: the family of the packet in an `inet` table.
    NfProto,
    /// Any other key, by number.
    Other(u32),
}

impl MetaKey {
    /// The raw key number.
    pub fn number(self) -> u32 {
        match self {
            MetaKey::Protocol => 1,
            MetaKey::IifName => 6,
            MetaKey::OifName => 7,
            MetaKey::NfProto => 15,
            MetaKey::L4Proto => 16,
            MetaKey::Other(n) => n,
        }
    }

    /// The key for a raw number.
    pub fn from_number(n: u32) -> MetaKey {
        match n {
            1 => MetaKey::Protocol,
            6 => MetaKey::IifName,
            7 => MetaKey::OifName,
            15 => MetaKey::NfProto,
            16 => MetaKey::L4Proto,
            n => MetaKey::Other(n),
        }
    }
}

/// Keys of the `ct` expression trafficjam uses (`enum nft_ct_keys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CtKey {
    /// `NFT_CT_STATE`: a bitmask of `NF_CT_STATE_*` bits.
    State,
    /// `NFT_CT_STATUS`: the connection's `IPS_*` status bits (e.g. DNAT).
    Status,
    /// Any other key, by number.
    Other(u32),
}

impl CtKey {
    /// The raw key number.
    pub fn number(self) -> u32 {
        match self {
            CtKey::State => 0,
            CtKey::Status => 2,
            CtKey::Other(n) => n,
        }
    }

    /// The key for a raw number.
    pub fn from_number(n: u32) -> CtKey {
        match n {
            0 => CtKey::State,
            2 => CtKey::Status,
            n => CtKey::Other(n),
        }
    }
}

/// A verdict, as carried by an `immediate` expression or a chain policy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// `NF_ACCEPT`
    Accept,
    /// `NF_DROP`
    Drop,
    /// `NFT_CONTINUE`
    Continue,
    /// `NFT_RETURN`
    Return,
    /// `NFT_JUMP` to the named chain.
    Jump(String),
    /// `NFT_GOTO` the named chain.
    Goto(String),
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Accept => f.write_str("accept"),
            Verdict::Drop => f.write_str("drop"),
            Verdict::Continue => f.write_str("continue"),
            Verdict::Return => f.write_str("return"),
            Verdict::Jump(c) => write!(f, "jump {c}"),
            Verdict::Goto(c) => write!(f, "goto {c}"),
        }
    }
}

/// The `bitwise` expression in its mask-and-xor form:
/// `dreg = (sreg & mask) ^ xor`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bitwise {
    /// Source register.
    pub sreg: Register,
    /// Destination register.
    pub dreg: Register,
    /// Number of bytes operated on.
    pub len: u32,
    /// The mask, `len` bytes.
    pub mask: Vec<u8>,
    /// The xor value, `len` bytes.
    pub xor: Vec<u8>,
}

/// What a `dynset` expression does with its key (`enum nft_dynset_ops`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DynsetOp {
    /// `NFT_DYNSET_OP_ADD`: add the key if it is missing.
    Add,
    /// `NFT_DYNSET_OP_UPDATE`: add the key, or refresh its timeout.
    Update,
    /// `NFT_DYNSET_OP_DELETE`: remove the key.
    Delete,
}

impl DynsetOp {
    /// The raw operation number.
    pub fn number(self) -> u32 {
        match self {
            DynsetOp::Add => 0,
            DynsetOp::Update => 1,
            DynsetOp::Delete => 2,
        }
    }

    /// The operation for a raw number.
    pub fn from_number(n: u32) -> Option<DynsetOp> {
        Some(match n {
            0 => DynsetOp::Add,
            1 => DynsetOp::Update,
            2 => DynsetOp::Delete,
            _ => return None,
        })
    }
}

/// One nftables expression.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Expr {
    /// `payload`: load `len` bytes at `offset` from `base` into `dreg`.
    Payload {
        /// Header to read from.
        base: PayloadBase,
        /// Byte offset inside that header.
        offset: u32,
        /// Number of bytes.
        len: u32,
        /// Destination register.
        dreg: Register,
    },
    /// `cmp`: compare `sreg` with `data`; on mismatch the rule stops.
    Cmp {
        /// Register compared.
        sreg: Register,
        /// Operator.
        op: CmpOp,
        /// Value compared with (network byte order as loaded).
        data: Vec<u8>,
    },
    /// `bitwise` mask/xor.
    Bitwise(Bitwise),
    /// `meta`: load packet metadata into `dreg`.
    Meta {
        /// Which metadata.
        key: MetaKey,
        /// Destination register.
        dreg: Register,
    },
    /// `ct`: load conntrack data into `dreg`.
    Ct {
        /// Which conntrack field.
        key: CtKey,
        /// Destination register.
        dreg: Register,
    },
    /// `lookup`: match if `sreg` is an element of the named set.
    Lookup {
        /// Set name.
        set: String,
        /// Register holding the key.
        sreg: Register,
        /// Invert the match (`!= @set`).
        invert: bool,
    },
    /// `lookup` into the verdict register (`iifname vmap @roles`): the
    /// verdict of the map's element whose key is in `sreg` ends the rule;
    /// without one, the rule goes on.
    VerdictMap {
        /// Map name.
        set: String,
        /// Register holding the key.
        sreg: Register,
    },
    /// `dynset`: add or refresh the key in `sreg` (and the registers after
    /// it) in a dynamic set, from the packet path. This is how trafficjam
    /// remembers the flows a whitelisted port opened where the kernel has no
    /// conntrack for bridged frames.
    Dynset {
        /// Set name.
        set: String,
        /// What to do with the key.
        op: DynsetOp,
        /// First register of the key.
        sreg: Register,
        /// The element's timeout, in milliseconds.
        timeout_ms: Option<u64>,
    },
    /// `immediate` with a verdict: ends the rule with this verdict.
    Verdict(Verdict),
    /// `counter`: count packets and bytes. The values are what the kernel
    /// reported; they are ignored when rulesets are compared.
    Counter {
        /// Packets counted.
        packets: u64,
        /// Bytes counted.
        bytes: u64,
    },
    /// `limit`: match while under `rate` packets per `unit` seconds, with
    /// `burst` packets of slack (a packet-count limit, not inverted).
    Limit {
        /// Packets per unit.
        rate: u64,
        /// The unit, in seconds.
        unit: u64,
        /// Burst, in packets.
        burst: u32,
    },
    /// `log`: send the packet to the NFLOG group with this prefix.
    Log {
        /// The NFLOG (nfnetlink_log) group.
        group: u16,
        /// The prefix carried with every logged packet.
        prefix: String,
    },
    /// An expression trafficjam does not model, kept by name so that a
    /// foreign change to a rule is visible as a difference.
    Unknown {
        /// `NFTA_EXPR_NAME` as the kernel reported it.
        name: String,
    },
}

impl Expr {
    /// The kernel's name for this expression type (`NFTA_EXPR_NAME`).
    pub fn kind(&self) -> &str {
        match self {
            Expr::Payload { .. } => "payload",
            Expr::Cmp { .. } => "cmp",
            Expr::Bitwise(_) => "bitwise",
            Expr::Meta { .. } => "meta",
            Expr::Ct { .. } => "ct",
            Expr::Lookup { .. } | Expr::VerdictMap { .. } => "lookup",
            Expr::Dynset { .. } => "dynset",
            Expr::Verdict(_) => "immediate",
            Expr::Counter { .. } => "counter",
            Expr::Limit { .. } => "limit",
            Expr::Log { .. } => "log",
            Expr::Unknown { name } => name,
        }
    }

    /// The same expression with runtime state (counter values) zeroed, for
    /// comparing a kernel dump with the desired rules.
    pub fn without_state(&self) -> Expr {
        match self {
            Expr::Counter { .. } => Expr::Counter {
                packets: 0,
                bytes: 0,
            },
            e => e.clone(),
        }
    }
}

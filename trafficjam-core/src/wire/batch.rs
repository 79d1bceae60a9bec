//! One NFNETLINK transaction: `BATCH_BEGIN`, the messages, `BATCH_END`.
//!
//! The kernel applies a batch all or nothing. Every inner message carries
//! `NLM_F_ACK` and its own sequence number, and the batch remembers which
//! object each sequence number describes, so that an error from the kernel
//! can be reported as "the kernel refused *this* set" rather than as a bare
//! errno.

use std::fmt;

use netlink_packet_core::{
    DefaultNla, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_REQUEST,
};
use netlink_packet_netfilter::{
    nftables::NfTablesMessage, none::ControlMessage, NetfilterHeader, NetfilterMessage,
    NetfilterProtoFamily,
};

use crate::model::Family;

/// `NFNL_SUBSYS_NFTABLES`, carried as `res_id` of the batch delimiters.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NFNL_MSG_BATCH_BEGIN`
const NFNL_MSG_BATCH_BEGIN: u8 = 16;
/// `NFNL_BATCH_GENID`: attribute of `BATCH_BEGIN`.
const NFNL_BATCH_GENID: u16 = 1;

/// The object a message of a batch creates, changes or deletes, for error
/// messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectRef {
    /// The batch delimiters themselves.
    Batch,
    /// A table.
    Table {
        /// Family of the table.
        family: Family,
        /// Name of the table.
        name: String,
    },
    /// A chain.
    Chain {
        /// Family of the table.
        family: Family,
        /// Name of the table.
        table: String,
        /// Name of the chain.
        name: String,
    },
    /// A rule, by position in its chain.
    Rule {
        /// Family of the table.
        family: Family,
        /// Name of the table.
        table: String,
        /// Name of the chain.
        chain: String,
        /// Zero-based position of the rule in the chain.
        index: usize,
    },
    /// A set.
    Set {
        /// Family of the table.
        family: Family,
        /// Name of the table.
        table: String,
        /// Name of the set.
        name: String,
    },
    /// Elements added to or removed from a set.
    SetElements {
        /// Family of the table.
        family: Family,
        /// Name of the table.
        table: String,
        /// Name of the set.
        set: String,
        /// How many elements the message carries.
        count: usize,
    },
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectRef::Batch => f.write_str("the batch"),
            ObjectRef::Table { family, name } => write!(f, "table {family} {name}"),
            ObjectRef::Chain {
                family,
                table,
                name,
            } => write!(f, "chain {family} {table} {name}"),
            ObjectRef::Rule {
                family,
                table,
                chain,
                index,
            } => write!(f, "rule #{} of chain {family} {table} {chain}", index + 1),
            ObjectRef::Set {
                family,
                table,
                name,
            } => write!(f, "set {family} {table} {name}"),
            ObjectRef::SetElements {
                family,
                table,
                set,
                count,
            } => write!(f, "{count} element(s) of set {family} {table} {set}"),
        }
    }
}

/// One message of a batch: its sequence number and what it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchEntry {
    /// The sequence number the message was sent with.
    pub seq: u32,
    /// The object the message is about.
    pub object: ObjectRef,
    /// Byte offset of the message inside [`Batch::bytes`].
    pub offset: usize,
}

/// A complete NFNETLINK batch, ready to be written to a netfilter socket
/// with a single `sendmsg`.
///
/// Sequence numbers are consecutive from the number given to
/// [`Batch::new`]: `BATCH_BEGIN` has the first, each inner message the
/// next, `BATCH_END` the last.
#[derive(Debug, Clone)]
pub struct Batch {
    bytes: Vec<u8>,
    entries: Vec<BatchEntry>,
    next_seq: u32,
    /// Sets created in this batch and their transaction-local ids. Like
    /// nft, ids are numbered across the whole batch from 1: an id names
    /// one set of the transaction, whatever table it is in.
    set_ids: Vec<((Family, String, String), u32)>,
}

impl Batch {
    /// A batch whose `BATCH_BEGIN` has sequence number `first_seq`.
    pub fn new(first_seq: u32) -> Batch {
        Batch::begin(first_seq, ControlMessage::BatchBegin)
    }

    /// A batch the kernel applies only if the ruleset is still at
    /// generation `genid` (`NFNL_BATCH_GENID`); otherwise it refuses the
    /// whole batch with `ERESTART`. This turns "read the state, compute the
    /// change, send it" into a compare-and-swap: a change made by someone
    /// else in between is never overwritten blindly.
    pub fn with_generation(first_seq: u32, genid: u32) -> Batch {
        Batch::begin(
            first_seq,
            ControlMessage::Other {
                message_type: NFNL_MSG_BATCH_BEGIN,
                attributes: vec![DefaultNla::new(
                    NFNL_BATCH_GENID,
                    genid.to_be_bytes().to_vec(),
                )],
            },
        )
    }

    fn begin(first_seq: u32, begin: ControlMessage) -> Batch {
        let mut batch = Batch {
            bytes: Vec::with_capacity(4096),
            entries: Vec::new(),
            next_seq: first_seq,
            set_ids: Vec::new(),
        };
        batch.push_control(begin);
        batch
    }

    /// Append an nf_tables message about `object`. `flags` are added to
    /// `NLM_F_REQUEST | NLM_F_ACK` (e.g. `NLM_F_CREATE`).
    pub fn push(
        &mut self,
        family: Family,
        message: NfTablesMessage,
        flags: u16,
        object: ObjectRef,
    ) {
        let seq = self.next_seq;
        let offset = self.bytes.len();
        let header = NetfilterHeader::new(family_header(family), 0, 0);
        self.emit(
            NetfilterMessage::new(header, message),
            NLM_F_REQUEST | NLM_F_ACK | flags,
        );
        self.entries.push(BatchEntry {
            seq,
            object,
            offset,
        });
    }

    /// Close the batch with `BATCH_END` and return the finished transaction.
    pub fn finish(mut self) -> Transaction {
        self.push_control(ControlMessage::BatchEnd);
        Transaction {
            bytes: self.bytes,
            entries: self.entries,
        }
    }

    /// A new transaction-local id for set `set` of table `table`, created
    /// in this batch.
    pub fn new_set_id(&mut self, family: Family, table: &str, set: &str) -> u32 {
        let id = u32::try_from(self.set_ids.len() + 1).unwrap_or(u32::MAX);
        self.set_ids
            .push(((family, table.to_string(), set.to_string()), id));
        id
    }

    /// The id of a set created earlier in this batch, if it was.
    pub fn set_id(&self, family: Family, table: &str, set: &str) -> Option<u32> {
        self.set_ids
            .iter()
            .find(|((f, t, s), _)| *f == family && t == table && s == set)
            .map(|(_, id)| *id)
    }

    /// Number of nf_tables messages pushed so far.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no nf_tables message was pushed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn push_control(&mut self, message: ControlMessage) {
        let header = NetfilterHeader::new(NetfilterProtoFamily::Unspec, 0, NFNL_SUBSYS_NFTABLES);
        self.emit(NetfilterMessage::new(header, message), NLM_F_REQUEST);
    }

    fn emit(&mut self, message: NetfilterMessage, flags: u16) {
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        packet.finalize();
        let start = self.bytes.len();
        self.bytes.resize(start + packet.buffer_len(), 0);
        packet.serialize(&mut self.bytes[start..]);
    }
}

/// A finished batch: the bytes to send and the map from sequence numbers to
/// objects used to explain the kernel's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    bytes: Vec<u8>,
    entries: Vec<BatchEntry>,
}

impl Transaction {
    /// The wire bytes of the whole batch, delimiters included.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The nf_tables messages of the batch (delimiters excluded), in order.
    pub fn entries(&self) -> &[BatchEntry] {
        &self.entries
    }

    /// True when the batch holds no nf_tables message: there is nothing to
    /// send, the kernel already has the desired state.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The object the message with sequence number `seq` is about.
    pub fn object(&self, seq: u32) -> Option<&ObjectRef> {
        self.entries
            .iter()
            .find(|e| e.seq == seq)
            .map(|e| &e.object)
    }
}

pub(crate) fn family_header(family: Family) -> NetfilterProtoFamily {
    NetfilterProtoFamily::from(family.nfproto())
}

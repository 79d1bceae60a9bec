//! Verdict maps: a set whose elements each carry a verdict (`type ifname :
//! verdict`), so one lookup both matches a key and decides what happens
//! (`iifname vmap @roles`). The bridge layer dispatches every frame by the
//! port it came in on this way, instead of asking set after set.

use std::fmt;

use super::Verdict;

/// What the elements of a set carry besides their key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SetData {
    /// A verdict (`NFT_DATA_VERDICT`): the set is a verdict map.
    Verdict,
}

impl SetData {
    /// `NFTA_SET_DATA_TYPE`: nft's datatype number for the data
    /// (`NFT_DATA_VERDICT`).
    pub fn datatype(self) -> u32 {
        match self {
            SetData::Verdict => 0xffff_ff00,
        }
    }

    /// The data type for `NFTA_SET_DATA_TYPE`, if trafficjam knows it.
    pub fn from_datatype(n: u32) -> Option<SetData> {
        (n == 0xffff_ff00).then_some(SetData::Verdict)
    }
}

/// The longest chain name a map element can name (trafficjam's are a few
/// bytes; the kernel allows 255).
pub const CHAIN_NAME_MAX: usize = 31;

/// A chain name held inline (elements are copied, never allocated);
/// ordered as the names are (the NUL padding sorts first).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChainName {
    bytes: [u8; CHAIN_NAME_MAX],
    len: u8,
}

impl ChainName {
    /// The name, or `None` when it is empty or longer than
    /// [`CHAIN_NAME_MAX`] bytes.
    pub fn new(name: &str) -> Option<ChainName> {
        let b = name.as_bytes();
        if b.is_empty() || b.len() > CHAIN_NAME_MAX {
            return None;
        }
        let mut bytes = [0; CHAIN_NAME_MAX];
        bytes[..b.len()].copy_from_slice(b);
        Some(ChainName {
            bytes,
            len: b.len() as u8,
        })
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        let len = usize::from(self.len).min(CHAIN_NAME_MAX);
        // Made only from a `&str` cut at its end: always UTF-8.
        std::str::from_utf8(&self.bytes[..len]).unwrap_or_default()
    }
}

impl fmt::Debug for ChainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// The verdict a verdict map's element holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MapVerdict {
    /// `accept`
    Accept,
    /// `drop`
    Drop,
    /// `continue`
    Continue,
    /// `return`
    Return,
    /// `jump CHAIN`
    Jump(ChainName),
    /// `goto CHAIN`
    Goto(ChainName),
}

impl MapVerdict {
    /// The same verdict held inline; `None` for a chain name longer than
    /// [`CHAIN_NAME_MAX`].
    pub fn new(v: &Verdict) -> Option<MapVerdict> {
        Some(match v {
            Verdict::Accept => MapVerdict::Accept,
            Verdict::Drop => MapVerdict::Drop,
            Verdict::Continue => MapVerdict::Continue,
            Verdict::Return => MapVerdict::Return,
            Verdict::Jump(c) => MapVerdict::Jump(ChainName::new(c)?),
            Verdict::Goto(c) => MapVerdict::Goto(ChainName::new(c)?),
        })
    }

    /// `goto CHAIN` (a name trafficjam chose, within the limit).
    pub fn goto(chain: &str) -> MapVerdict {
        ChainName::new(chain).map_or(MapVerdict::Drop, MapVerdict::Goto)
    }

    /// The verdict as rules and chain policies carry it.
    pub fn verdict(&self) -> Verdict {
        match self {
            MapVerdict::Accept => Verdict::Accept,
            MapVerdict::Drop => Verdict::Drop,
            MapVerdict::Continue => Verdict::Continue,
            MapVerdict::Return => Verdict::Return,
            MapVerdict::Jump(c) => Verdict::Jump(c.as_str().to_string()),
            MapVerdict::Goto(c) => Verdict::Goto(c.as_str().to_string()),
        }
    }
}

impl fmt::Display for MapVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.verdict(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_round_trip_and_long_names_are_refused() {
        for v in [
            Verdict::Accept,
            Verdict::Drop,
            Verdict::Continue,
            Verdict::Return,
            Verdict::Jump("record".into()),
            Verdict::Goto("from_port".into()),
        ] {
            let m = MapVerdict::new(&v).unwrap();
            assert_eq!(m.verdict(), v);
            assert_eq!(m.to_string(), v.to_string());
        }
        let long = "c".repeat(CHAIN_NAME_MAX);
        assert!(MapVerdict::new(&Verdict::Goto(long.clone())).is_some());
        assert_eq!(MapVerdict::new(&Verdict::Goto(long + "c")), None);
        assert_eq!(ChainName::new(""), None);
        let n = |s| ChainName::new(s).unwrap();
        assert!(n("ab") < n("abc") && n("abc") < n("b") && n("from_port") < n("record"));
        assert_eq!(
            SetData::from_datatype(SetData::Verdict.datatype()),
            Some(SetData::Verdict)
        );
        assert_eq!(SetData::from_datatype(7), None);
    }
}

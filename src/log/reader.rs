//! A big-endian cursor over a byte slice for the formats the log parses by
//! hand (batch headers, producer snapshots). Every read is bounds-checked and
//! yields `None` past the end, never a panic.

pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    pub(crate) fn i8(&mut self) -> Option<i8> {
        self.take().map(i8::from_be_bytes)
    }
    pub(crate) fn i16(&mut self) -> Option<i16> {
        self.take().map(i16::from_be_bytes)
    }
    pub(crate) fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_be_bytes)
    }
    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }
    pub(crate) fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_be_bytes)
    }
}

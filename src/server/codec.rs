//! Length-prefixed request frames. Check, then parse, then advance: an
//! incomplete frame is `Ok(None)`; a frame that can never be valid is an
//! error and the connection closes (Kafka does the same).

use bytes::{Buf, Bytes, BytesMut};

use crate::protocol::MIN_HEADER_LEN;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("negative frame length {0}")]
    NegativeLength(i32),
    #[error("frame of {len} bytes exceeds socket.request.max.bytes={max}")]
    TooLarge { len: usize, max: usize },
    #[error("frame of {0} bytes cannot hold a request header")]
    TooShort(usize),
}

/// Takes one whole frame (without its length prefix) off the front of `buf`.
/// The length is checked against `max` before anything is reserved for it.
pub fn next_frame(buf: &mut BytesMut, max: usize) -> Result<Option<Bytes>, FrameError> {
    let Some(prefix) = buf.get(..4) else {
        return Ok(None);
    };
    let len = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    if len < 0 {
        return Err(FrameError::NegativeLength(len));
    }
    let len = len as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    if len < MIN_HEADER_LEN {
        return Err(FrameError::TooShort(len));
    }
    if buf.len() < 4 + len {
        buf.reserve(4 + len - buf.len());
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(len).freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    fn framed(len: i32, body: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        b.put_i32(len);
        b.put_slice(body);
        b
    }

    #[test]
    fn incomplete_frames_wait() {
        let mut b = BytesMut::from(&[0u8, 0][..]);
        assert_eq!(next_frame(&mut b, 100), Ok(None));
        let mut b = framed(10, &[1; 9]);
        assert_eq!(next_frame(&mut b, 100), Ok(None));
        assert!(b.capacity() >= 14);
    }

    #[test]
    fn whole_frames_are_split_off_in_order() {
        let mut b = framed(8, &[1; 8]);
        b.extend_from_slice(&framed(9, &[2; 9]));
        assert_eq!(next_frame(&mut b, 100).unwrap().unwrap().as_ref(), &[1; 8]);
        assert_eq!(next_frame(&mut b, 100).unwrap().unwrap().as_ref(), &[2; 9]);
        assert!(b.is_empty());
    }

    #[test]
    fn limits_on_both_sides() {
        assert_eq!(
            next_frame(&mut framed(100, &[0; 100]), 100)
                .unwrap()
                .unwrap()
                .len(),
            100
        );
        assert_eq!(
            next_frame(&mut framed(101, &[]), 100),
            Err(FrameError::TooLarge { len: 101, max: 100 })
        );
        assert_eq!(
            next_frame(&mut framed(8, &[0; 8]), 100)
                .unwrap()
                .unwrap()
                .len(),
            8
        );
        assert_eq!(
            next_frame(&mut framed(7, &[0; 7]), 100),
            Err(FrameError::TooShort(7))
        );
        assert_eq!(
            next_frame(&mut framed(-1, &[]), 100),
            Err(FrameError::NegativeLength(-1))
        );
    }

    #[test]
    fn oversized_length_reserves_nothing() {
        let mut b = framed(i32::MAX, &[]);
        let cap = b.capacity();
        assert!(next_frame(&mut b, 1 << 20).is_err());
        assert_eq!(b.capacity(), cap);
    }
}

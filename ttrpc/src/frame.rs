//! ttrpc framing: a 10-byte header (length u32 BE, stream id u32 BE, type u8,
//! flags u8) followed by `length` bytes of protobuf.
//!
//! Runs in the daemon (server side and publisher client).

use wren_protocol::ttrpc_wire::{MESSAGE_HEADER_LENGTH, MESSAGE_LENGTH_MAX};

/// One frame's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub length: u32,
    pub stream_id: u32,
    pub kind: u8,
    pub flags: u8,
}

/// A frame the peer should never have sent.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("ttrpc frame of {length} bytes exceeds the {MESSAGE_LENGTH_MAX} byte limit")]
pub struct FrameTooLong {
    pub length: u32,
}

impl Header {
    pub fn encode(&self) -> [u8; MESSAGE_HEADER_LENGTH] {
        let mut b = [0u8; MESSAGE_HEADER_LENGTH];
        b[0..4].copy_from_slice(&self.length.to_be_bytes());
        b[4..8].copy_from_slice(&self.stream_id.to_be_bytes());
        b[8] = self.kind;
        b[9] = self.flags;
        b
    }

    pub fn decode(b: &[u8; MESSAGE_HEADER_LENGTH]) -> Self {
        Self {
            length: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            stream_id: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            kind: b[8],
            flags: b[9],
        }
    }
}

/// Header and payload as one buffer, ready to write.
pub fn encode(stream_id: u32, kind: u8, payload: &[u8]) -> Vec<u8> {
    let header = Header {
        length: payload.len() as u32,
        stream_id,
        kind,
        flags: 0,
    };
    let mut out = Vec::with_capacity(MESSAGE_HEADER_LENGTH + payload.len());
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(payload);
    out
}

/// Takes one complete frame off the front of `buf`, if there is one.
pub fn take_frame(buf: &mut Vec<u8>) -> Result<Option<(Header, Vec<u8>)>, FrameTooLong> {
    if buf.len() < MESSAGE_HEADER_LENGTH {
        return Ok(None);
    }
    let mut raw = [0u8; MESSAGE_HEADER_LENGTH];
    raw.copy_from_slice(&buf[..MESSAGE_HEADER_LENGTH]);
    let header = Header::decode(&raw);
    if header.length as usize > MESSAGE_LENGTH_MAX {
        return Err(FrameTooLong {
            length: header.length,
        });
    }
    let end = MESSAGE_HEADER_LENGTH + header.length as usize;
    if buf.len() < end {
        return Ok(None);
    }
    let payload = buf[MESSAGE_HEADER_LENGTH..end].to_vec();
    buf.drain(..end);
    Ok(Some((header, payload)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_partial_frames() {
        let mut buf = encode(3, 1, b"hello");
        buf.extend_from_slice(&encode(5, 2, b"")[..4]);
        let (h, p) = take_frame(&mut buf).unwrap().unwrap();
        assert_eq!((h.stream_id, h.kind, h.length), (3, 1, 5));
        assert_eq!(p, b"hello");
        assert_eq!(take_frame(&mut buf).unwrap(), None, "half a header");
        buf.extend_from_slice(&encode(5, 2, b"")[4..]);
        let (h, p) = take_frame(&mut buf).unwrap().unwrap();
        assert_eq!((h.stream_id, p.len()), (5, 0));
        assert!(buf.is_empty());
        let mut huge = Header {
            length: u32::MAX,
            stream_id: 1,
            kind: 1,
            flags: 0,
        }
        .encode()
        .to_vec();
        assert!(take_frame(&mut huge).is_err());
    }
}

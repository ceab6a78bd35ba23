//! Zero-copy reading of the two RunLua messages: the fields borrow the received bytes, so a
//! request's arguments go from the wire to the parser without a copy. The tests check it
//! against the prost messages generated from `proto/run_lua.proto`.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError(&'static str);

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// `RunLuaMfaRequest`, borrowed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RequestView<'a> {
    pub module_name: &'a [u8],
    pub function_name: &'a [u8],
    pub arguments_dump: &'a [u8],
    pub caller_id: Option<i64>,
    pub call_id: Option<u64>,
    pub timeout_ms: Option<u32>,
}

/// `RunLuaMfaResponse`, borrowed. The `string` fields are checked to be UTF-8, as a strict
/// protobuf decoder would.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ResponseView<'a> {
    pub returned_dump: &'a [u8],
    pub error_kind: &'a str,
    pub error_message: &'a str,
    pub traceback: &'a str,
    pub call_id: Option<u64>,
}

const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;
const START_GROUP: u64 = 3;
const END_GROUP: u64 = 4;
const FIXED32: u64 = 5;
/// How deep groups may nest: prost's decoding recursion limit.
const MAX_GROUP_DEPTH: usize = 100;

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Other,
}

impl<'a> Reader<'a> {
    #[inline(always)]
    fn varint(&mut self) -> Result<u64, WireError> {
        // Keys, lengths and small numbers take one byte.
        if let Some(&byte) = self.buf.get(self.pos) {
            if byte < 0x80 {
                self.pos += 1;
                return Ok(u64::from(byte));
            }
        }
        self.long_varint()
    }

    fn long_varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for step in 0..10 {
            let shift = step * 7;
            let byte = *self
                .buf
                .get(self.pos)
                .ok_or(WireError("truncated varint"))?;
            self.pos += 1;
            if shift == 63 && byte > 1 {
                return Err(WireError("varint overflows 64 bits"));
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(WireError("varint longer than 10 bytes"))
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], WireError> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.pos.checked_add(n))
            .filter(|&end| end <= self.buf.len())
            .ok_or(WireError("field runs past the end of the message"))?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    /// The next field as (number, value), or None at the end.
    #[inline(always)]
    fn field(&mut self) -> Result<Option<(u64, u64, Value<'a>)>, WireError> {
        if self.pos == self.buf.len() {
            return Ok(None);
        }
        let (number, wire_type) = self.key()?;
        let value = if wire_type == START_GROUP {
            self.skip_group(number)?;
            Value::Other
        } else {
            self.value(wire_type)?
        };
        Ok(Some((number, wire_type, value)))
    }

    /// The value of a field of `wire_type`, any but the group markers.
    #[inline(always)]
    fn value(&mut self, wire_type: u64) -> Result<Value<'a>, WireError> {
        Ok(match wire_type {
            VARINT => Value::Varint(self.varint()?),
            LEN => {
                let n = self.varint()?;
                Value::Bytes(self.take(n)?)
            }
            FIXED64 => {
                self.take(8)?;
                Value::Other
            }
            FIXED32 => {
                self.take(4)?;
                Value::Other
            }
            _ => return Err(WireError("unsupported wire type")),
        })
    }

    /// A field's key: its number and wire type.
    #[inline(always)]
    fn key(&mut self) -> Result<(u64, u64), WireError> {
        let key = self.varint()?;
        let (number, wire_type) = (key >> 3, key & 7);
        if number == 0 || number > 0x1FFF_FFFF {
            return Err(WireError("invalid field number"));
        }
        Ok((number, wire_type))
    }

    /// Skips the rest of a group that started with field `number`. Groups are proto2's old
    /// encoding; no proto3 peer writes them, but the generated decoder skips them as unknown
    /// fields, so a message it reads is read here too. Nesting is bounded as it bounds it.
    #[cold]
    fn skip_group(&mut self, number: u64) -> Result<(), WireError> {
        let mut open = vec![number];
        while let Some(&innermost) = open.last() {
            let (number, wire_type) = self.key()?;
            if wire_type == END_GROUP {
                if number != innermost {
                    return Err(WireError("group ends with another field's number"));
                }
                open.pop();
                continue;
            }
            if open.len() >= MAX_GROUP_DEPTH {
                return Err(WireError("groups nested too deeply"));
            }
            if wire_type == START_GROUP {
                open.push(number);
            } else {
                self.value(wire_type)?;
            }
        }
        Ok(())
    }
}

fn bytes_of<'a>(wire_type: u64, value: &Value<'a>) -> Result<&'a [u8], WireError> {
    match value {
        Value::Bytes(b) if wire_type == LEN => Ok(b),
        _ => Err(WireError("wrong wire type for a bytes field")),
    }
}

fn varint_of(value: &Value<'_>) -> Result<u64, WireError> {
    match value {
        Value::Varint(v) => Ok(*v),
        _ => Err(WireError("wrong wire type for an integer field")),
    }
}

fn utf8_of<'a>(wire_type: u64, value: &Value<'a>) -> Result<&'a str, WireError> {
    std::str::from_utf8(bytes_of(wire_type, value)?)
        .map_err(|_| WireError("string field is not UTF-8"))
}

/// Reads a request; unknown fields are skipped, a repeated field keeps its last value.
pub fn read_request(buf: &[u8]) -> Result<RequestView<'_>, WireError> {
    let mut r = Reader { buf, pos: 0 };
    let mut view = RequestView::default();
    while let Some((number, wire_type, value)) = r.field()? {
        match number {
            1 => view.module_name = bytes_of(wire_type, &value)?,
            2 => view.function_name = bytes_of(wire_type, &value)?,
            3 => view.arguments_dump = bytes_of(wire_type, &value)?,
            4 => view.caller_id = Some(varint_of(&value)? as i64),
            5 => view.call_id = Some(varint_of(&value)?),
            6 => view.timeout_ms = Some(varint_of(&value)? as u32),
            _ => {}
        }
    }
    Ok(view)
}

/// Reads a response; unknown fields are skipped, a repeated field keeps its last value.
pub fn read_response(buf: &[u8]) -> Result<ResponseView<'_>, WireError> {
    let mut r = Reader { buf, pos: 0 };
    let mut view = ResponseView::default();
    while let Some((number, wire_type, value)) = r.field()? {
        match number {
            1 => view.returned_dump = bytes_of(wire_type, &value)?,
            2 => view.error_kind = utf8_of(wire_type, &value)?,
            3 => view.error_message = utf8_of(wire_type, &value)?,
            4 => view.traceback = utf8_of(wire_type, &value)?,
            5 => view.call_id = Some(varint_of(&value)?),
            _ => {}
        }
    }
    Ok(view)
}

// Writing: the same bytes prost writes for these messages (fields in number order, empty
// `bytes`/`string` fields left out, `optional` fields written when set).

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, number: u64, bytes: &[u8]) {
    if !bytes.is_empty() {
        put_varint(out, number << 3 | LEN);
        put_varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }
}

fn put_int(out: &mut Vec<u8>, number: u64, value: Option<u64>) {
    if let Some(v) = value {
        put_varint(out, number << 3 | VARINT);
        put_varint(out, v);
    }
}

/// Appends the encoding of a `RunLuaMfaRequest`.
pub fn write_request(out: &mut Vec<u8>, request: &RequestView<'_>) {
    put_bytes(out, 1, request.module_name);
    put_bytes(out, 2, request.function_name);
    put_bytes(out, 3, request.arguments_dump);
    put_int(out, 4, request.caller_id.map(|v| v as u64));
    put_int(out, 5, request.call_id);
    put_int(out, 6, request.timeout_ms.map(u64::from));
}

/// Appends the encoding of a `RunLuaMfaResponse`.
pub fn write_response(out: &mut Vec<u8>, response: &ResponseView<'_>) {
    put_bytes(out, 1, response.returned_dump);
    put_bytes(out, 2, response.error_kind.as_bytes());
    put_bytes(out, 3, response.error_message.as_bytes());
    put_bytes(out, 4, response.traceback.as_bytes());
    put_int(out, 5, response.call_id);
}

/// Bytes of `v` as a varint.
pub fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn bytes_field_len(number: u64, len: usize) -> usize {
    if len == 0 {
        return 0;
    }
    varint_len(number << 3 | LEN) + varint_len(len as u64) + len
}

/// How many bytes `write_response` writes for `response`, without writing them.
pub fn response_len(response: &ResponseView<'_>) -> usize {
    bytes_field_len(1, response.returned_dump.len())
        + bytes_field_len(2, response.error_kind.len())
        + bytes_field_len(3, response.error_message.len())
        + bytes_field_len(4, response.traceback.len())
        + response
            .call_id
            .map_or(0, |v| varint_len(5 << 3 | VARINT) + varint_len(v))
}

// Owned prost messages from the borrowed views: what the tests and the fuzz target compare
// with prost's own decoding.

impl From<&RequestView<'_>> for super::RunLuaMfaRequest {
    fn from(view: &RequestView<'_>) -> Self {
        Self {
            module_name: view.module_name.to_vec(),
            function_name: view.function_name.to_vec(),
            arguments_dump: view.arguments_dump.to_vec(),
            caller_id: view.caller_id,
            call_id: view.call_id,
            timeout_ms: view.timeout_ms,
        }
    }
}

impl From<&ResponseView<'_>> for super::RunLuaMfaResponse {
    fn from(view: &ResponseView<'_>) -> Self {
        Self {
            returned_dump: view.returned_dump.to_vec(),
            error_kind: view.error_kind.to_string(),
            error_message: view.error_message.to_string(),
            traceback: view.traceback.to_string(),
            call_id: view.call_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::{RunLuaMfaRequest, RunLuaMfaResponse};
    use prost::Message;

    #[test]
    fn reads_what_prost_writes() {
        let request = RunLuaMfaRequest {
            module_name: b"event.dispatcher".to_vec(),
            function_name: b"dispatch".to_vec(),
            arguments_dump: b"{\"x\",\xff,n=2}".to_vec(),
            caller_id: Some(-7),
            call_id: Some(u64::MAX),
            timeout_ms: Some(10_000),
        };
        let bytes = request.encode_to_vec();
        assert_eq!(
            RunLuaMfaRequest::from(&read_request(&bytes).unwrap()),
            request
        );
        let response = RunLuaMfaResponse {
            returned_dump: b"{n=0}".to_vec(),
            error_kind: "runtime".into(),
            error_message: "boom ✓".into(),
            traceback: "stack traceback:".into(),
            call_id: Some(3),
        };
        let bytes = response.encode_to_vec();
        assert_eq!(
            RunLuaMfaResponse::from(&read_response(&bytes).unwrap()),
            response
        );
    }

    #[test]
    fn writes_what_prost_writes() {
        for (caller_id, call_id, timeout_ms, dump) in [
            (None, None, None, &b""[..]),
            (Some(-1), Some(0), Some(0), b"{1}"),
            (Some(i64::MAX), Some(u64::MAX), Some(u32::MAX), &[b'x'; 300]),
        ] {
            let view = RequestView {
                module_name: b"m",
                function_name: b"",
                arguments_dump: dump,
                caller_id,
                call_id,
                timeout_ms,
            };
            let mut ours = Vec::new();
            write_request(&mut ours, &view);
            assert_eq!(ours, RunLuaMfaRequest::from(&view).encode_to_vec());
            let view = ResponseView {
                returned_dump: dump,
                error_kind: "runtime",
                error_message: "",
                traceback: "tb",
                call_id,
            };
            let mut ours = Vec::new();
            write_response(&mut ours, &view);
            assert_eq!(ours, RunLuaMfaResponse::from(&view).encode_to_vec());
        }
    }

    #[test]
    fn response_len_is_what_write_response_writes() {
        let texts = [
            "",
            "x",
            &"m".repeat(127),
            &"m".repeat(128),
            &"m".repeat(20_000),
        ];
        for dump in texts {
            for message in texts {
                for call_id in [None, Some(0), Some(127), Some(128), Some(u64::MAX)] {
                    let view = ResponseView {
                        returned_dump: dump.as_bytes(),
                        error_kind: "runtime",
                        error_message: message,
                        traceback: dump,
                        call_id,
                    };
                    let mut out = Vec::new();
                    write_response(&mut out, &view);
                    assert_eq!(response_len(&view), out.len());
                }
            }
        }
    }

    #[test]
    fn legacy_messages_and_unknown_fields() {
        // Fields 1-3 only, plus an unknown fixed32, fixed64 and varint a newer peer might add.
        let mut bytes = RunLuaMfaRequest {
            module_name: b"m".to_vec(),
            ..Default::default()
        }
        .encode_to_vec();
        bytes.extend_from_slice(&[
            0x3d, 1, 2, 3, 4, 0x41, 1, 2, 3, 4, 5, 6, 7, 8, 0x48, 0x96, 0x01,
        ]);
        let view = read_request(&bytes).unwrap();
        assert_eq!(view.module_name, b"m");
        assert_eq!(view.call_id, None);
    }

    #[test]
    fn agrees_with_prost_on_random_bytes() {
        let mut x: u32 = 0x1234_5678;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let seed = RunLuaMfaRequest {
            module_name: b"mod".to_vec(),
            function_name: b"fn".to_vec(),
            arguments_dump: b"{1,2}".to_vec(),
            caller_id: Some(1),
            call_id: Some(2),
            timeout_ms: Some(3),
        }
        .encode_to_vec();
        for _ in 0..200_000 {
            let mut bytes = seed.clone();
            for _ in 0..(next() % 4) {
                let at = next() as usize % bytes.len();
                bytes[at] = next() as u8;
            }
            bytes.truncate(next() as usize % (bytes.len() + 1));
            // Whenever both read the bytes, they read the same message.
            if let (Ok(ours), Ok(theirs)) = (
                read_request(&bytes),
                RunLuaMfaRequest::decode(bytes.as_slice()),
            ) {
                assert_eq!(RunLuaMfaRequest::from(&ours), theirs, "{bytes:x?}");
            }
            if let (Ok(ours), Ok(theirs)) = (
                read_response(&bytes),
                RunLuaMfaResponse::decode(bytes.as_slice()),
            ) {
                assert_eq!(RunLuaMfaResponse::from(&ours), theirs, "{bytes:x?}");
            }
        }
    }

    #[test]
    fn skips_unknown_groups_as_prost_does() {
        // Field 7 as a group holding a varint, a nested group and a fixed32, then call_id.
        let mut bytes = vec![
            0x3b, 0x08, 0x01, 0x43, 0x44, 0x0d, 1, 2, 3, 4, 0x3c, 0x28, 0x05,
        ];
        assert_eq!(read_request(&bytes).unwrap().call_id, Some(5));
        assert!(RunLuaMfaRequest::decode(bytes.as_slice()).is_ok());
        bytes[4] = 0x4c; // the nested group ends with field 9's number
        assert!(read_request(&bytes).is_err());
        assert!(RunLuaMfaRequest::decode(bytes.as_slice()).is_err());
        assert!(read_response(&[0x3b]).is_err()); // never ends
        assert!(read_response(&[0x3c]).is_err()); // ends without a start

        // Nesting is accepted exactly as deep as prost accepts it.
        let nested = |depth: usize, inner: &[u8]| {
            let mut b = vec![0x3b; depth];
            b.extend_from_slice(inner);
            b.extend(std::iter::repeat_n(0x3c, depth));
            b
        };
        for (depth, inner) in [
            (100, &[][..]),
            (101, &[]),
            (99, &[0x08, 1]),
            (100, &[0x08, 1]),
        ] {
            let b = nested(depth, inner);
            let theirs = RunLuaMfaResponse::decode(b.as_slice()).is_ok();
            assert_eq!(
                read_response(&b).is_ok(),
                theirs,
                "depth {depth}, {inner:?}"
            );
        }
        assert!(read_response(&nested(100, &[])).is_ok());
        assert!(read_response(&nested(100, &[0x08, 1])).is_err());
    }

    #[test]
    fn rejects_malformed_messages() {
        assert!(read_request(&[0x0a, 5, b'a']).is_err()); // length past the end
        assert!(read_request(&[0x08]).is_err()); // truncated varint
        assert!(read_request(&[0x0b]).is_err()); // group start
        assert!(read_request(&[0x00, 0x00]).is_err()); // field 0
        assert!(read_request(&[0x08, 1]).is_err()); // field 1 as a varint
        assert!(read_response(&[0x12, 1, 0xff]).is_err()); // error_kind not UTF-8
        assert!(read_request(
            &[0x28; 12]
                .iter()
                .copied()
                .chain([0xff; 11])
                .collect::<Vec<_>>()
        )
        .is_err());
    }
}

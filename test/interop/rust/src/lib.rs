//! Shared code of the Rust interop peers: hand-built protobuf payloads (no code generation),
//! JSON output, flag parsing and ttrpc-rust calls on path-named Unix sockets.
//!
//! ttrpc-rust 0.5's `Client::connect("unix://...")` and `Server::bind` use Linux abstract sockets,
//! so the peers open the filesystem sockets themselves and hand the descriptors to the library.

use std::collections::HashMap;
use std::os::unix::io::IntoRawFd;
use std::os::unix::net::UnixStream;

pub const HYPERVISOR: &str = "hypervisor.Hypervisor";
pub const HEALTH: &str = "grpc.Health";

// ---- protobuf wire encoding ----

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_tag(out: &mut Vec<u8>, num: u32, wire: u8) {
    put_varint(out, (u64::from(num) << 3) | u64::from(wire));
}

/// A length-delimited field, always written (embedded messages, repeated elements).
pub fn put_len(out: &mut Vec<u8>, num: u32, data: &[u8]) {
    put_tag(out, num, 2);
    put_varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

/// A proto3 string/bytes field: omitted when empty.
pub fn put_str(out: &mut Vec<u8>, num: u32, s: &[u8]) {
    if !s.is_empty() {
        put_len(out, num, s);
    }
}

/// A proto3 varint field: omitted when zero.
pub fn put_uint(out: &mut Vec<u8>, num: u32, v: u64) {
    if v != 0 {
        put_tag(out, num, 0);
        put_varint(out, v);
    }
}

pub struct Field {
    pub num: u32,
    pub wire: u8,
    pub varint: u64,
    pub data: Vec<u8>,
}

fn get_varint(b: &[u8], off: &mut usize) -> Result<u64, String> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*off).ok_or("truncated varint")?;
        *off += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(v);
        }
    }
    Err("varint too long".to_string())
}

/// Splits a message into fields, in wire order.
pub fn parse(b: &[u8]) -> Result<Vec<Field>, String> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < b.len() {
        let key = get_varint(b, &mut off)?;
        let num = (key >> 3) as u32;
        let wire = (key & 7) as u8;
        if num == 0 {
            return Err("field number 0".to_string());
        }
        let mut f = Field {
            num,
            wire,
            varint: 0,
            data: Vec::new(),
        };
        match wire {
            0 => f.varint = get_varint(b, &mut off)?,
            1 | 5 => {
                let size = if wire == 1 { 8 } else { 4 };
                if b.len() - off < size {
                    return Err("truncated fixed field".to_string());
                }
                for i in (0..size).rev() {
                    f.varint = (f.varint << 8) | u64::from(b[off + i]);
                }
                off += size;
            }
            2 => {
                let len = get_varint(b, &mut off)? as usize;
                if len > b.len() - off {
                    return Err("truncated length-delimited field".to_string());
                }
                f.data = b[off..off + len].to_vec();
                off += len;
            }
            _ => return Err(format!("unsupported wire type {}", wire)),
        }
        out.push(f);
    }
    Ok(out)
}

pub fn get_str(fields: &[Field], num: u32) -> String {
    let mut s = String::new();
    for f in fields.iter().filter(|f| f.num == num && f.wire == 2) {
        s = String::from_utf8_lossy(&f.data).into_owned();
    }
    s
}

pub fn get_uint(fields: &[Field], num: u32) -> u64 {
    let mut v = 0;
    for f in fields.iter().filter(|f| f.num == num && f.wire == 0) {
        v = f.varint;
    }
    v
}

// ---- output ----

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{:02x}", x)).collect()
}

pub fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---- flags: "-name value", "-name=value", "--name value"; booleans listed by the caller ----

pub struct Flags {
    pub values: HashMap<String, Vec<String>>,
    pub args: Vec<String>,
}

impl Flags {
    pub fn parse(argv: &[String], booleans: &[&str]) -> Result<Flags, String> {
        let mut flags = Flags {
            values: HashMap::new(),
            args: Vec::new(),
        };
        let mut i = 0;
        while i < argv.len() {
            let a = &argv[i];
            i += 1;
            if !a.starts_with('-') || a == "-" {
                flags.args.push(a.clone());
                continue;
            }
            let body = a.trim_start_matches('-');
            let (name, value) = match body.find('=') {
                Some(p) => (body[..p].to_string(), body[p + 1..].to_string()),
                None if booleans.contains(&body) => (body.to_string(), "true".to_string()),
                None => {
                    let v = argv.get(i).ok_or(format!("flag -{} needs a value", body))?;
                    i += 1;
                    (body.to_string(), v.clone())
                }
            };
            flags
                .values
                .entry(name)
                .or_insert_with(Vec::new)
                .push(value);
        }
        Ok(flags)
    }

    pub fn get(&self, name: &str, default: &str) -> String {
        self.values
            .get(name)
            .and_then(|v| v.last().cloned())
            .unwrap_or_else(|| default.to_string())
    }

    pub fn all(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name, "false") == "true"
    }

    /// Repeated "k=v" flags as pairs.
    pub fn pairs(&self, name: &str) -> Result<Vec<(String, String)>, String> {
        self.all(name)
            .iter()
            .map(|s| match s.find('=') {
                Some(p) if p > 0 => Ok((s[..p].to_string(), s[p + 1..].to_string())),
                _ => Err(format!("{:?} is not k=v", s)),
            })
            .collect()
    }
}

/// Parses a Go-style duration ("600s", "1s", "500ms", "2m", "0") into nanoseconds.
pub fn parse_duration_ns(s: &str) -> Result<i64, String> {
    let units: [(&str, f64); 5] = [
        ("ms", 1e6),
        ("us", 1e3),
        ("ns", 1.0),
        ("s", 1e9),
        ("m", 60e9),
    ];
    if s == "0" {
        return Ok(0);
    }
    for (suffix, scale) in units.iter() {
        if let Some(num) = s.strip_suffix(suffix) {
            let v: f64 = num.parse().map_err(|_| format!("bad duration {:?}", s))?;
            return Ok((v * scale) as i64);
        }
    }
    Err(format!("bad duration {:?}", s))
}

// ---- calls ----

/// A ttrpc-rust client on a filesystem Unix socket.
pub fn connect(path: &str) -> Result<ttrpc::Client, String> {
    let stream = UnixStream::connect(path).map_err(|e| format!("connect {}: {}", path, e))?;
    Ok(ttrpc::Client::new(stream.into_raw_fd()))
}

/// One unary call; Err((code, message)) with code -1 for local failures (deadline, socket).
pub fn call(
    client: &ttrpc::Client,
    service: &str,
    method: &str,
    payload: Vec<u8>,
    timeout_ns: i64,
    metadata: &[(String, String)],
) -> Result<Vec<u8>, (i32, String)> {
    let mut req = ttrpc::Request::new();
    req.set_service(service.to_string());
    req.set_method(method.to_string());
    req.set_payload(payload);
    req.set_timeout_nano(timeout_ns);
    let mut md = protobuf::RepeatedField::new();
    for (k, v) in metadata {
        let mut kv = ttrpc::ttrpc::KeyValue::new();
        kv.set_key(k.clone());
        kv.set_value(v.clone());
        md.push(kv);
    }
    req.set_metadata(md);
    match client.request(req) {
        Ok(resp) => Ok(resp.get_payload().to_vec()),
        Err(ttrpc::Error::RpcStatus(st)) => {
            Err((st.get_code() as i32, st.get_message().to_string()))
        }
        Err(e) => Err((-1, e.to_string())),
    }
}

//! rust-hvserver: a hypervisor.Hypervisor server on ttrpc-rust 0.5 (sync), the library family of
//! the kata-agent, plus grpc.Health as the agent answers it. Like the agent it answers OK with an
//! explicit empty status (`0a 00`). Handlers get the raw Request, so -record logs service, method,
//! payload, timeout_nano and metadata exactly as received, with the stream id and connection fd.

use pp_interop::*;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::io::IntoRawFd;
use std::os::unix::net::UnixListener;
use std::process::exit;
use std::sync::{Arc, Mutex};
use ttrpc::{MethodHandler, TtrpcContext};

#[derive(Clone, Copy)]
enum Kind {
    Version,
    CreateVM,
    Empty,
    HealthCheck,
    HealthVersion,
}

struct Handler {
    service: &'static str,
    method: &'static str,
    kind: Kind,
    pods_dir: String,
    record: Option<Arc<Mutex<File>>>,
}

fn status_error(code: ttrpc::Code, msg: String) -> ttrpc::Status {
    ttrpc::get_status(code, msg)
}

impl Handler {
    fn answer(&self, payload: &[u8]) -> Result<Vec<u8>, ttrpc::Status> {
        let fields = parse(payload).map_err(|e| status_error(ttrpc::Code::INVALID_ARGUMENT, e))?;
        let mut out = Vec::new();
        match self.kind {
            Kind::Version => put_str(&mut out, 1, b"0.0.0"),
            Kind::CreateVM => {
                let id = get_str(&fields, 1);
                if id.is_empty() {
                    return Err(status_error(
                        ttrpc::Code::UNKNOWN,
                        "empty sandbox id".to_string(),
                    ));
                }
                put_str(
                    &mut out,
                    1,
                    format!("{}/{}/agent.ttrpc", self.pods_dir, id).as_bytes(),
                );
            }
            Kind::Empty => {}
            Kind::HealthCheck => put_uint(&mut out, 1, 1),
            Kind::HealthVersion => {
                put_str(&mut out, 1, b"1.0.0");
                put_str(&mut out, 2, b"rust-hvserver");
            }
        }
        Ok(out)
    }
}

impl MethodHandler for Handler {
    fn handler(&self, ctx: TtrpcContext, req: ttrpc::Request) -> ttrpc::Result<()> {
        if let Some(file) = &self.record {
            let md: Vec<String> = req
                .get_metadata()
                .iter()
                .map(|kv| format!("[{},{}]", json_str(kv.get_key()), json_str(kv.get_value())))
                .collect();
            let line = format!(
                "{{\"service\":{},\"method\":{},\"payload_hex\":{},\"timeout_nano\":{},\"metadata\":[{}],\"stream_id\":{},\"conn\":{}}}\n",
                json_str(self.service),
                json_str(self.method),
                json_str(&hex(req.get_payload())),
                req.get_timeout_nano(),
                md.join(","),
                ctx.mh.stream_id,
                ctx.fd
            );
            let _ = file.lock().unwrap().write_all(line.as_bytes());
        }
        let mut resp = ttrpc::Response::new();
        match self.answer(req.get_payload()) {
            Ok(payload) => {
                resp.set_status(ttrpc::get_status(ttrpc::Code::OK, ""));
                resp.set_payload(payload);
            }
            Err(st) => resp.set_status(st),
        }
        ttrpc::response_to_channel(ctx.mh.stream_id, resp, ctx.res_tx)
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let flags = Flags::parse(&argv, &[]).unwrap_or_else(|e| {
        eprintln!("{}", e);
        exit(2)
    });
    let socket = flags.get("socket", "");
    if socket.is_empty() {
        eprintln!("usage: rust-hvserver -socket PATH [-pods-dir DIR] [-record FILE]");
        exit(2);
    }
    let pods_dir = flags.get("pods-dir", "/run/peerpod/pods");
    let record = match flags.get("record", "").as_str() {
        "" => None,
        path => match OpenOptions::new().create(true).append(true).open(path) {
            Ok(f) => Some(Arc::new(Mutex::new(f))),
            Err(e) => {
                eprintln!("{}: {}", path, e);
                exit(1);
            }
        },
    };
    let table: [(&'static str, &'static str, Kind); 6] = [
        (HYPERVISOR, "Version", Kind::Version),
        (HYPERVISOR, "CreateVM", Kind::CreateVM),
        (HYPERVISOR, "StartVM", Kind::Empty),
        (HYPERVISOR, "StopVM", Kind::Empty),
        (HEALTH, "Check", Kind::HealthCheck),
        (HEALTH, "Version", Kind::HealthVersion),
    ];
    let mut methods: HashMap<String, Box<dyn MethodHandler + Send + Sync>> = HashMap::new();
    for (service, method, kind) in table.iter() {
        methods.insert(
            format!("/{}/{}", service, method),
            Box::new(Handler {
                service,
                method,
                kind: *kind,
                pods_dir: pods_dir.clone(),
                record: record.clone(),
            }),
        );
    }
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).unwrap_or_else(|e| {
        eprintln!("listen {}: {}", socket, e);
        exit(1)
    });
    let mut server = ttrpc::Server::new()
        .add_listener(listener.into_raw_fd())
        .unwrap()
        .register_service(methods);
    if let Err(e) = server.start() {
        eprintln!("start: {:?}", e);
        exit(1);
    }
    eprintln!("rust-hvserver: listening on {}", socket);
    loop {
        std::thread::park();
    }
}

//! rust-hvclient: drives a hypervisor.Hypervisor socket the way Kata's runtime-rs does: the
//! lifecycle uses ONE persistent connection (stream ids 1, 3, 5), CreateVM without deadline,
//! StartVM with the configured timeout, StopVM with a 1 s deadline. Single commands use a
//! connection each. One JSON line per call on stdout; exit 1 on any error.

use pp_interop::*;
use std::process::exit;

const USAGE: &str = "usage: rust-hvclient -socket PATH [-metadata k=v]... COMMAND [flags]
  version
  create -id SID [-annotation k=v]... [-shim-annotations] [-name N] [-namespace NS] [-netns P]
  start  -id SID [-timeout 600s]
  stop   -id SID [-timeout 1s]
  lifecycle -id SID [-name N] [-namespace NS] [-netns P] [-timeout 600s] [-stop-timeout 1s] [-check-agent]
";

fn fail(call: &str, code: i32, msg: &str) -> ! {
    println!(
        "{{\"call\":{},\"ok\":false,\"code\":{},\"message\":{}}}",
        json_str(call),
        code,
        json_str(msg)
    );
    exit(1);
}

fn shim_annotations(name: &str, namespace: &str) -> Vec<(String, String)> {
    [
        ("io.kubernetes.cri.sandbox-name", name),
        ("io.kubernetes.cri.sandbox-namespace", namespace),
        ("io.katacontainers.config.hypervisor.machine_type", ""),
        ("io.katacontainers.config.hypervisor.image", ""),
        ("io.katacontainers.config.hypervisor.default_vcpus", "1.5"),
        ("io.katacontainers.config.hypervisor.default_memory", "0"),
        ("io.katacontainers.config.hypervisor.cc_init_data", ""),
        ("io.katacontainers.config.hypervisor.default_gpus", "0"),
        ("io.katacontainers.config.hypervisor.default_gpu_model", ""),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

struct Session {
    socket: String,
    metadata: Vec<(String, String)>,
    client: Option<ttrpc::Client>,
}

impl Session {
    fn client(&mut self) -> &ttrpc::Client {
        if self.client.is_none() {
            match connect(&self.socket) {
                Ok(c) => self.client = Some(c),
                Err(e) => fail("connect", -1, &e),
            }
        }
        self.client.as_ref().unwrap()
    }

    fn call(&mut self, method: &str, payload: Vec<u8>, timeout_ns: i64) -> Vec<u8> {
        let md = self.metadata.clone();
        match call(self.client(), HYPERVISOR, method, payload, timeout_ns, &md) {
            Ok(p) => p,
            Err((code, msg)) => fail(method, code, &msg),
        }
    }

    fn version(&mut self) {
        let mut req = Vec::new();
        put_str(&mut req, 1, b"0.0.0");
        let resp = self.call("Version", req, 0);
        let v = parse(&resp).map(|f| get_str(&f, 1)).unwrap_or_default();
        println!(
            "{{\"call\":\"Version\",\"ok\":true,\"version\":{}}}",
            json_str(&v)
        );
    }

    fn create(&mut self, id: &str, annotations: &[(String, String)], netns: &str) -> String {
        let mut req = Vec::new();
        put_str(&mut req, 1, id.as_bytes());
        for (k, v) in annotations {
            let mut entry = Vec::new();
            put_str(&mut entry, 1, k.as_bytes());
            put_str(&mut entry, 2, v.as_bytes());
            put_len(&mut req, 2, &entry);
        }
        put_str(&mut req, 3, netns.as_bytes());
        let resp = self.call("CreateVM", req, 0);
        let path = match parse(&resp) {
            Ok(f) => get_str(&f, 1),
            Err(e) => fail("CreateVM", -1, &format!("undecodable response: {}", e)),
        };
        println!(
            "{{\"call\":\"CreateVM\",\"ok\":true,\"id\":{},\"agentSocketPath\":{}}}",
            json_str(id),
            json_str(&path)
        );
        path
    }

    fn simple(&mut self, method: &str, id: &str, timeout_ns: i64) {
        let mut req = Vec::new();
        put_str(&mut req, 1, id.as_bytes());
        let resp = self.call(method, req, timeout_ns);
        println!(
            "{{\"call\":{},\"ok\":true,\"id\":{},\"response_hex\":{}}}",
            json_str(method),
            json_str(id),
            json_str(&hex(&resp))
        );
    }
}

/// What runtime-rs does first on the agent socket: dial (retrying up to 30 s) and Check.
fn check_agent(path: &str) {
    let start = std::time::Instant::now();
    let client = loop {
        match connect(path) {
            Ok(c) => break c,
            Err(e) if start.elapsed().as_secs() >= 30 => fail("grpc.Health/Check", -1, &e),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    };
    match call(&client, HEALTH, "Check", Vec::new(), 30_000_000_000, &[]) {
        Ok(resp) => {
            let st = parse(&resp).map(|f| get_uint(&f, 1)).unwrap_or(0);
            println!(
                "{{\"call\":\"grpc.Health/Check\",\"ok\":{},\"status\":{}}}",
                st == 1,
                st
            );
            if st != 1 {
                exit(1);
            }
        }
        Err((code, msg)) => fail("grpc.Health/Check", code, &msg),
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let bools = ["check-agent", "shim-annotations", "help", "h"];
    let flags = match Flags::parse(&argv, &bools) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{}\n{}", e, USAGE);
            exit(2);
        }
    };
    if flags.args.is_empty() || flags.has("help") || flags.has("h") {
        eprint!("{}", USAGE);
        exit(2);
    }
    let cmd = flags.args[0].as_str();
    let metadata = flags.pairs("metadata").unwrap_or_else(|e| {
        eprintln!("{}", e);
        exit(2)
    });
    let mut annotations = flags.pairs("annotation").unwrap_or_else(|e| {
        eprintln!("{}", e);
        exit(2)
    });
    let name = flags.get("name", "nginx");
    let namespace = flags.get("namespace", "default");
    if flags.has("shim-annotations") {
        let mut all = shim_annotations(&name, &namespace);
        all.extend(annotations);
        annotations = all;
    }
    let id = flags.get("id", "");
    let netns = flags.get("netns", "");
    let duration = |name: &str, default: &str| {
        parse_duration_ns(&flags.get(name, default)).unwrap_or_else(|e| {
            eprintln!("{}", e);
            exit(2)
        })
    };
    let mut s = Session {
        socket: flags.get("socket", "/run/peerpod/hypervisor.sock"),
        metadata,
        client: None,
    };
    match cmd {
        "version" => s.version(),
        "create" => {
            s.create(&id, &annotations, &netns);
        }
        "start" => s.simple("StartVM", &id, duration("timeout", "600s")),
        "stop" => s.simple("StopVM", &id, duration("timeout", "1s")),
        "lifecycle" => {
            let mut all = shim_annotations(&name, &namespace);
            all.extend(annotations);
            let path = s.create(&id, &all, &netns);
            if path.is_empty() {
                fail("CreateVM", -1, "CAA did not return agent socket path");
            }
            s.simple("StartVM", &id, duration("timeout", "600s"));
            if flags.has("check-agent") {
                check_agent(&path);
            }
            s.simple("StopVM", &id, duration("stop-timeout", "1s"));
        }
        _ => {
            eprint!("{}", USAGE);
            exit(2);
        }
    }
}

//! Object storage emulators for tests: moto (S3) and Azurite (Azure Blob), each
//! started on 127.0.0.1 with a free port, waited for by polling until it answers,
//! and killed on drop. `scripts/install-deps` installs both.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound and released; the server binds it next).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends one HTTP/1.1 request and returns the status code (None if no answer).
pub fn http(port: u16, method: &str, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    // Generous: a loaded machine makes the emulators slow, and a request that
    // times out here reads as "no answer yet" to the callers that poll.
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

fn wait_until(what: &str, child: &mut Child, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{what} exited while starting: {status}");
        }
        assert!(Instant::now() < deadline, "{what} did not become ready");
        std::thread::sleep(Duration::from_millis(50)); // polling interval, not synchronisation
    }
}

/// A running emulator process.
pub struct Server {
    child: Child,
    pub port: u16,
    name: &'static str,
}

impl Server {
    /// Freezes the server (SIGSTOP): requests hang, as with a dead network.
    pub fn freeze(&self) {
        signal(self.child.id(), "STOP");
    }
    /// Thaws a frozen server (SIGCONT).
    pub fn thaw(&self) {
        signal(self.child.id(), "CONT");
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(ok.success());
}

impl Drop for Server {
    fn drop(&mut self) {
        signal(self.child.id(), "CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// moto's S3 server with one bucket.
pub struct S3 {
    pub server: Server,
    pub bucket: String,
}

impl S3 {
    pub fn start(bucket: &str) -> S3 {
        let port = free_port();
        let bin = std::env::var("UXWAL_MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
        let mut child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {bin} ({e}): run scripts/install-deps as root")
            });
        wait_until("moto_server", &mut child, || {
            http(port, "GET", "/moto-api/") == Some(200)
        });
        let s3 = S3 {
            server: Server {
                child,
                port,
                name: "moto",
            },
            bucket: bucket.into(),
        };
        // moto loads its S3 backend on the first request: on a loaded machine
        // that first answer can be slow, so the bucket is created by polling.
        let mut s3 = s3;
        wait_until("moto_server (create bucket)", &mut s3.server.child, || {
            http(port, "PUT", &format!("/{bucket}")) == Some(200)
        });
        s3
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port)
    }

    /// The environment uxwal needs to reach this server.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", "testing".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    pub fn location(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.bucket)
    }
}

/// Azurite's blob service with one container.
pub struct Azure {
    pub server: Server,
    pub container: String,
}

/// Azurite's well-known development account key (public, documented by Microsoft).
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

impl Azure {
    pub fn start(container: &str) -> Azure {
        let port = free_port();
        let tools =
            std::env::var("UXWAL_TOOLS_DIR").unwrap_or_else(|_| "/opt/uxwal-test-tools".into());
        let bin = PathBuf::from(tools).join("node_modules/.bin/azurite-blob");
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(&bin)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .args([
                "--inMemoryPersistence",
                "--disableTelemetry",
                "--silent",
                "--skipApiVersionCheck",
            ])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}): run scripts/install-deps as root",
                    bin.display()
                )
            });
        std::mem::forget(dir); // Azurite writes nothing with in-memory persistence; keep its cwd alive.
        wait_until("azurite", &mut child, || http(port, "GET", "/").is_some());
        let az = Azure {
            server: Server {
                child,
                port,
                name: "azurite",
            },
            container: container.into(),
        };
        az.create_container();
        az
    }

    /// Creates the container with a SharedKey-signed request (object_store cannot).
    fn create_container(&self) {
        let script = r#"
import base64, hashlib, hmac, sys, urllib.request
from email.utils import formatdate
port, name, key = sys.argv[1], sys.argv[2], base64.b64decode(sys.argv[3])
d = formatdate(usegmt=True); v = "2021-08-06"
sts = "PUT\n" + "\n"*4 + "application/octet-stream\n" + "\n"*6 + f"x-ms-date:{d}\nx-ms-version:{v}\n/devstoreaccount1/devstoreaccount1/{name}\nrestype:container"
sig = base64.b64encode(hmac.new(key, sts.encode(), hashlib.sha256).digest()).decode()
req = urllib.request.Request(f"http://127.0.0.1:{port}/devstoreaccount1/{name}?restype=container", method="PUT", data=b"",
    headers={"Content-Type": "application/octet-stream", "x-ms-date": d, "x-ms-version": v, "Authorization": f"SharedKey devstoreaccount1:{sig}"})
print(urllib.request.urlopen(req).status)
"#;
        let out = Command::new("python3")
            .args([
                "-c",
                script,
                &self.server.port.to_string(),
                &self.container,
                AZURITE_KEY,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "create container: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AZURE_STORAGE_USE_EMULATOR", "true".to_string()),
            (
                "AZURITE_BLOB_STORAGE_URL",
                format!("http://127.0.0.1:{}", self.server.port),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    pub fn location(&self, prefix: &str) -> String {
        format!("az://{}/{prefix}", self.container)
    }
}

//! Object storage emulators for tests: moto (S3), Azurite (Azure Blob) and
//! fake-gcs-server (Google Cloud Storage), each started on 127.0.0.1 with a free
//! port, waited for by polling until it answers, and killed on drop. [`S3`] is
//! the one S3 fixture: a server, the sites, store settings and configuration
//! files that reach it. `scripts/install-deps` installs all three.
#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use uxwal::repo::remote::StoreOptions;

use super::Site;

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
    http_with_body(port, method, path, &[])
}

/// [`http`] with a request body (sent as `application/octet-stream` when not empty).
pub fn http_with_body(port: u16, method: &str, path: &str, body: &[u8]) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    // Generous: a loaded machine makes the emulators slow, and a request that
    // times out here reads as "no answer yet" to the callers that poll.
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let content_type = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/octet-stream\r\n"
    };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{content_type}\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// Polls until `ready`, failing the test when the server exits first.
fn wait_until(what: &str, child: &mut Child, mut ready: impl FnMut() -> bool) {
    super::poll_until(&format!("{what} to answer"), || {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{what} exited while starting: {status}");
        }
        ready().then_some(()).ok_or_else(|| "no answer".to_string())
    });
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
        super::signal(self.child.id(), "STOP");
    }
    /// Thaws a frozen server (SIGCONT).
    pub fn thaw(&self) {
        super::signal(self.child.id(), "CONT");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        super::signal(self.child.id(), "CONT");
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
        Self::env_for(&self.endpoint())
    }

    /// The environment of an S3 server at `endpoint` with moto's credentials
    /// (also for an endpoint where nothing answers).
    pub fn env_for(endpoint: &str) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", endpoint),
            ("AWS_ALLOW_HTTP", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    pub fn location(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.bucket)
    }

    /// A [`Site`] whose repository is `prefix` in this bucket.
    pub fn site(&self, prefix: &str) -> Site {
        let mut site = Site::new();
        site.location = self.location(prefix);
        site.env = self.env();
        site
    }

    /// [`S3::env`] as the `[s3]` settings of a store client in the test itself.
    pub fn store_options(&self) -> StoreOptions {
        let mut options = StoreOptions::default();
        for (k, v) in self.env() {
            options.s3.insert(k.to_ascii_lowercase(), v);
        }
        options
    }

    /// Writes a configuration file at `path` naming `repos` (first the `repo`
    /// line, then `deadline` when given, then this server's `[s3]` table), mode
    /// 0600 and owned by the PostgreSQL user (see [`super::pg::chown_to_postgres`]),
    /// who must be able to read it. Returns `path`.
    pub fn write_config(&self, path: &Path, repos: &[&str], deadline: Option<u64>) -> PathBuf {
        let repo = match repos {
            [one] => format!("\"{one}\""),
            several => format!(
                "[{}]",
                several
                    .iter()
                    .map(|r| format!("\"{r}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let deadline = deadline.map_or(String::new(), |s| format!("deadline = {s}\n"));
        fs::write(
            path,
            format!(
                "repo = {repo}\n{deadline}[s3]\nendpoint = \"{}\"\naccess_key_id = \"testing\"\n\
                 secret_access_key = \"testing\"\nregion = \"us-east-1\"\nallow_http = true\n",
                self.endpoint()
            ),
        )
        .unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
        super::pg::chown_to_postgres(path);
        path.to_path_buf()
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
        Self::env_for(&format!("http://127.0.0.1:{}", self.server.port))
    }

    /// The environment of an Azurite blob service at `url` (a proxy in front of one).
    pub fn env_for(url: &str) -> Vec<(String, String)> {
        vec![
            ("AZURE_STORAGE_USE_EMULATOR".into(), "true".into()),
            ("AZURITE_BLOB_STORAGE_URL".into(), url.into()),
        ]
    }

    pub fn location(&self, prefix: &str) -> String {
        format!("az://{}/{prefix}", self.container)
    }
}

/// fake-gcs-server (Google Cloud Storage) with one bucket, in memory.
///
/// object_store writes through GCS's XML API, whose uploads fake-gcs-server
/// 1.54 refuses (400 "invalid uploadType"); its reads, listings and deletes
/// work. Tests therefore put objects in with [`Gcs::upload`], through the JSON
/// upload API that fake-gcs-server does have.
pub struct Gcs {
    pub server: Server,
    pub bucket: String,
    /// The bucket directory the server loads at start, and the service
    /// account file that points object_store at the server.
    dir: tempfile::TempDir,
}

impl Gcs {
    pub fn start(bucket: &str) -> Gcs {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        // Each directory under -data is a bucket when the server starts.
        fs::create_dir_all(dir.path().join("data").join(bucket)).unwrap();
        let address = format!("127.0.0.1:{port}");
        let bin =
            std::env::var("UXWAL_FAKE_GCS_SERVER").unwrap_or_else(|_| "fake-gcs-server".into());
        let mut child = Command::new(&bin)
            .args([
                "-backend",
                "memory",
                "-scheme",
                "http",
                "-host",
                "127.0.0.1",
            ])
            .args(["-port", &port.to_string()])
            // Requests are routed by Host header: it must be exactly this
            // address (not "localhost"), or every request answers 404.
            .args(["-public-host", &address])
            .args(["-external-url", &format!("http://{address}")])
            .arg("-data")
            .arg(dir.path().join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {bin} ({e}): run scripts/install-deps as root")
            });
        // Ready once the bucket it loaded answers, not merely the port.
        wait_until("fake-gcs-server", &mut child, || {
            http(port, "GET", &format!("/storage/v1/b/{bucket}")) == Some(200)
        });
        let gcs = Gcs {
            server: Server {
                child,
                port,
                name: "fake-gcs-server",
            },
            bucket: bucket.into(),
            dir,
        };
        // disable_oauth: object_store sends no token request to Google.
        fs::write(
            gcs.service_account(),
            format!(
                r#"{{"gcs_base_url":"{}","disable_oauth":true,"client_email":"","private_key":"","private_key_id":""}}"#,
                gcs.endpoint()
            ),
        )
        .unwrap();
        gcs
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port)
    }

    /// The service account file naming this server as the GCS endpoint.
    pub fn service_account(&self) -> PathBuf {
        self.dir.path().join("service-account.json")
    }

    /// The environment uxwal needs to reach this server.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "GOOGLE_SERVICE_ACCOUNT".into(),
                self.service_account().display().to_string(),
            ),
            ("GOOGLE_ALLOW_HTTP".into(), "true".into()),
        ]
    }

    pub fn location(&self, prefix: &str) -> String {
        format!("gs://{}/{prefix}", self.bucket)
    }

    /// A [`Site`] whose repository is `prefix` in this bucket.
    pub fn site(&self, prefix: &str) -> Site {
        let mut site = Site::new();
        site.location = self.location(prefix);
        site.env = self.env();
        site
    }

    /// [`Gcs::env`] as the `[gcs]` settings of a store client in the test itself.
    pub fn store_options(&self) -> StoreOptions {
        let mut options = StoreOptions::default();
        for (k, v) in self.env() {
            options.gcs.insert(k.to_ascii_lowercase(), v);
        }
        options
    }

    /// Stores `bytes` as object `key` of the bucket (replacing one there),
    /// through the JSON API's media upload.
    pub fn upload(&self, key: &str, bytes: &[u8]) {
        let path = format!(
            "/upload/storage/v1/b/{}/o?uploadType=media&name={}",
            self.bucket,
            percent_encode(key)
        );
        let status = http_with_body(self.server.port, "POST", &path, bytes);
        assert_eq!(status, Some(200), "upload {key} to fake-gcs-server");
    }
}

/// `text` with every byte but RFC 3986's unreserved ones percent-encoded (for
/// an object name in a query string, where `/` must be `%2F`).
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

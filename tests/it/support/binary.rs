//! The `cognito-sidecar` binary as a child process (`cli.rs`, `behaviour.rs`), and free
//! loopback ports for the servers the tests start.

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{eventually, try_request};

pub const BIN: &str = env!("CARGO_BIN_EXE_cognito-sidecar");

/// A loopback address nothing listens on (bound, then released).
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Writes `dir/config.toml` for the binary: [`config_text`] with its listener and admin
/// on free loopback ports (a child process cannot report the ports it bound).
pub fn write_config(dir: &Path, upstream: &str, jwks: &str, routes: &str) -> std::path::PathBuf {
    let text = super::config_text(upstream, jwks, routes)
        .replacen(
            "address = \"127.0.0.1:0\"",
            &format!("address = \"{}\"", free_addr()),
            1,
        )
        .replacen(
            "address = \"127.0.0.1:0\"",
            &format!("address = \"{}\"", free_addr()),
            1,
        );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The port of [`free_addr`].
pub fn free_port() -> u16 {
    free_addr().port()
}

/// The binary, run with a config file; killed when dropped.
pub struct Proc {
    child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
}

impl Proc {
    /// `run --config file`, whose listener and admin addresses are `addr` and `admin`.
    pub fn spawn(file: &Path, addr: SocketAddr, admin: SocketAddr) -> Proc {
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(file)
            .env_remove("SIDECAR_CONFIG")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn cognito-sidecar");
        Proc { child, addr, admin }
    }

    /// [`Proc::spawn`], the addresses read from the file (the first two `address = ` lines:
    /// listener, then admin).
    pub fn spawn_file(file: &Path) -> Proc {
        let text = std::fs::read_to_string(file).unwrap();
        let mut addrs = text.lines().filter_map(|l| {
            l.strip_prefix("address = \"")
                .map(|a| a.trim_end_matches('"').parse::<SocketAddr>().unwrap())
        });
        let (addr, admin) = (addrs.next().unwrap(), addrs.next().unwrap());
        Proc::spawn(file, addr, admin)
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }

    pub fn hup(&self) {
        self.signal("-HUP");
    }

    pub async fn wait_ready(&self) {
        let admin = self.admin;
        eventually(Duration::from_secs(15), || async move {
            try_request(admin, "GET", "/readyz", &[], "")
                .await
                .is_ok_and(|r| r.status == 200)
        })
        .await;
    }

    /// The process's peak resident memory (`VmHWM`), KiB.
    pub fn rss_peak_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Waits (bounded) for the exit, then the exit code and everything written to stdout
    /// and stderr.
    pub fn wait(mut self) -> (Option<i32>, String) {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("cognito-sidecar did not exit");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut out = String::new();
        for pipe in [
            self.child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read>),
            self.child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read>),
        ]
        .into_iter()
        .flatten()
        {
            let mut pipe = pipe;
            pipe.read_to_string(&mut out).unwrap();
        }
        (status.code(), out)
    }

    /// SIGTERM, then [`Proc::wait`].
    pub fn stop(self) -> (Option<i32>, String) {
        self.signal("-TERM");
        self.wait()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

//! Azurite, the official Azure Storage emulator (npm `azurite`, installed
//! into `bindings-node/node_modules` by the test script), started on
//! 127.0.0.1 on a free port with in-memory persistence, stopped when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vmrestore::azure::StorageAuth;
use vmrestore::azure::storage::{EMULATOR_ACCOUNT, EMULATOR_KEY};

/// A running Azurite blob service; stopped when dropped.
pub struct Azurite {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Azurite {
    pub fn start() -> Azurite {
        let bin = std::env::var_os("AZURITE_BLOB")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("bindings-node/node_modules/.bin/azurite-blob")
            });
        assert!(
            bin.exists(),
            "{} not found: run `npm install` in bindings-node (scripts/test.sh does)",
            bin.display()
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(bin)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .args(["--inMemoryPersistence", "--skipApiVersionCheck", "--silent"])
            .arg("--disableTelemetry")
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start azurite-blob");
        let az = Azurite {
            child,
            port,
            _dir: dir,
        };
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "Azurite did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        az
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{EMULATOR_ACCOUNT}", self.port)
    }

    pub fn auth(&self) -> StorageAuth {
        StorageAuth::SharedKey {
            account: EMULATOR_ACCOUNT.into(),
            key: EMULATOR_KEY.into(),
        }
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

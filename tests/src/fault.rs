//! A fault proxy: a TCP relay that can cut every connection through it like a network
//! partition would — bytes stop flowing both ways and new connections are accepted but go
//! nowhere (no reset, no refusal: the far side only learns by its own timeouts) — and heal it.
//! Put one in front of a broker's listener (advertise the relay's port) and one in front of its
//! coordinator (its `zookeeper.connect`), and the broker is cut off from everyone.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A relay on a loopback port to `target`.
#[derive(Debug)]
pub struct CutRelay {
    pub port: u16,
    cut: Arc<AtomicBool>,
    /// Bumped on heal: connections from before the cut are closed then.
    generation: Arc<AtomicU64>,
}

fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    cut: Arc<AtomicBool>,
    gen: Arc<AtomicU64>,
    born: u64,
) {
    from.set_read_timeout(Some(Duration::from_millis(20))).ok();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if gen.load(Ordering::SeqCst) != born {
            break;
        }
        if cut.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                // A cut that starts now drops these bytes, as a partition would.
                if !cut.load(Ordering::SeqCst) && to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

impl CutRelay {
    /// Listens on `port` (0: any free one) and relays each connection to `target`.
    pub fn start(port: u16, target: SocketAddr) -> CutRelay {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("relay port");
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(AtomicU64::new(0));
        let (c, g) = (cut.clone(), generation.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let born = g.load(Ordering::SeqCst);
                if c.load(Ordering::SeqCst) {
                    // Accepted, then silence until the heal closes it.
                    let g = g.clone();
                    std::thread::spawn(move || {
                        while g.load(Ordering::SeqCst) == born {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        drop(client);
                    });
                    continue;
                }
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                let (c1, s1) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (cut1, gen1) = (c.clone(), g.clone());
                std::thread::spawn(move || pump(c1, s1, cut1, gen1, born));
                let (cut2, gen2) = (c.clone(), g.clone());
                std::thread::spawn(move || pump(server, client, cut2, gen2, born));
            }
        });
        CutRelay {
            port,
            cut,
            generation,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Stops all traffic, silently.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }

    /// Traffic flows again; connections from before (or during) the cut are closed.
    pub fn heal(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.cut.store(false, Ordering::SeqCst);
    }
}

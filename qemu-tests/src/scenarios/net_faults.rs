//! Network faults (issue 8 "Proof"): a download cut short by a connection
//! reset, and a DHCP server that offers an address and then goes silent.
//! Both must fail with a message naming the cause, apply nothing from the
//! network, and let the boot go on with the local overlay (README, "When
//! something fails": DHCP or download failed).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{Context, Result};

use super::network::{failed_progress, fallback_disk, want_fallback, with_server, HOST_IP};
use super::*;
use crate::netboot::{self, qemu_mac};
use crate::report;

/// What the fault servers saw, one line each, beside the serial log.
const FAULT_LOG: &str = "fault-server.log";
const HOST_RESET: &str = "alpinit-reset";
/// How often the servers look at their stop flag.
const POLL: Duration = Duration::from_millis(50);

/// The scenarios of this file, for the list in `mod.rs`.
pub(super) fn scenarios() -> [Scenario; 2] {
    [
        Scenario {
            name: "http-reset",
            about: "apkovl over HTTP: headers and half the body, then a TCP reset; the local overlay boots",
            image: ImageKind::Standard,
            setup: setup_http_reset,
            check: check_http_reset,
        },
        Scenario {
            name: "dhcp-offer-only",
            about: "a DHCP server that offers and never ACKs: bounded failure naming it, the local overlay boots",
            image: ImageKind::Standard,
            setup: setup_dhcp_offer_only,
            check: check_dhcp_offer_only,
        },
    ]
}

fn fault_log(outcome: &Outcome) -> Vec<String> {
    fs::read_to_string(outcome.log_path.with_file_name(FAULT_LOG))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn note(log: &Path, line: &str) {
    if let Ok(mut file) = fs::OpenOptions::new().create(true).append(true).open(log) {
        let _ = writeln!(file, "{line}");
    }
}

/// A server thread that runs until dropped.
struct Background {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Background {
    fn spawn(name: &str, body: impl FnOnce(&AtomicBool) + Send + 'static) -> Result<Background> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || body(&flag))
            .with_context(|| format!("starting {name}"))?;
        Ok(Background {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// http-reset: headers and half the body, then a TCP reset.

/// Answers every GET with `200`, the full Content-Length of BODY and its
/// first half, then closes with SO_LINGER 0 so the peer gets a RST.
fn reset_server(body: Vec<u8>, log: PathBuf) -> Result<(u16, Background)> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    listener.set_nonblocking(true).context("non-blocking")?;
    let port = listener.local_addr().context("listener address")?.port();
    let server = Background::spawn("reset-server", move |stop| {
        while !stop.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((stream, _)) => {
                    if let Err(err) = reset_after_half(stream, &body, &log) {
                        note(&log, &format!("# connection error: {err}"));
                    }
                }
                Err(_) => std::thread::sleep(POLL),
            }
        }
    })?;
    Ok((port, server))
}

fn reset_after_half(mut stream: TcpStream, body: &[u8], log: &Path) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    note(log, line.split_whitespace().nth(1).unwrap_or("?"));
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
    }
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(&body[..body.len() / 2])?;
    stream.flush()?;
    // Let the bytes leave before the reset discards anything still queued.
    std::thread::sleep(Duration::from_millis(500));
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `linger` is a valid `struct linger` that outlives the call and
    // the length passed is its size; the fd belongs to `stream`, still open.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    note(log, "# reset");
    Ok(())
}

fn setup_http_reset(assets: &Assets, dir: &Path) -> Result<Setup> {
    let ovl = overlay(assets, HOST_RESET, &[], Vec::new())?;
    let (port, server) = reset_server(ovl, dir.join(FAULT_LOG))?;
    let mut vm = kernel_vm(
        assets,
        ImageKind::Standard,
        &format!("ip=dhcp apkovl=http://{HOST_IP}:{port}/x.apkovl.tar.gz"),
    )?;
    vm.user_nic("n0", &qemu_mac(0x56))
        .virtio_disk(&fallback_disk(assets, dir)?);
    Ok(with_server(vm, server, assets.accel.boot_timeout()))
}

fn check_http_reset(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    booted(outcome, report, |failures, report| {
        // The local overlay, not the half-downloaded one, is what booted.
        want_fallback(failures, outcome, report);
        let seen = fault_log(outcome);
        if !seen.iter().any(|l| l == "/x.apkovl.tar.gz") || !seen.iter().any(|l| l == "# reset") {
            failures.push(format!(
                "the server did not serve and reset /x.apkovl.tar.gz: {seen:?}"
            ));
        }
        match failed_progress(&outcome.log, "Downloading http://") {
            None => failures.push("no ` * Downloading http://...: failed.` line".to_string()),
            Some(line) => {
                let lower = line.to_lowercase();
                if !lower.contains("reading the body")
                    || !(lower.contains("connection reset")
                        || lower.contains("connection closed after"))
                {
                    failures.push(format!(
                        "the download failure does not name the reset or short body: {line:?}"
                    ));
                }
            }
        }
    })
}

// dhcp-offer-only: OFFER, then silence.

/// QEMU's user network gateway MAC, used as the fake server's source.
const SERVER_MAC: [u8; 6] = [0x52, 0x55, 0x0a, 0x00, 0x02, 0x02];
const OFFERED: [u8; 4] = [10, 0, 2, 15];
const DHCP_MAGIC: [u8; 4] = [0x63, 0x82, 0x53, 0x63];

/// A DHCP client message in an Ethernet frame: (message type, xid, chaddr).
fn parse_client_frame(frame: &[u8]) -> Option<(u8, [u8; 4], [u8; 6])> {
    if frame.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let ip = frame.get(14..)?;
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    if *ip.get(9)? != 17 {
        return None;
    }
    let udp = ip.get(ihl..)?;
    if udp.get(2..4)? != [0, 67] {
        return None;
    }
    let bootp = udp.get(8..)?;
    if *bootp.first()? != 1 || bootp.get(236..240)? != DHCP_MAGIC {
        return None;
    }
    let xid: [u8; 4] = bootp.get(4..8)?.try_into().ok()?;
    let chaddr: [u8; 6] = bootp.get(28..34)?.try_into().ok()?;
    let mut options = bootp.get(240..)?;
    while let [code, rest @ ..] = options {
        match code {
            0 => options = rest,
            255 => return None,
            _ => {
                let (&len, rest) = rest.split_first()?;
                let value = rest.get(..usize::from(len))?;
                if *code == 53 {
                    return Some((*value.first()?, xid, chaddr));
                }
                options = rest.get(usize::from(len)..)?;
            }
        }
    }
    None
}

fn checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A broadcast DHCPOFFER of 10.0.2.15 from 10.0.2.2 for XID and CHADDR.
fn offer_frame(xid: [u8; 4], chaddr: [u8; 6]) -> Vec<u8> {
    let server = HOST_IP.octets();
    let mut bootp = vec![2, 1, 6, 0];
    bootp.extend_from_slice(&xid);
    bootp.extend_from_slice(&[0, 0, 0x80, 0]); // secs, broadcast flag
    bootp.extend_from_slice(&[0; 4]); // ciaddr
    bootp.extend_from_slice(&OFFERED);
    bootp.extend_from_slice(&server); // siaddr
    bootp.extend_from_slice(&[0; 4]); // giaddr
    bootp.extend_from_slice(&chaddr);
    bootp.extend_from_slice(&[0; 10 + 64 + 128]);
    bootp.extend_from_slice(&DHCP_MAGIC);
    bootp.extend_from_slice(&[53, 1, 2, 54, 4]);
    bootp.extend_from_slice(&server);
    bootp.extend_from_slice(&[51, 4, 0, 1, 0x51, 0x80, 1, 4, 255, 255, 255, 0, 3, 4]);
    bootp.extend_from_slice(&server);
    bootp.extend_from_slice(&[6, 4, 10, 0, 2, 3, 255]);
    let udp_len = (8 + bootp.len()) as u16;
    let mut udp = vec![0, 67, 0, 68];
    udp.extend_from_slice(&udp_len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]); // no UDP checksum (allowed over IPv4)
    udp.extend_from_slice(&bootp);
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&(20 + udp_len).to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]);
    ip.extend_from_slice(&server);
    ip.extend_from_slice(&[255; 4]);
    let sum = checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let mut frame = vec![0xff; 6];
    frame.extend_from_slice(&SERVER_MAC);
    frame.extend_from_slice(&[0x08, 0x00]);
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&udp);
    frame
}

/// The other end of a QEMU `-netdev socket,udp=` link: answers DISCOVER
/// with an OFFER, logs every DHCP message type, never sends an ACK.
fn offer_only_server(to: u16, from: u16, log: PathBuf) -> Result<Background> {
    let socket = UdpSocket::bind(("127.0.0.1", to)).context("binding the netdev port")?;
    socket
        .set_read_timeout(Some(POLL))
        .context("netdev socket timeout")?;
    Background::spawn("dhcp-offer-only", move |stop| {
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::SeqCst) {
            let Ok(len) = socket.recv(&mut buf) else {
                continue;
            };
            let Some((kind, xid, chaddr)) = parse_client_frame(&buf[..len]) else {
                continue;
            };
            note(&log, &format!("dhcp {kind}"));
            if kind == 1 {
                let _ = socket.send_to(&offer_frame(xid, chaddr), ("127.0.0.1", from));
            }
        }
    })
}

fn setup_dhcp_offer_only(assets: &Assets, dir: &Path) -> Result<Setup> {
    let (to, from) = (netboot::free_udp_port()?, netboot::free_udp_port()?);
    let server = offer_only_server(to, from, dir.join(FAULT_LOG))?;
    let mut vm = kernel_vm(
        assets,
        ImageKind::Standard,
        &format!("ip=dhcp apkovl=http://{HOST_IP}:9/x.apkovl.tar.gz"),
    )?;
    vm.silent_nic("n0", &qemu_mac(0x56), to, from)
        .virtio_disk(&fallback_disk(assets, dir)?);
    // The init waits out its whole DHCP deadline first.
    let timeout = assets.accel.boot_timeout() + Duration::from_secs(30);
    Ok(with_server(vm, server, timeout))
}

/// The DHCP deadline of the init (crates/init/src/network.rs) plus slack.
const DHCP_BOUND_SECS: f64 = 20.0 + 3.0;

fn check_dhcp_offer_only(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    booted(outcome, report, |failures, report| {
        want_fallback(failures, outcome, report);
        let seen = fault_log(outcome);
        for (kind, name) in [("dhcp 1", "DISCOVER"), ("dhcp 3", "REQUEST")] {
            if !seen.iter().any(|l| l == kind) {
                failures.push(format!("the server saw no {name}: {seen:?}"));
            }
        }
        match failed_progress(&outcome.log, "Obtaining IP via DHCP (eth0)") {
            None => failures.push("no ` * Obtaining IP via DHCP (eth0): failed.` line".to_string()),
            Some(line) => {
                if !line.contains("server 10.0.2.2 offered 10.0.2.15 but never acknowledged") {
                    failures.push(format!(
                        "the DHCP failure does not name the missing ACK: {line:?}"
                    ));
                }
            }
        }
        let phases = report::phases(&outcome.log);
        let link_up = phases.iter().position(|(name, _)| name == "link-up");
        match link_up.and_then(|i| Some((phases[i].1, phases.get(i + 1)?))) {
            Some((start, (next, at))) => {
                if next == "dhcp-lease" {
                    failures.push("a lease was reported".to_string());
                }
                if at - start > DHCP_BOUND_SECS {
                    failures.push(format!(
                        "DHCP took {:.1} s (link-up to {next}), over its bound",
                        at - start
                    ));
                }
            }
            None => failures.push(format!("no phase after link-up: {phases:?}")),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DISCOVER as the init sends it, wrapped the way the guest NIC puts
    /// it on the wire.
    fn discover_frame(xid: [u8; 4], mac: [u8; 6]) -> Vec<u8> {
        let mut bootp = vec![1, 1, 6, 0];
        bootp.extend_from_slice(&xid);
        bootp.extend_from_slice(&[0; 20]);
        bootp.extend_from_slice(&mac);
        bootp.extend_from_slice(&[0; 10 + 64 + 128]);
        bootp.extend_from_slice(&DHCP_MAGIC);
        bootp.extend_from_slice(&[0, 53, 1, 1, 255]);
        let mut frame = vec![0xff; 6];
        frame.extend_from_slice(&mac);
        frame.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0]);
        frame.extend_from_slice(&[0; 4]);
        frame.extend_from_slice(&[255; 4]);
        frame.extend_from_slice(&[0, 68, 0, 67, 0, 0, 0, 0]);
        frame.extend_from_slice(&bootp);
        frame
    }

    #[test]
    fn offers_answer_the_discover_they_parse() {
        let mac = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
        let xid = [1, 2, 3, 4];
        assert_eq!(
            parse_client_frame(&discover_frame(xid, mac)),
            Some((1, xid, mac))
        );
        let offer = offer_frame(xid, mac);
        // The IPv4 header checksums to zero; the reply is a BOOTREPLY, not
        // something the parser (for client messages) accepts.
        assert_eq!(checksum(&offer[14..34]), 0);
        assert_eq!(parse_client_frame(&offer), None);
        assert_eq!(&offer[14 + 16..14 + 20], [255; 4]);
        assert_eq!(&offer[42 + 4..42 + 8], xid);
        assert_eq!(&offer[42 + 16..42 + 20], OFFERED);
        assert_eq!(&offer[42 + 28..42 + 34], mac);
        let udp_len = u16::from_be_bytes([offer[38], offer[39]]) as usize;
        assert_eq!(udp_len, offer.len() - 34);
        assert_eq!(parse_client_frame(&offer[..20]), None);
        assert_eq!(parse_client_frame(b""), None);
    }
}

//! A mail server for tests: it accepts every message over plain SMTP and keeps it, so that a
//! test can read the verification link Relais sent.

use std::{
    io::{BufRead, BufReader, Write},
    net::{TcpListener, TcpStream},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// One message as received: its recipients and its data (headers and body).
#[derive(Clone, Debug)]
pub struct Mail {
    /// The `RCPT TO` addresses.
    pub to: Vec<String>,
    /// Everything after `DATA`, dot-unstuffed.
    pub data: String,
}

impl Mail {
    /// The body with quoted-printable soft breaks and escapes undone, enough to read links.
    pub fn text(&self) -> String {
        let body = self.data.split_once("\r\n\r\n").map_or(self.data.as_str(), |(_, b)| b);
        if !self.data.to_ascii_lowercase().contains("quoted-printable") {
            return body.to_owned();
        }
        let joined = body.replace("=\r\n", "");
        let mut out = String::new();
        let mut rest = joined.as_str();
        while let Some(i) = rest.find('=') {
            out.push_str(&rest[..i]);
            match rest.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(byte) => {
                    out.push(char::from(byte));
                    rest = &rest[i + 3..];
                }
                None => {
                    out.push('=');
                    rest = &rest[i + 1..];
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// The first link in the body that contains `part`.
    pub fn link(&self, part: &str) -> Option<String> {
        self.text()
            .split_whitespace()
            .find(|word| word.contains(part))
            .map(|word| word.trim_end_matches(['.', ',', ')', '>']).to_owned())
    }
}

/// The mail server; it stops with the test process.
pub struct SmtpSink {
    /// Its port on 127.0.0.1.
    pub port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpSink {
    /// Starts listening on a free port.
    pub fn start() -> Self {
        Self::start_on(0)
    }

    /// Starts listening on `port` (0: a free one).
    pub fn start_on(port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the SMTP sink");
        let port = listener.local_addr().expect("address").port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let kept = mails.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let kept = kept.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &kept);
                });
            }
        });
        Self { port, mails }
    }

    /// Every message received so far.
    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().expect("mails").clone()
    }

    /// Waits (up to ten seconds) for the `n`th message (from 1) to `address`.
    pub async fn wait_for(&self, address: &str, n: usize) -> Mail {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let to_them: Vec<Mail> = self
                .mails()
                .into_iter()
                .filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(address)))
                .collect();
            if let Some(mail) = to_them.get(n - 1) {
                return mail.clone();
            }
            assert!(Instant::now() < deadline, "no message {n} to {address}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn serve(stream: TcpStream, mails: &Mutex<Vec<Mail>>) -> std::io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    writer.write_all(b"220 sink ESMTP\r\n")?;
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_ascii_uppercase();
        if command.starts_with("EHLO") {
            writer.write_all(b"250-sink\r\n250 8BITMIME\r\n")?;
        } else if command.starts_with("RCPT TO:") {
            let address = line.trim_end()[8..].trim().trim_matches(['<', '>']).to_owned();
            to.push(address.split('>').next().unwrap_or_default().to_owned());
            writer.write_all(b"250 OK\r\n")?;
        } else if command == "DATA" {
            writer.write_all(b"354 go on\r\n")?;
            let mut data = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            mails.lock().expect("mails").push(Mail { to: std::mem::take(&mut to), data });
            writer.write_all(b"250 OK\r\n")?;
        } else if command == "QUIT" {
            writer.write_all(b"221 bye\r\n")?;
            return Ok(());
        } else {
            writer.write_all(b"250 OK\r\n")?;
        }
    }
}

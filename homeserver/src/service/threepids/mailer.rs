//! Sending e-mail through the configured SMTP server.

use std::time::Duration;

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, header::ContentType},
    transport::smtp::authentication::Credentials,
};

use crate::config::{EmailConfig, SmtpSecurity};

/// The SMTP client.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// A client of the server of `config` (no connection is made until the first message).
    pub fn new(config: &EmailConfig) -> Result<Self, String> {
        let host = config.smtp_host.as_str();
        let builder = match config.smtp_security {
            SmtpSecurity::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host),
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host),
            SmtpSecurity::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)),
        }
        .map_err(|e| format!("SMTP server {host}: {e}"))?;
        let mut builder =
            builder.port(config.smtp_port).timeout(Some(Duration::from_secs(config.timeout_secs)));
        if !config.smtp_username.is_empty() {
            builder = builder.credentials(Credentials::new(
                config.smtp_username.clone(),
                config.smtp_password.clone(),
            ));
        }
        let from = config.from.parse().map_err(|e| format!("email.from: {e}"))?;
        Ok(Self { transport: builder.build(), from })
    }

    /// Sends a plain-text message to `to`.
    pub async fn send(&self, to: &str, subject: &str, body: String) -> Result<(), String> {
        let to: Mailbox = to.parse().map_err(|e| format!("address {to:?}: {e}"))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| e.to_string())?;
        self.transport.send(message).await.map(drop).map_err(|e| e.to_string())
    }
}

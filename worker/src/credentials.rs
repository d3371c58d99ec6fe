//! What a worker presents to the coordinator: its token (`--token-file`, else env
//! `BENCHFARM_WORKER_TOKEN`) as `authorization: Bearer …` on the stream, and for an `https://`
//! coordinator the CA that signed its certificate (`--ca`, env `BENCHFARM_CA`) and, where the
//! coordinator asks for one, this worker's client certificate (mTLS).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// A worker's credentials. Loaded once at start: a file that cannot be read fails the start, not
/// every reconnect.
#[derive(Clone, Default)]
pub struct Credentials {
    /// The ready `authorization` value.
    bearer: Option<MetadataValue<Ascii>>,
    tls: Option<ClientTlsConfig>,
}

impl std::fmt::Debug for Credentials {
    // Never prints the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("token", &self.bearer.is_some())
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// PEM files for TLS; all optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

impl Credentials {
    /// Credentials for `url` from a token (if any) and TLS files.
    pub fn new(url: &str, token: Option<&str>, tls: &TlsFiles) -> Result<Credentials> {
        let bearer = match token {
            Some(t) => Some(
                format!("Bearer {t}")
                    .parse::<MetadataValue<Ascii>>()
                    .context("the worker token holds characters a header cannot carry")?,
            ),
            None => None,
        };
        let https = url.starts_with("https://");
        let tls = if https || tls.ca.is_some() || tls.client_cert.is_some() {
            if !https {
                bail!("--ca/--client-cert given but {url} is not an https:// URL");
            }
            let ca = tls.ca.as_deref().with_context(|| {
                format!("{url}: https needs --ca (env BENCHFARM_CA): the CA that signed the coordinator's certificate")
            })?;
            let mut config =
                ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca, "CA")?));
            match (&tls.client_cert, &tls.client_key) {
                (Some(cert), Some(key)) => {
                    config = config.identity(Identity::from_pem(
                        read(cert, "client certificate")?,
                        read(key, "client key")?,
                    ));
                }
                (None, None) => {}
                _ => bail!("--client-cert and --client-key go together"),
            }
            Some(config)
        } else {
            None
        };
        Ok(Credentials { bearer, tls })
    }

    /// `endpoint` with TLS when configured.
    pub fn apply(&self, endpoint: Endpoint) -> Result<Endpoint, String> {
        match &self.tls {
            Some(tls) => endpoint
                .tls_config(tls.clone())
                .map_err(|e| format!("TLS configuration: {e}")),
            None => Ok(endpoint),
        }
    }

    /// Puts the token on a request.
    pub fn authorize<T>(&self, request: &mut tonic::Request<T>) {
        if let Some(value) = &self.bearer {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
    }
}

/// Reads a token file: its one line, trimmed.
pub fn read_token_file(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read token file {}", path.display()))?;
    let token = text.trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        bail!("{}: empty, or not a single-line token", path.display());
    }
    Ok(token.to_string())
}

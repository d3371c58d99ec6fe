//! How a client verb reaches the coordinator: its URL, the token it sends, and TLS.
//!
//! The token comes from `--token-file` or env `BENCHFARM_TOKEN` and travels as
//! `authorization: Bearer …` metadata on every call; the CA (`--ca`, env `BENCHFARM_CA`) makes an
//! `https://` URL trust a coordinator whose certificate a private CA signed, and
//! `--client-cert/--client-key` answer a coordinator that asks for client certificates (mTLS).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use benchfarm_proto::v1::farm_service_client::FarmServiceClient;
use benchfarm_proto::v1::model_service_client::ModelServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// A coordinator and the credentials to talk to it.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub url: String,
    pub token: Option<String>,
    pub tls: ClientTls,
}

/// PEM files for TLS; all optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// The CA that signed the coordinator's certificate (system roots are not used).
    pub ca: Option<PathBuf>,
    /// This client's certificate and key, for a coordinator that requires them.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

impl Target {
    /// A target with no credentials (a coordinator run with `--insecure-no-auth`).
    pub fn insecure(url: &str) -> Target {
        Target {
            url: url.to_string(),
            ..Target::default()
        }
    }

    /// A target that sends `token`.
    pub fn with_token(url: &str, token: &str) -> Target {
        Target {
            url: url.to_string(),
            token: Some(token.to_string()),
            ..Target::default()
        }
    }
}

/// Adds the bearer token to every request.
#[derive(Debug, Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// The client every verb uses.
pub type FarmClient = FarmServiceClient<InterceptedService<Channel, Bearer>>;
/// The client of `coordinator models`.
pub type ModelClient = ModelServiceClient<InterceptedService<Channel, Bearer>>;

/// Reads a token file: its one line, trimmed.
pub fn read_token_file(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read token file {}", path.display()))?;
    match crate::auth::tokens::parse_token_file(&text) {
        Some(token) => Ok(token.to_string()),
        None => bail!("{}: empty, or not a single-line token", path.display()),
    }
}

/// The TLS configuration of `tls` for `url`, or `None` for a plaintext `http://` URL without a CA.
pub fn tls_config(url: &str, tls: &ClientTls) -> Result<Option<ClientTlsConfig>> {
    let https = url.starts_with("https://");
    if !https && tls.ca.is_none() && tls.client_cert.is_none() {
        return Ok(None);
    }
    if !https {
        bail!("--ca/--client-cert given but {url} is not an https:// URL");
    }
    let mut config = ClientTlsConfig::new();
    match &tls.ca {
        Some(ca) => {
            let pem =
                std::fs::read(ca).with_context(|| format!("cannot read CA {}", ca.display()))?;
            config = config.ca_certificate(Certificate::from_pem(pem));
        }
        None => bail!(
            "{url}: https needs --ca (env BENCHFARM_CA): the CA that signed the coordinator's certificate"
        ),
    }
    match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => {
            let cert_pem = std::fs::read(cert)
                .with_context(|| format!("cannot read client certificate {}", cert.display()))?;
            let key_pem = std::fs::read(key)
                .with_context(|| format!("cannot read client key {}", key.display()))?;
            config = config.identity(Identity::from_pem(cert_pem, key_pem));
        }
        (None, None) => {}
        _ => bail!("--client-cert and --client-key go together"),
    }
    Ok(Some(config))
}

/// A connected FarmService client.
pub async fn connect(target: &Target) -> Result<FarmClient> {
    let (channel, bearer) = channel(target).await?;
    Ok(FarmServiceClient::with_interceptor(channel, bearer).max_decoding_message_size(64 << 20))
}

/// A connected ModelService client.
pub async fn connect_models(target: &Target) -> Result<ModelClient> {
    let (channel, bearer) = channel(target).await?;
    Ok(ModelServiceClient::with_interceptor(channel, bearer)
        .max_decoding_message_size(4 << 20)
        .max_encoding_message_size(4 << 20))
}

/// A channel to the target (its URL, TLS and flow-control windows), and the interceptor that
/// sends its token.
pub(crate) async fn channel(target: &Target) -> Result<(Channel, Bearer)> {
    let url = target.url.as_str();
    let mut endpoint = Endpoint::from_shared(url.to_string())
        .with_context(|| format!("invalid coordinator URL {url:?}"))?
        .connect_timeout(std::time::Duration::from_secs(5))
        // A model upload is one long stream: windows large enough that loopback and LAN links
        // are not held back by flow control.
        .initial_stream_window_size(8 << 20)
        .initial_connection_window_size(16 << 20);
    if let Some(tls) = tls_config(url, &target.tls)? {
        endpoint = endpoint
            .tls_config(tls)
            .with_context(|| format!("TLS configuration for {url}"))?;
    }
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("cannot reach the coordinator at {url}"))?;
    let bearer = match &target.token {
        Some(token) => Some(
            format!("Bearer {token}")
                .parse::<MetadataValue<Ascii>>()
                .context("the token holds characters a header cannot carry")?,
        ),
        None => None,
    };
    Ok((channel, Bearer(bearer)))
}

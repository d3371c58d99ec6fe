//! The gate as a tower layer in front of every gRPC service of the server.
//!
//! A tonic interceptor cannot see which method is called, so the check sits one level down, on the
//! HTTP request: its path names the method, its `authorization` header carries the token. An
//! admitted request goes on with its [`Caller`](super::Caller) in the request extensions (the
//! worker service binds a worker's identity to it); a refused one is answered here with the gRPC
//! status, and no service code runs.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::Status;
use tower::{Layer, Service};

use super::gate::Gate;

/// Adds the gate to a server (`Server::builder().layer(AuthLayer::new(gate))`).
#[derive(Debug, Clone)]
pub struct AuthLayer {
    gate: Gate,
}

impl AuthLayer {
    pub fn new(gate: Gate) -> AuthLayer {
        AuthLayer { gate }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Authenticated<S>;
    fn layer(&self, inner: S) -> Authenticated<S> {
        Authenticated {
            inner,
            gate: self.gate.clone(),
        }
    }
}

/// A service behind the gate.
#[derive(Debug, Clone)]
pub struct Authenticated<S> {
    inner: S,
    gate: Gate,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Authenticated<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let authorization = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match self.gate.admit(request.uri().path(), authorization) {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
                // The clone is not ready; the one that was polled ready handles this request.
                let clone = self.inner.clone();
                let mut ready = std::mem::replace(&mut self.inner, clone);
                Box::pin(ready.call(request))
            }
            Err(denied) => {
                tracing::info!(method = %request.uri().path(), reason = %denied, "request refused");
                let status: Status = denied.into();
                Box::pin(async move { Ok(status.into_http()) })
            }
        }
    }
}

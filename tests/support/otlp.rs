//! An OTLP metrics receiver for the tests, built on the opentelemetry-proto crate: one gRPC
//! server (tonic) and one HTTP server (`POST /v1/metrics`, protobuf), plain or over TLS, both
//! accepting gzip as a collector does and recording every export request they receive and
//! how it was encoded.

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use prost::Message;
use std::io::Read;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct Received(pub Arc<Mutex<Vec<ExportMetricsServiceRequest>>>, Encodings);

/// The content encoding of each request (`identity` when none).
#[derive(Clone, Default)]
pub struct Encodings(Arc<Mutex<Vec<String>>>);

impl Received {
    pub fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    pub fn all(&self) -> Vec<ExportMetricsServiceRequest> {
        self.0.lock().unwrap().clone()
    }
    /// The content encodings requests came with, in order.
    pub fn encodings(&self) -> Vec<String> {
        self.1.0.lock().unwrap().clone()
    }
    fn push(&self, req: ExportMetricsServiceRequest, encoding: Option<&str>) {
        self.1
            .0
            .lock()
            .unwrap()
            .push(encoding.unwrap_or("identity").to_string());
        self.0.lock().unwrap().push(req);
    }
}

#[tonic::async_trait]
impl MetricsService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let encoding = request
            .metadata()
            .get("grpc-encoding")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        self.push(request.into_inner(), encoding.as_deref());
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

/// A server certificate and key (PEM) to serve TLS with.
pub struct ServerTls {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

/// A receiver running on its own thread and runtime; `port` is where it listens.
pub struct Receiver {
    pub port: u16,
    pub received: Received,
    _runtime: tokio::runtime::Runtime,
}

impl Receiver {
    /// A runtime and a bound loopback listener to serve on.
    fn prepare() -> (tokio::runtime::Runtime, tokio::net::TcpListener, u16) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        (runtime, listener, port)
    }

    pub fn grpc() -> Self {
        Self::grpc_with(None)
    }

    /// gRPC over TLS with this certificate.
    pub fn grpc_tls(tls: ServerTls) -> Self {
        Self::grpc_with(Some(tls))
    }

    fn grpc_with(tls: Option<ServerTls>) -> Self {
        let (runtime, listener, port) = Self::prepare();
        let received = Received::default();
        let svc = MetricsServiceServer::new(received.clone())
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            // rustls has both providers compiled in (ring here, aws-lc through object_store):
            // tonic's server needs a process default.
            let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
            let identity = tonic::transport::Identity::from_pem(tls.cert_pem, tls.key_pem);
            builder = builder
                .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
                .expect("server TLS config");
        }
        runtime.spawn(async move {
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
            let _ = builder.add_service(svc).serve_with_incoming(incoming).await;
        });
        Self {
            port,
            received,
            _runtime: runtime,
        }
    }

    fn http_app(received: &Received) -> axum::Router {
        let sink = received.clone();
        axum::Router::new().route(
            "/v1/metrics",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: bytes::Bytes| {
                let sink = sink.clone();
                async move {
                    let encoding = headers
                        .get("content-encoding")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let raw = match encoding.as_deref() {
                        None | Some("identity") => body.to_vec(),
                        Some("gzip") => {
                            let mut out = Vec::new();
                            if flate2::read::GzDecoder::new(&body[..])
                                .read_to_end(&mut out)
                                .is_err()
                            {
                                return (axum::http::StatusCode::BAD_REQUEST, Vec::new());
                            }
                            out
                        }
                        Some(_) => {
                            return (axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE, Vec::new());
                        }
                    };
                    match ExportMetricsServiceRequest::decode(&raw[..]) {
                        Ok(req) => {
                            sink.push(req, encoding.as_deref());
                            (axum::http::StatusCode::OK, Vec::new())
                        }
                        Err(_) => (axum::http::StatusCode::BAD_REQUEST, Vec::new()),
                    }
                }
            }),
        )
    }

    pub fn http() -> Self {
        let (runtime, listener, port) = Self::prepare();
        let received = Received::default();
        let app = Self::http_app(&received);
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            port,
            received,
            _runtime: runtime,
        }
    }

    /// `POST /v1/metrics` over TLS (rustls with ring) with this certificate.
    pub fn http_tls(tls: ServerTls) -> Self {
        use tokio_rustls::rustls;
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let (runtime, listener, port) = Self::prepare();
        let received = Received::default();
        let app = Self::http_app(&received);
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&tls.cert_pem)
            .collect::<Result<_, _>>()
            .expect("server certificate PEM");
        let key = PrivateKeyDer::from_pem_slice(&tls.key_pem).expect("server key PEM");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server TLS config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        runtime.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let app = app.clone();
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            port,
            received,
            _runtime: runtime,
        }
    }
}

//! An OTLP metrics receiver for the tests, built on the opentelemetry-proto crate: one gRPC
//! server (tonic) and one HTTP server (`POST /v1/metrics`, protobuf), both recording every
//! export request they receive.

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use prost::Message;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct Received(pub Arc<Mutex<Vec<ExportMetricsServiceRequest>>>);

impl Received {
    pub fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    pub fn all(&self) -> Vec<ExportMetricsServiceRequest> {
        self.0.lock().unwrap().clone()
    }
}

#[tonic::async_trait]
impl MetricsService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
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
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        (runtime, listener, port)
    }

    pub fn grpc() -> Self {
        let (runtime, listener, port) = Self::prepare();
        let received = Received::default();
        let svc = MetricsServiceServer::new(received.clone());
        runtime.spawn(async move {
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
            let _ = tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(incoming)
                .await;
        });
        Self {
            port,
            received,
            _runtime: runtime,
        }
    }

    pub fn http() -> Self {
        let (runtime, listener, port) = Self::prepare();
        let received = Received::default();
        let sink = received.clone();
        let app = axum::Router::new().route(
            "/v1/metrics",
            axum::routing::post(move |body: bytes::Bytes| {
                let sink = sink.clone();
                async move {
                    match ExportMetricsServiceRequest::decode(body) {
                        Ok(req) => {
                            sink.0.lock().unwrap().push(req);
                            (axum::http::StatusCode::OK, Vec::new())
                        }
                        Err(_) => (axum::http::StatusCode::BAD_REQUEST, Vec::new()),
                    }
                }
            }),
        );
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            port,
            received,
            _runtime: runtime,
        }
    }
}

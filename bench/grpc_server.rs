//! The gRPC server behind the sidecar and Envoy in `bench/grpc`: `bench.Bench/Echo`, a
//! unary call that answers the request's message as it came (tonic's server-side call
//! handling and prost, on hyper's HTTP/2 server; h2c, prior knowledge).
//!
//!   cargo run --release --example bench_grpc_server -- 127.0.0.1:PORT
//!
//! One Tokio worker thread, like the proxies in front of it.

use std::convert::Infallible;
use std::task::{Context, Poll};

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tonic::Status;
use tonic_prost::ProstCodec;

#[derive(Clone, PartialEq, prost::Message)]
pub struct Msg {
    #[prost(bytes = "bytes", tag = "1")]
    pub data: bytes::Bytes,
}

#[derive(Clone, Copy)]
struct Echo;

impl tower_service::Service<tonic::Request<Msg>> for Echo {
    type Response = tonic::Response<Msg>;
    type Error = Status;
    type Future = std::future::Ready<Result<tonic::Response<Msg>, Status>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, req: tonic::Request<Msg>) -> Self::Future {
        std::future::ready(Ok(tonic::Response::new(req.into_inner())))
    }
}

async fn handle(req: http::Request<Incoming>) -> http::Response<tonic::body::Body> {
    if req.uri().path() != "/bench.Bench/Echo" {
        return Status::unimplemented("no such method").into_http();
    }
    tonic::server::Grpc::new(ProstCodec::<Msg, Msg>::default())
        .unary(Echo, req)
        .await
}

fn main() -> anyhow::Result<()> {
    let addr: std::net::SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:50051".into())
        .parse()?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            loop {
                let (stream, _) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(|req| async move {
                        Ok::<_, Infallible>(handle(req).await)
                    });
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .max_concurrent_streams(1024)
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        })
}

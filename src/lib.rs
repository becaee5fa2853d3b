//! A small async HTTP/1.1 client for the smol stack, with a connection pool
//! that never recycles a connection while a response still uses it.
//!
//! The pool lends each request a *lease* on a connection. The response body
//! owns that lease, and the only way a connection goes back to the pool is
//! the body reader reaching the clean end of a reusable exchange. A body
//! dropped before its end keeps its connection only when the rest has
//! already arrived (read without waiting, up to
//! [`ClientBuilder::max_drain_on_drop`]); otherwise, and after an error, a
//! timeout or a cancelled future, the socket is closed. So a half-read body can never be parsed as the next
//! response, and dropping the [`Client`] never breaks a response in flight.
//!
//! No task is spawned and no runtime is needed: every byte moves inside the
//! future you poll, under any executor.
//!
//! ```no_run
//! # smol::block_on(async {
//! let client = smolreq::Client::new();
//! let resp = client.get("http://127.0.0.1:8080/items").header("accept", "application/json").send().await?;
//! assert!(resp.status().is_success());
//! let text = resp.text().await?; // the connection goes back to the pool here
//! # Ok::<(), smolreq::Error>(()) });
//! ```
//!
//! A [`RequestBuilder`] and the future of its `send` own a clone of their
//! client, so a request can be spawned as it is:
//! `smol::spawn(client.get(url).send())`.
//!
//! Cargo features: `native-tls` (on by default) for `https://`; `json`
//! for `RequestBuilder::json`; `form` for `RequestBuilder::form` and a
//! `RequestBuilder::query` that takes any `serde::Serialize` value.
//!
//! What a hostile server can do is bounded: response head size, header
//! count, chunk-size line and trailer size are limited (see
//! [`ClientBuilder`]), framing follows RFC 9112 strictly, and a request is
//! retried only when that is safe (once, on a fresh connection, for an
//! idempotent method whose body can be replayed, when a reused connection
//! failed before any response byte arrived).

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

mod builder;
mod client;
mod conn;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod pool;
mod proto;
#[cfg_attr(not(feature = "proxy"), allow(dead_code))] // the route type stays; its uses go
mod proxy;
mod redirect;
mod request;
mod resolve;
mod response;
#[cfg(feature = "native-tls")]
mod tls;
mod transport;
#[cfg(feature = "proxy")]
mod tunnel;
mod upload;
mod url;
mod util;

pub use builder::ClientBuilder;
pub use client::Client;
pub use error::{Error, ErrorKind, Result};
pub use pool::PoolStats;
#[cfg(feature = "proxy")]
pub use proxy::{NoProxy, Proxy};

pub use request::RequestBuilder;
pub use response::{Body, BytesStream, Response};
#[cfg(feature = "native-tls")]
pub use tls::{Certificate, Identity, TlsVersion};
pub use transport::{Destination, Io};
pub use url::IntoUrl;

pub use http::{self, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version};

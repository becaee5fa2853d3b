//! The response API of issue 12: `Send + Sync` types.

mod common;

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn public_types_are_send_and_sync() {
    assert_send_sync::<smolreq::Response>();
    assert_send_sync::<smolreq::Body>();
    assert_send_sync::<smolreq::Error>();
    assert_send_sync::<smolreq::Client>();
    // Send only: its body reader is `Box<dyn AsyncRead + Send>` (src/request.rs).
    assert_send::<smolreq::RequestBuilder<'static>>();
}

fn assert_send<T: Send>() {}

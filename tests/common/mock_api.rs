//! A mock HTTP API on loopback (wiremock on a runtime of its own), driven from synchronous
//! tests; the teacher and engine mock servers build on it.

use wiremock::{Mock, MockServer, Request};

pub struct MockApi {
    pub runtime: tokio::runtime::Runtime,
    pub server: MockServer,
}

impl MockApi {
    pub fn start() -> Self {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let server = runtime.block_on(MockServer::start());
        Self { runtime, server }
    }

    pub fn mount(&self, mock: Mock) {
        self.runtime.block_on(mock.mount(&self.server));
    }

    /// Forget the mocks and the requests received.
    pub fn reset(&self) {
        self.runtime.block_on(self.server.reset());
    }

    /// The requests received so far.
    pub fn received(&self) -> Vec<Request> {
        self.runtime
            .block_on(self.server.received_requests())
            .unwrap_or_default()
    }
}

//! A mock HTTP API on loopback (wiremock on a runtime of its own), driven from synchronous
//! tests; the teacher and engine mock servers build on it.

use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

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

    /// Answer the first POST requests with `failures`, one each and in order; later ones go
    /// to the mocks mounted at the default priority.
    pub fn fail_first(&self, failures: impl IntoIterator<Item = ResponseTemplate>) {
        for (i, failure) in failures.into_iter().enumerate() {
            // wiremock tries lower priorities first; 5 is the default.
            let priority = u8::try_from(i + 1).ok().filter(|&p| p < 5);
            self.mount(
                Mock::given(method("POST"))
                    .respond_with(failure)
                    .up_to_n_times(1)
                    .with_priority(priority.expect("at most 4 failures before the default mocks")),
            );
        }
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

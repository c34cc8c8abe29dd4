//! The `transport` import of collectors: the host forwards each request to
//! the `client` the strategy of the same run returned from `connect`.

use std::sync::Arc;

use tokio::sync::Mutex;
use wasmtime::Store;
use wasmtime::component::ResourceAny;

use super::bindings::{Request, Response, TransportError, collector, strategy};
use super::journal::journal;
use super::sandbox::Sandbox;

/// The strategy side of a run: its store, its bindings and the live client.
pub struct StrategySession {
    pub store: Store<Sandbox>,
    pub bindings: strategy::Strategy,
    pub client: ResourceAny,
}

/// Collectors hold this to reach the strategy; requests are serialised
/// because a component instance is single-threaded.
pub type TransportLink = Arc<Mutex<StrategySession>>;

impl StrategySession {
    pub async fn exec(
        &mut self,
        request: Request,
    ) -> wasmtime::Result<Result<Response, TransportError>> {
        let StrategySession {
            store,
            bindings,
            client,
        } = self;
        let response = bindings
            .checkhost_plugin_strategy_plugin()
            .client()
            .call_exec(&mut *store, *client, &request)
            .await;
        // A traced run keeps the first answer's timings: a strategy that
        // connects on its first request measured its set-up there.
        if let Ok(Ok(answer)) = &response
            && store.data().traced
            && let Some(timeline) = journal(&store.data().journal).timeline.as_mut()
        {
            timeline.connect_timings.get_or_insert(answer.timings);
        }
        response
    }
}

impl collector::checkhost::plugin::transport::Host for Sandbox {
    async fn exec(
        &mut self,
        request: Request,
    ) -> wasmtime::Result<Result<Response, TransportError>> {
        let Some(link) = self.transport.clone() else {
            return Ok(Err(TransportError::Other(
                "no strategy client in this run".into(),
            )));
        };
        let mut session = link.lock().await;
        // The lock serialises transport calls: the requests the strategy
        // sends until it is released are this collector's.
        let traced = self.mark_caller(true);
        let response = session.exec(request).await;
        if traced {
            self.mark_caller(false);
        }
        response
    }
}

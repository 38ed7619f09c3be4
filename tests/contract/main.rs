//! Contract suites below HTTP: the `Store` and `Queue` traits' promises,
//! each test written once and run against every backend (the store on
//! SQLite and PostgreSQL, the queue on SQLite, PostgreSQL and Redis).
//!
//! Each (test, backend) pair is a test of its own, named
//! `<suite>::<test>::<backend>`, on a backend opened fresh for it
//! (`backends.rs`), so a failure names the backend and tests run in
//! parallel. A backend whose implementation drifts from the contract keeps
//! the test, ignored on that backend only, with the reason.

/// `contract_tests! { queue; some_test: sqlite, #[ignore = "…"] postgres, redis; … }`
/// makes `mod some_test { async fn sqlite() … }` etc., each opening
/// `backends::<backend>::<kind>()` and running the suite's `some_test` on it.
macro_rules! contract_tests {
    ($kind:ident; $( $test:ident : $( $(#[$attr:meta])* $backend:ident ),+ ; )*) => {
        $(
            mod $test {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    $(#[$attr])*
                    async fn $backend() {
                        // None: the backend's server is absent and not required.
                        let Some(fresh) = crate::backends::$backend::$kind().await else {
                            return;
                        };
                        super::$test(fresh.it.clone()).await;
                        fresh.it.close().await;
                    }
                )+
            }
        )*
    };
}

mod backends;
mod queue;
mod store;
#[path = "../support/mod.rs"]
mod support;
mod webhooks;

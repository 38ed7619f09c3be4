//! The job runtime: workers that claim and run jobs, the scheduler that
//! enqueues periodic ones, and what each built-in kind does. It works on a
//! [`Context`] and the queue behind [`crate::queue::Queue`]; nothing here
//! knows of HTTP.

pub mod context;
pub mod dispatcher;
pub mod import;
pub mod kinds;
pub mod schedule;
pub mod scheduler;
pub mod worker;

pub use context::Context;

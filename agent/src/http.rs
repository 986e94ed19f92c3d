//! The metrics endpoint: `/metrics` (Prometheus text, rendered per scrape from the pinned
//! maps and the agent's counters) and `/healthz` (200 while reconciles keep happening, 503
//! with why when the last one is too old or failed). tiny_http, on its own thread: a scrape
//! every few seconds needs no async runtime.

use crate::metrics::AgentMetrics;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What `/healthz` reports on.
#[derive(Debug)]
pub struct Health {
    /// When the last reconcile ended, and its error if it failed.
    pub last: Mutex<(Instant, Option<String>)>,
    /// How old the last reconcile may be before the agent is unhealthy.
    pub max_age: Duration,
}

impl Health {
    /// Healthy now, with `max_age`.
    pub fn new(max_age: Duration) -> Health {
        Health {
            last: Mutex::new((Instant::now(), None)),
            max_age,
        }
    }

    /// Records a reconcile's end.
    pub fn record(&self, error: Option<String>) {
        if let Ok(mut l) = self.last.lock() {
            *l = (Instant::now(), error);
        }
    }

    /// `Ok` or why not.
    pub fn check(&self) -> Result<(), String> {
        let Ok(l) = self.last.lock() else {
            return Err("the agent's state is poisoned".into());
        };
        if let Some(e) = &l.1 {
            return Err(format!("the last reconcile failed: {e}"));
        }
        let age = l.0.elapsed();
        if age > self.max_age {
            return Err(format!(
                "no reconcile for {:.0} s (limit {:.0} s)",
                age.as_secs_f64(),
                self.max_age.as_secs_f64()
            ));
        }
        Ok(())
    }
}

/// A running endpoint; stops when dropped.
pub struct Server {
    server: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The address it listens on (the port chosen when 0 was asked for).
    pub addr: String,
}

impl Server {
    /// Listens on `addr` and serves until dropped.
    pub fn start(
        addr: &str,
        metrics: AgentMetrics,
        health: Arc<Health>,
    ) -> Result<Server, crate::AgentError> {
        let server = tiny_http::Server::http(addr).map_err(|e| crate::AgentError::Metrics {
            addr: addr.to_string(),
            why: e.to_string(),
        })?;
        let bound = server
            .server_addr()
            .to_ip()
            .map_or_else(|| addr.to_string(), |a| a.to_string());
        let server = Arc::new(server);
        let s = server.clone();
        let thread = std::thread::spawn(move || {
            for req in s.incoming_requests() {
                let _ = respond(req, &metrics, &health);
            }
        });
        Ok(Server {
            server,
            thread: Some(thread),
            addr: bound,
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn respond(
    req: tiny_http::Request,
    metrics: &AgentMetrics,
    health: &Health,
) -> std::io::Result<()> {
    use tiny_http::{Header, Method, Response};
    if *req.method() != Method::Get && *req.method() != Method::Head {
        return req.respond(Response::from_string("only GET\n").with_status_code(405));
    }
    let path = req.url().split('?').next().unwrap_or("").to_string();
    match path.as_str() {
        "/metrics" => {
            let mut resp = Response::from_string(metrics.render());
            // A constant, valid header: from_bytes cannot refuse it.
            if let Ok(h) = Header::from_bytes(
                &b"Content-Type"[..],
                &b"application/openmetrics-text; version=1.0.0; charset=utf-8"[..],
            ) {
                resp.add_header(h);
            }
            req.respond(resp)
        }
        "/healthz" => match health.check() {
            Ok(()) => req.respond(Response::from_string("ok\n")),
            Err(why) => req.respond(
                Response::from_string(format!("unhealthy: {why}\n")).with_status_code(503),
            ),
        },
        _ => req.respond(
            Response::from_string("not found; try /metrics or /healthz\n").with_status_code(404),
        ),
    }
}

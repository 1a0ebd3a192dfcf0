//! `--app lcore`: the perf application as a stage of the declared pipeline, polled by the worker
//! lcore's generated loop right before the channel stage: what it sends in an iteration the channel's
//! emit takes in the same iteration, and what the channel delivers while receiving (in `on_packet`) it
//! sees in that iteration's emit.
//!
//! Every `perf_<channel>.yaml` document declares [`AppStage`] before its channel stage, so both modes
//! run the same declared pipeline. Whether the stage does anything is decided before launch:
//! [`plan`] hands it the application to run (`--app lcore`); without a plan (`--app thread`) the
//! stage only passes packets on (one branch per iteration) and the application thread takes the
//! endpoint instead. The stage talks to the channel through the same public endpoint an application
//! thread would use (taken by name on the first iteration, once the channel stage declared after it
//! has registered it), and it never blocks: each iteration it does what the endpoint allows now
//! ([`ClientApp::poll`] / [`ServerApp::poll`] with no wait and a bounded budget), so the channel stage
//! gets the lcore back every iteration.

use std::marker::PhantomData;
use std::net::SocketAddrV4;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rosette::pipeline::{BuildError, Context, Stage, Verdict};
use rosette::substrate::{Batch, Mbuf};

use super::app::{ClientApp, ClientOutcome, ClientPlan, Progress, ServerApp, ServerReport, Step, Wire};

/// What the application stage of this process runs (set before launch by [`plan`]).
#[derive(Debug, Clone)]
pub enum Plan {
    /// The sender.
    Client {
        /// Its settings.
        plan: ClientPlan,
        /// Where unordered datagrams go.
        peer: Option<SocketAddrV4>,
        /// Ends the sending phase early (Ctrl-C).
        interrupted: &'static AtomicBool,
        /// Live counters for the main thread.
        progress: Arc<Progress>,
    },
    /// The receiver.
    Server {
        /// In-order channel.
        ordered: bool,
        /// Message size, bytes.
        size: usize,
        /// Set by the main thread at end of stream.
        stop: &'static AtomicBool,
    },
}

/// What the stage leaves when its application is done.
#[derive(Debug)]
pub enum Outcome {
    /// The sender's.
    Client(ClientOutcome),
    /// The receiver's.
    Server(ServerReport),
}

pub(crate) static PLAN: Mutex<Option<Plan>> = Mutex::new(None);
static OUTCOME: Mutex<Option<Result<Outcome, String>>> = Mutex::new(None);

/// Makes the next [`AppStage`] built in this process run `plan` (`--app lcore`).
pub fn plan(plan: Plan) {
    *PLAN.lock().unwrap_or_else(|p| p.into_inner()) = Some(plan);
}

/// The outcome once the lcore's application finished (or failed to start), taken once.
pub fn take_outcome() -> Option<Result<Outcome, String>> {
    OUTCOME.lock().unwrap_or_else(|p| p.into_inner()).take()
}

pub(crate) fn publish(outcome: Result<Outcome, String>) {
    *OUTCOME.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
}

/// Messages the sender offers per loop iteration at most: enough to fill several packets, few
/// enough that the channel stage runs again within microseconds.
const LCORE_BUDGET: u32 = 256;

enum Running<W> {
    /// Planned; the endpoint is taken on the first iteration (the channel stage declared after this
    /// one registers it when it is built, after this stage).
    Planned(Plan),
    /// Done: the endpoint is kept until the stage is dropped (after the loop), so the channel never
    /// sees its application leave mid-run.
    Finished(Option<W>),
    Client(W, Box<ClientApp>),
    Server(W, Box<ServerApp>),
}

/// The application stage: `W` is the endpoint adapter of the channel it follows
/// ([`super::app::ReliableWire`], [`super::app::StreamWire`], [`super::app::UnorderedWire`]).
#[derive(rosette::pipeline::StageParams)]
pub struct AppStage<W: Wire> {
    /// The endpoint name of the channel stage this application talks to (its `endpoint` param).
    pub channel: String,
    #[param(skip)]
    running: Option<RunningBox<W>>,
    #[param(skip)]
    marker: PhantomData<W>,
}

/// Holds the running application (boxed: the stage itself stays small in the loop's frame).
pub struct RunningBox<W>(Running<W>);

impl<W: Wire> rosette::pipeline::DeclaredStage for AppStage<W> {
    type Params = Self;
    fn build(mut params: Self, _env: &rosette::pipeline::StageEnv) -> Result<Self, BuildError> {
        if let Some(plan) = PLAN.lock().unwrap_or_else(|p| p.into_inner()).take() {
            params.running = Some(RunningBox(Running::Planned(plan)));
        }
        Ok(params)
    }
}

impl<W: Wire> AppStage<W> {
    /// Takes the endpoint and starts the planned application.
    fn start(&self, plan: Plan) -> Result<Running<W>, String> {
        let fail = |e| format!("endpoint {:?}: {e}", self.channel);
        Ok(match plan {
            Plan::Client { plan, peer, interrupted, progress } => {
                let wire = W::open(&self.channel, Duration::ZERO, plan.size, peer).map_err(fail)?;
                let plan = ClientPlan { budget: LCORE_BUDGET, ..plan };
                Running::Client(wire, Box::new(ClientApp::new(plan, interrupted, progress)))
            }
            Plan::Server { ordered, size, stop } => {
                let wire = W::open(&self.channel, Duration::ZERO, size, None).map_err(fail)?;
                Running::Server(wire, Box::new(ServerApp::new(ordered, size, stop)))
            }
        })
    }
}

impl<W: Wire> Stage for AppStage<W> {
    #[inline(always)]
    fn on_packet(&mut self, packet: Mbuf, _cx: &Context) -> Verdict {
        Verdict::Pass(packet)
    }

    #[inline]
    fn emit(&mut self, _out: &mut Batch<'_>, _cx: &Context) {
        let Some(RunningBox(running)) = &mut self.running else { return };
        if let Running::Planned(plan) = running {
            let plan = plan.clone();
            match self.start(plan) {
                Ok(started) => self.running = Some(RunningBox(started)),
                Err(e) => {
                    self.running = Some(RunningBox(Running::Finished(None)));
                    publish(Err(e));
                }
            }
            return;
        }
        let done = match running {
            Running::Planned(_) | Running::Finished(_) => false,
            Running::Client(w, app) => app.poll(w, Duration::ZERO) == Step::Done,
            Running::Server(w, app) => app.poll(w, Duration::ZERO) == Step::Done,
        };
        if done {
            self.finish_app();
        }
    }

    fn finish(&mut self, _cx: &Context) {
        // The loop stopped before the application finished (a failed start, a signal): say so.
        if let Some(RunningBox(Running::Client(..) | Running::Server(..))) = &self.running {
            self.finish_app();
        }
    }
}

impl<W: Wire> AppStage<W> {
    fn finish_app(&mut self) {
        let Some(RunningBox(running)) = self.running.as_mut() else { return };
        match std::mem::replace(running, Running::Finished(None)) {
            Running::Client(w, app) => {
                *running = Running::Finished(Some(w));
                publish(Ok(Outcome::Client(app.into_outcome())));
            }
            Running::Server(w, app) => {
                *running = Running::Finished(Some(w));
                publish(Ok(Outcome::Server(app.into_report())));
            }
            other @ (Running::Planned(_) | Running::Finished(_)) => *running = other,
        }
    }
}

//! The process's long-running stages (processor, alert feed, maintenance jobs) and whether
//! each still runs. Health is ready only while every registered stage runs, so a supervisor
//! or load balancer sees a failed stage at once, not a live process that does nothing.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "error", rename_all = "snake_case")]
pub enum StageState {
    Running,
    /// A job that ends by itself (a file replay) did its work.
    Done,
    /// A long-running stage ended without an error (shutdown).
    Stopped,
    Failed(String),
}

#[derive(Debug, Default)]
pub struct Stages {
    states: Mutex<BTreeMap<String, StageState>>,
}

impl Stages {
    pub fn set(&self, stage: &str, state: StageState) {
        // A poisoned lock only means a panic elsewhere while holding it; the map is
        // still a valid map.
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        states.insert(stage.to_string(), state);
    }

    pub fn snapshot(&self) -> BTreeMap<String, StageState> {
        self.states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Every registered stage runs (or, for a job, finished its work).
    pub fn ready(&self) -> bool {
        self.snapshot()
            .values()
            .all(|s| matches!(s, StageState::Running | StageState::Done))
    }

    /// Run a long-running stage to its end, recording its state; a failure is logged the
    /// moment it happens, with the stage's name.
    pub async fn track<E: std::fmt::Display>(
        &self,
        stage: &str,
        fut: impl std::future::Future<Output = Result<(), E>>,
    ) -> Result<(), E> {
        self.run(stage, StageState::Stopped, fut).await
    }

    /// As [`Stages::track`], for a job whose normal end is success, not a stop.
    pub async fn track_job<E: std::fmt::Display>(
        &self,
        stage: &str,
        fut: impl std::future::Future<Output = Result<(), E>>,
    ) -> Result<(), E> {
        self.run(stage, StageState::Done, fut).await
    }

    async fn run<E: std::fmt::Display>(
        &self,
        stage: &str,
        on_success: StageState,
        fut: impl std::future::Future<Output = Result<(), E>>,
    ) -> Result<(), E> {
        self.set(stage, StageState::Running);
        let res = fut.await;
        match &res {
            Ok(()) => self.set(stage, on_success),
            Err(e) => {
                let msg = format!("{e:#}");
                tracing::error!(stage, error = %msg, "stage failed");
                self.set(stage, StageState::Failed(msg));
            }
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_stage_makes_the_process_not_ready() {
        let stages = Stages::default();
        assert!(stages.ready(), "nothing registered yet");
        stages.set("feed", StageState::Running);
        let r = stages
            .track("processor", async {
                Err::<(), _>("database or disk is full")
            })
            .await;
        assert!(r.is_err());
        assert!(!stages.ready());
        let other = Stages::default();
        other
            .track_job("replay", async { Ok::<(), String>(()) })
            .await
            .expect("job");
        assert!(other.ready(), "a finished job is not a failure");
        other
            .track("feed", async { Ok::<(), String>(()) })
            .await
            .expect("stage");
        assert!(!other.ready(), "a stopped stage is");
        assert_eq!(
            stages.snapshot()["processor"],
            StageState::Failed("database or disk is full".into())
        );
    }
}

//! `soc-dev eval-triage`: without a key it sends nothing; against a local server speaking
//! the OpenAI protocol it scores the model's verdicts against the corpus labels.

use std::path::PathBuf;
use std::time::Duration;

fn corpus(rel: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpora")).join(rel)
}

fn eval_args(extra: &[&str]) -> soc_devtools::eval_triage::EvalTriageArgs {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: soc_devtools::eval_triage::EvalTriageArgs,
    }
    let corpus = corpus("crowdsec-hub");
    let mut argv = vec!["eval-triage".to_string(), corpus.display().to_string()];
    argv.extend(extra.iter().map(|s| s.to_string()));
    Cli::parse_from(argv).args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_triage_evaluation_without_a_key_sends_nothing_and_exits_cleanly() {
    // The Groq profile with a key variable that is not set.
    std::env::remove_var("SOC_TEST_UNSET_KEY");
    let mut args = eval_args(&["--only", "ssh-bf"]);
    args.config.llm_profile = Some("groq".into());
    let config = tempfile::tempdir().expect("dir");
    let file = config.path().join("soc.toml");
    std::fs::write(&file, "[triage]\napi_key_env = \"SOC_TEST_UNSET_KEY\"\n").expect("write");
    args.config.config = Some(file);
    let summary = soc_devtools::eval_triage::run(args)
        .await
        .expect("exits cleanly");
    assert_eq!(summary, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_triage_evaluation_scores_the_models_verdicts_against_the_labels() {
    let fake =
        soc_devtools::fake_llm::FakeLlm::start(30, Duration::from_millis(10)).expect("fake server");
    let args = eval_args(&[
        "--only",
        "ssh-bf",
        "--llm-profile",
        "vllm",
        "--llm-base-url",
        &fake.base_url,
    ]);
    let s = soc_devtools::eval_triage::run(args)
        .await
        .expect("evaluation runs")
        .expect("a summary");
    // The ssh-bf tests' alerts are attacks; the fake model calls them true positives.
    assert!(s.alerts > 0 && s.scored > 0, "{s:?}");
    assert_eq!(s.agree, s.scored, "{s:?}");
    assert_eq!(s.fallback, 0);
    assert!(s.calls >= 1 && s.calls <= s.alerts * 2, "{s:?}");
    fake.stop().await;
}

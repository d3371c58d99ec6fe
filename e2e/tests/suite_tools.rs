//! The suite tools a suite author uses (`suite check`, `suite grade`) and `regrade` of a finished
//! run after a grader change.

use std::time::Duration;

use benchfarm_coordinator::cli::suite_cmd;
use benchfarm_coordinator::store::Store;
use benchfarm_e2e::in_process::*;
use benchfarm_proto::v1 as pb;

fn run_cli(f: impl FnOnce(&mut Vec<u8>) -> anyhow::Result<i32>) -> (i32, String) {
    let mut out = Vec::new();
    let code = f(&mut out).unwrap();
    (code, String::from_utf8(out).unwrap())
}

#[test]
fn suite_check_of_the_builtin_suite_agrees_on_every_example() {
    let (code, out) = run_cli(|o| suite_cmd::check("agent-coding", o));
    assert_eq!(code, 0, "{out}");
    let last = out.lines().last().unwrap();
    let (agree, total) = last.split_once(" of ").unwrap();
    assert_eq!(last, format!("{agree} of {agree} examples agree"), "{out}");
    assert!(
        total.starts_with(agree) && agree.parse::<u32>().unwrap() >= 40,
        "{last}"
    );
}

#[test]
fn suite_check_reports_errors_and_disagreements() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "name = \"b\"\nversion = \"1\"\n[[tasks]]\nid = \"t\"\ncategory = \"c\"\nprompt = \"p\"\npass = [{ contians = \"x\" }]\n").unwrap();
    let (code, out) = run_cli(|o| suite_cmd::check(broken.to_str().unwrap(), o));
    assert_eq!(code, 1);
    assert!(out.contains("broken.toml:7:"), "{out}");
    assert!(out.contains("contians"), "{out}");

    let wrong = dir.path().join("wrong.toml");
    std::fs::write(
        &wrong,
        "name = \"w\"\nversion = \"1\"\n[[tasks]]\nid = \"t\"\ncategory = \"c\"\nprompt = \"p\"\npass = [{ contains = \"ls\" }]\n\
         [[tasks.examples]]\nanswer = \"ls -la\"\ngrade = \"pass\"\n[[tasks.examples]]\nanswer = \"dir\"\ngrade = \"pass\"\n",
    )
    .unwrap();
    let (code, out) = run_cli(|o| suite_cmd::check(wrong.to_str().unwrap(), o));
    assert_eq!(code, 1, "{out}");
    assert_eq!(out.lines().last(), Some("1 of 2 examples agree"), "{out}");
}

#[test]
fn suite_grade_explains_each_check() {
    let answer = "Here you go:\n```bash\njq '.services[] | select(.name == \"db\") | .port' config.json\n```".to_string();
    let (code, out) = run_cli(|o| suite_cmd::grade("agent-coding", "parse-json", Some(answer), o));
    assert_eq!(code, 0);
    assert!(out.starts_with("pass"), "{out}");
    assert!(out.contains("contains \"config.json\""), "{out}");
    let (code, out) =
        run_cli(|o| suite_cmd::grade("agent-coding", "no-such-task", Some(String::new()), o));
    assert_eq!(code, 2);
    assert!(out.contains("parse-json"), "lists the tasks: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regrade_recomputes_grades_and_keeps_history() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = "name = \"mini\"\nversion = \"1\"\n[[tasks]]\nid = \"t\"\ncategory = \"c\"\nprompt = \"list files\"\n\
              pass = [{ contains = \"ls -la\" }]\npartial = [{ contains = \"ls\" }]\n";
    std::fs::write(dir.path().join("mini.toml"), v1).unwrap();
    std::fs::write(
        dir.path().join("m.toml"),
        "name = \"m\"\n[answers]\nt = [\"ls -a\", \"ls -la\", \"dir\"]\n",
    )
    .unwrap();
    let request = plan(
        dir.path(),
        "suite = \"mini.toml\"\nrepetitions = 3\n[[models]]\nscripted = \"m.toml\"\n",
    );
    let server = start_server(&dir.path().join("data"), Duration::from_secs(30)).await;
    let url = url(&server);
    let worker = start_scripted_worker(&url, "w1", dir.path());
    let mut client = client(&url).await;
    wait_workers(&mut client, 1).await;
    let run = client.submit_run(request).await.unwrap().into_inner();
    wait_run(&mut client, &run.run_id, Duration::from_secs(60)).await;
    let before = report_json(&mut client, &run.run_id).await;
    // "ls -a": partial, "ls -la": pass, "dir": fail.
    assert_eq!(
        (
            before["models"][0]["pass"].as_u64(),
            before["models"][0]["partial"].as_u64()
        ),
        (Some(1), Some(1))
    );

    // The grader is fixed: any `ls` with -a passes.
    let v2 = v1
        .replace("version = \"1\"", "version = \"2\"")
        .replace("contains = \"ls -la\"", "regex = 'ls -l?a'");
    let r = client
        .regrade_run(pb::RegradeRunRequest {
            run_id: run.run_id.clone(),
            suite_toml: v2,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (r.results, r.changed, r.suite_version.as_str()),
        (3, 1, "2")
    );
    assert_eq!(r.changes, vec!["m t: partial -> pass x1".to_string()]);
    let after = report_json(&mut client, &run.run_id).await;
    assert_eq!(
        (
            after["models"][0]["pass"].as_u64(),
            after["models"][0]["partial"].as_u64()
        ),
        (Some(2), Some(0))
    );
    assert_eq!(after["suite"]["version"], "2");
    // A different suite is refused.
    let status = client
        .regrade_run(pb::RegradeRunRequest {
            run_id: run.run_id.clone(),
            suite_toml: v1.replace("\"mini\"", "\"other\""),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    worker.leave().await;
    server.shutdown().await.unwrap();

    let store = Store::open_waiting(&dir.path().join("data"), Duration::from_secs(10)).unwrap();
    let results = store.results_of_run(&run.run_id).unwrap();
    assert!(
        results
            .iter()
            .all(|r| r.grade_history.len() == 1 && r.grade_history[0].suite_version == "1")
    );
    let run = store.run(&run.run_id).unwrap().unwrap();
    assert_eq!(run.suite_history.len(), 1);
}

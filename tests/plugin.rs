//! `kubectl actortoken` end to end: the plugin binary run as different people (kubeconfigs
//! that impersonate them, read through `KUBECONFIG` or `--kubeconfig`), against the real API
//! server with the chart's admission policies, the operator and the Clerk simulator.

mod support;

use std::{
    path::{Path, PathBuf},
    process::{Output, Stdio},
    sync::OnceLock,
};

use actor_token_operator::api::Phase;
use clerk_sim::TokenStatus;
use kube::{
    api::{Patch, PatchParams},
    config::Kubeconfig,
};
use serde_json::{Value, json};
use std::process::Command;
use support::{
    admission::{POLICIES_OFF_LABEL, apply_yaml, grant, instance_rules, requester_rules},
    control_plane,
    env::{Env, WAIT},
    eventually, repo_root,
};

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.com";
const DAVE: &str = "dave@example.com";
const SUPPORT: &str = "support-team";

/// The plugin binary, built from the workspace (a no-op when `make test` built it already).
fn plugin_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        // This test runs from <target>/<profile>/deps/; the plugin lands in <target>/<profile>/.
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let target_dir = profile_dir.parent().unwrap();
        let profile = match profile_dir.file_name().unwrap().to_str().unwrap() {
            "debug" => "dev",
            other => other,
        };
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .current_dir(repo_root())
            .args([
                "build",
                "--quiet",
                "-p",
                "kubectl-actortoken",
                "--profile",
                profile,
            ])
            .arg("--target-dir")
            .arg(target_dir)
            .status()
            .expect("run cargo build for the plugin");
        assert!(status.success(), "building kubectl-actortoken failed");
        profile_dir.join("kubectl-actortoken")
    })
}

/// A kubeconfig that acts as `user` (with `groups`) through the admin's impersonation, as a
/// person's own kubeconfig would authenticate them, with `namespace` as its context's default.
fn kubeconfig_as(dir: &Path, user: &str, groups: &[&str], namespace: &str) -> PathBuf {
    let mut config = Kubeconfig::read_from(&control_plane().kubeconfig).unwrap();
    for named in &mut config.auth_infos {
        let info = named.auth_info.as_mut().unwrap();
        info.impersonate = Some(user.into());
        info.impersonate_groups = Some(groups.iter().map(|g| g.to_string()).collect());
    }
    for named in &mut config.contexts {
        named.context.as_mut().unwrap().namespace = Some(namespace.into());
    }
    let path = dir.join(format!("{}.kubeconfig", user.split('@').next().unwrap()));
    std::fs::write(&path, serde_json::to_string(&config).unwrap()).unwrap();
    path
}

/// A stand-in browser: writes the link it is given into `opened`.
fn stand_in_browser(dir: &Path) -> (PathBuf, PathBuf) {
    let script = dir.join("browser.sh");
    let opened = dir.join("opened");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nprintf '%s' \"$1\" > '{}'\n", opened.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, opened)
}

/// People and their kubeconfigs in a test's namespace.
struct People {
    dir: tempfile::TempDir,
    ns: String,
}

impl People {
    fn new(env: &Env) -> People {
        People {
            dir: tempfile::tempdir().unwrap(),
            ns: env.ns.name.clone(),
        }
    }

    /// The plugin as `user` (of group `support-team`), found by `KUBECONFIG`.
    fn plugin(&self, user: &str) -> Command {
        let kubeconfig = kubeconfig_as(self.dir.path(), user, &[SUPPORT], &self.ns);
        let mut cmd = Command::new(plugin_binary());
        cmd.env("KUBECONFIG", kubeconfig)
            .env_remove("BROWSER")
            .stdin(Stdio::null());
        cmd
    }
}

impl People {
    /// Starts the plugin as `user` with `args` in the background, its progress (stderr) going
    /// to the file it returns, to be read while it runs.
    fn start(&self, user: &str, args: &[&str]) -> (std::process::Child, PathBuf) {
        let progress = self.dir.path().join(format!("{user}-{}.err", args[0]));
        let mut cmd = self.plugin(user);
        cmd.args(args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&progress).unwrap());
        (cmd.spawn().unwrap(), progress)
    }
}

/// Runs the plugin to its end, off the test's runtime (which serves the Clerk simulator).
async fn run(mut cmd: Command, args: &[&str]) -> Output {
    cmd.args(args);
    tokio::task::spawn_blocking(move || cmd.output().expect("run kubectl-actortoken"))
        .await
        .unwrap()
}

/// Waits for a plugin started in the background.
async fn finish(child: std::process::Child) -> Output {
    let done = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap());
    tokio::time::timeout(WAIT, done)
        .await
        .expect("the plugin to finish")
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited with a code")
}

fn expect_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({:?}): {}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// RBAC as the chart's roles give it: alice requests through `clerk` and reads links (and, when
/// `senior`, reads RBAC to see who may approve, and approves others' requests herself); bob
/// approves through `clerk`; carol follows requests and may write their status but has no
/// `approve`; dave requests but may not read links.
fn grant_people(env: &Env, senior: bool) {
    let reads_rbac = senior;
    let ns = Some(env.ns.name.as_str());
    let follow = json!([
        { "apiGroups": ["actortokens.dev"], "resources": ["actortokenrequests"], "verbs": ["get", "list", "watch"] },
        { "apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["get", "list", "watch"] }
    ]);
    let decide = json!([
        { "apiGroups": ["actortokens.dev"], "resources": ["actortokenrequests/status"], "verbs": ["get", "update", "patch"] }
    ]);
    let concat = |parts: &[Value]| {
        Value::Array(
            parts
                .iter()
                .flat_map(|p| p.as_array().unwrap().clone())
                .collect(),
        )
    };
    for (user, name) in [(ALICE, "alice"), (DAVE, "dave")] {
        let mut rules = vec![
            requester_rules(),
            follow.clone(),
            instance_rules("use", "clerkinstances", Some("clerk")),
        ];
        if user == ALICE {
            rules.push(json!([{ "apiGroups": [""], "resources": ["secrets"], "verbs": ["get"] }]));
            if senior {
                rules.push(json!([{ "apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"], "verbs": ["list"] }]));
                rules.push(decide.clone());
                rules.push(instance_rules("approve", "clerkinstances", Some("clerk")));
            }
        }
        grant(ns, &format!("requester-{name}"), user, concat(&rules));
    }
    if reads_rbac {
        let rules = json!([{ "apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles", "clusterrolebindings"], "verbs": ["list"] }]);
        grant(None, &format!("rbac-reader-{}", env.ns.name), ALICE, rules);
    }
    grant(
        ns,
        "approver-bob",
        BOB,
        concat(&[
            follow.clone(),
            decide.clone(),
            instance_rules("approve", "clerkinstances", Some("clerk")),
        ]),
    );
    grant(ns, "follower-carol", CAROL, concat(&[follow, decide]));
}

async fn instance(env: &Env, approval_required: bool) {
    let mut spec = json!({ "apiUrl": env.sim.api_url(), "secretKeyRef": { "name": "clerk-key", "key": "secretKey" } });
    if approval_required {
        spec["approval"] = json!({ "required": true });
    }
    env.apply(json!({
        "apiVersion": "actortokens.dev/v1alpha1", "kind": "ClerkInstance",
        "metadata": { "name": "clerk", "namespace": env.ns.name }, "spec": spec
    }))
    .await;
}

/// The sign-in link the simulator made for the request `name`.
async fn link_of(env: &Env, name: &str) -> String {
    let request = env.requests.get(name).await.unwrap();
    let id = request.status.unwrap().token_id.expect("a token ID");
    env.sim
        .token(&id)
        .expect("the simulator knows the token")
        .url
}

/// No link or token the simulator made is in `output`.
fn assert_no_credential(env: &Env, what: &str, output: &str) {
    env.assert_no_credential_in(what, output);
}

async fn wait_for_file_text(path: &Path, what: &str, wanted: &str) -> String {
    eventually(WAIT, what, || async {
        let content = std::fs::read_to_string(path).unwrap_or_default();
        content.contains(wanted).then_some(content)
    })
    .await
}

#[tokio::test]
async fn request_url_list_describe_and_revoke_end_to_end_without_approval() {
    let env = Env::start("plugin-open").await;
    instance(&env, false).await;
    grant_people(&env, false);
    let people = People::new(&env);
    let (browser, opened) = stand_in_browser(people.dir.path());

    // alice asks and has the link opened in her (stand-in) browser: nothing on stdout.
    let mut cmd = people.plugin(ALICE);
    cmd.env("BROWSER", &browser);
    let out = run(
        cmd,
        &[
            "request",
            "user_2customer",
            "--actor",
            "user_2alice",
            "--for",
            "15m",
            "--reason",
            "TICKET-1",
            "--instance",
            "ClerkInstance/clerk",
            "--name",
            "t-1",
            "--open",
        ],
    )
    .await;
    expect_ok(&out, "request --open");
    let link = link_of(&env, "t-1").await;
    assert_eq!(std::fs::read_to_string(&opened).unwrap(), link);
    assert_eq!(text(&out.stdout), "", "--open prints no link");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("Opened the sign-in link with"), "{stderr}");
    assert_no_credential(&env, "request --open's output", &stderr);
    let request = env.requests.get("t-1").await.unwrap();
    assert_eq!(request.spec.requester.unwrap().username, ALICE);

    // `url` prints the same link, and only that, on stdout.
    let out = run(people.plugin(ALICE), &["url", "t-1"]).await;
    expect_ok(&out, "url");
    assert_eq!(text(&out.stdout), format!("{link}\n"));

    // dave may request but not read links: the API server's refusal, and where to get the right.
    let out = run(people.plugin(DAVE), &["url", "t-1"]).await;
    assert_eq!(code(&out), 3, "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("Error from server (Forbidden)"), "{stderr}");
    assert!(
        stderr.contains(DAVE),
        "the API server's own words: {stderr}"
    );
    assert!(stderr.contains("link-reader"), "{stderr}");

    // dave may not use the ClusterClerkInstance `default` (the instance when none is named).
    let out = run(
        people.plugin(DAVE),
        &[
            "request",
            "user_2customer",
            "--actor",
            "user_2dave",
            "--reason",
            "TICKET-3",
        ],
    )
    .await;
    assert_eq!(code(&out), 3, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!(
            "{DAVE} may not use ClusterClerkInstance default: RBAC verb use on it is needed"
        )),
        "the admission policy's words: {}",
        text(&out.stderr)
    );

    // --no-wait returns the generated name at once; list shows both, describe tells the story.
    let out = run(
        people.plugin(ALICE),
        &[
            "request",
            "user_2other",
            "--actor",
            "user_2alice",
            "--reason",
            "TICKET-2",
            "--instance",
            "clerkinstance/clerk",
            "--no-wait",
        ],
    )
    .await;
    expect_ok(&out, "request --no-wait");
    let generated = text(&out.stdout).trim().to_string();
    assert!(generated.starts_with("user-2other-"), "{generated}");
    env.wait_phase(&generated, Phase::Issued).await;

    let out = run(people.plugin(ALICE), &["list"]).await;
    expect_ok(&out, "list");
    let table = text(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{table}");
    assert!(lines[0].contains("REQUESTER") && lines[0].contains("EXPIRES IN"));
    let row = lines
        .iter()
        .find(|l| l.starts_with("t-1 "))
        .expect("t-1 listed");
    for cell in [ALICE, "user_2alice", "user_2customer", "Issued"] {
        assert!(row.contains(cell), "{cell} missing in {row:?}");
    }
    // Time left on a 15m link: 15m at first, 14m a second later.
    assert!(row.contains(" 15m ") || row.contains(" 14m "), "{row:?}");
    assert!(table.contains(&generated), "{table}");
    assert_no_credential(&env, "list's output", &table);

    let out = run(
        people.plugin(ALICE),
        &["describe", "t-1", "-n", &env.ns.name],
    )
    .await;
    expect_ok(&out, "describe");
    let story = text(&out.stdout);
    for part in [
        "Phase:         Issued",
        &format!("Requested by:  {ALICE} [groups: {SUPPORT}]"),
        "Reason:        TICKET-1",
        "Link:          in Secret t-1 (kubectl actortoken url t-1)",
        "Conditions:",
        "Events:\n  AGE ",
        "Normal   Issued",
    ] {
        assert!(story.contains(part), "{part:?} missing in\n{story}");
    }
    assert_no_credential(&env, "describe's output", &story);

    // revoke: the request and its Secret gone, the token revoked at Clerk.
    let id = env
        .requests
        .get("t-1")
        .await
        .unwrap()
        .status
        .unwrap()
        .token_id
        .unwrap();
    // The operator deletes the Secret just after it lets the request go. Someone's finalizer
    // holds it here until alice's plugin is waiting on it: alice may only `get` Secrets (no
    // `list`, so no watch), and her wait still ends when it is gone.
    let hold = |finalizers: Value| {
        let secrets = env.secrets.clone();
        async move {
            let patch = json!({ "metadata": { "finalizers": finalizers } });
            secrets
                .patch("t-1", &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap();
        }
    };
    hold(json!(["tests.actortokens.dev/hold"])).await;
    let (revoking, progress) = people.start(ALICE, &["revoke", "t-1"]);
    wait_for_file_text(
        &progress,
        "alice's plugin to wait for the Secret",
        "Secret t-1 to be deleted",
    )
    .await;
    hold(Value::Null).await;
    let mut out = finish(revoking).await;
    out.stderr = std::fs::read(&progress).unwrap();
    expect_ok(&out, "revoke");
    assert!(env.requests.get_opt("t-1").await.unwrap().is_none());
    assert!(env.secrets.get_opt("t-1").await.unwrap().is_none());
    assert_eq!(env.sim.token(&id).unwrap().status, TokenStatus::Revoked);
    assert!(
        text(&out.stderr).contains("Secret t-1 deleted"),
        "{}",
        text(&out.stderr)
    );

    // What is gone is not found, with its own exit code.
    let out = run(people.plugin(ALICE), &["url", "t-1"]).await;
    assert_eq!(code(&out), 8, "{}", text(&out.stderr));
}

#[tokio::test]
async fn alice_requests_bob_approves_alice_reads_the_link_and_revokes() {
    let env = Env::start("plugin-approve").await;
    instance(&env, true).await;
    grant_people(&env, true);
    let people = People::new(&env);

    // alice asks and waits; her progress says for what, and who could approve.
    let (waiting, progress) = people.start(
        ALICE,
        &[
            "request",
            "user_2customer",
            "--actor",
            "user_2alice",
            "--for",
            "15m",
            "--reason",
            "TICKET-7",
            "--instance",
            "ClerkInstance/clerk",
            "--name",
            "t-1",
            "--timeout",
            "2m",
        ],
    );
    let told = wait_for_file_text(
        &progress,
        "alice to be told she waits for approval",
        "waiting for approval by",
    )
    .await;
    assert!(
        told.contains(&format!("User {BOB} (Role approver-bob)")),
        "bob named as an approver: {told}"
    );
    assert!(!told.contains(&format!("User {ALICE}")), "{told}");
    assert!(
        told.contains(&format!(
            "kubectl actortoken approve t-1 -n {}",
            env.ns.name
        )),
        "{told}"
    );
    env.wait_reason("t-1", "AwaitingApproval").await;

    // No link yet: exit 6, and why.
    let out = run(people.plugin(ALICE), &["url", "t-1"]).await;
    assert_eq!(code(&out), 6, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("waits for approval"),
        "{}",
        text(&out.stderr)
    );

    // alice may not approve her own request; carol has no `approve`: the API server's words.
    let out = run(people.plugin(ALICE), &["approve", "t-1"]).await;
    assert_eq!(code(&out), 3, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!(
            "{ALICE} requested this: someone else must approve or deny it"
        )),
        "{}",
        text(&out.stderr)
    );
    let out = run(people.plugin(CAROL), &["approve", "t-1"]).await;
    assert_eq!(code(&out), 3, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!(
            "{CAROL} may not approve or deny requests through ClerkInstance clerk"
        )),
        "{}",
        text(&out.stderr)
    );
    assert!(
        env.sim.tokens().is_empty(),
        "nothing minted before approval"
    );

    // bob approves; alice's wait ends with the link on stdout.
    let out = run(
        people.plugin(BOB),
        &["approve", "t-1", "--reason", "checked TICKET-7"],
    )
    .await;
    expect_ok(&out, "bob's approve");
    let done = finish(waiting).await;
    let stderr = std::fs::read_to_string(&progress).unwrap();
    assert!(done.status.success(), "alice's request: {stderr}");
    let link = link_of(&env, "t-1").await;
    assert_eq!(text(&done.stdout), format!("{link}\n"));
    assert_no_credential(&env, "request's progress", &stderr);

    let request = env.requests.get("t-1").await.unwrap();
    let decided = request.status.as_ref().unwrap().decided_by.clone().unwrap();
    assert_eq!(decided.username, BOB);

    // A decision is final: bob can't approve twice, nor deny now.
    for args in [
        &["approve", "t-1"][..],
        &["deny", "t-1", "--reason", "changed my mind"][..],
    ] {
        let out = run(people.plugin(BOB), args).await;
        assert_eq!(code(&out), 3, "{args:?}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains(&format!("it is already Approved by {BOB}")),
            "{}",
            text(&out.stderr)
        );
    }

    // list and describe name the approver.
    let out = run(people.plugin(ALICE), &["list"]).await;
    expect_ok(&out, "list");
    let row = text(&out.stdout)
        .lines()
        .find(|l| l.starts_with("t-1 "))
        .map(String::from)
        .unwrap();
    assert!(row.contains(BOB) && row.contains("Issued"), "{row}");
    let out = run(people.plugin(ALICE), &["describe", "t-1"]).await;
    let story = text(&out.stdout);
    assert!(
        story.contains(&format!("Approved by:   {BOB} [groups: {SUPPORT}]")),
        "{story}"
    );
    assert!(story.contains("checked TICKET-7"), "{story}");

    // alice reads the link into her (stand-in) browser, then revokes it.
    let (browser, opened) = stand_in_browser(people.dir.path());
    let mut cmd = people.plugin(ALICE);
    cmd.env("BROWSER", &browser);
    let out = run(cmd, &["url", "t-1", "--open"]).await;
    expect_ok(&out, "url --open");
    assert_eq!(std::fs::read_to_string(&opened).unwrap(), link);
    assert_eq!(text(&out.stdout), "");

    let id = request.status.unwrap().token_id.unwrap();
    let out = run(people.plugin(ALICE), &["revoke", "t-1"]).await;
    expect_ok(&out, "revoke");
    assert_eq!(env.sim.token(&id).unwrap().status, TokenStatus::Revoked);
    assert!(env.secrets.get_opt("t-1").await.unwrap().is_none());
}

#[tokio::test]
async fn a_denial_ends_the_wait_with_exit_5_and_nothing_is_minted() {
    let env = Env::start("plugin-deny").await;
    instance(&env, true).await;
    grant_people(&env, false);
    let people = People::new(&env);

    let (waiting, progress) = people.start(
        ALICE,
        &[
            "request",
            "user_2customer",
            "--actor",
            "user_2alice",
            "--reason",
            "TICKET-8",
            "--instance",
            "ClerkInstance/clerk",
            "--name",
            "t-2",
            "--timeout",
            "2m",
        ],
    );
    // alice may not read RBAC: she is told which right to look for instead of names.
    let told = wait_for_file_text(
        &progress,
        "alice to be told she waits for approval",
        "waiting for approval by",
    )
    .await;
    assert!(
        told.contains(&format!(
            "someone with RBAC verb approve on ClerkInstance clerk in namespace {}",
            env.ns.name
        )),
        "{told}"
    );

    // deny needs a reason (a usage error otherwise), then bob denies.
    let out = run(people.plugin(BOB), &["deny", "t-2"]).await;
    assert_eq!(code(&out), 2, "{}", text(&out.stderr));
    let out = run(
        people.plugin(BOB),
        &["deny", "t-2", "--reason", "no ticket for this customer"],
    )
    .await;
    expect_ok(&out, "bob's deny");

    let done = finish(waiting).await;
    let stderr = std::fs::read_to_string(&progress).unwrap();
    assert_eq!(done.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains(&format!("denied by {BOB}: no ticket for this customer")),
        "{stderr}"
    );
    assert_eq!(text(&done.stdout), "");
    let out = run(people.plugin(ALICE), &["url", "t-2"]).await;
    assert_eq!(code(&out), 5, "{}", text(&out.stderr));
    assert!(
        env.sim.tokens().is_empty(),
        "a denied request never reaches Clerk"
    );

    // Waiting is bounded: --timeout ends it with exit 4, and the request stays.
    let out = run(
        people.plugin(ALICE),
        &[
            "request",
            "user_2customer",
            "--actor",
            "user_2alice",
            "--reason",
            "TICKET-9",
            "--instance",
            "ClerkInstance/clerk",
            "--name",
            "t-3",
            "--timeout",
            "2s",
        ],
    )
    .await;
    assert_eq!(code(&out), 4, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("timed out after 2s waiting for approval"),
        "{}",
        text(&out.stderr)
    );
    assert!(env.requests.get_opt("t-3").await.unwrap().is_some());
}

#[tokio::test]
async fn whoami_tells_each_person_what_they_may_do() {
    let env = Env::start("plugin-whoami").await;
    instance(&env, true).await;
    grant_people(&env, false);
    let people = People::new(&env);
    let ns = env.ns.name.as_str();

    // --kubeconfig and -n work as in kubectl, here for alice.
    let kubeconfig = kubeconfig_as(people.dir.path(), ALICE, &[SUPPORT], "default");
    let mut cmd = Command::new(plugin_binary());
    cmd.env_remove("KUBECONFIG")
        .arg("--kubeconfig")
        .arg(&kubeconfig);
    let out = run(cmd, &["whoami", "-n", ns]).await;
    expect_ok(&out, "whoami as alice");
    let report = text(&out.stdout);
    assert!(
        report.starts_with(&format!("You are {ALICE} (groups: {SUPPORT})")),
        "{report}"
    );
    assert!(
        report.contains(&format!("In namespace {ns} you may:")),
        "{report}"
    );
    for line in [
        "request links     yes",
        "read links        yes",
        "approve or deny   no",
    ] {
        assert!(report.contains(line), "{line:?} missing in\n{report}");
    }
    let clerk = report
        .lines()
        .find(|l| l.contains("ClerkInstance ") && l.contains(" clerk "))
        .unwrap_or_else(|| panic!("clerk missing in\n{report}"));
    assert_eq!(
        clerk.split_whitespace().collect::<Vec<_>>(),
        ["ClerkInstance", "clerk", "yes", "no", "?"],
        "alice may use clerk, not approve; she may not read it: {report}"
    );

    let out = run(people.plugin(BOB), &["whoami"]).await;
    expect_ok(&out, "whoami as bob");
    let report = text(&out.stdout);
    assert!(report.contains("approve or deny   yes"), "{report}");
    let clerk = report
        .lines()
        .find(|l| l.contains("ClerkInstance ") && l.contains(" clerk "))
        .unwrap_or_else(|| panic!("clerk missing in\n{report}"));
    assert_eq!(
        clerk.split_whitespace().collect::<Vec<_>>(),
        ["ClerkInstance", "clerk", "no", "yes", "?"],
        "{report}"
    );
}

#[test]
fn completion_scripts_and_usage_errors_need_no_cluster() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(plugin_binary())
            .args(["completion", shell])
            .env("KUBECONFIG", "/nonexistent")
            .output()
            .unwrap();
        expect_ok(&out, shell);
        assert!(text(&out.stdout).contains("kubectl-actortoken"), "{shell}");
    }
    let out = Command::new(plugin_binary())
        .args(["request", "user_2x"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", text(&out.stderr));
    let out = Command::new(plugin_binary())
        .args(["request", "--help"])
        .output()
        .unwrap();
    expect_ok(&out, "request --help");
    assert!(text(&out.stdout).contains("Examples:"));
}

#[tokio::test]
async fn where_the_admission_policies_are_missing_the_plugin_still_names_who_asked_and_who_approved()
 {
    let env = Env::start("plugin-nopolicy").await;
    apply_yaml(
        &json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": env.ns.name, "labels": { POLICIES_OFF_LABEL: "off" } } })
            .to_string(),
    );
    instance(&env, true).await;
    grant_people(&env, false);
    let people = People::new(&env);

    let out = run(
        people.plugin(ALICE),
        &[
            "request",
            "user_2customer",
            "--actor",
            "user_2alice",
            "--reason",
            "TICKET-10",
            "--instance",
            "ClerkInstance/clerk",
            "--name",
            "t-4",
            "--no-wait",
        ],
    )
    .await;
    expect_ok(&out, "request --no-wait");
    env.wait_reason("t-4", "AwaitingApproval").await;
    let requester = env.requests.get("t-4").await.unwrap().spec.requester;
    assert_eq!(requester.unwrap().username, ALICE);

    // Nothing refuses carol at the door here (which shows the policies are off); the operator
    // discards her approval, as she may not approve.
    let out = run(people.plugin(CAROL), &["approve", "t-4"]).await;
    expect_ok(&out, "carol's approve, unchecked by admission");
    env.assert_events("DecisionDiscarded", 1).await;
    eventually(WAIT, "carol's approval to be taken away", || async {
        let request = env.requests.get("t-4").await.unwrap();
        support::env::condition(&request, "Approved")
            .is_none()
            .then_some(())
    })
    .await;

    // bob's approval names him itself (no mutating policy stamps it): the operator accepts it.
    let out = run(people.plugin(BOB), &["approve", "t-4"]).await;
    expect_ok(&out, "bob's approve");
    env.wait_phase("t-4", Phase::Issued).await;
    let out = run(people.plugin(ALICE), &["url", "t-4"]).await;
    expect_ok(&out, "url");
    assert_eq!(
        text(&out.stdout),
        format!("{}\n", link_of(&env, "t-4").await)
    );
}

//! The Git side: a bare repository served over Git's smart HTTP protocol on 127.0.0.1 (Flux's
//! source-controller fetches with go-git, which can't read the "dumb" protocol of static files),
//! and a working copy in which the test commits and pushes, as a merged pull request lands.
//!
//! Each HTTP request runs Git's own CGI program, `git http-backend` (Debian's git ships it).
//! The CGI host is ours, a few lines on axum (already a dependency), rather than a web server
//! to install and configure: it starts and stops with the test.

use std::{
    io::{Read, Write},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Arc,
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri},
    response::Response,
};

/// Where Debian's git keeps its helper programs.
const GIT_HTTP_BACKEND: &str = "/usr/lib/git-core/git-http-backend";

/// A smart-HTTP Git server for every bare repository under its root, stopped when dropped.
pub struct GitServer {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl GitServer {
    pub async fn start(root: &Path) -> GitServer {
        assert!(
            Path::new(GIT_HTTP_BACKEND).exists(),
            "{GIT_HTTP_BACKEND} is missing: install git (Debian: apt-get install git)"
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Git server");
        let addr = listener.local_addr().unwrap();
        let router = Router::new()
            .fallback(cgi)
            .with_state(Arc::new(root.to_path_buf()));
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .await
                .expect("serve Git over HTTP");
        });
        GitServer { addr, task }
    }

    /// The clone URL of the bare repository `name` (a folder `name.git` under the root).
    pub fn url(&self, name: &str) -> String {
        format!("http://{}/{name}.git", self.addr)
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One HTTP request, answered by a `git http-backend` process of its own.
async fn cgi(
    State(root): State<Arc<PathBuf>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let env = [
        ("GIT_PROJECT_ROOT", root.display().to_string()),
        ("GIT_HTTP_EXPORT_ALL", "1".to_owned()),
        ("REQUEST_METHOD", method.to_string()),
        ("PATH_INFO", uri.path().to_owned()),
        ("QUERY_STRING", uri.query().unwrap_or_default().to_owned()),
        ("CONTENT_TYPE", header("content-type")),
        ("CONTENT_LENGTH", body.len().to_string()),
        ("HTTP_CONTENT_ENCODING", header("content-encoding")),
        // Protocol v2 when the client asks for it.
        ("GIT_PROTOCOL", header("git-protocol")),
        ("REMOTE_ADDR", "127.0.0.1".to_owned()),
    ];
    let output = tokio::task::spawn_blocking(move || run_backend(&env, &body))
        .await
        .expect("the git http-backend task");
    match output.map(|out| parse_cgi(&out)) {
        Ok(Ok(answer)) => answer.into_response(),
        Ok(Err(e)) | Err(e) => Response::builder()
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .body(Body::from(e))
            .unwrap(),
    }
}

/// Runs `git http-backend` with the CGI environment and the request body on its stdin (fed
/// from a thread, so that a large answer can't block a large request), and returns its stdout.
fn run_backend(env: &[(&str, String)], body: &[u8]) -> Result<Vec<u8>, String> {
    let mut child = Command::new(GIT_HTTP_BACKEND)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("start {GIT_HTTP_BACKEND}: {e}"))?;
    let mut stdin = child.stdin.take().unwrap();
    let body = body.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&body));
    let mut stdout = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .map_err(|e| format!("read git http-backend's answer: {e}"))?;
    let output = child
        .wait_with_output()
        .map_err(|e| format!("wait for git http-backend: {e}"))?;
    let _ = feeder.join();
    if !output.status.success() && stdout.is_empty() {
        return Err(format!(
            "git http-backend failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(stdout)
}

/// A CGI program's answer: a `Status:` header (200 when absent), other headers, the body.
#[derive(Debug, PartialEq)]
pub struct CgiAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl CgiAnswer {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        for (name, value) in self.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::try_from(name.as_str()),
                HeaderValue::try_from(value.as_str()),
            ) {
                response.headers_mut().append(name, value);
            }
        }
        response
    }
}

/// Splits a CGI program's output (RFC 3875: header lines ended by CRLF or LF, an empty line,
/// the body) into an answer.
pub fn parse_cgi(output: &[u8]) -> Result<CgiAnswer, String> {
    let (head_len, sep_len) = [&b"\r\n\r\n"[..], b"\n\n"]
        .iter()
        .filter_map(|sep| {
            output
                .windows(sep.len())
                .position(|w| w == *sep)
                .map(|at| (at, sep.len()))
        })
        .min()
        .ok_or("the CGI answer has no end of headers")?;
    let head = std::str::from_utf8(&output[..head_len]).map_err(|e| e.to_string())?;
    let mut answer = CgiAnswer {
        status: 200,
        headers: Vec::new(),
        body: output[head_len + sep_len..].to_vec(),
    };
    for line in head.lines().map(|l| l.trim_end_matches('\r')) {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("a CGI header line without a colon: {line:?}"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            answer.status = value
                .split_whitespace()
                .next()
                .and_then(|code| code.parse().ok())
                .ok_or_else(|| format!("a CGI Status header without a code: {value:?}"))?;
        } else {
            answer.headers.push((name.to_owned(), value.to_owned()));
        }
    }
    Ok(answer)
}

/// A bare repository under the server's root and the test's working copy of it.
pub struct Repo {
    pub work: PathBuf,
}

/// A commit pushed to the served branch.
#[derive(Clone, Debug)]
pub struct Commit {
    pub sha: String,
    /// As Flux writes a Git revision: `main@sha1:<sha>`.
    pub revision: String,
}

pub const BRANCH: &str = "main";

impl Repo {
    /// Creates `root/name.git` (bare) and a working copy `root/name-work` whose first commit
    /// holds `files` (path, content), pushed.
    pub fn create(root: &Path, name: &str, files: &[(&str, &str)]) -> (Repo, Commit) {
        let bare = root.join(format!("{name}.git"));
        let work = root.join(format!("{name}-work"));
        run(git(root, &["init", "--quiet", "--bare", "-b", BRANCH]).arg(&bare));
        run(git(root, &["init", "--quiet", "-b", BRANCH]).arg(&work));
        run(git(&work, &["remote", "add", "origin"]).arg(&bare));
        let repo = Repo { work };
        for (path, content) in files {
            repo.write(path, content);
        }
        let first = repo.commit("Start the support-access repository");
        (repo, first)
    }

    pub fn write(&self, path: &str, content: &str) {
        let path = self.work.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    pub fn remove(&self, path: &str) {
        std::fs::remove_file(self.work.join(path)).unwrap();
    }

    /// Commits everything in the working copy and pushes it, as merging a pull request does.
    pub fn commit(&self, message: &str) -> Commit {
        run(&mut git(&self.work, &["add", "--all"]));
        run(&mut git(&self.work, &["commit", "--quiet", "-m", message]));
        run(&mut git(&self.work, &["push", "--quiet", "origin", BRANCH]));
        let sha = String::from_utf8(run(&mut git(&self.work, &["rev-parse", "HEAD"])))
            .unwrap()
            .trim()
            .to_owned();
        Commit {
            revision: format!("{BRANCH}@sha1:{sha}"),
            sha,
        }
    }
}

/// `git` in `dir`, with an author of its own and no user or system configuration.
fn git(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Pull Request")
        .env("GIT_AUTHOR_EMAIL", "merge@example.com")
        .env("GIT_COMMITTER_NAME", "Pull Request")
        .env("GIT_COMMITTER_EMAIL", "merge@example.com");
    cmd
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().expect("run git");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

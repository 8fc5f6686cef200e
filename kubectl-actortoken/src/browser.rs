//! Opening a sign-in link in the browser: `$BROWSER` first (a list of commands, separated as
//! in PATH,
//! `%s` standing for the link, else the link is the last argument, as Debian's
//! `sensible-browser` and Python's `webbrowser` read it), then `xdg-open`, `open` or (on
//! Windows) the URL handler. The link
//! goes to the browser as an argument and nowhere else: never into a message.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::error::Error;

/// One way to open a link: a program and its arguments, with the link in place of `None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opener {
    pub program: String,
    pub args: Vec<Option<String>>,
}

impl Opener {
    /// The command as people would type it, with `<link>` in place of the link.
    pub fn described(&self) -> String {
        std::iter::once(self.program.clone())
            .chain(
                self.args
                    .iter()
                    .map(|a| a.clone().unwrap_or_else(|| "<link>".into())),
            )
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The openers to try, in order, for `$BROWSER` (if set and not empty) on `os`.
pub fn openers(browser: Option<&str>, os: &str) -> Vec<Opener> {
    let from_env: Vec<Opener> = browser
        .unwrap_or_default()
        // The path separator, as for PATH: `;` on Windows, where `C:\` holds a colon.
        .split(if os == "windows" { ';' } else { ':' })
        .filter_map(|command| {
            let mut words = command.split_whitespace();
            let program = words.next()?.to_string();
            let mut args: Vec<Option<String>> = Vec::new();
            let mut placed = false;
            for word in words {
                if word.contains("%s") {
                    // `%s` alone is the link; inside a word (`--url=%s`) the word is kept
                    // around it, so it is filled in at the last moment.
                    if word == "%s" {
                        args.push(None);
                    } else {
                        args.push(Some(word.to_string()));
                    }
                    placed = true;
                } else {
                    args.push(Some(word.to_string()));
                }
            }
            if !placed {
                args.push(None);
            }
            Some(Opener { program, args })
        })
        .collect();
    if !from_env.is_empty() {
        return from_env;
    }
    let (program, first): (&str, Option<&str>) = match os {
        "macos" => ("open", None),
        // Not `cmd /c start`: cmd would read the link's `&`s as command separators.
        "windows" => ("rundll32", Some("url.dll,FileProtocolHandler")),
        _ => ("xdg-open", None),
    };
    let mut args: Vec<Option<String>> = first.map(|a| Some(a.to_string())).into_iter().collect();
    args.push(None);
    vec![Opener {
        program: program.into(),
        args,
    }]
}

/// How long a browser command may take to say it failed; one still running after that is a
/// browser that stays in the foreground, and is left to run.
const SETTLE: Duration = Duration::from_secs(5);

/// Opens `link` with the first opener that works; the one that did.
pub fn open(link: &str) -> Result<Opener, Error> {
    let browser = std::env::var("BROWSER").ok();
    let mut tried = Vec::new();
    for opener in openers(browser.as_deref(), std::env::consts::OS) {
        let args = opener.args.iter().map(|a| match a {
            None => link.to_string(),
            Some(word) => word.replace("%s", link),
        });
        let spawned = Command::new(&opener.program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                tried.push(format!("{}: {e}", opener.described()));
                continue;
            }
        };
        let started = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(opener),
                Ok(Some(status)) => {
                    tried.push(format!("{}: {status}", opener.described()));
                    break;
                }
                Ok(None) if started.elapsed() > SETTLE => return Ok(opener),
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => {
                    tried.push(format!("{}: {e}", opener.described()));
                    break;
                }
            }
        }
    }
    Err(Error::Other(format!(
        "could not open a browser (set $BROWSER, or run without --open to print the link): {}",
        tried.join("; ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opener(program: &str, args: &[Option<&str>]) -> Opener {
        Opener {
            program: program.into(),
            args: args.iter().map(|a| a.map(String::from)).collect(),
        }
    }

    #[test]
    fn browser_is_a_list_of_commands_taking_the_link_last_or_at_percent_s() {
        assert_eq!(
            openers(Some("firefox --new-tab:w3m %s"), "linux"),
            vec![
                opener("firefox", &[Some("--new-tab"), None]),
                opener("w3m", &[None]),
            ]
        );
        assert_eq!(
            openers(Some("mybrowser --url=%s --quiet"), "linux"),
            vec![opener("mybrowser", &[Some("--url=%s"), Some("--quiet")])]
        );
    }

    #[test]
    fn without_browser_the_platforms_opener() {
        assert_eq!(openers(None, "linux"), vec![opener("xdg-open", &[None])]);
        assert_eq!(
            openers(Some(""), "linux"),
            vec![opener("xdg-open", &[None])]
        );
        assert_eq!(openers(Some(" : "), "macos"), vec![opener("open", &[None])]);
        assert_eq!(
            openers(None, "windows"),
            vec![opener(
                "rundll32",
                &[Some("url.dll,FileProtocolHandler"), None]
            )]
        );
    }

    #[test]
    fn the_description_never_holds_the_link() {
        assert_eq!(
            opener("firefox", &[Some("--new-tab"), None]).described(),
            "firefox --new-tab <link>"
        );
    }
}

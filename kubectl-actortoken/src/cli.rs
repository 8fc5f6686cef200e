//! The command line: commands, flags, help and examples.

use std::{path::PathBuf, time::Duration};

use actor_token_operator::api::{InstanceKind, InstanceRef, SpecDuration};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::EXIT_CODES_HELP;

#[derive(Parser, Debug)]
#[command(
    name = "kubectl actortoken",
    bin_name = "kubectl actortoken",
    version,
    about = "Request, approve, read and revoke Clerk sign-in links (actor tokens) held by actor-token-operator",
    long_about = "Request, approve, read and revoke Clerk sign-in links (actor tokens) held by \
        actor-token-operator. Every command acts as you, with your kubeconfig: the API server's \
        RBAC and admission policies decide what you may do, and say why not.",
    after_help = EXIT_CODES_HELP,
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Path to the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// The namespace (default: the context's namespace, else `default`).
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Ask for a sign-in link as USER_ID, wait for it, and print it (or open it).
    #[command(after_help = REQUEST_EXAMPLES)]
    Request(RequestArgs),
    /// List requests: who asked, for whom, phase, approver, time left.
    #[command(
        after_help = "Examples:\n  kubectl actortoken list\n  kubectl actortoken list -n support\n  kubectl actortoken list -A"
    )]
    List(ListArgs),
    /// Tell a request's whole story: who asked, who decided, conditions, events, when it ends.
    #[command(after_help = "Examples:\n  kubectl actortoken describe ticket-1234 -n support")]
    Describe(NameArg),
    /// Approve someone else's request (the API server refuses your own).
    #[command(
        after_help = "Examples:\n  kubectl actortoken approve ticket-1234 -n support\n  kubectl actortoken approve ticket-1234 -n support --reason \"checked TICKET-1234\""
    )]
    Approve(ApproveArgs),
    /// Deny someone else's request: final, no token is ever made for it.
    #[command(
        after_help = "Examples:\n  kubectl actortoken deny ticket-1234 -n support --reason \"no ticket for this customer\""
    )]
    Deny(DenyArgs),
    /// Print (or open) the sign-in link of an issued request.
    #[command(
        after_help = "Examples:\n  kubectl actortoken url ticket-1234 -n support\n  kubectl actortoken url ticket-1234 -n support --open\n  BROWSER=firefox kubectl actortoken url ticket-1234 --open"
    )]
    Url(UrlArgs),
    /// Revoke a link: delete the request and wait until the token is revoked and its Secret gone.
    #[command(after_help = "Examples:\n  kubectl actortoken revoke ticket-1234 -n support")]
    Revoke(RevokeArgs),
    /// Show what you may do here: request through which instances, approve which, read links.
    #[command(
        after_help = "Examples:\n  kubectl actortoken whoami\n  kubectl actortoken whoami -n support"
    )]
    Whoami,
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  source <(kubectl-actortoken completion bash)\n  kubectl-actortoken completion zsh > \"${fpath[1]}/_kubectl-actortoken\"\n  kubectl-actortoken completion fish > ~/.config/fish/completions/kubectl-actortoken.fish"
    )]
    Completion(CompletionArgs),
}

const REQUEST_EXAMPLES: &str = "\
Examples:
  # Ask, wait (for approval, Clerk, the Secret), then print the link:
  kubectl actortoken request user_2customer --actor user_2me --for 15m \\
    --reason https://tickets.example.com/1234 -n support

  # Through a ClerkInstance of the namespace, with a name of your choice, opened in the browser:
  kubectl actortoken request user_2customer --actor user_2me --for 15m --reason TICKET-1234 \\
    --instance ClerkInstance/clerk --name ticket-1234 --open

  # Create and return at once; print the request's name:
  name=$(kubectl actortoken request user_2customer --actor user_2me --reason TICKET-1234 --no-wait)
  kubectl actortoken url \"$name\"";

#[derive(Args, Debug)]
pub struct RequestArgs {
    /// The Clerk user to impersonate (`user_…`).
    #[arg(value_name = "USER_ID")]
    pub user_id: String,
    /// Your own Clerk user ID: who acts (the session token's `act.sub`).
    #[arg(long, value_name = "CLERK_ID")]
    pub actor: String,
    /// How long the link can be used (`15m`, `1h`, at most 24h; default 1h).
    #[arg(long = "for", value_name = "DURATION", value_parser = spec_duration)]
    pub expires_in: Option<String>,
    /// Why: a ticket link or a sentence, for the approver and the audit trail.
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// The instance to ask through (`ClusterClerkInstance/NAME` or `ClerkInstance/NAME`;
    /// default ClusterClerkInstance/default).
    #[arg(long, value_name = "KIND/NAME", value_parser = instance_ref)]
    pub instance: Option<InstanceRef>,
    /// The request's name (default: generated from the user ID).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Open the link in the browser ($BROWSER, else xdg-open/open) instead of printing it.
    #[arg(long)]
    pub open: bool,
    /// Create the request and return at once, printing its name.
    #[arg(long, conflicts_with = "open")]
    pub no_wait: bool,
    /// Give up waiting after this long (exit code 4); the request stays.
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = wait_duration)]
    pub timeout: Duration,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// List requests in every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

#[derive(Args, Debug)]
pub struct NameArg {
    /// The request's name.
    pub name: String,
}

#[derive(Args, Debug)]
pub struct ApproveArgs {
    /// The request's name.
    pub name: String,
    /// Why you approve (shown to the requester, kept in the condition's message).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

#[derive(Args, Debug)]
pub struct DenyArgs {
    /// The request's name.
    pub name: String,
    /// Why you deny (shown to the requester, kept in the condition's message).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
}

#[derive(Args, Debug)]
pub struct UrlArgs {
    /// The request's name.
    pub name: String,
    /// Open the link in the browser ($BROWSER, else xdg-open/open) instead of printing it.
    #[arg(long)]
    pub open: bool,
}

#[derive(Args, Debug)]
pub struct RevokeArgs {
    /// The request's name.
    pub name: String,
    /// Give up waiting after this long (exit code 4); the request is deleted all the same.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = wait_duration)]
    pub timeout: Duration,
}

#[derive(Args, Debug)]
pub struct CompletionArgs {
    pub shell: Shell,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// A link lifetime as the API takes it, checked here so that a typo is a usage error.
fn spec_duration(text: &str) -> Result<String, String> {
    SpecDuration::new(text)
        .to_duration()
        .map(|_| text.to_string())
        .map_err(|e| e.to_string())
}

/// A wait: `90s`, `30m`, `2h` (up to 24h).
fn wait_duration(text: &str) -> Result<Duration, String> {
    SpecDuration::new(text)
        .to_duration()
        .map_err(|e| e.to_string())
}

/// `KIND/NAME`, the kind as written in the API or as a resource (`clerkinstance`,
/// `clusterclerkinstances`), case-insensitive.
pub fn instance_ref(text: &str) -> Result<InstanceRef, String> {
    let (kind, name) = text
        .split_once('/')
        .ok_or_else(|| format!("`{text}` is not KIND/NAME, e.g. ClerkInstance/clerk"))?;
    let kind = match kind.to_ascii_lowercase().as_str() {
        "clerkinstance" | "clerkinstances" => InstanceKind::ClerkInstance,
        "clusterclerkinstance" | "clusterclerkinstances" => InstanceKind::ClusterClerkInstance,
        other => {
            return Err(format!(
                "`{other}` is not an instance kind: ClerkInstance or ClusterClerkInstance"
            ));
        }
    };
    if name.is_empty() || name.contains('/') {
        return Err(format!(
            "`{text}` is not KIND/NAME, e.g. ClerkInstance/clerk"
        ));
    }
    Ok(InstanceRef {
        kind,
        name: name.into(),
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn instances_are_named_kind_slash_name() {
        assert_eq!(
            instance_ref("ClerkInstance/clerk").unwrap(),
            InstanceRef {
                kind: InstanceKind::ClerkInstance,
                name: "clerk".into()
            }
        );
        assert_eq!(
            instance_ref("clusterclerkinstances/default").unwrap(),
            InstanceRef::default()
        );
        assert!(instance_ref("clerk").unwrap_err().contains("KIND/NAME"));
        assert!(
            instance_ref("Issuer/x")
                .unwrap_err()
                .contains("ClerkInstance or ClusterClerkInstance")
        );
        assert!(instance_ref("ClerkInstance/").is_err());
    }

    #[test]
    fn durations_are_checked_before_anything_is_sent() {
        let parsed = Cli::try_parse_from([
            "kubectl-actortoken",
            "request",
            "user_2x",
            "--actor",
            "user_2me",
            "--reason",
            "r",
            "--for",
            "15m",
        ])
        .unwrap();
        match parsed.command {
            Command::Request(args) => {
                assert_eq!(args.expires_in.as_deref(), Some("15m"));
                assert_eq!(args.timeout, Duration::from_secs(1800));
            }
            other => panic!("{other:?}"),
        }
        for bad in ["15", "0m", "25h"] {
            let error = Cli::try_parse_from([
                "kubectl-actortoken",
                "request",
                "user_2x",
                "--actor",
                "a",
                "--reason",
                "r",
                "--for",
                bad,
            ])
            .unwrap_err();
            assert_eq!(error.exit_code(), 2, "{bad}");
        }
    }

    #[test]
    fn deny_needs_a_reason_and_open_conflicts_with_no_wait() {
        let error = Cli::try_parse_from(["kubectl-actortoken", "deny", "t-1"]).unwrap_err();
        assert_eq!(error.exit_code(), 2);
        let error = Cli::try_parse_from([
            "kubectl-actortoken",
            "request",
            "user_2x",
            "--actor",
            "a",
            "--reason",
            "r",
            "--open",
            "--no-wait",
        ])
        .unwrap_err();
        assert_eq!(error.exit_code(), 2);
    }

    #[test]
    fn every_command_has_examples_and_the_top_level_help_the_exit_codes() {
        let mut cli = Cli::command();
        let help = cli.render_long_help().to_string();
        assert!(help.contains("Exit codes:"), "{help}");
        for sub in cli.get_subcommands_mut() {
            let name = sub.get_name().to_string();
            if name == "help" {
                continue;
            }
            let help = sub.render_help().to_string();
            assert!(help.contains("Examples:"), "{name} has no examples");
        }
    }

    #[test]
    fn global_flags_go_anywhere() {
        let parsed = Cli::try_parse_from([
            "kubectl-actortoken",
            "list",
            "-n",
            "support",
            "--context",
            "prod",
            "--kubeconfig",
            "/tmp/kc",
        ])
        .unwrap();
        assert_eq!(parsed.global.namespace.as_deref(), Some("support"));
        assert_eq!(parsed.global.context.as_deref(), Some("prod"));
        assert_eq!(
            parsed.global.kubeconfig.as_deref(),
            Some(std::path::Path::new("/tmp/kc"))
        );
    }
}

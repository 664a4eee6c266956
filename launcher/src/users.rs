//! `soc user`: the users who sign in and their API tokens, managed from the host.
//! Passwords and tokens are printed once, on standard output; nothing here logs them.

use crate::settings::Settings;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use sea_orm::DatabaseConnection;
use secrecy::ExposeSecret;
use soc_gateway::auth::{secret, Accounts, Role};
use std::io::BufRead;

#[derive(Subcommand)]
pub enum UserCmd {
    /// List users.
    List,
    /// Create a user; prints a generated password (to be changed at first sign-in) unless
    /// one is read from standard input.
    Add {
        username: String,
        #[arg(long, default_value = "viewer")]
        role: Role,
        #[command(flatten)]
        password: PasswordArg,
    },
    /// Set a user's password (generated, to be changed at sign-in, unless read from
    /// standard input); their sessions end.
    Passwd {
        username: String,
        #[command(flatten)]
        password: PasswordArg,
    },
    /// Change a user's role, or disable or enable the account (disabling ends its sessions
    /// and stops its tokens).
    Set {
        username: String,
        #[arg(long)]
        role: Option<Role>,
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        #[arg(long)]
        enable: bool,
    },
    /// Create an API token for a user; prints it once.
    Token {
        username: String,
        /// What the token is for, e.g. `siem-export`.
        #[arg(long)]
        name: String,
        /// At most the user's role (default: the user's).
        #[arg(long)]
        role: Option<Role>,
        /// Lifetime in days (default: until revoked).
        #[arg(long)]
        expires_days: Option<u32>,
    },
    /// List API tokens (of one user, or all).
    Tokens { username: Option<String> },
    /// Revoke an API token by its id.
    Revoke { token_id: String },
}

#[derive(Args)]
pub struct PasswordArg {
    /// Read the password from the first line of standard input instead of generating one.
    #[arg(long)]
    password_stdin: bool,
}

impl PasswordArg {
    /// The password, and whether it was generated.
    fn get(&self) -> Result<(String, bool)> {
        if self.password_stdin {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the password from standard input")?;
            Ok((line.trim_end_matches(['\r', '\n']).to_string(), false))
        } else {
            Ok((secret::generate_password(), true))
        }
    }
}

/// On a database with no user, make the first admin and say how to sign in.
pub async fn ensure_first_admin(settings: &Settings, db: &DatabaseConnection) -> Result<()> {
    let made = Accounts::new(db.clone())
        .ensure_first_admin(settings.auth.admin_password.as_ref(), chrono::Utc::now())
        .await
        .context("creating the first admin")?;
    if let Some(admin) = made {
        match admin.generated_password {
            // Standard output, not the log: it is shown once to whoever started `soc`.
            Some(pw) => println!(
                "created user `{}` with the one-time password {} (choose your own at first \
                 sign-in; `soc user passwd {}` sets another)",
                admin.username,
                pw.expose_secret(),
                admin.username
            ),
            None => println!(
                "created user `{}` with the configured admin password",
                admin.username
            ),
        }
    }
    Ok(())
}

pub async fn run(cmd: UserCmd, db: &DatabaseConnection) -> Result<()> {
    let accounts = Accounts::new(db.clone());
    let now = chrono::Utc::now();
    match cmd {
        UserCmd::List => {
            for u in accounts.users().await? {
                println!(
                    "{:<24} {:<8} {}{}",
                    u.username,
                    u.role,
                    if u.disabled { "disabled" } else { "enabled" },
                    if u.must_change_password {
                        ", must change password"
                    } else {
                        ""
                    }
                );
            }
        }
        UserCmd::Add {
            username,
            role,
            password,
        } => {
            let (pw, generated) = password.get()?;
            accounts
                .create_user(&username, &pw, role, generated, now)
                .await?;
            if generated {
                println!("created {role} `{username}` with the one-time password {pw}");
            } else {
                println!("created {role} `{username}`");
            }
        }
        UserCmd::Passwd { username, password } => {
            let (pw, generated) = password.get()?;
            accounts
                .set_password(&username, &pw, generated, None, now)
                .await?;
            if generated {
                println!("`{username}` has the one-time password {pw}");
            } else {
                println!("password of `{username}` set");
            }
        }
        UserCmd::Set {
            username,
            role,
            disable,
            enable,
        } => {
            let disabled = if disable {
                Some(true)
            } else if enable {
                Some(false)
            } else {
                None
            };
            let u = accounts.update_user(&username, role, disabled, now).await?;
            println!(
                "`{}`: {}, {}",
                u.username,
                u.role,
                if u.disabled { "disabled" } else { "enabled" }
            );
        }
        UserCmd::Token {
            username,
            name,
            role,
            expires_days,
        } => {
            let expires_at = expires_days.map(|d| now + chrono::Duration::days(i64::from(d)));
            let t = accounts
                .create_token(&username, &name, role, expires_at, now)
                .await?;
            println!("{}", t.secret.expose_secret());
            eprintln!(
                "token {} ({}, {}) created; it is shown this once",
                t.view.id, t.view.name, t.view.role
            );
        }
        UserCmd::Tokens { username } => {
            for t in accounts.tokens(username.as_deref()).await? {
                let state = if t.revoked_at.is_some() {
                    "revoked".to_string()
                } else if t.expires_at.is_some_and(|e| e <= now) {
                    "expired".to_string()
                } else {
                    t.expires_at
                        .map_or("live".into(), |e| format!("live until {}", e.to_rfc3339()))
                };
                println!(
                    "{}  {}…  {:<16} {:<8} {:<16} {}",
                    t.id, t.prefix, t.owner, t.role, t.name, state
                );
            }
        }
        UserCmd::Revoke { token_id } => {
            accounts.revoke_token(&token_id, None, now).await?;
            println!("token {token_id} revoked");
        }
    }
    Ok(())
}

/// A new API token of `username` (at most their role), for programs that embed the
/// pipeline and talk to its API (benchmarks, tests). The secret is returned, never logged.
pub async fn issue_token(
    db: &DatabaseConnection,
    username: &str,
    name: &str,
    role: Option<Role>,
) -> Result<String> {
    let t = Accounts::new(db.clone())
        .create_token(username, name, role, None, chrono::Utc::now())
        .await?;
    Ok(t.secret.expose_secret().to_string())
}

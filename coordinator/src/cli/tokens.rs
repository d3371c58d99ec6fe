//! `coordinator tokens add|list|revoke`: manage the farm's tokens (operator only).

use anyhow::{Context, Result};
use benchfarm_proto::v1 as pb;

use super::connect::{Target, connect};
use crate::auth::Role;

fn role_name(value: i32) -> &'static str {
    match pb::TokenRole::try_from(value) {
        Ok(pb::TokenRole::Worker) => "worker",
        Ok(pb::TokenRole::Submitter) => "submitter",
        Ok(pb::TokenRole::Operator) => "operator",
        _ => "?",
    }
}

/// `YYYY-MM-DD HH:MM` (UTC) of a Unix time in ms (Hinnant's days-to-civil).
fn utc(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let days = (secs / 86_400) as i64;
    let (hour, minute) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}")
}

/// `tokens add --role R [--name N]`: prints the new token (once) on stdout, the how-to on stderr.
pub async fn add(target: &Target, role: Role, name: Option<&str>) -> Result<i32> {
    let name = match name {
        Some(n) => n.to_string(),
        None => format!(
            "{role}-{}",
            &uuid::Uuid::now_v7().simple().to_string()[20..]
        ),
    };
    let mut client = connect(target).await?;
    let added = client
        .add_token(pb::AddTokenRequest {
            name: name.clone(),
            role: crate::grpc::tokens::role_to_wire(role) as i32,
        })
        .await
        .context("adding the token failed")?
        .into_inner();
    println!("{}", added.token);
    let env = if role == Role::Worker {
        "BENCHFARM_WORKER_TOKEN"
    } else {
        "BENCHFARM_TOKEN"
    };
    eprintln!(
        "token {name:?} ({role}) added; it is shown only now. Keep it in a file (chmod 600) or {env}."
    );
    Ok(0)
}

/// `tokens list`.
pub async fn list(target: &Target) -> Result<i32> {
    let mut client = connect(target).await?;
    let tokens = client
        .list_tokens(pb::ListTokensRequest {})
        .await?
        .into_inner()
        .tokens;
    println!(
        "{:<24} {:<10} {:<7} {:<24} created",
        "NAME", "ROLE", "SHARED", "BOUND WORKER"
    );
    for t in tokens {
        println!(
            "{:<24} {:<10} {:<7} {:<24} {}",
            t.name,
            role_name(t.role),
            if t.shared { "yes" } else { "no" },
            if t.bound_worker.is_empty() {
                "-"
            } else {
                &t.bound_worker
            },
            utc(t.created_unix_ms),
        );
    }
    Ok(0)
}

/// `tokens revoke NAME`.
pub async fn revoke(target: &Target, name: &str) -> Result<i32> {
    let mut client = connect(target).await?;
    let gone = client
        .revoke_token(pb::RevokeTokenRequest { name: name.into() })
        .await
        .context("revoking the token failed")?
        .into_inner();
    println!(
        "revoked {} ({}); the workers it connected are cut off and their jobs requeued",
        gone.name,
        role_name(gone.role)
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00");
        assert_eq!(super::utc(1_796_169_600_000), "2026-12-02 00:00");
    }
}

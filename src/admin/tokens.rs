//! Hardware-token administration shared by the console and `tessera tokens`: each change applied to the inventory and written to the change log.

use crate::admin::Actor;
use crate::admin::changes::{self, Change};
use crate::directory::Directory;
use crate::mfa::tokens::inventory::{self, Deps, HotpWindows, HwToken, TokenError};
use crate::mfa::tokens::{self, ImportReport};

/// One change to one token, as the console's forms and the CLI's subcommands name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Assign {
        serial: String,
        user: String,
    },
    Unassign {
        serial: String,
    },
    Activate {
        serial: String,
        code: String,
    },
    Resync {
        serial: String,
        first: String,
        second: String,
    },
    Remove {
        serial: String,
    },
}

impl Action {
    fn name(&self) -> &'static str {
        match self {
            Action::Assign { .. } => "tokens.assign",
            Action::Unassign { .. } => "tokens.unassign",
            Action::Activate { .. } => "tokens.activate",
            Action::Resync { .. } => "tokens.resync",
            Action::Remove { .. } => "tokens.remove",
        }
    }

    fn serial(&self) -> &str {
        match self {
            Action::Assign { serial, .. }
            | Action::Unassign { serial }
            | Action::Activate { serial, .. }
            | Action::Resync { serial, .. }
            | Action::Remove { serial } => serial,
        }
    }
}

/// A token's state in one line, for the change log's before / after.
pub fn summary(t: &HwToken) -> String {
    format!(
        "{} {} user={} activated={}",
        t.kind_name(),
        t.model,
        t.assigned.as_deref().unwrap_or("-"),
        t.activated.map_or("no".into(), |a| a.to_string())
    )
}

/// Applies `action` and records it; returns the change as logged. Codes never reach the log.
/// HOTP windows are the defaults; the console and the CLI use `apply_within`.
pub async fn apply(
    deps: &Deps<'_>,
    directory: &dyn Directory,
    actor: &Actor,
    action: Action,
) -> Result<Change, TokenError> {
    apply_within(deps, HotpWindows::default(), directory, actor, action).await
}

/// `apply` with the HOTP windows in force (`mfa.hotp_window`, `mfa.hotp_resync_window`).
pub async fn apply_within(
    deps: &Deps<'_>,
    windows: HotpWindows,
    directory: &dyn Directory,
    actor: &Actor,
    action: Action,
) -> Result<Change, TokenError> {
    let serial = action.serial().to_owned();
    let before = inventory::get(deps.store, &serial)
        .await?
        .map(|t| summary(&t));
    let after = match &action {
        Action::Assign { user, .. } => {
            let name = directory
                .canonical_name(user)
                .await
                .map_err(|e| TokenError::Directory(e.to_string()))?
                .ok_or_else(|| TokenError::UnknownUser(user.clone()))?;
            Some(inventory::assign(deps.store, &serial, &name).await?)
        }
        Action::Unassign { .. } => Some(inventory::unassign(deps.store, &serial).await?),
        Action::Activate { code, .. } => {
            Some(inventory::activate_within(deps, windows, &serial, code).await?)
        }
        Action::Resync { first, second, .. } => {
            Some(inventory::resync_within(deps, windows, &serial, first, second).await?)
        }
        Action::Remove { .. } => {
            inventory::remove(deps.store, &serial).await?;
            None
        }
    };
    let change = Change::new(
        actor,
        deps.now,
        action.name(),
        &serial,
        before,
        after.as_ref().map(summary),
    );
    changes::record(deps.store, deps.now, std::slice::from_ref(&change)).await?;
    Ok(change)
}

/// Imports a file (nothing from a file with any bad row) and records what was stored.
pub async fn import(
    deps: &Deps<'_>,
    directory: &dyn Directory,
    actor: &Actor,
    file_name: &str,
    bytes: &[u8],
    psk: Option<&[u8]>,
) -> Result<ImportReport, TokenError> {
    let report = tokens::import(deps, directory, bytes, psk).await?;
    if !report.imported.is_empty() {
        let after = Some(format!(
            "{} tokens: {}",
            report.imported.len(),
            report.imported.join(" ")
        ));
        let change = Change::new(actor, deps.now, "tokens.import", file_name, None, after);
        changes::record(deps.store, deps.now, &[change]).await?;
    }
    Ok(report)
}

/// The help desk's "assign a hardware token" (console user page, `tessera users
/// assign-token`): the inventory's assign, then — when the help desk read a code off the
/// token — its activation, each logged like the inventory page's. A refused activation
/// leaves the assignment in place (the user can still activate it); the error says so.
pub async fn assign_to_user(
    deps: &Deps<'_>,
    windows: HotpWindows,
    directory: &dyn Directory,
    actor: &Actor,
    user: &str,
    serial: &str,
    code: Option<&str>,
) -> Result<Vec<Change>, TokenError> {
    let serial = serial.trim().to_owned();
    let assign = Action::Assign {
        serial: serial.clone(),
        user: user.to_owned(),
    };
    let mut done = vec![apply_within(deps, windows, directory, actor, assign).await?];
    if let Some(code) = code.map(str::trim).filter(|c| !c.is_empty()) {
        let activate = Action::Activate {
            serial: serial.clone(),
            code: code.to_owned(),
        };
        match apply_within(deps, windows, directory, actor, activate).await {
            Ok(c) => done.push(c),
            Err(TokenError::Store(e)) => return Err(TokenError::Store(e)),
            Err(e) => {
                let user = inventory::get(deps.store, &serial)
                    .await?
                    .and_then(|t| t.assigned)
                    .unwrap_or_else(|| user.to_owned());
                return Err(TokenError::NotActivated {
                    serial,
                    user,
                    reason: e.to_string(),
                });
            }
        }
    }
    Ok(done)
}

/// The tokens assigned to `user` (activated or waiting), for the help desk's user page.
pub async fn of_user(
    store: &dyn crate::store::Store,
    user: &str,
) -> Result<Vec<HwToken>, crate::store::StoreError> {
    let all = inventory::list(store).await?;
    Ok(all
        .into_iter()
        .filter(|t| {
            t.assigned
                .as_deref()
                .is_some_and(|u| u.eq_ignore_ascii_case(user))
        })
        .collect())
}

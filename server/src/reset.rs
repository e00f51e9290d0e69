//! `POST /_sluice/reset`: every stream of every tenant deleted, the server left running, for
//! test suites that want a clean endpoint between tests without restarting it. Only when the
//! server allows it (`ServeConfig::allow_reset`: `sluice serve --ephemeral` or
//! `--allow-reset`), since the request is not authenticated.

use crate::auth::Scope;
use crate::service::Service;
use crate::tenant::Tenant;
use crate::wire::ApiError;
use serde::Serialize;
use sluice_core::AdminError;
use std::sync::Arc;

/// The path of the reset request.
pub const RESET_PATH: &str = "/_sluice/reset";

/// Stream names listed per page while deleting.
const LIST_PAGE_STREAMS_MAX: usize = 1000;

/// What a reset did.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Reset {
    /// Streams deleted, over all tenants.
    pub streams_deleted: usize,
    /// Tenants (account and region pairs) reset, the configured one included.
    pub tenants: usize,
}

/// Deletes every stream of every tenant (the configured one, those opened since start and
/// those on disk from earlier runs), with their consumers and settings, and forgets the
/// account settings. Streams created while it runs may survive it.
pub async fn reset(service: &Service) -> Result<Reset, ApiError> {
    if !service.config.allow_reset {
        return Err(ApiError::with_status(
            "AccessDeniedException",
            403,
            "Reset is off: start sluice serve with --ephemeral or --allow-reset.",
        ));
    }
    let mut tenants = vec![service.default_tenant().clone()];
    for scope in scopes_on_disk(service)? {
        tenants.push(service.tenant(Some(scope)).await?);
    }
    let mut streams_deleted = 0;
    for tenant in &tenants {
        streams_deleted += reset_tenant(tenant).await?;
    }
    Ok(Reset {
        streams_deleted,
        tenants: tenants.len(),
    })
}

/// The tenants other than the configured one that have a directory
/// (`<data-dir>/tenants/<account>-<region>`): every tenant ever opened on this data.
fn scopes_on_disk(service: &Service) -> Result<Vec<Scope>, ApiError> {
    let dir = service.config.data_dir.join("tenants");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(ApiError::internal(format!(
                "listing {}: {e}",
                dir.display()
            )));
        }
    };
    let mut scopes = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| ApiError::internal(format!("listing {}: {e}", dir.display())))?;
        let name = entry.file_name();
        let Some((account, region)) = name.to_str().and_then(|n| n.split_once('-')) else {
            continue;
        };
        let scope = Scope {
            account: account.to_owned(),
            region: region.to_owned(),
        };
        let configured =
            scope.account == service.config.account && scope.region == service.config.region;
        if !configured {
            scopes.push(scope);
        }
    }
    Ok(scopes)
}

/// Whether stream `name` created at `created_ms` exists (it was created after the listing).
fn stream_still_there(tenant: &Tenant, name: &str, created_ms: u64) -> bool {
    tenant
        .engine
        .stream(name)
        .and_then(|stream| stream.summary())
        .is_ok_and(|summary| summary.created_ms == created_ms)
}

/// Deletes the tenant's streams; returns how many.
async fn reset_tenant(tenant: &Arc<Tenant>) -> Result<usize, ApiError> {
    let mut deleted = 0;
    let mut after: Option<String> = None;
    loop {
        let page = tenant
            .engine
            .list_streams(Some(LIST_PAGE_STREAMS_MAX), after.as_deref())?;
        for name in &page.names {
            // Gone meanwhile (a client's own delete): nothing to do.
            let Ok(stream) = tenant.engine.stream(name) else {
                continue;
            };
            let Ok(summary) = stream.summary() else {
                continue;
            };
            match stream.delete().await {
                Ok(()) => deleted += 1,
                Err(AdminError::StreamNotFound { .. }) => {}
                Err(error) => return Err(error.into()),
            }
            tenant.leases.revoke_stream(name, summary.created_ms);
        }
        if !page.has_more {
            break;
        }
        after = page.names.last().cloned();
    }
    tenant
        .state
        .update(|state| {
            // Streams created while the reset ran keep their settings (an acknowledged
            // StartStreamEncryption among them); data keys stay, ids never reused.
            state
                .streams
                .retain(|name, extras| stream_still_there(tenant, name, extras.stream_created_ms));
            state.billing_commitment = None;
            Ok(())
        })
        .await?;
    tenant.forget_transitions();
    Ok(deleted)
}

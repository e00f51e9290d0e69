//! `POST /_sluice/reset` behind the HTTP layer: every stream of every tenant goes, and only
//! when the server allows it.

use sluice_core::CreateStream;
use sluice_server::auth::Scope;
use sluice_server::reset::{Reset, reset};
use sluice_server::tenant::Tenant;
use sluice_server::{ServeConfig, Service};
use std::path::Path;

fn config(dir: &Path, allow_reset: bool) -> ServeConfig {
    let mut config = ServeConfig::new(dir);
    config.cores = 1;
    config.segment_size_bytes = 4 << 20;
    config.allow_reset = allow_reset;
    config
}

fn other_scope() -> Scope {
    Scope {
        account: "111122223333".to_owned(),
        region: "eu-west-1".to_owned(),
    }
}

async fn create(tenant: &Tenant, name: &str) {
    tenant
        .engine
        .create_stream(CreateStream::provisioned(name, 2))
        .await
        .unwrap();
}

fn names(tenant: &Tenant) -> Vec<String> {
    tenant.engine.list_streams(None, None).unwrap().names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_deletes_every_stream_of_every_tenant_and_names_can_be_reused() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::open(config(dir.path(), true)).unwrap();
    let other = service.tenant(Some(other_scope())).await.unwrap();
    create(service.default_tenant(), "orders").await;
    create(service.default_tenant(), "payments").await;
    create(&other, "orders").await;

    let report = reset(&service).await.unwrap();
    assert_eq!(
        report,
        Reset {
            streams_deleted: 3,
            tenants: 2
        }
    );
    assert_eq!(names(service.default_tenant()), Vec::<String>::new());
    assert_eq!(names(&other), Vec::<String>::new());
    // The server goes on: the same names are created again, empty.
    create(service.default_tenant(), "orders").await;
    assert_eq!(names(service.default_tenant()), ["orders"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_reaches_tenants_only_on_disk_from_an_earlier_run() {
    let dir = tempfile::tempdir().unwrap();
    {
        let service = Service::open(config(dir.path(), true)).unwrap();
        create(&service.tenant(Some(other_scope())).await.unwrap(), "old").await;
    }
    // Reopened: the other tenant is not open until a request of its own comes.
    let service = Service::open(config(dir.path(), true)).unwrap();
    let report = reset(&service).await.unwrap();
    assert_eq!(
        report,
        Reset {
            streams_deleted: 1,
            tenants: 2
        }
    );
    let other = service.tenant(Some(other_scope())).await.unwrap();
    assert_eq!(names(&other), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_is_refused_unless_the_server_allows_it() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::open(config(dir.path(), false)).unwrap();
    create(service.default_tenant(), "kept").await;
    let error = reset(&service).await.unwrap_err();
    assert_eq!((error.name, error.status), ("AccessDeniedException", 403));
    assert!(error.message.contains("--allow-reset"), "{}", error.message);
    assert_eq!(names(service.default_tenant()), ["kept"]);
}

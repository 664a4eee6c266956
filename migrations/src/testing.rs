//! Fresh, migrated databases for tests, on every backend the project supports.
//!
//! SQLite always; PostgreSQL when `SOC_TEST_POSTGRES_URL` names a server (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`): each test gets its own database there.

use crate::{Migrator, MigratorTrait};
use sea_orm_migration::sea_orm::{ConnectionTrait, Database, DatabaseConnection};

pub const POSTGRES_ENV: &str = "SOC_TEST_POSTGRES_URL";

pub struct TestDb {
    pub backend: &'static str,
    pub url: String,
    pub conn: DatabaseConnection,
    // Keeps the SQLite file alive for the test's duration.
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/test.sqlite?mode=rwc", dir.path().display());
        let conn = Database::connect(&url).await.expect("sqlite connect");
        Migrator::up(&conn, None)
            .await
            .expect("migrations on sqlite");
        TestDb {
            backend: "sqlite",
            url,
            conn,
            _dir: Some(dir),
        }
    }

    /// A new database on the PostgreSQL server named by `SOC_TEST_POSTGRES_URL`, or `None`
    /// (with a message saying why) when it is not set.
    pub async fn postgres() -> Option<TestDb> {
        let Ok(admin_url) = std::env::var(POSTGRES_ENV) else {
            eprintln!("skipped on PostgreSQL: {POSTGRES_ENV} is not set");
            return None;
        };
        let admin = Database::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("{POSTGRES_ENV}={admin_url}: {e}"));
        let name = format!("soc_test_{}", uuid::Uuid::new_v4().simple());
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create test database");
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        let conn = Database::connect(&url).await.expect("postgres connect");
        Migrator::up(&conn, None)
            .await
            .expect("migrations on postgres");
        Some(TestDb {
            backend: "postgres",
            url,
            conn,
            _dir: None,
        })
    }

    /// SQLite, plus PostgreSQL when configured.
    pub async fn all() -> Vec<TestDb> {
        let mut dbs = vec![TestDb::sqlite().await];
        if let Some(pg) = TestDb::postgres().await {
            dbs.push(pg);
        }
        dbs
    }
}

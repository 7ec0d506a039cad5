//! A fresh schema in the test PostgreSQL (`TOLLGATE_TEST_POSTGRES`,
//! default postgres://postgres@127.0.0.1:5432/test), dropped on drop.

pub struct PgSchema {
    /// The ledger URL: the database, with `search_path` set to the schema.
    pub url: String,
    pub name: String,
    pub admin: postgres::Client,
}

impl PgSchema {
    pub fn new(prefix: &str) -> PgSchema {
        let base = std::env::var("TOLLGATE_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let name = format!("{prefix}_{}", std::process::id());
        let mut admin = postgres::Client::connect(&base, postgres::NoTls).unwrap_or_else(|e| {
            panic!("PostgreSQL at {base} is needed for this test (set TOLLGATE_TEST_POSTGRES): {e}")
        });
        admin
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
            ))
            .unwrap();
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{name}");
        PgSchema { url, name, admin }
    }

    pub fn target(&self) -> tollgate::policy::LedgerTarget {
        tollgate::policy::LedgerTarget::Postgres(tollgate::secret::Secret::new(self.url.clone()))
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let _ = self
            .admin
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
    }
}

//! Incidents and announcements: what operators tell their users, beside
//! what the checks measure. Stored in the shared database, so every node of
//! a cluster shows the same ones.

use serde::{Deserialize, Serialize};
use sqlx::QueryBuilder;

use super::db::{WritePool, with_pool};
use super::{Store, StoreError};

/// A title people read in a list.
pub const TITLE_MAX: usize = 200;
/// An update is a few paragraphs, not a log file.
pub const BODY_MAX: usize = 10_000;
/// Systems one incident may name.
pub const SYSTEMS_MAX: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// An announcement: planned work, a notice.
    Notice,
    Minor,
    Major,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Notice => "notice",
            Severity::Minor => "minor",
            Severity::Major => "major",
            Severity::Critical => "critical",
        }
    }

    fn parse(text: &str) -> Severity {
        match text {
            "minor" => Severity::Minor,
            "major" => Severity::Major,
            "critical" => Severity::Critical,
            _ => Severity::Notice,
        }
    }
}

/// Where an incident stands after an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UpdateState {
    Investigating,
    Identified,
    Monitoring,
    Update,
    Resolved,
}

impl UpdateState {
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateState::Investigating => "investigating",
            UpdateState::Identified => "identified",
            UpdateState::Monitoring => "monitoring",
            UpdateState::Update => "update",
            UpdateState::Resolved => "resolved",
        }
    }

    fn parse(text: &str) -> UpdateState {
        match text {
            "investigating" => UpdateState::Investigating,
            "identified" => UpdateState::Identified,
            "monitoring" => UpdateState::Monitoring,
            "resolved" => UpdateState::Resolved,
            _ => UpdateState::Update,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Incident {
    pub id: i64,
    pub title: String,
    pub severity: Severity,
    /// The systems it affects; empty: all of them.
    pub systems: Vec<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub resolved_at_ms: Option<i64>,
    /// Oldest first.
    pub updates: Vec<IncidentUpdate>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IncidentUpdate {
    pub id: i64,
    pub state: UpdateState,
    /// Plain text, shown as written (never as markup).
    pub body: String,
    pub at_ms: i64,
}

/// A new incident and its first update.
#[derive(Debug, Clone)]
pub struct NewIncident {
    pub title: String,
    pub severity: Severity,
    pub systems: Vec<String>,
    pub state: UpdateState,
    pub body: String,
}

/// Why an incident or an update is refused: the field and what is wrong.
pub type Refusal = (String, String);

/// Checks a title or body against its cap and for emptiness.
pub fn check_text(field: &str, text: &str, max: usize) -> Result<(), Refusal> {
    if text.trim().is_empty() {
        return Err((field.into(), "must not be empty".into()));
    }
    // Control characters have no place in prose, and XML (the feed) cannot
    // carry them.
    if let Some(c) = text
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
    {
        return Err((
            field.into(),
            format!("holds the control character U+{:04X}", c as u32),
        ));
    }
    let chars = text.chars().count();
    if chars > max {
        return Err((
            field.into(),
            format!("is {chars} characters; at most {max} are kept"),
        ));
    }
    Ok(())
}

impl NewIncident {
    /// Refuses empty or oversized text and systems the configuration does
    /// not have, naming the field.
    pub fn check(&self, known_system: impl Fn(&str) -> bool) -> Result<(), Refusal> {
        check_text("title", &self.title, TITLE_MAX)?;
        if self.title.contains(['\n', '\r']) {
            return Err(("title".into(), "must be one line".into()));
        }
        check_text("body", &self.body, BODY_MAX)?;
        if self.systems.len() > SYSTEMS_MAX {
            return Err((
                "systems".into(),
                format!(
                    "names {} systems; at most {SYSTEMS_MAX}",
                    self.systems.len()
                ),
            ));
        }
        for (i, system) in self.systems.iter().enumerate() {
            if !known_system(system) {
                return Err((
                    format!("systems[{i}]"),
                    format!("no system `{system}` in the configuration"),
                ));
            }
        }
        if self.state == UpdateState::Resolved {
            return Err((
                "state".into(),
                "a new incident cannot start resolved".into(),
            ));
        }
        Ok(())
    }
}

/// What an update may not do to an incident.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("no incident {0}")]
    NotFound(i64),
    #[error("incident {0} is resolved; open a new one")]
    Resolved(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

type IncidentRow = (i64, String, String, String, i64, i64, Option<i64>);
type UpdateRow = (i64, i64, String, String, i64);

impl Store {
    pub async fn open_incident(&self, new: &NewIncident, at_ms: i64) -> Result<i64, StoreError> {
        let systems = serde_json::to_string(&new.systems).unwrap_or_else(|_| "[]".into());
        let id = with_pool!(&self.db.write().await?, pool => {
            let mut tx = pool.begin_write().await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO incidents (title, severity, systems, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $4) RETURNING id",
            )
            .bind(&new.title)
            .bind(new.severity.as_str())
            .bind(&systems)
            .bind(at_ms)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO incident_updates (incident_id, state, body, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(new.state.as_str())
            .bind(&new.body)
            .bind(at_ms)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            id
        });
        Ok(id)
    }

    /// Adds an update; `resolved` closes the incident.
    pub async fn update_incident(
        &self,
        id: i64,
        state: UpdateState,
        body: &str,
        at_ms: i64,
    ) -> Result<(), UpdateError> {
        let pools = self.db.write().await.map_err(StoreError::from)?;
        let written: Result<Option<bool>, sqlx::Error> = with_pool!(&pools, pool => {
            async {
                let mut tx = pool.begin_write().await?;
                // The guarded UPDATE first: on PostgreSQL it locks the row,
                // so a concurrent resolve cannot be undone by this update.
                let resolved_at = (state == UpdateState::Resolved).then_some(at_ms);
                let changed = sqlx::query(
                    "UPDATE incidents SET updated_at = $1, resolved_at = $2 WHERE id = $3 AND resolved_at IS NULL",
                )
                .bind(at_ms)
                .bind(resolved_at)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if changed == 0 {
                    let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM incidents WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    return Ok(exists.map(|_| false));
                }
                sqlx::query(
                    "INSERT INTO incident_updates (incident_id, state, body, created_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(id)
                .bind(state.as_str())
                .bind(body)
                .bind(at_ms)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Some(true))
            }
            .await
        });
        match written.map_err(StoreError::from)? {
            None => Err(UpdateError::NotFound(id)),
            Some(false) => Err(UpdateError::Resolved(id)),
            Some(true) => Ok(()),
        }
    }

    /// Incidents newest first, with their updates: only open ones, or all
    /// before the `before` id.
    pub async fn incidents(
        &self,
        open_only: bool,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Incident>, StoreError> {
        let (rows, updates): (Vec<IncidentRow>, Vec<UpdateRow>) = with_pool!(&self.db.read().await, pool => {
            let mut q = QueryBuilder::new(
                "SELECT id, title, severity, systems, created_at, updated_at, resolved_at
                 FROM incidents WHERE 1 = 1",
            );
            if open_only {
                q.push(" AND resolved_at IS NULL");
            }
            if let Some(before) = before {
                q.push(" AND id < ").push_bind(before);
            }
            q.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
            let rows: Vec<IncidentRow> = q.build_query_as().fetch_all(pool).await?;
            let mut u = QueryBuilder::new(
                "SELECT id, incident_id, state, body, created_at FROM incident_updates
                 WHERE incident_id IN (",
            );
            let mut ids = u.separated(", ");
            ids.push_bind(-1_i64);
            for row in &rows {
                ids.push_bind(row.0);
            }
            u.push(") ORDER BY id");
            let updates = u.build_query_as().fetch_all(pool).await?;
            (rows, updates)
        });
        Ok(rows
            .into_iter()
            .map(
                |(id, title, severity, systems, created, updated, resolved)| Incident {
                    id,
                    title,
                    severity: Severity::parse(&severity),
                    systems: serde_json::from_str(&systems).unwrap_or_default(),
                    created_at_ms: created,
                    updated_at_ms: updated,
                    resolved_at_ms: resolved,
                    updates: updates
                        .iter()
                        .filter(|u| u.1 == id)
                        .map(|(uid, _, state, body, at)| IncidentUpdate {
                            id: *uid,
                            state: UpdateState::parse(state),
                            body: body.clone(),
                            at_ms: *at,
                        })
                        .collect(),
                },
            )
            .collect())
    }

    pub async fn incident(&self, id: i64) -> Result<Option<Incident>, StoreError> {
        Ok(self
            .incidents(false, Some(id + 1), 1)
            .await?
            .into_iter()
            .find(|i| i.id == id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(title: &str, systems: &[&str]) -> NewIncident {
        NewIncident {
            title: title.into(),
            severity: Severity::Major,
            systems: systems.iter().map(|s| s.to_string()).collect(),
            state: UpdateState::Investigating,
            body: "Checkout fails for some cards.".into(),
        }
    }

    #[test]
    fn incidents_name_the_field_they_are_refused_for() {
        let known = |s: &str| s == "shop";
        assert!(new("Payments down", &["shop"]).check(known).is_ok());
        let field = |i: NewIncident| i.check(known).unwrap_err().0;
        assert_eq!(field(new("", &[])), "title");
        assert_eq!(field(new("two\nlines", &[])), "title");
        assert_eq!(field(new(&"x".repeat(TITLE_MAX + 1), &[])), "title");
        assert_eq!(field(new("ok", &["shop", "nope"])), "systems[1]");
        let mut long = new("ok", &[]);
        long.body = "y".repeat(BODY_MAX + 1);
        assert_eq!(field(long), "body");
        let mut bell = new("ok", &[]);
        bell.body = "ring \u{7}".into();
        assert_eq!(field(bell), "body");
    }
}

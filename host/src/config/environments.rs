//! Stage 1 of the pipeline: which environments an assignment runs in, and
//! from which locations. It lives with the configuration because the store
//! needs it as well, to know which slices still count.

use super::{Assignment, EnvSelection};

/// `None` in the result is this server; `Some` a probe location. The
/// assignment's `locations` win over its check's; neither (or `[]`) runs it
/// here only.
pub fn effective_locations(
    assignment: &Assignment,
    check_locations: &[String],
) -> Vec<Option<String>> {
    let listed = assignment.locations.as_deref().unwrap_or(check_locations);
    if listed.is_empty() {
        vec![None]
    } else {
        listed.iter().cloned().map(Some).collect()
    }
}

/// `None` in the result is the env-less run.
///
/// `All` → every environment the system belongs to now; `[]` → one run with
/// no environment; a list → those ids ∩ current membership (stale ids drop
/// silently). An empty result becomes a single env-less run.
pub fn effective_environments(
    selection: &EnvSelection,
    membership: &[String],
) -> Vec<Option<String>> {
    let chosen: Vec<Option<String>> = match selection {
        EnvSelection::All => membership.iter().cloned().map(Some).collect(),
        EnvSelection::List(ids) => ids
            .iter()
            .filter(|id| membership.contains(id))
            .cloned()
            .map(Some)
            .collect(),
    };
    if chosen.is_empty() {
        vec![None]
    } else {
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn null_empty_list_and_stale_ids() {
        let member = ids(&["staging", "prod"]);
        assert_eq!(
            effective_environments(&EnvSelection::All, &member),
            vec![Some("staging".into()), Some("prod".into())]
        );
        assert_eq!(
            effective_environments(&EnvSelection::List(vec![]), &member),
            vec![None]
        );
        assert_eq!(
            effective_environments(&EnvSelection::List(ids(&["prod", "gone"])), &member),
            vec![Some("prod".into())]
        );
        assert_eq!(
            effective_environments(&EnvSelection::List(ids(&["gone"])), &member),
            vec![None]
        );
        assert_eq!(effective_environments(&EnvSelection::All, &[]), vec![None]);
    }
}
